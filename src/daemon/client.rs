//! The Flow's side of `jina daemon`: start an executor copy on a remote host, keep its lease,
//! relay its output under its name, and stop it.
//!
//! A Flow renews each lease every quarter of [`LEASE`]; a Flow that dies without stopping its
//! remote copies (SIGKILL, a lost network) stops renewing, and the daemon stops them when the
//! lease runs out. The token, when the daemon wants one, comes from `JINA_DAEMON_TOKEN`: a
//! secret has no place in a Flow YAML.

use super::{SpawnRequest, Spawned};
use std::sync::Mutex;
use std::time::Duration;

/// The lease a Flow asks for its remote copies.
pub const LEASE: Duration = Duration::from_secs(10);
/// The daemon's port when a Flow entry gives no `port_expose` (JinaD's).
pub(crate) const DEFAULT_DAEMON_PORT: u16 = 8000;
/// Where the token for daemons comes from.
pub(crate) const TOKEN_VARIABLE: &str = "JINA_DAEMON_TOKEN";

/// Why a remote copy could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot reach the daemon at {daemon}: {error}")]
    Unreachable { daemon: String, error: String },
    #[error("the daemon at {daemon} refused ({status}): {message}")]
    Refused {
        daemon: String,
        status: u16,
        message: String,
    },
}

/// A copy running under a daemon, kept alive by this Flow until [`RemoteCopy::stop`].
pub(crate) struct RemoteCopy {
    daemon: String,
    spawned: Spawned,
    host: String,
    client: reqwest::Client,
    token: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Copies started by this process and not stopped yet, for [`stop_all`] when the Flow is
/// stopped while it starts.
/// Each with the client that started it (which trusts its daemon's certificate).
static STARTED: Mutex<Vec<Started>> = Mutex::new(Vec::new());

/// A copy started by this process: its daemon's client and base URL, its id, the token.
type Started = (reqwest::Client, String, String, Option<String>);

/// Where a Flow may take its owner secret from (to look at its copies with another client);
/// a random one otherwise.
const OWNER_VARIABLE: &str = "JINA_DAEMON_OWNER";

/// This Flow's owner secret: every copy it starts answers to it alone.
fn owner() -> &'static super::Secret {
    static OWNER: std::sync::OnceLock<super::Secret> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| match std::env::var(OWNER_VARIABLE) {
        Ok(owner) if owner.len() >= 16 => super::Secret::new(owner),
        _ => super::Secret::generate(),
    })
}

/// A request with the daemon's token and this Flow's owner secret.
fn with_token(request: reqwest::RequestBuilder, token: &Option<String>) -> reqwest::RequestBuilder {
    let request = request.header(super::auth::OWNER_HEADER, owner().as_str());
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

/// Sends a request to the daemon and turns a refusal into its message.
async fn send(
    daemon: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, DaemonError> {
    let response = request.send().await.map_err(|e| DaemonError::Unreachable {
        daemon: daemon.into(),
        error: e.to_string(),
    })?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Err(DaemonError::Refused {
        daemon: daemon.into(),
        status,
        message: body["error"]
            .as_str()
            .unwrap_or("no reason given")
            .to_string(),
    })
}

impl RemoteCopy {
    /// Asks the daemon at `host:port` to start `request` and waits until it serves.
    /// Over HTTPS when `tls` says whom to trust (the entry's `tls: true`).
    pub(crate) async fn start(
        host: &str,
        port: u16,
        mut request: SpawnRequest,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<RemoteCopy, DaemonError> {
        request.owner = owner().as_str().to_string();
        crate::tls::install_provider();
        let daemon = format!("{host}:{port}");
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = tls {
            builder = builder.tls_backend_preconfigured(tls.rustls());
        }
        let client = builder.build().map_err(|e| DaemonError::Unreachable {
            daemon: daemon.clone(),
            error: e.to_string(),
        })?;
        let base = match tls {
            Some(_) => format!("https://{daemon}"),
            None => format!("http://{daemon}"),
        };
        let token = std::env::var(TOKEN_VARIABLE).ok();
        let label = request.name.clone();
        let response = send(
            &daemon,
            with_token(client.post(format!("{base}/executors")), &token).json(&request),
        )
        .await?;
        let spawned: Spawned = response
            .json()
            .await
            .map_err(|e| DaemonError::Unreachable {
                daemon: daemon.clone(),
                error: e.to_string(),
            })?;
        STARTED.lock().unwrap().push((
            client.clone(),
            base.clone(),
            spawned.id.clone(),
            token.clone(),
        ));
        let renew = {
            let (client, token) = (client.clone(), token.clone());
            let url = format!("{base}/executors/{}/lease", spawned.id);
            let label = label.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 4).await;
                    if let Err(e) = with_token(client.put(&url), &token).send().await {
                        tracing::warn!("{label}: cannot renew its lease: {e}");
                    }
                }
            })
        };
        let relay = {
            let (client, token) = (client.clone(), token.clone());
            let url = format!("{base}/executors/{}/logs", spawned.id);
            tokio::spawn(async move {
                let Ok(mut response) = with_token(client.get(&url), &token).send().await else {
                    return;
                };
                let mut pending = Vec::new();
                while let Ok(Some(chunk)) = response.chunk().await {
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        // The executor's lines already say who and where (`enc@PID[L]: ...`).
                        eprintln!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
                    }
                }
            })
        };
        Ok(RemoteCopy {
            daemon: base,
            spawned,
            host: host.to_string(),
            client,
            token,
            tasks: vec![renew, relay],
        })
    }

    /// Where the gateway reaches it.
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.spawned.port)
    }

    /// Asks the daemon to stop it, and stops renewing its lease.
    pub(crate) async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        stop_one(&self.client, &self.daemon, &self.spawned.id, &self.token).await;
    }
}

impl Drop for RemoteCopy {
    fn drop(&mut self) {
        // Not stopped: no more renewals, so the daemon stops it when the lease runs out.
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn stop_one(client: &reqwest::Client, base: &str, id: &str, token: &Option<String>) {
    STARTED.lock().unwrap().retain(|(_, _, i, _)| i != id);
    let url = format!("{base}/executors/{id}");
    match with_token(client.delete(&url), token).send().await {
        Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {}
        Ok(r) => tracing::warn!("stopping {url}: {}", r.status()),
        Err(e) => tracing::warn!("stopping {url}: {e}"),
    }
}

/// Stops every copy this process started and did not stop (a Flow stopped while starting).
pub(crate) async fn stop_all() {
    let started = std::mem::take(&mut *STARTED.lock().unwrap());
    for (client, base, id, token) in started {
        stop_one(&client, &base, &id, &token).await;
    }
}
