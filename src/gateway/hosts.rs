//! Which names the gateway's HTTP and WebSocket faces answer to: the guard against DNS
//! rebinding.
//!
//! A web page of `evil.example` can make its own name resolve to 127.0.0.1 after the page has
//! loaded; the browser then sends the page's requests to the Flow on the user's machine as
//! *same-origin* requests (`Host` and `Origin` both `evil.example`), so no CORS rule stops
//! them. What gives the attack away is the `Host` header: it names a host the gateway is not.
//! So a request is served only when its `Host` is an IP address (a rebinding needs a name), a
//! loopback name (`localhost`, `*.localhost`), this machine's name, the address the gateway
//! binds, or a name the Flow lists in `allowed_hosts` (globs; `*` allows any, as Vite's
//! `allowedHosts: true` and Jupyter's `allow_remote_access` do).
//!
//! It owns only that decision; what a refused request gets back is the HTTP face's.

use std::net::IpAddr;

/// The names a gateway answers to, besides IP addresses and loopback names.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedHosts {
    patterns: Vec<glob::Pattern>,
    any: bool,
}

impl AllowedHosts {
    /// The Flow's `allowed_hosts` (each checked by [`check_pattern`] where it was read), this
    /// machine's name and the bound `host`.
    pub(crate) fn new(allowed: &[String], bound_host: &str) -> AllowedHosts {
        let mut names: Vec<String> = allowed.to_vec();
        if let Some(machine) = machine_name() {
            names.push(format!("{machine}.local"));
            names.push(machine);
        }
        names.push(bound_host.to_string());
        let patterns = names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .map(|n| glob::Pattern::new(&n).unwrap_or_else(|_| literal(&n)))
            .collect();
        AllowedHosts {
            any: allowed.iter().any(|n| n == "*"),
            patterns,
        }
    }

    /// Whether a request whose `Host` header is `host` (with or without its port) is served.
    pub(crate) fn allows(&self, host: &str) -> bool {
        // No Host at all (HTTP/1.0) is no browser's request, so no rebinding.
        if self.any || host.is_empty() {
            return true;
        }
        let name = strip_port(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.patterns.iter().any(|p| p.matches(name))
    }
}

/// An `allowed_hosts` entry: a host name, or a glob of them (`*.example.com`, `*`).
pub(crate) fn check_pattern(name: &str) -> Result<(), String> {
    glob::Pattern::new(name)
        .map(|_| ())
        .map_err(|e| format!("'{name}' is not a host name or a glob of them: {e}"))
}

fn literal(name: &str) -> glob::Pattern {
    glob::Pattern::new(&glob::Pattern::escape(name)).expect("an escaped name is a pattern")
}

/// `name:port` → `name`; `[::1]:port` and `[::1]` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// This machine's name, as the kernel has it.
fn machine_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_loopback_names_pass_and_other_names_do_not() {
        let hosts = AllowedHosts::new(&[], "0.0.0.0");
        for ok in [
            "127.0.0.1:8080",
            "[::1]:80",
            "10.1.2.3",
            "localhost:1",
            "app.localhost",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "rebind.evil.example:8080",
            "evil.example",
            "localhost.evil.example",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn listed_names_and_globs_pass() {
        let listed = ["search.example.com".to_string(), "gateway.*".to_string()];
        let hosts = AllowedHosts::new(&listed, "0.0.0.0");
        assert!(hosts.allows("Search.Example.com:443"));
        assert!(hosts.allows("gateway.default.svc.cluster.local:8080"));
        assert!(!hosts.allows("example.com"));
        assert!(AllowedHosts::new(&["*".into()], "0.0.0.0").allows("evil.example"));
        assert!(AllowedHosts::new(&[], "my-box.lan").allows("my-box.lan:9"));
        assert!(check_pattern("[").is_err());
    }
}
