//! The Flow as data: what a Flow YAML or the builder API describes, before anything runs.

use crate::executor::Overrides;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The name of the virtual node where requests enter and results leave.
pub const GATEWAY: &str = "gateway";

/// Which copies of an executor receive a request, and when its children run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Polling {
    /// One copy gets each request (round robin); children run when it is done.
    #[default]
    Any,
    /// Every copy gets each request; children run when all are done, on their merged results.
    All,
    /// Every copy gets each request; children run when the first is done.
    AllAsync,
}

impl Polling {
    /// The polling a YAML name stands for (`ANY`, `all`, ...), if it is one.
    pub fn parse(s: &str) -> Option<Polling> {
        match s.to_ascii_uppercase().as_str() {
            "ANY" => Some(Polling::Any),
            "ALL" => Some(Polling::All),
            "ALL_ASYNC" => Some(Polling::AllAsync),
            _ => None,
        }
    }

    /// The polling of a request to `endpoint`, as Jina's head decides it: the endpoint's own
    /// when the YAML maps it; else `/search` goes to every shard and `/index` to one, whatever
    /// the executor's polling says; else the executor's polling (`*`).
    pub fn for_endpoint(
        self,
        by_endpoint: &std::collections::BTreeMap<String, Polling>,
        endpoint: &str,
    ) -> Polling {
        match (by_endpoint.get(endpoint), endpoint) {
            (Some(&given), _) => given,
            (None, "/search") => Polling::All,
            (None, "/index") => Polling::Any,
            (None, _) => self,
        }
    }

    /// Its name, as YAML writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Polling::Any => "ANY",
            Polling::All => "ALL",
            Polling::AllAsync => "ALL_ASYNC",
        }
    }
}

/// A protocol the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Grpc,
    Http,
    Websocket,
}

impl Protocol {
    /// The protocol a name stands for (`grpc`, `HTTP`, `websocket`), if it is one.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "grpc" => Some(Protocol::Grpc),
            "http" | "rest" | "https" => Some(Protocol::Http),
            "websocket" | "ws" => Some(Protocol::Websocket),
            _ => None,
        }
    }

    /// Its name, as YAML writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::Websocket => "websocket",
        }
    }
}

/// Whether a child that exited is started again (Kubernetes' `restartPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Whatever the exit: an executor is meant to serve until the Flow stops.
    #[default]
    Always,
    /// Only after a failure: a non-zero exit code or a signal.
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The policy a YAML name stands for (`always`, `on-failure`, `never`), if it is one.
    pub fn parse(s: &str) -> Option<RestartPolicy> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "always" => Some(RestartPolicy::Always),
            "on-failure" | "onfailure" => Some(RestartPolicy::OnFailure),
            "never" => Some(RestartPolicy::Never),
            _ => None,
        }
    }

    /// Its name, as YAML writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }

    /// Whether a copy that exited with `status` is started again.
    pub fn restarts_after(self, status: std::process::ExitStatus) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !status.success(),
            RestartPolicy::Never => false,
        }
    }
}

/// Which endpoints may be sent again after a failure that may have reached a handler.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Idempotent {
    /// None: a request is repeated only when it surely never reached a handler.
    #[default]
    None,
    All,
    Endpoints(Vec<String>),
}

impl Idempotent {
    /// Whether a call to `endpoint` may be tried again on another replica.
    pub fn allows(&self, endpoint: &str) -> bool {
        match self {
            Idempotent::None => false,
            Idempotent::All => true,
            Idempotent::Endpoints(list) => list.iter().any(|e| e == endpoint),
        }
    }
}

/// How the gateway calls one executor: Jina's `timeout_send` and `retries`, and our
/// `idempotent` (docs/resilience.md).
#[derive(Clone, Debug, PartialEq)]
pub struct CallPolicy {
    /// How long one call may take; None waits forever.
    pub timeout_send: Option<Duration>,
    /// How many other replicas a failed call may be tried on; None: each other replica once.
    pub retries: Option<usize>,
    pub idempotent: Idempotent,
    /// Jina 3's `when`: only the documents that match go to the executor; the rest pass on.
    pub when: Option<crate::document::Query>,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout_send: None,
            retries: None,
            idempotent: Idempotent::None,
            when: None,
        }
    }
}

/// A certificate chain and its key, in PEM files (Jina 3's `ssl_certfile` / `ssl_keyfile`).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

pub use crate::executor::Uses;

/// The gateway's settings: the Flow's `with`.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySpec {
    /// The Flow's name (`with: {name: ...}`), under which `jina flows` lists it; None: the
    /// YAML file's name.
    pub name: Option<String>,
    pub protocols: Vec<Protocol>,
    /// One port per protocol, in order; missing ones are chosen free at start.
    pub ports: Vec<u16>,
    pub host: String,
    /// Requests in flight per client stream.
    pub prefetch: usize,
    /// Milliseconds to wait for each executor to be ready; -1 waits forever.
    pub timeout_ready: i64,
    /// Environment given to every executor.
    pub env: BTreeMap<String, String>,
    /// Jina's `timeout_send` for every executor that sets none (ms); None waits forever.
    pub timeout_send: Option<Duration>,
    /// The largest request the gateway takes, on every protocol.
    pub max_request_bytes: usize,
    /// The most documents one request may hold, at any depth (0: no limit).
    pub max_request_docs: usize,
    /// The memory the requests one process (the gateway, each executor) handles at once may
    /// take, estimated before they are decoded (0: no limit).
    pub max_in_flight_bytes: usize,
    /// Jina's `cors`: let web pages of other origins call the REST face.
    pub cors: bool,
    /// Host names (globs) the REST and WebSocket faces answer to besides addresses, loopback
    /// names and this machine's: the DNS-rebinding guard (`gateway::hosts`).
    pub allowed_hosts: Vec<String>,
    /// Serve gRPC, HTTPS and WSS with this identity.
    pub tls: Option<TlsFiles>,
    /// Jina's `monitoring`: Prometheus metrics from the gateway, and from every executor that
    /// does not say otherwise.
    pub monitoring: bool,
    /// Where the gateway serves `/metrics`; a free port when None.
    pub port_monitoring: Option<u16>,
    /// Jina's `tracing` with `traces_exporter_host` / `traces_exporter_port`: where the
    /// gateway and every executor send their spans (OTLP over gRPC); None: no traces.
    pub tracing: Option<crate::telemetry::TraceExport>,
    /// Jina 2's Flow-level `workspace`: each executor's when its entry gives none.
    pub workspace: Option<String>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        GatewaySpec {
            protocols: vec![Protocol::Grpc],
            ports: vec![],
            host: "0.0.0.0".into(),
            prefetch: 1000,
            timeout_ready: 60_000,
            env: BTreeMap::new(),
            timeout_send: None,
            max_request_bytes: crate::request::DEFAULT_MAX_REQUEST_BYTES,
            max_request_docs: crate::request::DEFAULT_MAX_REQUEST_DOCS,
            max_in_flight_bytes: crate::request::DEFAULT_MAX_IN_FLIGHT_BYTES,
            cors: false,
            allowed_hosts: vec![],
            tls: None,
            name: None,
            monitoring: false,
            port_monitoring: None,
            tracing: None,
            workspace: None,
        }
    }
}

/// One executor of a Flow, with every option of `.add()`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExecutorSpec {
    /// Defaults to `executor<i>` by position.
    pub name: Option<String>,
    pub uses: Uses,
    pub overrides: Overrides,
    /// Parents by name (`gateway` for the entry). `None`: the previous executor.
    pub needs: Option<Vec<String>>,
    /// Copies that each get every request (ALL) or take turns (ANY): the reference's
    /// `parallel`, Jina 3's `shards`.
    pub shards: u32,
    /// Copies of each shard that take turns: Jina 3's `replicas`.
    pub replicas: u32,
    pub polling: Polling,
    /// Jina 3's polling per endpoint (`polling: {/search: ALL, '*': ANY}`); `polling` is the
    /// rest.
    pub polling_by_endpoint: BTreeMap<String, Polling>,
    pub uses_before: Option<Uses>,
    pub uses_after: Option<Uses>,
    /// Where an external executor runs.
    pub host: Option<String>,
    pub port_in: Option<u16>,
    /// Already running somewhere: the Flow connects to it but does not start or stop it.
    pub external: bool,
    pub timeout_ready: Option<i64>,
    pub env: BTreeMap<String, String>,
    pub workspace: Option<String>,
    /// Jina 3's `py_modules` on the entry (paths resolved against the YAML's folder): `uses`
    /// then names a Python class (or YAML) for Python Jina to serve.
    pub py_modules: Vec<String>,
    /// Which runtime serves it when it is a Python executor (`executor::python`'s rule).
    pub python_runtime: crate::executor::PythonRuntime,
    /// Jina's `timeout_send` (ms; -1 waits forever); None takes the Flow's.
    pub timeout_send: Option<i64>,
    /// Jina's `retries`: other replicas a failed call may be tried on; None: each once.
    pub retries: Option<usize>,
    /// Endpoints that may be sent again after a failure that may have reached a handler.
    pub idempotent: Idempotent,
    /// Jina 3's `when`: which documents go to this executor.
    pub when: Option<crate::document::Query>,
    pub restart: RestartPolicy,
    /// An external executor that serves TLS.
    pub tls: bool,
    /// A `docker://` executor's bind mounts, `HOST:CONTAINER[:ro]` (a relative host path is
    /// resolved against the YAML's folder).
    pub volumes: Vec<String>,
    /// A `docker://` executor's GPUs, as `docker run --gpus` takes them (`all`, `2`, `device=0`).
    pub gpus: Option<String>,
    /// Jina 3's `entrypoint`: for a `docker://` executor, the command that replaces the
    /// image's entrypoint (`jina executor --uses Sentencizer`).
    pub entrypoint: Option<String>,
    /// The port of the `jina daemon` on `host` that starts this executor there (JinaD's
    /// `port_expose`); None: its default.
    pub port_expose: Option<u16>,
    /// Files sent with it to the daemon (relative to the YAML's folder, as written).
    pub upload_files: Vec<String>,
    /// Its own `monitoring`; None: the Flow's.
    pub monitoring: Option<bool>,
    /// Where it serves `/metrics` (a single copy only); a free port when None.
    pub port_monitoring: Option<u16>,
}

impl ExecutorSpec {
    /// Whether it is started on another machine, through the `jina daemon` there: a `host`
    /// that is not this machine, and not `external` (already running there).
    pub fn is_remote(&self) -> bool {
        !self.external
            && self
                .host
                .as_deref()
                .is_some_and(|h| !matches!(h, "localhost" | "127.0.0.1" | "0.0.0.0" | "::1"))
    }

    /// An executor entry with every default (`BaseExecutor`, one copy).
    pub fn new() -> Self {
        ExecutorSpec {
            shards: 1,
            replicas: 1,
            ..Default::default()
        }
    }
}

/// A whole Flow, before it runs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FlowSpec {
    pub gateway: GatewaySpec,
    pub executors: Vec<ExecutorSpec>,
    /// The folder relative `uses` paths resolve against (the Flow YAML's folder).
    pub base_dir: Option<PathBuf>,
}

impl FlowSpec {
    /// The name of executor `i`: its own, or `executor<i>`.
    pub fn name_of(&self, i: usize) -> String {
        self.executors[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("executor{i}"))
    }

    /// How the gateway calls executor `i`: its own policy, with the Flow's `timeout_send`
    /// where it sets none.
    pub fn call_policy(&self, i: usize) -> CallPolicy {
        let e = &self.executors[i];
        CallPolicy {
            timeout_send: match e.timeout_send {
                Some(ms) => u64::try_from(ms).ok().map(Duration::from_millis),
                None => self.gateway.timeout_send,
            },
            retries: e.retries,
            idempotent: e.idempotent.clone(),
            when: e.when.clone(),
        }
    }

    /// Names of executors no other executor needs so far (the reference's "orphans").
    pub fn orphans(&self) -> Vec<String> {
        let mut needed = std::collections::HashSet::new();
        for (i, e) in self.executors.iter().enumerate() {
            match &e.needs {
                Some(n) => needed.extend(n.iter().cloned()),
                None if i > 0 => {
                    needed.insert(self.name_of(i - 1));
                }
                None => {}
            }
        }
        (0..self.executors.len())
            .map(|i| self.name_of(i))
            .filter(|n| !needed.contains(n))
            .collect()
    }
}
