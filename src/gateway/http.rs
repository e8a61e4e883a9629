//! The gateway's REST and WebSocket faces (axum), on the same router:
//!
//! - `POST /post` with `{data, parameters, execEndpoint, targetExecutor}` (Jina 2's REST body);
//! - `POST /<endpoint>` for every endpoint the executors expose, `{data, parameters, header}`;
//! - `GET /status`, `GET /dry_run`, `GET /openapi.json`, and `GET /docs` (an offline page);
//! - `GET /`: the search page (a query box posting to `/search`), or, upgraded to a WebSocket: each text frame is a JSON request and is answered with a
//!   JSON response carrying the same request id; each binary frame is a `DataRequestProto`
//!   (what Python Jina's WebSocket client sends) and is answered in kind. At most `prefetch`
//!   requests of one connection are in flight.

use super::router::Router;
use crate::request::json as request_json;
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
    router: Arc<Router>,
    /// The executors' endpoints, discovered once at start.
    endpoints: Arc<Vec<String>>,
    prefetch: usize,
}

/// The REST + WebSocket application.
pub async fn app(router: Arc<Router>, prefetch: usize) -> axum::Router {
    let endpoints = router.endpoints().await.endpoints;
    let state = AppState {
        router,
        endpoints: Arc::new(endpoints),
        prefetch: prefetch.max(1),
    };
    axum::Router::new()
        .route("/", get(index))
        .route("/post", post(post_jina2))
        .route("/status", get(status))
        .route("/dry_run", get(dry_run))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs_page))
        .route("/{*endpoint}", post(post_endpoint))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves (then as `crate::shutdown` says).
pub async fn serve(
    app: axum::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
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
fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the 400 answer itself, on a cold path"
)]
fn parse_body(body: &Bytes) -> Result<Value, Response> {
    // The body is optional (a parameters-free request with no documents, like `curl -X POST`).
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the request body is not valid JSON: {e}")))
}

async fn post_jina2(State(s): State<AppState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    answer(&s, &body, None).await
}

async fn post_endpoint(
    State(s): State<AppState>,
    Path(endpoint): Path<String>,
    body: Bytes,
) -> Response {
    let endpoint = format!("/{endpoint}");
    if !s.endpoints.contains(&endpoint) {
        let known = s
            .endpoints
            .iter()
            .filter(|e| !e.starts_with("_jina"))
            .cloned()
            .collect::<Vec<_>>();
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no executor serves the endpoint '{endpoint}' (known: {})", known.join(", "))}))).into_response();
    }
    match parse_body(&body) {
        Ok(b) => answer(&s, &b, Some(&endpoint)).await,
        Err(r) => r,
    }
}

async fn answer(s: &AppState, body: &Value, endpoint: Option<&str>) -> Response {
    match request_json::from_json(body, endpoint) {
        Ok(req) => Json(request_json::to_json(&s.router.route(req).await)).into_response(),
        Err(e) => bad_request(e),
    }
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
                    let status = s.router.dry_run().await.encode_to_vec();
                    if socket.send(Message::Binary(status.into())).await.is_err() {
                        break;
                    }
                }
            })
            .into_response();
    }
    let status = s.router.dry_run().await;
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
            .on_upgrade(move |socket| websocket(socket, s))
            .into_response(),
        Err(_) => Html(include_str!("search.html")).into_response(),
    }
}

/// Python's WebSocket client sends `bytes(True)` (one zero byte) after its last request.
const END_OF_INPUT: &[u8] = b"\x00";

/// One WebSocket connection: requests in, answers out as they complete. The connection closes
/// after the client's close or end-of-input frame, once every answer is sent.
async fn websocket(socket: WebSocket, s: AppState) {
    let (mut sink, stream) = socket.split();
    let router = s.router.clone();
    let mut answers = stream
        .take_while(|m| {
            let more = match m {
                Ok(Message::Close(_)) | Err(_) => false,
                Ok(Message::Binary(b)) => b.as_ref() != END_OF_INPUT,
                Ok(_) => true,
            };
            futures::future::ready(more)
        })
        .filter_map(|m| futures::future::ready(m.ok()))
        .map(move |message| {
            let router = router.clone();
            tokio::spawn(async move { answer_frame(&router, message).await })
        })
        .buffer_unordered(s.prefetch);
    while let Some(joined) = answers.next().await {
        let Ok(Some(reply)) = joined else { continue };
        if sink.send(reply).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

async fn answer_frame(router: &Router, message: Message) -> Option<Message> {
    match message {
        Message::Text(text) => {
            let reply = match serde_json::from_str::<Value>(&text) {
                Err(e) => json!({"error": format!("the frame is not valid JSON: {e}")}),
                Ok(body) => match request_json::from_json(&body, None) {
                    Ok(req) => request_json::to_json(&router.route(req).await),
                    Err(e) => {
                        json!({"error": e, "requestId": body.get("requestId").or_else(|| body.pointer("/header/request_id")).cloned()})
                    }
                },
            };
            Some(Message::Text(reply.to_string().into()))
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
            Some(Message::Binary(
                router.route(req).await.encode_to_vec().into(),
            ))
        }
        _ => None,
    }
}

async fn openapi(State(s): State<AppState>) -> Json<Value> {
    Json(openapi_spec(&s.endpoints))
}

/// An OpenAPI 3 description of the REST face.
fn openapi_spec(endpoints: &[String]) -> Value {
    let request_body = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}});
    let ok = json!({"200": {"description": "the answer, with the returned documents in `data`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}}, "400": {"description": "a malformed body"}});
    let mut paths = serde_json::Map::new();
    paths.insert("/post".into(), json!({"post": {"summary": "Send a request to any endpoint (execEndpoint in the body)", "requestBody": request_body, "responses": ok}}));
    for e in endpoints
        .iter()
        .filter(|e| !e.starts_with("/_") && !e.starts_with("_"))
    {
        paths.insert(e.clone(), json!({"post": {"summary": format!("Send documents to {e}"), "requestBody": request_body, "responses": ok}}));
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
