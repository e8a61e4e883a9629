//! Every example in examples/ runs and prints what the reference's example shows. `cargo test`
//! builds the examples; this runs each one as a user would.

mod common;

use std::process::Command;

/// Runs an example binary; returns its stdout, after checking it exited cleanly.
fn run_example(name: &str) -> String {
    let bin_dir = std::path::Path::new(common::JINA).parent().unwrap();
    let path = bin_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --examples`",
        path.display()
    );
    let out = Command::new(&path)
        .env("JINA_BIN", common::JINA)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{name}:\n{stderr}");
    stdout
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn every_example_prints_what_the_reference_shows() {
    assert!(run_example("create_and_use").starts_with("posted 1 request with 1 document"));
    assert!(run_example("visualize").contains("gateway -> executor0 -> gateway"));
    let chain = run_example("chain");
    assert!(
        chain.contains("route: gateway -> executor0 -> executor1 -> executor2 -> executor3"),
        "{chain}"
    );
    let uses = run_example("uses");
    for kind in [
        "built-in name",
        "YAML file",
        "inline YAML",
        "map",
        "Rust type",
    ] {
        assert!(uses.contains(kind), "{uses}");
    }
    assert!(uses.contains("\"bar\":123"), "{uses}");
    let external = run_example("external");
    assert!(
        external.contains("answered: spawned") && external.contains("still runs: true"),
        "{external}"
    );
    assert_eq!(lines(&run_example("uses_metas")), ["different_workspace"]);
    assert_eq!(
        lines(&run_example("uses_with")),
        ["param1: 10", "param2: 2", "param3: 30"]
    );
    assert_eq!(lines(&run_example("uses_requests")), ["bar", "foo"]);
    let needs = run_example("needs");
    assert!(
        needs.contains("needs_all builds the same graph: true")
            && needs.contains("merged: p1, p2, p3"),
        "{needs}"
    );
    let parallel = run_example("parallel");
    assert!(parallel.contains("polling ANY      : copies that worked on each document [1, 1, 1, 1, 1, 1]; copies used over 6 requests: 3"), "{parallel}");
    assert!(
        parallel
            .contains("polling ALL      : copies that worked on each document [3, 3, 3, 3, 3, 3]"),
        "{parallel}"
    );
    assert!(
        parallel
            .contains("polling ALL_ASYNC: copies that worked on each document [1, 1, 1, 1, 1, 1]"),
        "{parallel}"
    );
    let inputs = run_example("inputs");
    for line in [
        "single document: 1 docs",
        "a list:          2 docs",
        "a generator:     10 docs",
        "a DocumentArray: 2 docs",
        "nothing:         1 request",
        "from_csv:        2 docs",
    ] {
        assert!(inputs.contains(line), "{inputs}");
    }
    let callbacks = run_example("callbacks");
    assert!(
        callbacks.contains("done: <Response") && callbacks.contains("output.txt: {\"id\""),
        "{callbacks}"
    );
    assert_eq!(lines(&run_example("parameters")), ["world", "world"]);
    assert_eq!(lines(&run_example("request_size")), ["10 requests"]);
    let results = run_example("return_results");
    assert!(results.starts_with("10 responses:"), "{results}");
    assert_eq!(results.matches("docs=10").count(), 10, "{results}");
    let async_flow = run_example("async_flow");
    assert!(
        async_flow.contains("heavylifting done after 1s")
            && async_flow.matches("<Response").count() == 2,
        "{async_flow}"
    );
}
