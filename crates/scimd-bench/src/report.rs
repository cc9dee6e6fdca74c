//! Plain tables, JSON files and percentiles of signed samples, for the subcommands that are
//! not `run` (feed-latency, feed-read, replicas).

use std::path::Path;

/// A table: the header, a dashed line, then the rows; the first `left` columns are aligned
/// left, the others right, the last one is written as it is.
pub fn table(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, row) in std::iter::once(&header).chain(rows).enumerate() {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line += c;
            } else if i < left {
                line += &format!("{c:<w$}  ");
            } else {
                line += &format!("{c:>w$}  ");
            }
        }
        out += line.trim_end();
        out.push('\n');
        if n == 0 {
            out += &"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1));
            out.push('\n');
        }
    }
    out
}

/// Writes `doc` to `path` ("-": stdout).
pub fn write_json(path: &Path, doc: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
    if path.as_os_str() == "-" {
        print!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Percentiles (nearest rank) of samples in microseconds that may be negative.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Samples below zero.
    pub negative: usize,
}

pub fn spread(samples: &mut [i64]) -> Spread {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return Spread::default();
    }
    let pct = |p: f64| -> f64 {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        samples[rank.clamp(1, n) - 1] as f64 / 1000.0
    };
    Spread {
        n,
        min_ms: samples[0] as f64 / 1000.0,
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: samples[n - 1] as f64 / 1000.0,
        negative: samples.iter().take_while(|v| **v < 0).count(),
    }
}

impl Spread {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"n": self.n, "min_ms": self.min_ms, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms,
                           "p99_ms": self.p99_ms, "max_ms": self.max_ms, "negative": self.negative})
    }
}

/// The host and port of a URL, for the header lines (`postgres://u:secret@h:5432/db` ->
/// `postgres://h:5432/db`: no password in reports).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_nearest_rank_and_counts_negatives() {
        let mut v: Vec<i64> = (1..=100).map(|i| (i - 3) * 1000).collect();
        let s = spread(&mut v);
        assert_eq!(s.n, 100);
        assert!((s.min_ms + 2.0).abs() < 1e-9);
        assert!((s.p50_ms - 47.0).abs() < 1e-9);
        assert!((s.p99_ms - 96.0).abs() < 1e-9);
        assert!((s.max_ms - 97.0).abs() < 1e-9);
        assert_eq!(s.negative, 2);
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("postgres://u:pw@127.0.0.1:5432/db"), "postgres://127.0.0.1:5432/db");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn tables_align() {
        let t = table(&["a", "n", "note"], &[vec!["x".into(), "10".into(), "hi".into()]], 1);
        assert_eq!(t, "a   n  note\n-----------\nx  10  hi\n");
    }
}
