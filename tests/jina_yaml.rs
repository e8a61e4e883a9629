//! Flow YAML as Jina's own repositories write it (tests/jina-yaml/, in the forms of Jina's
//! tests, getting-started and examples): every file that Python Jina 3.34's `Flow.load_config`
//! loads must load here too, through the binary (`jina flow --plot`, which checks the whole
//! Flow and starts nothing), with every executor in place and no key waved through with a
//! warning.

mod common;

use common::*;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jina-yaml");

/// Each Flow of the folder, and the executors it names.
const FLOWS: &[(&str, &[&str])] = &[
    ("conditions.yml", &["first", "exec1", "exec2", "joiner"]),
    ("getting-started.yml", &["executor0", "executor1"]),
    ("deployments.yml", &["nested", "after"]),
    ("flow-parallel.yml", &["vector", "kv", "last"]),
    ("sharded.yml", &["encoder", "indexer"]),
    ("batching.yml", &["model"]),
];

/// The Flows Python Jina loads, by its own `Flow.load_config`.
fn loaded_by_python(python: &std::path::Path, workspace: &std::path::Path) -> Vec<String> {
    let script = "import json, sys\nfrom jina import Flow\nok = []\nfor f in sys.argv[1:]:\n    try:\n        Flow.load_config(f)\n        ok.append(f)\n    except Exception as e:\n        print('refused', f, type(e).__name__, e, file=sys.stderr)\nprint(json.dumps(ok))\n";
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(FLOWS.iter().map(|(f, _)| *f))
        .current_dir(FIXTURES)
        .env("JINA_OPTOUT_TELEMETRY", "1")
        .env("TEMP_WORKSPACE", workspace)
        .output()
        .expect("run the peer's Python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .unwrap_or_else(|| {
            panic!(
                "the peer printed no list:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

#[test]
fn jinas_own_yaml_forms_load_here_as_in_python_jina() {
    let scratch = Files::new();
    let workspace = scratch.dir.path().join("ws");
    for (file, executors) in FLOWS {
        let svg = scratch.dir.path().join(format!("{file}.svg"));
        let out = Command::new(JINA)
            .args(["flow", "--uses", file, "--plot"])
            .arg(&svg)
            .current_dir(FIXTURES)
            .env("TEMP_WORKSPACE", &workspace)
            .output()
            .unwrap();
        let text = text_of(&out);
        assert!(out.status.success(), "{file}: {text}");
        assert!(
            !text.to_lowercase().contains("warn"),
            "{file}: a key was waved through: {text}"
        );
        let drawn = std::fs::read_to_string(&svg).unwrap();
        for name in *executors {
            assert!(
                drawn.contains(&format!("id=\"{name}\"")),
                "{file}: no {name}: {drawn}"
            );
        }
    }
    let Some(python) = peer_python() else { return };
    let theirs = loaded_by_python(&python, &workspace);
    // Python Jina loads each of these too: the folder holds no form of ours alone.
    let all: Vec<String> = FLOWS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        theirs, all,
        "Python Jina refused some of the folder's Flows"
    );
}
