//! The reference's Flow API as a Rust builder: `Flow::new().add(..).needs(..)`.
//!
//! A [`Flow`] is a plain value describing the pipeline; nothing runs until it is started
//! (`Flow::start`, in `running`), which consumes it and gives a running handle that has no
//! `add`: the reference's "no `.add()` inside `with`" rule, checked by the compiler.

use super::spec::{ExecutorSpec, FlowSpec, Polling, Protocol, Uses};
use super::{CheckedFlow, Diagnostic, FlowErrors};
use crate::executor::{Entry, Executor};
use serde_json::{Map, Value};
use std::path::Path;
use std::time::Duration;

/// A Flow under construction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flow {
    spec: FlowSpec,
}

/// Names an executor needs: one name, several, or `"gateway"`.
pub trait Needs {
    fn into_names(self) -> Vec<String>;
}

impl Needs for &str {
    fn into_names(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl Needs for String {
    fn into_names(self) -> Vec<String> {
        vec![self]
    }
}

impl<const N: usize> Needs for [&str; N] {
    fn into_names(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

impl Needs for &[&str] {
    fn into_names(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

impl Needs for Vec<String> {
    fn into_names(self) -> Vec<String> {
        self
    }
}

impl Flow {
    /// An empty Flow: a gRPC gateway on a free port.
    pub fn new() -> Flow {
        Flow::default()
    }

    /// A Flow from its YAML file (checked when it starts or is plotted).
    pub fn load(path: impl AsRef<Path>) -> Result<Flow, FlowErrors> {
        Ok(Flow {
            spec: super::load(path.as_ref())?.spec,
        })
    }

    /// Wraps a spec (e.g. read from YAML).
    pub fn from_spec(spec: FlowSpec) -> Flow {
        Flow { spec }
    }

    /// What the Flow says, as data.
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// The gateway's protocol(s); several serve at once, one port each.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = Protocol>) -> Flow {
        self.spec.gateway.protocols = protocols.into_iter().collect();
        self
    }

    /// Serves the gateway over this protocol only (the reference's `protocol=`).
    pub fn protocol(self, protocol: Protocol) -> Flow {
        self.protocols([protocol])
    }

    /// The gateway's port(s), one per protocol.
    pub fn ports(mut self, ports: impl IntoIterator<Item = u16>) -> Flow {
        self.spec.gateway.ports = ports.into_iter().collect();
        self
    }

    /// The gateway's port (the reference's `port=`).
    pub fn port(self, port: u16) -> Flow {
        self.ports([port])
    }

    /// The address the gateway binds.
    pub fn host(mut self, host: &str) -> Flow {
        self.spec.gateway.host = host.into();
        self
    }

    /// Requests in flight per client stream.
    pub fn prefetch(mut self, n: usize) -> Flow {
        self.spec.gateway.prefetch = n;
        self
    }

    /// Milliseconds to wait for each executor to be ready (-1: forever).
    pub fn timeout_ready(mut self, ms: i64) -> Flow {
        self.spec.gateway.timeout_ready = ms;
        self
    }

    /// An environment variable for every executor.
    pub fn env(mut self, key: &str, value: &str) -> Flow {
        self.spec.gateway.env.insert(key.into(), value.into());
        self
    }

    /// Milliseconds each executor may take per request (-1: forever); Jina's `timeout_send`.
    pub fn timeout_send(mut self, ms: i64) -> Flow {
        self.spec.gateway.timeout_send = u64::try_from(ms).ok().map(Duration::from_millis);
        self
    }

    /// The largest request the gateway takes, in bytes, on every protocol.
    pub fn max_request_bytes(mut self, bytes: usize) -> Flow {
        self.spec.gateway.max_request_bytes = bytes;
        self
    }

    /// The most documents one request may hold, chunks and matches included (0: no limit).
    pub fn max_request_docs(mut self, docs: usize) -> Flow {
        self.spec.gateway.max_request_docs = docs;
        self
    }

    /// The memory the requests each process handles at once may take (0: no limit).
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Flow {
        self.spec.gateway.max_in_flight_bytes = bytes;
        self
    }

    /// Let web pages of other sites call the REST face (Jina's `cors`).
    pub fn cors(mut self, cors: bool) -> Flow {
        self.spec.gateway.cors = cors;
        self
    }

    /// Serve gRPC, HTTPS and WSS with this certificate chain and key (PEM files).
    pub fn ssl(mut self, certfile: impl AsRef<Path>, keyfile: impl AsRef<Path>) -> Flow {
        self.spec.gateway.tls = Some(super::TlsFiles {
            certfile: certfile.as_ref().into(),
            keyfile: keyfile.as_ref().into(),
        });
        self
    }

    /// Adds an executor; by default it needs the one added before (a chain).
    #[allow(
        clippy::should_implement_trait,
        reason = "the reference's Flow.add; a Flow is not a number"
    )]
    /// Adds an executor after the last one (the reference's `.add()`).
    pub fn add(mut self, exec: impl Into<Exec>) -> Flow {
        self.spec.executors.push(exec.into().spec);
        self
    }

    /// Adds a pass-through executor named `name` that joins `needs` (the reference's `.needs()`).
    pub fn needs(self, needs: impl Needs, name: &str) -> Flow {
        self.add(Exec::new().name(name).needs(needs))
    }

    /// Joins every executor nobody needs yet (the reference's `.needs_all()`).
    pub fn needs_all(self, name: &str) -> Flow {
        let orphans = self.spec.orphans();
        self.needs(orphans, name)
    }

    /// Checks the whole Flow: the graph and every executor's `uses`.
    pub fn check(&self) -> Result<CheckedFlow, FlowErrors> {
        match super::check(&self.spec) {
            Ok((graph, served)) => Ok(CheckedFlow {
                spec: self.spec.clone(),
                graph,
                served,
                warnings: vec![],
            }),
            Err(problems) => Err(FlowErrors {
                origin: "Flow".into(),
                errors: problems
                    .into_iter()
                    .map(|(i, key, message)| {
                        Diagnostic::new(
                            None,
                            &format!("executors[{i}] ({}).{key}", self.spec.name_of(i)),
                            message,
                        )
                    })
                    .collect(),
                warnings: vec![],
            }),
        }
    }

    /// Writes the Flow's graph as SVG to `path` and gives the Flow back (the reference's
    /// `Flow().add().plot('f.svg')`).
    pub fn plot(self, path: impl AsRef<Path>) -> Result<Flow, FlowErrors> {
        let svg = self.to_svg()?;
        std::fs::write(path.as_ref(), svg).map_err(|e| FlowErrors {
            origin: path.as_ref().display().to_string(),
            errors: vec![Diagnostic::new(None, "", e.to_string())],
            warnings: vec![],
        })?;
        Ok(self)
    }

    /// The Flow's graph as SVG.
    pub fn to_svg(&self) -> Result<String, FlowErrors> {
        let checked = self.check()?;
        Ok(super::plot::svg(&checked.spec, &checked.graph))
    }

    /// The Flow as Flow YAML that loads back to the same graph.
    pub fn to_yaml(&self) -> String {
        super::yaml::write(&self.spec)
    }
}

/// One executor's options: everything `.add()` takes in the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Exec {
    spec: ExecutorSpec,
}

impl Default for Exec {
    fn default() -> Self {
        Exec::new()
    }
}

/// `.add("Visit")`: an executor by `uses` string.
impl From<&str> for Exec {
    fn from(uses: &str) -> Exec {
        Exec::new().uses(uses)
    }
}

impl Exec {
    /// A pass-through executor (`BaseExecutor`), as the reference's bare `.add()`.
    pub fn new() -> Exec {
        Exec {
            spec: ExecutorSpec::new(),
        }
    }

    /// The executor's name (default: `executor<i>` by position).
    pub fn name(mut self, name: &str) -> Exec {
        self.spec.name = Some(name.into());
        self
    }

    /// A built-in name, a YAML path, or inline YAML.
    pub fn uses(mut self, uses: &str) -> Exec {
        self.spec.uses = Uses::Named(uses.into());
        self
    }

    /// An executor config as a map: `{"jtype": ..., "with": ...}`.
    pub fn uses_map(mut self, map: Value) -> Exec {
        self.spec.uses = Uses::Map(map);
        self
    }

    /// A Rust executor type (the reference's `uses=MyExecutor`), built for each copy from
    /// `uses_with` and the metas and served inside the Flow's process.
    pub fn uses_type<E: Executor>(mut self) -> Exec {
        self.spec.uses = Uses::Native(Entry::of::<E>());
        self
    }

    /// Constructor arguments laid over the executor's `with`.
    pub fn uses_with(mut self, with: Value) -> Exec {
        self.spec.overrides.uses_with = object(with);
        self
    }

    /// Metas laid over the executor's `metas`.
    pub fn uses_metas(mut self, metas: Value) -> Exec {
        self.spec.overrides.uses_metas = object(metas);
        self
    }

    /// Endpoint → handler bindings laid over the executor's `requests`.
    pub fn uses_requests<'a>(
        mut self,
        bindings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Exec {
        self.spec.overrides.uses_requests = bindings
            .into_iter()
            .map(|(e, h)| (e.to_string(), h.to_string()))
            .collect();
        self
    }

    /// The executors it waits for (a name, or several: a join); `gateway` for the entry.
    pub fn needs(mut self, needs: impl Needs) -> Exec {
        self.spec.needs = Some(needs.into_names());
        self
    }

    /// Copies of the executor (Jina 2's `parallel`; see `polling`).
    pub fn parallel(mut self, n: u32) -> Exec {
        self.spec.shards = n.max(1);
        self
    }

    /// Jina 3's shards: copies that each get every request (polling ALL).
    pub fn shards(mut self, n: u32) -> Exec {
        self.spec.shards = n.max(1);
        self.spec.polling = Polling::All;
        self
    }

    /// Jina 3's replicas: copies of each shard, used in turn.
    pub fn replicas(mut self, n: u32) -> Exec {
        self.spec.replicas = n.max(1);
        self
    }

    /// How a request reaches its shards: ANY, ALL, ALL_ASYNC.
    pub fn polling(mut self, polling: Polling) -> Exec {
        self.spec.polling = polling;
        self
    }

    /// An executor that sees each request before the shards.
    pub fn uses_before(mut self, uses: &str) -> Exec {
        self.spec.uses_before = Some(Uses::Named(uses.into()));
        self
    }

    /// An executor that receives the shards' answers and merges them.
    pub fn uses_after(mut self, uses: &str) -> Exec {
        self.spec.uses_after = Some(Uses::Named(uses.into()));
        self
    }

    /// The host it runs on: a remote one is started by the `jina daemon` there, or reached, with `external`.
    pub fn host(mut self, host: &str) -> Exec {
        self.spec.host = Some(host.into());
        self
    }

    /// The port it serves on.
    pub fn port_in(mut self, port: u16) -> Exec {
        self.spec.port_in = Some(port);
        self
    }

    /// Already running at `host:port_in`: the Flow connects to it and never starts or stops it.
    pub fn external(mut self, external: bool) -> Exec {
        self.spec.external = external;
        self
    }

    /// How long it may take to be ready, in ms (-1: for ever).
    pub fn timeout_ready(mut self, ms: i64) -> Exec {
        self.spec.timeout_ready = Some(ms);
        self
    }

    /// An environment variable of its process.
    pub fn env(mut self, key: &str, value: &str) -> Exec {
        self.spec.env.insert(key.into(), value.into());
        self
    }

    /// Its workspace folder (`metas.workspace`).
    pub fn workspace(mut self, path: &str) -> Exec {
        self.spec.workspace = Some(path.into());
        self
    }

    /// Milliseconds this executor may take per request (-1: forever; unset: the Flow's).
    pub fn timeout_send(mut self, ms: i64) -> Exec {
        self.spec.timeout_send = Some(ms);
        self
    }

    /// How many other replicas a failed call may be tried on.
    pub fn retries(mut self, n: usize) -> Exec {
        self.spec.retries = Some(n);
        self
    }

    /// Endpoints that may be sent again after a failure that may have reached a handler.
    pub fn idempotent(mut self, idempotent: super::Idempotent) -> Exec {
        self.spec.idempotent = idempotent;
        self
    }

    /// Whether a copy that exits is started again.
    pub fn restart(mut self, policy: super::RestartPolicy) -> Exec {
        self.spec.restart = policy;
        self
    }

    /// Jina 3's `when`: only the documents the query matches go to this executor.
    pub fn when(mut self, query: crate::document::Query) -> Exec {
        self.spec.when = Some(query);
        self
    }

    /// An external executor reached over TLS.
    pub fn tls(mut self, tls: bool) -> Exec {
        self.spec.tls = tls;
        self
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::GATEWAY;
    use super::*;

    fn needs_example() -> Flow {
        Flow::new()
            .add(Exec::new().name("p1").needs(GATEWAY))
            .add(Exec::new().name("p2").needs(GATEWAY))
            .add(Exec::new().name("p3").needs(GATEWAY))
            .needs(["p1", "p2", "p3"], "r1")
    }

    #[test]
    fn needs_all_joins_the_orphans() {
        let a = needs_example();
        let b = Flow::new()
            .add(Exec::new().name("p1").needs(GATEWAY))
            .add(Exec::new().name("p2").needs(GATEWAY))
            .add(Exec::new().name("p3").needs(GATEWAY))
            .needs_all("r1");
        assert_eq!(a.check().unwrap().graph, b.check().unwrap().graph);
        assert_eq!(a.check().unwrap().graph.nodes[3].parents, vec![0, 1, 2]);
    }

    #[test]
    fn to_yaml_loads_back_to_the_same_graph() {
        let flow = needs_example()
            .protocols([Protocol::Grpc, Protocol::Http])
            .add(
                Exec::new()
                    .name("par")
                    .parallel(3)
                    .polling(Polling::All)
                    .uses_with(serde_json::json!({"ms": 1}))
                    .uses("Sleep")
                    .timeout_send(500)
                    .restart(super::super::RestartPolicy::Never)
                    .idempotent(super::super::Idempotent::Endpoints(vec!["/search".into()]))
                    .when(
                        crate::document::Query::parse(&serde_json::json!({"tags__lang": "en"}))
                            .unwrap(),
                    ),
            );
        let yaml = flow.to_yaml();
        let back = super::super::from_yaml(&yaml, "written.yml", None)
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(back.graph, flow.check().unwrap().graph, "{yaml}");
        assert_eq!(back.spec.executors[4].shards, 3);
        assert_eq!(back.spec.executors[4].polling, Polling::All);
        assert_eq!(
            back.spec.executors[4].overrides,
            flow.spec.executors[4].overrides
        );
        assert_eq!(back.spec.gateway.protocols, flow.spec.gateway.protocols);
        let (b, f) = (&back.spec.executors[4], &flow.spec.executors[4]);
        assert_eq!(
            (&b.when, b.timeout_send, b.restart, &b.idempotent),
            (&f.when, f.timeout_send, f.restart, &f.idempotent),
            "{yaml}"
        );
    }

    #[test]
    fn a_bad_graph_reports_every_problem() {
        let e = Flow::new()
            .add(Exec::new().name("a").needs("ghost"))
            .add(Exec::new().name("a"))
            .check()
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("unknown executor 'ghost'")
                && text.contains("duplicate executor name 'a'"),
            "{text}"
        );
    }
}
