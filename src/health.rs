//! Whether each executor copy is up, as its supervisor knows it.
//!
//! The supervisor of a child process (`orchestrate`) writes the state the moment the child
//! exits and again when its restart is ready; the gateway reads it to skip a copy that is down,
//! to name it in the error a client gets, and to say NOT_SERVING on its own health check. This
//! module only carries the fact: it neither watches processes nor routes requests.

use std::fmt;
use tokio::sync::watch;

/// The state of one executor copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CopyState {
    Up,
    /// Down, and why (`exited (signal: 9 (SIGKILL)); restarting in 250ms`).
    Down(String),
}

/// The writing side, held by the copy's supervisor.
#[derive(Debug)]
pub(crate) struct Reporter(watch::Sender<CopyState>);

impl Reporter {
    pub(crate) fn up(&self) {
        self.0.send_replace(CopyState::Up);
    }

    pub(crate) fn down(&self, why: String) {
        self.0.send_replace(CopyState::Down(why));
    }
}

/// The reading side: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct Liveness {
    label: String,
    state: watch::Receiver<CopyState>,
}

impl Liveness {
    /// A copy under supervision, up at first (it was ready when the Flow started).
    pub(crate) fn supervised(label: &str) -> (Reporter, Liveness) {
        let (tx, rx) = watch::channel(CopyState::Up);
        (
            Reporter(tx),
            Liveness {
                label: label.into(),
                state: rx,
            },
        )
    }

    /// A copy nobody here supervises (an external executor): assumed up; a failed call says
    /// otherwise.
    pub(crate) fn unsupervised(label: &str) -> Liveness {
        Liveness::supervised(label).1
    }

    /// The copy's name in messages (`encoder/rep-1`).
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn state(&self) -> CopyState {
        self.state.borrow().clone()
    }

    pub(crate) fn is_up(&self) -> bool {
        *self.state.borrow() == CopyState::Up
    }

    /// Resolves at the next change of state (never, for a copy without a supervisor).
    pub(crate) async fn changed(&mut self) {
        if self.state.changed().await.is_err() {
            std::future::pending::<()>().await
        }
    }
}

impl fmt::Debug for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.label, self.state())
    }
}

/// Whether every copy of a Flow is up, as a stream of changes: what the gateway's own health
/// check reports.
pub(crate) async fn all_up_changes(mut copies: Vec<Liveness>, mut on_change: impl FnMut(bool)) {
    if copies.is_empty() {
        return;
    }
    loop {
        on_change(copies.iter().all(Liveness::is_up));
        let waits = copies.iter_mut().map(|c| Box::pin(c.changed()));
        futures::future::select_all(waits).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_the_supervisors_word_at_once() {
        let (reporter, liveness) = Liveness::supervised("enc/rep-0");
        assert!(liveness.is_up());
        reporter.down("exited (signal: 9)".into());
        assert_eq!(
            liveness.state(),
            CopyState::Down("exited (signal: 9)".into())
        );
        reporter.up();
        assert!(liveness.is_up());
        assert!(Liveness::unsupervised("x").is_up());
    }

    #[tokio::test]
    async fn the_flow_is_up_only_when_every_copy_is() {
        let (a, la) = Liveness::supervised("a");
        let (_b, lb) = Liveness::supervised("b");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(all_up_changes(vec![la, lb], move |up| {
            let _ = tx.send(up);
        }));
        assert_eq!(rx.recv().await, Some(true));
        a.down("gone".into());
        assert_eq!(rx.recv().await, Some(false));
        a.up();
        assert_eq!(rx.recv().await, Some(true));
    }
}
