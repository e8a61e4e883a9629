//! The command line: clap definitions and the glue from arguments to the library. Logic that
//! is not about arguments belongs in the library modules, not here.
//!
//! Every failure prints one line, `error: <what>: <why>`, and exits non-zero (1 for a runtime
//! error, 2 for bad usage, as clap does).

mod client;
mod daemon;
mod executor;
mod export;
mod flow;
mod gateway;
mod hello;

pub use executor::serve_hosted;

use crate::executor::json_object;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jina",
    version,
    about = "Jina Flows in Rust: executors, flows and one gateway over gRPC, REST and WebSocket",
    disable_version_flag = true
)]
struct Cli {
    /// Print the version (`jina -v`, as Jina users type it; -V works too)
    #[arg(short = 'v', visible_short_alias = 'V', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one executor over gRPC (a Flow can attach to it with `external: true`)
    Executor(crate::executor::ExecutorFlags),
    /// Start a Flow from its YAML: every executor as a child process, and one gateway
    Flow(flow::FlowArgs),
    /// Serve a gateway in front of executors that already run (Jina 3's flags)
    Gateway(gateway::GatewayArgs),
    /// Index a book and search it: the main job, with no external service or download
    Hello(hello::HelloArgs),
    /// Talk to a running Flow
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Check that a gateway or executor is serving (exit 0) or say why not (exit 1)
    Ping(client::PingArgs),
    /// List the Flows running on this machine (name, pid, addresses, uptime, executors)
    Flows,
    /// Start executors on this machine for Flows that run elsewhere (JinaD's job)
    Daemon(daemon::DaemonArgs),
    /// Write a Flow down for another orchestrator (docker-compose, Kubernetes)
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Run a program that forks (Python Jina) so that none of its processes outlives the Flow
    #[command(hide = true)]
    Guard(GuardArgs),
}

#[derive(clap::Args)]
struct GuardArgs {
    /// The program runs this container (`docker run --name NAME`): remove it before and after
    #[arg(long)]
    container: Option<String>,
    /// The program and its arguments, after `--`
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

/// Runs the command line with the built-in executors; `main.rs` calls only this.
pub fn main() -> ExitCode {
    main_with(crate::executor::Registry::builtins())
}

/// Runs the command line with these executor types: a user's crate makes its own
/// `jina`-compatible binary with it, whose Flows find the user's types by `jtype` and start
/// their executors from that same binary:
///
/// ```no_run
/// # use jina::executor::{Executor, Metas, NoArgs, Requests, BoxError};
/// # struct WordCount;
/// # impl Executor for WordCount {
/// #     const NAME: &'static str = "WordCount";
/// #     type Args = NoArgs;
/// #     fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> { Ok(WordCount) }
/// #     fn requests(_: &mut Requests<Self>) {}
/// # }
/// fn main() -> std::process::ExitCode {
///     jina::cli::main_with(jina::registry![WordCount])
/// }
/// ```
pub fn main_with(registry: crate::executor::Registry) -> ExitCode {
    if let Err(e) = registry.install() {
        let _ = writeln!(std::io::stderr(), "error: {e}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    // Before anything can build a TLS client (reqwest, bollard, tonic): a path that reaches one
    // first, such as Ctrl-C while a Flow starts, would otherwise panic for want of a provider.
    crate::tls::install_provider();
    // Servers trade memory for fewer page faults; a client keeps glibc's defaults, which give
    // its big buffers back at once (its memory is bounded by its budget, see `client`).
    match cli.command {
        Command::Client(_) => crate::allocator::tune_for_bounded_memory(),
        _ => crate::allocator::tune_for_big_messages(),
    }
    let result = match cli.command {
        Command::Guard(args) => return guard(args),
        Command::Executor(args) => serve(executor::run(args)),
        Command::Flow(args) => serve(flow::run(args)),
        Command::Gateway(args) => serve(gateway::run(args)),
        Command::Hello(args) => block_on(hello::run(args)),
        Command::Client(command) => block_on(client::run(command)),
        Command::Ping(args) => block_on(client::ping(args)),
        Command::Flows => client::list_flows(),
        Command::Export(command) => export::run(command),
        Command::Daemon(args) => block_on(daemon::run(args)),
    };
    exit_code(result)
}

/// A command's outcome as its exit status: an error is printed first, each line as Jina prints
/// one (`error: ...`).
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    ExitCode::from(exit_status(result))
}

/// [`exit_code`] as a number (what a host in Python exits with).
fn exit_status(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            // A Flow YAML with several mistakes reports each on its own line.
            // writeln!, not eprintln!: a closed stderr is no reason to panic.
            let mut stderr = std::io::stderr().lock();
            for line in format!("{e:#}").lines() {
                let _ = writeln!(stderr, "error: {line}");
            }
            1
        }
    }
}

fn guard(args: GuardArgs) -> ExitCode {
    let code = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            Ok(rt.block_on(crate::orchestrate::guard::run(
                &args.command,
                crate::orchestrate::guard::Parent::Flow,
                args.container.as_deref(),
            ))?)
        });
    match code {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs a serving process (a gateway, an executor) on [`serving_threads`] async threads.
pub(super) fn serve(
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    run_on(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(serving_threads())
            .enable_all()
            .build()?,
        fut,
    )
}

/// How many async threads a serving process runs: one per four cores, at least one.
///
/// A request's work in a gateway or an executor's server is short and passes between tasks
/// (a connection's, the request's, the channel's to the next hop): on one thread each
/// hand-over is a queue push, across threads it is a wake-up. With tokio's default of one
/// thread per core, a 2-core machine's gateway took 7 context switches and 230 µs of CPU per
/// 1-document request; on one thread 2.5 and 160 µs, and p50 latency fell 5–10%, throughput
/// within the noise (issue [V]'s note). A Flow is several such processes on one machine,
/// each in the place of one of Python Jina's single-threaded asyncio processes, so a quarter of
/// the cores each still leaves them the machine. Blocking handlers run on tokio's blocking
/// pool, not on these threads.
fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 4).max(1))
}

fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    run_on(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        fut,
    )
}

fn run_on(
    runtime: tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let result = runtime.block_on(fut);
    // A handler still running on a blocking thread (a slow executor whose request was cut
    // after the stop's grace) must not hold the exit: dropping the runtime would wait for it.
    runtime.shutdown_background();
    result
}

/// Prints a line on stdout like `println!`, but a closed stdout (`jina hello | head`) is not a
/// reason to panic: the line is dropped and the command goes on.
fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
