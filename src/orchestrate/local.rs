//! Copies that run on this machine: for each, the command line of its process (`jina executor`
//! of this binary, Python Jina under the guard, or `docker run` under the guard), or an
//! in-process gRPC server for a Rust type given to the Flow API. It plans; `process` starts.

use super::copies::{CopyKey, CopySpec, Slot, copies_of};
use super::{INHERITED_LISTENER_FD, LaunchPlan, StartError, deployment_of, ready_timeout};
use crate::executor::{Entry, ExecutorConfig, ExecutorFlags, ImageRef, Served, UsesText};
use crate::flow::{ExecutorSpec, FlowSpec, ServedEntry};
use crate::health::Liveness;
use crate::net::{ListenError, free_port, listen_local};
use crate::telemetry::TracingFlags;
use crate::topology::{CopyAddress, DeploymentAddresses};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// What starting the Flow's local copies needs, gathered as each executor is planned.
pub(super) struct LocalCopies {
    /// The binary that serves executors (an error only when a copy needs it).
    pub program: Result<PathBuf, StartError>,
    pub plans: Vec<LaunchPlan>,
    pub in_process: InProcessServers,
    /// Where each copy with monitoring on serves `/metrics`: (copy, host:port).
    pub metrics: Vec<(String, String)>,
}

/// What every copy of one executor shares.
struct ExecutorContext<'a> {
    /// The executor's name in the Flow.
    name: &'a str,
    spec: &'a FlowSpec,
    exec: &'a ExecutorSpec,
    /// The Flow's and the entry's environment variables.
    env: BTreeMap<String, String>,
    monitoring: bool,
    timeout_ready: Option<Duration>,
}

/// A child process to start for one copy.
struct Child {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    port: u16,
    listener: Option<std::net::TcpListener>,
    merges_joins: bool,
}

impl LocalCopies {
    pub(super) fn new(program: Result<PathBuf, StartError>) -> LocalCopies {
        LocalCopies {
            program,
            plans: vec![],
            in_process: InProcessServers::default(),
            metrics: vec![],
        }
    }

    /// Plans the copies of one executor (those in `only`, when given) and says where each
    /// will listen.
    pub(super) fn plan_executor(
        &mut self,
        spec: &FlowSpec,
        exec: &ExecutorSpec,
        served: &ServedEntry,
        name: &str,
        only: Option<&BTreeSet<Slot>>,
    ) -> Result<DeploymentAddresses, StartError> {
        if exec.external {
            return external(exec, name);
        }
        let mut env = spec.gateway.env.clone();
        env.extend(exec.env.clone());
        let context = ExecutorContext {
            name,
            spec,
            exec,
            env,
            monitoring: exec.monitoring.unwrap_or(spec.gateway.monitoring),
            timeout_ready: ready_timeout(exec.timeout_ready.unwrap_or(spec.gateway.timeout_ready)),
        };
        let mut placed = vec![];
        for copy in copies_of(exec, name, served) {
            if only.is_some_and(|only| !only.contains(&copy.slot())) {
                continue;
            }
            placed.push((copy.role, self.plan_copy(&context, &copy)?));
        }
        Ok(deployment_of(exec, name, placed))
    }

    /// Plans one copy: a child process, or a server in this process.
    fn plan_copy(
        &mut self,
        context: &ExecutorContext,
        copy: &CopySpec,
    ) -> Result<CopyAddress, StartError> {
        let child = match copy.served {
            Served::InProcess(entry) => {
                if context.monitoring {
                    tracing::warn!(
                        "{}: monitoring: its metrics are not served (an executor in the Flow's own process has no /metrics of its own)",
                        copy.label
                    );
                }
                return self.serve_in_process(context.name, copy, entry);
            }
            Served::ByJina(uses) => self.jina_child(context, copy, uses)?,
            Served::ByPython { uses, py_modules } => {
                self.python_child(context, copy, uses, py_modules)?
            }
            Served::InContainer { image } => self.container_child(context, copy, image)?,
        };
        let (reporter, liveness) = Liveness::supervised(&copy.label);
        self.plans.push(LaunchPlan {
            executor: context.name.to_string(),
            slot: copy.slot(),
            label: copy.label.clone(),
            program: child.program,
            args: child.args,
            env: child.env,
            port: child.port,
            timeout_ready: context.timeout_ready,
            hands_over_listener: child.listener.is_some(),
            listener: child.listener,
            restart: context.exec.restart,
            reporter,
        });
        Ok(CopyAddress {
            address: format!("127.0.0.1:{}", child.port),
            liveness,
            merges_joins: child.merges_joins,
        })
    }

    /// `jina executor` of this binary, on a socket the Flow binds and hands over.
    fn jina_child(
        &mut self,
        context: &ExecutorContext,
        copy: &CopySpec,
        uses: &UsesText,
    ) -> Result<Child, StartError> {
        let (socket, port) = listener_for(copy)?;
        let flags = ExecutorFlags {
            host: "127.0.0.1".into(),
            name: Some(copy.label.clone()),
            listen_fd: Some(INHERITED_LISTENER_FD),
            // The gateway checked every request's size already; what a request becomes once
            // decoded is checked here, where it is decoded.
            max_request_bytes: 0,
            max_request_docs: context.spec.gateway.max_request_docs,
            max_in_flight_bytes: context.spec.gateway.max_in_flight_bytes,
            tracing: TracingFlags::from(context.spec.gateway.tracing.as_ref()),
            ..self.monitored(context, copy, ExecutorFlags::new(uses.to_arg(), port))?
        };
        Ok(Child {
            program: self.program()?,
            args: std::iter::once("executor".to_string())
                .chain(flags.to_args())
                .collect(),
            env: context.env.clone(),
            port,
            listener: Some(socket),
            merges_joins: true,
        })
    }

    /// A Python executor: our host when the executor's Python has it (a child that takes the
    /// socket the Flow binds, as ours do), else Python Jina's `jina executor` under the guard
    /// (it forks a worker, and the guard sees that no fork outlives the Flow; it binds its
    /// own port). The rule is `executor::python`'s; the log says which each copy gets.
    fn python_child(
        &mut self,
        context: &ExecutorContext,
        copy: &CopySpec,
        uses: &str,
        py_modules: &[String],
    ) -> Result<Child, StartError> {
        let python = crate::executor::python::interpreter();
        let chosen = crate::executor::python::choose(context.exec.python_runtime, &python)
            .map_err(|error| StartError::NoPythonRuntime {
                executor: copy.label.clone(),
                error,
            })?;
        let tracing = context.spec.gateway.tracing.as_ref();
        let mut env = context.env.clone();
        if chosen == crate::executor::python::Chosen::JinaRs {
            tracing::info!(
                "{}: a Python executor, served by jina-rs's host ({python})",
                copy.label
            );
            let (socket, port) = listener_for(copy)?;
            let flags = ExecutorFlags {
                host: "127.0.0.1".into(),
                name: Some(copy.python_name.clone()),
                listen_fd: Some(INHERITED_LISTENER_FD),
                max_request_bytes: 0,
                py_modules: py_modules.to_vec(),
                copy: copy.id.flags(),
                max_request_docs: context.spec.gateway.max_request_docs,
                max_in_flight_bytes: context.spec.gateway.max_in_flight_bytes,
                tracing: TracingFlags::from(tracing),
                ..self.monitored(context, copy, ExecutorFlags::new(uses, port))?
            };
            let mut command = crate::executor::python::host_command(&python, &flags).into_iter();
            return Ok(Child {
                program: command.next().unwrap_or_default().into(),
                args: command.collect(),
                env,
                port,
                listener: Some(socket),
                merges_joins: true,
            });
        }
        tracing::info!(
            "{}: a Python executor, served by Python Jina ({python})",
            copy.label
        );
        let port = fixed_or_free_port(copy.port, &copy.label)?;
        let flags = ExecutorFlags {
            name: Some(copy.python_name.clone()),
            tracing: TracingFlags::from(tracing),
            ..self.monitored(context, copy, ExecutorFlags::new(uses, port))?
        };
        if tracing.is_some() {
            env.extend(crate::telemetry::TraceExport::python_env());
        }
        Ok(Child {
            program: self.program()?,
            args: ["guard".to_string(), "--".into()]
                .into_iter()
                .chain(flags.python_command(py_modules))
                .chain(copy.id.flags().to_args())
                .collect(),
            env,
            port,
            listener: None,
            // Python Jina's worker only concatenates a join's parents.
            merges_joins: false,
        })
    }

    /// `docker run` of an image under the guard, its port published on loopback.
    fn container_child(
        &mut self,
        context: &ExecutorContext,
        copy: &CopySpec,
        image: &ImageRef,
    ) -> Result<Child, StartError> {
        let port = fixed_or_free_port(copy.port, &copy.label)?;
        let tracing = context
            .spec
            .gateway
            .tracing
            .as_ref()
            .map(|t| t.seen_from_container(crate::container::DOCKER_HOST_NAME));
        let flags = ExecutorFlags {
            name: Some(copy.label.clone()),
            tracing: TracingFlags::from(tracing.as_ref()),
            ..self.monitored(context, copy, ExecutorFlags::new("", port))?
        };
        let container = crate::container::ContainerCopy {
            image,
            label: &copy.label,
            port,
            publish_host: "127.0.0.1",
            monitoring_port: flags.port_monitoring,
            env: &context.env,
            volumes: &context.exec.volumes,
            gpus: context.exec.gpus.as_deref(),
            entrypoint: copy.entrypoint,
            // Our `jina executor` and Python Jina's take the same flags.
            executor_args: flags.portable_args(),
        };
        Ok(Child {
            program: self.program()?,
            args: container.guarded_args(),
            env: context.env.clone(),
            port,
            listener: None,
            // An image may hold either runtime.
            merges_joins: false,
        })
    }

    /// A Rust type of the Flow API, served by this process: up for as long as the Flow is.
    fn serve_in_process(
        &mut self,
        executor: &str,
        copy: &CopySpec,
        entry: &Entry,
    ) -> Result<CopyAddress, StartError> {
        let port = copy.port.unwrap_or(0);
        let listen_error = |port, e| StartError::Listen {
            executor: copy.label.clone(),
            error: ListenError::of("127.0.0.1", port, e),
        };
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| listen_error(port, e))?;
        let address = listener.local_addr().map_err(|e| listen_error(port, e))?;
        // No YAML of its own: named after its copy.
        let mut overrides = copy.overrides.clone();
        overrides
            .uses_metas
            .entry("name")
            .or_insert_with(|| copy.label.clone().into());
        let mut instance = ExecutorConfig::named(entry.name)
            .instantiate_as(entry, &overrides)
            .map_err(|error| StartError::Config {
                executor: copy.label.clone(),
                error,
            })?;
        instance.open()?;
        self.in_process
            .spawn(executor, copy.slot(), instance, listener)
            .map_err(|e| listen_error(address.port(), e))?;
        Ok(CopyAddress {
            liveness: Liveness::unsupervised(&copy.label),
            address: address.to_string(),
            merges_joins: true,
        })
    }

    /// The flags with `--monitoring --port-monitoring P` when the copy is monitored, P its
    /// fixed port or a free one, noted as where its `/metrics` is served.
    fn monitored(
        &mut self,
        context: &ExecutorContext,
        copy: &CopySpec,
        flags: ExecutorFlags,
    ) -> Result<ExecutorFlags, StartError> {
        if !context.monitoring {
            return Ok(flags.with_overrides(&copy.overrides));
        }
        let at = fixed_or_free_port(copy.port_monitoring, &copy.label)?;
        self.metrics
            .push((copy.label.clone(), format!("127.0.0.1:{at}")));
        Ok(ExecutorFlags {
            monitoring: true,
            port_monitoring: Some(at),
            ..flags.with_overrides(&copy.overrides)
        })
    }

    fn program(&self) -> Result<PathBuf, StartError> {
        self.program
            .as_ref()
            .cloned()
            .map_err(|_| StartError::NoBinary)
    }
}

/// An external executor: one address, nothing to start.
fn external(exec: &ExecutorSpec, name: &str) -> Result<DeploymentAddresses, StartError> {
    let host = exec.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let port = exec.port_in.ok_or_else(|| StartError::NoPortIn {
        executor: name.into(),
    })?;
    Ok(DeploymentAddresses {
        name: name.into(),
        polling: exec.polling,
        polling_by_endpoint: exec.polling_by_endpoint.clone(),
        shards: vec![vec![CopyAddress::external(format!("{host}:{port}"))]],
        head: None,
        tail: None,
        tls: exec.tls,
    })
}

/// A loopback socket for the copy (its fixed port, or a free one) that the Flow binds and its
/// child takes over, and its port.
fn listener_for(copy: &CopySpec) -> Result<(std::net::TcpListener, u16), StartError> {
    let listen_error = |error| StartError::Listen {
        executor: copy.label.clone(),
        error,
    };
    let socket = listen_local(copy.port.unwrap_or(0)).map_err(listen_error)?;
    let port = socket
        .local_addr()
        .map_err(|e| listen_error(ListenError::of("127.0.0.1", 0, e)))?
        .port();
    Ok((socket, port))
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

/// The gRPC servers of in-process executors. Dropping them stops them.
#[derive(Default)]
pub(crate) struct InProcessServers {
    /// Each server's executor, how to stop it and its task.
    servers: Vec<InProcessServer>,
}

struct InProcessServer {
    key: CopyKey,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessServers {
    fn spawn(
        &mut self,
        executor: &str,
        slot: Slot,
        instance: crate::executor::Instance,
        listener: std::net::TcpListener,
    ) -> std::io::Result<()> {
        let key = CopyKey {
            executor: executor.to_string(),
            slot,
            port: listener.local_addr()?.port(),
        };
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = crate::executor::server::ExecutorService::new(instance);
        // Plain text on loopback, and no size limit: the gateway checked every request.
        let settings = crate::executor::server::ServeSettings {
            tls: None,
            max_request_bytes: None,
            admission: crate::request::Admission::default(),
        };
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) =
                crate::executor::server::serve(service, listener, settings, shutdown).await
            {
                tracing::error!("in-process executor failed: {e}");
            }
        });
        self.servers.push(InProcessServer { key, stop, task });
        Ok(())
    }

    /// Stops every server after its requests in flight.
    pub(crate) async fn stop(&mut self) {
        self.stop_where(|_| true).await;
    }

    /// Stops the servers `which` picks, after their requests in flight.
    pub(crate) async fn stop_where(&mut self, which: impl Fn(&CopyKey) -> bool) {
        let (stopping, kept) = std::mem::take(&mut self.servers)
            .into_iter()
            .partition::<Vec<_>, _>(|s| which(&s.key));
        self.servers = kept;
        let mut tasks = vec![];
        for s in stopping {
            let _ = s.stop.send(());
            tasks.push(s.task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Takes over the servers of `other` (copies a reload started).
    pub(crate) fn adopt(&mut self, mut other: InProcessServers) {
        self.servers.append(&mut other.servers);
    }
}

impl Drop for InProcessServers {
    fn drop(&mut self) {
        for s in &self.servers {
            s.task.abort();
        }
    }
}
