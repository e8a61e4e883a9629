//! The three ways to reach a gateway. Each takes a stream of requests and gives back a stream
//! of answers in the order they complete, with at most `prefetch` requests in flight, so memory
//! is bounded by what is in flight, not by the size of the input.
//!
//! - gRPC: one `JinaRPC.Call` stream.
//! - HTTP: one `POST /post` per request, `prefetch` at a time.
//! - WebSocket: one connection; each request a binary `DataRequestProto` frame.
//!
//! A streamed document (`stream_doc`) gets the documents a streaming endpoint yields, each as
//! it arrives: over gRPC `JinaSingleDocumentRequestRPC.stream_doc`; over HTTP `GET
//! /<endpoint>` read as Server-Sent Events; over WebSocket a connection to `/<endpoint>`.

use super::ClientError;
use crate::document::Document;
use crate::errors::root_cause;
use crate::flow::Protocol;
use crate::proto::jina::{
    DataRequestProto, HeaderProto, SingleDocumentRequestProto, StatusProto,
    jina_rpc_client::JinaRpcClient,
    jina_single_document_request_rpc_client::JinaSingleDocumentRequestRpcClient,
};
use crate::request;
use futures::stream::BoxStream;
use futures::{SinkExt, Stream, StreamExt};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::Channel;

/// A connection to a gateway, checked at connect time.
#[derive(Clone)]
pub enum Transport {
    Grpc {
        channel: Channel,
        /// `host:port` of a plain-text connection, to say so when the port turns out to speak
        /// TLS.
        plain_text: Option<String>,
    },
    Http {
        client: reqwest::Client,
        base: String,
        /// The POST routes the gateway's OpenAPI lists (Python Jina serves `/<endpoint>` and
        /// `/default`, not Jina 2's `/post`).
        routes: Arc<std::collections::HashSet<String>>,
    },
    Websocket {
        url: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// Opens a WebSocket to `url`, over TLS (wss://) when `tls` is given.
async fn open_websocket(
    url: &str,
    tls: &Option<Arc<rustls::ClientConfig>>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let connector = tls
        .as_ref()
        .map(|c| tokio_tungstenite::Connector::Rustls(c.clone()));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector).await?;
    Ok(socket)
}

impl Transport {
    /// Connects (or, for HTTP, asks `/dry_run`) within `timeout`; an unreachable gateway is a
    /// one-line error, not a hang.
    pub async fn connect(
        protocol: Protocol,
        host: &str,
        port: u16,
        timeout: Duration,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Transport, ClientError> {
        let unreachable = |why: String| {
            ClientError::Connect(format!(
                "cannot reach the gateway at {host}:{port} ({}): {why}",
                protocol.as_str()
            ))
        };
        let attempt = async {
            match protocol {
                Protocol::Grpc => {
                    let endpoint =
                        crate::grpc::endpoint(host, port, timeout, tls).map_err(unreachable)?;
                    let channel = endpoint
                        .connect()
                        .await
                        .map_err(|e| unreachable(root_cause(&e)))?;
                    Ok(Transport::Grpc {
                        channel,
                        plain_text: tls.is_none().then(|| format!("{host}:{port}")),
                    })
                }
                Protocol::Http => {
                    crate::tls::install_provider();
                    let mut builder = reqwest::Client::builder()
                        .connect_timeout(timeout)
                        .tcp_nodelay(true);
                    if let Some(tls) = tls {
                        builder = builder.tls_backend_preconfigured(tls.rustls());
                    }
                    let client = builder.build().map_err(|e| unreachable(e.to_string()))?;
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    let base = format!("{scheme}://{host}:{port}");
                    let asked = client.get(format!("{base}/dry_run")).send().await;
                    let understood = match &asked {
                        Ok(r) => r.status().is_success(),
                        Err(_) => false,
                    };
                    if !understood && tls.is_none() {
                        let address = format!("{host}:{port}");
                        if let Some(hint) = mismatch_hint(&address, protocol).await {
                            return Err(ClientError::Connect(hint));
                        }
                    }
                    asked.map_err(|e| unreachable(root_cause(&e)))?;
                    let routes = post_routes(&client, &base).await;
                    Ok(Transport::Http {
                        client,
                        base,
                        routes: Arc::new(routes),
                    })
                }
                Protocol::Websocket => {
                    let scheme = if tls.is_some() { "wss" } else { "ws" };
                    let url = format!("{scheme}://{host}:{port}/");
                    let tls = tls.map(|t| Arc::new(t.rustls()));
                    // A probe connection proves the gateway answers; each post opens its own.
                    let mut socket = match open_websocket(&url, &tls).await {
                        Ok(socket) => socket,
                        Err(e) => {
                            let address = format!("{host}:{port}");
                            let hint = match tls {
                                Some(_) => None,
                                None => mismatch_hint(&address, protocol).await,
                            };
                            return Err(hint
                                .map(ClientError::Connect)
                                .unwrap_or_else(|| unreachable(root_cause(&e))));
                        }
                    };
                    let _ = socket.close(None).await;
                    Ok(Transport::Websocket { url, tls })
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(unreachable(format!("no answer within {timeout:?}"))))
    }

    /// Sends `requests`, at most `prefetch` in flight, and yields the answers as they come.
    pub fn send(
        &self,
        requests: impl Stream<Item = DataRequestProto> + Send + 'static,
        prefetch: usize,
    ) -> BoxStream<'static, Result<DataRequestProto, ClientError>> {
        let prefetch = prefetch.max(1);
        match self.clone() {
            Transport::Grpc {
                channel,
                plain_text,
            } => grpc(channel, plain_text, requests, prefetch),
            Transport::Http {
                client,
                base,
                routes,
            } => requests
                .map(move |r| {
                    let client = client.clone();
                    let url = format!("{base}{}", route_for(&routes, request::endpoint(&r)));
                    async move { http_post(&client, &url, &r).await }
                })
                .buffer_unordered(prefetch)
                .boxed(),
            Transport::Websocket { url, tls } => websocket(url, tls, requests, prefetch),
        }
    }
}

impl Transport {
    /// Streams one document to `endpoint`: the documents it yields, as they come. An ERROR
    /// message from the Flow ends the stream with that error. HTTP streaming carries no
    /// parameters (as Python Jina's): asking for them over HTTP is an error.
    pub fn stream_doc(
        &self,
        req: SingleDocumentRequestProto,
    ) -> BoxStream<'static, Result<Document, ClientError>> {
        let endpoint = req
            .header
            .as_ref()
            .and_then(|h| h.exec_endpoint.clone())
            .unwrap_or_default();
        match self.clone() {
            Transport::Grpc {
                channel,
                plain_text,
            } => grpc_stream_doc(channel, plain_text, req),
            Transport::Http { client, base, .. } => {
                if req.parameters.is_some() {
                    return futures::stream::once(std::future::ready(Err(ClientError::Transport(
                        "HTTP streaming carries no parameters (as Python Jina's): stream over grpc or websocket".into(),
                    ))))
                    .boxed();
                }
                let doc = Document::from_proto(req.document.unwrap_or_default());
                http_stream_doc(client, format!("{base}{endpoint}"), doc)
            }
            Transport::Websocket { url, tls } => {
                let url = format!("{}{endpoint}", url.trim_end_matches('/'));
                websocket_stream_doc(url, tls, req)
            }
        }
    }
}

/// A reply of a stream: its document, or the error it carries.
fn streamed_doc(reply: SingleDocumentRequestProto) -> Result<Document, ClientError> {
    let mut header = reply.header.unwrap_or_default();
    match header.status.take().filter(|s| s.code != 0) {
        Some(status) => Err(failed(header, status)),
        None => Ok(Document::from_proto(reply.document.unwrap_or_default())),
    }
}

/// The error that ended a stream over HTTP or WebSocket: a status as JSON (the executor's
/// failure), or the gateway's one-line refusal.
fn stream_error(error: &serde_json::Value) -> ClientError {
    match request::json::status_from_json(error).filter(|s| s.code != 0) {
        Some(status) => failed(HeaderProto::default(), status),
        None => {
            let why = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            ClientError::Transport(format!("the gateway says: {why}"))
        }
    }
}

/// A failure a stream reported, as the error of a failed request.
fn failed(header: HeaderProto, status: StatusProto) -> ClientError {
    let proto = DataRequestProto {
        header: Some(HeaderProto {
            status: Some(status),
            ..header
        }),
        ..Default::default()
    };
    super::Response { proto }.error()
}

/// Ends `stream` after its first error.
fn until_error<T: Send + 'static>(
    stream: impl Stream<Item = Result<T, ClientError>> + Send + 'static,
) -> BoxStream<'static, Result<T, ClientError>> {
    stream
        .scan(false, |failed, item| {
            if *failed {
                return std::future::ready(None);
            }
            *failed = item.is_err();
            std::future::ready(Some(item))
        })
        .boxed()
}

fn grpc_stream_doc(
    channel: Channel,
    plain_text: Option<String>,
    req: SingleDocumentRequestProto,
) -> BoxStream<'static, Result<Document, ClientError>> {
    let mut client = crate::unlimited!(JinaSingleDocumentRequestRpcClient::new(channel));
    let mut call = tonic::Request::new(req);
    crate::telemetry::inject(call.metadata_mut());
    let replies =
        futures::stream::once(async move { client.stream_doc(call).await })
            .map(move |opened| {
                let plain_text = plain_text.clone();
                match opened {
                    Ok(replies) => replies
                        .into_inner()
                        .then(move |reply| {
                            let plain_text = plain_text.clone();
                            async move {
                                match reply {
                                    Ok(r) => streamed_doc(r),
                                    Err(s) => Err(grpc_error(s, plain_text.as_deref()).await),
                                }
                            }
                        })
                        .boxed(),
                    Err(s) => futures::stream::once(async move {
                        Err(grpc_error(s, plain_text.as_deref()).await)
                    })
                    .boxed(),
                }
            })
            .flatten();
    until_error(replies)
}

/// One Server-Sent Event: its name and its data.
fn parse_event(block: &str) -> (String, String) {
    let (mut event, mut data) = (String::new(), vec![]);
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    (event, data.join("\n"))
}

/// Reads `GET url` as Server-Sent Events: `update` is a document, `error` ends with the
/// status it carries, `end` ends.
fn http_stream_doc(
    client: reqwest::Client,
    url: String,
    doc: Document,
) -> BoxStream<'static, Result<Document, ClientError>> {
    let fail = |m: String| ClientError::Transport(format!("HTTP: {m}"));
    let opened = async move {
        let reply = client
            .get(&url)
            .header("Accept", "text/event-stream")
            .json(&doc.to_json())
            .send()
            .await
            .map_err(|e| fail(root_cause(&e)))?;
        let status = reply.status();
        if !status.is_success() {
            let body: serde_json::Value = reply.json().await.unwrap_or_default();
            let why = body
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            return Err(fail(format!("{status}: {why}")));
        }
        Ok(reply)
    };
    // State: the response, the bytes not yet ending an event, and whether it ended.
    let events = futures::stream::once(opened).flat_map(move |opened| match opened {
        Err(e) => futures::stream::once(std::future::ready(Err(e))).boxed(),
        Ok(reply) => futures::stream::unfold(
            (reply, String::new(), false),
            move |(mut reply, mut pending, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let normalised = pending.replace("\r\n", "\n");
                    if let Some((block, rest)) = normalised.split_once("\n\n") {
                        let (event, data) = parse_event(block);
                        let rest = rest.to_string();
                        let item = match event.as_str() {
                            "update" => Some(
                                serde_json::from_str::<serde_json::Value>(&data)
                                    .map_err(|e| e.to_string())
                                    .and_then(|v| Document::from_json(&v))
                                    .map_err(|e| fail(format!("a malformed document: {e}"))),
                            ),
                            "error" => Some(Err(stream_error(
                                &serde_json::from_str(&data).unwrap_or(data.into()),
                            ))),
                            "end" => return None,
                            _ => None,
                        };
                        pending = rest;
                        if let Some(item) = item {
                            let done = item.is_err();
                            return Some((item, (reply, pending, done)));
                        }
                        continue;
                    }
                    match reply.chunk().await {
                        Ok(Some(bytes)) => pending.push_str(&String::from_utf8_lossy(&bytes)),
                        Ok(None) => {
                            let e = fail("the stream ended without `event: end`".into());
                            return Some((Err(e), (reply, pending, true)));
                        }
                        Err(e) => {
                            let e = fail(root_cause(&e));
                            return Some((Err(e), (reply, pending, true)));
                        }
                    }
                }
            },
        )
        .boxed(),
    });
    events.boxed()
}

/// Streams over a WebSocket to `url` (`/<endpoint>`): one frame out, a frame per document back.
fn websocket_stream_doc(
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    req: SingleDocumentRequestProto,
) -> BoxStream<'static, Result<Document, ClientError>> {
    let fail = |m: String| ClientError::Transport(format!("WebSocket: {m}"));
    let parameters = req
        .parameters
        .as_ref()
        .map(|p| serde_json::Value::Object(request::struct_to_json(p)));
    let doc = Document::from_proto(req.document.unwrap_or_default());
    let first = serde_json::json!({"data": doc.to_json(), "parameters": parameters});
    let opened = async move {
        let mut socket = open_websocket(&url, &tls)
            .await
            .map_err(|e| fail(root_cause(&e)))?;
        socket
            .send(Message::Text(first.to_string().into()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(socket)
    };
    let frames = futures::stream::once(opened).flat_map(move |opened| match opened {
        Err(e) => futures::stream::once(std::future::ready(Err(e))).boxed(),
        Ok(socket) => futures::stream::unfold(Some(socket), move |socket| async move {
            let mut socket = socket?;
            loop {
                let frame = match socket.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => {
                        let e = fail("the gateway closed the stream before its end".into());
                        return Some((Err(e), None));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Some((Err(fail(e.to_string())), None)),
                };
                let value: serde_json::Value = match serde_json::from_str(&frame) {
                    Ok(v) => v,
                    Err(e) => return Some((Err(fail(format!("a malformed frame: {e}"))), None)),
                };
                match value["event"].as_str() {
                    Some("update") => {
                        let doc = Document::from_json(&value["data"])
                            .map_err(|e| fail(format!("a malformed document: {e}")));
                        return Some((doc, Some(socket)));
                    }
                    Some("end") => {
                        let _ = socket.close(None).await;
                        return None;
                    }
                    _ => return Some((Err(stream_error(&value["error"])), None)),
                }
            }
        })
        .boxed(),
    });
    frames.boxed()
}

/// What a port turned out to speak, found when a client's first words were not understood.
#[derive(Debug, PartialEq)]
enum Speaks {
    /// TLS: our gateway's plain-text answer says so, another server sends a TLS alert.
    Tls,
    /// HTTP/1.1 (a gateway's REST or WebSocket face).
    Http,
    /// Only HTTP/2: gRPC.
    Grpc,
}

/// Asks `address` an HTTP/1.1 `GET /dry_run` and reads what comes back: a REST face answers in
/// HTTP/1.1, a gRPC server (HTTP/2 only) does not, a TLS port says so.
async fn what_it_speaks(address: &str) -> Option<Speaks> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = Duration::from_secs(1);
    let mut tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    let _ = tcp
        .write_all(b"GET /dry_run HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = [0u8; 512];
    let n = match tokio::time::timeout(wait, tcp.read(&mut answer)).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    let text = String::from_utf8_lossy(&answer[..n]);
    Some(match answer[..n] {
        _ if text.contains("serves TLS") => Speaks::Tls,
        [21 | 22, ..] => Speaks::Tls,
        _ if text.starts_with("HTTP/1.") => Speaks::Http,
        _ => Speaks::Grpc,
    })
}

/// A hint for a client of `protocol` that met a port speaking something else; None when the
/// port speaks what was asked (or could not be probed).
pub(crate) async fn mismatch_hint(address: &str, protocol: Protocol) -> Option<String> {
    match (what_it_speaks(address).await?, protocol) {
        (Speaks::Tls, _) => Some(format!(
            "{address} serves TLS: connect with --tls (or --ca-file CA.pem)"
        )),
        (Speaks::Http, Protocol::Grpc) => Some(format!(
            "{address} speaks HTTP, not gRPC: try --protocol http (or websocket)"
        )),
        (Speaks::Grpc, Protocol::Http | Protocol::Websocket) => Some(format!(
            "{address} speaks gRPC, not HTTP: try --protocol grpc"
        )),
        _ => None,
    }
}

/// A failed call's status in words. A connection that broke off mid-call (tonic's "transport
/// error", code Unknown or Unavailable) says so, and why that usually happens.
fn status_message(s: &tonic::Status) -> String {
    let broke_off = matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable)
        && crate::errors::causes(s).any(|c| {
            c.is::<tonic::transport::Error>() || c.is::<hyper::Error>() || c.is::<std::io::Error>()
        });
    if broke_off {
        format!(
            "gRPC: the connection to the gateway broke off before the answer came (the Flow stopped or was killed?): {}",
            root_cause(s)
        )
    } else {
        format!("gRPC: {}: {}", s.code(), s.message())
    }
}

/// The error of a failed gRPC call, with a hint when the port speaks something else (TLS,
/// HTTP) or is an executor rather than a gateway.
async fn grpc_error(s: tonic::Status, plain_text: Option<&str>) -> ClientError {
    let message = status_message(&s);
    let Some(address) = plain_text else {
        return ClientError::Transport(message);
    };
    let hint = match mismatch_hint(address, Protocol::Grpc).await {
        Some(hint) => Some(hint),
        None if s.code() == tonic::Code::Unimplemented => Some(format!(
            "{address} does not serve JinaRPC.Call: it is an executor, not a Flow's gateway; post to the gateway's port"
        )),
        None => None,
    };
    ClientError::Transport(match hint {
        Some(hint) => format!("{hint} ({message})"),
        None => message,
    })
}

fn grpc(
    channel: Channel,
    plain_text: Option<String>,
    requests: impl Stream<Item = DataRequestProto> + Send + 'static,
    prefetch: usize,
) -> BoxStream<'static, Result<DataRequestProto, ClientError>> {
    let in_flight = Arc::new(Semaphore::new(prefetch));
    let gate = in_flight.clone();
    let gated = requests.then(move |r| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.expect("never closed").forget();
            r
        }
    });
    let mut client = crate::unlimited!(JinaRpcClient::new(channel));
    let mut call = tonic::Request::new(gated);
    crate::telemetry::inject(call.metadata_mut());
    futures::stream::once(async move { client.call(call).await })
        .map(move |opened| match opened {
            Ok(answers) => {
                let plain_text = plain_text.clone();
                answers
                    .into_inner()
                    .then(move |answer| {
                        let plain_text = plain_text.clone();
                        async move {
                            match answer {
                                Ok(a) => Ok(a),
                                Err(s) => Err(grpc_error(s, plain_text.as_deref()).await),
                            }
                        }
                    })
                    .boxed()
            }
            Err(s) => {
                let plain_text = plain_text.clone();
                futures::stream::once(
                    async move { Err(grpc_error(s, plain_text.as_deref()).await) },
                )
                .boxed()
            }
        })
        .flatten()
        .inspect(move |_| in_flight.add_permits(1))
        .boxed()
}

/// The POST routes of a gateway, from its OpenAPI description (empty if it has none).
async fn post_routes(client: &reqwest::Client, base: &str) -> std::collections::HashSet<String> {
    let spec: Option<serde_json::Value> =
        match client.get(format!("{base}/openapi.json")).send().await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
    spec.as_ref()
        .and_then(|s| s.get("paths"))
        .and_then(|p| p.as_object())
        .map(|paths| {
            paths
                .iter()
                .filter(|(_, ops)| ops.get("post").is_some())
                .map(|(path, _)| path.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Where to POST a request for `endpoint`, as Python's client chooses: the endpoint's own
/// route, else `/default` (the body names the endpoint), else Jina 2's `/post`.
fn route_for(routes: &std::collections::HashSet<String>, endpoint: &str) -> String {
    if routes.contains(endpoint) {
        endpoint.to_string()
    } else if routes.contains("/default") {
        "/default".into()
    } else {
        "/post".into()
    }
}

async fn http_post(
    client: &reqwest::Client,
    url: &str,
    req: &DataRequestProto,
) -> Result<DataRequestProto, ClientError> {
    let body = request::json::to_json(req);
    let reply = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| ClientError::Transport(format!("HTTP: {}", root_cause(&e))))?;
    let status = reply.status();
    let value: serde_json::Value = reply.json().await.map_err(|e| {
        ClientError::Transport(format!(
            "HTTP {status}: the answer is not JSON: {}",
            root_cause(&e)
        ))
    })?;
    if !status.is_success() {
        let why = value
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        return Err(ClientError::Transport(format!("HTTP {status}: {why}")));
    }
    request::json::from_json(&value, None)
        .map_err(|e| ClientError::Transport(format!("HTTP: a malformed answer: {e}")))
}

fn websocket(
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    requests: impl Stream<Item = DataRequestProto> + Send + 'static,
    prefetch: usize,
) -> BoxStream<'static, Result<DataRequestProto, ClientError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(prefetch);
    tokio::spawn(async move {
        let fail = |m: String| Err(ClientError::Transport(format!("WebSocket: {m}")));
        let socket = match open_websocket(&url, &tls).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(fail(root_cause(&e))).await;
                return;
            }
        };
        let (mut sink, mut source) = socket.split();
        let mut requests = std::pin::pin!(requests);
        let (mut sending, mut in_flight) = (true, 0usize);
        while sending || in_flight > 0 {
            tokio::select! {
                next = requests.next(), if sending && in_flight < prefetch => match next {
                    Some(r) => {
                        if let Err(e) = sink.send(Message::Binary(r.encode_to_vec().into())).await {
                            let _ = tx.send(fail(e.to_string())).await;
                            return;
                        }
                        in_flight += 1;
                    }
                    None => sending = false,
                },
                frame = source.next(), if in_flight > 0 => {
                    let answer = match frame {
                        Some(Ok(Message::Binary(b))) => DataRequestProto::decode(b).map_err(|e| ClientError::Transport(format!("WebSocket: a malformed answer: {e}"))),
                        Some(Ok(Message::Text(t))) => fail(format!("the gateway says: {t}")),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => fail(e.to_string()),
                        None => fail("the gateway closed the connection".into()),
                    };
                    let stop = answer.is_err();
                    in_flight -= 1;
                    if tx.send(answer).await.is_err() || stop {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}
