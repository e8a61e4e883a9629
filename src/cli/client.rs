//! `jina client post ENDPOINT ...`: stream documents from a file to a gateway, write what comes
//! back as NDJSON; `jina client stream ENDPOINT --text ...`: one document to a streaming
//! endpoint, each document it yields printed as it arrives; `jina ping [HOST:PORT]`;
//! `jina flows`. Without an address they talk to the
//! Flow running on this machine (`local_flows`).

use crate::client::{Client, FieldResolver, InputFormat, Inputs, PostOptions, inputs};
use crate::flow::Protocol;
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Subcommand, Debug)]
pub(super) enum ClientCommand {
    /// Send documents to an endpoint of a running Flow
    Post(PostArgs),
    /// Stream one document to a streaming endpoint; print each document it yields as it arrives
    Stream(StreamArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "Every flag and the exit codes: docs/cli.md.\n\n\
Each document that comes back is printed on a line of its own as soon as it arrives: its text, or with --json the whole document. HTTP streams carry no --parameters (as Python Jina's).

Example: jina client stream /tokenize --text \"streams arrive one word at a time\"")]
pub(super) struct StreamArgs {
    /// The endpoint, e.g. /generate
    pub endpoint: String,
    #[command(flatten)]
    pub address: AddressArgs,
    /// The text of the document to send
    #[arg(long, conflicts_with = "doc")]
    pub text: Option<String>,
    /// The whole document to send, as a JSON object
    #[arg(long, value_parser = super::json_object)]
    pub doc: Option<Map<String, Value>>,
    /// JSON object of parameters for the executor
    #[arg(long, value_parser = super::json_object)]
    pub parameters: Option<Map<String, Value>>,
    /// Print each document as a JSON line, not only its text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Every flag, the input formats and the exit codes: docs/cli.md.\n\n\
Without --host/--port it talks to the Flow running on this machine (JINA_HOST / JINA_PORT when set; --flow NAME when several run; `jina flows` lists them).

Example: jina client post /index --inputs data.csv --show-progress"
)]
pub(super) struct PostArgs {
    /// The endpoint, e.g. /index
    pub endpoint: String,
    #[command(flatten)]
    pub address: AddressArgs,
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
    /// Send a request once its documents reach this many bytes, with fewer than
    /// --request-size (0: no cap, Python Jina's batching)
    #[arg(long, default_value_t = crate::client::DEFAULT_REQUEST_BYTES)]
    pub request_bytes: usize,
    /// Requests in flight at most
    #[arg(long, default_value_t = 1000)]
    pub prefetch: usize,
    /// Bytes of requests in flight at most (0: no limit); bounds memory with big documents
    #[arg(long, default_value_t = crate::request::DEFAULT_IN_FLIGHT_BYTES)]
    pub max_in_flight_bytes: usize,
    /// JSON object of parameters for the executors
    #[arg(long, value_parser = super::json_object)]
    pub parameters: Option<Map<String, Value>>,
    /// Only executors whose name matches this regex run
    #[arg(long)]
    pub target_executor: Option<String>,
    /// Show a progress bar and a closing summary on stderr
    #[arg(long)]
    pub show_progress: bool,
    /// Write the returned documents as NDJSON to this file (- for stdout, where embeddings and
    /// tensors are left out unless --with-embeddings)
    #[arg(long)]
    pub output: Option<String>,
    /// Keep embeddings and tensors (of documents, chunks and matches) in --output -
    #[arg(long)]
    pub with_embeddings: bool,
    /// Go on after a failed request, report it, and exit 0
    #[arg(long)]
    pub continue_on_error: bool,
    /// Keep the answers (and --output) in the order of the inputs, not as they complete
    #[arg(long)]
    pub results_in_order: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub tracing: crate::telemetry::TracingFlags,
}

/// Where a client command goes: an address, or a Flow running on this machine.
#[derive(Args, Debug)]
pub(super) struct AddressArgs {
    /// The gateway's host (default: JINA_HOST, else 127.0.0.1; needs --port)
    #[arg(long)]
    pub host: Option<String>,
    /// The gateway's port for --protocol (default: JINA_PORT, else the Flow running here)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// grpc, http or websocket (default: grpc, or the only one the Flow serves)
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// The running Flow to talk to, by the name `jina flows` shows
    #[arg(long, conflicts_with = "port")]
    pub flow: Option<String>,
}

/// Where a client command goes, once decided.
struct Target {
    host: String,
    port: u16,
    protocol: Protocol,
    /// The certificate of a local Flow that serves TLS: trusted when no TLS flag says otherwise.
    certfile: Option<std::path::PathBuf>,
}

impl AddressArgs {
    /// The address given (flags, then JINA_HOST / JINA_PORT), else the Flow running on this
    /// machine, which is named on stderr.
    fn target(&self) -> anyhow::Result<Target> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let env_port = match (self.flow.is_none(), env("JINA_PORT")) {
            (true, Some(p)) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| anyhow!("JINA_PORT={p}: not a port"))?,
            ),
            _ => None,
        };
        if let Some(port) = self.port.or(env_port) {
            return Ok(Target {
                host: self
                    .host
                    .clone()
                    .or_else(|| env("JINA_HOST"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
                port,
                protocol: self.protocol.unwrap_or(Protocol::Grpc),
                certfile: None,
            });
        }
        if let Some(host) = &self.host {
            return Err(anyhow!(
                "--host {host}: give its --port too (only Flows on this machine are found without one)"
            ));
        }
        let (flow, protocol, port) = crate::local_flows::pick(self.flow.as_deref(), self.protocol)?;
        let _ = writeln!(
            std::io::stderr(),
            "using the Flow {flow} at {} {}:{port}",
            protocol.as_str(),
            flow.dial_host()
        );
        Ok(Target {
            // A certificate names localhost, not an address.
            host: match flow.certfile {
                Some(_) => "localhost".into(),
                None => flow.dial_host().to_string(),
            },
            port,
            protocol,
            certfile: flow.certfile,
        })
    }
}

/// A client of the gateway the flags name.
async fn connect(address: &AddressArgs, tls: &TlsArgs) -> anyhow::Result<Client> {
    let target = address.target()?;
    let tls = tls.client(&target)?;
    let client = Client::connect_tls(
        target.protocol,
        &target.host,
        target.port,
        crate::client::CONNECT_TIMEOUT,
        tls.as_ref(),
    )
    .await?;
    Ok(client)
}

/// How a client reaches a gateway that serves TLS.
#[derive(Args, Debug)]
pub(super) struct TlsArgs {
    /// Connect over TLS (gRPC with TLS, HTTPS, WSS), trusting the system's roots
    #[arg(long)]
    pub tls: bool,
    /// Trust this CA certificate (PEM) instead of the system's roots; implies --tls
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The TLS client for `target`: as the flags say, else trusting a local Flow's certificate.
    fn client(&self, target: &Target) -> anyhow::Result<Option<crate::tls::ClientTls>> {
        if !self.tls && self.ca_file.is_none() {
            return match &target.certfile {
                Some(cert) => Ok(Some(crate::tls::ClientTls::new(Some(cert))?)),
                None => Ok(None),
            };
        }
        Ok(Some(crate::tls::ClientTls::new(self.ca_file.as_deref())?))
    }
}

#[derive(Args, Debug)]
pub(super) struct PingArgs {
    /// `[flow|gateway|executor] HOST:PORT` (Jina 3's form) or `HOST:PORT`. `flow` asks the
    /// gateway whether every executor serves (dry run); the others ask the process itself.
    /// Without HOST:PORT: the Flow running on this machine
    #[arg(num_args = 0..=2, value_names = ["WHAT", "HOST:PORT"])]
    pub target: Vec<String>,
    /// grpc (health check) or http (GET /dry_run)
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// The running Flow to ping, by the name `jina flows` shows
    #[arg(long)]
    pub flow: Option<String>,
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

pub(super) async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Post(args) => post(args).await,
        ClientCommand::Stream(args) => stream(args).await,
    }
}

async fn stream(args: StreamArgs) -> anyhow::Result<()> {
    use futures::StreamExt;
    let doc = match (&args.text, args.doc) {
        (Some(text), _) => crate::document::Document::from_text(text.clone()),
        (None, Some(fields)) => crate::document::Document::from_json(&Value::Object(fields))
            .map_err(|e| anyhow!("--doc: {e}"))?,
        (None, None) => {
            return Err(anyhow!(
                "give the document to stream: --text TEXT or --doc JSON"
            ));
        }
    };
    let client = connect(&args.address, &args.tls).await?;
    let parameters = args.parameters.unwrap_or_default();
    let mut docs = client.stream_doc(&args.endpoint, &doc, &parameters);
    let mut out = std::io::stdout().lock();
    while let Some(doc) = docs.next().await {
        let doc = doc?;
        let line = match (&doc.text, args.json) {
            (Some(text), false) => text.clone(),
            _ => doc.to_json().to_string(),
        };
        let written = writeln!(out, "{line}").and_then(|_| out.flush());
        match written {
            // The reader went away (`| head`): stop, quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("stdout")?,
        }
    }
    Ok(())
}

async fn post(args: PostArgs) -> anyhow::Result<()> {
    if let Some(export) = args.tracing.export() {
        crate::logging::init_traced("client", Some(crate::telemetry::start(&export, "client")?));
    }
    let posted = post_documents(args).await;
    crate::telemetry::shutdown();
    posted
}

async fn post_documents(args: PostArgs) -> anyhow::Result<()> {
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
    let client = connect(&args.address, &args.tls).await?;
    let write_error = Arc::new(Mutex::new(None::<String>));
    let mut options = PostOptions {
        parameters: args.parameters.unwrap_or_default(),
        target_executor: args.target_executor,
        request_size: args.request_size,
        request_bytes: args.request_bytes,
        prefetch: args.prefetch,
        max_in_flight_bytes: args.max_in_flight_bytes,
        show_progress: args.show_progress,
        total_docs,
        continue_on_error: args.continue_on_error,
        results_in_order: args.results_in_order,
        ..Default::default()
    };
    // The reader of --output went away (`--output - | head`): stop, quietly.
    let reader_gone = Arc::new(tokio::sync::Notify::new());
    // On a terminal a search's answer is read by eye: a query's embedding would bury its
    // matches.
    let without_vectors = args.output.as_deref() == Some("-") && !args.with_embeddings;
    if let Some(out) = output.clone() {
        let write_error = write_error.clone();
        let reader_gone = reader_gone.clone();
        options = options.on_done(move |response| {
            let written = response
                .docs()
                .map_err(|e| e.to_string())
                .and_then(|mut docs| {
                    if without_vectors {
                        docs.iter_mut()
                            .for_each(crate::document::Document::drop_vectors);
                    }
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

pub(super) async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let word = |w: &str| match w {
        "flow" => Some(PingTarget::Flow),
        "gateway" | "executor" => Some(PingTarget::Process),
        _ => None,
    };
    let (what, address) = match &args.target[..] {
        [] => (PingTarget::Process, None),
        [one] => match word(one) {
            Some(what) => (what, None),
            None => (PingTarget::Process, Some(one)),
        },
        [what, address] => match word(what) {
            Some(what) => (what, Some(address)),
            None => {
                return Err(anyhow!(
                    "jina ping {what}: expected flow, gateway or executor before HOST:PORT"
                ));
            }
        },
        _ => unreachable!("clap takes at most two"),
    };
    let target = match address {
        Some(address) => {
            let (host, port) = crate::net::host_port(address).map_err(|e| anyhow!(e))?;
            Target {
                host: host.to_string(),
                port,
                protocol: args.protocol.unwrap_or(Protocol::Grpc),
                certfile: None,
            }
        }
        None => AddressArgs {
            host: None,
            port: None,
            protocol: args.protocol,
            flow: args.flow.clone(),
        }
        .target()?,
    };
    let (host, port) = (target.host.as_str(), target.port);
    let timeout = std::time::Duration::from_secs_f64(args.timeout.max(0.001));
    let tls = args.tls.client(&target)?;
    match target.protocol {
        Protocol::Grpc => {
            let asked = match what {
                PingTarget::Flow => flow_dry_run(host, port, timeout, tls.as_ref()).await,
                PingTarget::Process => {
                    crate::grpc::check_serving_tls(host, port, timeout, tls.as_ref())
                        .await
                        .map_err(|e| anyhow!(e))
                }
            };
            // A plain-text ping of a TLS port (or of a REST face) says what the port speaks, as
            // `client post` does, rather than h2's "protocol error".
            if let Err(e) = asked {
                let hint = match tls {
                    None => {
                        crate::client::mismatch_hint(&format!("{host}:{port}"), Protocol::Grpc)
                            .await
                    }
                    Some(_) => None,
                };
                return Err(hint.map_or(e, |h| anyhow!(h)));
            }
        }
        protocol => {
            Client::connect_tls(protocol, host, port, timeout, tls.as_ref()).await?;
        }
    }
    super::say(format_args!("{host}:{port} is serving"));
    Ok(())
}

/// `jina flows`: the Flows running on this machine, like `docker ps`.
pub(super) fn list_flows() -> anyhow::Result<()> {
    let flows = crate::local_flows::running();
    if flows.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "no Flow runs on this machine (start one with `jina flow --uses flow.yml`)"
        );
        return Ok(());
    }
    let rows: Vec<[String; 5]> = flows
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                f.pid.to_string(),
                match f.state {
                    crate::local_flows::FlowState::Starting => "(starting)".into(),
                    crate::local_flows::FlowState::Ready => f.addresses(),
                },
                uptime(f.uptime()),
                f.executors.to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "PID", "ADDRESSES", "UP", "EXECUTORS"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        super::say(format_args!("{}", line.join("   ").trim_end()));
    }
    Ok(())
}

/// `3s`, `4m 05s`, `2h 03m`, `1d 04h`, as `docker ps` shows how long a container is up.
fn uptime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
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
