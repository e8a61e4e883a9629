//! Finding the running Flow: `jina client post /index --inputs data.csv --show-progress` with no
//! address, `jina ping` with none, and `jina flows`. Each test has its own runtime folder
//! (JINA_RUNTIME_DIR), so the Flows of other tests running at the same time are not seen.

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A machine as the commands see it: a runtime folder, and a folder to work in.
struct Machine {
    runtime: tempfile::TempDir,
    files: Files,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            runtime: tempfile::tempdir().unwrap(),
            files: Files::new(),
        }
    }

    fn env(&self) -> [(&'static str, &OsStr); 1] {
        [("JINA_RUNTIME_DIR", self.runtime.path().as_os_str())]
    }

    /// Starts `jina flow` on a YAML with no port (so its ports are random) and waits until it
    /// serves. `name` goes under `with:` when given.
    fn start_flow(&self, file: &str, name: Option<&str>) -> Proc {
        let with = name.map(|n| format!("  name: {n}\n")).unwrap_or_default();
        let yaml = format!(
            "jtype: Flow\nwith:\n  protocol: [grpc, http]\n{with}executors:\n  - {{name: encode, uses: NgramEncoder, uses_with: {{dim: 32}}}}\n  - {{name: index, uses: VectorIndexer, workspace: ws-{file}}}\n"
        );
        let path = self.files.write(file, &yaml);
        let mut flow = Proc::start_in(
            &["flow", "--uses", path.to_str().unwrap()],
            Some(self.files.dir.path()),
            &self.env(),
        );
        flow.wait_for_gateway(Duration::from_secs(60));
        flow
    }

    /// Runs `jina <args>` in `dir` on this machine: (exit code, stdout + stderr).
    fn jina(&self, args: &[&str], dir: &Path) -> (i32, String) {
        let out = Command::new(JINA)
            .args(args)
            .envs(self.env())
            .env_remove("JINA_PORT")
            .env_remove("JINA_HOST")
            .current_dir(dir)
            .output()
            .expect("run jina");
        (out.status.code().unwrap_or(-1), text_of(&out))
    }

    /// Another working directory, with `data.csv` of `rows` lines.
    fn data_dir(&self, rows: usize) -> std::path::PathBuf {
        let dir = self.files.dir.path().join("elsewhere");
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("id,text\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "row{i},sentence number {i} about pride and prejudice\n"
            ));
        }
        std::fs::write(dir.join("data.csv"), csv).unwrap();
        dir
    }
}

const POST: &[&str] = &[
    "client",
    "post",
    "/index",
    "--inputs",
    "data.csv",
    "--show-progress",
];

#[test]
fn the_command_as_written_finds_the_one_running_flow() {
    let machine = Machine::new();
    let flow = machine.start_flow("books.yml", None);
    let dir = machine.data_dir(50);

    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("using the Flow 'books' (pid {})", flow.child.id())),
        "{out}"
    );
    assert!(
        out.contains("(50 docs)") && out.contains(", 0 failed"),
        "{out}"
    );

    // Every row reached the index.
    let (code, out) = machine.jina(&["client", "post", "/status", "--output", "-"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#""count":50"#), "{out}");

    // A protocol it does not serve is named with the ones it does.
    let (code, out) = machine.jina(&["client", "post", "/", "--protocol", "websocket"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the Flow 'books' does not serve websocket (it serves grpc, http)"),
        "{out}"
    );

    // `jina ping` with no address asks the same Flow.
    let (code, out) = machine.jina(&["ping"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is serving"), "{out}");
    let (code, out) = machine.jina(&["ping", "flow"], &dir);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn with_two_flows_it_names_both_and_flow_picks_one() {
    let machine = Machine::new();
    let a = machine.start_flow("a.yml", Some("novels"));
    let b = machine.start_flow("b.yml", Some("poems"));
    let dir = machine.data_dir(5);

    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 1, "{out}");
    let error: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "one line: {out}");
    assert!(
        error[0].contains("2 Flows run on this machine")
            && error[0].contains(&format!("'novels' (pid {}", a.child.id()))
            && error[0].contains(&format!("'poems' (pid {}", b.child.id()))
            && error[0].contains("--flow NAME"),
        "{out}"
    );

    let mut args = POST.to_vec();
    args.extend(["--flow", "poems"]);
    let (code, out) = machine.jina(&args, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("using the Flow 'poems'") && out.contains("(5 docs)"),
        "{out}"
    );

    let (code, out) = machine.jina(&["client", "post", "/index", "--flow", "prose"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no Flow named 'prose' runs on this machine (running: 'novels'"),
        "{out}"
    );

    // `jina flows` lists both, like `docker ps`.
    let (code, out) = machine.jina(&["flows"], &dir);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("EXECUTORS"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].starts_with("novels") && lines[1].contains(&a.child.id().to_string()));
    assert!(
        lines[2].starts_with("poems") && lines[2].trim_end().ends_with('2'),
        "{out}"
    );
}

#[test]
fn a_starting_flow_is_listed_as_starting_and_a_client_is_told_so() {
    // The quick start's step 1 before step 2: the Flow waits for its external encoder.
    let machine = Machine::new();
    let port = free_port().to_string();
    let path = machine.files.write(
        "waiting.yml",
        &format!("jtype: Flow\nexecutors:\n  - {{name: encoder, external: true, host: 127.0.0.1, port_in: {port}, timeout_ready: 60000}}\n"),
    );
    let dir = machine.data_dir(1);
    let mut flow = Proc::start_in(
        &["flow", "--uses", path.to_str().unwrap()],
        Some(machine.files.dir.path()),
        &machine.env(),
    );
    let mut listing = String::new();
    let listed = eventually(Duration::from_secs(20), || {
        let (code, out) = machine.jina(&["flows"], &dir);
        listing = out;
        code == 0 && listing.contains("waiting")
    });
    assert!(listed && listing.contains("(starting)"), "{listing}");
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the Flow 'waiting'") && out.contains("is starting"),
        "{out}"
    );
    // Once the encoder is there, the same record carries the Flow's addresses.
    let mut encoder = Proc::start_in(
        &["executor", "--uses", "NgramEncoder", "--port-in", &port],
        Some(machine.files.dir.path()),
        &machine.env(),
    );
    encoder.wait_for("ready and listening", Duration::from_secs(30));
    flow.wait_for("Flow is ready to use!", Duration::from_secs(30));
    let (code, out) = machine.jina(&["flows"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("grpc 127.0.0.1:") && !out.contains("(starting)"),
        "{out}"
    );
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn with_no_flow_it_says_so_and_how_to_start_one() {
    let machine = Machine::new();
    let dir = machine.data_dir(1);
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
    assert!(
        out.starts_with("error: no Flow runs on this machine")
            && out.contains("jina flow --uses flow.yml")
            && out.contains("--host and --port"),
        "{out}"
    );
    let (code, out) = machine.jina(&["ping"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no Flow runs on this machine"), "{out}");
    // An address in the environment is used as given.
    let port = free_port().to_string();
    let out = Command::new(JINA)
        .args(["client", "post", "/index"])
        .envs(machine.env())
        .env("JINA_PORT", &port)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[test]
fn a_killed_flow_leaves_an_entry_that_is_ignored_and_removed() {
    let machine = Machine::new();
    let mut flow = machine.start_flow("gone.yml", None);
    let pid = flow.child.id();
    let entry = machine.runtime.path().join(format!("{pid}.json"));
    assert!(entry.exists(), "recorded while it serves");
    flow.signal(libc::SIGKILL);
    flow.wait_exit(Duration::from_secs(10));
    assert!(entry.exists(), "a SIGKILLed Flow cannot remove its entry");

    let dir = machine.data_dir(1);
    let (code, out) = machine.jina(&["flows"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("gone"), "{out}");
    assert!(!entry.exists(), "the stale entry is removed");

    let mut flow = machine.start_flow("gone.yml", None);
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 0, "{out}");
    let entry = machine
        .runtime
        .path()
        .join(format!("{}.json", flow.child.id()));
    flow.signal(libc::SIGINT);
    flow.wait_exit(Duration::from_secs(20));
    assert!(!entry.exists(), "a Flow that stops removes its entry");
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no Flow runs on this machine"), "{out}");
}

#[test]
fn the_readme_quick_start_works_in_its_order() {
    // quickstart/ as README runs it, in a copy (its workspace is written there) and with a
    // free port in place of 12345.
    let machine = Machine::new();
    let dir = machine.files.dir.path().join("quickstart");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port().to_string();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("quickstart");
    for file in ["flow.yml", "x.yml", "data.csv"] {
        let text = std::fs::read_to_string(source.join(file)).unwrap();
        std::fs::write(dir.join(file), text.replace("12345", &port)).unwrap();
    }

    // 1: the Flow starts and waits for its external encoder.
    let mut flow = Proc::start_in(&["flow", "--uses", "flow.yml"], Some(&dir), &machine.env());
    flow.wait_for(
        "waiting for the external executor encoder",
        Duration::from_secs(30),
    );
    // 2: the encoder, on its own; the Flow gets ready.
    let mut encoder = Proc::start_in(
        &["executor", "--uses", "x.yml", "--port-in", &port],
        Some(&dir),
        &machine.env(),
    );
    encoder.wait_for("ready and listening", Duration::from_secs(30));
    flow.wait_for("Flow is ready to use!", Duration::from_secs(30));
    // 3: the client, exactly as written.
    let (code, out) = machine.jina(POST, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("using the Flow 'quickstart'") && out.contains("(12 docs)"),
        "{out}"
    );

    // And a search from stdin finds the sentence it was indexed with.
    let mut search = Command::new(JINA)
        .args([
            "client", "post", "/search", "--inputs", "-", "--output", "-",
        ])
        .envs(machine.env())
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    search
        .stdin
        .take()
        .unwrap()
        .write_all(b"Mr. Bennet made no answer.\n")
        .unwrap();
    let out = search.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{answer}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let query: serde_json::Value =
        serde_json::from_str(answer.lines().next().unwrap_or_default()).expect("one document");
    assert_eq!(
        query["matches"][0]["text"], "Mr. Bennet made no answer.",
        "the best match is the sentence itself: {answer}"
    );
    // On stdout the query's embedding and its matches' are left out unless asked for.
    assert!(query.get("embedding").is_none(), "{answer}");
    assert!(query["matches"][0].get("embedding").is_none(), "{answer}");
    let with = Command::new(JINA)
        .args([
            "client", "post", "/search", "--inputs", "-", "--output", "-",
        ])
        .arg("--with-embeddings")
        .envs(machine.env())
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"Mr. Bennet made no answer.\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let answer = String::from_utf8_lossy(&with.stdout);
    let query: serde_json::Value =
        serde_json::from_str(answer.lines().next().unwrap_or_default()).expect("one document");
    assert!(!query["embedding"].is_null(), "{answer}");
}
