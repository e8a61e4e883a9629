//! gRPC plumbing shared by every server and client of ours: server settings, message size
//! limits, reflection, `_status` info, and channels to peers. Nothing here knows what a
//! request means.

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

/// A server builder with our transport settings (no Nagle delay, keep-alive).
pub fn server_builder() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
}

/// Accepted connections of `listener`, with Nagle's algorithm off: a small answer must not
/// wait for the peer's delayed ACK (40 ms on Linux). `Server::tcp_nodelay` does not reach
/// connections we accept ourselves.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves `routes` (our Jina services) on `listener`, with grpc.health (SERVING) and gRPC
/// reflection v1 and v1alpha beside them, until `shutdown` resolves; requests in flight get
/// [`crate::shutdown::CONNECTION_GRACE`] to finish.
/// The executor server and the gateway both serve through this.
pub async fn serve(
    routes: tonic::service::Routes,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let server = server_builder()
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1())
        .add_service(reflection_v1alpha());
    crate::shutdown::serve_with_grace("gRPC server", shutdown, |stop| {
        server.serve_with_incoming_shutdown(incoming(listener), stop)
    })
    .await
}

/// gRPC reflection (v1) over our protos and health.
pub fn reflection_v1() -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("our descriptor set is valid")
}

/// gRPC reflection (v1alpha, what Python's grpcio-reflection asks) over our protos and health.
pub fn reflection_v1alpha() -> tonic_reflection::server::v1alpha::ServerReflectionServer<
    impl tonic_reflection::server::v1alpha::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("our descriptor set is valid")
}

/// A lazily connecting channel to `host:port`: one HTTP/2 connection, requests multiplexed.
pub fn channel(host: &str, port: u16, connect_timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| format!("bad address {host}:{port}: {e}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    Ok(endpoint.connect_lazy())
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

/// Asks `host:port` for its gRPC health once: Ok when it says SERVING, else why not.
pub async fn check_serving(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let attempt = async {
        let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|e| format!("bad address {host}:{port}: {e}"))?
            .connect_timeout(timeout);
        let channel = endpoint.connect().await.map_err(|e| {
            format!(
                "cannot connect to {host}:{port}: {}",
                crate::errors::root_cause(&e)
            )
        })?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| {
                format!(
                    "{host}:{port} answered health with {}: {}",
                    s.code(),
                    s.message()
                )
            })?
            .into_inner();
        match reply.status {
            1 => Ok(()),
            other => Err(format!(
                "{host}:{port} is not serving (health status {other})"
            )),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("{host}:{port} did not answer within {timeout:?}")))
}
