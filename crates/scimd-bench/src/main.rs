//! `scimd-bench`: a SCIM 2.0 load generator that replays what identity providers send.
//!
//! `scimd-bench run` drives a SCIM server (one it starts: scimd on a temporary SQLite database;
//! or any server given by `--url` and `--token`) through the scenarios, measures the same
//! requests against the ceiling (the same HTTP stack answering fixed bodies of the same size),
//! and prints a table and JSON. `scimd-bench ceiling` is that ceiling server.
//! `feed-latency` and `feed-read` measure the change feed (`feed.rs`), `replicas` several
//! scimd processes on one PostgreSQL database (`replicas.rs`), `webhooks` push delivery to a
//! receiver it runs itself (`webhooks.rs`), `console` the provisioning log's cost to
//! initial-sync and the support console's pages at 1,000,000 users (`console.rs`), `tenants`
//! N tenants (1,000 by default) each running Entra's cycle at once (`tenants.rs`).

mod ceiling;
mod console;
mod feed;
mod noisy;
mod replicas;
mod report;
mod scenario;
mod stats;
mod sys;
mod target;
mod tenants;
mod walk;
mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::json;

use scenario::{Ctx, Scenario};
use stats::{Figures, figures};

/// The reference customer's mandatory attributes (CLIENTS.md), for the benchmark tenants.
pub const REFERENCE_REQUIRE: &str = "userName,name.familyName,name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,emails[type eq \"work\"].value,preferredLanguage,active";

#[derive(Debug, Parser)]
#[command(name = "scimd-bench", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios against a SCIM server and against the ceiling.
    Run(Box<RunArgs>),
    /// Serve fixed answers with scimd's HTTP stack (started by `run` for the ceiling).
    Ceiling {
        /// Address to listen on (the bound address is printed on stdout)
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// What to answer to a method, as METHOD=STATUS:BYTES (repeatable); others get 200 and
        /// no body
        #[arg(long = "answer", value_name = "METHOD=STATUS:BYTES")]
        answers: Vec<String>,
    },
    /// Commit-to-consumer latency of the change feed: a consumer long-polls it while a writer
    /// creates users at a fixed rate.
    FeedLatency(Box<feed::LatencyArgs>),
    /// Read throughput of the change feed: a tenant filled with N events, then its feed read
    /// from position 0 in sequential pages.
    FeedRead(Box<feed::ReadArgs>),
    /// N scimd processes on one PostgreSQL database, creating users in one tenant or many.
    Replicas(Box<replicas::ReplicasArgs>),
    /// Webhook delivery to a receiver this program runs: one tenant's and T tenants' backlogs,
    /// commit-to-delivery latency, initial-sync without and with a webhook.
    Webhooks(Box<webhooks::WebhooksArgs>),
    /// The provisioning log's cost to initial-sync (off and on, alternating), and the support
    /// console's pages for a tenant of 1,000,000 users.
    Console(Box<console::ConsoleArgs>),
    /// N tenants (1,000 by default), each with its own token and group, running Entra's cycle
    /// (lookup, create, PATCH, member add) at once, at Entra's pace or flat out; aggregate
    /// throughput, per-tenant p50/p99 and fairness.
    Tenants(Box<tenants::TenantsArgs>),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Base URL of a running SCIM server (loopback only), e.g. http://127.0.0.1:8080/scim/v2;
    /// without it, scimd is started on a temporary SQLite database
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for --url
    #[arg(long, requires = "url")]
    token: Option<String>,
    /// Bearer token of a second tenant of --url, the noisy one of noisy-neighbour (without it,
    /// that scenario is skipped in --url mode)
    #[arg(long, requires = "url")]
    noisy_token: Option<String>,
    /// Process id of the --url server, to report its memory
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// Name shown for the server under test
    #[arg(long, default_value = "scimd")]
    name: String,
    /// The scimd binary to start [default: scimd next to this executable]
    #[arg(long)]
    scimd_bin: Option<PathBuf>,
    /// SQLite database file for the started scimd [default: a temporary directory, removed after]
    #[arg(long)]
    database: Option<PathBuf>,
    /// Mandatory attributes of the benchmark tenant (the reference customer's by default)
    #[arg(long, default_value = REFERENCE_REQUIRE)]
    require: String,
    /// Users in the tenant (initial-sync creates them)
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Concurrent requests (tasks sharing one keep-alive connection pool)
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Time limit of each measured scenario except initial-sync, in seconds
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Time limit of initial-sync, in seconds
    #[arg(long, default_value_t = 1800)]
    sync_duration: u64,
    /// Operation limit of each scenario (initial-sync: --users; list: the pages of all users)
    #[arg(long, default_value_t = 1_000_000)]
    ops: u64,
    /// Concurrent requests of group-members, all on one group [default: --concurrency]
    #[arg(long)]
    group_concurrency: Option<usize>,
    /// Members of the group of group-members [default: --users]
    #[arg(long)]
    group_members: Option<u64>,
    /// Users per page in list
    #[arg(long, default_value_t = 100)]
    page: u64,
    /// How list pages: `sweep` hands the pages out in order to whichever task is free;
    /// `index` and `cursor` make each task walk sequentially by startIndex or by cursor
    /// (RFC 9865), from --list-from (see walk.rs). Walks have no ceiling run.
    #[arg(long, value_enum, default_value = "sweep")]
    list_walk: walk::ListWalk,
    /// The 1-based index of the first timed page of the walks (`cursor` gets there untimed)
    #[arg(long, default_value_t = 1)]
    list_from: u64,
    /// Appended to the query string of every page of the walks, e.g. `&sortBy=userName`
    #[arg(long, default_value = "")]
    list_extra: String,
    /// Scenarios to run, in this order (initial-sync always runs first: it makes the users;
    /// noisy-neighbour is not in the default list)
    #[arg(long, value_delimiter = ',', default_value = "initial-sync,lookup,get,list,incremental,group-members")]
    scenarios: Vec<Scenario>,
    /// noisy-neighbour: users of the noisy tenant (~20 KB each; keep it below scimd's
    /// max_candidates, 10,000 by default, or its searches are refused with tooMany)
    #[arg(long, default_value_t = 2000)]
    noisy_users: u64,
    /// noisy-neighbour: concurrent searches of the noisy tenant
    #[arg(long, default_value_t = 8)]
    noisy_concurrency: usize,
    /// noisy-neighbour: tasks of the benchmark (quiet) tenant
    #[arg(long, default_value_t = 2)]
    quiet_concurrency: usize,
    /// noisy-neighbour: each quiet task sends one request per this many milliseconds
    #[arg(long, default_value_t = 10)]
    quiet_interval_ms: u64,
    /// Skip the ceiling
    #[arg(long)]
    no_ceiling: bool,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Ceiling { listen, answers } => {
            answers.iter().map(|a| ceiling::parse_answer(a)).collect::<Result<Vec<_>, _>>().and_then(|a| {
                // the ceiling answers /healthz like any GET; make sure it succeeds
                ceiling::serve(&listen, a)
            })
        }
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(run(*args))),
        Command::FeedLatency(args) => runtime().and_then(|rt| rt.block_on(feed::latency(*args))),
        Command::FeedRead(args) => runtime().and_then(|rt| rt.block_on(feed::read(*args))),
        Command::Replicas(args) => runtime().and_then(|rt| rt.block_on(replicas::run(*args))),
        Command::Webhooks(args) => runtime().and_then(|rt| rt.block_on(webhooks::run(*args))),
        Command::Console(args) => runtime().and_then(|rt| rt.block_on(console::run(*args))),
        Command::Tenants(args) => runtime().and_then(|rt| rt.block_on(tenants::run(*args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// One row of the report: a label of a scenario, on the server and on the ceiling.
struct Row {
    scenario: &'static str,
    label: &'static str,
    server: Figures,
    ceiling: Option<Figures>,
    load_start: f64,
    load_end: f64,
    rss_kib: Option<u64>,
    /// CPU time the server used during the scenario (its own process, from /proc), seconds.
    cpu_s: Option<f64>,
    note: String,
    errors: Vec<String>,
}

async fn run(a: RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(a.concurrency.max(1) * 2)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;

    // The server under test.
    let mut _tmp: Option<tempfile::TempDir> = None;
    let mut _server: Option<target::Spawned> = None;
    let wants_noisy = a.scenarios.contains(&Scenario::NoisyNeighbour);
    let (base, token, pid, noisy_token) = match &a.url {
        Some(url) => {
            target::check_loopback(url)?;
            (
                url.trim_end_matches('/').to_owned(),
                a.token.clone().unwrap_or_default(),
                a.server_pid,
                a.noisy_token.clone(),
            )
        }
        None => {
            let bin = a.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin);
            let dir = tempfile::Builder::new()
                .prefix("scimd-bench-")
                .tempdir()
                .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
            let db_path = a.database.clone().unwrap_or_else(|| dir.path().join("scimd.db"));
            let database = format!("sqlite://{}", db_path.display());
            eprintln!("scimd-bench: starting {} on {database}", bin.display());
            let token = target::provision(&bin, &database, "bench", &a.require)?;
            let noisy_token =
                if wants_noisy { Some(target::provision(&bin, &database, "noisy", &a.require)?) } else { None };
            let log = dir.path().join("scimd.log");
            let s = target::start_scimd(&bin, &database, &log).await?;
            let out = (format!("{}/scim/v2", s.origin), token, Some(s.pid), noisy_token);
            _server = Some(s);
            _tmp = Some(dir);
            out
        }
    };
    let machine = sys::cpu();
    let load_at_start = sys::loadavg();
    eprintln!("scimd-bench: {} at {base}; machine {machine}; loadavg {load_at_start}", a.name);

    let mut ctx = Ctx {
        client: client.clone(),
        base: base.clone(),
        auth: format!("Bearer {token}"),
        validate: true,
        users: Vec::new(),
        group: None,
        group_members: 0,
        page: a.page.max(1),
        synced: Mutex::new(vec![None; usize::try_from(a.users).unwrap_or(usize::MAX)]),
        created: AtomicU64::new(0),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut extra = serde_json::Map::new();
    let mut scenarios = a.scenarios.clone();
    scenarios.retain(|s| *s != Scenario::InitialSync);
    scenarios.insert(0, Scenario::InitialSync);

    for sc in scenarios {
        if sc == Scenario::NoisyNeighbour {
            let parts = match &noisy_token {
                Some(nt) => {
                    if a.noisy_users > 10_000 {
                        eprintln!(
                            "  noisy-neighbour: warning: --noisy-users above 10,000 (scimd's default max_candidates)"
                        );
                    }
                    let report = noisy::run(noisy::Settings {
                        client: client.clone(),
                        base: base.clone(),
                        origin: noisy::origin_of(&base),
                        quiet_auth: ctx.auth.clone(),
                        noisy_auth: format!("Bearer {nt}"),
                        users: ctx.users.iter().map(|(_, id)| id.clone()).collect(),
                        noisy_users: a.noisy_users,
                        noisy_concurrency: a.noisy_concurrency,
                        quiet_concurrency: a.quiet_concurrency,
                        quiet_interval: Duration::from_millis(a.quiet_interval_ms.max(1)),
                        fill_concurrency: a.concurrency,
                        fill_limit: Duration::from_secs(a.sync_duration),
                        duration: Duration::from_secs(a.duration),
                        ops: a.ops,
                        pid,
                        title: format!("{} {}", a.name, sc.name()),
                    })
                    .await?;
                    extra.insert("noisy_neighbour".into(), report.extra);
                    report.parts
                }
                None => {
                    let note = "skipped: no --noisy-token for a second tenant of --url".to_owned();
                    eprintln!("  noisy-neighbour: {note}");
                    extra.insert("noisy_neighbour".into(), json!({"skipped": note}));
                    let load = sys::load1();
                    vec![noisy::Part {
                        label: "",
                        fig: Figures::default(),
                        errors: Vec::new(),
                        load_start: load,
                        load_end: load,
                        rss_kib: None,
                        note,
                    }]
                }
            };
            for p in parts {
                rows.push(Row {
                    scenario: sc.name(),
                    label: p.label,
                    server: p.fig,
                    ceiling: None,
                    load_start: p.load_start,
                    load_end: p.load_end,
                    rss_kib: p.rss_kib,
                    cpu_s: None,
                    note: p.note,
                    errors: p.errors,
                });
            }
            continue;
        }
        let (total, limit) = match sc {
            Scenario::InitialSync => (a.users, Duration::from_secs(a.sync_duration)),
            Scenario::List => ((ctx.users.len() as u64).div_ceil(ctx.page).min(a.ops), Duration::from_secs(a.duration)),
            _ => (a.ops, Duration::from_secs(a.duration)),
        };
        if sc == Scenario::GroupMembers {
            let m = a.group_members.unwrap_or(a.users).min(ctx.users.len() as u64);
            let (gid, fill) = make_group(&ctx, m).await?;
            eprintln!("  group of {m} members made in {fill:.1}s ({:.0} members/s)", m as f64 / fill.max(1e-9));
            extra.insert("group_fill".into(), json!({"members": m, "secs": fill}));
            ctx.group = Some(gid);
            ctx.group_members = usize::try_from(m).unwrap_or(usize::MAX);
        }
        let ctx_arc = Arc::new(std::mem::replace(&mut ctx, empty_ctx(&client)));
        let load_start = sys::load1();
        let title = format!("{} {}", a.name, sc.name());
        let conc =
            if sc == Scenario::GroupMembers { a.group_concurrency.unwrap_or(a.concurrency) } else { a.concurrency };
        let cpu_start = pid.and_then(sys::cpu_secs);
        let walking = sc == Scenario::List && a.list_walk != walk::ListWalk::Sweep;
        let out = if walking {
            let w = walk::Walk {
                kind: a.list_walk,
                from: a.list_from,
                page: ctx_arc.page,
                tasks: conc,
                limit,
                extra: a.list_extra.clone(),
            };
            walk::run(Arc::clone(&ctx_arc), w, title).await?
        } else {
            scenario::drive(Arc::clone(&ctx_arc), sc, total, limit, conc, title).await
        };
        let cpu_s = cpu_start.zip(pid.and_then(sys::cpu_secs)).map(|(a, b)| b - a);
        let load_end = sys::load1();
        let mem = target::memory(pid);
        let mut back = Arc::try_unwrap(ctx_arc).map_err(|_| "a task kept the context".to_owned())?;
        let mut note = String::new();
        if sc == Scenario::InitialSync {
            let synced = back.synced.lock().map(|s| s.clone()).unwrap_or_default();
            back.users = synced.into_iter().enumerate().filter_map(|(i, id)| id.map(|id| (i as u64, id))).collect();
            let created = back.created.load(std::sync::atomic::Ordering::Relaxed);
            note = format!("{} users ({} created)", back.users.len(), created);
        }
        if walking {
            let kind = if a.list_walk == walk::ListWalk::Cursor { "cursor" } else { "startIndex" };
            note =
                format!("{conc} walk(s) by {kind} from {}, {} per page{}", a.list_from.max(1), back.page, a.list_extra);
        }
        if out.timed_out {
            note = format!("{note}{}stopped at {}s", if note.is_empty() { "" } else { "; " }, limit.as_secs());
        }

        // The same requests against the ceiling, answered with bodies of the same size.
        let mut ceiling_out = None;
        if !a.no_ceiling && !walking {
            let answers = out.shape.ceiling_args();
            let c = target::start_ceiling(&answers).await?;
            let cctx = Arc::new(Ctx {
                client: client.clone(),
                base: format!("{}/scim/v2", c.origin),
                auth: back.auth.clone(),
                validate: false,
                users: back.users.clone(),
                group: back.group.clone(),
                group_members: back.group_members,
                page: back.page,
                synced: Mutex::new(Vec::new()),
                created: AtomicU64::new(0),
            });
            let title = format!("ceiling {} ({})", sc.name(), answers.join(" "));
            let done_ops = out.labels.values().map(|r| r.lat_us.len() as u64).sum::<u64>().max(1);
            ceiling_out = Some(scenario::drive(cctx, sc, done_ops, limit, conc, title).await);
            drop(c);
        }
        let mut ceiling_labels = ceiling_out.map(|o| (o.labels, o.secs));
        let labels: Vec<&'static str> = out.labels.keys().copied().collect();
        let many = labels.len() > 1;
        let mut all = stats::Rec::default();
        let mut all_c = stats::Rec::default();
        for (label, mut rec) in out.labels {
            let errors = rec.samples.clone();
            if many {
                all.merge(rec.clone());
            }
            let server = figures(&mut rec, out.secs);
            let ceiling = ceiling_labels.as_mut().and_then(|(l, secs)| {
                l.remove(label).map(|mut r| {
                    if many {
                        all_c.merge(r.clone());
                    }
                    figures(&mut r, *secs)
                })
            });
            rows.push(Row {
                scenario: sc.name(),
                label,
                server,
                ceiling,
                load_start,
                load_end,
                rss_kib: mem.map(|m| m.rss_kib),
                cpu_s,
                note: note.clone(),
                errors,
            });
        }
        if many {
            let server = figures(&mut all, out.secs);
            let ceiling = ceiling_labels.as_ref().map(|(_, secs)| figures(&mut all_c, *secs));
            rows.push(Row {
                scenario: sc.name(),
                label: "all",
                server,
                ceiling,
                load_start,
                load_end,
                rss_kib: mem.map(|m| m.rss_kib),
                cpu_s,
                note: note.clone(),
                errors: Vec::new(),
            });
        }
        ctx = back;
    }

    let mem = target::memory(pid);
    let load_at_end = sys::loadavg();
    print!("{}", table(&a, &rows, &machine, &load_at_start, &load_at_end, mem));
    if let Some(path) = &a.json {
        let doc = json!({
            "server": a.name,
            "base_url": base,
            "machine": machine,
            "users": ctx.users.len(),
            "concurrency": a.concurrency,
            "duration_s": a.duration,
            "loadavg_start": load_at_start,
            "loadavg_end": load_at_end,
            "wall_s": started.elapsed().as_secs_f64(),
            "server_rss_kib": mem.map(|m| m.rss_kib),
            "server_hwm_kib": mem.map(|m| m.hwm_kib),
            "extra": extra,
            "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
        if path.as_os_str() == "-" {
            print!("{text}");
        } else {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn empty_ctx(client: &reqwest::Client) -> Ctx {
    Ctx {
        client: client.clone(),
        base: String::new(),
        auth: String::new(),
        validate: true,
        users: Vec::new(),
        group: None,
        group_members: 0,
        page: 1,
        synced: Mutex::new(Vec::new()),
        created: AtomicU64::new(0),
    }
}

/// Creates a group and fills it with the first `m` users, 1,000 per PATCH; returns its id and
/// the seconds the filling took.
async fn make_group(ctx: &Ctx, m: u64) -> Result<(String, f64), String> {
    let name = format!("bench-group-{m}-{}", std::process::id());
    let resp = ctx
        .client
        .post(format!("{}/Groups", ctx.base))
        .header("Authorization", &ctx.auth)
        .header("Content-Type", "application/scim+json")
        .body(scenario::group_body(&name))
        .send()
        .await
        .map_err(|e| format!("POST /Groups: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST /Groups: {e}"))?;
    if status != 201 {
        return Err(format!("POST /Groups: {status}: {}", String::from_utf8_lossy(&body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("POST /Groups: {e}"))?;
    let gid = v.get("id").and_then(serde_json::Value::as_str).ok_or("POST /Groups: no id")?.to_owned();
    let start = Instant::now();
    let ids: Vec<String> =
        ctx.users.iter().take(usize::try_from(m).unwrap_or(usize::MAX)).map(|(_, id)| id.clone()).collect();
    for (n, chunk) in ids.chunks(1000).enumerate() {
        let resp = ctx
            .client
            .request(Method::PATCH, format!("{}/Groups/{gid}", ctx.base))
            .header("Authorization", &ctx.auth)
            .header("Content-Type", "application/scim+json")
            .body(scenario::member_patch("Add", chunk))
            .send()
            .await
            .map_err(|e| format!("PATCH /Groups: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| format!("PATCH /Groups: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("PATCH /Groups (adding members): {status}: {}", String::from_utf8_lossy(&body)));
        }
        if n % 100 == 99 {
            eprintln!("  group fill: {} members", (n + 1) * 1000);
        }
    }
    Ok((gid, start.elapsed().as_secs_f64()))
}

fn fig_json(f: &Figures) -> serde_json::Value {
    json!({"ops": f.ops, "errors": f.errors, "secs": f.secs, "per_sec": f.per_sec,
           "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "p999_ms": f.p999_ms, "over_100ms": f.over_100ms,
           "max_ms": f.max_ms})
}

fn row_json(r: &Row) -> serde_json::Value {
    json!({
        "scenario": r.scenario,
        "label": r.label,
        "server": fig_json(&r.server),
        "ceiling": r.ceiling.as_ref().map(fig_json),
        "throughput_ratio": r.ceiling.as_ref().map(|c| ratio(r.server.per_sec, c.per_sec)),
        "loadavg_start": r.load_start,
        "loadavg_end": r.load_end,
        "server_rss_kib": r.rss_kib,
        "server_cpu_s": r.cpu_s,
        "note": r.note,
        "error_samples": r.errors,
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn table(a: &RunArgs, rows: &[Row], machine: &str, load_start: &str, load_end: &str, mem: Option<sys::Mem>) -> String {
    let header = [
        "scenario",
        "label",
        "ops",
        "err",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p99.9",
        ">100ms",
        "max ms",
        "ceil ops/s",
        "ceil p99",
        "ratio",
        "load",
        "RSS MiB",
        "CPU s",
        "note",
    ];
    let mut cells: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let (c_ops, c_p99, rat) = match &r.ceiling {
            Some(c) => (
                format!("{:.0}", c.per_sec),
                format!("{:.2}", c.p99_ms),
                format!("{:.2}", ratio(r.server.per_sec, c.per_sec)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        cells.push(vec![
            r.scenario.to_owned(),
            if r.label.is_empty() { "-".to_owned() } else { r.label.to_owned() },
            r.server.ops.to_string(),
            r.server.errors.to_string(),
            format!("{:.0}", r.server.per_sec),
            format!("{:.2}", r.server.p50_ms),
            format!("{:.2}", r.server.p99_ms),
            format!("{:.2}", r.server.p999_ms),
            r.server.over_100ms.to_string(),
            format!("{:.1}", r.server.max_ms),
            c_ops,
            c_p99,
            rat,
            format!("{:.2}>{:.2}", r.load_start, r.load_end),
            r.rss_kib.map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            r.cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
            r.note.clone(),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "\n{} at {} | {} users, concurrency {} (group-members {}), {}s per scenario | {machine}\nloadavg start: {load_start} | end: {load_end}\n\n",
        a.name,
        a.url.as_deref().unwrap_or("a started scimd (SQLite, default durability)"),
        rows.iter().find(|r| r.scenario == "initial-sync").map_or(0, |r| r.server.ops),
        a.concurrency,
        a.group_concurrency.unwrap_or(a.concurrency),
        a.duration,
    );
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for (n, row) in std::iter::once(&header).chain(&cells).enumerate() {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line += c;
            } else if i < 2 {
                line += &format!("{c:<w$}  ");
            } else {
                line += &format!("{c:>w$}  ");
            }
        }
        out += line.trim_end();
        out.push('\n');
        if n == 0 {
            out += &"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len());
            out.push('\n');
        }
    }
    let mut errs: BTreeMap<String, &Vec<String>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.errors.is_empty()) {
        errs.insert(format!("{} {}", r.scenario, r.label), &r.errors);
    }
    for (k, v) in errs {
        for e in v {
            out += &format!("error sample [{k}]: {e}\n");
        }
    }
    if let Some(m) = mem {
        out += &format!(
            "server memory: VmRSS {:.1} MiB, VmHWM (peak) {:.1} MiB\n",
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0
        );
    }
    out
}
