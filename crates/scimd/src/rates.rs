//! Request and error rates of this process's SCIM listener, for the console's service health
//! page: a ring of one-second buckets over the last hour. (Prometheus has the same counts as
//! `scimd_http_requests_total`, summed over every replica by whoever scrapes them.)

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Seconds kept.
const SPAN: usize = 3600;

struct Ring {
    start: Instant,
    /// Per second since `start`, modulo `SPAN`: (the second, requests, errors).
    buckets: Vec<(u64, u64, u64)>,
}

fn ring() -> &'static Mutex<Ring> {
    static RING: OnceLock<Mutex<Ring>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(Ring { start: Instant::now(), buckets: vec![(u64::MAX, 0, 0); SPAN] }))
}

/// Counts one finished request (an error: status 500 and above, or 400 and above except 404).
pub fn record(status: u16) {
    let error = status >= 400 && status != 404;
    let mut r = ring().lock().unwrap_or_else(|p| p.into_inner());
    let sec = r.start.elapsed().as_secs();
    let slot = (sec % SPAN as u64) as usize;
    if let Some(b) = r.buckets.get_mut(slot) {
        if b.0 != sec {
            *b = (sec, 0, 0);
        }
        b.1 += 1;
        b.2 += u64::from(error);
    }
}

/// Requests and errors over a window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// The window, in seconds.
    pub seconds: u64,
    /// Requests in it.
    pub requests: u64,
    /// Errors in it.
    pub errors: u64,
    /// Requests per second.
    pub per_second: f64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
}

/// The counts of the last `window` (at most an hour).
pub fn window(window: Duration) -> Window {
    let r = ring().lock().unwrap_or_else(|p| p.into_inner());
    let now = r.start.elapsed().as_secs();
    let span = window.as_secs().clamp(1, SPAN as u64);
    let (mut requests, mut errors) = (0, 0);
    for b in &r.buckets {
        if b.0 != u64::MAX && b.0 <= now && now - b.0 < span {
            requests += b.1;
            errors += b.2;
        }
    }
    Window {
        seconds: span,
        requests,
        errors,
        per_second: requests as f64 / span as f64,
        error_rate: if requests > 0 { errors as f64 / requests as f64 } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_the_windows() {
        let before = window(Duration::from_secs(60));
        record(200);
        record(400);
        record(404);
        let after = window(Duration::from_secs(60));
        assert!(after.requests >= before.requests + 3);
        assert!(after.errors > before.errors);
    }
}
