//! gRPC plumbing shared by every server and client of ours: server settings, message size
//! limits, reflection, `_status` info, and channels to peers. Nothing here knows what a
//! request means.

mod admission;
mod gather;

pub use admission::{AdmitMessages, Admitted, AdmittedBody, AdmittedService};
pub use gather::Gathered;

use crate::proto::jina::JinaInfoProto;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Server};

/// Lifts tonic's 4 MB message limit on a generated server or client: Jina sends large
/// batches and sets no limit either.
#[macro_export]
macro_rules! unlimited {
    ($svc:expr) => {
        $svc.max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    };
}

/// Caps what a generated server decodes at `$limit` bytes (over it: RESOURCE_EXHAUSTED, see
/// [`over_limit_is_resource_exhausted`]) and lifts the cap on what it sends.
#[macro_export]
macro_rules! limited {
    ($svc:expr, $limit:expr) => {
        $svc.max_decoding_message_size($limit)
            .max_encoding_message_size(usize::MAX)
    };
}

/// The codec of every service generated from `proto/` (build.rs names it): prost's, except
/// that bytes which are not the message expected are the sender's error, INVALID_ARGUMENT
/// naming the message, where prost's codec says INTERNAL.
#[derive(Debug, Clone, Default)]
pub struct Codec<T, U>(tonic_prost::ProstCodec<T, U>);

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <tonic_prost::ProstCodec<T, U> as tonic::codec::Codec>::Encoder;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(self.0.decoder())
    }
}

/// [`Codec`]'s decoder.
#[derive(Debug)]
pub struct Decoder<U>(tonic_prost::ProstDecoder<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<U>, tonic::Status> {
        self.0.decode(buf).map_err(|status| {
            let name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            tonic::Status::invalid_argument(format!(
                "the message could not be read as a {name}: {}",
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}

/// A message over a server's limit is refused by tonic with OUT_OF_RANGE before any handler
/// runs; gRPC's code for "too big for me" is RESOURCE_EXHAUSTED, which a `Call` stream already
/// gives. This rewrites the code of such an answer (it is trailers-only: the status is in its
/// headers) on every unary method alike.
pub fn over_limit_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: i32 = tonic::Code::OutOfRange as i32;
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
    if code == Some(OUT_OF_RANGE) {
        let code = tonic::Code::ResourceExhausted as i32;
        headers.insert("grpc-status", http::HeaderValue::from(code));
    }
    response
}

/// HTTP/2 flow-control windows: a big request (megabytes of tensors) flows without waiting
/// for window updates every megabyte (hyper's server default), on loopback or a LAN.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;
/// The largest HTTP/2 frame we take: big messages in fewer frames and reads.
const MAX_FRAME: u32 = 1 << 20;

/// A server builder with our transport settings (no Nagle delay, keep-alive, big windows).
pub fn server_builder() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(MAX_FRAME))
}

/// Accepted connections of `listener`, with Nagle's algorithm off: a small answer must not
/// wait for the peer's delayed ACK (40 ms on Linux). `Server::tcp_nodelay` does not reach
/// connections we accept ourselves.
fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// [`incoming`], each connection's frames gathered into as few writes as a turn of the
/// runtime allows ([`Gathered`]).
fn gathered(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<Gathered<tokio::net::TcpStream>>> {
    use futures::StreamExt;
    incoming(listener).map(|accepted| accepted.map(Gathered::new))
}

/// The answer of a server-streaming RPC: messages as they come, or the status that ends it.
pub type ReplyStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// How a gRPC server of ours serves, besides its services.
#[derive(Default)]
pub struct ServeOptions {
    /// Serve TLS with this identity.
    pub tls: Option<crate::tls::ServerTls>,
    /// What grpc.health says, as it changes (true: SERVING); None: always SERVING.
    pub serving: Option<tokio::sync::watch::Receiver<bool>>,
    /// Gather each connection's small writes until the runtime's turn ends ([`Gathered`], on
    /// plain TCP): for a server whose tasks are all short (the gateway), not one that runs
    /// handlers on its own threads, where an answer would wait behind the next call.
    pub gather_writes: bool,
}

/// Serves `routes` (our Jina services) on `listener`, with grpc.health and gRPC reflection v1
/// and v1alpha beside them, until `shutdown` resolves; requests in flight get
/// [`crate::shutdown::CONNECTION_GRACE`] to finish.
/// The executor server and the gateway both serve through this.
pub async fn serve(
    routes: tonic::service::Routes,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use tonic_health::ServingStatus;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    if let Some(mut serving) = options.serving {
        tokio::spawn(async move {
            loop {
                let status = match *serving.borrow_and_update() {
                    true => ServingStatus::Serving,
                    false => ServingStatus::NotServing,
                };
                health.set_service_status("", status).await;
                if serving.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let server = server_builder()
        .layer(tower::util::MapResponseLayer::new(
            over_limit_is_resource_exhausted,
        ))
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1())
        .add_service(reflection_v1alpha());
    match options.tls {
        Some(tls) => {
            let connections = tls.incoming(listener).into_stream();
            crate::shutdown::serve_with_grace("gRPC server", shutdown, |stop| {
                server.serve_with_incoming_shutdown(connections, stop)
            })
            .await
        }
        None if options.gather_writes => {
            crate::shutdown::serve_with_grace("gRPC server", shutdown, |stop| {
                server.serve_with_incoming_shutdown(gathered(listener), stop)
            })
            .await
        }
        None => {
            crate::shutdown::serve_with_grace("gRPC server", shutdown, |stop| {
                server.serve_with_incoming_shutdown(incoming(listener), stop)
            })
            .await
        }
    }
}

/// gRPC reflection (v1) over our protos and health.
fn reflection_v1() -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("our descriptor set is valid")
}

/// gRPC reflection (v1alpha, what Python's grpcio-reflection asks) over our protos and health.
fn reflection_v1alpha() -> tonic_reflection::server::v1alpha::ServerReflectionServer<
    impl tonic_reflection::server::v1alpha::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("our descriptor set is valid")
}

/// How to reach `host:port` over gRPC, over TLS when `tls` says whom to trust.
pub fn endpoint(
    host: &str,
    port: u16,
    connect_timeout: Duration,
    tls: Option<&crate::tls::ClientTls>,
) -> Result<Dial, String> {
    // `http` even over TLS: our connector does the handshake, and tonic refuses an `https`
    // URI unless its own TLS does.
    let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| format!("bad address {host}:{port}: {e}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW));
    Ok(Dial {
        endpoint,
        tls: tls.map(|t| t.grpc(connect_timeout)),
        connect_timeout,
    })
}

/// A gRPC endpoint and the TLS it is reached over (our connector: see [`crate::tls::ClientTls`]).
pub struct Dial {
    endpoint: Endpoint,
    tls: Option<crate::tls::GrpcConnector>,
    connect_timeout: Duration,
}

impl Dial {
    /// Connects now.
    pub async fn connect(self) -> Result<Channel, tonic::transport::Error> {
        match self.tls {
            Some(tls) => self.endpoint.connect_with_connector(tls).await,
            None => {
                let plain = plain_connector(self.connect_timeout);
                self.endpoint.connect_with_connector(plain).await
            }
        }
    }

    /// Connects on the first call, and again after the connection is lost.
    pub fn connect_lazy(self) -> Channel {
        match self.tls {
            Some(tls) => self.endpoint.connect_with_connector_lazy(tls),
            None => {
                let plain = plain_connector(self.connect_timeout);
                self.endpoint.connect_with_connector_lazy(plain)
            }
        }
    }
}

/// Plain TCP to a URI's host and port (within the connect timeout, Nagle's algorithm off),
/// each call's frames gathered into one write ([`Gathered`]).
fn plain_connector(
    wait: Duration,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<Gathered<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |uri: http::Uri| async move {
        let tcp = crate::net::connect_uri(&uri, 80, wait).await?;
        Ok(hyper_util::rt::TokioIo::new(Gathered::new(tcp)))
    })
}

/// A lazily connecting channel to `host:port`: one HTTP/2 connection, requests multiplexed.
pub fn channel(
    host: &str,
    port: u16,
    connect_timeout: Duration,
    tls: Option<&crate::tls::ClientTls>,
) -> Result<Channel, String> {
    Ok(endpoint(host, port, connect_timeout, tls)?.connect_lazy())
}

/// How often a name that stands for several copies is resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Whether `host` is a DNS name that may stand for several copies (a Kubernetes headless
/// Service, a Docker network alias), rather than one address.
pub fn is_service_name(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_err()
        && host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_err()
        && host != "localhost"
}

/// A channel to every address a DNS name resolves to, spreading requests over them one by
/// one (tower's power-of-two-choices balancer): how the gateway reaches the replicas behind a
/// headless Service without a service mesh. The name is resolved again every
/// [`RESOLVE_EVERY`], so copies that come and go are followed; the receiver says how many
/// addresses it resolves to now (None before the first answer), so that a call with none can
/// fail at once rather than wait for one. Must be
/// called inside a tokio runtime: the resolver is a task, which ends with the channel.
pub fn balanced_channel(
    host: &str,
    port: u16,
    connect_timeout: Duration,
) -> Result<(Channel, tokio::sync::watch::Receiver<Option<usize>>), String> {
    use tonic::transport::channel::Change;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| format!("{host}:{port}: no runtime to resolve the name on"))?;
    let (channel, changes) = Channel::balance_channel::<std::net::SocketAddr>(64);
    let (count, addresses) = tokio::sync::watch::channel(None);
    let name = format!("{host}:{port}");
    runtime.spawn(async move {
        let mut known = std::collections::BTreeSet::new();
        while !changes.is_closed() {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(found) => {
                    let found: std::collections::BTreeSet<_> = found.collect();
                    for gone in known.difference(&found) {
                        let _ = changes.send(Change::Remove(*gone)).await;
                    }
                    for new in found.difference(&known) {
                        let host = match new {
                            std::net::SocketAddr::V4(a) => a.ip().to_string(),
                            std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
                        };
                        if let Ok(endpoint) = endpoint(&host, new.port(), connect_timeout, None) {
                            let _ = changes.send(Change::Insert(*new, endpoint.endpoint)).await;
                        }
                    }
                    if found != known {
                        tracing::debug!("{name} resolves to {found:?}");
                    }
                    count.send_replace(Some(found.len()));
                    known = found;
                }
                // A name not there yet (a Service without ready pods): keep what we have.
                Err(e) => {
                    tracing::debug!("{name}: {e}");
                    count.send_if_modified(|n| match n {
                        None => {
                            *n = Some(0);
                            true
                        }
                        Some(_) => false,
                    });
                }
            }
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    });
    Ok((channel, addresses))
}

/// What `_status` answers: our versions and the JINA_* environment.
pub fn jina_info() -> JinaInfoProto {
    let jina = [
        ("jina-rs", env!("CARGO_PKG_VERSION")),
        ("jina-proto", "0.1.27"),
        ("architecture", std::env::consts::ARCH),
        ("platform", std::env::consts::OS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let envs = std::env::vars()
        .filter(|(k, _)| k.starts_with("JINA_"))
        .collect();
    JinaInfoProto { jina, envs }
}

/// Asks `host:port` for its gRPC health once, in plain text: Ok when it says SERVING, else why
/// not.
pub async fn check_serving(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    check_serving_tls(host, port, timeout, None).await
}

/// [`check_serving`], over TLS when `tls` says whom to trust.
pub async fn check_serving_tls(
    host: &str,
    port: u16,
    timeout: Duration,
    tls: Option<&crate::tls::ClientTls>,
) -> Result<(), String> {
    let attempt = async {
        let channel = endpoint(host, port, timeout, tls)?
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {}", crate::errors::root_cause(&e)))?;
        check_channel_serving(channel, timeout).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        .map_err(|e| format!("{host}:{port}: {e}"))
}

/// Asks the peer of `channel` for its gRPC health once.
pub async fn check_channel_serving(channel: Channel, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut client = HealthClient::new(channel);
    let ask = client.check(HealthCheckRequest {
        service: String::new(),
    });
    let reply = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|s| format!("health check failed: {} ({})", s.message(), s.code()))?
        .into_inner();
    match reply.status {
        1 => Ok(()),
        2 => Err("not serving (an executor is down)".into()),
        other => Err(format!("not serving (health status {other})")),
    }
}
