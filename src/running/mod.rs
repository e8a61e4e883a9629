//! A running Flow: its executor processes and its gateway, started together and stopped
//! together. This is the one place that joins `orchestrate` (processes) and `gateway`
//! (requests); the CLI's `jina flow` and the library's Flow API both start Flows through it.
//!
//! The gateway runs inside the Flow's process (no extra hop, one process less to watch); the
//! executors are child processes. Stopping is explicit ([`RunningFlow::stop`]) and also
//! happens, without waiting, when the value is dropped.
//!
//! For library users this is the reference's Flow inside `with`: `Flow::start` consumes the
//! [`Flow`] and returns a [`RunningFlow`], which can post but has no `add`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use jina::flow::{Exec, Flow};
//! let running = Flow::new().add(Exec::new()).start().await?;
//! running.post("/", jina::Document::from_text("hi"), Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! A running Flow cannot change its construction (the reference's runtime rule, here a
//! compile error):
//!
//! ```compile_fail,E0599
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use jina::flow::{Exec, Flow};
//! let running = Flow::new().add(Exec::new()).start().await?;
//! let running = running.add(Exec::new()); // error: no method named `add` on `RunningFlow`
//! # Ok(()) }
//! ```

pub(crate) mod control;
mod reload;

pub use reload::{FileWatch, ReloadError, Reloaded, Scaled};

use crate::client::{Client, ClientError, Inputs, PostOptions, PostSummary, Response};
use crate::flow::{CheckedFlow, Flow, FlowErrors, Protocol, TlsFiles};
use crate::gateway::{self, GatewayError, Listeners};
use crate::orchestrate::{self, InProcessServers, Processes, StartError};
use crate::shutdown::termination;
use crate::tls::ClientTls;
use futures::stream::BoxStream;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why a Flow did not start.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The Flow itself is wrong: every problem, one per line.
    #[error(transparent)]
    Invalid(#[from] FlowErrors),
    /// A TLS file could not be read, or no certificates to trust were found.
    #[error("{context}: {error}")]
    Tls {
        context: &'static str,
        error: crate::tls::TlsError,
    },
    /// An executor did not start (its config, its port, its process).
    #[error(transparent)]
    Executors(#[from] StartError),
    /// The gateway did not start (its port, an executor's address).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("cannot start an async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl Flow {
    /// Checks the Flow, starts every executor and the gateway, and waits until all are ready
    /// (the reference's `with f:`). The returned handle stops everything when dropped.
    /// Logs go to stderr in Jina's shape unless the program installed its own subscriber.
    pub async fn start(self) -> Result<RunningFlow, FlowError> {
        crate::logging::init("Flow");
        let checked = self.check()?;
        let mut running = RunningFlow::start(&checked).await?;
        tracing::info!(target: "success", "{}", running.ready_message());
        let (protocol, port) = running.ports[0];
        // Over TLS, the Flow's own client trusts the gateway's certificate (self-signed, or the
        // CA's chain in the same file).
        let tls =
            match &running.tls {
                Some(files) => Some(ClientTls::new(Some(&files.certfile)).map_err(|source| {
                    FlowError::Tls {
                        context: "the gateway's certfile",
                        error: source,
                    }
                })?),
                None => None,
            };
        let host = if tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        running.client = Some(
            Client::connect_tls(
                protocol,
                host,
                port,
                crate::client::CONNECT_TIMEOUT,
                tls.as_ref(),
            )
            .await?,
        );
        Ok(running)
    }

    /// [`Flow::start`] for code without an async runtime: the handle owns one.
    pub fn start_blocking(self) -> Result<BlockingFlow, FlowError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(FlowError::Runtime)?;
        let flow = runtime.block_on(self.start())?;
        Ok(BlockingFlow {
            flow: Some(flow),
            runtime,
        })
    }
}

/// This machine's address on its private network: the source address the kernel would pick
/// for an outside destination. Connecting a UDP socket sends nothing.
fn private_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A started Flow: its executors, its gateway, and a client connected to it.
pub struct RunningFlow {
    /// `(protocol, port)` the gateway serves.
    pub ports: Vec<(Protocol, u16)>,
    pub host: String,
    /// The gateway's certificate, when it serves TLS.
    pub tls: Option<TlsFiles>,
    /// How long starting took, until every executor was ready.
    pub ready_in: Duration,
    processes: Processes,
    /// Whether some executors run in containers (see [`crate::container::remove_own`]).
    containers: bool,
    /// Copies started through remote hosts' daemons.
    remote: Vec<crate::daemon::client::RemoteCopy>,
    /// Where `/metrics` is served, by whom (`gateway`, `enc/rep-0`), with monitoring on.
    pub metrics: Vec<(String, String)>,
    stop_metrics: Option<oneshot::Sender<()>>,
    in_process: InProcessServers,
    /// What a reload needs: the Flow as it runs, the router in use, and how to connect.
    current: reload::Current,
    stop_gateway: Option<oneshot::Sender<()>>,
    gateway: Option<JoinHandle<Result<(), GatewayError>>>,
    /// Set by `Flow::start` for library use; the CLI does not need one.
    client: Option<Client>,
}

impl RunningFlow {
    /// Binds the gateway's ports, starts every executor and waits until all are ready, then
    /// serves. Any failure stops whatever had started.
    pub async fn start(flow: &CheckedFlow) -> Result<RunningFlow, FlowError> {
        let started = Instant::now();
        let spec = &flow.spec;
        // TLS files are read before anything starts: a bad one is an error, never plain text.
        let settings =
            gateway::Settings::from_spec(&spec.gateway).map_err(|source| FlowError::Tls {
                context: "gateway",
                error: source,
            })?;
        let client_tls = match spec.executors.iter().any(|e| e.tls) {
            true => Some(ClientTls::new(None).map_err(|source| FlowError::Tls {
                context: "tls: true",
                error: source,
            })?),
            false => None,
        };
        let listeners = Listeners::bind(&spec.gateway).await?;
        let ports = listeners.ports();
        let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
        let g = &spec.gateway;
        let monitoring =
            crate::metrics::serve_gateway(g.monitoring, &g.host, g.port_monitoring, async move {
                let _ = metrics_stopped.await;
            })
            .await
            .map_err(|error| StartError::Listen {
                executor: "gateway (port_monitoring)".into(),
                error,
            })?;
        let executors = orchestrate::start(flow, client_tls.as_ref()).await?;
        let policies: Vec<_> = (0..spec.executors.len())
            .map(|i| spec.call_policy(i))
            .collect();
        let gateway_metrics = monitoring.as_ref().map(|m| m.metrics.clone());
        let router = gateway::router(
            flow.graph.clone(),
            &executors.topology,
            &policies,
            client_tls.as_ref(),
            gateway_metrics.clone(),
        )?;
        let routing = gateway::Routing::new(router);
        let current = reload::Current::new(
            flow,
            executors.topology.deployments.clone(),
            routing.clone(),
            client_tls,
            gateway_metrics,
        );
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let serving = gateway::serve(listeners, routing, settings, async move {
            let _ = stop_rx.await;
        });
        Ok(RunningFlow {
            ports,
            tls: spec.gateway.tls.clone(),
            host: spec.gateway.host.clone(),
            ready_in: started.elapsed(),
            processes: executors.processes,
            in_process: executors.in_process,
            containers: executors.containers,
            remote: executors.remote,
            metrics: monitoring
                .map(|m| {
                    (
                        "gateway".to_string(),
                        format!("{}:{}", spec.gateway.host, m.port),
                    )
                })
                .into_iter()
                .chain(executors.metrics)
                .collect(),
            stop_metrics: Some(stop_metrics),
            current,
            stop_gateway: Some(stop_tx),
            gateway: Some(tokio::spawn(serving)),
            client: None,
        })
    }

    fn client(&self) -> Result<&Client, ClientError> {
        self.client
            .as_ref()
            .ok_or_else(|| ClientError::Connect("this Flow was started without a client".into()))
    }

    /// Posts `inputs` to endpoint `on` (the reference's `f.post`), with every client option.
    pub async fn post(
        &self,
        on: &str,
        inputs: impl Into<Inputs>,
        options: PostOptions,
    ) -> Result<PostSummary, ClientError> {
        self.client()?.post(on, inputs, options).await
    }

    /// The answers as an async stream (the reference's AsyncFlow `async for resp in f.post()`).
    pub fn post_stream(
        &self,
        on: &str,
        inputs: impl Into<Inputs>,
        options: &PostOptions,
    ) -> BoxStream<'static, Result<Response, ClientError>> {
        match self.client() {
            Ok(c) => c.post_stream(on, inputs, options),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    crate::crud_shortcuts!(async);

    /// Serves until Ctrl-C or SIGTERM (the reference's `f.block()`).
    pub async fn block(&self) {
        termination().await
    }

    /// This Flow's record for `jina flows` and clients without an address (`local_flows`).
    pub(crate) fn record(
        &self,
        name: String,
        yaml: Option<&std::path::Path>,
        executors: usize,
    ) -> crate::local_flows::FlowRecord {
        crate::local_flows::FlowRecord::of_this_process(
            name,
            &self.host,
            &self.ports,
            yaml,
            executors,
            self.tls.as_ref().map(|t| t.certfile.as_path()),
        )
    }

    /// The port of the gateway's first protocol.
    pub fn port(&self) -> u16 {
        self.ports[0].1
    }

    /// The reference's "Flow is ready to use!" block.
    pub fn ready_message(&self) -> String {
        // The reference also shows the address on the private network when the gateway listens
        // on every interface. (Its public address needs an outside service; we ask none.)
        let private = self
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
            .then(private_address)
            .flatten();
        let mut text = String::from("🎉 Flow is ready to use!");
        for (protocol, port) in &self.ports {
            text.push_str(&format!(
                "\n\t🔗 Protocol: \t\t{}\n\t🏠 Local access:\t{}:{port}",
                protocol.as_str().to_uppercase(),
                self.host
            ));
            if let Some(ip) = private {
                text.push_str(&format!("\n\t🔒 Private network:\t{ip}:{port}"));
            }
        }
        for (who, address) in &self.metrics {
            text.push_str(&format!(
                "\n\t📈 Prometheus ({who}):\thttp://{address}/metrics"
            ));
        }
        text
    }

    /// Stops the gateway (letting requests in flight finish), then every executor.
    pub async fn stop(mut self) -> Result<(), GatewayError> {
        if let Some(tx) = self.stop_gateway.take() {
            let _ = tx.send(());
        }
        let served = match self.gateway.take() {
            Some(task) => task.await?,
            None => Ok(()),
        };
        self.processes.stop().await;
        self.in_process.stop().await;
        if let Some(tx) = self.stop_metrics.take() {
            let _ = tx.send(());
        }
        if self.containers {
            crate::container::remove_own().await;
        }
        crate::orchestrate::stop_remote(std::mem::take(&mut self.remote)).await;
        served
    }

    /// Resolves if the gateway stops on its own (a server error).
    pub async fn gateway_failed(&mut self) -> GatewayError {
        let Some(task) = self.gateway.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.gateway = None;
        match outcome {
            Ok(Ok(())) => GatewayError::Stopped,
            Ok(Err(e)) => e,
            Err(e) => GatewayError::Task(e),
        }
    }
}

impl Drop for RunningFlow {
    fn drop(&mut self) {
        if let Some(task) = &self.gateway {
            task.abort();
        }
        // `processes` kills its children when dropped.
    }
}

/// A running Flow for code without an async runtime (the reference's synchronous Flow).
pub struct BlockingFlow {
    // Declared first: dropped (and stopped) while the runtime still exists.
    flow: Option<RunningFlow>,
    runtime: tokio::runtime::Runtime,
}

impl BlockingFlow {
    fn flow(&self) -> &RunningFlow {
        self.flow.as_ref().expect("present until close")
    }

    /// Posts `inputs` to `on` and waits for every answer (the reference's `f.post`).
    pub fn post(
        &self,
        on: &str,
        inputs: impl Into<Inputs>,
        options: PostOptions,
    ) -> Result<PostSummary, ClientError> {
        self.runtime.block_on(self.flow().post(on, inputs, options))
    }

    crate::crud_shortcuts!(blocking);

    /// Serves until Ctrl-C or SIGTERM.
    pub fn block(&self) {
        // Called inside the runtime: installing the signal handlers needs its reactor.
        self.runtime.block_on(async { termination().await })
    }

    /// The port of the gateway's first protocol.
    pub fn port(&self) -> u16 {
        self.flow().port()
    }

    /// Stops the gateway and every executor, waiting for requests in flight.
    pub fn close(mut self) -> Result<(), GatewayError> {
        let flow = self.flow.take().expect("present until close");
        self.runtime.block_on(flow.stop())
    }
}

impl Drop for BlockingFlow {
    fn drop(&mut self) {
        if let Some(flow) = self.flow.take() {
            let _ = self.runtime.block_on(flow.stop());
        }
    }
}
