//! The PostgreSQL store: the tables, indexes and semantics of the SQLite store, for deployments
//! with several replicas sharing one database.
//!
//! - Connections: a small pool of its own (at most [`MAX_CONNECTIONS`]), each connection with a
//!   cache of prepared statements. A broken connection is replaced; a read that failed on one is
//!   retried once, and so is a write whose `BEGIN` failed (nothing of it can have been applied).
//! - Schema: created or migrated on open inside one transaction holding an advisory lock, so
//!   replicas starting together do not race; `schema_version` holds the version.
//! - Text: every text column that is compared or sorted is `COLLATE "C"`: byte order, the same as
//!   SQLite's BINARY and the core's comparisons whatever the database's default collation is,
//!   and the indexes then serve ranges and prefixes (`starts_with`).
//! - Documents: `doc` is TEXT holding serde_json's serialization, byte for byte what SQLite
//!   stores. The server never looks inside it (each indexed value has its own column), so JSONB
//!   would only add a parse to every write and reorder the keys of what is read back.
//! - Time: BIGINT microseconds since the epoch, as in SQLite (the plan's `Int` arguments).
//! - Concurrency (READ COMMITTED): a write first locks its tenant's row `FOR KEY SHARE`, so
//!   deleting a tenant waits for the writes in flight and later writes find it gone. A resource is
//!   locked before its `If-Match` check (`FOR NO KEY UPDATE`, `FOR UPDATE` to delete it), and the
//!   members a write adds are locked `FOR KEY SHARE`, so none is deleted under its new membership.
//!   The change event is written last, under an exclusive lock on the tenant's row held until
//!   commit: a tenant's events commit in `seq` order, so a reader of the feed never sees an event
//!   appear below a `seq` it has already read.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::{Severity, SqlState};
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Config, NoTls, Row, Statement};
use scim_core::patch::MemberDelta;
use scim_core::resource::Member;
use scim_core::{Registry, ScimError};
use serde_json::Value;
use time::OffsetDateTime;

use crate::common::{Unique, conflict, instant, micros, residual_page, too_many};
use crate::plan::{self, Arg, Cond, EmailCol, IndexKeys, Op};
use crate::{
    Change, Event, GroupRef, Kind, Limits, Load, MemberRow, Members, Page, Query, Record, Result, SortOrder, Store,
    StoreError, Tenant, Token,
};

/// The most connections one store keeps open.
const MAX_CONNECTIONS: usize = 8;
/// How long a call waits for a connection when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (filters make the SQL text vary).
const STATEMENT_CACHE: usize = 256;
const SCHEMA_VERSION: i32 = 1;
/// The advisory lock (two-key form) that serializes migrations: "scim", 1.
const MIGRATION_LOCK: (i32, i32) = (0x7363_696d, 1);
/// How a query reads: one snapshot for the count, the page and its members.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const SCHEMA: &str = r#"
CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL CONSTRAINT tenants_name UNIQUE,
    required TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    label TEXT,
    created BIGINT NOT NULL,
    expires BIGINT,
    revoked BIGINT
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);
CREATE TABLE resources (
    pk BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    name_lc TEXT COLLATE "C" NOT NULL,
    display TEXT,
    display_lc TEXT COLLATE "C",
    external_id TEXT COLLATE "C",
    employee_number_lc TEXT COLLATE "C",
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX resources_id ON resources (tenant_id, id);
CREATE UNIQUE INDEX resources_name ON resources (tenant_id, kind, name_lc);
CREATE UNIQUE INDEX resources_external_id ON resources (tenant_id, kind, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX resources_display ON resources (tenant_id, kind, display_lc) WHERE display_lc IS NOT NULL;
CREATE INDEX resources_employee_number ON resources (tenant_id, kind, employee_number_lc) WHERE employee_number_lc IS NOT NULL;
CREATE INDEX resources_kind ON resources (tenant_id, kind, pk);
CREATE INDEX resources_modified ON resources (tenant_id, kind, modified);
CREATE INDEX resources_created ON resources (tenant_id, kind, created);
CREATE TABLE emails (
    resource_pk BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    value_lc TEXT COLLATE "C" NOT NULL,
    type_lc TEXT COLLATE "C"
);
CREATE INDEX emails_value ON emails (tenant_id, value_lc);
CREATE INDEX emails_resource ON emails (resource_pk);
CREATE TABLE members (
    group_pk BIGINT NOT NULL,
    member_pk BIGINT NOT NULL,
    display TEXT,
    PRIMARY KEY (group_pk, member_pk)
);
CREATE INDEX members_member ON members (member_pk);
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    resource_id TEXT NOT NULL,
    change TEXT NOT NULL,
    version BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX events_tenant ON events (tenant_id, seq);
"#;

type Params<'a> = [&'a (dyn ToSql + Sync)];

fn db(e: postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn kind_code(kind: Kind) -> i16 {
    match kind {
        Kind::User => 0,
        Kind::Group => 1,
    }
}

fn kind_of(code: i16) -> Kind {
    Kind::from_code(i64::from(code))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn col<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(db)
}

// ---------------------------------------------------------------- connections

/// Whether an error means the connection is gone. Right after a FATAL error (e.g. the server
/// shutting down, or an administrator ending the session) the client does not yet know that
/// it is closed.
fn breaks_connection(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(d) => matches!(d.parsed_severity(), Some(Severity::Fatal | Severity::Panic)),
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// One connection and its prepared statements.
struct PgConn {
    client: Client,
    stmts: HashMap<String, Statement>,
    /// An error said that the connection is gone.
    dead: bool,
}

impl PgConn {
    fn cx(&mut self) -> Cx<'_> {
        Cx { client: &mut self.client, stmts: &mut self.stmts, dead: &mut self.dead }
    }

    fn usable(&self) -> bool {
        !self.dead && !self.client.is_closed()
    }

    /// A statement sent as simple text (transaction control).
    fn simple(&mut self, sql: &str) -> Result<(), postgres::Error> {
        let r = self.client.batch_execute(sql);
        if r.as_ref().is_err_and(breaks_connection) {
            self.dead = true;
        }
        r
    }
}

/// Statements on one connection, prepared once and cached.
struct Cx<'a> {
    client: &'a mut Client,
    stmts: &'a mut HashMap<String, Statement>,
    dead: &'a mut bool,
}

impl Cx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql);
        let s = self.check(sql, s)?;
        if self.stmts.len() >= STATEMENT_CACHE {
            self.stmts.clear();
        }
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Notes a lost connection, and forgets a statement the server no longer accepts ("cached
    /// plan must not change result type", after another replica migrated the schema).
    fn check<T>(&mut self, sql: &str, r: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(e) = &r {
            if breaks_connection(e) {
                *self.dead = true;
            }
            if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) {
                self.stmts.remove(sql);
            }
        }
        r
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        let r = self.client.query(&s, params);
        self.check(sql, r)
    }

    fn opt(&mut self, sql: &str, params: &Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        let r = self.client.query_opt(&s, params);
        self.check(sql, r)
    }

    fn one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        let r = self.client.query_one(&s, params);
        self.check(sql, r)
    }

    fn exec(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        let r = self.client.execute(&s, params);
        self.check(sql, r)
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<PgConn>,
    /// Connections open, idle or leased.
    open: usize,
}

/// At most [`MAX_CONNECTIONS`] connections, opened on demand and kept.
struct Pool {
    config: Config,
    state: Mutex<PoolState>,
    freed: Condvar,
}

impl Pool {
    fn connect(&self) -> Result<PgConn> {
        let client =
            self.config.connect(NoTls).map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        Ok(PgConn { client, stmts: HashMap::new(), dead: false })
    }

    fn get(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut st = lock(&self.state);
        loop {
            while let Some(c) = st.idle.pop() {
                if c.usable() {
                    return Ok(Lease { pool: self, conn: Some(c) });
                }
                st.open = st.open.saturating_sub(1);
            }
            if st.open < MAX_CONNECTIONS {
                st.open += 1;
                drop(st);
                // An empty lease gives the slot back if connecting fails.
                let mut lease = Lease { pool: self, conn: None };
                lease.conn = Some(self.connect()?);
                return Ok(lease);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(format!(
                    "all {MAX_CONNECTIONS} connections to PostgreSQL stayed busy for {}s",
                    POOL_WAIT.as_secs()
                )));
            }
            st = self.freed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// A connection taken from the pool; given back (or, if broken, closed) when dropped.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut PgConn> {
        self.conn.as_mut().ok_or_else(|| StoreError::Backend("no connection to PostgreSQL".into()))
    }

    fn broken(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| !c.usable())
    }

    fn reconnect(&mut self) -> Result<&mut PgConn> {
        self.conn = None;
        self.conn = Some(self.pool.connect()?);
        self.conn()
    }

    /// Starts a transaction; on a fresh connection if the one held died (while idle, or in
    /// the previous transaction).
    fn begin(&mut self, sql: &str) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return self.reconnect()?.simple(sql).map_err(db);
        };
        if let Err(e) = conn.simple(sql) {
            if !self.broken() {
                return Err(db(e));
            }
            self.reconnect()?.simple(sql).map_err(db)?;
        }
        Ok(())
    }

    /// Commits what `out` says succeeded, or rolls back.
    fn finish<T>(&mut self, out: Result<T>) -> Result<T> {
        let conn = self.conn()?;
        match out {
            Ok(v) => {
                conn.simple("COMMIT").map_err(db)?;
                Ok(v)
            }
            Err(e) => {
                if conn.simple("ROLLBACK").is_err() {
                    // Never give back a connection that may still be inside a transaction.
                    self.conn = None;
                }
                Err(e)
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.pool.state);
        let dead = match self.conn.take() {
            Some(c) if c.usable() && !std::thread::panicking() => {
                st.idle.push(c);
                None
            }
            other => {
                st.open = st.open.saturating_sub(1);
                other
            }
        };
        drop(st);
        self.pool.freed.notify_one();
        drop(dead);
    }
}

// ---------------------------------------------------------------- the store

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    limits: Limits,
    registry: Registry,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST[:PORT]/DB[?options]`), creating and
    /// migrating the schema as needed.
    pub fn open(url: &str, limits: Limits) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {e}; use postgres://USER:PASSWORD@HOST/DB"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("scimd");
        }
        let pool = Pool { config, state: Mutex::new(PoolState::default()), freed: Condvar::new() };
        let store = PgStore { pool, limits, registry: Registry::standard() };
        store.write(migrate)?;
        Ok(store)
    }

    /// Runs `f` outside a transaction (a single statement, or reads that need no snapshot).
    fn read<T>(&self, mut f: impl FnMut(&mut Cx<'_>) -> Result<T>) -> Result<T> {
        let mut lease = self.pool.get()?;
        match f(&mut lease.conn()?.cx()) {
            Err(_) if lease.broken() => f(&mut lease.reconnect()?.cx()),
            out => out,
        }
    }

    /// Runs `f` in one read-only snapshot.
    fn snapshot<T>(&self, mut f: impl FnMut(&mut Cx<'_>) -> Result<T>) -> Result<T> {
        let mut lease = self.pool.get()?;
        for _ in 0..2 {
            lease.begin(SNAPSHOT)?;
            let out = f(&mut lease.conn()?.cx());
            match lease.finish(out) {
                Err(_) if lease.broken() => continue,
                out => return out,
            }
        }
        Err(StoreError::Backend("the connection to PostgreSQL broke twice".into()))
    }

    /// Runs `f` in a read-write transaction and commits it if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut Cx<'_>) -> Result<T>) -> Result<T> {
        let mut lease = self.pool.get()?;
        lease.begin("BEGIN")?;
        let out = f(&mut lease.conn()?.cx());
        lease.finish(out)
    }
}

fn migrate(cx: &mut Cx<'_>) -> Result<()> {
    // Replicas starting together wait here for the first one's migration.
    cx.client.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1]).map_err(db)?;
    cx.client.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").map_err(db)?;
    let version: Option<i32> =
        col(&cx.client.query_one("SELECT max(version) FROM schema_version", &[]).map_err(db)?, 0)?;
    match version {
        None => {
            cx.client.batch_execute(SCHEMA).map_err(db)?;
            cx.client.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&SCHEMA_VERSION]).map_err(db)?;
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::Backend(format!(
                "the database has schema version {v}, newer than this scimd ({SCHEMA_VERSION}); upgrade scimd"
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

fn tenant_row(r: &Row) -> Result<Tenant> {
    let required: String = col(r, 2)?;
    Ok(Tenant {
        id: col(r, 0)?,
        name: col(r, 1)?,
        required: serde_json::from_str(&required).unwrap_or_default(),
        created: instant(col(r, 3)?),
    })
}

fn token_row(r: &Row) -> Result<Token> {
    Ok(Token {
        id: col(r, 0)?,
        tenant: col(r, 1)?,
        digest: col(r, 2)?,
        label: col(r, 3)?,
        created: instant(col(r, 4)?),
        expires: col::<Option<i64>>(r, 5)?.map(instant),
        revoked: col::<Option<i64>>(r, 6)?.map(instant),
    })
}

const RECORD_COLS: &str = "r.pk, r.kind, r.id, r.created, r.modified, r.version, r.doc";

fn record_row(r: &Row) -> Result<(i64, Record)> {
    let doc: &str = col(r, 6)?;
    Ok((
        col(r, 0)?,
        Record {
            kind: kind_of(col(r, 1)?),
            id: col(r, 2)?,
            created: instant(col(r, 3)?),
            last_modified: instant(col(r, 4)?),
            version: col(r, 5)?,
            doc: serde_json::from_str(doc).unwrap_or(Value::Null),
            members: None,
            groups: None,
        },
    ))
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Turns a uniqueness violation into a `Conflict` that names the attribute and value.
fn unique_violation(e: postgres::Error, kind: Kind, keys: &IndexKeys) -> StoreError {
    if !is_unique_violation(&e) {
        return db(e);
    }
    let which = match e.as_db_error().and_then(|d| d.constraint()) {
        Some("resources_external_id") => Unique::ExternalId,
        Some("resources_name") => Unique::Name,
        _ => Unique::Id,
    };
    conflict(kind, keys, which)
}

/// Locks the tenant against deletion until commit; `NotFound` if it is gone.
fn lock_tenant(cx: &mut Cx<'_>, tenant: i64) -> Result<()> {
    cx.opt("SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE", &[&tenant]).map_err(db)?.ok_or(StoreError::NotFound)?;
    Ok(())
}

fn write_emails(cx: &mut Cx<'_>, tenant: i64, pk: i64, keys: &IndexKeys, replace: bool) -> Result<()> {
    if replace {
        cx.exec("DELETE FROM emails WHERE resource_pk = $1", &[&pk]).map_err(db)?;
    }
    if keys.emails.is_empty() {
        return Ok(());
    }
    let values: Vec<&str> = keys.emails.iter().map(|(v, _)| v.as_str()).collect();
    let types: Vec<Option<&str>> = keys.emails.iter().map(|(_, t)| t.as_deref()).collect();
    cx.exec(
        "INSERT INTO emails (resource_pk, tenant_id, value_lc, type_lc)
         SELECT $1::bigint, $2::bigint, v, t FROM unnest($3::text[], $4::text[]) AS u(v, t)",
        &[&pk, &tenant, &values, &types],
    )
    .map_err(db)?;
    Ok(())
}

/// Appends the change event, last in the transaction: the exclusive lock on the tenant's row,
/// held to commit, makes a tenant's events commit in `seq` order.
fn event(
    cx: &mut Cx<'_>,
    tenant: i64,
    kind: Kind,
    id: &str,
    change: Change,
    version: Option<i64>,
    now: i64,
) -> Result<()> {
    let n = cx
        .exec(
            "WITH t AS (SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE)
             INSERT INTO events (tenant_id, kind, resource_id, change, version, at)
             SELECT t.id, $2::smallint, $3::text, $4::text, $5::bigint, $6::bigint FROM t",
            &[&tenant, &kind_code(kind), &id, &change.as_str(), &version, &now],
        )
        .map_err(db)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Adds members to a group: each id must name a user or group of the tenant (`invalidValue`
/// naming the first that does not, before anything is added). The members are locked against
/// deletion until commit. The `display` a client sent is kept with the membership.
fn add_members(cx: &mut Cx<'_>, tenant: i64, group_pk: i64, members: &[Member]) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
    let mut pks = HashMap::with_capacity(ids.len());
    for row in cx
        .query(
            "SELECT id, pk FROM resources WHERE tenant_id = $1 AND id = ANY($2::text[]) FOR KEY SHARE",
            &[&tenant, &ids],
        )
        .map_err(db)?
    {
        pks.insert(col::<String>(&row, 0)?, col::<i64>(&row, 1)?);
    }
    let mut seen = HashSet::with_capacity(ids.len());
    let (mut add, mut displays) = (Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()));
    for (id, m) in ids.into_iter().zip(members) {
        let Some(&pk) = pks.get(id) else {
            return Err(StoreError::Scim(ScimError::invalid_value(format!(
                "member \"{id}\" is not a user or group of this tenant; create it before adding it to a group"
            ))));
        };
        if pk == group_pk {
            return Err(StoreError::Scim(ScimError::invalid_value("a group cannot be a member of itself")));
        }
        // As in SQLite's INSERT OR IGNORE, the first mention of a member wins.
        if seen.insert(pk) {
            add.push(pk);
            displays.push(m.display.as_deref());
        }
    }
    cx.exec(
        "INSERT INTO members (group_pk, member_pk, display)
         SELECT $1::bigint, p, d FROM unnest($2::bigint[], $3::text[]) AS u(p, d) ON CONFLICT DO NOTHING",
        &[&group_pk, &add, &displays],
    )
    .map_err(db)?;
    Ok(())
}

fn apply_delta(cx: &mut Cx<'_>, tenant: i64, group_pk: i64, delta: &MemberDelta) -> Result<()> {
    if delta.remove_all {
        cx.exec("DELETE FROM members WHERE group_pk = $1", &[&group_pk]).map_err(db)?;
    }
    if !delta.remove.is_empty() {
        cx.exec(
            "DELETE FROM members WHERE group_pk = $1
             AND member_pk IN (SELECT pk FROM resources WHERE tenant_id = $2 AND id = ANY($3::text[]))",
            &[&group_pk, &tenant, &delta.remove],
        )
        .map_err(db)?;
    }
    add_members(cx, tenant, group_pk, &delta.add)
}

/// Loads what `load` asks for into every record, with one statement for all of them.
fn load_extras(cx: &mut Cx<'_>, recs: &mut [(i64, Record)], load: Load) -> Result<()> {
    let pks_of = |recs: &[(i64, Record)], kind: Kind| -> Vec<i64> {
        recs.iter().filter(|(_, r)| r.kind == kind).map(|(pk, _)| *pk).collect()
    };
    let groups = if load.members { pks_of(recs, Kind::Group) } else { Vec::new() };
    if !groups.is_empty() {
        let mut by_group: HashMap<i64, Vec<MemberRow>> = HashMap::new();
        for row in cx
            .query(
                "SELECT m.group_pk, x.id, x.kind, COALESCE(m.display, x.display) FROM members m JOIN resources x ON x.pk = m.member_pk
                 WHERE m.group_pk = ANY($1::bigint[]) ORDER BY m.group_pk, m.member_pk",
                &[&groups],
            )
            .map_err(db)?
        {
            let m = MemberRow { value: col(&row, 1)?, kind: kind_of(col(&row, 2)?), display: col(&row, 3)? };
            by_group.entry(col(&row, 0)?).or_default().push(m);
        }
        for (pk, rec) in recs.iter_mut().filter(|(_, r)| r.kind == Kind::Group) {
            rec.members = Some(by_group.remove(pk).unwrap_or_default());
        }
    }
    let users = if load.groups { pks_of(recs, Kind::User) } else { Vec::new() };
    if !users.is_empty() {
        let mut by_user: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        for row in cx
            .query(
                "SELECT m.member_pk, g.id, g.display FROM members m JOIN resources g ON g.pk = m.group_pk
                 WHERE m.member_pk = ANY($1::bigint[]) ORDER BY m.member_pk, m.group_pk",
                &[&users],
            )
            .map_err(db)?
        {
            let g = GroupRef { value: col(&row, 1)?, display: col(&row, 2)? };
            by_user.entry(col(&row, 0)?).or_default().push(g);
        }
        for (pk, rec) in recs.iter_mut().filter(|(_, r)| r.kind == Kind::User) {
            rec.groups = Some(by_user.remove(pk).unwrap_or_default());
        }
    }
    Ok(())
}

/// `rec` with what `load` asks for.
fn with_extras(cx: &mut Cx<'_>, pk: i64, rec: Record, load: Load) -> Result<Record> {
    let mut one = [(pk, rec)];
    load_extras(cx, &mut one, load)?;
    let [(_, rec)] = one;
    Ok(rec)
}

// ---------------------------------------------------------------- filters

/// Placeholders `$1` and `$2` of a query are the tenant and the kind; a condition's values
/// follow.
const FIXED_PARAMS: usize = 2;

/// Renders a plan condition as PostgreSQL over the alias `r`, pushing every value to `args`
/// (bound as `$3`, `$4`, ...; never spliced into the text).
fn render(c: &Cond, args: &mut Vec<Arg>) -> String {
    match c {
        Cond::True => "TRUE".into(),
        Cond::False => "FALSE".into(),
        Cond::Cmp(col, op, arg) => compare(&format!("r.{}", col.name()), *op, arg, args),
        Cond::NotNull(col) => format!("r.{} IS NOT NULL", col.name()),
        Cond::Email(terms) => {
            let parts: Vec<String> = terms
                .iter()
                .map(|(col, op, arg)| {
                    let name = match col {
                        EmailCol::ValueLc => "e.value_lc",
                        EmailCol::TypeLc => "e.type_lc",
                    };
                    compare(name, *op, arg, args)
                })
                .collect();
            // Uncorrelated and tenant-scoped, so the planner can start from `emails_value`.
            format!("r.pk IN (SELECT e.resource_pk FROM emails e WHERE e.tenant_id = $1 AND {})", parts.join(" AND "))
        }
        Cond::HasEmail => "EXISTS (SELECT 1 FROM emails e WHERE e.resource_pk = r.pk)".into(),
        Cond::Member(id) => {
            let p = bind(args, Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.group_pk FROM members m JOIN resources x ON x.pk = m.member_pk WHERE x.tenant_id = $1 AND x.id = {p})"
            )
        }
        Cond::HasMember => "EXISTS (SELECT 1 FROM members m WHERE m.group_pk = r.pk)".into(),
        Cond::InGroup(id) => {
            let p = bind(args, Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.member_pk FROM members m JOIN resources g ON g.pk = m.group_pk WHERE g.tenant_id = $1 AND g.id = {p})"
            )
        }
        Cond::InAnyGroup => "EXISTS (SELECT 1 FROM members m WHERE m.member_pk = r.pk)".into(),
        Cond::And(xs) if xs.is_empty() => "TRUE".into(),
        Cond::Or(xs) if xs.is_empty() => "FALSE".into(),
        Cond::And(xs) => format!("({})", xs.iter().map(|x| render(x, args)).collect::<Vec<_>>().join(" AND ")),
        Cond::Or(xs) => format!("({})", xs.iter().map(|x| render(x, args)).collect::<Vec<_>>().join(" OR ")),
        Cond::Not(x) => format!("NOT COALESCE(({}), FALSE)", render(x, args)),
    }
}

/// A placeholder for `arg`, typed so that the server never has to guess.
fn bind(args: &mut Vec<Arg>, arg: Arg) -> String {
    let ty = match arg {
        Arg::Text(_) => "text",
        Arg::Int(_) => "bigint",
    };
    args.push(arg);
    format!("${}::{ty}", args.len() + FIXED_PARAMS)
}

/// `col op arg`. Text columns are `COLLATE "C"`, so comparisons are by bytes; the pattern
/// operators are plain string functions (no LIKE: `%` and `_` in a value mean themselves).
fn compare(col: &str, op: Op, arg: &Arg, args: &mut Vec<Arg>) -> String {
    let p = bind(args, arg.clone());
    match op {
        Op::Eq => format!("{col} = {p}"),
        Op::Lt => format!("{col} < {p}"),
        Op::Le => format!("{col} <= {p}"),
        Op::Gt => format!("{col} > {p}"),
        Op::Ge => format!("{col} >= {p}"),
        Op::Contains => format!("strpos({col}, {p}) > 0"),
        // An index range scan under the C collation.
        Op::StartsWith => format!("starts_with({col}, {p})"),
        Op::EndsWith => format!("right({col}, length({p})) = {p}"),
    }
}

fn arg_sql(a: &Arg) -> &(dyn ToSql + Sync) {
    match a {
        Arg::Text(s) => s,
        Arg::Int(i) => i,
    }
}

impl Store for PgStore {
    fn ping(&self) -> Result<()> {
        self.read(|cx| cx.one("SELECT 1", &[]).map(|_| ()).map_err(db))
    }

    fn create_tenant(&self, name: &str, required: &[String], now: OffsetDateTime) -> Result<Tenant> {
        let req = serde_json::to_string(required).map_err(|e| StoreError::Backend(e.to_string()))?;
        let created = micros(now);
        self.write(|cx| {
            let row = cx
                .one(
                    "INSERT INTO tenants (name, required, created) VALUES ($1, $2, $3) RETURNING id",
                    &[&name, &req, &created],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(format!("a tenant named \"{name}\" already exists"))
                    } else {
                        db(e)
                    }
                })?;
            Ok(Tenant {
                id: col(&row, 0)?,
                name: name.to_owned(),
                required: required.to_vec(),
                created: instant(created),
            })
        })
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(|cx| {
            cx.query("SELECT id, name, required, created FROM tenants ORDER BY name", &[])
                .map_err(db)?
                .iter()
                .map(tenant_row)
                .collect()
        })
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        self.read(|cx| {
            cx.opt("SELECT id, name, required, created FROM tenants WHERE name = $1", &[&name])
                .map_err(db)?
                .as_ref()
                .map(tenant_row)
                .transpose()
        })
    }

    fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>> {
        self.read(|cx| {
            cx.opt("SELECT id, name, required, created FROM tenants WHERE id = $1", &[&id])
                .map_err(db)?
                .as_ref()
                .map(tenant_row)
                .transpose()
        })
    }

    fn delete_tenant(&self, name: &str) -> Result<bool> {
        self.write(|cx| {
            // Waits for the tenant's writes in flight; later ones find the tenant gone.
            let Some(row) = cx.opt("SELECT id FROM tenants WHERE name = $1 FOR UPDATE", &[&name]).map_err(db)? else {
                return Ok(false);
            };
            let id: i64 = col(&row, 0)?;
            cx.exec("DELETE FROM members WHERE group_pk IN (SELECT pk FROM resources WHERE tenant_id = $1)", &[&id])
                .map_err(db)?;
            for sql in [
                "DELETE FROM emails WHERE tenant_id = $1",
                "DELETE FROM resources WHERE tenant_id = $1",
                "DELETE FROM events WHERE tenant_id = $1",
                "DELETE FROM tokens WHERE tenant_id = $1",
                "DELETE FROM tenants WHERE id = $1",
            ] {
                cx.exec(sql, &[&id]).map_err(db)?;
            }
            Ok(true)
        })
    }

    fn create_token(&self, t: &Token) -> Result<()> {
        let (created, expires, revoked) = (micros(t.created), t.expires.map(micros), t.revoked.map(micros));
        self.write(|cx| {
            cx.exec(
                "INSERT INTO tokens (id, tenant_id, digest, label, created, expires, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&t.id, &t.tenant, &t.digest, &t.label, &created, &expires, &revoked],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn token(&self, id: &str) -> Result<Option<Token>> {
        self.read(|cx| {
            cx.opt("SELECT id, tenant_id, digest, label, created, expires, revoked FROM tokens WHERE id = $1", &[&id])
                .map_err(db)?
                .as_ref()
                .map(token_row)
                .transpose()
        })
    }

    fn list_tokens(&self, tenant: i64) -> Result<Vec<Token>> {
        self.read(|cx| {
            cx.query(
                "SELECT id, tenant_id, digest, label, created, expires, revoked FROM tokens WHERE tenant_id = $1 ORDER BY created, id",
                &[&tenant],
            )
            .map_err(db)?
            .iter()
            .map(token_row)
            .collect()
        })
    }

    fn revoke_token(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        let now = micros(now);
        self.write(|cx| {
            let n =
                cx.exec("UPDATE tokens SET revoked = COALESCE(revoked, $2) WHERE id = $1", &[&id, &now]).map_err(db)?;
            Ok(n > 0)
        })
    }

    fn create(
        &self,
        tenant: i64,
        kind: Kind,
        id: &str,
        now: OffsetDateTime,
        doc: &Value,
        members: &[Member],
    ) -> Result<Record> {
        let keys = IndexKeys::of(kind, doc);
        let text = serde_json::to_string(doc).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now_m = micros(now);
        self.write(|cx| {
            lock_tenant(cx, tenant)?;
            let row = cx
                .one(
                    "INSERT INTO resources (tenant_id, kind, id, name_lc, display, display_lc, external_id, employee_number_lc, created, modified, version, doc)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10) RETURNING pk",
                    &[
                        &tenant,
                        &kind_code(kind),
                        &id,
                        &keys.name_lc,
                        &keys.display,
                        &keys.display_lc,
                        &keys.external_id,
                        &keys.employee_number_lc,
                        &now_m,
                        &text,
                    ],
                )
                .map_err(|e| unique_violation(e, kind, &keys))?;
            let pk: i64 = col(&row, 0)?;
            write_emails(cx, tenant, pk, &keys, false)?;
            add_members(cx, tenant, pk, members)?;
            let rec = Record {
                kind,
                id: id.to_owned(),
                created: instant(now_m),
                last_modified: instant(now_m),
                version: 1,
                doc: doc.clone(),
                members: None,
                groups: None,
            };
            let rec = with_extras(cx, pk, rec, Load { members: kind == Kind::Group, groups: false })?;
            event(cx, tenant, kind, id, Change::Created, Some(1), now_m)?;
            Ok(rec)
        })
    }

    fn get(&self, tenant: i64, kind: Kind, id: &str, load: Load) -> Result<Option<Record>> {
        let sql = format!("SELECT {RECORD_COLS} FROM resources r WHERE r.tenant_id = $1 AND r.id = $2 AND r.kind = $3");
        self.read(|cx| {
            let Some(row) = cx.opt(&sql, &[&tenant, &id, &kind_code(kind)]).map_err(db)? else { return Ok(None) };
            let (pk, rec) = record_row(&row)?;
            with_extras(cx, pk, rec, load).map(Some)
        })
    }

    fn update(
        &self,
        tenant: i64,
        kind: Kind,
        id: &str,
        if_version: Option<i64>,
        now: OffsetDateTime,
        doc: &Value,
        members: Members<'_>,
        load: Load,
    ) -> Result<Record> {
        let keys = IndexKeys::of(kind, doc);
        let text = serde_json::to_string(doc).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now_m = micros(now);
        self.write(|cx| {
            lock_tenant(cx, tenant)?;
            let row = cx
                .opt(
                    "SELECT pk, version, created FROM resources WHERE tenant_id = $1 AND id = $2 AND kind = $3 FOR NO KEY UPDATE",
                    &[&tenant, &id, &kind_code(kind)],
                )
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            let (pk, version, created): (i64, i64, i64) = (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
            if if_version.is_some_and(|v| v != version) {
                return Err(StoreError::VersionMismatch);
            }
            cx.exec(
                "UPDATE resources SET name_lc = $2, display = $3, display_lc = $4, external_id = $5, employee_number_lc = $6,
                 modified = $7, version = version + 1, doc = $8 WHERE pk = $1",
                &[
                    &pk,
                    &keys.name_lc,
                    &keys.display,
                    &keys.display_lc,
                    &keys.external_id,
                    &keys.employee_number_lc,
                    &now_m,
                    &text,
                ],
            )
            .map_err(|e| unique_violation(e, kind, &keys))?;
            write_emails(cx, tenant, pk, &keys, true)?;
            match members {
                Members::Unchanged => {}
                Members::Replace(list) => {
                    cx.exec("DELETE FROM members WHERE group_pk = $1", &[&pk]).map_err(db)?;
                    add_members(cx, tenant, pk, list)?;
                }
                Members::Delta(delta) => apply_delta(cx, tenant, pk, delta)?,
            }
            let rec = Record {
                kind,
                id: id.to_owned(),
                created: instant(created),
                last_modified: instant(now_m),
                version: version + 1,
                doc: doc.clone(),
                members: None,
                groups: None,
            };
            let rec = with_extras(cx, pk, rec, load)?;
            event(cx, tenant, kind, id, Change::Updated, Some(version + 1), now_m)?;
            Ok(rec)
        })
    }

    fn update_members(
        &self,
        tenant: i64,
        kind: Kind,
        id: &str,
        now: OffsetDateTime,
        delta: &MemberDelta,
        load: Load,
    ) -> Result<Record> {
        let now_m = micros(now);
        self.write(|cx| {
            lock_tenant(cx, tenant)?;
            let row = cx
                .opt(
                    "UPDATE resources SET modified = $4, version = version + 1 \
                     WHERE tenant_id = $1 AND id = $2 AND kind = $3 RETURNING pk, version, created, doc",
                    &[&tenant, &id, &kind_code(kind), &now_m],
                )
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            let (pk, version, created, doc): (i64, i64, i64, String) =
                (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?, col(&row, 3)?);
            apply_delta(cx, tenant, pk, delta)?;
            let rec = Record {
                kind,
                id: id.to_owned(),
                created: instant(created),
                last_modified: instant(now_m),
                version,
                doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
                members: None,
                groups: None,
            };
            let rec = with_extras(cx, pk, rec, load)?;
            event(cx, tenant, kind, id, Change::Updated, Some(version), now_m)?;
            Ok(rec)
        })
    }

    fn delete(&self, tenant: i64, kind: Kind, id: &str, if_version: Option<i64>, now: OffsetDateTime) -> Result<()> {
        self.write(|cx| {
            lock_tenant(cx, tenant)?;
            let row = cx
                .opt(
                    "SELECT pk, version FROM resources WHERE tenant_id = $1 AND id = $2 AND kind = $3 FOR UPDATE",
                    &[&tenant, &id, &kind_code(kind)],
                )
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            let (pk, version): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
            if if_version.is_some_and(|v| v != version) {
                return Err(StoreError::VersionMismatch);
            }
            // The groups it leaves change too: a new version and an event each.
            let groups = cx
                .query(
                    "UPDATE resources g SET version = g.version + 1, modified = $2 \
                     FROM members m WHERE m.member_pk = $1 AND g.pk = m.group_pk RETURNING g.id, g.version",
                    &[&pk, &micros(now)],
                )
                .map_err(db)?;
            for row in &groups {
                let (gid, v): (String, i64) = (col(row, 0)?, col(row, 1)?);
                event(cx, tenant, Kind::Group, &gid, Change::Updated, Some(v), micros(now))?;
            }
            cx.exec("DELETE FROM members WHERE group_pk = $1 OR member_pk = $1", &[&pk]).map_err(db)?;
            cx.exec("DELETE FROM emails WHERE resource_pk = $1", &[&pk]).map_err(db)?;
            cx.exec("DELETE FROM resources WHERE pk = $1", &[&pk]).map_err(db)?;
            event(cx, tenant, kind, id, Change::Deleted, None, micros(now))
        })
    }

    fn query(&self, tenant: i64, kind: Kind, q: &Query<'_>) -> Result<Page> {
        let Some(def) = self.registry.resource(kind.name()) else {
            return Err(StoreError::Backend(format!("no resource type {}", kind.name())));
        };
        let plan = plan::plan(&def, kind, q.filter)?;
        let mut args = Vec::new();
        let cond = render(&plan.cond, &mut args);
        let wher = format!("r.tenant_id = $1 AND r.kind = $2 AND ({cond})");
        let code = kind_code(kind);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant, &code];
        params.extend(args.iter().map(arg_sql));
        let sort_col = q.sort.map(|(p, o)| (plan::sort_column(&def, kind, p), p, o));
        let in_sql = plan.residual.is_none() && sort_col.is_none_or(|(c, _, _)| c.is_some());
        let offset = q.start_index.max(1) - 1;
        let lim = i64::try_from(q.count).unwrap_or(i64::MAX);
        let off = i64::try_from(offset).unwrap_or(i64::MAX);
        let count_sql = format!("SELECT count(*) FROM resources r WHERE {wher}");
        let page_sql = if in_sql {
            let order = match sort_col {
                Some((Some(col), _, SortOrder::Ascending)) => format!("r.{} ASC NULLS LAST, r.pk", col.name()),
                Some((Some(col), _, SortOrder::Descending)) => format!("r.{} DESC NULLS FIRST, r.pk DESC", col.name()),
                _ => "r.pk".to_owned(),
            };
            let n = params.len();
            format!(
                "SELECT {RECORD_COLS} FROM resources r WHERE {wher} ORDER BY {order} LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            )
        } else {
            format!("SELECT {RECORD_COLS} FROM resources r WHERE {wher} ORDER BY r.pk")
        };
        self.snapshot(|cx| {
            let total: i64 = col(&cx.one(&count_sql, &params).map_err(db)?, 0)?;
            let total = u64::try_from(total).unwrap_or(0);
            let (total, mut page) = if in_sql {
                if q.count == 0 || offset >= total {
                    (total, Vec::new())
                } else {
                    let mut all = params.clone();
                    all.extend([&lim as &(dyn ToSql + Sync), &off]);
                    let rows = cx.query(&page_sql, &all).map_err(db)?;
                    (total, rows.iter().map(record_row).collect::<Result<Vec<_>>>()?)
                }
            } else {
                if total > self.limits.max_candidates {
                    return Err(too_many(total, self.limits.max_candidates));
                }
                let rows = cx.query(&page_sql, &params).map_err(db)?;
                let candidates = rows.iter().map(record_row).collect::<Result<Vec<_>>>()?;
                let sort = sort_col.map(|(_, p, o)| (p, o));
                residual_page(&def, plan.residual.as_ref(), sort, candidates, offset, q.count)?
            };
            load_extras(cx, &mut page, q.load)?;
            Ok(Page { total, records: page.into_iter().map(|(_, r)| r).collect() })
        })
    }

    fn events(&self, tenant: i64, after: i64, limit: u64) -> Result<Vec<Event>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|cx| {
            cx.query(
                "SELECT seq, kind, resource_id, change, version, at FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&tenant, &after, &limit],
            )
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(Event {
                    seq: col(r, 0)?,
                    kind: kind_of(col(r, 1)?),
                    id: col(r, 2)?,
                    change: Change::parse(col(r, 3)?),
                    version: col(r, 4)?,
                    at: instant(col(r, 5)?),
                })
            })
            .collect()
        })
    }
}

/// What the contract suite cannot see: concurrency, broken connections, collation. These run
/// when `SCIMD_TEST_POSTGRES_URL` names a server (as `.ci/run` arranges), each in a database
/// of its own that it drops.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};

    use scim_core::{AttrPath, Filter};
    use serde_json::json;

    use super::*;

    struct TestDb {
        admin: String,
        name: String,
        url: String,
    }

    impl TestDb {
        /// A new database (`CREATE DATABASE name <options>`), or `None` without a server.
        fn new(options: &str) -> Option<TestDb> {
            let Ok(admin) = std::env::var("SCIMD_TEST_POSTGRES_URL") else {
                eprintln!("SCIMD_TEST_POSTGRES_URL is not set: PostgreSQL test skipped");
                return None;
            };
            static N: AtomicU64 = AtomicU64::new(0);
            let name = format!("pgstore_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            let mut c = Client::connect(&admin, NoTls).unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name} {options}")).unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            let url = format!("{base}/{name}");
            Some(TestDb { admin, name, url })
        }

        fn open(&self) -> PgStore {
            PgStore::open(&self.url, Limits::default()).unwrap()
        }

        fn client(&self) -> Client {
            Client::connect(&self.url, NoTls).unwrap()
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Ok(mut c) = Client::connect(&self.admin, NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn user(name: &str) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
    }

    #[test]
    fn concurrent_opens_create_the_schema_once() {
        let Some(t) = TestDb::new("") else { return };
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (url, barrier) = (t.url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PgStore::open(&url, Limits::default()).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let rows = t.client().query("SELECT version FROM schema_version", &[]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let Some(t) = TestDb::new("") else { return };
        drop(t.open());
        t.client().execute("UPDATE schema_version SET version = version + 1", &[]).unwrap();
        match PgStore::open(&t.url, Limits::default()) {
            Err(StoreError::Backend(d)) => assert!(d.contains("newer than this scimd"), "{d}"),
            Err(e) => panic!("expected a version error, got {e}"),
            Ok(_) => panic!("expected a version error"),
        }
    }

    #[test]
    fn if_match_lets_one_of_concurrent_writers_win() {
        let Some(t) = TestDb::new("") else { return };
        let s = Arc::new(t.open());
        let tenant = s.create_tenant("a", &[], now()).unwrap().id;
        s.create(tenant, Kind::User, "u1", now(), &user("x"), &[]).unwrap();
        // Another session holds the row, so that all writers queue up on it and then race.
        let mut blocker = t.client();
        let mut hold = blocker.transaction().unwrap();
        hold.execute("SELECT 1 FROM resources WHERE id = 'u1' FOR SHARE", &[]).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.update(
                        tenant,
                        Kind::User,
                        "u1",
                        Some(1),
                        now(),
                        &user(&format!("x{i}")),
                        Members::Unchanged,
                        Load::default(),
                    )
                })
            })
            .collect();
        let mut watcher = t.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting == 8 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        hold.commit().unwrap();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::VersionMismatch))));
        assert_eq!(s.get(tenant, Kind::User, "u1", Load::default()).unwrap().unwrap().version, 2);
        assert_eq!(s.events(tenant, 0, 100).unwrap().len(), 2);
    }

    #[test]
    fn a_broken_connection_is_replaced() {
        let Some(t) = TestDb::new("") else { return };
        let s = t.open();
        let tenant = s.create_tenant("a", &[], now()).unwrap().id;
        let kill_all = || {
            t.client()
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap();
            // Let the server close the sockets.
            std::thread::sleep(Duration::from_millis(100));
        };
        kill_all();
        s.ping().unwrap();
        kill_all();
        s.create(tenant, Kind::User, "u1", now(), &user("x"), &[]).unwrap();
        kill_all();
        let q = Query { filter: None, sort: None, start_index: 1, count: 10, load: Load::default() };
        assert_eq!(s.query(tenant, Kind::User, &q).unwrap().total, 1);
        kill_all();
        assert!(s.get(tenant, Kind::User, "u1", Load::default()).unwrap().is_some());
    }

    /// Runs `SELECT pg_terminate_backend(pg_backend_pid())`: the session ends itself.
    fn suicide(cx: &mut Cx<'_>) -> Result<()> {
        let r = cx.exec("SELECT pg_terminate_backend(pg_backend_pid())", &[]);
        assert!(r.is_err() && *cx.dead, "{r:?}");
        Err(StoreError::Backend("connection lost".into()))
    }

    #[test]
    fn a_connection_broken_inside_a_transaction_is_replaced() {
        let Some(t) = TestDb::new("") else { return };
        let s = t.open();
        // Reads are retried once on a fresh connection.
        let mut calls = 0;
        let out = s.snapshot(|cx| {
            calls += 1;
            if calls == 1 { suicide(cx).map(|_| 0) } else { col::<i32>(&cx.one("SELECT 42", &[]).map_err(db)?, 0) }
        });
        assert_eq!((out.unwrap(), calls), (42, 2));
        let mut calls = 0;
        let out = s.read(|cx| {
            calls += 1;
            if calls == 1 { suicide(cx).map(|_| 0) } else { col::<i32>(&cx.one("SELECT 7", &[]).map_err(db)?, 0) }
        });
        assert_eq!((out.unwrap(), calls), (7, 2));
        // A write is not (it may have been applied), but the next one gets a working connection.
        let mut calls = 0;
        assert!(
            s.write(|cx| {
                calls += 1;
                suicide(cx)
            })
            .is_err()
        );
        assert_eq!(calls, 1);
        s.create_tenant("a", &[], now()).unwrap();
        let st = lock(&s.pool.state);
        assert_eq!(st.open, st.idle.len(), "no connection leaked");
    }

    #[test]
    fn text_compares_and_sorts_by_bytes_whatever_the_database_collation() {
        // A database whose default collation sorts "a" before "B" and ignores punctuation.
        let Some(t) = TestDb::new("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'") else {
            return;
        };
        let s = t.open();
        let tenant = s.create_tenant("a", &[], now()).unwrap().id;
        for (i, ext) in ["b", "B", "a", "Z", "é", "_x", "a%b", "axb"].iter().enumerate() {
            let doc = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{i}"), "externalId": ext});
            s.create(tenant, Kind::User, &format!("u{i}"), now(), &doc, &[]).unwrap();
        }
        let by = AttrPath::parse("externalId").unwrap();
        let list = |filter: Option<&str>, order: SortOrder| {
            let f = filter.map(|f| Filter::parse(f).unwrap());
            let q = Query {
                filter: f.as_ref(),
                sort: Some((&by, order)),
                start_index: 1,
                count: 100,
                load: Load::default(),
            };
            s.query(tenant, Kind::User, &q)
                .unwrap()
                .records
                .into_iter()
                .map(|r| r.doc["externalId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(list(None, SortOrder::Ascending), ["B", "Z", "_x", "a", "a%b", "axb", "b", "é"]);
        assert_eq!(list(None, SortOrder::Descending), ["é", "b", "axb", "a%b", "a", "_x", "Z", "B"]);
        assert_eq!(list(Some(r#"externalId gt "Z""#), SortOrder::Ascending), ["_x", "a", "a%b", "axb", "b", "é"]);
        assert_eq!(list(Some(r#"externalId sw "a%""#), SortOrder::Ascending), ["a%b"], "no LIKE patterns");
        assert_eq!(list(Some(r#"externalId co "_""#), SortOrder::Ascending), ["_x"]);
        assert_eq!(list(Some(r#"externalId ew "%b""#), SortOrder::Ascending), ["a%b"]);
        assert_eq!(list(Some(r#"externalId sw "é""#), SortOrder::Ascending), ["é"]);
    }

    #[test]
    fn a_feed_reader_never_misses_an_event_of_concurrent_writers() {
        let Some(t) = TestDb::new("") else { return };
        let s = Arc::new(t.open());
        let tenant = s.create_tenant("a", &[], now()).unwrap().id;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let id = format!("w{w}u{i}");
                        s.create(tenant, Kind::User, &id, now(), &user(&id), &[]).unwrap();
                    }
                })
            })
            .collect();
        // Reads the feed as a consumer does: always after the last seq it has seen.
        let mut seen = Vec::new();
        let mut last = 0;
        while seen.len() < 160 {
            for e in s.events(tenant, last, 1000).unwrap() {
                last = e.seq;
                seen.push(e.id);
            }
            if writers.iter().all(|w| w.is_finished()) && s.events(tenant, last, 1).unwrap().is_empty() {
                break;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(seen.len(), 160, "the reader missed events that committed below a seq it had read");
    }

    #[test]
    fn the_pool_stays_within_its_cap() {
        let Some(t) = TestDb::new("") else { return };
        let s = Arc::new(t.open());
        let tenant = s.create_tenant("a", &[], now()).unwrap().id;
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let id = format!("u{i}");
                    s.create(tenant, Kind::User, &id, now(), &user(&id), &[]).unwrap();
                    s.get(tenant, Kind::User, &id, Load::default()).unwrap().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let open: i64 = t
            .client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scimd'",
                &[],
            )
            .unwrap()
            .get(0);
        assert!((1..=MAX_CONNECTIONS as i64).contains(&open), "{open} connections");
    }
}
