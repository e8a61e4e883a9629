//! TLS with rustls (ring): the server side of the gateway and of `jina executor` (a
//! certificate chain and its key, Jina 3's `ssl_certfile` / `ssl_keyfile`), and the client side
//! of `jina client`, the Rust client and a Flow reaching an external executor (the system's
//! trusted roots, or a CA file).
//!
//! It builds configurations from files and accepts TLS connections (handshakes side by side,
//! a plain-text client told so); what is served over them lives with each protocol.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// Why a TLS setting cannot be used. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it")]
    NoKey { path: PathBuf },
    #[error("{cert} and {key} do not make a TLS identity: {why}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
    #[error("no trusted root certificate (give a CA file)")]
    NoRoots,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// Makes ring the process's crypto provider, once, whoever asks first. Anything that builds a
/// TLS-capable client (reqwest too, even for plain HTTP) must call this first.
pub fn install_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A server's certificate chain and key, checked to belong together.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Reads a certificate chain and its private key (PEM files).
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain = certificates(cert, &cert_pem)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| TlsError::NoKey { path: key.into() })?;
        let mut config = rustls::ServerConfig::builder_with_provider(install_provider())
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| TlsError::Identity {
                cert: cert.into(),
                key: key.into(),
                why: e.to_string(),
            })?;
        // HTTP/2 for gRPC and REST; HTTP/1.1 for browsers and WebSocket upgrades.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// Accepts connections on `listener` and yields them once their TLS handshake is done.
    /// Handshakes run side by side, so a slow or silent client holds up nobody. A client that
    /// speaks plain text gets a plain-text answer saying that this port serves TLS.
    pub(crate) fn incoming(&self, listener: TcpListener) -> TlsIncoming {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let local = listener.local_addr();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        TlsIncoming { rx, local, task }
    }
}

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain-text client reads from a TLS port before it is closed.
const PLAIN_TEXT_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 57\r\n\r\nthis port serves TLS: use https:// or wss:// (or --tls)\r\n";

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    // A TLS connection opens with a handshake record (content type 22).
    if n == 1 && first[0] != 22 {
        let mut tcp = tcp;
        let _ = tcp.write_all(PLAIN_TEXT_ANSWER).await;
        let _ = tcp.shutdown().await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the client spoke plain text to a TLS port",
        ));
    }
    acceptor.accept(tcp).await
}

/// The TLS connections of a listener, handshake done: an axum listener, and a stream for tonic.
pub(crate) struct TlsIncoming {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsIncoming {
    /// The connections as a stream (what tonic's `serve_with_incoming` takes).
    pub(crate) fn into_stream(
        self,
    ) -> impl futures::Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
        futures::stream::unfold(self, |mut me| async move {
            let (stream, _) = me.rx.recv().await?;
            Some((Ok(stream), me))
        })
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop never ends while this exists.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// What a client trusts: the system's roots, or the certificates of a CA file. A certificate
/// in that file is also trusted as itself (pinned): a server that presents exactly it is
/// accepted whatever its name, issuer or CA flag, as curl and Python's gRPC accept a
/// self-signed `openssl req -x509` certificate given as the CA. That is how a client trusts
/// the certificate a Flow on this machine recorded, or the one its owner handed out.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trusts `ca_file` when given (its certificates as roots and as pins), else the system's
    /// roots.
    pub fn new(ca_file: Option<&Path>) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut pinned = vec![];
        match ca_file {
            Some(path) => {
                let pem = read(path)?;
                for cert in certificates(path, &pem)? {
                    // A certificate webpki cannot take as a root may still be pinned.
                    let _ = roots.add(cert.clone());
                    pinned.push(cert);
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() && pinned.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let provider = install_provider();
        let webpki = match roots.is_empty() {
            true => None,
            false => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|_| TlsError::NoRoots)?,
            ),
        };
        let verifier = PinnedOrIssued {
            pinned,
            webpki,
            provider: provider.clone(),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// A connector for tonic channels to `host` (HTTP/2 by ALPN), with this trust: tonic's
    /// own TLS knows roots only, and would refuse a pinned certificate.
    pub(crate) fn grpc(&self, connect_timeout: Duration) -> GrpcConnector {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        GrpcConnector {
            config: Arc::new(config),
            connect_timeout,
        }
    }

    /// The rustls configuration (HTTP/1.1 ALPN, for reqwest and WebSocket).
    pub fn rustls(&self) -> rustls::ClientConfig {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// A server is trusted when it presents a pinned certificate, or else a chain to a root that
/// webpki accepts for its name.
#[derive(Debug)]
struct PinnedOrIssued {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrIssued {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    // The handshake's signatures are checked against the presented certificate's key either
    // way: a pinned certificate proves nothing without its private key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens TLS connections for a tonic channel: TCP (no Nagle delay), then the handshake with
/// a [`ClientTls`]'s trust, naming the host of the channel's URI.
#[derive(Clone)]
pub(crate) struct GrpcConnector {
    config: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

type TlsConnection =
    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<crate::grpc::Gathered<TcpStream>>>;

impl tower::Service<http::Uri> for GrpcConnector {
    type Response = TlsConnection;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TlsConnection>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.config.clone();
        let wait = self.connect_timeout;
        Box::pin(async move {
            let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string();
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| invalid(format!("{host}: not a server name: {e}")))?;
            let tcp = crate::net::connect_uri(&uri, 443, wait).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, crate::grpc::Gathered::new(tcp))
                .await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}
