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
}

pub(super) async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    crate::logging::init("daemon");
    let program = crate::orchestrate::jina_binary().map_err(|e| anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port_expose))
        .await
        .map_err(|e| anyhow!(crate::net::ListenError::of(&args.host, args.port_expose, e)))?;
    let root = std::path::absolute(&args.workspace)
        .map_err(|e| anyhow!("{}: {e}", args.workspace.display()))?;
    if args.token.is_none() {
        tracing::warn!(
            "no --token: anyone who reaches {}:{} can run executors here",
            args.host,
            args.port_expose
        );
    }
    let settings = crate::daemon::DaemonSettings {
        host: args.host.clone(),
        token: args.token,
        root,
        program,
    };
    let serving = crate::daemon::serve(settings, listener, crate::shutdown::termination());
    tracing::info!(
        "serving the daemon API on http://{}:{}",
        args.host,
        args.port_expose
    );
    tracing::info!(target: "success", "ready and listening");
    serving.await.map_err(|e| anyhow!(e))
}
