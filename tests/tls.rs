//! TLS through the real binary, with a CA and a certificate made by the test: the gateway
//! serves gRPC, HTTPS and WSS; plain text to its port fails clearly; `jina client` and
//! `jina ping` trust a CA file; a Flow reaches an external `jina executor` over TLS; and TLS
//! asked for but not given is an error, never plain text.

mod common;

use common::*;
use jina::client::{Client, Inputs, PostOptions};
use jina::document::Document;
use jina::flow::Protocol;
use jina::tls::ClientTls;
use std::time::Duration;

async fn round_trip(protocol: Protocol, port: u16, tls: &ClientTls) {
    let client = Client::connect_tls(
        protocol,
        "localhost",
        port,
        Duration::from_secs(5),
        Some(tls),
    )
    .await
    .unwrap_or_else(|e| panic!("{protocol:?} over TLS: {e}"));
    let summary = client
        .post(
            "/",
            Inputs::from(vec![Document::from_text("secret")]),
            PostOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{protocol:?} over TLS: {e}"));
    assert_eq!(summary.failed, 0, "{protocol:?}");
}

#[tokio::test]
async fn the_gateway_serves_grpc_https_and_wss_and_refuses_plain_text_clearly() {
    let certs = certificates();
    let flow = certs.start_flow("  - {name: e, uses: Visit}\n");
    let tls = ClientTls::new(Some(&certs.ca)).unwrap();
    round_trip(Protocol::Grpc, flow.grpc, &tls).await;
    round_trip(Protocol::Http, flow.http, &tls).await;
    round_trip(Protocol::Websocket, flow.ws, &tls).await;

    // Plain text to a TLS port: a plain-text answer that says what to do.
    let plain = http_client()
        .get(format!("http://127.0.0.1:{}/status", flow.http))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    let text = plain.text().await.unwrap();
    assert!(text.contains("this port serves TLS"), "{text}");
    let refused = match Client::connect(Protocol::Grpc, "127.0.0.1", flow.grpc).await {
        Err(e) => e.to_string(),
        Ok(client) => client
            .post("/", Inputs::Nothing, PostOptions::default())
            .await
            .expect_err("a plain-text gRPC client must not get through")
            .to_string(),
    };
    assert!(refused.contains("TLS"), "{refused}");
    // A client that does not trust the CA is refused.
    let untrusting = ClientTls::new(Some(&certificates().ca)).unwrap();
    assert!(
        Client::connect_tls(
            Protocol::Http,
            "localhost",
            flow.http,
            Duration::from_secs(5),
            Some(&untrusting)
        )
        .await
        .is_err()
    );

    // The CLI: post and ping with the CA file.
    let (code, out) = run(&[
        "client",
        "post",
        "/",
        "--host",
        "localhost",
        "--port",
        &flow.http.to_string(),
        "--protocol",
        "http",
        "--ca-file",
        certs.ca.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&[
        "ping",
        &format!("localhost:{}", flow.grpc),
        "--ca-file",
        certs.ca.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["ping", &format!("localhost:{}", flow.grpc)]);
    assert_eq!(code, 1, "plain text ping of a TLS port: {out}");
}

#[tokio::test]
async fn a_flow_reaches_an_external_executor_over_tls() {
    let certs = certificates();
    let (_executor, port) = start_executor(&[
        "--uses",
        "Visit",
        "--name",
        "secure",
        "--ssl-certfile",
        certs.cert.to_str().unwrap(),
        "--ssl-keyfile",
        certs.key.to_str().unwrap(),
    ]);
    let yaml = certs.files.write(
        "flow.yml",
        &format!(
            "with: {{protocol: [grpc]}}\nexecutors:\n  - {{name: secure, external: true, host: localhost, port_in: {port}, tls: true}}\n"
        ),
    );
    // The Flow trusts the test's CA the usual way: SSL_CERT_FILE.
    let mut flow = Proc::start_in(
        &["flow", "--uses", yaml.to_str().unwrap()],
        None,
        &[("SSL_CERT_FILE", certs.ca.as_os_str())],
    );
    let ports = flow.wait_for_gateway(Duration::from_secs(30));
    let client = Client::connect(Protocol::Grpc, "127.0.0.1", ports["GRPC"])
        .await
        .unwrap();
    let summary = client
        .post(
            "/",
            Inputs::from(vec![Document::from_text("over tls")]),
            PostOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(summary.failed, 0);
}

#[test]
fn tls_asked_for_but_not_given_is_an_error_not_plain_text() {
    let certs = certificates();
    let cases = [
        ("with: {tls: true}\n", "give both"),
        (
            &*format!("with: {{ssl_certfile: {}}}\n", certs.cert.display()),
            "needs ssl_keyfile too",
        ),
        (
            &*format!(
                "with: {{ssl_certfile: missing.pem, ssl_keyfile: {}}}\n",
                certs.key.display()
            ),
            "missing.pem: cannot read it",
        ),
        (
            "executors:\n  - {name: e, uses: Visit, tls: true}\n",
            "only an external executor, or one a remote host's daemon starts, is reached over TLS",
        ),
    ];
    for (with, message) in cases {
        let yaml = certs.files.write("flow.yml", with);
        let (code, out) = run(&["flow", "--uses", yaml.to_str().unwrap()]);
        assert_eq!(code, 1, "{with}: {out}");
        assert!(out.contains(message), "{with}: {out}");
        assert!(!out.contains("Flow is ready"), "{out}");
    }
}
