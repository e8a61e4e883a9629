//! Flow YAML, as Jina writes it:
//!
//! ```yaml
//! jtype: Flow
//! with: {protocol: [grpc, http, websocket], port: [51000, 51001, 51002]}
//! executors:
//!   - name: encoder
//!     uses: encoder.yml
//!     parallel: 2
//! ```
//!
//! Every key is checked on its own, so one run reports every mistake: a wrong type is an
//! error naming key and line, an unknown key an error naming the key meant (a key of Jina's
//! that changes nothing here, a warning saying why). Each section's keys are declared once,
//! with how each is read and written: `gateway.rs` for `with:` / `gateway:`, `entry.rs` for
//! an executor entry; `values.rs` reads the values they share.

mod entry;
mod gateway;
mod values;

use super::Diagnostic;
use super::spec::FlowSpec;
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use std::path::PathBuf;
use values::describe;

/// One key of a YAML section, declared once: its name, how it is read into `T` (with what
/// reading the section carries from key to key, `R`), and how it is written back from `T`
/// (with what the writer knows, `W`; None: not written). The reader, the writer and "did you
/// mean" all walk the section's one table of keys.
struct Key<T, R, W> {
    name: &'static str,
    read: fn(&Value, &mut T, &mut R) -> Result<(), String>,
    write: fn(&T, &W) -> Option<Json>,
}

const FLOW_KEYS: &[&str] = &[
    "jtype",
    "version",
    "with",
    "executors",
    "pods",
    "deployments",
];
/// The keys that hold the list of executors: Jina 3's, Jina 1 and early Jina 2's, and the
/// Deployments' of Jina 3.
const EXECUTOR_LISTS: &[&str] = &["executors", "pods", "deployments"];
/// A key we do not read. Jina's own keys that change nothing here are a warning that says why;
/// any other key is an error: ignoring it could change what runs (a typo of `executors` would
/// start a Flow without executors), so it names the nearest known key.
fn not_read(key: &str, path: &str, line: Option<usize>, known: &[&str], p: &mut Parsed) {
    if let Some(why) = not_honoured(key) {
        return p.errors.push(Diagnostic::new(line, path, why));
    }
    match harmless(key) {
        Some(why) => p.warnings.push(Diagnostic::new(line, path, why)),
        None => {
            let message = match crate::errors::nearest(key, known) {
                Some(k) => format!("unknown key; did you mean `{k}`?"),
                None => "unknown key (docs/yaml.md lists every key)".to_string(),
            };
            p.errors.push(Diagnostic::new(line, path, message));
        }
    }
}

/// Replaces variables in Flow YAML text, line by line (so lines keep their numbers):
/// `${{ ENV.VAR }}` and `${{ VAR }}` (Jina 3), `${VAR}` and `$VAR` (Jina 1/2). An unset
/// variable in the first three forms, or a bare one in capitals (`$PARALLEL`), is an error
/// naming it and its line; a bare `$word` in lower case that is not set is left as written,
/// since `$eq` and the like are DocArray's query operators in `when:` filters.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<Diagnostic>> {
    static VARIABLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"\$\{\{\s*(?:ENV\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
        )
        .expect("a valid pattern")
    });
    let mut errors = vec![];
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Comments are left alone.
        let code_end = line
            .find(" #")
            .filter(|_| !line.trim_start().starts_with('#'));
        let (code, comment) = match (line.trim_start().starts_with('#'), code_end) {
            (true, _) => ("", line),
            (false, Some(at)) => line.split_at(at),
            (false, None) => (line, ""),
        };
        let replaced = VARIABLE.replace_all(code, |c: &regex::Captures| {
            let (name, required) = match (c.get(1), c.get(2), c.get(3)) {
                (Some(n), _, _) | (_, Some(n), _) => (n.as_str(), true),
                (_, _, Some(n)) => (n.as_str(), false),
                _ => unreachable!("one group matches"),
            };
            // A bare `$NAME` in capitals is a variable (Jina 2's `$PARALLEL`); one in lower
            // case is left as written: `$eq`, `$and` and the like are DocArray's operators.
            let capitals = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            match env(name) {
                Some(value) => value,
                None if required || capitals => {
                    errors.push(Diagnostic::new(
                        Some(i + 1),
                        "",
                        format!("the variable {name} is not set ({})", &c[0]),
                    ));
                    String::new()
                }
                None => c[0].to_string(),
            }
        });
        out.push_str(&replaced);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Why a key of Jina's own is refused here: ignoring it would change what runs, or weaken
/// what a user asked to hide, and this runtime cannot do what it asks.
fn not_honoured(key: &str) -> Option<&'static str> {
    Some(match key {
        "floating" => {
            "a floating executor (nothing waits for it, its answer goes nowhere) is not supported here; give it `needs` like any other, or run it in a Flow of its own"
        }
        "no_reduce" | "disable_reduce" => {
            "a join here always merges its parents' documents by id (Jina's reduce); handing them over unmerged is not supported"
        }
        "stateful" | "raft_configuration" | "peer_ports" => {
            "RAFT-replicated stateful executors are not supported here; use replicas of a stateless executor, or one copy with a workspace"
        }
        "reload" => {
            "reloading an executor's code when it changes is not supported here; restart the Flow"
        }
        "exit_on_exceptions" => {
            "stopping an executor on a given exception is not supported here (`restart:` says what a copy that exits does)"
        }
        "provider" | "provider_endpoint" => {
            "serving as a cloud provider's endpoint (SageMaker, Azure) is not supported here"
        }
        "output_array_type" => {
            "converting a Python executor's arrays to another type is not supported here: arrays keep the type they have"
        }
        "no_crud_endpoints" | "no_debug_endpoints" | "expose_endpoints" => {
            "choosing which HTTP routes the gateway serves is not supported here: it serves every executor endpoint, /post, /status and /dry_run (docs/yaml.md)"
        }
        "expose_graphql_endpoint" => "the gateway here serves no GraphQL",
        _ => return None,
    })
}

/// Why a key of Jina's own is ignored here, for the ones that change nothing.
fn harmless(key: &str) -> Option<&'static str> {
    Some(match key {
        "port_out" | "connect_to_predecessor" => {
            "Jina 2's remote-local wiring, not needed here (the gateway connects to every executor itself); ignored"
        }
        "docker_kwargs" => {
            "docker-py's options; a docker:// executor takes volumes, env and gpus here (docs/deploy.md); ignored"
        }
        "quiet" | "quiet_error" | "log_config" | "suppress_root_logging" => {
            "logging is set with JINA_LOG_LEVEL here; ignored"
        }
        "title" | "description" => "the REST face's OpenAPI title is fixed here; ignored",
        "uvicorn_kwargs" => "the REST face is not uvicorn here; ignored",
        "timeout_ctrl" => {
            "Jina 2's control-request timeout, and there are no control requests here; ignored"
        }
        "install_requirements" | "force_update" | "prefer_platform" => {
            "a Hub setting, and there is no Hub here (a jinahub:// uses is refused); ignored"
        }
        "port_ctrl" | "port_jinad" | "ctrl_with_ipc" | "socket_in" | "socket_out" => {
            "Jina 2's control and socket wiring: there are no control sockets here; ignored"
        }
        "compress" | "compress_hwm" | "compress_lwm" | "compress_min_bytes"
        | "compress_min_ratio" => {
            "Jina 2's ZMQ compression: messages here are gRPC, compressed by nobody; ignored"
        }
        "logserver" | "logserver_config" | "sse_logger" | "log_id" => {
            "Jina 2's log server: logs go to the terminal (JINA_LOG_FORMAT=json for JSON lines); ignored"
        }
        "method" | "read_only" => "Jina 2's runtime mode, which changes nothing here; ignored",
        "show_exc_info" => {
            "errors here always carry the exception's name and message (no Python tracebacks); ignored"
        }
        "grpc_server_options" | "grpc_channel_options" | "compression" => {
            "Jina 3's gRPC tuning: this runtime sets its own gRPC options (no compression); ignored"
        }
        "native" | "runtime_cls" => {
            "every executor here already runs in this runtime's own worker; ignored"
        }
        "allow_concurrent" => {
            "an executor's requests here are answered concurrently already (a blocking handler on a thread of its own); ignored"
        }
        "noblock_on_start" | "quiet_remote_logs" => {
            "Jina 3's start-up and remote-log settings, which change nothing here; ignored"
        }
        _ => return None,
    })
}

/// The result of reading a Flow YAML: the spec (as far as it could be read), its warnings,
/// and its errors.
pub(super) struct Parsed {
    pub spec: FlowSpec,
    pub warnings: Vec<Diagnostic>,
    pub errors: Vec<Diagnostic>,
    pub lines: LineIndex,
}

/// Reads Flow YAML text, with variables looked up by `env`. Syntax errors end reading;
/// everything else is collected.
pub(super) fn parse_with_env(
    text: &str,
    base_dir: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Parsed {
    let lines = LineIndex::new(text);
    let mut p = Parsed {
        spec: FlowSpec {
            base_dir,
            ..Default::default()
        },
        warnings: vec![],
        errors: vec![],
        lines,
    };
    // Variables first, so that `replicas: ${{ ENV.REPLICAS }}` is an integer when checked.
    let text = match substitute(text, env) {
        Ok(text) => text,
        Err(errors) => {
            p.errors = errors;
            return p;
        }
    };
    let root: Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            p.errors.push(Diagnostic::new(
                line,
                "",
                crate::executor::yaml_error_message(&e),
            ));
            return p;
        }
    };
    // Jina's `!Flow` tag names the class as `jtype: Flow` does.
    let root = match root {
        Value::Tagged(t) if t.tag == "Flow" => t.value,
        other => other,
    };
    let Some(root) = root.as_mapping() else {
        p.errors.push(Diagnostic::new(
            Some(1),
            "",
            "a Flow YAML must be a mapping with `executors:`",
        ));
        return p;
    };
    let lists: Vec<&str> = EXECUTOR_LISTS
        .iter()
        .copied()
        .filter(|k| root.contains_key(*k))
        .collect();
    if let [_, second, ..] = lists[..] {
        p.errors.push(Diagnostic::new(
            p.lines.top_key(second),
            second,
            format!(
                "the executors are listed twice ({}); keep one list",
                lists.join(" and ")
            ),
        ));
    }
    if let Some(list) = lists.first() {
        p.lines.list_key = list.to_string();
    }
    for (k, v) in root {
        let key = k.as_str().unwrap_or_default();
        let line = p.lines.top_key(key);
        match key {
            "jtype" if v.as_str() != Some("Flow") => p.errors.push(Diagnostic::new(
                line,
                "jtype",
                format!("expected `Flow`, found {}", describe(v)),
            )),
            "with" | "gateway" => gateway::read_gateway(key, v, &mut p),
            k if lists.first() == Some(&k) => entry::read_entries(k, v, &mut p),
            k if FLOW_KEYS.contains(&k) => {}
            other => not_read(other, other, line, FLOW_KEYS, &mut p),
        }
    }
    // Jina 2's Flow-level `workspace`: each executor's when its entry gives none.
    if let Some(workspace) = &p.spec.gateway.workspace {
        for e in &mut p.spec.executors {
            e.workspace.get_or_insert_with(|| workspace.clone());
        }
    }
    p
}

/// Finds the line of a key in block-style Flow YAML, for messages. serde_yaml gives no
/// positions for values, so this scans the text: good for the block style Jina writes, and
/// for anything else it simply finds no line.
pub(super) struct LineIndex {
    lines: Vec<(usize, String)>, // (indent, content after indent) per line, 1-based by position
    /// The top-level key that lists the executors (`executors`, or `pods` / `deployments`).
    list_key: String,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex {
            lines: text
                .lines()
                .map(|l| {
                    let content = l.trim_start();
                    (l.len() - content.len(), content.to_string())
                })
                .collect(),
            list_key: "executors".into(),
        }
    }

    fn starts_key(content: &str, key: &str) -> bool {
        content
            .strip_prefix(key)
            .is_some_and(|r| r.starts_with(':'))
    }

    /// Line of a top-level key.
    pub(super) fn top_key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|(indent, c)| *indent == 0 && Self::starts_key(c, key))
            .map(|i| i + 1)
    }

    /// The range of lines (0-based, exclusive end) under a top-level key.
    fn block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self.top_key(key)?; // 1-based line of key == 0-based index of next line
        let end = (start..self.lines.len())
            .find(|&i| {
                self.lines[i].0 == 0
                    && !self.lines[i].1.is_empty()
                    && !self.lines[i].1.starts_with('#')
                    && !self.lines[i].1.starts_with('-')
            })
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    fn find_key(&self, range: (usize, usize), key: &str) -> Option<usize> {
        (range.0..range.1)
            .filter(|&i| {
                let c = self.lines[i].1.trim_start_matches("- ");
                Self::starts_key(c.trim_start(), key)
            })
            .min_by_key(|&i| self.lines[i].0)
            .map(|i| i + 1)
    }

    /// Line of a key under a top-level section (`with:`, `gateway:`).
    pub(super) fn with_key(&self, section: &str, key: &str) -> Option<usize> {
        self.find_key(self.block(section)?, key)
    }

    /// The line range of item `i` of `executors:`.
    fn item_range(&self, i: usize) -> Option<(usize, usize)> {
        let (start, end) = self.block(&self.list_key)?;
        let content = |j: &usize| {
            let c = &self.lines[*j].1;
            !c.is_empty() && !c.starts_with('#')
        };
        // Items start at the block's first indent: `- ` entries, or Jina 1's `name:` keys.
        let first = (start..end).find(content)?;
        let indent = self.lines[first].0;
        let dashed = self.lines[first].1.starts_with('-');
        let starts: Vec<usize> = (start..end)
            .filter(|j| content(j) && self.lines[*j].0 == indent)
            .filter(|&j| !dashed || self.lines[j].1.starts_with('-'))
            .collect();
        let s = *starts.get(i)?;
        let e = starts.get(i + 1).copied().unwrap_or(end);
        Some((s, e))
    }

    /// Line where item `i` of `executors:` starts.
    pub(super) fn item(&self, i: usize) -> Option<usize> {
        self.item_range(i).map(|(s, _)| s + 1)
    }

    /// Line of a key of item `i` of `executors:` (the item's line when the key is absent).
    pub(super) fn item_key(&self, i: usize, key: &str) -> Option<usize> {
        let range = self.item_range(i)?;
        self.find_key(range, key).or(Some(range.0 + 1))
    }
}

/// Writes a spec as Flow YAML. Every executor gets its name and explicit `needs`, so the YAML
/// loads back to the same graph whatever the defaults. A Rust executor (served in-process) is
/// written as its type name, which only loads back where that name means something.
pub(super) fn write(spec: &FlowSpec) -> String {
    let executors: Vec<Json> = (0..spec.executors.len())
        .map(|i| entry::write_entry(spec, i))
        .collect();
    let doc = serde_json::json!({
        "jtype": "Flow",
        "with": gateway::write_gateway(&spec.gateway),
        "executors": executors,
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::spec::{Polling, Protocol};

    #[test]
    fn docs_yaml_lists_every_key() {
        let docs = include_str!("../../../docs/yaml.md");
        let entry = entry::ENTRY_KEYS.iter().map(|k| k.name);
        let gateway = gateway::GATEWAY_KEYS.iter().map(|k| k.name);
        for name in entry.chain(gateway) {
            assert!(
                docs.contains(&format!("`{name}`")) || docs.contains(&format!("{name}:")),
                "docs/yaml.md does not say what `{name}` does"
            );
        }
    }

    /// Reads with the process environment, as `jina flow` does.
    fn parse(text: &str, base_dir: Option<PathBuf>) -> Parsed {
        parse_with_env(text, base_dir, &|name| std::env::var(name).ok())
    }

    const FLOW: &str = "jtype: Flow
with:
  protocol: [grpc, http]
  port: 12345
  colour: blue
executors:
  - name: p1
    needs: gateway
    parallel: three
  - name: p2
    shards: 2
    replicas: 2
  - uses: Sleep
    polling: SOMETIMES
";

    #[test]
    fn collects_every_error_and_warning_with_lines() {
        let p = parse(FLOW, None);
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            vec![
                "line 5: with.colour: unknown key (docs/yaml.md lists every key)",
                "line 9: executors[0].parallel: expected an integer, found 'three'",
                "line 14: executors[2].polling: unknown polling 'SOMETIMES' (ANY, ALL, ALL_ASYNC)",
            ]
        );
        assert!(p.warnings.is_empty());
        assert_eq!(
            p.spec.gateway.protocols,
            vec![Protocol::Grpc, Protocol::Http]
        );
        assert_eq!(p.spec.executors[1].shards, 2);
        assert_eq!(p.spec.executors[1].replicas, 2);
        assert_eq!(
            p.spec.executors[1].polling,
            Polling::Any,
            "shards default to ANY, as in Jina"
        );
        assert_eq!(p.spec.executors[0].needs, Some(vec!["gateway".to_string()]));
    }

    #[test]
    fn jinas_own_keys_that_mean_nothing_here_say_why() {
        let p = parse(
            "executors:\n  - name: remote\n    port_out: 5555\n    upload_files: [x.py]\n",
            None,
        );
        assert!(p.errors.is_empty());
        let warnings: Vec<String> = p.warnings.iter().map(|d| d.to_string()).collect();
        assert!(
            warnings[0].starts_with("line 3: executors[0].port_out: Jina 2's remote-local wiring"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with(
                "line 4: executors[0].upload_files: for the jina daemon of a remote host"
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn container_keys_apply_to_docker_entries_and_warn_elsewhere() {
        let p = parse(
            "executors:\n  - name: enc\n    uses: docker://enc:1\n    volumes: [data:/data]\n    gpus: 1\n    entrypoint: jina executor --uses X\n  - name: native\n    volumes: /a:/b\n  - name: kw\n    uses: docker://enc:1\n    docker_kwargs: {privileged: true}\n",
            Some(PathBuf::from("/flows")),
        );
        let e = &p.spec.executors[0];
        assert_eq!(e.volumes, ["/flows/data:/data"]);
        assert_eq!(e.gpus.as_deref(), Some("1"));
        assert_eq!(e.entrypoint.as_deref(), Some("jina executor --uses X"));
        let warnings: Vec<String> = p.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "line 8: executors[1].volumes: a container setting, and this executor runs as a process (only a docker:// executor takes it); ignored"
            ]
        );
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            [
                "line 11: executors[2].docker_kwargs: docker-py's options are not taken: a docker:// executor takes volumes, env and gpus (docs/deploy.md)"
            ]
        );
    }

    #[test]
    fn a_typo_is_an_error_that_names_the_key_meant() {
        let p = parse("executorz:\n  - name: a\n", None);
        let errors: Vec<String> = p.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            errors,
            ["line 1: executorz: unknown key; did you mean `executors`?"]
        );
        let p = parse("executors:\n  - name: a\n    replica: 2\n", None);
        assert_eq!(
            p.errors[0].to_string(),
            "line 3: executors[0].replica: unknown key; did you mean `replicas`?"
        );
    }

    #[test]
    fn pods_and_deployments_list_the_executors_as_in_jina_1_and_3() {
        for list in ["pods", "deployments"] {
            let p = parse(
                &format!("{list}:\n  - name: a\n  - name: b\n    needs: a\n"),
                None,
            );
            assert!(p.errors.is_empty(), "{list}: {:?}", p.errors);
            assert_eq!(p.spec.executors.len(), 2);
            assert_eq!(p.lines.item_key(1, "needs"), Some(4));
        }
        let p = parse("executors: []\npods: []\n", None);
        assert!(
            p.errors[0].to_string().contains("listed twice"),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn variables_are_replaced_before_types_are_checked() {
        let env = |name: &str| match name {
            "REPLICAS" => Some("2".to_string()),
            "NAME" => Some("enc".to_string()),
            _ => None,
        };
        let text = "executors:\n  - name: ${{ ENV.NAME }}\n    replicas: ${{ REPLICAS }}\n  - name: ${NAME}2\n    shards: '3'\n    needs: $NAME\n    uses_with: {q: {text: {$eq: hi}}}  # $HOME stays\n";
        let p = parse_with_env(text, None, &env);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.spec.executors[0].name.as_deref(), Some("enc"));
        assert_eq!(p.spec.executors[0].replicas, 2);
        assert_eq!(p.spec.executors[1].name.as_deref(), Some("enc2"));
        assert_eq!(p.spec.executors[1].shards, 3);
        assert_eq!(p.spec.executors[1].needs, Some(vec!["enc".to_string()]));
        assert_eq!(
            p.spec.executors[1].overrides.uses_with["q"]["text"]["$eq"], "hi",
            "a query operator is no variable"
        );
        let p = parse_with_env("executors:\n  - replicas: ${{ ENV.MISSING }}\n", None, &env);
        assert_eq!(
            p.errors[0].to_string(),
            "line 2: the variable MISSING is not set (${{ ENV.MISSING }})"
        );
    }

    #[test]
    fn the_flow_tag_and_jina_3s_gateway_section() {
        let p = parse(
            "!Flow\nwith: {prefetch: 7}\ngateway:\n  protocol: [http]\n  port: 8080\n  cors: true\n  colour: red\nexecutors: []\n",
            None,
        );
        assert_eq!(p.spec.gateway.prefetch, 7, "with: and gateway: both apply");
        assert_eq!(p.spec.gateway.protocols, vec![Protocol::Http]);
        assert_eq!(p.spec.gateway.ports, vec![8080]);
        assert!(p.spec.gateway.cors);
        assert_eq!(
            p.errors[0].to_string(),
            "line 7: gateway.colour: unknown key (docs/yaml.md lists every key)"
        );
    }

    #[test]
    fn a_deployment_entry_keeps_its_keys_under_with() {
        let p = parse(
            "deployments:\n  - jtype: Deployment\n    with:\n      name: enc\n      uses: Visit\n      replicas: 2\n",
            None,
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.spec.executors[0].name.as_deref(), Some("enc"));
        assert_eq!(p.spec.executors[0].replicas, 2);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let p = parse("executors:\n  - name: [a\n", None);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].line.is_some(), "{}", p.errors[0]);
    }
}
