//! The store operations of moving a store's contents (see `crate::transfer`), for both
//! engines.
//!
//! Reads are pages in key order after a cursor (index range scans, whatever the tenant's
//! size). Writes are upserts keyed by what the rows carry (a token's id, a resource's id in its
//! tenant, an event's position in its tenant's feed), written as multi-row `INSERT ... VALUES
//! ... ON CONFLICT ... DO UPDATE` statements of [`ROWS_PER_STATEMENT`] rows, so importing the
//! same rows again changes nothing and a batch costs a few statements on either engine. Each
//! batch first checks its rows and refuses the ones that cannot be written (writing nothing
//! then); everything else is the engines' common SQL.

use std::collections::{HashMap, HashSet};

use super::{Arg, Conn, Lock, Mode, Operation, Row, SqlError, kind_code, kind_of};
use crate::common::{instant, micros};
use crate::plan::IndexKeys;
use crate::sql::ops::{Context, RECORD_COLS, lock_tenant, record_row};
use crate::sql::paging::note_write;
use crate::sql::traffic::hex;
use crate::transfer::{
    Cursor, DeliveryDump, ExportPage, GuardState, ImportRows, ImportedTenant, MemberDump, Rejected, TenantDump,
    TrafficDump, TransferCounts, WebhookDump,
};
use crate::{ApiKey, Cycle, Event, Invite, Kind, Record, Result, StoreError, Token, Traffic};

/// The rows of one multi-row statement.
const ROWS_PER_STATEMENT: usize = 100;

const TENANT_DUMP_COLS: &str = "id, name, required, created, feed_seq, feed_pruned, guard_share, guard_min, \
     guard_window, guard_start, guard_count, guard_base, guard_held, guard_tripped_at";
const TRAFFIC_DUMP_COLS: &str = "first_request, last_request, first_success, last_success, first_user, last_write, \
     unauthorized_streak, cycle_start, cycle_last, cycle_requests, cycle_errors, prev_start, prev_last, \
     prev_requests, prev_errors, health, log_seq";

fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

fn opt_time(t: Option<time::OffsetDateTime>) -> Arg {
    Arg::opt_int(t.map(micros))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The placeholders of `rows` rows of `width` values each, numbered from `$first`:
/// `($1, $2), ($3, $4)`.
fn values(rows: usize, width: usize, first: usize) -> String {
    let row = |r: usize| {
        let cols: Vec<String> = (0..width).map(|c| format!("${}", first + r * width + c)).collect();
        format!("({})", cols.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// Runs `INSERT INTO {head} VALUES ... {tail}` for `rows`, [`ROWS_PER_STATEMENT`] at a time;
/// `bind` gives a row's values (each row `width` of them). Returns the rows of `RETURNING`.
async fn insert_rows<C: Conn, T>(
    c: &mut C,
    head: &str,
    tail: &str,
    width: usize,
    rows: &[T],
    bind: impl Fn(&T) -> Result<Vec<Arg>>,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut args = Vec::with_capacity(chunk.len() * width);
        for row in chunk {
            args.extend(bind(row)?);
        }
        let sql = format!("INSERT INTO {head} VALUES {} {tail}", values(chunk.len(), width, 1));
        out.extend(c.query(&sql, &args).await.map_err(unique_conflict)?);
    }
    Ok(out)
}

/// A broken uniqueness constraint as a `Conflict` naming it.
fn unique_conflict(e: SqlError) -> StoreError {
    match e {
        SqlError::Unique(what) => StoreError::Conflict(format!("two rows have the same key ({what})")),
        SqlError::Store(e) => e,
    }
}

/// The indexes of `rows`, keeping the last of those with the same key (a batch writes each key
/// once: PostgreSQL refuses to upsert a row twice in one statement).
fn last_of_each<T, K: std::hash::Hash + Eq>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<usize> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert(key(r), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep
}

fn pick<'a, T>(rows: &'a [T], keep: &[usize]) -> Vec<&'a T> {
    keep.iter().filter_map(|&i| rows.get(i)).collect()
}

/// The ids among `ids` that the table holds for another tenant (they cannot be imported).
async fn held_elsewhere<C: Conn>(c: &mut C, table: &str, tenant: i64, ids: &[&str]) -> Result<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!("SELECT id FROM {table} WHERE {} AND tenant_id <> $2", c.dialect().in_list("id", 1));
    let list = ids.iter().map(|id| Some((*id).to_owned())).collect();
    let rows = c.query(&sql, &[Arg::Texts(list), Arg::Int(tenant)]).await?;
    rows.into_iter().map(|mut r| r.text(0)).collect()
}

// ---------------------------------------------------------------- reading

fn guard_state(r: &Row) -> Result<GuardState> {
    Ok(GuardState {
        share_permille: r.int(6)?,
        min_users: r.int(7)?,
        window_us: r.int(8)?,
        window_start: instant(r.int(9)?),
        count: r.int(10)?,
        base: r.int(11)?,
        held_from: r.opt_int(12)?,
        tripped_at: r.opt_int(13)?.map(instant),
    })
}

fn traffic_dump(mut r: Row, tenant: i64) -> Result<TrafficDump> {
    let cycle = |r: &Row, at: usize| -> Result<Option<Cycle>> {
        Ok(match (r.opt_int(at)?, r.opt_int(at + 1)?) {
            (Some(start), Some(last)) => Some(Cycle {
                start: instant(start),
                last: instant(last),
                requests: r.int(at + 2)?,
                errors: r.int(at + 3)?,
            }),
            _ => None,
        })
    };
    let opt = |r: &Row, i: usize| -> Result<Option<time::OffsetDateTime>> { Ok(r.opt_int(i)?.map(instant)) };
    let summary = Traffic {
        tenant,
        first_request: opt(&r, 0)?,
        last_request: opt(&r, 1)?,
        first_success: opt(&r, 2)?,
        last_success: opt(&r, 3)?,
        first_user: opt(&r, 4)?,
        last_write: opt(&r, 5)?,
        unauthorized_streak: r.int(6)?,
        cycle: cycle(&r, 7)?,
        previous: cycle(&r, 11)?,
        health: r.opt_text(15)?,
    };
    Ok(TrafficDump { summary, log_seq: r.int(16)? })
}

/// A tenant by name as a move copies it.
pub(crate) struct ExportTenant(pub String);

impl Operation for ExportTenant {
    type Output = Option<TenantDump>;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<TenantDump>> {
        let sql = format!("SELECT {TENANT_DUMP_COLS} FROM tenants WHERE name = $1");
        let Some(mut r) = c.opt(&sql, &[Arg::Text(self.0.clone())]).await? else { return Ok(None) };
        let id = r.int(0)?;
        let required = r.text(2)?;
        let sql = format!("SELECT {TRAFFIC_DUMP_COLS} FROM traffic WHERE tenant_id = $1");
        let traffic = c.opt(&sql, &[Arg::Int(id)]).await?.map(|t| traffic_dump(t, id)).transpose()?;
        Ok(Some(TenantDump {
            id,
            name: r.text(1)?,
            required: serde_json::from_str(&required)
                .map_err(|e| StoreError::Corrupt(format!("a tenant's list of required attributes: {e}")))?,
            created: instant(r.int(3)?),
            feed_position: r.int(4)?,
            feed_pruned: r.int(5)?,
            guard: guard_state(&r)?,
            traffic,
        }))
    }
}

/// A page of a tenant's users and groups together, in key order (the order they were
/// created): the keys come from the two index ranges `(tenant, kind, key)`, merged.
pub(crate) struct ExportResources {
    pub tenant: i64,
    pub after: Cursor,
    pub limit: u64,
}

impl Operation for ExportResources {
    type Output = ExportPage<Record>;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<ExportPage<Record>> {
        let limit = i64::try_from(self.limit.max(1)).unwrap_or(i64::MAX);
        let range = |kind: i64| {
            format!(
                "SELECT pk FROM (SELECT pk FROM resources WHERE tenant_id = $1 AND kind = {kind} AND pk > $2 \
                 ORDER BY pk LIMIT $3) AS k{kind}"
            )
        };
        let sql = format!("{} UNION ALL {} ORDER BY pk LIMIT $3", range(0), range(1));
        let pks = c.query(&sql, &[Arg::Int(self.tenant), Arg::Int(self.after.0), Arg::Int(limit)]).await?;
        let pks = pks.iter().map(|r| r.int(0)).collect::<Result<Vec<_>>>()?;
        let Some(&last) = pks.last() else { return Ok(ExportPage { rows: Vec::new(), next: None }) };
        let sql =
            format!("SELECT {RECORD_COLS} FROM resources r WHERE {} ORDER BY r.pk", c.dialect().in_list("r.pk", 1));
        let rows = c.query(&sql, &[Arg::Ints(pks.clone())]).await?;
        let rows = rows.into_iter().map(|r| record_row(r).map(|(_, rec)| rec)).collect::<Result<Vec<_>>>()?;
        let full = i64::try_from(pks.len()).unwrap_or(i64::MAX) == limit;
        Ok(ExportPage { rows, next: full.then_some(Cursor(last, 0)) })
    }
}

/// A page of a tenant's memberships, by group key, then member key: the members of one group
/// after the cursor's member (a range of the members' primary key), then those of the tenant's
/// next groups (a range of `(tenant, kind, key)`), one group at a time, until the page is full.
/// Every statement is a range scan whatever the sizes of the groups.
pub(crate) struct ExportMembers {
    pub tenant: i64,
    pub after: Cursor,
    pub limit: u64,
}

/// The groups whose keys one statement of [`ExportMembers`] reads.
const GROUPS_PER_STATEMENT: i64 = 256;

impl Operation for ExportMembers {
    type Output = ExportPage<MemberDump>;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<ExportPage<MemberDump>> {
        let limit = usize::try_from(self.limit.max(1)).unwrap_or(usize::MAX);
        let members = "SELECT m.member_pk, x.id, m.display FROM members m JOIN resources x ON x.pk = m.member_pk
                       WHERE m.group_pk = $1 AND m.member_pk > $2 ORDER BY m.member_pk LIMIT $3";
        let groups = "SELECT pk, id FROM resources WHERE tenant_id = $1 AND kind = 1 AND pk > $2 ORDER BY pk LIMIT $3";
        let Cursor(mut group, mut after) = self.after;
        let mut queue: std::collections::VecDeque<(i64, String)> = std::collections::VecDeque::new();
        if group > 0 {
            let sql = "SELECT id FROM resources WHERE pk = $1 AND tenant_id = $2 AND kind = 1";
            if let Some(mut r) = c.opt(sql, &[Arg::Int(group), Arg::Int(self.tenant)]).await? {
                queue.push_back((group, r.text(0)?));
            }
        }
        let mut rows = Vec::new();
        loop {
            let Some((pk, id)) = queue.pop_front() else {
                let args = [Arg::Int(self.tenant), Arg::Int(group), Arg::Int(GROUPS_PER_STATEMENT)];
                for mut r in c.query(groups, &args).await? {
                    queue.push_back((r.int(0)?, r.text(1)?));
                }
                if queue.is_empty() {
                    return Ok(ExportPage { rows, next: None });
                }
                continue;
            };
            if pk != group {
                (group, after) = (pk, 0);
            }
            let want = limit - rows.len();
            let args = [Arg::Int(pk), Arg::Int(after), Arg::Int(i64::try_from(want).unwrap_or(i64::MAX))];
            let found = c.query(members, &args).await?;
            let full = found.len() == want;
            for mut r in found {
                after = r.int(0)?;
                rows.push(MemberDump { group: id.clone(), member: r.text(1)?, display: r.opt_text(2)? });
            }
            if full {
                return Ok(ExportPage { rows, next: Some(Cursor(group, after)) });
            }
        }
    }
}

/// What a tenant holds, in one snapshot.
pub(crate) struct Counts(pub i64);

impl Operation for Counts {
    type Output = TransferCounts;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<TransferCounts> {
        let sql = "SELECT
            (SELECT count(*) FROM tokens WHERE tenant_id = $1),
            (SELECT count(*) FROM invites WHERE tenant_id = $1),
            (SELECT count(*) FROM resources WHERE tenant_id = $1 AND kind = 0),
            (SELECT count(*) FROM resources WHERE tenant_id = $1 AND kind = 1),
            (SELECT count(*) FROM members m JOIN resources g ON g.pk = m.group_pk WHERE g.tenant_id = $1),
            (SELECT count(*) FROM events WHERE tenant_id = $1)";
        let r = c.opt(sql, &[Arg::Int(self.0)]).await?.ok_or_else(|| StoreError::Backend("no counts".into()))?;
        Ok(TransferCounts {
            tokens: count(r.int(0)?),
            invites: count(r.int(1)?),
            users: count(r.int(2)?),
            groups: count(r.int(3)?),
            members: count(r.int(4)?),
            events: count(r.int(5)?),
        })
    }
}

// ---------------------------------------------------------------- writing

/// Makes the tenant of a move (no event: its feed comes with it), or finds the one an earlier
/// import of it made, and sets its row and traffic summary as given.
pub(crate) struct ImportTenant(pub TenantDump);

impl Operation for ImportTenant {
    type Output = ImportedTenant;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<ImportedTenant> {
        let t = &self.0;
        let g = &t.guard;
        let sql =
            format!("SELECT id, created, feed_seq FROM tenants WHERE name = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
        let existing = c.opt(&sql, &[Arg::Text(t.name.clone())]).await?;
        let mut args = vec![
            Arg::Text(t.name.clone()),
            Arg::Text(to_json(&t.required)?),
            Arg::Int(micros(t.created)),
            Arg::Int(t.feed_position),
            Arg::Int(t.feed_pruned),
            Arg::Int(g.share_permille),
            Arg::Int(g.min_users),
            Arg::Int(g.window_us),
            Arg::Int(micros(g.window_start)),
            Arg::Int(g.count),
            Arg::Int(g.base),
            Arg::opt_int(g.held_from),
            opt_time(g.tripped_at),
        ];
        let imported = match existing {
            Some(r) => {
                let (id, created, position) = (r.int(0)?, r.int(1)?, r.int(2)?);
                if created != micros(t.created) {
                    return Err(StoreError::Conflict(format!(
                        "the target has another tenant named \"{}\" (created {}, the one imported was created {}); \
                         delete or rename one of them first",
                        t.name,
                        crate::fmt_time(instant(created)),
                        crate::fmt_time(t.created)
                    )));
                }
                if position > t.feed_position {
                    return Err(StoreError::Conflict(format!(
                        "tenant \"{}\" of the target has changed since it was imported (its feed is at position \
                         {position}, the imported one at {}); delete it there to import it again",
                        t.name, t.feed_position
                    )));
                }
                args[0] = Arg::Int(id);
                c.exec(
                    "UPDATE tenants SET required = $2, created = $3, feed_seq = $4, feed_pruned = $5, guard_share = $6, \
                     guard_min = $7, guard_window = $8, guard_start = $9, guard_count = $10, guard_base = $11, \
                     guard_held = $12, guard_tripped_at = $13 WHERE id = $1",
                    &args,
                )
                .await?;
                ImportedTenant { id, created: false }
            }
            None => {
                let row = c
                    .opt(
                        "INSERT INTO tenants (name, required, created, feed_seq, feed_pruned, guard_share, guard_min, \
                         guard_window, guard_start, guard_count, guard_base, guard_held, guard_tripped_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                        &args,
                    )
                    .await
                    .map_err(unique_conflict)?
                    .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
                let id = row.int(0)?;
                // The target's webhooks of every tenant receive what happens from now on (a
                // replay sends the past); those the import brings set their own positions.
                c.exec(
                    "INSERT INTO deliveries (webhook_id, tenant_id, position) \
                     SELECT id, CAST($1 AS BIGINT), CAST($2 AS BIGINT) FROM webhooks WHERE tenant_id IS NULL \
                     ON CONFLICT (webhook_id, tenant_id) DO NOTHING",
                    &[Arg::Int(id), Arg::Int(t.feed_position)],
                )
                .await?;
                ImportedTenant { id, created: true }
            }
        };
        let id = Arg::Int(imported.id);
        match &t.traffic {
            None => {
                c.exec("DELETE FROM traffic WHERE tenant_id = $1", &[id]).await?;
            }
            Some(tr) => {
                let s = &tr.summary;
                let cyc = |c: Option<Cycle>| {
                    [
                        opt_time(c.map(|c| c.start)),
                        opt_time(c.map(|c| c.last)),
                        Arg::Int(c.map_or(0, |c| c.requests)),
                        Arg::Int(c.map_or(0, |c| c.errors)),
                    ]
                };
                let mut args = vec![
                    id,
                    opt_time(s.first_request),
                    opt_time(s.last_request),
                    opt_time(s.first_success),
                    opt_time(s.last_success),
                    opt_time(s.first_user),
                    opt_time(s.last_write),
                    Arg::Int(s.unauthorized_streak),
                ];
                args.extend(cyc(s.cycle));
                args.extend(cyc(s.previous));
                args.extend([Arg::opt_text(s.health.as_deref()), Arg::Int(tr.log_seq)]);
                let sql = format!(
                    "INSERT INTO traffic (tenant_id, {TRAFFIC_DUMP_COLS}) VALUES {} ON CONFLICT (tenant_id) DO UPDATE SET \
                     first_request = excluded.first_request, last_request = excluded.last_request, \
                     first_success = excluded.first_success, last_success = excluded.last_success, \
                     first_user = excluded.first_user, last_write = excluded.last_write, \
                     unauthorized_streak = excluded.unauthorized_streak, cycle_start = excluded.cycle_start, \
                     cycle_last = excluded.cycle_last, cycle_requests = excluded.cycle_requests, \
                     cycle_errors = excluded.cycle_errors, prev_start = excluded.prev_start, \
                     prev_last = excluded.prev_last, prev_requests = excluded.prev_requests, \
                     prev_errors = excluded.prev_errors, health = excluded.health, log_seq = excluded.log_seq",
                    values(1, 18, 1)
                );
                c.exec(&sql, &args).await?;
            }
        }
        Ok(imported)
    }
}

/// Upserts a batch of rows (see [`ImportRows`]).
pub(crate) struct Import(pub ImportRows);

impl Operation for Import {
    type Output = Vec<Rejected>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Rejected>> {
        match &self.0 {
            ImportRows::Tokens { tenant, rows } => tokens(c, *tenant, rows).await,
            ImportRows::Invites { tenant, rows } => invites(c, *tenant, rows).await,
            ImportRows::Resources { tenant, rows } => resources(c, *tenant, rows).await,
            ImportRows::Members { tenant, rows } => members(c, *tenant, rows).await,
            ImportRows::Events { tenant, rows } => events(c, *tenant, rows).await,
            ImportRows::ApiKeys(rows) => api_keys(c, rows).await,
            ImportRows::Webhook(w) => webhook(c, w).await,
        }
    }
}

/// Refuses the rows whose id another tenant holds.
async fn foreign_ids<C: Conn, T>(
    c: &mut C,
    table: &str,
    tenant: i64,
    rows: &[T],
    id: impl Fn(&T) -> &str,
) -> Result<Vec<Rejected>> {
    let ids: Vec<&str> = rows.iter().map(&id).collect();
    let held = held_elsewhere(c, table, tenant, &ids).await?;
    Ok(rows
        .iter()
        .enumerate()
        .filter(|(_, r)| held.contains(id(r)))
        .map(|(index, r)| Rejected {
            index,
            reason: format!("id \"{}\" belongs to another tenant of the target", id(r)),
        })
        .collect())
}

async fn tokens<C: Conn>(c: &mut C, tenant: i64, rows: &[Token]) -> Result<Vec<Rejected>> {
    lock_tenant(c, tenant).await?;
    let rejected = foreign_ids(c, "tokens", tenant, rows, |t| t.id.as_str()).await?;
    if !rejected.is_empty() {
        return Ok(rejected);
    }
    let keep = pick(rows, &last_of_each(rows, |t| t.id.clone()));
    let tail = "ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, label = excluded.label, \
                created = excluded.created, expires = excluded.expires, revoked = excluded.revoked, \
                last_used = excluded.last_used";
    let head = "tokens (id, tenant_id, digest, label, created, expires, revoked, last_used)";
    insert_rows(c, head, tail, 8, &keep, |t| {
        Ok(vec![
            Arg::Text(t.id.clone()),
            Arg::Int(tenant),
            Arg::Bytes(t.digest.clone()),
            Arg::opt_text(t.label.as_deref()),
            Arg::Int(micros(t.created)),
            opt_time(t.expires),
            opt_time(t.revoked),
            opt_time(t.last_used),
        ])
    })
    .await?;
    Ok(Vec::new())
}

async fn invites<C: Conn>(c: &mut C, tenant: i64, rows: &[Invite]) -> Result<Vec<Rejected>> {
    lock_tenant(c, tenant).await?;
    let rejected = foreign_ids(c, "invites", tenant, rows, |i| i.id.as_str()).await?;
    if !rejected.is_empty() {
        return Ok(rejected);
    }
    let keep = pick(rows, &last_of_each(rows, |i| i.id.clone()));
    let tail = "ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, created = excluded.created, \
                expires = excluded.expires, revoked = excluded.revoked, redeemed = excluded.redeemed, \
                token_id = excluded.token_id";
    let head = "invites (id, tenant_id, digest, created, expires, revoked, redeemed, token_id)";
    insert_rows(c, head, tail, 8, &keep, |i| {
        Ok(vec![
            Arg::Text(i.id.clone()),
            Arg::Int(tenant),
            Arg::Text(hex(&i.digest)),
            Arg::Int(micros(i.created)),
            Arg::Int(micros(i.expires)),
            opt_time(i.revoked),
            opt_time(i.redeemed),
            Arg::opt_text(i.token.as_deref()),
        ])
    })
    .await?;
    Ok(Vec::new())
}

/// The users and groups of a batch with their index keys: each row checked as a stored
/// document must be (an object with its name, indexed values within bounds), and no two rows
/// of the batch, nor a row and a resource of the target outside the batch, with the same
/// userName (displayName) or externalId.
async fn check_resources<C: Conn>(
    c: &mut C,
    tenant: i64,
    rows: &[&Record],
) -> Result<std::result::Result<Vec<IndexKeys>, Vec<Rejected>>> {
    let mut rejected = Vec::new();
    let mut keys = Vec::with_capacity(rows.len());
    for (index, r) in rows.iter().enumerate() {
        let k = IndexKeys::of(r.kind, &r.doc);
        let name = if r.kind == Kind::User { "userName" } else { "displayName" };
        let reason = if !r.doc.is_object() {
            Some("the document is not a JSON object".to_owned())
        } else if r.id.is_empty() {
            Some("the id is empty".to_owned())
        } else if k.name.is_empty() {
            Some(format!("the document has no {name}"))
        } else {
            k.check(r.kind).err().map(|e| e.detail)
        };
        if let Some(reason) = reason {
            rejected.push(Rejected { index, reason });
        }
        keys.push(k);
    }
    if !rejected.is_empty() {
        return Ok(Err(rejected));
    }
    // Within the batch.
    let mut names: HashMap<(i64, &str), &str> = HashMap::new();
    let mut external: HashMap<(i64, &str), &str> = HashMap::new();
    for (index, (r, k)) in rows.iter().zip(&keys).enumerate() {
        let kind = kind_code(r.kind);
        if names.insert((kind, k.name_lc.as_str()), r.id.as_str()).is_some_and(|other| other != r.id) {
            rejected.push(Rejected { index, reason: format!("another resource has the name \"{}\"", k.name) });
        }
        if let Some(x) = &k.external_id {
            if external.insert((kind, x.as_str()), r.id.as_str()).is_some_and(|other| other != r.id) {
                rejected.push(Rejected { index, reason: format!("another resource has the externalId \"{x}\"") });
            }
        }
    }
    if !rejected.is_empty() {
        return Ok(Err(rejected));
    }
    // Against the target's resources that the batch does not write: per kind, so that each
    // list is a range of the unique index `(tenant, kind, key)`.
    let d = c.dialect();
    let sql = format!(
        "SELECT id, name_lc, external_id FROM resources WHERE tenant_id = $1 AND kind = $2 AND ({} OR {}) \
         AND NOT ({})",
        d.in_list("name_lc", 3),
        d.in_list("external_id", 4),
        d.in_list("id", 5)
    );
    let id_list: Vec<Option<String>> = rows.iter().map(|r| Some(r.id.clone())).collect();
    let mut held_names: HashMap<(i64, String), String> = HashMap::new();
    let mut held_external: HashMap<(i64, String), String> = HashMap::new();
    for kind in [Kind::User, Kind::Group] {
        let of_kind = || rows.iter().zip(&keys).filter(move |(r, _)| r.kind == kind).map(|(_, k)| k);
        if of_kind().next().is_none() {
            continue;
        }
        let names = of_kind().map(|k| Some(k.name_lc.clone())).collect();
        let external = of_kind().filter_map(|k| k.external_id.clone().map(Some)).collect();
        let code = kind_code(kind);
        let args =
            [Arg::Int(tenant), Arg::Int(code), Arg::Texts(names), Arg::Texts(external), Arg::Texts(id_list.clone())];
        for mut r in c.query(&sql, &args).await? {
            let id = r.text(0)?;
            held_names.insert((code, r.text(1)?), id.clone());
            if let Some(x) = r.opt_text(2)? {
                held_external.insert((code, x), id);
            }
        }
    }
    for (index, (r, k)) in rows.iter().zip(&keys).enumerate() {
        let kind = kind_code(r.kind);
        if let Some(holder) = held_names.get(&(kind, k.name_lc.clone())) {
            rejected.push(Rejected {
                index,
                reason: format!("the target's resource \"{holder}\" has the same name \"{}\"", k.name),
            });
        } else if let Some(holder) = k.external_id.as_ref().and_then(|x| held_external.get(&(kind, x.clone()))) {
            rejected.push(Rejected {
                index,
                reason: format!("the target's resource \"{holder}\" has the same externalId"),
            });
        }
    }
    Ok(if rejected.is_empty() { Ok(keys) } else { Err(rejected) })
}

async fn resources<C: Conn>(c: &mut C, tenant: i64, all: &[Record]) -> Result<Vec<Rejected>> {
    lock_tenant(c, tenant).await?;
    let keep = last_of_each(all, |r| r.id.clone());
    let rows = pick(all, &keep);
    let keys = match check_resources(c, tenant, &rows).await? {
        Ok(keys) => keys,
        Err(rejected) => {
            return Ok(rejected
                .into_iter()
                .map(|r| Rejected { index: keep.get(r.index).copied().unwrap_or(r.index), reason: r.reason })
                .collect());
        }
    };
    let pairs: Vec<(&Record, &IndexKeys)> = rows.iter().copied().zip(&keys).collect();
    // What the target holds of these ids already, for the maintained counts: a new row counts
    // +1, a rewritten one is a change (which also retires remembered index walks).
    let ids: Vec<Option<String>> = rows.iter().map(|r| Some(r.id.clone())).collect();
    let sql = format!("SELECT id, kind FROM resources WHERE tenant_id = $1 AND {}", c.dialect().in_list("id", 2));
    let mut held: HashMap<String, Kind> = HashMap::new();
    for mut r in c.query(&sql, &[Arg::Int(tenant), Arg::Texts(ids)]).await? {
        held.insert(r.text(0)?, kind_of(r.int(1)?)?);
    }
    let head = "resources (tenant_id, kind, id, name_lc, display, display_lc, external_id, employee_number_lc, \
                created, modified, version, doc)";
    let tail = "ON CONFLICT (tenant_id, id) DO UPDATE SET kind = excluded.kind, name_lc = excluded.name_lc, \
                display = excluded.display, display_lc = excluded.display_lc, external_id = excluded.external_id, \
                employee_number_lc = excluded.employee_number_lc, created = excluded.created, \
                modified = excluded.modified, version = excluded.version, doc = excluded.doc RETURNING pk, id";
    let written = insert_rows(c, head, tail, 12, &pairs, |(r, k)| {
        Ok(vec![
            Arg::Int(tenant),
            Arg::Int(kind_code(r.kind)),
            Arg::Text(r.id.clone()),
            Arg::Text(k.name_lc.clone()),
            Arg::opt_text(k.display.as_deref()),
            Arg::opt_text(k.display_lc.as_deref()),
            Arg::opt_text(k.external_id.as_deref()),
            Arg::opt_text(k.employee_number_lc.as_deref()),
            Arg::Int(micros(r.created)),
            Arg::Int(micros(r.last_modified)),
            Arg::Int(r.version),
            Arg::Text(to_json(&r.doc)?),
        ])
    })
    .await?;
    let mut pk_of: HashMap<String, i64> = HashMap::with_capacity(written.len());
    for mut r in written {
        let pk = r.int(0)?;
        pk_of.insert(r.text(1)?, pk);
    }
    for r in &rows {
        let pk = pk_of.get(&r.id).copied().unwrap_or(0);
        match held.get(&r.id) {
            None => note_write(c, tenant, r.kind, pk, 1),
            Some(&was) if was != r.kind => {
                note_write(c, tenant, was, pk, -1);
                note_write(c, tenant, r.kind, pk, 1);
            }
            Some(_) => note_write(c, tenant, r.kind, pk, 0),
        }
    }
    let pks: Vec<i64> = pk_of.values().copied().collect();
    let sql = format!("DELETE FROM emails WHERE {}", c.dialect().in_list("resource_pk", 1));
    c.exec(&sql, &[Arg::Ints(pks)]).await?;
    let mut emails = Vec::new();
    for (r, k) in &pairs {
        let pk = *pk_of.get(&r.id).ok_or_else(|| StoreError::Backend(format!("resource {} was not written", r.id)))?;
        emails.extend(k.emails.iter().map(|(v, t)| (pk, v.as_str(), t.as_deref())));
    }
    insert_rows(c, "emails (resource_pk, tenant_id, value_lc, type_lc)", "", 4, &emails, |(pk, v, t)| {
        Ok(vec![Arg::Int(*pk), Arg::Int(tenant), Arg::Text((*v).to_owned()), Arg::opt_text(*t)])
    })
    .await?;
    Ok(Vec::new())
}

async fn members<C: Conn>(c: &mut C, tenant: i64, rows: &[MemberDump]) -> Result<Vec<Rejected>> {
    lock_tenant(c, tenant).await?;
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut seen = HashSet::new();
    for m in rows {
        for id in [&m.group, &m.member] {
            if seen.insert(id.as_str()) {
                ids.push(Some(id.clone()));
            }
        }
    }
    let sql = format!(
        "SELECT id, pk, kind FROM resources WHERE tenant_id = $1 AND {}{}",
        c.dialect().in_list("id", 2),
        c.dialect().lock(Lock::KeyShare)
    );
    let mut found: HashMap<String, (i64, Kind)> = HashMap::with_capacity(ids.len());
    for mut r in c.query(&sql, &[Arg::Int(tenant), Arg::Texts(ids)]).await? {
        let (pk, kind) = (r.int(1)?, kind_of(r.int(2)?)?);
        found.insert(r.text(0)?, (pk, kind));
    }
    let mut rejected = Vec::new();
    let mut pairs = Vec::with_capacity(rows.len());
    for (index, m) in rows.iter().enumerate() {
        let reason = match (found.get(&m.group), found.get(&m.member)) {
            (None, _) => Some(format!("group \"{}\" is not a group of this tenant", m.group)),
            (Some((_, Kind::User)), _) => Some(format!("\"{}\" is a user, not a group", m.group)),
            (_, None) => Some(format!("member \"{}\" is not a user or group of this tenant", m.member)),
            _ if m.group == m.member => Some("a group cannot be a member of itself".to_owned()),
            (Some((g, _)), Some((x, _))) => {
                pairs.push((*g, *x, m.display.as_deref()));
                None
            }
        };
        if let Some(reason) = reason {
            rejected.push(Rejected { index, reason });
        }
    }
    if !rejected.is_empty() {
        return Ok(rejected);
    }
    let keep = pick(&pairs, &last_of_each(&pairs, |(g, x, _)| (*g, *x)));
    let tail = "ON CONFLICT (group_pk, member_pk) DO UPDATE SET display = excluded.display";
    insert_rows(c, "members (group_pk, member_pk, display)", tail, 3, &keep, |(g, x, d)| {
        Ok(vec![Arg::Int(*g), Arg::Int(*x), Arg::opt_text(*d)])
    })
    .await?;
    Ok(Vec::new())
}

async fn events<C: Conn>(c: &mut C, tenant: i64, rows: &[Event]) -> Result<Vec<Rejected>> {
    let sql = format!("SELECT feed_seq, feed_pruned FROM tenants WHERE id = $1{}", c.dialect().lock(Lock::KeyShare));
    let head = c.opt(&sql, &[Arg::Int(tenant)]).await?.ok_or(StoreError::NoTenant)?;
    let (position, pruned) = (head.int(0)?, head.int(1)?);
    let rejected: Vec<Rejected> = rows
        .iter()
        .enumerate()
        .filter(|(_, e)| e.seq <= pruned || e.seq > position)
        .map(|(index, e)| Rejected {
            index,
            reason: format!(
                "event {} is outside the tenant's feed (after the pruned position {pruned}, up to {position})",
                e.seq
            ),
        })
        .collect();
    if !rejected.is_empty() {
        return Ok(rejected);
    }
    let keep = pick(rows, &last_of_each(rows, |e| e.seq));
    let tail = "ON CONFLICT (tenant_id, seq) DO UPDATE SET id = excluded.id, type = excluded.type, at = excluded.at, \
                body = excluded.body";
    insert_rows(c, "events (tenant_id, seq, id, type, at, body)", tail, 6, &keep, |e| {
        Ok(vec![
            Arg::Int(tenant),
            Arg::Int(e.seq),
            Arg::Text(e.id.clone()),
            Arg::Text(e.kind.clone()),
            Arg::Int(micros(e.at)),
            Arg::Text(e.body.clone()),
        ])
    })
    .await?;
    Ok(Vec::new())
}

async fn api_keys<C: Conn>(c: &mut C, rows: &[ApiKey]) -> Result<Vec<Rejected>> {
    let keep = pick(rows, &last_of_each(rows, |k| k.id.clone()));
    let tail = "ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, label = excluded.label, \
                created = excluded.created, revoked = excluded.revoked";
    insert_rows(c, "api_keys (id, digest, label, created, revoked)", tail, 5, &keep, |k| {
        Ok(vec![
            Arg::Text(k.id.clone()),
            Arg::Bytes(k.digest.clone()),
            Arg::opt_text(k.label.as_deref()),
            Arg::Int(micros(k.created)),
            opt_time(k.revoked),
        ])
    })
    .await?;
    Ok(Vec::new())
}

async fn webhook<C: Conn>(c: &mut C, dump: &WebhookDump) -> Result<Vec<Rejected>> {
    let w = &dump.webhook;
    let mut tenants: Vec<i64> = dump.deliveries.iter().map(|d| d.tenant).collect();
    tenants.extend(w.tenant);
    let sql = format!("SELECT id FROM tenants WHERE {}", c.dialect().in_list("id", 1));
    let known = c.query(&sql, &[Arg::Ints(tenants)]).await?;
    let known = known.iter().map(|r| r.int(0)).collect::<Result<HashSet<_>>>()?;
    if let Some(t) = w.tenant.filter(|t| !known.contains(t)) {
        return Ok(vec![Rejected { index: 0, reason: format!("the webhook's tenant (key {t}) is not in the target") }]);
    }
    let rejected: Vec<Rejected> = dump
        .deliveries
        .iter()
        .enumerate()
        .filter(|(_, d)| !known.contains(&d.tenant) || w.tenant.is_some_and(|t| t != d.tenant))
        .map(|(index, d)| Rejected { index, reason: format!("delivery to a tenant (key {}) it cannot have", d.tenant) })
        .collect();
    if !rejected.is_empty() {
        return Ok(rejected);
    }
    let args = [
        Arg::Text(w.id.clone()),
        Arg::Text(w.url.clone()),
        Arg::opt_int(w.tenant),
        Arg::Text(to_json(&w.events)?),
        Arg::Text(w.format.as_str().into()),
        Arg::Text(w.secret.clone()),
        Arg::opt_text(w.old_secret.as_deref()),
        opt_time(w.old_secret_until),
        Arg::Int(micros(w.created)),
    ];
    let sql = format!(
        "INSERT INTO webhooks (id, url, tenant_id, events, format, secret, old_secret, old_secret_until, created) \
         VALUES {} ON CONFLICT (id) DO UPDATE SET url = excluded.url, tenant_id = excluded.tenant_id, \
         events = excluded.events, format = excluded.format, secret = excluded.secret, \
         old_secret = excluded.old_secret, old_secret_until = excluded.old_secret_until, created = excluded.created",
        values(1, 9, 1)
    );
    c.exec(&sql, &args).await?;
    let keep = pick(&dump.deliveries, &last_of_each(&dump.deliveries, |d| d.tenant));
    let head = "deliveries (webhook_id, tenant_id, position, failures, failing_since, next_at, last_at, \
                last_outcome, failed, lease_owner, lease_until, discard_from, discard_to)";
    let tail = "ON CONFLICT (webhook_id, tenant_id) DO UPDATE SET position = excluded.position, \
                failures = excluded.failures, failing_since = excluded.failing_since, next_at = excluded.next_at, \
                last_at = excluded.last_at, last_outcome = excluded.last_outcome, failed = excluded.failed, \
                lease_owner = NULL, lease_until = 0, discard_from = excluded.discard_from, \
                discard_to = excluded.discard_to";
    insert_rows(c, head, tail, 13, &keep, |d: &&DeliveryDump| {
        Ok(vec![
            Arg::Text(w.id.clone()),
            Arg::Int(d.tenant),
            Arg::Int(d.position),
            Arg::Int(d.failures),
            opt_time(d.failing_since),
            Arg::Int(micros(d.next_at)),
            opt_time(d.last_at),
            Arg::opt_text(d.last_outcome.as_deref()),
            Arg::Int(i64::from(d.failed)),
            Arg::Null,
            Arg::Int(0),
            Arg::opt_int(d.discard.map(|(from, _)| from)),
            Arg::opt_int(d.discard.map(|(_, to)| to)),
        ])
    })
    .await?;
    // Every tenant the webhook receives and the file gave no delivery for: from now on, as a
    // new webhook.
    let (scope, args) = match w.tenant {
        Some(t) => ("id = $2", vec![Arg::Text(w.id.clone()), Arg::Int(t)]),
        None => ("TRUE", vec![Arg::Text(w.id.clone())]),
    };
    let sql = format!(
        "INSERT INTO deliveries (webhook_id, tenant_id, position) SELECT CAST($1 AS TEXT), id, feed_seq FROM tenants \
         WHERE {scope} ON CONFLICT (webhook_id, tenant_id) DO NOTHING"
    );
    c.exec(&sql, &args).await?;
    Ok(Vec::new())
}
