//! The scenarios: what an identity provider sends, one operation at a time, and the driver that
//! runs an operation from many tasks over one keep-alive connection pool.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::stats::{Rec, Shape};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SCIM_JSON: &str = "application/scim+json";

/// The first user number a `create` run makes: past any `--users`, and past what an earlier
/// run on the same database made (its start time in microseconds, times a thousand).
fn create_from() -> u64 {
    static FROM: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *FROM.get_or_init(|| {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0));
        1_000_000_000 + micros.saturating_mul(1_000)
    })
}

/// A scenario of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// Per user: filter by userName, then POST the full Entra body (N operations).
    InitialSync,
    /// `POST /Users` of a new user with the full Entra body, nothing else: the tails of writes
    /// (`p99.9`, requests over 100 ms). The users are numbered past `--users`.
    Create,
    /// `filter=userName eq "..."` on a random existing user.
    Lookup,
    /// `GET /Users/{id}` of a random existing user.
    Get,
    /// Paging through all users, `count` per page.
    List,
    /// Entra's PATCH mix on random users: 70% attribute changes, 20% manager, 10% disable.
    Incremental,
    /// Removing and adding back single members of a group of M members.
    GroupMembers,
    /// A second tenant's full-table searches against this tenant's point reads and creates, solo
    /// then under that noise (not in the default list; see `noisy.rs`).
    NoisyNeighbour,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::InitialSync => "initial-sync",
            Scenario::Create => "create",
            Scenario::Lookup => "lookup",
            Scenario::Get => "get",
            Scenario::List => "list",
            Scenario::Incremental => "incremental",
            Scenario::GroupMembers => "group-members",
            Scenario::NoisyNeighbour => "noisy-neighbour",
        }
    }
}

/// Everything an operation needs. One for scimd (or another SCIM server), one for the ceiling.
pub struct Ctx {
    pub client: reqwest::Client,
    /// `http://HOST:PORT/scim/v2`
    pub base: String,
    pub auth: String,
    /// Check statuses and bodies (scimd, peers); the ceiling only needs the status it was told.
    pub validate: bool,
    /// Users that exist: (number in userName, id).
    pub users: Vec<(u64, String)>,
    pub group: Option<String>,
    pub group_members: usize,
    pub page: u64,
    /// Filled by initial-sync: the id of user number i.
    pub synced: Mutex<Vec<Option<String>>>,
    /// How many users initial-sync created (the others existed already).
    pub created: AtomicU64,
}

pub fn user_name(i: u64) -> String {
    format!("user{i:07}@bench.example")
}

/// An Entra create body (the default mapping of CLIENTS.md) for user number `i`.
pub fn entra_user(i: u64) -> String {
    entra_user_value(i, &user_name(i), &format!("user{i:07}")).to_string()
}

/// The Entra create body of [`entra_user`] with another userName (also the work email) and
/// externalId.
pub fn entra_user_value(i: u64, un: &str, external_id: &str) -> serde_json::Value {
    serde_json::json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": external_id,
        "userName": un,
        "active": true,
        "displayName": format!("User {i}"),
        "title": "Site engineer",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": un}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("User {i}"), "familyName": format!("Family{i}"), "givenName": "User"},
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}],
        ENTERPRISE: {"employeeNumber": format!("{i}"), "department": "Ops"},
        "roles": []
    })
}

fn patch_body(ops: serde_json::Value) -> String {
    serde_json::json!({"schemas": [PATCH_OP], "Operations": ops}).to_string()
}

/// Entra's attribute-change PATCH (its `Replace` ops: title, enterprise department, the work
/// address's street, the mobile number); `i` varies the values.
pub fn entra_attribute_patch(i: u64) -> String {
    patch_body(serde_json::json!([
        {"op": "Replace", "path": "title", "value": format!("Title {}", i % 97)},
        {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": format!("Dept {}", i % 31)},
        {"op": "Replace", "path": "addresses[type eq \"work\"].streetAddress", "value": format!("{} Main St", i % 1000)},
        {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": format!("42555{:05}", i % 100_000)}
    ]))
}

/// The PATCH Entra sends in an incremental cycle; `i` picks the kind (70/20/10).
pub fn entra_patch(i: u64, manager: &str) -> (&'static str, String) {
    match i % 10 {
        0..=6 => ("attributes", entra_attribute_patch(i)),
        7 | 8 => (
            "manager",
            patch_body(serde_json::json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": manager}])),
        ),
        _ => ("disable", patch_body(serde_json::json!([{"op": "Replace", "path": "active", "value": "False"}]))),
    }
}

/// A small, fast, seedable generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if n == 0 { 0 } else { (v % n as u64) as usize }
    }
}

/// One worker's view: its random generator and what it saw of the responses.
struct Worker {
    rng: Rng,
    shape: Shape,
}

impl Ctx {
    async fn send(
        &self,
        w: &mut Worker,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut rb =
            self.client.request(method.clone(), url).header("Authorization", &self.auth).header("Accept", SCIM_JSON);
        if let Some(b) = body {
            rb = rb.header("Content-Type", SCIM_JSON).body(b);
        }
        let resp = rb.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
        w.shape.add(method.as_str(), status, bytes.len());
        Ok((status, bytes.to_vec()))
    }

    async fn expect(
        &self,
        w: &mut Worker,
        method: Method,
        url: &str,
        body: Option<String>,
        want: &[u16],
    ) -> Result<Vec<u8>, String> {
        let what = format!("{method} {url}");
        let (status, bytes) = self.send(w, method, url, body).await?;
        if self.validate && !want.contains(&status) {
            let text = String::from_utf8_lossy(&bytes);
            return Err(format!("{what}: {status} (wanted {want:?}): {}", text.chars().take(300).collect::<String>()));
        }
        if !self.validate && !(200..300).contains(&status) {
            return Err(format!("{what}: {status}"));
        }
        Ok(bytes)
    }

    fn filter_url(&self, i: u64) -> String {
        format!("{}/Users?filter=userName%20eq%20%22{}%22", self.base, user_name(i))
    }

    fn pick<'a>(&'a self, w: &mut Worker) -> Result<&'a (u64, String), String> {
        self.users.get(w.rng.below(self.users.len())).ok_or_else(|| "no users to work on".to_owned())
    }

    /// Runs operation `i` of `sc`; returns the label its latency is recorded under.
    async fn op(&self, sc: Scenario, i: u64, w: &mut Worker) -> (&'static str, Result<(), String>) {
        match sc {
            Scenario::InitialSync => ("user", self.sync_one(i, w).await),
            Scenario::Create => {
                let url = format!("{}/Users", self.base);
                let r = self.expect(w, Method::POST, &url, Some(entra_user(create_from() + i)), &[201]).await;
                ("POST", r.map(drop))
            }
            Scenario::Lookup => {
                let r = async {
                    let (n, _) = self.pick(w)?;
                    let url = self.filter_url(*n);
                    let body = self.expect(w, Method::GET, &url, None, &[200]).await?;
                    if self.validate && !has_total(&body, 1) {
                        return Err(format!("GET {url}: totalResults is not 1"));
                    }
                    Ok(())
                }
                .await;
                ("", r)
            }
            Scenario::Get => {
                let r = async {
                    let (_, id) = self.pick(w)?;
                    let url = format!("{}/Users/{id}", self.base);
                    self.expect(w, Method::GET, &url, None, &[200]).await.map(drop)
                }
                .await;
                ("", r)
            }
            Scenario::List => {
                let url = format!("{}/Users?startIndex={}&count={}", self.base, i * self.page + 1, self.page);
                let r = self.expect(w, Method::GET, &url, None, &[200]).await.and_then(|b| {
                    if self.validate && !contains(&b, b"\"Resources\":[{") {
                        Err(format!("GET {url}: an empty page"))
                    } else {
                        Ok(())
                    }
                });
                ("page", r)
            }
            Scenario::Incremental => {
                let picked = self.pick(w).map(|(_, id)| id.clone());
                let manager = self.pick(w).map(|(_, id)| id.clone());
                match (picked, manager) {
                    (Ok(id), Ok(manager)) => {
                        let (label, body) = entra_patch(i, &manager);
                        let url = format!("{}/Users/{id}", self.base);
                        (label, self.expect(w, Method::PATCH, &url, Some(body), &[200]).await.map(drop))
                    }
                    (Err(e), _) | (_, Err(e)) => ("attributes", Err(e)),
                }
            }
            Scenario::NoisyNeighbour => ("", Err("noisy-neighbour has its own driver".into())),
            Scenario::GroupMembers => {
                let Some(g) = &self.group else { return ("add", Err("no group".into())) };
                let m = self.group_members.min(self.users.len()).max(1);
                let Some((_, member)) = self.users.get(((i / 2) as usize) % m) else {
                    return ("add", Err("no users".into()));
                };
                let url = format!("{}/Groups/{g}", self.base);
                let (label, body) = if i % 2 == 0 {
                    ("remove", member_patch("Remove", std::slice::from_ref(member)))
                } else {
                    ("add", member_patch("Add", std::slice::from_ref(member)))
                };
                (label, self.expect(w, Method::PATCH, &url, Some(body), &[204, 200]).await.map(drop))
            }
        }
    }

    async fn sync_one(&self, i: u64, w: &mut Worker) -> Result<(), String> {
        let url = self.filter_url(i);
        let found = self.expect(w, Method::GET, &url, None, &[200]).await?;
        let existing = if self.validate {
            let v: serde_json::Value =
                serde_json::from_slice(&found).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
            match v.get("totalResults").and_then(serde_json::Value::as_u64) {
                Some(0) => None,
                Some(1) => v["Resources"][0]["id"].as_str().map(str::to_owned),
                other => return Err(format!("GET {url}: totalResults {other:?}")),
            }
        } else {
            None
        };
        let id = match existing {
            Some(id) => id,
            None => {
                let url = format!("{}/Users", self.base);
                let created = self.expect(w, Method::POST, &url, Some(entra_user(i)), &[201]).await?;
                if !self.validate {
                    return Ok(());
                }
                self.created.fetch_add(1, Ordering::Relaxed);
                let v: serde_json::Value =
                    serde_json::from_slice(&created).map_err(|e| format!("POST {url}: not JSON: {e}"))?;
                v.get("id").and_then(serde_json::Value::as_str).map(str::to_owned).ok_or("POST: no id")?
            }
        };
        if let Ok(mut s) = self.synced.lock() {
            if let Some(slot) = s.get_mut(i as usize) {
                *slot = Some(id);
            }
        }
        Ok(())
    }
}

pub fn member_patch(op: &str, ids: &[String]) -> String {
    let values: Vec<serde_json::Value> = if op == "Add" {
        ids.iter().map(|id| serde_json::json!({"$ref": null, "value": id})).collect()
    } else {
        ids.iter().map(|id| serde_json::json!({"value": id})).collect()
    };
    patch_body(serde_json::json!([{"op": op, "path": "members", "value": values}]))
}

pub fn group_body(name: &str) -> String {
    serde_json::json!({"schemas": [GROUP], "displayName": name}).to_string()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether a list response says `"totalResults":n` (without parsing it all).
pub fn has_total(body: &[u8], n: u64) -> bool {
    let a = format!("\"totalResults\":{n},");
    let b = format!("\"totalResults\":{n}}}");
    contains(body, a.as_bytes()) || contains(body, b.as_bytes())
}

/// What a scenario run gives back.
pub struct Outcome {
    pub labels: BTreeMap<&'static str, Rec>,
    pub shape: Shape,
    pub secs: f64,
    /// Whether it stopped on its time limit before finishing its operations.
    pub timed_out: bool,
}

/// Runs up to `total` operations of `sc` from `concurrency` tasks, for at most `limit`.
pub async fn drive(
    ctx: Arc<Ctx>,
    sc: Scenario,
    total: u64,
    limit: Duration,
    concurrency: usize,
    title: String,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::new();
    for t in 0..concurrency.max(1) {
        let (ctx, next, done, errors) = (Arc::clone(&ctx), Arc::clone(&next), Arc::clone(&done), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut w = Worker { rng: Rng::new(t as u64 + 1), shape: Shape::default() };
            let mut recs: BTreeMap<&'static str, Rec> = BTreeMap::new();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t0 = Instant::now();
                let (label, r) = ctx.op(sc, i, &mut w).await;
                let d = t0.elapsed();
                let rec = recs.entry(label).or_default();
                match r {
                    Ok(()) => rec.ok(d),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        rec.fail(d, e);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (recs, w.shape)
        }));
    }
    let finished = Arc::new(AtomicBool::new(false));
    let progress = {
        let (done, errors, finished) = (Arc::clone(&done), Arc::clone(&errors), Arc::clone(&finished));
        tokio::spawn(async move {
            let mut last = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            while !finished.load(Ordering::Relaxed) {
                tick.tick().await;
                let d = done.load(Ordering::Relaxed);
                let mut line = String::new();
                let _ = write!(
                    line,
                    "  {title}: {d}/{total} ops, {:.0}/s now, {} errors, {:.0}s",
                    (d - last) as f64 / 2.0,
                    errors.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
                last = d;
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        })
    };
    let mut labels: BTreeMap<&'static str, Rec> = BTreeMap::new();
    let mut shape = Shape::default();
    for t in tasks {
        if let Ok((recs, s)) = t.await {
            for (k, v) in recs {
                labels.entry(k).or_default().merge(v);
            }
            shape.merge(s);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    finished.store(true, Ordering::Relaxed);
    progress.abort();
    let timed_out = next.load(Ordering::Relaxed) < total;
    Outcome { labels, shape, secs, timed_out }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json() {
        let u: serde_json::Value = serde_json::from_str(&entra_user(42)).unwrap();
        assert_eq!(u["userName"], "user0000042@bench.example");
        for i in 0..10 {
            let (_, p) = entra_patch(i, "m");
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            assert!(v["Operations"].is_array());
        }
    }

    #[test]
    fn total_is_found_without_parsing() {
        assert!(has_total(br#"{"totalResults":1,"x":2}"#, 1));
        assert!(has_total(br#"{"x":2,"totalResults":1}"#, 1));
        assert!(!has_total(br#"{"totalResults":10}"#, 1));
    }

    #[test]
    fn the_patch_mix_is_70_20_10() {
        let mut n = BTreeMap::new();
        for i in 0..100 {
            *n.entry(entra_patch(i, "m").0).or_insert(0) += 1;
        }
        assert_eq!(n["attributes"], 70);
        assert_eq!(n["manager"], 20);
        assert_eq!(n["disable"], 10);
    }
}
