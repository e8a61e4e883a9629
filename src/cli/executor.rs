//! `jina executor`: serve one executor over gRPC until Ctrl-C or SIGTERM.

use crate::executor::python::Chosen;
use crate::executor::{
    BoxError, ExecutorConfig, ExecutorFlags, HostedExecutor, HostedLoad, Instance, UsesText, server,
};
use anyhow::{Context, anyhow};
use std::sync::Arc;

pub(super) async fn run(args: ExecutorFlags) -> anyhow::Result<()> {
    let config = config_of(&args)?;
    let overrides = args.overrides()?;
    if config.is_python() {
        return serve_python(&args).await;
    }
    let instance = config.instantiate(&overrides)?;
    serve(&args, instance, &config.jtype).await
}

/// The executor's config: its YAML, or (`--uses CLASS --py-modules FILE`, Jina 3's way) a
/// Python class named by the flags.
fn config_of(args: &ExecutorFlags) -> anyhow::Result<ExecutorConfig> {
    if args.py_modules.is_empty() {
        return Ok(ExecutorConfig::from_uses(&args.uses)?);
    }
    let mut config = match UsesText::parse(&args.uses, None) {
        Ok(UsesText::YamlFile(_) | UsesText::InlineYaml(_)) => {
            ExecutorConfig::from_uses(&args.uses)?
        }
        _ => ExecutorConfig::named(args.uses.trim()),
    };
    config
        .metas
        .py_modules
        .extend(args.py_modules.iter().cloned());
    Ok(config)
}

/// Serves a Python executor that a host built (`python -m jina_rs.executor FLAGS`, the
/// `jina-rs` Python package): `argv` are `jina executor`'s flags, and `load` builds the
/// executor from what the config and the flags say. Runs until Ctrl-C or SIGTERM, then closes
/// the executor. Errors are printed as `jina executor` prints them; returns the exit status.
pub fn serve_hosted(
    argv: Vec<std::ffi::OsString>,
    load: impl FnOnce(HostedLoad) -> Result<Arc<dyn HostedExecutor>, BoxError>,
) -> u8 {
    #[derive(clap::Parser)]
    #[command(name = "python -m jina_rs.executor")]
    struct Host {
        #[command(flatten)]
        flags: ExecutorFlags,
    }
    let args = match <Host as clap::Parser>::try_parse_from(
        std::iter::once("python -m jina_rs.executor".into()).chain(argv),
    ) {
        Ok(host) => host.flags,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    crate::tls::install_provider();
    crate::allocator::tune_for_a_hosted_executor();
    let result = super::serve(async move {
        let config = config_of(&args)?;
        let overrides = args.overrides()?;
        let name = args.name.clone().unwrap_or_else(|| config.jtype.clone());
        let wanted = config.hosted_load(&overrides, &name, args.copy)?;
        let executor = load(wanted).map_err(|e| anyhow!("{e}"))?;
        let instance = config.instantiate_hosted(executor.clone(), name, &overrides)?;
        let served = serve(&args, instance, &config.jtype).await;
        // Off the runtime: closing waits for the executor's own code.
        let closing = tokio::task::spawn_blocking(move || executor.close()).await;
        served.and(closing.map_err(|e| anyhow!("close() did not finish: {e}")))
    });
    super::exit_status(result)
}

/// Serves a built executor on the flags' socket until Ctrl-C or SIGTERM.
async fn serve(args: &ExecutorFlags, mut instance: Instance, jtype: &str) -> anyhow::Result<()> {
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
        admission: crate::request::Admission::new(args.max_request_docs, args.max_in_flight_bytes),
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
    let jtype = jtype.to_string();
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
            .map_err(|e| anyhow!(crate::net::ListenError::of(&args.host, port, e)))?;
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

/// A Python executor (`metas.py_modules`, or `--py-modules`), served as `executor::python`'s
/// rule says: this process becomes our host (`python -m jina_rs.executor` with the same
/// flags), or runs Python Jina's `jina executor` under our guard (its forked worker stops
/// with it).
async fn serve_python(args: &ExecutorFlags) -> anyhow::Result<()> {
    let name = args.name.as_deref().unwrap_or("executor");
    crate::logging::init(name);
    let python = crate::executor::python::interpreter();
    if crate::executor::python::choose(args.python_runtime, &python)? == Chosen::JinaRs {
        tracing::info!("a Python executor: serving it with jina-rs's host ({python})");
        let command = crate::executor::python::host_command(&python, args);
        // This process becomes the host: signals, exit status and an inherited socket are
        // its own, with nothing in between.
        let error = std::os::unix::process::CommandExt::exec(
            std::process::Command::new(&command[0]).args(&command[1..]),
        );
        return Err(anyhow!("cannot start {python}: {error}"));
    }
    if args.ssl_certfile.is_some() {
        return Err(anyhow!(
            "--ssl-certfile: Python Jina serves no TLS for one executor (jina-rs's host does: pip install jina-rs)"
        ));
    }
    tracing::info!("a Python executor: serving it with Python Jina ({python})");
    let python_flags = ExecutorFlags {
        uses: args.uses.trim().into(),
        name: Some(name.into()),
        // These are ours: Python Jina reads none of them.
        ..ExecutorFlags::new("", args.port_in).with_overrides(&args.overrides()?)
    };
    let command: Vec<std::ffi::OsString> = python_flags
        .python_command(&args.py_modules)
        .into_iter()
        .chain(args.copy.to_args())
        .map(Into::into)
        .collect();
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
