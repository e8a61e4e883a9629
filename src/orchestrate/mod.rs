//! Orchestration: turns a checked Flow into running executor processes and back into nothing.
//!
//! This module owns the executor *processes*. From what the Flow's check resolved for each
//! entry (`flow::CheckedFlow::served`; what a `uses` means is `executor::UsesText`'s to
//! decide), it names every copy ([`copies_of`], in `copies`), writes each local copy's command
//! line (`local`: `jina executor ...` of this same binary, `python -m jina executor ...` for a
//! Python executor, `docker run ...` for an image, whose line is the `container` module's),
//! starts every copy, waits until each is healthy, supervises them (`process`), and stops them
//! all (a program that forks, Python Jina, and the Docker CLI run under [`guard`], which finds
//! what it forked through `crate::procs`). Copies on a remote host are started through the `jina
//! daemon` there (`remote`). It knows nothing about requests: the gateway gets only the
//! addresses (`topology::Topology`).

mod copies;
mod error;
pub(crate) mod guard;
mod local;
mod process;
mod remote;

pub(crate) use copies::{CopyId, CopyKey, CopySpec, Role, Slot, copies_of};
pub use error::StartError;
pub(crate) use local::InProcessServers;
pub(crate) use process::{INHERITED_LISTENER_FD, LaunchPlan, Processes};
pub(crate) use remote::stop_remote;

use crate::daemon::client::RemoteCopy;
use crate::executor::Registry;
use crate::flow::{CheckedFlow, ExecutorSpec};
use crate::topology::{CopyAddress, DeploymentAddresses, Topology};
use std::path::PathBuf;
use std::time::Duration;

/// A Flow's executors, running: child processes, and in-process servers for Rust executors.
pub(crate) struct RunningExecutors {
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

/// Which copies of some executors to start (a reload adding replicas): by executor name, the
/// slots to start; an executor not named starts whole.
pub(crate) type Selection = std::collections::BTreeMap<String, std::collections::BTreeSet<Slot>>;

/// Starts every executor of the Flow (each copy, each uses_before/uses_after) and waits until
/// all are serving. A failure stops whatever started and says which child failed and why.
pub(crate) async fn start(
    flow: &CheckedFlow,
    client_tls: Option<&crate::tls::ClientTls>,
) -> Result<RunningExecutors, StartError> {
    start_selected(flow, client_tls, &Selection::new()).await
}

/// [`start`], with only the copies `only` selects of the executors it names: their addresses
/// then hold just those copies, in slot order.
pub(crate) async fn start_selected(
    flow: &CheckedFlow,
    client_tls: Option<&crate::tls::ClientTls>,
    only: &Selection,
) -> Result<RunningExecutors, StartError> {
    // Remote copies first: their daemons say where they serve.
    let mut remote = vec![];
    let mut remote_deployments = std::collections::BTreeMap::new();
    for (i, exec) in flow.spec.executors.iter().enumerate() {
        if !exec.is_remote() {
            continue;
        }
        let name = flow.spec.name_of(i);
        let started = remote::start_remote(
            &flow.spec,
            exec,
            &flow.served[i],
            &name,
            &mut remote,
            client_tls,
        );
        match started.await {
            Ok(d) => {
                remote_deployments.insert(i, d);
            }
            Err(e) => {
                stop_remote(remote).await;
                return Err(e);
            }
        }
    }
    match start_here(flow, client_tls, remote_deployments, only).await {
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
    only: &Selection,
) -> Result<RunningExecutors, StartError> {
    let containers = flow.served.iter().any(|s| s.in_container());
    if containers {
        crate::container::remove_leftovers().await?;
    }
    let mut local = local::LocalCopies::new(jina_binary());
    let mut deployments = vec![];
    for (i, exec) in flow.spec.executors.iter().enumerate() {
        if let Some(d) = remote.remove(&i) {
            deployments.push(d);
            continue;
        }
        let name = flow.spec.name_of(i);
        let selected = only.get(&name);
        deployments.push(local.plan_executor(
            &flow.spec,
            exec,
            &flow.served[i],
            &name,
            selected,
        )?);
    }
    let local::LocalCopies {
        plans,
        in_process,
        metrics,
        ..
    } = local;
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
    let (host, port) = crate::net::host_port(address).map_err(|why| StartError::BadAddress {
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
