//! Push: webhooks with real HTTP receivers started by the tests.
//!
//! Each receiver is a small axum server on 127.0.0.1:0 that records every request (headers,
//! body, arrival time, and what it answered) and answers a switchable status after a switchable
//! delay. Signatures are verified here from the documented recipe (DESIGN.md, Events) with
//! `hmac`/`sha2` directly, not only with `scimd::webhooks::signature`.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use reqwest::Method;
use scimd::webhooks::DeliverySettings;
use serde_json::{Value, json};

use super::cli::{Db, Server, free_port, wait_healthy};
use super::common::*;

/// How long a test waits for deliveries before it fails.
const WAIT: Duration = Duration::from_secs(30);

const CREATE: &str = "urn:ietf:params:scim:event:prov:create:full";
const PATCH: &str = "urn:ietf:params:scim:event:prov:patch:full";
const PUT: &str = "urn:ietf:params:scim:event:prov:put:full";
const DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
const DEACTIVATE: &str = "urn:ietf:params:scim:event:prov:deactivate";

// ---------------------------------------------------------------- the receiver

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: String,
    /// What the receiver answered (after `delay`).
    status: u16,
    /// How long it took to answer.
    delay: Duration,
    /// When the request arrived.
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no {name} header: {self:?}"))
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// `webhook-id`.
    fn id(&self) -> String {
        self.header("webhook-id").to_owned()
    }
    fn seq(&self) -> i64 {
        self.json()["seq"].as_i64().unwrap()
    }
    fn tenant(&self) -> String {
        self.json()["tenant"].as_str().unwrap().to_owned()
    }
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A receiver on a random port. It answers `status` after `delay_ms`, except for the next
/// `fail_next` requests, which get `fail_status`.
#[derive(Clone)]
pub(super) struct Receiver {
    pub(super) url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    fail_next: Arc<AtomicUsize>,
    fail_status: Arc<AtomicU16>,
}

pub(super) async fn receiver() -> Receiver {
    let mut r = Receiver {
        url: String::new(),
        hits: Arc::default(),
        status: Arc::new(AtomicU16::new(200)),
        delay_ms: Arc::new(AtomicU64::new(0)),
        fail_next: Arc::new(AtomicUsize::new(0)),
        fail_status: Arc::new(AtomicU16::new(503)),
    };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let s = state.clone();
            async move {
                let at = Instant::now();
                let failing =
                    s.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                let status =
                    if failing { s.fail_status.load(Ordering::SeqCst) } else { s.status.load(Ordering::SeqCst) };
                let delay = Duration::from_millis(s.delay_ms.load(Ordering::SeqCst));
                s.hits.lock().unwrap().push(Hit { headers, body, status, delay, at });
                tokio::time::sleep(delay).await;
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    r.url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    r
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    pub(super) fn len(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
    pub(super) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
    fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
    /// The next `n` requests get `status`.
    fn fail_next(&self, n: usize, status: u16) {
        self.fail_status.store(status, Ordering::SeqCst);
        self.fail_next.store(n, Ordering::SeqCst);
    }
    /// Waits until the receiver got `n` requests or more (for at most [`WAIT`]).
    pub(super) async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.len() < n {
            assert!(Instant::now() < deadline, "the receiver got {} requests within {WAIT:?}, not {n}", self.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    /// Waits until `f` holds of what the receiver got (for at most `within`).
    async fn wait_until(&self, what: &str, within: Duration, f: impl Fn(&[Hit]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if f(&self.hits()) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}; got {}", self.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- signatures, by the recipe

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The HMAC key of a `whsec_` secret: its base64-decoded part.
fn key_of(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or_else(|| panic!("not a whsec_ secret: {secret}"));
    let key = STANDARD.decode(b64).unwrap();
    assert!(key.len() >= 24, "a signing key of {} bytes", key.len());
    key
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, computed here.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let mac = hmac_sha256(&key_of(secret), format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac))
}

/// The signatures of `webhook-signature`, space-separated.
fn signatures(hit: &Hit) -> Vec<String> {
    hit.header("webhook-signature").split(' ').map(str::to_owned).collect()
}

/// Whether one of the request's signatures is `secret`'s (the receiver's check).
fn signed_by(hit: &Hit, secret: &str) -> bool {
    let expected = expected_signature(secret, hit.header("webhook-id"), hit.header("webhook-timestamp"), &hit.body);
    signatures(hit).contains(&expected)
}

/// Asserts what every delivery carries: `webhook-id`, a recent `webhook-timestamp`, and a
/// signature by `secret` (the recipe's, and the same as `scimd::webhooks::signature`'s).
fn assert_signed(hit: &Hit, secret: &str) {
    let (id, ts) = (hit.header("webhook-id"), hit.header("webhook-timestamp"));
    let ts_n: i64 = ts.parse().unwrap_or_else(|_| panic!("webhook-timestamp is Unix seconds: {ts}"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - ts_n).abs() <= 60, "webhook-timestamp {ts_n} is not near now ({now})");
    assert!(signed_by(hit, secret), "no signature by the secret: {:?}", hit.header("webhook-signature"));
    let theirs = scimd::webhooks::signature(secret, id, ts_n, &hit.body).unwrap();
    assert_eq!(theirs, expected_signature(secret, id, ts, &hit.body), "scimd::webhooks::signature and the recipe");
}

// ---------------------------------------------------------------- the vendor API

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("hooks".into()), time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

/// The vendor API of a test server.
struct Api {
    client: reqwest::Client,
    admin: String,
    key: String,
}

/// A webhook just added: its id, its secret and the view the API answered.
struct Hook {
    id: String,
    secret: String,
    view: Value,
}

impl Hook {
    /// Its delivery position for `tenant` when it was added.
    fn position(&self, tenant: &str) -> i64 {
        delivery_of(&self.view, tenant)["position"].as_i64().unwrap()
    }
}

fn delivery_of(view: &Value, tenant: &str) -> Value {
    view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["tenant"] == tenant)
        .unwrap_or_else(|| panic!("no delivery for {tenant}: {view}"))
        .clone()
}

impl Api {
    /// The API of `app`, once contoso's first events (`tenant.created`, `tenant.token_created`)
    /// are numbered.
    async fn new(app: &TestApp) -> Api {
        let api = Api { client: app.client.clone(), admin: app.admin.clone(), key: api_key(app).await };
        api.quiesce("contoso", 2).await;
        api
    }

    /// Waits until `tenant`'s first `n` events are numbered. On PostgreSQL events are numbered
    /// just after their commit, and a webhook starts at the feed position numbered when it is
    /// added: without this, one added right after a tenant's creation may also get the
    /// tenant's first events (see the report of these tests).
    async fn quiesce(&self, tenant: &str, n: usize) {
        self.feed_of_at_least(tenant, 0, n).await;
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}/api/v1{path}", self.admin)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let bytes = r.bytes().await.unwrap();
        let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, v)
    }

    async fn add(&self, body: Value) -> Hook {
        let (status, v) = self.call(Method::POST, "/webhooks", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let secret = v["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{v}");
        Hook { id: v["id"].as_str().unwrap().to_owned(), secret, view: v }
    }

    async fn show(&self, id: &str) -> Value {
        let (status, v) = self.call(Method::GET, &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(v.get("secret").is_none(), "GET shows the secret: {v}");
        v
    }

    async fn delivery(&self, id: &str, tenant: &str) -> Value {
        delivery_of(&self.show(id).await, tenant)
    }

    /// Waits until `tenant`'s delivery to webhook `id` satisfies `f`; returns it.
    async fn wait_delivery(&self, id: &str, tenant: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let d = self.delivery(id, tenant).await;
            if f(&d) {
                return d;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the delivery: {d}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The events of `tenant`'s feed after `after`.
    async fn feed(&self, tenant: &str, after: i64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut at = after;
        loop {
            let (status, page) =
                self.call(Method::GET, &format!("/tenants/{tenant}/events?after={at}&limit=1000"), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let events = page["events"].as_array().unwrap();
            if events.is_empty() {
                return out;
            }
            out.extend(events.iter().cloned());
            at = page["position"].as_i64().unwrap();
        }
    }

    /// The feed after `after` once it holds `n` events or more (on PostgreSQL events are
    /// numbered just after their commit).
    async fn feed_of_at_least(&self, tenant: &str, after: i64, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let feed = self.feed(tenant, after).await;
            if feed.len() >= n {
                return feed;
            }
            assert!(Instant::now() < deadline, "{tenant}'s feed after {after} has {} events, not {n}", feed.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- SCIM writers

/// A SCIM client of one tenant on one server (cheap to clone into tasks).
#[derive(Clone)]
struct Writer {
    client: reqwest::Client,
    scim: String,
    token: String,
}

impl Writer {
    fn of(app: &TestApp) -> Writer {
        Writer { client: app.client.clone(), scim: app.scim.clone(), token: app.token.clone() }
    }

    fn at(scim: &str, token: &str) -> Writer {
        Writer { client: reqwest::Client::new(), scim: scim.to_owned(), token: token.to_owned() }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.scim)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", SCIM).body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let bytes = r.bytes().await.unwrap();
        let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, v)
    }

    /// Creates user `name`; returns its id.
    async fn user(&self, name: &str) -> String {
        let (status, v) = self.send(Method::POST, "/Users", Some(&json!({"userName": name}))).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Replaces a user's displayName; asserts 200.
    async fn rename(&self, id: &str, display: &str) {
        let body = patch_op(json!([{"op": "replace", "path": "displayName", "value": display}]));
        let (status, v) = self.send(Method::PATCH, &format!("/Users/{id}"), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
}

/// Runs `tasks` writers at once; each creates `users` users and renames each; returns the
/// number of writes (each one event).
async fn write_concurrently(w: &Writer, prefix: &str, tasks: usize, users: usize) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let w = w.clone();
        let prefix = prefix.to_owned();
        set.spawn(async move {
            for i in 0..users {
                let id = w.user(&format!("{prefix}-{t}-{i}@example.com")).await;
                w.rename(&id, &format!("{prefix} {t} {i}")).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    tasks * users * 2
}

/// Asserts that the requests of `tenant` among `hits` are exactly the feed `feed` (the events
/// after position `after`), in order: seq `after + 1`, `after + 2`, ... with the feed's ids.
fn assert_exactly_the_feed(hits: &[Hit], tenant: &str, after: i64, feed: &[Value]) {
    let got: Vec<&Hit> = hits.iter().filter(|h| h.tenant() == tenant).collect();
    let seqs: Vec<i64> = got.iter().map(|h| h.seq()).collect();
    let want: Vec<i64> = (after + 1..=after + feed.len() as i64).collect();
    assert_eq!(seqs, want, "{tenant}: seq strictly increasing by 1 from {after}, no gap, no duplicate");
    let ids: Vec<String> = got.iter().map(|h| h.id()).collect();
    let feed_ids: Vec<String> = feed.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, feed_ids, "{tenant}: the feed's events, as the feed has them");
    for (h, e) in got.iter().zip(feed) {
        assert_eq!(&h.json(), e, "the body is the feed's event");
    }
}

fn fast_retries() -> DeliverySettings {
    DeliverySettings {
        first_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        lease: Duration::from_secs(10),
        retry_for: Duration::from_secs(3600),
        concurrency: 8,
    }
}

/// Short pause to let anything that should not arrive arrive (never the only synchronisation).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------- ordering

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receives_each_event_once_in_order_signed_as_standard_webhooks_say() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    for i in 0..20 {
        app.user(&format!("u{i}@contoso.com")).await;
    }
    recv.wait_for(20).await;
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), 20, "each event once");
    let feed = api.feed("contoso", start).await;
    assert_exactly_the_feed(&hits, "contoso", start, &feed);
    for h in &hits {
        assert_signed(h, &hook.secret);
        assert_eq!(h.json()["id"], json!(h.id()));
        assert_eq!(h.header("content-type"), "application/json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenants_events_arrive_in_seq_order_without_gap_or_duplicate_under_concurrent_writes() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    let w = Writer::of(&app);
    // Creates and renames by 8 writers at once, and 8 more renaming one shared user.
    let shared = w.user("shared@contoso.com").await;
    let mut writes = 1;
    let renames = {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..8 {
            let (w, shared) = (w.clone(), shared.clone());
            set.spawn(async move {
                for i in 0..3 {
                    w.rename(&shared, &format!("shared {t} {i}")).await;
                }
            });
        }
        set
    };
    writes += write_concurrently(&w, "c", 8, 6).await;
    renames.join_all().await;
    writes += 8 * 3;
    let feed = api.feed_of_at_least("contoso", start, writes).await;
    assert_eq!(feed.len(), writes, "one event per write: {feed:#?}");
    recv.wait_for(writes).await;
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), writes, "each event delivered once");
    assert_exactly_the_feed(&hits, "contoso", start, &feed);
    assert!(hits.iter().all(Hit::ok));
    let d = api.wait_delivery(&hook.id, "contoso", "backlog 0", |d| d["backlog"] == 0).await;
    assert_eq!(d["position"], json!(start + writes as i64), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_all_tenants_webhook_keeps_each_tenants_order_when_tenants_are_written_concurrently() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "allTenants": true})).await;
    assert!(hook.view["tenant"].is_null(), "{}", hook.view);
    let start = hook.position("contoso");
    // A tenant made after the webhook: delivered from the start of its feed.
    let (_, fabrikam_token) = add_tenant(&app.store, "fabrikam", &[]).await;
    let contoso = Writer::of(&app);
    let fabrikam = Writer::at(&app.scim, &fabrikam_token);
    let (a, b) = tokio::join!(write_concurrently(&contoso, "c", 4, 6), write_concurrently(&fabrikam, "f", 4, 6));
    let feed_c = api.feed_of_at_least("contoso", start, a).await;
    // fabrikam: tenant.created, tenant.token_created, then the writes.
    let feed_f = api.feed_of_at_least("fabrikam", 0, b + 2).await;
    assert_eq!((feed_c.len(), feed_f.len()), (a, b + 2));
    assert_eq!(feed_f[0]["type"], "tenant.created");
    recv.wait_for(a + b + 2).await;
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), a + b + 2, "each event of each tenant once");
    assert_exactly_the_feed(&hits, "contoso", start, &feed_c);
    assert_exactly_the_feed(&hits, "fabrikam", 0, &feed_f);
    // Both tenants' deliveries show up in the webhook's state.
    let view = api.show(&hook.id).await;
    let tenants: HashSet<&str> =
        view["deliveries"].as_array().unwrap().iter().map(|d| d["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants, HashSet::from(["contoso", "fabrikam"]), "{view}");
}

// ---------------------------------------------------------------- failures and retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_same_event_again_until_it_answers_2xx_then_the_rest_in_order() {
    let app = spawn_app_with_delivery(fast_retries()).await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    recv.fail_next(3, 503);
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    for i in 0..5 {
        app.user(&format!("r{i}@contoso.com")).await;
    }
    // While it fails: the state says so.
    let failing = api
        .wait_delivery(&hook.id, "contoso", "a failure recorded", |d| d["consecutiveFailures"].as_i64() >= Some(1))
        .await;
    assert_eq!(failing["lastOutcome"], "503", "{failing}");
    assert_eq!(failing["position"], json!(start), "nothing acknowledged yet: {failing}");
    assert!(failing["backlog"].as_i64().unwrap() >= 1, "{failing}");
    assert!(failing["nextAttempt"].is_string(), "a retry is scheduled: {failing}");
    assert!(failing["lastAttempt"].is_string(), "{failing}");
    assert_eq!(failing["failed"], false, "{failing}");
    // Then it recovers: everything arrives, and the state is reset.
    let done = api
        .wait_delivery(&hook.id, "contoso", "recovery", |d| d["backlog"] == 0 && d["consecutiveFailures"] == 0)
        .await;
    assert_eq!(done["position"], json!(start + 5), "{done}");
    assert_eq!(done["lastOutcome"], "200", "{done}");
    assert!(done["nextAttempt"].is_null(), "{done}");
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), 3 + 5, "3 refused attempts, then each event once: {hits:#?}");
    let first = hits[0].id();
    for h in &hits[..3] {
        assert_eq!((h.status, h.id()), (503, first.clone()), "the refused attempts are all of the first event");
    }
    assert_eq!(hits[3].id(), first, "the refused event is sent again, first");
    let ok: Vec<Hit> = hits.iter().filter(|h| h.ok()).cloned().collect();
    assert_eq!(ok.len(), 5);
    assert_exactly_the_feed(&ok, "contoso", start, &api.feed("contoso", start).await);
    // Back-off: the retries were spaced (first_backoff 50 ms, doubling), not a hot loop.
    let gaps: Vec<Duration> = hits[..4].windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(20)), "retries without back-off: {gaps:?}");
    for h in &hits {
        assert_signed(h, &hook.secret);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_times_out_is_retried_while_scim_requests_stay_fast() {
    let timeout = Duration::from_millis(300);
    let app = spawn_app_with_delivery(DeliverySettings { timeout, ..fast_retries() }).await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    recv.set_delay(3_000);
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    app.user("first@contoso.com").await;
    recv.wait_for(1).await;
    // The receiver hangs on the first event: SCIM writes of the same tenant are not held up.
    let mut latencies = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        app.user(&format!("meanwhile{i}@contoso.com")).await;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    assert!(latencies[2] < timeout / 3, "SCIM POST latency (sorted) while the receiver hangs: {latencies:?}");
    assert!(latencies[4] < timeout, "SCIM POST latency (sorted) while the receiver hangs: {latencies:?}");
    let d = api.wait_delivery(&hook.id, "contoso", "a timeout recorded", |d| d["lastOutcome"] == "timeout").await;
    assert!(d["consecutiveFailures"].as_i64().unwrap() >= 1, "{d}");
    assert_eq!(d["position"], json!(start), "{d}");
    assert!(d["nextAttempt"].is_string(), "{d}");
    // It is retried (the same event), and once the receiver answers in time, all arrive.
    recv.wait_until("a retry of the first event", WAIT, |h| h.len() >= 2).await;
    let hits = recv.hits();
    assert_eq!(hits[1].id(), hits[0].id(), "the timed-out event is retried first");
    recv.set_delay(0);
    let d = api
        .wait_delivery(&hook.id, "contoso", "recovery", |d| d["backlog"] == 0 && d["consecutiveFailures"] == 0)
        .await;
    assert_eq!((d["position"].as_i64(), &d["lastOutcome"]), (Some(start + 6), &json!("200")), "{d}");
    settle().await;
    let answered: Vec<Hit> = recv.hits().into_iter().filter(|h| h.delay < timeout).collect();
    assert_exactly_the_feed(&answered, "contoso", start, &api.feed("contoso", start).await);
    assert!(recv.hits().iter().filter(|h| h.delay >= timeout).all(|h| h.id() == hits[0].id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_keeps_failing_gives_up_after_the_retry_period_and_a_replay_resumes_it() {
    let app =
        spawn_app_with_delivery(DeliverySettings { retry_for: Duration::from_millis(300), ..fast_retries() }).await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    recv.set_status(500);
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    app.user("a@contoso.com").await;
    app.user("b@contoso.com").await;
    let d = api.wait_delivery(&hook.id, "contoso", "failed", |d| d["failed"] == true).await;
    assert_eq!(d["lastOutcome"], "500", "{d}");
    assert!(d["nextAttempt"].is_null(), "no retry once given up: {d}");
    assert_eq!(d["position"], json!(start), "{d}");
    let attempts = recv.len();
    // Given up: nothing more is sent, even when new events come.
    app.user("c@contoso.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(recv.len(), attempts, "a failed delivery is not attempted again");
    // A replay from the undelivered position resumes it.
    recv.set_status(200);
    let (status, v) =
        api.call(Method::POST, &format!("/webhooks/{}/replay", hook.id), Some(&json!({"from": start + 1}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(delivery_of(&v, "contoso")["failed"], false, "{v}");
    api.wait_delivery(&hook.id, "contoso", "resumed", |d| d["backlog"] == 0 && d["failed"] == false).await;
    let ok: Vec<Hit> = recv.hits().into_iter().filter(Hit::ok).collect();
    assert_exactly_the_feed(&ok, "contoso", start, &api.feed("contoso", start).await);
}

// ---------------------------------------------------------------- signing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_the_documented_recipe_and_carry_both_signatures_after_a_rotation() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    app.user("sig1@contoso.com").await;
    app.user("sig2@contoso.com").await;
    recv.wait_for(2).await;
    for h in recv.hits() {
        assert_signed(&h, &hook.secret);
        assert_eq!(signatures(&h).len(), 1, "one signature before any rotation");
        assert_eq!(h.json()["id"], json!(h.id()), "webhook-id is the event id");
        // The recipe catches a changed body, id or timestamp.
        let mut forged = h.clone();
        forged.body = forged.body.replacen("sig", "SIG", 1);
        assert!(!signed_by(&forged, &hook.secret));
        assert!(!signed_by(&h, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
        let sig = expected_signature(&hook.secret, &h.id(), &(ts + 1).to_string(), &h.body);
        assert!(!signatures(&h).contains(&sig));
    }
    let (status, rotated) =
        api.call(Method::POST, &format!("/webhooks/{}/rotate-secret", hook.id), Some(&json!({"overlap": "1h"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != hook.secret, "{rotated}");
    assert!(rotated["previousSecretUntil"].is_string(), "{rotated}");
    assert!(api.show(&hook.id).await["previousSecretUntil"].is_string());
    app.user("sig3@contoso.com").await;
    recv.wait_for(3).await;
    let h = &recv.hits()[2];
    let sigs = signatures(h);
    assert_eq!(sigs.len(), 2, "two space-separated signatures during the overlap: {sigs:?}");
    assert!(sigs.iter().all(|s| s.starts_with("v1,")), "{sigs:?}");
    let ts = h.header("webhook-timestamp");
    let by_new = expected_signature(&new_secret, &h.id(), ts, &h.body);
    let by_old = expected_signature(&hook.secret, &h.id(), ts, &h.body);
    assert!(sigs.contains(&by_new) && sigs.contains(&by_old), "one per secret: {sigs:?}");
    assert_signed(h, &new_secret);
}

/// A receiver that switches to the new secret as soon as the rotation answered must find the
/// new secret's signature on what is sent from then on, also when a backlog was being
/// delivered at that moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_takes_effect_for_a_delivery_already_under_way() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    recv.set_delay(40);
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    for i in 0..20 {
        app.user(&format!("rot{i}@contoso.com")).await;
    }
    recv.wait_for(3).await;
    let (status, rotated) =
        api.call(Method::POST, &format!("/webhooks/{}/rotate-secret", hook.id), Some(&json!({"overlap": "1h"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let rotated_at = Instant::now();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    recv.wait_for(20).await;
    // The request in flight at the rotation may carry the old signature alone; every later one
    // has the new secret's.
    let after: Vec<Hit> = recv.hits().into_iter().filter(|h| h.at > rotated_at).skip(1).collect();
    assert!(!after.is_empty());
    let stale: Vec<String> = after.iter().filter(|h| !signed_by(h, &new_secret)).map(Hit::id).collect();
    assert!(
        stale.is_empty(),
        "{} of {} requests sent after the rotation lack the new secret's signature",
        stale.len(),
        after.len()
    );
    for h in &after {
        assert!(signed_by(h, &hook.secret), "the old secret still signs during the overlap");
    }
}

// ---------------------------------------------------------------- what is (not) delivered

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_makes_no_event_and_so_no_delivery() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    let w = Writer::of(&app);
    let first = w.user("taken@contoso.com").await;
    recv.wait_for(1).await;
    let refused: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::POST, "/Users".into(), Some(json!({"userName": "taken@contoso.com"})), 409),
        (Method::POST, "/Users".into(), Some(json!({"userName": 42})), 400),
        (Method::POST, "/Users".into(), Some(json!({"displayName": "no userName"})), 400),
        (
            Method::PATCH,
            format!("/Users/{first}"),
            Some(patch_op(json!([{"op": "frobnicate", "path": "displayName", "value": "x"}]))),
            400,
        ),
        (
            Method::PATCH,
            "/Users/00000000-0000-0000-0000-000000000000".into(),
            Some(patch_op(json!([{"op": "replace", "path": "displayName", "value": "x"}]))),
            404,
        ),
        (Method::DELETE, "/Users/00000000-0000-0000-0000-000000000000".into(), None, 404),
    ];
    for (method, path, body, status) in &refused {
        let (got, v) = w.send(method.clone(), path, body.as_ref()).await;
        assert_eq!(got.as_u16(), *status, "{method} {path} {body:?}: {v}");
    }
    // A body that is no JSON.
    let r = app.req(Method::POST, "/Users").header("content-type", SCIM).body("{\"userName\": ").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let second = w.user("second@contoso.com").await;
    recv.wait_until("the second user's event", WAIT, |h| h.iter().any(|h| h.json()["resource"]["id"] == second)).await;
    settle().await;
    let hits = recv.hits();
    // The directory health monitor may record the burst of refusals as a `tenant.health_changed`
    // (it runs every minute); that event is about the tenant, not about a refused request.
    let about_resources = |t: &str| !t.starts_with("tenant.");
    let created: Vec<Value> = hits
        .iter()
        .filter(|h| h.json()["type"].as_str().is_some_and(about_resources))
        .map(|h| h.json()["resource"]["id"].clone())
        .collect();
    assert_eq!(created.first(), Some(&json!(first)));
    assert_eq!(created.last(), Some(&json!(second)));
    let feed = api.feed("contoso", start).await;
    assert_exactly_the_feed(&hits, "contoso", start, &feed);
    let types: Vec<&str> = feed.iter().map(|e| e["type"].as_str().unwrap()).filter(|t| about_resources(t)).collect();
    assert_eq!(types, ["user.created", "user.created"], "only the accepted requests: {feed:#?}");
    let delivered = hits.iter().filter(|h| h.json()["type"].as_str().is_some_and(about_resources)).count();
    assert_eq!(delivered, 2, "nothing delivered for the refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_filter_delivers_only_matching_types_and_the_position_still_advances_past_the_others() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let (status, v) = api
        .call(Method::POST, "/webhooks", Some(&json!({"url": "http://127.0.0.1:9/x", "events": ["nosuch.*"]})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let users = receiver().await;
    let members = receiver().await;
    let users_hook = api.add(json!({"url": users.url, "tenant": "contoso", "events": ["user.*"]})).await;
    assert_eq!(users_hook.view["events"], json!(["user.*"]));
    let members_hook =
        api.add(json!({"url": members.url, "tenant": "contoso", "events": ["group.members_added"]})).await;
    let start = users_hook.position("contoso");
    assert_eq!(members_hook.position("contoso"), start);
    let u = app.user("filtered@contoso.com").await;
    let g = app.group("filtered-group").await;
    app.patch_no_content(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
    )
    .await;
    app.patch_ok(&format!("/Users/{u}"), &patch_op(json!([{"op": "replace", "path": "displayName", "value": "F"}])))
        .await;
    add_token(&app.store, app.tenant.id, None).await;
    // Last, events neither webhook wants: a tenant event and a group event.
    add_token(&app.store, app.tenant.id, None).await;
    app.group("filtered-group-2").await;
    let feed = api.feed_of_at_least("contoso", start, 7).await;
    let types: Vec<&str> = feed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.iter().any(|t| t.starts_with("tenant.")) && types.iter().any(|t| t.starts_with("group.")),
        "{types:?}"
    );
    assert!(!types.last().unwrap().starts_with("user."), "{types:?}");
    let head = start + feed.len() as i64;
    for hook in [&users_hook, &members_hook] {
        let d = api
            .wait_delivery(&hook.id, "contoso", "the position past the skipped events", |d| {
                d["backlog"] == 0 && d["position"] == head
            })
            .await;
        assert_eq!(d["consecutiveFailures"], 0, "{d}");
    }
    settle().await;
    let want = |f: &dyn Fn(&str) -> bool| -> Vec<Value> {
        feed.iter().filter(|e| f(e["type"].as_str().unwrap())).cloned().collect()
    };
    let got: Vec<Value> = users.hits().iter().map(Hit::json).collect();
    assert_eq!(got, want(&|t| t.starts_with("user.")), "user events only, in order");
    assert_eq!(got.len(), 2);
    let got: Vec<Value> = members.hits().iter().map(Hit::json).collect();
    assert_eq!(got, want(&|t| t == "group.members_added"), "the one type only");
    assert_eq!(got.len(), 1);
}

// ---------------------------------------------------------------- replay and ping

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_delivers_again_from_a_position_in_order_and_a_test_ping_is_signed_like_events() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    for i in 0..5 {
        app.user(&format!("replay{i}@contoso.com")).await;
    }
    recv.wait_for(5).await;
    api.wait_delivery(&hook.id, "contoso", "all delivered", |d| d["backlog"] == 0).await;
    let first = recv.hits();
    let path = format!("/webhooks/{}/replay", hook.id);
    let (status, v) = api.call(Method::POST, &path, Some(&json!({"from": start + 2}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(delivery_of(&v, "contoso")["position"], json!(start + 1), "{v}");
    recv.wait_for(9).await;
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), 9, "events start+2..start+5 once more");
    let again: Vec<(i64, String, String)> = hits[5..].iter().map(|h| (h.seq(), h.id(), h.body.clone())).collect();
    let before: Vec<(i64, String, String)> = first[1..].iter().map(|h| (h.seq(), h.id(), h.body.clone())).collect();
    assert_eq!(again, before, "the same events (same ids, same bodies), in order");
    // One tenant's delivery.
    let (status, v) = api.call(Method::POST, &path, Some(&json!({"from": start + 4, "tenant": "contoso"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    recv.wait_for(11).await;
    let seqs: Vec<i64> = recv.hits()[9..].iter().map(Hit::seq).collect();
    assert_eq!(seqs, [start + 4, start + 5]);
    for (body, status) in [
        (json!({"from": 0}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"from": 1, "tenant": "nosuch"}), StatusCode::NOT_FOUND),
    ] {
        let (got, v) = api.call(Method::POST, &path, Some(&body)).await;
        assert_eq!(got, status, "{body}: {v}");
    }
    let (got, _) = api.call(Method::POST, "/webhooks/wh_nosuchwebhook/replay", Some(&json!({"from": 1}))).await;
    assert_eq!(got, StatusCode::NOT_FOUND);

    // The ping: signed like events, not part of the feed, the receiver's answer reported.
    let before = recv.len();
    let ping_path = format!("/webhooks/{}/test", hook.id);
    let (status, outcome) = api.call(Method::POST, &ping_path, None).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!((&outcome["outcome"], &outcome["ok"]), (&json!("200"), &json!(true)), "{outcome}");
    assert_eq!(recv.len(), before + 1, "the ping is sent before the answer");
    let ping = recv.hits().pop().unwrap();
    assert_signed(&ping, &hook.secret);
    let body = ping.json();
    assert_eq!(body["type"], "webhook.ping", "{body}");
    assert_eq!(body["id"], outcome["id"], "{body}");
    assert_eq!(ping.id(), outcome["id"].as_str().unwrap());
    assert_eq!(body["webhook"], json!(hook.id), "{body}");
    assert_eq!(ping.header("content-type"), "application/json");
    let d = api.delivery(&hook.id, "contoso").await;
    assert_eq!(d["position"], json!(start + 5), "a ping moves no position: {d}");
    recv.set_status(500);
    let (status, outcome) = api.call(Method::POST, &ping_path, None).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!((&outcome["outcome"], &outcome["ok"]), (&json!("500"), &json!(false)), "{outcome}");
    let (status, _) = api.call(Method::POST, "/webhooks/wh_nosuchwebhook/test", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A replay acknowledged while the delivery is sending a backlog must not be overwritten by
/// the sender's next acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_while_a_backlog_is_being_delivered_still_delivers_again_from_that_position() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    recv.set_delay(50);
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso"})).await;
    let start = hook.position("contoso");
    for i in 0..20 {
        app.user(&format!("busy{i}@contoso.com")).await;
    }
    recv.wait_for(3).await;
    let (status, v) =
        api.call(Method::POST, &format!("/webhooks/{}/replay", hook.id), Some(&json!({"from": start + 1}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    recv.wait_until("the first event once more after the replay", Duration::from_secs(15), |h| {
        h.iter().filter(|h| h.seq() == start + 1).count() >= 2
    })
    .await;
    api.wait_delivery(&hook.id, "contoso", "all delivered", |d| d["backlog"] == 0).await;
    settle().await;
    let hits = recv.hits();
    let from = hits.iter().rposition(|h| h.seq() == start + 1).unwrap();
    let seqs: Vec<i64> = hits[from..].iter().map(Hit::seq).collect();
    assert_eq!(seqs, (start + 1..=start + 20).collect::<Vec<_>>(), "all again, in order, from the replay");
}

// ---------------------------------------------------------------- exactly once

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_event_is_delivered_exactly_once_with_concurrent_deliveries_of_several_tenants() {
    let app = spawn_app_with_delivery(DeliverySettings { concurrency: 4, ..fast_retries() }).await;
    let api = Api::new(&app).await;
    let mut tenants = vec![("contoso".to_owned(), Writer::of(&app))];
    for name in ["t1", "t2", "t3", "t4"] {
        let (_, token) = add_tenant(&app.store, name, &[]).await;
        api.quiesce(name, 2).await;
        tenants.push((name.to_owned(), Writer::at(&app.scim, &token)));
    }
    let all = receiver().await;
    all.set_delay(2);
    let one = receiver().await;
    let hook_all = api.add(json!({"url": all.url, "allTenants": true})).await;
    let hook_one = api.add(json!({"url": one.url, "tenant": "t2"})).await;
    let mut set = tokio::task::JoinSet::new();
    for (name, w) in &tenants {
        let (name, w) = (name.clone(), w.clone());
        set.spawn(async move { write_concurrently(&w, &name, 3, 5).await });
    }
    let writes: usize = set.join_all().await.into_iter().sum();
    let mut feeds = HashMap::new();
    for (name, _) in &tenants {
        let start = hook_all.position(name);
        feeds.insert(name.clone(), (start, api.feed_of_at_least(name, start, 30).await));
    }
    all.wait_for(writes).await;
    one.wait_for(30).await;
    settle().await;
    let hits = all.hits();
    assert_eq!(hits.len(), writes, "each event once");
    let ids: HashSet<String> = hits.iter().map(Hit::id).collect();
    assert_eq!(ids.len(), hits.len(), "no event twice");
    for (name, (start, feed)) in &feeds {
        assert_exactly_the_feed(&hits, name, *start, feed);
    }
    let (start, feed) = &feeds["t2"];
    assert_eq!(hook_one.position("t2"), *start);
    assert_exactly_the_feed(&one.hits(), "t2", *start, feed);
    assert_eq!(one.len(), 30, "only t2's events");
}

/// A PostgreSQL database of the test's own on the server SCIMD_TEST_POSTGRES_URL names (dropped
/// with the guard), whatever engine the rest of the suite runs on.
fn own_postgres_database() -> (String, TestDb) {
    static N: AtomicU64 = AtomicU64::new(0);
    let server = std::env::var("SCIMD_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the PostgreSQL tests run (cfg scimd_pg) but SCIMD_TEST_POSTGRES_URL names no server");
    let name = format!("hooks_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let status = Command::new("psql").arg(&server).arg("-qc").arg(format!("CREATE DATABASE {name}")).status();
    assert!(status.is_ok_and(|s| s.success()), "psql CREATE DATABASE {name}");
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    (url, TestDb::Postgres(server, name))
}

/// Another replica over `store`, built as `scimd serve` builds it; its SCIM origin.
async fn start_replica(store: Arc<dyn scim_store::Store>, delivery: DeliverySettings) -> String {
    let overrides = scimd::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin_listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let mut settings = scimd::config::resolve(&scimd::config::FileConfig::default(), overrides).unwrap();
    settings.webhooks = delivery;
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let server = scimd::server::Server::with_store(
        &settings,
        store,
        Arc::new(scim_core::Registry::standard()),
        Arc::new(scimd::clock::SystemClock),
        prometheus,
    )
    .await
    .unwrap();
    let addr = server.scim_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    format!("http://{addr}")
}

/// The header and claims of a SET (a compact JWS), after checking its HS256 signature with
/// the key of `secret`.
fn decode_set(hit: &Hit, secret: &str) -> (Value, Value) {
    let parts: Vec<&str> = hit.body.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {}", hit.body);
    let part = |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    let mac = hmac_sha256(&key_of(secret), format!("{}.{}", parts[0], parts[1]).as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.encode(mac), parts[2], "the HS256 signature, keyed with the secret's decoded bytes");
    (part(parts[0]), part(parts[1]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "needs PostgreSQL: SCIMD_TEST_POSTGRES_URL")]
async fn two_replicas_on_postgres_both_deliver_and_each_event_arrives_exactly_once() {
    let (url, db) = own_postgres_database();
    let registry = Arc::new(scim_core::Registry::standard());
    let store1 = scim_store::open(&url, Default::default(), Arc::clone(&registry)).await.unwrap();
    let store2 = scim_store::open(&url, Default::default(), registry).await.unwrap();
    // Two deliveries at a time per replica, eight deliveries: both replicas must take some.
    let delivery = DeliverySettings { concurrency: 2, ..fast_retries() };
    let app = spawn_app_delivering(store1, db, scimd::http::HttpSettings::default(), &[], delivery).await;
    let origin2 = start_replica(store2, delivery).await;
    let api = Api::new(&app).await;
    let mut tenants = vec![("contoso".to_owned(), app.token.clone())];
    for name in ["t1", "t2", "t3"] {
        let (_, token) = add_tenant(&app.store, name, &[]).await;
        api.quiesce(name, 2).await;
        tenants.push((name.to_owned(), token));
    }
    let json_recv = receiver().await;
    let set_recv = receiver().await;
    json_recv.set_delay(10);
    set_recv.set_delay(10);
    let json_hook = api.add(json!({"url": json_recv.url, "allTenants": true})).await;
    let set_hook = api.add(json!({"url": set_recv.url, "allTenants": true, "format": "set"})).await;
    let mut set = tokio::task::JoinSet::new();
    for (name, token) in &tenants {
        for (replica, origin) in [("a", &app.origin), ("b", &origin2)] {
            let w = Writer::at(&format!("{origin}/scim/v2"), token);
            let prefix = format!("{name}-{replica}");
            set.spawn(async move { write_concurrently(&w, &prefix, 2, 5).await });
        }
    }
    let writes: usize = set.join_all().await.into_iter().sum();
    assert_eq!(writes, 4 * 40);
    let mut feeds = HashMap::new();
    for (name, _) in &tenants {
        let start = json_hook.position(name);
        assert_eq!(set_hook.position(name), start);
        feeds.insert(name.clone(), (start, api.feed_of_at_least(name, start, 40).await));
    }
    json_recv.wait_for(writes).await;
    set_recv.wait_for(writes).await;
    settle().await;
    // JSON: each event once, each tenant in order.
    let hits = json_recv.hits();
    assert_eq!(hits.len(), writes, "each event exactly once");
    for (name, (start, feed)) in &feeds {
        assert_exactly_the_feed(&hits, name, *start, feed);
    }
    // SET: each event once, each tenant in order, and `iss` names the replica that sent it.
    let seq_of: HashMap<String, (String, i64)> = feeds
        .iter()
        .flat_map(|(name, (_, feed))| {
            feed.iter().map(move |e| (e["id"].as_str().unwrap().to_owned(), (name.clone(), e["seq"].as_i64().unwrap())))
        })
        .collect();
    let set_hits = set_recv.hits();
    assert_eq!(set_hits.len(), writes, "each event exactly once");
    let mut seen = HashSet::new();
    let mut issuers = HashSet::new();
    let mut order: HashMap<String, Vec<i64>> = HashMap::new();
    for h in &set_hits {
        let (_, claims) = decode_set(h, &set_hook.secret);
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert_eq!(jti, h.id());
        assert!(seen.insert(jti.clone()), "{jti} twice");
        issuers.insert(claims["iss"].as_str().unwrap().to_owned());
        let (tenant, seq) = seq_of.get(&jti).unwrap_or_else(|| panic!("{jti} is no event of the feeds")).clone();
        order.entry(tenant).or_default().push(seq);
    }
    for (name, (_, feed)) in &feeds {
        let want: Vec<i64> = feed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(order[name], want, "{name}: in order");
    }
    assert_eq!(issuers, HashSet::from([app.origin.clone(), origin2.clone()]), "both replicas delivered");
}

// ---------------------------------------------------------------- Security Event Tokens

/// Sends a SCIM request with `x-request-id: request_id`; asserts a 2xx; the body.
async fn scim_as(app: &TestApp, method: Method, path: &str, body: Option<&Value>, request_id: &str) -> Value {
    let mut req = app.req(method.clone(), path).header("x-request-id", request_id);
    if let Some(b) = body {
        req = req.header("content-type", SCIM).body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let (status, v) = status_json(r).await;
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_webhook_receives_rfc_9967_security_event_tokens_signed_with_hs256() {
    let app = spawn_app().await;
    let api = Api::new(&app).await;
    let recv = receiver().await;
    let hook = api.add(json!({"url": recv.url, "tenant": "contoso", "format": "set"})).await;
    assert_eq!(hook.view["format"], "set");
    let start = hook.position("contoso");

    let created =
        scim_as(&app, Method::POST, "/Users", Some(&entra_user("set@contoso.com", "ext-set-1")), "req-create").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    let rename = patch_op(json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]));
    let renamed = scim_as(&app, Method::PATCH, &path, Some(&rename), "req-patch").await;
    let mut replacement = entra_user("set@contoso.com", "ext-set-1");
    replacement["displayName"] = json!("Put Name");
    let put = scim_as(&app, Method::PUT, &path, Some(&replacement), "req-put").await;
    let off = patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    let deactivated = scim_as(&app, Method::PATCH, &path, Some(&off), "req-deactivate").await;
    scim_as(&app, Method::DELETE, &path, None, "req-delete").await;
    let group = scim_as(&app, Method::POST, "/Groups", Some(&json!({"displayName": "set-group"})), "req-group").await;
    let gid = group["id"].as_str().unwrap().to_owned();
    // A tenant event: no SET form, not sent (the position still moves past it).
    add_token(&app.store, app.tenant.id, None).await;

    let feed = api.feed_of_at_least("contoso", start, 7).await;
    assert_eq!(feed.len(), 7, "{feed:#?}");
    assert!(feed[6]["type"].as_str().unwrap().starts_with("tenant."), "{feed:#?}");
    let head = start + 7;
    api.wait_delivery(&hook.id, "contoso", "all delivered", |d| d["backlog"] == 0 && d["position"] == head).await;
    settle().await;
    let hits = recv.hits();
    assert_eq!(hits.len(), 6, "one token per user or group event, none for the tenant event");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tokens = Vec::new();
    for (h, e) in hits.iter().zip(&feed) {
        assert_eq!(h.header("content-type"), "application/secevent+jwt");
        assert_signed(h, &hook.secret);
        let (header, claims) = decode_set(h, &hook.secret);
        assert_eq!((&header["alg"], &header["typ"]), (&json!("HS256"), &json!("secevent+jwt")), "{header}");
        assert_eq!(claims["jti"], e["id"], "jti is the event id: {claims}");
        assert_eq!(h.id(), e["id"].as_str().unwrap(), "webhook-id is the event id");
        assert_eq!(claims["iss"], json!(app.origin), "{claims}");
        assert_eq!(claims["aud"], json!(recv.url), "{claims}");
        let iat = claims["iat"].as_i64().unwrap_or_else(|| panic!("iat is a NumericDate: {claims}"));
        assert!((now - iat).abs() <= 60, "iat {iat} is not near now {now}");
        let time =
            time::OffsetDateTime::parse(e["time"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(iat, time.unix_timestamp(), "iat is the commit time");
        assert_eq!(claims["txn"], e["actor"]["request_id"], "{claims}");
        tokens.push(claims);
    }
    let sub = json!({"format": "scim", "uri": format!("/Users/{id}"), "id": id, "externalId": "ext-set-1"});
    let events = |t: &Value| -> Vec<String> {
        let mut keys: Vec<String> = t["events"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    // The create: the resource and its version.
    let t = &tokens[0];
    assert_eq!((&t["txn"], &t["sub_id"]), (&json!("req-create"), &sub), "{t}");
    assert_eq!(events(t), [CREATE], "{t}");
    let data = &t["events"][CREATE]["data"];
    assert_eq!(
        (&data["id"], &data["userName"], &data["externalId"]),
        (&json!(id), &json!("set@contoso.com"), &json!("ext-set-1"))
    );
    assert_eq!(t["events"][CREATE]["version"], created["meta"]["version"], "{t}");
    // A PATCH: the PatchOp of the change.
    let t = &tokens[1];
    assert_eq!((&t["txn"], &t["sub_id"]), (&json!("req-patch"), &sub), "{t}");
    assert_eq!(events(t), [PATCH], "{t}");
    assert_eq!(
        t["events"][PATCH]["data"],
        patch_op(json!([{"op": "replace", "path": "displayName", "value": "Renamed"}])),
        "{t}"
    );
    assert_eq!(t["events"][PATCH]["version"], renamed["meta"]["version"], "{t}");
    // A PUT: the resource.
    let t = &tokens[2];
    assert_eq!((&t["txn"], &t["sub_id"]), (&json!("req-put"), &sub), "{t}");
    assert_eq!(events(t), [PUT], "{t}");
    assert_eq!(t["events"][PUT]["data"]["displayName"], "Put Name", "{t}");
    assert_eq!(t["events"][PUT]["version"], put["meta"]["version"], "{t}");
    // A deactivation by PATCH: the patch and the deactivation, in one token.
    let t = &tokens[3];
    assert_eq!((&t["txn"], &t["sub_id"]), (&json!("req-deactivate"), &sub), "{t}");
    let mut both = vec![PATCH, DEACTIVATE];
    both.sort();
    assert_eq!(events(t), both, "{t}");
    assert_eq!(
        t["events"][PATCH]["data"],
        patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
        "{t}"
    );
    assert_eq!(t["events"][PATCH]["version"], deactivated["meta"]["version"], "{t}");
    assert_eq!(t["events"][DEACTIVATE], json!({}), "{t}");
    // The delete.
    let t = &tokens[4];
    assert_eq!((&t["txn"], &t["sub_id"]), (&json!("req-delete"), &sub), "{t}");
    assert_eq!(t["events"], json!({DELETE: {}}), "{t}");
    // A group, which has no externalId.
    let t = &tokens[5];
    assert_eq!(t["sub_id"], json!({"format": "scim", "uri": format!("/Groups/{gid}"), "id": gid}), "{t}");
    assert_eq!(events(t), [CREATE], "{t}");
    assert_eq!(t["events"][CREATE]["data"]["displayName"], "set-group", "{t}");
}

// ---------------------------------------------------------------- scimd as a process

/// `webhook list --json` on a database.
fn webhook_list(db: &Db) -> Value {
    serde_json::from_str(&db.expect(0, &["webhook", "list", "--json"])).unwrap()
}

/// A running `scimd serve` (the CLI tests' `Server`, killed when dropped) and its SCIM origin.
struct Serve {
    server: Server,
    origin: String,
}

impl Serve {
    async fn start(db: &Db) -> Serve {
        let port = free_port();
        let server = Server::start(db, port, free_port());
        let origin = format!("http://127.0.0.1:{port}");
        wait_healthy(&reqwest::Client::new(), &format!("{origin}/healthz")).await;
        Serve { server, origin }
    }

    /// The stdout lines until one starts with `prefix`.
    fn read_until(&self, prefix: &str) -> Vec<String> {
        self.server.read_until(prefix)
    }

    /// `kill -9` (what dropping the server does).
    fn kill9(self) {
        drop(self.server);
    }
}

/// The secret `webhook add` printed: alone on its last line.
fn secret_of_add(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "a description comes first: {out}");
    let secret = lines.last().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{out}");
    assert!(!secret.contains(char::is_whitespace), "{out:?}");
    assert!(out.ends_with('\n'));
    assert_eq!(out.matches(secret).count(), 1, "the secret appears once: {out}");
    secret.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_in_the_middle_of_a_backlog_a_restart_delivers_every_event_in_order_at_most_one_twice() {
    let db = Db::new();
    let recv = receiver().await;
    recv.set_delay(150);
    let server = Serve::start(&db).await;
    let token =
        server.read_until("Secret Token:").last().unwrap().trim_start_matches("Secret Token:").trim().to_owned();
    // The users' events only: the restarted health monitor writes a tenant.health_changed.
    let out = db.expect(0, &["webhook", "add", "--url", &recv.url, "--tenant", "default", "--events", "user.*"]);
    let secret = secret_of_add(&out);
    let start = webhook_list(&db)[0]["deliveries"][0]["position"].as_i64().unwrap();
    let w = Writer::at(&format!("{}/scim/v2", server.origin), &token);
    for i in 0..30 {
        w.user(&format!("k{i}@contoso.com")).await;
    }
    recv.wait_for(5).await;
    server.kill9();
    let at_kill = recv.len();
    let d = &webhook_list(&db)[0]["deliveries"][0];
    let position = d["position"].as_i64().unwrap();
    // Each event was sent only after the previous one's acknowledgement was stored.
    assert!(
        (start + at_kill as i64 - 1..=start + at_kill as i64).contains(&position),
        "{at_kill} requests arrived before the kill; stored position {position} (from {start})"
    );
    assert!(d["backlog"].as_i64().unwrap() > 0, "a backlog at the kill: {d}");
    recv.set_delay(0);
    let restarted = Instant::now();
    let _server = Serve::start(&db).await;
    // The killed process's lease (30 s by default) has to run out first.
    recv.wait_until("every event", Duration::from_secs(75), |h| {
        let seqs: HashSet<i64> = h.iter().map(Hit::seq).collect();
        (start + 1..=start + 30).all(|s| seqs.contains(&s))
    })
    .await;
    let resumed_after = restarted.elapsed();
    settle().await;
    let hits = recv.hits();
    let seqs: Vec<i64> = hits.iter().map(Hit::seq).collect();
    assert_eq!(seqs.first(), Some(&(start + 1)));
    assert_eq!(seqs.last(), Some(&(start + 30)), "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1), "in order: {seqs:?}");
    let twice = seqs.windows(2).filter(|w| w[1] == w[0]).count();
    assert!(twice <= 1, "at most the in-flight event twice: {seqs:?}");
    assert_eq!(hits.len(), 30 + twice);
    for h in &hits {
        assert_signed(h, &secret);
    }
    // Past the restart's tenant.health_changed too, if the monitor wrote it already.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = webhook_list(&db)[0]["deliveries"][0].clone();
        let end = d["position"].as_i64().unwrap();
        if (start + 30..=start + 31).contains(&end) && d["backlog"].as_i64() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("deliveries resumed {resumed_after:?} after the restart ({twice} event delivered twice)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_cli_prints_the_secret_last_lists_the_delivery_state_pings_and_remove_stops_deliveries() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "acme"]);
    let token = db.expect(0, &["token", "create", "--tenant", "acme"]).lines().last().unwrap().to_owned();
    let recv = receiver().await;
    // Usage errors (2) and runtime failures (1) store nothing.
    db.expect(2, &["webhook", "add", "--url", "ftp://127.0.0.1/hook", "--tenant", "acme"]);
    db.expect(2, &["webhook", "add", "--url", &recv.url, "--format", "xml"]);
    db.expect(2, &["webhook", "add", "--url", &recv.url, "--events", "nosuch.*"]);
    db.expect(1, &["webhook", "add", "--url", &recv.url, "--tenant", "nosuch"]);
    assert_eq!(webhook_list(&db), json!([]));

    let out = db.expect(0, &["webhook", "add", "--url", &recv.url, "--tenant", "acme", "--events", "user.*"]);
    let secret = secret_of_add(&out);
    let id = out.split_whitespace().find(|w| w.starts_with("wh_")).unwrap_or_else(|| panic!("no id: {out}")).to_owned();
    let hooks = webhook_list(&db);
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
    let h = &hooks[0];
    assert_eq!((&h["id"], &h["url"], &h["tenant"]), (&json!(id), &json!(recv.url), &json!("acme")), "{h}");
    assert_eq!((&h["events"], &h["format"]), (&json!(["user.*"]), &json!("json")), "{h}");
    let listed = db.expect(0, &["webhook", "list", "--json"]);
    assert!(!listed.contains(secret.trim_start_matches("whsec_")), "the list shows the secret: {listed}");
    let start = h["deliveries"][0]["position"].as_i64().unwrap();

    let server = Serve::start(&db).await;
    let w = Writer::at(&format!("{}/scim/v2", server.origin), &token);
    for i in 0..3 {
        w.user(&format!("cli{i}@acme.com")).await;
    }
    recv.wait_for(3).await;
    let deadline = Instant::now() + WAIT;
    let d = loop {
        let d = webhook_list(&db)[0]["deliveries"][0].clone();
        if d["backlog"] == 0 && d["position"] == start + 3 {
            break d;
        }
        assert!(Instant::now() < deadline, "the delivery state never showed the 3 events delivered: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&d["tenant"], &d["lastOutcome"], &d["consecutiveFailures"]),
        (&json!("acme"), &json!("200"), &json!(0))
    );
    assert_eq!((&d["failed"], &d["nextAttempt"]), (&json!(false), &Value::Null), "{d}");
    assert!(d["lastAttempt"].is_string(), "{d}");
    for h in recv.hits() {
        assert_signed(&h, &secret);
    }
    let table = db.expect(0, &["webhook", "list"]);
    let row = table.lines().find(|l| l.contains(&id)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("acme") && row.contains("200") && row.contains(" ok"), "{table}");

    // `webhook test`: a signed ping, the receiver's status, the exit code.
    let out = db.expect(0, &["webhook", "test", &id]);
    let ping = recv.hits().pop().unwrap();
    assert_eq!(ping.json()["type"], "webhook.ping");
    assert_signed(&ping, &secret);
    assert_eq!(out.trim(), format!("ping {}: 200", ping.id()), "{out}");
    recv.set_status(500);
    let out = db.run(&["webhook", "test", &id]);
    assert_eq!(out.status.code(), Some(1), "a ping answered 500 is a failure");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 500"), "{out:?}");
    recv.set_status(200);

    // `webhook remove`: nothing more is sent.
    db.expect(0, &["webhook", "remove", &id]);
    assert_eq!(webhook_list(&db), json!([]));
    let sent = recv.len();
    w.user("after-remove@acme.com").await;
    // More than the delivery worker's 1 s look-around, so a claim would have happened.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(recv.len(), sent, "a removed webhook got a delivery");
    db.expect(1, &["webhook", "remove", &id]);

    // Every tenant, SETs.
    let out = db.expect(0, &["webhook", "add", "--url", &recv.url, "--format", "set"]);
    secret_of_add(&out);
    assert!(out.contains("every tenant"), "{out}");
    let hooks = webhook_list(&db);
    assert_eq!((&hooks[0]["tenant"], &hooks[0]["format"]), (&Value::Null, &json!("set")), "{hooks}");
}
