//! `console`: two figures the product promises about the provisioning log and the support
//! console.
//!
//! - `log`: what the provisioning log (`crates/scimd/src/reqlog.rs`: every SCIM request of a
//!   tenant, queued and written in batches off the request path) adds to initial-sync.
//!   `scimd-bench run --scenarios initial-sync --no-ceiling` (this executable, as a child
//!   process, against `--url`) creates N users on a fresh scimd and a fresh database, with a
//!   configuration file saying `[request_log] enabled = false` ("off") or `enabled = true`
//!   ("on"). The order alternates over the rounds (off, on; on, off; off, on; ...) so that
//!   warm-up and the disk's state do not favour one. After every run the log is read back
//!   through the vendor API (`GET /api/v1/tenants/bench/requests`, 1,000 at a time, until it
//!   is complete or `--log-wait` has passed): an "on" run must hold exactly one entry per
//!   request sent (a `GET /Users?filter` and a `POST /Users` per user), an "off" run none.
//!   Overhead = (median time on / median time off - 1) x 100. On SQLite, and on PostgreSQL
//!   with `--postgres URL` (a new database per run, made and dropped with `psql`).
//! - `pages`: how long the console's pages take for a tenant of `--tenant-users` users. The
//!   tenant is seeded first through the SCIM API (`POST /Users` from many tasks, or `/Bulk`),
//!   into a SQLite file that can be kept and reused (`--database`); then the client signs in
//!   (`POST /console/login` with an API key, the session cookie) and times each page with
//!   sequential requests (warm-ups, then samples): median, p95 and max as the client sees them
//!   (request sent to the whole body read), and the page's size. `/healthz` and the sign-in
//!   page of the same listener are timed the same way, as the ceiling.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::feed::{client, create_user, error_text};
use crate::report;
use crate::scenario::entra_user_value;
use crate::stats::Figures;
use crate::{REFERENCE_REQUIRE, sys, target};

/// The promise for the provisioning log: less than this much longer an initial-sync, in %.
pub const LOG_TARGET_PCT: f64 = 5.0;
/// The promise for the console: a page in less than this, in ms (judged on the p95).
pub const PAGE_TARGET_MS: f64 = 100.0;
/// scimd's default `[request_log] max_per_tenant`: the most entries a tenant's log keeps.
const LOG_KEEP: u64 = 100_000;
const TENANT: &str = "bench";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The userName prefix of the seeded users (`seed00000042@bench.example`).
const SEED: &str = "seed";

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// initial-sync with the provisioning log off and on, alternating
    Log,
    /// The console's pages for a tenant of --tenant-users users
    Pages,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The parts to run, in this order
    #[arg(long, value_delimiter = ',', default_value = "log,pages")]
    pub parts: Vec<Part>,
    /// The scimd binary to start [default: scimd next to this executable]
    #[arg(long)]
    pub scimd_bin: Option<PathBuf>,
    /// Name shown for the server under test
    #[arg(long, default_value = "scimd")]
    pub name: String,
    /// Mandatory attributes of the benchmark tenant
    #[arg(long, default_value = REFERENCE_REQUIRE)]
    pub require: String,
    /// log: users of each initial-sync
    #[arg(long, default_value_t = 20_000)]
    pub users: u64,
    /// log: concurrent requests of initial-sync (as `run`)
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// log: rounds; each runs both configurations, off first in odd rounds, on first in even
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// log: also on PostgreSQL: the URL of a database on that server whose user may create
    /// databases (e.g. $SCIMD_TEST_POSTGRES_URL); each run gets a new database beside it
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// log: seconds to wait after a run for its log to be complete (the writer may lag)
    #[arg(long, default_value_t = 60)]
    pub log_wait: u64,
    /// pages: the SQLite file of the seeded tenant; kept, and reused when it has the users
    /// already [default: a temporary file, removed after]
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// pages: users in the tenant
    #[arg(long, default_value_t = 1_000_000)]
    pub tenant_users: u64,
    /// pages: concurrent seeding requests (below scimd's max_in_flight_per_tenant, 64)
    #[arg(long, default_value_t = 48)]
    pub seed_concurrency: usize,
    /// pages: operations per /Bulk request when seeding (0: one POST /Users per user)
    #[arg(long, default_value_t = 0)]
    pub seed_bulk: usize,
    /// pages: lookups (GET /Users?filter) sent after seeding, e.g. to fill the provisioning log
    /// when seeding by /Bulk left it short
    #[arg(long, default_value_t = 0)]
    pub log_fill: u64,
    /// pages: timed requests per page
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    /// pages: untimed requests per page before them
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// pages: the texts of the plain-text user search (`users?q=`, repeatable) [default: the
    /// userName of the user in the middle, a userName prefix of 1,000 users, "User 5" (a
    /// displayName prefix of a ninth of them), a text nothing matches]
    #[arg(long)]
    pub search: Vec<String>,
    /// pages: more pages of the tenant to time, as paths below /console/tenants/bench
    #[arg(long, value_delimiter = ',', default_value = "/requests?status=errors,/events?type=user.deleted")]
    pub extra_page: Vec<String>,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn scimd_bin(a: &ConsoleArgs) -> PathBuf {
    a.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin)
}

// ---------------------------------------------------------------- a scimd with a configuration

/// A `scimd serve` this program started (with `--config` when given); killed when dropped.
struct Scimd {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:PORT` of the SCIM listener.
    origin: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    admin: String,
    log: PathBuf,
}

impl Drop for Scimd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scimd {
    fn scim(&self) -> String {
        format!("{}/scim/v2", self.origin)
    }

    /// What scimd wrote to its log (RUST_LOG=warn: warnings and errors).
    fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Starts `scimd --database DB [--config FILE] serve` and waits for its `/healthz`.
async fn spawn(bin: &Path, database: &str, config: Option<&Path>, log: &Path) -> Result<Scimd, String> {
    let (port, admin) = (free_port()?, free_port()?);
    let logf = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(["--database", database]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let child = cmd
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .env("RUST_LOG", "warn")
        .env_remove("SCIMD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut s = Scimd {
        pid: child.id(),
        child,
        origin: format!("http://127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin}"),
        log: log.to_owned(),
    };
    let c = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let url = format!("{}/healthz", s.origin);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(&url).send().await {
            if r.status().is_success() {
                return Ok(s);
            }
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            return Err(format!("scimd exited ({status}) before answering: {}", s.warnings().join(" | ")));
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not answer within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A GET of the vendor API; the JSON answer.
async fn api_get(c: &reqwest::Client, url: &str, key: &str) -> Result<Value, String> {
    let resp = c
        .get(url)
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if status != 200 {
        return Err(error_text(&format!("GET {url}"), status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// Counters of scimd's `/metrics` whose name starts with `name` (summed over their labels).
async fn metric(c: &reqwest::Client, admin: &str, name: &str) -> Option<f64> {
    let text = c.get(format!("{admin}/metrics")).send().await.ok()?.text().await.ok()?;
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `a - b`, or NaN if either is missing.
fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a - b)
}

// ---------------------------------------------------------------- log: the provisioning log's overhead

/// What a tenant's provisioning log holds, read back through the vendor API.
#[derive(Debug, Clone, Copy, Default)]
struct LogCount {
    total: u64,
    /// `POST /Users` answered 201.
    created: u64,
    /// `GET /Users?filter` answered 200.
    lookups: u64,
    other: u64,
}

/// Reads the whole log of tenant `bench`, newest first, 1,000 entries per page.
async fn count_log(c: &reqwest::Client, s: &Scimd, key: &str) -> Result<LogCount, String> {
    let mut n = LogCount::default();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!("{}/api/v1/tenants/{TENANT}/requests?limit=1000", s.admin);
        if let Some(b) = before {
            url += &format!("&before={b}");
        }
        let v = api_get(c, &url, key).await?;
        let list = v.get("requests").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        for r in list {
            n.total += 1;
            let method = r.get("method").and_then(Value::as_str).unwrap_or_default();
            let path = r.get("path").and_then(Value::as_str).unwrap_or_default();
            let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
            match (method, path, status) {
                ("POST", "/Users", 201) => n.created += 1,
                ("GET", "/Users?filter", 200) => n.lookups += 1,
                _ => n.other += 1,
            }
        }
        match v.get("next").and_then(Value::as_i64) {
            Some(next) if !list.is_empty() && before != Some(next) => before = Some(next),
            _ => return Ok(n),
        }
    }
}

/// One initial-sync run.
struct LogRun {
    engine: &'static str,
    round: u64,
    /// Its place in the sequence of runs of its engine (1, 2, ...).
    seq: usize,
    on: bool,
    fig: Figures,
    /// scimd's CPU during initial-sync (`run`'s figure).
    cpu_sync: Option<f64>,
    /// scimd's CPU from before initial-sync until its log was complete.
    cpu_total: Option<f64>,
    /// The 1-minute load at the start and end of initial-sync.
    load: (f64, f64),
    /// What the log held at the end.
    log: LogCount,
    /// Entries the log must hold: one per request initial-sync sent.
    expected: u64,
    /// From the end of `run` until the log held `expected` (or the wait ended).
    drain_secs: f64,
    written_metric: Option<f64>,
    dropped_metric: Option<f64>,
    warnings: Vec<String>,
    note: String,
}

impl LogRun {
    fn label(&self) -> String {
        format!("{}-{}", if self.on { "on" } else { "off" }, self.round)
    }

    /// Whether the log holds what it must: every request (on), nothing (off).
    fn log_ok(&self) -> bool {
        if self.on {
            let users = self.fig.ops;
            self.log.total == self.expected && self.log.created == users && self.log.lookups == users
        } else {
            self.log.total == 0
        }
    }
}

/// The URL of database `db` on the server of `url` (same user, host and parameters).
fn pg_database(url: &str, db: &str) -> Result<String, String> {
    let scheme = url.find("://").ok_or_else(|| format!("{}: not a URL", report::redact(url)))? + 3;
    let slash = url[scheme..].find('/').map_or(url.len(), |i| scheme + i);
    let query = url[slash..].find('?').map(|i| &url[slash + i..]).unwrap_or_default();
    Ok(format!("{}/{db}{query}", &url[..slash]))
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("psql {}: {sql}: {}", report::redact(url), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A database for one run: a SQLite file in `dir`, or a new PostgreSQL database (dropped when
/// this is dropped).
struct RunDb {
    url: String,
    drop_with: Option<(String, String)>,
}

impl Drop for RunDb {
    fn drop(&mut self) {
        if let Some((server, db)) = &self.drop_with {
            if let Err(e) = psql(server, &format!("DROP DATABASE IF EXISTS {db}")) {
                eprintln!("  warning: {e}");
            }
        }
    }
}

fn run_db(pg: Option<&str>, dir: &Path, label: &str) -> Result<RunDb, String> {
    match pg {
        None => Ok(RunDb { url: format!("sqlite://{}", dir.join("scimd.db").display()), drop_with: None }),
        Some(server) => {
            let db = format!("scimd_log_{}_{}_{}", std::process::id(), label.replace('-', "_"), now_tag());
            psql(server, &format!("CREATE DATABASE {db}"))?;
            Ok(RunDb { url: pg_database(server, &db)?, drop_with: Some((server.to_owned(), db)) })
        }
    }
}

fn now_tag() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000_000)
}

async fn log_run(a: &ConsoleArgs, pg: Option<&str>, round: u64, seq: usize, on: bool) -> Result<LogRun, String> {
    let bin = scimd_bin(a);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("scimd-bench-console-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let engine = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let label = format!("{}-{round}", if on { "on" } else { "off" });
    let db = run_db(pg, dir.path(), &label)?;
    let config = dir.path().join("scimd.toml");
    std::fs::write(&config, format!("[request_log]\nenabled = {on}\n"))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let token = target::provision(&bin, &db.url, TENANT, &a.require)?;
    let key = target::api_key(&bin, &db.url)?;
    let s = spawn(&bin, &db.url, Some(&config), &dir.path().join("scimd.log")).await?;
    let c = client(4)?;
    eprintln!("  log {engine} {label}: scimd {} with [request_log] enabled = {on}; {}", s.pid, sys::uptime_load());
    let cpu0 = sys::cpu_secs(s.pid);
    let json_path = dir.path().join("run.json");
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("run")
        .args(["--name", &format!("log-{label}")])
        .args(["--url", &s.scim(), "--token", &token, "--server-pid", &s.pid.to_string()])
        .args(["--users", &a.users.to_string(), "--concurrency", &a.concurrency.to_string()])
        .args(["--scenarios", "initial-sync", "--no-ceiling", "--json"])
        .arg(&json_path);
    let row = crate::webhooks::initial_sync(cmd, &exe, &json_path, &format!("log-{label}")).await?;
    let fig = row.fig;
    let ended = Instant::now();
    // Every op sent a GET, and a POST unless the GET failed; failed ops may have sent one
    // request only, so the check is exact only without errors (the table shows them).
    let expected = if on { (2 * fig.ops).min(LOG_KEEP) } else { 0 };
    // Wait for the writer (it may lag), then read once more to see that nothing more comes.
    let deadline = ended + Duration::from_secs(a.log_wait);
    let mut drain_secs = 0.0;
    loop {
        let n = count_log(&c, &s, &key).await?;
        if on && n.total >= expected {
            drain_secs = ended.elapsed().as_secs_f64();
            break;
        }
        if !on && ended.elapsed() >= Duration::from_millis(1500) {
            break;
        }
        if Instant::now() > deadline {
            drain_secs = ended.elapsed().as_secs_f64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let log = count_log(&c, &s, &key).await?;
    let cpu_total = diff(sys::cpu_secs(s.pid), cpu0);
    let written_metric = metric(&c, &s.admin, "scimd_request_log_written_total").await;
    // the counter appears at its first drop: absent while the written one is there means 0
    let dropped_metric = metric(&c, &s.admin, "scimd_request_log_dropped_total").await.or(written_metric.map(|_| 0.0));
    let r = LogRun {
        engine,
        round,
        seq,
        on,
        fig,
        cpu_sync: row.cpu_s,
        cpu_total,
        load: row.load,
        log,
        expected,
        drain_secs,
        written_metric,
        dropped_metric,
        warnings: s.warnings(),
        note: row.note,
    };
    eprintln!(
        "  log {engine} {label}: {} users in {:.2}s; the log holds {} of {} entries ({} POST 201, {} GET filter, {} other) {:.2}s after the run",
        r.fig.ops, r.fig.secs, r.log.total, r.expected, r.log.created, r.log.lookups, r.log.other, r.drain_secs
    );
    drop(s);
    drop(db);
    Ok(r)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// The medians and the overhead of one engine's runs.
struct LogSummary {
    engine: &'static str,
    off_secs: f64,
    on_secs: f64,
    overhead_pct: f64,
    off_cpu: f64,
    on_cpu: f64,
    cpu_pct: f64,
    log_ok: bool,
}

fn summarise(engine: &'static str, runs: &[LogRun]) -> LogSummary {
    let mine: Vec<&LogRun> = runs.iter().filter(|r| r.engine == engine).collect();
    let med = |on: bool, f: &dyn Fn(&LogRun) -> f64| {
        let mut v: Vec<f64> = mine.iter().filter(|r| r.on == on).map(|r| f(r)).collect();
        median(&mut v)
    };
    let (off_secs, on_secs) = (med(false, &|r| r.fig.secs), med(true, &|r| r.fig.secs));
    let cpu = |r: &LogRun| r.cpu_total.unwrap_or(f64::NAN);
    let (off_cpu, on_cpu) = (med(false, &cpu), med(true, &cpu));
    LogSummary {
        engine,
        off_secs,
        on_secs,
        overhead_pct: (on_secs / off_secs - 1.0) * 100.0,
        off_cpu,
        on_cpu,
        cpu_pct: (on_cpu / off_cpu - 1.0) * 100.0,
        log_ok: mine.iter().all(|r| r.log_ok() && r.fig.errors == 0),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn log_table(a: &ConsoleArgs, runs: &[LogRun], sums: &[LogSummary]) -> String {
    let header = [
        "engine",
        "run",
        "order",
        "users",
        "err",
        "secs",
        "users/s",
        "p50 ms",
        "p99 ms",
        "scimd CPU s",
        "CPU to log done",
        "log entries",
        "POST 201 / GET",
        "log done after",
        "dropped",
        "load",
    ];
    let mut rows = Vec::new();
    for r in runs {
        rows.push(vec![
            r.engine.to_owned(),
            r.label(),
            r.seq.to_string(),
            r.fig.ops.to_string(),
            r.fig.errors.to_string(),
            format!("{:.3}", r.fig.secs),
            format!("{:.0}", r.fig.per_sec),
            format!("{:.2}", r.fig.p50_ms),
            format!("{:.2}", r.fig.p99_ms),
            opt(r.cpu_sync, 2),
            opt(r.cpu_total, 2),
            format!("{}/{}{}", r.log.total, r.expected, if r.log_ok() { "" } else { " WRONG" }),
            format!("{} / {}", r.log.created, r.log.lookups),
            if r.on { format!("{:.2}s", r.drain_secs) } else { "-".into() },
            opt(r.dropped_metric, 0),
            format!("{:.2}>{:.2}", r.load.0, r.load.1),
        ]);
    }
    let mut out = format!(
        "\ninitial-sync of {} users (scimd-bench run --scenarios initial-sync --concurrency {} --no-ceiling), \
         [request_log] enabled = false (off) / true (on), a fresh scimd and database per run\n\n",
        a.users, a.concurrency
    );
    out += &report::table(&header, &rows, 2);
    for s in sums {
        out += &format!(
            "{}: median off {:.3}s, on {:.3}s: overhead {:+.2}% (target < {LOG_TARGET_PCT:.0}%: {}); \
             scimd CPU to log done: median off {:.2}s, on {:.2}s ({:+.1}%); log complete in every on run, empty in every off run: {}\n",
            s.engine,
            s.off_secs,
            s.on_secs,
            s.overhead_pct,
            if s.overhead_pct < LOG_TARGET_PCT && s.log_ok { "met" } else { "MISSED" },
            s.off_cpu,
            s.on_cpu,
            s.cpu_pct,
            if s.log_ok { "yes" } else { "NO" },
        );
    }
    for r in runs {
        for w in r.warnings.iter().take(3) {
            out += &format!("scimd warning ({} {}): {w}\n", r.engine, r.label());
        }
    }
    out
}

fn log_json(r: &LogRun) -> Value {
    json!({
        "engine": r.engine,
        "round": r.round,
        "order": r.seq,
        "request_log": r.on,
        "initial_sync": crate::feed::fig_json(&r.fig),
        "scimd_cpu_sync_s": r.cpu_sync,
        "scimd_cpu_to_log_done_s": r.cpu_total,
        "loadavg_initial_sync": [r.load.0, r.load.1],
        "log_expected": r.expected,
        "log_total": r.log.total,
        "log_post_users_201": r.log.created,
        "log_get_filter_200": r.log.lookups,
        "log_other": r.log.other,
        "log_ok": r.log_ok(),
        "log_done_after_s": r.drain_secs,
        "metric_written": r.written_metric,
        "metric_dropped": r.dropped_metric,
        "scimd_warnings": r.warnings,
        "note": r.note,
    })
}

fn sum_json(s: &LogSummary) -> Value {
    json!({
        "engine": s.engine,
        "median_off_s": s.off_secs,
        "median_on_s": s.on_secs,
        "overhead_pct": s.overhead_pct,
        "median_cpu_off_s": s.off_cpu,
        "median_cpu_on_s": s.on_cpu,
        "cpu_overhead_pct": s.cpu_pct,
        "log_ok": s.log_ok,
        "target_pct": LOG_TARGET_PCT,
        "target_met": s.overhead_pct < LOG_TARGET_PCT && s.log_ok,
    })
}

async fn log_part(a: &ConsoleArgs) -> Result<(Vec<LogRun>, Vec<LogSummary>), String> {
    let mut engines: Vec<Option<&str>> = vec![None];
    if let Some(pg) = &a.postgres {
        engines.push(Some(pg.as_str()));
    }
    let mut runs = Vec::new();
    let mut sums = Vec::new();
    for pg in engines {
        let mut seq = 0;
        for round in 1..=a.rounds.max(1) {
            let order = if round % 2 == 1 { [false, true] } else { [true, false] };
            for on in order {
                seq += 1;
                runs.push(log_run(a, pg, round, seq, on).await?);
            }
        }
        sums.push(summarise(if pg.is_some() { "PostgreSQL" } else { "SQLite" }, &runs));
    }
    Ok((runs, sums))
}

// ---------------------------------------------------------------- pages: the console at N users

/// Users of the tenant, from the vendor API.
async fn user_count(c: &reqwest::Client, s: &Scimd, key: &str) -> Result<u64, String> {
    let v = api_get(c, &format!("{}/api/v1/tenants/{TENANT}/Users?count=0", s.admin), key).await?;
    v.get("totalResults").and_then(Value::as_u64).ok_or_else(|| "the vendor API's list has no totalResults".into())
}

/// The seeding's result (not a figure).
#[derive(Debug, Default)]
struct Seeded {
    created: u64,
    existed: u64,
    failed: u64,
    retries: u64,
    secs: f64,
    samples: Vec<String>,
}

fn seed_name(k: u64) -> String {
    format!("{SEED}{k:08}@bench.example")
}

/// One /Bulk request creating users `ks`; counts of created, existing, failed, and whether to
/// retry the whole request (429, 503).
async fn bulk_once(
    c: &reqwest::Client,
    scim: &str,
    auth: &str,
    ks: std::ops::Range<u64>,
) -> Result<(u64, u64, u64, Vec<String>), (bool, String)> {
    let ops: Vec<Value> = ks
        .clone()
        .map(|k| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{k}"),
                   "data": entra_user_value(k, &seed_name(k), &format!("{SEED}{k:08}"))})
        })
        .collect();
    let body = json!({"schemas": [BULK_REQUEST], "Operations": ops}).to_string();
    let url = format!("{scim}/Bulk");
    let resp = c
        .post(&url)
        .header("Authorization", auth)
        .header("Content-Type", "application/scim+json")
        .body(body)
        .send()
        .await
        .map_err(|e| (true, format!("POST {url}: {e}")))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| (true, format!("POST {url}: {e}")))?;
    if status != 200 {
        return Err((status == 429 || status == 503, error_text(&format!("POST {url}"), status, &bytes)));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| (false, format!("POST {url}: not JSON: {e}")))?;
    let (mut created, mut existed, mut failed, mut samples) = (0, 0, 0, Vec::new());
    for op in v.get("Operations").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        let st =
            op.get("status").and_then(|s| s.as_str().map(str::to_owned).or_else(|| s.as_u64().map(|n| n.to_string())));
        match st.as_deref() {
            Some("201") => created += 1,
            Some("409") => existed += 1,
            _ => {
                failed += 1;
                if samples.len() < 3 {
                    samples.push(format!("bulk operation: {}", op.to_string().chars().take(300).collect::<String>()));
                }
            }
        }
    }
    Ok((created, existed, failed, samples))
}

/// Creates users `from..to` (userName `seedNNNNNNNN@bench.example`) from `concurrency` tasks,
/// by `POST /Users` or `bulk` per /Bulk request; 409 counts as there already.
async fn seed(
    c: &reqwest::Client,
    s: &Scimd,
    auth: &str,
    from: u64,
    to: u64,
    concurrency: usize,
    bulk: usize,
) -> Seeded {
    let next = Arc::new(AtomicU64::new(from));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let step = bulk.max(1) as u64;
    let total = to.saturating_sub(from);
    let ticker = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(10));
            t.tick().await;
            let mut last = 0;
            loop {
                t.tick().await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "  seed: {d}/{total} users, {:.0}/s now, {:.0}/s overall, {:.0}s; {}",
                    (d - last) as f64 / 10.0,
                    d as f64 / start.elapsed().as_secs_f64(),
                    start.elapsed().as_secs_f64(),
                    sys::uptime_load()
                );
                last = d;
            }
        })
    };
    let scim = Arc::new(s.scim());
    let auth = Arc::new(auth.to_owned());
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (c, scim, auth, next, done) =
            (c.clone(), Arc::clone(&scim), Arc::clone(&auth), Arc::clone(&next), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut r = Seeded::default();
            loop {
                let k = next.fetch_add(step, Ordering::Relaxed);
                if k >= to {
                    break;
                }
                let end = (k + step).min(to);
                for attempt in 0..8u32 {
                    let outcome = if bulk == 0 {
                        match create_user(&c, &scim, &auth, SEED, k).await {
                            Ok((201, _)) => Ok((1, 0, 0, Vec::new())),
                            Ok((409, _)) => Ok((0, 1, 0, Vec::new())),
                            Ok((st, b)) => Err((st == 429 || st == 503, error_text("POST /Users", st, &b))),
                            Err(e) => Err((true, e)),
                        }
                    } else {
                        bulk_once(&c, &scim, &auth, k..end).await
                    };
                    match outcome {
                        Ok((cr, ex, fa, samples)) => {
                            r.created += cr;
                            r.existed += ex;
                            r.failed += fa;
                            for e in samples {
                                if r.samples.len() < 3 {
                                    r.samples.push(e);
                                }
                            }
                            break;
                        }
                        Err((retry, e)) if retry && attempt < 7 => {
                            r.retries += 1;
                            if r.samples.len() < 3 {
                                r.samples.push(format!("retried: {e}"));
                            }
                            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                        }
                        Err((_, e)) => {
                            r.failed += end - k;
                            if r.samples.len() < 3 {
                                r.samples.push(e);
                            }
                            break;
                        }
                    }
                }
                done.fetch_add(end - k, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut out = Seeded::default();
    for t in tasks {
        if let Ok(r) = t.await {
            out.created += r.created;
            out.existed += r.existed;
            out.failed += r.failed;
            out.retries += r.retries;
            for e in r.samples {
                if out.samples.len() < 5 {
                    out.samples.push(e);
                }
            }
        }
    }
    ticker.abort();
    out.secs = start.elapsed().as_secs_f64();
    out
}

/// `n` lookups of seeded users below `users` (GET /Users?filter=userName eq ...), 16 at once.
async fn fill_log(c: &reqwest::Client, s: &Scimd, auth: &str, n: u64, users: u64) -> (u64, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let scim = Arc::new(s.scim());
    let auth = Arc::new(auth.to_owned());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, scim, auth, next) = (c.clone(), Arc::clone(&scim), Arc::clone(&auth), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let k = i.wrapping_mul(2_654_435_761) % users.max(1);
                let url = format!("{scim}/Users?filter=userName%20eq%20%22{}%22", seed_name(k));
                let ok = c
                    .get(&url)
                    .header("Authorization", auth.as_str())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200);
                if !ok {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap_or(0);
    }
    (failed, start.elapsed().as_secs_f64())
}

/// The value of the console's session cookie in a `Set-Cookie`.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("scimd_console="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .filter(|v| !v.is_empty())
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in to the console with `key`; the session cookie's value and how long it took.
async fn sign_in(c: &reqwest::Client, admin: &str, key: &str) -> Result<(String, f64), String> {
    let url = format!("{admin}/console/login");
    let t0 = Instant::now();
    let resp = c
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("api_key={}&next=%2Fconsole", form_encode(key)))
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    let cookie = session_cookie(resp.headers());
    let body = resp.bytes().await.map_err(|e| format!("POST {url}: {e}"))?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    match (status, cookie) {
        (303, Some(v)) => Ok((v, ms)),
        (st, _) => Err(error_text(&format!("POST {url} (wanted 303 with a scimd_console cookie)"), st, &body)),
    }
}

/// A page to time: a name, its path on the admin listener, and a text its body must contain.
struct PageSpec {
    name: String,
    path: String,
    expect: Option<String>,
    /// Whether it is part of the ceiling, not the console's figure.
    ceiling: bool,
}

/// What timing one page gave.
struct PageTimes {
    spec: PageSpec,
    status: u16,
    bytes: usize,
    /// Latency of each timed request, in microseconds.
    lat_us: Vec<u64>,
    errors: Vec<String>,
}

impl PageTimes {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.lat_us.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
    }
    fn max(&self) -> f64 {
        self.lat_us.iter().max().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    }
    fn met(&self) -> bool {
        self.errors.is_empty() && self.pct(95.0) < PAGE_TARGET_MS
    }
}

/// `warmup` untimed requests, then `samples` timed ones, one at a time.
async fn time_page(
    c: &reqwest::Client,
    admin: &str,
    cookie: &str,
    spec: PageSpec,
    warmup: usize,
    samples: usize,
) -> PageTimes {
    let url = format!("{admin}{}", spec.path);
    let mut t = PageTimes { spec, status: 0, bytes: 0, lat_us: Vec::new(), errors: Vec::new() };
    for i in 0..warmup + samples {
        let t0 = Instant::now();
        let r = async {
            let resp = c
                .get(&url)
                .header("Cookie", format!("scimd_console={cookie}"))
                .header("Accept", "text/html")
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            Ok::<_, String>((status, body))
        }
        .await;
        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        let fail = match &r {
            Ok((200, body)) => t.spec.expect.as_ref().and_then(|e| {
                (!body.windows(e.len()).any(|w| w == e.as_bytes())).then(|| format!("GET {url}: 200 without \"{e}\""))
            }),
            Ok((st, body)) => Some(error_text(&format!("GET {url}"), *st, body)),
            Err(e) => Some(e.clone()),
        };
        if let Ok((st, body)) = &r {
            t.status = *st;
            t.bytes = body.len();
        }
        if i >= warmup {
            t.lat_us.push(us);
            if let Some(e) = fail {
                if t.errors.len() < 3 {
                    t.errors.push(e);
                }
            }
        } else if let Some(e) = fail {
            if t.errors.is_empty() {
                t.errors.push(format!("warm-up: {e}"));
            }
        }
    }
    t
}

/// What the pages part measured.
struct Pages {
    engine: &'static str,
    database: String,
    users: u64,
    seeded: Option<(Seeded, u64, usize, usize)>,
    log_fill: Option<(u64, u64, f64)>,
    log_entries: Option<u64>,
    feed_position: Option<i64>,
    db_bytes: Option<u64>,
    sign_in_ms: f64,
    times: Vec<PageTimes>,
    rss: Option<sys::Mem>,
    load: (String, String),
    warnings: Vec<String>,
}

async fn pages_part(a: &ConsoleArgs) -> Result<Pages, String> {
    let bin = scimd_bin(a);
    let dir = tempfile::Builder::new()
        .prefix("scimd-bench-console-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let file = a.database.clone().unwrap_or_else(|| dir.path().join("scimd.db"));
    let database = format!("sqlite://{}", file.display());
    eprintln!("scimd-bench console pages: {} on {database}", bin.display());
    let token = target::provision(&bin, &database, TENANT, &a.require)?;
    let key = target::api_key(&bin, &database)?;
    let s = spawn(&bin, &database, None, &dir.path().join("scimd.log")).await?;
    let auth = format!("Bearer {token}");
    let c = client(a.seed_concurrency * 2)?;
    let have = user_count(&c, &s, &key).await?;
    let mut seeded = None;
    if have < a.tenant_users {
        eprintln!(
            "  seed: the tenant has {have} users; creating users {have}..{} ({}, {} tasks); {}",
            a.tenant_users,
            if a.seed_bulk == 0 { "POST /Users".to_owned() } else { format!("/Bulk of {}", a.seed_bulk) },
            a.seed_concurrency,
            sys::uptime_load()
        );
        let r = seed(&c, &s, &auth, have, a.tenant_users, a.seed_concurrency, a.seed_bulk).await;
        eprintln!(
            "  seed: {} created, {} there already, {} failed, {} retries in {:.0}s ({:.0}/s)",
            r.created,
            r.existed,
            r.failed,
            r.retries,
            r.secs,
            r.created as f64 / r.secs.max(1e-9)
        );
        for e in &r.samples {
            eprintln!("  seed: sample: {e}");
        }
        seeded = Some((r, have, a.seed_concurrency, a.seed_bulk));
    } else {
        eprintln!("  the tenant has {have} users already: no seeding");
    }
    let users = user_count(&c, &s, &key).await?;
    if users < a.tenant_users {
        return Err(format!("the tenant has {users} users after seeding, not {}", a.tenant_users));
    }
    let mut log_fill = None;
    if a.log_fill > 0 {
        let (failed, secs) = fill_log(&c, &s, &auth, a.log_fill, users).await;
        eprintln!("  log fill: {} lookups in {secs:.1}s, {failed} failed", a.log_fill);
        log_fill = Some((a.log_fill, failed, secs));
    }
    // Let the log's writer and the traffic summaries settle before timing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let newest = api_get(&c, &format!("{}/api/v1/tenants/{TENANT}/requests?limit=1", s.admin), &key).await.ok();
    let log_entries = match newest.as_ref().and_then(|v| v.pointer("/requests/0")) {
        Some(_) => count_log(&c, &s, &key).await.ok().map(|n| n.total),
        None => Some(0),
    };
    let feed_position = api_get(&c, &format!("{}/api/v1/tenants/{TENANT}/Users?count=0", s.admin), &key)
        .await
        .ok()
        .and_then(|v| v.get("position").and_then(Value::as_i64));
    // A user to show: the one in the middle.
    let mid = users / 2;
    let filter = format!(
        "{}/api/v1/tenants/{TENANT}/Users?filter=userName%20eq%20%22{}%22",
        s.admin,
        form_encode(&seed_name(mid))
    );
    let found = api_get(&c, &filter, &key).await?;
    let id = found
        .pointer("/Resources/0/id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no user {} in the tenant", seed_name(mid)))?
        .to_owned();

    let pc = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let (cookie, sign_in_ms) = sign_in(&pc, &s.admin, &key).await?;
    let load_start = sys::uptime_load();
    let t = format!("/console/tenants/{TENANT}");
    let page = |name: &str, path: String, expect: Option<String>| PageSpec {
        name: name.to_owned(),
        path,
        expect,
        ceiling: false,
    };
    let mut specs = vec![
        PageSpec { name: "healthz".into(), path: "/healthz".into(), expect: None, ceiling: true },
        PageSpec { name: "sign-in page".into(), path: "/console/login".into(), expect: None, ceiling: true },
        page("tenants", "/console".into(), Some(TENANT.into())),
        page("tenant", t.clone(), Some(TENANT.into())),
        page("users", format!("{t}/users"), Some(SEED.into())),
    ];
    let searches = if a.search.is_empty() {
        vec![
            // the whole userName of the user in the middle: one match
            (format!("{SEED}{mid:08}"), Some(seed_name(mid))),
            // a userName prefix of 1,000 users
            (format!("{SEED}{:05}", mid / 1000), Some(seed_name(mid / 1000 * 1000))),
            // a displayName prefix of a ninth of the tenant ("User 5", "User 50", ...)
            ("User 5".to_owned(), None),
            // nothing matches
            ("nobody-matches-this".to_owned(), None),
        ]
    } else {
        a.search.iter().map(|q| (q.clone(), None)).collect()
    };
    for (q, expect) in searches {
        specs.push(page(&format!("users?q={q}"), format!("{t}/users?q={}", form_encode(&q)), expect));
    }
    let deep = users / 2 + 1;
    specs.push(page(&format!("users?start={deep}"), format!("{t}/users?start={deep}"), Some(SEED.into())));
    specs.push(page("user", format!("{t}/users/{id}"), Some(seed_name(mid))));
    specs.push(page("requests", format!("{t}/requests"), None));
    specs.push(page("events", format!("{t}/events"), None));
    for extra in &a.extra_page {
        specs.push(page(&format!("(extra) {extra}"), format!("{t}{extra}"), None));
    }
    let mut times = Vec::new();
    for spec in specs {
        let r = time_page(&pc, &s.admin, &cookie, spec, a.warmup, a.samples).await;
        eprintln!(
            "  page {}: {} {} bytes, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms{}",
            r.spec.name,
            r.status,
            r.bytes,
            r.pct(50.0),
            r.pct(95.0),
            r.max(),
            r.errors.first().map(|e| format!("; {e}")).unwrap_or_default()
        );
        times.push(r);
    }
    let rss = sys::mem(s.pid);
    let load_end = sys::uptime_load();
    let db_bytes = std::fs::metadata(&file).ok().map(|m| m.len());
    let warnings = s.warnings();
    drop(s);
    Ok(Pages {
        engine: "SQLite",
        database,
        users,
        seeded,
        log_fill,
        log_entries,
        feed_position,
        db_bytes,
        sign_in_ms,
        times,
        rss,
        load: (load_start, load_end),
        warnings,
    })
}

fn pages_table(a: &ConsoleArgs, p: &Pages) -> String {
    let mut out = format!(
        "\nconsole pages, tenant {TENANT} of {} users on {} ({}, {}); provisioning log: {} entries; feed at {}; \
         sequential requests, {} warm-ups + {} timed each; target p95 < {PAGE_TARGET_MS:.0} ms\n",
        p.users,
        p.engine,
        p.database,
        p.db_bytes.map_or("-".into(), |b| format!("{:.2} GB", b as f64 / 1e9)),
        p.log_entries.map_or("-".into(), |n| n.to_string()),
        p.feed_position.map_or("-".into(), |n| n.to_string()),
        a.warmup,
        a.samples,
    );
    out += &format!(
        "before: {} | after: {} | sign-in (POST /console/login): {:.2} ms\n\n",
        p.load.0, p.load.1, p.sign_in_ms
    );
    let header = ["page", "path", "status", "bytes", "p50 ms", "p95 ms", "max ms", "target"];
    let mut rows = Vec::new();
    for t in &p.times {
        rows.push(vec![
            t.spec.name.clone(),
            t.spec.path.clone(),
            t.status.to_string(),
            t.bytes.to_string(),
            format!("{:.2}", t.pct(50.0)),
            format!("{:.2}", t.pct(95.0)),
            format!("{:.2}", t.max()),
            if t.spec.ceiling {
                "ceiling".into()
            } else if t.met() {
                "met".into()
            } else if t.errors.is_empty() {
                format!("MISSED by {:.1} ms", t.pct(95.0) - PAGE_TARGET_MS)
            } else {
                "FAILED".into()
            },
        ]);
    }
    out += &report::table(&header, &rows, 2);
    let missed: Vec<&PageTimes> =
        p.times.iter().filter(|t| !t.spec.ceiling && t.errors.is_empty() && !t.met()).collect();
    let failed: Vec<&PageTimes> = p.times.iter().filter(|t| !t.errors.is_empty()).collect();
    if missed.is_empty() && failed.is_empty() {
        out += &format!("every console page: p95 under {PAGE_TARGET_MS:.0} ms\n");
    }
    for t in &failed {
        out += &format!("FAILED (not timed as a page): {} ({}): status {}\n", t.spec.name, t.spec.path, t.status);
    }
    for t in missed {
        out += &format!(
            "over {PAGE_TARGET_MS:.0} ms: {} ({}): p50 {:.1} ms, p95 {:.1} ms (+{:.1} ms), max {:.1} ms\n",
            t.spec.name,
            t.spec.path,
            t.pct(50.0),
            t.pct(95.0),
            t.pct(95.0) - PAGE_TARGET_MS,
            t.max()
        );
    }
    for t in &p.times {
        for e in &t.errors {
            out += &format!("error [{}]: {e}\n", t.spec.name);
        }
    }
    if let Some((s, from, conc, bulk)) = &p.seeded {
        out += &format!(
            "seeding (not a figure): users {from}..{} by {}, {conc} tasks: {} created, {} there already, {} failed, {} retries, {:.0} s ({:.0}/s)\n",
            p.users,
            if *bulk == 0 { "POST /Users".to_owned() } else { format!("/Bulk of {bulk}") },
            s.created,
            s.existed,
            s.failed,
            s.retries,
            s.secs,
            s.created as f64 / s.secs.max(1e-9)
        );
    }
    if let Some((n, failed, secs)) = p.log_fill {
        out += &format!("log fill: {n} lookups in {secs:.1} s ({failed} failed)\n");
    }
    if let Some(m) = p.rss {
        out += &format!(
            "server memory after the pages: VmRSS {:.1} MiB, VmHWM (peak) {:.1} MiB\n",
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0
        );
    }
    for w in p.warnings.iter().take(5) {
        out += &format!("scimd warning: {w}\n");
    }
    out
}

fn pages_json(p: &Pages) -> Value {
    json!({
        "engine": p.engine,
        "database": p.database,
        "users": p.users,
        "db_bytes": p.db_bytes,
        "log_entries": p.log_entries,
        "feed_position": p.feed_position,
        "sign_in_ms": p.sign_in_ms,
        "seeding": p.seeded.as_ref().map(|(s, from, conc, bulk)| json!({
            "from": from, "created": s.created, "existed": s.existed, "failed": s.failed, "retries": s.retries,
            "secs": s.secs, "concurrency": conc, "bulk": bulk, "samples": s.samples,
        })),
        "log_fill": p.log_fill.map(|(n, f, secs)| json!({"lookups": n, "failed": f, "secs": secs})),
        "target_p95_ms": PAGE_TARGET_MS,
        "pages": p.times.iter().map(|t| json!({
            "name": t.spec.name,
            "path": t.spec.path,
            "ceiling": t.spec.ceiling,
            "status": t.status,
            "bytes": t.bytes,
            "samples": t.lat_us.len(),
            "p50_ms": t.pct(50.0),
            "p95_ms": t.pct(95.0),
            "max_ms": t.max(),
            "target_met": !t.spec.ceiling && t.met(),
            "errors": t.errors,
            "lat_us": t.lat_us,
        })).collect::<Vec<_>>(),
        "server_rss_kib": p.rss.map(|m| m.rss_kib),
        "server_hwm_kib": p.rss.map(|m| m.hwm_kib),
        "load_before": p.load.0,
        "load_after": p.load.1,
        "scimd_warnings": p.warnings,
    })
}

// ---------------------------------------------------------------- the subcommand

pub async fn run(a: ConsoleArgs) -> Result<(), String> {
    let started = Instant::now();
    let machine = sys::cpu();
    let load_start = sys::uptime_load();
    eprintln!("scimd-bench console: {machine}; {load_start}");
    let mut out = String::new();
    let mut doc = serde_json::Map::new();
    let mut first_error = None;
    for part in &a.parts {
        match part {
            Part::Log => match log_part(&a).await {
                Ok((runs, sums)) => {
                    let t = log_table(&a, &runs, &sums);
                    eprint!("{t}");
                    out += &t;
                    doc.insert(
                        "log".into(),
                        json!({
                            "users": a.users, "concurrency": a.concurrency, "rounds": a.rounds,
                            "runs": runs.iter().map(log_json).collect::<Vec<_>>(),
                            "summary": sums.iter().map(sum_json).collect::<Vec<_>>(),
                        }),
                    );
                }
                Err(e) => {
                    eprintln!("log: error: {e}");
                    first_error.get_or_insert(format!("log: {e}"));
                }
            },
            Part::Pages => match pages_part(&a).await {
                Ok(p) => {
                    let t = pages_table(&a, &p);
                    eprint!("{t}");
                    out += &t;
                    doc.insert("pages".into(), pages_json(&p));
                }
                Err(e) => {
                    eprintln!("pages: error: {e}");
                    first_error.get_or_insert(format!("pages: {e}"));
                }
            },
        }
    }
    let load_end = sys::uptime_load();
    print!(
        "\n{} console | {machine}\nbefore: {load_start} | after: {load_end} | {:.0} s\n{out}",
        a.name,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json {
        doc.insert("bench".into(), json!("console"));
        doc.insert("server".into(), json!(a.name));
        doc.insert("scimd_bin".into(), json!(scimd_bin(&a).display().to_string()));
        doc.insert("machine".into(), json!(machine));
        doc.insert("load_before".into(), json!(load_start));
        doc.insert("load_after".into(), json!(load_end));
        doc.insert("wall_s".into(), json!(started.elapsed().as_secs_f64()));
        report::write_json(path, &Value::Object(doc))?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_name_the_new_database() {
        assert_eq!(
            pg_database("postgres://u:p@127.0.0.1:5432/scimd", "x").ok().as_deref(),
            Some("postgres://u:p@127.0.0.1:5432/x")
        );
        assert_eq!(
            pg_database("postgres://u:p@h/scimd?sslmode=disable", "x").ok().as_deref(),
            Some("postgres://u:p@h/x?sslmode=disable")
        );
        assert_eq!(pg_database("postgres://u:p@h:1", "x").ok().as_deref(), Some("postgres://u:p@h:1/x"));
    }

    #[test]
    fn medians_and_forms() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&mut [4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert_eq!(form_encode("sk_a1.b/c+d"), "sk_a1.b%2Fc%2Bd");
    }

    #[test]
    fn the_session_cookie_is_found() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(reqwest::header::SET_COOKIE, reqwest::header::HeaderValue::from_static("other=1"));
        h.append(
            reqwest::header::SET_COOKIE,
            reqwest::header::HeaderValue::from_static("scimd_console=abc.def; Path=/console; HttpOnly"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc.def"));
    }
}
