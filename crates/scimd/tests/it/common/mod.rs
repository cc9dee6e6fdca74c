//! Test harness: the real scimd server (`scimd::server::Server`, as `scimd serve` builds it)
//! on a random port over a fresh store: SQLite, or PostgreSQL with `SCIMD_TEST_ENGINE=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use scim_core::Registry;
use scim_store::{Store, Tenant};
use scimd::clock::SystemClock;
use scimd::config::Settings;
use scimd::http::HttpSettings;
use scimd::server::Server;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SCIM: &str = "application/scim+json";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The reference customer's mandatory attributes (DESIGN.md, tenant policy).
pub const REFERENCE_REQUIRED: &[&str] = &scim_core::policy::REFERENCE;

/// A running server with one tenant and its token.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// `http://127.0.0.1:PORT/scim/v2`
    pub scim: String,
    /// `http://127.0.0.1:PORT` of the admin listener (a plain `axum::serve`, no lenient layer).
    pub admin: String,
    /// The tenant's bearer token.
    pub token: String,
    /// The tenant.
    pub tenant: Tenant,
    /// The store behind the server.
    pub store: Arc<dyn Store>,
    /// An HTTP client.
    pub client: reqwest::Client,
    _db: TestDb,
}

/// Where a test's store lives; removed when dropped.
pub enum TestDb {
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database of its own: (server URL, database name).
    Postgres(String, String),
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres(url, name) = self {
            let _ = std::process::Command::new("psql")
                .arg(url.as_str())
                .arg("-qc")
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .status();
        }
    }
}

/// Whether the HTTP suite runs on PostgreSQL (`SCIMD_TEST_ENGINE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("SCIMD_TEST_ENGINE").is_ok_and(|e| e == "postgres")
}

/// Opens a fresh store of the engine under test.
pub async fn fresh_store() -> (Arc<dyn Store>, TestDb) {
    let registry = Arc::new(Registry::standard());
    if on_postgres() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let url = std::env::var("SCIMD_TEST_POSTGRES_URL")
            .expect("SCIMD_TEST_ENGINE=postgres needs SCIMD_TEST_POSTGRES_URL (scripts/postgres.sh start DIR)");
        let name = format!("http_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let status =
            std::process::Command::new("psql").arg(&url).arg("-qc").arg(format!("CREATE DATABASE {name}")).status();
        assert!(status.is_ok_and(|s| s.success()), "psql CREATE DATABASE {name}");
        let db = TestDb::Postgres(url.clone(), name.clone());
        let (base, _) = url.rsplit_once('/').unwrap();
        let store = scim_store::open(&format!("{base}/{name}"), Default::default(), registry).await.unwrap();
        return (store, db);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = scim_store::open(&url, Default::default(), registry).await.unwrap();
    (store, TestDb::Sqlite(dir))
}

/// A server with default settings and a tenant without required attributes.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(HttpSettings::default(), &[]).await
}

/// A server with these settings, and a tenant with these required attributes.
pub async fn spawn_app_with(settings: HttpSettings, required: &[&str]) -> TestApp {
    let (store, db) = fresh_store().await;
    spawn_app_on(store, db, settings, required).await
}

/// A server over `store` (which may wrap a real one), built as `scimd serve` builds it.
pub async fn spawn_app_on(store: Arc<dyn Store>, db: TestDb, http: HttpSettings, required: &[&str]) -> TestApp {
    spawn_app_delivering(store, db, http, required, Default::default()).await
}

/// A fresh server whose webhooks are delivered with these settings (short timeouts and
/// back-off for tests).
pub async fn spawn_app_with_delivery(delivery: scimd::webhooks::DeliverySettings) -> TestApp {
    let (store, db) = fresh_store().await;
    spawn_app_delivering(store, db, HttpSettings::default(), &[], delivery).await
}

/// A server over `store` with these delivery settings.
pub async fn spawn_app_delivering(
    store: Arc<dyn Store>,
    db: TestDb,
    http: HttpSettings,
    required: &[&str],
    delivery: scimd::webhooks::DeliverySettings,
) -> TestApp {
    let (tenant, token) = add_tenant(&store, "contoso", required).await;
    let settings = Settings {
        database: String::new(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        http,
        store: Default::default(),
        admin_hosts: scimd::admin::default_hosts("127.0.0.1:0"),
        retention: Default::default(),
        webhooks: delivery,
        request_log: Default::default(),
        console_session: scimd::config::DEFAULT_CONSOLE_SESSION,
        tls: None,
    };
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let server = Server::with_store(
        &settings,
        Arc::clone(&store),
        Arc::new(Registry::standard()),
        Arc::new(SystemClock),
        prometheus,
    )
    .await
    .unwrap();
    let addr = server.scim_addr().unwrap();
    let admin = format!("http://{}", server.admin_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let origin = format!("http://{addr}");
    let scim = format!("{origin}/scim/v2");
    TestApp { scim, admin, origin, token, tenant, store, client: reqwest::Client::new(), _db: db }
}

/// Creates a tenant and a token for it in the store.
pub async fn add_tenant(store: &Arc<dyn Store>, name: &str, required: &[&str]) -> (Tenant, String) {
    let now = OffsetDateTime::now_utc();
    let required: Vec<String> = required.iter().map(|s| (*s).to_owned()).collect();
    let tenant = store.create_tenant(name.to_owned(), required, now, Actor::cli("test")).await.unwrap();
    let token = add_token(store, tenant.id, None).await;
    (tenant, token)
}

/// Issues and stores a token; returns the secret.
pub async fn add_token(store: &Arc<dyn Store>, tenant: i64, expires: Option<OffsetDateTime>) -> String {
    let issued = scimd::tokens::issue(tenant, Some("test".into()), expires, OffsetDateTime::now_utc());
    store.create_token(issued.record, Some(Actor::cli("test"))).await.unwrap();
    issued.secret
}

impl TestApp {
    /// A request to `/scim/v2{path}` with the tenant's token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.scim)).bearer_auth(&self.token)
    }

    /// A request with another token.
    pub fn req_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.scim)).bearer_auth(token)
    }

    /// A request with a JSON body sent as `application/scim+json`.
    pub fn send_json(&self, method: Method, path: &str, body: &Value) -> RequestBuilder {
        self.req(method, path).header("content-type", SCIM).body(body.to_string())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).send().await.unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, body).send().await.unwrap()
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PATCH, path, body).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.unwrap()
    }

    /// Creates a user; panics unless 201. Returns the resource.
    pub async fn create_user(&self, body: &Value) -> Value {
        let r = self.post("/Users", body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// Creates a minimal user `name`; returns its id.
    pub async fn user(&self, name: &str) -> String {
        let v = self.create_user(&serde_json::json!({"userName": name, "displayName": name})).await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// Creates a group `name`; returns its id.
    pub async fn group(&self, name: &str) -> String {
        let r = self.post("/Groups", &serde_json::json!({"displayName": name})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// Sends raw bytes on a new connection and reads the whole answer (the request must
    /// carry `Connection: close`).
    pub async fn raw(&self, request: &str) -> (u16, String) {
        let text = raw_exchange(&self.origin, request.as_bytes()).await;
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, text)
    }
}

/// Sends `bytes` on a new connection to `origin` (`http://HOST:PORT`) and reads until the
/// server closes (the last request should say `Connection: close`; at most 5 s).
pub async fn raw_exchange(origin: &str, bytes: &[u8]) -> String {
    let addr = origin.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and JSON body of a response (`Value::Null` for an empty body).
pub async fn status_json(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, v)
}

/// Asserts a SCIM error response with this status (and `scimType`, when given).
pub async fn assert_scim_error(r: Response, status: u16, scim_type: Option<&str>) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with(SCIM), "content type {ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schemas"], serde_json::json!([ERROR]), "{v}");
    assert_eq!(v["status"], Value::String(status.to_string()), "{v}");
    match scim_type {
        Some(t) => assert_eq!(v["scimType"], Value::String(t.into()), "{v}"),
        None => assert!(v.get("scimType").is_none(), "{v}"),
    }
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

/// The create body Entra sends with its default mapping (CLIENTS.md).
pub fn entra_user(user_name: &str, external_id: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "John Doe",
        "title": "Site engineer",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "John Doe", "familyName": "Doe", "givenName": "John"},
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Ops"},
        "roles": []
    })
}

/// A PATCH body.
pub fn patch_op(ops: Value) -> Value {
    serde_json::json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Percent-encodes a query value (spaces as `+`, as Entra sends them).
pub fn q(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A store that forwards to a real one, records what it was asked to load, and fails or
/// panics on demand.
pub struct Spy {
    pub inner: Arc<dyn Store>,
    pub loads: std::sync::Mutex<Vec<scim_store::Load>>,
    pub fail_ping: std::sync::atomic::AtomicBool,
    pub fail_query: std::sync::atomic::AtomicBool,
    pub panic_query: std::sync::atomic::AtomicBool,
    /// A document a "concurrent writer" stores just before the next PATCH takes its lock.
    pub interfere: std::sync::Mutex<Vec<Value>>,
}

impl Spy {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Spy> {
        Arc::new(Spy {
            inner,
            loads: Default::default(),
            fail_ping: Default::default(),
            fail_query: Default::default(),
            panic_query: Default::default(),
            interfere: Default::default(),
        })
    }
    fn flag(b: &std::sync::atomic::AtomicBool) -> bool {
        b.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn set(b: &std::sync::atomic::AtomicBool, v: bool) {
        b.store(v, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn take_loads(&self) -> Vec<scim_store::Load> {
        std::mem::take(&mut *self.loads.lock().unwrap())
    }
}

use scim_store::{
    Actor, Create, Delete, Feed, Get, Page, Patch, Query, Record, Result as StoreResult, StoreError, Token, Update,
};

#[async_trait::async_trait]
impl Store for Spy {
    async fn ping(&self) -> StoreResult<()> {
        if Self::flag(&self.fail_ping) {
            return Err(StoreError::Backend("SECRET-DSN connection refused".into()));
        }
        self.inner.ping().await
    }
    async fn create_tenant(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> StoreResult<Tenant> {
        self.inner.create_tenant(name, required, now, actor).await
    }
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.inner.list_tenants().await
    }
    async fn tenant(&self, name: String) -> StoreResult<Option<Tenant>> {
        self.inner.tenant(name).await
    }
    async fn tenant_by_id(&self, id: i64) -> StoreResult<Option<Tenant>> {
        self.inner.tenant_by_id(id).await
    }
    async fn delete_tenant(&self, name: String) -> StoreResult<bool> {
        self.inner.delete_tenant(name).await
    }
    async fn create_token(&self, token: Token, actor: Option<Actor>) -> StoreResult<()> {
        self.inner.create_token(token, actor).await
    }
    async fn token(&self, id: String) -> StoreResult<Option<Token>> {
        self.inner.token(id).await
    }
    async fn list_tokens(&self, tenant: i64) -> StoreResult<Vec<Token>> {
        self.inner.list_tokens(tenant).await
    }
    async fn revoke_token(&self, id: String, now: OffsetDateTime, actor: Actor) -> StoreResult<bool> {
        self.inner.revoke_token(id, now, actor).await
    }
    async fn touch_token(&self, id: String, at: OffsetDateTime) -> StoreResult<()> {
        self.inner.touch_token(id, at).await
    }
    async fn purge_expired_tokens(&self, label_prefix: String, now: OffsetDateTime) -> StoreResult<u64> {
        self.inner.purge_expired_tokens(label_prefix, now).await
    }
    async fn set_required(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> StoreResult<Option<Tenant>> {
        self.inner.set_required(name, required, now, actor).await
    }
    async fn rotate_token(
        &self,
        new: Token,
        old: String,
        until: OffsetDateTime,
        now: OffsetDateTime,
        actor: Actor,
    ) -> StoreResult<()> {
        self.inner.rotate_token(new, old, until, now, actor).await
    }
    async fn create_api_key(&self, key: scim_store::ApiKey) -> StoreResult<()> {
        self.inner.create_api_key(key).await
    }
    async fn api_key(&self, id: String) -> StoreResult<Option<scim_store::ApiKey>> {
        self.inner.api_key(id).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<scim_store::ApiKey>> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: String, now: OffsetDateTime) -> StoreResult<bool> {
        self.inner.revoke_api_key(id, now).await
    }
    async fn create(&self, req: Create) -> StoreResult<Record> {
        self.inner.create(req).await
    }
    async fn get(&self, req: Get) -> StoreResult<Option<Record>> {
        self.loads.lock().unwrap().push(req.load);
        self.inner.get(req).await
    }
    async fn update(&self, req: Update) -> StoreResult<Record> {
        self.loads.lock().unwrap().push(req.load);
        self.inner.update(req).await
    }
    async fn patch(&self, req: Patch) -> StoreResult<Record> {
        self.loads.lock().unwrap().push(req.load);
        let concurrent = self.interfere.lock().unwrap().pop();
        if let Some(other) = concurrent {
            let write = Update {
                tenant: req.tenant,
                kind: req.kind,
                id: req.id.clone(),
                if_version: None,
                now: req.now,
                doc: other,
                members: scim_store::Members::Unchanged,
                load: scim_store::Load::default(),
                actor: req.actor.clone(),
            };
            self.inner.update(write).await.unwrap();
        }
        self.inner.patch(req).await
    }
    async fn delete(&self, req: Delete) -> StoreResult<()> {
        self.inner.delete(req).await
    }
    async fn query(&self, req: Query) -> StoreResult<Page> {
        if Self::flag(&self.panic_query) {
            panic!("store panicked");
        }
        if Self::flag(&self.fail_query) {
            return Err(StoreError::Backend("SECRET-DSN disk I/O error".into()));
        }
        self.loads.lock().unwrap().push(req.load);
        self.inner.query(req).await
    }
    async fn secret(&self, name: String, candidate: String) -> StoreResult<String> {
        self.inner.secret(name, candidate).await
    }
    async fn events(&self, tenant: i64, after: i64, limit: u64) -> StoreResult<Feed> {
        self.inner.events(tenant, after, limit).await
    }
    fn subscribe(&self, tenant: i64) -> tokio::sync::watch::Receiver<i64> {
        self.inner.subscribe(tenant)
    }
    async fn prune_events(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> StoreResult<u64> {
        self.inner.prune_events(before, keep).await
    }
    fn subscribe_all(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe_all()
    }
    async fn set_guard(&self, name: String, settings: scim_store::GuardSettings) -> StoreResult<Option<Tenant>> {
        self.inner.set_guard(name, settings).await
    }
    async fn release_guard(&self, name: String, discard: bool, now: OffsetDateTime) -> StoreResult<Option<Tenant>> {
        self.inner.release_guard(name, discard, now).await
    }
    async fn create_webhook(&self, webhook: scim_store::Webhook) -> StoreResult<()> {
        self.inner.create_webhook(webhook).await
    }
    async fn list_webhooks(&self) -> StoreResult<Vec<(scim_store::Webhook, Vec<scim_store::Delivery>)>> {
        self.inner.list_webhooks().await
    }
    async fn webhook(&self, id: String) -> StoreResult<Option<(scim_store::Webhook, Vec<scim_store::Delivery>)>> {
        self.inner.webhook(id).await
    }
    async fn delete_webhook(&self, id: String) -> StoreResult<bool> {
        self.inner.delete_webhook(id).await
    }
    async fn replay_webhook(&self, id: String, tenant: Option<i64>, from: i64) -> StoreResult<bool> {
        self.inner.replay_webhook(id, tenant, from).await
    }
    async fn rotate_webhook_secret(&self, id: String, secret: String, old_until: OffsetDateTime) -> StoreResult<bool> {
        self.inner.rotate_webhook_secret(id, secret, old_until).await
    }
    async fn claim_deliveries(
        &self,
        owner: String,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u64,
    ) -> StoreResult<Vec<scim_store::Claim>> {
        self.inner.claim_deliveries(owner, now, lease_until, limit).await
    }
    async fn deliveries_due(&self, now: OffsetDateTime) -> StoreResult<Option<bool>> {
        self.inner.deliveries_due(now).await
    }
    async fn ack_delivery(
        &self,
        webhook: String,
        tenant: i64,
        position: i64,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner.ack_delivery(webhook, tenant, position, now).await
    }
    async fn log_requests(&self, entries: Vec<scim_store::LoggedRequest>) -> StoreResult<()> {
        self.inner.log_requests(entries).await
    }
    async fn requests(&self, q: scim_store::RequestQuery) -> StoreResult<Vec<scim_store::LoggedRequest>> {
        self.inner.requests(q).await
    }
    async fn prune_requests(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> StoreResult<u64> {
        self.inner.prune_requests(before, keep).await
    }
    async fn traffic(&self, tenant: Option<i64>) -> StoreResult<Vec<scim_store::Traffic>> {
        self.inner.traffic(tenant).await
    }
    async fn set_health(
        &self,
        tenant: i64,
        before: Option<String>,
        after: String,
        data: serde_json::Value,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner.set_health(tenant, before, after, data, now).await
    }
    async fn create_invite(&self, invite: scim_store::Invite) -> StoreResult<()> {
        self.inner.create_invite(invite).await
    }
    async fn invite(&self, id: String) -> StoreResult<Option<scim_store::Invite>> {
        self.inner.invite(id).await
    }
    async fn list_invites(&self, tenant: i64) -> StoreResult<Vec<scim_store::Invite>> {
        self.inner.list_invites(tenant).await
    }
    async fn revoke_invite(&self, id: String, now: OffsetDateTime) -> StoreResult<bool> {
        self.inner.revoke_invite(id, now).await
    }
    async fn redeem_invite(&self, id: String, token: Token, now: OffsetDateTime, actor: Actor) -> StoreResult<bool> {
        self.inner.redeem_invite(id, token, now, actor).await
    }
    async fn create_session(&self, session: scim_store::Session) -> StoreResult<()> {
        self.inner.create_session(session).await
    }
    async fn session(&self, id: String) -> StoreResult<Option<scim_store::Session>> {
        self.inner.session(id).await
    }
    async fn delete_session(&self, id: String) -> StoreResult<()> {
        self.inner.delete_session(id).await
    }
    async fn export_tenant(&self, name: String) -> StoreResult<Option<scim_store::transfer::TenantDump>> {
        self.inner.export_tenant(name).await
    }
    async fn export_resources(
        &self,
        tenant: i64,
        after: scim_store::transfer::Cursor,
        limit: u64,
    ) -> StoreResult<scim_store::transfer::ExportPage<Record>> {
        self.inner.export_resources(tenant, after, limit).await
    }
    async fn export_members(
        &self,
        tenant: i64,
        after: scim_store::transfer::Cursor,
        limit: u64,
    ) -> StoreResult<scim_store::transfer::ExportPage<scim_store::transfer::MemberDump>> {
        self.inner.export_members(tenant, after, limit).await
    }
    async fn import_tenant(
        &self,
        tenant: scim_store::transfer::TenantDump,
    ) -> StoreResult<scim_store::transfer::ImportedTenant> {
        self.inner.import_tenant(tenant).await
    }
    async fn import_rows(
        &self,
        rows: scim_store::transfer::ImportRows,
    ) -> StoreResult<Vec<scim_store::transfer::Rejected>> {
        self.inner.import_rows(rows).await
    }
    async fn transfer_counts(&self, tenant: i64) -> StoreResult<scim_store::transfer::TransferCounts> {
        self.inner.transfer_counts(tenant).await
    }
    async fn settle_delivery(
        &self,
        webhook: String,
        tenant: i64,
        owner: String,
        now: OffsetDateTime,
        outcome: scim_store::Outcome,
    ) -> StoreResult<bool> {
        self.inner.settle_delivery(webhook, tenant, owner, now, outcome).await
    }
}

// ----- helpers for the client replay and quirk tests (quirks.rs, replay_*.rs, policy.rs) -----

/// The exact empty list response Entra's "Test connection" needs.
pub fn empty_list_response() -> Value {
    serde_json::json!({"schemas": [LIST_RESPONSE], "totalResults": 0, "Resources": [], "startIndex": 1, "itemsPerPage": 0})
}

/// The body of a successful response; panics with the status and body otherwise.
pub async fn ok_json(r: Response) -> Value {
    let (status, v) = status_json(r).await;
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// The ids of a list response's resources, in order.
pub fn resource_ids(list: &Value) -> Vec<String> {
    list["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// The sorted member ids of a group resource (empty when it has no `members`).
pub fn group_member_ids(group: &Value) -> Vec<String> {
    let mut v: Vec<String> = group
        .get("members")
        .and_then(Value::as_array)
        .map(|ms| ms.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

impl TestApp {
    /// `GET {endpoint}?filter=...` with the filter encoded as Entra does (`+` and `%22`);
    /// `extra` is appended to the query string as is (e.g. `&excludedAttributes=members`).
    pub async fn filter(&self, endpoint: &str, filter: &str, extra: &str) -> Value {
        let r = self.get(&format!("{endpoint}?filter={}{extra}", q(filter))).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{filter}: {v}");
        v
    }

    /// A PATCH that must answer 200 with the resource (users); returns the resource.
    pub async fn patch_ok(&self, path: &str, body: &Value) -> Value {
        let r = self.patch(path, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}: {v}");
        v
    }

    /// A PATCH that must answer 204 without a body (groups).
    pub async fn patch_no_content(&self, path: &str, body: &Value) {
        let r = self.patch(path, body).await;
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}: {}", String::from_utf8_lossy(&bytes));
        assert!(bytes.is_empty(), "a 204 has no body: {}", String::from_utf8_lossy(&bytes));
    }

    /// Sends `GET {target}` with the request target exactly as given (raw quotes and spaces
    /// included) and returns the status and the JSON body.
    pub async fn raw_get(&self, target: &str) -> (u16, Value) {
        let (status, text) = self
            .raw(&format!(
                "GET {target} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                self.token
            ))
            .await;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{text}");
        let v = if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap() };
        (status, v)
    }
}
