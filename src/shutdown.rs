//! How our processes end: the signals that stop them, and the grace a server gives the
//! connections still open when it stops. Every server (executor, gateway) and every command
//! that serves goes through here, so they all stop the same way.

use std::future::Future;
use std::time::Duration;

/// How long a stopping server waits for its open connections (requests in flight, clients
/// that do not hang up) before it drops them. Shorter than the grace a Flow gives its
/// children before SIGKILL (5 s), so an executor always gets to exit on its own.
pub(crate) const CONNECTION_GRACE: Duration = Duration::from_secs(3);

/// Resolves on Ctrl-C or SIGTERM.
///
/// The signal handlers are installed when this is *called*, not when the future is first
/// polled: call it before announcing "ready", so that a signal sent right after the ready
/// line reaches us instead of the default action, which would kill the process before it
/// stops its children and finishes the requests in flight.
pub(crate) fn termination() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for Ctrl-C or SIGTERM ({e}); stop with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    }
}

/// Serves until `shutdown` resolves, then gives the open connections [`CONNECTION_GRACE`] to
/// finish. `serve` gets the signal to stop accepting (and to close connections gracefully);
/// if it has not returned by the deadline, it is dropped, which closes what is left. Without
/// this, one client that never hangs up would keep a stopping Flow alive forever.
pub(crate) async fn serve_with_grace<F, T>(
    what: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
    serve: impl FnOnce(futures::future::BoxFuture<'static, ()>) -> F,
) -> Result<(), T>
where
    F: Future<Output = Result<(), T>>,
{
    use futures::FutureExt;
    let (fired, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired.send(());
    }
    .boxed();
    let deadline = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(CONNECTION_GRACE).await,
            // The server ended before any stop: its own result decides.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = serve(signal) => served,
        _ = deadline => {
            tracing::warn!("{what}: connections still open {CONNECTION_GRACE:?} after the stop; closing them");
            Ok(())
        }
    }
}
