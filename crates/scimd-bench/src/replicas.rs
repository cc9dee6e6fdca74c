//! `replicas`: N scimd processes on one PostgreSQL database, clients spread round-robin over
//! them, creating users in one tenant or spread over many.
//!
//! Operation k goes to replica `k % N` and to tenant `(k / N) % T`, so every tenant is written
//! through every replica. Each operation is `POST /Users` with the Entra body of
//! initial-sync. Operations started in the warm-up are not counted; the figures are the
//! operations started after it and answered before the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::feed::{client, create_user, fig_json};
use crate::report;
use crate::stats::{Rec, figures};
use crate::{REFERENCE_REQUIRE, sys, target};

#[derive(Debug, Args)]
pub struct ReplicasArgs {
    /// The PostgreSQL database all replicas share, new and empty: postgres://USER:PASSWORD@HOST/DB
    #[arg(long)]
    pub database: String,
    /// The scimd binary to start [default: scimd next to this executable]
    #[arg(long)]
    pub scimd_bin: Option<PathBuf>,
    /// Name shown for the server under test
    #[arg(long, default_value = "scimd")]
    pub name: String,
    /// Mandatory attributes of the tenants
    #[arg(long, default_value = REFERENCE_REQUIRE)]
    pub require: String,
    /// scimd processes on the database
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Tenants written to (each with its own token)
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Concurrent requests, over all replicas
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds measured (after the warm-up)
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Seconds of warm-up, not counted
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Write the results as JSON to this file ("-": stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(a: ReplicasArgs) -> Result<(), String> {
    if !a.database.starts_with("postgres") {
        return Err("replicas: --database must be a postgres:// URL (the replicas share it)".into());
    }
    let bin = a.scimd_bin.clone().unwrap_or_else(target::default_scimd_bin);
    let n = a.replicas.max(1);
    let t = a.tenants.max(1);
    let dir = tempfile::Builder::new()
        .prefix("scimd-bench-replicas-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    eprintln!("scimd-bench: {n} x {} on {}, {t} tenants", bin.display(), report::redact(&a.database));
    let names: Vec<String> = (0..t).map(|i| format!("bench-{i:02}")).collect();
    let mut auths = Vec::new();
    for name in &names {
        auths.push(format!("Bearer {}", target::provision(&bin, &a.database, name, &a.require)?));
    }
    let key = target::api_key(&bin, &a.database)?;
    let mut servers = Vec::new();
    for i in 0..n {
        servers.push(target::start_scimd(&bin, &a.database, &dir.path().join(format!("scimd-{i}.log"))).await?);
    }
    let scims: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| format!("{}/scim/v2", s.origin)).collect());
    let auths = Arc::new(auths);
    let load_start = sys::uptime_load();
    eprintln!("  {n} replicas up; {load_start}");

    let c = client(a.concurrency * 2)?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let warm_end = start + Duration::from_secs(a.warmup);
    let end = warm_end + Duration::from_secs(a.duration);
    let created_all = Arc::new(AtomicU64::new(0));
    // measured: start of the window's CPU figures, taken by a timer at warm_end
    let cpu_at_warm = {
        let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(warm_end)).await;
            (sys::cpu_jiffies(), pids.iter().map(|p| sys::cpu_secs(*p)).collect::<Vec<_>>(), sys::load1())
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (c, next, scims, auths, created_all) =
            (c.clone(), Arc::clone(&next), Arc::clone(&scims), Arc::clone(&auths), Arc::clone(&created_all));
        tasks.push(tokio::spawn(async move {
            let mut rec = Rec::default();
            let mut per_replica = vec![0u64; n];
            let mut per_tenant = vec![0u64; t];
            while Instant::now() < end {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let r = usize::try_from(k % n as u64).unwrap_or(0);
                let ti = usize::try_from((k / n as u64) % t as u64).unwrap_or(0);
                let t0 = Instant::now();
                let res = create_user(&c, &scims[r], &auths[ti], "rep", k).await;
                let t1 = Instant::now();
                let ok = matches!(res, Ok((201, _)));
                if ok {
                    created_all.fetch_add(1, Ordering::Relaxed);
                }
                if t0 < warm_end || t1 > end {
                    continue;
                }
                match res {
                    Ok((201, _)) => {
                        rec.ok(t1 - t0);
                        per_replica[r] += 1;
                        per_tenant[ti] += 1;
                    }
                    Ok((st, body)) => {
                        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                        rec.fail(t1 - t0, format!("POST /Users on replica {r}, tenant {ti}: {st}: {text}"));
                    }
                    Err(e) => rec.fail(t1 - t0, e),
                }
            }
            (rec, per_replica, per_tenant)
        }));
    }
    let mut rec = Rec::default();
    let mut per_replica = vec![0u64; n];
    let mut per_tenant = vec![0u64; t];
    for task in tasks {
        if let Ok((r, pr, pt)) = task.await {
            rec.merge(r);
            for (a, b) in per_replica.iter_mut().zip(pr) {
                *a += b;
            }
            for (a, b) in per_tenant.iter_mut().zip(pt) {
                *a += b;
            }
        }
    }
    let cpu_end = (sys::cpu_jiffies(), servers.iter().map(|s| sys::cpu_secs(s.pid)).collect::<Vec<_>>(), sys::load1());
    let (cpu_start, scimd_cpu_start, load_warm) =
        cpu_at_warm.await.map_err(|e| format!("the CPU timer failed: {e}"))?;
    let load_end = sys::uptime_load();
    let secs = a.duration as f64;
    let fig = figures(&mut rec, secs);
    let busy = match (cpu_start, cpu_end.0) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0),
        _ => None,
    };
    let scimd_cpu: Option<f64> =
        scimd_cpu_start.iter().zip(&cpu_end.1).map(|(a, b)| a.zip(*b).map(|(a, b)| b - a)).sum();

    // What the database holds: every 201 is a stored user.
    let stored = {
        let mut total = 0u64;
        let mut positions = 0i64;
        for name in &names {
            let url = format!("{}/api/v1/tenants/{name}/Users?count=0", servers[0].admin);
            let resp = c
                .get(&url)
                .header("Authorization", format!("Bearer {key}"))
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
            total += v.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
            positions += v.get("position").and_then(Value::as_i64).unwrap_or(0);
        }
        (total, positions)
    };
    let created = created_all.load(Ordering::Relaxed);

    let header = [
        "server",
        "replicas",
        "tenants",
        "ops",
        "err",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU busy",
        "scimd CPU",
        "load",
        "per replica",
    ];
    let rows = vec![vec![
        a.name.clone(),
        n.to_string(),
        t.to_string(),
        fig.ops.to_string(),
        fig.errors.to_string(),
        format!("{:.0}", fig.per_sec),
        format!("{:.2}", fig.p50_ms),
        format!("{:.2}", fig.p99_ms),
        format!("{:.1}", fig.max_ms),
        busy.map_or("-".into(), |b| format!("{b:.0}%")),
        scimd_cpu.map_or("-".into(), |c| format!("{c:.1}s")),
        format!("{load_warm:.2}>{:.2}", cpu_end.2),
        per_replica.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
    ]];
    let mut out = format!(
        "\n{} replicas on PostgreSQL ({}) | POST /Users, concurrency {}, {}s after {}s warm-up | {}\nbefore: {load_start} | after: {load_end}\n\n",
        a.name,
        report::redact(&a.database),
        a.concurrency,
        a.duration,
        a.warmup,
        sys::cpu()
    );
    out += &report::table(&header, &rows, 1);
    out += &format!(
        "stored: {} users in {t} tenants for {created} creates answered 201 (warm-up included): {}\n",
        stored.0,
        if stored.0 == created { "all kept" } else { "MISMATCH" }
    );
    for e in &rec.samples {
        out += &format!("error sample: {e}\n");
    }
    print!("{out}");
    if let Some(path) = &a.json {
        let doc = json!({
            "bench": "replicas",
            "server": a.name,
            "scimd_bin": bin.display().to_string(),
            "machine": sys::cpu(),
            "load_before": load_start,
            "load_after": load_end,
            "replicas": n,
            "tenants": t,
            "concurrency": a.concurrency,
            "duration_s": a.duration,
            "warmup_s": a.warmup,
            "figures": fig_json(&fig),
            "machine_cpu_busy_pct": busy,
            "scimd_cpu_s": scimd_cpu,
            "per_replica": per_replica,
            "per_tenant": per_tenant,
            "created_201": created,
            "stored_users": stored.0,
            "feed_positions_sum": stored.1,
            "error_samples": rec.samples,
        });
        report::write_json(path, &doc)?;
    }
    drop(servers);
    Ok(())
}
