//! Lists and searches ([`Query`]), paged in time that does not grow with the page's depth.
//!
//! - **Keyset pages** ([`Query::seek`], RFC 9865 cursors): the rows after (or before) a
//!   [`Position`] in the query's order, `WHERE (sortkey, pk) > ($v, $pk) ORDER BY sortkey, pk
//!   LIMIT n` on the index of the sort column (SQLite's indexes end in the rowid, PostgreSQL's
//!   sortable ones in `pk`, schema 9). A nullable sort column is read in two segments, the rows
//!   with a value (its partial index) and those without (creation order), nulls last when
//!   ascending, first when descending, as RFC 7644 §3.4.2.3 wants.
//! - **Index pages** (`startIndex`): a sequential walk is served like a keyset page. Each page
//!   remembers, per (tenant, kind, query), where the page ending at index k stopped ([`Memo`],
//!   bounded, in-process), so a request for startIndex = k + 1 seeks there instead of reading
//!   k rows past an `OFFSET`. A request for a later index seeks from the nearest end
//!   remembered below it and reads the rows in between by key only ([`MAX_SKIP`] at most): a
//!   walk whose pages a load balancer spreads over N replicas reads N - 1 pages of keys more.
//!   The memory is used only if the tenant's resources of that kind have not changed in a way
//!   that moves indexes since (the write counters below, read in the page's snapshot): for
//!   creation order without a filter, no resource was deleted (a new one sorts after every
//!   existing one); otherwise no resource was written at all. A miss, or a memory that looks
//!   stale, is an `OFFSET` read, which gives what an `OFFSET` always gave. Under concurrent
//!   writes, then, a walk whose memory still holds goes on exactly where its previous page
//!   ended (on PostgreSQL a create committed out of key order lands before that point: both
//!   an `OFFSET` and the memory miss it in this walk; an `OFFSET` would also repeat a row).
//! - **Totals**: an unfiltered list's total is the sum of `resource_counts.live`, which every
//!   create and delete updates in its own transaction ([`Tally`], applied as the write's last
//!   statements, one of 16 slots per (tenant, kind), so that concurrent writers on PostgreSQL
//!   rarely meet there and never in a cycle). The same rows count every write (`changes`) and
//!   deletion (`deletes`): the generations the memory is checked against. A filtered total is
//!   counted (the cost of its index range) and remembered while no resource of the kind was
//!   written; a keyset page counts at most [`COUNT_BOUND`] and leaves the total out past that.
//! - **Filters the core finishes** (the residual of a plan): index pages read every candidate
//!   (at most `max_candidates`, else `tooMany`, as before); keyset pages read candidates in
//!   the SQL order from the cursor on, in batches, and stop when the page is full or
//!   `max_candidates` were examined, handing back a cursor at the last one examined, so no
//!   page reads from the start and none is refused. A `sortBy` no column holds is sorted by
//!   the core over every candidate (bounded by `max_candidates`), for both kinds of page.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use scim_core::{AttrPath, CompareOp, Filter, Kind, ResourceDef, ScimError};
use serde_json::Value;

use super::ops::{Context, RECORD_COLS, load_extras, record_row, records_by_pk};
use super::{Arg, Conn, Mode, Operation, Row, Ty, Val, filter, kind_code};
use crate::common::too_many;
use crate::plan::{self, Col};
use crate::{COUNT_BOUND, Keyset, Page, Position, Query, Record, Result, Seek, SortKey, SortOrder, StoreError};

/// How many candidate rows a query that the core must finish reads at a time.
const CANDIDATE_BATCH: u64 = 256;

/// Slots of `resource_counts` per (tenant, kind).
const SLOTS: i64 = 16;

/// The longest text of a value the core sorts on that takes part in the order (and a cursor):
/// resources whose values agree on their first this many bytes are in creation order.
const MAX_CORE_KEY_BYTES: usize = 256;

/// What a write changes in its tenants' resource counters, applied once, as the write's last
/// statements (`flush_counts`). Each engine's connection holds one.
#[derive(Debug, Default)]
pub struct Tally {
    deltas: BTreeMap<(i64, i64), (i64, i64, i64)>,
    slot: Option<i64>,
}

/// Notes a write of a resource (key `pk`) in its tenant's counters: `live` is +1 for a
/// create, -1 for a deletion, 0 for a change.
pub(crate) fn note_write<C: Conn>(c: &mut C, tenant: i64, kind: crate::Kind, pk: i64, live: i64) {
    let t = c.tally();
    t.slot.get_or_insert(pk.rem_euclid(SLOTS));
    let d = t.deltas.entry((tenant, kind_code(kind))).or_default();
    d.0 += live;
    d.1 += i64::from(live < 0);
    d.2 += 1;
}

/// Applies a write's [`Tally`]: called by the engines after the write's operation succeeded,
/// in its transaction, so that the counter rows are the last rows it locks, each transaction
/// one slot, in (tenant, kind) order: writers on PostgreSQL wait for each other there only
/// at the end of their transactions, never in a cycle.
pub(crate) async fn flush_counts<C: Conn>(c: &mut C) -> Result<()> {
    let Tally { deltas, slot } = std::mem::take(c.tally());
    let slot = slot.unwrap_or(0);
    for ((tenant, kind), (live, deletes, changes)) in deltas {
        let args =
            [Arg::Int(tenant), Arg::Int(kind), Arg::Int(slot), Arg::Int(live), Arg::Int(deletes), Arg::Int(changes)];
        c.exec(
            "INSERT INTO resource_counts (tenant_id, kind, slot, live, deletes, changes) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, kind, slot) DO UPDATE SET live = resource_counts.live + excluded.live,
             deletes = resource_counts.deletes + excluded.deletes, changes = resource_counts.changes + excluded.changes",
            &args,
        )
        .await?;
    }
    Ok(())
}

/// Runs an operation on `c` the way every engine does: a write's counters are applied after
/// it succeeded ([`flush_counts`]).
pub(crate) async fn run<O: Operation, C: Conn>(op: &O, c: &mut C, ctx: &Context) -> Result<O::Output> {
    let out = op.run(c, ctx).await?;
    if O::MODE == Mode::Write {
        flush_counts(c).await?;
    }
    Ok(out)
}

/// A tenant's counters for one kind, as of the reading snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    live: i64,
    deletes: i64,
    changes: i64,
}

async fn counts<C: Conn>(c: &mut C, tenant: i64, kind: i64) -> Result<Counts> {
    let sql = "SELECT CAST(coalesce(sum(live), 0) AS BIGINT), CAST(coalesce(sum(deletes), 0) AS BIGINT),
               CAST(coalesce(sum(changes), 0) AS BIGINT) FROM resource_counts WHERE tenant_id = $1 AND kind = $2";
    let row = c.opt(sql, &[Arg::Int(tenant), Arg::Int(kind)]).await?;
    match row {
        Some(r) => Ok(Counts { live: r.int(0)?, deletes: r.int(1)?, changes: r.int(2)? }),
        None => Ok(Counts { live: 0, deletes: 0, changes: 0 }),
    }
}

// ---------------------------------------------------------------- the memory

/// A bounded map that forgets what was not used for a while: two generations, the young one
/// taking new and used entries, the old one dropped when the young one is full.
struct Lru<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru { young: HashMap::new(), old: HashMap::new(), half: (capacity / 2).max(1) }
    }

    fn get(&mut self, k: &K) -> Option<V> {
        if let Some(v) = self.young.get(k) {
            return Some(v.clone());
        }
        let (k, v) = self.old.remove_entry(k)?;
        let out = v.clone();
        self.insert(k, v);
        Some(out)
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.young.contains_key(k) {
            let (k, v) = self.old.remove_entry(k)?;
            self.insert(k, v);
        }
        self.young.get_mut(k)
    }

    fn insert(&mut self, k: K, v: V) {
        if self.young.len() >= self.half && !self.young.contains_key(&k) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }
}

/// Which query a memory is of: tenant, kind and a 128-bit digest of filter and order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QueryKey {
    tenant: i64,
    kind: i64,
    digest: u128,
}

/// Where the page of a query ending at index `end` stopped, and the counters then.
#[derive(Debug, Clone)]
struct Walk {
    after: Position,
    counts: Counts,
}

/// What lists remember between requests, per process (see the module documentation): where
/// index pages ended, and the totals of filtered queries.
pub(crate) struct Memo {
    walks: Mutex<Lru<QueryKey, Ends>>,
    totals: Mutex<Lru<QueryKey, (i64, u64)>>,
    /// Index pages served from a remembered end (for tests).
    seeks: std::sync::atomic::AtomicU64,
}

/// The page ends remembered of one query: end index -> (when stored, where it stopped).
#[derive(Debug, Clone, Default)]
struct Ends {
    by_end: BTreeMap<u64, (u64, Walk)>,
    tick: u64,
}

/// Queries whose index pages are remembered (about; two generations of half of it).
const WALK_QUERIES: usize = 512;
/// Page ends remembered per query (the most recently stored): enough for several concurrent
/// walks of one query.
const WALK_ENDS: usize = 32;
/// The most rows a page is read past a remembered end (a walk whose pages go round several
/// replicas, or that changed its `count`), by a key-only index range.
const MAX_SKIP: u64 = 10_000;
/// Filtered totals remembered.
const TOTALS: usize = 1024;

impl Default for Memo {
    fn default() -> Self {
        Memo {
            walks: Mutex::new(Lru::new(WALK_QUERIES)),
            totals: Mutex::new(Lru::new(TOTALS)),
            seeks: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Memo {
    /// The remembered page end of `q` nearest at or below index `end` (within [`MAX_SKIP`]).
    fn walk(&self, q: QueryKey, end: u64) -> Option<(u64, Walk)> {
        let mut walks = locked(&self.walks);
        let ends = walks.get_mut(&q)?;
        let (at, (_, w)) = ends.by_end.range(..=end).next_back()?;
        (end - at <= MAX_SKIP).then(|| (*at, w.clone()))
    }

    fn remember_walk(&self, q: QueryKey, end: u64, walk: Walk) {
        let mut walks = locked(&self.walks);
        if walks.get_mut(&q).is_none() {
            walks.insert(q, Ends::default());
        }
        let Some(ends) = walks.get_mut(&q) else { return };
        ends.tick += 1;
        ends.by_end.insert(end, (ends.tick, walk));
        if ends.by_end.len() > WALK_ENDS {
            // The end stored longest ago goes (not the shallowest: concurrent walks of one
            // query each keep their latest ends).
            let oldest = ends.by_end.iter().min_by_key(|(_, (tick, _))| *tick).map(|(e, _)| *e);
            if let Some(e) = oldest {
                ends.by_end.remove(&e);
            }
        }
    }

    /// How many index pages were served from a remembered end.
    #[cfg(test)]
    pub(crate) fn seeks(&self) -> u64 {
        self.seeks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The total of a filtered query, if it was counted while the counters were `changes`.
    fn total(&self, q: QueryKey, changes: i64) -> Option<u64> {
        locked(&self.totals).get(&q).and_then(|(at, total)| (at == changes).then_some(total))
    }

    fn remember_total(&self, q: QueryKey, changes: i64, total: u64) {
        locked(&self.totals).insert(q, (changes, total));
    }
}

/// A digest of what, besides tenant and kind, decides a query's rows and order.
fn digest(filter: Option<&Filter>, order: &Order) -> u128 {
    let text = format!("{}\u{0}{order:?}", filter.map(ToString::to_string).unwrap_or_default());
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5c1d_0001)) << 64) | u128::from(half(0x5c1d_0002))
}

// ---------------------------------------------------------------- order

/// The order of a query.
#[derive(Debug, Clone, PartialEq)]
enum Order {
    /// Creation order (no `sortBy`).
    Pk,
    /// An indexed column.
    Col { col: Col, desc: bool },
    /// The core's order of a path no column holds.
    Core { path: AttrPath, desc: bool },
}

impl Order {
    /// The column SQL orders by (`None`: the row key alone); `None` for the core's order.
    fn sql(&self) -> Option<Option<Col>> {
        match self {
            Order::Pk => Some(None),
            Order::Col { col, .. } => Some(Some(*col)),
            Order::Core { .. } => None,
        }
    }

    fn desc(&self) -> bool {
        matches!(self, Order::Col { desc: true, .. } | Order::Core { desc: true, .. })
    }

    /// Whether a position can be one of this order's (a forged or outdated cursor cannot).
    fn fits(&self, p: &Position) -> bool {
        match (self, &p.key) {
            (Order::Pk, SortKey::Pk) => true,
            (Order::Col { col, .. }, SortKey::Null) => nullable(*col),
            (Order::Col { col: Col::Created | Col::Modified, .. }, SortKey::Int(_)) => true,
            (Order::Col { col, .. }, SortKey::Text(_)) => !matches!(col, Col::Created | Col::Modified),
            (Order::Core { .. }, SortKey::Null | SortKey::Value(_)) => true,
            _ => false,
        }
    }
}

/// Whether a column may hold NULL.
fn nullable(col: Col) -> bool {
    matches!(col, Col::DisplayLc | Col::ExternalId | Col::EmployeeNumberLc)
}

/// Whether a column's values are unique within a tenant and kind (then it alone orders).
fn unique(col: Col) -> bool {
    matches!(col, Col::Id | Col::NameLc | Col::ExternalId)
}

/// The sort key of a row whose sort column is `v`.
fn sql_key(col: Option<Col>, v: &Val) -> Result<SortKey> {
    Ok(match (col, v) {
        (None, _) => SortKey::Pk,
        (Some(_), Val::Null) => SortKey::Null,
        (Some(_), Val::Int(i)) => SortKey::Int(*i),
        (Some(_), Val::Text(t)) => SortKey::Text(t.clone()),
        (Some(c), other) => {
            return Err(StoreError::Corrupt(format!("column {} holds {other:?}", c.name())));
        }
    })
}

fn invalid_cursor() -> StoreError {
    StoreError::Scim(ScimError::invalid_cursor(
        "the cursor is not one this server gave for this query; start again with an empty cursor",
    ))
}

// ---------------------------------------------------------------- reading rows in order

/// A row read in order: its position, key and record.
type Ordered = (Position, i64, Record);

/// One stretch of the ascending order of a column, read by one statement.
enum Segment<'a> {
    /// Creation order, after or before a row key.
    Pk(Option<i64>),
    /// The rows with a value, after or before a (value, row key).
    Values(Option<(&'a SortKey, i64)>),
    /// The rows without a value, in creation order, after or before a row key.
    Nulls(Option<i64>),
}

/// The segments that hold the rows after (`up`) or before `from` in the ascending order of
/// `col`, nearest first.
fn segments(col: Option<Col>, from: Option<&Position>, up: bool) -> Vec<Segment<'_>> {
    let Some(col) = col else { return vec![Segment::Pk(from.map(|p| p.pk))] };
    let at = from.map(|p| (&p.key, p.pk));
    if !nullable(col) {
        return vec![Segment::Values(at)];
    }
    match (at, up) {
        (None, true) => vec![Segment::Values(None), Segment::Nulls(None)],
        (None, false) => vec![Segment::Nulls(None), Segment::Values(None)],
        (Some((SortKey::Null, pk)), true) => vec![Segment::Nulls(Some(pk))],
        (Some((SortKey::Null, pk)), false) => vec![Segment::Nulls(Some(pk)), Segment::Values(None)],
        (Some(v), true) => vec![Segment::Values(Some(v)), Segment::Nulls(None)],
        (Some(v), false) => vec![Segment::Values(Some(v))],
    }
}

/// What a scan reads: the rows of `scope` (its values bound in `args`) after (`up`) or before
/// `from` in the ascending order of `col` (`None`: creation order), nearest first.
#[derive(Clone, Copy)]
struct Range<'a> {
    scope: &'a str,
    args: &'a [Arg],
    col: Option<Col>,
    from: Option<&'a Position>,
    up: bool,
}

impl Planned<'_> {
    /// The rows of the query's scope after (`up`) or before `from` in the order of `col`.
    fn range<'a>(&'a self, col: Option<Col>, from: Option<&'a Position>, up: bool) -> Range<'a> {
        Range { scope: &self.scope, args: &self.args, col, from, up }
    }
}

/// The rows of `range`, at most `limit`: one index range per segment.
async fn scan<C: Conn>(c: &mut C, range: Range<'_>, limit: u64) -> Result<Vec<Ordered>> {
    let rows = scan_rows(c, range, limit, RECORD_COLS).await?;
    rows.into_iter().map(|row| ordered(row, range.col)).collect()
}

/// The positions of the rows [`scan`] reads (a key-only read of the same index ranges).
async fn scan_keys<C: Conn>(c: &mut C, range: Range<'_>, limit: u64) -> Result<Vec<Position>> {
    let rows = scan_rows(c, range, limit, "r.pk").await?;
    rows.into_iter()
        .map(|row| Ok(Position { key: sql_key(range.col, row.0.get(1).unwrap_or(&Val::Null))?, pk: row.int(0)? }))
        .collect()
}

/// The statements of [`scan`]: `select`, then the sort column, of each row.
async fn scan_rows<C: Conn>(c: &mut C, range: Range<'_>, limit: u64, select: &str) -> Result<Vec<Row>> {
    let Range { scope, args, col, from, up } = range;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let d = c.dialect();
    let (cmp, dir) = if up { (">", "") } else { ("<", " DESC") };
    for seg in segments(col, from, up) {
        let want = limit - out.len() as u64;
        if want == 0 {
            break;
        }
        let mut args = args.to_vec();
        let mut bind = |a: Arg, ty: Ty| {
            args.push(a);
            d.param(args.len(), ty)
        };
        let name = col.map_or("pk", Col::name);
        // The index's leading columns are named too (they are fixed by the scope), so that the
        // order is the index's and a generic plan (PostgreSQL) still reads it as one range.
        let lead = format!("r.tenant_id{dir}, r.kind{dir}, ");
        let (cond, order) = match seg {
            Segment::Pk(after) => {
                let cond = after.map(|pk| format!(" AND r.pk {cmp} {}", bind(Arg::Int(pk), Ty::Int)));
                (cond.unwrap_or_default(), format!("{lead}r.pk{dir}"))
            }
            Segment::Nulls(after) => {
                let mut cond = format!(" AND r.{name} IS NULL");
                if let Some(pk) = after {
                    cond.push_str(&format!(" AND r.pk {cmp} {}", bind(Arg::Int(pk), Ty::Int)));
                }
                (cond, format!("{lead}r.pk{dir}"))
            }
            Segment::Values(at) => {
                let c = col.unwrap_or(Col::Id);
                let mut cond = if nullable(c) { format!(" AND r.{name} IS NOT NULL") } else { String::new() };
                if let Some((key, pk)) = at {
                    let v = match key {
                        SortKey::Int(i) => bind(Arg::Int(*i), Ty::Int),
                        SortKey::Text(t) => bind(Arg::Text(t.clone()), Ty::Text),
                        _ => return Err(invalid_cursor()),
                    };
                    if unique(c) {
                        cond.push_str(&format!(" AND r.{name} {cmp} {v}"));
                    } else {
                        let p = bind(Arg::Int(pk), Ty::Int);
                        cond.push_str(&format!(" AND (r.{name}, r.pk) {cmp} ({v}, {p})"));
                    }
                }
                // `id` is unique per tenant: its index is (tenant_id, id).
                let lead = if c == Col::Id { format!("r.tenant_id{dir}, ") } else { lead };
                let order =
                    if unique(c) { format!("{lead}r.{name}{dir}") } else { format!("{lead}r.{name}{dir}, r.pk{dir}") };
                (cond, order)
            }
        };
        let n = bind(Arg::Int(i64::try_from(want).unwrap_or(i64::MAX)), Ty::Int);
        let sql = format!("SELECT {select}, r.{name} FROM resources r WHERE {scope}{cond} ORDER BY {order} LIMIT {n}");
        out.extend(c.query(&sql, &args).await?);
    }
    Ok(out)
}

/// A row of `RECORD_COLS` followed by the sort column.
fn ordered(row: Row, col: Option<Col>) -> Result<Ordered> {
    let key = sql_key(col, row.0.get(7).unwrap_or(&Val::Null))?;
    let (pk, rec) = record_row(row)?;
    Ok((Position { key, pk }, pk, rec))
}

// ---------------------------------------------------------------- the query

/// What planning a query gives: its SQL scope, the residual, the order and its memory key.
struct Planned<'r> {
    def: ResourceDef<'r>,
    scope: String,
    args: Vec<Arg>,
    residual: Option<Filter>,
    order: Order,
    key: QueryKey,
    counts: Counts,
}

impl Operation for Query {
    type Output = Page;
    const MODE: Mode = Mode::Snapshot;
    /// An identity provider's look-up of one resource (`userName eq`, `externalId eq`, `id eq`,
    /// a group's `displayName eq`): a unique index answers it with at most one row.
    fn quick(&self) -> bool {
        let Some(Filter::Compare(path, CompareOp::Eq, _)) = &self.filter else { return false };
        let (unique, schema): (&[&str], _) = match self.kind {
            Kind::User => (&["userName", "externalId", "id"], "urn:ietf:params:scim:schemas:core:2.0:User"),
            Kind::Group => (&["displayName", "externalId", "id"], "urn:ietf:params:scim:schemas:core:2.0:Group"),
        };
        self.seek.is_none()
            && self.sort.is_none()
            && path.sub.is_none()
            && unique.iter().any(|u| path.name.eq_ignore_ascii_case(u))
            && path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(schema))
    }
    async fn run<C: Conn>(&self, c: &mut C, ctx: &Context) -> Result<Page> {
        let kind = self.kind;
        let def = ctx
            .registry
            .resource(kind.name())
            .ok_or_else(|| StoreError::Backend(format!("no resource type {}", kind.name())))?;
        let plan = plan::plan(&def, kind, self.filter.as_ref())?;
        let mut args = vec![Arg::Int(self.tenant), Arg::Int(kind_code(kind))];
        let cond = filter::cond(c.dialect(), &plan.cond, &mut args);
        let scope = format!("r.tenant_id = $1 AND r.kind = $2 AND ({cond})");
        let order = match &self.sort {
            None => Order::Pk,
            Some((path, o)) => {
                let desc = *o == SortOrder::Descending;
                match plan::sort_column(&def, kind, path) {
                    Some(col) => Order::Col { col, desc },
                    None => Order::Core { path: path.clone(), desc },
                }
            }
        };
        let key = QueryKey { tenant: self.tenant, kind: kind_code(kind), digest: digest(self.filter.as_ref(), &order) };
        // A look-up by a unique key that SQL answers whole needs neither the counters nor a
        // count: the rows are the total (and nothing is remembered of a query asked once).
        let looked_up = if self.quick() && plan.residual.is_none() {
            self.lookup(c, Range { scope: &scope, args: &args, col: None, from: None, up: true }).await?
        } else {
            None
        };
        let (total, mut page, keyset) = match looked_up {
            Some((total, page)) => (Some(total), page, None),
            None => {
                let counts = counts(c, self.tenant, kind_code(kind)).await?;
                let p = Planned { def, scope, args, residual: plan.residual, order, key, counts };
                match &self.seek {
                    None => {
                        let (total, page) = self.index_page(c, ctx, &p).await?;
                        (Some(total), page, None)
                    }
                    Some(seek) => {
                        let (total, page, keyset) = self.keyset_page(c, ctx, &p, seek).await?;
                        (total, page, Some(keyset))
                    }
                }
            }
        };
        load_extras(c, &mut page, self.load).await?;
        let position = if self.position {
            let sql = "SELECT feed_seq FROM tenants WHERE id = $1";
            c.opt(sql, &[Arg::Int(self.tenant)]).await?.map(|r| r.int(0)).transpose()?
        } else {
            None
        };
        Ok(Page { total, records: page.into_iter().map(|(_, r)| r).collect(), keyset, position })
    }
}

/// The most rows a look-up by a unique key reads on its own path; it can match at most one, and
/// should it ever match this many the query takes the general path.
const LOOKUP_ROWS: u64 = 8;

impl Query {
    /// A look-up by a unique key ([`Operation::quick`], no residual filter): one read of its
    /// rows (`range`: the scope in key order), which are also the total. `None` if there were [`LOOKUP_ROWS`].
    async fn lookup<C: Conn>(&self, c: &mut C, range: Range<'_>) -> Result<Option<(u64, Vec<(i64, Record)>)>> {
        let rows = scan(c, range, LOOKUP_ROWS).await?;
        if rows.len() as u64 >= LOOKUP_ROWS {
            return Ok(None);
        }
        let total = rows.len() as u64;
        let skip = usize::try_from(self.start_index.max(1) - 1).unwrap_or(usize::MAX);
        let take = usize::try_from(self.count).unwrap_or(usize::MAX);
        Ok(Some((total, rows.into_iter().skip(skip).take(take).map(|(_, pk, rec)| (pk, rec)).collect())))
    }

    /// How many rows the SQL part of the query admits (a filter the core finishes examines
    /// each of them).
    async fn candidates<C: Conn>(&self, c: &mut C, ctx: &Context, p: &Planned<'_>) -> Result<u64> {
        let n = c.opt(&format!("SELECT count(*) FROM resources r WHERE {}", p.scope), &p.args).await?;
        let n = u64::try_from(n.map_or(Ok(0), |r| r.int(0))?).unwrap_or(0);
        if n > ctx.limits.max_candidates {
            return Err(too_many(n, ctx.limits.max_candidates));
        }
        Ok(n)
    }

    /// The total of a query SQL answers whole: maintained (unfiltered), remembered, or counted
    /// (at most `bound` rows: `None` past that).
    async fn sql_total<C: Conn>(
        &self,
        c: &mut C,
        ctx: &Context,
        p: &Planned<'_>,
        bound: Option<u64>,
    ) -> Result<Option<u64>> {
        if self.filter.is_none() {
            return Ok(Some(u64::try_from(p.counts.live).unwrap_or(0)));
        }
        if let Some(t) = ctx.memo.total(p.key, p.counts.changes) {
            return Ok(Some(t));
        }
        let (sql, args) = match bound {
            None => (format!("SELECT count(*) FROM resources r WHERE {}", p.scope), p.args.clone()),
            Some(b) => {
                let mut args = p.args.clone();
                args.push(Arg::Int(i64::try_from(b.saturating_add(1)).unwrap_or(i64::MAX)));
                let n = args.len();
                (format!("SELECT count(*) FROM (SELECT 1 FROM resources r WHERE {} LIMIT ${n}) t", p.scope), args)
            }
        };
        let n = c.opt(&sql, &args).await?;
        let n = u64::try_from(n.map_or(Ok(0), |r| r.int(0))?).unwrap_or(0);
        if bound.is_some_and(|b| n > b) {
            return Ok(None);
        }
        ctx.memo.remember_total(p.key, p.counts.changes, n);
        Ok(Some(n))
    }

    /// An index page: the total and the rows from `start_index` on.
    async fn index_page<C: Conn>(
        &self,
        c: &mut C,
        ctx: &Context,
        p: &Planned<'_>,
    ) -> Result<(u64, Vec<(i64, Record)>)> {
        let offset = self.start_index.max(1) - 1;
        let Some(col) = p.order.sql() else {
            self.candidates(c, ctx, p).await?;
            let keyed = core_sorted(c, p, p.residual.as_ref()).await?;
            let total = keyed.len() as u64;
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            let take = usize::try_from(self.count).unwrap_or(usize::MAX);
            let pks: Vec<i64> = keyed.into_iter().skip(skip).take(take).map(|(_, pk)| pk).collect();
            return Ok((total, records_by_pk(c, &pks).await?));
        };
        let up = !p.order.desc();
        if let Some(residual) = &p.residual {
            // Every candidate, in the query's order, in batches; the page is the matches from
            // `offset` on.
            self.candidates(c, ctx, p).await?;
            let (mut matched, mut page, mut from) = (0u64, Vec::new(), None::<Position>);
            loop {
                let rows = scan(c, p.range(col, from.as_ref(), up), CANDIDATE_BATCH).await?;
                let full = rows.len() as u64 == CANDIDATE_BATCH;
                for (pos, pk, rec) in rows {
                    from = Some(pos);
                    if !scim_core::eval::matches(&p.def, residual, &crate::materialize(&rec))? {
                        continue;
                    }
                    if matched >= offset && (page.len() as u64) < self.count {
                        page.push((pk, rec));
                    }
                    matched += 1;
                }
                if !full {
                    break;
                }
            }
            return Ok((matched, page));
        }
        let total = self.sql_total(c, ctx, p, None).await?.unwrap_or(0);
        if self.count == 0 || offset >= total {
            return Ok((total, Vec::new()));
        }
        let expected = self.count.min(total - offset);
        let unfiltered_pk = self.filter.is_none() && p.order == Order::Pk;
        let memo = ctx
            .memo
            .walk(p.key, offset)
            .filter(|(_, w)| if unfiltered_pk { w.counts.deletes == p.counts.deletes } else { w.counts == p.counts });
        let mut rows = Vec::new();
        if let Some((at, w)) = memo {
            // From the remembered end, past the rows between it and this page by key only (none
            // for the next page of a walk), then the page.
            let mut from = Some(w.after);
            let skip = offset - at;
            if skip > 0 {
                let keys = scan_keys(c, p.range(col, from.as_ref(), up), skip).await?;
                from = if keys.len() as u64 == skip { keys.into_iter().next_back() } else { None };
            }
            if let Some(from) = from {
                rows = scan(c, p.range(col, Some(&from), up), self.count).await?;
            }
            // A seek that does not give what the total says looks stale: read by offset.
            if rows.len() as u64 == expected {
                ctx.memo.seeks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                rows.clear();
            }
        }
        if rows.is_empty() {
            let order =
                filter::order_by(col.map(|c| (c, if up { SortOrder::Ascending } else { SortOrder::Descending })));
            let mut args = p.args.clone();
            let n = args.len();
            args.push(Arg::Int(i64::try_from(self.count).unwrap_or(i64::MAX)));
            args.push(Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
            let sql = format!(
                "SELECT {RECORD_COLS}, r.{} FROM resources r WHERE {} ORDER BY {order} LIMIT ${} OFFSET ${}",
                col.map_or("pk", Col::name),
                p.scope,
                n + 1,
                n + 2
            );
            for row in c.query(&sql, &args).await? {
                rows.push(ordered(row, col)?);
            }
        }
        if let Some((last, _, _)) = rows.last() {
            let end = offset + rows.len() as u64;
            ctx.memo.remember_walk(p.key, end, Walk { after: last.clone(), counts: p.counts });
        }
        Ok((total, rows.into_iter().map(|(_, pk, rec)| (pk, rec)).collect()))
    }

    /// A keyset page: the total if known, the rows, and where the neighbouring pages start.
    async fn keyset_page<C: Conn>(
        &self,
        c: &mut C,
        ctx: &Context,
        p: &Planned<'_>,
        seek: &Seek,
    ) -> Result<(Option<u64>, Vec<(i64, Record)>, Keyset)> {
        if seek.from.as_ref().is_some_and(|f| !p.order.fits(f)) {
            return Err(invalid_cursor());
        }
        let Some(col) = p.order.sql() else {
            self.candidates(c, ctx, p).await?;
            let keyed = core_sorted(c, p, p.residual.as_ref()).await?;
            let total = keyed.len() as u64;
            let (range, keyset) = slice_page(&keyed, seek, self.count, |a, b| core_cmp(p, a, b));
            let pks: Vec<i64> = keyed[range].iter().map(|(_, pk)| *pk).collect();
            return Ok((Some(total), records_by_pk(c, &pks).await?, keyset));
        };
        // Up or down the ascending order of the column.
        let forward_up = !p.order.desc();
        if let Some(residual) = &p.residual {
            if seek.backward {
                // Never offered (no `prev` for these): nothing lies that way.
                return Ok((None, Vec::new(), Keyset::default()));
            }
            return self.residual_keyset(c, ctx, p, col, residual, seek, forward_up).await;
        }
        let total = self.sql_total(c, ctx, p, Some(COUNT_BOUND)).await?;
        let up = forward_up != seek.backward;
        let from = seek.from.as_ref();
        let n = usize::try_from(self.count).unwrap_or(usize::MAX);
        // Nearest first, one row past the page: whether it has a next (or, going backward, a
        // previous) page.
        let mut rows = scan(c, p.range(col, from, up), self.count.saturating_add(1)).await?;
        let near = rows.first().map(|(pos, _, _)| pos.clone());
        let onward = (rows.len() > n).then(|| Seek {
            from: if n > 0 { rows.get(n - 1).map(|(pos, _, _)| pos.clone()) } else { from.cloned() },
            backward: seek.backward,
        });
        rows.truncate(n);
        // Whatever lies on the other side of the page (nothing before the very first page):
        // the rows before its near end (for an empty page, before the row past it, or the end).
        let behind = match from {
            None => None,
            Some(_) => {
                let probe = scan(c, p.range(col, near.as_ref(), !up), 1).await?;
                (!probe.is_empty()).then(|| Seek { from: near, backward: !seek.backward })
            }
        };
        if seek.backward {
            rows.reverse();
        }
        let keyset =
            if seek.backward { Keyset { next: behind, prev: onward } } else { Keyset { next: onward, prev: behind } };
        Ok((total, rows.into_iter().map(|(_, pk, rec)| (pk, rec)).collect(), keyset))
    }

    /// A keyset page of a filter the core finishes, in an order SQL gives: the candidates
    /// from the cursor on, until the page is full or `max_candidates` were examined (then the
    /// next page starts after the last one examined). No total, no previous page.
    #[allow(clippy::too_many_arguments)]
    async fn residual_keyset<C: Conn>(
        &self,
        c: &mut C,
        ctx: &Context,
        p: &Planned<'_>,
        col: Option<Col>,
        residual: &Filter,
        seek: &Seek,
        up: bool,
    ) -> Result<(Option<u64>, Vec<(i64, Record)>, Keyset)> {
        let want = self.count.saturating_add(1);
        let budget = ctx.limits.max_candidates.max(1);
        let (mut page, mut examined, mut from) = (Vec::new(), 0u64, seek.from.clone());
        let mut exhausted = false;
        let mut last_match = None;
        'read: while examined < budget {
            let batch = CANDIDATE_BATCH.min(budget - examined);
            let rows = scan(c, p.range(col, from.as_ref(), up), batch).await?;
            let full = rows.len() as u64 == batch;
            for (pos, pk, rec) in rows {
                examined += 1;
                if scim_core::eval::matches(&p.def, residual, &crate::materialize(&rec))? {
                    if page.len() as u64 == self.count {
                        // One match past the page: there is a next page, after the page's last.
                        page.push((pk, rec));
                        break 'read;
                    }
                    last_match = Some(pos.clone());
                    page.push((pk, rec));
                }
                from = Some(pos);
            }
            if !full {
                exhausted = true;
                break;
            }
        }
        let next = if page.len() as u64 == want {
            page.pop();
            // The page is full and a match follows its last row (or, for count = 0, the cursor).
            Some(Seek { from: if self.count == 0 { seek.from.clone() } else { last_match }, backward: false })
        } else if exhausted {
            None
        } else {
            // The budget ran out first: go on after the last candidate examined.
            Some(Seek { from, backward: false })
        };
        Ok((None, page, Keyset { next, prev: None }))
    }
}

/// Every candidate the residual matches, with its sort key, in the core's order of the
/// query's path (a `sortBy` no column holds); read in creation order, in batches.
async fn core_sorted<C: Conn>(c: &mut C, p: &Planned<'_>, residual: Option<&Filter>) -> Result<Vec<(SortKey, i64)>> {
    let Order::Core { path, .. } = &p.order else { return Ok(Vec::new()) };
    let mut keyed = Vec::new();
    let mut from = None::<Position>;
    loop {
        let rows = scan(c, p.range(None, from.as_ref(), true), CANDIDATE_BATCH).await?;
        let full = rows.len() as u64 == CANDIDATE_BATCH;
        for (pos, pk, rec) in rows {
            from = Some(pos);
            let doc = crate::materialize(&rec);
            if let Some(f) = residual {
                if !scim_core::eval::matches(&p.def, f, &doc)? {
                    continue;
                }
            }
            let key =
                scim_core::eval::sort_value(&p.def, path, &doc).map_or(SortKey::Null, |v| SortKey::Value(core_key(v)));
            keyed.push((key, pk));
        }
        if !full {
            break;
        }
    }
    keyed.sort_by(|a, b| core_cmp(p, a, b));
    Ok(keyed)
}

/// A sort value as it takes part in the order: texts (and the JSON of compound values) cut to
/// [`MAX_CORE_KEY_BYTES`], so that a cursor holding one stays short.
fn core_key(v: &Value) -> Value {
    let cut = |s: &str| {
        let mut end = s.len().min(MAX_CORE_KEY_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    match v {
        Value::String(s) => Value::String(cut(s)),
        Value::Array(_) | Value::Object(_) => Value::String(cut(&v.to_string())),
        other => other.clone(),
    }
}

/// The core's order of two (sort key, row key) pairs: by value (missing ones last), then by
/// creation; descending is the exact reverse.
fn core_cmp(p: &Planned<'_>, a: &(SortKey, i64), b: &(SortKey, i64)) -> Ordering {
    let Order::Core { path, desc } = &p.order else { return a.1.cmp(&b.1) };
    let value = |k: &SortKey| match k {
        SortKey::Value(v) => Some(v.clone()),
        _ => None,
    };
    let leaf = scim_core::eval::sort_leaf(&p.def, path);
    let o = scim_core::eval::compare_sort_values(leaf, value(&a.0).as_ref(), value(&b.0).as_ref())
        .then_with(|| a.1.cmp(&b.1));
    if *desc { o.reverse() } else { o }
}

/// The page of a sorted list a seek asks for: its range, and where its neighbours start.
fn slice_page(
    sorted: &[(SortKey, i64)],
    seek: &Seek,
    count: u64,
    cmp: impl Fn(&(SortKey, i64), &(SortKey, i64)) -> Ordering,
) -> (std::ops::Range<usize>, Keyset) {
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let at = |pos: &Position| (pos.key.clone(), pos.pk);
    let position = |i: usize| sorted.get(i).map(|(k, pk)| Position { key: k.clone(), pk: *pk });
    let (start, end) = match (&seek.from, seek.backward) {
        (None, false) => (0, count.min(sorted.len())),
        (None, true) => (sorted.len().saturating_sub(count), sorted.len()),
        (Some(f), false) => {
            let s = sorted.partition_point(|e| cmp(e, &at(f)) != Ordering::Greater);
            (s, s.saturating_add(count).min(sorted.len()))
        }
        (Some(f), true) => {
            let e = sorted.partition_point(|e| cmp(e, &at(f)) == Ordering::Less);
            (e.saturating_sub(count), e)
        }
    };
    // The next page: after the page's last row (for an empty page, the row before it).
    let next = (end < sorted.len()).then(|| Seek { from: end.checked_sub(1).and_then(position), backward: false });
    // The previous one: before the page's first row (for an empty page, the row after it).
    let prev = (start > 0).then(|| Seek { from: position(start), backward: true });
    (start..end, Keyset { next, prev })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn query(kind: Kind, filter: &str) -> Query {
        Query {
            tenant: 1,
            kind,
            filter: Some(Filter::parse(filter).unwrap()),
            sort: None,
            start_index: 1,
            count: 100,
            load: crate::Load::default(),
            position: false,
            seek: None,
        }
    }

    /// Only look-ups by a unique key may run on the caller's thread: anything that may read
    /// many rows goes to a blocking thread.
    #[test]
    fn only_lookups_by_a_unique_key_are_quick() {
        for (kind, f) in [
            (Kind::User, r#"userName eq "ada@contoso.com""#),
            (Kind::User, r#"USERNAME eq "ada""#),
            (Kind::User, r#"externalId eq "e1""#),
            (Kind::User, r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada""#),
            (Kind::Group, r#"displayName eq "Sales""#),
        ] {
            assert!(query(kind, f).quick(), "{f}");
        }
        for (kind, f) in [
            (Kind::User, r#"userName sw "a""#),
            (Kind::User, r#"displayName eq "Ada""#),
            (Kind::User, r#"emails[type eq "work"].value eq "a@b.c""#),
            (Kind::User, r#"userName eq "a" or userName eq "b""#),
            (Kind::User, r#"name.familyName eq "Lovelace""#),
            (Kind::User, r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#),
            (Kind::Group, r#"urn:ietf:params:scim:schemas:core:2.0:User:displayName eq "x""#),
        ] {
            assert!(!query(kind, f).quick(), "{f}");
        }
        let mut sorted = query(Kind::User, r#"userName eq "ada""#);
        sorted.sort = Some((AttrPath::parse("userName").unwrap(), SortOrder::Ascending));
        assert!(!sorted.quick());
        let mut unfiltered = query(Kind::User, r#"userName eq "ada""#);
        unfiltered.filter = None;
        assert!(!unfiltered.quick(), "a list of every user");
    }
}
