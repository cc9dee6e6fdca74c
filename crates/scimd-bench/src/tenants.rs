//! `tenants`: N tenants provisioning at once, each with its own token and group, each running
//! Entra's cycle for one new user:
//!
//! 1. `GET /Users?filter=userName eq "..."` (the match; 200 with an empty list),
//! 2. `POST /Users` with Entra's create body (initial-sync's),
//! 3. `PATCH /Users/{id}` with Entra's `Replace` ops (incremental's attribute change),
//! 4. `PATCH /Groups/{id}` adding the user (Entra's `Add` of one member).
//!
//! Steps 2 to 4 are the writes. Two paces:
//!
//! - `entra`: each tenant is one sequential client with its own keep-alive connection, as an
//!   Entra provisioning job is: one request in flight at a time, the four requests of a cycle
//!   back to back, and a cycle (one object) started every `--cycle-ms` (default 600 ms: 0.01
//!   minutes per object, the fast end of the 0.01 to 0.08 minutes per object Microsoft
//!   documents for initial cycles, CLIENTS.md). The tenants' schedules are spread evenly over
//!   one period. A tenant whose cycle takes longer than the period starts the next at once and
//!   falls behind (its cycles/s shows it).
//! - `flat`: `--concurrency` tasks as fast as the server answers; cycle n goes to tenant
//!   `n % N`, so the tenants take turns and each gets the same share of the client.
//!
//! Setup goes through the vendor API of the started scimd (tenants with the reference
//! customer's mandatory attributes, one token each) and SCIM (one group per tenant, made with the
//! tenant's token). With `--url`, the tenants are the tokens of `--tokens FILE`.
//!
//! Counted: requests started after the warm-up and answered before the end; a cycle when all
//! four of its requests are. Per tenant: p50 and p99 over all its counted requests, and cycles/s;
//! over the tenants: the spread of those (min, median, p90, max); fairness: the slowest tenant's
//! cycles/s against the median tenant's, and the worst tenant's p99 against the median tenant's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::feed::{ServerArgs, engine, error_text, fig_json};
use crate::report;
use crate::scenario::{entra_attribute_patch, entra_user_value, group_body, has_total, member_patch};
use crate::stats::{Figures, Rec, figures};
use crate::{sys, target};

/// The targets for 1,000 tenants provisioning at once.
pub const TARGET_WRITES_PER_SEC: f64 = 8000.0;
/// Every tenant's p99 stays below this.
pub const TARGET_P99_MS: f64 = 20.0;
/// The server's resident memory stays below this.
pub const TARGET_RSS_MIB: f64 = 100.0;
/// No request of this scenario waits longer than this for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SCIM_JSON: &str = "application/scim+json";

/// How the tenants send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    /// Each tenant one sequential client, a cycle started every --cycle-ms
    Entra,
    /// --concurrency tasks as fast as the server answers, the tenants taking turns
    Flat,
}

impl Pace {
    fn name(self) -> &'static str {
        match self {
            Pace::Entra => "entra",
            Pace::Flat => "flat",
        }
    }
}

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Configuration file for the started scimd (`--config`), e.g. `[request_log] enabled = false`
    #[arg(long, conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// Base URL of a running SCIM server (loopback only) instead of a started scimd, e.g.
    /// http://127.0.0.1:8080/scim/v2; the tenants are then the tokens of --tokens
    #[arg(long, requires = "tokens", conflicts_with_all = ["database", "scimd_bin"])]
    pub url: Option<String>,
    /// With --url: a file of bearer tokens, one a line, each of another tenant
    #[arg(long, requires = "url")]
    pub tokens: Option<PathBuf>,
    /// With --url: process id of the server, to report its memory and CPU
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,
    /// Tenants, each with its own token and group
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// entra: one request at a time per tenant, a cycle every --cycle-ms; flat: as fast as
    /// --concurrency allows
    #[arg(long, value_enum, default_value = "flat")]
    pub pace: Pace,
    /// entra: milliseconds from the start of one cycle of a tenant to the start of its next
    #[arg(long, default_value_t = 600)]
    pub cycle_ms: u64,
    /// entra: the tenants share one keep-alive connection pool (as flat does) instead of each
    /// having its own client and connection
    #[arg(long)]
    pub shared_pool: bool,
    /// flat: concurrent requests (tasks sharing one keep-alive connection pool)
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds measured (after the warm-up)
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of warm-up, not counted
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Concurrent requests of the setup (tenants, tokens, groups)
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

// ---------------------------------------------------------------- the cycle

/// The requests of a cycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Lookup,
    Create,
    Patch,
    Member,
}

impl Step {
    const ALL: [Step; 4] = [Step::Lookup, Step::Create, Step::Patch, Step::Member];

    fn name(self) -> &'static str {
        match self {
            Step::Lookup => "lookup",
            Step::Create => "create",
            Step::Patch => "patch user",
            Step::Member => "add member",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_write(self) -> bool {
        self != Step::Lookup
    }
}

/// A tenant under load: its name, `Bearer` header and group.
#[derive(Debug, Clone)]
struct Tenant {
    name: String,
    auth: String,
    group: String,
}

/// The measured window: requests started at or after `from` and answered by `to` count.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn counts(&self, t0: Instant, t1: Instant) -> bool {
        t0 >= self.from && t1 <= self.to
    }
}

/// What one tenant did in the window.
#[derive(Debug, Clone, Default)]
struct TenantRec {
    /// Every counted request of the tenant.
    rec: Rec,
    /// Cycles whose four requests were all counted and succeeded.
    cycles: u64,
}

/// What a task (then the whole run) recorded: per tenant and per step.
#[derive(Debug, Default)]
struct Tally {
    tenants: HashMap<usize, TenantRec>,
    steps: [Rec; 4],
}

impl Tally {
    /// Records one request of tenant `ti` if the window counts it; returns whether it succeeded.
    fn note<T>(&mut self, w: &Window, ti: usize, step: Step, t0: Instant, t1: Instant, r: &Result<T, String>) -> bool {
        if w.counts(t0, t1) {
            let t = self.tenants.entry(ti).or_default();
            let s = &mut self.steps[step.index()];
            match r {
                Ok(_) => {
                    t.rec.ok(t1 - t0);
                    s.ok(t1 - t0);
                }
                Err(e) => {
                    t.rec.fail(t1 - t0, e.clone());
                    s.fail(t1 - t0, e.clone());
                }
            }
        }
        r.is_ok()
    }

    fn merge(&mut self, other: Tally) {
        for (ti, t) in other.tenants {
            let e = self.tenants.entry(ti).or_default();
            e.rec.merge(t.rec);
            e.cycles += t.cycles;
        }
        for (a, b) in self.steps.iter_mut().zip(other.steps) {
            a.merge(b);
        }
    }
}

/// What every task shares.
struct Shared {
    /// The HTTP clients: one for every tenant (flat), or one per tenant (entra).
    clients: Vec<reqwest::Client>,
    base: String,
    tenants: Vec<Tenant>,
    /// Makes user names unique over runs on the same database.
    nonce: String,
    window: Window,
    /// Requests answered (counted or not), for the progress lines.
    sent: AtomicU64,
    errors: AtomicU64,
    /// Users created (201), counted or not.
    created: AtomicU64,
}

async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    auth: &str,
    body: Option<String>,
) -> Result<(u16, Vec<u8>), String> {
    let mut rb = client
        .request(method.clone(), url)
        .timeout(REQUEST_TIMEOUT)
        .header("Authorization", auth)
        .header("Accept", SCIM_JSON);
    if let Some(b) = body {
        rb = rb.header("Content-Type", SCIM_JSON).body(b);
    }
    let resp = rb.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok((status, bytes.to_vec()))
}

/// `Ok(body)` if the status is one of `ok`, else the error's text.
fn want(what: &str, r: Result<(u16, Vec<u8>), String>, ok: &[u16]) -> Result<Vec<u8>, String> {
    let (status, body) = r?;
    if ok.contains(&status) { Ok(body) } else { Err(error_text(what, status, &body)) }
}

/// The id in a SCIM resource's JSON.
fn id_of(what: &str, body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: not JSON: {e}"))?;
    v.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("{what}: no id"))
}

impl Shared {
    /// Sends one request of a cycle and records it; `None` when the run is over or it failed.
    async fn step(
        &self,
        tally: &mut Tally,
        ti: usize,
        step: Step,
        method: Method,
        url: String,
        body: Option<String>,
    ) -> Option<Vec<u8>> {
        if Instant::now() >= self.window.to {
            return None;
        }
        let auth = &self.tenants.get(ti)?.auth;
        let client = self.clients.get(ti).or_else(|| self.clients.first())?;
        let what = format!("{method} {url}");
        let t0 = Instant::now();
        let r = call(client, method, &url, auth, body).await;
        let r = match step {
            Step::Lookup => want(&what, r, &[200])
                .and_then(|b| if has_total(&b, 0) { Ok(b) } else { Err(format!("{what}: totalResults is not 0")) }),
            // the answer's id, which the next steps need
            Step::Create => want(&what, r, &[201]).and_then(|b| id_of(&what, &b).map(String::into_bytes)),
            Step::Patch => want(&what, r, &[200]),
            Step::Member => want(&what, r, &[204, 200]),
        };
        let t1 = Instant::now();
        self.sent.fetch_add(1, Ordering::Relaxed);
        match (&r, step) {
            (Err(_), _) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(_), Step::Create) => {
                self.created.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let ok = tally.note(&self.window, ti, step, t0, t1, &r);
        if ok { r.ok() } else { None }
    }

    /// Cycle `k` of tenant `ti`: lookup, create, PATCH of the user, the user added to the group.
    async fn cycle(&self, tally: &mut Tally, ti: usize, k: u64) {
        let Some(t) = self.tenants.get(ti) else { return };
        let started = Instant::now();
        let external = format!("{}-{k:07}", self.nonce);
        let un = format!("{external}@t{ti:05}.bench.example");
        let url = format!("{}/Users?filter=userName%20eq%20%22{un}%22", self.base);
        if self.step(tally, ti, Step::Lookup, Method::GET, url, None).await.is_none() {
            return;
        }
        let url = format!("{}/Users", self.base);
        let body = entra_user_value(k, &un, &external).to_string();
        let Some(id) = self.step(tally, ti, Step::Create, Method::POST, url, Some(body)).await else { return };
        let Ok(id) = String::from_utf8(id) else { return };
        let url = format!("{}/Users/{id}", self.base);
        let body = entra_attribute_patch(k);
        if self.step(tally, ti, Step::Patch, Method::PATCH, url, Some(body)).await.is_none() {
            return;
        }
        let url = format!("{}/Groups/{}", self.base, t.group);
        let body = member_patch("Add", std::slice::from_ref(&id));
        if self.step(tally, ti, Step::Member, Method::PATCH, url, Some(body)).await.is_some()
            && self.window.counts(started, Instant::now())
        {
            tally.tenants.entry(ti).or_default().cycles += 1;
        }
    }
}

/// Where tenant `ti` of `n` starts its schedule within one period (spread evenly).
fn phase(ti: usize, n: usize, period: Duration) -> Duration {
    if n == 0 { Duration::ZERO } else { period.mul_f64(ti as f64 / n as f64) }
}

/// `flat`: `concurrency` tasks; cycle n is tenant `n % N`'s cycle number `n / N`.
async fn drive_flat(s: &Arc<Shared>, concurrency: usize) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let n = s.tenants.len().max(1) as u64;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (s, next) = (Arc::clone(s), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < s.window.to {
                let c = next.fetch_add(1, Ordering::Relaxed);
                let ti = usize::try_from(c % n).unwrap_or(0);
                s.cycle(&mut tally, ti, c / n).await;
            }
            tally
        }));
    }
    merged(tasks).await
}

/// The tallies of the driver's tasks, merged (a task that panicked counts nothing).
async fn merged(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.merge(t);
        }
    }
    all
}

/// `entra`: one task per tenant, a cycle every `period`, one request at a time.
async fn drive_entra(s: &Arc<Shared>, start: Instant, period: Duration) -> Tally {
    let n = s.tenants.len();
    let mut tasks = Vec::new();
    for ti in 0..n {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let first = tokio::time::Instant::from_std(start + phase(ti, n, period));
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= s.window.to {
                    break;
                }
                s.cycle(&mut tally, ti, k).await;
                k += 1;
            }
            tally
        }));
    }
    merged(tasks).await
}

// ---------------------------------------------------------------- figures over the tenants

/// One tenant's figures over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantFig {
    pub requests: u64,
    pub errors: u64,
    pub cycles: u64,
    pub cycles_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl TenantFig {
    fn of(t: &mut TenantRec, secs: f64) -> TenantFig {
        let f = figures(&mut t.rec, secs);
        TenantFig {
            requests: f.ops,
            errors: f.errors,
            cycles: t.cycles,
            cycles_per_sec: if secs > 0.0 { t.cycles as f64 / secs } else { 0.0 },
            p50_ms: f.p50_ms,
            p99_ms: f.p99_ms,
            max_ms: f.max_ms,
        }
    }
}

/// Which request, counted from the slowest (1), is the nearest-rank p99 of `n` requests.
pub fn slowest_rank(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let rank = ((0.99 * n as f64).ceil() as u64).clamp(1, n);
    n - rank + 1
}

/// How one figure spreads over the tenants (nearest rank), and which tenants are at the ends.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Over {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// Index of a tenant with the smallest value.
    pub min_at: usize,
    /// Index of a tenant with the largest value.
    pub max_at: usize,
}

/// The spread of `(tenant, value)` pairs; all zero when there are none.
pub fn over(values: &[(usize, f64)]) -> Over {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let n = v.len();
    if n == 0 {
        return Over::default();
    }
    let pct = |p: f64| -> f64 {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        v[rank.clamp(1, n) - 1].1
    };
    Over { min: v[0].1, median: pct(50.0), p90: pct(90.0), max: v[n - 1].1, min_at: v[0].0, max_at: v[n - 1].0 }
}

/// The spreads and the fairness of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub p50_ms: Over,
    pub p99_ms: Over,
    pub cycles_per_sec: Over,
    pub requests: Over,
    /// Tenants without a counted request (left out of the latency spreads; 0 cycles/s).
    pub idle: usize,
    /// The slowest tenant's cycles/s over the median tenant's (1: every tenant got as much).
    pub throughput_fairness: f64,
    /// The worst tenant's p99 over the median tenant's p99 (1: no tenant waited longer).
    pub p99_fairness: f64,
    /// Tenants whose p99 is at or above [`TARGET_P99_MS`].
    pub over_p99_target: usize,
}

/// Spreads over every tenant of `figs` (index = tenant).
pub fn spread(figs: &[TenantFig]) -> Spread {
    let busy: Vec<(usize, &TenantFig)> = figs.iter().enumerate().filter(|(_, f)| f.requests > 0).collect();
    let of = |g: fn(&TenantFig) -> f64| busy.iter().map(|(i, f)| (*i, g(f))).collect::<Vec<_>>();
    let all = |g: fn(&TenantFig) -> f64| figs.iter().enumerate().map(|(i, f)| (i, g(f))).collect::<Vec<_>>();
    let p50_ms = over(&of(|f| f.p50_ms));
    let p99_ms = over(&of(|f| f.p99_ms));
    let cycles_per_sec = over(&all(|f| f.cycles_per_sec));
    let requests = over(&all(|f| f.requests as f64));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Spread {
        p50_ms,
        p99_ms,
        cycles_per_sec,
        requests,
        idle: figs.len() - busy.len(),
        throughput_fairness: ratio(cycles_per_sec.min, cycles_per_sec.median),
        p99_fairness: ratio(p99_ms.max, p99_ms.median),
        over_p99_target: busy.iter().filter(|(_, f)| f.p99_ms >= TARGET_P99_MS).count(),
    }
}

fn over_json(o: &Over, names: &[String]) -> Value {
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    json!({"min": o.min, "median": o.median, "p90": o.p90, "max": o.max,
           "min_tenant": name(o.min_at), "max_tenant": name(o.max_at)})
}

// ---------------------------------------------------------------- the server's own timing

/// What the server's `/metrics` say about its store: per store operation (and `sqlite commit`,
/// the SQLite writer's group commits; `sqlite batch`, writes per commit) the sum of seconds (or
/// writes) and the count, cumulative since it started.
pub type Timing = std::collections::BTreeMap<String, (f64, f64)>;

/// The store figures of a Prometheus text page (see [`Timing`]).
pub fn parse_timing(text: &str) -> Timing {
    let mut t = Timing::new();
    for line in text.lines() {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let (key, sum) = if let Some(rest) = line.strip_prefix("scimd_store_operation_duration_seconds_") {
            let sum = rest.starts_with("sum{");
            if !sum && !rest.starts_with("count{") {
                continue;
            }
            let Some(op) = rest.split("operation=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
            (op.to_owned(), sum)
        } else if let Some(rest) = line.strip_prefix("scimd_sqlite_commit_duration_seconds_") {
            ("sqlite commit".to_owned(), rest.starts_with("sum "))
        } else if let Some(rest) = line.strip_prefix("scimd_sqlite_commit_batch_size_") {
            ("sqlite batch".to_owned(), rest.starts_with("sum "))
        } else {
            continue;
        };
        if !sum && !line.contains("_count") {
            continue;
        }
        let e = t.entry(key).or_default();
        if sum {
            e.0 = value;
        } else {
            e.1 = value;
        }
    }
    t
}

/// `later - earlier` of each entry.
pub fn timing_delta(earlier: &Timing, later: &Timing) -> Timing {
    later
        .iter()
        .map(|(k, (s, n))| {
            let (s0, n0) = earlier.get(k).copied().unwrap_or_default();
            (k.clone(), (s - s0, n - n0))
        })
        .filter(|(_, (_, n))| *n > 0.0)
        .collect()
}

/// A scrape of `/metrics`: the store timing, the page's lines and bytes, and how long it took.
struct Scrape {
    timing: Timing,
    lines: usize,
    bytes: usize,
    ms: f64,
}

async fn scrape(c: &reqwest::Client, admin: &str) -> Result<Scrape, String> {
    let url = format!("{admin}/metrics");
    let t0 = Instant::now();
    let resp = c.get(&url).timeout(REQUEST_TIMEOUT).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if status != 200 {
        return Err(error_text(&format!("GET {url}"), status, &body));
    }
    let text = String::from_utf8_lossy(&body);
    Ok(Scrape { timing: parse_timing(&text), lines: text.lines().count(), bytes: body.len(), ms })
}

// ---------------------------------------------------------------- setup

/// A started scimd and what the setup needs of it.
struct Started {
    spawned: target::Spawned,
    key: String,
    _dir: tempfile::TempDir,
}

/// Sends a vendor API request; `Ok(None)` for a 409 (it exists already).
async fn api(
    c: &reqwest::Client,
    admin: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> Result<Option<Value>, String> {
    let url = format!("{admin}{path}");
    let resp = c
        .request(method.clone(), &url)
        .timeout(REQUEST_TIMEOUT)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("{method} {url}: {e}"))?;
    match status {
        409 => Ok(None),
        200..=299 => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{method} {url}: not JSON: {e}")),
        _ => Err(error_text(&format!("{method} {url}"), status, &bytes)),
    }
}

/// The name of tenant `i`.
fn tenant_name(i: usize) -> String {
    format!("tenant-{i:05}")
}

/// What the setup makes: `n` tenants with these mandatory attributes, group names with this
/// nonce, from `conc` tasks.
struct Plan {
    n: usize,
    required: Vec<String>,
    nonce: String,
    conc: usize,
}

/// Makes the tenants' groups (and, on a started scimd, the tenants and their tokens);
/// `auths` holds each tenant's `Bearer` header when given (`--url`).
async fn setup(
    c: &reqwest::Client,
    base: &str,
    started: Option<&Started>,
    auths: Option<Vec<String>>,
    plan: &Plan,
) -> Result<Vec<Tenant>, String> {
    let (n, conc) = (plan.n, plan.conc);
    let next = Arc::new(AtomicU64::new(0));
    let auths = Arc::new(auths);
    let required = Arc::new(plan.required.clone());
    let api_of = started.map(|s| (s.spawned.admin.clone(), s.key.clone()));
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let (c, next, auths, required, api_of) =
            (c.clone(), Arc::clone(&next), Arc::clone(&auths), Arc::clone(&required), api_of.clone());
        let (base, nonce) = (base.to_owned(), plan.nonce.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                if i >= n {
                    break;
                }
                let name = tenant_name(i);
                let auth = match (auths.as_ref(), &api_of) {
                    (Some(a), _) => a.get(i).cloned().ok_or_else(|| format!("no token for tenant {i}"))?,
                    (None, Some((admin, key))) => {
                        let body = json!({"name": name, "required": *required});
                        api(&c, admin, key, Method::POST, "/api/v1/tenants", body).await?;
                        let path = format!("/api/v1/tenants/{name}/tokens");
                        let v = api(&c, admin, key, Method::POST, &path, json!({"label": "bench"}))
                            .await?
                            .ok_or_else(|| format!("POST {path}: 409"))?;
                        let token = v
                            .get("token")
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("POST {path}: no token in the answer"))?;
                        format!("Bearer {token}")
                    }
                    (None, None) => return Err("no tokens and no vendor API".to_owned()),
                };
                let url = format!("{base}/Groups");
                let what = format!("POST {url} (tenant {name})");
                let r = call(&c, Method::POST, &url, &auth, Some(group_body(&format!("bench-{nonce}")))).await;
                let group = id_of(&what, &want(&what, r, &[201])?)?;
                made.push((i, Tenant { name, auth, group }));
            }
            Ok::<_, String>(made)
        }));
    }
    let mut slots: Vec<Option<Tenant>> = vec![None; n];
    for t in tasks {
        let made = t.await.map_err(|e| format!("a setup task failed: {e}"))??;
        for (i, t) in made {
            if let Some(s) = slots.get_mut(i) {
                *s = Some(t);
            }
        }
    }
    slots.into_iter().enumerate().map(|(i, t)| t.ok_or_else(|| format!("tenant {i} was not set up"))).collect()
}

/// The users of each tenant (`GET /Users?count=0`), summed.
async fn stored_users(c: &reqwest::Client, base: &str, tenants: &[Tenant], conc: usize) -> Result<u64, String> {
    let tenants = Arc::new(tenants.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let (c, tenants, next, base) = (c.clone(), Arc::clone(&tenants), Arc::clone(&next), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut sum = 0u64;
            loop {
                let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                let Some(t) = tenants.get(i) else { break };
                let url = format!("{base}/Users?count=0");
                let what = format!("GET {url} (tenant {})", t.name);
                let body = want(&what, call(&c, Method::GET, &url, &t.auth, None).await, &[200])?;
                let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{what}: not JSON: {e}"))?;
                sum +=
                    v.get("totalResults").and_then(Value::as_u64).ok_or_else(|| format!("{what}: no totalResults"))?;
            }
            Ok::<_, String>(sum)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| format!("a counting task failed: {e}"))??;
    }
    Ok(total)
}

// ---------------------------------------------------------------- the run

/// A keep-alive client keeping at most `idle` idle connections.
fn http_client(idle: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(idle.max(1))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The figures sampled at a moment: machine (busy, total) jiffies, server and client CPU
/// seconds, load, bytes the server wrote.
type CpuAt = (Option<(u64, u64)>, Option<f64>, Option<f64>, f64, Option<u64>);

fn cpu_at(pid: Option<u32>) -> CpuAt {
    (
        sys::cpu_jiffies(),
        pid.and_then(sys::cpu_secs),
        sys::cpu_secs(std::process::id()),
        sys::load1(),
        pid.and_then(sys::written_bytes),
    )
}

pub async fn run(a: TenantsArgs) -> Result<(), String> {
    let n = a.tenants.max(1);
    let wall = Instant::now();
    let nonce = format!(
        "{:x}{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
        std::process::id()
    );
    let c = http_client(a.concurrency.max(a.setup_concurrency) * 2)?;
    let required: Vec<String> =
        a.server.require.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();

    // The server and its tenants.
    let setup_start = Instant::now();
    let (base, started, pid, database, bin, auths) = match &a.url {
        Some(url) => {
            target::check_loopback(url)?;
            let path = a.tokens.as_ref().ok_or("--url needs --tokens")?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let tokens: Vec<String> =
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|t| format!("Bearer {t}")).collect();
            if tokens.len() < n {
                return Err(format!("{}: {} tokens, --tenants asks for {n}", path.display(), tokens.len()));
            }
            (url.trim_end_matches('/').to_owned(), None, a.server_pid, url.clone(), None, Some(tokens))
        }
        None => {
            let bin = a.server.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin);
            let dir = tempfile::Builder::new()
                .prefix("scimd-bench-tenants-")
                .tempdir()
                .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
            let database = a
                .server
                .database
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("scimd.db").display()));
            eprintln!("scimd-bench: starting {} on {}", bin.display(), report::redact(&database));
            let key = target::api_key(&bin, &database)?;
            let spawned =
                target::start_scimd_with(&bin, &database, a.config.as_deref(), &dir.path().join("scimd.log")).await?;
            let base = format!("{}/scim/v2", spawned.origin);
            let pid = Some(spawned.pid);
            (base, Some(Started { spawned, key, _dir: dir }), pid, database, Some(bin), None)
        }
    };
    eprintln!("  setting up {n} tenants (tenant, token, group each) from {} tasks", a.setup_concurrency.max(1));
    let plan = Plan { n, required, nonce: nonce.clone(), conc: a.setup_concurrency };
    let tenants = setup(&c, &base, started.as_ref(), auths, &plan).await?;
    let users_before = stored_users(&c, &base, &tenants, a.setup_concurrency).await?;
    let setup_secs = setup_start.elapsed().as_secs_f64();
    let mem_setup = target::memory(pid);
    eprintln!(
        "  {n} tenants set up in {setup_secs:.1}s ({:.0}/s); {users_before} users in them; server VmRSS {}",
        n as f64 / setup_secs.max(1e-9),
        mem_setup.map_or("-".to_owned(), |m| format!("{:.1} MiB", m.rss_kib as f64 / 1024.0))
    );
    let names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();

    // The load.
    let load_before = sys::uptime_load();
    let start = Instant::now();
    let window = Window {
        from: start + Duration::from_secs(a.warmup),
        to: start + Duration::from_secs(a.warmup + a.duration.max(1)),
    };
    // An Entra provisioning job is an HTTP client of its own: its own keep-alive connection.
    let clients = match a.pace {
        Pace::Entra if !a.shared_pool => (0..n).map(|_| http_client(1)).collect::<Result<Vec<_>, _>>()?,
        _ => vec![c.clone()],
    };
    let s = Arc::new(Shared {
        clients,
        base: base.clone(),
        tenants,
        nonce: nonce.clone(),
        window,
        sent: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        created: AtomicU64::new(0),
    });
    let admin = started.as_ref().map(|s| s.spawned.admin.clone());
    let cpu_from = {
        let (from, c, admin) = (window.from, c.clone(), admin.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
            let cpu = cpu_at(pid);
            let metrics = match &admin {
                Some(a) => scrape(&c, a).await.ok(),
                None => None,
            };
            (cpu, metrics)
        })
    };
    let progress = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let d = s.sent.load(Ordering::Relaxed);
                eprintln!(
                    "  tenants: {d} requests, {:.0}/s now, {} errors, {:.0}s",
                    (d - last) as f64 / 2.0,
                    s.errors.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
                last = d;
            }
        })
    };
    let period = Duration::from_millis(a.cycle_ms.max(1));
    let mut tally = match a.pace {
        Pace::Flat => drive_flat(&s, a.concurrency).await,
        Pace::Entra => drive_entra(&s, start, period).await,
    };
    let cpu_to = cpu_at(pid);
    let sockets = pid.and_then(sys::open_sockets);
    progress.abort();
    let metrics_to = match &admin {
        Some(a) => scrape(&c, a).await.ok(),
        None => None,
    };
    let ((jif0, srv0, cli0, load_from, wrote0), metrics_from) =
        cpu_from.await.map_err(|e| format!("the CPU timer failed: {e}"))?;
    let store_timing = metrics_from.zip(metrics_to.as_ref()).map(|(a, b)| timing_delta(&a.timing, &b.timing));
    let (jif1, srv1, cli1, load_to, wrote1) = cpu_to;
    let wrote = wrote0.zip(wrote1).map(|(a, b)| b.saturating_sub(a));
    let load_after = sys::uptime_load();
    let mem = target::memory(pid);
    let secs = a.duration.max(1) as f64;
    let busy = match (jif0, jif1) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0),
        _ => None,
    };
    let server_cpu = srv0.zip(srv1).map(|(a, b)| b - a);
    let client_cpu = cli0.zip(cli1).map(|(a, b)| b - a);

    // Figures.
    let mut writes = Rec::default();
    let mut all = Rec::default();
    let mut step_figs: Vec<(&'static str, Figures)> = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    for step in Step::ALL {
        let rec = &mut tally.steps[step.index()];
        samples.extend(rec.samples.iter().take(2).cloned());
        if step.is_write() {
            writes.merge(rec.clone());
        }
        all.merge(rec.clone());
        step_figs.push((step.name(), figures(rec, secs)));
    }
    let writes_fig = figures(&mut writes, secs);
    let all_fig = figures(&mut all, secs);
    let per_tenant: Vec<TenantFig> =
        (0..n).map(|i| tally.tenants.get_mut(&i).map_or_else(TenantFig::default, |t| TenantFig::of(t, secs))).collect();
    let sp = spread(&per_tenant);
    let cycles: u64 = per_tenant.iter().map(|t| t.cycles).sum();
    let users_after = stored_users(&c, &base, &s.tenants, a.setup_concurrency).await;
    let created = s.created.load(Ordering::Relaxed);

    // The report.
    let pace_text = match a.pace {
        Pace::Entra => format!(
            "pace entra: one request at a time per tenant, a cycle every {} ms ({:.0} cycles/s offered), {}",
            period.as_millis(),
            n as f64 / period.as_secs_f64(),
            if a.shared_pool { "one shared connection pool" } else { "a connection per tenant" }
        ),
        Pace::Flat => format!("pace flat: {} concurrent requests, tenants in turn", a.concurrency.max(1)),
    };
    let mut out = format!(
        "\n{} with {n} tenants on {} ({}) | {pace_text} | {}s after {}s warm-up | {}\nbefore: {load_before} | after: {load_after}\n\n",
        a.server.name,
        engine(&database),
        report::redact(&database),
        a.duration.max(1),
        a.warmup,
        sys::cpu()
    );
    let fig_cells = |label: &str, f: &Figures| {
        vec![
            label.to_owned(),
            f.ops.to_string(),
            f.errors.to_string(),
            format!("{:.0}", f.per_sec),
            format!("{:.2}", f.p50_ms),
            format!("{:.2}", f.p99_ms),
            format!("{:.1}", f.max_ms),
        ]
    };
    let mut rows: Vec<Vec<String>> = step_figs.iter().map(|(l, f)| fig_cells(l, f)).collect();
    rows.push(fig_cells("writes", &writes_fig));
    rows.push(fig_cells("all", &all_fig));
    out += &report::table(&["request", "ops", "err", "ops/s", "p50 ms", "p99 ms", "max ms"], &rows, 1);
    out.push('\n');
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    let over_cells = |label: &str, o: &Over, prec: usize| {
        vec![
            label.to_owned(),
            format!("{:.prec$}", o.min),
            format!("{:.prec$}", o.median),
            format!("{:.prec$}", o.p90),
            format!("{:.prec$}", o.max),
            format!("{} / {}", name(o.min_at), name(o.max_at)),
        ]
    };
    let rows = vec![
        over_cells("p50 ms", &sp.p50_ms, 2),
        over_cells("p99 ms", &sp.p99_ms, 2),
        over_cells("cycles/s", &sp.cycles_per_sec, 2),
        over_cells("requests", &sp.requests, 0),
    ];
    out += &report::table(&["per tenant", "min", "median", "p90", "max", "min / max at"], &rows, 1);
    let typical = sp.requests.median as u64;
    out += &format!(
        "a tenant's p99 is nearest rank over its own requests ({typical} for the median tenant): its {}\n",
        match slowest_rank(typical) {
            0 => "p99 is 0 (no request)".to_owned(),
            1 => "slowest request".to_owned(),
            k => format!("{k}th slowest request"),
        }
    );
    let ratio_or_dash = |v: f64, unit: &str| if v > 0.0 { format!("{v:.2}{unit}") } else { "-".to_owned() };
    out += &format!(
        "\naggregate: {:.0} requests/s, {:.0} writes/s, {:.0} cycles/s ({cycles} cycles), {} errors\n",
        all_fig.per_sec,
        writes_fig.per_sec,
        cycles as f64 / secs,
        all_fig.errors
    );
    out += &format!(
        "fairness: slowest tenant {:.2} cycles/s against the median tenant's {:.2} ({}); worst tenant's p99 {:.2} ms \
         against the median tenant's {:.2} ms ({}); {} tenants without a counted request\n",
        sp.cycles_per_sec.min,
        sp.cycles_per_sec.median,
        ratio_or_dash(sp.throughput_fairness, ""),
        sp.p99_ms.max,
        sp.p99_ms.median,
        ratio_or_dash(sp.p99_fairness, "x"),
        sp.idle
    );
    let rss_mib = mem.map(|m| m.rss_kib as f64 / 1024.0);
    out += &format!(
        "server: CPU {} in {secs:.0}s ({}), machine busy {}, load {load_from:.2}>{load_to:.2}; client CPU {}; \
         VmRSS {} (after setup {}), VmHWM {}\n",
        server_cpu.map_or("-".into(), |c| format!("{c:.1}s")),
        server_cpu.map_or("-".into(), |c| format!("{:.2} cores", c / secs)),
        busy.map_or("-".into(), |b| format!("{b:.0}%")),
        client_cpu.map_or("-".into(), |c| format!("{c:.1}s")),
        rss_mib.map_or("-".into(), |r| format!("{r:.1} MiB")),
        mem_setup.map_or("-".into(), |m| format!("{:.1} MiB", m.rss_kib as f64 / 1024.0)),
        mem.map_or("-".into(), |m| format!("{:.1} MiB", m.hwm_kib as f64 / 1024.0)),
    );
    if let Some(n) = sockets {
        out += &format!("server sockets open at the end (listeners, connections, database): {n}\n");
    }
    if let Some(w) = wrote {
        out += &format!(
            "server wrote {:.0} MB (write calls to files and sockets, /proc/PID/io wchar), {:.1} KB per write request\n",
            w as f64 / 1e6,
            if writes_fig.ops > 0 { w as f64 / writes_fig.ops as f64 / 1e3 } else { 0.0 }
        );
    }
    if let Some(t) = &store_timing {
        let mut ops: Vec<(&String, &(f64, f64))> = t.iter().filter(|(k, _)| !k.starts_with("sqlite ")).collect();
        ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        let shown: Vec<String> = ops
            .iter()
            .take(8)
            .map(|(k, (sum, n))| format!("{k} {n:.0} x {:.2} ms = {sum:.2}s", sum / n * 1000.0))
            .collect();
        out += &format!("store calls in the window (the server's timing, waits included): {}\n", shown.join("; "));
        if let (Some((cs, cn)), Some((bs, _))) = (t.get("sqlite commit"), t.get("sqlite batch")) {
            out += &format!(
                "SQLite writer: {cn:.0} group commits, {:.1} writes and {:.2} ms each, {cs:.2}s busy in {secs:.0}s\n",
                bs / cn,
                cs / cn * 1000.0
            );
        }
    }
    if let Some(m) = &metrics_to {
        out += &format!(
            "/metrics after the run: {} lines, {:.0} KiB, scraped in {:.1} ms\n",
            m.lines,
            m.bytes as f64 / 1024.0,
            m.ms
        );
    }
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let targets = json!({
        "writes_per_sec": {"target": TARGET_WRITES_PER_SEC, "value": writes_fig.per_sec,
                           "met": writes_fig.per_sec >= TARGET_WRITES_PER_SEC},
        "every_tenant_p99_ms": {"target": TARGET_P99_MS, "worst": sp.p99_ms.max,
                                "tenants_at_or_over": sp.over_p99_target, "met": sp.over_p99_target == 0 && sp.idle == 0},
        "rss_mib": {"target": TARGET_RSS_MIB, "value": rss_mib, "met": rss_mib.map(|r| r < TARGET_RSS_MIB)},
    });
    out += &format!(
        "targets: writes/s >= {TARGET_WRITES_PER_SEC:.0}: {} ({:.0}); every tenant's p99 < {TARGET_P99_MS:.0} ms: {} \
         (worst {:.2} ms, {} tenants at or over); RSS < {TARGET_RSS_MIB:.0} MiB: {}\n",
        met(writes_fig.per_sec >= TARGET_WRITES_PER_SEC),
        writes_fig.per_sec,
        met(sp.over_p99_target == 0 && sp.idle == 0),
        sp.p99_ms.max,
        sp.over_p99_target,
        rss_mib.map_or("-", |r| met(r < TARGET_RSS_MIB)),
    );
    let stored = match &users_after {
        Ok(after) => {
            let kept = after.saturating_sub(users_before);
            out += &format!(
                "stored: {kept} new users in {n} tenants for {created} creates answered 201 (warm-up included): {}\n",
                if kept == created { "all kept" } else { "MISMATCH" }
            );
            json!({"users_before": users_before, "users_after": after, "created_201": created})
        }
        Err(e) => {
            out += &format!("stored: could not count the users: {e}\n");
            json!({"users_before": users_before, "error": e, "created_201": created})
        }
    };
    for e in &samples {
        out += &format!("error sample: {e}\n");
    }
    print!("{out}");

    if let Some(path) = &a.json {
        let steps: serde_json::Map<String, Value> =
            step_figs.iter().map(|(l, f)| (l.replace(' ', "_"), fig_json(f))).collect();
        let per_tenant_json: Vec<Value> = per_tenant
            .iter()
            .zip(&names)
            .map(|(t, name)| {
                json!({"tenant": name, "requests": t.requests, "errors": t.errors, "cycles": t.cycles,
                       "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "max_ms": t.max_ms})
            })
            .collect();
        let timing_json = store_timing.as_ref().map(|t| {
            t.iter()
                .map(|(k, (sum, n))| (k.clone(), json!({"sum": sum, "count": n})))
                .collect::<serde_json::Map<_, _>>()
        });
        let server = json!({
            "cpu_s": server_cpu,
            "written_bytes": wrote,
            "open_sockets_at_end": sockets,
            "rss_kib": mem.map(|m| m.rss_kib),
            "hwm_kib": mem.map(|m| m.hwm_kib),
            "rss_kib_after_setup": mem_setup.map(|m| m.rss_kib),
            "store_timing_in_window": timing_json,
            "metrics_page": metrics_to.as_ref().map(|m| json!({"lines": m.lines, "bytes": m.bytes, "scrape_ms": m.ms})),
        });
        let doc = json!({
            "bench": "tenants",
            "server": a.server.name,
            "scimd_bin": bin.map(|b| b.display().to_string()),
            "database": report::redact(&database),
            "engine": engine(&database),
            "config": a.config.as_ref().map(|c| c.display().to_string()),
            "machine": sys::cpu(),
            "load_before": load_before,
            "load_after": load_after,
            "tenants": n,
            "pace": a.pace.name(),
            "cycle_ms": (a.pace == Pace::Entra).then_some(a.cycle_ms),
            "shared_pool": a.pace == Pace::Flat || a.shared_pool,
            "concurrency": (a.pace == Pace::Flat).then_some(a.concurrency),
            "duration_s": a.duration.max(1),
            "warmup_s": a.warmup,
            "setup": {"secs": setup_secs, "tenants_per_sec": n as f64 / setup_secs.max(1e-9),
                      "server_rss_kib": mem_setup.map(|m| m.rss_kib)},
            "requests": steps,
            "writes": fig_json(&writes_fig),
            "all": fig_json(&all_fig),
            "aggregate": {"requests_per_sec": all_fig.per_sec, "writes_per_sec": writes_fig.per_sec,
                          "cycles_per_sec": cycles as f64 / secs, "cycles": cycles, "errors": all_fig.errors},
            "per_tenant_spread": {"p50_ms": over_json(&sp.p50_ms, &names), "p99_ms": over_json(&sp.p99_ms, &names),
                                  "cycles_per_sec": over_json(&sp.cycles_per_sec, &names),
                                  "requests": over_json(&sp.requests, &names), "idle_tenants": sp.idle},
            "fairness": {"throughput_min_over_median": sp.throughput_fairness,
                         "p99_max_over_median": sp.p99_fairness},
            "targets": targets,
            "server_process": server,
            "client_cpu_s": client_cpu,
            "machine_cpu_busy_pct": busy,
            "stored": stored,
            "wall_s": wall.elapsed().as_secs_f64(),
            "per_tenant": per_tenant_json,
            "error_samples": samples,
        });
        report::write_json(path, &doc)?;
    }
    drop(started);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(requests: u64, cycles_per_sec: f64, p99_ms: f64) -> TenantFig {
        TenantFig { requests, cycles_per_sec, p50_ms: p99_ms / 4.0, p99_ms, ..TenantFig::default() }
    }

    #[test]
    fn spreads_are_nearest_rank_and_name_their_tenants() {
        let v: Vec<(usize, f64)> = (0..10).map(|i| (i, (10 - i) as f64)).collect();
        let o = over(&v);
        assert_eq!((o.min, o.median, o.p90, o.max), (1.0, 5.0, 9.0, 10.0));
        assert_eq!((o.min_at, o.max_at), (9, 0));
        assert_eq!(over(&[]), Over::default());
    }

    #[test]
    fn fairness_is_the_slowest_and_the_worst_against_the_median() {
        // five tenants: one slower (half the cycles), one with a long tail, one idle
        let figs = vec![fig(40, 2.0, 4.0), fig(40, 2.0, 5.0), fig(20, 1.0, 30.0), fig(40, 2.0, 6.0), fig(0, 0.0, 0.0)];
        let s = spread(&figs);
        assert_eq!(s.idle, 1);
        // cycles/s over all five: 0, 1, 2, 2, 2 -> median 2, slowest the idle tenant
        assert_eq!(s.cycles_per_sec.min_at, 4);
        assert!((s.throughput_fairness - 0.0).abs() < 1e-12);
        // p99 over the four busy ones: 4, 5, 6, 30 -> median 5 (nearest rank), worst 30
        assert!((s.p99_ms.median - 5.0).abs() < 1e-12);
        assert_eq!(s.p99_ms.max_at, 2);
        assert!((s.p99_fairness - 6.0).abs() < 1e-12);
        assert_eq!(s.over_p99_target, 1);

        let even = spread(&[fig(40, 2.0, 4.0), fig(40, 2.0, 4.0)]);
        assert!((even.throughput_fairness - 1.0).abs() < 1e-12 && (even.p99_fairness - 1.0).abs() < 1e-12);
    }

    #[test]
    fn only_requests_inside_the_window_count() {
        let t = Instant::now();
        let w = Window { from: t + Duration::from_secs(2), to: t + Duration::from_secs(12) };
        let mut tally = Tally::default();
        let ok: Result<(), String> = Ok(());
        let bad: Result<(), String> = Err("boom".into());
        let at = |s: u64| t + Duration::from_secs(s);
        assert!(tally.note(&w, 3, Step::Lookup, at(1), at(3), &ok), "a warm-up request still succeeds");
        assert!(tally.note(&w, 3, Step::Create, at(3), at(4), &ok));
        assert!(!tally.note(&w, 3, Step::Patch, at(4), at(5), &bad));
        assert!(tally.note(&w, 5, Step::Member, at(11), at(13), &ok), "answered after the end");
        assert_eq!(tally.tenants.len(), 1);
        let t3 = &tally.tenants[&3];
        assert_eq!((t3.rec.lat_us.len(), t3.rec.errors), (2, 1));
        assert_eq!(tally.steps[Step::Create.index()].lat_us, vec![1_000_000]);
        assert_eq!(tally.steps[Step::Patch.index()].samples, vec!["boom".to_owned()]);

        let mut other = Tally::default();
        other.note(&w, 3, Step::Lookup, at(5), at(6), &ok);
        other.tenants.entry(3).or_default().cycles = 1;
        tally.merge(other);
        assert_eq!((tally.tenants[&3].rec.lat_us.len(), tally.tenants[&3].cycles), (3, 1));
    }

    #[test]
    fn store_timing_is_read_from_the_metrics_page() {
        let page = "# TYPE scimd_store_operation_duration_seconds histogram\n\
            scimd_store_operation_duration_seconds_bucket{engine=\"sqlite\",operation=\"create\",le=\"0.001\"} 3\n\
            scimd_store_operation_duration_seconds_sum{engine=\"sqlite\",operation=\"create\"} 0.5\n\
            scimd_store_operation_duration_seconds_count{engine=\"sqlite\",operation=\"create\"} 10\n\
            scimd_store_operation_duration_seconds_sum{operation=\"log_requests\",engine=\"sqlite\"} 2\n\
            scimd_store_operation_duration_seconds_count{operation=\"log_requests\",engine=\"sqlite\"} 4\n\
            scimd_sqlite_commit_duration_seconds_sum 1.5\n\
            scimd_sqlite_commit_duration_seconds_count 3\n\
            scimd_sqlite_commit_batch_size_sum 30\n\
            scimd_sqlite_commit_batch_size_count 3\n\
            scimd_http_requests_total{method=\"GET\"} 7\n";
        let t = parse_timing(page);
        assert_eq!(t.len(), 4);
        assert_eq!(t["create"], (0.5, 10.0));
        assert_eq!(t["log_requests"], (2.0, 4.0));
        assert_eq!(t["sqlite commit"], (1.5, 3.0));
        assert_eq!(t["sqlite batch"], (30.0, 3.0));
        let mut before = Timing::new();
        before.insert("create".into(), (0.25, 4.0));
        before.insert("log_requests".into(), (2.0, 4.0));
        let d = timing_delta(&before, &t);
        assert_eq!(d["create"], (0.25, 6.0));
        assert!(!d.contains_key("log_requests"), "no calls in between");
    }

    #[test]
    fn a_small_sample_s_p99_is_its_slowest() {
        assert_eq!(slowest_rank(0), 0);
        assert_eq!(slowest_rank(78), 1);
        assert_eq!(slowest_rank(99), 1);
        assert_eq!(slowest_rank(100), 2);
        assert_eq!(slowest_rank(160), 2);
        assert_eq!(slowest_rank(1000), 11);
    }

    #[test]
    fn entra_schedules_spread_over_one_period() {
        let p = Duration::from_millis(600);
        assert_eq!(phase(0, 1000, p), Duration::ZERO);
        assert_eq!(phase(500, 1000, p), Duration::from_millis(300));
        assert!(phase(999, 1000, p) < p);
        assert_eq!(phase(0, 0, p), Duration::ZERO);
    }
}
