//! The change feed as a consumer sees it (`GET /api/v1/tenants/{tenant}/events` on the admin
//! listener, with an API key).
//!
//! - `feed-latency`: a consumer long-polls the feed (`wait`, `after` = the last position)
//!   while a writer creates users at a fixed rate (open loop: each request is sent at its
//!   scheduled time, whatever the earlier ones are doing). For every `user.created` event the
//!   consumer receives, latency = when the page holding it was received minus when the
//!   writer's request for that user (matched by the resource id) was answered, and minus when
//!   it was sent.
//! - `feed-read`: a tenant filled with N users (one event each, by `POST /Users`), then its
//!   whole feed read from position 0 in sequential pages of `limit` events, as fast as possible.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::report::{self, Spread, spread};
use crate::scenario::entra_user_value;
use crate::stats::{Figures, Rec, figures};
use crate::{REFERENCE_REQUIRE, sys, target};

const SCIM_JSON: &str = "application/scim+json";
/// The issue's target for commit-to-consumer latency (p99, after the write's response).
pub const LATENCY_TARGET_MS: f64 = 50.0;
/// The issue's target for reading a feed from its start.
pub const READ_TARGET_PER_SEC: f64 = 50_000.0;
const TENANT: &str = "bench";

/// The scimd these subcommands start.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Database of the started scimd: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (new
    /// and empty) [default: a SQLite file in a temporary directory]
    #[arg(long)]
    pub database: Option<String>,
    /// The scimd binary to start [default: scimd next to this executable]
    #[arg(long)]
    pub scimd_bin: Option<PathBuf>,
    /// Name shown for the server under test
    #[arg(long, default_value = "scimd")]
    pub name: String,
    /// Mandatory attributes of the benchmark tenant
    #[arg(long, default_value = REFERENCE_REQUIRE)]
    pub require: String,
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Creates per second, each sent at its scheduled time (open loop)
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of writing
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// The consumer's `wait` (long poll)
    #[arg(long, default_value = "30s")]
    pub wait: String,
    /// The consumer's `limit` (events per page)
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    /// The most writes in flight at once; beyond it the writer falls behind its schedule (the
    /// report says by how much). Below scimd's max_in_flight_per_tenant (64 by default), which
    /// answers more with 429
    #[arg(long, default_value_t = 48)]
    pub max_in_flight: usize,
    /// Seconds the consumer has after the last write's answer to receive the remaining events
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How a feed-read pass handles each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pass {
    /// Parse the page as JSON, check every event's seq follows the previous one
    Full,
    /// Only find the page's position at its end (events = position - previous position): what
    /// the server can deliver, with almost no client work
    Raw,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Full => "full",
            Pass::Raw => "raw",
        }
    }
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Users to create first (one event each; the feed has two more: tenant and token
    /// created)
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events per page
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    /// Concurrent creates while filling
    #[arg(long, default_value_t = 16)]
    pub fill_concurrency: usize,
    /// Time limit of the filling, in seconds
    #[arg(long, default_value_t = 1800)]
    pub fill_limit: u64,
    /// The reading passes, in this order, each from position 0
    #[arg(long, value_delimiter = ',', default_value = "full,raw")]
    pub passes: Vec<Pass>,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A started scimd with a tenant, its token and an API key.
pub struct Server {
    pub spawned: target::Spawned,
    pub database: String,
    pub token: String,
    pub key: String,
    pub bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn engine(&self) -> &'static str {
        engine(&self.database)
    }
    pub fn scim(&self) -> String {
        format!("{}/scim/v2", self.spawned.origin)
    }
    fn events_url(&self) -> String {
        format!("{}/api/v1/tenants/{TENANT}/events", self.spawned.admin)
    }
}

pub fn engine(database: &str) -> &'static str {
    if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" }
}

/// Starts scimd on `a.database` (or a temporary SQLite file) with tenant `bench`.
pub async fn start(a: &ServerArgs) -> Result<Server, String> {
    let bin = a.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin);
    let dir = tempfile::Builder::new()
        .prefix("scimd-bench-feed-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let database = a.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("scimd.db").display()));
    eprintln!("scimd-bench: starting {} on {}", bin.display(), report::redact(&database));
    let token = target::provision(&bin, &database, TENANT, &a.require)?;
    let key = target::api_key(&bin, &database)?;
    let spawned = target::start_scimd(&bin, &database, &dir.path().join("scimd.log")).await?;
    Ok(Server { spawned, database, token, key, bin, _dir: dir })
}

pub fn client(pool: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// `POST /Users` of the Entra body of user `k` (userName `{prefix}{k}@bench.example`);
/// returns the status and the body.
pub async fn create_user(
    client: &reqwest::Client,
    scim: &str,
    auth: &str,
    prefix: &str,
    k: u64,
) -> Result<(u16, axum::body::Bytes), String> {
    let un = format!("{prefix}{k:08}@bench.example");
    let body = entra_user_value(k, &un, &format!("{prefix}{k:08}")).to_string();
    let url = format!("{scim}/Users");
    let resp = client
        .request(Method::POST, &url)
        .header("Authorization", auth)
        .header("Accept", SCIM_JSON)
        .header("Content-Type", SCIM_JSON)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("POST {url}: reading the body: {e}"))?;
    Ok((status, bytes))
}

/// A failed request's message: what, the status and the start of the body.
pub fn error_text(what: &str, status: u16, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    format!("{what}: {status}: {text}")
}

/// The feed's position and the number of users, from the vendor API's list.
async fn position(client: &reqwest::Client, s: &Server) -> Result<(i64, u64), String> {
    let url = format!("{}/api/v1/tenants/{TENANT}/Users?count=0", s.spawned.admin);
    let resp = client
        .get(&url)
        .header("Authorization", format!("Bearer {}", s.key))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if status != 200 {
        return Err(error_text(&format!("GET {url}"), status, &body));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
    let p = v.get("position").and_then(Value::as_i64).ok_or_else(|| format!("GET {url}: no position"))?;
    let n = v.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
    Ok((p, n))
}

// ---------------------------------------------------------------- feed-latency

/// One write of a paced writer: the id of the user it created (none if it failed), when it was
/// sent and answered.
pub struct Write {
    pub id: Option<String>,
    pub sent: Instant,
    pub answered: Instant,
}

/// Creates user `k` (as [`create_user`]) and times it; the write, and the error if it failed.
pub async fn timed_create(
    client: &reqwest::Client,
    scim: &str,
    auth: &str,
    prefix: &str,
    k: u64,
) -> (Write, Option<String>) {
    let sent = Instant::now();
    let r = create_user(client, scim, auth, prefix, k).await;
    let answered = Instant::now();
    let id = match r {
        Ok((201, body)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| "POST /Users: 201 without an id".to_owned()),
        Ok((status, body)) => Err(error_text("POST /Users", status, &body)),
        Err(e) => Err(e),
    };
    let err = id.as_ref().err().cloned();
    (Write { id: id.ok(), sent, answered }, err)
}

/// What the consumer saw.
#[derive(Default)]
struct Seen {
    /// resource id of a `user.created` -> when the page holding it was received
    at: HashMap<String, Instant>,
    user_created: u64,
    other: u64,
    pages: u64,
    empty_pages: u64,
    /// Missing seq numbers between consecutive events (should be 0: the feed is gapless).
    gaps: u64,
    position: i64,
    bytes: u64,
    errors: u64,
    samples: Vec<String>,
    /// Events per non-empty page.
    per_page: Vec<u32>,
}

impl Seen {
    fn fail(&mut self, e: String) {
        self.errors += 1;
        if self.samples.len() < 3 {
            self.samples.push(e);
        }
    }
}

/// Long-polls the feed from `after`, forever (the caller aborts it).
async fn consume(
    client: reqwest::Client,
    url: String,
    key: String,
    after: i64,
    wait: String,
    limit: u64,
    seen: Arc<Mutex<Seen>>,
) {
    let mut pos = after;
    loop {
        let u = format!("{url}?after={pos}&limit={limit}&wait={wait}");
        let r = async {
            let resp = client
                .get(&u)
                .header("Authorization", format!("Bearer {key}"))
                .send()
                .await
                .map_err(|e| format!("GET {u}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("GET {u}: {e}"))?;
            Ok::<_, String>((status, body))
        }
        .await;
        let received = Instant::now();
        let (status, body) = match r {
            Ok(x) => x,
            Err(e) => {
                lock(&seen).fail(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if status != 200 {
            lock(&seen).fail(error_text(&format!("GET {u}"), status, &body));
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                lock(&seen).fail(format!("GET {u}: not JSON: {e}"));
                continue;
            }
        };
        let events = v.get("events").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        let mut s = lock(&seen);
        s.pages += 1;
        s.bytes += body.len() as u64;
        if events.is_empty() {
            s.empty_pages += 1;
        } else {
            s.per_page.push(u32::try_from(events.len()).unwrap_or(u32::MAX));
        }
        for e in events {
            let seq = e.get("seq").and_then(Value::as_i64).unwrap_or(0);
            if seq > pos + 1 {
                s.gaps += u64::try_from(seq - pos - 1).unwrap_or(0);
            }
            pos = pos.max(seq);
            if e.get("type").and_then(Value::as_str) == Some("user.created") {
                s.user_created += 1;
                if let Some(id) = e.pointer("/resource/id").and_then(Value::as_str) {
                    s.at.entry(id.to_owned()).or_insert(received);
                }
            } else {
                s.other += 1;
            }
        }
        if let Some(p) = v.get("position").and_then(Value::as_i64) {
            pos = pos.max(p);
        }
        s.position = pos;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Written {
    writes: Vec<Write>,
    rec: Rec,
    secs: f64,
    /// The largest delay of a send after its scheduled time, in ms.
    max_lag_ms: f64,
    /// Sends more than 1 ms late.
    late: u64,
}

/// Creates `rate` users per second for `duration` seconds, each sent at its scheduled time.
async fn write(client: reqwest::Client, s: &Server, rate: u64, duration: u64, max_in_flight: usize) -> Written {
    let n = rate.max(1) * duration;
    let scim = Arc::new(s.scim());
    let auth = Arc::new(format!("Bearer {}", s.token));
    let out: Arc<Mutex<(Vec<Write>, Rec)>> = Arc::new(Mutex::new((Vec::with_capacity(n as usize), Rec::default())));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now() + Duration::from_millis(20);
    let (mut max_lag, mut late) = (Duration::ZERO, 0u64);
    let progress = Arc::new(AtomicU64::new(0));
    let ticker = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(2));
            t.tick().await;
            let mut last = 0;
            loop {
                t.tick().await;
                let d = progress.load(Ordering::Relaxed);
                eprintln!("  feed-latency: {d}/{n} writes answered, {:.0}/s now", (d - last) as f64 / 2.0);
                last = d;
            }
        })
    };
    for k in 0..n {
        let at = start + Duration::from_nanos(k * 1_000_000_000 / rate.max(1));
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
        let lag = Instant::now().saturating_duration_since(at);
        max_lag = max_lag.max(lag);
        if lag > Duration::from_millis(1) {
            late += 1;
        }
        let (client, scim, auth, out, progress) =
            (client.clone(), Arc::clone(&scim), Arc::clone(&auth), Arc::clone(&out), Arc::clone(&progress));
        tokio::spawn(async move {
            let (w, err) = timed_create(&client, &scim, &auth, "feed", k).await;
            let mut o = lock(&out);
            match err {
                None => o.1.ok(w.answered - w.sent),
                Some(e) => o.1.fail(w.answered - w.sent, e),
            }
            o.0.push(w);
            drop(o);
            progress.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // every write answered
    let _ = slots.acquire_many(u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX)).await;
    let secs = start.elapsed().as_secs_f64();
    ticker.abort();
    let (writes, rec) = std::mem::take(&mut *lock(&out));
    Written { writes, rec, secs, max_lag_ms: max_lag.as_secs_f64() * 1000.0, late }
}

pub async fn latency(a: LatencyArgs) -> Result<(), String> {
    let s = start(&a.server).await?;
    let load_start = sys::uptime_load();
    eprintln!("scimd-bench: feed-latency on {}; {load_start}", s.engine());
    let writer_client = client(a.max_in_flight)?;
    let consumer_client = client(2)?;
    // Start after what is there (the CLI's tenant and token events).
    let mut after = 0;
    loop {
        let (p, _) = position(&consumer_client, &s).await?;
        after = after.max(p);
        // PostgreSQL numbers the command line's events within its sweep (1 s)
        if s.engine() == "SQLite" || p > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = Arc::new(Mutex::new(Seen { position: after, ..Seen::default() }));
    let consumer = tokio::spawn(consume(
        consumer_client.clone(),
        s.events_url(),
        s.key.clone(),
        after,
        a.wait.clone(),
        a.limit,
        Arc::clone(&seen),
    ));
    // let the consumer's first long poll reach the server
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu0 = sys::cpu_secs(s.spawned.pid);
    let w = write(writer_client, &s, a.rate, a.duration, a.max_in_flight).await;
    let cpu1 = sys::cpu_secs(s.spawned.pid);
    let ok = w.writes.iter().filter(|x| x.id.is_some()).count() as u64;
    let last_answer = w.writes.iter().map(|x| x.answered).max().unwrap_or_else(Instant::now);
    let grace_end = last_answer + Duration::from_secs(a.grace);
    while Instant::now() < grace_end && lock(&seen).user_created < ok {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.abort();
    let _ = consumer.await;
    let load_end = sys::uptime_load();
    let seen = std::mem::take(&mut *lock(&seen));

    let (mut vs_answer, mut vs_sent) = (Vec::new(), Vec::new());
    let mut missed = 0u64;
    for x in &w.writes {
        let Some(id) = &x.id else { continue };
        match seen.at.get(id) {
            Some(at) => {
                vs_answer.push(signed_us(*at, x.answered));
                vs_sent.push(signed_us(*at, x.sent));
            }
            None => missed += 1,
        }
    }
    let (answer, sent) = (spread(&mut vs_answer), spread(&mut vs_sent));
    let mut rec = w.rec;
    let write_fig = figures(&mut rec, w.secs);
    let met = answer.n > 0 && missed == 0 && answer.p99_ms < LATENCY_TARGET_MS;
    let mean_page = if seen.per_page.is_empty() {
        0.0
    } else {
        seen.per_page.iter().map(|v| f64::from(*v)).sum::<f64>() / seen.per_page.len() as f64
    };

    let header = ["measure", "n", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "note"];
    let row = |name: &str, sp: &Spread, note: String| {
        vec![
            name.to_owned(),
            sp.n.to_string(),
            format!("{:.2}", sp.min_ms),
            format!("{:.2}", sp.p50_ms),
            format!("{:.2}", sp.p90_ms),
            format!("{:.2}", sp.p99_ms),
            format!("{:.2}", sp.max_ms),
            note,
        ]
    };
    let rows = vec![
        vec![
            "write (POST /Users)".to_owned(),
            write_fig.ops.to_string(),
            "-".into(),
            format!("{:.2}", write_fig.p50_ms),
            "-".into(),
            format!("{:.2}", write_fig.p99_ms),
            format!("{:.2}", write_fig.max_ms),
            format!(
                "{ok} created, {} errors; {:.0}/s achieved of {}/s asked; {} sends >1 ms late (max {:.1} ms)",
                write_fig.errors, write_fig.per_sec, a.rate, w.late, w.max_lag_ms
            ),
        ],
        row(
            "event after the write's answer",
            &answer,
            format!(
                "target p99 < {LATENCY_TARGET_MS:.0} ms: {}; {} received before the answer",
                if met { "met" } else { "MISSED" },
                answer.negative
            ),
        ),
        row("event after the write's send", &sent, String::new()),
    ];
    let mut out = format!(
        "\n{} feed-latency on {} ({}) | {}/s creates for {}s, consumer wait={} limit={} | {}\nbefore: {load_start} | after: {load_end}\n\n",
        a.server.name,
        s.engine(),
        report::redact(&s.database),
        a.rate,
        a.duration,
        a.wait,
        a.limit,
        sys::cpu(),
    );
    out += &report::table(&header, &rows, 1);
    out += &format!(
        "events received: {} user.created ({} matched to writes), {} other; missed: {missed} of {ok} writes; seq gaps: {}; \
         {} pages ({} empty), {mean_page:.1} events per non-empty page; consumer errors: {}\n",
        seen.user_created, answer.n, seen.other, seen.gaps, seen.pages, seen.empty_pages, seen.errors
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        out += &format!(
            "scimd CPU while writing: {:.1} s in {:.1} s ({:.0}% of one core)\n",
            c1 - c0,
            w.secs,
            (c1 - c0) / w.secs * 100.0
        );
    }
    for e in rec.samples.iter().chain(&seen.samples) {
        out += &format!("error sample: {e}\n");
    }
    print!("{out}");
    if let Some(path) = &a.json {
        let doc = json!({
            "bench": "feed-latency",
            "server": a.server.name,
            "engine": s.engine(),
            "scimd_bin": s.bin.display().to_string(),
            "machine": sys::cpu(),
            "load_before": load_start,
            "load_after": load_end,
            "rate": a.rate,
            "duration_s": a.duration,
            "wait": a.wait,
            "limit": a.limit,
            "writes": fig_json(&write_fig),
            "created": ok,
            "writer_secs": w.secs,
            "writer_late_sends": w.late,
            "writer_max_lag_ms": w.max_lag_ms,
            "latency_after_answer": answer.to_json(),
            "latency_after_send": sent.to_json(),
            "target_p99_ms": LATENCY_TARGET_MS,
            "target_met": met,
            "events_user_created": seen.user_created,
            "events_other": seen.other,
            "missed": missed,
            "seq_gaps": seen.gaps,
            "pages": seen.pages,
            "empty_pages": seen.empty_pages,
            "mean_events_per_page": mean_page,
            "consumer_bytes": seen.bytes,
            "consumer_errors": seen.errors,
            "scimd_cpu_s": cpu0.zip(cpu1).map(|(a, b)| b - a),
            "error_samples": rec.samples.iter().chain(&seen.samples).collect::<Vec<_>>(),
        });
        report::write_json(path, &doc)?;
    }
    Ok(())
}

/// `a - b` in microseconds, negative if `a` is earlier.
fn signed_us(a: Instant, b: Instant) -> i64 {
    if a >= b {
        i64::try_from((a - b).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((b - a).as_micros()).unwrap_or(i64::MAX)
    }
}

pub fn fig_json(f: &Figures) -> Value {
    json!({"ops": f.ops, "errors": f.errors, "secs": f.secs, "per_sec": f.per_sec,
           "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "max_ms": f.max_ms})
}

// ---------------------------------------------------------------- feed-read

struct Filled {
    rec: Rec,
    secs: f64,
    created: u64,
}

/// Creates users 0..n from `concurrency` tasks.
async fn fill(client: &reqwest::Client, s: &Server, n: u64, concurrency: usize, limit: Duration) -> Filled {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let scim = Arc::new(s.scim());
    let auth = Arc::new(format!("Bearer {}", s.token));
    let ticker = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(5));
            t.tick().await;
            loop {
                t.tick().await;
                let d = done.load(Ordering::Relaxed);
                eprintln!("  feed-read fill: {d}/{n} users, {:.0}/s", d as f64 / start.elapsed().as_secs_f64());
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, scim, auth, next, done) =
            (client.clone(), Arc::clone(&scim), Arc::clone(&auth), Arc::clone(&next), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let (mut rec, mut created) = (Rec::default(), 0u64);
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let t0 = Instant::now();
                let r = create_user(&client, &scim, &auth, "fill", k).await;
                match r {
                    Ok((201, _)) => {
                        rec.ok(t0.elapsed());
                        created += 1;
                    }
                    Ok((st, b)) => rec.fail(t0.elapsed(), error_text("POST /Users", st, &b)),
                    Err(e) => rec.fail(t0.elapsed(), e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (rec, created)
        }));
    }
    let mut f = Filled { rec: Rec::default(), secs: 0.0, created: 0 };
    for t in tasks {
        if let Ok((r, c)) = t.await {
            f.rec.merge(r);
            f.created += c;
        }
    }
    f.secs = start.elapsed().as_secs_f64();
    ticker.abort();
    f
}

/// What one reading pass measured.
struct ReadPass {
    pass: Pass,
    events: u64,
    pages: u64,
    bytes: u64,
    secs: f64,
    page: Figures,
    gaps: u64,
    errors: Vec<String>,
    load_start: f64,
    load_end: f64,
    /// CPU time of scimd during the pass.
    cpu_s: Option<f64>,
    /// CPU time of this program (the consumer) during the pass.
    client_cpu_s: Option<f64>,
}

/// The position at the end of a page (`...,"position":N}`), without parsing it.
fn tail_position(body: &[u8]) -> Option<i64> {
    let key = b"\"position\":";
    let at = body.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits: String = body[at..].iter().take_while(|b| b.is_ascii_digit()).map(|b| char::from(*b)).collect();
    digits.parse().ok()
}

/// Reads the feed from 0 up to `end` in pages of `limit`, one page at a time.
async fn read_pass(client: &reqwest::Client, s: &Server, pass: Pass, end: i64, limit: u64) -> ReadPass {
    let url = s.events_url();
    let auth = format!("Bearer {}", s.key);
    let mut rec = Rec::default();
    let (mut pos, mut events, mut pages, mut bytes, mut gaps) = (0i64, 0u64, 0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    let load_start = sys::load1();
    let cpu0 = sys::cpu_secs(s.spawned.pid);
    let me0 = sys::cpu_secs(std::process::id());
    let start = Instant::now();
    while pos < end {
        let u = format!("{url}?after={pos}&limit={limit}");
        let t0 = Instant::now();
        let r = async {
            let resp =
                client.get(&u).header("Authorization", &auth).send().await.map_err(|e| format!("GET {u}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("GET {u}: {e}"))?;
            if status == 200 { Ok(body) } else { Err(error_text(&format!("GET {u}"), status, &body)) }
        }
        .await;
        let d = t0.elapsed();
        let body = match r {
            Ok(b) => b,
            Err(e) => {
                rec.fail(d, e.clone());
                errors.push(e);
                break;
            }
        };
        rec.ok(d);
        pages += 1;
        bytes += body.len() as u64;
        let next = match pass {
            Pass::Raw => tail_position(&body),
            Pass::Full => match serde_json::from_slice::<Value>(&body) {
                Ok(v) => {
                    let evs = v.get("events").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                    let mut p = pos;
                    for e in evs {
                        let seq = e.get("seq").and_then(Value::as_i64).unwrap_or(0);
                        if seq != p + 1 {
                            gaps += 1;
                        }
                        p = seq;
                    }
                    v.get("position").and_then(Value::as_i64)
                }
                Err(e) => {
                    errors.push(format!("GET {u}: not JSON: {e}"));
                    None
                }
            },
        };
        match next {
            Some(n) if n > pos => {
                events += u64::try_from(n - pos).unwrap_or(0);
                pos = n;
            }
            _ => {
                errors.push(format!("GET {u}: the position did not advance"));
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = sys::cpu_secs(s.spawned.pid);
    let me1 = sys::cpu_secs(std::process::id());
    ReadPass {
        pass,
        events,
        pages,
        bytes,
        secs,
        page: figures(&mut rec, secs),
        gaps,
        errors,
        load_start,
        load_end: sys::load1(),
        cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        client_cpu_s: me0.zip(me1).map(|(a, b)| b - a),
    }
}

pub async fn read(a: ReadArgs) -> Result<(), String> {
    let s = start(&a.server).await?;
    let load_start = sys::uptime_load();
    eprintln!("scimd-bench: feed-read on {}; {load_start}", s.engine());
    let c = client(a.fill_concurrency * 2)?;
    let load_fill = sys::load1();
    let mut f = fill(&c, &s, a.events, a.fill_concurrency, Duration::from_secs(a.fill_limit)).await;
    let fill_fig = figures(&mut f.rec, f.secs);
    eprintln!(
        "  feed-read fill: {} users created in {:.1}s ({:.0}/s), {} errors",
        f.created, f.secs, fill_fig.per_sec, fill_fig.errors
    );
    // Every event numbered (PostgreSQL's sequencer runs after the commits).
    let wait_start = Instant::now();
    let mut last = -1;
    let (end, users) = loop {
        let (p, n) = position(&c, &s).await?;
        if p == last && u64::try_from(p).unwrap_or(0) >= f.created {
            break (p, n);
        }
        if wait_start.elapsed() > Duration::from_secs(60) {
            return Err(format!("the feed's position stays at {p} for {} users created", f.created));
        }
        last = p;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("  feed at position {end} ({users} users in the tenant)");
    let mut passes = Vec::new();
    for pass in &a.passes {
        let r = read_pass(&c, &s, *pass, end, a.limit).await;
        eprintln!("  pass {}: {} events in {:.2}s ({:.0}/s)", pass.name(), r.events, r.secs, r.events as f64 / r.secs);
        passes.push(r);
    }
    let load_end = sys::uptime_load();
    let mem = target::memory(Some(s.spawned.pid));

    let header = [
        "pass",
        "events",
        "pages",
        "secs",
        "events/s",
        "MB/s",
        "B/event",
        "page p50",
        "page p99",
        "page max",
        "load",
        "scimd CPU",
        "client CPU",
        "note",
    ];
    let mut rows = vec![vec![
        "fill (POST /Users)".to_owned(),
        f.created.to_string(),
        "-".into(),
        format!("{:.1}", f.secs),
        format!("{:.0}", fill_fig.per_sec),
        "-".into(),
        "-".into(),
        format!("{:.2}", fill_fig.p50_ms),
        format!("{:.2}", fill_fig.p99_ms),
        format!("{:.1}", fill_fig.max_ms),
        format!("{load_fill:.2}"),
        "-".into(),
        "-".into(),
        format!("{} errors, concurrency {}; users/s", fill_fig.errors, a.fill_concurrency),
    ]];
    for r in &passes {
        let per_sec = if r.secs > 0.0 { r.events as f64 / r.secs } else { 0.0 };
        let met = per_sec >= READ_TARGET_PER_SEC && r.errors.is_empty();
        rows.push(vec![
            format!("read {}", r.pass.name()),
            r.events.to_string(),
            r.pages.to_string(),
            format!("{:.2}", r.secs),
            format!("{per_sec:.0}"),
            format!("{:.1}", r.bytes as f64 / r.secs / 1e6),
            format!("{:.0}", r.bytes as f64 / r.events.max(1) as f64),
            format!("{:.2}", r.page.p50_ms),
            format!("{:.2}", r.page.p99_ms),
            format!("{:.1}", r.page.max_ms),
            format!("{:.2}>{:.2}", r.load_start, r.load_end),
            r.cpu_s.map_or("-".into(), |c| format!("{c:.2}s")),
            r.client_cpu_s.map_or("-".into(), |c| format!("{c:.2}s")),
            format!(
                "target {:.0}/s: {}{}",
                READ_TARGET_PER_SEC,
                if met { "met" } else { "MISSED" },
                if r.pass == Pass::Full { format!("; seq gaps {}", r.gaps) } else { String::new() }
            ),
        ]);
    }
    let mut out = format!(
        "\n{} feed-read on {} ({}) | {} users created, feed at {end}, pages of {} | {}\nbefore: {load_start} | after: {load_end}\n\n",
        a.server.name,
        s.engine(),
        report::redact(&s.database),
        f.created,
        a.limit,
        sys::cpu()
    );
    out += &report::table(&header, &rows, 1);
    for e in f.rec.samples.iter().chain(passes.iter().flat_map(|p| p.errors.iter())) {
        out += &format!("error sample: {e}\n");
    }
    if let Some(m) = mem {
        out += &format!(
            "server memory: VmRSS {:.1} MiB, VmHWM (peak) {:.1} MiB\n",
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0
        );
    }
    print!("{out}");
    if let Some(path) = &a.json {
        let doc = json!({
            "bench": "feed-read",
            "server": a.server.name,
            "engine": s.engine(),
            "scimd_bin": s.bin.display().to_string(),
            "machine": sys::cpu(),
            "load_before": load_start,
            "load_after": load_end,
            "fill": {"created": f.created, "figures": fig_json(&fill_fig), "concurrency": a.fill_concurrency,
                     "errors": f.rec.samples},
            "position": end,
            "users": users,
            "limit": a.limit,
            "target_per_sec": READ_TARGET_PER_SEC,
            "passes": passes.iter().map(|r| json!({
                "pass": r.pass.name(),
                "events": r.events,
                "pages": r.pages,
                "bytes": r.bytes,
                "secs": r.secs,
                "events_per_sec": r.events as f64 / r.secs.max(1e-9),
                "page": fig_json(&r.page),
                "seq_gaps": r.gaps,
                "loadavg_start": r.load_start,
                "loadavg_end": r.load_end,
                "scimd_cpu_s": r.cpu_s,
                "client_cpu_s": r.client_cpu_s,
                "errors": r.errors,
            })).collect::<Vec<_>>(),
            "server_rss_kib": mem.map(|m| m.rss_kib),
            "server_hwm_kib": mem.map(|m| m.hwm_kib),
        });
        report::write_json(path, &doc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_is_found_at_the_end() {
        assert_eq!(tail_position(br#"{"events":[{"seq":1,"data":{"position":9}}],"position":1}"#), Some(1));
        assert_eq!(tail_position(br#"{"events":[],"position":1234}"#), Some(1234));
        assert_eq!(tail_position(b"{}"), None);
    }

    #[test]
    fn signed_differences() {
        let a = Instant::now();
        let b = a + Duration::from_micros(1500);
        assert_eq!(signed_us(b, a), 1500);
        assert_eq!(signed_us(a, b), -1500);
    }
}
