//! A running Flow: its executor processes and its gateway, started together and stopped
//! together. This is the one place that joins `orchestrate` (processes) and `gateway`
//! (requests); the CLI's `jina flow` and the library's Flow API both start Flows through it.
//!
//! The gateway runs inside the Flow's process (no extra hop, one process less to watch); the
//! executors are child processes. Stopping is explicit ([`RunningFlow::stop`]) and also
//! happens, without waiting, when the value is dropped.

use crate::flow::{CheckedFlow, Protocol};
use crate::gateway::{self, Listeners};
use crate::orchestrate::{self, Processes};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct RunningFlow {
    /// `(protocol, port)` the gateway serves.
    pub ports: Vec<(Protocol, u16)>,
    pub host: String,
    /// How long starting took, until every executor was ready.
    pub ready_in: Duration,
    processes: Processes,
    stop_gateway: Option<oneshot::Sender<()>>,
    gateway: Option<JoinHandle<Result<(), String>>>,
}

impl RunningFlow {
    /// Binds the gateway's ports, starts every executor and waits until all are ready, then
    /// serves. Any failure stops whatever had started.
    pub async fn start(flow: &CheckedFlow) -> Result<RunningFlow, String> {
        let started = Instant::now();
        let listeners = Listeners::bind(&flow.spec.gateway).await?;
        let ports = listeners.ports();
        let executors = orchestrate::start(flow).await?;
        let router = gateway::router(flow.graph.clone(), &executors.topology)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let serving = gateway::serve(listeners, router, flow.spec.gateway.prefetch, async move {
            let _ = stop_rx.await;
        });
        Ok(RunningFlow {
            ports,
            host: flow.spec.gateway.host.clone(),
            ready_in: started.elapsed(),
            processes: executors.processes,
            stop_gateway: Some(stop_tx),
            gateway: Some(tokio::spawn(serving)),
        })
    }

    /// Process ids of the executor processes.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.pids()
    }

    /// The reference's "Flow is ready to use!" block.
    pub fn ready_message(&self) -> String {
        let mut text = String::from("🎉 Flow is ready to use!");
        for (protocol, port) in &self.ports {
            text.push_str(&format!(
                "\n\t🔗 Protocol: \t\t{}\n\t🏠 Local access:\t{}:{port}",
                protocol.as_str().to_uppercase(),
                self.host
            ));
        }
        text
    }

    /// Stops the gateway (letting requests in flight finish), then every executor.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.stop_gateway.take() {
            let _ = tx.send(());
        }
        let served = match self.gateway.take() {
            Some(task) => task
                .await
                .map_err(|e| format!("gateway task failed: {e}"))?,
            None => Ok(()),
        };
        self.processes.stop().await;
        served
    }

    /// Resolves if the gateway stops on its own (a server error).
    pub async fn gateway_failed(&mut self) -> String {
        let Some(task) = self.gateway.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.gateway = None;
        match outcome {
            Ok(Ok(())) => "the gateway stopped".into(),
            Ok(Err(e)) => e,
            Err(e) => format!("gateway task failed: {e}"),
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
