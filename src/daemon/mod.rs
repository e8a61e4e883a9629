//! `jina daemon`: starts executors on this machine for Flows that run elsewhere (what JinaD
//! did for Jina 2), over a small HTTP API.
//!
//! - `POST /executors` takes a [`SpawnRequest`] (the executor's `uses`, the files it needs,
//!   base64, and its overrides), writes the files into a workspace of its own, starts `jina
//!   executor` there (or, for `docker://IMAGE`, the image in a container, as a Flow does),
//!   waits until it serves and answers its address ([`Spawned`]).
//! - `PUT /executors/{id}/lease` renews its lease; an executor whose lease runs out (its Flow
//!   died without saying so) is stopped.
//! - `GET /executors/{id}/logs` streams its output: what it printed so far, then each line as it
//!   comes, until it ends.
//! - `GET /executors` lists them, `DELETE /executors/{id}` stops one, `GET /openapi.json`
//!   describes all this, `GET /` answers that the daemon is up.
//!
//! It runs code on request, so it binds only where told, can require a token (`Authorization:
//! Bearer`), and writes uploads only inside their workspace (no absolute path, no `..`).
//! It owns the executors it started and nothing else; [`client`] is the Flow's side.

pub(crate) mod client;

use crate::executor::{ExecutorFlags, UsesText};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Component, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;

/// A lease given when the request names none.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The largest spawn request (its uploaded files), in bytes.
const MAX_REQUEST_BYTES: usize = 256 << 20;
/// Lines of an executor's output kept for a logs request that comes late.
const HISTORY_LINES: usize = 1000;
/// How long an executor may take to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping executor may take to finish its requests.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a Flow asks the daemon to start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpawnRequest {
    /// The executor's name in logs (`enc/rep-1`).
    pub name: String,
    /// A registered executor, inline YAML, or the path of one of `files`.
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
    pub token: Option<String>,
    /// Where each executor's workspace is made.
    pub root: PathBuf,
    /// The `jina` binary that serves executors.
    pub program: PathBuf,
}

/// One executor the daemon started.
struct Started {
    spawned: Spawned,
    child: tokio::process::Child,
    lease: Duration,
    lease_until: Instant,
    logs: Logs,
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
}

/// An error answer: a status and a one-line message.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// Serves the API on `listener` until `shutdown`, then stops every executor it started.
pub(crate) async fn serve(
    settings: DaemonSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    std::fs::create_dir_all(&settings.root)?;
    let daemon = Daemon {
        settings: Arc::new(settings),
        executors: Arc::default(),
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
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watchdog.abort();
    let all: Vec<Started> = {
        let mut executors = daemon.executors.lock().unwrap();
        std::mem::take(&mut *executors).into_values().collect()
    };
    for started in all {
        finish(started).await;
    }
    served
}

/// Every request but `GET /` needs the token, when there is one.
async fn authorize(
    State(daemon): State<Daemon>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let open = request.uri().path() == "/";
    if let (Some(token), false) = (&daemon.settings.token, open) {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "this daemon needs its token: Authorization: Bearer TOKEN (JINA_DAEMON_TOKEN on the Flow's side)".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn list(State(daemon): State<Daemon>) -> Json<Vec<Spawned>> {
    let executors = daemon.executors.lock().unwrap();
    Json(executors.values().map(|s| s.spawned.clone()).collect())
}

/// Where an uploaded file goes: a relative path of plain names, inside the workspace.
fn inside(workspace: &std::path::Path, name: &str) -> Result<PathBuf, ApiError> {
    let path = std::path::Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "files: '{name}' must be a relative path inside the workspace (no '/' at the start, no '..')"
            ),
        ));
    }
    Ok(workspace.join(path))
}

async fn spawn(
    State(daemon): State<Daemon>,
    Json(request): Json<SpawnRequest>,
) -> Result<Json<Spawned>, ApiError> {
    let id = crate::document::new_id();
    let workspace = daemon.settings.root.join(&id);
    write_files(&workspace, &request.files)?;
    let port = match request.port {
        Some(p) => p,
        None => crate::net::free_port()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    };
    let args = command_of(&daemon.settings, &request, &workspace, port)?;
    let mut child = tokio::process::Command::new(&daemon.settings.program)
        .args(&args)
        .envs(&request.env)
        .current_dir(&workspace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(internal)?;
    let logs = Logs {
        history: Arc::default(),
        live: broadcast::channel(256).0,
    };
    let relays = relay_output(&mut child, &logs);
    wait_ready(
        &daemon.settings.host,
        port,
        &request.name,
        &mut child,
        &logs,
        relays,
    )
    .await?;
    let lease = request
        .lease_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LEASE);
    let spawned = Spawned {
        id: id.clone(),
        name: request.name.clone(),
        port,
        pid: child.id().unwrap_or_default(),
        workspace: workspace.display().to_string(),
    };
    tracing::info!("started {} ({id}) on port {port}", spawned.name);
    daemon.executors.lock().unwrap().insert(
        id,
        Started {
            spawned: spawned.clone(),
            child,
            lease,
            lease_until: Instant::now() + lease,
            logs,
        },
    );
    Ok(Json(spawned))
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Writes the uploaded files into the copy's workspace, each checked before any is written.
fn write_files(
    workspace: &std::path::Path,
    uploads: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    use base64::Engine as _;
    let mut files = vec![];
    for (name, content) in uploads {
        let path = inside(workspace, name)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("files: '{name}' is not base64: {e}"),
                )
            })?;
        files.push((path, bytes));
    }
    for (path, bytes) in files {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(internal)?;
        }
        std::fs::write(&path, bytes).map_err(internal)?;
    }
    std::fs::create_dir_all(workspace).map_err(internal)
}

/// The arguments of the jina binary that serve the copy: `jina executor ...`, or an image run
/// as a Flow runs it, published on the daemon's address.
fn command_of(
    settings: &DaemonSettings,
    request: &SpawnRequest,
    workspace: &std::path::Path,
    port: u16,
) -> Result<Vec<String>, ApiError> {
    let mut metas = request.uses_metas.clone();
    metas
        .entry("workspace")
        .or_insert_with(|| workspace.display().to_string().into());
    let overrides = crate::executor::Overrides {
        uses_with: request.uses_with.clone(),
        uses_metas: metas,
        uses_requests: request.uses_requests.clone(),
        uses_dynamic_batching: request.uses_dynamic_batching.clone(),
    };
    let uses = match request.files.contains_key(&request.uses) {
        true => inside(workspace, &request.uses)?.display().to_string(),
        false => request.uses.clone(),
    };
    let flags = ExecutorFlags {
        host: settings.host.clone(),
        name: Some(request.name.clone()),
        ..ExecutorFlags::new(uses, port).with_overrides(&overrides)
    };
    let parsed = UsesText::parse(&flags.uses, Some(workspace))
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(match parsed {
        UsesText::Image(image) => crate::container::ContainerCopy {
            image: &image,
            label: &request.name,
            port,
            publish_host: &settings.host,
            monitoring_port: None,
            env: &request.env,
            volumes: &[],
            gpus: None,
            entrypoint: request.entrypoint.as_deref(),
            executor_args: flags.portable_args(),
        }
        .guarded_args(),
        _ => std::iter::once("executor".to_string())
            .chain(flags.to_args())
            .collect(),
    })
}

/// Relays the child's output to the daemon's own and into its logs, line by line; the tasks
/// end when the child's end of the pipes closes.
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
                let mut lines = BufReader::new(output).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    {
                        let mut history = logs.history.lock().unwrap();
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

/// Waits until the copy's health check says SERVING; a copy that exits first is an error
/// with its last lines of output (read to the end of its pipes first), and so is one that
/// takes longer than [`READY_TIMEOUT`].
async fn wait_ready(
    host: &str,
    port: u16,
    name: &str,
    child: &mut tokio::process::Child,
    logs: &Logs,
    relays: Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), ApiError> {
    let check_host = match host {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // Its last words are in the pipes until the relays read them to the end (bounded:
            // a process it forked may hold the pipes open).
            let _ = tokio::time::timeout(Duration::from_secs(1), futures::future::join_all(relays))
                .await;
            let history = logs.history.lock().unwrap();
            let last: Vec<&str> = history
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(String::as_str)
                .collect();
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{name} exited ({status}) before it was ready: {}",
                    last.join(" | ")
                ),
            ));
        }
        if crate::grpc::check_serving(check_host, port, Duration::from_secs(1))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{name} was not ready within {READY_TIMEOUT:?}"),
            ));
        }
        // Polls the health of a process that is starting: there is no event to wait for.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no executor '{id}' here"))
}

async fn renew(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut executors = daemon.executors.lock().unwrap();
    let started = executors.get_mut(&id).ok_or_else(|| not_found(&id))?;
    started.lease_until = Instant::now() + started.lease;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let started = daemon
        .executors
        .lock()
        .unwrap()
        .remove(&id)
        .ok_or_else(|| not_found(&id))?;
    tracing::info!("stopping {} ({id}): asked to", started.spawned.name);
    finish(started).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(State(daemon): State<Daemon>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (history, live) = {
        let executors = daemon.executors.lock().unwrap();
        let started = executors.get(&id).ok_or_else(|| not_found(&id))?;
        let history: Vec<String> = started
            .logs
            .history
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect();
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
            let mut executors = executors.lock().unwrap();
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

/// SIGTERM, then SIGKILL after the grace.
async fn finish(mut started: Started) {
    if let Some(pid) = started.child.id() {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(STOP_GRACE, started.child.wait())
        .await
        .is_err()
    {
        let _ = started.child.kill().await;
    }
}

async fn openapi() -> Json<Value> {
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    Json(json!({
        "openapi": "3.0.2",
        "info": {"title": "jina daemon", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Starts executors on this machine for Flows that run elsewhere. Every path but / needs Authorization: Bearer TOKEN when the daemon has a token."},
        "paths": {
            "/": {"get": {"summary": "Whether the daemon is up", "responses": {"200": {"description": "its version"}}}},
            "/executors": {
                "get": {"summary": "The executors running here", "responses": {"200": {"description": "a list of {id, name, port, pid, workspace}"}}},
                "post": {"summary": "Start an executor in a workspace of its own and wait until it serves",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpawnRequest"}}}},
                         "responses": {"200": {"description": "{id, name, port, pid, workspace}"}, "400": {"description": "a file name that leaves the workspace, or bad base64"}, "422": {"description": "it exited before it was ready; its last lines"}}}
            },
            "/executors/{id}": {"delete": {"summary": "Stop it", "parameters": id, "responses": {"204": {"description": "stopped"}, "404": {"description": "no such executor"}}}},
            "/executors/{id}/lease": {"put": {"summary": "Renew its lease", "parameters": id, "responses": {"204": {"description": "renewed"}, "404": {"description": "no such executor"}}}},
            "/executors/{id}/logs": {"get": {"summary": "Its output so far, then each line as it comes (text/plain)", "parameters": id, "responses": {"200": {"description": "lines"}}}}
        },
        "components": {"schemas": {"SpawnRequest": {"type": "object", "required": ["name", "uses"], "properties": {
            "name": {"type": "string"},
            "uses": {"type": "string", "description": "a registered executor, inline YAML, the path of one of files, or docker://IMAGE"},
            "files": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}, "description": "relative path -> base64 content"},
            "uses_with": {"type": "object"}, "uses_metas": {"type": "object"}, "uses_requests": {"type": "object"}, "uses_dynamic_batching": {"type": "object"},
            "port": {"type": "integer"}, "lease_seconds": {"type": "integer"},
            "entrypoint": {"type": "string", "description": "for uses docker://IMAGE: the command replacing its entrypoint"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}}
        }}}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_stay_inside_their_workspace() {
        let ws = std::path::Path::new("/srv/ws");
        assert_eq!(inside(ws, "enc.yml").unwrap(), ws.join("enc.yml"));
        assert_eq!(inside(ws, "models/a.bin").unwrap(), ws.join("models/a.bin"));
        for bad in ["/etc/passwd", "../x", "a/../../x", "", "./a"] {
            assert!(inside(ws, bad).is_err(), "{bad}");
        }
    }
}
