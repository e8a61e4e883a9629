//! Changing a running Flow without dropping a request (`jina flow --reload`, SIGHUP,
//! [`RunningFlow::reload`]).
//!
//! A reload compares the new Flow with the one running, executor by executor (by name): its
//! entry, what its `uses` resolved to, and the bytes of the files it is made of (its YAML, its
//! `py_modules`). Then:
//! - an unchanged executor keeps its running copies and the gateway's connections to them;
//! - a changed or added one gets new copies, started beside the old ones and waited for;
//! - the gateway's router (graph and executors) is swapped whole, between requests: a request
//!   runs to its end on the router it started on;
//! - once the old router's last request is answered, the copies of changed and removed
//!   executors are stopped.
//!
//! Nothing is stopped before its replacement serves, so no request fails or waits for a start,
//! except for an executor that cannot run twice (a workspace the Flow gives it, fixed ports):
//! it is handed over, its old copies closed before the new ones open, while requests wait at
//! the gateway.
//! What a reload cannot change in place (the gateway's sockets and settings, an executor on a
//! remote host) is refused with the reason, and the Flow keeps serving as it was.
//!
//! This module decides what changed and in which order things happen; starting copies is
//! `orchestrate`'s and routing is `gateway`'s.

use super::RunningFlow;
use crate::flow::{CheckedFlow, ServedEntry};
use crate::gateway::{self, GatewayError, Routing};
use crate::orchestrate::{self, StartError};
use crate::tls::ClientTls;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a reload waits for the requests in flight on the old router before it stops the
/// copies that router used.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Why a reload changed nothing (the Flow keeps serving as it was).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway's settings changed: its sockets (port, protocol, host, TLS) and its limits
    /// belong to the running gateway.
    #[error(
        "the gateway's settings changed (`with:` / `gateway:`: {fields}); a reload keeps the gateway as it is: restart the Flow to change them"
    )]
    GatewayChanged { fields: String },
    /// An executor on a remote host changed: its copies are its daemon's.
    #[error(
        "executor {executor} runs on a remote host (`host:`); a reload does not change it: restart the Flow"
    )]
    RemoteChanged { executor: String },
    /// The new copies did not start; the old ones still serve.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The gateway could not connect to the new copies.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// What a reload did, executor by executor.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Kept running as they were.
    pub kept: Vec<String>,
    /// Replaced by new copies.
    pub replaced: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Reloaded {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.replaced.is_empty() && self.added.is_empty() && self.removed.is_empty())
    }
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        for (what, names) in [
            ("replaced", &self.replaced),
            ("added", &self.added),
            ("removed", &self.removed),
            ("kept", &self.kept),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        match parts.is_empty() {
            true => f.write_str("no executors"),
            false => f.write_str(&parts.join("; ")),
        }
    }
}

/// The running Flow as a reload sees it.
pub(crate) struct Current {
    flow: CheckedFlow,
    /// The content of each executor's files, by index, when its copies started.
    fingerprints: Vec<u64>,
    routing: Routing,
    client_tls: Option<ClientTls>,
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
}

impl Current {
    pub(crate) fn new(
        flow: &CheckedFlow,
        routing: Routing,
        client_tls: Option<ClientTls>,
        metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    ) -> Current {
        Current {
            fingerprints: flow.served.iter().map(fingerprint).collect(),
            flow: flow.clone(),
            routing,
            client_tls,
            metrics,
        }
    }
}

/// The files a Flow is made of besides its own YAML (executor YAML, `py_modules`): what
/// `--reload` watches.
pub(crate) fn files_of(flow: &CheckedFlow) -> Vec<PathBuf> {
    let files: BTreeSet<PathBuf> = flow.served.iter().flat_map(ServedEntry::files).collect();
    files.into_iter().collect()
}

/// A digest of the bytes of an executor's files.
fn fingerprint(served: &ServedEntry) -> u64 {
    digest(&served.files())
}

/// A digest of these files' names and bytes (a missing file counts as such).
fn digest(files: &[PathBuf]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(file).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// The gateway settings that differ between two Flows, by their YAML names.
fn gateway_changes(old: &crate::flow::GatewaySpec, new: &crate::flow::GatewaySpec) -> String {
    let (a, b) = (old, new);
    let differs = [
        ("name", a.name != b.name),
        ("protocol", a.protocols != b.protocols),
        ("port", a.ports != b.ports),
        ("host", a.host != b.host),
        ("prefetch", a.prefetch != b.prefetch),
        ("timeout_ready", a.timeout_ready != b.timeout_ready),
        ("env", a.env != b.env),
        ("timeout_send", a.timeout_send != b.timeout_send),
        (
            "max_request_bytes",
            a.max_request_bytes != b.max_request_bytes,
        ),
        ("max_request_docs", a.max_request_docs != b.max_request_docs),
        (
            "max_in_flight_bytes",
            a.max_in_flight_bytes != b.max_in_flight_bytes,
        ),
        ("cors", a.cors != b.cors),
        ("allowed_hosts", a.allowed_hosts != b.allowed_hosts),
        ("ssl_certfile / ssl_keyfile", a.tls != b.tls),
        ("monitoring", a.monitoring != b.monitoring),
        ("port_monitoring", a.port_monitoring != b.port_monitoring),
        ("tracing", a.tracing != b.tracing),
        ("workspace", a.workspace != b.workspace),
    ];
    let named: Vec<&str> = differs
        .iter()
        .filter(|(_, d)| *d)
        .map(|(n, _)| *n)
        .collect();
    match named.is_empty() {
        true => "settings".into(),
        false => named.join(", "),
    }
}

/// What a reload changes, executor by executor, before anything is touched.
struct Plan {
    done: Reloaded,
    /// For each executor of the new Flow: the index of its unchanged twin in the old one.
    kept: Vec<Option<usize>>,
    /// The executors of the new Flow that start new copies, by index.
    starting: Vec<usize>,
    fingerprints: Vec<u64>,
}

impl Plan {
    /// Compares `flow` with `old` (whose files had `fingerprints`); the executors `restart`
    /// names count as changed.
    fn new(
        old: &CheckedFlow,
        fingerprints: &[u64],
        flow: &CheckedFlow,
        restart: &BTreeSet<String>,
    ) -> Result<Plan, ReloadError> {
        let old_index: HashMap<String, usize> = (0..old.spec.executors.len())
            .map(|i| (old.spec.name_of(i), i))
            .collect();
        let mut plan = Plan {
            done: Reloaded::default(),
            kept: vec![],
            starting: vec![],
            fingerprints: flow.served.iter().map(fingerprint).collect(),
        };
        for (i, exec) in flow.spec.executors.iter().enumerate() {
            let name = flow.spec.name_of(i);
            let twin = old_index.get(&name).copied();
            let unchanged = twin.filter(|&j| {
                old.spec.executors[j] == *exec
                    && old.served[j] == flow.served[i]
                    && fingerprints[j] == plan.fingerprints[i]
                    && !restart.contains(&name)
            });
            let remote =
                exec.is_remote() || twin.is_some_and(|j| old.spec.executors[j].is_remote());
            if unchanged.is_none() && remote {
                return Err(ReloadError::RemoteChanged { executor: name });
            }
            match (unchanged, twin) {
                (Some(_), _) => plan.done.kept.push(name),
                (None, Some(_)) => plan.done.replaced.push(name),
                (None, None) => plan.done.added.push(name),
            }
            if unchanged.is_none() {
                plan.starting.push(i);
            }
            plan.kept.push(unchanged);
        }
        let new_names: BTreeSet<String> = (0..flow.spec.executors.len())
            .map(|i| flow.spec.name_of(i))
            .collect();
        for (name, &j) in &old_index {
            if !new_names.contains(name) {
                if old.spec.executors[j].is_remote() {
                    return Err(ReloadError::RemoteChanged {
                        executor: name.clone(),
                    });
                }
                plan.done.removed.push(name.clone());
            }
        }
        plan.done.removed.sort();
        Ok(plan)
    }

    /// A Flow of just the executors that start (their names kept).
    fn part(&self, flow: &CheckedFlow) -> CheckedFlow {
        let mut part = flow.clone();
        part.spec.executors = self
            .starting
            .iter()
            .map(|&i| {
                let mut exec = flow.spec.executors[i].clone();
                exec.name = Some(flow.spec.name_of(i));
                exec
            })
            .collect();
        part.served = self
            .starting
            .iter()
            .map(|&i| flow.served[i].clone())
            .collect();
        part
    }

    /// The new router: `before`'s connections to the executors kept, new ones to those
    /// `started`.
    fn router(
        &self,
        flow: &CheckedFlow,
        before: &gateway::Router,
        started: &crate::topology::Topology,
        current: &Current,
    ) -> Result<Arc<gateway::Router>, GatewayError> {
        let mut new_addresses = started.deployments.iter();
        let mut deployments = vec![];
        for (i, twin) in self.kept.iter().enumerate() {
            deployments.push(match twin {
                Some(j) => before.deployment(*j),
                None => gateway::connect(
                    new_addresses.next().expect("one per started executor"),
                    flow.spec.call_policy(i),
                    current.client_tls.as_ref(),
                )?,
            });
        }
        Ok(Arc::new(gateway::Router::new(
            flow.graph.clone(),
            deployments,
            current.metrics.clone(),
        )))
    }
}

/// Whether executor `name` of `flow` cannot run twice at once: its copies keep a workspace
/// the Flow gives them (an indexer's database opens for one process only) or listen on fixed
/// ports.
fn needs_handover(flow: &CheckedFlow, name: &str) -> bool {
    (0..flow.spec.executors.len())
        .find(|&i| flow.spec.name_of(i) == name)
        .is_some_and(|i| {
            let exec = &flow.spec.executors[i];
            exec.workspace.is_some()
                || flow.spec.gateway.workspace.is_some()
                || exec.port_in.is_some()
                || exec.port_monitoring.is_some()
        })
}

impl RunningFlow {
    /// Changes this Flow into `flow` while it serves (see the module's doc): unchanged
    /// executors keep their copies, changed and added ones start new copies, the router is
    /// swapped between requests, and the copies no longer used stop once their requests are
    /// answered. On an error the Flow runs as it was.
    pub async fn reload(&mut self, flow: &CheckedFlow) -> Result<Reloaded, ReloadError> {
        self.change_to(flow, &BTreeSet::new()).await
    }

    /// [`RunningFlow::reload`], with the executors `restart` names started anew even when
    /// unchanged (a handover whose new copies failed: the old ones are started again).
    fn change_to<'a>(
        &'a mut self,
        flow: &'a CheckedFlow,
        restart: &'a BTreeSet<String>,
    ) -> futures::future::BoxFuture<'a, Result<Reloaded, ReloadError>> {
        Box::pin(async move {
            let old = &self.current.flow;
            if old.spec.gateway != flow.spec.gateway {
                return Err(ReloadError::GatewayChanged {
                    fields: gateway_changes(&old.spec.gateway, &flow.spec.gateway),
                });
            }
            let plan = Plan::new(old, &self.current.fingerprints, flow, restart)?;
            if !plan.done.changed() && restart.is_empty() && old.graph == flow.graph {
                return Ok(plan.done);
            }
            // Executors that cannot run twice: their old copies close before the new ones
            // open, and every request arriving meanwhile waits.
            let handover: BTreeSet<String> = plan
                .done
                .replaced
                .iter()
                .filter(|name| !restart.contains(*name) && needs_handover(old, name))
                .cloned()
                .collect();
            let routing = self.current.routing.clone();
            if !handover.is_empty() {
                routing.pause();
                drain(routing.peek(), 2).await;
                let handed = |e: &str| handover.contains(e);
                self.processes.stop_where(handed).await;
                self.in_process.stop_where(handed).await;
            }
            let started =
                orchestrate::start(&plan.part(flow), self.current.client_tls.as_ref()).await;
            let switched = started.map_err(ReloadError::from).and_then(|started| {
                let router =
                    plan.router(flow, &routing.peek(), &started.topology, &self.current)?;
                Ok((router, started))
            });
            let (router, started) = match switched {
                Ok(switched) => switched,
                Err(e) if !handover.is_empty() => {
                    // Their old copies are gone: start them again, as they were.
                    let before = self.current.flow.clone();
                    if let Err(again) = self.change_to(&before, &handover).await {
                        tracing::error!(
                            "reload: {} could not start again: {again}",
                            handover.iter().cloned().collect::<Vec<_>>().join(", ")
                        );
                    }
                    routing.resume();
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let old_router = routing.swap(router);
            routing.resume();
            drain(old_router, 1).await;

            // The copies no longer routed to stop; the new ones are this Flow's from now on.
            let stopping: BTreeSet<String> = plan
                .done
                .replaced
                .iter()
                .chain(&plan.done.removed)
                .filter(|name| !handover.contains(*name))
                .cloned()
                .collect();
            let stops = |executor: &str| stopping.contains(executor);
            self.processes.stop_where(stops).await;
            self.in_process.stop_where(stops).await;
            let gone = |who: &str| {
                plan.done
                    .replaced
                    .iter()
                    .chain(&plan.done.removed)
                    .chain(restart)
                    .any(|s| who == s || who.starts_with(&format!("{s}/")))
            };
            self.metrics.retain(|(who, _)| !gone(who));
            self.metrics.extend(started.metrics);
            self.processes.adopt(started.processes);
            self.in_process.adopt(started.in_process);
            self.containers |= started.containers;
            self.current.flow = flow.clone();
            self.current.fingerprints = plan.fingerprints;
            Ok(plan.done)
        })
    }
}

/// Waits until no request runs on `router` any more (each holds it to its end; `holders`
/// counts the others that hold it, the routing itself while it is in use), or until
/// [`DRAIN_LIMIT`].
async fn drain(router: Arc<gateway::Router>, holders: usize) {
    let since = Instant::now();
    while Arc::strong_count(&router) > holders {
        if since.elapsed() > DRAIN_LIMIT {
            tracing::warn!(
                "reload: requests still in flight after {DRAIN_LIMIT:?}; stopping the old copies anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The files of a Flow, watched by polling their bytes (`--reload`): a plain poll works on
/// every filesystem, container mount and editor's way of saving.
pub struct FileWatch {
    files: Vec<PathBuf>,
    digest: u64,
}

/// How often [`FileWatch`] reads the files.
const POLL: Duration = Duration::from_millis(300);

impl FileWatch {
    /// Watches `flow_yaml` and the files `flow` is made of.
    pub fn new(flow_yaml: &std::path::Path, flow: &CheckedFlow) -> FileWatch {
        let mut watch = FileWatch {
            files: vec![],
            digest: 0,
        };
        watch.watch(flow_yaml, flow);
        watch
    }

    /// Watches these files from now on (after a reload, whose Flow may use others).
    pub fn watch(&mut self, flow_yaml: &std::path::Path, flow: &CheckedFlow) {
        self.files = std::iter::once(flow_yaml.to_path_buf())
            .chain(files_of(flow))
            .collect();
        self.digest = self.read();
    }

    fn read(&self) -> u64 {
        digest(&self.files)
    }

    /// Resolves once a file changed (and has stayed unchanged for one poll, so a save that
    /// writes in several steps is read whole).
    pub async fn changed(&mut self) {
        loop {
            tokio::time::sleep(POLL).await;
            let now = self.read();
            if now == self.digest {
                continue;
            }
            tokio::time::sleep(POLL).await;
            if self.read() == now {
                self.digest = now;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_gateway_change_names_what_changed() {
        let old = crate::flow::GatewaySpec::default();
        let mut new = old.clone();
        new.ports = vec![12345];
        new.cors = !old.cors;
        assert_eq!(gateway_changes(&old, &new), "port, cors");
    }

    #[test]
    fn what_a_reload_did_reads_as_one_line() {
        let done = Reloaded {
            kept: vec!["visit".into()],
            replaced: vec!["tag".into()],
            added: vec![],
            removed: vec!["extra".into()],
        };
        assert!(done.changed());
        assert_eq!(
            done.to_string(),
            "replaced: tag; removed: extra; kept: visit"
        );
        assert!(!Reloaded::default().changed());
    }
}
