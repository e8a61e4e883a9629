//! `jina executor`'s command line as one type, read and written in one place.
//!
//! A Flow, `jina daemon` and `jina export` start executors as `jina executor <flags>` (or
//! Python Jina's `jina executor`, or an image whose entrypoint is one); the child reads the
//! same flags with clap. [`ExecutorFlags`] is both: clap's `Args` reads it, and
//! [`ExecutorFlags::to_args`] writes it back (as mini-redis's frames are parsed and written
//! side by side), so the two cannot drift apart: a unit test reads back what it writes. It
//! owns no process and decides nothing about what a `uses` means (`uses.rs` does).

use super::{DynamicBatching, Overrides};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Flags of `jina executor`: one executor served on one port.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct ExecutorFlags {
    /// The executor: a registered name (a built-in, or a type of this binary), a YAML file, or inline YAML
    #[arg(long, default_value = "BaseExecutor")]
    pub uses: String,
    /// The port to serve on (`--port` as Jina 3 spells it is accepted too)
    #[arg(long = "port-in", visible_alias = "port", value_parser = clap::value_parser!(u16).range(1..))]
    pub port_in: u16,
    /// The address to bind
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// The executor's name in logs and errors (default: metas.name, else its jtype)
    #[arg(long)]
    pub name: Option<String>,
    /// JSON object laid over the YAML's `with`
    #[arg(long, value_parser = json_object)]
    pub uses_with: Option<Map<String, Value>>,
    /// JSON object laid over the YAML's `metas`
    #[arg(long, value_parser = json_object)]
    pub uses_metas: Option<Map<String, Value>>,
    /// JSON object of endpoint -> handler laid over the YAML's `requests`
    #[arg(long, value_parser = json_object)]
    pub uses_requests: Option<Map<String, Value>>,
    /// JSON object of endpoint -> {"preferred_batch_size": N, "timeout": MS}: batch that
    /// endpoint's small requests into one handler call (Jina 3's flag)
    #[arg(long, value_parser = json_object)]
    pub uses_dynamic_batching: Option<Map<String, Value>>,
    /// Serve TLS with this certificate chain (PEM; with --ssl-keyfile)
    #[arg(long, requires = "ssl_keyfile")]
    pub ssl_certfile: Option<PathBuf>,
    /// The private key of --ssl-certfile (PEM)
    #[arg(long, requires = "ssl_certfile")]
    pub ssl_keyfile: Option<PathBuf>,
    /// The largest request taken, in bytes (0: no limit)
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// The most documents one request may hold, chunks and matches included (0: no limit)
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_REQUEST_DOCS)]
    pub max_request_docs: usize,
    /// The memory the requests being handled at once may take, estimated before they are
    /// decoded; more waits its turn, one request over it is refused (0: no limit)
    #[arg(long, default_value_t = crate::request::DEFAULT_MAX_IN_FLIGHT_BYTES)]
    pub max_in_flight_bytes: usize,
    /// Serve Prometheus metrics at /metrics (Jina 3's flag)
    #[arg(long)]
    pub monitoring: bool,
    /// The port of /metrics (with --monitoring; a free one when not given)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port_monitoring: Option<u16>,
    #[command(flatten)]
    pub tracing: crate::telemetry::TracingFlags,
    /// Serve on this inherited, already listening socket (a Flow binds the port and hands it
    /// over, so no other process can take it in between); --port-in then only names it
    #[arg(long, hide = true)]
    pub listen_fd: Option<i32>,

    /// Python files (or modules) that define the class `--uses` names, as Jina's
    /// `--py-modules` (a YAML's `py_modules` need not be repeated here).
    #[arg(long, num_args = 1..)]
    pub py_modules: Vec<String>,

    /// Which runtime serves a Python executor: ours (the `jina-rs` Python package), Python
    /// Jina's, or ours when the executor's Python has it (docs/executors.md).
    #[arg(long, value_enum, default_value_t)]
    pub python_runtime: super::PythonRuntime,

    #[command(flatten)]
    pub copy: super::CopyFlags,
}

/// A flag whose value makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagError {
    #[error("--uses-requests: '{endpoint}' must map to a handler name")]
    HandlerNotAName { endpoint: String },
    #[error("--uses-dynamic-batching: '{endpoint}': {why}")]
    BadBatching { endpoint: String, why: String },
}

impl ExecutorFlags {
    /// The flags of `uses` served on `port`, everything else as `jina executor` defaults it.
    pub fn new(uses: impl Into<String>, port_in: u16) -> ExecutorFlags {
        ExecutorFlags {
            uses: uses.into(),
            port_in,
            host: "0.0.0.0".into(),
            name: None,
            uses_with: None,
            uses_metas: None,
            uses_requests: None,
            uses_dynamic_batching: None,
            ssl_certfile: None,
            ssl_keyfile: None,
            max_request_bytes: crate::request::DEFAULT_MAX_REQUEST_BYTES,
            max_request_docs: crate::request::DEFAULT_MAX_REQUEST_DOCS,
            max_in_flight_bytes: crate::request::DEFAULT_MAX_IN_FLIGHT_BYTES,
            monitoring: false,
            port_monitoring: None,
            tracing: Default::default(),
            listen_fd: None,
            py_modules: vec![],
            python_runtime: Default::default(),
            copy: Default::default(),
        }
    }

    /// These flags with a Flow's overrides laid in (a map left empty is no flag).
    pub fn with_overrides(mut self, overrides: &Overrides) -> ExecutorFlags {
        let some = |map: Map<String, Value>| (!map.is_empty()).then_some(map);
        self.uses_with = some(overrides.uses_with.clone());
        self.uses_metas = some(overrides.uses_metas.clone());
        self.uses_requests = some(
            overrides
                .uses_requests
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
        );
        self.uses_dynamic_batching = some(
            overrides
                .uses_dynamic_batching
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect(),
        );
        self
    }

    /// The overrides the flags lay over the executor's YAML (`--name` is `metas.name`).
    pub fn overrides(&self) -> Result<Overrides, FlagError> {
        let mut uses_requests = IndexMap::new();
        for (endpoint, handler) in self.uses_requests.iter().flatten() {
            let handler = handler.as_str().ok_or_else(|| FlagError::HandlerNotAName {
                endpoint: endpoint.clone(),
            })?;
            uses_requests.insert(endpoint.clone(), handler.to_string());
        }
        let mut uses_dynamic_batching = IndexMap::new();
        for (endpoint, settings) in self.uses_dynamic_batching.iter().flatten() {
            let settings: DynamicBatching =
                serde_json::from_value(settings.clone()).map_err(|e| FlagError::BadBatching {
                    endpoint: endpoint.clone(),
                    why: e.to_string(),
                })?;
            uses_dynamic_batching.insert(endpoint.clone(), settings);
        }
        let mut uses_metas = self.uses_metas.clone().unwrap_or_default();
        if let Some(name) = &self.name {
            uses_metas.insert("name".into(), Value::String(name.clone()));
        }
        Ok(Overrides {
            uses_with: self.uses_with.clone().unwrap_or_default(),
            uses_metas,
            uses_requests,
            uses_dynamic_batching,
        })
    }

    /// Every flag, as `jina executor` of this binary reads them back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--uses".into(), self.uses.clone()];
        args.extend(["--host".into(), self.host.clone()]);
        args.extend([
            "--max-request-bytes".into(),
            self.max_request_bytes.to_string(),
            "--max-request-docs".into(),
            self.max_request_docs.to_string(),
            "--max-in-flight-bytes".into(),
            self.max_in_flight_bytes.to_string(),
        ]);
        for (flag, path) in [
            ("--ssl-certfile", &self.ssl_certfile),
            ("--ssl-keyfile", &self.ssl_keyfile),
        ] {
            if let Some(path) = path {
                args.extend([flag.into(), path.display().to_string()]);
            }
        }
        if let Some(fd) = self.listen_fd {
            args.extend(["--listen-fd".into(), fd.to_string()]);
        }
        if !self.py_modules.is_empty() {
            args.push("--py-modules".into());
            args.extend(self.py_modules.iter().cloned());
        }
        if self.python_runtime != super::PythonRuntime::default() {
            args.extend(["--python-runtime".into(), self.python_runtime.to_string()]);
        }
        if self.copy != super::CopyFlags::default() {
            args.extend(self.copy.to_args());
        }
        args.extend(self.portable_args());
        args
    }

    /// [`ExecutorFlags::to_args`], with each override map written to a file in `dir` and read
    /// back from there (`--uses-with @FILE`): no argument grows with what a caller sends.
    pub fn to_args_with_files(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        let mut rest = self.clone();
        let mut files = vec![];
        for (flag, map) in [
            ("uses-with", rest.uses_with.take()),
            ("uses-metas", rest.uses_metas.take()),
            ("uses-requests", rest.uses_requests.take()),
            ("uses-dynamic-batching", rest.uses_dynamic_batching.take()),
        ] {
            if let Some(map) = map {
                let path = dir.join(format!("{flag}.json"));
                std::fs::write(&path, Value::Object(map).to_string())?;
                files.extend([format!("--{flag}"), format!("@{}", path.display())]);
            }
        }
        let mut args = rest.to_args();
        args.extend(files);
        Ok(args)
    }

    /// The flags that our `jina executor` and Python Jina's both read: the port, the name, the
    /// overrides, metrics and traces. An image's entrypoint gets these (its `--uses` is its
    /// own), and so does Python Jina after its `--uses`.
    pub fn portable_args(&self) -> Vec<String> {
        let mut args = vec!["--port".into(), self.port_in.to_string()];
        if let Some(name) = &self.name {
            args.extend(["--name".into(), name.clone()]);
        }
        for (flag, map) in [
            ("--uses-with", &self.uses_with),
            ("--uses-metas", &self.uses_metas),
            ("--uses-requests", &self.uses_requests),
            ("--uses-dynamic-batching", &self.uses_dynamic_batching),
        ] {
            if let Some(map) = map {
                args.extend([flag.into(), Value::Object(map.clone()).to_string()]);
            }
        }
        if self.monitoring {
            args.push("--monitoring".into());
        }
        if let Some(port) = self.port_monitoring {
            args.extend(["--port-monitoring".into(), port.to_string()]);
        }
        args.extend(self.tracing.to_args());
        args
    }

    /// `python -m jina executor ...`: Python Jina serving `uses` (a YAML file, or a class found
    /// in `py_modules`), the interpreter from `JINA_PYTHON`, else `python3`.
    pub fn python_command(&self, py_modules: &[String]) -> Vec<String> {
        let python = super::python::interpreter();
        let mut command: Vec<String> = [&python, "-m", "jina", "executor", "--uses", &self.uses]
            .into_iter()
            .map(str::to_string)
            .collect();
        if !py_modules.is_empty() {
            command.push("--py-modules".into());
            command.extend(py_modules.iter().cloned());
        }
        command.extend(self.portable_args());
        command
    }
}

/// The largest JSON file a flag reads (`--uses-with @FILE`).
const MAX_FLAG_FILE: u64 = 16 << 20;

/// clap's parser for a flag that takes a JSON object: the JSON, or `@FILE` to read it from a
/// file (how a long one avoids the command line's limit).
pub fn json_object(s: &str) -> Result<Map<String, Value>, String> {
    let read;
    let s = match s.strip_prefix('@') {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_FLAG_FILE + 1),
                &mut text,
            )
            .map_err(|e| format!("{path}: {e}"))?;
            if text.len() as u64 > MAX_FLAG_FILE {
                return Err(format!("{path}: larger than {MAX_FLAG_FILE} bytes"));
            }
            read = text;
            read.as_str()
        }
        None => s,
    };
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("expected a JSON object, like '{\"key\": 1}'".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        flags: ExecutorFlags,
    }

    fn read_back(args: Vec<String>) -> ExecutorFlags {
        Command::try_parse_from(std::iter::once("executor".to_string()).chain(args))
            .unwrap()
            .flags
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let overrides = Overrides {
            uses_with: serde_json::json!({"k": [1, "two"]})
                .as_object()
                .unwrap()
                .clone(),
            uses_metas: serde_json::json!({"workspace": "/w"})
                .as_object()
                .unwrap()
                .clone(),
            uses_requests: IndexMap::from([("/a".to_string(), "f".to_string())]),
            uses_dynamic_batching: IndexMap::from([(
                "/b".to_string(),
                serde_json::from_value(serde_json::json!({"preferred_batch_size": 4})).unwrap(),
            )]),
        };
        let mut flags =
            ExecutorFlags::new("jtype: Visit\nwith: {x: 1}\n", 4100).with_overrides(&overrides);
        assert_eq!(read_back(flags.to_args()), flags);
        flags.name = Some("enc/shard-1/rep-0".into());
        flags.host = "127.0.0.1".into();
        flags.max_request_bytes = 0;
        flags.max_request_docs = 7;
        flags.max_in_flight_bytes = 1 << 20;
        flags.listen_fd = Some(3);
        flags.monitoring = true;
        flags.port_monitoring = Some(9090);
        flags.ssl_certfile = Some("/c.pem".into());
        flags.ssl_keyfile = Some("/k.pem".into());
        flags.tracing = crate::telemetry::TracingFlags {
            tracing: true,
            traces_exporter_host: "collector".into(),
            traces_exporter_port: 4318,
        };
        flags.py_modules = vec!["a.py".into(), "pkg.mod".into()];
        flags.python_runtime = super::super::PythonRuntime::JinaRs;
        flags.copy = super::super::CopyFlags {
            shard_id: 1,
            shards: 2,
            replica_id: 1,
            replicas: 3,
        };
        assert_eq!(read_back(flags.to_args()), flags);
        let mut want = overrides.clone();
        want.uses_metas
            .insert("name".into(), "enc/shard-1/rep-0".into());
        assert_eq!(flags.overrides().unwrap(), want);
    }

    #[test]
    fn overrides_written_to_files_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let big: Map<String, Value> = (0..5000)
            .map(|i| (format!("key{i}"), Value::from("x".repeat(40))))
            .collect();
        let flags = ExecutorFlags {
            uses_with: Some(big),
            ..ExecutorFlags::new("Visit", 4200)
        };
        let args = flags.to_args_with_files(dir.path()).unwrap();
        assert!(args.iter().all(|a| a.len() < 1000), "no long argument");
        assert_eq!(read_back(args), flags);
    }

    #[test]
    fn the_portable_flags_are_a_part_of_the_whole() {
        let flags = ExecutorFlags {
            name: Some("x".into()),
            monitoring: true,
            ..ExecutorFlags::new("BaseExecutor", 5000)
        };
        let portable = flags.portable_args();
        assert_eq!(portable[..4], ["--port", "5000", "--name", "x"]);
        let mut read = read_back(portable);
        read.uses = flags.uses.clone();
        assert_eq!(read, flags);
    }
}
