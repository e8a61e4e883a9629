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
use crate::flow::{CheckedFlow, ExecutorSpec, ServedEntry};
use crate::gateway::{self, GatewayError, Routing};
use crate::orchestrate::{self, CopyKey, Slot, StartError};
use crate::tls::ClientTls;
use crate::topology::DeploymentAddresses;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// `scale` named an executor this Flow does not have.
    #[error("this Flow has no executor '{executor}' (its executors: {executors})")]
    NoSuchExecutor { executor: String, executors: String },
    /// `scale` to no replicas.
    #[error(
        "executor {executor}: replicas must be at least 1 (to remove it, take it out of the Flow YAML)"
    )]
    NoReplicas { executor: String },
    /// `scale` of an executor whose copies are not the Flow's to start.
    #[error(
        "executor {executor} is external: its copies run elsewhere and are not scaled by this Flow"
    )]
    External { executor: String },
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
    /// Given more or fewer replicas, the others kept running.
    pub scaled: Vec<Scaled>,
}

/// An executor whose replicas were added or taken away, copy by copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    pub executor: String,
    pub from: u32,
    pub to: u32,
}

impl Reloaded {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.replaced.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.scaled.is_empty())
    }
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if !self.scaled.is_empty() {
            let scaled: Vec<String> = self
                .scaled
                .iter()
                .map(|s| format!("{} {} → {} replicas", s.executor, s.from, s.to))
                .collect();
            parts.push(format!("scaled: {}", scaled.join(", ")));
        }
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
    /// The Flow as it runs: its YAML's, with the replicas `scale` chose laid in.
    flow: CheckedFlow,
    /// The content of each executor's files, by index, when its copies started.
    fingerprints: Vec<u64>,
    /// Where each executor's copies listen, by index.
    addresses: Vec<DeploymentAddresses>,
    /// The replicas `scale` chose, by executor: kept through reloads of the YAML until the
    /// YAML itself changes that executor's replicas.
    scaled: BTreeMap<String, Rescale>,
    /// Executors whose replacement replica by replica stopped half-way: the next reload
    /// replaces them whole.
    unfinished: BTreeSet<String>,
    routing: Routing,
    client_tls: Option<ClientTls>,
    metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
}

/// A `scale` in force: the replicas the YAML gives, and those chosen instead.
#[derive(Clone, Copy, Debug)]
struct Rescale {
    written: u32,
    chosen: u32,
}

impl Current {
    pub(crate) fn new(
        flow: &CheckedFlow,
        addresses: Vec<DeploymentAddresses>,
        routing: Routing,
        client_tls: Option<ClientTls>,
        metrics: Option<Arc<crate::metrics::GatewayMetrics>>,
    ) -> Current {
        Current {
            fingerprints: flow.served.iter().map(fingerprint).collect(),
            flow: flow.clone(),
            addresses,
            scaled: BTreeMap::new(),
            unfinished: BTreeSet::new(),
            routing,
            client_tls,
            metrics,
        }
    }

    /// `flow` (a YAML read again) with the replicas `scale` chose laid in, where the YAML
    /// still gives the replicas it gave then, and the choices that still hold (the others are
    /// dropped once that Flow runs).
    fn with_scales(&self, flow: &CheckedFlow) -> (CheckedFlow, BTreeMap<String, Rescale>) {
        let mut flow = flow.clone();
        let mut scaled = self.scaled.clone();
        scaled.retain(|name, rescale| {
            let exec = (0..flow.spec.executors.len())
                .find(|&i| flow.spec.name_of(i) == *name)
                .map(|i| &mut flow.spec.executors[i]);
            match exec {
                Some(exec) if exec.replicas == rescale.written => {
                    exec.replicas = rescale.chosen;
                    true
                }
                _ => false,
            }
        });
        (flow, scaled)
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

/// What becomes of one executor of the new Flow.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// Unchanged: the copies of the old Flow's executor at this index keep serving.
    Kept(usize),
    /// Only its replicas changed: the old copies up to `to` keep serving, replicas from
    /// `from` up to `to` start, and those from `to` up to `from` stop.
    Rescaled { twin: usize, from: u32, to: u32 },
    /// Changed, with several replicas: replaced replica by replica (slot 0 of each shard with
    /// the rest of the reload, the others after it, one at a time).
    Rolled { twin: usize, from: u32, to: u32 },
    /// Changed or added: every copy starts anew.
    Started,
}

/// What a reload changes, executor by executor, before anything is touched.
struct Plan {
    done: Reloaded,
    /// For each executor of the new Flow, by index.
    fates: Vec<Fate>,
    fingerprints: Vec<u64>,
}

/// Whether two entries differ in their replicas only, and the copies they share can keep
/// serving (each copy of a shard is the same process whatever the count, unless fixed ports
/// tie the entry to a single copy).
fn only_replicas_differ(old: &ExecutorSpec, new: &ExecutorSpec) -> bool {
    let mut same = new.clone();
    same.replicas = old.replicas;
    old.replicas != new.replicas
        && same == *old
        && !old.external
        && old.port_in.is_none()
        && old.port_monitoring.is_none()
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
            fates: vec![],
            fingerprints: flow.served.iter().map(fingerprint).collect(),
        };
        for (i, exec) in flow.spec.executors.iter().enumerate() {
            let name = flow.spec.name_of(i);
            let twin = old_index.get(&name).copied();
            let fate = match twin {
                Some(j) if !restart.contains(&name) => {
                    let was = &old.spec.executors[j];
                    let same_code =
                        old.served[j] == flow.served[i] && fingerprints[j] == plan.fingerprints[i];
                    if same_code && was == exec {
                        Fate::Kept(j)
                    } else if same_code && only_replicas_differ(was, exec) {
                        Fate::Rescaled {
                            twin: j,
                            from: was.replicas,
                            to: exec.replicas,
                        }
                    } else if rolls(old, j, flow, i) {
                        Fate::Rolled {
                            twin: j,
                            from: was.replicas,
                            to: exec.replicas,
                        }
                    } else {
                        Fate::Started
                    }
                }
                _ => Fate::Started,
            };
            let remote =
                exec.is_remote() || twin.is_some_and(|j| old.spec.executors[j].is_remote());
            if !matches!(fate, Fate::Kept(_)) && remote {
                return Err(ReloadError::RemoteChanged { executor: name });
            }
            match (fate, twin) {
                (Fate::Kept(_), _) => plan.done.kept.push(name),
                (Fate::Rescaled { from, to, .. }, _) => plan.done.scaled.push(Scaled {
                    executor: name,
                    from,
                    to,
                }),
                (Fate::Started | Fate::Rolled { .. }, Some(_)) => plan.done.replaced.push(name),
                (Fate::Started | Fate::Rolled { .. }, None) => plan.done.added.push(name),
            }
            plan.fates.push(fate);
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

    /// Whether executor `i` of the new Flow starts copies: all of them, or added replicas.
    fn starts(&self, i: usize) -> bool {
        match self.fates[i] {
            Fate::Kept(_) => false,
            Fate::Rescaled { from, to, .. } => to > from,
            Fate::Rolled { .. } | Fate::Started => true,
        }
    }

    /// A Flow of just the executors that start copies (their names kept), and which copies
    /// of those that only gain replicas.
    fn part(&self, flow: &CheckedFlow) -> (CheckedFlow, orchestrate::Selection) {
        let starting: Vec<usize> = (0..self.fates.len()).filter(|&i| self.starts(i)).collect();
        let mut part = flow.clone();
        part.spec.executors = starting
            .iter()
            .map(|&i| {
                let mut exec = flow.spec.executors[i].clone();
                exec.name = Some(flow.spec.name_of(i));
                exec
            })
            .collect();
        part.served = starting.iter().map(|&i| flow.served[i].clone()).collect();
        let mut only = orchestrate::Selection::new();
        for &i in &starting {
            let replicas = match self.fates[i] {
                Fate::Rescaled { from, to, .. } => from..to,
                Fate::Rolled { .. } => 0..1,
                _ => continue,
            };
            only.insert(
                flow.spec.name_of(i),
                slots(flow.spec.executors[i].shards, replicas),
            );
        }
        (part, only)
    }

    /// The new router and where each executor's copies listen: `before`'s connections to the
    /// copies kept, new ones to those `started`.
    fn router(
        &self,
        flow: &CheckedFlow,
        before: &gateway::Router,
        started: &crate::topology::Topology,
        current: &Current,
    ) -> Result<(Arc<gateway::Router>, Vec<DeploymentAddresses>), GatewayError> {
        let mut new_addresses = started.deployments.iter();
        let mut deployments = vec![];
        let mut addresses = vec![];
        let tls = current.client_tls.as_ref();
        for (i, fate) in self.fates.iter().enumerate() {
            let policy = flow.spec.call_policy(i);
            let (deployment, at) = match *fate {
                Fate::Kept(j) => (before.deployment(j), current.addresses[j].clone()),
                Fate::Started => {
                    let at = new_addresses.next().expect("one per started executor");
                    (gateway::connect(at, policy, tls)?, at.clone())
                }
                Fate::Rolled { twin, .. } => {
                    // Its new first replica of each shard, with the old others.
                    let mut at = new_addresses
                        .next()
                        .expect("one per started executor")
                        .clone();
                    for (shard, copies) in at.shards.iter_mut().enumerate() {
                        copies.extend(
                            current.addresses[twin].shards[shard]
                                .iter()
                                .skip(1)
                                .cloned(),
                        );
                    }
                    let deployment =
                        gateway::reconnect(&at, policy, tls, &before.deployment(twin))?;
                    (deployment, at)
                }
                Fate::Rescaled { twin, from, to } => {
                    let mut at = current.addresses[twin].clone();
                    let added = (to > from)
                        .then(|| new_addresses.next().expect("one per started executor"));
                    for (shard, copies) in at.shards.iter_mut().enumerate() {
                        copies.truncate(to.min(from) as usize);
                        if let Some(added) = added {
                            copies.extend(added.shards[shard].iter().cloned());
                        }
                    }
                    let deployment =
                        gateway::reconnect(&at, policy, tls, &before.deployment(twin))?;
                    (deployment, at)
                }
            };
            deployments.push(deployment);
            addresses.push(at);
        }
        let router = gateway::Router::new(flow.graph.clone(), deployments, current.metrics.clone());
        Ok((Arc::new(router), addresses))
    }

    /// Whether `copy` stops once the new router serves: its executor was replaced or removed
    /// (`stopping`), or it is a replica taken away, or the first replica of an executor
    /// replaced replica by replica (`old`: where the old Flow's copies listen).
    fn stops(
        &self,
        flow: &CheckedFlow,
        stopping: &BTreeSet<String>,
        old: &[DeploymentAddresses],
        copy: &CopyKey,
    ) -> bool {
        if stopping.contains(&copy.executor) {
            return true;
        }
        let Some(i) = (0..self.fates.len()).find(|&i| flow.spec.name_of(i) == copy.executor) else {
            return false;
        };
        match self.fates[i] {
            Fate::Rescaled { to, .. } => {
                matches!(copy.slot, Slot::Replica { replica, .. } if replica >= to)
            }
            Fate::Rolled { twin, .. } => listens_at(&old[twin], 0, copy.port),
            _ => false,
        }
    }

    /// The executors replaced replica by replica: (index, old index, replicas before, after).
    fn rolled(&self) -> Vec<(usize, usize, u32, u32)> {
        self.fates
            .iter()
            .enumerate()
            .filter_map(|(i, fate)| match *fate {
                Fate::Rolled { twin, from, to } => Some((i, twin, from, to)),
                _ => None,
            })
            .collect()
    }

    /// The names the copies taken away by a scale-down went by (`visit/rep-1`).
    fn labels_taken_away(&self, flow: &CheckedFlow) -> Vec<String> {
        let mut labels = vec![];
        for (i, fate) in self.fates.iter().enumerate() {
            if let Fate::Rescaled { from, to, .. } = *fate {
                let exec = &flow.spec.executors[i];
                for shard in 0..exec.shards {
                    for replica in to..from {
                        let id = orchestrate::CopyId {
                            shard,
                            shards: exec.shards,
                            replica,
                            replicas: from,
                        };
                        labels.push(id.label(&flow.spec.name_of(i)));
                    }
                }
            }
        }
        labels
    }
}

/// The replica slots `replicas` of every shard.
fn slots(shards: u32, replicas: std::ops::Range<u32>) -> BTreeSet<Slot> {
    (0..shards)
        .flat_map(|shard| {
            replicas
                .clone()
                .map(move |replica| Slot::Replica { shard, replica })
        })
        .collect()
}

/// Whether replica `replica` of some shard of `at` listens on `port`.
fn listens_at(at: &DeploymentAddresses, replica: u32, port: u16) -> bool {
    at.shards.iter().any(|copies| {
        copies
            .get(replica as usize)
            .is_some_and(|c| crate::net::host_port(&c.address).is_ok_and(|(_, p)| p == port))
    })
}

/// Whether executor `i` of `flow`, changed from executor `j` of `old`, is replaced replica by
/// replica: it has several replicas and the same shards, no uses_before or uses_after, and
/// can run twice (no workspace handed over, no fixed ports).
fn rolls(old: &CheckedFlow, j: usize, flow: &CheckedFlow, i: usize) -> bool {
    let (was, now) = (&old.spec.executors[j], &flow.spec.executors[i]);
    let bare = |served: &ServedEntry| {
        matches!(
            served,
            ServedEntry::Copies {
                uses_before: None,
                uses_after: None,
                ..
            }
        )
    };
    was.replicas.max(now.replicas) > 1
        && was.shards == now.shards
        && bare(&old.served[j])
        && bare(&flow.served[i])
        && !(was.external || now.external || was.is_remote() || now.is_remote())
        && !needs_handover(old, &old.spec.name_of(j))
        && !needs_handover(flow, &flow.spec.name_of(i))
}

/// Whether executor `name` of `flow` cannot run twice at once: its copies keep a workspace
/// (given by the Flow, the entry's `uses_metas` or the executor's own YAML: an indexer's
/// database opens for one process only) or listen on fixed ports.
fn needs_handover(flow: &CheckedFlow, name: &str) -> bool {
    (0..flow.spec.executors.len())
        .find(|&i| flow.spec.name_of(i) == name)
        .is_some_and(|i| {
            let exec = &flow.spec.executors[i];
            exec.workspace.is_some()
                || flow.spec.gateway.workspace.is_some()
                || exec.overrides.uses_metas.contains_key("workspace")
                || flow.served[i].keeps_workspace()
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
        let (flow, scaled) = self.current.with_scales(flow);
        let unfinished = self.current.unfinished.clone();
        let done = self.change_to(&flow, &unfinished).await?;
        self.current.scaled = scaled;
        Ok(done)
    }

    /// Gives executor `executor` `replicas` copies per shard while the Flow serves (`jina
    /// flow scale`): replicas added start and join the routing once ready; replicas taken away
    /// leave the routing, finish their requests and stop; the others keep serving. The choice
    /// holds through reloads of the YAML until the YAML changes that executor's replicas.
    pub async fn scale(&mut self, executor: &str, replicas: u32) -> Result<Reloaded, ReloadError> {
        let flow = &self.current.flow;
        let names: Vec<String> = (0..flow.spec.executors.len())
            .map(|i| flow.spec.name_of(i))
            .collect();
        let Some(i) = names.iter().position(|n| n == executor) else {
            return Err(ReloadError::NoSuchExecutor {
                executor: executor.into(),
                executors: names.join(", "),
            });
        };
        if replicas == 0 {
            return Err(ReloadError::NoReplicas {
                executor: executor.into(),
            });
        }
        let exec = &flow.spec.executors[i];
        if exec.external {
            return Err(ReloadError::External {
                executor: executor.into(),
            });
        }
        let written = self
            .current
            .scaled
            .get(executor)
            .map_or(exec.replicas, |r| r.written);
        let mut scaled = flow.clone();
        scaled.spec.executors[i].replicas = replicas;
        let done = self.change_to(&scaled, &BTreeSet::new()).await?;
        match replicas == written {
            true => self.current.scaled.remove(executor),
            false => self.current.scaled.insert(
                executor.into(),
                Rescale {
                    written,
                    chosen: replicas,
                },
            ),
        };
        Ok(done)
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
                let handed = |copy: &CopyKey| handover.contains(&copy.executor);
                self.processes.stop_where(handed).await;
                self.in_process.stop_where(handed).await;
            }
            let (part, only) = plan.part(flow);
            let started =
                orchestrate::start_selected(&part, self.current.client_tls.as_ref(), &only).await;
            let switched = started.map_err(ReloadError::from).and_then(|started| {
                let routed =
                    plan.router(flow, &routing.peek(), &started.topology, &self.current)?;
                Ok((routed, started))
            });
            let ((router, addresses), started) = match switched {
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
            let rolled = plan.rolled();
            let rolling: BTreeSet<String> =
                rolled.iter().map(|&(i, ..)| flow.spec.name_of(i)).collect();
            let stopping: BTreeSet<String> = plan
                .done
                .replaced
                .iter()
                .chain(&plan.done.removed)
                .filter(|name| !handover.contains(*name) && !rolling.contains(*name))
                .cloned()
                .collect();
            let old_addresses = &self.current.addresses;
            let stops = |copy: &CopyKey| plan.stops(flow, &stopping, old_addresses, copy);
            self.processes.stop_where(stops).await;
            self.in_process.stop_where(stops).await;
            let taken_away = plan.labels_taken_away(&self.current.flow);
            let gone = |who: &str| {
                plan.done
                    .replaced
                    .iter()
                    .chain(&plan.done.removed)
                    .chain(restart)
                    .any(|s| who == s || who.starts_with(&format!("{s}/")))
            };
            self.metrics
                .retain(|(who, _)| !gone(who) && !taken_away.contains(who));
            self.metrics.extend(started.metrics);
            self.processes.adopt(started.processes);
            self.in_process.adopt(started.in_process);
            self.containers |= started.containers;
            self.current.flow = flow.clone();
            self.current.fingerprints = plan.fingerprints;
            let before = std::mem::replace(&mut self.current.addresses, addresses);
            for name in restart.iter().chain(&plan.done.replaced) {
                self.current.unfinished.remove(name);
            }
            // The other replicas of the executors replaced replica by replica, one at a time.
            for (i, twin, from, to) in rolled {
                for replica in 1..from.max(to) {
                    if let Err(e) = self.roll(i, replica, from, to, &before[twin]).await {
                        let name = flow.spec.name_of(i);
                        tracing::error!(
                            "reload: {name}: replica {replica} did not start anew ({e}); its old copies from replica {replica} on serve until the next reload replaces {name} whole"
                        );
                        self.current.unfinished.insert(name);
                        break;
                    }
                }
            }
            Ok(plan.done)
        })
    }

    /// Replaces replica `replica` of every shard of executor `i` (replicas `from` before the
    /// reload, `to` after): its new copy starts (if `replica` < `to`), the router switches to
    /// it, and the old copy (at `old`, if `replica` < `from`) stops once drained.
    async fn roll(
        &mut self,
        i: usize,
        replica: u32,
        from: u32,
        to: u32,
        old: &DeploymentAddresses,
    ) -> Result<(), ReloadError> {
        let flow = &self.current.flow;
        let name = flow.spec.name_of(i);
        let exec = &flow.spec.executors[i];
        let tls = self.current.client_tls.as_ref();
        let started = match replica < to {
            true => {
                let mut part = flow.clone();
                let mut alone = exec.clone();
                alone.name = Some(name.clone());
                part.spec.executors = vec![alone];
                part.served = vec![flow.served[i].clone()];
                let only = orchestrate::Selection::from([(
                    name.clone(),
                    slots(exec.shards, replica..replica + 1),
                )]);
                Some(orchestrate::start_selected(&part, tls, &only).await?)
            }
            false => None,
        };
        // Replicas before this one are new; this one and those after are old.
        let mut at = self.current.addresses[i].clone();
        for (shard, copies) in at.shards.iter_mut().enumerate() {
            if replica < from {
                copies.remove(replica.min(to) as usize);
            }
            if let Some(started) = &started {
                let new = started.topology.deployments[0].shards[shard][0].clone();
                copies.insert(replica as usize, new);
            }
        }
        let routing = self.current.routing.clone();
        let router = {
            let before = routing.peek();
            let deployment =
                gateway::reconnect(&at, flow.spec.call_policy(i), tls, &before.deployment(i))?;
            let deployments = (0..flow.spec.executors.len())
                .map(|k| match k == i {
                    true => deployment.clone(),
                    false => before.deployment(k),
                })
                .collect();
            gateway::Router::new(
                flow.graph.clone(),
                deployments,
                self.current.metrics.clone(),
            )
        };
        drain(routing.swap(Arc::new(router)), 1).await;
        if replica < from {
            let retired =
                |copy: &CopyKey| copy.executor == name && listens_at(old, replica, copy.port);
            self.processes.stop_where(retired).await;
            self.in_process.stop_where(retired).await;
        }
        if let Some(started) = started {
            self.metrics.extend(started.metrics);
            self.processes.adopt(started.processes);
            self.in_process.adopt(started.in_process);
            self.containers |= started.containers;
        }
        self.current.addresses[i] = at;
        tracing::info!("reload: {name}: replica {replica} replaced");
        Ok(())
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
            scaled: vec![Scaled {
                executor: "visit".into(),
                from: 1,
                to: 3,
            }],
        };
        assert!(done.changed());
        assert_eq!(
            done.to_string(),
            "scaled: visit 1 → 3 replicas; replaced: tag; removed: extra; kept: visit"
        );
        assert!(!Reloaded::default().changed());
    }
}
