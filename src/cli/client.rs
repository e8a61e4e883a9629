//! `jina client post ENDPOINT ...`: stream documents from a file to a gateway, write what comes
//! back as NDJSON; and `jina ping HOST:PORT`.

use crate::client::{Client, FieldResolver, InputFormat, Inputs, PostOptions, inputs};
use crate::flow::Protocol;
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Send documents to an endpoint of a running Flow
    Post(PostArgs),
}

#[derive(Args, Debug)]
#[command(
    after_help = "Every flag, the input formats and the exit codes: docs/cli.md.\n\n\
Example: jina client post /index --port 51000 --inputs data.csv --show-progress"
)]
pub struct PostArgs {
    /// The endpoint, e.g. /index
    pub endpoint: String,
    /// The gateway's host
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The gateway's port for --protocol (the Flow prints it under "Flow is ready to use!")
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// grpc, http or websocket
    #[arg(long, default_value = "grpc", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// A file, a glob of files, or - for stdin; none sends one request with no documents
    #[arg(long)]
    pub inputs: Option<String>,
    /// How to read the inputs (default: from the file's extension)
    #[arg(long, value_parser = parse_format)]
    pub input_format: Option<InputFormat>,
    /// CSV column → document field, e.g. sentence=text (repeatable)
    #[arg(long, value_parser = parse_resolver)]
    pub field_resolver: Vec<(String, String)>,
    /// Documents per request (0: all in one)
    #[arg(long, default_value_t = 100)]
    pub request_size: usize,
    /// Requests in flight at most
    #[arg(long, default_value_t = 1000)]
    pub prefetch: usize,
    /// JSON object of parameters for the executors
    #[arg(long, value_parser = super::json_object)]
    pub parameters: Option<Map<String, Value>>,
    /// Only executors whose name matches this regex run
    #[arg(long)]
    pub target_executor: Option<String>,
    /// Show a progress bar and a closing summary on stderr
    #[arg(long)]
    pub show_progress: bool,
    /// Write the returned documents as NDJSON to this file (- for stdout)
    #[arg(long)]
    pub output: Option<String>,
    /// Go on after a failed request, report it, and exit 0
    #[arg(long)]
    pub continue_on_error: bool,
    /// Keep the answers (and --output) in the order of the inputs, not as they complete
    #[arg(long)]
    pub results_in_order: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How a client reaches a gateway that serves TLS.
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Connect over TLS (gRPC with TLS, HTTPS, WSS), trusting the system's roots
    #[arg(long)]
    pub tls: bool,
    /// Trust this CA certificate (PEM) instead of the system's roots; implies --tls
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl TlsArgs {
    fn client(&self) -> anyhow::Result<Option<crate::tls::ClientTls>> {
        if !self.tls && self.ca_file.is_none() {
            return Ok(None);
        }
        Ok(Some(crate::tls::ClientTls::new(self.ca_file.as_deref())?))
    }
}

#[derive(Args, Debug)]
pub struct PingArgs {
    /// `[flow|gateway|executor] HOST:PORT` (Jina 3's form) or `HOST:PORT`. `flow` asks the
    /// gateway whether every executor serves (dry run); the others ask the process itself
    #[arg(num_args = 1..=2, required = true, value_names = ["WHAT", "HOST:PORT"])]
    pub target: Vec<String>,
    /// grpc (health check) or http (GET /dry_run)
    #[arg(long, default_value = "grpc", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// Seconds to wait for an answer
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s).ok_or_else(|| format!("unknown protocol '{s}' (grpc, http, websocket)"))
}

fn parse_format(s: &str) -> Result<InputFormat, String> {
    InputFormat::parse(s)
        .ok_or_else(|| format!("unknown input format '{s}' (csv, ndjson, lines, files, npy)"))
}

fn parse_resolver(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(c, f)| !c.is_empty() && !f.is_empty())
        .map(|(c, f)| (c.to_string(), f.to_string()))
        .ok_or_else(|| format!("expected column=field, found '{s}'"))
}

pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Post(args) => post(args).await,
    }
}

async fn post(args: PostArgs) -> anyhow::Result<()> {
    let mut total_docs = None;
    let inputs = match &args.inputs {
        None => Inputs::Nothing,
        Some(input) => {
            let format = match args.input_format.or_else(|| InputFormat::guess(input)) {
                Some(f) => f,
                None if input == "-" => InputFormat::Lines,
                None => {
                    return Err(anyhow!(
                        "--inputs {input}: cannot tell its format from the extension; give --input-format csv|ndjson|lines|files|npy"
                    ));
                }
            };
            let resolver: FieldResolver = args.field_resolver.iter().cloned().collect();
            if format == InputFormat::Csv
                && let Some(tags) =
                    inputs::csv_columns_without_text(std::path::Path::new(input), &resolver)
            {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {input} has no `text` column: {} go to tags (give one with --field-resolver COLUMN=text)",
                    tags.join(", ")
                );
            }
            if args.show_progress {
                total_docs = inputs::count(input, format);
            }
            Inputs::Documents(inputs::open(input, format, &resolver)?)
        }
    };
    let output: Option<Arc<Mutex<Box<dyn Write + Send>>>> = match args.output.as_deref() {
        None => None,
        Some("-") => Some(Arc::new(Mutex::new(Box::new(std::io::BufWriter::new(
            std::io::stdout(),
        ))))),
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("--output {path}"))?;
            Some(Arc::new(Mutex::new(Box::new(std::io::BufWriter::new(
                file,
            )))))
        }
    };
    let tls = args.tls.client()?;
    let client = Client::connect_tls(
        args.protocol,
        &args.host,
        args.port,
        crate::client::CONNECT_TIMEOUT,
        tls.as_ref(),
    )
    .await?;
    let write_error = Arc::new(Mutex::new(None::<String>));
    let mut options = PostOptions {
        parameters: args.parameters.unwrap_or_default(),
        target_executor: args.target_executor,
        request_size: args.request_size,
        prefetch: args.prefetch,
        show_progress: args.show_progress,
        total_docs,
        continue_on_error: args.continue_on_error,
        results_in_order: args.results_in_order,
        ..Default::default()
    };
    // The reader of --output went away (`--output - | head`): stop, quietly.
    let reader_gone = Arc::new(tokio::sync::Notify::new());
    if let Some(out) = output.clone() {
        let write_error = write_error.clone();
        let reader_gone = reader_gone.clone();
        options = options.on_done(move |response| {
            let written = response.docs().map_err(|e| e.to_string()).and_then(|docs| {
                let mut out = out.lock().unwrap();
                docs.iter()
                    .try_for_each(|d| writeln!(out, "{}", d.to_json()))
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            reader_gone.notify_one();
                        }
                        e.to_string()
                    })
            });
            if let Err(e) = written {
                write_error.lock().unwrap().get_or_insert(e);
            }
        });
    }
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = failures.clone();
    options =
        options.on_error(move |response| seen.lock().unwrap().push(response.error().to_string()));
    let summary = tokio::select! {
        summary = client.post(&args.endpoint, inputs, options) => summary?,
        _ = reader_gone.notified() => return Ok(()),
    };
    if let Some(out) = output {
        match out.lock().unwrap().flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            flushed => flushed.context("--output")?,
        }
    }
    if let Some(e) = write_error.lock().unwrap().take() {
        return Err(anyhow!("--output: {e}"));
    }
    for f in failures.lock().unwrap().iter() {
        eprintln!("failed: {f}");
    }
    if summary.failed > 0 {
        eprintln!(
            "{} of {} requests failed (--continue-on-error)",
            summary.failed, summary.requests
        );
    }
    Ok(())
}

/// What `jina ping` asks about (Jina 3's first word).
#[derive(Clone, Copy, Debug, PartialEq)]
enum PingTarget {
    /// The gateway, and through its dry run every executor.
    Flow,
    /// The process at the address itself (a gateway or an executor): its health check.
    Process,
}

pub async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let (what, address) = match &args.target[..] {
        [address] => (PingTarget::Process, address),
        [what, address] => match what.as_str() {
            "flow" => (PingTarget::Flow, address),
            "gateway" | "executor" => (PingTarget::Process, address),
            other => {
                return Err(anyhow!(
                    "jina ping {other}: expected flow, gateway or executor before HOST:PORT"
                ));
            }
        },
        _ => unreachable!("clap takes one or two"),
    };
    let (host, port) = crate::grpc::host_port(address).map_err(|e| anyhow!(e))?;
    let timeout = std::time::Duration::from_secs_f64(args.timeout.max(0.001));
    let tls = args.tls.client()?;
    match args.protocol {
        Protocol::Grpc if what == PingTarget::Flow => {
            flow_dry_run(host, port, timeout, tls.as_ref()).await?
        }
        Protocol::Grpc => crate::grpc::check_serving_tls(host, port, timeout, tls.as_ref())
            .await
            .map_err(|e| anyhow!(e))?,
        protocol => {
            Client::connect_tls(protocol, host, port, timeout, tls.as_ref()).await?;
        }
    }
    super::say(format_args!("{host}:{port} is serving"));
    Ok(())
}

/// A gateway's dry run over gRPC: Ok when every executor of its Flow serves.
async fn flow_dry_run(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
    tls: Option<&crate::tls::ClientTls>,
) -> anyhow::Result<()> {
    use crate::proto::jina::jina_gateway_dry_run_rpc_client::JinaGatewayDryRunRpcClient;
    let ask = async {
        let channel = crate::grpc::endpoint(host, port, timeout, tls)
            .map_err(|e| anyhow!(e))?
            .connect()
            .await
            .map_err(|e| {
                anyhow!(
                    "{host}:{port}: cannot connect: {}",
                    crate::errors::root_cause(&e)
                )
            })?;
        let status = JinaGatewayDryRunRpcClient::new(channel)
            .dry_run(())
            .await
            .map_err(|s| {
                anyhow!(
                    "{host}:{port}: no dry run there ({}): is it a Flow's gateway?",
                    s.message()
                )
            })?
            .into_inner();
        match status.code {
            0 => Ok(()),
            _ => Err(anyhow!(
                "{host}:{port}: the Flow is not ready: {}",
                status.description
            )),
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| anyhow!("{host}:{port}: no answer within {timeout:?}"))?
}
