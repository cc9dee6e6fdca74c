//! One contract, every engine: the same suite runs on SQLite (module `sqlite`) and on
//! PostgreSQL (module `postgres`).
//!
//! The PostgreSQL tests are compiled with `cfg(scimd_pg)`, which `build.rs` sets when
//! `SCIMD_TEST_POSTGRES_URL` names a server (as `scripts/test.sh` arranges); without it cargo
//! reports them as ignored, never as passed. With it, a server that is missing or does not answer
//! fails them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use scim_core::patch::{self, MemberDelta, PatchRequest};
use scim_core::resource::{self, Member, UnknownAttributes};
use scim_core::{AttrPath, Filter, Registry, ScimType};
use scim_store::{Actor, Event, Kind, Limits, Load, Members, Query, SortOrder, Store, StoreError};
use serde_json::{Value, json};
use time::OffsetDateTime;

#[path = "contract/transfer.rs"]
mod transfer;
use transfer::pages_of_any_size_read_the_same_rows_and_an_import_writes_them_back;

/// The engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Engine {
    backend: Backend,
    store: Option<Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop afterwards: (server URL, database name).
    pg: Option<(String, String)>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Close the store first (dropping the last handle closes its connection pool), then
        // drop the test's database.
        self.store = None;
        if let Some((url, db)) = self.pg.take() {
            let _ = std::process::Command::new("psql")
                .arg(&url)
                .arg("-qc")
                .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .status();
        }
    }
}

impl Engine {
    /// A fresh, empty store on `backend`.
    async fn open(backend: Backend, limits: Limits) -> Engine {
        match backend {
            Backend::Sqlite => open_sqlite(limits).await,
            Backend::Postgres => open_postgres(limits).await,
        }
    }

    fn s(&self) -> &dyn Store {
        self.store.as_deref().unwrap()
    }

    /// A handle to move into tasks.
    fn arc(&self) -> Arc<dyn Store> {
        self.store.clone().unwrap()
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::standard())
}

async fn open_sqlite(limits: Limits) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = scim_store::open(&url, limits, registry()).await.unwrap();
    Engine { backend: Backend::Sqlite, store: Some(store), _dir: Some(dir), pg: None }
}

async fn open_postgres(limits: Limits) -> Engine {
    let url = std::env::var("SCIMD_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the PostgreSQL tests run (cfg scimd_pg) but SCIMD_TEST_POSTGRES_URL names no server");
    // Each test gets its own database so tests can run in parallel.
    let db = format!("t_{}", uuid_like());
    psql(&url, &format!("CREATE DATABASE {db}")).await;
    let base = url.rsplit_once('/').unwrap().0.to_owned();
    // The database is dropped by `Engine`'s Drop even if opening the store fails.
    let mut e = Engine { backend: Backend::Postgres, store: None, _dir: None, pg: Some((url, db.clone())) };
    e.store = Some(scim_store::open(&format!("{base}/{db}"), limits, registry()).await.unwrap());
    e
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

/// Runs one statement as the server's admin; a server that does not answer fails the test.
async fn psql(url: &str, sql: &str) {
    let status = tokio::process::Command::new("psql").arg(url).arg("-qc").arg(sql).status().await.unwrap();
    assert!(status.success(), "psql {sql}");
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn actor() -> Actor {
    Actor::cli("contract test")
}

/// A tenant's events after `after`.
async fn events(s: &dyn Store, t: i64, after: i64) -> Vec<Event> {
    s.events(t, after, 1000).await.unwrap().events
}

/// The types of a tenant's events after `after`.
async fn types(s: &dyn Store, t: i64, after: i64) -> Vec<String> {
    events(s, t, after).await.into_iter().map(|e| e.kind).collect()
}

/// The body of an event as JSON.
fn body(e: &Event) -> Value {
    serde_json::from_str(&e.body).unwrap()
}

fn user_doc(body: Value) -> Value {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap().resource
}

fn group_doc(name: &str) -> Value {
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    resource::ingest(&def, &json!({"displayName": name}), UnknownAttributes::Drop).unwrap().resource
}

/// The store's requests, each committed at `now()`.
mod req {
    use super::*;
    use scim_store::{Create, Delete, Get, Patch, Patched, Update};

    pub fn create(tenant: i64, kind: Kind, id: &str, doc: Value, members: Vec<Member>) -> Create {
        Create { tenant, kind, id: id.into(), now: now(), doc, members, actor: actor() }
    }

    pub fn get(tenant: i64, kind: Kind, id: &str, load: Load) -> Get {
        Get { tenant, kind, id: id.into(), load }
    }

    pub fn update(
        tenant: i64,
        kind: Kind,
        id: &str,
        if_version: Option<i64>,
        doc: Value,
        members: Members,
        load: Load,
    ) -> Update {
        Update { tenant, kind, id: id.into(), if_version, now: now(), doc, members, load, actor: actor() }
    }

    /// A PATCH that changes only members (the document stays as it is).
    pub fn update_members(tenant: i64, kind: Kind, id: &str, delta: MemberDelta, load: Load) -> Patch {
        let apply = std::sync::Arc::new(move |cur: &scim_store::Record| {
            Ok(Some(Patched { doc: cur.doc.clone(), delta: delta.clone() }))
        });
        Patch { tenant, kind, id: id.into(), now: now(), apply, load, actor: actor() }
    }

    pub fn delete(tenant: i64, kind: Kind, id: &str, if_version: Option<i64>) -> Delete {
        Delete { tenant, kind, id: id.into(), if_version, now: now(), actor: actor() }
    }
}

async fn tenant(s: &dyn Store, name: &str) -> i64 {
    s.create_tenant(name.into(), vec![], now(), actor()).await.unwrap().id
}

async fn mk_user(s: &dyn Store, t: i64, id: &str, body: Value) {
    s.create(req::create(t, Kind::User, id, user_doc(body), vec![])).await.unwrap();
}

async fn ids(s: &dyn Store, t: i64, kind: Kind, filter: &str) -> Vec<String> {
    let f = Filter::parse(filter).unwrap();
    let q = Query {
        tenant: t,
        kind,
        filter: Some(f),
        sort: None,
        start_index: 1,
        count: 1000,
        load: Load::default(),
        position: false,
        seek: None,
    };
    let mut out: Vec<String> = s.query(q).await.unwrap().records.into_iter().map(|r| r.id).collect();
    out.sort();
    out
}

fn member(id: &str) -> Member {
    Member { value: id.into(), kind: None, display: None }
}

// ---------------------------------------------------------------- the suite

async fn tenants_and_tokens(e: Engine) {
    let s = e.s();
    let t = s
        .create_tenant("contoso".into(), vec!["userName".into(), "preferredLanguage".into()], now(), actor())
        .await
        .unwrap();
    assert_eq!(s.tenant("contoso".into()).await.unwrap().unwrap().required, vec!["userName", "preferredLanguage"]);
    assert_eq!(s.tenant_by_id(t.id).await.unwrap().unwrap().name, "contoso");
    assert!(matches!(s.create_tenant("contoso".into(), vec![], now(), actor()).await, Err(StoreError::Conflict(_))));
    s.create_tenant("fabrikam".into(), vec![], now(), actor()).await.unwrap();
    assert_eq!(
        s.list_tenants().await.unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["contoso", "fabrikam"]
    );
    let tok = scim_store::Token {
        id: "abc123abc123".into(),
        tenant: t.id,
        digest: vec![1, 2, 3],
        label: Some("entra".into()),
        created: now(),
        expires: None,
        revoked: None,
        last_used: None,
    };
    s.create_token(tok.clone(), Some(actor())).await.unwrap();
    assert_eq!(s.token("abc123abc123".into()).await.unwrap().unwrap().digest, vec![1, 2, 3]);
    assert_eq!(s.list_tokens(t.id).await.unwrap().len(), 1);
    // A token's use is recorded, never moved back.
    let used = now();
    s.touch_token("abc123abc123".into(), used).await.unwrap();
    s.touch_token("abc123abc123".into(), used - time::Duration::hours(1)).await.unwrap();
    let got = s.token("abc123abc123".into()).await.unwrap().unwrap().last_used.unwrap();
    assert!((got - used).abs() < time::Duration::milliseconds(1), "{got} vs {used}");
    assert!(s.revoke_token("abc123abc123".into(), now(), actor()).await.unwrap());
    assert!(s.token("abc123abc123".into()).await.unwrap().unwrap().revoked.is_some());
    assert!(s.revoke_token("abc123abc123".into(), now(), actor()).await.unwrap(), "revoked again: no change");
    assert!(!s.revoke_token("nope".into(), now(), actor()).await.unwrap());
    // A token derived by OAuth (no actor) is no event of the tenant's.
    let derived = scim_store::Token { id: "oauth1oauth1".into(), label: Some("oauth:abc123abc123".into()), ..tok };
    s.create_token(derived, None).await.unwrap();
    // The policy changes once: a second identical change is none.
    let required = vec!["userName".to_owned()];
    s.set_required("contoso".into(), required.clone(), now(), actor()).await.unwrap().unwrap();
    s.set_required("contoso".into(), required, now(), actor()).await.unwrap().unwrap();
    assert_eq!(
        types(s, t.id, 0).await,
        ["tenant.created", "tenant.token_created", "tenant.token_revoked", "tenant.updated"],
        "one event per change, none for what changed nothing"
    );
    let updated = body(&events(s, t.id, 3).await[0]);
    assert_eq!(
        updated["changes"],
        json!([{"path": "required", "before": ["userName", "preferredLanguage"], "after": ["userName"]}])
    );
    let created = body(&events(s, t.id, 1).await[0]);
    assert!(created["data"].get("digest").is_none(), "no digest in an event: {created}");
    mk_user(s, t.id, "u1", json!({"userName": "a"})).await;
    assert!(s.delete_tenant("contoso".into()).await.unwrap());
    assert!(s.tenant("contoso".into()).await.unwrap().is_none());
    assert!(s.token("abc123abc123".into()).await.unwrap().is_none());
    assert!(s.get(req::get(t.id, Kind::User, "u1", Load::default())).await.unwrap().is_none());
    assert!(!s.delete_tenant("contoso".into()).await.unwrap());
}

async fn create_get_update_delete(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    let doc = user_doc(json!({"userName": "Jdoe@Contoso.com", "externalId": "jdoe"}));
    let rec = s.create(req::create(t, Kind::User, "u1", doc.clone(), vec![])).await.unwrap();
    assert_eq!(rec.version, 1);
    let got = s.get(req::get(t, Kind::User, "u1", Load::default())).await.unwrap().unwrap();
    assert_eq!(got.doc, doc);
    assert!(s.get(req::get(t, Kind::Group, "u1", Load::default())).await.unwrap().is_none(), "kind is part of the key");
    let doc2 = user_doc(json!({"userName": "jdoe@contoso.com", "title": "Boss"}));
    let up = s
        .update(req::update(t, Kind::User, "u1", Some(1), doc2.clone(), Members::Unchanged, Load::default()))
        .await
        .unwrap();
    assert_eq!(up.version, 2);
    assert_eq!(up.created, rec.created);
    assert!(matches!(
        s.update(req::update(t, Kind::User, "u1", Some(1), doc2.clone(), Members::Unchanged, Load::default())).await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        s.update(req::update(t, Kind::User, "nope", None, doc2, Members::Unchanged, Load::default())).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(s.delete(req::delete(t, Kind::User, "u1", Some(1))).await, Err(StoreError::VersionMismatch)));
    s.delete(req::delete(t, Kind::User, "u1", None)).await.unwrap();
    assert!(s.get(req::get(t, Kind::User, "u1", Load::default())).await.unwrap().is_none());
    assert!(matches!(s.delete(req::delete(t, Kind::User, "u1", None)).await, Err(StoreError::NotFound)));
}

async fn uniqueness_is_per_tenant_and_case_insensitive(e: Engine) {
    let s = e.s();
    let (a, b) = (tenant(s, "a").await, tenant(s, "b").await);
    mk_user(s, a, "u1", json!({"userName": "jdoe@contoso.com", "externalId": "x1"})).await;
    let dup =
        s.create(req::create(a, Kind::User, "u2", user_doc(json!({"userName": "JDOE@contoso.com"})), vec![])).await;
    match dup {
        Err(StoreError::Conflict(d)) => {
            assert!(d.contains("userName \"JDOE@contoso.com\""), "names the value sent: {d}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let dup = s
        .create(req::create(a, Kind::User, "u3", user_doc(json!({"userName": "other", "externalId": "x1"})), vec![]))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(d)) if d.contains("externalId")));
    mk_user(s, b, "u4", json!({"userName": "jdoe@contoso.com", "externalId": "x1"})).await;
    s.create(req::create(a, Kind::Group, "g1", group_doc("Sales"), vec![])).await.unwrap();
    assert!(matches!(
        s.create(req::create(a, Kind::Group, "g2", group_doc("SALES"), vec![])).await,
        Err(StoreError::Conflict(_))
    ));
    mk_user(s, a, "u5", json!({"userName": "sales"})).await;
    // Renaming into a taken name conflicts too.
    let r = s
        .update(req::update(
            a,
            Kind::User,
            "u5",
            None,
            user_doc(json!({"userName": "JDoe@contoso.com"})),
            Members::Unchanged,
            Load::default(),
        ))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
}

async fn tenants_see_nothing_of_each_other(e: Engine) {
    let s = e.s();
    let (a, b) = (tenant(s, "a").await, tenant(s, "b").await);
    mk_user(s, a, "u1", json!({"userName": "x"})).await;
    assert!(s.get(req::get(b, Kind::User, "u1", Load::default())).await.unwrap().is_none());
    assert!(ids(s, b, Kind::User, "userName eq \"x\"").await.is_empty());
    assert!(ids(s, b, Kind::User, "title pr or userName pr").await.is_empty());
    assert!(matches!(s.delete(req::delete(b, Kind::User, "u1", None)).await, Err(StoreError::NotFound)));
    // A member of another tenant cannot be added.
    let g = s.create(req::create(b, Kind::Group, "g1", group_doc("G"), vec![member("u1")])).await;
    assert!(matches!(g, Err(StoreError::Scim(e)) if e.scim_type == Some(ScimType::InvalidValue)));
}

async fn indexed_filters(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(
        s,
        t,
        "u1",
        json!({"userName": "jdoe@contoso.com", "externalId": "jdoe", "displayName": "John Doe",
               "emails": [{"type": "work", "value": "John.Doe@contoso.com"}, {"type": "home", "value": "j@home.example"}],
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}),
    )
    .await;
    mk_user(
        s,
        t,
        "u2",
        json!({"userName": "asmith@contoso.com", "externalId": "ASMITH", "active": false,
                               "emails": [{"type": "work", "value": "a@contoso.com"}]}),
    )
    .await;
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "JDOE@CONTOSO.COM""#).await, ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"externalId eq "jdoe""#).await, ["u1"]);
    assert!(ids(s, t, Kind::User, r#"externalId eq "JDOE""#).await.is_empty(), "externalId is case-exact");
    assert_eq!(ids(s, t, Kind::User, r#"emails[type eq "work"].value eq "john.doe@contoso.com""#).await, ["u1"]);
    assert!(ids(s, t, Kind::User, r#"emails[type eq "home"].value eq "john.doe@contoso.com""#).await.is_empty());
    assert_eq!(ids(s, t, Kind::User, r#"emails.value eq "j@home.example""#).await, ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"emails co "contoso.com""#).await, ["u1", "u2"]);
    assert_eq!(
        ids(
            s,
            t,
            Kind::User,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        )
        .await,
        ["u1"]
    );
    assert_eq!(ids(s, t, Kind::User, r#"id eq "u2""#).await, ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName sw "JD""#).await, ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName ew "CONTOSO.COM""#).await, ["u1", "u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"displayName co "ohn""#).await, ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"externalId ne "jdoe""#).await, ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"not (userName eq "jdoe@contoso.com")"#).await, ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "x" or externalId eq "ASMITH""#).await, ["u2"]);
    assert_eq!(ids(s, t, Kind::User, "meta.lastModified gt \"2000-01-01T00:00:00Z\"").await, ["u1", "u2"]);
    assert!(ids(s, t, Kind::User, "meta.created lt \"2000-01-01T00:00:00Z\"").await.is_empty());
    assert_eq!(ids(s, t, Kind::User, "displayName pr").await, ["u1"]);
    // Not indexed: evaluated by the core on the candidates.
    assert_eq!(ids(s, t, Kind::User, "active eq false").await, ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"active eq "False" and userName sw "a""#).await, ["u2"]);
    assert!(ids(s, t, Kind::User, r#"userName eq "nobody""#).await.is_empty());
}

/// An update writes only the indexed columns and email rows whose values change: what it
/// leaves alone still finds the resource, and each key it changes is found by its new value,
/// no longer by its old one, and is still held unique.
async fn an_update_rewrites_exactly_the_index_keys_it_changes(e: Engine) {
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let s = e.s();
    let t = tenant(s, "a").await;
    let mut body = json!({"userName": "ann@contoso.com", "externalId": "x-ann", "displayName": "Ann",
        "title": "Engineer", "emails": [{"type": "work", "value": "Ann@contoso.com"}], ENT: {"employeeNumber": "E-1"}});
    mk_user(s, t, "u1", body.clone()).await;
    mk_user(s, t, "u2", json!({"userName": "bob@contoso.com", "externalId": "x-bob"})).await;
    s.create(req::create(t, Kind::Group, "g1", group_doc("Staff"), vec![member("u1")])).await.unwrap();
    let update = async |body: &Value| {
        let req = req::update(t, Kind::User, "u1", None, user_doc(body.clone()), Members::Unchanged, Load::default());
        s.update(req).await
    };
    let finds = async |filter: &str| ids(s, t, Kind::User, filter).await == ["u1"];
    let member_display = async || {
        let g = s.get(req::get(t, Kind::Group, "g1", Load { members: true, groups: false })).await.unwrap().unwrap();
        g.members.unwrap()[0].display.clone()
    };
    let keys = |name: &str, ext: &str, display: &str, email: &str, number: &str| {
        [
            format!("userName eq \"{name}\""),
            format!("externalId eq \"{ext}\""),
            format!("displayName eq \"{display}\""),
            format!("emails[type eq \"work\"].value eq \"{email}\""),
            format!("{ENT}:employeeNumber eq \"{number}\""),
        ]
    };
    // Not a key: every key still finds the user.
    body["title"] = json!("Manager");
    update(&body).await.unwrap();
    for f in keys("ann@contoso.com", "x-ann", "Ann", "ann@contoso.com", "e-1") {
        assert!(finds(&f).await, "{f} after a change of title");
    }
    assert!(finds(r#"title eq "Manager""#).await);
    // Each key on its own.
    body["userName"] = json!("anne@contoso.com");
    update(&body).await.unwrap();
    body["externalId"] = json!("x-anne");
    update(&body).await.unwrap();
    body["displayName"] = json!("Anne");
    update(&body).await.unwrap();
    assert_eq!(member_display().await.as_deref(), Some("Anne"), "what member lists show follows displayName");
    body["emails"] = json!([{"type": "work", "value": "anne@contoso.com"}]);
    update(&body).await.unwrap();
    body[ENT]["employeeNumber"] = json!("E-2");
    update(&body).await.unwrap();
    for f in keys("anne@contoso.com", "x-anne", "Anne", "anne@contoso.com", "e-2") {
        assert!(finds(&f).await, "{f} after the change");
    }
    for f in keys("ann@contoso.com", "x-ann", "Ann", "ann@contoso.com", "e-1") {
        assert!(ids(s, t, Kind::User, &f).await.is_empty(), "{f} still finds the user");
    }
    // Removed keys: the user is among those without them.
    let mut bare = body.clone();
    for k in ["externalId", "displayName", "emails", ENT] {
        bare.as_object_mut().unwrap().remove(k);
    }
    update(&bare).await.unwrap();
    for f in ["externalId pr", "displayName pr", "emails pr", &format!("{ENT}:employeeNumber pr")] {
        assert!(ids(s, t, Kind::User, f).await.iter().all(|id| id != "u1"), "{f} after its removal");
    }
    assert_eq!(member_display().await.as_deref(), Some("anne@contoso.com"), "without displayName, the userName");
    // Changed keys are still unique.
    body["userName"] = json!("BOB@contoso.com");
    assert!(
        matches!(update(&body).await, Err(StoreError::Conflict(m)) if m.starts_with("userName")),
        "a userName taken by u2"
    );
    body["userName"] = json!("anne@contoso.com");
    body["externalId"] = json!("x-bob");
    assert!(
        matches!(update(&body).await, Err(StoreError::Conflict(m)) if m.starts_with("externalId")),
        "an externalId taken by u2"
    );
}

/// A look-up by a unique key (`userName eq`, `externalId eq`, `id eq`, a group's
/// `displayName eq`) has its own short path: its total and page are those of any query, at
/// every `startIndex` and `count`.
async fn look_ups_by_a_unique_key_give_the_total_and_page_at_any_start_and_count(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(s, t, "u1", json!({"userName": "Ann@contoso.com", "externalId": "x-ann"})).await;
    mk_user(s, t, "u2", json!({"userName": "bob@contoso.com"})).await;
    s.create(req::create(t, Kind::Group, "g1", group_doc("Staff"), vec![])).await.unwrap();
    let page = async |kind: Kind, filter: &str, start_index: u64, count: u64| {
        let q = Query {
            tenant: t,
            kind,
            filter: Some(Filter::parse(filter).unwrap()),
            sort: None,
            start_index,
            count,
            load: Load::default(),
            position: false,
            seek: None,
        };
        let p = s.query(q).await.unwrap();
        (p.total, p.records.into_iter().map(|r| r.id).collect::<Vec<_>>())
    };
    let one = (Some(1), vec!["u1".to_owned()]);
    assert_eq!(page(Kind::User, r#"userName eq "ANN@contoso.com""#, 1, 100).await, one);
    assert_eq!(page(Kind::User, r#"externalId eq "x-ann""#, 1, 100).await, one);
    assert_eq!(page(Kind::User, r#"id eq "u1""#, 1, 100).await, one);
    assert_eq!(page(Kind::Group, r#"displayName eq "staff""#, 1, 100).await, (Some(1), vec!["g1".to_owned()]));
    assert_eq!(page(Kind::User, r#"userName eq "ann@contoso.com""#, 2, 100).await, (Some(1), vec![]));
    assert_eq!(page(Kind::User, r#"userName eq "ann@contoso.com""#, 1, 0).await, (Some(1), vec![]));
    assert_eq!(page(Kind::User, r#"externalId eq "X-ANN""#, 1, 100).await, (Some(0), vec![]), "case-exact");
    assert_eq!(page(Kind::User, r#"userName eq "nobody""#, 1, 100).await, (Some(0), vec![]));
    assert_eq!(page(Kind::Group, r#"id eq "u1""#, 1, 100).await, (Some(0), vec![]), "a user is no group");
    // After a write, the look-up sees it.
    s.delete(req::delete(t, Kind::User, "u1", None)).await.unwrap();
    assert_eq!(page(Kind::User, r#"userName eq "ann@contoso.com""#, 1, 100).await, (Some(0), vec![]));
}

async fn filters_on_unindexed_attributes_are_bounded(e: Engine) {
    // The same engine as the suite runs on, with other limits.
    let backend = e.backend;
    drop(e);
    let e = Engine::open(backend, Limits { max_candidates: 3 }).await;
    let s = e.s();
    let t = tenant(s, "a").await;
    for i in 0..5 {
        mk_user(
            s,
            t,
            &format!("u{i}"),
            json!({"userName": format!("user{i}"), "title": if i == 4 { "Boss" } else { "Dev" }}),
        )
        .await;
    }
    let f = Filter::parse(r#"title eq "Boss""#).unwrap();
    let q = Query {
        tenant: t,
        kind: Kind::User,
        filter: Some(f),
        sort: None,
        start_index: 1,
        count: 10,
        load: Load::default(),
        position: false,
        seek: None,
    };
    match s.query(q).await {
        Err(StoreError::Scim(e)) => assert_eq!(e.scim_type, Some(ScimType::TooMany)),
        other => panic!("expected tooMany, got {other:?}"),
    }
    // With an indexed conjunct the candidate set is small enough.
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "user4" and title eq "Boss""#).await, ["u4"]);
}

async fn pagination_and_sorting(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    for (i, name) in ["delta", "Alpha", "charlie", "bravo", "echo"].iter().enumerate() {
        mk_user(s, t, &format!("u{i}"), json!({"userName": name, "title": format!("t{}", 5 - i)})).await;
    }
    let page = async |start: u64, count: u64, sort: Option<(AttrPath, SortOrder)>| {
        let q = Query {
            tenant: t,
            kind: Kind::User,
            filter: None,
            sort,
            start_index: start,
            count,
            load: Load::default(),
            position: false,
            seek: None,
        };
        let p = s.query(q).await.unwrap();
        (
            p.total.unwrap(),
            p.records.into_iter().map(|r| r.doc["userName"].as_str().unwrap().to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(page(1, 2, None).await, (5, vec!["delta".to_owned(), "Alpha".to_owned()]), "creation order by default");
    assert_eq!(page(5, 2, None).await, (5, vec!["echo".to_owned()]));
    assert_eq!(page(9, 2, None).await, (5, vec![]));
    assert_eq!(page(1, 0, None).await.0, 5);
    let by_name = AttrPath::parse("userName").unwrap();
    assert_eq!(page(1, 3, Some((by_name.clone(), SortOrder::Ascending))).await.1, ["Alpha", "bravo", "charlie"]);
    assert_eq!(page(1, 2, Some((by_name, SortOrder::Descending))).await.1, ["echo", "delta"]);
    let by_title = AttrPath::parse("title").unwrap();
    assert_eq!(page(1, 2, Some((by_title, SortOrder::Ascending))).await.1, ["echo", "bravo"], "sorted by the core");
}

async fn group_members(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(s, t, "u1", json!({"userName": "one", "displayName": "User One"})).await;
    mk_user(s, t, "u2", json!({"userName": "two"})).await;
    mk_user(s, t, "u3", json!({"userName": "three"})).await;
    let g = s
        .create(req::create(t, Kind::Group, "g1", group_doc("Sales"), vec![member("u1"), member("u2")]))
        .await
        .unwrap();
    let m = g.members.unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].display.as_deref(), Some("User One"));
    assert_eq!(m[1].display.as_deref(), Some("two"), "a user without displayName shows its userName");
    mk_user(s, t, "u4", json!({"userName": "four", "displayName": "Four"})).await;
    let shown = Member { value: "u4".into(), kind: None, display: Some("Shown As".into()) };
    let g2 = s.create(req::create(t, Kind::Group, "g2", group_doc("Named"), vec![shown])).await.unwrap();
    assert_eq!(g2.members.unwrap()[0].display.as_deref(), Some("Shown As"), "the display the client sent wins");
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    let patch = async |body: Value| {
        let cur = s.get(req::get(t, Kind::Group, "g1", Load::default())).await.unwrap().unwrap();
        let request = PatchRequest::parse(&json!({"Operations": body}), &Default::default()).unwrap();
        let out = patch::apply(&def, &cur.doc, &request).unwrap();
        let load = Load { members: true, groups: false };
        s.update(req::update(t, Kind::Group, "g1", Some(cur.version), out.resource, Members::Delta(out.members), load))
            .await
            .unwrap()
            .members
            .unwrap()
            .into_iter()
            .map(|m| m.value)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        patch(json!([{"op": "Add", "path": "members", "value": [{"value": "u3"}, {"value": "u1"}]}])).await,
        ["u1", "u2", "u3"]
    );
    assert_eq!(patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}])).await, ["u1", "u3"]);
    assert_eq!(patch(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}])).await, ["u3"]);
    assert_eq!(
        patch(json!([{"op": "replace", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}])).await,
        ["u1", "u2"]
    );
    assert_eq!(ids(s, t, Kind::Group, r#"id eq "g1" and members eq "u2""#).await, ["g1"]);
    assert!(ids(s, t, Kind::Group, r#"id eq "g1" and members eq "u3""#).await.is_empty());
    assert_eq!(ids(s, t, Kind::Group, r#"members[value eq "u1"]"#).await, ["g1"]);
    let groups = s
        .get(req::get(t, Kind::User, "u1", Load { members: false, groups: true }))
        .await
        .unwrap()
        .unwrap()
        .groups
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].display.as_deref(), Some("Sales"));
    assert_eq!(ids(s, t, Kind::User, r#"groups eq "g1""#).await, ["u1", "u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"groups[value eq "g2"]"#).await, ["u4"]);
    assert_eq!(ids(s, t, Kind::User, "groups pr").await, ["u1", "u2", "u4"]);
    assert_eq!(ids(s, t, Kind::User, r#"not (groups eq "g1") and userName sw "t""#).await, ["u3"]);
    // Deleting a user removes it from its groups, which get a new version and an event.
    let before = s.get(req::get(t, Kind::Group, "g1", Load::default())).await.unwrap().unwrap().version;
    let seen = s.events(t, 0, 1).await.unwrap().position;
    s.delete(req::delete(t, Kind::User, "u1", None)).await.unwrap();
    assert_eq!(s.get(req::get(t, Kind::Group, "g1", Load::default())).await.unwrap().unwrap().version, before + 1);
    let ev = events(s, t, seen).await;
    assert_eq!(ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["group.members_removed", "user.deleted"]);
    let removed = body(&ev[0]);
    assert_eq!((&removed["resource"]["id"], &removed["members"]), (&json!("g1"), &json!(["u1"])));
    assert_eq!(removed["data"]["meta"]["version"], json!(format!("W/\"{}\"", before + 1)));
    assert_eq!(body(&ev[1])["data"]["userName"], "one", "a deletion's data is the resource as it was");
    assert_eq!(patch(json!([{"op": "Replace", "path": "displayName", "value": "Sales EU"}])).await, ["u2"]);
    // Unknown members are refused and nothing is applied.
    let cur = s.get(req::get(t, Kind::Group, "g1", Load::default())).await.unwrap().unwrap();
    let delta = MemberDelta { add: vec![member("u3"), member("ghost")], remove: vec![], remove_all: false };
    let r = s
        .update(req::update(
            t,
            Kind::Group,
            "g1",
            None,
            cur.doc.clone(),
            Members::Delta(delta),
            Load { members: true, groups: false },
        ))
        .await;
    assert!(matches!(r, Err(StoreError::Scim(e)) if e.detail.contains("ghost")));
    let after = s.get(req::get(t, Kind::Group, "g1", Load { members: true, groups: false })).await.unwrap().unwrap();
    assert_eq!(after.members.unwrap().len(), 1, "a failed update changes nothing");
    assert_eq!(after.version, cur.version);
    // Members are not loaded unless asked for.
    assert!(s.get(req::get(t, Kind::Group, "g1", Load::default())).await.unwrap().unwrap().members.is_none());
}

/// Groups as members of groups, each written and deleted whichever of two groups has the
/// smaller key: on PostgreSQL a write that finds it needs a group row before one it holds runs
/// again taking them in order (`sql::locks`); the result is the same.
async fn groups_of_groups_are_written_and_deleted_whatever_their_keys(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(s, t, "u1", json!({"userName": "one"})).await;
    for (id, name) in [("g1", "First"), ("g2", "Second"), ("g3", "Third")] {
        s.create(req::create(t, Kind::Group, id, group_doc(name), vec![])).await.unwrap();
    }
    let load = Load { members: true, groups: false };
    let version = |id: &'static str, kind: Kind| async move {
        s.get(req::get(t, kind, id, Load::default())).await.unwrap().unwrap().version
    };
    let members_of = |id: &'static str| async move {
        let g = s.get(req::get(t, Kind::Group, id, load)).await.unwrap().unwrap();
        let mut ids = g.members.unwrap().into_iter().map(|m| m.value).collect::<Vec<_>>();
        ids.sort();
        ids
    };
    // g3 (the newest) gets g1 (an older group) and u1; g1 gets g2 (a newer one) and u1.
    let g1 = version("g1", Kind::Group).await;
    let add = |ids: &[&str]| MemberDelta {
        add: ids.iter().map(|id| member(id)).collect(),
        remove: vec![],
        remove_all: false,
    };
    s.patch(req::update_members(t, Kind::Group, "g3", add(&["g1", "u1"]), load)).await.unwrap();
    assert_eq!(version("g1", Kind::Group).await, g1 + 1, "a member group gets a new version");
    s.patch(req::update_members(t, Kind::Group, "g1", add(&["u1", "g2"]), load)).await.unwrap();
    assert_eq!(members_of("g3").await, ["g1", "u1"]);
    assert_eq!(members_of("g1").await, ["g2", "u1"]);
    // A PUT of g2 (newer than the g1 it is in) with g1's other member.
    let put = Members::Replace(vec![member("u1")]);
    s.update(req::update(t, Kind::Group, "g2", None, group_doc("Second"), put, load)).await.unwrap();
    // Deleting g1 leaves g3 (newer) and its own members g2 (newer) and u1.
    let (g2, g3, u1) =
        (version("g2", Kind::Group).await, version("g3", Kind::Group).await, version("u1", Kind::User).await);
    let seen = s.events(t, 0, 1000).await.unwrap().position;
    s.delete(req::delete(t, Kind::Group, "g1", None)).await.unwrap();
    assert_eq!(types(s, t, seen).await, ["group.members_removed", "group.deleted"]);
    assert_eq!(members_of("g3").await, ["u1"]);
    assert_eq!(version("g3", Kind::Group).await, g3 + 1);
    assert_eq!(version("g2", Kind::Group).await, g2 + 1, "a deleted group's members get a new version");
    assert_eq!(version("u1", Kind::User).await, u1 + 1);
    // Deleting g3 (which holds u1, older than it).
    s.delete(req::delete(t, Kind::Group, "g3", None)).await.unwrap();
    let groups = s.get(req::get(t, Kind::User, "u1", Load { members: false, groups: true })).await.unwrap().unwrap();
    assert_eq!(groups.groups.unwrap().into_iter().map(|g| g.value).collect::<Vec<_>>(), ["g2"]);
    assert_eq!(members_of("g2").await, ["u1"]);
}

async fn member_only_updates_leave_the_document_alone(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(s, t, "u1", json!({"userName": "one"})).await;
    mk_user(s, t, "u2", json!({"userName": "two"})).await;
    let g = s.create(req::create(t, Kind::Group, "g1", group_doc("Sales"), vec![member("u1")])).await.unwrap();
    let delta = MemberDelta { add: vec![member("u2")], remove: vec!["u1".into()], remove_all: false };
    let load = Load { members: true, groups: false };
    let rec = s.patch(req::update_members(t, Kind::Group, "g1", delta.clone(), load)).await.unwrap();
    assert_eq!(rec.version, g.version + 1);
    assert_eq!(rec.doc, g.doc);
    assert_eq!(rec.members.unwrap().into_iter().map(|m| m.value).collect::<Vec<_>>(), ["u2"]);
    let ev = events(s, t, 0).await;
    let tail: Vec<Value> = ev.iter().rev().take(2).rev().map(body).collect();
    assert_eq!(
        tail.iter().map(|b| (b["type"].clone(), b["members"].clone())).collect::<Vec<_>>(),
        [(json!("group.members_removed"), json!(["u1"])), (json!("group.members_added"), json!(["u2"]))],
        "a PATCH that adds and removes gives both"
    );
    assert!(tail.iter().all(|b| b["data"].get("members").is_none()), "a group's data never lists its members");
    // A change to nothing (adding a member again) writes nothing and tells nothing.
    let again = MemberDelta { add: vec![member("u2")], remove: vec![], remove_all: false };
    assert_eq!(s.patch(req::update_members(t, Kind::Group, "g1", again, load)).await.unwrap().version, g.version + 1);
    assert_eq!(events(s, t, 0).await.len(), ev.len());
    let ghost = MemberDelta { add: vec![member("ghost")], remove: vec!["u2".into()], remove_all: false };
    assert!(matches!(s.patch(req::update_members(t, Kind::Group, "g1", ghost, load)).await, Err(StoreError::Scim(_))));
    let after = s.get(req::get(t, Kind::Group, "g1", load)).await.unwrap().unwrap();
    assert_eq!(after.members.unwrap().len(), 1, "nothing applied");
    assert_eq!(after.version, g.version + 1);
    assert!(matches!(
        s.patch(req::update_members(t, Kind::Group, "nope", delta, load)).await,
        Err(StoreError::NotFound)
    ));
}

async fn change_feed(e: Engine) {
    let s = e.s();
    let (t, other) = (tenant(s, "a").await, tenant(s, "b").await);
    mk_user(s, t, "u1", json!({"userName": "x"})).await;
    mk_user(s, other, "o1", json!({"userName": "x"})).await;
    s.update(req::update(
        t,
        Kind::User,
        "u1",
        None,
        user_doc(json!({"userName": "y"})),
        Members::Unchanged,
        Load::default(),
    ))
    .await
    .unwrap();
    s.delete(req::delete(t, Kind::User, "u1", None)).await.unwrap();
    let ev = events(s, t, 0).await;
    assert_eq!(
        ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["tenant.created", "user.created", "user.updated", "user.deleted"]
    );
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4], "per tenant, gapless");
    let updated = body(&ev[2]);
    assert_eq!(updated["changes"], json!([{"path": "userName", "before": "x", "after": "y"}]));
    assert_eq!(updated["actor"]["path"], "contract test");
    assert_eq!(updated["resource"], json!({"type": "User", "id": "u1", "externalId": null}));
    assert_eq!(events(s, t, 2).await.len(), 2);
    let page = s.events(t, 0, 1).await.unwrap();
    assert_eq!((page.events.len(), page.position, page.pruned), (1, 4, 0));
    assert_eq!(types(s, other, 0).await, ["tenant.created", "user.created"]);
    // A PUT of the same document changes nothing: no new version, no event.
    mk_user(s, t, "u2", json!({"userName": "same"})).await;
    let cur = s.get(req::get(t, Kind::User, "u2", Load::default())).await.unwrap().unwrap();
    let put = req::update(t, Kind::User, "u2", None, cur.doc.clone(), Members::Unchanged, Load::default());
    assert_eq!(s.update(put).await.unwrap().version, cur.version);
    assert_eq!(events(s, t, 0).await.len(), 5);
    // Deactivation and reactivation are their own types, whatever the shape of the write.
    let off = user_doc(json!({"userName": "same", "active": false}));
    s.update(req::update(t, Kind::User, "u2", None, off, Members::Unchanged, Load::default())).await.unwrap();
    let on = user_doc(json!({"userName": "same"}));
    s.update(req::update(t, Kind::User, "u2", None, on, Members::Unchanged, Load::default())).await.unwrap();
    assert_eq!(types(s, t, 5).await, ["user.deactivated", "user.reactivated"]);
}

async fn failed_write_leaves_no_event(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    mk_user(s, t, "u1", json!({"userName": "x"})).await;
    assert!(s.create(req::create(t, Kind::User, "u2", user_doc(json!({"userName": "X"})), vec![])).await.is_err());
    assert_eq!(types(s, t, 0).await, ["tenant.created", "user.created"], "a write and its event commit together");
    assert!(s.get(req::get(t, Kind::User, "u2", Load::default())).await.unwrap().is_none());
}

/// A list is read in one snapshot: while writers commit, every page's total is the number of
/// records it carries (all of them fit in one page).
async fn a_query_reads_one_snapshot_while_writers_run(e: Engine) {
    let s = e.arc();
    let t = tenant(&*s, "a").await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let id = format!("w{w}u{i}");
                    let doc = user_doc(json!({"userName": id}));
                    s.create(req::create(t, Kind::User, &id, doc, vec![])).await.unwrap();
                }
            })
        })
        .collect();
    let list = || Query {
        tenant: t,
        kind: Kind::User,
        filter: None,
        sort: None,
        start_index: 1,
        count: 1000,
        load: Load::default(),
        position: false,
        seek: None,
    };
    let mut reads = 0;
    loop {
        // One more read after the writers are done.
        let done = writers.iter().all(|w| w.is_finished());
        let page = s.query(list()).await.unwrap();
        assert_eq!(page.total, Some(page.records.len() as u64), "read {reads}: a total that disagrees with its page");
        reads += 1;
        if done {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let page = s.query(list()).await.unwrap();
    assert_eq!((page.total, page.records.len()), (Some(200), 200));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Engine::open(Backend::Sqlite, Limits::default()).await).await
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
                async fn $name() {
                    super::$name(Engine::open(Backend::Postgres, Limits::default()).await).await
                }
            )*
        }
    };
}

/// Candidates for the core are read in batches (256 rows): a filter or sort the core finishes
/// gives the same total, page and order across batch boundaries as one read would.
async fn residual_queries_page_and_sort_across_candidate_batches(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    for i in 0..600 {
        let title = format!("t{}-{:03}", i % 3, 599 - i);
        mk_user(s, t, &format!("u{i:03}"), json!({"userName": format!("user{i:03}"), "title": title})).await;
    }
    let query = |filter: &str, sort: Option<SortOrder>, start_index: u64, count: u64| Query {
        tenant: t,
        kind: Kind::User,
        filter: Some(Filter::parse(filter).unwrap()),
        sort: sort.map(|o| (AttrPath::parse("title").unwrap(), o)),
        start_index,
        count,
        load: Load::default(),
        position: false,
        seek: None,
    };
    // 200 matches, in creation order; the page straddles two batches.
    let page = s.query(query(r#"title sw "t1""#, None, 81, 100)).await.unwrap();
    assert_eq!(page.total, Some(200));
    let ids: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
    let want: Vec<String> = (0..600).filter(|i| i % 3 == 1).skip(80).take(100).map(|i| format!("u{i:03}")).collect();
    assert_eq!(ids, want);
    // Sorted by a non-indexed attribute (the last users created have the smallest titles).
    let page = s.query(query(r#"title sw "t1""#, Some(SortOrder::Ascending), 1, 3)).await.unwrap();
    let titles: Vec<&str> = page.records.iter().map(|r| r.doc["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["t1-001", "t1-004", "t1-007"]);
    let page = s.query(query(r#"title sw "t""#, Some(SortOrder::Descending), 599, 5)).await.unwrap();
    assert_eq!((page.total, page.records.len()), (Some(600), 2));
    assert_eq!(page.records[1].doc["title"], "t0-002", "the last of 600 sorted descending");
}

/// A PATCH reads, applies and writes under a lock: concurrent PATCHes never lose an update and
/// never need a retry (on PostgreSQL, optimistic retries once surfaced as 412 to clients that
/// sent no If-Match). A PATCH that changes nothing, or is refused, writes nothing.
async fn patches_never_lose_a_concurrent_update(e: Engine) {
    let s = e.store.clone().unwrap();
    let t = tenant(s.as_ref(), "a").await;
    mk_user(s.as_ref(), t, "u1", json!({"userName": "one", "title": ""})).await;
    let append = |c: char| -> scim_store::PatchFn {
        std::sync::Arc::new(move |cur: &scim_store::Record| {
            let mut doc = cur.doc.clone();
            let title = format!("{}{c}", doc.get("title").and_then(Value::as_str).unwrap_or_default());
            doc["title"] = json!(title);
            Ok(Some(scim_store::Patched { doc, delta: Default::default() }))
        })
    };
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let (s, apply) = (s.clone(), append(char::from(b'a' + i)));
            tokio::spawn(async move {
                let req = scim_store::Patch {
                    tenant: t,
                    kind: Kind::User,
                    id: "u1".into(),
                    now: now(),
                    apply,
                    load: Load::default(),
                    actor: actor(),
                };
                s.patch(req).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let rec = s.get(req::get(t, Kind::User, "u1", Load::default())).await.unwrap().unwrap();
    assert_eq!(rec.doc["title"].as_str().unwrap().len(), 20, "{}", rec.doc);
    assert_eq!(rec.version, 21);
    let before = events(s.as_ref(), t, 0).await.len();
    // Nothing to change: nothing written, no event.
    let unchanged: scim_store::PatchFn = std::sync::Arc::new(|_: &scim_store::Record| Ok(None));
    let req = scim_store::Patch {
        tenant: t,
        kind: Kind::User,
        id: "u1".into(),
        now: now(),
        apply: unchanged,
        load: Load::default(),
        actor: actor(),
    };
    assert_eq!(s.patch(req).await.unwrap().version, 21);
    // Refused: nothing written.
    let refuse: scim_store::PatchFn = std::sync::Arc::new(|_: &scim_store::Record| Err(StoreError::VersionMismatch));
    let req = scim_store::Patch {
        tenant: t,
        kind: Kind::User,
        id: "u1".into(),
        now: now(),
        apply: refuse,
        load: Load::default(),
        actor: actor(),
    };
    assert!(matches!(s.patch(req).await, Err(StoreError::VersionMismatch)));
    assert_eq!(s.get(req::get(t, Kind::User, "u1", Load::default())).await.unwrap().unwrap().version, 21);
    assert_eq!(events(s.as_ref(), t, 0).await.len(), before);
}

async fn a_rotation_stores_the_new_token_and_expires_the_old_in_one_transaction(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    let token = |id: &str| scim_store::Token {
        id: id.into(),
        tenant: t,
        digest: vec![1],
        label: Some("entra".into()),
        created: now(),
        expires: None,
        revoked: None,
        last_used: None,
    };
    s.create_token(token("old111111111"), Some(actor())).await.unwrap();
    let until = now() + time::Duration::hours(1);
    s.rotate_token(token("new111111111"), "old111111111".into(), until, now(), actor()).await.unwrap();
    assert!(s.token("new111111111".into()).await.unwrap().is_some());
    let old = s.token("old111111111".into()).await.unwrap().unwrap();
    assert!((old.expires.unwrap() - until).abs() < time::Duration::milliseconds(1));
    assert_eq!(types(s, t, 2).await, ["tenant.token_created", "tenant.token_rotated"]);
    // A rotation of no token keeps nothing of itself.
    let r = s.rotate_token(token("new222222222"), "nope".into(), until, now(), actor()).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(s.token("new222222222".into()).await.unwrap().is_none(), "the new token was rolled back");
    assert_eq!(types(s, t, 4).await, Vec::<String>::new());
}

// ------------------------------------------- the provisioning log, health, setup links, sessions

/// A fixed instant with whole microseconds (what both engines store), `min` minutes on.
fn at(min: i64) -> OffsetDateTime {
    let base = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
    base + time::Duration::minutes(min)
}

/// Now, cut to whole microseconds (the stores keep microseconds).
fn now_us() -> OffsetDateTime {
    let n = now();
    n.replace_nanosecond(n.nanosecond() / 1000 * 1000).unwrap()
}

/// A logged request at minute `min`.
fn logged(tenant: i64, min: i64, method: &str, path: &str, status: u16) -> scim_store::LoggedRequest {
    scim_store::LoggedRequest {
        id: 0,
        tenant,
        at: at(min),
        token: Some("tok111111111".into()),
        method: method.into(),
        path: path.into(),
        status,
        scim_type: None,
        detail: None,
        latency_us: 1234,
        resource: None,
        hint: None,
    }
}

/// A tenant's logged requests, newest first, as `q` (with the tenant) selects.
async fn requests_of(s: &dyn Store, q: scim_store::RequestQuery) -> Vec<scim_store::LoggedRequest> {
    s.requests(q).await.unwrap()
}

fn all_of(tenant: i64) -> scim_store::RequestQuery {
    scim_store::RequestQuery { tenant, limit: 1000, ..Default::default() }
}

fn statuses_of(list: &[scim_store::LoggedRequest]) -> Vec<u16> {
    list.iter().map(|r| r.status).collect()
}

fn minutes_of(list: &[scim_store::LoggedRequest]) -> Vec<i64> {
    list.iter().map(|r| (r.at - at(0)).whole_minutes()).collect()
}

/// The log keeps every field of each request; it lists a tenant's requests newest first (by
/// key, in the order they were logged), filtered by instant, key and status range, and never
/// another tenant's; requests of a tenant that does not exist are dropped.
async fn the_request_log_lists_newest_first_with_filters(e: Engine) {
    let s = e.s();
    let a = tenant(s, "a").await;
    let b = tenant(s, "b").await;
    let mut full = logged(a, 0, "POST", "/Users", 409);
    full.scim_type = Some("uniqueness".into());
    full.detail = Some("userName \"x\" is already used by another User of this tenant".into());
    full.hint = Some("userName \"x\" is held by User u1".into());
    full.resource = Some("u9".into());
    full.latency_us = 987_654;
    let batch = vec![
        full.clone(),
        logged(a, 1, "GET", "/Users?filter", 200),
        logged(b, 1, "GET", "/Users", 200),
        logged(a, 2, "POST", "/Users", 400),
        logged(a, 3, "GET", "/Users/x", 404),
        logged(9_999_999, 3, "GET", "/Users", 200),
    ];
    s.log_requests(batch).await.unwrap();
    s.log_requests(vec![logged(a, 4, "PATCH", "/Users/u1", 200), logged(a, 5, "DELETE", "/Users/u1", 500)])
        .await
        .unwrap();
    s.log_requests(vec![]).await.unwrap();

    let list = requests_of(s, all_of(a)).await;
    assert_eq!(minutes_of(&list), [5, 4, 3, 2, 1, 0], "newest first");
    assert!(list.windows(2).all(|w| w[0].id > w[1].id), "keys increase in log order: {list:?}");
    let oldest = list.last().unwrap();
    assert_eq!(scim_store::LoggedRequest { id: 0, ..oldest.clone() }, full, "every field round-trips");
    assert_eq!(statuses_of(&requests_of(s, all_of(b)).await), [200], "b sees only its own");
    assert!(requests_of(s, all_of(9_999_999)).await.is_empty(), "no log for a tenant that does not exist");

    let q = |f: fn(&mut scim_store::RequestQuery)| {
        let mut q = all_of(a);
        f(&mut q);
        q
    };
    assert_eq!(statuses_of(&requests_of(s, q(|q| q.status = Some((400, 499)))).await), [404, 400, 409]);
    assert_eq!(statuses_of(&requests_of(s, q(|q| q.status = Some((500, 599)))).await), [500]);
    assert_eq!(statuses_of(&requests_of(s, q(|q| q.status = Some((200, 200)))).await), [200, 200]);
    assert_eq!(minutes_of(&requests_of(s, q(|q| q.since = Some(at(3)))).await), [5, 4, 3], "since is inclusive");
    assert_eq!(minutes_of(&requests_of(s, q(|q| q.limit = 2)).await), [5, 4]);
    let before = list[1].id;
    let older = requests_of(s, scim_store::RequestQuery { before: Some(before), ..all_of(a) }).await;
    assert_eq!(minutes_of(&older), [3, 2, 1, 0], "before is exclusive");
    let page = requests_of(
        s,
        scim_store::RequestQuery {
            tenant: a,
            since: Some(at(1)),
            before: Some(before),
            status: Some((200, 499)),
            limit: 2,
        },
    )
    .await;
    assert_eq!((minutes_of(&page), statuses_of(&page)), (vec![3, 2], vec![404, 400]), "all filters at once");
    // Another tenant's key range is no way in.
    let b_id = requests_of(s, all_of(b)).await[0].id;
    let q = scim_store::RequestQuery { before: Some(i64::MAX), ..all_of(b) };
    assert_eq!(requests_of(s, q).await.iter().map(|r| r.id).collect::<Vec<_>>(), [b_id]);
}

/// The traffic summary is folded as requests are logged, batch after batch, exactly as
/// `Traffic::apply` folds them one by one: first and last instants, the 401 streak across
/// batches, and provisioning cycles split by a pause longer than `CYCLE_GAP`.
async fn the_traffic_summary_folds_across_batches(e: Engine) {
    let s = e.s();
    let a = tenant(s, "a").await;
    let b = tenant(s, "b").await;
    let batches = [
        vec![
            logged(a, 0, "GET", "/Users?filter", 401),
            logged(a, 1, "GET", "/Users?filter", 401),
            logged(a, 2, "GET", "/Users?filter", 200),
            logged(a, 3, "POST", "/Users", 201),
            logged(a, 4, "GET", "/Users/x", 404),
            logged(a, 5, "GET", "/Users", 401),
        ],
        vec![logged(a, 6, "GET", "/Users", 401), logged(a, 7, "POST", "/Users/.search", 401)],
        vec![logged(a, 30, "POST", "/Users", 400), logged(a, 31, "PATCH", "/Users/u1", 200)],
    ];
    let mut want = scim_store::Traffic { tenant: a, ..Default::default() };
    assert!(s.traffic(Some(a)).await.unwrap().is_empty(), "no summary before the first request");
    for (i, batch) in batches.iter().enumerate() {
        s.log_requests(batch.clone()).await.unwrap();
        for r in batch {
            want.apply(r);
        }
        let got = s.traffic(Some(a)).await.unwrap();
        assert_eq!(got, [want.clone()], "after batch {i}");
        if i == 1 {
            assert_eq!(got[0].unauthorized_streak, 3, "the streak goes on across batches");
        }
    }
    let t = s.traffic(Some(a)).await.unwrap().remove(0);
    assert_eq!(
        (t.first_request, t.last_request, t.first_success, t.last_success, t.first_user, t.last_write),
        (Some(at(0)), Some(at(31)), Some(at(2)), Some(at(31)), Some(at(3)), Some(at(31)))
    );
    assert_eq!(t.unauthorized_streak, 0);
    let cycle =
        |start, last, requests, errors| Some(scim_store::Cycle { start: at(start), last: at(last), requests, errors });
    assert_eq!(t.previous, cycle(0, 7, 8, 5), "a 404 is no error; the 401s are");
    assert_eq!(t.cycle, cycle(30, 31, 2, 1));
    assert_eq!(t.health, None);
    // Every tenant with traffic, and only those.
    assert_eq!(s.traffic(None).await.unwrap().iter().map(|t| t.tenant).collect::<Vec<_>>(), [a]);
    s.log_requests(vec![logged(b, 0, "GET", "/Users", 200)]).await.unwrap();
    assert_eq!(s.traffic(None).await.unwrap().iter().map(|t| t.tenant).collect::<Vec<_>>(), [a, b]);
}

/// Regression: a log far longer than it may be was cut in one transaction (two million
/// requests held SQLite's writer for two seconds). It is cut a batch (10,000) at a time now:
/// every batch is counted, and the newest `keep` stay, whichever batch the cut falls in.
async fn a_long_request_log_is_pruned_in_batches_to_the_newest_kept(e: Engine) {
    let s = e.s();
    let a = tenant(s, "a").await;
    for chunk in 0..25 {
        s.log_requests((0..1000).map(|m| logged(a, chunk * 1000 + m, "GET", "/Users", 200)).collect()).await.unwrap();
    }
    assert_eq!(s.prune_requests(None, Some(150)).await.unwrap(), 24_850);
    let kept = requests_of(s, all_of(a)).await;
    assert_eq!(minutes_of(&kept), (24_850..25_000).rev().collect::<Vec<_>>());
    assert_eq!(s.prune_requests(None, Some(150)).await.unwrap(), 0, "idempotent");
    // By age, across batches too.
    s.log_requests((0..12_000).map(|m| logged(a, 30_000 + m, "GET", "/Users", 200)).collect()).await.unwrap();
    assert_eq!(s.prune_requests(Some(at(41_990)), None).await.unwrap(), 150 + 11_990);
    assert_eq!(minutes_of(&requests_of(s, all_of(a)).await), (41_990..42_000).rev().collect::<Vec<_>>());
}

/// Pruning deletes, per tenant, the requests before an instant and those beyond the newest
/// `keep`; the traffic summaries stay.
async fn the_request_log_is_pruned_by_age_and_by_count(e: Engine) {
    let s = e.s();
    let a = tenant(s, "a").await;
    let b = tenant(s, "b").await;
    s.log_requests((0..10).map(|m| logged(a, m, "GET", "/Users", 200)).collect()).await.unwrap();
    s.log_requests((20..23).map(|m| logged(b, m, "GET", "/Groups", 200)).collect()).await.unwrap();
    let summaries = s.traffic(None).await.unwrap();
    assert_eq!(s.prune_requests(None, None).await.unwrap(), 0);

    assert_eq!(s.prune_requests(Some(at(5)), None).await.unwrap(), 5, "a's minutes 0 to 4");
    assert_eq!(minutes_of(&requests_of(s, all_of(a)).await), [9, 8, 7, 6, 5]);
    assert_eq!(minutes_of(&requests_of(s, all_of(b)).await), [22, 21, 20]);

    assert_eq!(s.prune_requests(None, Some(2)).await.unwrap(), 4, "3 of a's, 1 of b's");
    assert_eq!(minutes_of(&requests_of(s, all_of(a)).await), [9, 8], "the newest 2 of each tenant");
    assert_eq!(minutes_of(&requests_of(s, all_of(b)).await), [22, 21]);
    assert_eq!(s.prune_requests(None, Some(2)).await.unwrap(), 0, "idempotent");

    assert_eq!(s.prune_requests(Some(at(22)), Some(10)).await.unwrap(), 3, "both rules at once");
    assert!(requests_of(s, all_of(a)).await.is_empty());
    assert_eq!(minutes_of(&requests_of(s, all_of(b)).await), [22]);
    assert_eq!(s.traffic(None).await.unwrap(), summaries, "the summaries survive the pruning");
    // New requests are logged after a pruning as before.
    s.log_requests(vec![logged(a, 40, "GET", "/Users", 200)]).await.unwrap();
    assert_eq!(minutes_of(&requests_of(s, all_of(a)).await), [40]);
}

/// A health status is recorded only if the recorded one is still `before` (of several replicas
/// noticing the same change, one records it), each time with one `tenant.health_changed` event.
async fn set_health_compares_and_sets_with_one_event(e: Engine) {
    let s = e.store.clone().unwrap();
    let a = tenant(s.as_ref(), "a").await;
    let from = events(s.as_ref(), a, 0).await.last().unwrap().seq;
    let data = json!({"status": "healthy", "problems": []});
    assert!(s.set_health(a, None, "healthy".into(), data.clone(), now()).await.unwrap());
    assert!(!s.set_health(a, None, "failing".into(), json!({}), now()).await.unwrap(), "before is stale");
    assert!(!s.set_health(a, Some("failing".into()), "stale".into(), json!({}), now()).await.unwrap());
    assert_eq!(s.traffic(Some(a)).await.unwrap()[0].health.as_deref(), Some("healthy"));
    let failing = json!({"status": "failing", "problems": [{"code": "unauthorized", "detail": "401s"}]});
    assert!(s.set_health(a, Some("healthy".into()), "failing".into(), failing.clone(), now()).await.unwrap());
    assert!(!s.set_health(9_999_999, None, "healthy".into(), json!({}), now()).await.unwrap(), "no such tenant");

    let evs = events(s.as_ref(), a, from).await;
    assert_eq!(evs.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["tenant.health_changed"; 2]);
    let first = body(&evs[0]);
    assert_eq!(first["changes"], json!([{"path": "health.status", "before": "never_connected", "after": "healthy"}]));
    assert_eq!(first["data"], data);
    assert_eq!(first["resource"], json!({"type": "Tenant", "id": "a", "externalId": null}));
    let second = body(&evs[1]);
    assert_eq!(second["changes"], json!([{"path": "health.status", "before": "healthy", "after": "failing"}]));
    assert_eq!(second["data"], failing);

    // Two replicas at once: one records the change, one event.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(
                async move { s.set_health(a, Some("failing".into()), "healthy".into(), json!({}), now()).await },
            )
        })
        .collect();
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one of the racing replicas records the change");
    assert_eq!(events(s.as_ref(), a, from).await.len(), 3);
    assert_eq!(s.traffic(Some(a)).await.unwrap()[0].health.as_deref(), Some("healthy"));
    // The health survives more traffic being folded in.
    s.log_requests(vec![logged(a, 0, "GET", "/Users", 200)]).await.unwrap();
    assert_eq!(s.traffic(Some(a)).await.unwrap()[0].health.as_deref(), Some("healthy"));
}

fn invite_rec(id: &str, tenant: i64, expires: OffsetDateTime) -> scim_store::Invite {
    scim_store::Invite {
        id: id.into(),
        tenant,
        digest: vec![0xde, 0xad, 0xbe, 0xef],
        created: now_us() - time::Duration::minutes(1),
        expires,
        revoked: None,
        redeemed: None,
        token: None,
    }
}

fn token_rec(id: &str, tenant: i64) -> scim_store::Token {
    scim_store::Token {
        id: id.into(),
        tenant,
        digest: vec![7],
        label: Some("setup link".into()),
        created: now(),
        expires: None,
        revoked: None,
        last_used: None,
    }
}

/// A setup link reveals one token: the redemption marks it used and stores the token in one
/// transaction, once, and never for a revoked or expired link or another tenant's token.
async fn redeem_invite_stores_its_token_only_once(e: Engine) {
    let s = e.store.clone().unwrap();
    let a = tenant(s.as_ref(), "a").await;
    let b = tenant(s.as_ref(), "b").await;
    let day = now_us() + time::Duration::days(1);
    let open = invite_rec("inv111111111", a, day);
    s.create_invite(open.clone()).await.unwrap();
    assert_eq!(s.invite("inv111111111".into()).await.unwrap(), Some(open.clone()), "round-trips");
    assert_eq!(s.invite("nope".into()).await.unwrap(), None);
    let r = s.create_invite(invite_rec("inv999999999", 9_999_999, day)).await;
    assert!(matches!(r, Err(StoreError::NoTenant)), "{r:?}");

    let from = events(s.as_ref(), a, 0).await.last().unwrap().seq;
    let when = now_us();
    assert!(s.redeem_invite(open.id.clone(), token_rec("tok111111111", a), when, actor()).await.unwrap());
    let used = s.invite(open.id.clone()).await.unwrap().unwrap();
    assert_eq!((used.redeemed, used.token.as_deref()), (Some(when), Some("tok111111111")));
    assert_eq!(s.token("tok111111111".into()).await.unwrap().unwrap().tenant, a, "the token is stored");
    assert_eq!(types(s.as_ref(), a, from).await, ["tenant.token_created"]);
    assert!(!s.redeem_invite(open.id.clone(), token_rec("tok222222222", a), now(), actor()).await.unwrap());
    assert!(s.token("tok222222222".into()).await.unwrap().is_none(), "a second redemption stores nothing");
    let again = s.invite(open.id.clone()).await.unwrap().unwrap();
    assert_eq!((again.redeemed, again.token.as_deref()), (Some(when), Some("tok111111111")), "unchanged");

    // Revoked, expired, another tenant's token, no such link: nothing.
    s.create_invite(invite_rec("inv222222222", a, day)).await.unwrap();
    assert!(s.revoke_invite("inv222222222".into(), now_us()).await.unwrap());
    assert!(s.invite("inv222222222".into()).await.unwrap().unwrap().revoked.is_some());
    s.create_invite(invite_rec("inv333333333", a, now_us() - time::Duration::seconds(1))).await.unwrap();
    s.create_invite(invite_rec("inv444444444", a, day)).await.unwrap();
    for (id, token) in [
        ("inv222222222", token_rec("tok333333333", a)),
        ("inv333333333", token_rec("tok444444444", a)),
        ("inv444444444", token_rec("tok555555555", b)),
        ("inv000000000", token_rec("tok666666666", a)),
    ] {
        let tid = token.id.clone();
        assert!(!s.redeem_invite(id.into(), token, now(), actor()).await.unwrap(), "{id}");
        assert!(s.token(tid).await.unwrap().is_none(), "{id}: nothing stored");
    }
    assert!(!s.revoke_invite("inv000000000".into(), now()).await.unwrap());
    // Revoking twice keeps the first instant.
    let first = s.invite("inv222222222".into()).await.unwrap().unwrap().revoked;
    assert!(s.revoke_invite("inv222222222".into(), now_us() + time::Duration::hours(1)).await.unwrap());
    assert_eq!(s.invite("inv222222222".into()).await.unwrap().unwrap().revoked, first);
    // The tenant's links, newest first; none of another tenant's.
    let mut newest = invite_rec("inv555555555", a, day);
    newest.created = now_us() + time::Duration::seconds(5);
    s.create_invite(newest).await.unwrap();
    let listed: Vec<String> = s.list_invites(a).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed[0], "inv555555555");
    assert_eq!(listed.len(), 5);
    assert!(s.list_invites(b).await.unwrap().is_empty());

    // Racing redemptions of one link: one wins, one token stored.
    s.create_invite(invite_rec("inv666666666", a, day)).await.unwrap();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let token = token_rec(&format!("race{i:08}"), a);
                s.redeem_invite("inv666666666".into(), token, now(), actor()).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        if r.await.unwrap().unwrap() {
            won.push(format!("race{i:08}"));
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let stored: Vec<String> =
        s.list_tokens(a).await.unwrap().into_iter().map(|t| t.id).filter(|id| id.starts_with("race")).collect();
    assert_eq!(stored, won);
    assert_eq!(s.invite("inv666666666".into()).await.unwrap().unwrap().token, won.first().cloned());
}

/// Deleting a tenant deletes its provisioning log, traffic summary and setup links; later
/// requests of it are dropped; other tenants keep theirs.
async fn deleting_a_tenant_removes_its_log_traffic_and_invites(e: Engine) {
    let s = e.s();
    let a = tenant(s, "a").await;
    let b = tenant(s, "b").await;
    s.log_requests(vec![logged(a, 0, "GET", "/Users", 200), logged(b, 0, "GET", "/Users", 200)]).await.unwrap();
    assert!(s.set_health(a, None, "healthy".into(), json!({}), now()).await.unwrap());
    let day = now_us() + time::Duration::days(1);
    s.create_invite(invite_rec("inva11111111", a, day)).await.unwrap();
    s.create_invite(invite_rec("invb11111111", b, day)).await.unwrap();

    assert!(s.delete_tenant("a".into()).await.unwrap());
    assert!(requests_of(s, all_of(a)).await.is_empty());
    assert!(s.traffic(Some(a)).await.unwrap().is_empty());
    assert_eq!(s.traffic(None).await.unwrap().iter().map(|t| t.tenant).collect::<Vec<_>>(), [b]);
    assert!(s.invite("inva11111111".into()).await.unwrap().is_none());
    assert!(s.list_invites(a).await.unwrap().is_empty());
    // A request of the deleted tenant still queued when it went is dropped.
    s.log_requests(vec![logged(a, 1, "GET", "/Users", 200)]).await.unwrap();
    assert!(requests_of(s, all_of(a)).await.is_empty());
    assert!(s.traffic(Some(a)).await.unwrap().is_empty());
    assert!(!s.set_health(a, Some("healthy".into()), "stale".into(), json!({}), now()).await.unwrap());
    // b keeps everything.
    assert_eq!(requests_of(s, all_of(b)).await.len(), 1);
    assert!(s.invite("invb11111111".into()).await.unwrap().is_some());
}

/// Console sessions: stored, read and ended; the ones that have ended are forgotten when the
/// next one is made.
async fn console_sessions_are_created_read_deleted_and_expired_ones_purged(e: Engine) {
    let s = e.s();
    let session = |id: &str, created: OffsetDateTime, expires: OffsetDateTime| scim_store::Session {
        id: id.into(),
        digest: vec![1, 2, 3, 0xff],
        api_key: "key111111111".into(),
        csrf: format!("csrf-{id}"),
        created,
        expires,
    };
    let n = now_us();
    let live = session("ses111111111", n, n + time::Duration::hours(8));
    s.create_session(live.clone()).await.unwrap();
    assert_eq!(s.session(live.id.clone()).await.unwrap(), Some(live.clone()), "round-trips");
    assert_eq!(s.session("nope".into()).await.unwrap(), None);
    s.delete_session(live.id.clone()).await.unwrap();
    assert_eq!(s.session(live.id.clone()).await.unwrap(), None);
    s.delete_session("nope".into()).await.unwrap();

    // One that ended an hour ago (made when it was still running) is gone after the next create.
    let old = session("ses222222222", n - time::Duration::hours(9), n - time::Duration::hours(1));
    s.create_session(old.clone()).await.unwrap();
    let other = session("ses333333333", n - time::Duration::hours(2), n + time::Duration::hours(6));
    s.create_session(other.clone()).await.unwrap();
    assert_eq!(s.session(old.id.clone()).await.unwrap(), Some(old.clone()), "not yet ended when that one was made");
    let next = session("ses444444444", n, n + time::Duration::hours(8));
    s.create_session(next.clone()).await.unwrap();
    assert_eq!(s.session(old.id.clone()).await.unwrap(), None, "the ended session is forgotten");
    assert_eq!(s.session(other.id.clone()).await.unwrap(), Some(other));
    assert_eq!(s.session(next.id.clone()).await.unwrap(), Some(next));
}

suite!(
    tenants_and_tokens,
    a_rotation_stores_the_new_token_and_expires_the_old_in_one_transaction,
    create_get_update_delete,
    uniqueness_is_per_tenant_and_case_insensitive,
    tenants_see_nothing_of_each_other,
    indexed_filters,
    an_update_rewrites_exactly_the_index_keys_it_changes,
    look_ups_by_a_unique_key_give_the_total_and_page_at_any_start_and_count,
    filters_on_unindexed_attributes_are_bounded,
    pagination_and_sorting,
    group_members,
    member_only_updates_leave_the_document_alone,
    groups_of_groups_are_written_and_deleted_whatever_their_keys,
    change_feed,
    failed_write_leaves_no_event,
    a_query_reads_one_snapshot_while_writers_run,
    patches_never_lose_a_concurrent_update,
    residual_queries_page_and_sort_across_candidate_batches,
    the_request_log_lists_newest_first_with_filters,
    the_traffic_summary_folds_across_batches,
    the_request_log_is_pruned_by_age_and_by_count,
    a_long_request_log_is_pruned_in_batches_to_the_newest_kept,
    set_health_compares_and_sets_with_one_event,
    redeem_invite_stores_its_token_only_once,
    deleting_a_tenant_removes_its_log_traffic_and_invites,
    console_sessions_are_created_read_deleted_and_expired_ones_purged,
    pages_of_any_size_read_the_same_rows_and_an_import_writes_them_back,
    maintained_counts_stay_exact,
    concurrent_writes_of_every_kind_keep_counts_exact,
    keyset_pages_walk_every_resource_once_in_order,
    keyset_pages_survive_changes_between_pages,
    index_walks_give_the_offset_answer_through_writes,
    index_pages_that_skip_ahead_give_the_offset_answer,
    keyset_pages_of_core_filters_are_bounded_not_refused,
    a_secret_is_stored_once,
);

// ---------------------------------------------------------------- counts and paging

/// The total of an unfiltered list, counted independently (`id pr` is counted by SQL).
async fn totals(s: &dyn Store, t: i64, kind: Kind) -> (Option<u64>, Option<u64>) {
    let q = |filter: Option<&str>| Query {
        tenant: t,
        kind,
        filter: filter.map(|f| Filter::parse(f).unwrap()),
        sort: None,
        start_index: 1,
        count: 0,
        load: Load::default(),
        position: false,
        seek: None,
    };
    (s.query(q(None)).await.unwrap().total, s.query(q(Some("id pr"))).await.unwrap().total)
}

/// The maintained count of an unfiltered list stays exact through creates, deletes, a failed
/// create (uniqueness), writes that share a transaction (SQLite's group commit) with a failing
/// one, a deleted group and a deleted tenant.
async fn maintained_counts_stay_exact(e: Engine) {
    let s = e.arc();
    let t = tenant(&*s, "a").await;
    let other = tenant(&*s, "b").await;
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(0), Some(0)));
    for i in 0..10 {
        mk_user(&*s, t, &format!("u{i}"), json!({"userName": format!("user{i}")})).await;
    }
    mk_user(&*s, other, "x1", json!({"userName": "other"})).await;
    // A create refused by uniqueness counts nothing.
    let dup = s.create(req::create(t, Kind::User, "dup", user_doc(json!({"userName": "USER1"})), vec![])).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(10), Some(10)));
    // Concurrent creates (one batch on SQLite), every third one a duplicate.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = Arc::clone(&s);
        let name = if i % 3 == 0 { format!("user{}", i % 10) } else { format!("new{i}") };
        tasks.push(tokio::spawn(async move {
            s.create(req::create(t, Kind::User, &format!("c{i}"), user_doc(json!({"userName": name})), vec![])).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += u64::from(task.await.unwrap().is_ok());
    }
    assert_eq!(ok, 20);
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(30), Some(30)));
    // Deletes, one of a resource that is not there.
    for i in 0..4 {
        s.delete(req::delete(t, Kind::User, &format!("u{i}"), None)).await.unwrap();
    }
    assert!(matches!(s.delete(req::delete(t, Kind::User, "u0", None)).await, Err(StoreError::NotFound)));
    // Groups count apart; deleting a group with members leaves the users' count alone.
    let g = s.create(req::create(t, Kind::Group, "g1", group_doc("G"), vec![member("u5")])).await.unwrap();
    assert_eq!(g.members.map(|m| m.len()), Some(1));
    assert_eq!(totals(&*s, t, Kind::Group).await, (Some(1), Some(1)));
    s.delete(req::delete(t, Kind::Group, "g1", None)).await.unwrap();
    assert_eq!(totals(&*s, t, Kind::Group).await, (Some(0), Some(0)));
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(26), Some(26)));
    assert_eq!(totals(&*s, other, Kind::User).await, (Some(1), Some(1)));
    // A deleted tenant's counts go with it (its id is never given again).
    assert!(s.delete_tenant("a".into()).await.unwrap());
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(0), Some(0)));
    let fresh = tenant(&*s, "a").await;
    assert_eq!(totals(&*s, fresh, Kind::User).await, (Some(0), Some(0)));
}

/// Concurrent writes of every kind (each updates counter rows of one or both kinds, last, in
/// its transaction) never fail for anything but the resource's own state (on PostgreSQL: no
/// deadlock), and the counts end exact. Creates run beside member changes, then beside
/// deletions. (Deleting users while the groups they are in change is left out: on PostgreSQL
/// those two lock a user and its groups in opposite orders, which can deadlock, with or
/// without the counters; see the report of the paging work.)
async fn concurrent_writes_of_every_kind_keep_counts_exact(e: Engine) {
    let s = e.arc();
    let t = tenant(&*s, "a").await;
    for i in 0..40 {
        mk_user(&*s, t, &format!("u{i}"), json!({"userName": format!("user{i}")})).await;
    }
    for g in 0..4 {
        s.create(req::create(t, Kind::Group, &format!("g{g}"), group_doc(&format!("G{g}")), vec![])).await.unwrap();
    }
    for phase in ["member changes", "deletions"] {
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                for i in 0..25u64 {
                    let n = w * 25 + i;
                    let r = match (n % 2, phase) {
                        (0, _) => {
                            let doc = user_doc(json!({"userName": format!("new-{phase}-{n}")}));
                            s.create(req::create(t, Kind::User, &format!("n{phase}{n}"), doc, vec![])).await.map(drop)
                        }
                        (_, "deletions") => s.delete(req::delete(t, Kind::User, &format!("u{}", n % 40), None)).await,
                        _ => {
                            let delta = MemberDelta {
                                add: vec![member(&format!("u{}", (n * 7) % 40)), member(&format!("u{}", (n * 3) % 40))],
                                remove: vec![format!("u{}", (n * 5) % 40)],
                                ..Default::default()
                            };
                            let g = format!("g{}", n % 4);
                            s.patch(req::update_members(t, Kind::Group, &g, delta, Load::default())).await.map(drop)
                        }
                    };
                    match r {
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(other) => failures.push(other),
                    }
                }
                failures
            }));
        }
        for task in tasks {
            let failures = task.await.unwrap();
            assert!(failures.is_empty(), "{phase}: {failures:?}");
        }
        let (users, counted) = totals(&*s, t, Kind::User).await;
        assert_eq!(users, counted, "{phase}");
    }
    assert_eq!(totals(&*s, t, Kind::User).await, (Some(220), Some(220)), "40, 200 created, the 20 odd ones deleted");
    assert_eq!(totals(&*s, t, Kind::Group).await, (Some(4), Some(4)));
}

/// Users for the paging tests: names out of creation order, some without a displayName or
/// externalId (nullable sort columns), titles for the core's order.
async fn paging_users(s: &dyn Store, t: i64, n: usize) {
    for i in 0..n {
        let mut body = json!({"userName": format!("user{:03}", (i * 37) % n), "title": format!("t{}", i % 4)});
        if i % 3 != 0 {
            body["displayName"] = json!(format!("D{}", (i * 7) % 5));
        }
        if i % 4 != 1 {
            body["externalId"] = json!(format!("x{:03}", (i * 11) % n));
        }
        mk_user(s, t, &format!("u{i:03}"), body).await;
    }
}

fn query_of(
    t: i64,
    filter: Option<&str>,
    sort: Option<(&str, SortOrder)>,
    count: u64,
    seek: Option<scim_store::Seek>,
) -> Query {
    Query {
        tenant: t,
        kind: Kind::User,
        filter: filter.map(|f| Filter::parse(f).unwrap()),
        sort: sort.map(|(p, o)| (AttrPath::parse(p).unwrap(), o)),
        start_index: 1,
        count,
        load: Load::default(),
        position: false,
        seek,
    }
}

/// Walks a query by keyset pages of `count`, forward from the start and then backward from
/// the end: the ids each way, checking that the first page has no previous one and the last
/// no next one.
async fn keyset_walk(s: &dyn Store, q: &Query, count: u64) -> (Vec<String>, Vec<String>) {
    let mut forward = Vec::new();
    let mut seek = Some(scim_store::Seek::default());
    let mut first = true;
    let mut pages = 0;
    while let Some(at) = seek {
        let page = s.query(Query { count, seek: Some(at), ..q.clone() }).await.unwrap();
        let ks = page.keyset.unwrap();
        if first {
            assert_eq!(ks.prev, None, "the first page has no previous page");
            first = false;
        }
        assert!(page.records.len() as u64 <= count);
        forward.extend(page.records.into_iter().map(|r| r.id));
        seek = ks.next;
        pages += 1;
        assert!(pages < 1000, "the walk does not end");
    }
    let mut backward = Vec::new();
    let mut seek = Some(scim_store::Seek { from: None, backward: true });
    let mut last = true;
    while let Some(at) = seek {
        let page = s.query(Query { count, seek: Some(at), ..q.clone() }).await.unwrap();
        let ks = page.keyset.unwrap();
        if last {
            assert_eq!(ks.next, None, "the last page has no next page");
            last = false;
        }
        for r in page.records.into_iter().rev() {
            backward.push(r.id);
        }
        seek = ks.prev;
    }
    backward.reverse();
    (forward, backward)
}

/// Keyset pages give every resource exactly once, in the order index pages give, forward and
/// backward, for creation order, unique, nullable and time columns, the core's order, indexed
/// filters and (forward) filters the core finishes; a total where it is cheap.
async fn keyset_pages_walk_every_resource_once_in_order(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    paging_users(s, t, 60).await;
    let asc = SortOrder::Ascending;
    let desc = SortOrder::Descending;
    type Case<'a> = (Option<&'a str>, Option<(&'a str, SortOrder)>);
    let cases: Vec<Case<'_>> = vec![
        (None, None),
        (None, Some(("userName", asc))),
        (None, Some(("userName", desc))),
        (None, Some(("displayName", asc))),
        (None, Some(("displayName", desc))),
        (None, Some(("externalId", desc))),
        (None, Some(("meta.created", asc))),
        (None, Some(("id", desc))),
        (None, Some(("title", asc))),
        (None, Some(("title", desc))),
        (Some(r#"userName sw "user0""#), Some(("displayName", asc))),
        (Some(r#"displayName eq "D1" or externalId pr"#), None),
        (Some(r#"title eq "t1""#), None),
        (Some(r#"title eq "t2""#), Some(("displayName", desc))),
        (Some(r#"title ne "t3""#), Some(("title", desc))),
    ];
    for (filter, sort) in cases {
        let q = query_of(t, filter, sort, 1000, None);
        let all: Vec<String> = s.query(q.clone()).await.unwrap().records.into_iter().map(|r| r.id).collect();
        assert!(!all.is_empty(), "{filter:?} {sort:?}");
        let residual = filter.is_some_and(|f| f.contains("title")) && sort.is_none_or(|(p, _)| p != "title");
        for count in [7, 1, 100] {
            let (forward, backward) = keyset_walk(s, &q, count).await;
            assert_eq!(forward, all, "forward by {count}: {filter:?} {sort:?}");
            if residual {
                assert!(backward.is_empty(), "no previous pages for a filter the core finishes");
            } else {
                assert_eq!(backward, all, "backward by {count}: {filter:?} {sort:?}");
            }
        }
        // The total comes with keyset pages too (the core's filters leave it out).
        let page = s.query(query_of(t, filter, sort, 5, Some(scim_store::Seek::default()))).await.unwrap();
        let want = if residual { None } else { Some(all.len() as u64) };
        assert_eq!(page.total, want, "{filter:?} {sort:?}");
    }
}

/// A keyset page after a position whose resource was deleted, or changed, starts at the next
/// resource in the order; count 0 says what lies around a position without reading any.
async fn keyset_pages_survive_changes_between_pages(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    paging_users(s, t, 30).await;
    for sort in [None, Some(("userName", SortOrder::Ascending)), Some(("displayName", SortOrder::Descending))] {
        let q = query_of(t, None, sort, 10, Some(scim_store::Seek::default()));
        let page = s.query(q.clone()).await.unwrap();
        let next = page.keyset.unwrap().next.unwrap();
        let anchor = page.records.last().unwrap().id.clone();
        let all: Vec<String> =
            s.query(query_of(t, None, sort, 1000, None)).await.unwrap().records.into_iter().map(|r| r.id).collect();
        let at = all.iter().position(|id| *id == anchor).unwrap();
        s.delete(req::delete(t, Kind::User, &anchor, None)).await.unwrap();
        let after = s.query(Query { seek: Some(next.clone()), ..q.clone() }).await.unwrap();
        let ids: Vec<String> = after.records.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, all[at + 1..at + 11].to_vec(), "{sort:?}");
        assert_eq!(after.total, Some(all.len() as u64 - 1));
        // count 0: the neighbours of a position, no resources.
        let zero = s.query(Query { count: 0, seek: Some(next.clone()), ..q.clone() }).await.unwrap();
        assert!(zero.records.is_empty());
        let ks = zero.keyset.unwrap();
        assert_eq!(ks.next, Some(next.clone()), "the next page starts where the cursor points");
        let before = s.query(Query { seek: ks.prev.clone(), ..q.clone() }).await.unwrap();
        let ids: Vec<String> = before.records.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, all[..at].iter().rev().take(10).rev().cloned().collect::<Vec<_>>(), "{sort:?}");
        mk_user(s, t, &anchor, json!({"userName": format!("back-{anchor}")})).await;
    }
    // A position of another order is refused, never misread.
    let page = s.query(query_of(t, None, None, 5, Some(scim_store::Seek::default()))).await.unwrap();
    let by_pk = page.keyset.unwrap().next.unwrap();
    let wrong = s.query(query_of(t, None, Some(("meta.created", SortOrder::Ascending)), 5, Some(by_pk))).await;
    assert!(matches!(&wrong, Err(StoreError::Scim(e)) if e.scim_type == Some(ScimType::InvalidCursor)), "{wrong:?}");
}

/// Index pages of a sequential walk (served from where the previous page ended while the
/// resources stay as they were) always give what reading past an offset gives, however the
/// resources change between pages.
async fn index_walks_give_the_offset_answer_through_writes(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    paging_users(s, t, 40).await;
    for (case, (filter, sort)) in [
        (None, None),
        (None, Some(("userName", SortOrder::Descending))),
        (Some(r#"userName sw "user""#), Some(("displayName", SortOrder::Ascending))),
    ]
    .into_iter()
    .enumerate()
    {
        let mut start = 1;
        let mut step = 0;
        loop {
            let page = s.query(Query { start_index: start, ..query_of(t, filter, sort, 6, None) }).await.unwrap();
            let all: Vec<String> = s
                .query(query_of(t, filter, sort, 1000, None))
                .await
                .unwrap()
                .records
                .into_iter()
                .map(|r| r.id)
                .collect();
            let ids: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
            let from = usize::try_from(start - 1).unwrap().min(all.len());
            assert_eq!(
                ids,
                all[from..].iter().take(6).cloned().collect::<Vec<_>>(),
                "page at {start}: {filter:?} {sort:?}"
            );
            assert_eq!(page.total, Some(all.len() as u64));
            if ids.is_empty() {
                break;
            }
            // Between pages: now a deletion before the walk's position, now a create, now a
            // rename, now nothing.
            step += 1;
            match step % 4 {
                0 => {
                    let gone = all[0].clone();
                    s.delete(req::delete(t, Kind::User, &gone, None)).await.unwrap();
                }
                1 => {
                    mk_user(s, t, &format!("n{case}-{step}"), json!({"userName": format!("a-new{case}-{step}")})).await
                }
                2 => {
                    let id = all[all.len() / 2].clone();
                    let doc = user_doc(json!({"userName": format!("renamed{case}-{step}")}));
                    s.update(req::update(t, Kind::User, &id, None, doc, Members::Unchanged, Load::default()))
                        .await
                        .unwrap();
                }
                _ => {}
            }
            start += 6;
        }
    }
}

/// Index pages that skip ahead of the last page read (a walk spread over replicas, a changed
/// `count`) give what reading past an offset gives, in every order.
async fn index_pages_that_skip_ahead_give_the_offset_answer(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a").await;
    paging_users(s, t, 70).await;
    for sort in [None, Some(("userName", SortOrder::Ascending)), Some(("displayName", SortOrder::Descending))] {
        let all: Vec<String> =
            s.query(query_of(t, None, sort, 1000, None)).await.unwrap().records.into_iter().map(|r| r.id).collect();
        // Pages of 5 from 1, 6, then 21 (two pages skipped), 26, a page of 9 at 31, 52, ...
        for (start, count) in [(1, 5), (6, 5), (21, 5), (26, 5), (31, 9), (52, 5), (57, 3), (69, 5)] {
            let page = s.query(Query { start_index: start, ..query_of(t, None, sort, count, None) }).await.unwrap();
            let ids: Vec<String> = page.records.into_iter().map(|r| r.id).collect();
            let from = usize::try_from(start - 1).unwrap();
            let want: Vec<String> = all[from..].iter().take(usize::try_from(count).unwrap()).cloned().collect();
            assert_eq!(ids, want, "startIndex {start} count {count}: {sort:?}");
        }
    }
}

/// Keyset pages of a filter the core finishes examine at most `max_candidates` resources
/// each, going on from where the previous one stopped: no tooMany, nothing repeated or lost.
async fn keyset_pages_of_core_filters_are_bounded_not_refused(e: Engine) {
    let e = Engine::open(e.backend, Limits { max_candidates: 20 }).await;
    let s = e.s();
    let t = tenant(s, "a").await;
    paging_users(s, t, 90).await;
    let q = query_of(t, Some(r#"title eq "t2""#), None, 4, None);
    match s.query(q.clone()).await {
        Err(StoreError::Scim(e)) if e.scim_type == Some(ScimType::TooMany) => {}
        other => panic!("index pages are refused past max_candidates: {other:?}"),
    }
    let want: Vec<String> = (0..90).filter(|i| i % 4 == 2).map(|i| format!("u{i:03}")).collect();
    let mut seek = Some(scim_store::Seek::default());
    let (mut got, mut pages) = (Vec::new(), 0);
    while let Some(at) = seek {
        let page = s.query(Query { seek: Some(at), ..q.clone() }).await.unwrap();
        assert!(page.records.len() <= 4);
        assert_eq!(page.total, None);
        got.extend(page.records.into_iter().map(|r| r.id));
        seek = page.keyset.unwrap().next;
        pages += 1;
    }
    assert_eq!(got, want);
    assert!(pages >= 90 / 20, "each page examined at most 20 candidates ({pages} pages)");
}

/// A database secret is stored by the first caller and the same for every later one.
async fn a_secret_is_stored_once(e: Engine) {
    let s = e.s();
    assert_eq!(s.secret("cursor".into(), "first".into()).await.unwrap(), "first");
    assert_eq!(s.secret("cursor".into(), "second".into()).await.unwrap(), "first");
    assert_eq!(s.secret("other".into(), "x".into()).await.unwrap(), "x");
}

/// A walk whose pages alternate between two processes (replicas behind a load balancer), each
/// remembering only the pages it served, gets every resource once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_index_walk_across_two_processes_gets_every_resource_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let a = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
    let b = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
    let t = tenant(&*a, "a").await;
    paging_users(&*a, t, 50).await;
    let all: Vec<String> =
        a.query(query_of(t, None, None, 1000, None)).await.unwrap().records.into_iter().map(|r| r.id).collect();
    let mut got = Vec::new();
    for (i, start) in (1..=50).step_by(4).enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        let page = s.query(Query { start_index: start, ..query_of(t, None, None, 4, None) }).await.unwrap();
        got.extend(page.records.into_iter().map(|r| r.id));
    }
    assert_eq!(got, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_on_one_file_share_the_cursor_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let a = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
    let b = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
    let sa = a.secret("cursor".into(), "from-a".into()).await.unwrap();
    let sb = b.secret("cursor".into(), "from-b".into()).await.unwrap();
    assert_eq!((sa.as_str(), sb.as_str()), ("from-a", "from-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    {
        let s = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
        let t = tenant(&*s, "a").await;
        mk_user(&*s, t, "u1", json!({"userName": "x"})).await;
    }
    let s = scim_store::open(&url, Limits::default(), Arc::new(Registry::standard())).await.unwrap();
    let t = s.tenant("a".into()).await.unwrap().unwrap().id;
    assert!(s.get(req::get(t, Kind::User, "u1", Load::default())).await.unwrap().is_some());
}

/// Many writers at once (SQLite batches them into shared transactions): each gets its own
/// answer, a failing write fails alone, and everything acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writes_each_get_their_own_answer() {
    let e = Engine::open(Backend::Sqlite, Limits::default()).await;
    let s = e.arc();
    let t = tenant(&*s, "a").await;
    mk_user(&*s, t, "taken", json!({"userName": "taken"})).await;
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let name = if i % 8 == 0 { "TAKEN".to_owned() } else { format!("user{i}") };
                s.create(req::create(t, Kind::User, &format!("u{i}"), user_doc(json!({"userName": name})), vec![]))
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    for (i, r) in results.iter().enumerate() {
        if i % 8 == 0 {
            assert!(matches!(r, Err(StoreError::Conflict(_))), "{i}: {r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap().id, format!("u{i}"));
        }
    }
    assert_eq!(ids(&*s, t, Kind::User, "userName sw \"user\"").await.len(), 28);
    assert_eq!(
        events(&*s, t, 0).await.len(),
        30,
        "one event per acknowledged write (and tenant.created), none for the refused"
    );
}
