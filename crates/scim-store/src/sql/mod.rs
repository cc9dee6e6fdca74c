//! What both SQL engines share: the connection interface the store operations are written
//! against ([`Conn`]), bound values ([`Arg`]), rows ([`Row`]) and the few places where SQLite
//! and PostgreSQL spell things differently ([`Dialect`]).
//!
//! Statements are written once, with PostgreSQL-style numbered placeholders (`$1`, `$2`, ...);
//! the SQLite engine rewrites them to `?1`, `?2` when it prepares a statement. Every value is
//! bound, never spliced into the text.

use std::future::Future;

use crate::{Kind, Result, StoreError};

pub(crate) mod filter;
pub(crate) mod locks;
pub(crate) mod ops;
pub(crate) mod paging;
pub use paging::Tally;
pub(crate) mod traffic;
pub(crate) mod transfer;
pub(crate) mod webhooks;

/// Migration step of both engines: rows left by tenants deleted while their writes were in
/// flight are removed (writes now check their tenant in their own transaction).
pub(crate) const ORPHANS_REMOVED: &str = "
DELETE FROM members WHERE group_pk IN (SELECT pk FROM resources WHERE tenant_id NOT IN (SELECT id FROM tenants))
    OR member_pk IN (SELECT pk FROM resources WHERE tenant_id NOT IN (SELECT id FROM tenants));
DELETE FROM emails WHERE tenant_id NOT IN (SELECT id FROM tenants);
DELETE FROM resources WHERE tenant_id NOT IN (SELECT id FROM tenants);
DELETE FROM events WHERE tenant_id NOT IN (SELECT id FROM tenants);
DELETE FROM tokens WHERE tenant_id NOT IN (SELECT id FROM tenants);
";

/// Migration step of both engines (version 5): the change feed's new shape. Each event is
/// its own JSON document (`feed`), numbered per tenant (`tenants.feed_seq` is the last number
/// given, `feed_pruned` the last one pruned). The events of earlier versions named only the
/// resource and what happened to it, and nothing could read them: they are dropped.
pub(crate) const FEED_TENANT_COLUMNS: &str = "
DROP TABLE events;
ALTER TABLE tenants ADD COLUMN feed_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN feed_pruned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used BIGINT;
";

/// Migration step of both engines (version 6): push endpoints and, for each (webhook, tenant),
/// the delivery cursor: the position delivered, the retry state and the lease of the replica
/// sending it.
pub(crate) const WEBHOOKS: &str = "
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    tenant_id BIGINT,
    events TEXT NOT NULL,
    format TEXT NOT NULL,
    secret TEXT NOT NULL,
    old_secret TEXT,
    old_secret_until BIGINT,
    created BIGINT NOT NULL
);
CREATE TABLE deliveries (
    webhook_id TEXT NOT NULL,
    tenant_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    next_at BIGINT NOT NULL DEFAULT 0,
    last_at BIGINT,
    last_outcome TEXT,
    failed BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, tenant_id)
);
CREATE INDEX deliveries_tenant ON deliveries (tenant_id);
";

/// Migration step of both engines (version 7): each tenant's guard against mass
/// deprovisioning (its settings, the counting window, and from which position push delivery
/// is held), and the range of held events a delivery was told to skip.
pub(crate) const GUARD: &str = "
ALTER TABLE tenants ADD COLUMN guard_share BIGINT NOT NULL DEFAULT 200;
ALTER TABLE tenants ADD COLUMN guard_min BIGINT NOT NULL DEFAULT 50;
ALTER TABLE tenants ADD COLUMN guard_window BIGINT NOT NULL DEFAULT 3600000000;
ALTER TABLE tenants ADD COLUMN guard_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN guard_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN guard_base BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN guard_held BIGINT;
ALTER TABLE tenants ADD COLUMN guard_tripped_at BIGINT;
ALTER TABLE deliveries ADD COLUMN discard_from BIGINT;
ALTER TABLE deliveries ADD COLUMN discard_to BIGINT;
";

/// Migration step of both engines (version 8): each tenant's traffic summary (directory
/// health is derived from it), customer setup links and console sessions. The provisioning
/// log itself (`requests`) is made by each engine: its key is spelled differently.
pub(crate) const CONSOLE: &str = "
CREATE TABLE traffic (
    tenant_id BIGINT PRIMARY KEY,
    first_request BIGINT,
    last_request BIGINT,
    first_success BIGINT,
    last_success BIGINT,
    first_user BIGINT,
    last_write BIGINT,
    unauthorized_streak BIGINT NOT NULL DEFAULT 0,
    cycle_start BIGINT,
    cycle_last BIGINT,
    cycle_requests BIGINT NOT NULL DEFAULT 0,
    cycle_errors BIGINT NOT NULL DEFAULT 0,
    prev_start BIGINT,
    prev_last BIGINT,
    prev_requests BIGINT NOT NULL DEFAULT 0,
    prev_errors BIGINT NOT NULL DEFAULT 0,
    health TEXT,
    log_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    revoked BIGINT,
    redeemed BIGINT,
    token_id TEXT
);
CREATE INDEX invites_tenant ON invites (tenant_id);
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
";

/// Migration step of both engines (version 9): each tenant's resources counted per kind by
/// the writes themselves, in slots (`paging::note_write`), backfilled here; the database's
/// secrets (the key that authenticates cursors, the same for every replica); and, for keyset
/// pages sorted by a nullable column, the rows without a value in creation order (partial
/// indexes that hold only those rows).
pub(crate) const COUNTS: &str = "
CREATE TABLE resource_counts (
    tenant_id BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    slot BIGINT NOT NULL,
    live BIGINT NOT NULL DEFAULT 0,
    deletes BIGINT NOT NULL DEFAULT 0,
    changes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, kind, slot)
);
INSERT INTO resource_counts (tenant_id, kind, slot, live)
    SELECT tenant_id, kind, 0, count(*) FROM resources GROUP BY tenant_id, kind;
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX resources_display_null ON resources (tenant_id, kind, pk) WHERE display_lc IS NULL;
CREATE INDEX resources_external_id_null ON resources (tenant_id, kind, pk) WHERE external_id IS NULL;
CREATE INDEX resources_employee_number_null ON resources (tenant_id, kind, pk) WHERE employee_number_lc IS NULL;
";

/// The provisioning log's table (version 8): keyed by tenant and a number per tenant given by
/// the log's writer (`traffic.log_seq`, under the traffic row's lock), so one B-tree serves
/// both the writes and a tenant's newest-first listing. `$suffix` is the engine's table option
/// (SQLite: `WITHOUT ROWID`, the key is the table).
macro_rules! requests_table {
    ($suffix:literal) => {
        concat!(
            "CREATE TABLE requests (tenant_id BIGINT NOT NULL, id BIGINT NOT NULL, at BIGINT NOT NULL, \
             token TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status BIGINT NOT NULL, scim_type TEXT, \
             detail TEXT, latency_us BIGINT NOT NULL, resource TEXT, hint TEXT, PRIMARY KEY (tenant_id, id))",
            $suffix,
            ";"
        )
    };
}
pub(crate) use requests_table;

/// The indexes of the provisioning log (both engines, after each made its `requests` table).
pub(crate) const REQUESTS_INDEXES: &str = "
CREATE INDEX requests_errors ON requests (tenant_id, id) WHERE status >= 400;
";

/// Migration step of both engines: case-insensitive keys are case-folded, not lower-cased: a
/// final sigma is folded to sigma (the only difference between the two for the values stored),
/// so `ΟΔΟΣ` and `οδοσ` are one userName.
pub(crate) const CASE_FOLDED_KEYS: &str = "
UPDATE resources SET name_lc = replace(name_lc, 'ς', 'σ'), display_lc = replace(display_lc, 'ς', 'σ'),
    employee_number_lc = replace(employee_number_lc, 'ς', 'σ')
    WHERE name_lc LIKE '%ς%' OR display_lc LIKE '%ς%' OR employee_number_lc LIKE '%ς%';
UPDATE emails SET value_lc = replace(value_lc, 'ς', 'σ'), type_lc = replace(type_lc, 'ς', 'σ')
    WHERE value_lc LIKE '%ς%' OR type_lc LIKE '%ς%';
";

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// SQL NULL.
    Null,
    /// An integer (bound as the column's integer width on PostgreSQL).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A list of integers (PostgreSQL: `bigint[]`; SQLite: a JSON array read by `json_each`).
    Ints(Vec<i64>),
    /// A list of texts, NULLs allowed (PostgreSQL: `text[]`; SQLite: a JSON array).
    Texts(Vec<Option<String>>),
}

impl Arg {
    /// Text, or NULL.
    pub fn opt_text(v: Option<&str>) -> Arg {
        v.map_or(Arg::Null, |s| Arg::Text(s.to_owned()))
    }
    /// An integer, or NULL.
    pub fn opt_int(v: Option<i64>) -> Arg {
        v.map_or(Arg::Null, Arg::Int)
    }
}

/// A column value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// One result row, its columns in the order of the `SELECT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn col(&self, i: usize) -> Result<&Val> {
        self.0.get(i).ok_or_else(|| StoreError::Backend(format!("a query returned no column {i}")))
    }

    fn mismatch(&self, i: usize, want: &str) -> StoreError {
        StoreError::Corrupt(format!("column {i} holds {:?} where {want} was expected", self.0.get(i)))
    }

    /// An integer column.
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.col(i)? {
            Val::Int(v) => Ok(*v),
            _ => Err(self.mismatch(i, "an integer")),
        }
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.col(i)? {
            Val::Null => Ok(None),
            Val::Int(v) => Ok(Some(*v)),
            _ => Err(self.mismatch(i, "an integer or NULL")),
        }
    }

    /// A text column, taken out of the row.
    pub fn text(&mut self, i: usize) -> Result<String> {
        match self.0.get_mut(i) {
            Some(Val::Text(s)) => Ok(std::mem::take(s)),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// A text column that may be NULL, taken out of the row.
    pub fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.0.get_mut(i) {
            Some(Val::Null) => Ok(None),
            Some(Val::Text(s)) => Ok(Some(std::mem::take(s))),
            _ => Err(self.mismatch(i, "text or NULL")),
        }
    }

    /// A bytes column, taken out of the row.
    pub fn bytes(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.0.get_mut(i) {
            Some(Val::Bytes(b)) => Ok(std::mem::take(b)),
            _ => Err(self.mismatch(i, "bytes")),
        }
    }
}

/// A row lock a statement takes until commit (PostgreSQL; SQLite's single writer needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// `FOR KEY SHARE`: the row cannot be deleted (or its key changed) meanwhile.
    KeyShare,
    /// `FOR NO KEY UPDATE`: the row is being changed, not deleted.
    NoKeyUpdate,
    /// `FOR UPDATE`: the row is being deleted.
    Update,
}

/// The engine-specific spelling of the few constructs that differ between SQLite and
/// PostgreSQL. Everything else in the store's SQL is common to both.
#[derive(Debug)]
pub struct Dialect {
    /// `sqlite` or `postgres`, for messages.
    pub name: &'static str,
    /// Whether row locks exist (`SELECT ... FOR ...`).
    pub row_locks: bool,
    /// Whether a list is bound as an array (`= ANY($n)`) rather than a JSON text read by
    /// `json_each`.
    pub arrays: bool,
    /// Whether placeholders carry their type (`$3::text`), so that the server never guesses.
    pub typed_params: bool,
    /// `strpos(h, n)` or `instr(h, n)`: the 1-based position of a substring, 0 if absent.
    pub position_fn: &'static str,
    /// A prefix test that the engine runs as an index range scan, if it has one.
    pub starts_with_fn: Option<&'static str>,
    /// Whether a write numbers its events itself, in its transaction (SQLite: one writer, so
    /// commit order is the order of the writes). Otherwise events are written unnumbered and
    /// the engine's sequencer numbers them after commit (PostgreSQL: writers to one tenant
    /// then never wait for each other).
    pub seq_in_write: bool,
    /// The condition "the user document `doc` is active" (`active` is not `false`).
    pub active_user: &'static str,
}

/// SQLite (3.35 or later: `RETURNING`, `UPDATE ... FROM`, JSON functions).
pub const SQLITE: Dialect = Dialect {
    name: "sqlite",
    row_locks: false,
    arrays: false,
    typed_params: false,
    position_fn: "instr",
    starts_with_fn: None,
    seq_in_write: true,
    active_user: "coalesce(doc ->> 'active', 1) <> 0",
};

/// PostgreSQL (13 or later).
pub const POSTGRES: Dialect = Dialect {
    name: "postgres",
    row_locks: true,
    arrays: true,
    typed_params: true,
    position_fn: "strpos",
    starts_with_fn: Some("starts_with"),
    seq_in_write: false,
    active_user: "coalesce((CAST(doc AS jsonb) -> 'active') <> 'false'::jsonb, true)",
};

/// The SQL type of a placeholder, where the dialect wants it spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// text
    Text,
    /// bigint
    Int,
}

impl Dialect {
    /// The suffix of a `SELECT` that takes `lock` (empty where there are no row locks).
    pub fn lock(&self, lock: Lock) -> &'static str {
        if !self.row_locks {
            return "";
        }
        match lock {
            Lock::KeyShare => " FOR KEY SHARE",
            Lock::NoKeyUpdate => " FOR NO KEY UPDATE",
            Lock::Update => " FOR UPDATE",
        }
    }

    /// Placeholder `n` of type `ty`.
    pub fn param(&self, n: usize, ty: Ty) -> String {
        match (self.typed_params, ty) {
            (false, _) => format!("${n}"),
            (true, Ty::Text) => format!("${n}::text"),
            (true, Ty::Int) => format!("${n}::bigint"),
        }
    }

    /// `col` starts with the text of placeholder `p`, as an index range scan: PostgreSQL's
    /// `starts_with` under the C collation; on SQLite the range `p <= col < upper`, where `upper`
    /// (placeholder `upper`, see [`prefix_upper_bound`]) is the first text after every text
    /// that starts with `p` (none: every text from `p` on).
    pub fn starts_with(&self, col: &str, p: &str, upper: Option<&str>) -> String {
        match (self.starts_with_fn, upper) {
            (Some(f), _) => format!("{f}({col}, {p})"),
            (None, Some(u)) => format!("({col} >= {p} AND {col} < {u})"),
            (None, None) => format!("{col} >= {p}"),
        }
    }

    /// `expr` is one of the values of the list bound at placeholder `n`.
    pub fn in_list(&self, expr: &str, n: usize) -> String {
        if self.arrays {
            format!("{expr} = ANY(${n})")
        } else {
            format!("{expr} IN (SELECT value FROM json_each(${n}))")
        }
    }

    /// A table `u(c1, c2, ...)` whose rows zip the lists bound at the given placeholders, each
    /// with its column name and element type.
    pub fn zip_lists(&self, cols: &[(usize, &str, Ty)]) -> String {
        if self.arrays {
            let params: Vec<String> = cols
                .iter()
                .map(|(n, _, ty)| match ty {
                    Ty::Text => format!("${n}::text[]"),
                    Ty::Int => format!("${n}::bigint[]"),
                })
                .collect();
            let names: Vec<&str> = cols.iter().map(|(_, c, _)| *c).collect();
            return format!("unnest({}) AS u({})", params.join(", "), names.join(", "));
        }
        let mut select = Vec::new();
        let mut from = Vec::new();
        for (i, (n, c, _)) in cols.iter().enumerate() {
            select.push(format!("j{i}.value AS {c}"));
            from.push(if i == 0 {
                format!("json_each(${n}) j0")
            } else {
                format!("JOIN json_each(${n}) j{i} ON j{i}.key = j0.key")
            });
        }
        format!("(SELECT {} FROM {}) AS u", select.join(", "), from.join(" "))
    }
}

/// The least text greater than every text that starts with `prefix`, in the byte order of
/// UTF-8 (which is the order of code points): `prefix` with its last character raised by one
/// (surrogates skipped), after dropping trailing characters that cannot be raised. `None` when
/// there is no such text (an empty prefix, or one of U+10FFFF only): then every text from
/// `prefix` on starts with it.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(c) = next {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A failed statement: a broken uniqueness constraint (named by the engine's words for it,
/// e.g. `resources.external_id` or `resources_external_id`), or any other failure.
#[derive(Debug)]
pub enum SqlError {
    /// A unique index or constraint refused the row.
    Unique(String),
    /// Anything else.
    Store(StoreError),
}

impl From<SqlError> for StoreError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unique(what) => StoreError::Backend(format!("unique constraint {what}")),
            SqlError::Store(e) => e,
        }
    }
}

impl From<StoreError> for SqlError {
    fn from(e: StoreError) -> Self {
        SqlError::Store(e)
    }
}

/// The result of a statement.
pub type SqlResult<T> = std::result::Result<T, SqlError>;

/// A connection (or a transaction on one) that the store operations run statements on.
///
/// The SQLite engine's futures never wait (rusqlite is synchronous; its engine runs them on its
/// own threads), the PostgreSQL engine's do (tokio-postgres).
pub trait Conn: Send {
    /// How this engine spells what differs.
    fn dialect(&self) -> &'static Dialect;
    /// Runs a statement and returns its rows.
    fn query(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = SqlResult<Vec<Row>>> + Send;
    /// Runs a statement and returns the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = SqlResult<u64>> + Send;

    /// Notes that the running write appended an event to a tenant's feed (numbered `seq`, or 0
    /// if the sequencer numbers it), for the engine to signal once the write commits.
    fn appended(&mut self, tenant: i64, seq: i64);

    /// What the running write changes in its tenants' resource counters, applied once it
    /// succeeded (`paging::run`).
    fn tally(&mut self) -> &mut Tally;

    /// The resource rows the running write holds, where the engine has row locks (see
    /// [`locks`]); `None` where there is one writer.
    fn locks(&mut self) -> Option<&mut locks::Locks> {
        None
    }

    /// Runs a statement that returns at most one row.
    fn opt(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = SqlResult<Option<Row>>> + Send {
        async move {
            let mut rows = self.query(sql, args).await?;
            if rows.len() > 1 {
                return Err(StoreError::Backend(format!("expected at most one row, got {}", rows.len())).into());
            }
            Ok(rows.pop())
        }
    }
}

/// How a resource type is stored in the `kind` column.
pub(crate) fn kind_code(kind: Kind) -> i64 {
    match kind {
        Kind::User => 0,
        Kind::Group => 1,
    }
}

/// The resource type of a stored `kind` code.
pub(crate) fn kind_of(code: i64) -> Result<Kind> {
    match code {
        0 => Ok(Kind::User),
        1 => Ok(Kind::Group),
        other => Err(StoreError::Corrupt(format!("unknown resource kind {other}"))),
    }
}

/// Whether a store call reads or writes, and how it needs to be isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A read of one row by key (or a few statements that need no common snapshot).
    Point,
    /// Several reads that must see one snapshot (a count and its page).
    Snapshot,
    /// A write: one transaction, committed before the caller is answered.
    Write,
}

/// One store call as an owned value that an engine can run wherever it likes: on a blocking
/// thread, in a group commit, or on an async connection.
pub trait Operation: Send + Sync + 'static {
    /// What the call returns.
    type Output: Send + 'static;
    /// How the call must be isolated.
    const MODE: Mode;
    /// Runs the call's statements on `c` (inside a transaction for `Snapshot` and `Write`).
    fn run<C: Conn>(&self, c: &mut C, ctx: &ops::Context) -> impl Future<Output = Result<Self::Output>> + Send;
    /// Whether the call reads a few rows by key, so that an engine may run it on the caller's
    /// thread (SQLite does when a reader connection is free): point reads, and the searches
    /// that are look-ups of one resource by a unique key.
    fn quick(&self) -> bool {
        Self::MODE == Mode::Point
    }
}

/// An engine: runs operations on its connections. `Store` is implemented once for every
/// engine, in terms of this (see `ops`).
pub trait Engine: Send + Sync + 'static {
    /// The engine's name in metrics labels (`sqlite`, `postgres`).
    const NAME: &'static str;
    /// Runs an operation, as its `MODE` says.
    fn execute<O: Operation>(&self, op: O) -> impl Future<Output = Result<O::Output>> + Send;
    /// Who waits for which tenant's feed.
    fn signal(&self) -> &crate::FeedSignal;
    /// Makes every committed event of the tenant readable before a read of its feed (an
    /// engine whose events are numbered after commit numbers the pending ones now), so that
    /// a reader always sees the writes that were acknowledged before it read.
    fn settle(&self, tenant: i64) -> impl Future<Output = Result<()>> + Send {
        let _ = tenant;
        async { Ok(()) }
    }
    /// Sets the engine's gauges (see [`crate::Store::report_metrics`]).
    fn report_gauges(&self) {}
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn the_upper_bound_of_a_prefix_is_just_past_every_text_that_starts_with_it() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"), "surrogates skipped");
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
        for (p, s) in [("ab", "ab"), ("ab", "abz\u{10FFFF}\u{10FFFF}"), ("é", "éa")] {
            let u = prefix_upper_bound(p).unwrap_or_default();
            assert!(p <= s && s < u.as_str(), "{p} <= {s} < {u}");
        }
        for (p, s) in [("ab", "ac"), ("ab", "b"), ("ab", "aa")] {
            let u = prefix_upper_bound(p).unwrap_or_default();
            assert!(!(p <= s && s < u.as_str()), "{s} is outside [{p}, {u})");
        }
    }
}
