//! A warning that may repeat thousands of times a second (every request to a dead executor
//! fails the same way) is logged at most once per period, with the count of those it held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) struct RateLimitedLog {
    period: Duration,
    state: Mutex<State>,
}

struct State {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimitedLog {
    pub(super) fn new(period: Duration) -> RateLimitedLog {
        RateLimitedLog {
            period,
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// Logs `message` as a warning unless one was logged less than a period ago.
    pub(super) fn warn(&self, message: &str) {
        if let Some(held_back) = self.admit(Instant::now()) {
            match held_back {
                0 => tracing::warn!("{message}"),
                n => tracing::warn!(
                    "{message} (and {n} more like it in the last {:?})",
                    self.period
                ),
            }
        }
    }

    /// Some(number held back since the last one) when a line may go out at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap();
        match s.last {
            Some(last) if now.duration_since(last) < self.period => {
                s.held_back += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_held_back() {
        let log = RateLimitedLog::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(log.admit(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(log.admit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(log.admit(t0 + Duration::from_secs(5)), Some(1000));
        assert_eq!(log.admit(t0 + Duration::from_secs(6)), None);
    }
}
