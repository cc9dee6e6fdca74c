//! The change feed: the events every write appends (DESIGN.md, Events), how they are read,
//! and how waiting readers learn of new ones.
//!
//! An event is stored as its `body`, the JSON text of every field but `id`, `tenant` and
//! `seq`, which are columns; [`Event::to_json`] splices them in front, so reading the feed
//! never parses a document.
//!
//! Order: within a tenant, `seq` numbers are given in commit order without gaps, and an
//! event is readable only once it has its number. SQLite numbers each event inside its write's
//! transaction (there is one writer). PostgreSQL writes an event without a number and a
//! sequencer numbers the committed ones in short transactions of their own (see
//! `postgres`), so writers to one tenant never wait for each other's commits.

use std::collections::HashMap;
use std::sync::Mutex;

use scim_core::Kind;
use scim_core::change::{self, EventType};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{Record, Tenant, Token, fmt_time, materialize};

/// Who made a change, as its event tells (`actor`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The id of the token (SCIM) or API key (vendor API) that authenticated the request.
    pub token: Option<String>,
    /// That token's label.
    pub label: Option<String>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The HTTP method (`PATCH`), or `CLI` for the command line.
    pub method: String,
    /// The path of the request under its API's base (`/Users/<id>`), or the command.
    pub path: String,
}

impl Actor {
    /// scimd itself, e.g. `health` for the health monitor's `tenant.health_changed` events.
    pub fn system(what: &str) -> Actor {
        Actor { method: "SYSTEM".into(), path: what.into(), ..Actor::default() }
    }

    /// The command line: `path` is the command, e.g. `scimd token create`.
    pub fn cli(command: &str) -> Actor {
        Actor { method: "CLI".into(), path: command.into(), ..Actor::default() }
    }

    fn to_json(&self) -> Value {
        json!({
            "token": self.token,
            "label": self.label,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
        })
    }
}

/// One event as read from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The position in the tenant's feed: 1, 2, 3, ... in commit order.
    pub seq: i64,
    /// The stable, unique id (a UUID).
    pub id: String,
    /// The type, e.g. `user.deactivated`.
    pub kind: String,
    /// The commit time.
    pub at: OffsetDateTime,
    /// The JSON text of the other fields (`time`, `type`, `resource`, `data`, `changes`,
    /// `members`, `actor`), an object.
    pub body: String,
}

impl Event {
    /// The event as DESIGN.md spells it, for the tenant named `tenant`.
    pub fn to_json(&self, tenant: &str) -> String {
        let rest = self.body.strip_prefix('{').unwrap_or("}");
        let head = json!({"id": self.id, "tenant": tenant, "seq": self.seq}).to_string();
        let head = head.strip_suffix('}').unwrap_or(&head);
        if rest.trim_start().starts_with('}') { format!("{head}}}") } else { format!("{head},{rest}") }
    }
}

/// A page of a tenant's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// The events after the position asked for, in order.
    pub events: Vec<Event>,
    /// The feed's position: the `seq` of its newest event (0 before the first).
    pub position: i64,
    /// Events up to this position were pruned (0 if none was): reading after a position below
    /// it would skip events.
    pub pruned: i64,
    /// The tenant's mass-deprovisioning guard tripped: push delivery is held from this
    /// position on (the feed itself is not).
    pub held_from: Option<i64>,
}

/// Who is waiting for which tenant's feed. Each advance of a feed is sent to the tenant's
/// waiters; tenants nobody waits for cost nothing.
#[derive(Debug)]
pub struct FeedSignal {
    tenants: Mutex<HashMap<i64, watch::Sender<i64>>>,
    /// Bumped on every advance of any tenant's feed.
    any: watch::Sender<u64>,
}

impl Default for FeedSignal {
    fn default() -> Self {
        FeedSignal { tenants: Mutex::default(), any: watch::channel(0).0 }
    }
}

impl FeedSignal {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<i64>>> {
        self.tenants.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver that changes when the tenant's feed advances.
    pub fn subscribe(&self, tenant: i64) -> watch::Receiver<i64> {
        self.map().entry(tenant).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// A receiver that changes when any tenant's feed advances.
    pub fn subscribe_all(&self) -> watch::Receiver<u64> {
        self.any.subscribe()
    }

    /// The tenant's feed reached `seq`.
    pub fn advance(&self, tenant: i64, seq: i64) {
        self.any.send_modify(|n| *n = n.wrapping_add(1));
        let mut map = self.map();
        let Some(tx) = map.get(&tenant) else { return };
        if tx.receiver_count() == 0 {
            map.remove(&tenant);
            return;
        }
        tx.send_modify(|v| *v = (*v).max(seq));
    }

    /// Wakes every waiter (after a lost connection to the other replicas' signals, which may
    /// have missed advances).
    pub fn wake_all(&self) {
        self.any.send_modify(|n| *n = n.wrapping_add(1));
        let mut map = self.map();
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|_| {});
        }
    }
}

/// An event to append, before it has an id and a number.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub ty: EventType,
    pub resource: Value,
    pub data: Value,
    pub changes: Vec<Value>,
    pub members: Option<Vec<String>>,
}

impl NewEvent {
    /// The JSON text stored for the event (see the module documentation).
    pub(crate) fn body(self, actor: &Actor, at: OffsetDateTime) -> String {
        let mut m = Map::new();
        m.insert("time".into(), Value::String(fmt_time(at)));
        m.insert("type".into(), Value::String(self.ty.as_str().into()));
        m.insert("resource".into(), self.resource);
        m.insert("data".into(), self.data);
        m.insert("changes".into(), Value::Array(self.changes));
        if let Some(ids) = self.members {
            m.insert("members".into(), ids.into_iter().map(Value::String).collect());
        }
        m.insert("actor".into(), actor.to_json());
        Value::Object(m).to_string()
    }

    /// A change of a user's or group's attributes (`before` absent for a creation, `after`
    /// for a deletion); `rec` is the resource after the change (as it was, for a deletion).
    pub(crate) fn resource(ty: EventType, rec: &Record, before: Option<&Value>, after: Option<&Value>) -> NewEvent {
        NewEvent {
            ty,
            resource: resource_ref(rec),
            data: resource_data(rec, ty == EventType::GroupCreated),
            changes: changes(before, after),
            members: None,
        }
    }

    /// Members added to or removed from a group (`rec`, as it is after the change).
    pub(crate) fn members(ty: EventType, rec: &Record, ids: Vec<String>) -> NewEvent {
        NewEvent {
            ty,
            resource: resource_ref(rec),
            data: resource_data(rec, false),
            changes: Vec::new(),
            members: Some(ids),
        }
    }

    /// A change of the tenant itself.
    pub(crate) fn tenant(ty: EventType, before: Option<&Tenant>, after: &Tenant) -> NewEvent {
        let data = tenant_data(after);
        NewEvent {
            ty,
            resource: json!({"type": "Tenant", "id": after.name, "externalId": null}),
            changes: changes(before.map(tenant_data).as_ref(), Some(&data)),
            data,
            members: None,
        }
    }

    /// A change of one of the tenant's tokens (never its secret or digest).
    pub(crate) fn token(ty: EventType, before: Option<&Token>, after: &Token) -> NewEvent {
        let data = token_data(after);
        NewEvent {
            ty,
            resource: json!({"type": "Token", "id": after.id, "externalId": null}),
            changes: changes(before.map(token_data).as_ref(), Some(&data)),
            data,
            members: None,
        }
    }
}

/// The change of an update, attribute by attribute; nothing for a creation or a deletion,
/// whose `data` is the whole resource (listing every attribute again would double the size of
/// the feed's most common event for nothing).
fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<Value> {
    match (before, after) {
        (Some(_), Some(_)) => change::changes(before, after),
        _ => Vec::new(),
    }
}

fn resource_ref(rec: &Record) -> Value {
    json!({"type": rec.kind.name(), "id": rec.id, "externalId": rec.doc.get("externalId")})
}

/// The resource as SCIM shows it (`id`, `meta` without `location`), without the members of a
/// group (there may be a million; member events name the changed ones) unless `with_members`
/// (a creation: the members it was created with), and without a user's groups (group events
/// tell them).
fn resource_data(rec: &Record, with_members: bool) -> Value {
    let mut doc = materialize(rec);
    if let (true, Some(members), Value::Object(m)) = (with_members && rec.kind == Kind::Group, &rec.members, &mut doc) {
        let list = members
            .iter()
            .map(|x| json!({"value": x.value, "type": x.kind.name(), "display": x.display}))
            .collect::<Vec<_>>();
        m.insert("members".into(), Value::Array(list));
    }
    doc
}

fn tenant_data(t: &Tenant) -> Value {
    json!({"name": t.name, "required": t.required, "created": fmt_time(t.created)})
}

fn token_data(t: &Token) -> Value {
    json!({
        "id": t.id,
        "label": t.label,
        "created": fmt_time(t.created),
        "expires": t.expires.map(fmt_time),
        "revoked": t.revoked.map(fmt_time),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_columns_spliced_in_front_of_its_body() {
        let e = Event {
            seq: 7,
            id: "e1".into(),
            kind: "user.created".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            body: r#"{"type":"user.created","data":{"a":1}}"#.into(),
        };
        let v: Value = serde_json::from_str(&e.to_json("acme \"co\"")).unwrap();
        assert_eq!(v, json!({"id": "e1", "tenant": "acme \"co\"", "seq": 7, "type": "user.created", "data": {"a": 1}}));
        let empty = Event { body: "{}".into(), ..e };
        let v: Value = serde_json::from_str(&empty.to_json("t")).unwrap();
        assert_eq!(v, json!({"id": "e1", "tenant": "t", "seq": 7}));
    }

    #[test]
    fn a_waiter_sees_every_advance_after_it_subscribed() {
        let s = FeedSignal::default();
        s.advance(1, 5); // nobody waits: nothing kept
        assert!(s.map().is_empty());
        let mut rx = s.subscribe(1);
        assert!(!rx.has_changed().unwrap());
        s.advance(2, 9);
        assert!(!rx.has_changed().unwrap(), "another tenant's advance");
        s.advance(1, 3);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 3);
        s.wake_all();
        assert!(rx.has_changed().unwrap());
    }
}
