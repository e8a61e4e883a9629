//! Who may use the daemon: the token every request but `GET /` needs, compared in constant
//! time, with failed attempts limited per address; and the owner secret that makes each
//! executor visible to the Flow that started it alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header that carries the owner secret of the Flow that started an executor.
pub(crate) const OWNER_HEADER: &str = "x-jina-owner";
/// How many failed attempts an address may make in [`FAILURE_WINDOW`] before every request of
/// its is refused until the window ends.
const FAILURES_ALLOWED: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How many addresses with failures are remembered (the oldest are forgotten first).
const ADDRESSES_KEPT: usize = 4096;

/// A secret, compared in constant time.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(secret: String) -> Secret {
        Secret(secret)
    }

    /// A fresh random secret: 244 random bits from the OS (two v4 UUIDs), as hex.
    pub(crate) fn generate() -> Secret {
        let bytes: Vec<u8> = (0..2)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .collect();
        Secret(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time that depends on its length alone.
    pub(crate) fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        let differ = a
            .iter()
            .zip(b)
            .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
        differ == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Failed attempts per address, in the current window.
#[derive(Default)]
pub(crate) struct Failures {
    by_address: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Failures {
    /// Whether `address` has used up its failed attempts.
    pub(crate) fn blocked(&self, address: IpAddr) -> bool {
        let by_address = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        by_address
            .get(&address)
            .is_some_and(|(since, n)| since.elapsed() < FAILURE_WINDOW && *n >= FAILURES_ALLOWED)
    }

    /// Counts a failed attempt of `address`.
    pub(crate) fn failed(&self, address: IpAddr) {
        let mut by_address = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if by_address.len() >= ADDRESSES_KEPT && !by_address.contains_key(&address) {
            by_address.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
            if by_address.len() >= ADDRESSES_KEPT {
                by_address.clear();
            }
        }
        let entry = by_address.entry(address).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_itself_only() {
        let s = Secret::new("abc".into());
        assert!(s.matches("abc"));
        for wrong in ["", "ab", "abd", "abcd", "ABC"] {
            assert!(!s.matches(wrong), "{wrong}");
        }
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.matches(b.as_str()));
    }

    #[test]
    fn an_address_is_blocked_after_its_failures() {
        let failures = Failures::default();
        let (me, other) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        for _ in 0..FAILURES_ALLOWED {
            assert!(!failures.blocked(me));
            failures.failed(me);
        }
        assert!(failures.blocked(me));
        assert!(!failures.blocked(other));
    }
}
