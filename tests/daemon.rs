//! `jina daemon` under attack, through the real binary on loopback: each attack of [D] is
//! tried, refused with a clear error, and leaves nothing behind (no file written outside the
//! daemon's root, no process left), and the daemon goes on serving.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A daemon on a loopback port with its own root, and what to call it with.
struct Daemon {
    proc: Proc,
    base: String,
    token: String,
    root: tempfile::TempDir,
}

fn daemon(token: Option<&str>) -> Daemon {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let (proc, token) = start_daemon("127.0.0.1", port, &root.path().join("ws"), token);
    Daemon {
        proc,
        base: format!("http://127.0.0.1:{port}"),
        token,
        root,
    }
}

impl Daemon {
    /// A request as the owner `owner`, with the daemon's token.
    fn call(&self, method: reqwest::Method, path: &str, owner: &str) -> reqwest::RequestBuilder {
        http_client()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("X-Jina-Owner", owner)
    }

    /// POSTs a spawn request as [`DAEMON_OWNER`]: (status, answer).
    async fn spawn(&self, request: Value) -> (u16, Value) {
        let mut request = request;
        if request.get("owner").is_none() {
            request["owner"] = DAEMON_OWNER.into();
        }
        let response = self
            .call(reqwest::Method::POST, "/executors", DAEMON_OWNER)
            .json(&request)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Whether it still answers, with its token.
    async fn serves(&self) -> bool {
        daemon_executors(&self.base, Some(&self.token)).await.0 == 200
    }

    /// The workspaces under its root.
    fn workspaces(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path().join("ws"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts a refusal: `status`, and an error that says `says`.
    async fn refused(&self, request: Value, status: u16, says: &str) -> String {
        let (got, answer) = self.spawn(request.clone()).await;
        let error = answer["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(got, status, "{request}: {answer}");
        assert!(error.contains(says), "{request}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
        error
    }
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_reference_is_read_by_its_grammar_so_no_flag_reaches_docker() {
    let d = daemon(Some(DAEMON_TOKEN));
    let marker = d.root.path().join("pwned");
    for image in [
        "--volume=/:/host",
        "-v",
        "jina-rs:latest --privileged",
        "x;id",
    ] {
        d.refused(
            json!({
                "name": "x",
                "uses": format!("docker://{image}"),
                "entrypoint": format!("sh -c id>{}", marker.display()),
            }),
            422,
            "uses:",
        )
        .await;
    }
    assert!(!marker.exists());
    assert_eq!(d.workspaces(), Vec::<String>::new());
    assert!(d.serves().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_code_of_the_callers_runs_outside_an_executor() {
    let d = daemon(Some(DAEMON_TOKEN));
    let marker = d.root.path().join("pwned");
    // Loaders and runtimes steered by the environment.
    for (key, value) in [
        ("LD_PRELOAD", "./evil.so"),
        ("JINA_PYTHON", "/bin/sh"),
        ("PYTHONPATH", "."),
        ("PATH", "."),
    ] {
        d.refused(
            json!({"name": "x", "uses": "Visit", "env": {key: value}}),
            422,
            &format!("env: '{key}'"),
        )
        .await;
    }
    // A Python executor with its own `jina` package in the workspace, first on the import path.
    d.refused(
        json!({
            "name": "x",
            "uses": "exec.yml",
            "files": {
                "exec.yml": b64("jtype: Evil\nmetas:\n  py_modules: [evil.py]\n"),
                "evil.py": b64("import os\nos.system('id > pwned')\n"),
                "jina/__main__.py": b64(&format!("open('{}', 'w').write('root')\n", marker.display())),
            },
        }),
        422,
        "a Python executor is not started by a daemon",
    )
    .await;
    assert!(!marker.exists());
    assert_eq!(
        d.workspaces(),
        Vec::<String>::new(),
        "a refused spawn leaves nothing"
    );
    assert!(d.serves().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_without_a_token_makes_one_and_lets_no_one_in_without_it() {
    let d = daemon(None);
    assert_eq!(d.token.len(), 64, "{}", d.proc.output());
    let file = d.root.path().join("ws.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), d.token);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(daemon_executors(&d.base, None).await.0, 401);
    assert_eq!(daemon_executors(&d.base, Some(&d.token)).await.0, 200);
    // Guessing: after ten wrong tokens (the missing one above was the first), this address is
    // not heard for a while, even with the right one.
    for _ in 0..9 {
        assert_eq!(
            daemon_executors(&d.base, Some("guess-0123456789")).await.0,
            401
        );
    }
    assert_eq!(
        daemon_executors(&d.base, Some("guess-0123456789")).await.0,
        429
    );
    assert_eq!(daemon_executors(&d.base, Some(&d.token)).await.0, 429);
    // `GET /` is open: it says only that this is a daemon.
    let up = http_client().get(&d.base).send().await.unwrap();
    assert_eq!(up.status().as_u16(), 200);
}

#[test]
fn a_short_token_is_refused() {
    let port = free_port().to_string();
    let (code, out) = run(&["daemon", "--token", "short", "--port-expose", &port]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--token: 16 characters or more"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_number_wedges_it() {
    let d = daemon(Some(DAEMON_TOKEN));
    d.refused(
        json!({"name": "x", "uses": "Visit", "lease_seconds": u64::MAX}),
        422,
        "lease_seconds: at most 86400",
    )
    .await;
    d.refused(
        json!({"name": "x", "uses": "Visit", "lease_seconds": 1e12}),
        422,
        "not a spawn request",
    )
    .await;
    d.refused(
        json!({"name": "x", "uses": "Visit", "port": 70000}),
        422,
        "not a spawn request",
    )
    .await;
    // Still serving, and still starting executors.
    let (status, spawned) = d
        .spawn(json!({"name": "ok", "uses": "Visit", "lease_seconds": 60}))
        .await;
    assert_eq!(status, 200, "{spawned}");
    assert_eq!(daemon_executors(&d.base, Some(&d.token)).await.1, ["ok"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_host_file_is_read_or_shown() {
    let d = daemon(Some(DAEMON_TOKEN));
    let secret = d.root.path().join("secret.txt");
    std::fs::write(&secret, "the-secret-line: 42\n").unwrap();
    for uses in [
        secret.display().to_string(),
        "/etc/shadow".into(),
        "/etc/passwd".into(),
    ] {
        let error = d
            .refused(
                json!({"name": "x", "uses": uses}),
                422,
                "reads no file of its host",
            )
            .await;
        assert!(!error.contains("the-secret-line"), "{error}");
        assert!(!error.contains("root:"), "{error}");
    }
    assert!(d.serves().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_flow_sees_only_its_own_executors_and_workspaces_stay_under_the_root() {
    let d = daemon(Some(DAEMON_TOKEN));
    let (status, spawned) = d.spawn(json!({"name": "mine", "uses": "Visit"})).await;
    assert_eq!(status, 200, "{spawned}");
    let id = spawned["id"].as_str().unwrap();
    let other = "another-flow-0123456789";
    let theirs = d
        .call(reqwest::Method::GET, "/executors", other)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.json::<Value>().await.unwrap(), json!([]));
    for (method, path) in [
        (reqwest::Method::PUT, format!("/executors/{id}/lease")),
        (reqwest::Method::GET, format!("/executors/{id}/logs")),
        (reqwest::Method::DELETE, format!("/executors/{id}")),
    ] {
        let answer = d.call(method.clone(), &path, other).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{method} {path}");
    }
    assert_eq!(daemon_executors(&d.base, Some(&d.token)).await.1, ["mine"]);
    // Its workspace is the daemon's choice, under the root.
    let workspace = spawned["workspace"].as_str().unwrap();
    assert!(
        Path::new(workspace).starts_with(d.root.path()),
        "{workspace}"
    );
    let outside = d.root.path().join("elsewhere");
    d.refused(
        json!({"name": "x", "uses": "Visit", "uses_metas": {"workspace": outside}}),
        422,
        "uses_metas.workspace",
    )
    .await;
    // Its owner stops it, and its workspace goes with it.
    let stopped = d
        .call(
            reqwest::Method::DELETE,
            &format!("/executors/{id}"),
            DAEMON_OWNER,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status().as_u16(), 204);
    assert!(!Path::new(workspace).exists());
    assert!(!outside.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn executors_die_with_the_daemon_and_a_new_one_clears_what_was_left() {
    let mut d = daemon(Some(DAEMON_TOKEN));
    let (status, spawned) = d.spawn(json!({"name": "orphan", "uses": "Visit"})).await;
    assert_eq!(status, 200, "{spawned}");
    let pid = spawned["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    unsafe { libc::kill(d.proc.child.id() as i32, libc::SIGKILL) };
    let _ = d.proc.wait_exit(Duration::from_secs(5));
    assert_eq!(
        wait_all_gone(&[pid], Duration::from_secs(5)),
        Vec::<u32>::new()
    );
    // Its workspace is still there; the next daemon on the same root clears it.
    assert_eq!(d.workspaces().len(), 1);
    let port = free_port();
    let (_next, _) = start_daemon(
        "127.0.0.1",
        port,
        &d.root.path().join("ws"),
        Some(DAEMON_TOKEN),
    );
    assert_eq!(d.workspaces(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_caller_sends_is_bounded() {
    let d = daemon(Some(DAEMON_TOKEN));
    // Names that would forge or garble the daemon's log lines.
    for name in ["a\nFlow@1[I]: forged", "\u{1b}[31mred", ""] {
        d.refused(json!({"name": name, "uses": "Visit"}), 422, "name:")
            .await;
    }
    // A body of many tiny keys costs far more than its bytes: refused before it is read.
    let many: serde_json::Map<String, Value> = (0..150_000)
        .map(|i| (format!("k{i}"), Value::from(1)))
        .collect();
    d.refused(
        json!({"name": "x", "uses": "Visit", "uses_with": many}),
        413,
        "at most 100000 keys and values",
    )
    .await;
    // Long overrides go through files, not the command line.
    let long: serde_json::Map<String, Value> = (0..2000)
        .map(|i| (format!("key{i}"), Value::from("v".repeat(64))))
        .collect();
    let (status, spawned) = d
        .spawn(json!({"name": "long", "uses": "Visit", "uses_metas": long}))
        .await;
    assert_eq!(status, 200, "{spawned}");
    // A spawn that fails leaves no workspace.
    let before = d.workspaces().len();
    d.refused(
        json!({"name": "broken", "uses": "jtype: Visit\nwith: {no_such_argument: 1}\n"}),
        422,
        "exited",
    )
    .await;
    assert_eq!(d.workspaces().len(), before);
    assert!(d.serves().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_reaches_a_daemon_over_tls_with_its_token() {
    // The "remote" host is another loopback address; the certificate names it.
    let certs = certificates_for(&["127.0.0.2"]);
    let root = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut daemon = Proc::start(&[
        "daemon",
        "--host",
        "127.0.0.2",
        "--port-expose",
        &port,
        "--workspace",
        root.path().join("ws").to_str().unwrap(),
        "--token",
        DAEMON_TOKEN,
        "--ssl-certfile",
        certs.cert.to_str().unwrap(),
        "--ssl-keyfile",
        certs.key.to_str().unwrap(),
    ]);
    daemon.wait_for("ready and listening", Duration::from_secs(30));
    assert!(
        daemon.output().contains("https://127.0.0.2"),
        "{}",
        daemon.output()
    );
    // The token never crosses in the clear: plain HTTP gets no answer of the API.
    let plain = http_client()
        .get(format!("http://127.0.0.2:{port}/executors"))
        .bearer_auth(DAEMON_TOKEN)
        .send()
        .await;
    assert!(plain.map_or(true, |r| r.status().as_u16() != 200));
    let files = Files::new();
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{protocol: grpc}}\nexecutors:\n  - {{name: far, uses: Visit, host: 127.0.0.2, port_expose: {port}, tls: true}}\n"
        ),
    );
    let env = [
        ("SSL_CERT_FILE", certs.ca.as_os_str()),
        ("JINA_DAEMON_TOKEN", DAEMON_TOKEN.as_ref()),
        ("JINA_DAEMON_OWNER", DAEMON_OWNER.as_ref()),
    ];
    let mut flow = Proc::start_in(&["flow", "--uses", flow_yaml.to_str().unwrap()], None, &env);
    let ports = flow.wait_for_gateway(Duration::from_secs(60));
    let answers = post_grpc(ports["GRPC"], vec![request("/index", texts(&["hello"]))]).await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    assert_eq!(docs[0].matches[0].text.as_deref(), Some("far"));
    // Over HTTPS, the daemon lists it to its Flow's owner.
    let https = https_client(&certs.ca);
    let base = format!("https://127.0.0.2:{port}");
    let (_, listed) = daemon_listing(&https, &base, Some(DAEMON_TOKEN)).await;
    assert_eq!(listed[0]["name"], "far", "{listed}");
    // Ctrl-C: the Flow stops it over there.
    flow.signal(libc::SIGINT);
    assert!(
        flow.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        flow.output()
    );
    let pid = listed[0]["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        wait_all_gone(&[pid], Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_and_floods_of_connections_do_not_hold_it() {
    use std::io::{Read, Write};
    let d = daemon(Some(DAEMON_TOKEN));
    let address = d.base.trim_start_matches("http://").to_string();
    let pid = d.proc.child.id();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = fds();
    // A flood of connections that send half a request, then nothing: no token needed.
    let mut flood: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(&address).ok())
        .collect();
    for c in &mut flood {
        let _ = c.write_all(b"GET /executors HTTP/1.1\r\nHost: x\r\n");
    }
    std::thread::sleep(Duration::from_millis(500));
    // Its descriptors stay bounded: connections past its limit are closed at once.
    assert!(fds() < before + 256 + 20, "{} descriptors", fds());
    // Each is closed once its headers are late (10 s), without an answer of the API.
    let started = std::time::Instant::now();
    for c in &mut flood {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(flood);
    assert!(d.serves().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_64_executors_run_at_once() {
    let d = daemon(Some(DAEMON_TOKEN));
    let spawns = (0..64).map(|i| d.spawn(json!({"name": format!("e{i}"), "uses": "Visit"})));
    for (status, answer) in futures::future::join_all(spawns).await {
        assert_eq!(status, 200, "{answer}");
    }
    d.refused(
        json!({"name": "one-more", "uses": "Visit"}),
        429,
        "64 executors already",
    )
    .await;
    assert_eq!(daemon_executors(&d.base, Some(&d.token)).await.1.len(), 64);
}
