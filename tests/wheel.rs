//! The Python wheel, as a Python user gets it: `deploy/build-wheel` builds it (maturin, from
//! PyPI), `pip install` puts it into a fresh venv with no Python Jina ([`host_python`]), and
//! the venv's `jina` runs a Flow of executor files written as for Jina
//! (tests/python-executors/, unchanged), served by our host, which a client then drives over
//! the wire: sync and async handlers, a generator, `with:`, results, an exception with its
//! traceback, `runtime_args`, `workspace` and `close()`; and mistakes in those files stop the
//! Flow with the file and line.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python-executors");

/// The fixtures, in a fresh folder.
fn fixtures() -> Files {
    let files = Files::new();
    copy_dir(Path::new(FIXTURES), files.dir.path());
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// The venv's `jina`, in `dir`, with the venv's Python for executors (as its PATH gives).
fn start_venv_flow(python: &Path, dir: &Path, args: &[&str]) -> Proc {
    let jina = python.with_file_name("jina");
    let command: Vec<&str> = std::iter::once(jina.to_str().unwrap())
        .chain(args.iter().copied())
        .collect();
    let bin = python.parent().unwrap().as_os_str();
    Proc::start_cmd(
        &command,
        Some(dir),
        &[
            ("JINA_PYTHON", python.as_os_str()),
            (
                "PATH",
                &std::ffi::OsString::from(format!("{}:/usr/bin:/bin", bin.to_string_lossy())),
            ),
        ],
    )
}

fn post(client: &reqwest::Client, port: u16, body: Value) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        client
            .post(format!("http://127.0.0.1:{port}/post"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
}

#[test]
fn pip_install_of_the_wheel_serves_jina_executor_files_unchanged() {
    let python = host_python();
    let no_jina = Command::new(&python)
        .args(["-c", "import jina"])
        .output()
        .unwrap();
    assert!(!no_jina.status.success(), "Python Jina is not in this venv");
    let jina: PathBuf = python.with_file_name("jina");
    let version = Command::new(&jina).arg("--version").output().unwrap();
    assert!(text_of(&version).contains("jina"), "{}", text_of(&version));

    let files = fixtures();
    let dir = files.dir.path();
    let (grpc, http) = (free_port(), free_port());
    let metrics = free_port();
    let flow = std::fs::read_to_string(dir.join("flow.yml"))
        .unwrap()
        .replace(
            "jtype: Flow\n",
            &format!("jtype: Flow\nwith:\n  protocol: [grpc, http]\n  port: [{grpc}, {http}]\n"),
        )
        .replace(
            "monitoring: true\n",
            &format!("monitoring: true\n    port_monitoring: {metrics}\n"),
        );
    files.write("flow.yml", &flow);
    let mut proc = start_venv_flow(&python, dir, &["flow", "--uses", "flow.yml"]);
    proc.wait_for("Flow is ready to use", Duration::from_secs(60));
    let log = proc.output();
    for name in ["upper", "measure"] {
        assert!(
            log.contains(&format!(
                "{name}: a Python executor, served by jina-rs's host"
            )),
            "the log says which runtime serves each copy:\n{log}"
        );
    }
    let client = http_client();

    // /index: Upper (sync, in place, `with: {suffix: '!'}`) then Measure's default handler
    // (async, returns new documents; `parameters`; `runtime_args`).
    let answer = post(
        &client,
        http,
        json!({"execEndpoint": "/index", "data": [{"text": "hello"}, {"text": "jina"}], "parameters": {"factor": 2}}),
    );
    let docs = answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(docs.len(), 2, "{answer}");
    assert_eq!(docs[0]["text"], "HELLO!", "{answer}");
    assert_eq!(docs[1]["text"], "JINA!", "{answer}");
    assert_eq!(docs[0]["tags"]["copy"], "measure/rep-0", "{answer}");
    assert_eq!(docs[0]["tags"]["factor"], 2, "{answer}");

    // A dict is the results, under the copy's name; `self.workspace` is WORKSPACE/NAME.
    let answer = post(
        &client,
        http,
        json!({"execEndpoint": "/stats", "data": [{"text": "a"}]}),
    );
    let results = &answer["parameters"]["__results__"]["measure/rep-0"];
    assert_eq!(results["docs"], 1, "{answer}");
    let workspace = results["workspace"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        workspace.starts_with(&dir.join("workspace").display().to_string()),
        "{answer}"
    );

    // An exception: an error status with its name, its message and its traceback.
    let answer = post(
        &client,
        http,
        json!({"execEndpoint": "/fail", "data": [{"text": "a"}]}),
    );
    let exception = &answer["header"]["status"]["exception"];
    assert_eq!(exception["name"], "RuntimeError", "{answer}");
    assert_eq!(exception["args"][0], "failing on purpose", "{answer}");
    let stacks = exception["stacks"].to_string();
    assert!(
        stacks.contains("my_executors.py"),
        "the traceback: {answer}"
    );

    // A generator answers a streaming endpoint, one document at a time.
    let out = Command::new(&jina)
        .args([
            "client",
            "stream",
            "/count",
            "--port",
            &grpc.to_string(),
            "--text",
            "n",
        ])
        .output()
        .unwrap();
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    // Upper binds /index only, so the stream goes through to Measure untouched.
    assert!(
        text.contains("n 0") && text.contains("n 1") && text.contains("n 2"),
        "{text}"
    );

    // A hosted copy has what a native one has: here, its handlers' times in /metrics.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scraped = runtime.block_on(async {
        client
            .get(format!("http://127.0.0.1:{metrics}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        scraped.contains("jina_process_request_seconds") && scraped.contains("/stats"),
        "{scraped}"
    );

    // Ctrl-C: `close()` runs in each copy before it exits.
    proc.signal(libc::SIGINT);
    assert!(
        proc.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        proc.output()
    );
    let closed = dir.join(workspace).join("closed");
    assert!(
        closed.is_file(),
        "close() ran: {}\n{}",
        closed.display(),
        proc.output()
    );
}

#[test]
fn a_mistake_in_an_executor_file_stops_the_flow_naming_the_file_and_line() {
    let python = host_python();
    let files = fixtures();
    let dir = files.dir.path();
    let cases = [
        ("broken/syntax.py", "Broken", "syntax.py:6: SyntaxError"),
        (
            "broken/signature.py",
            "Broken",
            "signature.py:6: handler `Broken.foo`",
        ),
        (
            "broken/failing_import.py",
            "Broken",
            "failing_import.py:2: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'",
        ),
        (
            "broken/other.py",
            "Missing",
            "jtype Missing: no such class in",
        ),
    ];
    for (file, class, expected) in cases {
        files.write(
            "broken.yml",
            &format!(
                "jtype: Flow\nwith: {{port: {}}}\nexecutors:\n  - {{name: b, uses: {class}, py_modules: {file}}}\n",
                free_port()
            ),
        );
        let mut proc = start_venv_flow(&python, dir, &["flow", "--uses", "broken.yml"]);
        let status = proc
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{file}: the Flow did not stop:\n{}", proc.output()));
        let log = proc.output();
        assert!(!status.success(), "{file}:\n{log}");
        assert!(
            log.contains(expected),
            "{file}: wanted `{expected}`:\n{log}"
        );
        assert_eq!(
            log.matches(expected).count(),
            1,
            "{file}: said once:\n{log}"
        );
    }
}

#[test]
fn beside_python_jina_in_one_venv_both_keep_working() {
    let Some(peer) = peer_python() else { return };
    // Builds and installs this tree's wheel, which `host_wheel` then finds.
    host_python();
    let files = fixtures();
    let dir = files.dir.path();
    // A venv that sees Python Jina's packages (pydantic 1, DocArray 0.40) and gets our wheel
    // on top, without its dependencies: what `pip install jina-rs` does in a Jina user's venv.
    let venv = dir.join("both");
    let run = run_ok;
    run(
        Path::new("python3"),
        &["-m", "venv", venv.to_str().unwrap()],
    );
    let python = venv.join("bin/python");
    let site = |python: &Path| {
        run(
            python,
            &[
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
        )
        .trim()
        .to_string()
    };
    std::fs::write(Path::new(&site(&python)).join("peer.pth"), site(&peer)).unwrap();
    let Some(wheel) = host_wheel() else {
        // JINA_HOST_PYTHON named a venv made by hand: no wheel to install here.
        return;
    };
    run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            wheel.to_str().unwrap(),
        ],
    );

    // `import jina` is Python Jina's; its command still runs; ours is `bin/jina`.
    let imported = run(&python, &["-c", "import jina; print(jina.__version__)"]);
    assert!(imported.contains("3.34"), "{imported}");
    let theirs = run(&python, &["-m", "jina", "--version"]);
    assert!(theirs.contains("3.34"), "{theirs}");

    // A Flow of ours serves the same executor with each runtime, in this venv.
    for (runtime, said) in [
        ("jina-rs", "served by jina-rs's host"),
        ("jina", "served by Python Jina"),
    ] {
        let port = free_port();
        files.write(
            "both.yml",
            &format!(
                "jtype: Flow\nwith: {{protocol: http, port: {port}}}\nexecutors:\n  - {{name: upper, uses: upper.yml, python_runtime: {runtime}}}\n"
            ),
        );
        let mut flow = start_venv_flow(&python, dir, &["flow", "--uses", "both.yml"]);
        flow.wait_for("Flow is ready to use", Duration::from_secs(120));
        assert!(flow.output().contains(said), "{runtime}: {}", flow.output());
        let answer = post(
            &http_client(),
            port,
            json!({"execEndpoint": "/index", "data": [{"text": "both"}]}),
        );
        assert_eq!(answer["data"][0]["text"], "BOTH!", "{runtime}: {answer}");
    }
}
