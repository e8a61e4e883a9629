//! `jina daemon --port-expose 8000 --host 0.0.0.0`: start executors here for Flows elsewhere.

use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "A Flow entry with `host: THIS_MACHINE` (and `port_expose` when not \
8000) starts its executor through this daemon. It runs code on request: bind it where only \
your Flows reach it, and give it a token (docs/deploy.md)."
)]
pub(super) struct DaemonArgs {
    /// The port of the HTTP API (JinaD's)
    #[arg(long = "port-expose", visible_alias = "port", default_value_t = crate::daemon::client::DEFAULT_DAEMON_PORT)]
    pub port_expose: u16,
    /// The address to bind, the API's and the executors' (0.0.0.0: every interface)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Require `Authorization: Bearer TOKEN` (also from JINA_DAEMON_TOKEN)
    #[arg(long, env = "JINA_DAEMON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where each executor's workspace is made
    #[arg(long, default_value = "jina-daemon-workspaces")]
    pub workspace: PathBuf,
    /// Serve the API over HTTPS, and the executors it starts over TLS, with this certificate
    /// chain (PEM; with --ssl-keyfile; it must name the address Flows reach it at)
    #[arg(long, requires = "ssl_keyfile")]
    pub ssl_certfile: Option<PathBuf>,
    /// The private key of --ssl-certfile (PEM)
    #[arg(long, requires = "ssl_certfile")]
    pub ssl_keyfile: Option<PathBuf>,
}

pub(super) async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    crate::logging::init("daemon");
    if args.token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(anyhow!(
            "--token: 16 characters or more (anyone who guesses it runs code here)"
        ));
    }
    let program = crate::orchestrate::jina_binary().map_err(|e| anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port_expose))
        .await
        .map_err(|e| anyhow!(crate::net::ListenError::of(&args.host, args.port_expose, e)))?;
    let root = std::path::absolute(&args.workspace)
        .map_err(|e| anyhow!("{}: {e}", args.workspace.display()))?;
    let token = match args.token {
        Some(token) => crate::daemon::Secret::new(token),
        None => generated_token(&root)?,
    };
    let tls = match (args.ssl_certfile, args.ssl_keyfile) {
        (Some(certfile), Some(keyfile)) => Some(crate::daemon::DaemonTls {
            server: crate::tls::ServerTls::load(&certfile, &keyfile)?,
            certfile: std::path::absolute(&certfile)?,
            keyfile: std::path::absolute(&keyfile)?,
        }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let settings = crate::daemon::DaemonSettings {
        host: args.host.clone(),
        token,
        root,
        program,
        tls,
    };
    let serving = crate::daemon::serve(settings, listener, crate::shutdown::termination());
    tracing::info!(
        "serving the daemon API on {scheme}://{}:{}",
        args.host,
        args.port_expose
    );
    tracing::info!(target: "success", "ready and listening");
    serving.await.map_err(|e| anyhow!(e))
}

/// A token for a daemon started without one: printed, and written beside the workspaces to a
/// file only this user reads, as Jupyter does.
fn generated_token(root: &std::path::Path) -> anyhow::Result<crate::daemon::Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let token = crate::daemon::Secret::generate();
    let path = root.with_extension("token");
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| anyhow!("{}: {e}", folder.display()))?;
    }
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    writeln!(file, "{}", token.as_str()).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    super::say(format_args!(
        "daemon token (no --token given; also in {}): {}",
        path.display(),
        token.as_str()
    ));
    Ok(token)
}
