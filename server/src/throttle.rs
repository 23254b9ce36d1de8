//! A limit on attempts per client address in a fixed window.
//!
//! - Sign-ins count failures only ([`Throttle::failed`]): one address guessing passwords is
//!   stopped, whichever logins it tries (the per-login lock in `tabiji_storage::sessions` stops
//!   guessing one account from many addresses), and an office behind one address signs in
//!   freely at nine o'clock.
//! - Public and partner endpoints (tracking links, events) count every request
//!   ([`Throttle::hit`]), so one address cannot flood the database with writes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered before the expired ones are dropped.
const FORGET_ABOVE: usize = 10_000;

pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Throttle {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `ip` has used up its failures for the window.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("not poisoned");
        let (start, count) = failures.get(&ip)?;
        let elapsed = now.duration_since(*start);
        (elapsed < self.window && *count >= self.limit).then(|| self.window - elapsed)
    }

    /// A limit of `n` requests a minute per address.
    pub fn per_minute(n: u32) -> Self {
        Throttle::new(n, Duration::from_secs(60))
    }

    /// Counts a request from `ip`; `Some(wait)` when it is over the limit (and then it does
    /// not count, so a client that waits is served again).
    pub fn hit(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if let Some(wait) = self.blocked(ip, now) {
            return Some(wait);
        }
        self.failed(ip, now);
        None
    }

    /// Counts a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() > FORGET_ABOVE {
            failures.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let (start, count) = failures.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        *count += 1;
    }
}

/// Sign-ins: thirty failures in five minutes from one address.
impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(30, Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_failures_per_window() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.blocked(a, t0), None);
            throttle.failed(a, t0);
        }
        assert_eq!(
            throttle.blocked(a, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(throttle.blocked(b, t0), None, "another address");
        assert_eq!(
            throttle.blocked(a, t0 + Duration::from_secs(60)),
            None,
            "a new window"
        );
        throttle.failed(a, t0 + Duration::from_secs(60));
        assert_eq!(throttle.blocked(a, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn every_request_counts_when_hit() {
        let throttle = Throttle::per_minute(2);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(throttle.hit(a, t0), None);
        assert_eq!(throttle.hit(a, t0), None);
        assert_eq!(
            throttle.hit(a, t0 + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            throttle.hit(a, t0 + Duration::from_secs(60)),
            None,
            "refused requests do not count into the next window"
        );
    }
}
