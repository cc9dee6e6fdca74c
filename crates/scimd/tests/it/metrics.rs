//! `/metrics` of a real `scimd serve` after a small provisioning run, and the Grafana
//! dashboard (`deploy/grafana-dashboard.json`) and docs/metrics.md against what it exports.
//!
//! The built binary, not the in-process server: the metrics recorder is global to a process,
//! and the tests of this binary run in parallel and mostly record into none. On SQLite, or on
//! PostgreSQL with `SCIMD_TEST_ENGINE=postgres`, like the HTTP suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::cli::{Db, Server, free_port, wait_healthy};
use super::common::{SCIM, on_postgres, patch_op};
use super::webhooks::receiver;

// ---------------------------------------------------------------- the text format

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape of `/metrics`: its samples, and the type of each family (`# TYPE` lines).
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

/// `{k="v",...}` at the start of `s` (values may hold `{`, `,` and escaped quotes); the labels
/// and what follows.
fn labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut out = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else { return (out, s) };
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return (out, after);
        }
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("a label without a value: {s}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("an escape at the end: {s}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value: {s}"),
            }
        };
        out.insert(key.to_owned(), value);
        rest = &after[end + 1..];
    }
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape { samples: Vec::new(), types: BTreeMap::new() };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            scrape.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
        let (labels, rest) = labels(&line[end..]);
        let value = rest.trim().split(' ').next().unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{e}: {line}")),
        };
        scrape.samples.push(Sample { name: line[..end].to_owned(), labels, value });
    }
    scrape
}

impl Scrape {
    /// The sum of the samples named `name` that carry all of `labels`; `None` if there is none.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// [`Scrape::sum`], which must exist.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics"))
    }

    /// The family a sample name belongs to (a histogram's `_bucket`, `_sum` and `_count` are
    /// its own).
    fn family<'a>(&self, name: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if self.types.get(base).is_some_and(|t| t == "histogram" || t == "summary") {
                    return base;
                }
            }
        }
        name
    }
}

async fn scrape(client: &reqwest::Client, admin: &str) -> Scrape {
    let r = client.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    parse(&r.text().await.unwrap())
}

/// Scrapes until `f` holds of a scrape (for at most 30 s); returns that scrape.
async fn scrape_until(client: &reqwest::Client, admin: &str, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(client, admin).await;
        if f(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "no scrape within 30 s where {what}: {:#?}", m.samples);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- the dashboard

/// Every PromQL expression of a dashboard: the panels' targets (rows' panels too) and the
/// template variables' queries.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(e)) => out.push(e.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| expressions(i, out)),
        _ => {}
    }
}

/// The metric names (`scimd_...`) an expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("scimd_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The text of every Rust source file of scimd and scim-store.
fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = String::new();
    walk(&root.join("src"), &mut out);
    walk(&root.join("../scim-store/src"), &mut out);
    out
}

fn read_repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)).unwrap()
}

/// The dashboard is one Grafana can import, and every metric its queries use is one this
/// server exported in `m`, or one it records only in circumstances the run did not have
/// (`unseen`: names written in scimd's source). Returns the metric families it uses.
fn check_dashboard(m: &Scrape, unseen: &[&str]) -> BTreeSet<String> {
    let d: Value = serde_json::from_str(&read_repo_file("deploy/grafana-dashboard.json")).unwrap();
    assert!(d["schemaVersion"].as_i64().is_some_and(|v| v >= 36), "{}", d["schemaVersion"]);
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(d["__inputs"][0]["pluginId"], "prometheus");
    let vars = d["templating"]["list"].as_array().unwrap();
    let tenant = vars.iter().find(|v| v["name"] == "tenant").expect("a tenant variable");
    assert_eq!(tenant["query"]["query"], "label_values(scimd_scim_requests_total, tenant)");
    let mut ids = BTreeSet::new();
    let rows = d["panels"].as_array().unwrap();
    let panels = rows.iter().chain(rows.iter().flat_map(|r| r["panels"].as_array().into_iter().flatten()));
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "panel id {} twice", p["id"]);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty(), "{}", p["title"]);
        }
    }
    let mut exprs = Vec::new();
    expressions(&d, &mut exprs);
    let exported: BTreeSet<&str> = m.samples.iter().map(|s| s.name.as_str()).collect();
    let source = sources();
    let mut families = BTreeSet::new();
    for name in exprs.iter().flat_map(|e| metric_names(e)) {
        let family = m.family(&name).to_owned();
        if !exported.contains(name.as_str()) {
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            assert!(
                unseen.contains(&base) || unseen.contains(&name.as_str()),
                "the dashboard uses {name}, which /metrics did not export"
            );
            assert!(
                source.contains(&format!("\"{base}\"")) || source.contains(&format!("\"{name}\"")),
                "the dashboard uses {name}, which scimd never records"
            );
            families.insert(base.to_owned());
            continue;
        }
        families.insert(family);
    }
    families
}

// ---------------------------------------------------------------- the run

async fn call(client: &reqwest::Client, method: Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", SCIM).body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The families this change added, with their labels: each is on the dashboard and in the
/// docs. Token failures and the per-tenant SCIM counts come from the HTTP layer.
const ADDED: &[&str] = &[
    "scimd_scim_requests_total",
    "scimd_token_failures_total",
    "scimd_store_operation_duration_seconds",
    "scimd_store_errors_total",
    "scimd_sqlite_writer_queue_depth",
    "scimd_sqlite_commit_batch_size",
    "scimd_sqlite_commit_duration_seconds",
    "scimd_sqlite_checkpoint_duration_seconds",
    "scimd_sqlite_wal_frames",
    "scimd_postgres_pool_connections",
    "scimd_postgres_pool_max",
    "scimd_postgres_pool_waiting",
    "scimd_webhook_backlog_events",
    "scimd_webhook_delivery_lag_seconds",
    "scimd_webhook_deliveries_total",
    "scimd_webhook_delivery_duration_seconds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_charts_only_exported_metrics_and_each_new_metric_reports_sane_values() {
    let (db, engine) = if on_postgres() { (Db::postgres(), "postgres") } else { (Db::new(), "sqlite") };
    let recv = receiver().await;
    recv.set_status(503);
    let (port, admin_port) = (free_port(), free_port());
    let server = Server::start(&db, port, admin_port);
    let token =
        server.read_until("Secret Token:").last().unwrap().trim_start_matches("Secret Token:").trim().to_owned();
    let client = reqwest::Client::new();
    let scim = format!("http://127.0.0.1:{port}/scim/v2");
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_healthy(&client, &format!("http://127.0.0.1:{port}/healthz")).await;
    db.expect(0, &["webhook", "add", "--url", &recv.url, "--tenant", "default"]);
    let listed: Value = serde_json::from_str(&db.expect(0, &["webhook", "list", "--json"])).unwrap();
    let hook = listed[0]["id"].as_str().unwrap().to_owned();
    let wh: &[(&str, &str)] = &[("webhook", &hook)];

    // A small provisioning run: users, a group, a PATCH, reads, a deletion, a refused token.
    let mut ids = Vec::new();
    for name in ["ada", "grace", "linus"] {
        let body = json!({"userName": format!("{name}@contoso.com")});
        let (status, v) = call(&client, Method::POST, &format!("{scim}/Users"), &token, Some(body)).await;
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let group = json!({"displayName": "eng", "members": [{"value": ids[0]}, {"value": ids[1]}]});
    let (status, v) = call(&client, Method::POST, &format!("{scim}/Groups"), &token, Some(group)).await;
    assert_eq!(status, 201, "{v}");
    let off = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    let (status, v) = call(&client, Method::PATCH, &format!("{scim}/Users/{}", ids[2]), &token, Some(off)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(call(&client, Method::GET, &format!("{scim}/Users/{}", ids[0]), &token, None).await.0, 200);
    let filtered = format!("{scim}/Users?filter=userName%20eq%20%22ada@contoso.com%22");
    assert_eq!(call(&client, Method::GET, &filtered, &token, None).await.0, 200);
    assert_eq!(call(&client, Method::DELETE, &format!("{scim}/Users/{}", ids[1]), &token, None).await.0, 204);
    assert_eq!(call(&client, Method::GET, &format!("{scim}/Users"), "scimd_aaaaaaaaaaaa_wrong", None).await.0, 401);

    // The receiver refuses: the attempt counts as failed, and the events wait (on PostgreSQL,
    // once the sequencer numbered them, just after their commits).
    recv.wait_for(1).await;
    let m = scrape_until(&client, &admin, "a failed delivery is counted and six events or more wait", |m| {
        m.sum("scimd_webhook_deliveries_total", &[wh[0], ("outcome", "failed")]).is_some_and(|n| n >= 1.0)
            && m.sum("scimd_webhook_backlog_events", wh).is_some_and(|n| n >= 6.0)
    })
    .await;
    let lag = m.get("scimd_webhook_delivery_lag_seconds", wh);
    assert!(lag > 0.0 && lag < 60.0, "the oldest event waits since the run: {lag} s");

    // It accepts: the retry delivers everything, and the backlog and lag drop to 0.
    recv.set_status(200);
    let m = scrape_until(&client, &admin, "the webhook caught up", |m| {
        m.sum("scimd_webhook_backlog_events", wh) == Some(0.0)
            && m.sum("scimd_webhook_deliveries_total", &[wh[0], ("outcome", "ok")]).is_some_and(|n| n >= 6.0)
    })
    .await;
    assert_eq!(m.get("scimd_webhook_delivery_lag_seconds", wh), 0.0);
    let attempts = m.get("scimd_webhook_deliveries_total", wh);
    let timed = m.get("scimd_webhook_delivery_duration_seconds_count", wh);
    assert!((timed - attempts).abs() <= 1.0, "each attempt timed: {timed} timings, {attempts} attempts");
    assert!(m.get("scimd_webhook_delivery_duration_seconds_sum", wh) > 0.0);

    // The HTTP layer's per-tenant counts and token failures.
    let created = [("tenant", "default"), ("resource", "Users"), ("operation", "create"), ("status", "2xx")];
    assert!(m.get("scimd_scim_requests_total", &created) >= 3.0);
    assert!(m.get("scimd_token_failures_total", &[]) >= 1.0);
    assert!(m.sum("scimd_http_request_duration_seconds_bucket", &[("le", "+Inf")]).is_some(), "a histogram");

    // The store, timed by engine and operation.
    let store = "scimd_store_operation_duration_seconds";
    for (operation, least) in [("create", 4.0), ("patch", 1.0), ("query", 1.0), ("delete", 1.0), ("get", 1.0)] {
        let op = [("engine", engine), ("operation", operation)];
        let n = m.get(&format!("{store}_count"), &op);
        assert!(n >= least, "{operation}: {n} calls timed");
        let inf = [op[0], op[1], ("le", "+Inf")];
        assert_eq!(m.get(&format!("{store}_bucket"), &inf), n, "{operation}: every call in the +Inf bucket");
        assert!(m.get(&format!("{store}_sum"), &op) > 0.0);
    }
    let other = if engine == "sqlite" { "postgres" } else { "sqlite" };
    assert_eq!(m.sum(&format!("{store}_count"), &[("engine", other)]), None, "one engine");
    assert_eq!(m.sum("scimd_store_errors_total", &[]).unwrap_or(0.0), 0.0, "no database failure");

    // The engine's own gauges and histograms.
    let unseen_engine: &[&str] = if engine == "sqlite" {
        let commits = m.get("scimd_sqlite_commit_batch_size_count", &[]);
        let writes = m.get("scimd_sqlite_commit_batch_size_sum", &[]);
        assert!(commits >= 1.0 && writes >= commits && writes <= 512.0 * commits, "{writes} writes, {commits} commits");
        assert_eq!(m.get("scimd_sqlite_commit_batch_size_bucket", &[("le", "512")]), commits);
        let timed = m.get("scimd_sqlite_commit_duration_seconds_count", &[]);
        assert!((timed - commits).abs() <= 1.0, "{timed} commits timed, {commits} counted");
        let depth = m.get("scimd_sqlite_writer_queue_depth", &[]);
        assert!((0.0..=10_000.0).contains(&depth), "queue depth {depth}");
        // The checkpoint thread ran after the commits, and copied no more than the WAL held.
        assert!(m.get("scimd_sqlite_checkpoint_duration_seconds_count", &[]) >= 1.0, "no WAL checkpoint");
        let written = m.get("scimd_sqlite_wal_frames", &[("state", "written")]);
        let copied = m.get("scimd_sqlite_wal_frames", &[("state", "checkpointed")]);
        assert!(copied >= 0.0 && copied <= written, "{copied} of {written} WAL pages checkpointed");
        assert_eq!(m.sum("scimd_postgres_pool_max", &[]), None);
        &["scimd_postgres_pool_connections", "scimd_postgres_pool_max", "scimd_postgres_pool_waiting"]
    } else {
        let max = m.get("scimd_postgres_pool_max", &[]);
        assert_eq!(max, 8.0);
        let in_use = m.get("scimd_postgres_pool_connections", &[("state", "in_use")]);
        let idle = m.get("scimd_postgres_pool_connections", &[("state", "idle")]);
        assert!(in_use >= 0.0 && idle >= 0.0 && in_use + idle >= 1.0 && in_use + idle <= max, "{in_use} + {idle}");
        assert!(m.get("scimd_postgres_pool_waiting", &[]) >= 0.0);
        assert_eq!(m.sum("scimd_sqlite_commit_batch_size_count", &[]), None);
        &[
            "scimd_sqlite_writer_queue_depth",
            "scimd_sqlite_commit_batch_size",
            "scimd_sqlite_commit_duration_seconds",
            "scimd_sqlite_checkpoint_duration_seconds",
            "scimd_sqlite_wal_frames",
        ]
    };

    // The dashboard uses only what scimd exports, and charts every metric this change added;
    // docs/metrics.md documents every metric exported.
    let mut unseen = unseen_engine.to_vec();
    unseen.extend(["scimd_store_errors_total", "scimd_request_log_dropped_total"]);
    let charted = check_dashboard(&m, &unseen);
    for family in ADDED {
        assert!(charted.contains(*family), "the dashboard does not chart {family}");
    }
    let docs = read_repo_file("docs/metrics.md");
    let exported: BTreeSet<&str> = m.samples.iter().map(|s| m.family(&s.name)).collect();
    for family in exported.iter().filter(|f| f.starts_with("scimd_")).copied().chain(charted.iter().map(String::as_str))
    {
        assert!(docs.contains(&format!("`{family}`")), "docs/metrics.md does not document {family}");
    }

    // A removed webhook's gauges drop to 0 (with a backlog waiting when it goes).
    recv.set_status(503);
    let failed = m.get("scimd_webhook_deliveries_total", &[wh[0], ("outcome", "failed")]);
    let body = json!({"userName": "late@contoso.com"});
    assert_eq!(call(&client, Method::POST, &format!("{scim}/Users"), &token, Some(body)).await.0, 201);
    scrape_until(&client, &admin, "the new event waits", |m| {
        m.sum("scimd_webhook_deliveries_total", &[wh[0], ("outcome", "failed")]).is_some_and(|n| n > failed)
            && m.sum("scimd_webhook_backlog_events", wh).is_some_and(|n| n >= 1.0)
    })
    .await;
    db.expect(0, &["webhook", "remove", &hook]);
    let m = scrape(&client, &admin).await;
    assert_eq!(m.get("scimd_webhook_backlog_events", wh), 0.0);
    assert_eq!(m.get("scimd_webhook_delivery_lag_seconds", wh), 0.0);
    drop(server);
}
