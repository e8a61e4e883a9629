//! The gateway's REST and WebSocket faces (axum), on the same router:
//!
//! - `POST /post` with `{data, parameters, execEndpoint, targetExecutor}` (Jina 2's REST body);
//! - `POST /<endpoint>` for every endpoint the executors expose, `{data, parameters, header}`;
//! - `GET /<endpoint>`: one document streamed to the executor that streams the endpoint
//!   (the document is the JSON body, else the query's fields, as Python Jina's gateway reads
//!   it); what it yields comes back as Server-Sent Events (`event: update` with the document,
//!   then `event: end`), or, upgraded to a WebSocket, as text frames (`streaming_socket`);
//! - `GET /status`, `GET /dry_run`, `GET /openapi.json`, and `GET /docs` (an offline page);
//! - `GET /`: the search page (a query box posting to `/search`), or, upgraded to a WebSocket: each text frame is a JSON request and is answered with a
//!   JSON response carrying the same request id; each binary frame is a `DataRequestProto`
//!   (what Python Jina's WebSocket client sends) and is answered in kind. At most `prefetch`
//!   requests of one connection are in flight.

use super::parameters::{self, ParameterModel};
use super::router::{Router, Routing};
use crate::document::Document;
use crate::proto::jina::SingleDocumentRequestProto;
use crate::request;
use crate::request::json::{self as request_json, JsonError};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, body::Bytes};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Clone)]
struct AppState {
    routing: Routing,
    /// What the executors of the router in use serve: discovered at start and again after
    /// each reload ([`follow_endpoints`]).
    served: tokio::sync::watch::Receiver<Arc<Endpoints>>,
    prefetch: usize,
    max_request_bytes: usize,
    /// Documents per request and the memory of requests in flight, shared with every face.
    admission: request::Admission,
    cors: bool,
    allowed_hosts: super::AllowedHosts,
    /// `https` when the face serves TLS: an `Origin` of the other scheme is another site.
    scheme: &'static str,
}

/// The endpoints the executors serve, as the REST face routes and documents them.
struct Endpoints {
    endpoints: Vec<String>,
    /// Those whose handler streams (a generator endpoint).
    streaming: Vec<String>,
    /// The `parameters` model of each endpoint that has one (a Python executor's pydantic).
    parameter_models: std::collections::HashMap<String, ParameterModel>,
}

impl Endpoints {
    /// Asks the executors of `router` what they serve.
    async fn discover(router: &super::Router) -> Endpoints {
        let discovered = router.endpoints().await;
        let schemas = discovered
            .schemas
            .as_ref()
            .map(crate::request::struct_to_json)
            .unwrap_or_default();
        let generator = |e: &String| {
            schemas.get(e).and_then(|s| s.get("is_generator")) == Some(&Value::Bool(true))
        };
        Endpoints {
            streaming: discovered
                .endpoints
                .iter()
                .filter(|e| generator(e))
                .cloned()
                .collect(),
            parameter_models: ParameterModel::of_endpoints(&schemas),
            endpoints: discovered.endpoints,
        }
    }
}

/// Discovers the endpoints again each time the routing takes a new router (a reload), until
/// the routing is gone or no face listens.
async fn follow_endpoints(
    mut routers: tokio::sync::watch::Receiver<Arc<super::Router>>,
    served: tokio::sync::watch::Sender<Arc<Endpoints>>,
) {
    while routers.changed().await.is_ok() {
        let router = routers.borrow_and_update().clone();
        let endpoints = Endpoints::discover(&router).await;
        drop(router);
        if served.send(Arc::new(endpoints)).is_err() {
            return;
        }
    }
}

/// The REST + WebSocket application.
pub(super) async fn app(routing: Routing, settings: &super::Settings) -> axum::Router {
    let routers = routing.subscribe();
    let discovered = Endpoints::discover(&routing.peek()).await;
    let (found, served) = tokio::sync::watch::channel(Arc::new(discovered));
    tokio::spawn(follow_endpoints(routers, found));
    let state = AppState {
        routing,
        served,
        prefetch: settings.prefetch.max(1),
        max_request_bytes: settings.max_request_bytes,
        admission: settings.admission.clone(),
        cors: settings.cors,
        allowed_hosts: settings.allowed_hosts.clone(),
        scheme: if settings.tls.is_some() {
            "https"
        } else {
            "http"
        },
    };
    let app = axum::Router::new()
        .route("/", get(index))
        .route("/post", post(post_jina2))
        .route("/status", get(status).post(status))
        .route("/dry_run", get(dry_run))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs_page))
        .route("/{*endpoint}", post(post_endpoint).get(stream_endpoint))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            browser_safety,
        ))
        .with_state(state);
    if settings.cors {
        // Jina's `cors: true`: any origin, any method, any header (FastAPI's allow_origins=['*']).
        app.layer(tower_http::cors::CorsLayer::permissive())
    } else {
        app
    }
}

/// Serves `app` on `listener` until `shutdown` resolves (then as `crate::shutdown` says);
/// HTTPS and WSS when `tls` is given.
pub(super) async fn serve(
    app: axum::Router,
    listener: TcpListener,
    tls: Option<crate::tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    if let Some(tls) = tls {
        let connections = tls.incoming(listener);
        return crate::shutdown::serve_with_grace("HTTPS server", shutdown, |stop| {
            axum::serve(connections, app)
                .with_graceful_shutdown(stop)
                .into_future()
        })
        .await;
    }
    // Nagle off, as for gRPC: small answers go out at once.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    crate::shutdown::serve_with_grace("HTTP server", shutdown, |stop| {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .into_future()
    })
    .await
}

/// A one-line error as JSON, with its HTTP status.
fn error_response(code: StatusCode, message: String) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

fn bad_request(message: String) -> Response {
    error_response(StatusCode::BAD_REQUEST, message)
}

/// Whether the request's `Origin` is another site than the gateway it was sent to: another
/// host (by `Host`) or another scheme than the face serves. No `Origin` (a program, not a
/// browser) is no cross-origin request.
fn cross_origin(headers: &axum::http::HeaderMap, host: &str, scheme: &str) -> Option<String> {
    let origin = headers.get(axum::http::header::ORIGIN)?.to_str().ok()?;
    let same = origin
        .split_once("://")
        .is_some_and(|(s, rest)| s.eq_ignore_ascii_case(scheme) && rest.eq_ignore_ascii_case(host));
    (!same).then(|| origin.to_string())
}

fn host_header(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
}

/// Keeps web pages of other sites from driving the Flow: a `Host` the gateway does not answer
/// to is refused (403; see `gateway::hosts`: DNS rebinding); without `cors: true`, a request
/// whose `Origin` is another site is refused (403); and a POST whose body is not
/// `application/json` is refused (415) whatever the setting: a form or `text/plain` POST is
/// what a page may send anywhere without asking first.
async fn browser_safety(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    // HTTP/1.1 requires Host; HTTP/2 sends `:authority`, which hyper gives as the URI's.
    let host = match host_header(headers) {
        "" => req.uri().authority().map_or("", |a| a.as_str()),
        h => h,
    };
    if !s.allowed_hosts.allows(host) {
        let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "Host '{host}' is not a name this gateway answers to (a guard against DNS rebinding); if it is yours, add it to the gateway's allowed_hosts (with: {{allowed_hosts: [{name}]}}, or --allowed-hosts)"
            ),
        );
    }
    if !s.cors
        && let Some(origin) = cross_origin(headers, host, s.scheme)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin request from {origin} refused (the Flow allows it with `cors: true`)"
            ),
        );
    }
    if req.method() == axum::http::Method::POST
        && let Some(other) = headers
            .get(axum::http::header::CONTENT_TYPE)
            .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
            .filter(|t| !is_json(t))
    {
        return not_json(&other);
    }
    next.run(req).await
}

fn is_json(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or_default().trim();
    t.eq_ignore_ascii_case("application/json")
}

fn not_json(content_type: &str) -> Response {
    error_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "the body must be JSON sent as Content-Type: application/json, not {content_type} (curl: add -H 'Content-Type: application/json')"
        ),
    )
}

/// Reads a body of at most `limit` bytes: over it, 413 with the JSON error. A body without a
/// Content-Type must be empty (`curl -X POST`).
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let bytes = read_limited(body, declared_length(headers, limit), limit).await?;
    if !headers.contains_key(axum::http::header::CONTENT_TYPE)
        && !bytes.iter().all(u8::is_ascii_whitespace)
    {
        return Err(not_json("a body without a Content-Type"));
    }
    Ok(bytes)
}

/// The body's Content-Length, at most `limit`; `limit` when it gives none.
fn declared_length(headers: &axum::http::HeaderMap, limit: usize) -> usize {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(limit)
        .min(limit)
}

/// Reads the body into one buffer of the declared size (no copies as it grows: a 64 MB body
/// costs 64 MB, given back whole when it is dropped), refusing it once it passes `limit`.
async fn read_limited(
    mut body: axum::body::Body,
    declared: usize,
    limit: usize,
) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request is larger than the gateway's limit of {limit} bytes (max_request_bytes)"
            ),
        )
    };
    let mut buf = Vec::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| bad_request(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads a JSON body once the gateway's budget has room for it (its declared size; the
/// requests before it give theirs back as they are answered), then takes room for what it will
/// become ([`request::json_decoded_bytes`]): a body that could never fit is a 413, one that
/// does not fit now a 503 to retry. The room is held until the answer is written.
async fn read_admitted(
    s: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), Response> {
    let declared = declared_length(headers, s.max_request_bytes);
    let budget = &s.admission.budget;
    let mut room = budget.admit_bytes(declared).await;
    let body = read_body(headers, body, s.max_request_bytes).await?;
    let needed = request::json_decoded_bytes(&body);
    budget.fits(needed).map_err(over_limit)?;
    if needed > declared && !budget.try_grow(&mut room, needed - declared) {
        let mut busy = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the gateway is busy: the requests in flight hold its budget of {} bytes (max_in_flight_bytes); try again",
                budget.total_bytes()
            ),
        );
        busy.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, 1.into());
        return Err(busy);
    }
    Ok((body, room))
}

/// A request refused before it is read: 413 with the limit and how to raise it.
fn over_limit(over: request::OverLimit) -> Response {
    error_response(StatusCode::PAYLOAD_TOO_LARGE, over.to_string())
}

async fn post_jina2(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (body, _room) = match read_admitted(&s, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    answer(&s, &headers, &body, None).await
}

async fn post_endpoint(
    State(s): State<AppState>,
    Path(endpoint): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let endpoint = format!("/{endpoint}");
    if !s.served.borrow().endpoints.contains(&endpoint) {
        return not_served(&s, &endpoint);
    }
    let (body, _room) = match read_admitted(&s, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    answer(&s, &headers, &body, Some(&endpoint)).await
}

/// `GET /<endpoint>`: streams one document (the JSON body, else the query's fields) to the
/// executor that streams the endpoint. Over plain HTTP the answer is Server-Sent Events, each
/// sent as it is yielded; upgraded to a WebSocket, see [`streaming_socket`]. An endpoint no
/// executor streams is a 404 naming it. A client that goes away ends the executor's stream.
async fn stream_endpoint(
    State(s): State<AppState>,
    Path(endpoint): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let endpoint = format!("/{endpoint}");
    let (mut parts, body) = req.into_parts();
    if let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &s).await {
        return ws
            .max_message_size(s.max_request_bytes)
            .max_frame_size(s.max_request_bytes)
            .on_upgrade(move |socket| streaming_socket(socket, s, endpoint))
            .into_response();
    }
    let (body, room) = match read_admitted(&s, &parts.headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields = if body.iter().all(u8::is_ascii_whitespace) {
        let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri);
        match query {
            Ok(q) => Value::Object(q.0.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
            Err(e) => return bad_request(format!("the query: {e}")),
        }
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => return bad_request(format!("request body: not JSON: {e}")),
        }
    };
    let doc = match Document::from_json(&fields) {
        Ok(d) => d,
        Err(e) => return bad_request(format!("request body: {e}")),
    };
    drop(fields);
    if let Err(over) = s.admission.check_docs(doc.count_all()) {
        return over_limit(over);
    }
    let req = crate::request::new_single_document_request(&endpoint, &doc, &Default::default());
    drop((body, room));
    let adopt = |span: &tracing::Span| crate::telemetry::adopt_from_headers(span, &parts.headers);
    let replies = match s.routing.current().await.stream_doc(req, adopt).await {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::NOT_FOUND, e.to_string()),
    };
    let events = replies
        .map(|reply| sse_event(&reply))
        .chain(futures::stream::once(std::future::ready(
            "event: end\r\n\r\n".to_string(),
        )))
        .map(|event| Ok::<_, std::convert::Infallible>(Bytes::from(event)));
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}

/// One yielded document as JSON, or the error that ended the stream (`Err` with the status).
fn reply_json(reply: &SingleDocumentRequestProto) -> Result<Value, Value> {
    let status = reply.header.as_ref().and_then(|h| h.status.as_ref());
    match status.filter(|s| s.code != 0) {
        Some(failed) => Err(request_json::status_json(Some(failed))),
        None => Ok(Document::from_proto(reply.document.clone().unwrap_or_default()).to_json()),
    }
}

/// A reply as one Server-Sent Event, lines ended by CRLF as Python Jina's gateway writes them
/// (its client counts on that).
fn sse_event(reply: &SingleDocumentRequestProto) -> String {
    match reply_json(reply) {
        Ok(doc) => format!("event: update\r\ndata: {doc}\r\n\r\n"),
        Err(status) => format!("event: error\r\ndata: {status}\r\n\r\n"),
    }
}

/// A WebSocket on `GET /<endpoint>`: the client's first text frame is `{"data": document,
/// "parameters": {...}}`; each yielded document comes back as a text frame
/// `{"event": "update", "data": document}`, an error as `{"event": "error", "error":
/// status}`, and last `{"event": "end"}` before the close. A close from the client ends the
/// executor's stream.
async fn streaming_socket(socket: WebSocket, s: AppState, endpoint: String) {
    let (mut sink, mut source) = socket.split();
    let first = loop {
        match source.next().await {
            Some(Ok(Message::Text(text))) => break Ok(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                break Err(
                    "the first frame must be text: {\"data\": document, \"parameters\": {...}}",
                );
            }
            _ => return,
        }
    };
    let opened = async {
        let first = first.map_err(str::to_string)?;
        let body: Value =
            serde_json::from_str(&first).map_err(|e| format!("frame: not JSON: {e}"))?;
        let doc = match body.get("data") {
            Some(data) => Document::from_json(data).map_err(|e| format!("frame: data: {e}"))?,
            None => return Err("frame: no `data` (the document to stream)".to_string()),
        };
        let parameters = body.get("parameters").and_then(Value::as_object);
        let parameters = parameters.cloned().unwrap_or_default();
        let req = crate::request::new_single_document_request(&endpoint, &doc, &parameters);
        s.routing
            .current()
            .await
            .stream_doc(req, |_| {})
            .await
            .map_err(|e| e.to_string())
    };
    let replies = match opened.await {
        Ok(r) => r,
        Err(why) => {
            let refused = json!({"event": "error", "error": why}).to_string();
            let _ = sink.send(Message::Text(refused.into())).await;
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
    };
    let mut replies = std::pin::pin!(replies);
    loop {
        tokio::select! {
            reply = replies.next() => {
                let Some(reply) = reply else { break };
                let frame = match reply_json(&reply) {
                    Ok(doc) => json!({"event": "update", "data": doc}),
                    Err(status) => json!({"event": "error", "error": status}),
                };
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
            }
            // The client closed or went away: dropping the replies ends the stream.
            incoming = source.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = sink
        .send(Message::Text(json!({"event": "end"}).to_string().into()))
        .await;
    let _ = sink.send(Message::Close(None)).await;
}

/// The 404 of an endpoint that no executor binds, as FastAPI answers a route it does not have
/// (`detail`), with what is served (`error`).
fn not_served(s: &AppState, endpoint: &str) -> Response {
    let known = s
        .served
        .borrow()
        .endpoints
        .iter()
        .filter(|e| !e.starts_with("_jina"))
        .cloned()
        .collect::<Vec<_>>();
    let error = format!(
        "no executor serves the endpoint '{endpoint}' (known: {})",
        known.join(", ")
    );
    let body = json!({"detail": "Not Found", "error": error});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Routes a JSON body and answers in JSON. Documents go between JSON and their wire form one
/// at a time, both ways: memory stays a small multiple of the body and of the answer. A
/// `traceparent` header makes the request part of the client's trace.
///
/// A failure answers as Python Jina's HTTP face does, so that its Client raises: an executor
/// the gateway could not reach is a 503, one that did not answer in time a 504 (both with the
/// request and the error's header); an executor's own error is a 500 `{"detail": ...}` on
/// `POST /<endpoint>`, and a 200 with status ERROR on Jina 2's `POST /post`.
async fn answer(
    s: &AppState,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    endpoint: Option<&str>,
) -> Response {
    match request_json::from_json_bytes(body, endpoint, json_limits(s)) {
        Ok(mut req) => {
            // The endpoint's parameters model, as Python Jina's face applies it.
            let known = s.served.borrow().clone();
            if let Some(model) = endpoint.and_then(|e| known.parameter_models.get(e)) {
                let given = req.parameters.as_ref().map(request::struct_to_json);
                match model.check(given) {
                    Ok(checked) => req.parameters = checked.map(|p| request::json_to_struct(&p)),
                    Err(refusals) => {
                        let detail = parameters::detail(&refusals);
                        return (StatusCode::UNPROCESSABLE_ENTITY, Json(detail)).into_response();
                    }
                }
            }
            // `POST /post` to an endpoint nobody binds: Python Jina's face has no such route.
            let target = request::endpoint(&req);
            let served = |e: &String| e == target || e == crate::executor::DEFAULT_ENDPOINT;
            if endpoint.is_none()
                && !matches!(target, "" | "/")
                && !s.served.borrow().endpoints.iter().any(served)
            {
                return not_served(s, target);
            }
            let adopt = |span: &tracing::Span| crate::telemetry::adopt_from_headers(span, headers);
            let answer = s.routing.current().await.route_with(req, adopt).await;
            if let Some(failed) = failure_response(&answer, endpoint.is_some()) {
                return failed;
            }
            if answer.data.len() <= request_json::STREAM_ABOVE {
                return json_response(request_json::to_json_bytes(&answer));
            }
            let pieces = request_json::to_json_pieces(answer)
                .map(|piece| Ok::<_, std::convert::Infallible>(Bytes::from(piece)));
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(futures::stream::iter(pieces)),
            )
                .into_response()
        }
        Err(JsonError::Invalid(e)) => bad_request(e),
        Err(JsonError::OverLimit(over)) => over_limit(over),
    }
}

/// What a JSON request may become at this gateway.
fn json_limits(s: &AppState) -> request_json::JsonLimits {
    request_json::JsonLimits {
        max_docs: s.admission.max_docs,
        max_bytes: s.max_request_bytes,
    }
}

/// The HTTP answer to a failed request, as [`answer`] says; `None` when it did not fail (or
/// failed in an executor, on `/post`).
fn failure_response(
    answer: &crate::proto::jina::DataRequestProto,
    per_endpoint: bool,
) -> Option<Response> {
    let status = answer.header.as_ref()?.status.as_ref()?;
    if !request::is_error(answer) {
        return None;
    }
    let code = match request::InTransit::of(status) {
        Some(request::InTransit::Unreachable) => StatusCode::SERVICE_UNAVAILABLE,
        Some(request::InTransit::Timeout) => StatusCode::GATEWAY_TIMEOUT,
        None if per_endpoint => {
            let detail = json!({"detail": status.description});
            return Some((StatusCode::INTERNAL_SERVER_ERROR, Json(detail)).into_response());
        }
        None => return None,
    };
    let mut response = json_response(request_json::to_json_bytes(answer));
    *response.status_mut() = code;
    Some(response)
}

fn json_response(body: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn status() -> Json<Value> {
    let info = crate::grpc::jina_info();
    Json(json!({"jina": info.jina, "envs": info.envs}))
}

/// `GET /dry_run`: whether every executor serves, as `{"code": 0|1, "description"}` (the
/// integer code is what Python's HTTP client compares); over a WebSocket (what Python's
/// WebSocket client does), each frame is answered with a binary `StatusProto`.
async fn dry_run(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, _) = req.into_parts();
    if let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &s).await {
        return ws
            .on_upgrade(move |mut socket| async move {
                while let Some(Ok(frame)) = socket.recv().await {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                    let status = s.routing.current().await.dry_run().await.encode_to_vec();
                    if socket.send(Message::Binary(status.into())).await.is_err() {
                        break;
                    }
                }
            })
            .into_response();
    }
    let status = s.routing.current().await.dry_run().await;
    let mut body = request_json::status_json(Some(&status));
    body["code"] = status.code.into();
    Json(body).into_response()
}

/// `GET /`: a WebSocket when the client asks for one, else the search page (a query box that
/// posts to `/search` and lists the matches with their scores).
async fn index(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, _) = req.into_parts();
    match WebSocketUpgrade::from_request_parts(&mut parts, &s).await {
        Ok(ws) => ws
            .max_message_size(s.max_request_bytes)
            .max_frame_size(s.max_request_bytes)
            .on_upgrade(move |socket| websocket(socket, s))
            .into_response(),
        Err(_) => Html(include_str!("search.html")).into_response(),
    }
}

/// Python's WebSocket client sends `bytes(True)` (one zero byte) after its last request.
const END_OF_INPUT: &[u8] = b"\x00";

/// One WebSocket connection: requests in, answers out as they complete. The connection closes
/// after the client's close or end-of-input frame, once every answer is sent; a frame that
/// cannot be read (over `max_request_bytes`: code 1009) closes it with the reason, after the
/// answers to the frames before it.
async fn websocket(socket: WebSocket, s: AppState) {
    let (mut sink, stream) = socket.split();
    let routing = s.routing.clone();
    let limit = s.max_request_bytes;
    let limits = json_limits(&s);
    let admission = s.admission.clone();
    let close = Arc::new(std::sync::Mutex::new(None::<axum::extract::ws::CloseFrame>));
    let (set_close, set_refused) = (close.clone(), close.clone());
    let mut answers = stream
        .scan((), move |_, m| {
            let next = match m {
                Ok(Message::Close(_)) => None,
                Ok(Message::Binary(b)) if b.as_ref() == END_OF_INPUT => None,
                Ok(m) => Some(m),
                Err(e) => {
                    *set_close.lock().unwrap() = Some(close_frame(&e, limit));
                    None
                }
            };
            futures::future::ready(next)
        })
        // The next frame is read only once this one has room in the gateway's budget; a
        // frame that could never fit closes the socket (1009), after the answers before it.
        .then(move |message| {
            let budget = admission.budget.clone();
            async move {
                let needed = match &message {
                    Message::Text(text) => request::json_decoded_bytes(text.as_bytes()),
                    other => 2 * other.clone().into_data().len(),
                };
                (budget.admit_within(needed).await, message)
            }
        })
        .scan((), move |_, (room, message)| {
            futures::future::ready(match room {
                Ok(room) => Some((room, message)),
                Err(over) => {
                    *set_refused.lock().unwrap() = Some(over_limit_close(&over));
                    None
                }
            })
        })
        .map(move |(room, message)| {
            let routing = routing.clone();
            tokio::spawn(async move {
                let router = routing.current().await;
                let reply = answer_frame(&router, message, limits).await;
                drop(room);
                reply
            })
        })
        .buffer_unordered(s.prefetch)
        .boxed();
    while let Some(joined) = answers.next().await {
        let Ok(Some(reply)) = joined else { continue };
        // As Python Jina's face: a request that could not reach an executor closes the socket.
        let closing = matches!(reply, Message::Close(_));
        if sink.send(reply).await.is_err() || closing {
            return;
        }
    }
    let frame = close.lock().unwrap().take();
    let _ = sink.send(Message::Close(frame)).await;
}

/// The close frame (1009, message too big) for a request over a limit.
fn over_limit_close(over: &request::OverLimit) -> axum::extract::ws::CloseFrame {
    axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::SIZE,
        reason: over.short().into(),
    }
}

/// The close frame for a frame that could not be read.
fn close_frame(e: &axum::Error, limit: usize) -> axum::extract::ws::CloseFrame {
    use axum::extract::ws::{CloseFrame, close_code};
    // axum's WebSocket is tungstenite's (the version axum uses): over a size limit is its
    // `Capacity` error.
    let too_big = crate::errors::causes(e).any(|c| {
        matches!(
            c.downcast_ref::<axum_tungstenite::Error>(),
            Some(axum_tungstenite::Error::Capacity(_))
        )
    });
    let (code, reason) = if too_big {
        (
            close_code::SIZE,
            format!("message over the gateway's limit of {limit} bytes (max_request_bytes)"),
        )
    } else {
        (close_code::PROTOCOL, format!("unreadable frame: {e}"))
    };
    // A close reason is at most 123 bytes.
    let mut reason = reason;
    while reason.len() > 123 {
        reason.pop();
    }
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// The close frame for an answer that could not reach an executor (code 1011, the reason as
/// Python Jina gives it), if it is one.
fn in_transit_close(answer: &crate::proto::jina::DataRequestProto) -> Option<Message> {
    use axum::extract::ws::{CloseFrame, close_code};
    let status = answer.header.as_ref()?.status.as_ref()?;
    let failure = request::InTransit::of(status)?;
    let reason = match status.description.len() <= 123 {
        true => status.description.clone(),
        false => match failure {
            request::InTransit::Timeout => {
                "An executor timed out. You can adjust `timeout_send` attribute.".to_string()
            }
            request::InTransit::Unreachable => {
                "Network error while connecting to an executor. It may be down.".to_string()
            }
        },
    };
    Some(Message::Close(Some(CloseFrame {
        code: close_code::ERROR,
        reason: reason.into(),
    })))
}

async fn answer_frame(
    router: &Router,
    message: Message,
    limits: request_json::JsonLimits,
) -> Option<Message> {
    let refused = |over: &request::OverLimit| Some(Message::Close(Some(over_limit_close(over))));
    match message {
        Message::Text(text) => {
            let reply = match request_json::from_json_bytes(text.as_bytes(), None, limits) {
                Ok(req) => {
                    let answer = router.route(req).await;
                    if let Some(close) = in_transit_close(&answer) {
                        return Some(close);
                    }
                    let json = request_json::to_json_bytes(&answer);
                    String::from_utf8(json).expect("serde_json writes UTF-8")
                }
                Err(JsonError::OverLimit(over)) => return refused(&over),
                Err(JsonError::Invalid(e)) => {
                    // Only on this cold path is the frame read whole, for its request id.
                    let body = serde_json::from_str::<Value>(&text).unwrap_or_default();
                    let id = body
                        .get("requestId")
                        .or_else(|| body.pointer("/header/request_id"))
                        .cloned();
                    json!({"error": e.replace("request body", "frame"), "requestId": id})
                        .to_string()
                }
            };
            Some(Message::Text(reply.into()))
        }
        Message::Binary(bytes) => {
            let req = match crate::proto::jina::DataRequestProto::decode(bytes) {
                Ok(r) => r,
                Err(e) => {
                    return Some(Message::Text(
                        json!({"error": format!("the frame is not a DataRequestProto: {e}")})
                            .to_string()
                            .into(),
                    ));
                }
            };
            if let Some(limit) = limits.max_docs
                && let found = request::doc_count(&req)
                && found > limit
            {
                return refused(&request::OverLimit::Docs { found, limit });
            }
            let answer = router.route(req).await;
            Some(
                in_transit_close(&answer)
                    .unwrap_or_else(|| Message::Binary(answer.encode_to_vec().into())),
            )
        }
        _ => None,
    }
}

async fn openapi(State(s): State<AppState>) -> Json<Value> {
    let served = s.served.borrow().clone();
    Json(openapi_spec(&served.endpoints, &served.streaming))
}

/// An OpenAPI 3 description of the REST face.
fn openapi_spec(endpoints: &[String], streaming: &[String]) -> Value {
    let request_body = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}});
    let ok = json!({"200": {"description": "the answer, with the returned documents in `data`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}}, "400": {"description": "a malformed body"}});
    let mut paths = serde_json::Map::new();
    paths.insert("/post".into(), json!({"post": {"summary": "Send a request to any endpoint (execEndpoint in the body)", "requestBody": request_body, "responses": ok}}));
    for e in endpoints
        .iter()
        .filter(|e| !e.starts_with("/_") && !e.starts_with("_"))
    {
        let mut ops = json!({"post": {"summary": format!("Send documents to {e}"), "requestBody": request_body, "responses": ok}});
        if streaming.contains(e) {
            ops["get"] = json!({"summary": format!("Stream one document to {e}: the body (or the query's fields) is the document; what the executor yields comes as Server-Sent Events"), "responses": {"200": {"description": "`event: update` per document, then `event: end`", "content": {"text/event-stream": {}}}, "404": {"description": "no executor streams this endpoint"}}});
        }
        paths.insert(e.clone(), ops);
    }
    paths.insert("/status".into(), json!({"get": {"summary": "Versions and environment", "responses": {"200": {"description": "ok"}}}}));
    paths.insert("/dry_run".into(), json!({"get": {"summary": "Whether every executor is serving", "responses": {"200": {"description": "a status"}}}}));
    json!({
        "openapi": "3.0.2",
        "info": {"title": "jina-rs gateway", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {
            // Every field may be absent or null, as Python Jina's request model allows.
            "Request": {"type": "object", "properties": {
                "data": {"type": "array", "items": {"type": "object"}, "nullable": true, "description": "documents"},
                "parameters": {"type": "object", "nullable": true},
                "execEndpoint": {"type": "string", "nullable": true},
                "targetExecutor": {"type": "string", "nullable": true},
                "header": {"type": "object", "nullable": true}
            }},
            "Response": {"type": "object", "properties": {
                "header": {"type": "object"}, "parameters": {"type": "object"},
                "routes": {"type": "array", "items": {"type": "object"}},
                "data": {"type": "array", "items": {"type": "object"}}
            }}
        }}
    })
}

async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
