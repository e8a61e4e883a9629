//! `jina gateway`: serve a gateway in front of executors that already run, described the way
//! Jina 3 describes them: `--graph-description '{"start-gateway": ["a"], "a": ["end-gateway"]}'`
//! and `--deployments-addresses '{"a": ["127.0.0.1:12345"]}'` (several addresses of one
//! executor are replicas, used in turn).

use crate::flow::{
    CallPolicy, ExecutorSpec, FlowSpec, GATEWAY, GatewaySpec, Graph, Protocol, TlsFiles,
};
use crate::gateway::{self, Listeners};
use crate::orchestrate::{CopyAddress, DeploymentAddresses, Topology};
use anyhow::anyhow;
use clap::Args;
use serde_json::{Map, Value};

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// The graph: each node's list of children; `start-gateway` is the entry, `end-gateway` the exit
    #[arg(long, value_parser = super::json_object)]
    pub graph_description: Map<String, Value>,
    /// Each executor's addresses, `host:port`
    #[arg(long, value_parser = super::json_object)]
    pub deployments_addresses: Map<String, Value>,
    /// Protocols to serve, one port each
    #[arg(long, num_args = 1.., default_values = ["grpc"], value_parser = parse_protocol)]
    pub protocol: Vec<Protocol>,
    /// Ports, one per protocol (free ports when missing)
    #[arg(long, num_args = 1..)]
    pub port: Vec<u16>,
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Requests in flight per client stream
    #[arg(long, default_value_t = 1000)]
    pub prefetch: usize,
    /// Milliseconds an executor may take per request (-1: wait forever)
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub timeout_send: i64,
    /// The largest request taken on any face, in bytes
    #[arg(long, default_value_t = crate::flow::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Let web pages of other sites call the REST face
    #[arg(long)]
    pub cors: bool,
    /// Serve gRPC, HTTPS and WSS with this certificate chain (PEM; with --ssl-keyfile)
    #[arg(long, requires = "ssl_keyfile")]
    pub ssl_certfile: Option<std::path::PathBuf>,
    /// The private key of --ssl-certfile (PEM)
    #[arg(long, requires = "ssl_certfile")]
    pub ssl_keyfile: Option<std::path::PathBuf>,
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s).ok_or_else(|| format!("unknown protocol '{s}' (grpc, http, websocket)"))
}

/// Reads the Jina 3 graph description into executors with their needs, in a stable order.
fn graph_from(
    description: &Map<String, Value>,
    addresses: &Map<String, Value>,
) -> anyhow::Result<(Graph, Topology)> {
    let children = |node: &str| -> anyhow::Result<Vec<String>> {
        match description.get(node) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("--graph-description: '{node}' must list names"))
                })
                .collect(),
            Some(_) => Err(anyhow!(
                "--graph-description: '{node}' must be a list of names"
            )),
        }
    };
    let names: Vec<String> = addresses.keys().cloned().collect();
    let mut executors = vec![];
    for name in &names {
        let mut needs = vec![];
        if children("start-gateway")?.contains(name) {
            needs.push(GATEWAY.to_string());
        }
        for parent in description.keys().filter(|k| names.contains(k)) {
            if children(parent)?.contains(name) {
                needs.push(parent.clone());
            }
        }
        executors.push(ExecutorSpec {
            name: Some(name.clone()),
            needs: Some(needs),
            ..ExecutorSpec::new()
        });
    }
    for node in description.keys().chain(children("start-gateway")?.iter()) {
        if node != "start-gateway" && node != "end-gateway" && !addresses.contains_key(node) {
            return Err(anyhow!("--deployments-addresses: no address for '{node}'"));
        }
    }
    let spec = FlowSpec {
        executors,
        ..Default::default()
    };
    let graph = Graph::build(&spec).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|(i, _, m)| format!("--graph-description: {}: {m}", spec.name_of(*i)))
            .collect();
        anyhow!("{}", lines.join("\n"))
    })?;
    let deployments = names
        .iter()
        .map(|name| {
            let replicas: Vec<CopyAddress> = match &addresses[name] {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                _ => vec![],
            }
            .into_iter()
            .map(CopyAddress::external)
            .collect();
            if replicas.is_empty() {
                return Err(anyhow!(
                    "--deployments-addresses: '{name}' needs a list of host:port"
                ));
            }
            Ok(DeploymentAddresses {
                name: name.clone(),
                polling: Default::default(),
                polling_by_endpoint: Default::default(),
                shards: vec![replicas],
                head: None,
                tail: None,
                tls: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((graph, Topology { deployments }))
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    crate::logging::init("gateway");
    let (graph, topology) = graph_from(&args.graph_description, &args.deployments_addresses)?;
    let tls = match (args.ssl_certfile, args.ssl_keyfile) {
        (Some(certfile), Some(keyfile)) => Some(TlsFiles { certfile, keyfile }),
        _ => None,
    };
    let spec = GatewaySpec {
        protocols: args.protocol,
        ports: args.port,
        host: args.host,
        prefetch: args.prefetch,
        timeout_send: u64::try_from(args.timeout_send)
            .ok()
            .map(std::time::Duration::from_millis),
        max_request_bytes: args.max_request_bytes,
        cors: args.cors,
        tls,
        ..Default::default()
    };
    let listeners = Listeners::bind(&spec).await.map_err(|e| anyhow!(e))?;
    let ports = listeners.ports();
    let policies = vec![
        CallPolicy {
            timeout_send: spec.timeout_send,
            ..Default::default()
        };
        topology.deployments.len()
    ];
    let router = gateway::router(graph, &topology, &policies, None).map_err(|e| anyhow!(e))?;
    let settings = gateway::Settings::from_spec(&spec)?;
    let serving = tokio::spawn(gateway::serve(
        listeners,
        router,
        settings,
        crate::shutdown::termination(),
    ));
    let record = crate::local_flows::FlowRecord::of_this_process(
        "gateway".into(),
        &spec.host,
        &ports,
        None,
        topology.deployments.len(),
        spec.tls.as_ref().map(|t| t.certfile.as_path()),
    );
    let _registration = crate::local_flows::register(&record);
    for (protocol, port) in ports {
        tracing::info!("serving {} on {}:{port}", protocol.as_str(), spec.host);
    }
    tracing::info!(target: "success", "ready and listening");
    serving.await?.map_err(|e| anyhow!(e))
}
