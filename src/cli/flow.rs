//! `jina flow --uses flow.yml`: check the Flow, start it, serve until Ctrl-C or SIGTERM, stop it.

use crate::running::RunningFlow;
use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "The Flow YAML: every key and what it does is in docs/yaml.md; what a \
running Flow does when an executor dies or a request is slow, in docs/resilience.md; the \
command line, in docs/cli.md.\n\nExample: jina flow --uses flows/hello.yml"
)]
pub(super) struct FlowArgs {
    /// The Flow YAML file (Jina's format: `jtype: Flow`, `with:` or `gateway:`, `executors:`;
    /// variables like ${{ ENV.X }} are replaced first)
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub uses: Option<PathBuf>,
    /// The Flow YAML file, as `--uses` names it (`jina flow flow.yml`)
    #[arg(value_name = "FLOW_YAML")]
    pub file: Option<PathBuf>,
    /// Write the Flow's graph as SVG to this file and exit without starting anything
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Watch the Flow YAML and every file it uses (executor YAML, py_modules) and apply each
    /// change while serving, without dropping a request (SIGHUP reloads too, with or without
    /// this flag; docs/resilience.md says what each change does)
    #[arg(long)]
    pub reload: bool,
    #[command(subcommand)]
    pub command: Option<FlowCommand>,
}

/// What `jina flow` does to a Flow that runs already.
#[derive(clap::Subcommand, Debug)]
pub(super) enum FlowCommand {
    /// Change how many replicas an executor of a running Flow on this machine has, while it
    /// serves: added copies join once ready, removed ones finish their requests first
    Scale(ScaleArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "Example: jina flow scale encoder --replicas 3")]
pub(super) struct ScaleArgs {
    /// The executor, by its name in the Flow
    pub executor: String,
    /// How many replicas each of its shards gets (at least 1)
    #[arg(long)]
    pub replicas: u32,
    /// Which Flow, by name, when several run on this machine (`jina flows` lists them)
    #[arg(long)]
    pub flow: Option<String>,
}

/// `jina flow scale`: finds the Flow as `jina client` does and asks it over its control
/// socket; the Flow's answer is printed, a refusal is the error.
async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    use crate::running::control::{self, Answer, Command};
    let flow = crate::local_flows::pick_flow(args.flow.as_deref())?;
    let command = Command::Scale {
        executor: args.executor,
        replicas: args.replicas,
    };
    match control::send(flow.pid, &command).await? {
        Answer::Done(done) => {
            super::say(format_args!("{}: {done}", flow.name));
            Ok(())
        }
        Answer::Refused(why) => Err(anyhow!("{}: {why}", flow.name)),
    }
}

/// Carries out one command from the control socket and answers it. Returns false when
/// termination came meanwhile.
async fn obey(
    running: &mut RunningFlow,
    received: crate::running::control::Received,
    termination: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> bool {
    use crate::running::control::{Answer, Command};
    let Command::Scale { executor, replicas } = &received.command;
    tracing::info!("scaling {executor} to {replicas} replicas");
    let outcome = tokio::select! {
        done = running.scale(executor, *replicas) => done,
        _ = termination => return false,
    };
    let answer = match outcome {
        Ok(done) => {
            tracing::info!(target: "success", "scaled: {done}");
            Answer::Done(done.to_string())
        }
        Err(e) => {
            tracing::error!("scale: {e}; the Flow keeps running as it was");
            Answer::Refused(e.to_string())
        }
    };
    received.answer(answer).await;
    true
}

/// Reads and checks a Flow YAML, logging its warnings; every error of the YAML comes back one
/// per line (the caller prints each as usual).
pub(super) fn load(path: &std::path::Path) -> anyhow::Result<crate::flow::CheckedFlow> {
    reported(crate::flow::load(path))
}

/// A loaded Flow with its warnings logged, or its errors as one error.
fn reported(
    loaded: Result<crate::flow::CheckedFlow, crate::flow::FlowErrors>,
) -> anyhow::Result<crate::flow::CheckedFlow> {
    let flow = loaded.map_err(|errors| {
        for w in &errors.warnings {
            tracing::warn!("{w}");
        }
        anyhow!("{errors}")
    })?;
    for w in &flow.warnings {
        tracing::warn!("{w}");
    }
    Ok(flow)
}

/// Reads the Flow YAML again and changes the running Flow into it. A Flow with errors, or a
/// change a reload cannot make, is logged and the Flow keeps serving as it was. Returns the
/// Flow now running when it changed (`Some(None)`: unchanged), or None when termination came.
async fn reload(
    running: &mut RunningFlow,
    uses: &std::path::Path,
    termination: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Option<Option<crate::flow::CheckedFlow>> {
    tracing::info!("reloading {}", uses.display());
    let flow = match reported(crate::flow::load(uses)) {
        Ok(flow) => flow,
        Err(errors) => {
            tracing::error!("{errors}");
            tracing::error!("reload: the Flow keeps running as it was");
            return Some(None);
        }
    };
    tokio::select! {
        done = running.reload(&flow) => match done {
            Ok(done) => {
                tracing::info!(target: "success", "reloaded {}: {done}", uses.display());
                Some(Some(flow))
            }
            Err(e) => {
                tracing::error!("{}: {e}", uses.display());
                tracing::error!("reload: the Flow keeps running as it was");
                Some(None)
            }
        },
        _ = termination => None,
    }
}

pub(super) async fn run(args: FlowArgs) -> anyhow::Result<()> {
    if let Some(FlowCommand::Scale(scale_args)) = args.command {
        return scale(scale_args).await;
    }
    let uses = args
        .uses
        .or(args.file)
        .ok_or_else(|| anyhow!("--uses: the Flow YAML file"))?;
    // The YAML first: whether the Flow is traced decides how logging is set up. Its problems
    // are printed once logging is.
    let loaded = crate::flow::load(&uses);
    let traces = match loaded
        .as_ref()
        .ok()
        .and_then(|f| f.spec.gateway.tracing.as_ref())
    {
        Some(export) => Some(crate::telemetry::start(export, "gateway")?),
        None => None,
    };
    crate::logging::init_traced("Flow", traces);
    let flow = reported(loaded)?;
    if flow.spec.executors.is_empty() {
        tracing::warn!(
            "{}: this Flow has no executors (no `executors:` list): it answers every request with the documents it was sent",
            uses.display()
        );
    }
    if let Some(path) = &args.plot {
        crate::flow::Flow::from_spec(flow.spec)
            .plot(path)
            .map_err(|e| anyhow!("{e}"))?;
        super::say(format_args!("wrote {}", path.display()));
        return Ok(());
    }
    // Found by `jina flows` and by clients without an address from now until it stops: as
    // starting until its executors are ready, then with its addresses.
    let name = flow.spec.gateway.name.clone().unwrap_or_else(|| {
        uses.file_stem()
            .map_or("flow".into(), |s| s.to_string_lossy().into_owned())
    });
    let executors = flow.spec.executors.len();
    let registration = crate::local_flows::register(&crate::local_flows::FlowRecord::starting(
        name.clone(),
        Some(&uses),
        executors,
    ));
    let termination = crate::shutdown::termination();
    tokio::pin!(termination);
    // Ctrl-C while the executors start drops the half-started Flow, which kills its children.
    let mut running = tokio::select! {
        started = RunningFlow::start(&flow) => {
            started.map_err(|e| anyhow!("{}: {e}", uses.display()))?
        }
        _ = &mut termination => {
            tracing::info!("stopped while starting");
            // The half-started Flow is gone with its children; containers are Docker's, and
            // remote copies their daemons'.
            crate::container::remove_own().await;
            crate::daemon::client::stop_all().await;
            return Ok(());
        }
    };
    let record = running.record(name, Some(&uses), executors);
    let _registration = match registration {
        Some(starting) => {
            starting.update(&record);
            Some(starting)
        }
        None => crate::local_flows::register(&record),
    };
    tracing::info!(target: "success", "{}", running.ready_message());
    tracing::info!("ready in {:.2?}", running.ready_in);
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut watch = args
        .reload
        .then(|| crate::running::FileWatch::new(&uses, &flow));
    if args.reload {
        tracing::info!(
            "watching {} and the files it uses for changes",
            uses.display()
        );
    }
    // `jina flow scale` reaches this Flow through it.
    let control = crate::running::control::ControlSocket::bind()
        .inspect_err(|e| {
            tracing::warn!("no control socket ({e}): `jina flow scale` cannot reach this Flow")
        })
        .ok();
    let failure = loop {
        let changed = async {
            match watch.as_mut() {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        let command = async {
            match control.as_ref() {
                Some(c) => c.next().await,
                None => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            _ = &mut termination => break None,
            e = running.gateway_failed() => break Some(e),
            _ = hangups.recv() => None,
            _ = changed => None,
            received = command => Some(received),
        };
        if let Some(received) = received {
            match obey(&mut running, received, &mut termination).await {
                true => continue,
                false => break None,
            }
        }
        let Some(flow) = reload(&mut running, &uses, &mut termination).await else {
            break None;
        };
        if let (Some(w), Some(flow)) = (watch.as_mut(), flow) {
            w.watch(&uses, &flow);
        }
    };
    tracing::info!("stopping");
    running.stop().await.map_err(|e| anyhow!(e))?;
    crate::telemetry::shutdown();
    match failure {
        Some(e) => Err(anyhow!(e)),
        None => Ok(()),
    }
}
