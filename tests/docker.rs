//! Executors in containers, on the real Docker Engine: the project's image (made here with no
//! registry by deploy/build-image, from the binary under test), `uses: docker://` with
//! replicas beside a native executor, every exit path leaving no container behind, and an
//! image whose entrypoint is Python Jina.
//!
//! The tests take turns (one lock): a Flow's start removes the containers of dead Flows, which
//! would otherwise race with a test that kills a Flow to look at what it left.

// The turn's lock is held across awaits on purpose: it orders whole tests, each on its own
// runtime, and no task of a test waits for it.
#![allow(clippy::await_holding_lock)]

#[path = "common/collector.rs"]
mod collector;
mod common;

use common::*;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const IMAGE: &str = "jina-rs:test";
const PYTHON_IMAGE: &str = "jina-rs-peer-tagger:test";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One test at a time.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command and returns (success, stdout + stderr).
fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (out.status.success(), text_of(&out))
}

/// The project's image, built once per run from the binary under test.
fn project_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (ok, out) = sh(
            &format!("{ROOT}/deploy/build-image"),
            &["--binary", JINA, "--tag", IMAGE],
        );
        assert!(ok, "deploy/build-image failed:\n{out}");
    });
    IMAGE
}

/// An image made the way a user makes one for an executor: FROM the project's image, with an
/// entrypoint that serves `Visit`.
fn visit_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let base = project_image();
    BUILT.get_or_init(|| {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM {base}\nENTRYPOINT [\"jina\", \"executor\", \"--uses\", \"Visit\"]\n"),
        )
        .unwrap();
        let (ok, out) = sh(
            "docker",
            &[
                "build",
                "-q",
                "-t",
                "jina-rs-visit:test",
                context.path().to_str().unwrap(),
            ],
        );
        assert!(ok, "docker build: {out}");
    });
    "jina-rs-visit:test"
}

/// The names of the containers a Flow (by its pid) owns, running or not.
fn containers_of(flow_pid: u32) -> Vec<String> {
    let (ok, out) = sh(
        "docker",
        &[
            "ps",
            "--all",
            "--filter",
            "label=ai.jina-rs.owner",
            "--format",
            "{{.Names}} {{.Label \"ai.jina-rs.owner\"}}",
        ],
    );
    assert!(ok, "docker ps: {out}");
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, owner)| owner.split(':').next() == Some(&flow_pid.to_string()))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Removes a Flow's containers when the test ends, pass or fail (the harness's SIGKILL of
/// the Flow's group leaves them to the daemon).
struct RemoveContainers(u32);

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        let names = containers_of(self.0);
        if !names.is_empty() {
            let mut args = vec!["rm", "--force"];
            args.extend(names.iter().map(String::as_str));
            sh("docker", &args);
        }
    }
}

/// Writes a gRPC-only Flow with these executors and starts it (not waiting): the process and
/// the command line, to start the same Flow again.
fn start_grpc_flow(files: &Files, executors: &str) -> (Proc, Vec<String>) {
    let yaml = format!("jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n{executors}");
    let path = files.write("flow.yml", &yaml);
    let args: Vec<String> = ["flow", "--uses", path.to_str().unwrap()]
        .map(str::to_string)
        .into();
    let flow = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (flow, args)
}

/// Waits until the containers are gone (their removal finishes shortly after the CLI's).
fn wait_no_containers(flow_pid: u32) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let left = containers_of(flow_pid);
        if left.is_empty() || start.elapsed() > Duration::from_secs(15) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Ctrl-C to a Flow: it exits with success, and none of its containers is left.
fn stop_with_ctrl_c(flow: &mut Proc) {
    let pid = flow.child.id();
    flow.signal(libc::SIGINT);
    let status = flow.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", flow.output());
    assert_eq!(wait_no_containers(pid), Vec::<String>::new());
}

#[test]
fn the_image_prints_its_version_and_runs_as_a_user_not_root() {
    let _turn = turn();
    let image = project_image();
    let (ok, out) = sh("docker", &["run", "--rm", image, "--version"]);
    assert!(ok && out.starts_with("jina "), "{out}");
    let (ok, uid) = sh(
        "docker",
        &["run", "--rm", "--entrypoint", "id", image, "-u"],
    );
    assert!(ok, "{uid}");
    assert_ne!(uid.trim(), "0", "the container runs as root");
    let (_, health) = sh(
        "docker",
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Healthcheck}}",
            image,
        ],
    );
    assert!(health.contains("\"jina\",\"ping\""), "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_replicas_beside_a_native_executor_answer_and_ctrl_c_leaves_no_container() {
    let _turn = turn();
    let image = project_image();
    let mounted = tempfile::tempdir().unwrap();
    std::fs::write(mounted.path().join("hello.txt"), "mounted").unwrap();
    let executors = format!(
        "  - name: split\n    uses: docker://{image}\n    entrypoint: jina executor --uses Sentencizer\n    uses_with: {{min_chars: 5}}\n    env: {{GREETING: hello-from-the-flow}}\n    volumes: ['{}:/data:ro']\n  - name: visit\n    uses: docker://{image}\n    entrypoint: jina executor --uses Visit\n    replicas: 2\n  - {{name: native, uses: Visit, shards: 2, polling: {{/index: ALL, '*': ALL}}, uses_after: 'docker://{after}'}}\n",
        mounted.path().display(),
        after = visit_image(),
    );
    let mut flow = start_flow(&executors);
    let pid = flow.proc.child.id();
    let _cleanup = RemoveContainers(pid);
    let mut running = containers_of(pid);
    running.sort();
    assert_eq!(
        running,
        [
            format!("jina-native-tail-{pid}"),
            format!("jina-split-{pid}"),
            format!("jina-visit-rep-0-{pid}"),
            format!("jina-visit-rep-1-{pid}"),
        ],
        "{}",
        flow.proc.output()
    );
    // The container got the entry's env and volume, and serves as a user, not root.
    let split = format!("jina-split-{pid}");
    let (_, greeting) = sh("docker", &["exec", &split, "printenv", "GREETING"]);
    assert_eq!(greeting.trim(), "hello-from-the-flow");
    let (_, file) = sh("docker", &["exec", &split, "cat", "/data/hello.txt"]);
    assert_eq!(file.trim(), "mounted");

    // gRPC: uses_with reached the container (min_chars 5 drops "Hi."), both replicas served.
    let requests = (0..8)
        .map(|_| request("/index", texts(&["Hi. Hello there, friend."])))
        .collect();
    let answers = post_grpc(flow.grpc, requests).await;
    let mut replicas = std::collections::BTreeSet::new();
    for answer in &answers {
        // The uses_after (Visit, in a container) gets each shard's copy, as Jina hands them
        // over, and passes both on: one document per shard, in shard order.
        let docs = jina::request::docs(answer).unwrap();
        assert_eq!(docs.len(), 2, "{docs:?}");
        for (shard, doc) in docs.iter().enumerate() {
            let chunks: Vec<_> = doc.chunks.iter().filter_map(|c| c.text.clone()).collect();
            assert_eq!(chunks, ["Hello there, friend."]);
            let seen: Vec<String> = doc.matches.iter().filter_map(|m| m.text.clone()).collect();
            // One replica of `visit`, this shard of `native`, then its uses_after.
            assert_eq!(seen.len(), 3, "{seen:?}");
            assert_eq!(seen[1], format!("native/shard-{shard}"));
            assert_eq!(seen[2], "native/tail");
            replicas.insert(seen[0].clone());
        }
    }
    assert_eq!(
        replicas.into_iter().collect::<Vec<_>>(),
        ["visit/rep-0", "visit/rep-1"]
    );
    // HTTP.
    let (status, body) = post_http(
        flow.http,
        "/post",
        serde_json::json!({"data": [{"text": "Hi. Hello there, friend."}], "execEndpoint": "/index"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["chunks"][0]["text"], "Hello there, friend.");

    // Ctrl-C: the Flow stops its containers and exits; none is left.
    stop_with_ctrl_c(&mut flow.proc);
}

#[test]
fn the_containers_of_a_killed_flow_are_removed_by_the_next_start() {
    let _turn = turn();
    let image = project_image();
    let files = Files::new();
    let (mut first, args) = start_grpc_flow(
        &files,
        &format!(
            "  - {{name: visit, uses: 'docker://{image}', entrypoint: jina executor --uses Visit, replicas: 2}}\n"
        ),
    );
    first.wait_for_gateway(Duration::from_secs(60));
    let first_pid = first.child.id();
    let _cleanup_first = RemoveContainers(first_pid);
    // SIGKILL to the Flow's whole process group: nothing of ours is left to clean up.
    drop(first);
    let left = containers_of(first_pid);
    assert_eq!(left.len(), 2, "the killed Flow's containers: {left:?}");

    let mut second = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    second.wait_for_gateway(Duration::from_secs(60));
    let _cleanup_second = RemoveContainers(second.child.id());
    assert!(
        second
            .output()
            .contains("removing 2 container(s) left by a Flow that is gone"),
        "{}",
        second.output()
    );
    assert_eq!(containers_of(first_pid), Vec::<String>::new());
    assert_eq!(containers_of(second.child.id()).len(), 2);

    // SIGKILL of the Flow alone: its guards stop and remove their containers at once.
    let second_pid = second.child.id();
    second.signal(libc::SIGKILL);
    assert_eq!(wait_no_containers(second_pid), Vec::<String>::new());
}

#[test]
fn a_container_that_fails_to_start_fails_the_flow_and_is_removed() {
    let _turn = turn();
    let image = project_image();
    let files = Files::new();
    let (mut flow, _) = start_grpc_flow(
        &files,
        &format!(
            "  - {{name: good, uses: Visit}}\n  - {{name: broken, uses: 'docker://{image}', entrypoint: jina executor --uses NoSuchExecutor}}\n"
        ),
    );
    let pid = flow.child.id();
    let _cleanup = RemoveContainers(pid);
    let status = flow.wait_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{}", flow.output());
    let out = flow.output();
    assert!(out.contains("broken exited"), "{out}");
    assert!(out.contains("NoSuchExecutor"), "{out}");
    assert_eq!(wait_no_containers(pid), Vec::<String>::new());
}

#[test]
fn hub_uses_are_refused_with_the_way_to_build_the_image() {
    let files = Files::new();
    let path = files.write(
        "flow.yml",
        "jtype: Flow\nexecutors:\n  - {name: enc, uses: 'jinahub+docker://SimpleEncoder'}\n",
    );
    let (code, out) = run(&["flow", "--uses", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no Executor Hub is reachable from here"),
        "{out}"
    );
    assert!(out.contains("uses: docker://NAME"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_whose_entrypoint_is_python_jina_serves_in_the_flow() {
    let _turn = turn();
    if peer_python().is_none() {
        return;
    }
    let (ok, out) = sh(
        &format!("{ROOT}/tests/peer/build-image"),
        &["--tag", PYTHON_IMAGE],
    );
    assert!(ok, "tests/peer/build-image failed:\n{out}");
    let executors = format!(
        "  - {{name: py, uses: 'docker://{PYTHON_IMAGE}', uses_with: {{label: in-a-container}}}}\n  - {{name: native, uses: Visit}}\n"
    );
    let mut flow = start_flow(&executors);
    let pid = flow.proc.child.id();
    let _cleanup = RemoveContainers(pid);
    let answers = post_grpc(flow.grpc, vec![request("/index", texts(&["one", "two"]))]).await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    assert_eq!(docs.len(), 2);
    for doc in docs.iter() {
        assert_eq!(doc.tags["seen_by"], "in-a-container", "{doc:?}");
        assert_eq!(doc.matches[0].text.as_deref(), Some("native"));
    }
    stop_with_ctrl_c(&mut flow.proc);
}

/// Waits until a container's health check passes (the image's `jina ping`).
fn wait_healthy(container: &str) {
    let start = std::time::Instant::now();
    loop {
        let (_, health) = sh(
            "docker",
            &["inspect", "--format", "{{.State.Health.Status}}", container],
        );
        if health.trim() == "healthy" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{container} is {health}: {}",
            sh("docker", &["logs", container]).1
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A docker-compose project that is taken down when the test ends, pass or fail.
struct ComposeProject {
    name: String,
    file: std::path::PathBuf,
}

impl ComposeProject {
    fn compose(&self, args: &[&str]) -> (bool, String) {
        let file = self.file.to_str().unwrap();
        let mut all = vec!["-p", &self.name, "-f", file];
        all.extend(args);
        sh("docker-compose", &all)
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        self.compose(&["down", "--volumes", "--timeout", "5"]);
    }
}

/// Writes `flow_yaml` into a folder the containers' user can read, exports it as a compose
/// project of the project's image, and names the project `name` + this test's pid.
fn export_compose(flow_yaml: &str, name: &str) -> (Files, ComposeProject) {
    let files = Files::new();
    // Containers run as a user, not root: the mounted Flow folder must be readable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(files.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let flow = files.write("flow.yml", flow_yaml);
    let out = files.dir.path().join("docker-compose.yml");
    let (code, said) = run(&[
        "export",
        "docker-compose",
        flow.to_str().unwrap(),
        out.to_str().unwrap(),
        "--image",
        project_image(),
    ]);
    assert_eq!(code, 0, "{said}");
    let project = ComposeProject {
        name: format!("{name}{}", std::process::id()),
        file: out,
    };
    (files, project)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_compose_project_serves_the_flow_and_down_leaves_nothing() {
    let _turn = turn();
    let image = project_image();
    let (grpc, http) = (free_port(), free_port());
    let (_files, project) = export_compose(
        &format!(
            "jtype: Flow\nwith: {{protocol: [grpc, http], port: [{grpc}, {http}]}}\nexecutors:\n  - {{name: split, uses: Sentencizer, replicas: 2}}\n  - {{name: left, uses: Visit, needs: split}}\n  - {{name: right, uses: 'docker://{image}', entrypoint: jina executor --uses Visit, needs: split}}\n  - {{name: join, uses: Visit, needs: [left, right]}}\n"
        ),
        "jinatest",
    );
    let (ok, up) = project.compose(&["up", "-d"]);
    assert!(ok, "docker-compose up: {up}");
    // `up -d` returns once the gateway is created; its health check says when it serves.
    wait_healthy(&format!("{}_gateway_1", project.name));
    let answers = post_grpc(
        grpc,
        vec![request("/index", texts(&["Hello there. How are you?"]))],
    )
    .await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    assert_eq!(docs[0].chunks.len(), 2);
    let seen: Vec<_> = docs[0]
        .matches
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    assert_eq!(seen, ["left", "right", "join"]);
    let (status, body) = post_http(
        http,
        "/post",
        serde_json::json!({"data": [{"text": "One. Two."}], "execEndpoint": "/index"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["chunks"].as_array().unwrap().len(), 2);

    let (ok, down) = project.compose(&["down", "--timeout", "5"]);
    assert!(ok, "docker-compose down: {down}");
    let (_, containers) = sh(
        "docker",
        &[
            "ps",
            "--all",
            "--filter",
            &format!("label=com.docker.compose.project={}", project.name),
            "--quiet",
        ],
    );
    assert_eq!(containers.trim(), "", "containers left after down");
    let (_, networks) = sh(
        "docker",
        &[
            "network",
            "ls",
            "--filter",
            &format!("name={}", project.name),
            "--quiet",
        ],
    );
    assert_eq!(networks.trim(), "", "networks left after down");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_written_in_a_compose_deployment_survives_down_and_up() {
    let _turn = turn();
    let grpc = free_port();
    // The indexer names no workspace: `jina executor`'s default would be inside its container.
    let (_files, project) = export_compose(
        &format!(
            "jtype: Flow\nwith: {{port: {grpc}}}\nexecutors:\n  - {{name: enc, uses: NgramEncoder}}\n  - {{name: idx, uses: VectorIndexer}}\n"
        ),
        "jinaws",
    );
    let gateway = format!("{}_gateway_1", project.name);
    let (ok, up) = project.compose(&["up", "-d"]);
    assert!(ok, "docker-compose up: {up}");
    wait_healthy(&gateway);
    let docs = texts(&["a red apple", "a blue sky", "green grass"]);
    let answers = post_grpc(grpc, vec![request("/index", docs)]).await;
    assert!(
        !jina::request::is_error(&answers[0]),
        "{:?}",
        answers[0].header
    );

    let (ok, down) = project.compose(&["down", "--timeout", "5"]);
    assert!(ok, "docker-compose down: {down}");
    let (ok, up) = project.compose(&["up", "-d"]);
    assert!(ok, "docker-compose up again: {up}");
    wait_healthy(&gateway);
    let answers = post_grpc(grpc, vec![request("/search", texts(&["a red apple"]))]).await;
    let found = jina::request::docs(&answers[0]).unwrap();
    let matches: Vec<_> = found[0]
        .matches
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    assert_eq!(matches.len(), 3, "the index came back whole: {matches:?}");
    assert_eq!(matches[0], "a red apple");
}

/// Containers and a network a test made, removed when it ends, pass or fail.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    network: Option<String>,
}

/// The address of a container on its network.
fn address_of(container: &str) -> String {
    let (_, ip) = sh(
        "docker",
        &[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ],
    );
    ip.trim().to_string()
}

impl Made {
    /// A network of the test's own (`jinatest-KIND-PID`), removed when the test ends.
    fn network(kind: &str) -> (Made, String) {
        let network = format!("jinatest-{kind}-{}", std::process::id());
        let (ok, out) = sh("docker", &["network", "create", &network]);
        assert!(ok, "{out}");
        let mut made = Made::default();
        made.network = Some(network.clone());
        (made, network)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "--force"];
            args.extend(self.containers.iter().map(String::as_str));
            sh("docker", &args);
        }
        if let Some(network) = &self.network {
            sh("docker", &["network", "rm", network]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_spreads_requests_over_every_address_of_one_name() {
    let _turn = turn();
    let image = project_image();
    let (mut made, network) = Made::network("dns");
    // Three copies behind one name, as a headless Service's pods are behind theirs.
    for i in 0..3 {
        let name = format!("{network}-enc-{i}");
        let copy = format!("enc-{i}");
        let (ok, out) = sh(
            "docker",
            &[
                "run",
                "--detach",
                "--name",
                &name,
                "--network",
                &network,
                "--network-alias",
                "enc",
                "--env",
                "JINA_PORT=8081",
                image,
                "executor",
                "--uses",
                "Visit",
                "--port",
                "8081",
                "--name",
                &copy,
            ],
        );
        assert!(ok, "{out}");
        made.containers.push(name);
    }
    for name in &made.containers {
        wait_healthy(name);
    }
    let port = free_port();
    let gateway = format!("{network}-gateway");
    let (ok, out) = sh(
        "docker",
        &[
            "run",
            "--detach",
            "--name",
            &gateway,
            "--network",
            &network,
            "--publish",
            &format!("127.0.0.1:{port}:{port}"),
            "--env",
            &format!("JINA_PORT={port}"),
            image,
            "gateway",
            "--graph-description",
            r#"{"start-gateway": ["enc"], "enc": ["end-gateway"]}"#,
            "--deployments-addresses",
            r#"{"enc": ["enc:8081"]}"#,
            "--port",
            &port.to_string(),
        ],
    );
    assert!(ok, "{out}");
    made.containers.push(gateway.clone());
    wait_healthy(&gateway);
    // The gateway connects to each address it resolved as it learns of it: a first burst can
    // meet only the first connection that is ready. Bursts go on until every copy answered.
    let mut copies = std::collections::BTreeMap::<String, usize>::new();
    let started = std::time::Instant::now();
    while copies.len() < 3 && started.elapsed() < Duration::from_secs(30) {
        let requests = (0..10)
            .map(|_| request("/index", texts(&["which copy?"])))
            .collect();
        for answer in &post_grpc(port, requests).await {
            let docs = jina::request::docs(answer).unwrap();
            let copy = docs[0].matches[0].text.clone().unwrap();
            *copies.entry(copy).or_default() += 1;
        }
    }
    assert_eq!(
        copies.keys().collect::<Vec<_>>(),
        ["enc-0", "enc-1", "enc-2"],
        "requests per copy: {copies:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_executor_is_started_by_the_daemon_of_its_host_and_stopped_with_the_flow() {
    let _turn = turn();
    let image = project_image();
    let (mut made, network) = Made::network("daemon");
    // The remote host: a container of the test's own network, running `jina daemon`.
    let daemon = format!("{network}-host");
    let (ok, out) = sh(
        "docker",
        &[
            "run",
            "--detach",
            "--name",
            &daemon,
            "--network",
            &network,
            image,
            "daemon",
            "--host",
            "0.0.0.0",
            "--port-expose",
            "8000",
            "--token",
            DAEMON_TOKEN,
        ],
    );
    assert!(ok, "{out}");
    made.containers.push(daemon.clone());
    let ip = address_of(&daemon);
    let base = format!("http://{ip}:8000");
    let start = std::time::Instant::now();
    while http_client().get(&base).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            sh("docker", &["logs", &daemon]).1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It runs code on request: without its token, nothing.
    assert_eq!(daemon_executors(&base, None).await.0, 401);
    assert_eq!(daemon_executors(&base, Some("wrong")).await.0, 401);
    assert_eq!(
        daemon_executors(&base, Some(DAEMON_TOKEN)).await,
        (200, vec![])
    );

    let files = Files::new();
    files.write("middle.yml", "jtype: Visit\n");
    files.write("notes.txt", "uploaded with the executor");
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{protocol: [grpc, http]}}\nexecutors:\n  - {{name: first, uses: Visit}}\n  - {{name: middle, uses: middle.yml, host: {ip}, port_expose: 8000, upload_files: [notes.txt]}}\n  - {{name: last, uses: Visit}}\n"
        ),
    );
    let token = [
        ("JINA_DAEMON_TOKEN", std::ffi::OsStr::new(DAEMON_TOKEN)),
        ("JINA_DAEMON_OWNER", std::ffi::OsStr::new(DAEMON_OWNER)),
    ];
    let args = ["flow", "--uses", flow_yaml.to_str().unwrap()];
    let mut flow = Proc::start_in(&args, None, &token);
    let ports = flow.wait_for_gateway(Duration::from_secs(60));
    let (_, names) = daemon_executors(&base, Some(DAEMON_TOKEN)).await;
    assert_eq!(names, ["middle"]);
    let answers = post_grpc(ports["GRPC"], vec![request("/index", texts(&["hello"]))]).await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    let seen: Vec<_> = docs[0]
        .matches
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    assert_eq!(seen, ["first", "middle", "last"]);
    let (status, body) = post_http(
        ports["HTTP"],
        "/post",
        serde_json::json!({"data": [{"text": "hi"}], "execEndpoint": "/index"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["matches"][1]["text"], "middle");
    // The uploaded file is in the executor's workspace over there; its output came here.
    let (_, listed) = sh(
        "docker",
        &[
            "exec",
            &daemon,
            "sh",
            "-c",
            "cat jina-daemon-workspaces/*/notes.txt",
        ],
    );
    assert_eq!(listed.trim(), "uploaded with the executor");
    assert!(flow.output().contains("middle@"), "{}", flow.output());

    // Ctrl-C: the Flow stops its remote executor.
    stop_with_ctrl_c(&mut flow);
    assert_eq!(
        wait_daemon_empty(&base, DAEMON_TOKEN, Duration::from_secs(10)).await,
        Vec::<String>::new()
    );

    // SIGKILL: nobody stops it, so its lease runs out.
    let mut flow = Proc::start_in(&args, None, &token);
    flow.wait_for_gateway(Duration::from_secs(60));
    assert_eq!(
        daemon_executors(&base, Some(DAEMON_TOKEN)).await.1,
        ["middle"]
    );
    drop(flow);
    let left = wait_daemon_empty(
        &base,
        DAEMON_TOKEN,
        jina::testing::LEASE + Duration::from_secs(10),
    )
    .await;
    assert_eq!(left, Vec::<String>::new());
    assert!(
        sh("docker", &["logs", &daemon])
            .1
            .contains("its lease ran out"),
        "{}",
        sh("docker", &["logs", &daemon]).1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_reaches_a_daemon_in_another_network_namespace_over_tls_with_a_token() {
    let _turn = turn();
    let image = project_image();
    let (mut made, network) = Made::network("daemontls");
    // The remote host: a container of the test's own network. Its certificate must name its
    // address, known once it runs: it waits for the certificate, then serves.
    let daemon = format!("{network}-host");
    let serve = format!(
        "while [ ! -f /tmp/certs/go ]; do sleep 0.1; done; exec jina daemon --host 0.0.0.0 \
         --port-expose 8000 --token {DAEMON_TOKEN} --ssl-certfile /tmp/certs/cert.pem \
         --ssl-keyfile /tmp/certs/key.pem"
    );
    let (ok, out) = sh(
        "docker",
        &[
            "run",
            "--detach",
            "--name",
            &daemon,
            "--network",
            &network,
            "--entrypoint",
            "sh",
            image,
            "-c",
            &serve,
        ],
    );
    assert!(ok, "{out}");
    made.containers.push(daemon.clone());
    let ip = address_of(&daemon);
    let certs = certificates_for(&[&ip]);
    let (ok, out) = sh("docker", &["exec", &daemon, "mkdir", "-p", "/tmp/certs"]);
    assert!(ok, "{out}");
    for (file, path) in [("cert.pem", &certs.cert), ("key.pem", &certs.key)] {
        let (ok, out) = sh(
            "docker",
            &[
                "cp",
                path.to_str().unwrap(),
                &format!("{daemon}:/tmp/certs/{file}"),
            ],
        );
        assert!(ok, "{out}");
    }
    // docker cp writes as root: readable by the image's user.
    let (ok, out) = sh(
        "docker",
        &[
            "exec",
            "--user",
            "0",
            &daemon,
            "sh",
            "-c",
            "chmod 644 /tmp/certs/*.pem && touch /tmp/certs/go",
        ],
    );
    assert!(ok, "{out}");
    let https = https_client(&certs.ca);
    let base = format!("https://{ip}:8000");
    let start = std::time::Instant::now();
    while https.get(&base).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            sh("docker", &["logs", &daemon]).1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = Files::new();
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n  - {{name: far, uses: Visit, host: {ip}, port_expose: 8000, tls: true}}\n"
        ),
    );
    let env = [
        ("SSL_CERT_FILE", certs.ca.as_os_str()),
        ("JINA_DAEMON_TOKEN", std::ffi::OsStr::new(DAEMON_TOKEN)),
        ("JINA_DAEMON_OWNER", std::ffi::OsStr::new(DAEMON_OWNER)),
    ];
    let mut flow = Proc::start_in(&["flow", "--uses", flow_yaml.to_str().unwrap()], None, &env);
    let ports = flow.wait_for_gateway(Duration::from_secs(60));
    let answers = post_grpc(ports["GRPC"], vec![request("/index", texts(&["hello"]))]).await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    assert_eq!(docs[0].matches[0].text.as_deref(), Some("far"));
    let (_, listed) = daemon_listing(&https, &base, Some(DAEMON_TOKEN)).await;
    assert_eq!(listed[0]["name"], "far", "{listed}");
    stop_with_ctrl_c(&mut flow);
    let start = std::time::Instant::now();
    loop {
        let (_, listed) = daemon_listing(&https, &base, Some(DAEMON_TOKEN)).await;
        if listed == serde_json::json!([]) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_spawn_that_fails_leaves_no_container_and_no_workspace() {
    let _turn = turn();
    let image = project_image();
    let port = free_port();
    let workspaces = tempfile::tempdir().unwrap();
    let (daemon, token) = start_daemon("127.0.0.2", port, workspaces.path(), None);
    let _cleanup = RemoveContainers(daemon.child.id());
    // An image whose entrypoint exits at once: the start fails, and is cleaned up.
    let answer = http_client()
        .post(format!("http://127.0.0.2:{port}/executors"))
        .bearer_auth(&token)
        .header("X-Jina-Owner", DAEMON_OWNER)
        .json(&serde_json::json!({
            "name": "fails",
            "uses": format!("docker://{image}"),
            "entrypoint": "false",
            "owner": DAEMON_OWNER,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("exited"), "{body}");
    assert_eq!(wait_no_containers(daemon.child.id()), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(workspaces.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_starts_a_docker_executor_for_a_remote_flow() {
    let _turn = turn();
    let image = project_image();
    // The "remote" host is another loopback address, where the daemon (on this machine,
    // with the Docker CLI) binds and publishes the container's port.
    let port = free_port();
    let workspaces = tempfile::tempdir().unwrap();
    let (daemon, token) = start_daemon("127.0.0.2", port, workspaces.path(), None);
    let base = format!("http://127.0.0.2:{port}");
    let files = Files::new();
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n  - {{name: boxed, uses: 'docker://{image}', entrypoint: jina executor --uses Visit, host: 127.0.0.2, port_expose: {port}, env: {{GREETING: hi}}}}\n"
        ),
    );
    let env = [
        ("JINA_DAEMON_TOKEN", std::ffi::OsStr::new(&token)),
        ("JINA_DAEMON_OWNER", std::ffi::OsStr::new(DAEMON_OWNER)),
    ];
    let mut flow = Proc::start_in(&["flow", "--uses", flow_yaml.to_str().unwrap()], None, &env);
    let _cleanup = RemoveContainers(daemon.child.id());
    let ports = flow.wait_for_gateway(Duration::from_secs(60));
    assert_eq!(daemon_executors(&base, Some(&token)).await.1, ["boxed"]);
    let containers = containers_of(daemon.child.id());
    assert_eq!(containers, [format!("jina-boxed-{}", daemon.child.id())]);
    let (_, greeting) = sh("docker", &["exec", &containers[0], "printenv", "GREETING"]);
    assert_eq!(greeting.trim(), "hi");
    let answers = post_grpc(ports["GRPC"], vec![request("/index", texts(&["hello"]))]).await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    assert_eq!(docs[0].matches[0].text.as_deref(), Some("boxed"));
    // Stopping the Flow stops the container over there.
    stop_with_ctrl_c(&mut flow);
    let start = std::time::Instant::now();
    while !daemon_executors(&base, Some(&token)).await.1.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(wait_no_containers(daemon.child.id()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_executor_serves_its_metrics_with_monitoring_on() {
    let _turn = turn();
    let image = project_image();
    let executors = format!(
        "  - {{name: boxed, uses: 'docker://{image}', entrypoint: jina executor --uses Visit}}\n"
    );
    let mut flow = start_flow_with("  monitoring: true\n", &executors);
    let _cleanup = RemoveContainers(flow.proc.child.id());
    let output = flow.proc.output();
    let url = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("📈 Prometheus (boxed):"))
        .unwrap_or_else(|| panic!("no metrics for boxed: {output}"))
        .trim()
        .to_string();
    post_grpc(
        flow.grpc,
        (0..5)
            .map(|_| request("/index", texts(&["hello"])))
            .collect(),
    )
    .await;
    let text = get_text(&url).await;
    let line = r#"jina_successful_requests_total{runtime_name="boxed",executor="Visit",executor_endpoint="/index"} 5"#;
    assert!(text.lines().any(|l| l == line), "{text}");
    stop_with_ctrl_c(&mut flow.proc);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_executors_spans_reach_a_collector_on_this_machine() {
    let _turn = turn();
    let image = project_image();
    // On every address: the container reaches it through the Docker host, not loopback.
    let (collector_port, collector) = collector::start_on("0.0.0.0").await;
    let executors = format!(
        "  - {{name: boxed, uses: 'docker://{image}', entrypoint: jina executor --uses Visit}}\n"
    );
    let with = format!(
        "  tracing: true\n  traces_exporter_host: 127.0.0.1\n  traces_exporter_port: {collector_port}\n"
    );
    let mut flow = start_flow_with(&with, &executors);
    let _cleanup = RemoveContainers(flow.proc.child.id());
    post_grpc(flow.grpc, vec![request("/index", texts(&["hello"]))]).await;
    stop_with_ctrl_c(&mut flow.proc);

    let start = std::time::Instant::now();
    let spans = loop {
        let spans = collector.0.lock().unwrap().clone();
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        if names.contains(&"boxed") || start.elapsed() > Duration::from_secs(15) {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |name: &str| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}\n{}", flow.proc.output()))
    };
    let (call, inside) = (find("call boxed"), find("boxed"));
    assert_eq!(inside.trace_id, call.trace_id);
    assert_eq!(
        inside.parent_span_id, call.span_id,
        "the container's span hangs under the gateway's call"
    );
}
