//! `webhooks`: push delivery of the change feed, against a receiver this program runs itself
//! (an axum server on loopback answering 200 at once; it records each body's arrival time,
//! `tenant`, `seq`, `type` and `resource.id`, and whether the Standard Webhooks headers came).
//!
//! Parts (`--parts`, in this order), each on a fresh scimd and database:
//! - `single`: one tenant, a backlog: N users created with no webhook, then a webhook added
//!   (`POST /api/v1/webhooks`) and replayed from position 1 (`POST .../replay {"from":1}`);
//!   timed from the replay's answer until the receiver has every event of the feed. Delivery is
//!   strictly in order, so this is one event at a time: POST, 2xx, position stored, next.
//! - `tenants`: the same over T tenants of M users each, one webhook per tenant, replayed one
//!   after the other; `tenants-all`: the same with one webhook for every tenant (`allTenants`),
//!   replayed once. Tenants are delivered in parallel (`[webhooks] concurrency`, 32).
//! - `latency`: a webhook on the tenant, then a writer creating users at a fixed rate (open
//!   loop, as `feed-latency`); latency = the receiver's arrival time of each `user.created`
//!   minus when the writer had read the answer of that user's `POST /Users` (matched by the
//!   resource id), and minus when it sent it. One fresh scimd per rate.
//! - `sync`: `scimd-bench run --scenarios initial-sync --no-ceiling` (this executable, as a child
//!   process) on a fresh SQLite file, alternating without and with a webhook on the tenant
//!   (added by `scimd webhook add` before the run), for R rounds.
//!
//! Every part checks what arrived per tenant: duplicates, events missing from the expected
//! range, and events that arrived after one with a higher `seq` (out of order). The backlog parts
//! also measure a delivery ceiling: the same receiver sent bodies of the same mean size by a
//! plain HTTP client (reqwest over hyper), one at a time per tenant and in order, with no store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::feed::{ServerArgs, Write, client, create_user, engine, error_text, fig_json, timed_create};
use crate::report::{self, Spread, spread};
use crate::stats::{Figures, Rec, figures};
use crate::{sys, target};

/// The target for one tenant's delivery, strictly in order.
pub const SINGLE_TARGET_PER_SEC: f64 = 1_000.0;
/// The target for 10 tenants' deliveries together.
pub const TENANTS_TARGET_PER_SEC: f64 = 5_000.0;
/// latency: events later than this after their write's answer are listed as stalls.
const SLOW_MS: f64 = 50.0;

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// One tenant's backlog, replayed from position 1
    Single,
    /// T tenants' backlogs, one webhook per tenant
    Tenants,
    /// T tenants' backlogs, one webhook for every tenant
    TenantsAll,
    /// Commit-to-delivery latency at each of --rates
    Latency,
    /// initial-sync without and with a webhook, alternating (SQLite only)
    Sync,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Single => "single",
            Part::Tenants => "tenants",
            Part::TenantsAll => "tenants-all",
            Part::Latency => "latency",
            Part::Sync => "sync",
        }
    }
}

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The parts to run, in this order (--database: only one part, not sync)
    #[arg(long, value_delimiter = ',', default_value = "single,tenants,latency,sync")]
    pub parts: Vec<Part>,
    /// single: users created before the webhook is added (the feed has two more events: tenant
    /// and token created)
    #[arg(long, default_value_t = 20_000)]
    pub backlog: u64,
    /// tenants, tenants-all: tenants
    #[arg(long, default_value_t = 10)]
    pub tenants: usize,
    /// tenants, tenants-all: users created in each tenant before the webhooks are added
    #[arg(long, default_value_t = 2_000)]
    pub per_tenant: u64,
    /// Concurrent creates while filling a backlog
    #[arg(long, default_value_t = 16)]
    pub fill_concurrency: usize,
    /// Seconds a backlog part waits for the receiver to have every event
    #[arg(long, default_value_t = 300)]
    pub deliver_limit: u64,
    /// latency: creates per second, one run per rate
    #[arg(long, value_delimiter = ',', default_value = "200,1000")]
    pub rates: Vec<u64>,
    /// latency: seconds of writing
    #[arg(long, default_value_t = 15)]
    pub latency_duration: u64,
    /// latency: the most writes in flight (below scimd's max_in_flight_per_tenant, 64)
    #[arg(long, default_value_t = 48)]
    pub max_in_flight: usize,
    /// latency: seconds after the last write's answer for the remaining events to arrive
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// sync: users of initial-sync
    #[arg(long, default_value_t = 10_000)]
    pub sync_users: u64,
    /// sync: rounds (each: without, then with)
    #[arg(long, default_value_t = 3)]
    pub sync_rounds: u64,
    /// Skip the delivery ceiling of the backlog parts
    #[arg(long)]
    pub no_ceiling: bool,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------- the receiver

/// One body the receiver got.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    tenant: String,
    seq: i64,
    kind: String,
    resource: Option<String>,
}

/// The fields of an event the receiver reads (the others are skipped).
#[derive(Deserialize)]
struct Body {
    tenant: String,
    seq: i64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    resource: Option<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Default)]
struct Inbox {
    arrivals: Mutex<Vec<Arrival>>,
    /// Bodies received (parsed or not).
    count: AtomicU64,
    bytes: AtomicU64,
    /// Bodies that were not an event.
    unparsed: AtomicU64,
    /// Bodies without `webhook-id`, `webhook-timestamp` or `webhook-signature`.
    unsigned: AtomicU64,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    if ["webhook-id", "webhook-timestamp", "webhook-signature"].iter().any(|h| !headers.contains_key(*h)) {
        inbox.unsigned.fetch_add(1, Ordering::Relaxed);
    }
    inbox.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match serde_json::from_slice::<Body>(&body) {
        Ok(b) => lock(&inbox.arrivals).push(Arrival {
            at,
            tenant: b.tenant,
            seq: b.seq,
            kind: b.kind,
            resource: b.resource.and_then(|r| r.id),
        }),
        Err(_) => {
            inbox.unparsed.fetch_add(1, Ordering::Relaxed);
        }
    }
    inbox.count.fetch_add(1, Ordering::Release);
    StatusCode::OK
}

/// The receiver: `POST /hook` on a loopback port; stopped when dropped.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.inbox.arrivals).clone()
    }
    fn count(&self) -> u64 {
        self.inbox.count.load(Ordering::Acquire)
    }
    fn mean_body(&self) -> usize {
        let n = self.count().max(1);
        usize::try_from(self.inbox.bytes.load(Ordering::Relaxed) / n).unwrap_or(0)
    }
}

async fn receiver() -> Result<Receiver, String> {
    let inbox = Arc::new(Inbox::default());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&inbox));
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("receiver: cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("  receiver stopped: {e}");
        }
    });
    Ok(Receiver { url: format!("http://{addr}/hook"), inbox, task })
}

// ---------------------------------------------------------------- checking what arrived

/// What arrived for one tenant, against the range of positions expected.
#[derive(Debug, Clone, Default)]
struct TenantCheck {
    expected: u64,
    unique: u64,
    duplicates: u64,
    missing: u64,
    /// Arrivals with a seq below one that arrived before them (duplicates excluded).
    out_of_order: u64,
    /// Arrivals outside the expected range.
    outside: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Check {
    tenants: BTreeMap<String, TenantCheck>,
}

impl Check {
    fn sum(&self, f: impl Fn(&TenantCheck) -> u64) -> u64 {
        self.tenants.values().map(f).sum()
    }
    fn complete(&self) -> bool {
        self.tenants.values().all(|t| t.missing == 0)
    }
    fn first(&self) -> Option<Instant> {
        self.tenants.values().filter_map(|t| t.first).min()
    }
    fn last(&self) -> Option<Instant> {
        self.tenants.values().filter_map(|t| t.last).max()
    }
    fn to_json(&self) -> Value {
        json!({
            "expected": self.sum(|t| t.expected),
            "unique": self.sum(|t| t.unique),
            "duplicates": self.sum(|t| t.duplicates),
            "missing": self.sum(|t| t.missing),
            "out_of_order": self.sum(|t| t.out_of_order),
            "outside_range": self.sum(|t| t.outside),
        })
    }
}

/// Checks `arrivals` (in arrival order) against `expected`: tenant -> positions `from..=to`.
fn check(arrivals: &[Arrival], expected: &BTreeMap<String, (i64, i64)>) -> Check {
    let mut seen: HashMap<&str, (HashSet<i64>, i64)> = HashMap::new();
    let mut out = Check::default();
    for (t, (from, to)) in expected {
        out.tenants.insert(
            t.clone(),
            TenantCheck { expected: u64::try_from(to - from + 1).unwrap_or(0), ..TenantCheck::default() },
        );
    }
    for a in arrivals {
        let Some(&(from, to)) = expected.get(&a.tenant) else { continue };
        let Some(tc) = out.tenants.get_mut(&a.tenant) else { continue };
        let (set, max) = seen.entry(a.tenant.as_str()).or_insert_with(|| (HashSet::new(), i64::MIN));
        if !set.insert(a.seq) {
            tc.duplicates += 1;
            continue;
        }
        if a.seq < *max {
            tc.out_of_order += 1;
        }
        *max = (*max).max(a.seq);
        if a.seq < from || a.seq > to {
            tc.outside += 1;
            continue;
        }
        tc.unique += 1;
        tc.first = Some(tc.first.map_or(a.at, |f| f.min(a.at)));
        tc.last = Some(tc.last.map_or(a.at, |l| l.max(a.at)));
    }
    for tc in out.tenants.values_mut() {
        tc.missing = tc.expected.saturating_sub(tc.unique);
    }
    out
}

/// Waits until every expected event arrived, or `deadline`; then `settle` more for late
/// duplicates. Returns the check.
async fn wait_for(
    r: &Receiver,
    expected: &BTreeMap<String, (i64, i64)>,
    deadline: Instant,
    settle: Duration,
    what: &str,
) -> Check {
    let total: u64 = expected.values().map(|(f, t)| u64::try_from(t - f + 1).unwrap_or(0)).sum();
    let mut last_report = Instant::now();
    loop {
        let n = r.count();
        if n >= total {
            let c = check(&r.arrivals(), expected);
            if c.complete() {
                break;
            }
        }
        if Instant::now() >= deadline {
            eprintln!("  {what}: time limit reached with {n} of {total} bodies received");
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {what}: {n}/{total} received");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(settle).await;
    check(&r.arrivals(), expected)
}

// ---------------------------------------------------------------- scimd

/// A started scimd with tenants (name, `Bearer` token) and an API key.
struct Started {
    spawned: target::Spawned,
    database: String,
    key: String,
    tenants: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

fn scimd_bin(a: &ServerArgs) -> PathBuf {
    a.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin)
}

fn tempdir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("scimd-bench-webhooks-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))
}

async fn start(a: &ServerArgs, names: &[String]) -> Result<Started, String> {
    let bin = scimd_bin(a);
    let dir = tempdir()?;
    let database = a.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("scimd.db").display()));
    eprintln!("scimd-bench: starting {} on {}, {} tenant(s)", bin.display(), report::redact(&database), names.len());
    let mut tenants = Vec::new();
    for name in names {
        tenants.push((name.clone(), format!("Bearer {}", target::provision(&bin, &database, name, &a.require)?)));
    }
    let key = target::api_key(&bin, &database)?;
    let spawned = target::start_scimd(&bin, &database, &dir.path().join("scimd.log")).await?;
    Ok(Started { spawned, database, key, tenants, dir })
}

impl Started {
    fn scim(&self) -> String {
        format!("{}/scim/v2", self.spawned.origin)
    }

    /// A vendor API call on the admin listener; the status and the JSON answer.
    async fn api(
        &self,
        c: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.spawned.admin);
        let mut req = c.request(method.clone(), &url).header("Authorization", format!("Bearer {}", self.key));
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| format!("{method} {url}: {e}"))?;
        if !(200..300).contains(&status) {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(format!("{method} {url}: {status}: {text}"));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {url}: not JSON: {e}"))
    }

    /// The feed position of each tenant, once it stays put and covers `at_least` events.
    async fn positions(&self, c: &reqwest::Client, at_least: i64) -> Result<BTreeMap<String, i64>, String> {
        let start = Instant::now();
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            let mut now = BTreeMap::new();
            for (name, _) in &self.tenants {
                let v =
                    self.api(c, reqwest::Method::GET, &format!("/api/v1/tenants/{name}/Users?count=0"), None).await?;
                now.insert(name.clone(), v.get("position").and_then(Value::as_i64).unwrap_or(0));
            }
            if now == last && now.values().all(|p| *p >= at_least) {
                return Ok(now);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("the feeds' positions stay at {now:?}"));
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Adds a webhook to `url`, for `tenant` or (None) every tenant; returns its id.
    async fn add_webhook(&self, c: &reqwest::Client, url: &str, tenant: Option<&str>) -> Result<String, String> {
        let body = match tenant {
            Some(t) => json!({"url": url, "tenant": t}),
            None => json!({"url": url, "allTenants": true}),
        };
        let v = self.api(c, reqwest::Method::POST, "/api/v1/webhooks", Some(body)).await?;
        v.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| "POST /api/v1/webhooks: no id".into())
    }

    /// The stored deliveries of a webhook.
    async fn deliveries(&self, c: &reqwest::Client, id: &str) -> Result<Vec<Stored>, String> {
        let v = self.api(c, reqwest::Method::GET, &format!("/api/v1/webhooks/{id}"), None).await?;
        Ok(v.get("deliveries")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .map(|d| Stored {
                        tenant: d.get("tenant").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        position: d.get("position").and_then(Value::as_i64).unwrap_or(-1),
                        backlog: d.get("backlog").and_then(Value::as_i64).unwrap_or(-1),
                        failures: d.get("consecutiveFailures").and_then(Value::as_i64).unwrap_or(-1),
                        last_outcome: d.get("lastOutcome").and_then(Value::as_str).map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The lines scimd wrote to its log (stderr, RUST_LOG=warn): warnings and errors.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("scimd.log"))
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// A webhook's delivery of one tenant, as the vendor API shows it after a part.
#[derive(Debug, Clone)]
struct Stored {
    tenant: String,
    position: i64,
    backlog: i64,
    failures: i64,
    last_outcome: Option<String>,
}

impl Stored {
    fn to_json(&self) -> Value {
        json!({"tenant": self.tenant, "position": self.position, "backlog": self.backlog,
               "consecutive_failures": self.failures, "last_outcome": self.last_outcome})
    }
    fn text(&self) -> String {
        format!(
            "{}@{} backlog {} failures {} last {}",
            self.tenant,
            self.position,
            self.backlog,
            self.failures,
            self.last_outcome.as_deref().unwrap_or("-")
        )
    }
}

/// Up to 5 lines of a scimd log, and how many there were.
fn log_summary(lines: &[String]) -> String {
    if lines.is_empty() {
        return "scimd log: empty".to_owned();
    }
    let shown: Vec<&str> = lines.iter().take(5).map(String::as_str).collect();
    format!("scimd log: {} lines; first: {}", lines.len(), shown.join(" | "))
}

/// Creates `per_tenant` users in each tenant from `concurrency` tasks (user k goes to tenant
/// k mod T); the figures of the creates.
async fn fill(c: &reqwest::Client, s: &Started, per_tenant: u64, concurrency: usize) -> (Figures, Vec<String>) {
    let t = s.tenants.len() as u64;
    let n = per_tenant * t;
    let next = Arc::new(AtomicU64::new(0));
    let scim = Arc::new(s.scim());
    let auths: Arc<Vec<String>> = Arc::new(s.tenants.iter().map(|(_, a)| a.clone()).collect());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (c, next, scim, auths) = (c.clone(), Arc::clone(&next), Arc::clone(&scim), Arc::clone(&auths));
        tasks.push(tokio::spawn(async move {
            let mut rec = Rec::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let auth = &auths[usize::try_from(k % t).unwrap_or(0)];
                let t0 = Instant::now();
                match create_user(&c, &scim, auth, "wh", k).await {
                    Ok((201, _)) => rec.ok(t0.elapsed()),
                    Ok((st, b)) => rec.fail(t0.elapsed(), error_text("POST /Users", st, &b)),
                    Err(e) => rec.fail(t0.elapsed(), e),
                }
            }
            rec
        }));
    }
    let mut rec = Rec::default();
    for task in tasks {
        if let Ok(r) = task.await {
            rec.merge(r);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let samples = rec.samples.clone();
    (figures(&mut rec, secs), samples)
}

// ---------------------------------------------------------------- backlog parts

/// What one backlog part measured.
struct Backlog {
    part: Part,
    engine: &'static str,
    tenants: usize,
    webhooks: usize,
    fill: Figures,
    fill_errors: Vec<String>,
    check: Check,
    /// From the (last) replay's answer to the last event's arrival.
    secs_from_replay: f64,
    /// From the replay's answer to the first arrival.
    first_after_ms: f64,
    /// From the first arrival to the last.
    secs_steady: f64,
    /// Each tenant's events/s from its first arrival to its last.
    per_tenant_rates: Vec<f64>,
    scimd_cpu_s: Option<f64>,
    client_cpu_s: Option<f64>,
    load_start: String,
    load_end: String,
    stored: Vec<Stored>,
    log: Vec<String>,
    unsigned: u64,
    unparsed: u64,
    mean_body: usize,
    ceiling: Option<Ceiling>,
    target: f64,
}

impl Backlog {
    fn events(&self) -> u64 {
        self.check.sum(|t| t.unique)
    }
    fn rate_from_replay(&self) -> f64 {
        if self.secs_from_replay > 0.0 { self.events() as f64 / self.secs_from_replay } else { 0.0 }
    }
    fn rate_steady(&self) -> f64 {
        if self.secs_steady > 0.0 { self.events().saturating_sub(1) as f64 / self.secs_steady } else { 0.0 }
    }
    fn clean(&self) -> bool {
        self.check.complete() && self.check.sum(|t| t.duplicates + t.out_of_order + t.outside) == 0
    }
}

/// The delivery ceiling: bodies of the same size POSTed to a fresh receiver, one at a time per
/// tenant, in order, by reqwest on a runtime of its own.
struct Ceiling {
    events: u64,
    secs: f64,
    check: Check,
    client_cpu_s: Option<f64>,
}

impl Ceiling {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.events as f64 / self.secs } else { 0.0 }
    }
}

/// POSTs `per_tenant` bodies of `body_len` bytes for each tenant to `url`, one at a time per
/// tenant, in order; the seconds it took.
async fn ceiling_sends(url: String, tenants: Vec<String>, per_tenant: i64, body_len: usize) -> Result<f64, String> {
    let c = client(tenants.len() * 2)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in tenants {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 1..=per_tenant {
                let head = format!(
                    "{{\"id\":\"ceiling-{t}-{seq}\",\"tenant\":\"{t}\",\"seq\":{seq},\"type\":\"user.created\",\"pad\":\""
                );
                let pad = body_len.saturating_sub(head.len() + 2);
                let body = format!("{head}{}\"}}", "a".repeat(pad));
                let resp = c
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("webhook-id", format!("ceiling-{t}-{seq}"))
                    .header("webhook-timestamp", "0")
                    .header("webhook-signature", "v1,AAAA")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("ceiling POST: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("ceiling POST: {}", resp.status()));
                }
                let _ = resp.bytes().await;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("ceiling task: {e}"))??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The ceiling: the sender runs on a runtime (2 worker threads) of its own, so that it never
/// shares a thread with the receiver, as scimd's sender does not.
async fn ceiling(tenants: &[String], per_tenant: i64, body_len: usize) -> Result<Ceiling, String> {
    let r = receiver().await?;
    let expected: BTreeMap<String, (i64, i64)> = tenants.iter().map(|t| (t.clone(), (1, per_tenant))).collect();
    let me0 = sys::cpu_secs(std::process::id());
    let (url, names) = (r.url.clone(), tenants.to_vec());
    let sender = std::thread::spawn(move || -> Result<f64, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the ceiling's runtime: {e}"))?;
        rt.block_on(ceiling_sends(url, names, per_tenant, body_len))
    });
    let secs = tokio::task::spawn_blocking(move || sender.join())
        .await
        .map_err(|e| format!("ceiling: {e}"))?
        .map_err(|_| "the ceiling's sender panicked".to_owned())??;
    let me1 = sys::cpu_secs(std::process::id());
    let check = check(&r.arrivals(), &expected);
    Ok(Ceiling { events: check.sum(|t| t.unique), secs, check, client_cpu_s: me0.zip(me1).map(|(a, b)| b - a) })
}

async fn backlog(a: &WebhooksArgs, part: Part) -> Result<Backlog, String> {
    let (names, per_tenant, target): (Vec<String>, u64, f64) = match part {
        Part::Single => (vec!["bench".to_owned()], a.backlog, SINGLE_TARGET_PER_SEC),
        _ => ((0..a.tenants.max(1)).map(|i| format!("bench-{i:02}")).collect(), a.per_tenant, TENANTS_TARGET_PER_SEC),
    };
    let s = start(&a.server, &names).await?;
    let c = client(a.fill_concurrency * 2)?;
    let (fill_fig, fill_errors) = fill(&c, &s, per_tenant, a.fill_concurrency).await;
    eprintln!(
        "  {}: filled {} users in {:.1}s ({:.0}/s), {} errors",
        part.name(),
        fill_fig.ops - fill_fig.errors,
        fill_fig.secs,
        fill_fig.per_sec,
        fill_fig.errors
    );
    let positions = s.positions(&c, i64::try_from(per_tenant).unwrap_or(i64::MAX)).await?;
    let expected: BTreeMap<String, (i64, i64)> = positions.iter().map(|(t, p)| (t.clone(), (1, *p))).collect();
    let r = receiver().await?;
    let ids = if part == Part::TenantsAll {
        vec![s.add_webhook(&c, &r.url, None).await?]
    } else {
        let mut ids = Vec::new();
        for (name, _) in &s.tenants {
            ids.push(s.add_webhook(&c, &r.url, Some(name)).await?);
        }
        ids
    };
    // Nothing is due yet: each webhook starts at the feed's position.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = r.count();
    let load_start = sys::uptime_load();
    let cpu0 = sys::cpu_secs(s.spawned.pid);
    let me0 = sys::cpu_secs(std::process::id());
    let mut replayed = Instant::now();
    for id in &ids {
        s.api(&c, reqwest::Method::POST, &format!("/api/v1/webhooks/{id}/replay"), Some(json!({"from": 1}))).await?;
        replayed = Instant::now();
    }
    let deadline = Instant::now() + Duration::from_secs(a.deliver_limit);
    let check = wait_for(&r, &expected, deadline, Duration::from_millis(500), part.name()).await;
    let cpu1 = sys::cpu_secs(s.spawned.pid);
    let me1 = sys::cpu_secs(std::process::id());
    let load_end = sys::uptime_load();
    let mut stored = Vec::new();
    for id in &ids {
        stored.extend(s.deliveries(&c, id).await?);
    }
    let log = s.log();
    let last = check.last().unwrap_or(replayed);
    let first = check.first().unwrap_or(replayed);
    let per_tenant_rates = check
        .tenants
        .values()
        .filter_map(|t| {
            let (f, l) = (t.first?, t.last?);
            let secs = (l - f).as_secs_f64();
            (secs > 0.0).then(|| t.unique.saturating_sub(1) as f64 / secs)
        })
        .collect();
    let mean_body = r.mean_body();
    let unsigned = r.inbox.unsigned.load(Ordering::Relaxed);
    let unparsed = r.inbox.unparsed.load(Ordering::Relaxed);
    if before > 0 {
        eprintln!("  {}: {before} bodies arrived before the replay", part.name());
    }
    let engine = engine(&s.database);
    drop(r);
    drop(s);
    let ceiling = if a.no_ceiling {
        None
    } else {
        let max_pos = positions.values().copied().max().unwrap_or(0);
        let c = ceiling(&names, max_pos, mean_body).await?;
        eprintln!("  {} ceiling: {} events in {:.2}s ({:.0}/s)", part.name(), c.events, c.secs, c.rate());
        Some(c)
    };
    let b = Backlog {
        part,
        engine,
        tenants: names.len(),
        webhooks: ids.len(),
        fill: fill_fig,
        fill_errors,
        secs_from_replay: last.saturating_duration_since(replayed).as_secs_f64(),
        first_after_ms: first.saturating_duration_since(replayed).as_secs_f64() * 1000.0,
        secs_steady: (last - first.min(last)).as_secs_f64(),
        check,
        per_tenant_rates,
        scimd_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        client_cpu_s: me0.zip(me1).map(|(a, b)| b - a),
        load_start,
        load_end,
        stored,
        log,
        unsigned,
        unparsed,
        mean_body,
        ceiling,
        target,
    };
    eprintln!(
        "  {}: {} events in {:.2}s from the replay ({:.0}/s; steady {:.0}/s)",
        part.name(),
        b.events(),
        b.secs_from_replay,
        b.rate_from_replay(),
        b.rate_steady()
    );
    Ok(b)
}

fn backlog_json(b: &Backlog) -> Value {
    json!({
        "part": b.part.name(),
        "engine": b.engine,
        "tenants": b.tenants,
        "webhooks": b.webhooks,
        "fill": fig_json(&b.fill),
        "fill_errors": b.fill_errors,
        "events": b.events(),
        "check": b.check.to_json(),
        "secs_from_replay": b.secs_from_replay,
        "events_per_sec_from_replay": b.rate_from_replay(),
        "first_event_after_replay_ms": b.first_after_ms,
        "secs_first_to_last": b.secs_steady,
        "events_per_sec_first_to_last": b.rate_steady(),
        "per_tenant_events_per_sec": b.per_tenant_rates,
        "scimd_cpu_s": b.scimd_cpu_s,
        "bench_cpu_s": b.client_cpu_s,
        "load_before": b.load_start,
        "load_after": b.load_end,
        "stored_deliveries": b.stored.iter().map(Stored::to_json).collect::<Vec<_>>(),
        "scimd_log": b.log,
        "unsigned_bodies": b.unsigned,
        "unparsed_bodies": b.unparsed,
        "mean_body_bytes": b.mean_body,
        "ceiling": b.ceiling.as_ref().map(|c| json!({"events": c.events, "secs": c.secs, "events_per_sec": c.rate(),
            "check": c.check.to_json(), "bench_cpu_s": c.client_cpu_s})),
        "target_per_sec": b.target,
        "target_met": b.clean() && b.rate_from_replay() >= b.target,
    })
}

fn backlog_table(rows: &[Backlog]) -> String {
    let header = [
        "part",
        "engine",
        "tenants",
        "hooks",
        "events",
        "s (replay>last)",
        "events/s",
        "1st after",
        "events/s 1st>last",
        "per tenant/s",
        "dup",
        "missing",
        "disorder",
        "scimd CPU",
        "load",
        "note",
    ];
    let mut cells = Vec::new();
    for b in rows {
        let (lo, hi) = b.per_tenant_rates.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let met = b.clean() && b.rate_from_replay() >= b.target;
        cells.push(vec![
            b.part.name().to_owned(),
            b.engine.to_owned(),
            b.tenants.to_string(),
            b.webhooks.to_string(),
            b.events().to_string(),
            format!("{:.2}", b.secs_from_replay),
            format!("{:.0}", b.rate_from_replay()),
            format!("{:.0} ms", b.first_after_ms),
            format!("{:.0}", b.rate_steady()),
            if b.per_tenant_rates.is_empty() { "-".into() } else { format!("{lo:.0}-{hi:.0}") },
            b.check.sum(|t| t.duplicates).to_string(),
            b.check.sum(|t| t.missing).to_string(),
            b.check.sum(|t| t.out_of_order).to_string(),
            b.scimd_cpu_s.map_or("-".into(), |c| format!("{c:.1}s")),
            load1_pair(&b.load_start, &b.load_end),
            format!("target {:.0}/s: {}", b.target, if met { "met" } else { "MISSED" }),
        ]);
        if let Some(c) = &b.ceiling {
            cells.push(vec![
                format!("{} ceiling", b.part.name()),
                "-".into(),
                b.tenants.to_string(),
                "-".into(),
                c.events.to_string(),
                format!("{:.2}", c.secs),
                format!("{:.0}", c.rate()),
                "-".into(),
                "-".into(),
                "-".into(),
                c.check.sum(|t| t.duplicates).to_string(),
                c.check.sum(|t| t.missing).to_string(),
                c.check.sum(|t| t.out_of_order).to_string(),
                "-".into(),
                "-".into(),
                format!(
                    "reqwest, {} B bodies, in order per tenant; scimd/ceiling {:.2}",
                    b.mean_body,
                    b.rate_from_replay() / c.rate().max(1e-9)
                ),
            ]);
        }
    }
    report::table(&header, &cells, 2)
}

/// "1.23>2.34": the 1-minute figures of two `uptime_load` strings.
fn load1_pair(a: &str, b: &str) -> String {
    let one = |s: &str| s.trim_start_matches("load average: ").split(',').next().unwrap_or("?").trim().to_owned();
    format!("{}>{}", one(a), one(b))
}

// ---------------------------------------------------------------- latency

struct Written {
    writes: Vec<Write>,
    /// When the first write was due.
    start: Instant,
    rec: Rec,
    secs: f64,
    max_lag_ms: f64,
    late: u64,
}

/// Creates `rate` users per second for `duration` seconds, each sent at its scheduled time
/// (at most `max_in_flight` at once).
async fn write(c: &reqwest::Client, s: &Started, rate: u64, duration: u64, max_in_flight: usize) -> Written {
    let rate = rate.max(1);
    let n = rate * duration;
    let scim = Arc::new(s.scim());
    let auth = Arc::new(s.tenants.first().map(|(_, a)| a.clone()).unwrap_or_default());
    let out: Arc<Mutex<(Vec<Write>, Rec)>> = Arc::new(Mutex::new((Vec::new(), Rec::default())));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now() + Duration::from_millis(20);
    let (mut max_lag, mut late) = (Duration::ZERO, 0u64);
    for k in 0..n {
        let at = start + Duration::from_nanos(k * 1_000_000_000 / rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
        let lag = Instant::now().saturating_duration_since(at);
        max_lag = max_lag.max(lag);
        if lag > Duration::from_millis(1) {
            late += 1;
        }
        let (c, scim, auth, out) = (c.clone(), Arc::clone(&scim), Arc::clone(&auth), Arc::clone(&out));
        tokio::spawn(async move {
            let (w, err) = timed_create(&c, &scim, &auth, "lat", k).await;
            let mut o = lock(&out);
            match err {
                None => o.1.ok(w.answered - w.sent),
                Some(e) => o.1.fail(w.answered - w.sent, e),
            }
            o.0.push(w);
            drop(o);
            drop(permit);
        });
    }
    let _ = slots.acquire_many(u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX)).await;
    let secs = start.elapsed().as_secs_f64();
    let (writes, rec) = std::mem::take(&mut *lock(&out));
    Written { writes, start, rec, secs, max_lag_ms: max_lag.as_secs_f64() * 1000.0, late }
}

/// `a - b` in microseconds, negative if `a` is earlier.
fn signed_us(a: Instant, b: Instant) -> i64 {
    if a >= b {
        i64::try_from((a - b).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((b - a).as_micros()).unwrap_or(i64::MAX)
    }
}

struct Latency {
    engine: &'static str,
    rate: u64,
    duration: u64,
    writes: Figures,
    write_errors: Vec<String>,
    created: u64,
    writer_secs: f64,
    late: u64,
    max_lag_ms: f64,
    after_answer: Spread,
    after_send: Spread,
    /// Created users whose event did not arrive within the grace period.
    missed: u64,
    check: Check,
    /// Events later than SLOW_MS after their write's answer: (seconds into the writing when
    /// the write was sent, latency ms), in sending order.
    slow: Vec<(f64, f64)>,
    /// From the last write's answer to the last event's arrival.
    drain_ms: f64,
    /// From adding the webhook to the warm-up event's arrival.
    warmup_ms: f64,
    stored: Vec<Stored>,
    log: Vec<String>,
    scimd_cpu_s: Option<f64>,
    load_start: String,
    load_end: String,
}

async fn latency(a: &WebhooksArgs, rate: u64) -> Result<Latency, String> {
    let s = start(&a.server, &["bench".to_owned()]).await?;
    let c = client(a.max_in_flight + 4)?;
    let r = receiver().await?;
    let id = s.add_webhook(&c, &r.url, Some("bench")).await?;
    // Warm-up, not measured: one user, until its event arrives (a worker that had no webhook
    // to deliver may only look again on its timer).
    let added = Instant::now();
    let auth = s.tenants.first().map(|(_, a)| a.clone()).unwrap_or_default();
    match create_user(&c, &s.scim(), &auth, "warm", 0).await? {
        (201, _) => {}
        (st, b) => return Err(error_text("POST /Users (warm-up)", st, &b)),
    }
    let warm_deadline = added + Duration::from_secs(10);
    while r.count() == 0 && Instant::now() < warm_deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let warmup_ms = r.arrivals().first().map_or(f64::NAN, |x| (x.at - added).as_secs_f64() * 1000.0);
    let p0 = *s.positions(&c, 0).await?.get("bench").unwrap_or(&0);
    let load_start = sys::uptime_load();
    eprintln!(
        "  latency {rate}/s: webhook {id}; the warm-up's event arrived {warmup_ms:.0} ms after the webhook was added; \
         measuring from position {p0}; {load_start}"
    );
    let cpu0 = sys::cpu_secs(s.spawned.pid);
    let w = write(&c, &s, rate, a.latency_duration, a.max_in_flight).await;
    let cpu1 = sys::cpu_secs(s.spawned.pid);
    let created = w.writes.iter().filter(|x| x.id.is_some()).count() as u64;
    let last_answer = w.writes.iter().map(|x| x.answered).max().unwrap_or_else(Instant::now);
    let p1 = *s.positions(&c, 0).await?.get("bench").unwrap_or(&0);
    let expected: BTreeMap<String, (i64, i64)> = [("bench".to_owned(), (p0 + 1, p1))].into_iter().collect();
    let check =
        wait_for(&r, &expected, last_answer + Duration::from_secs(a.grace), Duration::from_millis(300), "latency")
            .await;
    let load_end = sys::uptime_load();
    let stored = s.deliveries(&c, &id).await?;
    let log = s.log();
    let mut at: HashMap<String, Instant> = HashMap::new();
    for x in r.arrivals() {
        if x.kind == "user.created" {
            if let Some(id) = x.resource {
                at.entry(id).or_insert(x.at);
            }
        }
    }
    let (mut vs_answer, mut vs_sent, mut missed, mut slow) = (Vec::new(), Vec::new(), 0u64, Vec::new());
    for x in &w.writes {
        let Some(id) = &x.id else { continue };
        match at.get(id) {
            Some(t) => {
                let us = signed_us(*t, x.answered);
                vs_answer.push(us);
                vs_sent.push(signed_us(*t, x.sent));
                if us as f64 / 1000.0 > SLOW_MS {
                    slow.push((x.sent.saturating_duration_since(w.start).as_secs_f64(), us as f64 / 1000.0));
                }
            }
            None => missed += 1,
        }
    }
    slow.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rec = w.rec;
    let samples = rec.samples.clone();
    let writes = figures(&mut rec, w.secs);
    let drain_ms = check.last().map_or(f64::NAN, |l| signed_us(l, last_answer) as f64 / 1000.0);
    let l = Latency {
        engine: engine(&s.database),
        rate,
        duration: a.latency_duration,
        writes,
        write_errors: samples,
        created,
        writer_secs: w.secs,
        late: w.late,
        max_lag_ms: w.max_lag_ms,
        after_answer: spread(&mut vs_answer),
        after_send: spread(&mut vs_sent),
        missed,
        check,
        slow,
        drain_ms,
        warmup_ms,
        stored,
        log,
        scimd_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        load_start,
        load_end,
    };
    eprintln!(
        "  latency {rate}/s: p50 {:.2} p99 {:.2} max {:.2} ms after the answer; {} missed",
        l.after_answer.p50_ms, l.after_answer.p99_ms, l.after_answer.max_ms, l.missed
    );
    Ok(l)
}

fn latency_json(l: &Latency) -> Value {
    json!({
        "engine": l.engine,
        "rate": l.rate,
        "duration_s": l.duration,
        "writes": fig_json(&l.writes),
        "write_errors": l.write_errors,
        "created": l.created,
        "writer_secs": l.writer_secs,
        "writer_late_sends": l.late,
        "writer_max_lag_ms": l.max_lag_ms,
        "latency_after_answer": l.after_answer.to_json(),
        "latency_after_send": l.after_send.to_json(),
        "missed": l.missed,
        "check": l.check.to_json(),
        "slow_threshold_ms": SLOW_MS,
        "slow_events": l.slow.len(),
        "stalls": stalls(&l.slow).iter().map(|(at, n, max)| json!({"at_s": at, "events": n, "max_ms": max})).collect::<Vec<_>>(),
        "last_event_after_last_answer_ms": l.drain_ms,
        "warmup_event_after_webhook_added_ms": l.warmup_ms,
        "stored_deliveries": l.stored.iter().map(Stored::to_json).collect::<Vec<_>>(),
        "scimd_log": l.log,
        "scimd_cpu_s_while_writing": l.scimd_cpu_s,
        "load_before": l.load_start,
        "load_after": l.load_end,
    })
}

fn latency_table(rows: &[Latency]) -> String {
    let header = [
        "rate/s",
        "engine",
        "writes/s",
        "created",
        "write p99",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "vs send p99",
        "early",
        "missed",
        "dup",
        "disorder",
        ">50 ms",
        "drain ms",
        "scimd CPU",
        "load",
        "note",
    ];
    let mut cells = Vec::new();
    for l in rows {
        cells.push(vec![
            l.rate.to_string(),
            l.engine.to_owned(),
            format!("{:.0}", l.writes.per_sec),
            format!("{} ({} err)", l.created, l.writes.errors),
            format!("{:.2}", l.writes.p99_ms),
            format!("{:.2}", l.after_answer.p50_ms),
            format!("{:.2}", l.after_answer.p90_ms),
            format!("{:.2}", l.after_answer.p99_ms),
            format!("{:.2}", l.after_answer.max_ms),
            format!("{:.2}", l.after_send.p99_ms),
            l.after_answer.negative.to_string(),
            l.missed.to_string(),
            l.check.sum(|t| t.duplicates).to_string(),
            l.check.sum(|t| t.out_of_order).to_string(),
            l.slow.len().to_string(),
            format!("{:.0}", l.drain_ms),
            l.scimd_cpu_s.map_or("-".into(), |c| format!("{c:.1}s")),
            load1_pair(&l.load_start, &l.load_end),
            format!(
                "{} sends >1 ms late (max {:.1} ms); warm-up event {:.0} ms after the webhook was added",
                l.late, l.max_lag_ms, l.warmup_ms
            ),
        ]);
    }
    let mut out = report::table(&header, &cells, 1);
    for l in rows {
        let st = stalls(&l.slow);
        if !st.is_empty() {
            let list: Vec<String> =
                st.iter().map(|(at, n, max)| format!("{at:.2}s: {n} events, up to {max:.0} ms")).collect();
            out += &format!(
                "{}/s: events later than {SLOW_MS:.0} ms, by when their write was sent: {}\n",
                l.rate,
                list.join("; ")
            );
        }
        out += &format!(
            "{}/s: stored delivery: {}; {}\n",
            l.rate,
            l.stored.iter().map(Stored::text).collect::<Vec<_>>().join(", "),
            log_summary(&l.log)
        );
    }
    out
}

/// Groups slow events (sorted by send time) into stalls: runs whose sends are at most 100 ms
/// apart; (start s, events, max latency ms) each.
fn stalls(slow: &[(f64, f64)]) -> Vec<(f64, usize, f64)> {
    let mut out: Vec<(f64, usize, f64)> = Vec::new();
    let mut prev = f64::NEG_INFINITY;
    for (at, ms) in slow {
        match out.last_mut() {
            Some(last) if at - prev <= 0.1 => {
                last.1 += 1;
                last.2 = last.2.max(*ms);
            }
            _ => out.push((*at, 1, *ms)),
        }
        prev = *at;
    }
    out
}

// ---------------------------------------------------------------- initial-sync with a webhook

struct SyncRun {
    round: u64,
    with: bool,
    fig: Figures,
    scimd_cpu_s: Option<f64>,
    load_start: String,
    /// The 1-minute load at the start and end of initial-sync, as `run` recorded it.
    load_run: (f64, f64),
    /// user.created events the receiver had when the run ended (scimd is stopped then).
    delivered: u64,
    check: Option<Check>,
    /// From the first event's arrival to the last's.
    delivery_secs: f64,
    note: String,
}

async fn sync_round(a: &WebhooksArgs, round: u64, with: bool) -> Result<SyncRun, String> {
    let bin = scimd_bin(&a.server);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir = tempdir()?;
    let db = dir.path().join("scimd.db");
    let database = format!("sqlite://{}", db.display());
    let label = format!("{}-{round}", if with { "with" } else { "without" });
    // Both variants: the tenant made here; `run` finds it and makes the token.
    let mut args = vec!["--database", database.as_str(), "tenant", "create", "bench"];
    if !a.server.require.is_empty() {
        args.extend(["--require", a.server.require.as_str()]);
    }
    target::run_cli(&bin, &args)?;
    let r = receiver().await?;
    if with {
        let out =
            target::run_cli(&bin, &["--database", &database, "webhook", "add", "--url", &r.url, "--tenant", "bench"])?;
        eprintln!("  sync {label}: {}", out.lines().next().unwrap_or_default());
    }
    let load_start = sys::uptime_load();
    eprintln!("  sync {label}: {load_start}");
    let json_path = dir.path().join("run.json");
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("run")
        .args(["--name", &label])
        .arg("--scimd-bin")
        .arg(&bin)
        .arg("--database")
        .arg(&db)
        .args(["--users", &a.sync_users.to_string(), "--scenarios", "initial-sync", "--no-ceiling", "--json"])
        .arg(&json_path);
    let row = initial_sync(cmd, &exe, &json_path, &label).await?;
    let fig = row.fig;
    let arrivals = r.arrivals();
    let delivered = arrivals.iter().filter(|x| x.kind == "user.created").count() as u64;
    let (check, delivery_secs) = if with {
        let lo = arrivals.iter().map(|x| x.seq).min().unwrap_or(1);
        let hi = arrivals.iter().map(|x| x.seq).max().unwrap_or(0);
        let expected: BTreeMap<String, (i64, i64)> = [("bench".to_owned(), (lo, hi))].into_iter().collect();
        let c = check(&arrivals, &expected);
        let secs = c.first().zip(c.last()).map_or(0.0, |(f, l)| (l - f).as_secs_f64());
        (Some(c), secs)
    } else {
        (None, 0.0)
    };
    Ok(SyncRun {
        round,
        with,
        fig,
        scimd_cpu_s: row.cpu_s,
        load_start,
        load_run: row.load,
        delivered,
        check,
        delivery_secs,
        note: row.note,
    })
}

/// The initial-sync row of a `scimd-bench run` child.
pub(crate) struct SyncRow {
    /// Its figures.
    pub fig: Figures,
    /// The server's CPU seconds over the run, when the child could read them.
    pub cpu_s: Option<f64>,
    /// The load average at the run's start and end.
    pub load: (f64, f64),
    /// The child's note.
    pub note: String,
}

/// Runs `cmd` (a `scimd-bench run --scenarios initial-sync ... --json JSON_PATH` child),
/// shows its table, and returns its initial-sync row.
pub(crate) async fn initial_sync(
    mut cmd: tokio::process::Command,
    exe: &Path,
    json_path: &Path,
    label: &str,
) -> Result<SyncRow, String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!("scimd-bench run ({label}) failed: {}", out.status));
    }
    let doc = read_json(json_path)?;
    let row = doc
        .get("rows")
        .and_then(Value::as_array)
        .and_then(|rows| rows.iter().find(|r| r.get("scenario").and_then(Value::as_str) == Some("initial-sync")))
        .cloned()
        .ok_or_else(|| format!("{}: no initial-sync row", json_path.display()))?;
    let f = |k: &str| row.pointer(&format!("/server/{k}")).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let fig = Figures {
        ops: row.pointer("/server/ops").and_then(Value::as_u64).unwrap_or(0),
        errors: row.pointer("/server/errors").and_then(Value::as_u64).unwrap_or(0),
        secs: f("secs"),
        per_sec: f("per_sec"),
        p50_ms: f("p50_ms"),
        p99_ms: f("p99_ms"),
        p999_ms: f("p999_ms"),
        over_100ms: row.pointer("/server/over_100ms").and_then(Value::as_u64).unwrap_or(0),
        max_ms: f("max_ms"),
    };
    let num = |k: &str| row.get(k).and_then(Value::as_f64);
    Ok(SyncRow {
        fig,
        cpu_s: num("server_cpu_s"),
        load: (num("loadavg_start").unwrap_or(f64::NAN), num("loadavg_end").unwrap_or(f64::NAN)),
        note: row.get("note").and_then(Value::as_str).unwrap_or_default().to_owned(),
    })
}

pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn sync_json(s: &SyncRun) -> Value {
    json!({
        "round": s.round,
        "webhook": s.with,
        "initial_sync": fig_json(&s.fig),
        "scimd_cpu_s": s.scimd_cpu_s,
        "load_before": s.load_start,
        "loadavg_initial_sync": [s.load_run.0, s.load_run.1],
        "user_created_delivered_before_stop": s.delivered,
        "check": s.check.as_ref().map(Check::to_json),
        "delivery_secs_first_to_last": s.delivery_secs,
        "note": s.note,
    })
}

fn sync_table(rows: &[SyncRun]) -> String {
    let header = [
        "run",
        "users/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "err",
        "scimd CPU",
        "load",
        "delivered",
        "dup/missing/disorder",
    ];
    let mut cells = Vec::new();
    for s in rows {
        cells.push(vec![
            format!("{}-{}", if s.with { "with" } else { "without" }, s.round),
            format!("{:.0}", s.fig.per_sec),
            format!("{:.2}", s.fig.p50_ms),
            format!("{:.2}", s.fig.p99_ms),
            format!("{:.1}", s.fig.max_ms),
            s.fig.errors.to_string(),
            s.scimd_cpu_s.map_or("-".into(), |c| format!("{c:.2}s")),
            format!("{:.2}>{:.2}", s.load_run.0, s.load_run.1),
            if s.with {
                format!(
                    "{}/{} user.created in {:.2}s ({:.0}/s)",
                    s.delivered,
                    s.fig.ops,
                    s.delivery_secs,
                    s.delivered as f64 / s.delivery_secs.max(1e-9)
                )
            } else {
                "-".into()
            },
            s.check.as_ref().map_or("-".into(), |c| {
                format!("{}/{}/{}", c.sum(|t| t.duplicates), c.sum(|t| t.missing), c.sum(|t| t.out_of_order))
            }),
        ]);
    }
    let mut out = report::table(&header, &cells, 1);
    let med = |with: bool, f: &dyn Fn(&SyncRun) -> f64| {
        let mut v: Vec<f64> = rows.iter().filter(|s| s.with == with).map(f).collect();
        median(&mut v)
    };
    let (wo, wi) = (med(false, &|s| s.fig.per_sec), med(true, &|s| s.fig.per_sec));
    let (cwo, cwi) =
        (med(false, &|s| s.scimd_cpu_s.unwrap_or(f64::NAN)), med(true, &|s| s.scimd_cpu_s.unwrap_or(f64::NAN)));
    out += &format!(
        "medians: without {wo:.0} users/s (scimd CPU {cwo:.2}s), with {wi:.0} users/s (scimd CPU {cwi:.2}s); with/without {:.2} (CPU {:.2})\n",
        wi / wo,
        cwi / cwo
    );
    out
}

// ---------------------------------------------------------------- the subcommand

pub async fn run(a: WebhooksArgs) -> Result<(), String> {
    if a.server.database.is_some() && (a.parts.len() != 1 || a.parts.contains(&Part::Sync)) {
        return Err("--database takes one part, not sync (each part needs a new, empty database)".into());
    }
    let started = Instant::now();
    let machine = sys::cpu();
    let load_start = sys::uptime_load();
    eprintln!("scimd-bench webhooks: {machine}; {load_start}");
    let (mut backlogs, mut latencies, mut syncs) = (Vec::new(), Vec::new(), Vec::new());
    for part in &a.parts {
        match part {
            Part::Single | Part::Tenants | Part::TenantsAll => backlogs.push(backlog(&a, *part).await?),
            Part::Latency => {
                for rate in &a.rates {
                    latencies.push(latency(&a, *rate).await?);
                }
            }
            Part::Sync => {
                for round in 1..=a.sync_rounds.max(1) {
                    for with in [false, true] {
                        syncs.push(sync_round(&a, round, with).await?);
                    }
                }
            }
        }
    }
    let load_end = sys::uptime_load();
    let mut out = format!(
        "\n{} webhooks | {machine}\nbefore: {load_start} | after: {load_end} | {:.0} s\n",
        a.server.name,
        started.elapsed().as_secs_f64()
    );
    if !backlogs.is_empty() {
        out += &format!(
            "\nBacklog delivery: users created first, then the webhook(s) added and replayed from position 1 \
             (single: {} users; tenants: {} x {}); events include each tenant's tenant.created and token.created\n\n",
            a.backlog, a.tenants, a.per_tenant
        );
        out += &backlog_table(&backlogs);
        for b in &backlogs {
            out += &format!(
                "{}: fill {} users at {:.0}/s ({} errors); stored deliveries: {}; bodies without signature headers: {}, unparsed: {}\n",
                b.part.name(),
                b.fill.ops - b.fill.errors,
                b.fill.per_sec,
                b.fill.errors,
                b.stored.iter().map(Stored::text).collect::<Vec<_>>().join(", "),
                b.unsigned,
                b.unparsed
            );
            out += &format!("{}: {}\n", b.part.name(), log_summary(&b.log));
            for e in &b.fill_errors {
                out += &format!("error sample: {e}\n");
            }
        }
    }
    if !latencies.is_empty() {
        out += &format!(
            "\nCommit-to-delivery latency: a webhook on the tenant, creates at a fixed rate for {} s; ms after the write's answer \
             (early = events received before the answer; drain = last event after the last answer)\n\n",
            a.latency_duration
        );
        out += &latency_table(&latencies);
        for l in &latencies {
            for e in &l.write_errors {
                out += &format!("error sample ({}/s): {e}\n", l.rate);
            }
        }
    }
    if !syncs.is_empty() {
        out += &format!(
            "\nscimd-bench run --scenarios initial-sync --users {} --no-ceiling (SQLite), without and with a webhook on the tenant\n\n",
            a.sync_users
        );
        out += &sync_table(&syncs);
    }
    print!("{out}");
    if let Some(path) = &a.json {
        let doc = json!({
            "bench": "webhooks",
            "server": a.server.name,
            "scimd_bin": scimd_bin(&a.server).display().to_string(),
            "machine": machine,
            "load_before": load_start,
            "load_after": load_end,
            "wall_s": started.elapsed().as_secs_f64(),
            "backlog": backlogs.iter().map(backlog_json).collect::<Vec<_>>(),
            "latency": latencies.iter().map(latency_json).collect::<Vec<_>>(),
            "sync": syncs.iter().map(sync_json).collect::<Vec<_>>(),
        });
        report::write_json(path, &doc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(t0: Instant, tenant: &str, seq: i64) -> Arrival {
        Arrival { at: t0, tenant: tenant.to_owned(), seq, kind: "user.created".into(), resource: None }
    }

    #[test]
    fn checks_count_duplicates_gaps_and_disorder() {
        let t0 = Instant::now();
        let a =
            vec![arr(t0, "a", 1), arr(t0, "a", 3), arr(t0, "a", 2), arr(t0, "a", 3), arr(t0, "b", 1), arr(t0, "x", 1)];
        let expected: BTreeMap<String, (i64, i64)> =
            [("a".to_owned(), (1, 4)), ("b".to_owned(), (1, 1))].into_iter().collect();
        let c = check(&a, &expected);
        let ta = &c.tenants["a"];
        assert_eq!((ta.unique, ta.duplicates, ta.missing, ta.out_of_order), (3, 1, 1, 1));
        assert_eq!(c.tenants["b"].missing, 0);
        assert!(!c.complete());
    }

    #[test]
    fn stalls_group_nearby_slow_events() {
        let s = stalls(&[(1.0, 60.0), (1.05, 80.0), (1.1, 70.0), (3.0, 55.0)]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].1, s[1].1), (3, 1));
        assert!((s[0].2 - 80.0).abs() < 1e-9);
    }

    #[test]
    fn medians() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&mut [4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn load_pairs() {
        assert_eq!(load1_pair("load average: 1.00, 2.00, 3.00", "load average: 2.50, 1, 1"), "1.00>2.50");
    }
}
