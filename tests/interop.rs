//! Interoperability with the real Python `jina` package (3.34, DocArray v2), in all three
//! directions: the Python Client against our Flow; our Flow running a Python executor (started
//! by us, or already running and attached with `external: true`); a Python Flow using our
//! executor. `.ci/run` installs the peer into target/peer-venv (tests/peer/install.sh).

mod common;

use common::*;
use jina::client::{Client, PostOptions};
use jina::flow::Protocol;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PEER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer");

fn run_python(python: &PathBuf, args: &[&str]) -> String {
    run_python_with(python, args, &[])
}

fn run_python_with(python: &PathBuf, args: &[&str], env: &[(&str, &std::path::Path)]) -> String {
    let out = Command::new(python)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(PEER_DIR)
        .output()
        .expect("run python");
    let text = text_of(&out);
    assert!(out.status.success(), "python {args:?} failed:\n{text}");
    text
}

#[test]
fn the_python_client_talks_to_our_flow_over_every_protocol() {
    let Some(python) = peer_python() else { return };
    let flow = start_flow(
        "  - name: stamp\n    uses: |\n      jtype: Visit\n      requests: {/index: visit}\n",
    );
    for (protocol, port) in [
        ("grpc", flow.grpc),
        ("http", flow.http),
        ("websocket", flow.ws),
    ] {
        let out = run_python(&python, &["client_to_rust.py", protocol, &port.to_string()]);
        assert!(out.contains(&format!("OK {protocol}")), "{out}");
    }
}

#[test]
fn the_python_client_talks_to_our_flow_over_tls() {
    let Some(python) = peer_python() else { return };
    let certs = certificates();
    let flow = certs.start_flow("  - {name: stamp, uses: Visit}\n");
    // Python's gRPC trusts GRPC_DEFAULT_SSL_ROOTS_FILE_PATH; its HTTP client, SSL_CERT_FILE.
    let trust = [
        ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", certs.ca.as_path()),
        ("SSL_CERT_FILE", certs.ca.as_path()),
    ];
    for (protocol, port) in [("grpc", flow.grpc), ("http", flow.http)] {
        let out = run_python_with(
            &python,
            &["client_tls.py", protocol, &port.to_string()],
            &trust,
        );
        assert!(out.contains(&format!("OK {protocol}")), "{out}");
    }
}

/// Posts 30 documents through a Flow whose middle executor is Python and checks each came back
/// with the Python executor's tag, both Rust visits, and its own fields.
async fn through_python(port: u16) {
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
        .await
        .unwrap();
    let docs: Vec<_> = (0..30)
        .map(|i| {
            let mut d = jina::Document::from_text(format!("text {i}"));
            d.id = format!("d{i}");
            d.tags.insert("i".into(), i.into());
            d
        })
        .collect();
    let summary = client
        .index(
            docs,
            PostOptions {
                request_size: 10,
                return_results: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.requests, 3);
    let mut seen = 0;
    for r in &summary.results {
        for d in r.docs().unwrap().iter() {
            let i: usize = d.id[1..].parse().unwrap();
            assert_eq!(d.text.as_deref(), Some(format!("text {i}").as_str()));
            assert_eq!(d.tags["i"].as_f64(), Some(i as f64), "{:?}", d.tags);
            assert_eq!(d.tags["seen_by"], "python-tagger");
            assert_eq!(
                d.embedding.as_ref().unwrap().to_f64_vec().unwrap(),
                vec![1.0, 2.0, 3.0]
            );
            let visits: Vec<_> = d.matches.iter().filter_map(|m| m.text.clone()).collect();
            assert_eq!(visits, ["before", "after"]);
            seen += 1;
        }
    }
    assert_eq!(seen, 30);
}

#[tokio::test]
async fn our_flow_runs_a_python_executor_started_by_us_or_already_running() {
    let Some(python) = peer_python() else { return };
    let tagger = format!("{PEER_DIR}/tagger.yml");

    // Started by us: metas.py_modules makes it a Python executor; JINA_PYTHON picks the interpreter.
    // Python Jina forks its worker; neither Ctrl-C nor a SIGKILL of the Flow may leave it behind.
    let files = Files::new();
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let yaml = format!(
            "jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n  - {{name: before, uses: Visit}}\n  - {{name: py, uses: {tagger}}}\n  - {{name: after, uses: Visit}}\n"
        );
        let path = files.write("flow.yml", &yaml);
        let mut flow = Proc::start_in(
            &["flow", "--uses", path.to_str().unwrap()],
            None,
            &[("JINA_PYTHON", python.as_os_str())],
        );
        let grpc = flow.wait_for_gateway(Duration::from_secs(90))["GRPC"];
        if signal == libc::SIGINT {
            through_python(grpc).await;
        }
        let below = descendants_of(flow.child.id());
        assert!(below.len() >= 4, "3 executors and Python's fork: {below:?}");
        flow.signal(signal);
        if flow.wait_exit(Duration::from_secs(15)).is_none() {
            panic!(
                "the flow did not exit on signal {signal}:\n{}",
                flow.output()
            );
        }
        let left = wait_all_gone(&below, Duration::from_secs(10));
        assert!(left.is_empty(), "signal {signal}: still alive: {left:?}");
    }

    // Already running: a Python `jina executor`, attached with external: true.
    let port = free_port();
    let peer = Command::new(&python)
        .args([
            "-m",
            "jina",
            "executor",
            "--uses",
            &tagger,
            "--port",
            &port.to_string(),
        ])
        .current_dir(PEER_DIR)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut peer = ProcessGroup(peer);
    assert!(serves(port).await, "the Python executor serves");
    through_external(&files, port).await;
    assert!(
        peer.0.try_wait().unwrap().is_none(),
        "the Flow leaves an external executor running"
    );
    drop(peer);

    // `jina executor` given a Python executor's YAML serves it with Python Jina, and Ctrl-C
    // stops it with everything it forked.
    let port = free_port();
    let mut ours = Proc::start_in(
        &[
            "executor",
            "--uses",
            &tagger,
            "--port-in",
            &port.to_string(),
        ],
        None,
        &[("JINA_PYTHON", python.as_os_str())],
    );
    assert!(
        serves(port).await,
        "jina executor serves the Python executor:\n{}",
        ours.output()
    );
    through_external(&files, port).await;
    let below = descendants_of(ours.child.id());
    assert!(below.len() >= 2, "Python Jina and its fork: {below:?}");
    ours.signal(libc::SIGINT);
    let status = ours
        .wait_exit(Duration::from_secs(15))
        .expect("jina executor exits");
    assert!(status.success(), "{status:?}\n{}", ours.output());
    assert!(wait_all_gone(&below, Duration::from_secs(5)).is_empty());
}

/// Runs [`through_python`] on a Flow that attaches the executor on `port` with external: true.
async fn through_external(files: &Files, port: u16) {
    let yaml = format!(
        "jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n  - {{name: before, uses: Visit}}\n  - {{name: py, external: true, host: 127.0.0.1, port_in: {port}}}\n  - {{name: after, uses: Visit}}\n"
    );
    let path = files.write("external.yml", &yaml);
    let mut flow = Proc::start(&["flow", "--uses", path.to_str().unwrap()]);
    let grpc = flow.wait_for_gateway(Duration::from_secs(30))["GRPC"];
    through_python(grpc).await;
}

/// Whether an executor on `port` says SERVING within 90 s (Python Jina takes a while to start).
async fn serves(port: u16) -> bool {
    let ready = async {
        while jina::grpc::check_serving("127.0.0.1", port, Duration::from_millis(300))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), ready)
        .await
        .is_ok()
}

/// A child in a process group of its own (Python Jina forks), killed as a group when dropped.
struct ProcessGroup(std::process::Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { libc::killpg(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn a_python_flow_uses_our_executor() {
    let Some(python) = peer_python() else { return };
    let (_executor, port) = start_executor(&["--uses", "Visit", "--name", "rusty"]);
    let out = run_python(&python, &["flow_to_rust.py", &port.to_string()]);
    assert!(out.contains("OK flow"), "{out}");
}

#[tokio::test]
async fn a_flow_entry_with_py_modules_names_a_python_class_as_jina_3_writes_it() {
    let Some(python) = peer_python() else { return };
    let files = Files::new();
    let path = files.write(
        "flow.yml",
        &format!(
            "with: {{protocol: grpc}}\nexecutors:\n  - {{name: py, uses: PyTagger, py_modules: [{PEER_DIR}/tagger.py]}}\n"
        ),
    );
    let mut flow = Proc::start_in(
        &["flow", "--uses", path.to_str().unwrap()],
        None,
        &[("JINA_PYTHON", python.as_os_str())],
    );
    let grpc = flow.wait_for_gateway(Duration::from_secs(90))["GRPC"];
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", grpc)
        .await
        .unwrap();
    let summary = client
        .post(
            "/",
            jina::Document::from_text("hi"),
            PostOptions {
                return_results: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let docs = summary.results[0].docs().unwrap();
    assert_eq!(
        docs.iter().next().unwrap().tags["seen_by"],
        "python",
        "the Python class ran"
    );
}
