//! The store operations, written once for both engines: each [`Store`] call is an owned
//! request that implements [`Operation`], and `Store` is implemented for every [`Engine`] by
//! handing the request to it.
//!
//! Every write first checks its tenant inside its own transaction (locking the tenant row
//! against deletion on PostgreSQL, `FOR KEY SHARE`, which no other write waits for), locks the
//! resource rows it changes in the one order of [`super::locks`] (groups before users), and
//! appends its change events in the same transaction (`crate::feed`). A write that changes
//! nothing writes nothing, and so has no event. Where the engine numbers events in the
//! write's transaction ([`super::Dialect::seq_in_write`], SQLite's single writer) the event
//! gets the tenant's next `seq` there; otherwise it is written unnumbered and the engine's
//! sequencer numbers it after commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use scim_core::change::EventType;
use scim_core::patch::MemberDelta;
use scim_core::resource::Member;
use scim_core::{Registry, ScimError};
use serde_json::Value;
use time::OffsetDateTime;

use super::paging::note_write;
use super::traffic as tr;
use super::transfer as xfer;
use super::webhooks as hooks;
use super::{Arg, Conn, Engine, Lock, Mode, Operation, Row, SqlError, Ty, kind_code, kind_of, locks};
use crate::common::{Unique, conflict, instant, micros};
use crate::feed::NewEvent;
use crate::measure::timed;
use crate::plan::IndexKeys;
use crate::traffic::{Invite, LoggedRequest, RequestQuery, Session, Traffic};
use crate::{
    Actor, ApiKey, Claim, Create, Delete, Delivery, Event, Feed, Get, GroupRef, Guard, GuardSettings, Kind, Limits,
    Load, MemberRow, Members, Outcome, Page, Patch, Query, Record, Result, Store, StoreError, Tenant, Token, Update,
    Webhook,
};

/// What every operation may need besides its connection.
#[derive(Debug, Clone)]
pub struct Context {
    /// The store's limits.
    pub limits: Limits,
    /// The schemas filters are planned against.
    pub registry: Arc<Registry>,
    /// What lists remember between requests (where index pages ended, filtered totals).
    pub(crate) memo: Arc<super::paging::Memo>,
}

impl Context {
    /// The context of a store with these limits and schemas, and nothing remembered yet.
    pub fn new(limits: Limits, registry: Arc<Registry>) -> Self {
        Context { limits, registry, memo: Arc::default() }
    }
}

// ---------------------------------------------------------------- rows

const TENANT_COLS: &str =
    "id, name, required, created, guard_share, guard_min, guard_window, guard_held, guard_tripped_at";
const TOKEN_COLS: &str = "id, tenant_id, digest, label, created, expires, revoked, last_used";
pub(crate) const RECORD_COLS: &str = "r.pk, r.kind, r.id, r.created, r.modified, r.version, r.doc";

fn tenant_row(mut r: Row) -> Result<Tenant> {
    let required = r.text(2)?;
    Ok(Tenant {
        id: r.int(0)?,
        name: r.text(1)?,
        required: serde_json::from_str(&required)
            .map_err(|e| StoreError::Corrupt(format!("a tenant's list of required attributes: {e}")))?,
        created: instant(r.int(3)?),
        guard: Guard {
            share_permille: r.int(4)?,
            min_users: r.int(5)?,
            window: time::Duration::microseconds(r.int(6)?),
            held_from: r.opt_int(7)?,
            tripped_at: r.opt_int(8)?.map(instant),
        },
    })
}

fn token_row(mut r: Row) -> Result<Token> {
    Ok(Token {
        id: r.text(0)?,
        tenant: r.int(1)?,
        digest: r.bytes(2)?,
        label: r.opt_text(3)?,
        created: instant(r.int(4)?),
        expires: r.opt_int(5)?.map(instant),
        revoked: r.opt_int(6)?.map(instant),
        last_used: r.opt_int(7)?.map(instant),
    })
}

fn parse_doc(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("a stored document is not JSON: {e}")))
}

/// A record row (`RECORD_COLS`) with its key.
pub(crate) fn record_row(mut r: Row) -> Result<(i64, Record)> {
    let doc = r.text(6)?;
    Ok((
        r.int(0)?,
        Record {
            kind: kind_of(r.int(1)?)?,
            id: r.text(2)?,
            created: instant(r.int(3)?),
            last_modified: instant(r.int(4)?),
            version: r.int(5)?,
            doc: parse_doc(&doc)?,
            members: None,
            groups: None,
        },
    ))
}

fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The `Conflict` for a uniqueness violation of a resource, naming the attribute and value.
fn resource_conflict(e: SqlError, kind: Kind, keys: &IndexKeys) -> StoreError {
    match e {
        SqlError::Unique(what) => {
            let which = if what.contains("external_id") {
                Unique::ExternalId
            } else if what.contains("name") {
                Unique::Name
            } else {
                Unique::Id
            };
            conflict(kind, keys, which)
        }
        SqlError::Store(e) => e,
    }
}

// ---------------------------------------------------------------- building blocks

/// Checks that the tenant exists, and on PostgreSQL keeps it from being deleted until commit.
pub(crate) async fn lock_tenant<C: Conn>(c: &mut C, tenant: i64) -> Result<()> {
    let sql = format!("SELECT 1 FROM tenants WHERE id = $1{}", c.dialect().lock(Lock::KeyShare));
    c.opt(&sql, &[Arg::Int(tenant)]).await?.ok_or(StoreError::NoTenant)?;
    Ok(())
}

/// Appends an event to the tenant's feed (see the module documentation).
pub(crate) async fn event<C: Conn>(c: &mut C, tenant: i64, actor: &Actor, now: i64, ev: NewEvent) -> Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let ty = ev.ty;
    let body = ev.body(actor, instant(now));
    let seq = if c.dialect().seq_in_write {
        let row = c
            .opt("UPDATE tenants SET feed_seq = feed_seq + 1 WHERE id = $1 RETURNING feed_seq", &[Arg::Int(tenant)])
            .await?
            .ok_or(StoreError::NoTenant)?;
        Some(row.int(0)?)
    } else {
        None
    };
    let args = [
        Arg::Int(tenant),
        Arg::opt_int(seq),
        Arg::Text(id),
        Arg::Text(ty.as_str().into()),
        Arg::Int(now),
        Arg::Text(body),
    ];
    c.exec("INSERT INTO events (tenant_id, seq, id, type, at, body) VALUES ($1, $2, $3, $4, $5, $6)", &args).await?;
    c.appended(tenant, seq.unwrap_or(0));
    if let (Some(seq), true) = (seq, ty.deprovisions()) {
        guard_note(c, tenant, seq, now).await?;
    }
    Ok(())
}

/// Counts a deactivation or deletion (the event numbered `seq`, committed at `at`) against
/// the tenant's guard, and trips it when the window's count crosses the line: push delivery is
/// then held from `seq`. Runs where events are numbered, under the tenant's lock (the write
/// itself on SQLite, the sequencer on PostgreSQL), so each event counts once, in order.
pub(crate) async fn guard_note<C: Conn>(c: &mut C, tenant: i64, seq: i64, at: i64) -> Result<()> {
    let sql = "SELECT guard_share, guard_min, guard_window, guard_start, guard_count, guard_base, guard_held
               FROM tenants WHERE id = $1";
    let Some(r) = c.opt(sql, &[Arg::Int(tenant)]).await? else { return Ok(()) };
    let (share, min, window) = (r.int(0)?, r.int(1)?, r.int(2)?);
    let (mut start, mut count, mut base) = (r.int(3)?, r.int(4)?, r.int(5)?);
    if share <= 0 || r.opt_int(6)?.is_some() {
        return Ok(());
    }
    if at.saturating_sub(start) > window {
        // A new window: its base is the active users before this deprovisioning.
        start = at;
        count = 0;
        base = active_users(c, tenant).await? + 1;
    }
    count += 1;
    let tripped = count >= min && count.saturating_mul(1000) > share.saturating_mul(base);
    let mut args = vec![Arg::Int(tenant), Arg::Int(start), Arg::Int(count), Arg::Int(base)];
    let mut sql = "UPDATE tenants SET guard_start = $2, guard_count = $3, guard_base = $4".to_owned();
    if tripped {
        args.extend([Arg::Int(seq), Arg::Int(at)]);
        sql.push_str(", guard_held = $5, guard_tripped_at = $6");
    }
    sql.push_str(" WHERE id = $1");
    c.exec(&sql, &args).await?;
    Ok(())
}

/// How many users of the tenant are active.
async fn active_users<C: Conn>(c: &mut C, tenant: i64) -> Result<i64> {
    let sql =
        format!("SELECT count(*) FROM resources WHERE tenant_id = $1 AND kind = 0 AND {}", c.dialect().active_user);
    c.opt(&sql, &[Arg::Int(tenant)]).await?.map_or(Ok(0), |r| r.int(0))
}

/// The net change of a group's members by one write: the ids added and the ids removed.
#[derive(Debug, Default)]
struct MemberChange {
    added: Vec<String>,
    removed: Vec<String>,
}

impl MemberChange {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// A member both removed and added again (PATCH `remove` all, then `add`) did not change.
    fn net(mut self) -> MemberChange {
        let added: HashSet<String> = self.added.iter().cloned().collect();
        let removed: HashSet<String> = self.removed.iter().cloned().collect();
        self.added.retain(|id| !removed.contains(id));
        self.removed.retain(|id| !added.contains(id));
        self
    }

    /// The member events of a group (`rec`, as it is after the write).
    async fn events<C: Conn>(self, c: &mut C, tenant: i64, actor: &Actor, now: i64, rec: &Record) -> Result<()> {
        if !self.removed.is_empty() {
            event(c, tenant, actor, now, NewEvent::members(EventType::GroupMembersRemoved, rec, self.removed)).await?;
        }
        if !self.added.is_empty() {
            event(c, tenant, actor, now, NewEvent::members(EventType::GroupMembersAdded, rec, self.added)).await?;
        }
        Ok(())
    }
}

/// Writes the email index rows of a resource (after removing the old ones if `replace`).
async fn write_emails<C: Conn>(c: &mut C, tenant: i64, pk: i64, keys: &IndexKeys, replace: bool) -> Result<()> {
    if replace {
        c.exec("DELETE FROM emails WHERE resource_pk = $1", &[Arg::Int(pk)]).await?;
    }
    if keys.emails.is_empty() {
        return Ok(());
    }
    let rows = c.dialect().zip_lists(&[(3, "v", Ty::Text), (4, "t", Ty::Text)]);
    let sql = format!(
        "INSERT INTO emails (resource_pk, tenant_id, value_lc, type_lc) SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), v, t FROM {rows}"
    );
    let values = keys.emails.iter().map(|(v, _)| Some(v.clone())).collect();
    let types = keys.emails.iter().map(|(_, t)| t.clone()).collect();
    c.exec(&sql, &[Arg::Int(pk), Arg::Int(tenant), Arg::Texts(values), Arg::Texts(types)]).await?;
    Ok(())
}

/// Adds members to a group: each id must name a user or group of the tenant (`invalidValue`
/// naming the first that does not). The first mention of a member wins, with the `display` the
/// client sent. Returns the (key, kind, id) of each member added; [`touch_members`] then locks
/// them and refuses any deleted since.
async fn add_members<C: Conn>(
    c: &mut C,
    tenant: i64,
    group_pk: i64,
    members: &[Member],
) -> Result<Vec<(i64, Kind, String)>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let d = c.dialect();
    let sql = format!("SELECT id, pk, kind FROM resources WHERE tenant_id = $1 AND {}", d.in_list("id", 2));
    let ids: Vec<Option<String>> = members.iter().map(|m| Some(m.value.clone())).collect();
    let mut found = HashMap::with_capacity(members.len());
    for mut row in c.query(&sql, &[Arg::Int(tenant), Arg::Texts(ids)]).await? {
        found.insert(row.text(0)?, (row.int(1)?, kind_of(row.int(2)?)?));
    }
    let mut seen = HashSet::with_capacity(members.len());
    let (mut add, mut displays) = (Vec::with_capacity(members.len()), Vec::with_capacity(members.len()));
    for m in members {
        let Some(&(pk, _)) = found.get(&m.value) else {
            return Err(unknown_member(&m.value));
        };
        if pk == group_pk {
            return Err(StoreError::Scim(ScimError::invalid_value("a group cannot be a member of itself")));
        }
        if seen.insert(pk) {
            add.push(pk);
            displays.push(m.display.clone());
        }
    }
    let rows = d.zip_lists(&[(2, "p", Ty::Int), (3, "d", Ty::Text)]);
    let sql = format!(
        "INSERT INTO members (group_pk, member_pk, display) SELECT CAST($1 AS BIGINT), p, d FROM {rows} WHERE TRUE \
         ON CONFLICT DO NOTHING RETURNING member_pk"
    );
    let added = c.query(&sql, &[Arg::Int(group_pk), Arg::Ints(add), Arg::Texts(displays)]).await?;
    let added = added.iter().map(|r| r.int(0)).collect::<Result<Vec<_>>>()?;
    let by_pk: HashMap<i64, (Kind, String)> = found.into_iter().map(|(id, (pk, kind))| (pk, (kind, id))).collect();
    Ok(added.into_iter().filter_map(|pk| by_pk.get(&pk).map(|(kind, id)| (pk, *kind, id.clone()))).collect())
}

/// Refuses a member that is not a user or group of the tenant.
fn unknown_member(id: &str) -> StoreError {
    StoreError::Scim(ScimError::invalid_value(format!(
        "member \"{id}\" is not a user or group of this tenant; create it before adding it to a group"
    )))
}

/// A new version and `meta.lastModified` for the resources whose groups changed (`removed`
/// from a group, or `added` to it): a user's `groups` is part of it, so its ETag must change
/// with them. No event: the group's event tells the change. Their rows are locked here, all
/// in one statement, in the lock order ([`locks`]); an added member found deleted by then is
/// refused as unknown.
async fn touch_members<C: Conn>(
    c: &mut C,
    tenant: i64,
    removed: &[(i64, Kind, String)],
    added: &[(i64, Kind, String)],
    now: i64,
) -> Result<()> {
    let Some(&(first, _, _)) = removed.first().or(added.first()) else { return Ok(()) };
    locks::check(c, removed.iter().chain(added).map(|(pk, kind, _)| (*kind, *pk)))?;
    // Members may be users or groups: both kinds' lists change (their `groups`, a filter on
    // membership).
    note_write(c, tenant, Kind::User, first, 0);
    note_write(c, tenant, Kind::Group, first, 0);
    let pks: Vec<i64> = removed.iter().chain(added).map(|(pk, _, _)| *pk).collect();
    let sql = format!(
        "UPDATE resources SET version = version + 1, modified = $2 WHERE {} RETURNING pk",
        locks::in_lock_order(c.dialect(), "pk", 1)
    );
    let touched = c.query(&sql, &[Arg::Ints(pks), Arg::Int(now)]).await?;
    let touched = touched.iter().map(|r| r.int(0)).collect::<Result<HashSet<_>>>()?;
    match added.iter().find(|(pk, _, _)| !touched.contains(pk)) {
        Some((_, _, id)) => Err(unknown_member(id)),
        None => Ok(()),
    }
}

/// Removes members of a group: all of them, or those with the ids in `only`. Returns the
/// (key, kind, id) of each member removed, for [`touch_members`].
async fn remove_members<C: Conn>(
    c: &mut C,
    tenant: i64,
    group_pk: i64,
    only: Option<&[String]>,
) -> Result<Vec<(i64, Kind, String)>> {
    let sql = "SELECT m.member_pk, x.kind, x.id FROM members m JOIN resources x ON x.pk = m.member_pk \
               WHERE m.group_pk = $1";
    let rows = match only {
        None => c.query(sql, &[Arg::Int(group_pk)]).await?,
        Some([]) => return Ok(Vec::new()),
        Some(ids) => {
            let sql = format!("{sql} AND x.tenant_id = $2 AND {}", c.dialect().in_list("x.id", 3));
            let ids = ids.iter().map(|id| Some(id.clone())).collect();
            c.query(&sql, &[Arg::Int(group_pk), Arg::Int(tenant), Arg::Texts(ids)]).await?
        }
    };
    let removed =
        rows.into_iter().map(|mut r| Ok((r.int(0)?, kind_of(r.int(1)?)?, r.text(2)?))).collect::<Result<Vec<_>>>()?;
    if removed.is_empty() {
        return Ok(removed);
    }
    if only.is_none() {
        c.exec("DELETE FROM members WHERE group_pk = $1", &[Arg::Int(group_pk)]).await?;
    } else {
        let pks = removed.iter().map(|(pk, _, _)| *pk).collect();
        let sql = format!("DELETE FROM members WHERE group_pk = $1 AND {}", c.dialect().in_list("member_pk", 2));
        c.exec(&sql, &[Arg::Int(group_pk), Arg::Ints(pks)]).await?;
    }
    Ok(removed)
}

/// The ids of members added or removed.
fn member_ids(members: Vec<(i64, Kind, String)>) -> Vec<String> {
    members.into_iter().map(|(_, _, id)| id).collect()
}

/// Applies a PATCH's member delta: removals first (all, then by id), then additions, then the
/// members' new versions.
async fn apply_delta<C: Conn>(
    c: &mut C,
    tenant: i64,
    group_pk: i64,
    delta: &MemberDelta,
    now: i64,
) -> Result<MemberChange> {
    let mut removed = Vec::new();
    if delta.remove_all {
        removed = remove_members(c, tenant, group_pk, None).await?;
    }
    removed.extend(remove_members(c, tenant, group_pk, Some(&delta.remove)).await?);
    let added = add_members(c, tenant, group_pk, &delta.add).await?;
    touch_members(c, tenant, &removed, &added, now).await?;
    Ok(MemberChange { added: member_ids(added), removed: member_ids(removed) }.net())
}

/// Makes a group's members the given list (PUT): removes those not in it and adds those not
/// in the group, leaving the others (and their versions) as they are.
async fn replace_members<C: Conn>(
    c: &mut C,
    tenant: i64,
    group_pk: i64,
    list: &[Member],
    now: i64,
) -> Result<MemberChange> {
    let sql = "SELECT x.id FROM members m JOIN resources x ON x.pk = m.member_pk WHERE m.group_pk = $1";
    let current = c.query(sql, &[Arg::Int(group_pk)]).await?;
    let current = current.into_iter().map(|mut r| r.text(0)).collect::<Result<HashSet<_>>>()?;
    let wanted: HashSet<&str> = list.iter().map(|m| m.value.as_str()).collect();
    let gone: Vec<String> = current.iter().filter(|id| !wanted.contains(id.as_str())).cloned().collect();
    let removed = remove_members(c, tenant, group_pk, Some(&gone)).await?;
    let new: Vec<Member> = list.iter().filter(|m| !current.contains(&m.value)).cloned().collect();
    let added = add_members(c, tenant, group_pk, &new).await?;
    touch_members(c, tenant, &removed, &added, now).await?;
    Ok(MemberChange { added: member_ids(added), removed: member_ids(removed) })
}

/// The condition "`col` is one of `pks`": `= $1` for one key (the common point read), a list
/// otherwise.
fn pk_match<C: Conn>(c: &C, col: &str, pks: &[i64]) -> (String, Arg) {
    match pks {
        [one] => (format!("{col} = $1"), Arg::Int(*one)),
        many => (c.dialect().in_list(col, 1), Arg::Ints(many.to_vec())),
    }
}

/// Loads what `load` asks for into every record, with one statement for all of them.
pub(super) async fn load_extras<C: Conn>(c: &mut C, recs: &mut [(i64, Record)], load: Load) -> Result<()> {
    let pks_of = |recs: &[(i64, Record)], kind: Kind| -> Vec<i64> {
        recs.iter().filter(|(_, r)| r.kind == kind).map(|(pk, _)| *pk).collect()
    };
    let groups = if load.members { pks_of(recs, Kind::Group) } else { Vec::new() };
    if !groups.is_empty() {
        let (cond, arg) = pk_match(c, "m.group_pk", &groups);
        let sql = format!(
            "SELECT m.group_pk, x.id, x.kind, COALESCE(m.display, x.display) FROM members m JOIN resources x ON x.pk = m.member_pk
             WHERE {cond} ORDER BY m.group_pk, m.member_pk"
        );
        let mut by_group: HashMap<i64, Vec<MemberRow>> = HashMap::new();
        for mut row in c.query(&sql, &[arg]).await? {
            let m = MemberRow { value: row.text(1)?, kind: kind_of(row.int(2)?)?, display: row.opt_text(3)? };
            by_group.entry(row.int(0)?).or_default().push(m);
        }
        for (pk, rec) in recs.iter_mut().filter(|(_, r)| r.kind == Kind::Group) {
            rec.members = Some(by_group.remove(pk).unwrap_or_default());
        }
    }
    let users = if load.groups { pks_of(recs, Kind::User) } else { Vec::new() };
    if !users.is_empty() {
        let (cond, arg) = pk_match(c, "m.member_pk", &users);
        let sql = format!(
            "SELECT m.member_pk, g.id, g.display FROM members m JOIN resources g ON g.pk = m.group_pk
             WHERE {cond} ORDER BY m.member_pk, m.group_pk"
        );
        let mut by_user: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        for mut row in c.query(&sql, &[arg]).await? {
            let g = GroupRef { value: row.text(1)?, display: row.opt_text(2)? };
            by_user.entry(row.int(0)?).or_default().push(g);
        }
        for (pk, rec) in recs.iter_mut().filter(|(_, r)| r.kind == Kind::User) {
            rec.groups = Some(by_user.remove(pk).unwrap_or_default());
        }
    }
    Ok(())
}

/// `rec` with what `load` asks for.
async fn with_extras<C: Conn>(c: &mut C, pk: i64, rec: Record, load: Load) -> Result<Record> {
    let mut one = [(pk, rec)];
    load_extras(c, &mut one, load).await?;
    let [(_, rec)] = one;
    Ok(rec)
}

// ---------------------------------------------------------------- tenants and tokens

/// `SELECT 1`.
pub(crate) struct Ping;

impl Operation for Ping {
    type Output = ();
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        c.query("SELECT 1", &[]).await?;
        Ok(())
    }
}

pub(crate) struct CreateTenant {
    name: String,
    required: Vec<String>,
    now: OffsetDateTime,
    actor: Actor,
}

impl Operation for CreateTenant {
    type Output = Tenant;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Tenant> {
        let created = micros(self.now);
        let args = [Arg::Text(self.name.clone()), Arg::Text(to_json(&self.required)?), Arg::Int(created)];
        let row = c
            .opt("INSERT INTO tenants (name, required, created) VALUES ($1, $2, $3) RETURNING id", &args)
            .await
            .map_err(|e| match e {
                SqlError::Unique(_) => StoreError::Conflict(format!("a tenant named \"{}\" already exists", self.name)),
                SqlError::Store(e) => e,
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        let t = Tenant {
            id: row.int(0)?,
            name: self.name.clone(),
            required: self.required.clone(),
            created: instant(created),
            guard: Guard::default(),
        };
        // The webhooks of every tenant receive the new one's feed from its start.
        let sql = "INSERT INTO deliveries (webhook_id, tenant_id, position) SELECT id, $1, 0 FROM webhooks WHERE tenant_id IS NULL";
        c.exec(sql, &[Arg::Int(t.id)]).await?;
        event(c, t.id, &self.actor, created, NewEvent::tenant(EventType::TenantCreated, None, &t)).await?;
        Ok(t)
    }
}

pub(crate) struct ListTenants;

impl Operation for ListTenants {
    type Output = Vec<Tenant>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Tenant>> {
        let rows = c.query(&format!("SELECT {TENANT_COLS} FROM tenants ORDER BY name"), &[]).await?;
        rows.into_iter().map(tenant_row).collect()
    }
}

/// A tenant by name or by key.
pub(crate) enum TenantBy {
    Name(String),
    Id(i64),
}

impl Operation for TenantBy {
    type Output = Option<Tenant>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Tenant>> {
        let (sql, arg) = match self {
            TenantBy::Name(n) => (format!("SELECT {TENANT_COLS} FROM tenants WHERE name = $1"), Arg::Text(n.clone())),
            TenantBy::Id(id) => (format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"), Arg::Int(*id)),
        };
        c.opt(&sql, &[arg]).await?.map(tenant_row).transpose()
    }
}

pub(crate) struct DeleteTenant(String);

impl Operation for DeleteTenant {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        // Waits for the tenant's writes in flight (PostgreSQL); later ones find it gone.
        let sql = format!("SELECT id FROM tenants WHERE name = $1{}", c.dialect().lock(Lock::Update));
        let Some(row) = c.opt(&sql, &[Arg::Text(self.0.clone())]).await? else { return Ok(false) };
        let id = Arg::Int(row.int(0)?);
        c.exec(
            "DELETE FROM members WHERE group_pk IN (SELECT pk FROM resources WHERE tenant_id = $1)",
            std::slice::from_ref(&id),
        )
        .await?;
        for sql in [
            "DELETE FROM emails WHERE tenant_id = $1",
            "DELETE FROM resources WHERE tenant_id = $1",
            "DELETE FROM resource_counts WHERE tenant_id = $1",
            "DELETE FROM events WHERE tenant_id = $1",
            "DELETE FROM tokens WHERE tenant_id = $1",
            "DELETE FROM deliveries WHERE tenant_id = $1",
            "DELETE FROM deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE tenant_id = $1)",
            "DELETE FROM webhooks WHERE tenant_id = $1",
            "DELETE FROM requests WHERE tenant_id = $1",
            "DELETE FROM traffic WHERE tenant_id = $1",
            "DELETE FROM invites WHERE tenant_id = $1",
            "DELETE FROM tenants WHERE id = $1",
        ] {
            c.exec(sql, std::slice::from_ref(&id)).await?;
        }
        Ok(true)
    }
}

pub(crate) struct CreateToken(pub(crate) Token, pub(crate) Option<Actor>);

impl Operation for CreateToken {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let t = &self.0;
        lock_tenant(c, t.tenant).await?;
        let args = [
            Arg::Text(t.id.clone()),
            Arg::Int(t.tenant),
            Arg::Bytes(t.digest.clone()),
            Arg::opt_text(t.label.as_deref()),
            Arg::Int(micros(t.created)),
            Arg::opt_int(t.expires.map(micros)),
            Arg::opt_int(t.revoked.map(micros)),
            Arg::opt_int(t.last_used.map(micros)),
        ];
        c.exec(&format!("INSERT INTO tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"), &args).await?;
        if let Some(actor) = &self.1 {
            // The token as stored: its times to the microsecond, as every later event shows them.
            let stored = Token {
                created: instant(micros(t.created)),
                expires: t.expires.map(|e| instant(micros(e))),
                ..t.clone()
            };
            let ev = NewEvent::token(EventType::TenantTokenCreated, None, &stored);
            event(c, t.tenant, actor, micros(t.created), ev).await?;
        }
        Ok(())
    }
}

pub(crate) struct TokenById(String);

impl Operation for TokenById {
    type Output = Option<Token>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1");
        c.opt(&sql, &[Arg::Text(self.0.clone())]).await?.map(token_row).transpose()
    }
}

pub(crate) struct ListTokens(i64);

impl Operation for ListTokens {
    type Output = Vec<Token>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Token>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE tenant_id = $1 ORDER BY created, id");
        c.query(&sql, &[Arg::Int(self.0)]).await?.into_iter().map(token_row).collect()
    }
}

pub(crate) struct RevokeToken {
    id: String,
    now: OffsetDateTime,
    actor: Actor,
}

/// Changes a token (locked, with its tenant): `set` is the `SET` clause, with the token's id as
/// `$1` and `arg` as `$2`. An event of type `ty` tells the change, if there was one. False if
/// there is no such token.
async fn change_token<C: Conn>(
    c: &mut C,
    id: &str,
    set: &str,
    arg: Arg,
    (ty, actor, now): (EventType, &Actor, OffsetDateTime),
) -> Result<bool> {
    let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
    let Some(row) = c.opt(&sql, &[Arg::Text(id.to_owned())]).await? else { return Ok(false) };
    let before = token_row(row)?;
    lock_tenant(c, before.tenant).await?;
    let sql = format!("UPDATE tokens SET {set} WHERE id = $1 RETURNING {TOKEN_COLS}");
    let Some(row) = c.opt(&sql, &[Arg::Text(id.to_owned()), arg]).await? else { return Ok(false) };
    let after = token_row(row)?;
    if after != before {
        event(c, after.tenant, actor, micros(now), NewEvent::token(ty, Some(&before), &after)).await?;
    }
    Ok(true)
}

impl Operation for RevokeToken {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let set = "revoked = COALESCE(revoked, $2)";
        let why = (EventType::TenantTokenRevoked, &self.actor, self.now);
        change_token(c, &self.id, set, Arg::Int(micros(self.now)), why).await
    }
}

pub(crate) struct TouchToken {
    id: String,
    at: OffsetDateTime,
}

impl Operation for TouchToken {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let sql = "UPDATE tokens SET last_used = $2 WHERE id = $1 AND (last_used IS NULL OR last_used < $2)";
        c.exec(sql, &[Arg::Text(self.id.clone()), Arg::Int(micros(self.at))]).await?;
        Ok(())
    }
}

pub(crate) struct SetRequired {
    name: String,
    required: Vec<String>,
    now: OffsetDateTime,
    actor: Actor,
}

impl Operation for SetRequired {
    type Output = Option<Tenant>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE name = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
        let Some(row) = c.opt(&sql, &[Arg::Text(self.name.clone())]).await? else { return Ok(None) };
        let before = tenant_row(row)?;
        if before.required == self.required {
            return Ok(Some(before));
        }
        let args = [Arg::Int(before.id), Arg::Text(to_json(&self.required)?)];
        c.exec("UPDATE tenants SET required = $2 WHERE id = $1", &args).await?;
        let after = Tenant { required: self.required.clone(), ..before.clone() };
        event(
            c,
            after.id,
            &self.actor,
            micros(self.now),
            NewEvent::tenant(EventType::TenantUpdated, Some(&before), &after),
        )
        .await?;
        Ok(Some(after))
    }
}

/// A token's rotation: the new token and the old one's expiry, in one transaction.
pub(crate) struct RotateToken {
    new: Token,
    old: String,
    until: OffsetDateTime,
    now: OffsetDateTime,
    actor: Actor,
}

impl Operation for RotateToken {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, ctx: &Context) -> Result<()> {
        CreateToken(self.new.clone(), Some(self.actor.clone())).run(c, ctx).await?;
        let set = "expires = CASE WHEN expires IS NULL OR expires > $2 THEN $2 ELSE expires END";
        let why = (EventType::TenantTokenRotated, &self.actor, self.now);
        if !change_token(c, &self.old, set, Arg::Int(micros(self.until)), why).await? {
            // Nothing of the rotation is kept.
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

const API_KEY_COLS: &str = "id, digest, label, created, revoked";

fn api_key_row(mut r: Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.text(0)?,
        digest: r.bytes(1)?,
        label: r.opt_text(2)?,
        created: instant(r.int(3)?),
        revoked: r.opt_int(4)?.map(instant),
    })
}

pub(crate) struct CreateApiKey(ApiKey);

impl Operation for CreateApiKey {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let k = &self.0;
        let args = [
            Arg::Text(k.id.clone()),
            Arg::Bytes(k.digest.clone()),
            Arg::opt_text(k.label.as_deref()),
            Arg::Int(micros(k.created)),
            Arg::opt_int(k.revoked.map(micros)),
        ];
        c.exec(&format!("INSERT INTO api_keys ({API_KEY_COLS}) VALUES ($1, $2, $3, $4, $5)"), &args).await?;
        Ok(())
    }
}

pub(crate) struct ApiKeyById(String);

impl Operation for ApiKeyById {
    type Output = Option<ApiKey>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE id = $1");
        c.opt(&sql, &[Arg::Text(self.0.clone())]).await?.map(api_key_row).transpose()
    }
}

pub(crate) struct ListApiKeys;

impl Operation for ListApiKeys {
    type Output = Vec<ApiKey>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys ORDER BY created, id");
        c.query(&sql, &[]).await?.into_iter().map(api_key_row).collect()
    }
}

pub(crate) struct RevokeApiKey {
    id: String,
    now: OffsetDateTime,
}

impl Operation for RevokeApiKey {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let args = [Arg::Text(self.id.clone()), Arg::Int(micros(self.now))];
        Ok(c.exec("UPDATE api_keys SET revoked = COALESCE(revoked, $2) WHERE id = $1", &args).await? > 0)
    }
}

pub(crate) struct PurgeExpiredTokens {
    label_prefix: String,
    now: OffsetDateTime,
}

impl Operation for PurgeExpiredTokens {
    type Output = u64;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<u64> {
        let args = [Arg::Int(micros(self.now)), Arg::Text(self.label_prefix.clone())];
        let sql = "DELETE FROM tokens WHERE expires < $1 AND substr(label, 1, length($2)) = $2";
        Ok(c.exec(sql, &args).await?)
    }
}

// ---------------------------------------------------------------- resources

impl Operation for Create {
    type Output = Record;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Record> {
        let (tenant, kind) = (self.tenant, self.kind);
        let keys = IndexKeys::of(kind, &self.doc);
        keys.check(kind)?;
        let now = micros(self.now);
        lock_tenant(c, tenant).await?;
        let args = [
            Arg::Int(tenant),
            Arg::Int(kind_code(kind)),
            Arg::Text(self.id.clone()),
            Arg::Text(keys.name_lc.clone()),
            Arg::opt_text(keys.display.as_deref()),
            Arg::opt_text(keys.display_lc.as_deref()),
            Arg::opt_text(keys.external_id.as_deref()),
            Arg::opt_text(keys.employee_number_lc.as_deref()),
            Arg::Int(now),
            Arg::Text(to_json(&self.doc)?),
        ];
        let row = c
            .opt(
                "INSERT INTO resources (tenant_id, kind, id, name_lc, display, display_lc, external_id, employee_number_lc, created, modified, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10) RETURNING pk",
                &args,
            )
            .await
            .map_err(|e| resource_conflict(e, kind, &keys))?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        let pk = row.int(0)?;
        note_write(c, tenant, kind, pk, 1);
        write_emails(c, tenant, pk, &keys, false).await?;
        // The new group is no other write's to wait for: its members are the first rows it locks.
        let added = add_members(c, tenant, pk, &self.members).await?;
        touch_members(c, tenant, &[], &added, now).await?;
        let rec = Record {
            kind,
            id: self.id.clone(),
            created: instant(now),
            last_modified: instant(now),
            version: 1,
            doc: self.doc.clone(),
            members: None,
            // A new user belongs to no group yet.
            groups: (kind == Kind::User).then(Vec::new),
        };
        let rec = with_extras(c, pk, rec, Load { members: kind == Kind::Group, groups: false }).await?;
        let ev = NewEvent::resource(EventType::created(kind), &rec, None, Some(&rec.doc));
        event(c, tenant, &self.actor, now, ev).await?;
        Ok(rec)
    }
}

impl Operation for Get {
    type Output = Option<Record>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Record>> {
        let sql = format!("SELECT {RECORD_COLS} FROM resources r WHERE r.tenant_id = $1 AND r.id = $2 AND r.kind = $3");
        let args = [Arg::Int(self.tenant), Arg::Text(self.id.clone()), Arg::Int(kind_code(self.kind))];
        let Some(row) = c.opt(&sql, &args).await? else { return Ok(None) };
        let (pk, rec) = record_row(row)?;
        with_extras(c, pk, rec, self.load).await.map(Some)
    }
}

/// Locks a resource for a change and checks `If-Match`: its key and record.
async fn lock_resource<C: Conn>(
    c: &mut C,
    tenant: i64,
    kind: Kind,
    id: &str,
    lock: Lock,
    if_version: Option<i64>,
) -> Result<(i64, Record)> {
    let sql = format!(
        "SELECT {RECORD_COLS} FROM resources r WHERE r.tenant_id = $1 AND r.id = $2 AND r.kind = $3{}",
        c.dialect().lock(lock)
    );
    let row = c
        .opt(&sql, &[Arg::Int(tenant), Arg::Text(id.to_owned()), Arg::Int(kind_code(kind))])
        .await?
        .ok_or(StoreError::NotFound)?;
    let (pk, rec) = record_row(row)?;
    locks::hold(c, kind, pk);
    if if_version.is_some_and(|v| v != rec.version) {
        return Err(StoreError::VersionMismatch);
    }
    Ok((pk, rec))
}

/// Writes what a PUT or PATCH makes of a locked resource (`current`, key `pk`): the new
/// document if it differs, the member change, one new version, and the events (the change of
/// attributes, then the members removed, then those added). Nothing at all if nothing changes.
#[allow(clippy::too_many_arguments)]
async fn write_change<C: Conn>(
    c: &mut C,
    tenant: i64,
    pk: i64,
    current: Record,
    doc: &Value,
    members: MemberChangeOf<'_>,
    now: i64,
    load: Load,
    actor: &Actor,
) -> Result<Record> {
    let doc_changed = *doc != current.doc;
    let kind = current.kind;
    // The document first: its unique values are, like the resource's row, taken before the
    // members' rows (two groups renamed to one name while sharing a member wait for each other
    // once, not in a cycle).
    if doc_changed {
        write_document(c, tenant, kind, pk, &current.doc, doc, now).await?;
    }
    let change = match members {
        MemberChangeOf::Unchanged => MemberChange::default(),
        MemberChangeOf::Replace(list) => replace_members(c, tenant, pk, list, now).await?,
        MemberChangeOf::Delta(delta) => apply_delta(c, tenant, pk, delta, now).await?,
    };
    if !doc_changed && change.is_empty() {
        return with_extras(c, pk, current, load).await;
    }
    note_write(c, tenant, kind, pk, 0);
    if !doc_changed {
        let args = [Arg::Int(pk), Arg::Int(now)];
        c.exec("UPDATE resources SET modified = $2, version = version + 1 WHERE pk = $1", &args).await?;
    }
    let rec = Record {
        kind,
        id: current.id.clone(),
        created: current.created,
        last_modified: instant(now),
        version: current.version + 1,
        doc: doc.clone(),
        members: None,
        groups: None,
    };
    if doc_changed {
        let ty = EventType::updated(kind, &current.doc, doc);
        event(c, tenant, actor, now, NewEvent::resource(ty, &rec, Some(&current.doc), Some(doc))).await?;
    }
    change.events(c, tenant, actor, now, &rec).await?;
    with_extras(c, pk, rec, load).await
}

/// How a write changes a group's members.
enum MemberChangeOf<'a> {
    Unchanged,
    Replace(&'a [Member]),
    Delta(&'a MemberDelta),
}

impl Operation for Update {
    type Output = Record;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Record> {
        let (tenant, kind) = (self.tenant, self.kind);
        lock_tenant(c, tenant).await?;
        locks::take_first(c).await?;
        let (pk, current) = lock_resource(c, tenant, kind, &self.id, Lock::NoKeyUpdate, self.if_version).await?;
        let members = match &self.members {
            Members::Unchanged => MemberChangeOf::Unchanged,
            Members::Replace(list) => MemberChangeOf::Replace(list),
            Members::Delta(delta) => MemberChangeOf::Delta(delta),
        };
        write_change(c, tenant, pk, current, &self.doc, members, micros(self.now), self.load, &self.actor).await
    }
}

impl Operation for Patch {
    type Output = Record;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Record> {
        let (tenant, kind) = (self.tenant, self.kind);
        lock_tenant(c, tenant).await?;
        locks::take_first(c).await?;
        let (pk, current) = lock_resource(c, tenant, kind, &self.id, Lock::NoKeyUpdate, None).await?;
        let Some(patched) = (self.apply)(&current)? else {
            return with_extras(c, pk, current, self.load).await;
        };
        let members = MemberChangeOf::Delta(&patched.delta);
        write_change(c, tenant, pk, current, &patched.doc, members, micros(self.now), self.load, &self.actor).await
    }
}

/// Replaces a resource's document (`old` until now), and of its indexed columns and email rows
/// those whose values change, and bumps its version. A column left out of the `UPDATE` leaves
/// its indexes untouched: a PATCH of a title rewrites the row and the `modified` index, not
/// the seven indexes of the keys it leaves alone nor the email rows (each index entry rewritten is a
/// B-tree page more to write, and on SQLite to copy through the WAL).
async fn write_document<C: Conn>(
    c: &mut C,
    tenant: i64,
    kind: Kind,
    pk: i64,
    old: &Value,
    doc: &Value,
    now: i64,
) -> Result<()> {
    let keys = IndexKeys::of(kind, doc);
    keys.check(kind)?;
    let was = IndexKeys::of(kind, old);
    let mut sql = "UPDATE resources SET modified = $2, version = version + 1, doc = $3".to_owned();
    let mut args = vec![Arg::Int(pk), Arg::Int(now), Arg::Text(to_json(doc)?)];
    let mut set = |column: &str, changed: bool, value: Arg| {
        if changed {
            args.push(value);
            sql.push_str(&format!(", {column} = ${}", args.len()));
        }
    };
    set("name_lc", keys.name_lc != was.name_lc, Arg::Text(keys.name_lc.clone()));
    set("display", keys.display != was.display, Arg::opt_text(keys.display.as_deref()));
    set("display_lc", keys.display_lc != was.display_lc, Arg::opt_text(keys.display_lc.as_deref()));
    set("external_id", keys.external_id != was.external_id, Arg::opt_text(keys.external_id.as_deref()));
    let employee_number = Arg::opt_text(keys.employee_number_lc.as_deref());
    set("employee_number_lc", keys.employee_number_lc != was.employee_number_lc, employee_number);
    sql.push_str(" WHERE pk = $1");
    c.exec(&sql, &args).await.map_err(|e| resource_conflict(e, kind, &keys))?;
    if keys.emails != was.emails {
        write_emails(c, tenant, pk, &keys, true).await?;
    }
    Ok(())
}

impl Operation for Delete {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let (tenant, kind) = (self.tenant, self.kind);
        let now = micros(self.now);
        lock_tenant(c, tenant).await?;
        // The groups it leaves before the resource itself (`locks`): found and locked with it,
        // in one statement, unless an earlier attempt said what to take.
        if !locks::take_first(c).await? && c.dialect().row_locks {
            let sql = format!(
                "SELECT pk, kind FROM resources WHERE pk IN (
                     SELECT x.pk FROM resources x WHERE x.tenant_id = $1 AND x.id = $2 AND x.kind = $3
                     UNION ALL SELECT m.group_pk FROM members m JOIN resources x ON x.pk = m.member_pk
                     WHERE x.tenant_id = $1 AND x.id = $2 AND x.kind = $3)
                 ORDER BY kind DESC, pk{}",
                c.dialect().lock(Lock::Update)
            );
            let args = [Arg::Int(tenant), Arg::Text(self.id.clone()), Arg::Int(kind_code(kind))];
            for row in c.query(&sql, &args).await? {
                let (pk, kind) = (row.int(0)?, kind_of(row.int(1)?)?);
                locks::hold(c, kind, pk);
            }
        }
        let (pk, rec) = lock_resource(c, tenant, kind, &self.id, Lock::Update, self.if_version).await?;
        // Now that it is locked no group gains it (a write adding a member locks the member
        // before it commits): these are all the groups it leaves. One it joined after they were
        // locked above makes the write start again, taking that group first.
        let groups = c.query("SELECT group_pk FROM members WHERE member_pk = $1", &[Arg::Int(pk)]).await?;
        let groups = groups.iter().map(|r| r.int(0)).collect::<Result<Vec<_>>>()?;
        locks::check(c, groups.iter().map(|gpk| (Kind::Group, *gpk)))?;
        // The groups it leaves change too: a new version and a `members_removed` each.
        let mut groups = if groups.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "UPDATE resources SET version = version + 1, modified = $2 WHERE {} \
                 RETURNING pk, kind, id, created, modified, version, doc",
                locks::in_lock_order(c.dialect(), "pk", 1)
            );
            let rows = c.query(&sql, &[Arg::Ints(groups), Arg::Int(now)]).await?;
            rows.into_iter().map(record_row).collect::<Result<Vec<_>>>()?
        };
        groups.sort_by_key(|(gpk, _)| *gpk);
        note_write(c, tenant, kind, pk, -1);
        if let Some((gpk, _)) = groups.first() {
            note_write(c, tenant, Kind::Group, *gpk, 0);
        }
        for (_, group) in &groups {
            let ev = NewEvent::members(EventType::GroupMembersRemoved, group, vec![self.id.clone()]);
            event(c, tenant, &self.actor, now, ev).await?;
        }
        // A group's own members, after it.
        let members = remove_members(c, tenant, pk, None).await?;
        touch_members(c, tenant, &members, &[], now).await?;
        c.exec("DELETE FROM members WHERE member_pk = $1", &[Arg::Int(pk)]).await?;
        c.exec("DELETE FROM emails WHERE resource_pk = $1", &[Arg::Int(pk)]).await?;
        c.exec("DELETE FROM resources WHERE pk = $1", &[Arg::Int(pk)]).await?;
        let ev = NewEvent::resource(EventType::deleted(kind), &rec, Some(&rec.doc), None);
        event(c, tenant, &self.actor, now, ev).await
    }
}

/// The records with these keys, in the order given.
pub(super) async fn records_by_pk<C: Conn>(c: &mut C, pks: &[i64]) -> Result<Vec<(i64, Record)>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {RECORD_COLS} FROM resources r WHERE {}", c.dialect().in_list("r.pk", 1));
    let mut by_pk: HashMap<i64, Record> = HashMap::with_capacity(pks.len());
    for row in c.query(&sql, &[Arg::Ints(pks.to_vec())]).await? {
        let (pk, rec) = record_row(row)?;
        by_pk.insert(pk, rec);
    }
    Ok(pks.iter().filter_map(|pk| by_pk.remove(pk).map(|r| (*pk, r))).collect())
}

/// A database secret, stored on first use (see [`Store::secret`]).
pub(crate) struct Secret {
    name: String,
    candidate: String,
}

/// The stored value of a secret.
struct SecretOf(String);

impl Operation for SecretOf {
    type Output = Option<String>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<String>> {
        let row = c.opt("SELECT value FROM secrets WHERE name = $1", &[Arg::Text(self.0.clone())]).await?;
        row.map(|mut r| r.text(0)).transpose()
    }
}

impl Operation for Secret {
    type Output = String;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, ctx: &Context) -> Result<String> {
        let args = [Arg::Text(self.name.clone()), Arg::Text(self.candidate.clone())];
        c.exec("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &args).await?;
        SecretOf(self.name.clone())
            .run(c, ctx)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("the secret {} was stored and is not there", self.name)))
    }
}

pub(crate) struct Events {
    tenant: i64,
    after: i64,
    limit: u64,
}

impl Operation for Events {
    type Output = Feed;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Feed> {
        let head = c
            .opt("SELECT feed_seq, feed_pruned, guard_held FROM tenants WHERE id = $1", &[Arg::Int(self.tenant)])
            .await?
            .ok_or(StoreError::NotFound)?;
        let (position, pruned, held_from) = (head.int(0)?, head.int(1)?, head.opt_int(2)?);
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        let args = [Arg::Int(self.tenant), Arg::Int(self.after), Arg::Int(limit)];
        let sql = "SELECT seq, id, type, at, body FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        let rows = if self.limit == 0 { Vec::new() } else { c.query(sql, &args).await? };
        let events = rows
            .into_iter()
            .map(|mut r| {
                Ok(Event { seq: r.int(0)?, id: r.text(1)?, kind: r.text(2)?, at: instant(r.int(3)?), body: r.text(4)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Feed { events, position, pruned, held_from })
    }
}

pub(crate) struct SetGuard {
    name: String,
    settings: GuardSettings,
}

impl Operation for SetGuard {
    type Output = Option<Tenant>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Tenant>> {
        let g = &self.settings;
        let args = [
            Arg::Text(self.name.clone()),
            Arg::opt_int(g.share_permille),
            Arg::opt_int(g.min_users),
            Arg::opt_int(g.window.map(|w| i64::try_from(w.whole_microseconds()).unwrap_or(i64::MAX))),
        ];
        let sql = format!(
            "UPDATE tenants SET guard_share = COALESCE(CAST($2 AS BIGINT), guard_share),
             guard_min = COALESCE(CAST($3 AS BIGINT), guard_min), guard_window = COALESCE(CAST($4 AS BIGINT), guard_window)
             WHERE name = $1 RETURNING {TENANT_COLS}"
        );
        c.opt(&sql, &args).await?.map(tenant_row).transpose()
    }
}

pub(crate) struct ReleaseGuard {
    name: String,
    discard: bool,
    now: OffsetDateTime,
}

impl Operation for ReleaseGuard {
    type Output = Option<Tenant>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Tenant>> {
        let sql = format!(
            "SELECT id, guard_held, feed_seq FROM tenants WHERE name = $1{}",
            c.dialect().lock(Lock::NoKeyUpdate)
        );
        let Some(row) = c.opt(&sql, &[Arg::Text(self.name.clone())]).await? else { return Ok(None) };
        let (id, held, head) = (row.int(0)?, row.opt_int(1)?, row.int(2)?);
        if let (Some(from), true) = (held, self.discard) {
            let sql = "UPDATE deliveries SET discard_from = $2, discard_to = $3 WHERE tenant_id = $1";
            c.exec(sql, &[Arg::Int(id), Arg::Int(from), Arg::Int(head)]).await?;
        }
        let base = active_users(c, id).await?;
        let sql = format!(
            "UPDATE tenants SET guard_held = NULL, guard_tripped_at = NULL, guard_start = $2, guard_count = 0,
             guard_base = $3 WHERE id = $1 RETURNING {TENANT_COLS}"
        );
        c.opt(&sql, &[Arg::Int(id), Arg::Int(micros(self.now)), Arg::Int(base)]).await?.map(tenant_row).transpose()
    }
}

/// The most events one pruning transaction deletes.
const PRUNE_BATCH: i64 = 10_000;

/// Prunes one tenant's feed by one batch: the events committed before `before`, and those
/// beyond the newest `keep`. Returns how many it deleted.
pub(crate) struct PruneTenant {
    tenant: i64,
    before: Option<i64>,
    keep: Option<u64>,
}

impl Operation for PruneTenant {
    /// How many it deleted; `None` when there was nothing (more) to prune.
    type Output = Option<u64>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<u64>> {
        let sql =
            format!("SELECT feed_seq, feed_pruned FROM tenants WHERE id = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
        let Some(head) = c.opt(&sql, &[Arg::Int(self.tenant)]).await? else { return Ok(None) };
        let (position, pruned) = (head.int(0)?, head.int(1)?);
        let mut cut = pruned;
        if let Some(keep) = self.keep {
            cut = cut.max(position.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX)));
        }
        if let Some(before) = self.before {
            // The first event at or after the cutoff, looked for from the last cut on (a
            // range of the (tenant, seq) index): everything before it is older.
            let sql = "SELECT seq FROM events WHERE tenant_id = $1 AND seq > $2 AND at >= $3 ORDER BY seq LIMIT 1";
            let first_kept = c.opt(sql, &[Arg::Int(self.tenant), Arg::Int(pruned), Arg::Int(before)]).await?;
            let by_age = match first_kept {
                Some(r) => r.int(0)? - 1,
                None => position,
            };
            cut = cut.max(by_age);
        }
        let cut = cut.min(position).min(pruned.saturating_add(PRUNE_BATCH));
        if cut <= pruned {
            return Ok(None);
        }
        let args = [Arg::Int(self.tenant), Arg::Int(pruned), Arg::Int(cut)];
        let n = c.exec("DELETE FROM events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3", &args).await?;
        c.exec("UPDATE tenants SET feed_pruned = $2 WHERE id = $1", &[Arg::Int(self.tenant), Arg::Int(cut)]).await?;
        Ok(Some(n))
    }
}

// ---------------------------------------------------------------- the Store of every engine

/// Prunes each tenant with `prune(tenant, before as stored)`, summing what it deleted; nothing
/// when there is no limit at all.
async fn prune_each<E: Engine, F: Future<Output = Result<u64>>>(
    engine: &E,
    before: Option<OffsetDateTime>,
    keep: Option<u64>,
    prune: impl Fn(i64, Option<i64>) -> F,
) -> Result<u64> {
    if before.is_none() && keep.is_none() {
        return Ok(0);
    }
    let before = before.map(micros);
    let mut total = 0;
    for t in engine.execute(ListTenants).await? {
        total += prune(t.id, before).await?;
    }
    Ok(total)
}

#[async_trait::async_trait]
impl<E: Engine> Store for E {
    async fn ping(&self) -> Result<()> {
        timed(E::NAME, "ping", self.execute(Ping)).await
    }
    async fn create_tenant(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<Tenant> {
        timed(E::NAME, "create_tenant", self.execute(CreateTenant { name, required, now, actor })).await
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        timed(E::NAME, "list_tenants", self.execute(ListTenants)).await
    }
    async fn tenant(&self, name: String) -> Result<Option<Tenant>> {
        timed(E::NAME, "tenant", self.execute(TenantBy::Name(name))).await
    }
    async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>> {
        timed(E::NAME, "tenant_by_id", self.execute(TenantBy::Id(id))).await
    }
    async fn delete_tenant(&self, name: String) -> Result<bool> {
        timed(E::NAME, "delete_tenant", self.execute(DeleteTenant(name))).await
    }
    async fn create_token(&self, token: Token, actor: Option<Actor>) -> Result<()> {
        timed(E::NAME, "create_token", self.execute(CreateToken(token, actor))).await
    }
    async fn token(&self, id: String) -> Result<Option<Token>> {
        timed(E::NAME, "token", self.execute(TokenById(id))).await
    }
    async fn list_tokens(&self, tenant: i64) -> Result<Vec<Token>> {
        timed(E::NAME, "list_tokens", self.execute(ListTokens(tenant))).await
    }
    async fn revoke_token(&self, id: String, now: OffsetDateTime, actor: Actor) -> Result<bool> {
        timed(E::NAME, "revoke_token", self.execute(RevokeToken { id, now, actor })).await
    }
    async fn purge_expired_tokens(&self, label_prefix: String, now: OffsetDateTime) -> Result<u64> {
        timed(E::NAME, "purge_expired_tokens", self.execute(PurgeExpiredTokens { label_prefix, now })).await
    }
    async fn set_required(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<Option<Tenant>> {
        timed(E::NAME, "set_required", self.execute(SetRequired { name, required, now, actor })).await
    }
    async fn rotate_token(
        &self,
        new: Token,
        old: String,
        until: OffsetDateTime,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<()> {
        timed(E::NAME, "rotate_token", self.execute(RotateToken { new, old, until, now, actor })).await
    }
    async fn create_api_key(&self, key: ApiKey) -> Result<()> {
        timed(E::NAME, "create_api_key", self.execute(CreateApiKey(key))).await
    }
    async fn api_key(&self, id: String) -> Result<Option<ApiKey>> {
        timed(E::NAME, "api_key", self.execute(ApiKeyById(id))).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        timed(E::NAME, "list_api_keys", self.execute(ListApiKeys)).await
    }
    async fn revoke_api_key(&self, id: String, now: OffsetDateTime) -> Result<bool> {
        timed(E::NAME, "revoke_api_key", self.execute(RevokeApiKey { id, now })).await
    }
    async fn create(&self, req: Create) -> Result<Record> {
        timed(E::NAME, "create", self.execute(req)).await
    }
    async fn get(&self, req: Get) -> Result<Option<Record>> {
        timed(E::NAME, "get", self.execute(req)).await
    }
    async fn update(&self, req: Update) -> Result<Record> {
        timed(E::NAME, "update", self.execute(req)).await
    }
    async fn patch(&self, req: Patch) -> Result<Record> {
        timed(E::NAME, "patch", self.execute(req)).await
    }
    async fn delete(&self, req: Delete) -> Result<()> {
        timed(E::NAME, "delete", self.execute(req)).await
    }
    async fn query(&self, req: Query) -> Result<Page> {
        timed(E::NAME, "query", async {
            if req.position {
                self.settle(req.tenant).await?;
            }
            self.execute(req).await
        })
        .await
    }
    async fn secret(&self, name: String, candidate: String) -> Result<String> {
        if let Some(v) = self.execute(SecretOf(name.clone())).await? {
            return Ok(v);
        }
        self.execute(Secret { name, candidate }).await
    }
    async fn events(&self, tenant: i64, after: i64, limit: u64) -> Result<Feed> {
        timed(E::NAME, "events", async {
            self.settle(tenant).await?;
            self.execute(Events { tenant, after, limit }).await
        })
        .await
    }
    fn subscribe(&self, tenant: i64) -> tokio::sync::watch::Receiver<i64> {
        self.signal().subscribe(tenant)
    }
    async fn prune_events(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> Result<u64> {
        let prune = |tenant, before| async move {
            let mut total = 0;
            while let Some(n) = self.execute(PruneTenant { tenant, before, keep }).await? {
                total += n;
            }
            Ok(total)
        };
        timed(E::NAME, "prune_events", prune_each(self, before, keep, prune)).await
    }
    async fn touch_token(&self, id: String, at: OffsetDateTime) -> Result<()> {
        timed(E::NAME, "touch_token", self.execute(TouchToken { id, at })).await
    }
    fn subscribe_all(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal().subscribe_all()
    }
    async fn set_guard(&self, name: String, settings: GuardSettings) -> Result<Option<Tenant>> {
        timed(E::NAME, "set_guard", self.execute(SetGuard { name, settings })).await
    }
    async fn release_guard(&self, name: String, discard: bool, now: OffsetDateTime) -> Result<Option<Tenant>> {
        timed(E::NAME, "release_guard", self.execute(ReleaseGuard { name, discard, now })).await
    }
    async fn create_webhook(&self, webhook: Webhook) -> Result<()> {
        timed(E::NAME, "create_webhook", async {
            // It starts at the feed's position: number what is committed first, so that "from now
            // on" means what was acknowledged before.
            if let Some(t) = webhook.tenant {
                self.settle(t).await?;
            }
            self.execute(hooks::CreateWebhook(webhook)).await
        })
        .await
    }
    async fn list_webhooks(&self) -> Result<Vec<(Webhook, Vec<Delivery>)>> {
        timed(E::NAME, "list_webhooks", self.execute(hooks::ListWebhooks)).await
    }
    async fn webhook(&self, id: String) -> Result<Option<(Webhook, Vec<Delivery>)>> {
        timed(E::NAME, "webhook", self.execute(hooks::WebhookById(id))).await
    }
    async fn delete_webhook(&self, id: String) -> Result<bool> {
        timed(E::NAME, "delete_webhook", self.execute(hooks::DeleteWebhook(id))).await
    }
    async fn replay_webhook(&self, id: String, tenant: Option<i64>, from: i64) -> Result<bool> {
        timed(E::NAME, "replay_webhook", self.execute(hooks::ReplayWebhook { id, tenant, from })).await
    }
    async fn rotate_webhook_secret(&self, id: String, secret: String, old_until: OffsetDateTime) -> Result<bool> {
        timed(E::NAME, "rotate_webhook_secret", self.execute(hooks::RotateWebhookSecret { id, secret, old_until }))
            .await
    }
    async fn claim_deliveries(
        &self,
        owner: String,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<Claim>> {
        timed(E::NAME, "claim_deliveries", self.execute(hooks::ClaimDeliveries { owner, now, lease_until, limit }))
            .await
    }
    async fn deliveries_due(&self, now: OffsetDateTime) -> Result<Option<bool>> {
        timed(E::NAME, "deliveries_due", self.execute(hooks::AnyDue { now })).await
    }
    async fn ack_delivery(&self, webhook: String, tenant: i64, position: i64, now: OffsetDateTime) -> Result<bool> {
        timed(E::NAME, "ack_delivery", self.execute(hooks::AckDelivery { webhook, tenant, position, now })).await
    }
    async fn settle_delivery(
        &self,
        webhook: String,
        tenant: i64,
        owner: String,
        now: OffsetDateTime,
        outcome: Outcome,
    ) -> Result<bool> {
        timed(E::NAME, "settle_delivery", self.execute(hooks::SettleDelivery { webhook, tenant, owner, now, outcome }))
            .await
    }

    async fn log_requests(&self, entries: Vec<LoggedRequest>) -> Result<()> {
        timed(E::NAME, "log_requests", async {
            if entries.is_empty() {
                return Ok(());
            }
            self.execute(tr::LogRequests(entries)).await
        })
        .await
    }
    async fn requests(&self, q: RequestQuery) -> Result<Vec<LoggedRequest>> {
        timed(E::NAME, "requests", self.execute(tr::Requests(q))).await
    }
    async fn prune_requests(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> Result<u64> {
        let prune = |tenant, before| async move {
            let mut total = 0;
            while let Some(n) = self.execute(tr::PruneRequests { tenant, before, keep }).await? {
                total += n;
            }
            Ok(total)
        };
        timed(E::NAME, "prune_requests", prune_each(self, before, keep, prune)).await
    }
    async fn traffic(&self, tenant: Option<i64>) -> Result<Vec<Traffic>> {
        timed(E::NAME, "traffic", self.execute(tr::TrafficOf(tenant))).await
    }
    async fn set_health(
        &self,
        tenant: i64,
        before: Option<String>,
        after: String,
        data: Value,
        now: OffsetDateTime,
    ) -> Result<bool> {
        timed(E::NAME, "set_health", self.execute(tr::SetHealth { tenant, before, after, data, now })).await
    }
    async fn create_invite(&self, invite: Invite) -> Result<()> {
        timed(E::NAME, "create_invite", self.execute(tr::CreateInvite(invite))).await
    }
    async fn invite(&self, id: String) -> Result<Option<Invite>> {
        timed(E::NAME, "invite", async { Ok(self.execute(tr::Invites::Id(id)).await?.pop()) }).await
    }
    async fn list_invites(&self, tenant: i64) -> Result<Vec<Invite>> {
        timed(E::NAME, "list_invites", self.execute(tr::Invites::Tenant(tenant))).await
    }
    async fn revoke_invite(&self, id: String, now: OffsetDateTime) -> Result<bool> {
        timed(E::NAME, "revoke_invite", self.execute(tr::RevokeInvite { id, now })).await
    }
    async fn redeem_invite(&self, id: String, token: Token, now: OffsetDateTime, actor: Actor) -> Result<bool> {
        timed(E::NAME, "redeem_invite", self.execute(tr::RedeemInvite { id, token, now, actor })).await
    }
    async fn create_session(&self, session: Session) -> Result<()> {
        timed(E::NAME, "create_session", self.execute(tr::CreateSession(session))).await
    }
    async fn session(&self, id: String) -> Result<Option<Session>> {
        timed(E::NAME, "session", self.execute(tr::SessionById(id))).await
    }
    async fn delete_session(&self, id: String) -> Result<()> {
        timed(E::NAME, "delete_session", self.execute(tr::DeleteSession(id))).await
    }
    async fn export_tenant(&self, name: String) -> Result<Option<crate::transfer::TenantDump>> {
        timed(E::NAME, "export_tenant", async {
            // Number what is committed first, so that the position read is the feed's.
            let Some(t) = self.execute(TenantBy::Name(name.clone())).await? else { return Ok(None) };
            self.settle(t.id).await?;
            self.execute(xfer::ExportTenant(name)).await
        })
        .await
    }
    async fn export_resources(
        &self,
        tenant: i64,
        after: crate::transfer::Cursor,
        limit: u64,
    ) -> Result<crate::transfer::ExportPage<Record>> {
        timed(E::NAME, "export_resources", self.execute(xfer::ExportResources { tenant, after, limit })).await
    }
    async fn export_members(
        &self,
        tenant: i64,
        after: crate::transfer::Cursor,
        limit: u64,
    ) -> Result<crate::transfer::ExportPage<crate::transfer::MemberDump>> {
        timed(E::NAME, "export_members", self.execute(xfer::ExportMembers { tenant, after, limit })).await
    }
    async fn import_tenant(&self, tenant: crate::transfer::TenantDump) -> Result<crate::transfer::ImportedTenant> {
        timed(E::NAME, "import_tenant", self.execute(xfer::ImportTenant(tenant))).await
    }
    async fn import_rows(&self, rows: crate::transfer::ImportRows) -> Result<Vec<crate::transfer::Rejected>> {
        timed(E::NAME, "import_rows", self.execute(xfer::Import(rows))).await
    }
    async fn transfer_counts(&self, tenant: i64) -> Result<crate::transfer::TransferCounts> {
        timed(E::NAME, "transfer_counts", self.execute(xfer::Counts(tenant))).await
    }
    fn report_metrics(&self) {
        self.report_gauges();
    }
}
