//! The gateway: where clients' requests enter a Flow and its answers leave.
//!
//! It owns the client-facing servers (gRPC in `grpc`, REST and WebSocket in `http`, all at
//! once, one port per protocol), the routing of a request through the graph (`router`) and the
//! spreading of it over an executor's copies (`deployment`). It does not start or stop executor
//! processes (that is `orchestrate`) and does not read YAML (that is `flow`): it is given a
//! checked graph and the executors' addresses.

mod deployment;
mod grpc;
mod http;
mod router;

pub use deployment::Deployment;
pub use router::Router;

use crate::flow::{GatewaySpec, Graph, Protocol};
use crate::orchestrate::Topology;
use futures::FutureExt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The gateway's sockets, bound before any executor starts so that a busy port fails the Flow
/// at once.
pub struct Listeners {
    pub bound: Vec<(Protocol, TcpListener)>,
}

impl Listeners {
    /// Binds one port per protocol (the given ones in order, free ones for the rest).
    pub async fn bind(spec: &GatewaySpec) -> Result<Listeners, String> {
        let mut bound = vec![];
        for (i, protocol) in spec.protocols.iter().enumerate() {
            let port = spec.ports.get(i).copied().unwrap_or(0);
            let listener = TcpListener::bind((spec.host.as_str(), port))
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AddrInUse => format!(
                        "port {port} ({}) is busy (address in use)",
                        protocol.as_str()
                    ),
                    _ => format!(
                        "cannot listen on {}:{port} ({}): {e}",
                        spec.host,
                        protocol.as_str()
                    ),
                })?;
            bound.push((*protocol, listener));
        }
        Ok(Listeners { bound })
    }

    /// `(protocol, port)` of each listener.
    pub fn ports(&self) -> Vec<(Protocol, u16)> {
        self.bound
            .iter()
            .map(|(p, l)| (*p, l.local_addr().map(|a| a.port()).unwrap_or(0)))
            .collect()
    }
}

/// Connects to every executor of `topology` and builds the router over `graph`.
pub fn router(graph: Graph, topology: &Topology) -> Result<Arc<Router>, String> {
    let deployments = topology
        .deployments
        .iter()
        .map(Deployment::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Router::new(graph, deployments)))
}

/// Serves every protocol on its listener until `shutdown` resolves; then lets the requests in
/// flight finish and returns.
pub async fn serve(
    listeners: Listeners,
    router: Arc<Router>,
    prefetch: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let shutdown = shutdown.boxed().shared();
    let mut servers = vec![];
    let mut web_app = None;
    for (protocol, listener) in listeners.bound {
        let stop = shutdown.clone();
        let server = match protocol {
            Protocol::Grpc => {
                let gateway = grpc::GrpcGateway::new(router.clone(), prefetch);
                async move {
                    grpc::serve(gateway, listener, stop)
                        .await
                        .map_err(|e| format!("gRPC gateway failed: {e}"))
                }
                .boxed()
            }
            Protocol::Http | Protocol::Websocket => {
                let app = match &web_app {
                    Some(app) => app,
                    None => web_app.insert(http::app(router.clone(), prefetch).await),
                }
                .clone();
                async move {
                    http::serve(app, listener, stop)
                        .await
                        .map_err(|e| format!("{} gateway failed: {e}", protocol.as_str()))
                }
                .boxed()
            }
        };
        servers.push(tokio::spawn(server));
    }
    for server in servers {
        server
            .await
            .map_err(|e| format!("gateway task failed: {e}"))??;
    }
    Ok(())
}
