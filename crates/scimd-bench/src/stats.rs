//! Latency samples, counters and the figures derived from them.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one worker (then a whole scenario) recorded for one label.
#[derive(Debug, Default, Clone)]
pub struct Rec {
    /// Latency of each finished operation, in microseconds.
    pub lat_us: Vec<u32>,
    /// Operations that failed (wrong status, bad body, transport error).
    pub errors: u64,
    /// A few error messages, to show what went wrong.
    pub samples: Vec<String>,
}

impl Rec {
    pub fn ok(&mut self, d: Duration) {
        self.lat_us.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn fail(&mut self, d: Duration, msg: String) {
        self.ok(d);
        self.errors += 1;
        if self.samples.len() < 3 {
            self.samples.push(msg);
        }
    }

    pub fn merge(&mut self, other: Rec) {
        self.lat_us.extend(other.lat_us);
        self.errors += other.errors;
        for s in other.samples {
            if self.samples.len() < 3 {
                self.samples.push(s);
            }
        }
    }
}

/// Response sizes and statuses per HTTP method: what the ceiling must answer.
#[derive(Debug, Default, Clone)]
pub struct Shape {
    /// method -> (status -> count, total body bytes, responses)
    pub by_method: BTreeMap<String, (BTreeMap<u16, u64>, u64, u64)>,
}

impl Shape {
    pub fn add(&mut self, method: &str, status: u16, bytes: usize) {
        let e = self.by_method.entry(method.to_owned()).or_default();
        *e.0.entry(status).or_default() += 1;
        e.1 += bytes as u64;
        e.2 += 1;
    }

    pub fn merge(&mut self, other: Shape) {
        for (m, (st, bytes, n)) in other.by_method {
            let e = self.by_method.entry(m).or_default();
            for (s, c) in st {
                *e.0.entry(s).or_default() += c;
            }
            e.1 += bytes;
            e.2 += n;
        }
    }

    /// `METHOD=STATUS:BYTES` for each method: the most frequent status, the mean body size.
    pub fn ceiling_args(&self) -> Vec<String> {
        self.by_method
            .iter()
            .map(|(m, (st, bytes, n))| {
                let status = st.iter().max_by_key(|(_, c)| **c).map_or(200, |(s, _)| *s);
                let mean = if *n == 0 { 0 } else { bytes / n };
                format!("{m}={status}:{mean}")
            })
            .collect()
    }
}

/// The figures of one label of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Operations that took more than 100 ms.
    pub over_100ms: u64,
    pub max_ms: f64,
}

pub fn figures(rec: &mut Rec, secs: f64) -> Figures {
    rec.lat_us.sort_unstable();
    let n = rec.lat_us.len();
    let pct = |p: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        // nearest-rank percentile
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        f64::from(rec.lat_us[idx]) / 1000.0
    };
    Figures {
        ops: n as u64,
        errors: rec.errors,
        secs,
        per_sec: if secs > 0.0 { n as f64 / secs } else { 0.0 },
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
        p999_ms: pct(99.9),
        over_100ms: rec.lat_us.iter().filter(|&&us| us > 100_000).count() as u64,
        max_ms: rec.lat_us.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut r = Rec::default();
        for i in 1..=100u64 {
            r.ok(Duration::from_micros(i * 1000));
        }
        let f = figures(&mut r, 2.0);
        assert_eq!(f.ops, 100);
        assert!((f.p50_ms - 50.0).abs() < 1e-9);
        assert!((f.p99_ms - 99.0).abs() < 1e-9);
        assert!((f.max_ms - 100.0).abs() < 1e-9);
        assert!((f.per_sec - 50.0).abs() < 1e-9);
    }

    #[test]
    fn ceiling_args_take_the_usual_status_and_mean_size() {
        let mut s = Shape::default();
        s.add("GET", 200, 100);
        s.add("GET", 200, 300);
        s.add("GET", 404, 50);
        assert_eq!(s.ceiling_args(), vec!["GET=200:150".to_owned()]);
    }
}
