//! The three ways to reach a gateway. Each takes a stream of requests and gives back a stream
//! of answers in the order they complete, with at most `prefetch` requests in flight, so memory
//! is bounded by what is in flight, not by the size of the input.
//!
//! - gRPC: one `JinaRPC.Call` stream.
//! - HTTP: one `POST /post` per request, `prefetch` at a time.
//! - WebSocket: one connection; each request a binary `DataRequestProto` frame.

use super::ClientError;
use crate::errors::root_cause;
use crate::flow::Protocol;
use crate::proto::jina::{DataRequestProto, jina_rpc_client::JinaRpcClient};
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
async fn mismatch_hint(address: &str, protocol: Protocol) -> Option<String> {
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
        && (s.message().contains("transport error") || s.message().contains("connection"));
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
