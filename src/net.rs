//! Addresses and ports, decided in one place: how `host:port` is read, how a port is taken
//! (and why it could not be). A leaf: it knows nothing of what listens.

/// A port could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("port {port} is busy (address in use)")]
    PortBusy { port: u16 },
    #[error("cannot listen on {address}: {error}")]
    Other {
        address: String,
        error: std::io::Error,
    },
}

impl ListenError {
    /// The error of binding `host:port`.
    pub fn of(host: &str, port: u16, source: std::io::Error) -> ListenError {
        match source.kind() {
            std::io::ErrorKind::AddrInUse => ListenError::PortBusy { port },
            _ => ListenError::Other {
                address: format!("{host}:{port}"),
                error: source,
            },
        }
    }
}

/// A socket listening on 127.0.0.1:`port` (0: any free port), to hand to a child.
pub(crate) fn listen_local(port: u16) -> Result<std::net::TcpListener, ListenError> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| ListenError::of("127.0.0.1", port, e))
}

/// A free TCP port on this machine (bound, then released for a child that binds it itself).
///
/// It is taken below the kernel's ephemeral range when it can be: a port from that range may
/// be handed to any outgoing connection in the moment between its release here and the
/// child's bind (a Python executor then fails with `PortAlreadyUsed`), while one below it is
/// only ever taken by an explicit bind.
pub fn free_port() -> Result<u16, ListenError> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_start > 11_024 {
        let span = u128::from(ephemeral_start - 10_000);
        let mut seed = uuid::Uuid::new_v4().as_u128();
        for _ in 0..32 {
            let port = 10_000 + (seed % span) as u16;
            seed /= span;
            if seed == 0 {
                seed = uuid::Uuid::new_v4().as_u128();
            }
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ListenError::of("127.0.0.1", 0, e))
}

/// Splits `host:port` (the one reader of an address; `[::1]:80` works too).
pub(crate) fn host_port(address: &str) -> Result<(&str, u16), String> {
    address
        .rsplit_once(':')
        .and_then(|(h, p)| {
            let h = h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h);
            p.parse::<u16>()
                .ok()
                .filter(|_| !h.is_empty())
                .map(|p| (h, p))
        })
        .ok_or_else(|| format!("'{address}' is not an address (expected host:port)"))
}

/// A TCP connection to `uri`'s host and port (`default_port` when it names none), within
/// `wait`, with Nagle's algorithm off: what every gRPC channel of ours dials.
pub(crate) async fn connect_uri(
    uri: &http::Uri,
    default_port: u16,
    wait: std::time::Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(default_port);
    let tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}
