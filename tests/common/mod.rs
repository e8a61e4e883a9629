//! Test harness: start the real `jina` binary on free ports, read its logs, and make sure it
//! is gone when the test ends, pass or fail.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test: `jina`, or the worked example's `wordcount` (a jina binary with one
/// more executor) when this harness serves that crate's tests.
pub const JINA: &str = match (
    option_env!("CARGO_BIN_EXE_jina"),
    option_env!("CARGO_BIN_EXE_wordcount"),
) {
    (Some(jina), _) => jina,
    (None, Some(wordcount)) => wordcount,
    (None, None) => panic!("no binary to test"),
};

/// A free TCP port on loopback (bound, then released), never one this process was given
/// before: the kernel may hand the same port out twice in a row once it is released, and two
/// faces of one Flow must not get the same.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A running `jina` process. Killed (with its process group) on drop.
pub struct Proc {
    pub child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `jina <args>` in its own process group, collecting stdout and stderr.
    pub fn start(args: &[&str]) -> Proc {
        Self::start_in(args, None, &[])
    }

    /// Starts `jina <args>` in `dir` with extra environment variables.
    pub fn start_in(args: &[&str], dir: Option<&Path>, env: &[(&str, &std::ffi::OsStr)]) -> Proc {
        let command: Vec<&str> = std::iter::once(JINA).chain(args.iter().copied()).collect();
        Self::start_cmd(&command, dir, env)
    }

    /// Starts any program (`command[0]`) the same way: own process group, output collected.
    pub fn start_cmd(
        command: &[&str],
        dir: Option<&Path>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(command[0]);
        cmd.args(&command[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("start jina");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Proc { child, output }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `pattern`; panics with the output on timeout or exit.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.output().contains(pattern) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "jina exited ({status}) before '{pattern}':\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for '{pattern}':\n{}", self.output());
    }

    /// Waits until a Flow is ready and returns its gateway's ports by protocol (`GRPC`, ...),
    /// as its `Flow is ready to use!` block lists them.
    pub fn wait_for_gateway(&mut self, timeout: Duration) -> BTreeMap<String, u16> {
        // "ready in" is logged right after the block, so the whole block has been read.
        self.wait_for("Flow is ready to use!", timeout);
        self.wait_for("ready in", Duration::from_secs(5));
        let mut ports = BTreeMap::new();
        let mut protocol = None;
        for line in self.output().lines() {
            if let Some((_, p)) = line.split_once("Protocol:") {
                protocol = Some(p.trim().to_string());
            } else if let (Some((_, address)), Some(p)) =
                (line.split_once("Local access:"), protocol.take())
            {
                let port = address
                    .trim()
                    .rsplit_once(':')
                    .and_then(|(_, n)| n.parse().ok());
                ports.insert(p, port.expect("a port after Local access:"));
            }
        }
        ports
    }

    /// Waits until 127.0.0.1:`port` answers its gRPC health check with SERVING.
    pub fn wait_for_grpc(&mut self, port: u16, timeout: Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < timeout {
            let check = jina::grpc::check_serving("127.0.0.1", port, Duration::from_millis(500));
            if runtime.block_on(check).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before serving:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "not serving on {port} after {timeout:?}:\n{}",
            self.output()
        );
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `jina <args>` to completion: (exit code, stdout + stderr).
pub fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(JINA).args(args).output().expect("run jina");
    (out.status.code().unwrap_or(-1), text_of(&out))
}

/// A finished program's stdout and then its stderr, as text.
pub fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The body of `GET url`, as text.
pub async fn get_text(url: &str) -> String {
    let response = http_client().get(url).send().await.expect("GET");
    response.text().await.expect("a text body")
}

/// An HTTP client (reqwest needs the process's TLS provider chosen first).
pub fn http_client() -> reqwest::Client {
    jina::tls::install_provider();
    reqwest::Client::new()
}

/// A temporary folder with files written into it.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(folder) = p.parent() {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Starts `jina executor` with these extra args on a free port and waits until it is ready.
pub fn start_executor(extra: &[&str]) -> (Proc, u16) {
    start_executor_env(extra, &[])
}

/// [`start_executor`] with these environment variables.
pub fn start_executor_env(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (Proc, u16) {
    let port = free_port();
    let port_s = port.to_string();
    let mut args = vec![
        "executor",
        "--port-in",
        port_s.as_str(),
        "--host",
        "127.0.0.1",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::start_in(&args, None, env);
    p.wait_for("ready and listening", Duration::from_secs(20));
    (p, port)
}

/// A gRPC channel to 127.0.0.1:port.
pub async fn channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

// Not every test file uses each of these.
#[allow(unused_imports)]
pub use jina::testing::{alive, children as children_of, descendants as descendants_of};

/// Waits until none of `pids` is alive; returns those still alive after `timeout`.
pub fn wait_all_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || start.elapsed() > timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `jina flow` with its gateway ports: gRPC, HTTP, WebSocket.
pub struct FlowUnderTest {
    pub proc: Proc,
    pub grpc: u16,
    pub http: u16,
    pub ws: u16,
    pub files: Files,
}

/// Writes `executors_yaml` (the list under `executors:`) into a Flow YAML serving every
/// protocol, starts `jina flow`, and waits until it is ready. The Flow picks its own ports
/// (no port given: it binds port 0), so no other test can take one in between; they are read
/// from its `Flow is ready to use!` block.
pub fn start_flow(executors_yaml: &str) -> FlowUnderTest {
    start_flow_with("", executors_yaml)
}

/// [`start_flow`] with more lines under `with:` (each indented by two spaces).
pub fn start_flow_with(with_yaml: &str, executors_yaml: &str) -> FlowUnderTest {
    start_flow_env(with_yaml, executors_yaml, &[])
}

/// [`start_flow_with`], `jina flow` run with `env` set (e.g. `JINA_PYTHON` for a Python
/// executor).
pub fn start_flow_env(
    with_yaml: &str,
    executors_yaml: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> FlowUnderTest {
    let files = Files::new();
    let yaml = format!(
        "jtype: Flow\nwith:\n  protocol: [grpc, http, websocket]\n{with_yaml}executors:\n{executors_yaml}"
    );
    let path = files.write("flow.yml", &yaml);
    // In the temporary folder: relative workspaces land there, not in the repository.
    let mut proc = Proc::start_in(
        &["flow", "--uses", path.to_str().unwrap()],
        Some(files.dir.path()),
        env,
    );
    let ports = proc.wait_for_gateway(Duration::from_secs(90));
    let port = |protocol: &str| {
        *ports
            .get(protocol)
            .unwrap_or_else(|| panic!("no {protocol} port in: {}", proc.output()))
    };
    FlowUnderTest {
        grpc: port("GRPC"),
        http: port("HTTP"),
        ws: port("WEBSOCKET"),
        proc,
        files,
    }
}

/// Sends requests over JinaRPC.Call and collects the answers (in completion order).
pub async fn post_grpc(
    port: u16,
    requests: Vec<jina::proto::jina::DataRequestProto>,
) -> Vec<jina::proto::jina::DataRequestProto> {
    let mut client = jina::proto::jina::jina_rpc_client::JinaRpcClient::new(channel(port).await);
    let answers = client
        .call(tokio_stream::iter(requests))
        .await
        .expect("Call")
        .into_inner();
    use futures::TryStreamExt;
    answers.try_collect().await.expect("answers")
}

/// POSTs a JSON body to the gateway's REST face; returns the HTTP status and JSON answer.
pub async fn post_http(port: u16, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = http_client()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON answer"))
}

/// A field of `/proc/<pid>/status`, in kB.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Sends `frame` as a WebSocket text frame to the gateway on `port` and waits for the close
/// frame the gateway answers with: its code and reason.
pub async fn websocket_close_after(port: u16, frame: String) -> (u16, String) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    socket.send(Message::Text(frame.into())).await.unwrap();
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(close)))) => {
                return (u16::from(close.code), close.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => panic!("a close frame without a reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Sends JSON requests as WebSocket text frames and collects one answer per request.
pub async fn post_ws(port: u16, bodies: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .expect("ws connect");
    let n = bodies.len();
    for b in bodies {
        socket
            .send(Message::Text(b.to_string().into()))
            .await
            .expect("ws send");
    }
    // A close from the gateway is an answer too: `{"closed": {"code", "reason"}}`, the last.
    let mut answers = vec![];
    while answers.len() < n {
        match socket.next().await.expect("ws answer").expect("ws frame") {
            Message::Text(t) => answers.push(serde_json::from_str(&t).expect("JSON frame")),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or_default();
                answers.push(serde_json::json!({"closed": {"code": code, "reason": reason}}));
                break;
            }
            _ => {}
        }
    }
    answers
}

/// A CA, and a certificate for localhost and 127.0.0.1 that it signed, as PEM files.
pub struct Certificates {
    pub files: Files,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA and a server certificate for `localhost` and 127.0.0.1 (rcgen), written to a
/// temporary folder.
pub fn certificates() -> Certificates {
    certificates_for(&["localhost", "127.0.0.1"])
}

/// Makes a CA and a server certificate for these names and addresses.
pub fn certificates_for(names: &[&str]) -> Certificates {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jina-rs test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let files = Files::new();
    Certificates {
        ca: files.write("ca.pem", &ca.pem()),
        cert: files.write("cert.pem", &cert.pem()),
        key: files.write("key.pem", &key.serialize_pem()),
        files,
    }
}

impl Certificates {
    /// Starts a Flow whose gateway serves TLS with these certificates.
    pub fn start_flow(&self, executors_yaml: &str) -> FlowUnderTest {
        let with = format!(
            "  ssl_certfile: {}\n  ssl_keyfile: {}\n",
            self.cert.display(),
            self.key.display()
        );
        start_flow_with(&with, executors_yaml)
    }
}

/// Where skipped tests are listed, one a line, for tests/run to print after the run: the
/// harness counts a test that returned early as passed, so the list says which were not run.
pub const SKIPPED_LIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/skipped-tests.txt");

/// Notes the running test as skipped, and why, in [`SKIPPED_LIST`].
pub fn record_skip(why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if let Ok(mut list) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIPPED_LIST)
    {
        let _ = writeln!(list, "{test}: {why}");
    }
}

/// The peer's Python, or None when CI could not install it (it says why in JINA_PEER_SKIP).
pub fn peer_python() -> Option<PathBuf> {
    let python = std::env::var_os("JINA_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/peer-venv/bin/python"
            ))
        });
    if python.exists() {
        return Some(python);
    }
    match std::env::var("JINA_PEER_SKIP") {
        Ok(why) => {
            eprintln!("SKIPPED: the Python Jina peer is not installed: {why}");
            record_skip(&why);
            None
        }
        Err(_) => panic!(
            "the Python Jina peer is not installed at {}: run tests/peer/install.sh",
            python.display()
        ),
    }
}

/// The all-MiniLM-L6-v2 model folder in target/models, installed on first use by
/// tests/transformer/install-model.sh (tests/run installs it first; this covers a bare
/// `cargo test`).
pub fn minilm_model() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/models/all-MiniLM-L6-v2");
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("model.safetensors").is_file() {
        let status = Command::new(root.join("tests/transformer/install-model.sh"))
            .arg(&dir)
            .status()
            .expect("run tests/transformer/install-model.sh");
        assert!(
            status.success(),
            "tests/transformer/install-model.sh failed"
        );
    }
    dir
}

/// Headless Chromium on `url` with these extra flags (`--dump-dom`, `--screenshot=F`), given
/// five seconds of page time for its scripts.
pub fn chromium(url: &str, extra: &[&str]) -> std::process::Output {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium is needed for this test: apt-get install chromium (tests/run installs it)");
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
            "--window-size=1000,800",
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

/// A request to `endpoint` carrying `docs`: the tests' one request builder.
pub fn request(endpoint: &str, docs: Vec<jina::Document>) -> jina::proto::jina::DataRequestProto {
    jina::request::new_request(
        endpoint,
        &jina::DocumentArray::from(docs),
        &Default::default(),
    )
}

/// A document of each text.
pub fn texts(texts: &[&str]) -> Vec<jina::Document> {
    texts
        .iter()
        .map(|t| jina::Document::from_text(*t))
        .collect()
}

/// A document with this text and this id.
pub fn doc_with_id(text: &str, id: &str) -> jina::Document {
    let mut doc = jina::Document::from_text(text);
    doc.id = id.into();
    doc
}

/// Polls `condition` until it holds or `timeout` passes, and says whether it held: a test
/// waits for what it waits for, never a guessed time.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A token for the daemons the tests start.
pub const DAEMON_TOKEN: &str = "test-token-0123456789abcdef";
/// The owner secret of the Flows the tests start against a daemon (`JINA_DAEMON_OWNER`): what
/// the tests list the daemon's executors with.
pub const DAEMON_OWNER: &str = "test-owner-0123456789abcdef";

/// Starts `jina daemon` on `host:port` with its workspaces in `root` and waits until it serves;
/// with no `token` it makes one, read back from what it prints.
pub fn start_daemon(host: &str, port: u16, root: &Path, token: Option<&str>) -> (Proc, String) {
    let port = port.to_string();
    let mut args = vec![
        "daemon",
        "--host",
        host,
        "--port-expose",
        &port,
        "--workspace",
        root.to_str().unwrap(),
    ];
    if let Some(t) = token {
        args.extend(["--token", t]);
    }
    let mut daemon = Proc::start(&args);
    daemon.wait_for("ready and listening", Duration::from_secs(30));
    let token = match token {
        Some(t) => t.to_string(),
        None => daemon
            .output()
            .lines()
            .find_map(|l| {
                l.split_once("): ")
                    .filter(|_| l.starts_with("daemon token"))
            })
            .map(|(_, t)| t.trim().to_string())
            .expect("the daemon prints the token it made"),
    };
    (daemon, token)
}

/// An HTTPS client that trusts the CA in `ca` (a PEM file) alone.
pub fn https_client(ca: &Path) -> reqwest::Client {
    jina::tls::install_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

/// The daemon at `base` lists its executors to `client`, with `token` as [`DAEMON_OWNER`]:
/// (HTTP status, the list).
pub async fn daemon_listing(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = client
        .get(format!("{base}/executors"))
        .header("X-Jina-Owner", DAEMON_OWNER);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("GET /executors");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The daemon's list of executors, asked with `token` as [`DAEMON_OWNER`]: (HTTP status, names).
pub async fn daemon_executors(base: &str, token: Option<&str>) -> (u16, Vec<String>) {
    let (status, body) = daemon_listing(&http_client(), base, token).await;
    let names = body
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, names)
}

/// Waits until the daemon lists no executor of [`DAEMON_OWNER`], up to `within`.
pub async fn wait_daemon_empty(base: &str, token: &str, within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let (_, names) = daemon_executors(base, Some(token)).await;
        if names.is_empty() || start.elapsed() > within {
            return names;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs any program to completion, and panics with its output unless it succeeds; returns
/// its output.
#[allow(dead_code)]
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        text_of(&out)
    );
    text_of(&out)
}

/// The wheel [`host_python`] built and installed, if it built one.
#[allow(dead_code)]
pub fn host_wheel() -> Option<PathBuf> {
    let wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/host-wheel");
    std::fs::read_dir(wheels)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
}

/// A venv with jina-rs's wheel installed (built from this tree with `deploy/build-wheel
/// --profile dev`) and no Python Jina: the Python of a user who ran `pip install jina-rs`.
/// Built once per test run; test binaries that run at the same time wait on a file lock.
/// `JINA_HOST_PYTHON` names one made already (while working on the host).
#[allow(dead_code)]
pub fn host_python() -> PathBuf {
    const ROOT: &str = env!("CARGO_MANIFEST_DIR");
    if let Some(python) = std::env::var_os("JINA_HOST_PYTHON") {
        return PathBuf::from(python);
    }
    static DONE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let target = Path::new(ROOT).join("target");
        std::fs::create_dir_all(&target).unwrap();
        let lock = std::fs::File::create(target.join("host-venv.lock")).unwrap();
        // SAFETY: flock on a file this function owns; released when `lock` is dropped.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
            0
        );
        let run = |program: &Path, args: &[&str]| {
            run_ok(program, args);
        };
        let wheels = target.join("host-wheel");
        let _ = std::fs::remove_dir_all(&wheels);
        run(
            &Path::new(ROOT).join("deploy/build-wheel"),
            &[wheels.to_str().unwrap(), "--profile", "dev"],
        );
        let wheel = host_wheel().expect("a wheel");
        let venv = target.join("host-venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            run(
                Path::new("python3"),
                &["-m", "venv", venv.to_str().unwrap()],
            );
        }
        // Its dependencies from PyPI the first time; this tree's wheel every time.
        run(
            &python,
            &["-m", "pip", "install", "--quiet", wheel.to_str().unwrap()],
        );
        run(
            &python,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--force-reinstall",
                "--no-deps",
                wheel.to_str().unwrap(),
            ],
        );
        python
    })
    .clone()
}
