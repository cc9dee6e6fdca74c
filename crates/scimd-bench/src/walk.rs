//! The list scenario's walks (`--list-walk index|cursor`): each task pages through the users
//! sequentially, as an identity provider's import does, instead of the sweep's pages handed
//! out to whichever task is free.
//!
//! - `index`: `GET /Users?startIndex=k&count=N`, then `k + N`, ... Task j of C starts at
//!   `--list-from` + j × (the users after it / C), so the walks cover the tenant's depth.
//! - `cursor`: `GET /Users?cursor&count=N`, then `cursor=<nextCursor>`, ... (RFC 9865). With
//!   `--list-from` K > 1, a task first goes to depth K by cursor in pages of 1,000, not timed
//!   (the time limit starts after it), then times its walk from there.
//!
//! Every page's latency is recorded (label `index` or `cursor`); a page without resources
//! before the end, or a wrong status, is an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenario::{Ctx, Outcome};
use crate::stats::{Rec, Shape};

/// How the list scenario pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListWalk {
    /// Pages handed out in order to whichever task is free (the default).
    Sweep,
    /// Each task walks by startIndex.
    Index,
    /// Each task walks by cursor.
    Cursor,
}

/// What a walk needs.
pub struct Walk {
    pub kind: ListWalk,
    /// 1-based index of the first timed page.
    pub from: u64,
    pub page: u64,
    pub tasks: usize,
    pub limit: Duration,
    /// Appended to every page's query string (e.g. `&sortBy=userName`).
    pub extra: String,
}

async fn get(ctx: &Ctx, shape: &mut Shape, url: &str) -> Result<serde_json::Value, String> {
    let resp = ctx
        .client
        .get(url)
        .header("Authorization", &ctx.auth)
        .header("Accept", "application/scim+json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    shape.add("GET", status, bytes.len());
    if status != 200 {
        return Err(format!("GET {url}: {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

fn items(v: &serde_json::Value) -> u64 {
    v.get("Resources").and_then(serde_json::Value::as_array).map_or(0, |r| r.len() as u64)
}

/// How many users the tenant has (`count=0`).
pub async fn total(ctx: &Ctx) -> Result<u64, String> {
    let v = get(ctx, &mut Shape::default(), &format!("{}/Users?count=0", ctx.base)).await?;
    v.get("totalResults").and_then(serde_json::Value::as_u64).ok_or_else(|| "no totalResults".to_owned())
}

/// Runs the walks; the outcome has one label, the walk's kind.
pub async fn run(ctx: Arc<Ctx>, w: Walk, title: String) -> Result<Outcome, String> {
    let users = total(&ctx).await?;
    let label: &'static str = if w.kind == ListWalk::Cursor { "cursor" } else { "index" };
    let tasks = w.tasks.max(1) as u64;
    let from = w.from.max(1);
    let span = users.saturating_sub(from - 1) / tasks;
    eprintln!("  {title}: {users} users, {tasks} walks of pages of {} from {from}", w.page);
    let mut handles = Vec::new();
    let limit = w.limit;
    for t in 0..tasks {
        let ctx = Arc::clone(&ctx);
        let (kind, page, extra) = (w.kind, w.page.max(1), w.extra.clone());
        let first = if kind == ListWalk::Index { from + t * (span / page) * page } else { from };
        let end = if kind == ListWalk::Index && t + 1 < tasks { first + (span / page) * page } else { users + 1 };
        handles.push(tokio::spawn(async move {
            let mut rec = Rec::default();
            let mut shape = Shape::default();
            let mut done = true;
            let mut timed = Instant::now();
            let mut deadline = timed + limit;
            match kind {
                ListWalk::Index | ListWalk::Sweep => {
                    let mut k = first;
                    while k < end {
                        if Instant::now() >= deadline {
                            done = false;
                            break;
                        }
                        let url = format!("{}/Users?startIndex={k}&count={page}{extra}", ctx.base);
                        let t0 = Instant::now();
                        match get(&ctx, &mut shape, &url).await {
                            Ok(v) if items(&v) > 0 => rec.ok(t0.elapsed()),
                            Ok(_) => rec.fail(t0.elapsed(), format!("GET {url}: an empty page")),
                            Err(e) => rec.fail(t0.elapsed(), e),
                        }
                        k += page;
                    }
                }
                ListWalk::Cursor => {
                    // Untimed, to depth `first` by pages of 1,000.
                    let mut cursor = String::new();
                    let mut seen = 0u64;
                    while seen + 1000 < first {
                        let url = format!("{}/Users?count=1000&cursor={cursor}{extra}", ctx.base);
                        match get(&ctx, &mut Shape::default(), &url).await {
                            Ok(v) => {
                                seen += items(&v);
                                match v.get("nextCursor").and_then(serde_json::Value::as_str) {
                                    Some(c) => cursor = c.to_owned(),
                                    None => break,
                                }
                            }
                            Err(e) => {
                                rec.fail(Duration::ZERO, e);
                                return (rec, shape, false, Duration::ZERO);
                            }
                        }
                    }
                    // The time limit counts from here.
                    timed = Instant::now();
                    deadline = timed + limit;
                    loop {
                        if Instant::now() >= deadline {
                            done = false;
                            break;
                        }
                        let url = format!("{}/Users?count={page}&cursor={cursor}{extra}", ctx.base);
                        let t0 = Instant::now();
                        match get(&ctx, &mut shape, &url).await {
                            Ok(v) => {
                                let d = t0.elapsed();
                                if items(&v) == 0 {
                                    rec.fail(d, format!("GET {url}: an empty page"));
                                } else {
                                    rec.ok(d);
                                }
                                match v.get("nextCursor").and_then(serde_json::Value::as_str) {
                                    Some(c) => cursor = c.to_owned(),
                                    None => break,
                                }
                            }
                            Err(e) => {
                                rec.fail(t0.elapsed(), e);
                                break;
                            }
                        }
                    }
                }
            }
            (rec, shape, done, timed.elapsed())
        }));
    }
    let mut labels: BTreeMap<&'static str, Rec> = BTreeMap::new();
    let mut shape = Shape::default();
    let mut timed_out = false;
    let mut secs = 0f64;
    for h in handles {
        let (rec, s, done, took) = h.await.map_err(|e| format!("a walk failed: {e}"))?;
        labels.entry(label).or_default().merge(rec);
        shape.merge(s);
        timed_out |= !done;
        secs = secs.max(took.as_secs_f64());
    }
    // The timed part only (a cursor walk first goes to its depth untimed).
    Ok(Outcome { labels, shape, secs, timed_out })
}
