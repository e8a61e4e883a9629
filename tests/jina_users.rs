//! Jina's YAML as people wrote it, and the CLI as Jina users type it (issue 12, the parts done
//! so far), through the real binary.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_typo_of_executors_is_an_error_not_a_flow_without_executors() {
    let files = Files::new();
    let yaml = files.write(
        "flow.yml",
        "jtype: Flow\nexecutorz:\n  - {name: a, uses: Visit}\n",
    );
    let (code, out) = run(&["flow", "--uses", yaml.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("flow.yml:2: executorz: unknown key; did you mean `executors`?"),
        "{out}"
    );
    assert!(!out.contains("Flow is ready"), "{out}");
}

#[tokio::test]
async fn pods_lists_the_executors_as_in_jina_1() {
    let files = Files::new();
    let yaml = files.write(
        "flow.yml",
        "jtype: Flow\nversion: '1'\nwith: {protocol: [grpc]}\npods:\n  - {name: first, uses: Visit}\n  - {name: second, uses: Visit}\n",
    );
    let mut flow = Proc::start_in(&["flow", "--uses", yaml.to_str().unwrap()], None, &[]);
    let ports = flow.wait_for_gateway(Duration::from_secs(30));
    let answers = post_grpc(
        ports["GRPC"],
        vec![jina::request::new_request(
            "/",
            &jina::DocumentArray::from(vec![jina::Document::from_text("hi")]),
            &Default::default(),
        )],
    )
    .await;
    let docs = jina::request::docs(&answers[0]).unwrap();
    let visits: Vec<_> = docs
        .iter()
        .next()
        .unwrap()
        .matches
        .iter()
        .map(|m| m.text.clone().unwrap())
        .collect();
    assert_eq!(visits, ["first", "second"]);
}

#[test]
fn jina_dash_v_prints_the_version() {
    let (code, out) = run(&["-v"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("jina {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn jina_ping_flow_gateway_and_executor_as_jina_3_spells_it() {
    let flow = start_flow("  - {name: victim, uses: Visit, restart: never}\n");
    let gateway = format!("127.0.0.1:{}", flow.grpc);
    for what in ["flow", "gateway"] {
        let (code, out) = run(&["ping", what, &gateway]);
        assert_eq!(code, 0, "ping {what}: {out}");
    }
    let (_executor, port) = start_executor(&["--uses", "Visit"]);
    let (code, out) = run(&["ping", "executor", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{out}");
    // A Flow whose executor is down is not ready: `ping flow` says which.
    let victim = children_of(flow.proc.child.id())[0];
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(wait_all_gone(&[victim], Duration::from_secs(5)).is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, out) = run(&["ping", "flow", &gateway]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("victim"), "{out}");
    let (code, out) = run(&["ping", "pod", &gateway]);
    assert_eq!(code, 1);
    assert!(out.contains("expected flow, gateway or executor"), "{out}");
}
