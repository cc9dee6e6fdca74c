//! One contract, every engine: the same suite runs on SQLite and (when
//! `SCIMD_TEST_POSTGRES_URL` names a server, as `.ci/run` arranges) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scim_core::patch::{self, PatchRequest};
use scim_core::resource::{self, Member, UnknownAttributes};
use scim_core::{AttrPath, Filter, Registry, ScimType};
use scim_store::{Change, Kind, Limits, Load, Members, Query, SortOrder, Store, StoreError};
use serde_json::{Value, json};
use time::OffsetDateTime;

struct Engine {
    store: Option<std::sync::Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop afterwards: (server URL, database name).
    pg: Option<(String, String)>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some((url, db)) = self.pg.take() {
            // Close the store's connections first, then drop the test's database.
            self.store = None;
            let _ = std::process::Command::new("psql")
                .arg(&url)
                .arg("-qc")
                .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .status();
        }
    }
}

impl Engine {
    fn s(&self) -> &dyn Store {
        self.store.as_deref().unwrap()
    }
}

fn sqlite(limits: Limits) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    Engine { store: Some(scim_store::open(&url, limits).unwrap()), _dir: Some(dir), pg: None }
}

fn postgres(limits: Limits) -> Option<Engine> {
    let url = std::env::var("SCIMD_TEST_POSTGRES_URL").ok()?;
    // Each test gets its own database so tests can run in parallel.
    let db = format!("t_{}", uuid_like());
    postgres_admin(&url)(&format!("CREATE DATABASE {db}"));
    let base = url.rsplit_once('/').unwrap().0.to_owned();
    Some(Engine {
        store: Some(scim_store::open(&format!("{base}/{db}"), limits).unwrap()),
        _dir: None,
        pg: Some((url, db)),
    })
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

fn postgres_admin(url: &str) -> impl Fn(&str) {
    let url = url.to_owned();
    move |sql: &str| {
        let status = std::process::Command::new("psql").arg(&url).arg("-qc").arg(sql).status().unwrap();
        assert!(status.success(), "psql {sql}");
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
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

fn tenant(s: &dyn Store, name: &str) -> i64 {
    s.create_tenant(name, &[], now()).unwrap().id
}

fn mk_user(s: &dyn Store, t: i64, id: &str, body: Value) {
    s.create(t, Kind::User, id, now(), &user_doc(body), &[]).unwrap();
}

fn ids(s: &dyn Store, t: i64, kind: Kind, filter: &str) -> Vec<String> {
    let f = Filter::parse(filter).unwrap();
    let q = Query { filter: Some(&f), sort: None, start_index: 1, count: 1000, load: Load::default() };
    let mut out: Vec<String> = s.query(t, kind, &q).unwrap().records.into_iter().map(|r| r.id).collect();
    out.sort();
    out
}

fn member(id: &str) -> Member {
    Member { value: id.into(), kind: None, display: None }
}

// ---------------------------------------------------------------- the suite

fn tenants_and_tokens(e: Engine) {
    let s = e.s();
    let t = s.create_tenant("contoso", &["userName".into(), "preferredLanguage".into()], now()).unwrap();
    assert_eq!(s.tenant("contoso").unwrap().unwrap().required, vec!["userName", "preferredLanguage"]);
    assert_eq!(s.tenant_by_id(t.id).unwrap().unwrap().name, "contoso");
    assert!(matches!(s.create_tenant("contoso", &[], now()), Err(StoreError::Conflict(_))));
    s.create_tenant("fabrikam", &[], now()).unwrap();
    assert_eq!(s.list_tenants().unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["contoso", "fabrikam"]);
    let tok = scim_store::Token {
        id: "abc123abc123".into(),
        tenant: t.id,
        digest: vec![1, 2, 3],
        label: Some("entra".into()),
        created: now(),
        expires: None,
        revoked: None,
    };
    s.create_token(&tok).unwrap();
    assert_eq!(s.token("abc123abc123").unwrap().unwrap().digest, vec![1, 2, 3]);
    assert_eq!(s.list_tokens(t.id).unwrap().len(), 1);
    assert!(s.revoke_token("abc123abc123", now()).unwrap());
    assert!(s.token("abc123abc123").unwrap().unwrap().revoked.is_some());
    assert!(!s.revoke_token("nope", now()).unwrap());
    mk_user(s, t.id, "u1", json!({"userName": "a"}));
    assert!(s.delete_tenant("contoso").unwrap());
    assert!(s.tenant("contoso").unwrap().is_none());
    assert!(s.token("abc123abc123").unwrap().is_none());
    assert!(s.get(t.id, Kind::User, "u1", Load::default()).unwrap().is_none());
    assert!(!s.delete_tenant("contoso").unwrap());
}

fn create_get_update_delete(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    let doc = user_doc(json!({"userName": "Jdoe@Contoso.com", "externalId": "jdoe"}));
    let rec = s.create(t, Kind::User, "u1", now(), &doc, &[]).unwrap();
    assert_eq!(rec.version, 1);
    let got = s.get(t, Kind::User, "u1", Load::default()).unwrap().unwrap();
    assert_eq!(got.doc, doc);
    assert!(s.get(t, Kind::Group, "u1", Load::default()).unwrap().is_none(), "kind is part of the key");
    let doc2 = user_doc(json!({"userName": "jdoe@contoso.com", "title": "Boss"}));
    let up = s.update(t, Kind::User, "u1", Some(1), now(), &doc2, Members::Unchanged, Load::default()).unwrap();
    assert_eq!(up.version, 2);
    assert_eq!(up.created, rec.created);
    assert!(matches!(
        s.update(t, Kind::User, "u1", Some(1), now(), &doc2, Members::Unchanged, Load::default()),
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        s.update(t, Kind::User, "nope", None, now(), &doc2, Members::Unchanged, Load::default()),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(s.delete(t, Kind::User, "u1", Some(1), now()), Err(StoreError::VersionMismatch)));
    s.delete(t, Kind::User, "u1", None, now()).unwrap();
    assert!(s.get(t, Kind::User, "u1", Load::default()).unwrap().is_none());
    assert!(matches!(s.delete(t, Kind::User, "u1", None, now()), Err(StoreError::NotFound)));
}

fn uniqueness_is_per_tenant_and_case_insensitive(e: Engine) {
    let s = e.s();
    let (a, b) = (tenant(s, "a"), tenant(s, "b"));
    mk_user(s, a, "u1", json!({"userName": "jdoe@contoso.com", "externalId": "x1"}));
    let dup = s.create(a, Kind::User, "u2", now(), &user_doc(json!({"userName": "JDOE@contoso.com"})), &[]);
    match dup {
        Err(StoreError::Conflict(d)) => {
            assert!(d.contains("userName \"JDOE@contoso.com\""), "names the value sent: {d}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let dup = s.create(a, Kind::User, "u3", now(), &user_doc(json!({"userName": "other", "externalId": "x1"})), &[]);
    assert!(matches!(dup, Err(StoreError::Conflict(d)) if d.contains("externalId")));
    mk_user(s, b, "u4", json!({"userName": "jdoe@contoso.com", "externalId": "x1"}));
    s.create(a, Kind::Group, "g1", now(), &group_doc("Sales"), &[]).unwrap();
    assert!(matches!(s.create(a, Kind::Group, "g2", now(), &group_doc("SALES"), &[]), Err(StoreError::Conflict(_))));
    mk_user(s, a, "u5", json!({"userName": "sales"}));
    // Renaming into a taken name conflicts too.
    let r = s.update(
        a,
        Kind::User,
        "u5",
        None,
        now(),
        &user_doc(json!({"userName": "JDoe@contoso.com"})),
        Members::Unchanged,
        Load::default(),
    );
    assert!(matches!(r, Err(StoreError::Conflict(_))));
}

fn tenants_see_nothing_of_each_other(e: Engine) {
    let s = e.s();
    let (a, b) = (tenant(s, "a"), tenant(s, "b"));
    mk_user(s, a, "u1", json!({"userName": "x"}));
    assert!(s.get(b, Kind::User, "u1", Load::default()).unwrap().is_none());
    assert!(ids(s, b, Kind::User, "userName eq \"x\"").is_empty());
    assert!(ids(s, b, Kind::User, "title pr or userName pr").is_empty());
    assert!(matches!(s.delete(b, Kind::User, "u1", None, now()), Err(StoreError::NotFound)));
    // A member of another tenant cannot be added.
    let g = s.create(b, Kind::Group, "g1", now(), &group_doc("G"), &[member("u1")]);
    assert!(matches!(g, Err(StoreError::Scim(e)) if e.scim_type == Some(ScimType::InvalidValue)));
}

fn indexed_filters(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    mk_user(
        s,
        t,
        "u1",
        json!({"userName": "jdoe@contoso.com", "externalId": "jdoe", "displayName": "John Doe",
               "emails": [{"type": "work", "value": "John.Doe@contoso.com"}, {"type": "home", "value": "j@home.example"}],
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}),
    );
    mk_user(
        s,
        t,
        "u2",
        json!({"userName": "asmith@contoso.com", "externalId": "ASMITH", "active": false,
                               "emails": [{"type": "work", "value": "a@contoso.com"}]}),
    );
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "JDOE@CONTOSO.COM""#), ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"externalId eq "jdoe""#), ["u1"]);
    assert!(ids(s, t, Kind::User, r#"externalId eq "JDOE""#).is_empty(), "externalId is case-exact");
    assert_eq!(ids(s, t, Kind::User, r#"emails[type eq "work"].value eq "john.doe@contoso.com""#), ["u1"]);
    assert!(ids(s, t, Kind::User, r#"emails[type eq "home"].value eq "john.doe@contoso.com""#).is_empty());
    assert_eq!(ids(s, t, Kind::User, r#"emails.value eq "j@home.example""#), ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"emails co "contoso.com""#), ["u1", "u2"]);
    assert_eq!(
        ids(
            s,
            t,
            Kind::User,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        ),
        ["u1"]
    );
    assert_eq!(ids(s, t, Kind::User, r#"id eq "u2""#), ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName sw "JD""#), ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName ew "CONTOSO.COM""#), ["u1", "u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"displayName co "ohn""#), ["u1"]);
    assert_eq!(ids(s, t, Kind::User, r#"externalId ne "jdoe""#), ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"not (userName eq "jdoe@contoso.com")"#), ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "x" or externalId eq "ASMITH""#), ["u2"]);
    assert_eq!(ids(s, t, Kind::User, "meta.lastModified gt \"2000-01-01T00:00:00Z\""), ["u1", "u2"]);
    assert!(ids(s, t, Kind::User, "meta.created lt \"2000-01-01T00:00:00Z\"").is_empty());
    assert_eq!(ids(s, t, Kind::User, "displayName pr"), ["u1"]);
    // Not indexed: evaluated by the core on the candidates.
    assert_eq!(ids(s, t, Kind::User, "active eq false"), ["u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"active eq "False" and userName sw "a""#), ["u2"]);
    assert!(ids(s, t, Kind::User, r#"userName eq "nobody""#).is_empty());
}

fn filters_on_unindexed_attributes_are_bounded(e: Engine) {
    let _ = e;
    let e = sqlite_or_same(Limits { max_candidates: 3 });
    let s = e.s();
    let t = tenant(s, "a");
    for i in 0..5 {
        mk_user(
            s,
            t,
            &format!("u{i}"),
            json!({"userName": format!("user{i}"), "title": if i == 4 { "Boss" } else { "Dev" }}),
        );
    }
    let f = Filter::parse(r#"title eq "Boss""#).unwrap();
    let q = Query { filter: Some(&f), sort: None, start_index: 1, count: 10, load: Load::default() };
    match s.query(t, Kind::User, &q) {
        Err(StoreError::Scim(e)) => assert_eq!(e.scim_type, Some(ScimType::TooMany)),
        other => panic!("expected tooMany, got {other:?}"),
    }
    // With an indexed conjunct the candidate set is small enough.
    assert_eq!(ids(s, t, Kind::User, r#"userName eq "user4" and title eq "Boss""#), ["u4"]);
}

/// The same engine kind as the suite runs on, with other limits.
fn sqlite_or_same(limits: Limits) -> Engine {
    if ENGINE.with(|e| *e.borrow() == "postgres") {
        if let Some(e) = postgres(limits) {
            return e;
        }
    }
    sqlite(limits)
}

thread_local! {
    static ENGINE: std::cell::RefCell<&'static str> = const { std::cell::RefCell::new("sqlite") };
}

fn pagination_and_sorting(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    for (i, name) in ["delta", "Alpha", "charlie", "bravo", "echo"].iter().enumerate() {
        mk_user(s, t, &format!("u{i}"), json!({"userName": name, "title": format!("t{}", 5 - i)}));
    }
    let page = |start: u64, count: u64, sort: Option<(&AttrPath, SortOrder)>| {
        let q = Query { filter: None, sort, start_index: start, count, load: Load::default() };
        let p = s.query(t, Kind::User, &q).unwrap();
        (p.total, p.records.into_iter().map(|r| r.doc["userName"].as_str().unwrap().to_owned()).collect::<Vec<_>>())
    };
    assert_eq!(page(1, 2, None), (5, vec!["delta".to_owned(), "Alpha".to_owned()]), "creation order by default");
    assert_eq!(page(5, 2, None), (5, vec!["echo".to_owned()]));
    assert_eq!(page(9, 2, None), (5, vec![]));
    assert_eq!(page(1, 0, None).0, 5);
    let by_name = AttrPath::parse("userName").unwrap();
    assert_eq!(page(1, 3, Some((&by_name, SortOrder::Ascending))).1, ["Alpha", "bravo", "charlie"]);
    assert_eq!(page(1, 2, Some((&by_name, SortOrder::Descending))).1, ["echo", "delta"]);
    let by_title = AttrPath::parse("title").unwrap();
    assert_eq!(page(1, 2, Some((&by_title, SortOrder::Ascending))).1, ["echo", "bravo"], "sorted by the core");
}

fn group_members(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    mk_user(s, t, "u1", json!({"userName": "one", "displayName": "User One"}));
    mk_user(s, t, "u2", json!({"userName": "two"}));
    mk_user(s, t, "u3", json!({"userName": "three"}));
    let g = s.create(t, Kind::Group, "g1", now(), &group_doc("Sales"), &[member("u1"), member("u2")]).unwrap();
    let m = g.members.unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].display.as_deref(), Some("User One"));
    assert_eq!(m[1].display.as_deref(), Some("two"), "a user without displayName shows its userName");
    mk_user(s, t, "u4", json!({"userName": "four", "displayName": "Four"}));
    let shown = Member { value: "u4".into(), kind: None, display: Some("Shown As".into()) };
    let g2 = s.create(t, Kind::Group, "g2", now(), &group_doc("Named"), &[shown]).unwrap();
    assert_eq!(g2.members.unwrap()[0].display.as_deref(), Some("Shown As"), "the display the client sent wins");
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    let patch = |body: Value| {
        let cur = s.get(t, Kind::Group, "g1", Load::default()).unwrap().unwrap();
        let req = PatchRequest::parse(&json!({"Operations": body}), &Default::default()).unwrap();
        let out = patch::apply(&def, &cur.doc, &req).unwrap();
        let load = Load { members: true, groups: false };
        s.update(t, Kind::Group, "g1", Some(cur.version), now(), &out.resource, Members::Delta(&out.members), load)
            .unwrap()
            .members
            .unwrap()
            .into_iter()
            .map(|m| m.value)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        patch(json!([{"op": "Add", "path": "members", "value": [{"value": "u3"}, {"value": "u1"}]}])),
        ["u1", "u2", "u3"]
    );
    assert_eq!(patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}])), ["u1", "u3"]);
    assert_eq!(patch(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}])), ["u3"]);
    assert_eq!(
        patch(json!([{"op": "replace", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}])),
        ["u1", "u2"]
    );
    assert_eq!(ids(s, t, Kind::Group, r#"id eq "g1" and members eq "u2""#), ["g1"]);
    assert!(ids(s, t, Kind::Group, r#"id eq "g1" and members eq "u3""#).is_empty());
    assert_eq!(ids(s, t, Kind::Group, r#"members[value eq "u1"]"#), ["g1"]);
    let groups = s.get(t, Kind::User, "u1", Load { members: false, groups: true }).unwrap().unwrap().groups.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].display.as_deref(), Some("Sales"));
    assert_eq!(ids(s, t, Kind::User, r#"groups eq "g1""#), ["u1", "u2"]);
    assert_eq!(ids(s, t, Kind::User, r#"groups[value eq "g2"]"#), ["u4"]);
    assert_eq!(ids(s, t, Kind::User, "groups pr"), ["u1", "u2", "u4"]);
    assert_eq!(ids(s, t, Kind::User, r#"not (groups eq "g1") and userName sw "t""#), ["u3"]);
    // Deleting a user removes it from its groups, which get a new version and an event.
    let before = s.get(t, Kind::Group, "g1", Load::default()).unwrap().unwrap().version;
    let seen = s.events(t, 0, 1000).unwrap().last().map(|e| e.seq).unwrap_or(0);
    s.delete(t, Kind::User, "u1", None, now()).unwrap();
    assert_eq!(s.get(t, Kind::Group, "g1", Load::default()).unwrap().unwrap().version, before + 1);
    let ev = s.events(t, seen, 1000).unwrap();
    assert!(ev.iter().any(|e| e.kind == Kind::Group
        && e.id == "g1"
        && e.change == Change::Updated
        && e.version == Some(before + 1)));
    assert!(ev.iter().any(|e| e.kind == Kind::User && e.id == "u1" && e.change == Change::Deleted));
    assert_eq!(patch(json!([{"op": "Replace", "path": "displayName", "value": "Sales EU"}])), ["u2"]);
    // Unknown members are refused and nothing is applied.
    let cur = s.get(t, Kind::Group, "g1", Load::default()).unwrap().unwrap();
    let delta =
        scim_core::patch::MemberDelta { add: vec![member("u3"), member("ghost")], remove: vec![], remove_all: false };
    let r = s.update(
        t,
        Kind::Group,
        "g1",
        None,
        now(),
        &cur.doc,
        Members::Delta(&delta),
        Load { members: true, groups: false },
    );
    assert!(matches!(r, Err(StoreError::Scim(e)) if e.detail.contains("ghost")));
    let after = s.get(t, Kind::Group, "g1", Load { members: true, groups: false }).unwrap().unwrap();
    assert_eq!(after.members.unwrap().len(), 1, "a failed update changes nothing");
    assert_eq!(after.version, cur.version);
    // Members are not loaded unless asked for.
    assert!(s.get(t, Kind::Group, "g1", Load::default()).unwrap().unwrap().members.is_none());
}

fn member_only_updates_leave_the_document_alone(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    mk_user(s, t, "u1", json!({"userName": "one"}));
    mk_user(s, t, "u2", json!({"userName": "two"}));
    let g = s.create(t, Kind::Group, "g1", now(), &group_doc("Sales"), &[member("u1")]).unwrap();
    let delta = scim_core::patch::MemberDelta { add: vec![member("u2")], remove: vec!["u1".into()], remove_all: false };
    let load = Load { members: true, groups: false };
    let rec = s.update_members(t, Kind::Group, "g1", now(), &delta, load).unwrap();
    assert_eq!(rec.version, g.version + 1);
    assert_eq!(rec.doc, g.doc);
    assert_eq!(rec.members.unwrap().into_iter().map(|m| m.value).collect::<Vec<_>>(), ["u2"]);
    let ev = s.events(t, 0, 100).unwrap();
    assert_eq!((ev.last().unwrap().change, ev.last().unwrap().version), (Change::Updated, Some(g.version + 1)));
    let ghost =
        scim_core::patch::MemberDelta { add: vec![member("ghost")], remove: vec!["u2".into()], remove_all: false };
    assert!(matches!(s.update_members(t, Kind::Group, "g1", now(), &ghost, load), Err(StoreError::Scim(_))));
    let after = s.get(t, Kind::Group, "g1", load).unwrap().unwrap();
    assert_eq!(after.members.unwrap().len(), 1, "nothing applied");
    assert_eq!(after.version, g.version + 1);
    assert!(matches!(s.update_members(t, Kind::Group, "nope", now(), &delta, load), Err(StoreError::NotFound)));
}

fn change_feed(e: Engine) {
    let s = e.s();
    let (t, other) = (tenant(s, "a"), tenant(s, "b"));
    mk_user(s, t, "u1", json!({"userName": "x"}));
    mk_user(s, other, "o1", json!({"userName": "x"}));
    s.update(
        t,
        Kind::User,
        "u1",
        None,
        now(),
        &user_doc(json!({"userName": "y"})),
        Members::Unchanged,
        Load::default(),
    )
    .unwrap();
    s.delete(t, Kind::User, "u1", None, now()).unwrap();
    let ev = s.events(t, 0, 100).unwrap();
    assert_eq!(ev.iter().map(|e| e.change).collect::<Vec<_>>(), [Change::Created, Change::Updated, Change::Deleted]);
    assert_eq!(ev.iter().map(|e| e.version).collect::<Vec<_>>(), [Some(1), Some(2), None]);
    assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(s.events(t, ev[0].seq, 100).unwrap().len(), 2);
    assert_eq!(s.events(t, 0, 1).unwrap().len(), 1);
    assert_eq!(s.events(other, 0, 100).unwrap().len(), 1);
}

fn failed_write_leaves_no_event(e: Engine) {
    let s = e.s();
    let t = tenant(s, "a");
    mk_user(s, t, "u1", json!({"userName": "x"}));
    assert!(s.create(t, Kind::User, "u2", now(), &user_doc(json!({"userName": "X"})), &[]).is_err());
    assert_eq!(s.events(t, 0, 100).unwrap().len(), 1, "a write and its event commit together");
    assert!(s.get(t, Kind::User, "u2", Load::default()).unwrap().is_none());
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite_engine {
            use super::*;
            $( #[test] fn $name() { super::$name(sqlite(Limits::default())) } )*
        }
        mod postgres_engine {
            use super::*;
            $( #[test] fn $name() {
                ENGINE.with(|e| *e.borrow_mut() = "postgres");
                match postgres(Limits::default()) {
                    Some(e) => super::$name(e),
                    None => eprintln!("SCIMD_TEST_POSTGRES_URL is not set: PostgreSQL contract test skipped"),
                }
            } )*
        }
    };
}

suite!(
    tenants_and_tokens,
    create_get_update_delete,
    uniqueness_is_per_tenant_and_case_insensitive,
    tenants_see_nothing_of_each_other,
    indexed_filters,
    filters_on_unindexed_attributes_are_bounded,
    pagination_and_sorting,
    group_members,
    member_only_updates_leave_the_document_alone,
    change_feed,
    failed_write_leaves_no_event,
);

#[test]
fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    {
        let s = scim_store::open(&url, Limits::default()).unwrap();
        let t = tenant(&*s, "a");
        mk_user(&*s, t, "u1", json!({"userName": "x"}));
    }
    let s = scim_store::open(&url, Limits::default()).unwrap();
    let t = s.tenant("a").unwrap().unwrap().id;
    assert!(s.get(t, Kind::User, "u1", Load::default()).unwrap().is_some());
}

/// Many writers at once (SQLite batches them into shared transactions): each gets its own
/// answer, a failing write fails alone, and everything acknowledged is there.
#[test]
fn sqlite_concurrent_writes_each_get_their_own_answer() {
    let e = sqlite(Limits::default());
    let s = e.store.clone().unwrap();
    let t = tenant(&*s, "a");
    mk_user(&*s, t, "taken", json!({"userName": "taken"}));
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let name = if i % 8 == 0 { "TAKEN".to_owned() } else { format!("user{i}") };
                s.create(t, Kind::User, &format!("u{i}"), now(), &user_doc(json!({"userName": name})), &[])
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, r) in results.iter().enumerate() {
        if i % 8 == 0 {
            assert!(matches!(r, Err(StoreError::Conflict(_))), "{i}: {r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap().id, format!("u{i}"));
        }
    }
    assert_eq!(ids(&*s, t, Kind::User, "userName sw \"user\"").len(), 28);
    assert_eq!(s.events(t, 0, 1000).unwrap().len(), 29, "one event per acknowledged write, none for the refused");
}
