//! `noisy-neighbour`: whether one tenant can starve another.
//!
//! The benchmark tenant (quiet) does point reads (`GET /Users/{id}` of random users made by
//! initial-sync) and small creates (`POST /Users`, the Entra body of initial-sync) from a few
//! paced tasks, and one task polls `/healthz` every 20 ms. A second tenant (noisy), filled first
//! with large users (~20 KB each), runs searches on a non-indexed attribute (`title co "x"`,
//! which matches none of them, so every user is examined) from C tasks at full tilt.
//! The quiet load runs twice for the same time: solo (the noisy tenant exists and is full, but
//! sends nothing), then under noise. What counts is the quiet tenant's p99 under noise against
//! its solo p99 (the target: within 5x).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::scenario::{Rng, entra_user_value, has_total};
use crate::stats::{Figures, Rec, figures};
use crate::{sys, target};

/// The noisy tenant's search: `title` is not indexed, so every user of the tenant is examined.
pub const FILTER: &str = "title co \"x\"";
const FILTER_QUERY: &str = "filter=title%20co%20%22x%22&count=100";
/// The quiet tenant's p99 under noise should stay within this factor of its solo p99.
pub const TARGET: f64 = 5.0;
/// No request of this scenario waits longer than this for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const HEALTHZ_EVERY: Duration = Duration::from_millis(20);
const SCIM_JSON: &str = "application/scim+json";
/// Text for the large fields of the noisy users (no `x` in it, not that the filter looks).
const FILLER: &str = "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut \
                      labore et dolore magna aliqua Ut enim ad minim veniam quis nostrud ";

/// What the scenario needs to know.
pub struct Settings {
    pub client: reqwest::Client,
    /// `http://HOST:PORT/scim/v2`
    pub base: String,
    /// `http://HOST:PORT`, where `/healthz` is
    pub origin: String,
    pub quiet_auth: String,
    pub noisy_auth: String,
    /// Ids of the quiet tenant's users (made by initial-sync).
    pub users: Vec<String>,
    pub noisy_users: u64,
    pub noisy_concurrency: usize,
    pub quiet_concurrency: usize,
    /// Each quiet task sends one request per interval (or as soon as the previous one is answered,
    /// if that took longer).
    pub quiet_interval: Duration,
    pub fill_concurrency: usize,
    pub fill_limit: Duration,
    /// Length of each phase.
    pub duration: Duration,
    /// The most requests of each kind in a phase.
    pub ops: u64,
    pub pid: Option<u32>,
    /// Prefix of the progress lines.
    pub title: String,
}

/// One row of the report.
pub struct Part {
    pub label: &'static str,
    pub fig: Figures,
    pub errors: Vec<String>,
    pub load_start: f64,
    pub load_end: f64,
    pub rss_kib: Option<u64>,
    pub note: String,
}

/// The rows, and the figures for the JSON `extra`.
pub struct Report {
    pub parts: Vec<Part>,
    pub extra: Value,
}

/// A noisy user: the Entra body with long addresses and many roles (about 20 KB).
pub fn noisy_user(i: u64) -> String {
    let un = format!("noisy{i:07}@bench.example");
    let mut v = entra_user_value(i, &un, &format!("noisy{i:07}"));
    let text = |k: usize, n: usize| -> String { FILLER.chars().cycle().skip(k % FILLER.len()).take(n).collect() };
    v["title"] = json!("Noisy title");
    v["addresses"] = json!(
        (0..4)
            .map(|a| json!({
                "type": if a == 0 { "work" } else { "other" },
                "streetAddress": format!("{a} {}", text(a * 7, 1000)),
                "formatted": format!("{a} {}", text(a * 11, 1000)),
                "locality": "Bern",
                "postalCode": "3000",
                "country": "CH"
            }))
            .collect::<Vec<_>>()
    );
    v["roles"] = json!(
        (0..40)
            .map(|r| json!({
                "value": format!("role-{r:02}-{}", text(r * 3, 100)),
                "display": format!("Role {r} {}", text(r * 5, 100)),
                "type": "noisy",
                "primary": false
            }))
            .collect::<Vec<_>>()
    );
    v.to_string()
}

/// A request with its latency; `Err` carries a sample message.
async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> Result<(u16, Vec<u8>), String> {
    let mut rb = client.request(method.clone(), url).timeout(REQUEST_TIMEOUT).header("Accept", SCIM_JSON);
    if let Some(a) = auth {
        rb = rb.header("Authorization", a);
    }
    if let Some(b) = body {
        rb = rb.header("Content-Type", SCIM_JSON).body(b);
    }
    let resp = rb.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok((status, bytes.to_vec()))
}

fn want(method: &str, url: &str, status: u16, body: &[u8], ok: &[u16]) -> Result<(), String> {
    if ok.contains(&status) {
        Ok(())
    } else {
        let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
        Err(format!("{method} {url}: {status} (wanted {ok:?}): {text}"))
    }
}

fn search_url(base: &str) -> String {
    format!("{base}/Users?{FILTER_QUERY}")
}

/// `totalResults` of `GET /Users?count=0` (how many users a full examination looks at).
async fn tenant_size(s: &Settings, auth: &str) -> Result<u64, String> {
    let url = format!("{}/Users?count=0", s.base);
    let (status, body) = call(&s.client, Method::GET, &url, Some(auth), None).await?;
    want("GET", &url, status, &body, &[200])?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
    v.get("totalResults").and_then(Value::as_u64).ok_or_else(|| format!("GET {url}: no totalResults"))
}

struct Fill {
    rec: Rec,
    secs: f64,
    created: u64,
    existed: u64,
    sent_bytes: u64,
    got_bytes: u64,
}

/// Creates noisy users 0..n (409: it exists already, from an earlier run on the same database).
async fn fill(s: &Arc<Settings>) -> Fill {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + s.fill_limit;
    let mut tasks = Vec::new();
    for _ in 0..s.fill_concurrency.max(1) {
        let (s, next) = (Arc::clone(s), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let (mut rec, mut created, mut existed, mut sent, mut got) = (Rec::default(), 0u64, 0u64, 0u64, 0u64);
            let url = format!("{}/Users", s.base);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= s.noisy_users {
                    break;
                }
                let body = noisy_user(i);
                let len = body.len() as u64;
                let t0 = Instant::now();
                let r = call(&s.client, Method::POST, &url, Some(&s.noisy_auth), Some(body)).await;
                let d = t0.elapsed();
                match r {
                    Ok((201, b)) => {
                        rec.ok(d);
                        created += 1;
                        sent += len;
                        got += b.len() as u64;
                    }
                    Ok((409, _)) => {
                        rec.ok(d);
                        existed += 1;
                    }
                    Ok((st, b)) => rec.fail(d, want("POST", &url, st, &b, &[201, 409]).err().unwrap_or_default()),
                    Err(e) => rec.fail(d, e),
                }
            }
            (rec, created, existed, sent, got)
        }));
    }
    let mut f = Fill { rec: Rec::default(), secs: 0.0, created: 0, existed: 0, sent_bytes: 0, got_bytes: 0 };
    for t in tasks {
        if let Ok((rec, c, e, sent, got)) = t.await {
            f.rec.merge(rec);
            f.created += c;
            f.existed += e;
            f.sent_bytes += sent;
            f.got_bytes += got;
        }
    }
    f.secs = start.elapsed().as_secs_f64();
    f
}

/// What one phase recorded.
#[derive(Default)]
struct Phase {
    get: Rec,
    create: Rec,
    healthz: Rec,
    search: Rec,
    meta: Meta,
}

/// How long a phase took, the load around it and the server's memory after it.
#[derive(Default, Clone, Copy)]
struct Meta {
    secs: f64,
    load_start: f64,
    load_end: f64,
    rss_kib: Option<u64>,
}

/// One phase: the quiet tasks and the `/healthz` poller, and with `noise` the noisy searchers,
/// all for `s.duration`.
async fn phase(s: &Arc<Settings>, noise: bool, name: &'static str, created: &Arc<AtomicU64>, nonce: &str) -> Phase {
    let load_start = sys::load1();
    let start = Instant::now();
    let deadline = start + s.duration;
    let (quiet_n, noisy_n, health_n, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    // requests of each kind in this phase, bounded by s.ops
    let (gets, creates) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

    // The quiet tenant: paced point reads and creates, alternately.
    let mut quiet = Vec::new();
    let qc = s.quiet_concurrency.max(1);
    for t in 0..qc {
        let (s, quiet_n, gets, creates, created, errors) = (
            Arc::clone(s),
            Arc::clone(&quiet_n),
            Arc::clone(&gets),
            Arc::clone(&creates),
            Arc::clone(created),
            Arc::clone(&errors),
        );
        let nonce = nonce.to_owned();
        quiet.push(tokio::spawn(async move {
            let (mut get, mut create) = (Rec::default(), Rec::default());
            let mut rng = Rng::new(t as u64 + if noise { 101 } else { 1 });
            let offset = s.quiet_interval.mul_f64(t as f64 / qc as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start + offset), s.quiet_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut j = t as u64;
            loop {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                j += 1;
                let (rec, r) = if j % 2 == 0 {
                    if gets.fetch_add(1, Ordering::Relaxed) >= s.ops {
                        break;
                    }
                    let Some(id) = s.users.get(rng.below(s.users.len())) else { break };
                    let url = format!("{}/Users/{id}", s.base);
                    let t0 = Instant::now();
                    let r = call(&s.client, Method::GET, &url, Some(&s.quiet_auth), None).await;
                    (&mut get, (t0.elapsed(), r.and_then(|(st, b)| want("GET", &url, st, &b, &[200]))))
                } else {
                    if creates.fetch_add(1, Ordering::Relaxed) >= s.ops {
                        break;
                    }
                    // unique over both phases and over runs on the same database
                    let k = created.fetch_add(1, Ordering::Relaxed);
                    let un = format!("quiet-{nonce}-{k:07}@bench.example");
                    let body = entra_user_value(10_000_000 + k, &un, &format!("quiet-{nonce}-{k:07}")).to_string();
                    let url = format!("{}/Users", s.base);
                    let t0 = Instant::now();
                    let r = call(&s.client, Method::POST, &url, Some(&s.quiet_auth), Some(body)).await;
                    (&mut create, (t0.elapsed(), r.and_then(|(st, b)| want("POST", &url, st, &b, &[201]))))
                };
                match r {
                    (d, Ok(())) => rec.ok(d),
                    (d, Err(e)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        rec.fail(d, e);
                    }
                }
                quiet_n.fetch_add(1, Ordering::Relaxed);
            }
            (get, create)
        }));
    }

    // `/healthz` from one task, every 20 ms.
    let health = {
        let (s, health_n, errors) = (Arc::clone(s), Arc::clone(&health_n), Arc::clone(&errors));
        tokio::spawn(async move {
            let mut rec = Rec::default();
            let url = format!("{}/healthz", s.origin);
            let mut tick = tokio::time::interval(HEALTHZ_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if Instant::now() >= deadline || health_n.load(Ordering::Relaxed) >= s.ops {
                    break;
                }
                let t0 = Instant::now();
                let r = call(&s.client, Method::GET, &url, None, None).await;
                let d = t0.elapsed();
                match r.and_then(|(st, b)| want("GET", &url, st, &b, &[200])) {
                    Ok(()) => rec.ok(d),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        rec.fail(d, e);
                    }
                }
                health_n.fetch_add(1, Ordering::Relaxed);
            }
            rec
        })
    };

    // The noisy tenant: full-table searches at full tilt.
    let mut noisy = Vec::new();
    if noise {
        for _ in 0..s.noisy_concurrency.max(1) {
            let (s, noisy_n, errors) = (Arc::clone(s), Arc::clone(&noisy_n), Arc::clone(&errors));
            noisy.push(tokio::spawn(async move {
                let mut rec = Rec::default();
                let url = search_url(&s.base);
                while Instant::now() < deadline {
                    if noisy_n.fetch_add(1, Ordering::Relaxed) >= s.ops {
                        break;
                    }
                    let t0 = Instant::now();
                    let r = call(&s.client, Method::GET, &url, Some(&s.noisy_auth), None).await;
                    let d = t0.elapsed();
                    let r = r.and_then(|(st, b)| {
                        want("GET", &url, st, &b, &[200])?;
                        if has_total(&b, 0) { Ok(()) } else { Err(format!("GET {url}: totalResults is not 0")) }
                    });
                    match r {
                        Ok(()) => rec.ok(d),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            rec.fail(d, e);
                        }
                    }
                }
                rec
            }));
        }
    }

    let finished = Arc::new(AtomicBool::new(false));
    let progress = {
        let (finished, title) = (Arc::clone(&finished), s.title.clone());
        let (quiet_n, noisy_n, health_n, errors) =
            (Arc::clone(&quiet_n), Arc::clone(&noisy_n), Arc::clone(&health_n), Arc::clone(&errors));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            while !finished.load(Ordering::Relaxed) {
                tick.tick().await;
                eprintln!(
                    "  {title} {name}: quiet {} ops, noisy {} searches, healthz {}, {} errors, {:.0}s",
                    quiet_n.load(Ordering::Relaxed),
                    noisy_n.load(Ordering::Relaxed),
                    health_n.load(Ordering::Relaxed),
                    errors.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
        })
    };

    let mut p = Phase::default();
    p.meta.load_start = load_start;
    for t in quiet {
        if let Ok((g, c)) = t.await {
            p.get.merge(g);
            p.create.merge(c);
        }
    }
    if let Ok(h) = health.await {
        p.healthz = h;
    }
    for t in noisy {
        if let Ok(r) = t.await {
            p.search.merge(r);
        }
    }
    p.meta.secs = start.elapsed().as_secs_f64();
    finished.store(true, Ordering::Relaxed);
    progress.abort();
    p.meta.load_end = sys::load1();
    p.meta.rss_kib = target::memory(s.pid).map(|m| m.rss_kib);
    p
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// Runs the scenario: fills the noisy tenant, then the solo phase, then the phase under noise.
pub async fn run(s: Settings) -> Result<Report, String> {
    let s = Arc::new(s);
    if s.users.is_empty() {
        return Err("noisy-neighbour: the benchmark tenant has no users (initial-sync made none)".into());
    }

    // The noisy tenant, full.
    eprintln!("  noisy-neighbour: filling the noisy tenant with {} users", s.noisy_users);
    let load_start = sys::load1();
    let mut f = fill(&s).await;
    let noisy_total = tenant_size(&s, &s.noisy_auth).await?;
    let quiet_before = tenant_size(&s, &s.quiet_auth).await?;
    let per_user = |bytes: u64| if f.created > 0 { bytes as f64 / f.created as f64 / 1024.0 } else { 0.0 };
    let fill_note = format!(
        "noisy tenant: {} users ({} created, {} existed; {} in the tenant), POST {:.1} KB, stored {:.1} KB each; {:.1}s",
        f.created + f.existed,
        f.created,
        f.existed,
        noisy_total,
        per_user(f.sent_bytes),
        per_user(f.got_bytes),
        f.secs
    );
    eprintln!("  {fill_note}");
    // Is the search served, not refused (tooMany), and does it match nothing?
    let url = search_url(&s.base);
    let t0 = Instant::now();
    let probe = call(&s.client, Method::GET, &url, Some(&s.noisy_auth), None).await.and_then(|(st, b)| {
        want("GET", &url, st, &b, &[200])?;
        if has_total(&b, 0) { Ok(()) } else { Err(format!("GET {url}: totalResults is not 0")) }
    });
    let probe_ms = t0.elapsed().as_secs_f64() * 1000.0;
    match &probe {
        Ok(()) => eprintln!("  noisy search {FILTER}: served, 0 matches, {probe_ms:.1} ms alone"),
        Err(e) => eprintln!("  noisy search {FILTER}: {e}"),
    }
    let fill_fig = figures(&mut f.rec, f.secs);
    let fill_errors = f.rec.samples.clone();
    let rss = target::memory(s.pid).map(|m| m.rss_kib);
    let load_end = sys::load1();

    let nonce = format!(
        "{:x}{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
        std::process::id()
    );
    let created = Arc::new(AtomicU64::new(0));
    let solo = phase(&s, false, "solo", &created, &nonce).await;
    let noisy = phase(&s, true, "under noise", &created, &nonce).await;

    let pace = format!(
        "quiet: {} tasks, one request each per {} ms, get and create alternately",
        s.quiet_concurrency.max(1),
        s.quiet_interval.as_millis()
    );
    let mut parts = vec![Part {
        label: "noisy fill",
        fig: fill_fig,
        errors: fill_errors,
        load_start,
        load_end,
        rss_kib: rss,
        note: fill_note.clone(),
    }];
    let part = |label, mut rec: Rec, m: &Meta, note: String| Part {
        label,
        fig: figures(&mut rec, m.secs),
        errors: rec.samples,
        load_start: m.load_start,
        load_end: m.load_end,
        rss_kib: m.rss_kib,
        note,
    };
    let solo_get = part("solo get", solo.get, &solo.meta, format!("{pace}; no noise"));
    let solo_create = part("solo create", solo.create, &solo.meta, String::new());
    let solo_health = part("solo healthz", solo.healthz, &solo.meta, "GET /healthz every 20 ms, one task".into());
    let verdict = |n: &mut Part, s: &Part| -> f64 {
        let r = ratio(n.fig.p99_ms, s.fig.p99_ms);
        let met = r <= TARGET;
        n.note = format!("p99 {r:.2}x solo (target <= {TARGET:.0}x: {})", if met { "met" } else { "MISSED" });
        r
    };
    let mut noise_get = part("noise get", noisy.get, &noisy.meta, String::new());
    let r_get = verdict(&mut noise_get, &solo_get);
    let mut noise_create = part("noise create", noisy.create, &noisy.meta, String::new());
    let r_create = verdict(&mut noise_create, &solo_create);
    let mut noise_health = part("noise healthz", noisy.healthz, &noisy.meta, String::new());
    let r_health = ratio(noise_health.fig.p99_ms, solo_health.fig.p99_ms);
    noise_health.note = format!("p99 {r_health:.2}x solo");
    let search_note = format!(
        "noisy tenant: {} tasks at full tilt, {FILTER}&count=100 over {noisy_total} users, 0 matches{}",
        s.noisy_concurrency.max(1),
        match &probe {
            Ok(()) => format!("; {probe_ms:.1} ms alone"),
            Err(_) => "; REFUSED alone (see the error samples)".to_owned(),
        }
    );
    let noise_search = part("noise search", noisy.search, &noisy.meta, search_note);
    let quiet_after = tenant_size(&s, &s.quiet_auth).await.unwrap_or(0);

    let fig = |f: &Figures| json!({"ops": f.ops, "errors": f.errors, "per_sec": f.per_sec, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "max_ms": f.max_ms});
    let probe_json = json!({"ms": probe_ms, "error": probe.err()});
    let extra = json!({
        "noisy_users": noisy_total,
        "noisy_created": f.created,
        "noisy_existed": f.existed,
        "noisy_post_kib_per_user": per_user(f.sent_bytes),
        "noisy_stored_kib_per_user": per_user(f.got_bytes),
        "noisy_fill_secs": f.secs,
        "noisy_filter": FILTER,
        "noisy_concurrency": s.noisy_concurrency.max(1),
        "noisy_search_alone": probe_json,
        "quiet_concurrency": s.quiet_concurrency.max(1),
        "quiet_interval_ms": s.quiet_interval.as_millis() as u64,
        "quiet_users_before": quiet_before,
        "quiet_users_after": quiet_after,
        "phase_secs": s.duration.as_secs_f64(),
        "solo": {"get": fig(&solo_get.fig), "create": fig(&solo_create.fig), "healthz": fig(&solo_health.fig)},
        "noise": {"get": fig(&noise_get.fig), "create": fig(&noise_create.fig), "healthz": fig(&noise_health.fig),
                  "search": fig(&noise_search.fig)},
        "p99_ratio": {"get": r_get, "create": r_create, "healthz": r_health},
        "target_ratio": TARGET,
        "target_met": r_get <= TARGET && r_create <= TARGET,
    });
    parts.extend([solo_get, solo_create, solo_health, noise_get, noise_create, noise_health, noise_search]);
    Ok(Report { parts, extra })
}

/// `http://HOST:PORT` of a URL (the path cut off).
pub fn origin_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |p| p + 3);
    match url[after..].find('/') {
        Some(p) => url[..after + p].to_owned(),
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn noisy_users_are_about_20_kb_and_do_not_match() {
        let b = noisy_user(7);
        assert!((19_000..23_000).contains(&b.len()), "{} bytes", b.len());
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["userName"], "noisy0000007@bench.example");
        assert_eq!(v["emails"][0]["value"], "noisy0000007@bench.example");
        assert!(!v["title"].as_str().unwrap().to_lowercase().contains('x'));
        assert_eq!(v["roles"].as_array().unwrap().len(), 40);
    }

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(origin_of("http://127.0.0.1:8080/scim/v2"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("http://[::1]:8080"), "http://[::1]:8080");
    }
}
