//! The embedded SQLite store (the default): one writer connection, a few readers, WAL.
//!
//! Durability: WAL with `synchronous = NORMAL`. A commit is in the WAL file before the client
//! gets its answer, so it survives a crash of the process (`kill -9`); an OS crash or power loss
//! may lose the last transactions before a checkpoint, as SQLite documents for this mode.

use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
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

const READERS: usize = 4;
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
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

/// A member change that a queued write owns.
enum OwnedMembers {
    Unchanged,
    Replace(Vec<Member>),
    Delta(MemberDelta),
}

impl OwnedMembers {
    fn from(m: Members<'_>) -> Self {
        match m {
            Members::Unchanged => OwnedMembers::Unchanged,
            Members::Replace(list) => OwnedMembers::Replace(list.to_vec()),
            Members::Delta(d) => OwnedMembers::Delta(d.clone()),
        }
    }

    fn as_members(&self) -> Members<'_> {
        match self {
            OwnedMembers::Unchanged => Members::Unchanged,
            OwnedMembers::Replace(list) => Members::Replace(list),
            OwnedMembers::Delta(d) => Members::Delta(d),
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    queue: Mutex<Vec<Pending>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    limits: Limits,
    registry: Registry,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")
        .map_err(db)
}

impl SqliteStore {
    /// Opens the database file at `path`, creating and migrating it as needed.
    pub fn open(path: &str, limits: Limits) -> Result<Self> {
        if path.is_empty() {
            return Err(StoreError::Backend("sqlite:// needs a file path, e.g. sqlite://scimd.db".into()));
        }
        let p = Path::new(path);
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let writer = Connection::open(p).map_err(|e| StoreError::Backend(format!("{path}: {e}")))?;
        configure(&writer)?;
        migrate(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(p).map_err(|e| StoreError::Backend(format!("{path}: {e}")))?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            queue: Mutex::new(Vec::new()),
            readers,
            next_reader: AtomicUsize::new(0),
            limits,
            registry: Registry::standard(),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = lock(&self.readers[start % self.readers.len()]);
        f(&conn)
    }

    /// Runs `f` in a write transaction, committed before this returns.
    ///
    /// Group commit: a caller queues its write, then takes the writer connection; whoever holds
    /// it runs every queued write in one transaction, each in a savepoint of its own (a failing
    /// write is rolled back alone), commits once and hands each caller its result. A caller
    /// whose write was committed by another finds its result when it gets the connection. Every
    /// answer still follows its own commit, so durability is unchanged.
    fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (reply, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
        lock(&self.queue).push(Pending { job, reply });
        let mut conn = lock(&self.writer);
        let answer = match result.try_recv() {
            Ok(answer) => Ok(answer), // committed by the batch of another caller
            Err(_) => {
                let batch = std::mem::take(&mut *lock(&self.queue));
                run_batch(&mut conn, batch);
                result.try_recv()
            }
        };
        drop(conn);
        match answer {
            Ok(r) => r.and_then(|b| {
                b.downcast::<T>()
                    .map(|v| *v)
                    .map_err(|_| StoreError::Backend("a write returned a value of another type".into()))
            }),
            Err(_) => Err(StoreError::Backend("a queued write was lost".into())),
        }
    }
}

/// A write waiting for the writer connection.
type Job = Box<dyn FnOnce(&Connection) -> Result<Box<dyn Any + Send>> + Send>;

struct Pending {
    job: Job,
    reply: mpsc::SyncSender<Result<Box<dyn Any + Send>>>,
}

/// Runs queued writes in one transaction, each in its own savepoint, and answers them after the
/// commit (or with the commit's error).
fn run_batch(conn: &mut Connection, batch: Vec<Pending>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            for p in batch {
                let _ = p.reply.send(Err(StoreError::Backend(msg.clone())));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    for p in batch {
        let r = match tx.savepoint() {
            Ok(sp) => {
                let r = (p.job)(&sp);
                // A failed write rolls back to its savepoint when `sp` drops.
                match r {
                    Ok(v) => sp.commit().map(|()| v).map_err(db),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(db(e)),
        };
        answers.push((p.reply, r));
    }
    match tx.commit() {
        Ok(()) => {
            for (reply, r) in answers {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for (reply, _) in answers {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
    if version == 0 {
        conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")).map_err(db)?;
    } else if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this scimd ({SCHEMA_VERSION}); upgrade scimd"
        )));
    }
    Ok(())
}

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    let required: String = r.get(2)?;
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        required: serde_json::from_str(&required).unwrap_or_default(),
        created: instant(r.get(3)?),
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        tenant: r.get(1)?,
        digest: r.get(2)?,
        label: r.get(3)?,
        created: instant(r.get(4)?),
        expires: r.get::<_, Option<i64>>(5)?.map(instant),
        revoked: r.get::<_, Option<i64>>(6)?.map(instant),
    })
}

const RECORD_COLS: &str = "r.pk, r.kind, r.id, r.created, r.modified, r.version, r.doc";

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Record)> {
    let doc: String = r.get(6)?;
    Ok((
        r.get(0)?,
        Record {
            kind: Kind::from_code(r.get(1)?),
            id: r.get(2)?,
            created: instant(r.get(3)?),
            last_modified: instant(r.get(4)?),
            version: r.get(5)?,
            doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
            members: None,
            groups: None,
        },
    ))
}

/// Turns a uniqueness violation into a `Conflict` that names the attribute and value.
fn unique_violation(e: rusqlite::Error, kind: Kind, keys: &IndexKeys) -> StoreError {
    let msg = e.to_string();
    if !msg.contains("UNIQUE constraint failed") {
        return db(e);
    }
    let which = if msg.contains("external_id") {
        Unique::ExternalId
    } else if msg.contains("name_lc") {
        Unique::Name
    } else {
        Unique::Id
    };
    conflict(kind, keys, which)
}

fn write_indexes(tx: &Connection, tenant: i64, pk: i64, keys: &IndexKeys) -> Result<()> {
    tx.execute("DELETE FROM emails WHERE resource_pk = ?1", [pk]).map_err(db)?;
    let mut stmt = tx
        .prepare_cached("INSERT INTO emails (resource_pk, tenant_id, value_lc, type_lc) VALUES (?1, ?2, ?3, ?4)")
        .map_err(db)?;
    for (v, t) in &keys.emails {
        stmt.execute(params![pk, tenant, v, t]).map_err(db)?;
    }
    Ok(())
}

fn event(
    tx: &Connection,
    tenant: i64,
    kind: Kind,
    id: &str,
    change: Change,
    version: Option<i64>,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (tenant_id, kind, resource_id, change, version, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(db)?
    .execute(params![tenant, kind.code(), id, change.as_str(), version, now])
    .map_err(db)?;
    Ok(())
}

/// The pk of a member id in this tenant, or `invalidValue`.
fn member_pk(tx: &Connection, tenant: i64, id: &str) -> Result<i64> {
    tx.prepare_cached("SELECT pk FROM resources WHERE tenant_id = ?1 AND id = ?2")
        .map_err(db)?
        .query_row(params![tenant, id], |r| r.get(0))
        .optional()
        .map_err(db)?
        .ok_or_else(|| {
            StoreError::Scim(ScimError::invalid_value(format!(
                "member \"{id}\" is not a user or group of this tenant; create it before adding it to a group"
            )))
        })
}

fn add_members(tx: &Connection, tenant: i64, group_pk: i64, members: &[Member]) -> Result<()> {
    for m in members {
        let pk = member_pk(tx, tenant, &m.value)?;
        if pk == group_pk {
            return Err(StoreError::Scim(ScimError::invalid_value("a group cannot be a member of itself")));
        }
        tx.prepare_cached("INSERT OR IGNORE INTO members (group_pk, member_pk, display) VALUES (?1, ?2, ?3)")
            .map_err(db)?
            .execute(params![group_pk, pk, m.display])
            .map_err(db)?;
    }
    Ok(())
}

fn apply_delta(tx: &Connection, tenant: i64, group_pk: i64, delta: &MemberDelta) -> Result<()> {
    if delta.remove_all {
        tx.execute("DELETE FROM members WHERE group_pk = ?1", [group_pk]).map_err(db)?;
    }
    for id in &delta.remove {
        tx.prepare_cached(
            "DELETE FROM members WHERE group_pk = ?1 AND member_pk = (SELECT pk FROM resources WHERE tenant_id = ?2 AND id = ?3)",
        )
        .map_err(db)?
        .execute(params![group_pk, tenant, id])
        .map_err(db)?;
    }
    add_members(tx, tenant, group_pk, &delta.add)
}

fn load_extras(conn: &Connection, pk: i64, rec: &mut Record, load: Load) -> Result<()> {
    if load.members && rec.kind == Kind::Group {
        let mut stmt = conn
            .prepare_cached(
                "SELECT x.id, x.kind, COALESCE(m.display, x.display) FROM members m JOIN resources x ON x.pk = m.member_pk WHERE m.group_pk = ?1 ORDER BY m.member_pk",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([pk], |r| {
                Ok(MemberRow { value: r.get(0)?, kind: Kind::from_code(r.get(1)?), display: r.get(2)? })
            })
            .map_err(db)?;
        rec.members = Some(rows.collect::<rusqlite::Result<_>>().map_err(db)?);
    }
    if load.groups && rec.kind == Kind::User {
        let mut stmt = conn
            .prepare_cached(
                "SELECT g.id, g.display FROM members m JOIN resources g ON g.pk = m.group_pk WHERE m.member_pk = ?1 ORDER BY m.group_pk",
            )
            .map_err(db)?;
        let rows = stmt.query_map([pk], |r| Ok(GroupRef { value: r.get(0)?, display: r.get(1)? })).map_err(db)?;
        rec.groups = Some(rows.collect::<rusqlite::Result<_>>().map_err(db)?);
    }
    Ok(())
}

fn get_record(conn: &Connection, tenant: i64, kind: Kind, id: &str, load: Load) -> Result<Option<Record>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLS} FROM resources r WHERE r.tenant_id = ?1 AND r.id = ?2 AND r.kind = ?3"
        ))
        .map_err(db)?
        .query_row(params![tenant, id, kind.code()], record_row)
        .optional()
        .map_err(db)?;
    match found {
        None => Ok(None),
        Some((pk, mut rec)) => {
            load_extras(conn, pk, &mut rec, load)?;
            Ok(Some(rec))
        }
    }
}

/// Renders a plan condition as SQLite SQL over the alias `r`, pushing bound values to `args`.
fn render(c: &Cond, args: &mut Vec<Arg>) -> String {
    fn op_sql(col: &str, op: Op, arg: Arg, args: &mut Vec<Arg>) -> String {
        let n = args.len() + 1;
        let s = match op {
            Op::Eq => format!("{col} = ?{n}"),
            Op::Lt => format!("{col} < ?{n}"),
            Op::Le => format!("{col} <= ?{n}"),
            Op::Gt => format!("{col} > ?{n}"),
            Op::Ge => format!("{col} >= ?{n}"),
            Op::Contains => format!("instr({col}, ?{n}) > 0"),
            Op::StartsWith => format!("substr({col}, 1, length(?{n})) = ?{n}"),
            Op::EndsWith => format!("substr({col}, -length(?{n})) = ?{n}"),
        };
        args.push(arg);
        s
    }
    match c {
        Cond::True => "1".into(),
        Cond::False => "0".into(),
        Cond::Cmp(col, op, arg) => op_sql(&format!("r.{}", col.name()), *op, arg.clone(), args),
        Cond::NotNull(col) => format!("r.{} IS NOT NULL", col.name()),
        Cond::Email(terms) => {
            let parts: Vec<String> = terms
                .iter()
                .map(|(col, op, arg)| {
                    let name = match col {
                        EmailCol::ValueLc => "e.value_lc",
                        EmailCol::TypeLc => "e.type_lc",
                    };
                    op_sql(name, *op, arg.clone(), args)
                })
                .collect();
            // Uncorrelated and tenant-scoped, so SQLite starts from the `emails_value` index.
            format!("r.pk IN (SELECT e.resource_pk FROM emails e WHERE e.tenant_id = ?1 AND {})", parts.join(" AND "))
        }
        Cond::HasEmail => "EXISTS (SELECT 1 FROM emails e WHERE e.resource_pk = r.pk)".into(),
        Cond::Member(id) => {
            args.push(Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.group_pk FROM members m JOIN resources x ON x.pk = m.member_pk WHERE x.tenant_id = ?1 AND x.id = ?{})",
                args.len()
            )
        }
        Cond::HasMember => "EXISTS (SELECT 1 FROM members m WHERE m.group_pk = r.pk)".into(),
        Cond::InGroup(id) => {
            args.push(Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.member_pk FROM members m JOIN resources g ON g.pk = m.group_pk WHERE g.tenant_id = ?1 AND g.id = ?{})",
                args.len()
            )
        }
        Cond::InAnyGroup => "EXISTS (SELECT 1 FROM members m WHERE m.member_pk = r.pk)".into(),
        Cond::And(xs) if xs.is_empty() => "1".into(),
        Cond::Or(xs) if xs.is_empty() => "0".into(),
        Cond::And(xs) => format!("({})", xs.iter().map(|x| render(x, args)).collect::<Vec<_>>().join(" AND ")),
        Cond::Or(xs) => format!("({})", xs.iter().map(|x| render(x, args)).collect::<Vec<_>>().join(" OR ")),
        Cond::Not(x) => format!("NOT COALESCE(({}), 0)", render(x, args)),
    }
}

fn to_sql(args: &[Arg]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Arg::Int(i) => rusqlite::types::Value::Integer(*i),
        })
        .collect()
}

impl Store for SqliteStore {
    fn point_reads_are_fast(&self) -> bool {
        true
    }

    fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
    }

    fn create_tenant(&self, name: &str, required: &[String], now: OffsetDateTime) -> Result<Tenant> {
        let req = serde_json::to_string(required).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (name_w, required_w) = (name.to_owned(), required.to_vec());
        self.write(move |tx| {
            let (name, required) = (name_w.as_str(), &required_w[..]);
            tx.execute(
                "INSERT INTO tenants (name, required, created) VALUES (?1, ?2, ?3)",
                params![name, req, micros(now)],
            )
            .map_err(|e| {
                if e.to_string().contains("UNIQUE") {
                    StoreError::Conflict(format!("a tenant named \"{name}\" already exists"))
                } else {
                    db(e)
                }
            })?;
            Ok(Tenant {
                id: tx.last_insert_rowid(),
                name: name.to_owned(),
                required: required.to_vec(),
                created: instant(micros(now)),
            })
        })
    }

    fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id, name, required, created FROM tenants ORDER BY name").map_err(db)?;
            let rows = stmt.query_map([], tenant_row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        self.read(|c| {
            c.query_row("SELECT id, name, required, created FROM tenants WHERE name = ?1", [name], tenant_row)
                .optional()
                .map_err(db)
        })
    }

    fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>> {
        self.read(|c| {
            c.query_row("SELECT id, name, required, created FROM tenants WHERE id = ?1", [id], tenant_row)
                .optional()
                .map_err(db)
        })
    }

    fn delete_tenant(&self, name: &str) -> Result<bool> {
        let name_w = name.to_owned();
        self.write(move |tx| {
            let name = name_w.as_str();
            let Some(id) = tx
                .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(db)?
            else {
                return Ok(false);
            };
            tx.execute("DELETE FROM members WHERE group_pk IN (SELECT pk FROM resources WHERE tenant_id = ?1)", [id])
                .map_err(db)?;
            for table in ["emails", "resources", "events", "tokens"] {
                tx.execute(&format!("DELETE FROM {table} WHERE tenant_id = ?1"), [id]).map_err(db)?;
            }
            tx.execute("DELETE FROM tenants WHERE id = ?1", [id]).map_err(db)?;
            Ok(true)
        })
    }

    fn create_token(&self, t: &Token) -> Result<()> {
        let t = t.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tokens (id, tenant_id, digest, label, created, expires, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![t.id, t.tenant, t.digest, t.label, micros(t.created), t.expires.map(micros), t.revoked.map(micros)],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn token(&self, id: &str) -> Result<Option<Token>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, tenant_id, digest, label, created, expires, revoked FROM tokens WHERE id = ?1")
                .map_err(db)?
                .query_row([id], token_row)
                .optional()
                .map_err(db)
        })
    }

    fn list_tokens(&self, tenant: i64) -> Result<Vec<Token>> {
        self.read(|c| {
            let mut stmt = c
                .prepare("SELECT id, tenant_id, digest, label, created, expires, revoked FROM tokens WHERE tenant_id = ?1 ORDER BY created, id")
                .map_err(db)?;
            let rows = stmt.query_map([tenant], token_row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
    }

    fn revoke_token(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        let id_w = id.to_owned();
        self.write(move |tx| {
            let id = id_w.as_str();
            let n = tx
                .execute("UPDATE tokens SET revoked = COALESCE(revoked, ?2) WHERE id = ?1", params![id, micros(now)])
                .map_err(db)?;
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
        let (id_w, members_w) = (id.to_owned(), members.to_vec());
        let pk = self.write(move |tx| {
            let (id, members) = (id_w.as_str(), &members_w[..]);
            tx.prepare_cached(
                "INSERT INTO resources (tenant_id, kind, id, name_lc, display, display_lc, external_id, employee_number_lc, created, modified, version, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1, ?10)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                kind.code(),
                id,
                keys.name_lc,
                keys.display,
                keys.display_lc,
                keys.external_id,
                keys.employee_number_lc,
                now_m,
                text
            ])
            .map_err(|e| unique_violation(e, kind, &keys))?;
            let pk = tx.last_insert_rowid();
            write_indexes(tx, tenant, pk, &keys)?;
            add_members(tx, tenant, pk, members)?;
            event(tx, tenant, kind, id, Change::Created, Some(1), now_m)?;
            Ok(pk)
        })?;
        let mut rec = Record {
            kind,
            id: id.to_owned(),
            created: instant(now_m),
            last_modified: instant(now_m),
            version: 1,
            doc: doc.clone(),
            members: None,
            groups: None,
        };
        let load = Load { members: kind == Kind::Group, groups: false };
        self.read(|c| load_extras(c, pk, &mut rec, load))?;
        Ok(rec)
    }

    fn get(&self, tenant: i64, kind: Kind, id: &str, load: Load) -> Result<Option<Record>> {
        self.read(|c| get_record(c, tenant, kind, id, load))
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
        let (id_w, members_w) = (id.to_owned(), OwnedMembers::from(members));
        let (pk, version, created) = self.write(move |tx| {
            let (id, members) = (id_w.as_str(), members_w.as_members());
            let (pk, version, created): (i64, i64, i64) = tx
                .prepare_cached("SELECT pk, version, created FROM resources WHERE tenant_id = ?1 AND id = ?2 AND kind = ?3")
                .map_err(db)?
                .query_row(params![tenant, id, kind.code()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            if if_version.is_some_and(|v| v != version) {
                return Err(StoreError::VersionMismatch);
            }
            tx.prepare_cached(
                "UPDATE resources SET name_lc = ?2, display = ?3, display_lc = ?4, external_id = ?5, employee_number_lc = ?6,
                 modified = ?7, version = version + 1, doc = ?8 WHERE pk = ?1",
            )
            .map_err(db)?
            .execute(params![pk, keys.name_lc, keys.display, keys.display_lc, keys.external_id, keys.employee_number_lc, now_m, text])
            .map_err(|e| unique_violation(e, kind, &keys))?;
            write_indexes(tx, tenant, pk, &keys)?;
            match members {
                Members::Unchanged => {}
                Members::Replace(list) => {
                    tx.execute("DELETE FROM members WHERE group_pk = ?1", [pk]).map_err(db)?;
                    add_members(tx, tenant, pk, list)?;
                }
                Members::Delta(delta) => apply_delta(tx, tenant, pk, delta)?,
            }
            event(tx, tenant, kind, id, Change::Updated, Some(version + 1), now_m)?;
            Ok((pk, version + 1, created))
        })?;
        let mut rec = Record {
            kind,
            id: id.to_owned(),
            created: instant(created),
            last_modified: instant(now_m),
            version,
            doc: doc.clone(),
            members: None,
            groups: None,
        };
        self.read(|c| load_extras(c, pk, &mut rec, load))?;
        Ok(rec)
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
        let (id_w, delta_w) = (id.to_owned(), delta.clone());
        let (pk, version, created, doc) = self.write(move |tx| {
            let (id, delta) = (id_w.as_str(), &delta_w);
            let (pk, version, created, doc): (i64, i64, i64, String) = tx
                .prepare_cached(
                    "SELECT pk, version, created, doc FROM resources WHERE tenant_id = ?1 AND id = ?2 AND kind = ?3",
                )
                .map_err(db)?
                .query_row(params![tenant, id, kind.code()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            tx.prepare_cached("UPDATE resources SET modified = ?2, version = version + 1 WHERE pk = ?1")
                .map_err(db)?
                .execute(params![pk, now_m])
                .map_err(db)?;
            apply_delta(tx, tenant, pk, delta)?;
            event(tx, tenant, kind, id, Change::Updated, Some(version + 1), now_m)?;
            Ok((pk, version + 1, created, doc))
        })?;
        let mut rec = Record {
            kind,
            id: id.to_owned(),
            created: instant(created),
            last_modified: instant(now_m),
            version,
            doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
            members: None,
            groups: None,
        };
        self.read(|c| load_extras(c, pk, &mut rec, load))?;
        Ok(rec)
    }

    fn delete(&self, tenant: i64, kind: Kind, id: &str, if_version: Option<i64>, now: OffsetDateTime) -> Result<()> {
        let id_w = id.to_owned();
        self.write(move |tx| {
            let id = id_w.as_str();
            let (pk, version): (i64, i64) = tx
                .prepare_cached("SELECT pk, version FROM resources WHERE tenant_id = ?1 AND id = ?2 AND kind = ?3")
                .map_err(db)?
                .query_row(params![tenant, id, kind.code()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
            if if_version.is_some_and(|v| v != version) {
                return Err(StoreError::VersionMismatch);
            }
            // The groups it leaves change too: a new version and an event each.
            let groups: Vec<(String, i64)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT g.id, g.version FROM members m JOIN resources g ON g.pk = m.group_pk WHERE m.member_pk = ?1",
                    )
                    .map_err(db)?;
                let rows = stmt.query_map([pk], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
                rows.collect::<rusqlite::Result<_>>().map_err(db)?
            };
            tx.execute(
                "UPDATE resources SET version = version + 1, modified = ?2 WHERE pk IN (SELECT group_pk FROM members WHERE member_pk = ?1)",
                params![pk, micros(now)],
            )
            .map_err(db)?;
            for (gid, v) in &groups {
                event(tx, tenant, Kind::Group, gid, Change::Updated, Some(v + 1), micros(now))?;
            }
            tx.execute("DELETE FROM members WHERE group_pk = ?1", [pk]).map_err(db)?;
            tx.execute("DELETE FROM members WHERE member_pk = ?1", [pk]).map_err(db)?;
            tx.execute("DELETE FROM emails WHERE resource_pk = ?1", [pk]).map_err(db)?;
            tx.execute("DELETE FROM resources WHERE pk = ?1", [pk]).map_err(db)?;
            event(tx, tenant, kind, id, Change::Deleted, None, micros(now))?;
            Ok(())
        })
    }

    fn query(&self, tenant: i64, kind: Kind, q: &Query<'_>) -> Result<Page> {
        let Some(def) = self.registry.resource(kind.name()) else {
            return Err(StoreError::Backend(format!("no resource type {}", kind.name())));
        };
        let plan = plan::plan(&def, kind, q.filter)?;
        let mut args = vec![Arg::Int(tenant), Arg::Int(kind.code())];
        let cond = render(&plan.cond, &mut args);
        let wher = format!("r.tenant_id = ?1 AND r.kind = ?2 AND ({cond})");
        let sort_col = q.sort.map(|(p, o)| (plan::sort_column(&def, kind, p), p, o));
        let sql_sortable = sort_col.is_none_or(|(c, _, _)| c.is_some());
        let offset = q.start_index.max(1) - 1;
        self.read(|c| {
            let total: i64 = c
                .prepare_cached(&format!("SELECT count(*) FROM resources r WHERE {wher}"))
                .map_err(db)?
                .query_row(params_from_iter(to_sql(&args)), |r| r.get(0))
                .map_err(db)?;
            let total = u64::try_from(total).unwrap_or(0);
            let fetch = |sql: &str, extra: &[Arg]| -> Result<Vec<(i64, Record)>> {
                let mut all = to_sql(&args);
                all.extend(to_sql(extra));
                let mut stmt = c.prepare_cached(sql).map_err(db)?;
                let rows = stmt.query_map(params_from_iter(all), record_row).map_err(db)?;
                rows.collect::<rusqlite::Result<_>>().map_err(db)
            };
            let (total, mut page) = if plan.residual.is_none() && sql_sortable {
                let order = match sort_col {
                    Some((Some(col), _, SortOrder::Ascending)) => format!("r.{} ASC NULLS LAST, r.pk", col.name()),
                    Some((Some(col), _, SortOrder::Descending)) => {
                        format!("r.{} DESC NULLS FIRST, r.pk DESC", col.name())
                    }
                    _ => "r.pk".to_owned(),
                };
                if q.count == 0 || offset >= total {
                    (total, Vec::new())
                } else {
                    let n = args.len();
                    let sql = format!(
                        "SELECT {RECORD_COLS} FROM resources r WHERE {wher} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
                        n + 1,
                        n + 2
                    );
                    let lim = i64::try_from(q.count).unwrap_or(i64::MAX);
                    let off = i64::try_from(offset).unwrap_or(i64::MAX);
                    (total, fetch(&sql, &[Arg::Int(lim), Arg::Int(off)])?)
                }
            } else {
                if total > self.limits.max_candidates {
                    return Err(too_many(total, self.limits.max_candidates));
                }
                let candidates =
                    fetch(&format!("SELECT {RECORD_COLS} FROM resources r WHERE {wher} ORDER BY r.pk"), &[])?;
                let sort = sort_col.map(|(_, p, o)| (p, o));
                residual_page(&def, plan.residual.as_ref(), sort, candidates, offset, q.count)?
            };
            for (pk, rec) in &mut page {
                load_extras(c, *pk, rec, q.load)?;
            }
            Ok(Page { total, records: page.into_iter().map(|(_, r)| r).collect() })
        })
    }

    fn events(&self, tenant: i64, after: i64, limit: u64) -> Result<Vec<Event>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, kind, resource_id, change, version, at FROM events WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![tenant, after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok(Event {
                        seq: r.get(0)?,
                        kind: Kind::from_code(r.get(1)?),
                        id: r.get(2)?,
                        change: Change::parse(&r.get::<_, String>(3)?),
                        version: r.get(4)?,
                        at: instant(r.get(5)?),
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
    }
}
