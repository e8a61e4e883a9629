//! `jina flow --reload`: the Flow YAML and a Python executor's file change five ways while our
//! client streams requests through the Flow; none fails, none is lost, each change is seen in
//! the answers right after the Flow says it reloaded, and the executors a change did not touch
//! keep their processes.

mod common;

use common::*;
use futures::StreamExt;
use jina::client::{Client, Inputs, PostOptions};
use jina::flow::Protocol;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Python executor as Jina users write them: tags each document with its `label` (from
/// `uses_with`), the file's `version` and its process id.
fn tagger(version: u32) -> String {
    format!(
        r#"import os
from jina import Executor, requests


class Tagger(Executor):
    def __init__(self, label='none', **kwargs):
        super().__init__(**kwargs)
        self.label = label

    @requests
    def tag(self, docs, **kwargs):
        for d in docs:
            d.tags['label'] = self.label
            d.tags['version'] = {version}
            d.tags['tagger_pid'] = os.getpid()
"#
    )
}

/// The Flow: the tagger, then `visit` (each copy adds a match naming itself, with its pid),
/// then what `more` adds.
fn flow_yaml(label: &str, replicas: u32, more: &str) -> String {
    format!(
        "jtype: Flow\nwith:\n  protocol: grpc\nexecutors:\n\
         \x20 - name: tag\n    uses: Tagger\n    py_modules: [tagger.py]\n    python_runtime: jina-rs\n    uses_with:\n      label: {label}\n\
         \x20 - name: visit\n    uses: Visit\n    replicas: {replicas}\n{more}"
    )
}

const EXTRA: &str = "  - name: extra\n    uses: Visit\n";

/// `jina flow --uses flow.yml --reload` in `files`' folder, with these environment variables.
fn reloading(files: &Files, env: &[(&str, &std::ffi::OsStr)]) -> Proc {
    let path = files.dir.path().join("flow.yml");
    Proc::start_in(
        &["flow", "--uses", path.to_str().unwrap(), "--reload"],
        Some(files.dir.path()),
        env,
    )
}

/// What one answer showed.
#[derive(Clone, Debug)]
struct Seen {
    label: String,
    version: i64,
    tagger_pid: i64,
    /// The copies that added a match, by their text (`visit/rep-0`, `extra`), with their pid.
    visits: Vec<(String, i64)>,
}

fn seen(doc: &jina::Document) -> Seen {
    let tag = |k: &str| doc.tags.get(k).cloned().unwrap_or(Value::Null);
    Seen {
        label: tag("label").as_str().unwrap_or("").to_string(),
        version: tag("version").as_f64().unwrap_or(-1.0) as i64,
        tagger_pid: tag("tagger_pid").as_f64().unwrap_or(-1.0) as i64,
        visits: doc
            .matches
            .iter()
            .map(|m| {
                let pid = m.tags.get("pid").and_then(Value::as_f64).unwrap_or(-1.0) as i64;
                (m.text.clone().unwrap_or_default(), pid)
            })
            .collect(),
    }
}

/// Our client streaming one document per request until told to stop: every answer, in the
/// order it came, and every failure.
struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answers: Arc<Mutex<Vec<(u64, Seen)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Stream {
    /// Streams to endpoint `on`.
    fn start(port: u16, on: &'static str) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answers = Arc::new(Mutex::new(vec![]));
        let failures = Arc::new(Mutex::new(vec![]));
        let (s, n, a, f) = (
            stop.clone(),
            sent.clone(),
            answers.clone(),
            failures.clone(),
        );
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
                    .await
                    .expect("connect");
                let docs = std::iter::from_fn(move || {
                    if s.load(Ordering::SeqCst) {
                        return None;
                    }
                    // About 300 requests a second: a steady stream, not a flood.
                    std::thread::sleep(Duration::from_millis(3));
                    let i = n.fetch_add(1, Ordering::SeqCst);
                    Some(doc_with_id("x", &i.to_string()))
                });
                let options = PostOptions {
                    request_size: 1,
                    prefetch: 8,
                    ..Default::default()
                };
                let mut answers = Client::post_stream(&client, on, Inputs::iter(docs), &options);
                while let Some(answer) = answers.next().await {
                    let problem = match answer {
                        Ok(r) if jina::request::is_error(&r.proto) => {
                            Some(format!("error answer: {:?}", r.proto.header))
                        }
                        Ok(r) => match r.docs() {
                            Ok(docs) if docs.len() == 1 => {
                                let id = docs[0].id.parse::<u64>().expect("our id");
                                a.lock().unwrap().push((id, seen(&docs[0])));
                                None
                            }
                            other => Some(format!("answer without its document: {other:?}")),
                        },
                        Err(e) => Some(format!("client error: {e}")),
                    };
                    if let Some(p) = problem {
                        f.lock().unwrap().push(p);
                    }
                }
            });
        });
        Stream {
            stop,
            sent,
            answers,
            failures,
            thread,
        }
    }

    fn answered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.answers
            .lock()
            .unwrap()
            .last()
            .expect("an answer")
            .1
            .clone()
    }

    /// The answers to requests sent after this moment.
    fn after(&self, sent_before: u64) -> Vec<Seen> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| *id >= sent_before)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

impl Stream {
    /// Stops the stream and checks its record: no failure, and exactly one answer to every
    /// request sent. Returns how many were sent.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "{failures:?}");
        let mut ids: Vec<u64> = self
            .answers
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        let sent = self.sent.load(Ordering::SeqCst);
        assert_eq!(
            ids,
            (0..sent).collect::<Vec<_>>(),
            "answers missing or repeated"
        );
        sent
    }
}

/// Applies one change, waits for the Flow to say it reloaded, and returns the answers to 60
/// requests sent after that.
fn change(
    flow: &mut Proc,
    stream: &Stream,
    reloads: &mut usize,
    what: &str,
    apply: impl FnOnce(),
) -> Vec<Seen> {
    apply();
    *reloads += 1;
    let expected = *reloads;
    let after = answers_once_said(flow, stream, what, 60, |log| {
        log.matches("reloaded ").count() >= expected
    });
    let failures = stream.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{what}: {failures:?}\n{}",
        flow.output()
    );
    after
}

/// Waits until the Flow's log satisfies `said`, then returns the answers to `n` requests sent
/// after that.
fn answers_once_said(
    flow: &Proc,
    stream: &Stream,
    what: &str,
    n: usize,
    said: impl Fn(&str) -> bool,
) -> Vec<Seen> {
    let logged = eventually(Duration::from_secs(120), || said(&flow.output()));
    assert!(logged, "{what}: not in the Flow's log:\n{}", flow.output());
    let from = stream.sent.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(30), || stream.after(from).len() >= n),
        "{what}: requests stopped being answered ({} answered in all):\n{}",
        stream.answered(),
        flow.output()
    );
    stream.after(from)
}

fn visit_pids(answers: &[Seen], copy: &str) -> std::collections::BTreeSet<i64> {
    answers
        .iter()
        .flat_map(|s| s.visits.iter())
        .filter(|(text, _)| text.starts_with(copy))
        .map(|(_, pid)| *pid)
        .collect()
}

#[test]
fn a_flow_changed_five_ways_while_requests_stream_drops_none() {
    let files = Files::new();
    files.write("tagger.py", &tagger(1));
    files.write("flow.yml", &flow_yaml("one", 1, ""));
    let python = host_python();
    // Its own runtime folder: `jina flow scale` finds this Flow and no other test's.
    let runtime = files.dir.path().join("run");
    let mut flow = reloading(
        &files,
        &[
            ("JINA_PYTHON", python.as_os_str()),
            ("JINA_RUNTIME_DIR", runtime.as_os_str()),
        ],
    );
    let ports = flow.wait_for_gateway(Duration::from_secs(120));
    let stream = Stream::start(ports["GRPC"], "/");
    assert!(
        eventually(Duration::from_secs(30), || stream.answered() >= 50),
        "no answers: {}",
        flow.output()
    );
    let first = stream.last();
    assert_eq!((first.label.as_str(), first.version), ("one", 1));
    let tagger_pid = first.tagger_pid;
    let visit_pid = first.visits[0].1;
    let mut reloads = 0;

    // 1. The tagger's `uses_with`: new tagger copy, same `visit` copy.
    let after = change(&mut flow, &stream, &mut reloads, "uses_with", || {
        files.write("flow.yml", &flow_yaml("two", 1, ""));
    });
    assert!(after.iter().all(|s| s.label == "two"), "{after:?}");
    assert!(after.iter().all(|s| s.tagger_pid != tagger_pid));
    assert_eq!(visit_pids(&after, "visit"), [visit_pid].into());
    let tagger_pid = after[0].tagger_pid;

    // 2. `visit` 1 → 2 replicas: a second copy starts and both answer; the first copy (it
    // keeps the name it started with) and the tagger keep their processes.
    let after = change(&mut flow, &stream, &mut reloads, "replicas 1 → 2", || {
        files.write("flow.yml", &flow_yaml("two", 2, ""));
    });
    let copies: std::collections::BTreeSet<String> = after
        .iter()
        .flat_map(|s| s.visits.iter().map(|(t, _)| t.clone()))
        .collect();
    assert_eq!(
        copies,
        ["visit".to_string(), "visit/rep-1".into()].into(),
        "{after:?}"
    );
    assert_eq!(visit_pids(&after, "visit").len(), 2, "{after:?}");
    assert!(visit_pids(&after, "visit").contains(&visit_pid));
    assert!(flow.output().contains("scaled: visit 1 → 2 replicas"));
    assert!(after.iter().all(|s| s.tagger_pid == tagger_pid));

    // 3. Back to 1 replica: the second copy drains and stops; the first serves on.
    let after = change(&mut flow, &stream, &mut reloads, "replicas 2 → 1", || {
        files.write("flow.yml", &flow_yaml("two", 1, ""));
    });
    assert_eq!(visit_pids(&after, "visit"), [visit_pid].into(), "{after:?}");
    assert!(after.iter().all(|s| s.tagger_pid == tagger_pid));

    // 4. One more executor in the chain.
    let after = change(&mut flow, &stream, &mut reloads, "executor added", || {
        files.write("flow.yml", &flow_yaml("two", 1, EXTRA));
    });
    assert!(
        after
            .iter()
            .all(|s| s.visits.len() == 2 && s.visits[1].0 == "extra"),
        "{after:?}"
    );
    assert_eq!(visit_pids(&after, "visit"), [visit_pid].into());
    assert!(after.iter().all(|s| s.tagger_pid == tagger_pid));

    // 5. And removed again.
    let after = change(&mut flow, &stream, &mut reloads, "executor removed", || {
        files.write("flow.yml", &flow_yaml("two", 1, ""));
    });
    assert!(after.iter().all(|s| s.visits.len() == 1), "{after:?}");
    assert_eq!(visit_pids(&after, "visit"), [visit_pid].into());
    assert!(after.iter().all(|s| s.tagger_pid == tagger_pid));

    // 6. The Python executor's file is edited.
    let after = change(
        &mut flow,
        &stream,
        &mut reloads,
        "Python file edited",
        || {
            files.write("tagger.py", &tagger(2));
        },
    );
    assert!(
        after.iter().all(|s| s.version == 2 && s.label == "two"),
        "{after:?}"
    );
    assert!(after.iter().all(|s| s.tagger_pid != tagger_pid));
    assert_eq!(visit_pids(&after, "visit"), [visit_pid].into());

    // A broken edit keeps the last good Flow serving and says what is wrong, once.
    files.write(
        "flow.yml",
        "jtype: Flow\nexecutors:\n  - name: tag\n    uses: [not, a, uses]\n",
    );
    let after = answers_once_said(&flow, &stream, "broken edit", 30, |log| {
        log.contains("the Flow keeps running as it was")
    });
    assert!(after.iter().all(|s| s.version == 2));

    // `jina flow scale`, from another process, while the requests stream: 3 copies, then 1,
    // the first copy serving throughout.
    let scale = |executor: &str, replicas: &str| {
        let out = std::process::Command::new(JINA)
            .args(["flow", "scale", executor, "--replicas", replicas])
            .env("JINA_RUNTIME_DIR", &runtime)
            .output()
            .expect("jina flow scale");
        (out.status.success(), text_of(&out))
    };
    let (ok, said) = scale("visit", "3");
    assert!(ok, "{said}\n{}", flow.output());
    assert!(said.contains("scaled: visit 1 → 3 replicas"), "{said}");
    let after = answers_once_said(&flow, &stream, "scale to 3", 60, |_| true);
    let three = visit_pids(&after, "visit");
    assert_eq!(three.len(), 3, "{after:?}");
    assert!(three.contains(&visit_pid));

    // `visit` changed (its env) while it has 3 replicas (the scale holds: the YAML still says
    // 1): replaced replica by replica, every copy new.
    let after = change(&mut flow, &stream, &mut reloads, "rolling", || {
        files.write(
            "flow.yml",
            &flow_yaml("two", 1, "    env:\n      ROLL: '1'\n"),
        );
    });
    let renewed = visit_pids(&after, "visit");
    assert_eq!(renewed.len(), 3, "{after:?}");
    assert!(renewed.is_disjoint(&three), "{renewed:?} {three:?}");
    let log = flow.output();
    assert!(
        log.contains("visit: replica 1 replaced") && log.contains("visit: replica 2 replaced"),
        "{log}"
    );
    let (ok, said) = scale("visit", "1");
    assert!(ok, "{said}");
    let after = answers_once_said(&flow, &stream, "scale to 1", 30, |_| true);
    assert_eq!(visit_pids(&after, "visit").len(), 1, "{after:?}");
    assert!(visit_pids(&after, "visit").is_subset(&renewed));
    // A scale the Flow cannot make says why and exits non-zero; nothing changes.
    let (ok, said) = scale("nosuch", "2");
    assert!(!ok && said.contains("no executor 'nosuch'"), "{said}");
    let (ok, said) = scale("visit", "0");
    assert!(!ok && said.contains("at least 1"), "{said}");
    control_socket_refuses_what_is_not_a_command(
        &runtime.join(format!("{}.sock", flow.child.id())),
    );

    let sent = stream.finish();
    eprintln!("{sent} requests, every one answered, across {reloads} reloads");
    flow.signal(libc::SIGINT);
    assert!(flow.wait_exit(Duration::from_secs(30)).is_some());
}

#[test]
fn an_indexer_hands_its_workspace_over_while_its_requests_wait() {
    let files = Files::new();
    let flow = |top_k: u32| {
        files.write(
            "flow.yml",
            &format!(
                "jtype: Flow\nwith:\n  protocol: grpc\nexecutors:\n  - {{name: enc, uses: NgramEncoder, uses_with: {{dim: 32}}}}\n  - {{name: index, uses: VectorIndexer, workspace: ws, uses_with: {{top_k: {top_k}}}}}\n"
            ),
        );
    };
    hand_over(&files, flow);
}

/// The same, with the workspace given only in the indexer's own YAML (`metas.workspace`),
/// and the change made to that YAML.
#[test]
fn an_indexer_whose_yaml_keeps_a_workspace_hands_it_over_too() {
    let files = Files::new();
    files.write(
        "flow.yml",
        "jtype: Flow\nwith:\n  protocol: grpc\nexecutors:\n  - {name: enc, uses: NgramEncoder, uses_with: {dim: 32}}\n  - {name: index, uses: index.yml}\n",
    );
    let index = |top_k: u32| {
        files.write(
            "index.yml",
            &format!("jtype: VectorIndexer\nwith: {{top_k: {top_k}}}\nmetas: {{workspace: ws}}\n"),
        );
    };
    hand_over(&files, index);
}

/// Starts the Flow in `files` after `write(3)` (top_k 3), indexes 40 documents, streams
/// searches, calls `write(5)`, and checks that no search failed and the new copy found what
/// the old one indexed, 5 at a time.
fn hand_over(files: &Files, write: impl Fn(u32)) {
    write(3);
    let mut flow = reloading(files, &[]);
    let port = flow.wait_for_gateway(Duration::from_secs(60))["GRPC"];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = Client::connect(Protocol::Grpc, "127.0.0.1", port)
            .await
            .unwrap();
        let docs: Vec<jina::Document> = (0..40)
            .map(|i| {
                doc_with_id(
                    &format!("document number {i} about topic {}", i % 7),
                    &format!("d{i}"),
                )
            })
            .collect();
        client
            .post("/index", docs, PostOptions::default())
            .await
            .expect("index");
    });
    let stream = Stream::start(port, "/search");
    assert!(eventually(Duration::from_secs(30), || stream.answered() >= 30));
    assert_eq!(stream.last().visits.len(), 3, "top_k 3 before");

    write(5);
    let after = answers_once_said(&flow, &stream, "handover", 30, |log| {
        log.contains("reloaded ")
    });
    // The new copy opened the old one's database: what was indexed before is found, 5 at a time.
    assert!(after.iter().all(|s| s.visits.len() == 5), "{after:?}");
    assert!(
        flow.output().contains("replaced: index; kept: enc"),
        "{}",
        flow.output()
    );
    stream.finish();
    flow.signal(libc::SIGINT);
    assert!(flow.wait_exit(Duration::from_secs(30)).is_some());
}

#[test]
fn the_rest_face_serves_the_endpoints_an_added_executor_brings() {
    let files = Files::new();
    let yaml = |more: &str| {
        format!(
            "jtype: Flow\nwith:\n  protocol: http\nexecutors:\n  - {{name: enc, uses: NgramEncoder, uses_with: {{dim: 32}}}}\n{more}"
        )
    };
    files.write("flow.yml", &yaml(""));
    let mut flow = reloading(&files, &[]);
    let port = flow.wait_for_gateway(Duration::from_secs(60))["HTTP"];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let search = || {
        runtime.block_on(async {
            let answer = http_client()
                .post(format!("http://127.0.0.1:{port}/search"))
                .json(&serde_json::json!({"data": [{"text": "hello"}]}))
                .send()
                .await
                .expect("POST /search");
            (answer.status().as_u16(), answer.text().await.unwrap())
        })
    };
    let (status, body) = search();
    assert_eq!(status, 404, "{body}");

    files.write(
        "flow.yml",
        &yaml("  - {name: index, uses: VectorIndexer}\n"),
    );
    let reloaded = eventually(Duration::from_secs(60), || {
        flow.output().contains("reloaded ")
    });
    assert!(reloaded, "{}", flow.output());
    // The REST face learns the new endpoints right after the switch.
    assert!(
        eventually(Duration::from_secs(10), || search().0 == 200),
        "{:?}\n{}",
        search(),
        flow.output()
    );
    flow.signal(libc::SIGINT);
    assert!(flow.wait_exit(Duration::from_secs(30)).is_some());
}

/// The attacks on a Flow's control socket that a test can make as the same user: it is only
/// this user's (0600 in a 0700 folder), and a line too long, or one that is not a command, is
/// refused with a reason and changes nothing.
fn control_socket_refuses_what_is_not_a_command(socket: &std::path::Path) {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    let ask = |bytes: &[u8]| {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let long = ask(&vec![b'x'; 100_000]);
    assert!(long.contains("refused") && long.contains("4096"), "{long}");
    let junk = ask(b"{\"command\": \"rm -rf\"}\n");
    assert!(junk.contains("not a command"), "{junk}");
    let negative = ask(b"{\"command\": \"scale\", \"executor\": \"visit\", \"replicas\": -1}\n");
    assert!(negative.contains("not a command"), "{negative}");
}
