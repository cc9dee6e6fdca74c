//! The PostgreSQL engine: the tables, indexes and semantics of the SQLite engine, for
//! deployments with several replicas sharing one database.
//!
//! - Connections: `deadpool-postgres` over `tokio-postgres` (async; no thread of its own), at
//!   most [`MAX_CONNECTIONS`], each with a cache of prepared statements (cleared when it holds
//!   more than [`STATEMENT_CACHE`], since filters make the SQL text vary). A connection found
//!   broken is discarded with the idle ones; a read that failed on a broken connection is
//!   retried once on a fresh one.
//! - Schema: created or migrated on open inside one transaction holding an advisory lock, so
//!   replicas starting together do not race; `schema_version` holds the version.
//! - Text: every text column that is compared or sorted is `COLLATE "C"`: byte order, the same as
//!   SQLite's BINARY and the core's comparisons whatever the database's default collation is,
//!   and the indexes then serve ranges and prefixes (`starts_with`).
//! - Documents: `doc` is TEXT holding serde_json's serialization, byte for byte what SQLite
//!   stores. The server never looks inside it (each indexed value has its own column), so JSONB
//!   would only add a parse to every write and reorder the keys of what is read back.
//! - Time: BIGINT microseconds since the epoch, as in SQLite.
//! - Concurrency (READ COMMITTED): the row locks of the shared operations (`sql::ops`): a
//!   write locks its tenant `FOR KEY SHARE` (against its deletion; writers do not wait for each
//!   other there), then the resource rows it changes in one order, groups before users, each
//!   in key order (`sql::locks`; a write that finds it needs a row out of that order runs
//!   again, taking it first). A list reads in one `REPEATABLE READ READ ONLY` snapshot.
//! - The feed: a write appends its events unnumbered (`seq` NULL, invisible to readers). The
//!   [`sequencer`] of every replica, woken by its own replica's commits (and every
//!   [`SWEEP`] for what a crashed replica left), numbers the committed events of a tenant in
//!   one short transaction under that tenant's row lock: `feed_seq + 1, + 2, ...` in the order
//!   they were written. Numbers are therefore gapless and given only to committed events, and
//!   an event is readable only when every event before it is. The sequencer's transaction
//!   sends `NOTIFY scimd_feed` ("tenant:seq"); each replica LISTENs on a connection of its own
//!   and wakes its waiting readers ([`crate::FeedSignal`]). Writers never NOTIFY: PostgreSQL
//!   serializes the commits of transactions that do.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction};
use scim_core::Registry;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{IsolationLevel, NoTls, Statement};

use crate::sql::locks::{Locks, Place};
use crate::sql::ops::Context;
use crate::sql::{
    Arg, CASE_FOLDED_KEYS, CONSOLE, COUNTS, Conn, Dialect, Engine, FEED_TENANT_COLUMNS, GUARD, Lock, Mode,
    ORPHANS_REMOVED, Operation, POSTGRES, REQUESTS_INDEXES, Row, SqlError, SqlResult, Val, WEBHOOKS,
};
use crate::{FeedSignal, Limits, Result, StoreError};

/// The most connections one store keeps open.
pub const MAX_CONNECTIONS: usize = 8;
/// How long a call waits for a connection when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection before its cache is cleared.
pub const STATEMENT_CACHE: usize = 256;
/// The schema migrations, in order: `MIGRATIONS[i]` takes the database from version `i` to
/// `i + 1` (`schema_version`). Forward only; all run in one transaction under the advisory lock.
const MIGRATIONS: &[&[&str]] = &[
    &[SCHEMA],
    &[ORPHANS_REMOVED],
    &[CASE_FOLDED_KEYS],
    &[API_KEYS],
    &[FEED_TENANT_COLUMNS, FEED],
    &[WEBHOOKS],
    &[GUARD],
    &[CONSOLE, REQUESTS, REQUESTS_INDEXES],
    &[COUNTS, SORT_INDEXES],
];

/// Version 9: the indexes keyset pages sort on end in `pk` (SQLite's end in the rowid), so that
/// `(col, pk) > ($v, $pk)` is one index range however many resources share a value.
const SORT_INDEXES: &str = "
DROP INDEX resources_display;
CREATE INDEX resources_display ON resources (tenant_id, kind, display_lc, pk) WHERE display_lc IS NOT NULL;
DROP INDEX resources_employee_number;
CREATE INDEX resources_employee_number ON resources (tenant_id, kind, employee_number_lc, pk)
    WHERE employee_number_lc IS NOT NULL;
DROP INDEX resources_modified;
CREATE INDEX resources_modified ON resources (tenant_id, kind, modified, pk);
DROP INDEX resources_created;
CREATE INDEX resources_created ON resources (tenant_id, kind, created, pk);
";

/// Version 5: the change feed's events (see `sql::FEED_TENANT_COLUMNS`), numbered by the
/// sequencer: `events_unsequenced` is what it looks for.
const FEED: &str = r#"
CREATE TABLE events (
    pk BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    seq BIGINT,
    id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX events_seq ON events (tenant_id, seq);
CREATE INDEX events_unsequenced ON events (tenant_id, pk) WHERE seq IS NULL;
"#;

/// The channel the sequencers NOTIFY on.
const CHANNEL: &str = "scimd_feed";
/// How often a sequencer looks for events nobody woke it for (left by a replica that crashed
/// between its commit and its sequencer's round, or written by the command line).
pub const SWEEP: Duration = Duration::from_secs(1);
/// The most events one sequencer transaction numbers.
const SEQUENCE_BATCH: i64 = 10_000;

/// Version 8: the provisioning log (see `sql::CONSOLE`), keyed in the order requests were logged.
const REQUESTS: &str = crate::sql::requests_table!("");

/// The version of the schema this scimd writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

// Every version has its note.
const _: () = assert!(MIGRATIONS.len() == crate::MIGRATION_NOTES.len());

/// Version 4: keys of the vendor API (the admin listener), stored as digests.
const API_KEYS: &str = r#"
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    digest BYTEA NOT NULL,
    label TEXT,
    created BIGINT NOT NULL,
    revoked BIGINT
);
"#;

/// The advisory lock (two-key form) that serializes migrations: "scim", 1.
const MIGRATION_LOCK: (i32, i32) = (0x7363_696d, 1);

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
fn backend(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Backend(with_causes(e))
}

/// An error and its causes, `outer: inner: innermost` (tokio-postgres shows only its kind,
/// "error performing TLS handshake", and keeps the why in its source).
fn with_causes(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Whether an error means the connection is gone. Right after a FATAL error (the server shutting
/// down, an administrator ending the session) the client does not yet know that it is closed.
fn breaks_connection(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(d) => matches!(d.parsed_severity(), Some(Severity::Fatal | Severity::Panic)),
        None => StdError::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn sql_error(e: tokio_postgres::Error) -> SqlError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let name = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("unknown").to_owned();
        return SqlError::Unique(name);
    }
    SqlError::Store(backend(&e))
}

/// Binds an argument as the type the server inferred for its placeholder: integers as the
/// column's width, lists as arrays.
impl ToSql for Arg {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql_checked(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql_checked(ty, out),
                _ => i.to_sql_checked(ty, out),
            },
            Arg::Text(s) => s.to_sql_checked(ty, out),
            Arg::Bytes(b) => b.to_sql_checked(ty, out),
            Arg::Ints(v) => v.to_sql_checked(ty, out),
            Arg::Texts(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks the type itself (`to_sql_checked` of the value it holds).
        true
    }

    to_sql_checked!();
}

fn column(row: &tokio_postgres::Row, i: usize) -> SqlResult<Val> {
    let ty = row.columns().get(i).map(|c| c.type_().clone()).unwrap_or(Type::TEXT);
    let get_err = |e: tokio_postgres::Error| SqlError::Store(StoreError::Corrupt(format!("column {i}: {e}")));
    Ok(match ty {
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(get_err)?.map_or(Val::Null, |v| Val::Int(v.into())),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(get_err)?.map_or(Val::Null, |v| Val::Int(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(get_err)?.map_or(Val::Null, Val::Int),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(get_err)?.map_or(Val::Null, Val::Bytes),
        _ => row.try_get::<_, Option<String>>(i).map_err(get_err)?.map_or(Val::Null, Val::Text),
    })
}

/// A pooled connection, or a transaction on one.
enum Client<'a> {
    Plain(&'a Object),
    Tx(&'a Transaction<'a>),
}

/// A connection of this engine, which notes whether an error broke it and whether the
/// operation appended events.
struct PgConn<'a> {
    client: Client<'a>,
    lost: bool,
    appended: bool,
    tally: crate::sql::Tally,
    locks: Locks,
}

impl<'a> PgConn<'a> {
    fn new(client: Client<'a>, locks: Locks) -> Self {
        PgConn { client, lost: false, appended: false, tally: Default::default(), locks }
    }

    fn check<T>(&mut self, r: std::result::Result<T, tokio_postgres::Error>) -> SqlResult<T> {
        r.map_err(|e| {
            self.lost |= breaks_connection(&e);
            sql_error(e)
        })
    }

    async fn statement(&mut self, sql: &str) -> SqlResult<Statement> {
        let (cache, prepared) = match &self.client {
            Client::Plain(c) => (&c.statement_cache, c.prepare_cached(sql).await),
            Client::Tx(t) => (&t.statement_cache, t.prepare_cached(sql).await),
        };
        if cache.size() > STATEMENT_CACHE {
            cache.clear();
        }
        self.check(prepared)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg]) -> SqlResult<Vec<tokio_postgres::Row>> {
        let stmt = self.statement(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let r = match &self.client {
            Client::Plain(c) => c.query(&stmt, &params).await,
            Client::Tx(t) => t.query(&stmt, &params).await,
        };
        self.check(r)
    }
}

impl Conn for PgConn<'_> {
    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }

    fn appended(&mut self, _tenant: i64, _seq: i64) {
        self.appended = true;
    }

    fn tally(&mut self) -> &mut crate::sql::Tally {
        &mut self.tally
    }

    fn locks(&mut self) -> Option<&mut Locks> {
        Some(&mut self.locks)
    }

    async fn query(&mut self, sql: &str, args: &[Arg]) -> SqlResult<Vec<Row>> {
        let rows = self.rows(sql, args).await?;
        rows.iter().map(|r| Ok(Row((0..r.len()).map(|i| column(r, i)).collect::<SqlResult<_>>()?))).collect()
    }

    async fn exec(&mut self, sql: &str, args: &[Arg]) -> SqlResult<u64> {
        let stmt = self.statement(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let r = match &self.client {
            Client::Plain(c) => c.execute(&stmt, &params).await,
            Client::Tx(t) => t.execute(&stmt, &params).await,
        };
        self.check(r)
    }
}

/// The PostgreSQL store. Dropping it stops its sequencer and listener.
pub struct PgStore {
    inner: Arc<PgInner>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the store's calls and its background tasks share.
struct PgInner {
    pool: Pool,
    ctx: Context,
    signal: FeedSignal,
    /// Wakes the sequencer: this replica committed events.
    wake: Notify,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST[:PORT]/DB[?options]`), creating and
    /// migrating the schema as needed.
    pub async fn open(url: &str, limits: Limits, registry: Arc<Registry>) -> Result<Self> {
        let (inner, mut listen_config, tls) = PgInner::connect(url, limits, registry)?;
        listen_config.application_name("scimd-feed");
        inner.migrate().await?;
        let inner = Arc::new(inner);
        let tasks = vec![
            tokio::spawn(sequencer(Arc::clone(&inner))),
            tokio::spawn(listener(listen_config, tls, Arc::clone(&inner))),
        ];
        Ok(PgStore { inner, tasks })
    }
}

impl PgStore {
    /// Connects to `url` for reading (the source of `scimd store copy`): nothing is created
    /// or migrated, and no sequencer or listener runs (a read of the feed still numbers the
    /// committed events it finds unnumbered, a write).
    pub async fn open_read_only(url: &str, limits: Limits, registry: Arc<Registry>) -> Result<Self> {
        let (inner, _, _) = PgInner::connect(url, limits, registry)?;
        // Connect now: a wrong URL or password fails here, not at the first read.
        drop(inner.client().await?);
        Ok(PgStore { inner: Arc::new(inner), tasks: Vec::new() })
    }
}

impl PgInner {
    /// The pool for `url` (no connection is made yet), and the configuration and TLS it connects
    /// with.
    fn connect(url: &str, limits: Limits, registry: Arc<Registry>) -> Result<(Self, tokio_postgres::Config, Tls)> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {e}; use postgres://USER:PASSWORD@HOST/DB"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("scimd");
        }
        let tls = tls_for(&config)?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Tls::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
            Tls::Rustls(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(MAX_CONNECTIONS)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the PostgreSQL pool: {e}")))?;
        let inner =
            PgInner { pool, ctx: Context::new(limits, registry), signal: FeedSignal::default(), wake: Notify::new() };
        Ok((inner, config, tls))
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {}", with_causes(&e))))
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| backend(&e))?;
        // Replicas starting together wait here for the first one's migration.
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1])
            .await
            .map_err(|e| backend(&e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .await
            .map_err(|e| backend(&e))?;
        let version: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_version", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| backend(&e))?;
        let version = version.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the database has schema version {version}, newer than this scimd ({SCHEMA_VERSION}); upgrade scimd"
            )));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
            for sql in *step {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| StoreError::Backend(format!("migrating the schema to version {}: {e}", i + 1)))?;
            }
        }
        if version < SCHEMA_VERSION {
            tx.execute("DELETE FROM schema_version", &[]).await.map_err(|e| backend(&e))?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&SCHEMA_VERSION])
                .await
                .map_err(|e| backend(&e))?;
        }
        tx.commit().await.map_err(|e| backend(&e))
    }

    /// Runs `op` once on a pooled connection, in the transaction its mode needs, with the
    /// resource rows `locks` says to take first. Says too whether the connection broke (a
    /// broken one is not given back to the pool) and, when a write failed for needing rows out
    /// of the lock order, what to take first when it runs again. Wakes the sequencer when a
    /// write that appended events committed.
    async fn attempt<O: Operation>(&self, op: &O, locks: Locks) -> (Result<O::Output>, bool, Option<Vec<Place>>) {
        let mut client = match self.client().await {
            Ok(c) => c,
            Err(e) => return (Err(e), false, None),
        };
        let mut again = None;
        let (out, lost) = match O::MODE {
            Mode::Point => {
                let mut conn = PgConn::new(Client::Plain(&client), locks);
                let out = op.run(&mut conn, &self.ctx).await;
                (out, conn.lost)
            }
            Mode::Snapshot | Mode::Write => {
                let builder = client.build_transaction();
                let builder = if O::MODE == Mode::Snapshot {
                    builder.isolation_level(IsolationLevel::RepeatableRead).read_only(true)
                } else {
                    builder
                };
                match builder.start().await {
                    Err(e) => (Err(backend(&e)), breaks_connection(&e)),
                    Ok(tx) => {
                        let mut conn = PgConn::new(Client::Tx(&tx), locks);
                        // A write's counters are applied last (`paging::flush_counts`).
                        let out = crate::sql::paging::run(op, &mut conn, &self.ctx).await;
                        let (lost, appended) = (conn.lost, conn.appended);
                        if out.is_err() {
                            again = conn.locks.again();
                        }
                        match out {
                            Ok(v) => match tx.commit().await {
                                Ok(()) => {
                                    if appended {
                                        self.wake.notify_one();
                                    }
                                    (Ok(v), lost)
                                }
                                Err(e) => (Err(backend(&e)), lost || breaks_connection(&e)),
                            },
                            Err(e) => {
                                let rolled_back = tx.rollback().await;
                                (Err(e), lost || rolled_back.is_err())
                            }
                        }
                    }
                }
            }
        };
        let lost = lost || client.is_closed();
        if lost {
            drop(Object::take(client));
        }
        (out, lost, again)
    }
}

impl Engine for PgStore {
    const NAME: &'static str = "postgres";

    async fn execute<O: Operation>(&self, op: O) -> Result<O::Output> {
        self.inner.execute(op).await
    }

    fn signal(&self) -> &FeedSignal {
        &self.inner.signal
    }

    async fn settle(&self, tenant: i64) -> Result<()> {
        if self.inner.execute(Pending { tenant }).await? {
            if let Some(position) = self.inner.execute(Sequence { tenant }).await? {
                self.inner.signal.advance(tenant, position);
            }
        }
        Ok(())
    }

    fn report_gauges(&self) {
        crate::measure::pool(self.inner.pool.status());
    }
}

impl Engine for PgInner {
    const NAME: &'static str = "postgres";

    fn signal(&self) -> &FeedSignal {
        &self.signal
    }

    async fn execute<O: Operation>(&self, op: O) -> Result<O::Output> {
        let mut attempt = 1;
        let mut first = Vec::new();
        loop {
            return match self.attempt(&op, Locks::new(first, attempt)).await {
                // The connection broke (the server restarted, an administrator ended the
                // session): the idle ones are likely gone too, so none is trusted. A read is
                // retried once on a fresh connection; a write is not, as it may have committed.
                (Err(e), true, _) => {
                    self.pool.retain(|_, _| false);
                    if O::MODE == Mode::Write { Err(e) } else { self.attempt(&op, Locks::default()).await.0 }
                }
                // The write needs rows out of the lock order (`sql::locks`) and was rolled
                // back: again, taking them first.
                (Err(_), false, Some(again)) => {
                    tracing::debug!(attempt, rows = again.len(), "a write runs again to lock its rows in order");
                    attempt += 1;
                    first = again;
                    continue;
                }
                (out, _, _) => out,
            };
        }
    }
}

// ---------------------------------------------------------------- the feed's sequencer

/// The tenants with committed events that have no number yet.
struct Unsequenced;

impl Operation for Unsequenced {
    type Output = Vec<i64>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<i64>> {
        let rows = c.query("SELECT DISTINCT tenant_id FROM events WHERE seq IS NULL", &[]).await?;
        rows.iter().map(|r| r.int(0)).collect()
    }
}

/// Whether a tenant has committed events without a number (an index look-up).
struct Pending {
    tenant: i64,
}

impl Operation for Pending {
    type Output = bool;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let sql = "SELECT 1 FROM events WHERE tenant_id = $1 AND seq IS NULL LIMIT 1";
        Ok(c.opt(sql, &[Arg::Int(self.tenant)]).await?.is_some())
    }
}

/// Numbers a tenant's committed, unnumbered events, in the order they were written, under
/// the tenant's row lock (one sequencer at a time per tenant, whatever the replica); returns
/// the feed's new position, if it numbered any. The lock is taken by the first statement and
/// the numbering statement runs after it, so it sees what the previous holder numbered.
struct Sequence {
    tenant: i64,
}

impl Operation for Sequence {
    type Output = Option<i64>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<i64>> {
        let t = Arg::Int(self.tenant);
        let sql = format!("SELECT feed_seq FROM tenants WHERE id = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
        let Some(row) = c.opt(&sql, std::slice::from_ref(&t)).await? else {
            // The tenant is gone (its deletion removes its events; these would be orphans).
            c.exec("DELETE FROM events WHERE tenant_id = $1 AND seq IS NULL", &[t]).await?;
            return Ok(None);
        };
        let head = row.int(0)?;
        let n = c
            .exec(
                "UPDATE events SET seq = CAST($2 AS BIGINT) + p.n FROM (
                     SELECT pk, row_number() OVER (ORDER BY pk) AS n FROM events
                     WHERE tenant_id = $1 AND seq IS NULL ORDER BY pk LIMIT $3
                 ) p WHERE events.pk = p.pk AND events.seq IS NULL",
                &[t.clone(), Arg::Int(head), Arg::Int(SEQUENCE_BATCH)],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let position = head + i64::try_from(n).unwrap_or(i64::MAX);
        c.exec("UPDATE tenants SET feed_seq = $2 WHERE id = $1", &[t.clone(), Arg::Int(position)]).await?;
        // The guard counts the deactivations and deletions just numbered, in order.
        let sql = "SELECT seq, at FROM events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3
                   AND type IN ('user.deactivated', 'user.deleted') ORDER BY seq";
        for r in c.query(sql, &[t, Arg::Int(head), Arg::Int(position)]).await? {
            crate::sql::ops::guard_note(c, self.tenant, r.int(0)?, r.int(1)?).await?;
        }
        let payload = format!("{}:{position}", self.tenant);
        c.exec("SELECT pg_notify($1, $2)", &[Arg::Text(CHANNEL.into()), Arg::Text(payload)]).await?;
        Ok(Some(position))
    }
}

impl PgInner {
    /// Numbers every committed event that has no number yet.
    async fn sequence_all(&self) -> Result<()> {
        loop {
            let tenants = self.execute(Unsequenced).await?;
            let mut numbered = false;
            for tenant in tenants {
                if let Some(position) = self.execute(Sequence { tenant }).await? {
                    self.signal.advance(tenant, position);
                    numbered = true;
                }
            }
            if !numbered {
                return Ok(());
            }
        }
    }
}

/// The sequencer of this replica: runs when woken by a commit, and every [`SWEEP`].
async fn sequencer(inner: Arc<PgInner>) {
    loop {
        let _ = tokio::time::timeout(SWEEP, inner.wake.notified()).await;
        if let Err(e) = inner.sequence_all().await {
            tracing::warn!(error = %e, "numbering the change feed failed; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The schema version of the PostgreSQL database `url` names (0: none yet), read without
/// migrating anything.
pub async fn schema_version(url: &str) -> Result<i64> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::Backend(format!("invalid PostgreSQL URL: {e}; use postgres://USER:PASSWORD@HOST/DB"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, driver) = connect_once(&config).await?;
    let result = async {
        let row = client.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[]).await?;
        if !row.try_get::<_, bool>(0)? {
            return Ok(0);
        }
        let row = client.query_one("SELECT max(version) FROM schema_version", &[]).await?;
        Ok(i64::from(row.try_get::<_, Option<i32>>(0)?.unwrap_or(0)))
    }
    .await
    .map_err(|e: tokio_postgres::Error| backend(&e));
    drop(client);
    driver.abort();
    result
}

/// LISTENs for the sequencers' notifications (this replica's and the others') on a
/// connection of its own, and wakes the feeds' waiters; reconnects when the connection is lost
/// (waking every waiter, as advances may have been missed meanwhile).
async fn listener(config: tokio_postgres::Config, tls: Tls, inner: Arc<PgInner>) {
    loop {
        match &tls {
            Tls::Plain => listen_once(&config, NoTls, &inner).await,
            Tls::Rustls(t) => listen_once(&config, t.clone(), &inner).await,
        }
        inner.signal.wake_all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection of the listener, until it is lost.
async fn listen_once<T>(config: &tokio_postgres::Config, tls: T, inner: &PgInner)
where
    T: MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send,
{
    match config.connect(tls).await {
        Ok((client, mut connection)) => {
            let driver = async {
                while let Some(msg) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    match msg {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            let parsed =
                                n.payload().split_once(':').and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)));
                            if let Some((tenant, seq)) = parsed {
                                inner.signal.advance(tenant, seq);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "the change feed's listener lost its connection");
                            break;
                        }
                    }
                }
            };
            let listen = async {
                client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
                inner.signal.wake_all();
                std::future::pending::<std::result::Result<(), tokio_postgres::Error>>().await
            };
            tokio::select! {
                () = driver => {}
                r = listen => if let Err(e) = r {
                    tracing::warn!(error = %e, "the change feed's listener could not LISTEN");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "the change feed's listener cannot connect"),
    }
}

/// How scimd reaches the server: in the clear, or with TLS when the URL says
/// `sslmode=require`.
#[derive(Clone)]
enum Tls {
    Plain,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The TLS a URL asks for. `sslmode=require`: TLS 1.2 or 1.3 (rustls), the server's
/// certificate verified against the system's roots and the certificates in the file
/// `PGSSLROOTCERT` names (libpq's variable; a managed database's CA), and its name against
/// the host (stricter than libpq's `require`, which checks nothing without a root file: scimd
/// never sends a password to a server it has not verified). `prefer` (the default) and
/// `disable` connect without TLS.
fn tls_for(config: &tokio_postgres::Config) -> Result<Tls> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return Ok(Tls::Plain);
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").filter(|p| !p.is_empty()) {
        let shown = std::path::Path::new(&path).display().to_string();
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| StoreError::Backend(format!("PGSSLROOTCERT {shown}: {e}")))?;
        if certs.is_empty() {
            return Err(StoreError::Backend(format!("PGSSLROOTCERT {shown}: no PEM certificate in it")));
        }
        let (_, refused) = roots.add_parsable_certificates(certs);
        if refused > 0 {
            return Err(StoreError::Backend(format!("PGSSLROOTCERT {shown}: {refused} certificate(s) cannot be used")));
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Backend(
            "sslmode=require, but there is no root certificate to verify the server with: set PGSSLROOTCERT".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StoreError::Backend(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

/// One connection outside the pool (its driver spawned), with the URL's TLS.
async fn connect_once(config: &tokio_postgres::Config) -> Result<(tokio_postgres::Client, JoinHandle<()>)> {
    async fn with<T>(config: &tokio_postgres::Config, tls: T) -> Result<(tokio_postgres::Client, JoinHandle<()>)>
    where
        T: MakeTlsConnect<tokio_postgres::Socket>,
        T::Stream: Send + 'static,
    {
        let (client, connection) = config.connect(tls).await.map_err(|e| backend(&e))?;
        Ok((client, tokio::spawn(async move { drop(connection.await) })))
    }
    match tls_for(config)? {
        Tls::Plain => with(config, NoTls).await,
        Tls::Rustls(t) => with(config, t).await,
    }
}
