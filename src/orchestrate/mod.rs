//! Orchestration: turns a checked Flow into running executor processes and back into nothing.
//!
//! This module owns the executor *processes*: it names every copy of an executor
//! ([`copies_of`]), turns each copy's checked `uses` (what it means is decided by
//! `executor::resolve_uses`) into a command line (`jina executor ...` of this same binary,
//! `python -m jina executor ...` for a Python executor, `docker run ...` for an image, whose
//! `docker run` line is the `container` module's), picks free ports, starts every copy, waits
//! until each is healthy, and stops them all (a program that forks, Python Jina, and the
//! Docker CLI run under [`guard`], which finds what it forked through [`procs`]). Copies on a
//! remote host are started through the `jina daemon` there (`daemon::client`). It knows
//! nothing about requests: the gateway gets only the addresses ([`Topology`]).

mod error;
pub mod guard;
mod process;
pub mod procs;

pub use error::{ListenError, StartError};
pub use process::{INHERITED_LISTENER_FD, LaunchPlan, Processes, free_port, listen_local};

use crate::daemon::client::RemoteCopy;
use crate::executor::{ExecutorConfig, Overrides, Registry, Served, Uses, resolve_uses};
use crate::flow::{CheckedFlow, ExecutorSpec, FlowSpec, Polling};
use crate::health::Liveness;
use std::path::PathBuf;
use std::time::Duration;

/// Where one executor copy listens (`host:port`), and whether it is up.
#[derive(Clone, Debug)]
pub struct CopyAddress {
    pub address: String,
    pub liveness: Liveness,
    /// Whether it merges the parents of a join by document id itself (`process_data`, as ours
    /// do). Python Jina's worker only concatenates them, so the gateway merges first for it,
    /// as Python Jina's gateway does; and for an external executor, which may be either.
    pub merges_joins: bool,
}

impl CopyAddress {
    /// A copy that runs elsewhere, under nobody's supervision here.
    pub fn external(address: String) -> CopyAddress {
        CopyAddress {
            liveness: Liveness::unsupervised(&address),
            address,
            merges_joins: false,
        }
    }
}

/// Which copy of an executor a process is: what Python Jina calls its runtime args.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CopyId {
    pub shard: u32,
    pub shards: u32,
    pub replica: u32,
    pub replicas: u32,
}

impl CopyId {
    /// The copy of a single executor (or of a uses_before / uses_after).
    pub const SINGLE: CopyId = CopyId {
        shard: 0,
        shards: 1,
        replica: 0,
        replicas: 1,
    };

    /// The copy's name in our logs and labels: `name`, `name/rep-1`, `name/shard-0`,
    /// `name/shard-0/rep-1`.
    pub fn label(&self, name: &str) -> String {
        match (self.shards > 1, self.replicas > 1) {
            (false, false) => name.to_string(),
            (true, false) => format!("{name}/shard-{}", self.shard),
            (false, true) => format!("{name}/rep-{}", self.replica),
            (true, true) => format!("{name}/shard-{}/rep-{}", self.shard, self.replica),
        }
    }

    /// The pod name Python Jina gives this copy (`name/rep-0`, `name/shard-1/rep-0`): what a
    /// Python executor sees as `runtime_args.name` and keys `__results__` by.
    pub fn python_name(&self, name: &str) -> String {
        match self.shards > 1 {
            true => format!("{name}/shard-{}/rep-{}", self.shard, self.replica),
            false => format!("{name}/rep-{}", self.replica),
        }
    }

    /// Python Jina's flags for the runtime args.
    fn python_flags(&self) -> Vec<String> {
        [
            ("--shard-id", self.shard),
            ("--shards", self.shards),
            ("--replica-id", self.replica),
            ("--replicas", self.replicas),
        ]
        .into_iter()
        .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
        .collect()
    }
}

/// Where the copies of one executor listen.
#[derive(Clone, Debug)]
pub struct DeploymentAddresses {
    pub name: String,
    pub polling: Polling,
    /// Polling for particular endpoints (Jina 3's map form); `polling` for the rest.
    pub polling_by_endpoint: std::collections::BTreeMap<String, Polling>,
    /// One list of replica addresses per shard.
    pub shards: Vec<Vec<CopyAddress>>,
    /// The uses_before executor, which sees each request before the shards.
    pub head: Option<CopyAddress>,
    /// The uses_after executor, which receives the shards' results and merges them.
    pub tail: Option<CopyAddress>,
    /// Whether the copies serve TLS (an external executor with `tls: true`).
    pub tls: bool,
}

/// The addresses of every executor of a Flow, in the Flow's order.
#[derive(Clone, Debug)]
pub struct Topology {
    pub deployments: Vec<DeploymentAddresses>,
}

/// A Flow's executors, running: child processes, and in-process servers for Rust executors.
pub struct RunningExecutors {
    pub topology: Topology,
    pub processes: Processes,
    pub in_process: InProcessServers,
    /// Whether some run in containers: stopping the Flow then also removes any of its
    /// containers that are still there ([`crate::container::remove_own`]).
    pub containers: bool,
    /// Copies started through the `jina daemon` of their remote hosts.
    pub remote: Vec<RemoteCopy>,
    /// Where each copy with monitoring on serves `/metrics`: (copy, host:port).
    pub metrics: Vec<(String, String)>,
}

/// The gRPC servers of in-process executors. Dropping them stops them.
#[derive(Default)]
pub struct InProcessServers {
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl InProcessServers {
    fn spawn(
        &mut self,
        instance: crate::executor::Instance,
        listener: std::net::TcpListener,
    ) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = crate::executor::server::ExecutorService::new(instance);
        self.stops.push(stop);
        self.tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) =
                crate::executor::server::serve(service, listener, unchecked(), shutdown).await
            {
                tracing::error!("in-process executor failed: {e}");
            }
        }));
        Ok(())
    }

    /// Stops every server after its requests in flight.
    pub async fn stop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for InProcessServers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How the Flow's own executors serve: plain text on loopback, and no size limit, since every
/// request was checked by the gateway already.
fn unchecked() -> crate::executor::server::ServeSettings {
    crate::executor::server::ServeSettings {
        tls: None,
        max_request_bytes: None,
    }
}

/// Starts every executor of the Flow (each copy, each uses_before/uses_after) and waits until
/// all are serving. A failure stops whatever started and says which child failed and why.
pub async fn start(
    flow: &CheckedFlow,
    client_tls: Option<&crate::tls::ClientTls>,
) -> Result<RunningExecutors, StartError> {
    // Remote copies first: their daemons say where they serve.
    let mut remote = vec![];
    let mut remote_deployments = std::collections::BTreeMap::new();
    for (i, exec) in flow.spec.executors.iter().enumerate() {
        if !exec.is_remote() {
            continue;
        }
        match start_remote(&flow.spec, exec, &flow.spec.name_of(i), &mut remote).await {
            Ok(d) => {
                remote_deployments.insert(i, d);
            }
            Err(e) => {
                stop_remote(remote).await;
                return Err(e);
            }
        }
    }
    match start_here(flow, client_tls, remote_deployments).await {
        Ok(mut running) => {
            running.remote = remote;
            Ok(running)
        }
        Err(e) => {
            stop_remote(remote).await;
            Err(e)
        }
    }
}

/// Stops copies started through daemons.
pub async fn stop_remote(remote: Vec<RemoteCopy>) {
    futures::future::join_all(remote.into_iter().map(RemoteCopy::stop)).await;
}

/// Starts every copy of an executor on its remote host, through the `jina daemon` there, and
/// says where each serves. The copies are those the Flow would start here
/// ([`copies_of`]); each YAML file goes along, with the entry's `upload_files`.
async fn start_remote(
    spec: &FlowSpec,
    exec: &ExecutorSpec,
    name: &str,
    started: &mut Vec<RemoteCopy>,
) -> Result<DeploymentAddresses, StartError> {
    use base64::Engine as _;
    let host = exec.host.clone().unwrap_or_default();
    let daemon_port = exec
        .port_expose
        .unwrap_or(crate::daemon::client::DEFAULT_DAEMON_PORT);
    let base = spec.base_dir.clone().unwrap_or_default();
    let encode = |path: &std::path::Path| {
        std::fs::read(path)
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
            .map_err(|error| StartError::Remote {
                executor: name.into(),
                why: format!("cannot read {}: {error}", path.display()),
            })
    };
    // A file's name on the other side: its path in the Flow's folder, else its own name.
    let key = |path: &std::path::Path| {
        path.strip_prefix(&base)
            .ok()
            .or_else(|| path.file_name().map(std::path::Path::new))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut env = spec.gateway.env.clone();
    env.extend(exec.env.clone());
    let mut uploads = std::collections::BTreeMap::new();
    for file in &exec.upload_files {
        let path = base.join(file);
        uploads.insert(key(&path), encode(&path)?);
    }
    let mut placed = vec![];
    for copy in copies_of(exec, name) {
        let served =
            copy.resolve(spec.base_dir.as_deref())
                .map_err(|error| StartError::Config {
                    executor: copy.label.clone(),
                    error,
                })?;
        let mut files = uploads.clone();
        let (uses, entrypoint) = match served {
            Served::ByJina(uses) => match std::path::Path::new(&uses) {
                path if !uses.contains('\n') && path.is_file() => {
                    files.insert(key(path), encode(path)?);
                    (key(path), None)
                }
                _ => (uses, None),
            },
            Served::InContainer { image } => (
                format!("{}{image}", crate::container::SCHEME),
                copy.entrypoint.map(str::to_string),
            ),
            Served::ByPython { .. } | Served::InProcess(_) => {
                return Err(StartError::Remote {
                    executor: copy.label.clone(),
                    why: "only our own executors and docker:// images start through a jina daemon; start a Python one there and use external: true".into(),
                });
            }
        };
        let mut overrides = copy.overrides.clone();
        // A workspace is the daemon's to give, on its own machine.
        overrides.uses_metas.remove("workspace");
        let request = crate::daemon::SpawnRequest {
            name: copy.label.clone(),
            uses,
            files,
            uses_with: overrides.uses_with,
            uses_metas: overrides.uses_metas,
            uses_requests: overrides.uses_requests,
            uses_dynamic_batching: overrides.uses_dynamic_batching,
            port: copy.port,
            lease_seconds: Some(crate::daemon::client::LEASE.as_secs()),
            entrypoint,
            env: env.clone(),
        };
        let remote = RemoteCopy::start(&host, daemon_port, request)
            .await
            .map_err(|error| StartError::Daemon {
                executor: copy.label.clone(),
                error,
            })?;
        tracing::info!(
            "{} started on {} by its daemon",
            copy.label,
            remote.address()
        );
        placed.push((copy.role, CopyAddress::external(remote.address())));
        started.push(remote);
    }
    Ok(deployment_of(exec, name, placed))
}

/// An executor's addresses, each copy in its place (a replica of its shard, head or tail).
fn deployment_of(
    exec: &ExecutorSpec,
    name: &str,
    placed: Vec<(Role, CopyAddress)>,
) -> DeploymentAddresses {
    let mut shards: Vec<Vec<CopyAddress>> = vec![vec![]; exec.shards as usize];
    let (mut head, mut tail) = (None, None);
    for (role, address) in placed {
        match role {
            Role::Copy { shard } => shards[shard as usize].push(address),
            Role::Head => head = Some(address),
            Role::Tail => tail = Some(address),
        }
    }
    DeploymentAddresses {
        name: name.into(),
        polling: exec.polling,
        polling_by_endpoint: exec.polling_by_endpoint.clone(),
        shards,
        head,
        tail,
        tls: false,
    }
}

/// Starts what runs on this machine: processes, in-process servers and containers, and
/// waits for external executors; `remote` holds the addresses of remote executors, by index.
async fn start_here(
    flow: &CheckedFlow,
    client_tls: Option<&crate::tls::ClientTls>,
    mut remote: std::collections::BTreeMap<usize, DeploymentAddresses>,
) -> Result<RunningExecutors, StartError> {
    let program = jina_binary();
    let containers = flow.spec.executors.iter().any(|e| {
        [Some(&e.uses), e.uses_before.as_ref(), e.uses_after.as_ref()]
            .into_iter()
            .flatten()
            .any(crate::container::is_container_uses)
    });
    if containers {
        crate::container::remove_leftovers().await?;
    }
    let mut plans = vec![];
    let mut in_process = InProcessServers::default();
    let mut deployments = vec![];
    let mut metrics = vec![];
    for (i, exec) in flow.spec.executors.iter().enumerate() {
        if let Some(d) = remote.remove(&i) {
            deployments.push(d);
            continue;
        }
        let name = flow.spec.name_of(i);
        deployments.push(plan_executor(
            &flow.spec,
            exec,
            &name,
            &program,
            &mut plans,
            &mut in_process,
            &mut metrics,
        )?);
    }
    let externals = flow
        .spec
        .executors
        .iter()
        .zip(&deployments)
        .filter(|(e, _)| e.external)
        .map(|(e, d)| {
            let timeout = ready_timeout(e.timeout_ready.unwrap_or(flow.spec.gateway.timeout_ready));
            let tls = if e.tls { client_tls } else { None };
            wait_external(&d.name, &d.shards[0][0].address, timeout, tls)
        });
    let (processes, externals) = futures::join!(
        Processes::start_all(plans),
        futures::future::join_all(externals)
    );
    let mut processes = match processes {
        Ok(p) => p,
        Err(e) => {
            if containers {
                crate::container::remove_own().await;
            }
            return Err(e);
        }
    };
    if let Some(Err(e)) = externals.into_iter().find(Result::is_err) {
        processes.stop().await;
        if containers {
            crate::container::remove_own().await;
        }
        return Err(e);
    }
    Ok(RunningExecutors {
        topology: Topology { deployments },
        processes,
        in_process,
        containers,
        remote: vec![],
        metrics,
    })
}

/// Jina's `timeout_ready` in ms (-1: forever) as a wait.
fn ready_timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Waits until an external executor answers its health check, up to `timeout` (None: for
/// ever); the error names it, its address and the last reason it gave.
async fn wait_external(
    name: &str,
    address: &str,
    timeout: Option<Duration>,
    tls: Option<&crate::tls::ClientTls>,
) -> Result<(), StartError> {
    let (host, port) = crate::grpc::host_port(address).map_err(|why| StartError::BadAddress {
        executor: name.into(),
        why,
    })?;
    let start = std::time::Instant::now();
    let mut said = false;
    loop {
        let why =
            match crate::grpc::check_serving_tls(host, port, Duration::from_secs(1), tls).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
        if let Some(t) = timeout
            && start.elapsed() >= t
        {
            return Err(StartError::ExternalNotReady {
                executor: name.into(),
                address: address.into(),
                waited: t,
                why,
            });
        }
        if !said {
            tracing::info!("waiting for the external executor {name} at {address} ({why})");
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The binary that serves executors: `JINA_BIN`, else this program when it runs jina's
/// command line (`jina`, or a user's binary made with `cli::main_with`, which knows the user's
/// executor types), else a `jina` beside it or one folder up (where cargo puts examples and
/// tests), else `PATH`.
pub fn jina_binary() -> Result<PathBuf, StartError> {
    if let Some(path) = std::env::var_os("JINA_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().map_err(|_| StartError::NoBinary)?;
    if Registry::is_installed() {
        return Ok(me);
    }
    let near = me
        .parent()
        .into_iter()
        .flat_map(|dir| [dir.join("jina"), dir.join("../jina")]);
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("jina"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    near.chain(on_path)
        .find(|p| p.is_file())
        .ok_or(StartError::NoBinary)
}

/// Adds the launch plans of one executor and returns where its copies will listen.
fn plan_executor(
    spec: &FlowSpec,
    exec: &ExecutorSpec,
    name: &str,
    program: &Result<PathBuf, StartError>,
    plans: &mut Vec<LaunchPlan>,
    in_process: &mut InProcessServers,
    metrics: &mut Vec<(String, String)>,
) -> Result<DeploymentAddresses, StartError> {
    if exec.external {
        let host = exec.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = exec.port_in.ok_or_else(|| StartError::NoPortIn {
            executor: name.into(),
        })?;
        return Ok(DeploymentAddresses {
            name: name.into(),
            polling: exec.polling,
            polling_by_endpoint: exec.polling_by_endpoint.clone(),
            shards: vec![vec![CopyAddress::external(format!("{host}:{port}"))]],
            head: None,
            tail: None,
            tls: exec.tls,
        });
    }
    let timeout_ready = ready_timeout(exec.timeout_ready.unwrap_or(spec.gateway.timeout_ready));
    let monitoring = exec.monitoring.unwrap_or(spec.gateway.monitoring);
    let mut env = spec.gateway.env.clone();
    env.extend(exec.env.clone());
    let base = spec.base_dir.as_deref();
    let listen_error = |executor: &str, port: u16, source: std::io::Error| StartError::Listen {
        executor: executor.into(),
        error: ListenError::of("127.0.0.1", port, source),
    };
    let mut add = |copy: &CopySpec| -> Result<CopyAddress, StartError> {
        let CopySpec {
            label,
            python_name,
            id,
            overrides,
            port,
            entrypoint,
            ..
        } = copy;
        let (label, id, port, entrypoint) = (label.clone(), *id, *port, *entrypoint);
        let served = copy.resolve(base).map_err(|source| StartError::Config {
            executor: name.into(),
            error: source,
        })?;
        let mut listener = None;
        if monitoring && matches!(served, Served::InProcess(_)) {
            tracing::warn!(
                "{label}: monitoring: its metrics are not served (an executor in the Flow's own process has no /metrics of its own)"
            );
        }
        // Python Jina's worker only concatenates a join's parents; an image may hold either.
        let merges_joins = matches!(served, Served::ByJina(_) | Served::InProcess(_));
        let mut copy_env = env.clone();
        let (program, args, port) = match served {
            Served::InProcess(entry) => {
                let port = port.unwrap_or(0);
                let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| listen_error(&label, port, e))?;
                let address = listener
                    .local_addr()
                    .map_err(|e| listen_error(&label, port, e))?;
                // A Rust type of the Flow API: no YAML of its own, named after its copy.
                let mut overrides = overrides.clone();
                overrides
                    .uses_metas
                    .entry("name")
                    .or_insert_with(|| label.clone().into());
                let mut instance = ExecutorConfig::named(entry.name)
                    .instantiate_as(&entry, &overrides)
                    .map_err(|source| StartError::Config {
                        executor: label.clone(),
                        error: source,
                    })?;
                instance.open()?;
                in_process
                    .spawn(instance, listener)
                    .map_err(|e| listen_error(&label, address.port(), e))?;
                // Served by this process: up for as long as the Flow is.
                return Ok(CopyAddress {
                    liveness: Liveness::unsupervised(&label),
                    address: address.to_string(),
                    merges_joins: true,
                });
            }
            Served::ByJina(uses) => {
                let socket =
                    listen_local(port.unwrap_or(0)).map_err(|source| StartError::Listen {
                        executor: label.clone(),
                        error: source,
                    })?;
                let port = socket
                    .local_addr()
                    .map_err(|e| listen_error(&label, 0, e))?
                    .port();
                listener = Some(socket);
                let program = program.as_ref().map_err(|_| StartError::NoBinary)?;
                let fd = INHERITED_LISTENER_FD.to_string();
                let mut args: Vec<String> =
                    ["executor", "--uses", &uses, "--port-in", &port.to_string()]
                        .into_iter()
                        .chain(["--listen-fd", &fd, "--max-request-bytes", "0"])
                        .chain(["--host", "127.0.0.1", "--name", &label])
                        .map(str::to_string)
                        .collect();
                args.extend(override_flags(overrides));
                if monitoring {
                    args.extend(monitoring_flags(copy.port_monitoring, &label, metrics)?.0);
                }
                if let Some(t) = &spec.gateway.tracing {
                    args.extend(t.executor_flags());
                }
                (program.clone(), args, port)
            }
            Served::ByPython { uses, py_modules } => {
                let port = fixed_or_free_port(port, &label)?;
                let program = program.as_ref().map_err(|_| StartError::NoBinary)?;
                // Python Jina forks its worker: the guard sees that no fork outlives the Flow.
                let mut args: Vec<String> = ["guard", "--"]
                    .into_iter()
                    .map(str::to_string)
                    .chain(python_executor_command(
                        &uses,
                        &py_modules,
                        port,
                        python_name,
                        overrides,
                    ))
                    .chain(id.python_flags())
                    .collect();
                // Python Jina 3's executor takes the same flags for metrics and traces.
                if monitoring {
                    args.extend(monitoring_flags(copy.port_monitoring, &label, metrics)?.0);
                }
                if let Some(t) = &spec.gateway.tracing {
                    args.extend(t.executor_flags());
                    copy_env.extend(crate::telemetry::TraceExport::python_env());
                }
                (program.clone(), args, port)
            }
            Served::InContainer { image } => {
                let port = fixed_or_free_port(port, &label)?;
                let program = program.as_ref().map_err(|_| StartError::NoBinary)?;
                let mut executor_args = image_executor_flags(port, &label, overrides);
                // Our `jina executor` and Python Jina's take the same flags for metrics.
                let monitoring_port = match monitoring {
                    true => {
                        let (flags, at) = monitoring_flags(copy.port_monitoring, &label, metrics)?;
                        executor_args.extend(flags);
                        Some(at)
                    }
                    false => None,
                };
                if let Some(t) = &spec.gateway.tracing {
                    executor_args.extend(t.seen_from_container().executor_flags());
                }
                let copy = crate::container::ContainerCopy {
                    image: &image,
                    label: &label,
                    port,
                    publish_host: "127.0.0.1",
                    monitoring_port,
                    env: &env,
                    volumes: &exec.volumes,
                    gpus: exec.gpus.as_deref(),
                    entrypoint,
                    executor_args,
                };
                let args = copy.guarded_args();
                (program.clone(), args, port)
            }
        };
        let (reporter, liveness) = Liveness::supervised(&label);
        plans.push(LaunchPlan {
            label,
            program,
            args,
            env: copy_env,
            port,
            timeout_ready,
            hands_over_listener: listener.is_some(),
            listener,
            restart: exec.restart,
            reporter,
        });
        Ok(CopyAddress {
            address: format!("127.0.0.1:{port}"),
            liveness,
            merges_joins,
        })
    };

    let mut placed = vec![];
    for copy in copies_of(exec, name) {
        placed.push((copy.role, add(&copy)?));
    }
    Ok(deployment_of(exec, name, placed))
}

/// Where a copy sits in its executor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    /// A replica of this shard.
    Copy { shard: u32 },
    /// The uses_before, which sees each request before the shards.
    Head,
    /// The uses_after, which merges the shards' answers.
    Tail,
}

/// One process (or container) of an executor: what it runs and under which names.
#[derive(Debug)]
pub struct CopySpec<'a> {
    pub role: Role,
    pub id: CopyId,
    /// Its name in our logs and labels (`enc/shard-1/rep-0`, `enc/head`).
    pub label: String,
    /// The name Python Jina would give it (`enc/shard-1/rep-0`, `enc/uses_before-0`).
    pub python_name: String,
    pub uses: &'a Uses,
    pub py_modules: &'a [String],
    /// The entry's overrides, with the workspace and (for a shard) its place laid in.
    pub overrides: Overrides,
    /// A fixed port: only for an executor of a single copy (`port_in`).
    pub port: Option<u16>,
    /// A fixed port for its `/metrics`, likewise (`port_monitoring`).
    pub port_monitoring: Option<u16>,
    /// The entry's `entrypoint`, for its own copies (not its uses_before / uses_after).
    pub entrypoint: Option<&'a str>,
}

impl CopySpec<'_> {
    /// What this copy runs, checked (relative paths against the Flow's folder).
    pub fn resolve(
        &self,
        base_dir: Option<&std::path::Path>,
    ) -> Result<Served, crate::executor::ConfigError> {
        resolve_uses(self.uses, base_dir, &self.overrides, self.py_modules)
    }
}

/// Every copy of an executor that is not external: each replica of each shard, then its
/// uses_before and uses_after. The one place that names copies and gives each its overrides,
/// for the Flow that starts them and for `jina export` that writes them down.
pub fn copies_of<'a>(exec: &'a ExecutorSpec, name: &str) -> Vec<CopySpec<'a>> {
    let single = exec.shards * exec.replicas == 1;
    let mut copies = vec![];
    for shard in 0..exec.shards {
        for replica in 0..exec.replicas {
            let id = CopyId {
                shard,
                shards: exec.shards,
                replica,
                replicas: exec.replicas,
            };
            let mut overrides = with_workspace(&exec.overrides, exec.workspace.as_deref());
            // Each shard learns which part of the data is its own (Jina 3's runtime args).
            if exec.shards > 1 {
                overrides.uses_metas.insert("shard_id".into(), shard.into());
                overrides
                    .uses_metas
                    .insert("shards".into(), exec.shards.into());
            }
            copies.push(CopySpec {
                role: Role::Copy { shard },
                id,
                label: id.label(name),
                python_name: id.python_name(name),
                uses: &exec.uses,
                py_modules: &exec.py_modules,
                overrides,
                port: exec.port_in.filter(|_| single),
                port_monitoring: exec.port_monitoring.filter(|_| single),
                entrypoint: exec.entrypoint.as_deref(),
            });
        }
    }
    for (role, uses, suffix, python_suffix) in [
        (Role::Head, &exec.uses_before, "head", "uses_before-0"),
        (Role::Tail, &exec.uses_after, "tail", "uses_after-0"),
    ] {
        if let Some(uses) = uses {
            copies.push(CopySpec {
                role,
                id: CopyId::SINGLE,
                label: format!("{name}/{suffix}"),
                python_name: format!("{name}/{python_suffix}"),
                uses,
                py_modules: &[],
                overrides: with_workspace(&Overrides::default(), exec.workspace.as_deref()),
                port: None,
                port_monitoring: None,
                entrypoint: None,
            });
        }
    }
    copies
}

/// `--monitoring --port-monitoring P` for a copy, P its fixed port or a free one, noted in
/// `metrics` as where its `/metrics` is served.
fn monitoring_flags(
    port: Option<u16>,
    label: &str,
    metrics: &mut Vec<(String, String)>,
) -> Result<(Vec<String>, u16), StartError> {
    let at = fixed_or_free_port(port, label)?;
    metrics.push((label.to_string(), format!("127.0.0.1:{at}")));
    let flags = vec![
        "--monitoring".into(),
        "--port-monitoring".into(),
        at.to_string(),
    ];
    Ok((flags, at))
}

/// The copy's fixed port, or a free one: for a program that binds its port itself (Python
/// Jina, a container), which cannot be handed a listening socket.
fn fixed_or_free_port(port: Option<u16>, label: &str) -> Result<u16, StartError> {
    match port {
        Some(p) => Ok(p),
        None => free_port().map_err(|source| StartError::Listen {
            executor: label.into(),
            error: source,
        }),
    }
}

/// The overrides with the executor's `workspace` option laid into its metas.
fn with_workspace(overrides: &Overrides, workspace: Option<&str>) -> Overrides {
    let mut o = overrides.clone();
    if let Some(w) = workspace {
        o.uses_metas.entry("workspace").or_insert_with(|| w.into());
    }
    o
}

/// The command line serving a Python executor (its YAML names `metas.py_modules`) with Python
/// Jina: `python -m jina executor`, the interpreter from `JINA_PYTHON`, else `python3`.
pub fn python_executor_command(
    uses: &str,
    py_modules: &[String],
    port: u16,
    name: &str,
    overrides: &Overrides,
) -> Vec<String> {
    let python = std::env::var("JINA_PYTHON").unwrap_or_else(|_| "python3".into());
    let modules = (!py_modules.is_empty())
        .then(|| std::iter::once("--py-modules".to_string()).chain(py_modules.iter().cloned()))
        .into_iter()
        .flatten();
    let mut command: Vec<String> = [python.as_str(), "-m", "jina", "executor"]
        .into_iter()
        .map(str::to_string)
        .chain(["--uses".into(), uses.to_string()])
        .chain(modules)
        .chain([
            "--port".into(),
            port.to_string(),
            "--name".into(),
            name.into(),
        ])
        .collect();
    command.extend(override_flags(overrides));
    command
}

/// The flags a Flow appends to an image's entrypoint (`jina executor --uses ...`): the port,
/// the name, and the overrides; both our `jina executor` and Python Jina's take them.
pub fn image_executor_flags(port: u16, label: &str, overrides: &Overrides) -> Vec<String> {
    let mut flags = vec![
        "--port".to_string(),
        port.to_string(),
        "--name".into(),
        label.into(),
    ];
    flags.extend(override_flags(overrides));
    flags
}

/// `--uses-with`, `--uses-metas`, `--uses-requests` flags for the overrides that are set.
pub fn override_flags(overrides: &Overrides) -> Vec<String> {
    let requests: serde_json::Map<String, serde_json::Value> = overrides
        .uses_requests
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let batching: serde_json::Map<String, serde_json::Value> = overrides
        .uses_dynamic_batching
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    let mut flags = vec![];
    for (flag, map) in [
        ("--uses-with", &overrides.uses_with),
        ("--uses-metas", &overrides.uses_metas),
        ("--uses-requests", &requests),
        ("--uses-dynamic-batching", &batching),
    ] {
        if !map.is_empty() {
            flags.push(flag.to_string());
            flags.push(serde_json::Value::Object(map.clone()).to_string());
        }
    }
    flags
}
