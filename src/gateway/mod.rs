//! The gateway: where clients' requests enter a Flow and its answers leave.
//!
//! It owns the client-facing servers (gRPC in `grpc`, REST and WebSocket in `http`, all at
//! once, one port per protocol), the routing of a request through the graph (`router`) and the
//! spreading of it over an executor's copies (`deployment`). It does not start or stop executor
//! processes (that is `orchestrate`) and does not read YAML (that is `flow`): it is given a
//! checked graph and the executors' addresses.

mod deployment;
mod grpc;
mod hosts;
mod http;
mod parameters;
mod ratelimit;
mod router;

pub(crate) use deployment::Deployment;
pub(crate) use router::{Router, Routing};

use hosts::AllowedHosts;
pub(crate) use hosts::check_pattern as check_host_pattern;

use crate::flow::{CallPolicy, GatewaySpec, Graph, Protocol};
use crate::tls::{ClientTls, ServerTls};
use crate::topology::Topology;
use futures::FutureExt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What can go wrong with the gateway, as a library user can match on it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("port {port} ({protocol}) is busy (address in use)")]
    PortBusy { port: u16, protocol: &'static str },
    /// One port named for two protocols: the second could never bind it.
    #[error(
        "port {port} is given twice (for {first} and {second}); give each protocol its own port"
    )]
    PortTwice {
        port: u16,
        first: &'static str,
        second: &'static str,
    },
    #[error("cannot listen on {address} ({protocol}): {error}")]
    Listen {
        address: String,
        protocol: &'static str,
        error: std::io::Error,
    },
    #[error("{executor}: tls: true, but no TLS client")]
    NoTlsClient { executor: String },
    #[error("{executor}: no executor address")]
    NoAddress { executor: String },
    #[error("{executor}: {why}")]
    BadAddress { executor: String, why: String },
    /// A server of one protocol stopped with an error.
    #[error("{protocol} gateway failed: {why}")]
    Server { protocol: &'static str, why: String },
    #[error("gateway task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// It stopped serving without being asked to.
    #[error("the gateway stopped")]
    Stopped,
}

/// The gateway's sockets, bound before any executor starts so that a busy port fails the Flow
/// at once.
pub(crate) struct Listeners {
    pub bound: Vec<(Protocol, TcpListener)>,
}

impl Listeners {
    /// Binds one port per protocol (the given ones in order, free ones for the rest).
    pub(crate) async fn bind(spec: &GatewaySpec) -> Result<Listeners, GatewayError> {
        let mut bound = vec![];
        for (i, protocol) in spec.protocols.iter().enumerate() {
            let port = spec.ports.get(i).copied().unwrap_or(0);
            let earlier = spec.ports[..i.min(spec.ports.len())]
                .iter()
                .position(|p| *p == port);
            if let Some(j) = earlier.filter(|_| port != 0) {
                return Err(GatewayError::PortTwice {
                    port,
                    first: spec.protocols[j].as_str(),
                    second: protocol.as_str(),
                });
            }
            let listener = TcpListener::bind((spec.host.as_str(), port))
                .await
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::AddrInUse => GatewayError::PortBusy {
                        port,
                        protocol: protocol.as_str(),
                    },
                    _ => GatewayError::Listen {
                        address: format!("{}:{port}", spec.host),
                        protocol: protocol.as_str(),
                        error: source,
                    },
                })?;
            bound.push((*protocol, listener));
        }
        Ok(Listeners { bound })
    }

    /// `(protocol, port)` of each listener.
    pub(crate) fn ports(&self) -> Vec<(Protocol, u16)> {
        self.bound
            .iter()
            .map(|(p, l)| (*p, l.local_addr().map(|a| a.port()).unwrap_or(0)))
            .collect()
    }
}

/// Connects to every executor of `topology` and builds the router over `graph`. Each
/// executor is called after its policy (`policies[i]` for deployment `i`); `client_tls` is whom
/// to trust for external executors with `tls: true`.
/// With `metrics`, every request and every call to an executor is recorded there.
pub(crate) fn router(
    graph: Graph,
    topology: &Topology,
    policies: &[CallPolicy],
    client_tls: Option<&ClientTls>,
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
) -> Result<Arc<Router>, GatewayError> {
    let deployments = topology
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| connect(d, policies.get(i).cloned().unwrap_or_default(), client_tls))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Router::new(graph, deployments, metrics)))
}

/// Connects to one executor's copies, called after `policy`.
pub(crate) fn connect(
    addresses: &crate::topology::DeploymentAddresses,
    policy: CallPolicy,
    client_tls: Option<&ClientTls>,
) -> Result<Arc<Deployment>, GatewayError> {
    Deployment::new(addresses, policy, client_tls).map(Arc::new)
}

/// [`connect`], keeping `before`'s connections to the copies it shares with `addresses`.
pub(crate) fn reconnect(
    addresses: &crate::topology::DeploymentAddresses,
    policy: CallPolicy,
    client_tls: Option<&ClientTls>,
    before: &Deployment,
) -> Result<Arc<Deployment>, GatewayError> {
    Deployment::reusing(addresses, policy, client_tls, Some(before)).map(Arc::new)
}

/// How the gateway serves, whatever the protocol: the settings of the Flow's `with:` that are
/// about clients, with the TLS files already read.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Requests in flight per client stream.
    pub prefetch: usize,
    /// The largest request taken, in bytes, on every face.
    pub max_request_bytes: usize,
    /// Documents per request, and the memory of the requests in flight: one for the whole
    /// gateway, every face alike.
    pub admission: crate::request::Admission,
    /// Let pages of other origins call the REST face (Jina's `cors`).
    pub cors: bool,
    /// The names the REST and WebSocket faces answer to.
    pub allowed_hosts: AllowedHosts,
    pub tls: Option<ServerTls>,
}

impl Settings {
    /// The settings `spec` describes; the TLS files are read here, and a problem with them is
    /// an error (never a plain-text fallback).
    pub(crate) fn from_spec(spec: &GatewaySpec) -> Result<Settings, crate::tls::TlsError> {
        Ok(Settings {
            prefetch: spec.prefetch.max(1),
            max_request_bytes: spec.max_request_bytes,
            admission: crate::request::Admission::new(
                spec.max_request_docs,
                spec.max_in_flight_bytes,
            ),
            cors: spec.cors,
            allowed_hosts: AllowedHosts::new(&spec.allowed_hosts, &spec.host),
            tls: spec
                .tls
                .as_ref()
                .map(|f| ServerTls::load(&f.certfile, &f.keyfile))
                .transpose()?,
        })
    }
}

/// Serves every protocol on its listener until `shutdown` resolves; then lets the requests in
/// flight finish and returns. The gRPC health check says NOT_SERVING while a copy is down.
pub(crate) async fn serve(
    listeners: Listeners,
    routing: Routing,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let shutdown = shutdown.boxed().shared();
    let (serving_tx, serving) = tokio::sync::watch::channel(true);
    // The health of the router in use: watched anew each time a reload swaps it.
    let mut swaps = routing.subscribe();
    let watch = tokio::spawn(async move {
        loop {
            // Its copies' health only: holding the router would keep a reload waiting for it.
            let liveness = swaps.borrow_and_update().liveness();
            let serving_tx = serving_tx.clone();
            let up_changes = crate::health::all_up_changes(liveness, move |up| {
                serving_tx.send_replace(up);
            });
            tokio::select! {
                _ = up_changes => return,
                swapped = swaps.changed() => if swapped.is_err() { return },
            }
        }
    });
    let mut servers = vec![];
    let mut web_app = None;
    for (protocol, listener) in listeners.bound {
        let stop = shutdown.clone();
        let server = match protocol {
            Protocol::Grpc => {
                let gateway = grpc::GrpcGateway::new(routing.clone(), &settings);
                let options = crate::grpc::ServeOptions {
                    tls: settings.tls.clone(),
                    serving: Some(serving.clone()),
                    gather_writes: true,
                };
                async move {
                    grpc::serve(gateway, listener, options, stop)
                        .await
                        .map_err(|e| GatewayError::Server {
                            protocol: protocol.as_str(),
                            why: e.to_string(),
                        })
                }
                .boxed()
            }
            Protocol::Http | Protocol::Websocket => {
                let app = match &web_app {
                    Some(app) => app,
                    None => web_app.insert(http::app(routing.clone(), &settings).await),
                }
                .clone();
                let tls = settings.tls.clone();
                async move {
                    http::serve(app, listener, tls, stop)
                        .await
                        .map_err(|e| GatewayError::Server {
                            protocol: protocol.as_str(),
                            why: e.to_string(),
                        })
                }
                .boxed()
            }
        };
        servers.push(tokio::spawn(server));
    }
    let mut outcome = Ok(());
    for server in servers {
        let served = server.await.map_err(GatewayError::from).and_then(|r| r);
        outcome = outcome.and(served);
    }
    watch.abort();
    outcome
}
