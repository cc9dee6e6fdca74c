//! The store's side of moves (`scim_store::transfer`), part of the contract suite: pages of
//! any size read the same rows in the same order, and importing them into another store gives
//! the same pages, again and again, refusing the rows that cannot be written.

use scim_core::resource::{self, Member, UnknownAttributes};
use scim_core::{Kind, Registry};
use scim_store::transfer::{Cursor, ImportRows, MemberDump, Rejected, TransferCounts};
use scim_store::{Create, Event, Limits, Record, Store, Token};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Engine, actor};

fn doc(kind: Kind, body: Value) -> Value {
    let reg = Registry::standard();
    let def = reg.resource(kind.name()).unwrap();
    resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap().resource
}

async fn create(s: &dyn Store, tenant: i64, kind: Kind, id: &str, members: &[&str]) {
    let body = match kind {
        Kind::User => json!({"userName": format!("{id}@example.com"), "externalId": format!("x-{id}"),
                             "emails": [{"value": format!("{id}@example.com"), "type": "work"}]}),
        Kind::Group => json!({"displayName": id}),
    };
    let members = members.iter().map(|m| Member { value: (*m).into(), kind: None, display: Some(format!("d-{m}")) });
    let req = Create {
        tenant,
        kind,
        id: id.into(),
        now: OffsetDateTime::now_utc(),
        doc: doc(kind, body),
        members: members.collect(),
        actor: actor(),
    };
    s.create(req).await.unwrap();
}

/// Every page of resources and memberships with pages of `limit`.
async fn read(s: &dyn Store, tenant: i64, limit: u64) -> (Vec<Record>, Vec<MemberDump>) {
    let (mut resources, mut members) = (Vec::new(), Vec::new());
    let mut after = Some(Cursor::default());
    while let Some(c) = after {
        let page = s.export_resources(tenant, c, limit).await.unwrap();
        assert!(page.rows.len() as u64 <= limit);
        resources.extend(page.rows);
        after = page.next;
    }
    let mut after = Some(Cursor::default());
    while let Some(c) = after {
        let page = s.export_members(tenant, c, limit).await.unwrap();
        assert!(page.rows.len() as u64 <= limit);
        members.extend(page.rows);
        after = page.next;
    }
    (resources, members)
}

pub(crate) async fn pages_of_any_size_read_the_same_rows_and_an_import_writes_them_back(src: Engine) {
    let s = src.s();
    let other = s.create_tenant("other".into(), vec![], OffsetDateTime::now_utc(), actor()).await.unwrap().id;
    let t = s.create_tenant("t".into(), vec![], OffsetDateTime::now_utc(), actor()).await.unwrap().id;
    // Users and groups of both tenants interleaved; groups empty, small, nested, and one with
    // more members than a page.
    let mut order = Vec::new();
    for i in 0..6 {
        create(s, t, Kind::User, &format!("u{i}"), &[]).await;
        create(s, other, Kind::User, &format!("o{i}"), &[]).await;
        order.push(format!("u{i}"));
    }
    create(s, t, Kind::Group, "empty", &[]).await;
    create(s, t, Kind::Group, "one", &["u3"]).await;
    create(s, t, Kind::User, "late", &[]).await;
    create(s, t, Kind::Group, "big", &["u5", "u0", "one", "late", "u2", "u1", "empty"]).await;
    create(s, other, Kind::Group, "theirs", &["o1"]).await;
    create(s, t, Kind::Group, "last", &[]).await;
    order.extend(["empty", "one", "late", "big", "last"].map(String::from));

    let (all, members) = read(s, t, 1000).await;
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, order, "users and groups together, in the order they were created");
    let pairs: Vec<(&str, &str)> = members.iter().map(|m| (m.group.as_str(), m.member.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("one", "u3"),
            ("big", "u0"),
            ("big", "u1"),
            ("big", "u2"),
            ("big", "u5"),
            ("big", "empty"),
            ("big", "one"),
            ("big", "late")
        ],
        "by group, then member, in the order they were created"
    );
    assert_eq!(members[0].display.as_deref(), Some("d-u3"));
    for limit in [1, 2, 3, 7] {
        assert_eq!(read(s, t, limit).await, (all.clone(), members.clone()), "pages of {limit}");
    }

    // Into another store, where `t` gets another key.
    let dst = Engine::open(src.backend, Limits::default()).await;
    let d = dst.s();
    for name in ["first", "second"] {
        d.create_tenant(name.into(), vec![], OffsetDateTime::now_utc(), actor()).await.unwrap();
    }
    let mut dump = s.export_tenant("t".into()).await.unwrap().unwrap();
    assert_eq!(dump.feed_position, s.events(t, 0, 0).await.unwrap().position);
    dump.id = -1;
    let feed = s.events(t, 0, 1000).await.unwrap().events;
    let tokens = vec![Token {
        id: "tok1".into(),
        tenant: t,
        digest: vec![1; 32],
        label: Some("l".into()),
        created: OffsetDateTime::now_utc(),
        expires: None,
        revoked: None,
        last_used: None,
    }];
    for round in 0..2 {
        let imported = d.import_tenant(dump.clone()).await.unwrap();
        assert_eq!(imported.created, round == 0);
        assert_ne!(imported.id, t, "the target's own key");
        let id = imported.id;
        for chunk in all.chunks(4) {
            let rows = ImportRows::Resources { tenant: id, rows: chunk.to_vec() };
            assert_eq!(d.import_rows(rows).await.unwrap(), []);
        }
        let rows = ImportRows::Members { tenant: id, rows: members.clone() };
        assert_eq!(d.import_rows(rows).await.unwrap(), []);
        let rows = ImportRows::Events { tenant: id, rows: feed.clone() };
        assert_eq!(d.import_rows(rows).await.unwrap(), []);
        let rows = ImportRows::Tokens { tenant: id, rows: tokens.clone() };
        assert_eq!(d.import_rows(rows).await.unwrap(), []);
        assert_eq!(read(d, id, 2).await, (all.clone(), members.clone()), "round {round}");
        assert_eq!(d.events(id, 0, 1000).await.unwrap().events, feed);
        let counts = d.transfer_counts(id).await.unwrap();
        let want = TransferCounts { tokens: 1, invites: 0, users: 7, groups: 4, members: 8, events: feed.len() as u64 };
        assert_eq!(counts, want, "round {round}");
    }
    let id = d.tenant("t".into()).await.unwrap().unwrap().id;

    // Refused rows, and nothing of their batch written.
    let unknown = MemberDump { group: "big".into(), member: "nobody".into(), display: None };
    let fine = MemberDump { group: "last".into(), member: "u1".into(), display: None };
    let rejected = d.import_rows(ImportRows::Members { tenant: id, rows: vec![fine, unknown] }).await.unwrap();
    assert!(matches!(&rejected[..], [Rejected { index: 1, reason }] if reason.contains("nobody")), "{rejected:?}");
    let beyond = Event { seq: dump.feed_position + 1, ..feed[0].clone() };
    let rejected = d.import_rows(ImportRows::Events { tenant: id, rows: vec![beyond] }).await.unwrap();
    assert_eq!(rejected.len(), 1, "an event beyond the feed's position");
    let first = d.tenant("first".into()).await.unwrap().unwrap().id;
    let rejected = d.import_rows(ImportRows::Tokens { tenant: first, rows: tokens.clone() }).await.unwrap();
    assert!(rejected[0].reason.contains("another tenant"), "{rejected:?}");
    let mut twin = all[0].clone();
    twin.id = "twin".into();
    let rejected = d.import_rows(ImportRows::Resources { tenant: id, rows: vec![twin] }).await.unwrap();
    assert!(rejected[0].reason.contains("same name"), "{rejected:?}");
    assert_eq!(d.transfer_counts(id).await.unwrap().members, 8, "the refused batch wrote nothing");
    assert!(d.tenant_by_id(first).await.unwrap().is_some());

    // Another tenant of the same name is not this one.
    let mut stranger = dump.clone();
    stranger.created += time::Duration::seconds(1);
    assert!(matches!(d.import_tenant(stranger).await, Err(scim_store::StoreError::Conflict(_))));
}
