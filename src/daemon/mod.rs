//! `jina daemon`: starts executors on this machine for Flows that run elsewhere (what JinaD
//! did for Jina 2), over a small HTTP API.
//!
//! - `POST /executors` takes a [`SpawnRequest`] (the executor's `uses`, the files it needs,
//!   base64, its overrides, and the owner secret of the Flow that asks), writes the files into
//!   a workspace of its own, starts `jina executor` there (or, for `docker://IMAGE`, the image
//!   in a container, as a Flow does), waits until it serves and answers its address
//!   ([`Spawned`]).
//! - `PUT /executors/{id}/lease` renews its lease; an executor whose lease runs out (its Flow
//!   died without saying so) is stopped.
//! - `GET /executors/{id}/logs` streams its output: what it printed so far, then each line as it
//!   comes, until it ends.
//! - `GET /executors` lists the caller's own, `DELETE /executors/{id}` stops one, `GET
//!   /openapi.json` describes all this, `GET /` answers that the daemon is up.
//!
//! It runs code on request, so (docs/deploy.md has the threat model): every request but `GET
//! /` needs the token (there is always one: generated when none is given), compared in
//! constant time, with failed attempts limited per address; each executor answers only to the
//! owner secret of the Flow that started it; what a request may ask for is checked first
//! (`checks`): a workspace, loaders' and runtimes' environment, and host files are the
//! daemon's, not the caller's; numbers are bounded. Executors die with the daemon, with their
//! process groups, and a daemon that starts finds and stops what a killed one left.
//! It owns the executors it started and nothing else; [`client`] is the Flow's side.

mod auth;
mod checks;
pub(crate) mod client;

pub(crate) use auth::Secret;

use crate::executor::{ExecutorFlags, Overrides};
use auth::{Failures, OWNER_HEADER};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use checks::{Refused, Runs, printable};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::broadcast;

/// A lease given when the request names none.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The largest spawn request (its uploaded files), in bytes.
const MAX_REQUEST_BYTES: usize = 256 << 20;
/// The most strings (keys and values) a spawn request's JSON may hold: what bounds the memory
/// of reading it, whatever its size.
const MAX_REQUEST_STRINGS: usize = 100_000;
/// The most executors running at once.
const MAX_EXECUTORS: usize = 64;
/// Lines of an executor's output kept for a logs request that comes late.
const HISTORY_LINES: usize = 1000;
/// The longest line of an executor's output kept; the rest of it is cut.
const MAX_LINE: usize = 16 << 10;
/// How long an executor may take to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping executor may take to finish its requests.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a connection may take to send a request's headers (a slow sender holds a
/// connection no longer).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections open at once: a flood of them is turned away, not a flood of file
/// descriptors.
const MAX_CONNECTIONS: usize = 256;
/// The file in an executor's workspace that names its process: a daemon that starts stops
/// what a killed one left.
const PID_FILE: &str = ".jina-daemon-pid";

/// What a Flow asks the daemon to start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpawnRequest {
    /// The executor's name in logs (`enc/rep-1`).
    pub name: String,
    /// A registered executor, inline YAML, the path of one of `files`, or `docker://IMAGE`.
    pub uses: String,
    /// Files for its workspace: relative path → base64 content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub uses_with: Map<String, Value>,
    #[serde(default)]
    pub uses_metas: Map<String, Value>,
    /// Endpoint → handler.
    #[serde(default)]
    pub uses_requests: indexmap::IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub uses_dynamic_batching: indexmap::IndexMap<String, crate::executor::DynamicBatching>,
    /// The port to serve on; a free one when none.
    #[serde(default)]
    pub port: Option<u16>,
    /// Seconds until it is stopped unless the lease is renewed.
    #[serde(default)]
    pub lease_seconds: Option<u64>,
    /// For a `docker://` image: the command that replaces its entrypoint.
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// Its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The secret of the Flow that asks: only a caller that sends it again (`X-Jina-Owner`)
    /// sees, follows, renews or stops the executor.
    #[serde(default)]
    pub owner: String,
}

/// A started executor, as the API answers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Spawned {
    pub id: String,
    pub name: String,
    pub port: u16,
    pub pid: u32,
    pub workspace: String,
}

/// How `jina daemon` serves.
#[derive(Clone, Debug)]
pub(crate) struct DaemonSettings {
    pub host: String,
    /// Required as `Authorization: Bearer TOKEN` on every request but `GET /`.
    pub token: Secret,
    /// Where each executor's workspace is made.
    pub root: PathBuf,
    /// The `jina` binary that serves executors.
    pub program: PathBuf,
    /// Serve the API over HTTPS, and the executors it starts over TLS, with this certificate.
    pub tls: Option<DaemonTls>,
}

/// The daemon's certificate: its API and the executors it starts serve TLS with it.
#[derive(Clone)]
pub(crate) struct DaemonTls {
    pub server: crate::tls::ServerTls,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

impl std::fmt::Debug for DaemonTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DaemonTls({})", self.certfile.display())
    }
}

/// One executor the daemon started.
struct Started {
    spawned: Spawned,
    owner: Secret,
    /// The leader of its process group: stopping it stops what it forked too.
    child: tokio::process::Child,
    lease: Duration,
    lease_until: Instant,
    logs: Logs,
    workspace: PathBuf,
    /// Its place among the [`MAX_EXECUTORS`], given back when it is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// An executor's output: the last lines, and the live ones for whoever follows.
#[derive(Clone)]
struct Logs {
    history: Arc<Mutex<std::collections::VecDeque<String>>>,
    live: broadcast::Sender<String>,
}

type Executors = Arc<Mutex<BTreeMap<String, Started>>>;

#[derive(Clone)]
struct Daemon {
    settings: Arc<DaemonSettings>,
    executors: Executors,
    failures: Arc<Failures>,
    /// One permit per executor that runs or starts.
    slots: Arc<tokio::sync::Semaphore>,
}

/// A lock that a panic elsewhere cannot make unusable: the data under it stays consistent
/// (every change is one insert or remove), so a poisoned one is taken as it is.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error answer: a status and a one-line message.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        ApiError(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string())
    }
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Serves the API on `listener` until `shutdown`, then stops every executor it started.
pub(crate) async fn serve(
    settings: DaemonSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    std::fs::create_dir_all(&settings.root)?;
    stop_leftovers(&settings.root);
    let daemon = Daemon {
        settings: Arc::new(settings),
        executors: Arc::default(),
        failures: Arc::default(),
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_EXECUTORS)),
    };
    let watchdog = tokio::spawn(expire_leases(daemon.executors.clone()));
    let app = Router::new()
        .route(
            "/",
            get(|| async { Json(json!({"jina-daemon": env!("CARGO_PKG_VERSION")})) }),
        )
        .route("/openapi.json", get(openapi))
        .route("/executors", get(list).post(spawn))
        .route("/executors/{id}", axum::routing::delete(stop))
        .route("/executors/{id}/lease", put(renew))
        .route("/executors/{id}/logs", get(logs))
        .layer(axum::middleware::from_fn_with_state(
            daemon.clone(),
            authorize,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(daemon.clone());
    let served = match &daemon.settings.tls {
        Some(tls) => serve_bounded(tls.server.incoming(listener), app, shutdown).await,
        None => serve_bounded(listener, app, shutdown).await,
    };
    watchdog.abort();
    let all: Vec<Started> = std::mem::take(&mut *locked(&daemon.executors))
        .into_values()
        .collect();
    futures::future::join_all(all.into_iter().map(finish)).await;
    served
}

/// The address a request came from.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

/// Serves `app` on each connection `listener` accepts, until `shutdown`: at most
/// [`MAX_CONNECTIONS`] at once (more are closed at once), each closed when a request's
/// headers take longer than [`HEADER_TIMEOUT`]. Open connections get
/// `shutdown::CONNECTION_GRACE` after `shutdown`.
async fn serve_bounded<L>(
    mut listener: L,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(io);
            continue;
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(Peer(peer))));
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .await;
        });
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
    }
    let grace = tokio::time::sleep(crate::shutdown::CONNECTION_GRACE);
    tokio::select! {
        () = async { while connections.join_next().await.is_some() {} } => {}
        () = grace => connections.abort_all(),
    }
    Ok(())
}

/// Every request but `GET /` needs the token. An address that failed too often is refused
/// for a while without being heard.
async fn authorize(
    State(daemon): State<Daemon>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() == "/" {
        return next.run(request).await;
    }
    if daemon.failures.blocked(peer.ip()) {
        return ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests with a wrong token from this address; wait a minute".into(),
        )
        .into_response();
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !daemon.settings.token.matches(given) {
        daemon.failures.failed(peer.ip());
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "this daemon needs its token: Authorization: Bearer TOKEN (JINA_DAEMON_TOKEN on the Flow's side)".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The owner secret a request sends.
fn owner_of(headers: &HeaderMap) -> &str {
    headers
        .get(OWNER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The caller's own executors.
async fn list(State(daemon): State<Daemon>, headers: HeaderMap) -> Json<Vec<Spawned>> {
    let owner = owner_of(&headers);
    let executors = locked(&daemon.executors);
    Json(
        executors
            .values()
            .filter(|s| s.owner.matches(owner))
            .map(|s| s.spawned.clone())
            .collect(),
    )
}

/// Reads a spawn request, bounding what reading it may cost: its size (the body limit) and
/// the number of its strings (a body of tiny keys costs far more memory than its bytes).
fn read_request(body: &[u8]) -> Result<SpawnRequest, ApiError> {
    let strings = body.iter().filter(|&&b| b == b'"').count() / 2;
    if strings > MAX_REQUEST_STRINGS {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a spawn request holds at most {MAX_REQUEST_STRINGS} keys and values"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a spawn request: {e}"),
        )
    })
}

async fn spawn(
    State(daemon): State<Daemon>,
    body: axum::body::Bytes,
) -> Result<Json<Spawned>, ApiError> {
    let request = read_request(&body)?;
    drop(body);
    checks::check(&request)?;
    let slot = daemon.slots.clone().try_acquire_owned().map_err(|_| {
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("this daemon runs {MAX_EXECUTORS} executors already; stop some first"),
        )
    })?;
    // A task of its own: a caller that goes away mid-start does not cancel it half-way (which
    // would leave a container or a workspace); what it starts then lives until its lease ends.
    let starting = tokio::spawn(async move {
        let id = crate::document::new_id();
        let workspace = daemon.settings.root.join(&id);
        match start(&daemon.settings, &request, &id, &workspace, slot).await {
            Ok(started) => {
                let spawned = started.spawned.clone();
                tracing::info!("started {} ({id}) on port {}", spawned.name, spawned.port);
                locked(&daemon.executors).insert(id, started);
                Ok(spawned)
            }
            Err(e) => {
                // Nothing of a failed spawn stays: no process, no container, no workspace.
                let _ = std::fs::remove_dir_all(&workspace);
                Err(e)
            }
        }
    });
    match starting.await {
        Ok(answer) => answer.map(Json),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the start failed: {e}"),
        )),
    }
}

/// Writes the files, starts the executor and waits until it serves; on any failure, what
/// started is stopped.
async fn start(
    settings: &DaemonSettings,
    request: &SpawnRequest,
    id: &str,
    workspace: &std::path::Path,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Started, ApiError> {
    write_files(workspace, &request.files)?;
    let runs = checks::runs(request, workspace)?;
    let port = match request.port {
        Some(p) => p,
        None => crate::net::free_port()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    };
    let args = command_of(settings, request, runs, workspace, port)?;
    let mut command = tokio::process::Command::new(&settings.program);
    command
        .args(&args)
        .envs(&request.env)
        .current_dir(workspace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so that stopping it stops what it forks; and it dies with
        // the daemon.
        .process_group(0)
        .kill_on_drop(true);
    crate::procs::die_with_this_process(&mut command);
    let mut child = command.spawn().map_err(internal)?;
    let pid = child.id().unwrap_or_default();
    let ticks = crate::procs::start_ticks(pid).unwrap_or_default();
    std::fs::write(workspace.join(PID_FILE), format!("{pid} {ticks}")).map_err(internal)?;
    let logs = Logs {
        history: Arc::default(),
        live: broadcast::channel(256).0,
    };
    let relays = relay_output(&mut child, &logs);
    let lease = Duration::from_secs(request.lease_seconds.unwrap_or(0));
    let lease = match lease.is_zero() {
        true => DEFAULT_LEASE,
        false => lease,
    };
    let mut started = Started {
        spawned: Spawned {
            id: id.to_string(),
            name: request.name.clone(),
            port,
            pid,
            workspace: workspace.display().to_string(),
        },
        owner: Secret::new(request.owner.clone()),
        child,
        lease,
        lease_until: Instant::now() + lease,
        logs,
        workspace: workspace.to_path_buf(),
        _slot: slot,
    };
    let tls = settings.tls.is_some();
    if let Err(e) = wait_ready(&settings.host, tls, &mut started, relays).await {
        finish(started).await;
        return Err(e);
    }
    // Its lease runs from when it serves.
    started.lease_until = Instant::now() + started.lease;
    Ok(started)
}

/// Writes the uploaded files into the copy's workspace, each checked before any is written.
fn write_files(
    workspace: &std::path::Path,
    uploads: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    use base64::Engine as _;
    let mut files = vec![];
    for (name, content) in uploads {
        let path = checks::inside(workspace, name)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("files: '{}' is not base64: {e}", printable(name)),
                )
            })?;
        files.push((path, bytes));
    }
    std::fs::create_dir_all(workspace).map_err(internal)?;
    for (path, bytes) in files {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(internal)?;
        }
        std::fs::write(&path, bytes).map_err(internal)?;
    }
    Ok(())
}

/// The arguments of the jina binary that serve the copy: `jina executor ...` (its overrides
/// in files, not on the command line), or an image run as a Flow runs it, published on the
/// daemon's address (the daemon chooses its volumes, user, network and devices: none).
fn command_of(
    settings: &DaemonSettings,
    request: &SpawnRequest,
    runs: Runs,
    workspace: &std::path::Path,
    port: u16,
) -> Result<Vec<String>, ApiError> {
    let mut metas = request.uses_metas.clone();
    metas.insert("workspace".into(), workspace.display().to_string().into());
    let overrides = Overrides {
        uses_with: request.uses_with.clone(),
        uses_metas: metas,
        uses_requests: request.uses_requests.clone(),
        uses_dynamic_batching: request.uses_dynamic_batching.clone(),
    };
    match runs {
        Runs::Executor(uses) => {
            let flags = ExecutorFlags {
                host: settings.host.clone(),
                name: Some(request.name.clone()),
                ssl_certfile: settings.tls.as_ref().map(|t| t.certfile.clone()),
                ssl_keyfile: settings.tls.as_ref().map(|t| t.keyfile.clone()),
                ..ExecutorFlags::new(uses, port).with_overrides(&overrides)
            };
            let args = flags
                .to_args_with_files(&workspace.join(".jina"))
                .map_err(internal)?;
            Ok(std::iter::once("executor".to_string())
                .chain(args)
                .collect())
        }
        Runs::Image(_) if settings.tls.is_some() => Err(Refused {
            field: "uses".into(),
            why: "this daemon serves TLS, and an image's executor would serve plain gRPC (its certificate is not in the container); not supported yet".into(),
        }
        .into()),
        Runs::Image(image) => {
            let flags = ExecutorFlags {
                name: Some(request.name.clone()),
                ..ExecutorFlags::new("", port).with_overrides(&overrides)
            };
            let executor_args = flags.portable_args();
            let length: usize = executor_args.iter().map(String::len).sum();
            if length > 64 << 10 {
                return Err(Refused {
                    field: "uses_with".into(),
                    why: "an image's overrides go on its command line, which takes 64 KiB at most"
                        .into(),
                }
                .into());
            }
            Ok(crate::container::ContainerCopy {
                image: &image,
                label: &request.name,
                port,
                publish_host: &settings.host,
                monitoring_port: None,
                env: &request.env,
                volumes: &[],
                gpus: None,
                entrypoint: request.entrypoint.as_deref(),
                executor_args,
            }
            .guarded_args())
        }
    }
}

/// Relays the child's output to the daemon's own and into its logs, line by line (a line cut
/// at [`MAX_LINE`]); the tasks end when the child's end of the pipes closes.
fn relay_output(
    child: &mut tokio::process::Child,
    logs: &Logs,
) -> Vec<tokio::task::JoinHandle<()>> {
    let outputs = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ];
    outputs
        .into_iter()
        .flatten()
        .map(|output| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(output);
                let mut bytes = Vec::new();
                loop {
                    bytes.clear();
                    let read = (&mut reader)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut bytes)
                        .await;
                    match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if bytes.last() != Some(&b'\n') && bytes.len() == MAX_LINE {
                        // Cut: skip the rest of this line.
                        let mut rest = Vec::new();
                        let _ = reader.read_until(b'\n', &mut rest).await;
                        bytes.extend_from_slice("… (cut)".as_bytes());
                    }
                    let line = String::from_utf8_lossy(&bytes).trim_end().to_string();
                    eprintln!("{line}");
                    {
                        let mut history = locked(&logs.history);
                        if history.len() == HISTORY_LINES {
                            history.pop_front();
                        }
                        history.push_back(line.clone());
                    }
                    let _ = logs.live.send(line);
                }
            })
        })
        .collect()
}

/// Waits until the copy's health check says SERVING (over TLS: until it says `ready and
/// listening`); a copy that exits first is an error
/// with its last lines of output (read to the end of its pipes first), and so is one that
/// takes longer than [`READY_TIMEOUT`].
async fn wait_ready(
    host: &str,
    tls: bool,
    started: &mut Started,
    relays: Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), ApiError> {
    let check_host = match host {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    let (name, port) = (started.spawned.name.clone(), started.spawned.port);
    let since = Instant::now();
    loop {
        if let Ok(Some(status)) = started.child.try_wait() {
            // Its last words are in the pipes until the relays read them to the end (bounded:
            // a process it forked may hold the pipes open).
            let _ = tokio::time::timeout(Duration::from_secs(1), futures::future::join_all(relays))
                .await;
            let last: Vec<String> = locked(&started.logs.history)
                .iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect();
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{name} exited ({status}) before it was ready: {}",
                    last.join(" | ")
                ),
            ));
        }
        // Over TLS, its own line says it serves: a health check would need a root that
        // signed the daemon's certificate, which the daemon is not given.
        let serving = match tls {
            true => locked(&started.logs.history)
                .iter()
                .any(|l| l.contains("ready and listening")),
            false => crate::grpc::check_serving(check_host, port, Duration::from_secs(1))
                .await
                .is_ok(),
        };
        if serving {
            return Ok(());
        }
        if since.elapsed() > READY_TIMEOUT {
            return Err(ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{name} was not ready within {READY_TIMEOUT:?}"),
            ));
        }
        // Polls the health of a process that is starting: there is no event to wait for.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops what a daemon before this one left (it was killed): each workspace that names a
/// process still running (the same process: pid and start time) has its process group killed,
/// and every workspace is removed.
fn stop_leftovers(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let workspace = entry.path();
        if !workspace.is_dir() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(workspace.join(PID_FILE)) else {
            continue;
        };
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pid)), Some(Ok(ticks))) = (fields.next(), fields.next())
            && let Ok(pid) = u32::try_from(pid)
            && crate::procs::start_ticks(pid) == Some(ticks)
        {
            tracing::warn!("stopping process {pid}, left by a daemon before this one");
            // SAFETY: kill(2) on the group of a process our predecessor started.
            unsafe { libc::killpg(pid as i32, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&workspace);
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no executor '{}' of yours here", printable(id)),
    )
}

/// Takes the caller's own executor `id` out of the table, or says there is none: another
/// Flow's executor is not told apart from one that does not exist.
fn take_own(daemon: &Daemon, id: &str, headers: &HeaderMap) -> Result<Started, ApiError> {
    let mut executors = locked(&daemon.executors);
    match executors.get(id) {
        Some(s) if s.owner.matches(owner_of(headers)) => Ok(executors.remove(id).expect("there")),
        _ => Err(not_found(id)),
    }
}

async fn renew(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut executors = locked(&daemon.executors);
    match executors.get_mut(&id) {
        Some(s) if s.owner.matches(owner_of(&headers)) => {
            s.lease_until = Instant::now() + s.lease;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(not_found(&id)),
    }
}

async fn stop(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let started = take_own(&daemon, &id, &headers)?;
    tracing::info!("stopping {} ({id}): asked to", started.spawned.name);
    finish(started).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (history, live) = {
        let executors = locked(&daemon.executors);
        let started = executors
            .get(&id)
            .filter(|s| s.owner.matches(owner_of(&headers)))
            .ok_or_else(|| not_found(&id))?;
        let history: Vec<String> = locked(&started.logs.history).iter().cloned().collect();
        (history, started.logs.live.subscribe())
    };
    let past = futures::stream::iter(history);
    let coming = futures::stream::unfold(live, |mut live| async move {
        loop {
            match live.recv().await {
                Ok(line) => return Some((line, live)),
                // A reader too slow for the executor misses lines, not the rest.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    let body = past
        .chain(coming)
        .map(|line| Ok::<_, std::convert::Infallible>(format!("{line}\n")));
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Stops executors whose lease ran out: their Flow is gone without saying so.
async fn expire_leases(executors: Executors) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let expired: Vec<Started> = {
            let mut executors = locked(&executors);
            let now = Instant::now();
            let ids: Vec<String> = executors
                .iter()
                .filter(|(_, s)| s.lease_until <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| executors.remove(id)).collect()
        };
        for started in expired {
            tracing::warn!(
                "stopping {} ({}): its lease ran out (the Flow that started it is gone)",
                started.spawned.name,
                started.spawned.id
            );
            tokio::spawn(finish(started));
        }
    }
}

/// SIGTERM to its process group, then SIGKILL after the grace; its workspace is removed.
async fn finish(mut started: Started) {
    let group = started.child.id().map(|pid| pid as i32);
    if let Some(group) = group {
        // SAFETY: kill(2) on the process group of our own child.
        unsafe { libc::killpg(group, libc::SIGTERM) };
    }
    if tokio::time::timeout(STOP_GRACE, started.child.wait())
        .await
        .is_err()
        && let Some(group) = group
    {
        // SAFETY: as above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
    }
    let _ = started.child.kill().await;
    if let Some(group) = group {
        // What it forked and left behind goes too (the leader is gone, the group may not be).
        // SAFETY: as above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
    }
    let _ = std::fs::remove_dir_all(&started.workspace);
}

async fn openapi() -> Json<Value> {
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    Json(json!({
        "openapi": "3.0.2",
        "info": {"title": "jina daemon", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Starts executors on this machine for Flows that run elsewhere. Every path but / needs Authorization: Bearer TOKEN; each executor answers only to the X-Jina-Owner secret it was started with."},
        "paths": {
            "/": {"get": {"summary": "Whether the daemon is up", "responses": {"200": {"description": "its version"}}}},
            "/executors": {
                "get": {"summary": "The caller's executors (by X-Jina-Owner)", "responses": {"200": {"description": "a list of {id, name, port, pid, workspace}"}}},
                "post": {"summary": "Start an executor in a workspace of its own and wait until it serves",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpawnRequest"}}}},
                         "responses": {"200": {"description": "{id, name, port, pid, workspace}"}, "400": {"description": "bad base64"}, "413": {"description": "too many keys and values"}, "422": {"description": "a field the daemon refuses (it says which and why), or it exited before it was ready"}, "429": {"description": "too many executors, or too many failed tokens from this address"}}}
            },
            "/executors/{id}": {"delete": {"summary": "Stop it", "parameters": id, "responses": {"204": {"description": "stopped"}, "404": {"description": "no such executor"}}}},
            "/executors/{id}/lease": {"put": {"summary": "Renew its lease", "parameters": id, "responses": {"204": {"description": "renewed"}, "404": {"description": "no such executor"}}}},
            "/executors/{id}/logs": {"get": {"summary": "Its output so far, then each line as it comes (text/plain)", "parameters": id, "responses": {"200": {"description": "lines"}}}}
        },
        "components": {"schemas": {"SpawnRequest": {"type": "object", "required": ["name", "uses", "owner"], "properties": {
            "name": {"type": "string"},
            "uses": {"type": "string", "description": "a registered executor, inline YAML, the path of one of files, or docker://IMAGE"},
            "files": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}, "description": "relative path -> base64 content"},
            "uses_with": {"type": "object"}, "uses_metas": {"type": "object"}, "uses_requests": {"type": "object"}, "uses_dynamic_batching": {"type": "object"},
            "port": {"type": "integer"}, "lease_seconds": {"type": "integer"},
            "entrypoint": {"type": "string", "description": "for uses docker://IMAGE: the command replacing its entrypoint"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "no variable that steers a loader, an interpreter or the runtime (LD_*, PYTHON*, PATH, JINA_PYTHON, ...)"},
            "owner": {"type": "string", "description": "a secret of the Flow that asks, 16 characters or more; sent again as X-Jina-Owner"}
        }}}}
    }))
}
