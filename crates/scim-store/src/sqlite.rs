//! The embedded SQLite engine (the default): one writer thread that group-commits, and a few
//! reader connections, in WAL mode.
//!
//! Threading is this engine's business: reads run on a blocking thread (a point read runs on
//! the caller's thread when a reader connection is free at once: it takes microseconds, and
//! the caller never waits on a lock another request holds); writes are queued to the writer
//! thread, which runs every queued write in one transaction, each in a savepoint of its own (a
//! write that fails or panics is rolled back alone), commits once and only then answers each
//! caller with its own typed result. A failed commit fails every write of the batch.
//!
//! rusqlite is synchronous, so the futures of this engine's [`Conn`] never wait: the threads
//! poll them once, to completion.
//!
//! Durability: WAL with `synchronous = NORMAL`. A commit is in the WAL file before the client
//! gets its answer, so it survives a crash of the process (`kill -9`); an OS crash or power loss
//! may lose the last transactions before a checkpoint, as SQLite documents for this mode.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Context as TaskContext, Poll, Waker};

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};
use scim_core::Registry;
use tokio::sync::oneshot;

use crate::sql::ops::Context;
use crate::sql::{
    Arg, CASE_FOLDED_KEYS, CONSOLE, COUNTS, Conn, Dialect, Engine, FEED_TENANT_COLUMNS, GUARD, Mode, ORPHANS_REMOVED,
    Operation, REQUESTS_INDEXES, Row, SQLITE, SqlError, SqlResult, Val, WEBHOOKS,
};
use crate::{FeedSignal, Limits, Result, StoreError};

const READERS: usize = 4;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;
/// The least time between two checkpoints of the checkpoint thread while writes go on.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// The WAL size (pages) at which the writer itself finishes a checkpoint, so that its next
/// transaction can start the WAL over (SQLite's default).
const WRITER_CHECKPOINT_PAGES: i64 = 1000;
/// The size the WAL file is cut back to when it starts over after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// The most writes one group commit takes.
const MAX_BATCH: usize = 512;

/// The schema migrations, in order: the statements of `MIGRATIONS[i]` take a database from
/// version `i` to `i + 1` (`PRAGMA user_version`). Forward only; each step runs in its own
/// transaction. Steps both engines share are in `sql`.
const MIGRATIONS: &[&[&str]] = &[
    &[SCHEMA_V1],
    &[TENANT_IDS_NEVER_REUSED, ORPHANS_REMOVED],
    &[CASE_FOLDED_KEYS],
    &[API_KEYS],
    &[FEED_TENANT_COLUMNS, FEED],
    &[WEBHOOKS],
    &[GUARD],
    &[CONSOLE, REQUESTS, REQUESTS_INDEXES],
    &[COUNTS],
];

/// Version 8: the provisioning log (see `sql::CONSOLE`), keyed in the order requests were logged.
const REQUESTS: &str = crate::sql::requests_table!(" WITHOUT ROWID");

/// The version this scimd writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

// Every version has its note.
const _: () = assert!(MIGRATIONS.len() == crate::MIGRATION_NOTES.len());

/// Version 5: the change feed's events (see `sql::FEED_TENANT_COLUMNS`). `seq` is given by
/// the write itself (one writer).
const FEED: &str = "
CREATE TABLE events (
    pk INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    seq INTEGER,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX events_seq ON events(tenant_id, seq);
";

/// Version 4: keys of the vendor API (the admin listener), stored as digests.
const API_KEYS: &str = "
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    digest BLOB NOT NULL,
    label TEXT,
    created INTEGER NOT NULL,
    revoked INTEGER
);
";

/// Version 2: tenant ids are never reused (`AUTOINCREMENT`, starting above every id any row
/// still names), and rows of tenants deleted before writes checked their tenant are removed.
/// A reused id gave a new tenant the users of a deleted one.
const TENANT_IDS_NEVER_REUSED: &str = "
CREATE TABLE tenants_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    required TEXT NOT NULL,
    created INTEGER NOT NULL
);
INSERT INTO tenants_v2 (id, name, required, created) SELECT id, name, required, created FROM tenants;
DELETE FROM sqlite_sequence WHERE name = 'tenants_v2';
INSERT INTO sqlite_sequence (name, seq) SELECT 'tenants_v2', coalesce(max(m), 0) FROM (
    SELECT max(id) AS m FROM tenants UNION ALL SELECT max(tenant_id) FROM tokens
    UNION ALL SELECT max(tenant_id) FROM resources UNION ALL SELECT max(tenant_id) FROM events
);
DROP TABLE tenants;
ALTER TABLE tenants_v2 RENAME TO tenants;
";

/// Version 1: the first schema.
const SCHEMA_V1: &str = "
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    required TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    digest BLOB NOT NULL,
    label TEXT,
    created INTEGER NOT NULL,
    expires INTEGER,
    revoked INTEGER
);
CREATE INDEX tokens_tenant ON tokens(tenant_id);
CREATE TABLE resources (
    pk INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    id TEXT NOT NULL,
    name_lc TEXT NOT NULL,
    display TEXT,
    display_lc TEXT,
    external_id TEXT,
    employee_number_lc TEXT,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX resources_id ON resources(tenant_id, id);
CREATE UNIQUE INDEX resources_name ON resources(tenant_id, kind, name_lc);
CREATE UNIQUE INDEX resources_external_id ON resources(tenant_id, kind, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX resources_display ON resources(tenant_id, kind, display_lc) WHERE display_lc IS NOT NULL;
CREATE INDEX resources_employee_number ON resources(tenant_id, kind, employee_number_lc) WHERE employee_number_lc IS NOT NULL;
CREATE INDEX resources_kind ON resources(tenant_id, kind);
CREATE INDEX resources_modified ON resources(tenant_id, kind, modified);
CREATE INDEX resources_created ON resources(tenant_id, kind, created);
CREATE TABLE emails (
    resource_pk INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL,
    value_lc TEXT NOT NULL,
    type_lc TEXT
);
CREATE INDEX emails_value ON emails(tenant_id, value_lc);
CREATE INDEX emails_resource ON emails(resource_pk);
CREATE TABLE members (
    group_pk INTEGER NOT NULL,
    member_pk INTEGER NOT NULL,
    display TEXT,
    PRIMARY KEY (group_pk, member_pk)
) WITHOUT ROWID;
CREATE INDEX members_member ON members(member_pk);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    resource_id TEXT NOT NULL,
    change TEXT NOT NULL,
    version INTEGER,
    at INTEGER NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, seq);
";

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn sql_error(e: rusqlite::Error) -> SqlError {
    let msg = e.to_string();
    match msg.strip_prefix("UNIQUE constraint failed: ") {
        Some(what) => SqlError::Unique(what.to_owned()),
        None => SqlError::Store(db(e)),
    }
}

/// Runs a statement of transaction control (`BEGIN`, `SAVEPOINT`, `COMMIT`, ...) from the
/// connection's statement cache: the writer runs a few for every write, and parsing them anew
/// each time was a visible share of its time.
fn control(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(db)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
    // Every statement the store runs stays prepared (the default keeps 16, fewer than a
    // create runs).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // One plan per statement, whatever its parameters' values: without this SQLite plans some
    // statements again whenever a parameter changes (here the page of every look-up, 19% of
    // the CPU of a look-up, all of it in SQLite's parser), where the plan does not depend on it.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(db)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")
        .map_err(db)
}

/// Brings the schema to [`SCHEMA_VERSION`], one step per transaction (a process opening the
/// same file at the same moment waits, then finds the step done); refuses a database of a
/// newer scimd.
fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the database has schema version {version}, newer than this scimd ({SCHEMA_VERSION}); upgrade scimd"
            )));
        }
        let Some(step) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else { return Ok(()) };
        let next = version + 1;
        for sql in *step {
            tx.execute_batch(sql)
                .map_err(|e| StoreError::Backend(format!("migrating the schema to version {next}: {e}")))?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {next}")).map_err(db)?;
        tx.commit().map_err(db)?;
    }
}

/// The statement text with `$N` placeholders spelled `?N`, as SQLite numbers them. The store's
/// SQL has no `$` anywhere else (values are bound, never spliced).
fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The SQLite value of an argument; lists are bound as JSON arrays, read back by `json_each`.
fn bind(arg: &Arg) -> Result<SqlValue> {
    let json = |r: serde_json::Result<String>| r.map(SqlValue::Text).map_err(|e| StoreError::Backend(e.to_string()));
    Ok(match arg {
        Arg::Null => SqlValue::Null,
        Arg::Int(i) => SqlValue::Integer(*i),
        Arg::Text(s) => SqlValue::Text(s.clone()),
        Arg::Bytes(b) => SqlValue::Blob(b.clone()),
        Arg::Ints(v) => json(serde_json::to_string(v))?,
        Arg::Texts(v) => json(serde_json::to_string(v))?,
    })
}

fn column(v: ValueRef<'_>) -> Result<Val> {
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Real(f) => return Err(StoreError::Corrupt(format!("unexpected real number {f} in a column"))),
        ValueRef::Text(t) => Val::Text(
            std::str::from_utf8(t)
                .map_err(|e| StoreError::Corrupt(format!("a text column is not UTF-8: {e}")))?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
    })
}

/// The events a write appended: (tenant, seq).
type Appended = Vec<(i64, i64)>;

/// A connection of this engine (the writer inside its transaction, or a reader), with the
/// events the operation running on it appended.
struct SqliteConn<'a>(&'a mut Connection, Appended, crate::sql::paging::Tally);

impl SqliteConn<'_> {
    fn run(&mut self, sql: &str, args: &[Arg]) -> SqlResult<Vec<Row>> {
        let values = args.iter().map(bind).collect::<Result<Vec<_>>>()?;
        let mut stmt = self.0.prepare_cached(&sqlite_placeholders(sql)).map_err(sql_error)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(sql_error)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let mut cols = Vec::with_capacity(width);
            for i in 0..width {
                cols.push(column(r.get_ref(i).map_err(sql_error)?)?);
            }
            out.push(Row(cols));
        }
        drop(rows);
        #[cfg(test)]
        count_reprepares(&stmt);
        Ok(out)
    }
}

/// Statements SQLite planned again after their first plan, in this process (test builds only:
/// read by a test, kept off the path of every statement otherwise).
#[cfg(test)]
static REPREPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Adds the times `stmt` was planned again since it was last looked at to [`REPREPARED`].
#[cfg(test)]
fn count_reprepares(stmt: &rusqlite::Statement<'_>) {
    let n = stmt.reset_status(rusqlite::StatementStatus::RePrepare);
    if n > 0 {
        REPREPARED.fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
    }
}

impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }

    fn appended(&mut self, tenant: i64, seq: i64) {
        self.1.push((tenant, seq));
    }

    fn tally(&mut self) -> &mut crate::sql::paging::Tally {
        &mut self.2
    }

    fn query(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = SqlResult<Vec<Row>>> + Send {
        std::future::ready(self.run(sql, args))
    }

    fn exec(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = SqlResult<u64>> + Send {
        let r = (|| {
            let values = args.iter().map(bind).collect::<Result<Vec<_>>>()?;
            let mut stmt = self.0.prepare_cached(&sqlite_placeholders(sql)).map_err(sql_error)?;
            let n = stmt.execute(rusqlite::params_from_iter(values)).map_err(sql_error)?;
            #[cfg(test)]
            count_reprepares(&stmt);
            Ok(n as u64)
        })();
        std::future::ready(r)
    }
}

/// Runs an operation on a connection of this engine: its futures complete without waiting.
/// Returns the events it appended too.
fn run_now<O: Operation>(op: &O, conn: &mut Connection, ctx: &Context) -> (Result<O::Output>, Appended) {
    let mut c = SqliteConn(conn, Vec::new(), Default::default());
    let out = {
        let mut fut = std::pin::pin!(crate::sql::paging::run(op, &mut c, ctx));
        match fut.as_mut().poll(&mut TaskContext::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(StoreError::Backend("a SQLite operation waited, which it never does".into())),
        }
    };
    (out, c.1)
}

/// What the writer thread runs for one write: the write itself, which says whether it
/// succeeded (with the events it appended) and hands back how to answer its caller once the
/// batch's commit is known.
type Job = Box<dyn FnOnce(&mut Connection, &Context) -> (Option<Appended>, Answer) + Send>;
/// Answers a caller with the outcome of the commit (`Ok` if it committed).
type Answer = Box<dyn FnOnce(Result<()>) + Send>;

struct Inner {
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    ctx: Context,
}

impl Inner {
    /// A free reader connection, if one is free right now.
    fn try_reader(&self) -> Option<MutexGuard<'_, Connection>> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        (0..self.readers.len()).find_map(|i| self.readers[(start + i) % self.readers.len()].try_lock().ok())
    }

    /// A reader connection, waiting for one if all are busy (on a blocking thread only).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.try_reader()
            .unwrap_or_else(|| lock(&self.readers[self.next_reader.load(Ordering::Relaxed) % self.readers.len()]))
    }

    fn read<O: Operation>(&self, op: &O, conn: &mut Connection) -> Result<O::Output> {
        if O::MODE != Mode::Snapshot {
            return run_now(op, conn, &self.ctx).0;
        }
        // One read transaction: the count and the page see the same snapshot.
        control(conn, "BEGIN")?;
        let out = run_now(op, conn, &self.ctx).0;
        control(conn, "COMMIT")?;
        out
    }
}

/// The SQLite store.
pub struct SqliteStore {
    inner: Arc<Inner>,
    writer: Mutex<mpsc::Sender<Job>>,
    /// The writes sent to the writer thread that it has not taken into a batch yet.
    queued: Arc<AtomicUsize>,
    signal: Arc<FeedSignal>,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating and migrating it as needed, and starts its
    /// writer thread.
    pub fn open(path: &str, limits: Limits, registry: Arc<Registry>) -> Result<Self> {
        if path.is_empty() {
            return Err(StoreError::Backend("sqlite:// needs a file path, e.g. sqlite://scimd.db".into()));
        }
        let p = Path::new(path);
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let open = || -> Result<Connection> {
            let c = Connection::open(p).map_err(|e| StoreError::Backend(format!("{path}: {e}")))?;
            configure(&c)?;
            Ok(c)
        };
        let mut writer = open()?;
        migrate(&mut writer)?;
        optimize(&writer);
        // The checkpoint thread copies the WAL as it grows; the writer's own checkpoint (past
        // WRITER_CHECKPOINT_PAGES) is left with the last commits only.
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))
            .map_err(db)?;
        let checkpointer = open()?;
        let readers = (0..READERS).map(|_| open().map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        let ctx = Context::new(limits, registry);
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_ctx = ctx.clone();
        let signal = Arc::new(FeedSignal::default());
        let writer_signal = Arc::clone(&signal);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = Arc::clone(&queued);
        let (wal_written, wal_rx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("scimd-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &wal_rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        std::thread::Builder::new()
            .name("scimd-sqlite-writer".into())
            .spawn(move || write_loop(writer, &rx, &writer_queued, &writer_ctx, &writer_signal, &wal_written))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner { readers, next_reader: AtomicUsize::new(0), ctx }),
            writer: Mutex::new(tx),
            queued,
            signal,
        })
    }

    async fn write<O: Operation>(&self, op: O) -> Result<O::Output> {
        let (reply, answer) = oneshot::channel::<Result<O::Output>>();
        let job: Job = Box::new(move |conn, ctx| {
            let (out, appended) = run_now(&op, conn, ctx);
            let ok = out.is_ok().then_some(appended);
            (ok, Box::new(move |commit: Result<()>| drop(reply.send(commit.and(out)))))
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        if lock(&self.writer).send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Backend("the SQLite writer thread has stopped".into()));
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Backend("the write failed inside the SQLite writer".into())))
    }

    async fn read<O: Operation>(&self, op: O) -> Result<O::Output> {
        if op.quick() {
            if let Some(mut conn) = self.inner.try_reader() {
                return self.inner.read(&op, &mut conn);
            }
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.read(&op, &mut inner.reader()))
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("a SQLite read failed: {e}"))))
    }
}

impl Engine for SqliteStore {
    const NAME: &'static str = "sqlite";

    async fn execute<O: Operation>(&self, op: O) -> Result<O::Output> {
        if O::MODE == Mode::Write { self.write(op).await } else { self.read(op).await }
    }

    fn signal(&self) -> &FeedSignal {
        &self.signal
    }

    fn report_gauges(&self) {
        crate::measure::writer_queue(self.queued.load(Ordering::Relaxed));
    }
}

impl SqliteStore {
    /// Opens the database file at `path` for reading only (`SQLITE_OPEN_READ_ONLY`, as
    /// [`schema_version`] and [`backup`] do; `immutable` in a directory it cannot write, when
    /// no process has the database open): nothing is created or migrated, no writer thread
    /// runs and every write fails, so the file may be one this process cannot write (the source
    /// of `scimd store copy`). Reads run on the reader connections as usual.
    pub fn open_read_only(path: &str, limits: Limits, registry: Arc<Registry>) -> Result<Self> {
        let readers =
            (0..READERS).map(|_| open_read_only_connection(path).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        // No writer: the receiver is gone, so a write fails at once.
        let (writer, _) = mpsc::channel::<Job>();
        Ok(SqliteStore {
            inner: Arc::new(Inner { readers, next_reader: AtomicUsize::new(0), ctx: Context::new(limits, registry) }),
            writer: Mutex::new(writer),
            queued: Arc::default(),
            signal: Arc::default(),
        })
    }
}

/// The schema version of the SQLite database at `path` (0: no file, or no schema yet), read
/// without migrating anything.
pub fn schema_version(path: &str) -> Result<i64> {
    if !Path::new(path).exists() {
        return Ok(0);
    }
    let c = open_read_only_connection(path)?;
    c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)
}

/// A read-only connection to the database at `path` (`SQLITE_OPEN_READ_ONLY`). In WAL mode a
/// reader needs the `-shm` file, which it cannot make in a directory it may not write: when
/// there is no `-wal` file either (no process has the database open, or ever will without
/// writing to the directory), the file is opened `immutable` instead, which needs neither.
fn open_read_only_connection(path: &str) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let err = |e: rusqlite::Error| StoreError::Backend(format!("{path}: {e}"));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags).map_err(err)?;
    c.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
    let readable = c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0));
    match readable {
        Ok(_) => Ok(c),
        Err(e) if !Path::new(&format!("{path}-wal")).exists() => {
            drop(c);
            let first = e.to_string();
            let err = |_| StoreError::Backend(format!("{path}: {first}"));
            // A URI names the file: its path percent-encoded but for the unreserved bytes and `/`.
            let mut uri = String::from("file:");
            for b in path.bytes() {
                if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                    uri.push(char::from(b));
                } else {
                    uri.push_str(&format!("%{b:02X}"));
                }
            }
            uri.push_str("?immutable=1");
            let c = Connection::open_with_flags(&uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(err)?;
            c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)).map_err(err)?;
            Ok(c)
        }
        Err(e) => Err(err(e)),
    }
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// Database pages copied.
    pub pages: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Copies the SQLite database at `path` to the new file `to` with SQLite's online backup API,
/// while other processes may be reading and writing it: every page is copied in one step, in
/// one read transaction, so the copy is the database as of one commit (in WAL mode the
/// writers do not wait for it). The copy is written next to `to`, checked with
/// `PRAGMA quick_check`, synced, and renamed into place; `to` must not exist.
pub fn backup(path: &str, to: &Path) -> Result<BackupReport> {
    use rusqlite::OpenFlags;
    use rusqlite::backup::{Backup, StepResult};
    let err = |what: &str, e: &dyn std::fmt::Display| StoreError::Backend(format!("backup: {what}: {e}"));
    if to.exists() {
        return Err(StoreError::Backend(format!("backup: {} exists already; choose a new file", to.display())));
    }
    let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| err(path, &e))?;
    src.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
    let tmp = to.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut dst = Connection::open(&tmp).map_err(|e| err(&tmp.display().to_string(), &e))?;
        {
            let b = Backup::new(&src, &mut dst).map_err(db)?;
            loop {
                match b.step(-1).map_err(db)? {
                    StepResult::Done => break,
                    _ => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
            }
        }
        let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(db)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!("backup: the copy fails its check: {check}")));
        }
        let pages: i64 = dst.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(db)?;
        dst.close().map_err(|(_, e)| db(e))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| err("sync", &e))?;
        std::fs::rename(&tmp, to).map_err(|e| err(&to.display().to_string(), &e))?;
        let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport { pages: u64::try_from(pages).unwrap_or(0), bytes })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How often the writer refreshes the query planner's statistics (`PRAGMA optimize`), while it
/// writes.
const OPTIMIZE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Refreshes the query planner's statistics where the tables changed much since they were last
/// gathered (and gathers them where they never were), each within SQLite's own analysis limit.
/// Without them SQLite takes `tenant_id = ? AND kind = ?` for a selective condition and scans a
/// tenant of a million users for a filter whose `or` terms are each an index look-up.
fn optimize(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA optimize = 0x10002") {
        tracing::warn!(error = %e, "SQLite: could not refresh the query planner's statistics");
    }
}

/// The checkpoint thread: after commits (told by the writer, at most every
/// [`CHECKPOINT_EVERY`]), copies what the WAL holds into the database file with a `PASSIVE`
/// checkpoint, which waits for no reader and no writer. Only a writer starts the WAL over (at
/// the beginning of a transaction, when every frame is copied and nothing reads it), and under
/// steady writes this thread's checkpoint never ends with every frame copied (the writer
/// commits meanwhile): so the writer keeps SQLite's automatic checkpoint past
/// [`WRITER_CHECKPOINT_PAGES`], which then copies only what came since this thread's last one
/// instead of the whole WAL (a write queued behind that commit waited for all of it). Without
/// the writer's own checkpoint the WAL grew by every page written: 18 GB in five minutes of
/// initial-sync. Ends when the writer does.
fn checkpoint_loop(conn: &Connection, written: &mpsc::Receiver<()>) {
    while written.recv().is_ok() {
        let started = std::time::Instant::now();
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            Ok((frames, copied)) => crate::measure::checkpoint(started.elapsed(), frames, copied),
            Err(e) => tracing::warn!(error = %e, "SQLite: a WAL checkpoint failed"),
        }
        std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
    }
}

/// The writer thread: takes every write queued (up to [`MAX_BATCH`]), runs them in one
/// transaction, each in its own savepoint, commits, then answers them. Ends when the store is
/// dropped. `queued` counts the writes sent and not taken yet (the queue-depth gauge); each
/// batch records its size and duration once (`crate::measure::group_commit`).
fn write_loop(
    mut conn: Connection,
    rx: &mpsc::Receiver<Job>,
    queued: &AtomicUsize,
    ctx: &Context,
    signal: &FeedSignal,
    checkpoint: &mpsc::SyncSender<()>,
) {
    let mut optimized = std::time::Instant::now();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        let (writes, started) = (batch.len(), std::time::Instant::now());
        run_batch(&mut conn, batch, ctx, signal);
        crate::measure::group_commit(writes, started.elapsed());
        // The checkpointer is told there is something to copy (once: it is either waiting for
        // this or will look anyway).
        let _ = checkpoint.try_send(());
        if optimized.elapsed() >= OPTIMIZE_EVERY {
            optimize(&conn);
            optimized = std::time::Instant::now();
        }
    }
}

/// Runs a batch; once it committed, tells the feeds' waiters of the events it appended.
fn run_batch(conn: &mut Connection, batch: Vec<Job>, ctx: &Context, signal: &FeedSignal) {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        // Nothing ran; the callers see their reply channels close.
        tracing::error!(error = %e, "the SQLite writer could not begin a transaction");
        drop(batch);
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut appended = Vec::new();
    for job in batch {
        let step = || -> Result<Option<Answer>> {
            control(conn, "SAVEPOINT w")?;
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn, ctx)));
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back by itself (SQLITE_FULL, IOERR, ...):
                // no write of this batch may be acknowledged.
                return Err(StoreError::Backend("the transaction was rolled back by the database".into()));
            }
            match outcome {
                Ok((Some(events), answer)) => {
                    control(conn, "RELEASE w")?;
                    appended.extend(events);
                    Ok(Some(answer))
                }
                Ok((None, answer)) => {
                    control(conn, "ROLLBACK TO w")?;
                    control(conn, "RELEASE w")?;
                    Ok(Some(answer))
                }
                // The panicking write's caller is answered by its dropped reply channel.
                Err(_) => {
                    control(conn, "ROLLBACK TO w")?;
                    control(conn, "RELEASE w")?;
                    Ok(None)
                }
            }
        };
        match step() {
            Ok(Some(answer)) => answers.push(answer),
            Ok(None) => {}
            Err(e) => {
                // The transaction is in an unknown state: give up the whole batch. The writes
                // not yet run are dropped, so their callers learn of the failure too.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                for answer in answers {
                    answer(Err(e.clone()));
                }
                return;
            }
        }
    }
    let commit = control(conn, "COMMIT");
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if commit.is_ok() {
        for (tenant, seq) in appended {
            signal.advance(tenant, seq);
        }
    }
    for answer in answers {
        answer(commit.clone());
    }
}

/// Group commit: what the contract suite cannot force, a batch shared by several writes.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Store, Tenant};

    fn open() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store =
            SqliteStore::open(path.to_str().unwrap(), Limits::default(), Arc::new(Registry::standard())).unwrap();
        (store, dir)
    }

    /// A write that inserts a tenant, then fails, panics or holds the writer, as told.
    struct Probe {
        name: &'static str,
        then: Then,
    }

    enum Then {
        Fail,
        Panic,
        Hold(Duration),
    }

    impl Operation for Probe {
        type Output = ();
        const MODE: Mode = Mode::Write;
        async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
            c.exec(
                "INSERT INTO tenants (name, required, created) VALUES ($1, '[]', 0)",
                &[Arg::Text(self.name.to_owned())],
            )
            .await?;
            match self.then {
                Then::Fail => Err(StoreError::Backend("failed after writing its row".into())),
                Then::Panic => panic!("a write panicked after writing its row"),
                Then::Hold(d) => {
                    std::thread::sleep(d);
                    Ok(())
                }
            }
        }
    }

    /// Queues writes behind one that holds the writer, so that they share the next batch.
    async fn batch_behind_a_slow_write(store: &Arc<SqliteStore>, then: Then) -> (Result<()>, Vec<Result<Tenant>>) {
        let slow = {
            let s = Arc::clone(store);
            tokio::spawn(async move {
                s.execute(Probe { name: "slow", then: Then::Hold(Duration::from_millis(300)) }).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await; // the slow write now holds the writer
        let started = Instant::now();
        let mut good = Vec::new();
        for i in 0..3 {
            let s = Arc::clone(store);
            good.push(tokio::spawn(async move {
                s.create_tenant(
                    format!("good{i}"),
                    Vec::new(),
                    time::OffsetDateTime::now_utc(),
                    crate::Actor::cli("test"),
                )
                .await
            }));
        }
        let bad = {
            let s = Arc::clone(store);
            tokio::spawn(async move { s.execute(Probe { name: "bad", then }).await })
        };
        slow.await.unwrap().unwrap();
        let bad = bad.await.unwrap();
        let mut out = Vec::new();
        for g in good {
            out.push(g.await.unwrap());
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        (bad, out)
    }

    /// A new database at `path` of schema version `version`: the first migrations, as the
    /// scimd of that version left them.
    fn database_of_version(path: &std::path::Path, version: usize) -> Connection {
        let mut c = Connection::open(path).unwrap();
        for (i, step) in MIGRATIONS[..version].iter().enumerate() {
            let tx = c.transaction().unwrap();
            for sql in *step {
                tx.execute_batch(sql).unwrap();
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).unwrap();
            tx.commit().unwrap();
        }
        c
    }

    /// A database of schema version 7 is migrated on open (to the provisioning log, traffic,
    /// setup links and sessions, and on) and served; the version is read without migrating
    /// first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_the_previous_schema_version_is_migrated_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v7.db");
        {
            let c = database_of_version(&path, 7);
            c.execute_batch("INSERT INTO tenants (name, required, created) VALUES ('kept', '[]', 0)").unwrap();
        }
        assert_eq!(schema_version(path.to_str().unwrap()).unwrap(), 7);
        assert_eq!(schema_version(path.to_str().unwrap()).unwrap(), 7, "reading it migrates nothing");
        let store =
            SqliteStore::open(path.to_str().unwrap(), Limits::default(), Arc::new(Registry::standard())).unwrap();
        assert_eq!(schema_version(path.to_str().unwrap()).unwrap(), SCHEMA_VERSION);
        let t = store.tenant("kept".into()).await.unwrap().unwrap();
        let at = time::OffsetDateTime::now_utc();
        let r = crate::LoggedRequest {
            id: 0,
            tenant: t.id,
            at,
            token: None,
            method: "GET".into(),
            path: "/Users".into(),
            status: 200,
            scim_type: None,
            detail: None,
            latency_us: 1,
            resource: None,
            hint: None,
        };
        store.log_requests(vec![r]).await.unwrap();
        let logged =
            store.requests(crate::RequestQuery { tenant: t.id, limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(schema_version(dir.path().join("none.db").to_str().unwrap()).unwrap(), 0);
    }

    /// A database of schema version 8 is migrated to 9 with its resources counted: the
    /// maintained totals start exact and stay so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_8_database_gets_its_counts_backfilled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v8.db");
        {
            let c = database_of_version(&path, 8);
            c.execute_batch("INSERT INTO tenants (name, required, created) VALUES ('a', '[]', 0), ('b', '[]', 0)")
                .unwrap();
            for i in 0..25 {
                let (t, kind) = if i < 20 {
                    (1, 0)
                } else if i < 23 {
                    (1, 1)
                } else {
                    (2, 0)
                };
                c.execute(
                    "INSERT INTO resources (tenant_id, kind, id, name_lc, created, modified, version, doc)
                     VALUES (?1, ?2, ?3, ?3, 0, 0, 1, '{}')",
                    rusqlite::params![t, kind, format!("r{i}")],
                )
                .unwrap();
            }
        }
        let store =
            SqliteStore::open(path.to_str().unwrap(), Limits::default(), Arc::new(Registry::standard())).unwrap();
        let total = async |tenant: i64, kind: scim_core::Kind| {
            let q = crate::Query {
                tenant,
                kind,
                filter: None,
                sort: None,
                start_index: 1,
                count: 0,
                load: crate::Load::default(),
                position: false,
                seek: None,
            };
            store.query(q).await.unwrap().total
        };
        assert_eq!(total(1, scim_core::Kind::User).await, Some(20));
        assert_eq!(total(1, scim_core::Kind::Group).await, Some(3));
        assert_eq!(total(2, scim_core::Kind::User).await, Some(2));
        let del = crate::Delete {
            tenant: 1,
            kind: scim_core::Kind::User,
            id: "r3".into(),
            if_version: None,
            now: time::OffsetDateTime::now_utc(),
            actor: crate::Actor::cli("test"),
        };
        store.delete(del).await.unwrap();
        assert_eq!(total(1, scim_core::Kind::User).await, Some(19));
    }

    /// A database of schema version 1 (tenant ids reusable, orphans of deleted tenants left
    /// behind, lower-cased keys) is migrated on open and served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_database_is_migrated_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!("BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;")).unwrap();
            c.execute_batch(
                "INSERT INTO tenants (id, name, required, created) VALUES (1, 'kept', '[]', 0);
                 INSERT INTO resources (tenant_id, kind, id, name_lc, created, modified, version, doc)
                   VALUES (1, 0, 'u1', 'οδος', 0, 0, 1, '{\"userName\":\"ΟΔΟΣ\"}'),
                          (3, 0, 'o1', 'orphan', 0, 0, 1, '{\"userName\":\"orphan\"}');
                 INSERT INTO events (tenant_id, kind, resource_id, change, version, at) VALUES (3, 0, 'o1', 'created', 1, 0);",
            )
            .unwrap();
        }
        let store =
            SqliteStore::open(path.to_str().unwrap(), Limits::default(), Arc::new(Registry::standard())).unwrap();
        let version: i64 = lock(&store.inner.readers[0]).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let fresh = store
            .create_tenant("fresh".into(), Vec::new(), time::OffsetDateTime::now_utc(), crate::Actor::cli("test"))
            .await
            .unwrap();
        assert!(fresh.id > 3, "a new tenant got id {}, which a row of a deleted tenant named", fresh.id);
        let orphans: i64 = lock(&store.inner.readers[0])
            .query_row("SELECT count(*) FROM resources WHERE tenant_id NOT IN (SELECT id FROM tenants)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(orphans, 0);
        let filter = scim_core::Filter::parse(r#"userName eq "οδοσ""#).unwrap();
        let q = crate::Query {
            tenant: 1,
            kind: scim_core::Kind::User,
            filter: Some(filter),
            sort: None,
            start_index: 1,
            count: 10,
            load: crate::Load::default(),
            position: false,
            seek: None,
        };
        assert_eq!(store.query(q).await.unwrap().total, Some(1), "the stored key was case-folded");
    }

    /// A tenant `a` with `n` users created in order, ids `u0`, `u1`, ... and userNames `n0`,
    /// `n1`, ... with their numbers zero-padded to `width` digits.
    async fn tenant_with_users(store: &SqliteStore, n: usize, width: usize) -> i64 {
        let t = store
            .create_tenant("a".into(), Vec::new(), time::OffsetDateTime::now_utc(), crate::Actor::cli("test"))
            .await
            .unwrap()
            .id;
        for i in 0..n {
            let c = crate::Create {
                tenant: t,
                kind: scim_core::Kind::User,
                id: format!("u{i:0width$}"),
                now: time::OffsetDateTime::now_utc(),
                doc: serde_json::json!({"userName": format!("n{i:0width$}")}),
                members: Vec::new(),
                actor: crate::Actor::cli("test"),
            };
            store.create(c).await.unwrap();
        }
        t
    }

    /// The ids on the page of a tenant's users (unfiltered, unsorted) from `start`, `count` long.
    async fn index_page(store: &SqliteStore, t: i64, start: u64, count: u64) -> Vec<String> {
        let q = crate::Query {
            tenant: t,
            kind: scim_core::Kind::User,
            filter: None,
            sort: None,
            start_index: start,
            count,
            load: crate::Load::default(),
            position: false,
            seek: None,
        };
        store.query(q).await.unwrap().records.into_iter().map(|r| r.id).collect()
    }

    /// A sequential startIndex walk is served from where each page ended (and a page after a
    /// skipped one, from the nearest end below it), not by offset; a deletion sends the next
    /// page back to the offset.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sequential_index_walk_seeks_instead_of_reading_past_an_offset() {
        let (store, _dir) = open();
        let t = tenant_with_users(&store, 30, 2).await;
        let page = async |start: u64| index_page(&store, t, start, 5).await;
        let seeks = || store.inner.ctx.memo.seeks();
        assert_eq!(page(1).await, ["u00", "u01", "u02", "u03", "u04"]);
        assert_eq!(seeks(), 0);
        assert_eq!(page(6).await, ["u05", "u06", "u07", "u08", "u09"]);
        assert_eq!(seeks(), 1, "the second page seeks");
        assert_eq!(page(16).await, ["u15", "u16", "u17", "u18", "u19"]);
        assert_eq!(seeks(), 2, "a page after a skipped one seeks from the nearest end below it");
        let del = crate::Delete {
            tenant: t,
            kind: scim_core::Kind::User,
            id: "u00".into(),
            if_version: None,
            now: time::OffsetDateTime::now_utc(),
            actor: crate::Actor::cli("test"),
        };
        store.delete(del).await.unwrap();
        assert_eq!(page(21).await, ["u21", "u22", "u23", "u24", "u25"], "indexes moved: read by offset");
        assert_eq!(seeks(), 2);
        assert_eq!(page(26).await, ["u26", "u27", "u28", "u29"]);
        assert_eq!(seeks(), 3, "and seeks again from there");
    }

    /// Concurrent walks of one query at different depths each keep seeking (the memory forgets
    /// the ends stored longest ago, not the shallowest).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_walks_of_one_query_each_keep_seeking() {
        let (store, _dir) = open();
        let t = tenant_with_users(&store, 200, 3).await;
        let page = async |start: u64| index_page(&store, t, start, 4).await;
        for step in 0..12u64 {
            for walk in 0..4u64 {
                let start = 1 + walk * 50 + step * 4;
                let want: Vec<String> = (start - 1..start + 3).map(|i| format!("u{i:03}")).collect();
                assert_eq!(page(start).await, want);
            }
        }
        // Every page but the very first seeks (the other walks' first pages from the nearest
        // end below them, skipping by key).
        assert_eq!(store.inner.ctx.memo.seeks(), 4 * 12 - 1);
    }

    async fn names(store: &SqliteStore) -> Vec<String> {
        store.list_tenants().await.unwrap().into_iter().map(|t| t.name).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_after_its_rows_rolls_back_alone_in_a_shared_batch() {
        let (store, _dir) = open();
        let store = Arc::new(store);
        let (bad, good) = batch_behind_a_slow_write(&store, Then::Fail).await;
        assert!(matches!(bad, Err(StoreError::Backend(ref m)) if m.contains("failed after")), "{bad:?}");
        assert!(good.iter().all(Result::is_ok), "{good:?}");
        assert_eq!(names(&store).await, ["good0", "good1", "good2", "slow"], "the failed write left no row");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_one_write_fails_that_write_alone_not_its_batch_mates() {
        let (store, _dir) = open();
        let store = Arc::new(store);
        let (bad, good) = batch_behind_a_slow_write(&store, Then::Panic).await;
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        assert!(good.iter().all(Result::is_ok), "{good:?}");
        assert_eq!(names(&store).await, ["good0", "good1", "good2", "slow"], "the panicked write left no row");
        // The writer thread survived the panic.
        store
            .create_tenant("after".into(), Vec::new(), time::OffsetDateTime::now_utc(), crate::Actor::cli("test"))
            .await
            .unwrap();
    }

    /// Regression: with checkpoints left to the checkpoint thread alone, the WAL grew by every
    /// page written while writes went on without a pause (18 GB in five minutes of
    /// initial-sync filled the disk), because only a writer starts the WAL over and the
    /// thread's checkpoint never ended with every frame copied. Writes without a pause, far
    /// more WAL than the writer's checkpoint size: the file stays within a few times that size
    /// (the writer's checkpoint is skipped while the thread's holds the checkpoint lock, so on a
    /// disk whose flushes stall for hundreds of milliseconds the WAL grows by what is written
    /// meanwhile: 16 MB was seen), far below the database written, which is what it grew to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_while_writes_go_on_without_a_pause() {
        let (store, dir) = open();
        let store = Arc::new(store);
        let t = store
            .create_tenant("a".into(), Vec::new(), time::OffsetDateTime::now_utc(), crate::Actor::cli("test"))
            .await
            .unwrap()
            .id;
        let wal = dir.path().join("t.db-wal");
        let mut largest = 0;
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..12_000 {
            let s = Arc::clone(&store);
            writes.spawn(async move {
                let c = crate::Create {
                    tenant: t,
                    kind: scim_core::Kind::User,
                    id: format!("u{i}"),
                    now: time::OffsetDateTime::now_utc(),
                    doc: serde_json::json!({"userName": format!("n{i}"), "title": "x".repeat(2_000)}),
                    members: Vec::new(),
                    actor: crate::Actor::cli("test"),
                };
                s.create(c).await
            });
            if writes.len() >= 32 {
                writes.join_next().await.unwrap().unwrap().unwrap();
                largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            }
        }
        while let Some(w) = writes.join_next().await {
            w.unwrap().unwrap();
        }
        let written = std::fs::metadata(dir.path().join("t.db")).unwrap().len();
        let bound = (WRITER_CHECKPOINT_PAGES as u64) * 4096 * 8;
        assert!(written > 2 * bound, "only {written} bytes written: not enough to tell");
        assert!(largest < bound, "the WAL reached {largest} bytes (bound {bound}) for a {written}-byte database");
    }

    /// Regression: every look-up of a user by userName was planned again by SQLite (its
    /// parameters' values could change the plan), which was 19% of a look-up's CPU. Look-ups
    /// and updates with new values each time, after the planner's statistics were gathered,
    /// are not planned again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_are_not_planned_again_for_new_parameter_values() {
        let (store, dir) = open();
        let t = tenant_with_users(&store, 300, 3).await;
        // The statistics `PRAGMA optimize` gathers, here at once and for every table.
        Connection::open(dir.path().join("t.db")).unwrap().execute_batch("ANALYZE").unwrap();
        let lookup = |name: String| crate::Query {
            tenant: t,
            kind: scim_core::Kind::User,
            filter: Some(scim_core::Filter::parse(&format!("userName eq \"{name}\"")).unwrap()),
            sort: None,
            start_index: 1,
            count: 100,
            load: crate::Load { members: false, groups: true },
            position: false,
            seek: None,
        };
        // Warm: every statement prepared once.
        store.query(lookup("n000".into())).await.unwrap();
        let before = REPREPARED.load(Ordering::Relaxed);
        for i in 0..300 {
            let page = store.query(lookup(format!("n{i:03}"))).await.unwrap();
            assert_eq!(page.records.len(), 1);
        }
        let planned_again = REPREPARED.load(Ordering::Relaxed) - before;
        // Other tests of this process may re-plan a few of their own statements meanwhile
        // (after a migration or `PRAGMA optimize`); one per look-up was the bug.
        assert!(planned_again < 30, "{planned_again} statements planned again for 300 look-ups");
    }
}
