//! `jina executor`: serve one executor over gRPC until Ctrl-C or SIGTERM.

use crate::executor::{ExecutorConfig, Overrides, server};
use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::{Map, Value};

#[derive(Args, Debug)]
pub struct ExecutorArgs {
    /// The executor: a registered name (a built-in, or a type of this binary), a YAML file, or inline YAML
    #[arg(long, default_value = "BaseExecutor")]
    pub uses: String,
    /// The port to serve on (`--port` as Jina 3 spells it is accepted too)
    #[arg(long = "port-in", visible_alias = "port", value_parser = clap::value_parser!(u16).range(1..))]
    pub port_in: u16,
    /// The address to bind
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// The executor's name in logs and errors (default: metas.name, else its jtype)
    #[arg(long)]
    pub name: Option<String>,
    /// JSON object laid over the YAML's `with`
    #[arg(long, value_parser = super::json_object)]
    pub uses_with: Option<Map<String, Value>>,
    /// JSON object laid over the YAML's `metas`
    #[arg(long, value_parser = super::json_object)]
    pub uses_metas: Option<Map<String, Value>>,
    /// JSON object of endpoint -> handler laid over the YAML's `requests`
    #[arg(long, value_parser = super::json_object)]
    pub uses_requests: Option<Map<String, Value>>,
    /// JSON object of endpoint -> {"preferred_batch_size": N, "timeout": MS}: batch that
    /// endpoint's small requests into one handler call (Jina 3's flag)
    #[arg(long, value_parser = super::json_object)]
    pub uses_dynamic_batching: Option<Map<String, Value>>,
    /// Serve TLS with this certificate chain (PEM; with --ssl-keyfile)
    #[arg(long, requires = "ssl_keyfile")]
    pub ssl_certfile: Option<std::path::PathBuf>,
    /// The private key of --ssl-certfile (PEM)
    #[arg(long, requires = "ssl_certfile")]
    pub ssl_keyfile: Option<std::path::PathBuf>,
    /// The largest request taken, in bytes (0: no limit)
    #[arg(long, default_value_t = crate::flow::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Serve Prometheus metrics at /metrics (Jina 3's flag)
    #[arg(long)]
    pub monitoring: bool,
    /// The port of /metrics (with --monitoring; a free one when not given)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port_monitoring: Option<u16>,
    #[command(flatten)]
    pub tracing: super::TracingArgs,
    /// Serve on this inherited, already listening socket (a Flow binds the port and hands it
    /// over, so no other process can take it in between); --port-in then only names it
    #[arg(long, hide = true)]
    pub listen_fd: Option<i32>,
}

pub async fn run(args: ExecutorArgs) -> anyhow::Result<()> {
    let config = ExecutorConfig::from_uses(&args.uses)?;
    let mut uses_requests = indexmap::IndexMap::new();
    for (endpoint, handler) in args.uses_requests.unwrap_or_default() {
        let handler = handler
            .as_str()
            .ok_or_else(|| anyhow!("--uses-requests: '{endpoint}' must map to a handler name"))?;
        uses_requests.insert(endpoint, handler.to_string());
    }
    let mut uses_metas = args.uses_metas.unwrap_or_default();
    if let Some(name) = &args.name {
        uses_metas.insert("name".into(), Value::String(name.clone()));
    }
    let mut uses_dynamic_batching = indexmap::IndexMap::new();
    for (endpoint, settings) in args.uses_dynamic_batching.unwrap_or_default() {
        let settings = serde_json::from_value(settings)
            .map_err(|e| anyhow!("--uses-dynamic-batching: '{endpoint}': {e}"))?;
        uses_dynamic_batching.insert(endpoint, settings);
    }
    let overrides = Overrides {
        uses_with: args.uses_with.unwrap_or_default(),
        uses_metas,
        uses_requests,
        uses_dynamic_batching,
    };
    if config.is_python() {
        if args.ssl_certfile.is_some() {
            return Err(anyhow!(
                "--ssl-certfile: a Python executor is served by Python Jina, which serves no TLS for one executor"
            ));
        }
        return serve_python(&args.uses, args.port_in, args.name.as_deref(), &overrides).await;
    }
    let mut instance = config.instantiate(&overrides)?;
    let traces = match args.tracing.export() {
        Some(export) => Some(crate::telemetry::start(&export, &instance.name)?),
        None => None,
    };
    crate::logging::init_traced(&instance.name, traces);
    let tls = match (&args.ssl_certfile, &args.ssl_keyfile) {
        (Some(cert), Some(key)) => Some(crate::tls::ServerTls::load(cert, key)?),
        _ => None,
    };
    let settings = server::ServeSettings {
        tls,
        max_request_bytes: (args.max_request_bytes > 0).then_some(args.max_request_bytes),
    };

    let listener = match args.listen_fd {
        Some(fd) => inherited_listener(fd)?,
        None => tokio::net::TcpListener::bind((args.host.as_str(), args.port_in)).await,
    }
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow!("port {} is busy (address in use)", args.port_in)
        }
        _ => anyhow!("cannot listen on {}:{}: {e}", args.host, args.port_in),
    })?;
    instance.open()?;
    let jtype = config.jtype.clone();
    let mut service = server::ExecutorService::new(instance);
    if args.monitoring {
        let mut registry = prometheus_client::registry::Registry::default();
        let name = args.name.clone().unwrap_or_else(|| jtype.clone());
        service = service.with_metrics(crate::metrics::ExecutorMetrics::new(
            &mut registry,
            &name,
            &jtype,
        ));
        let port = args.port_monitoring.unwrap_or(0);
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .map_err(|e| anyhow!(crate::orchestrate::ListenError::of(&args.host, port, e)))?;
        let port = listener.local_addr()?.port();
        tracing::info!("serving metrics on http://{}:{port}/metrics", args.host);
        tokio::spawn(crate::metrics::serve(
            std::sync::Arc::new(registry),
            listener,
            crate::shutdown::termination(),
        ));
    }
    let termination = crate::shutdown::termination();
    tracing::info!("serving gRPC on {}:{}", args.host, args.port_in);
    tracing::info!(target: "success", "ready and listening");
    server::serve(service, listener, settings, termination)
        .await
        .context("gRPC server failed")?;
    crate::telemetry::shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// An executor whose class lives in Python (`metas.py_modules`) is served by Python Jina, under
/// our guard so that its forked worker stops with it.
async fn serve_python(
    uses: &str,
    port: u16,
    name: Option<&str>,
    overrides: &Overrides,
) -> anyhow::Result<()> {
    let yaml = std::path::Path::new(uses.trim());
    if !yaml.is_file() {
        return Err(anyhow!(
            "uses: a Python executor (metas.py_modules) must be given as a YAML file"
        ));
    }
    let name = name.unwrap_or("executor");
    crate::logging::init(name);
    let command = crate::orchestrate::python_executor_command(
        &yaml.display().to_string(),
        &[],
        port,
        name,
        overrides,
    );
    tracing::info!(
        "a Python executor: serving it with Python Jina ({})",
        command[0]
    );
    let command: Vec<std::ffi::OsString> = command.into_iter().map(Into::into).collect();
    match crate::orchestrate::guard::run(
        &command,
        crate::orchestrate::guard::Parent::Independent,
        None,
    )
    .await
    {
        Ok(0) => Ok(()),
        Ok(code) => Err(anyhow!("{name}: Python Jina exited with code {code}")),
        Err(e) => Err(anyhow!(e)),
    }
}

/// The listening socket a Flow handed over as file descriptor `fd`.
fn inherited_listener(fd: i32) -> anyhow::Result<std::io::Result<tokio::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    // SAFETY: fstat only reads; the descriptor is checked to be a socket before we own it.
    let is_socket = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    };
    if !is_socket {
        return Err(anyhow!("--listen-fd {fd}: not an open socket"));
    }
    // SAFETY: a socket we were given to own, used nowhere else in this process.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    Ok(listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener)))
}
