//! `jina executor`: serve one executor over gRPC until Ctrl-C or SIGTERM.

use crate::executor::{ExecutorConfig, ExecutorFlags, server};
use anyhow::{Context, anyhow};

pub(super) async fn run(args: ExecutorFlags) -> anyhow::Result<()> {
    let config = ExecutorConfig::from_uses(&args.uses)?;
    let overrides = args.overrides()?;
    if config.is_python() {
        if args.ssl_certfile.is_some() {
            return Err(anyhow!(
                "--ssl-certfile: a Python executor is served by Python Jina, which serves no TLS for one executor"
            ));
        }
        return serve_python(&args).await;
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

/// An executor whose class lives in Python (`metas.py_modules`) is served by Python Jina, under
/// our guard so that its forked worker stops with it.
async fn serve_python(args: &ExecutorFlags) -> anyhow::Result<()> {
    let yaml = std::path::Path::new(args.uses.trim());
    if !yaml.is_file() {
        return Err(anyhow!(
            "uses: a Python executor (metas.py_modules) must be given as a YAML file"
        ));
    }
    let name = args.name.as_deref().unwrap_or("executor");
    crate::logging::init(name);
    let python = ExecutorFlags {
        uses: yaml.display().to_string(),
        name: Some(name.into()),
        // Python Jina serves no TLS for one executor (refused above), and these are ours.
        ..ExecutorFlags::new("", args.port_in).with_overrides(&args.overrides()?)
    };
    let command = python.python_command(&[]);
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
