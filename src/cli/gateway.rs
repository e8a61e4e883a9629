//! `jina gateway`: serve a gateway in front of executors that already run, described the way
//! Jina 3 describes them: `--graph-description '{"start-gateway": ["a"], "a": ["end-gateway"]}'`
//! and `--deployments-addresses '{"a": ["127.0.0.1:12345"]}'` (several addresses of one
//! executor are replicas, used in turn).
//!
//! Or in front of the executors of a Flow YAML: `--uses flow.yml` gives the graph and every
//! setting of the Flow (polling, `when`, retries, timeouts, ports), and
//! `--deployments-addresses` where each executor's copies run, as a list of replicas or as
//! `{"shards": [[replicas of shard 0], ...], "head": "h:p", "tail": "t:p"}` (its uses_before
//! and uses_after). This is how `jina export docker-compose` runs the gateway.

use crate::flow::{
    CallPolicy, ExecutorSpec, FlowSpec, GATEWAY, GatewaySpec, Graph, Protocol, TlsFiles,
};
use crate::gateway::{self, Listeners};
use crate::topology::{CopyAddress, DeploymentAddresses, Topology};
use anyhow::anyhow;
use clap::Args;
use serde_json::{Map, Value};

#[derive(Args, Debug)]
pub(super) struct GatewayArgs {
    /// A Flow YAML whose executors run at --deployments-addresses: its graph and settings
    #[arg(long, conflicts_with = "graph_description")]
    pub uses: Option<std::path::PathBuf>,
    /// The graph: each node's list of children; `start-gateway` is the entry, `end-gateway` the exit
    #[arg(long, value_parser = super::json_object, required_unless_present = "uses")]
    pub graph_description: Option<Map<String, Value>>,
    /// Each executor's addresses, `host:port`
    #[arg(long, value_parser = super::json_object)]
    pub deployments_addresses: Map<String, Value>,
    /// Protocols to serve, one port each [default: grpc, or the Flow's with --uses]
    #[arg(long, num_args = 1.., value_parser = parse_protocol)]
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
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// The most documents one request may hold, chunks and matches included (0: no limit)
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_REQUEST_DOCS)]
    pub max_request_docs: usize,
    /// The memory the requests in flight may take, estimated before they are read (0: no limit)
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_IN_FLIGHT_BYTES)]
    pub max_in_flight_bytes: usize,
    /// Let web pages of other sites call the REST face
    #[arg(long)]
    pub cors: bool,
    /// Host names (or globs: `*.example.com`, `*` for any) the REST and WebSocket faces answer
    /// to, besides IP addresses, localhost and this machine's name (a DNS-rebinding guard)
    #[arg(long, num_args = 1.., value_parser = parse_host_pattern)]
    pub allowed_hosts: Vec<String>,
    /// Serve gRPC, HTTPS and WSS with this certificate chain (PEM; with --ssl-keyfile)
    #[arg(long, requires = "ssl_keyfile")]
    pub ssl_certfile: Option<std::path::PathBuf>,
    /// The private key of --ssl-certfile (PEM)
    #[arg(long, requires = "ssl_certfile")]
    pub ssl_keyfile: Option<std::path::PathBuf>,
}

fn parse_host_pattern(s: &str) -> Result<String, String> {
    crate::gateway::check_host_pattern(s).map(|()| s.to_string())
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
            let copies = copies_at(name, &addresses[name])?;
            Ok(DeploymentAddresses {
                name: name.clone(),
                polling: Default::default(),
                polling_by_endpoint: Default::default(),
                shards: copies.shards,
                head: copies.head,
                tail: copies.tail,
                tls: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((graph, Topology { deployments }))
}

/// The copies of one executor at `value`: a `host:port`, a list of them (replicas), or
/// `{"shards": [[...], ...], "head": "...", "tail": "..."}`.
struct CopiesAt {
    shards: Vec<Vec<CopyAddress>>,
    head: Option<CopyAddress>,
    tail: Option<CopyAddress>,
}

fn copies_at(name: &str, value: &Value) -> anyhow::Result<CopiesAt> {
    let bad = || {
        anyhow!(
            "--deployments-addresses: '{name}' needs host:port, a list of them, or {{\"shards\": [[host:port, ...], ...], \"head\": host:port, \"tail\": host:port}}"
        )
    };
    let replicas = |v: &Value| -> anyhow::Result<Vec<CopyAddress>> {
        let list: Vec<CopyAddress> = match v {
            Value::String(s) => vec![CopyAddress::external(s.clone())],
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(|s| CopyAddress::external(s.into())))
                .collect::<Option<_>>()
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        match list.is_empty() {
            true => Err(bad()),
            false => Ok(list),
        }
    };
    let one = |v: Option<&Value>| -> anyhow::Result<Option<CopyAddress>> {
        v.map(|v| {
            v.as_str()
                .map(|s| CopyAddress::external(s.into()))
                .ok_or_else(bad)
        })
        .transpose()
    };
    match value {
        Value::Object(map) => {
            if let Some(key) = map
                .keys()
                .find(|k| !["shards", "head", "tail"].contains(&k.as_str()))
            {
                return Err(anyhow!(
                    "--deployments-addresses: '{name}': unknown key '{key}' (shards, head, tail)"
                ));
            }
            let shards = match map.get("shards") {
                Some(Value::Array(shards)) if !shards.is_empty() => {
                    shards.iter().map(replicas).collect::<anyhow::Result<_>>()?
                }
                _ => return Err(bad()),
            };
            Ok(CopiesAt {
                shards,
                head: one(map.get("head"))?,
                tail: one(map.get("tail"))?,
            })
        }
        v => Ok(CopiesAt {
            shards: vec![replicas(v)?],
            head: None,
            tail: None,
        }),
    }
}

/// `--uses flow.yml`: the Flow's graph, settings and call policies, with its executors at
/// the given addresses.
fn from_flow(
    path: &std::path::Path,
    addresses: &Map<String, Value>,
) -> anyhow::Result<(Graph, Topology, GatewaySpec, Vec<CallPolicy>)> {
    let flow = super::flow::load(path)?;
    let spec = &flow.spec;
    let mut deployments = vec![];
    for (i, exec) in spec.executors.iter().enumerate() {
        let name = spec.name_of(i);
        let value = addresses
            .get(&name)
            .ok_or_else(|| anyhow!("--deployments-addresses: no address for '{name}'"))?;
        let copies = copies_at(&name, value)?;
        if copies.shards.len() != exec.shards as usize {
            return Err(anyhow!(
                "--deployments-addresses: '{name}' has {} shards in {}, and {} here",
                exec.shards,
                path.display(),
                copies.shards.len()
            ));
        }
        deployments.push(DeploymentAddresses {
            name,
            polling: exec.polling,
            polling_by_endpoint: exec.polling_by_endpoint.clone(),
            shards: copies.shards,
            head: copies.head,
            tail: copies.tail,
            tls: exec.tls,
        });
    }
    if let Some(unknown) = addresses
        .keys()
        .find(|k| !(0..spec.executors.len()).any(|i| spec.name_of(i) == **k))
    {
        return Err(anyhow!(
            "--deployments-addresses: '{unknown}' is not an executor of {}",
            path.display()
        ));
    }
    let policies = (0..spec.executors.len())
        .map(|i| spec.call_policy(i))
        .collect();
    Ok((
        flow.graph.clone(),
        Topology { deployments },
        flow.spec.gateway.clone(),
        policies,
    ))
}

pub(super) async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    // A Flow that is traced decides how logging is set up, so its YAML is read first.
    let export = args
        .uses
        .as_deref()
        .and_then(|path| crate::flow::load(path).ok())
        .and_then(|flow| flow.spec.gateway.tracing);
    let traces = match &export {
        Some(export) => Some(crate::telemetry::start(export, "gateway")?),
        None => None,
    };
    crate::logging::init_traced("gateway", traces);
    let tls = match (args.ssl_certfile, args.ssl_keyfile) {
        (Some(certfile), Some(keyfile)) => Some(TlsFiles { certfile, keyfile }),
        _ => None,
    };
    let timeout_send = u64::try_from(args.timeout_send)
        .ok()
        .map(std::time::Duration::from_millis);
    let (graph, topology, spec, policies) = match (&args.uses, &args.graph_description) {
        (Some(path), _) => {
            let (graph, topology, mut spec, policies) =
                from_flow(path, &args.deployments_addresses)?;
            // Flags given on the command line win over the Flow's `with:`.
            if !args.protocol.is_empty() {
                spec.protocols = args.protocol;
            }
            if !args.port.is_empty() {
                spec.ports = args.port;
            }
            if tls.is_some() {
                spec.tls = tls;
            }
            spec.allowed_hosts.extend(args.allowed_hosts);
            (graph, topology, spec, policies)
        }
        (None, description) => {
            let (graph, topology) = graph_from(
                description.as_ref().unwrap_or(&Map::new()),
                &args.deployments_addresses,
            )?;
            let spec = GatewaySpec {
                protocols: match args.protocol.is_empty() {
                    true => vec![Protocol::Grpc],
                    false => args.protocol,
                },
                ports: args.port,
                host: args.host,
                prefetch: args.prefetch,
                timeout_send,
                max_request_bytes: args.max_request_bytes,
                max_request_docs: args.max_request_docs,
                max_in_flight_bytes: args.max_in_flight_bytes,
                cors: args.cors,
                allowed_hosts: args.allowed_hosts,
                tls,
                ..Default::default()
            };
            let policies = vec![
                CallPolicy {
                    timeout_send,
                    ..Default::default()
                };
                topology.deployments.len()
            ];
            (graph, topology, spec, policies)
        }
    };
    let listeners = Listeners::bind(&spec).await.map_err(|e| anyhow!(e))?;
    let ports = listeners.ports();
    let metrics = crate::metrics::serve_gateway(
        spec.monitoring,
        &spec.host,
        spec.port_monitoring,
        crate::shutdown::termination(),
    )
    .await
    .map_err(|e| anyhow!(e))?;
    let router = gateway::router(
        graph,
        &topology,
        &policies,
        None,
        metrics.as_ref().map(|m| m.metrics.clone()),
    )
    .map_err(|e| anyhow!(e))?;
    let settings = gateway::Settings::from_spec(&spec)?;
    let serving = tokio::spawn(gateway::serve(
        listeners,
        gateway::Routing::new(router),
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
    let served = serving.await?.map_err(|e| anyhow!(e));
    crate::telemetry::shutdown();
    served
}
