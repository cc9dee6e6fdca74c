//! Moving tenants between stores: `scimd export` (JSON Lines on stdout), `scimd import` (JSON
//! Lines on stdin) and `scimd store copy` (the same two, streamed in-process from one store to
//! another). docs/export-format.md describes the format.
//!
//! A file is a header line, then one JSON object per line with a `kind`: with `--all` the API
//! keys first, then each tenant's section (`tenant`, its `token`s and `invite`s, its `user`s and
//! `group`s in the order they were created, `member`s, `event`s, and a `tenant_end` that counts
//! them), then the `webhook`s, and an `end` line. Tenants are named, never numbered: the
//! target gives them its own keys. Everything else keeps its id, version, times and feed
//! position, so a vendor's cursor into a tenant's feed reads the same next events after a
//! move, and a token authenticates as before (only digests are in the file).
//!
//! Both directions stream: the export reads each table a page at a time
//! ([`PAGE`] rows) and the import writes batches of [`BATCH`] rows, each one transaction,
//! while it reads the next. An import upserts, so running it again leaves the same store; it
//! ends by counting what each tenant holds in the target against what the file said.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use scim_core::{Kind, Registry};
use scim_store::transfer::{
    Cursor, DeliveryDump, GuardState, ImportRows, MemberDump, Rejected, TenantDump, TrafficDump, TransferCounts,
    WebhookDump,
};
use scim_store::{ApiKey, Cycle, Event, Invite, Record, Store, Token, Traffic, Webhook, WebhookFormat};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// The `format` of the header line.
pub const FORMAT: &str = "scimd-export";
/// The version of the format this scimd writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Rows read from the store per page.
pub const PAGE: u64 = 1_000;
/// Rows written to the store per transaction.
pub const BATCH: usize = 1_000;
/// The longest line an import reads.
pub const MAX_LINE: usize = 64 << 20;

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The input is not a valid export (exit code 2); the message names the line.
    Input(String),
    /// Anything else: the database, a conflict with what the target holds, counts that do not
    /// match (exit code 1).
    Runtime(String),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Input(m) | TransferError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TransferError {}

fn runtime(e: impl std::fmt::Display) -> TransferError {
    TransferError::Runtime(e.to_string())
}

// ---------------------------------------------------------------- the lines

/// The first line of a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    /// The schema version of the store it was exported from.
    schema: i64,
    #[serde(with = "rfc3339")]
    exported_at: OffsetDateTime,
    /// The scimd that wrote it.
    scimd: String,
    /// `all` (with API keys and webhooks) or `tenants`.
    scope: String,
}

/// Every line after the header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    ApiKey(ApiKeyLine),
    Tenant(TenantLine),
    Token(TokenLine),
    Invite(InviteLine),
    User(ResourceLine),
    Group(ResourceLine),
    Member(MemberLine),
    Event(EventLine),
    TenantEnd(TenantEndLine),
    Webhook(WebhookLine),
    End(EndLine),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyLine {
    id: String,
    /// SHA-256 of the secret, hex.
    digest: String,
    label: Option<String>,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    revoked: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantLine {
    name: String,
    required: Vec<String>,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    feed: FeedLine,
    guard: GuardLine,
    traffic: Option<TrafficLine>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedLine {
    /// The `seq` of the newest event.
    position: i64,
    /// The events up to here were pruned.
    pruned: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardLine {
    share_permille: i64,
    min_users: i64,
    window_us: i64,
    #[serde(with = "rfc3339")]
    window_start: OffsetDateTime,
    count: i64,
    base: i64,
    held_from: Option<i64>,
    #[serde(with = "rfc3339::option", default)]
    tripped_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficLine {
    #[serde(with = "rfc3339::option", default)]
    first_request: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    last_request: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    first_success: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    last_success: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    first_user: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    last_write: Option<OffsetDateTime>,
    unauthorized_streak: i64,
    cycle: Option<CycleLine>,
    previous: Option<CycleLine>,
    health: Option<String>,
    log_seq: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CycleLine {
    #[serde(with = "rfc3339")]
    start: OffsetDateTime,
    #[serde(with = "rfc3339")]
    last: OffsetDateTime,
    requests: i64,
    errors: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLine {
    tenant: String,
    id: String,
    /// SHA-256 of the secret part, hex.
    digest: String,
    label: Option<String>,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    expires: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    revoked: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    last_used: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteLine {
    tenant: String,
    id: String,
    digest: String,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    expires: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    revoked: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option", default)]
    redeemed: Option<OffsetDateTime>,
    /// The token the link revealed.
    token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceLine {
    tenant: String,
    id: String,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    modified: OffsetDateTime,
    /// The ETag is `W/"<version>"`.
    version: i64,
    /// The stored document (without `id`, `meta`, members or groups).
    doc: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberLine {
    tenant: String,
    group: String,
    member: String,
    /// The display the client sent with the member (null: the member's own name is shown).
    display: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    tenant: String,
    seq: i64,
    id: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(with = "rfc3339")]
    at: OffsetDateTime,
    /// The event's fields but `id`, `tenant` and `seq`, as the feed serves them.
    body: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEndLine {
    tenant: String,
    counts: CountsLine,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountsLine {
    tokens: u64,
    invites: u64,
    users: u64,
    groups: u64,
    members: u64,
    events: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookLine {
    id: String,
    /// Empty for a receiver that polls.
    url: String,
    /// The tenant whose events it receives; null: every tenant's.
    tenant: Option<String>,
    events: Vec<String>,
    format: String,
    secret: String,
    old_secret: Option<String>,
    #[serde(with = "rfc3339::option", default)]
    old_secret_until: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    created: OffsetDateTime,
    deliveries: Vec<DeliveryLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryLine {
    tenant: String,
    position: i64,
    failures: i64,
    #[serde(with = "rfc3339::option", default)]
    failing_since: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    next_at: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    last_at: Option<OffsetDateTime>,
    last_outcome: Option<String>,
    failed: bool,
    discard: Option<[i64; 2]>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    tenants: u64,
    webhooks: u64,
    api_keys: u64,
}

/// Instants as RFC 3339 text with every digit of the fraction the store keeps (microseconds).
mod rfc3339 {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _, ser::Error as _};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| D::Error::custom(format!("\"{text}\" is not an RFC 3339 time ({e})")))
    }

    pub mod option {
        use serde::{Deserialize as _, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            Option::<serde_json::Value>::deserialize(d)?
                .filter(|v| !v.is_null())
                .map(|v| super::deserialize(v).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// `1 user`, `2 users`.
fn n(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// A SHA-256 digest in hex, or why not.
fn digest(text: &str) -> Result<Vec<u8>, String> {
    match unhex(text) {
        Some(d) if d.len() == 32 => Ok(d),
        _ => Err(format!("digest \"{text}\" is not a SHA-256 digest in hex (64 hex digits)")),
    }
}

/// Whether a JSON value holds U+0000 anywhere (PostgreSQL cannot store it; scimd refuses it).
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

impl From<TransferCounts> for CountsLine {
    fn from(c: TransferCounts) -> Self {
        CountsLine {
            tokens: c.tokens,
            invites: c.invites,
            users: c.users,
            groups: c.groups,
            members: c.members,
            events: c.events,
        }
    }
}

impl CountsLine {
    fn total(&self) -> u64 {
        self.tokens + self.invites + self.users + self.groups + self.members + self.events
    }

    /// `3 users, 1 group, ...`.
    fn describe(&self) -> String {
        [
            n(self.users, "user", "users"),
            n(self.groups, "group", "groups"),
            n(self.members, "membership", "memberships"),
            n(self.events, "event", "events"),
            n(self.tokens, "token", "tokens"),
            n(self.invites, "setup link", "setup links"),
        ]
        .join(", ")
    }

    /// What differs from `other`: `users: 3 in the file, 4 in the target`.
    fn differences(&self, target: &CountsLine) -> Vec<String> {
        [
            ("users", self.users, target.users),
            ("groups", self.groups, target.groups),
            ("memberships", self.members, target.members),
            ("events", self.events, target.events),
            ("tokens", self.tokens, target.tokens),
            ("setup links", self.invites, target.invites),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("{what}: {a} in the file, {b} in the target"))
        .collect()
    }
}

// ---------------------------------------------------------------- the ends of a stream

/// Where an export writes its lines.
pub enum Sink {
    /// A file or stdout.
    Writer(Box<dyn AsyncWrite + Unpin + Send>),
    /// An import in the same process.
    Channel(mpsc::Sender<String>),
}

impl Sink {
    async fn line(&mut self, line: String) -> Result<(), TransferError> {
        match self {
            Sink::Writer(w) => {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                w.write_all(&bytes).await.map_err(|e| runtime(format!("cannot write the export: {e}")))
            }
            Sink::Channel(tx) => tx.send(line).await.map_err(|_| TransferError::Runtime(SINK_CLOSED.into())),
        }
    }

    async fn finish(&mut self) -> Result<(), TransferError> {
        match self {
            Sink::Writer(w) => w.flush().await.map_err(|e| runtime(format!("cannot write the export: {e}"))),
            Sink::Channel(_) => Ok(()),
        }
    }
}

const SINK_CLOSED: &str = "the import stopped reading";

/// Where an import reads its lines.
pub enum Source {
    /// A file or stdin.
    Reader(Box<dyn AsyncBufRead + Unpin + Send>),
    /// An export in the same process.
    Channel(mpsc::Receiver<String>),
}

impl Source {
    /// The next line (without its end), `None` at the end of the input.
    async fn next(&mut self, number: usize) -> Result<Option<String>, TransferError> {
        let r = match self {
            Source::Channel(rx) => return Ok(rx.recv().await),
            Source::Reader(r) => r,
        };
        let mut buf = Vec::new();
        let mut ended = false;
        loop {
            let chunk = r.fill_buf().await.map_err(|e| runtime(format!("line {number}: cannot read: {e}")))?;
            if chunk.is_empty() {
                ended = true;
                break;
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf.extend_from_slice(&chunk[..i]);
                    r.consume(i + 1);
                    break;
                }
                None => {
                    let n = chunk.len();
                    buf.extend_from_slice(chunk);
                    r.consume(n);
                }
            }
            if buf.len() > MAX_LINE {
                return Err(TransferError::Input(format!("line {number} is longer than {} MiB", MAX_LINE >> 20)));
            }
        }
        if ended && buf.is_empty() {
            return Ok(None);
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf).map(Some).map_err(|_| TransferError::Input(format!("line {number} is not UTF-8")))
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let rate = |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0}/s", state.per_sec());
    };
    match total {
        Some(n) => ProgressBar::new(n)
            .with_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} rows, {rate}, {eta} left")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .with_key("rate", rate)
                    .progress_chars("=> "),
            )
            .with_message(what.to_owned()),
        None => {
            let bar = ProgressBar::new_spinner()
                .with_style(
                    ProgressStyle::with_template("{spinner} {msg} {human_pos} lines, {rate}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .with_key("rate", rate),
                )
                .with_message(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
    }
}

// ---------------------------------------------------------------- export

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant, the API keys and the webhooks.
    All,
    /// These tenants.
    Tenants(Vec<String>),
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Each tenant with the counts of its lines.
    pub tenants: Vec<(String, String)>,
    /// API key lines.
    pub api_keys: u64,
    /// Webhook lines.
    pub webhooks: u64,
    /// All lines.
    pub lines: u64,
}

struct Exporter<'a> {
    store: &'a dyn Store,
    sink: &'a mut Sink,
    bar: &'a ProgressBar,
    lines: u64,
}

impl Exporter<'_> {
    async fn put(&mut self, line: &impl Serialize) -> Result<(), TransferError> {
        let text = serde_json::to_string(line).map_err(|e| runtime(format!("cannot encode a line: {e}")))?;
        self.sink.line(text).await?;
        self.lines += 1;
        Ok(())
    }

    async fn row(&mut self, line: Line) -> Result<(), TransferError> {
        self.put(&line).await?;
        self.bar.inc(1);
        Ok(())
    }

    /// One tenant's section; returns its counts.
    async fn tenant(&mut self, t: TenantDump) -> Result<CountsLine, TransferError> {
        let name = t.name.clone();
        let s = self.store;
        self.put(&Line::Tenant(tenant_line(&t))).await?;
        let mut counts = CountsLine::default();
        for k in s.list_tokens(t.id).await.map_err(runtime)? {
            self.row(Line::Token(TokenLine {
                tenant: name.clone(),
                id: k.id,
                digest: hex(&k.digest),
                label: k.label,
                created: k.created,
                expires: k.expires,
                revoked: k.revoked,
                last_used: k.last_used,
            }))
            .await?;
            counts.tokens += 1;
        }
        let mut invites = s.list_invites(t.id).await.map_err(runtime)?;
        invites.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        for i in invites {
            self.row(Line::Invite(InviteLine {
                tenant: name.clone(),
                id: i.id,
                digest: hex(&i.digest),
                created: i.created,
                expires: i.expires,
                revoked: i.revoked,
                redeemed: i.redeemed,
                token: i.token,
            }))
            .await?;
            counts.invites += 1;
        }
        let mut after = Some(Cursor::default());
        while let Some(cursor) = after {
            let page = s.export_resources(t.id, cursor, PAGE).await.map_err(runtime)?;
            for r in page.rows {
                let line = ResourceLine {
                    tenant: name.clone(),
                    id: r.id,
                    created: r.created,
                    modified: r.last_modified,
                    version: r.version,
                    doc: r.doc,
                };
                if r.kind == Kind::User {
                    counts.users += 1;
                    self.row(Line::User(line)).await?;
                } else {
                    counts.groups += 1;
                    self.row(Line::Group(line)).await?;
                }
            }
            after = page.next;
        }
        let mut after = Some(Cursor::default());
        while let Some(cursor) = after {
            let page = s.export_members(t.id, cursor, PAGE).await.map_err(runtime)?;
            for m in page.rows {
                let line = MemberLine { tenant: name.clone(), group: m.group, member: m.member, display: m.display };
                self.row(Line::Member(line)).await?;
                counts.members += 1;
            }
            after = page.next;
        }
        let mut seq = t.feed_pruned;
        while seq < t.feed_position {
            let feed = s.events(t.id, seq, PAGE).await.map_err(runtime)?;
            if feed.events.is_empty() {
                break;
            }
            for e in feed.events.into_iter().take_while(|e| e.seq <= t.feed_position) {
                seq = e.seq;
                let body: Value = serde_json::from_str(&e.body)
                    .map_err(|err| runtime(format!("tenant {name}: event {} is not JSON: {err}", e.seq)))?;
                self.row(Line::Event(EventLine {
                    tenant: name.clone(),
                    seq: e.seq,
                    id: e.id,
                    ty: e.kind,
                    at: e.at,
                    body,
                }))
                .await?;
                counts.events += 1;
            }
        }
        // The source must not have changed meanwhile (every change is an event, and pruning
        // moves the pruned position): else the section would mix two states.
        let now = s.export_tenant(name.clone()).await.map_err(runtime)?;
        let (position, pruned) = now.map_or((-1, -1), |n| (n.feed_position, n.feed_pruned));
        if (position, pruned) != (t.feed_position, t.feed_pruned) {
            return Err(TransferError::Runtime(format!(
                "tenant {name} changed while it was exported (feed position {} pruned {}, now {position} pruned \
                 {pruned}): stop the writes to the source (stop scimd, or make the database read-only) and export again",
                t.feed_position, t.feed_pruned
            )));
        }
        self.put(&Line::TenantEnd(TenantEndLine { tenant: name, counts })).await?;
        Ok(counts)
    }
}

fn tenant_line(t: &TenantDump) -> TenantLine {
    let g = &t.guard;
    TenantLine {
        name: t.name.clone(),
        required: t.required.clone(),
        created: t.created,
        feed: FeedLine { position: t.feed_position, pruned: t.feed_pruned },
        guard: GuardLine {
            share_permille: g.share_permille,
            min_users: g.min_users,
            window_us: g.window_us,
            window_start: g.window_start,
            count: g.count,
            base: g.base,
            held_from: g.held_from,
            tripped_at: g.tripped_at,
        },
        traffic: t.traffic.as_ref().map(|tr| {
            let s = &tr.summary;
            let cycle = |c: Option<Cycle>| {
                c.map(|c| CycleLine { start: c.start, last: c.last, requests: c.requests, errors: c.errors })
            };
            TrafficLine {
                first_request: s.first_request,
                last_request: s.last_request,
                first_success: s.first_success,
                last_success: s.last_success,
                first_user: s.first_user,
                last_write: s.last_write,
                unauthorized_streak: s.unauthorized_streak,
                cycle: cycle(s.cycle),
                previous: cycle(s.previous),
                health: s.health.clone(),
                log_seq: tr.log_seq,
            }
        }),
    }
}

/// Writes the export of `scope` from `store` to `sink`, a tenant at a time and each table a
/// page at a time; `bar` (see [`progress`]) counts the rows. The source should not be written
/// meanwhile: a tenant whose feed moves while it is exported fails the export.
pub async fn export(
    store: &dyn Store,
    scope: &Scope,
    sink: &mut Sink,
    bar: &ProgressBar,
) -> Result<ExportReport, TransferError> {
    // The source was opened at this scimd's schema version (`open_source` refuses others).
    let schema = scim_store::sqlite::SCHEMA_VERSION;
    let names: Vec<String> = match scope {
        Scope::All => store.list_tenants().await.map_err(runtime)?.into_iter().map(|t| t.name).collect(),
        Scope::Tenants(names) => names.clone(),
    };
    let mut dumps = Vec::with_capacity(names.len());
    let mut total = 0;
    for name in &names {
        let t = store
            .export_tenant(name.clone())
            .await
            .map_err(runtime)?
            .ok_or_else(|| TransferError::Runtime(format!("no tenant named \"{name}\"")))?;
        total += CountsLine::from(store.transfer_counts(t.id).await.map_err(runtime)?).total();
        dumps.push(t);
    }
    let api_keys = if *scope == Scope::All { store.list_api_keys().await.map_err(runtime)? } else { Vec::new() };
    let webhooks = if *scope == Scope::All { store.list_webhooks().await.map_err(runtime)? } else { Vec::new() };
    bar.set_length(total + (api_keys.len() + webhooks.len()) as u64);
    let mut x = Exporter { store, sink, bar, lines: 0 };
    x.put(&Header {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        schema,
        exported_at: {
            let now = OffsetDateTime::now_utc();
            now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
        },
        scimd: env!("CARGO_PKG_VERSION").into(),
        scope: if *scope == Scope::All { "all" } else { "tenants" }.into(),
    })
    .await?;
    let mut report = ExportReport::default();
    for k in api_keys {
        x.row(Line::ApiKey(ApiKeyLine {
            id: k.id,
            digest: hex(&k.digest),
            label: k.label,
            created: k.created,
            revoked: k.revoked,
        }))
        .await?;
        report.api_keys += 1;
    }
    let mut tenant_names: HashMap<i64, String> = HashMap::new();
    for t in dumps {
        tenant_names.insert(t.id, t.name.clone());
        let name = t.name.clone();
        let counts = x.tenant(t).await?;
        report.tenants.push((name, counts.describe()));
    }
    for (w, deliveries) in webhooks {
        let tenant = match w.tenant {
            None => None,
            Some(id) => Some(
                tenant_names
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| runtime(format!("webhook {} names a tenant (key {id}) that is gone", w.id)))?,
            ),
        };
        let deliveries = deliveries
            .into_iter()
            .map(|d| DeliveryLine {
                tenant: d.tenant_name,
                position: d.position,
                failures: d.failures,
                failing_since: d.failing_since,
                next_at: d.next_at,
                last_at: d.last_at,
                last_outcome: d.last_outcome,
                failed: d.failed,
                discard: d.discard.map(|(a, b)| [a, b]),
            })
            .collect();
        x.row(Line::Webhook(WebhookLine {
            id: w.id,
            url: w.url,
            tenant,
            events: w.events,
            format: w.format.as_str().into(),
            secret: w.secret,
            old_secret: w.old_secret,
            old_secret_until: w.old_secret_until,
            created: w.created,
            deliveries,
        }))
        .await?;
        report.webhooks += 1;
    }
    let end = EndLine { tenants: report.tenants.len() as u64, webhooks: report.webhooks, api_keys: report.api_keys };
    x.put(&Line::End(end)).await?;
    report.lines = x.lines;
    x.sink.finish().await?;
    Ok(report)
}

// ---------------------------------------------------------------- import

/// One tenant's result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantResult {
    /// The tenant.
    pub name: String,
    /// Whether the import made it (false: an earlier import of it had).
    pub created: bool,
    /// The counts the file states, described.
    pub counts: String,
    /// What the target holds otherwise (empty: the same).
    pub mismatches: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Each tenant.
    pub tenants: Vec<TenantResult>,
    /// API keys written.
    pub api_keys: u64,
    /// Webhooks written.
    pub webhooks: u64,
    /// Lines read.
    pub lines: usize,
}

impl ImportReport {
    /// Whether every tenant's counts in the target are the file's.
    pub fn verified(&self) -> bool {
        self.tenants.iter().all(|t| t.mismatches.is_empty())
    }

    /// The short summary printed on stderr.
    pub fn summary(&self, took: Duration) -> String {
        let mut text = String::new();
        for t in &self.tenants {
            let how = if t.created { "imported" } else { "imported again" };
            let check = if t.mismatches.is_empty() {
                "the target holds the same".to_owned()
            } else {
                format!("MISMATCH: {}", t.mismatches.join("; "))
            };
            text += &format!("tenant {}: {how}: {}: {check}\n", t.name, t.counts);
        }
        text += &format!(
            "{}, {}, {} from {} lines in {:.1} s{}\n",
            n(self.tenants.len() as u64, "tenant", "tenants"),
            n(self.webhooks, "webhook", "webhooks"),
            n(self.api_keys, "API key", "API keys"),
            self.lines,
            took.as_secs_f64(),
            if self.verified() { "; counts verified" } else { "; COUNTS DIFFER" }
        );
        text
    }
}

/// A batch being gathered: rows of one kind, with the line each came from.
enum Pending {
    Tokens(Vec<Token>),
    Invites(Vec<Invite>),
    Resources(Vec<Record>),
    Members(Vec<MemberDump>),
    Events(Vec<Event>),
    ApiKeys(Vec<ApiKey>),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Tokens(v) => v.len(),
            Pending::Invites(v) => v.len(),
            Pending::Resources(v) => v.len(),
            Pending::Members(v) => v.len(),
            Pending::Events(v) => v.len(),
            Pending::ApiKeys(v) => v.len(),
        }
    }

    fn same_kind(&self, other: &Pending) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    fn rows(self, tenant: Option<i64>) -> ImportRows {
        let tenant = tenant.unwrap_or_default();
        match self {
            Pending::Tokens(rows) => ImportRows::Tokens { tenant, rows },
            Pending::Invites(rows) => ImportRows::Invites { tenant, rows },
            Pending::Resources(rows) => ImportRows::Resources { tenant, rows },
            Pending::Members(rows) => ImportRows::Members { tenant, rows },
            Pending::Events(rows) => ImportRows::Events { tenant, rows },
            Pending::ApiKeys(rows) => ImportRows::ApiKeys(rows),
        }
    }
}

/// The tenant whose section is being read.
struct Section {
    name: String,
    id: i64,
    created: bool,
    feed: FeedLine,
    last_seq: i64,
    read: CountsLine,
}

/// A batch handed to the store, with the lines of its rows.
type InFlight = tokio::task::JoinHandle<(scim_store::Result<Vec<Rejected>>, Vec<usize>)>;

struct Importer {
    store: Arc<dyn Store>,
    registry: Registry,
    section: Option<Section>,
    /// Tenants of the file (name: target key, feed position).
    tenants: HashMap<String, (i64, i64)>,
    pending: Option<(Pending, Vec<usize>)>,
    in_flight: Option<InFlight>,
    report: ImportReport,
    ended: bool,
}

fn input(n: usize, what: impl std::fmt::Display) -> TransferError {
    TransferError::Input(format!("line {n}: {what}"))
}

/// `line 7` or `lines 7-90`.
fn line_range(lines: &[usize]) -> String {
    match (lines.first(), lines.last()) {
        (Some(a), Some(b)) if a != b => format!("lines {a}-{b}"),
        (Some(a), _) => format!("line {a}"),
        _ => "a batch".to_owned(),
    }
}

impl Importer {
    /// Waits for the batch in flight; an error names its lines.
    async fn settle(&mut self) -> Result<(), TransferError> {
        let Some(handle) = self.in_flight.take() else { return Ok(()) };
        let (result, lines) = handle.await.map_err(|e| runtime(format!("an import batch failed: {e}")))?;
        match result {
            Err(e) => Err(runtime(format!("{}: {e}", line_range(&lines)))),
            Ok(rejected) => match rejected.first() {
                None => Ok(()),
                Some(Rejected { index, reason }) => {
                    let line = lines.get(*index).copied().unwrap_or_default();
                    let more = if rejected.len() > 1 {
                        format!(" (and {} more rows)", rejected.len() - 1)
                    } else {
                        String::new()
                    };
                    Err(runtime(format!("line {line}: refused by the target: {reason}{more}")))
                }
            },
        }
    }

    /// Hands the gathered batch to the store (after the one in flight is done), and goes on
    /// reading while it is written.
    async fn flush(&mut self) -> Result<(), TransferError> {
        self.settle().await?;
        let Some((batch, lines)) = self.pending.take() else { return Ok(()) };
        let rows = batch.rows(self.section.as_ref().map(|s| s.id));
        let store = Arc::clone(&self.store);
        self.in_flight = Some(tokio::spawn(async move { (store.import_rows(rows).await, lines) }));
        Ok(())
    }

    async fn push(&mut self, n: usize, row: Pending) -> Result<(), TransferError> {
        if self.pending.as_ref().is_some_and(|(p, _)| !p.same_kind(&row) || p.len() >= BATCH) {
            self.flush().await?;
        }
        match (&mut self.pending, row) {
            (None, row) => self.pending = Some((row, vec![n])),
            (Some((p, lines)), row) => {
                lines.push(n);
                match (p, row) {
                    (Pending::Tokens(v), Pending::Tokens(r)) => v.extend(r),
                    (Pending::Invites(v), Pending::Invites(r)) => v.extend(r),
                    (Pending::Resources(v), Pending::Resources(r)) => v.extend(r),
                    (Pending::Members(v), Pending::Members(r)) => v.extend(r),
                    (Pending::Events(v), Pending::Events(r)) => v.extend(r),
                    (Pending::ApiKeys(v), Pending::ApiKeys(r)) => v.extend(r),
                    _ => return Err(runtime("an import batch mixed kinds")),
                }
            }
        }
        Ok(())
    }

    /// The section a tenant's row belongs in: the current one, which must be `tenant`'s.
    fn section(&mut self, n: usize, tenant: &str, kind: &str) -> Result<&mut Section, TransferError> {
        match self.section.as_ref().map(|s| s.name.as_str()) {
            Some(name) if name == tenant => {}
            Some(name) => {
                return Err(input(
                    n,
                    format!("a {kind} of tenant \"{tenant}\" inside the section of tenant \"{name}\""),
                ));
            }
            None => return Err(input(n, format!("a {kind} of tenant \"{tenant}\" outside its tenant's section"))),
        }
        self.section.as_mut().ok_or_else(|| runtime("no tenant section"))
    }

    fn outside(&self, n: usize, kind: &str) -> Result<(), TransferError> {
        match &self.section {
            Some(s) => Err(input(
                n,
                format!("a {kind} line inside the section of tenant \"{}\" (no tenant_end before it)", s.name),
            )),
            None => Ok(()),
        }
    }

    async fn line(&mut self, n: usize, text: &str) -> Result<(), TransferError> {
        if self.ended {
            return Err(input(n, "a line after the \"end\" line"));
        }
        let line: Line = serde_json::from_str(text).map_err(|e| input(n, e))?;
        match line {
            Line::ApiKey(k) => {
                self.outside(n, "api_key")?;
                let digest = digest(&k.digest).map_err(|e| input(n, e))?;
                let key = ApiKey { id: k.id, digest, label: k.label, created: k.created, revoked: k.revoked };
                self.push(n, Pending::ApiKeys(vec![key])).await?;
                self.report.api_keys += 1;
            }
            Line::Tenant(t) => self.tenant(n, t).await?,
            Line::Token(k) => {
                self.section(n, &k.tenant, "token")?.read.tokens += 1;
                let digest = digest(&k.digest).map_err(|e| input(n, e))?;
                let token = Token {
                    id: k.id,
                    tenant: 0,
                    digest,
                    label: k.label,
                    created: k.created,
                    expires: k.expires,
                    revoked: k.revoked,
                    last_used: k.last_used,
                };
                self.push(n, Pending::Tokens(vec![token])).await?;
            }
            Line::Invite(i) => {
                self.section(n, &i.tenant, "invite")?.read.invites += 1;
                let digest = digest(&i.digest).map_err(|e| input(n, e))?;
                let invite = Invite {
                    id: i.id,
                    tenant: 0,
                    digest,
                    created: i.created,
                    expires: i.expires,
                    revoked: i.revoked,
                    redeemed: i.redeemed,
                    token: i.token,
                };
                self.push(n, Pending::Invites(vec![invite])).await?;
            }
            Line::User(r) => self.resource(n, Kind::User, r).await?,
            Line::Group(r) => self.resource(n, Kind::Group, r).await?,
            Line::Member(m) => {
                self.section(n, &m.tenant, "member")?.read.members += 1;
                let row = MemberDump { group: m.group, member: m.member, display: m.display };
                self.push(n, Pending::Members(vec![row])).await?;
            }
            Line::Event(e) => {
                let s = self.section(n, &e.tenant, "event")?;
                if e.seq <= s.last_seq.max(s.feed.pruned) || e.seq > s.feed.position {
                    return Err(input(
                        n,
                        format!(
                            "event {} is out of order or outside the tenant's feed (after {}, up to position {})",
                            e.seq,
                            s.last_seq.max(s.feed.pruned),
                            s.feed.position
                        ),
                    ));
                }
                s.last_seq = e.seq;
                s.read.events += 1;
                if !e.body.is_object() || has_nul(&e.body) {
                    return Err(input(n, "the event's body is not a JSON object without U+0000"));
                }
                let event = Event { seq: e.seq, id: e.id, kind: e.ty, at: e.at, body: e.body.to_string() };
                self.push(n, Pending::Events(vec![event])).await?;
            }
            Line::TenantEnd(end) => self.tenant_end(n, end).await?,
            Line::Webhook(w) => self.webhook(n, w).await?,
            Line::End(end) => {
                self.outside(n, "end")?;
                self.flush().await?;
                self.settle().await?;
                let read = self.report.tenants.len() as u64;
                if end.tenants != read || end.webhooks != self.report.webhooks || end.api_keys != self.report.api_keys {
                    return Err(input(
                        n,
                        format!(
                            "the end line counts {} tenants, {} webhooks, {} API keys; the file has {read}, {}, {}",
                            end.tenants, end.webhooks, end.api_keys, self.report.webhooks, self.report.api_keys
                        ),
                    ));
                }
                self.ended = true;
            }
        }
        Ok(())
    }

    async fn resource(&mut self, n: usize, kind: Kind, r: ResourceLine) -> Result<(), TransferError> {
        let what = if kind == Kind::User { "user" } else { "group" };
        let s = self.section(n, &r.tenant, what)?;
        if kind == Kind::User {
            s.read.users += 1;
        } else {
            s.read.groups += 1;
        }
        if !r.doc.is_object() || has_nul(&r.doc) {
            return Err(input(n, format!("the {what}'s doc is not a JSON object without U+0000")));
        }
        if r.version < 1 || r.id.is_empty() {
            return Err(input(n, format!("the {what} needs an id and a version of at least 1")));
        }
        let rec = Record {
            kind,
            id: r.id,
            created: r.created,
            last_modified: r.modified,
            version: r.version,
            doc: r.doc,
            members: None,
            groups: None,
        };
        self.push(n, Pending::Resources(vec![rec])).await
    }

    async fn tenant(&mut self, n: usize, t: TenantLine) -> Result<(), TransferError> {
        self.outside(n, "tenant")?;
        self.flush().await?;
        self.settle().await?;
        crate::admin::check_tenant_name(&t.name).map_err(|e| input(n, e))?;
        crate::admin::check_required(&self.registry, &t.required).map_err(|e| input(n, e))?;
        if self.tenants.contains_key(&t.name) {
            return Err(input(n, format!("tenant \"{}\" is in the file twice", t.name)));
        }
        if t.feed.pruned < 0 || t.feed.pruned > t.feed.position {
            return Err(input(n, "the feed's pruned position must be between 0 and its position"));
        }
        let g = &t.guard;
        let dump = TenantDump {
            id: 0,
            name: t.name.clone(),
            required: t.required,
            created: t.created,
            feed_position: t.feed.position,
            feed_pruned: t.feed.pruned,
            guard: GuardState {
                share_permille: g.share_permille,
                min_users: g.min_users,
                window_us: g.window_us,
                window_start: g.window_start,
                count: g.count,
                base: g.base,
                held_from: g.held_from,
                tripped_at: g.tripped_at,
            },
            traffic: t.traffic.map(|tr| {
                let cycle = |c: Option<CycleLine>| {
                    c.map(|c| Cycle { start: c.start, last: c.last, requests: c.requests, errors: c.errors })
                };
                TrafficDump {
                    summary: Traffic {
                        tenant: 0,
                        first_request: tr.first_request,
                        last_request: tr.last_request,
                        first_success: tr.first_success,
                        last_success: tr.last_success,
                        first_user: tr.first_user,
                        last_write: tr.last_write,
                        unauthorized_streak: tr.unauthorized_streak,
                        cycle: cycle(tr.cycle),
                        previous: cycle(tr.previous),
                        health: tr.health,
                    },
                    log_seq: tr.log_seq,
                }
            }),
        };
        let imported = self.store.import_tenant(dump).await.map_err(|e| runtime(format!("line {n}: {e}")))?;
        self.tenants.insert(t.name.clone(), (imported.id, t.feed.position));
        self.section = Some(Section {
            name: t.name,
            id: imported.id,
            created: imported.created,
            feed: t.feed,
            last_seq: 0,
            read: CountsLine::default(),
        });
        Ok(())
    }

    async fn tenant_end(&mut self, n: usize, end: TenantEndLine) -> Result<(), TransferError> {
        let read = self.section(n, &end.tenant, "tenant_end")?.read;
        if read != end.counts {
            return Err(input(
                n,
                format!(
                    "tenant {}'s end line counts {}; its section has {}",
                    end.tenant,
                    end.counts.describe(),
                    read.describe()
                ),
            ));
        }
        self.flush().await?;
        self.settle().await?;
        let Some(s) = self.section.take() else { return Ok(()) };
        let target = CountsLine::from(self.store.transfer_counts(s.id).await.map_err(runtime)?);
        self.report.tenants.push(TenantResult {
            name: s.name,
            created: s.created,
            counts: read.describe(),
            mismatches: read.differences(&target),
        });
        Ok(())
    }

    async fn webhook(&mut self, n: usize, w: WebhookLine) -> Result<(), TransferError> {
        self.outside(n, "webhook")?;
        self.flush().await?;
        self.settle().await?;
        let format = WebhookFormat::parse(&w.format)
            .ok_or_else(|| input(n, format!("unknown webhook format \"{}\" (json or set)", w.format)))?;
        let tenant = |name: &str| -> Result<(i64, i64), TransferError> {
            self.tenants.get(name).copied().ok_or_else(|| {
                input(n, format!("the webhook names tenant \"{name}\", which the file has not imported"))
            })
        };
        let scope = w.tenant.as_deref().map(tenant).transpose()?;
        let mut deliveries = Vec::with_capacity(w.deliveries.len());
        for d in &w.deliveries {
            let (id, position) = tenant(&d.tenant)?;
            if d.position < 0 || d.position > position {
                return Err(input(
                    n,
                    format!("a delivery to tenant {} at position {} beyond its feed", d.tenant, d.position),
                ));
            }
            deliveries.push(DeliveryDump {
                tenant: id,
                position: d.position,
                failures: d.failures,
                failing_since: d.failing_since,
                next_at: d.next_at,
                last_at: d.last_at,
                last_outcome: d.last_outcome.clone(),
                failed: d.failed,
                discard: d.discard.map(|[a, b]| (a, b)),
            });
        }
        let dump = WebhookDump {
            webhook: Webhook {
                id: w.id,
                url: w.url,
                tenant: scope.map(|(id, _)| id),
                events: w.events,
                format,
                secret: w.secret,
                old_secret: w.old_secret,
                old_secret_until: w.old_secret_until,
                created: w.created,
            },
            deliveries,
        };
        let store = Arc::clone(&self.store);
        self.in_flight =
            Some(tokio::spawn(async move { (store.import_rows(ImportRows::Webhook(dump)).await, vec![n]) }));
        self.settle().await?;
        self.report.webhooks += 1;
        Ok(())
    }
}

/// Checks the header line of a file.
fn header(text: Option<&str>) -> Result<Header, TransferError> {
    let bad = |why: &str| {
        TransferError::Input(format!(
            "line 1: {why}: this is not a scimd export (its first line is {{\"format\":\"{FORMAT}\",\"version\":...}})"
        ))
    };
    let Some(text) = text else { return Err(bad("the input is empty")) };
    let v: Value = serde_json::from_str(text).map_err(|_| bad("the first line is not JSON"))?;
    if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(bad("the first line is no header"));
    }
    match v.get("version").and_then(Value::as_u64) {
        Some(n) if n == u64::from(FORMAT_VERSION) => {}
        Some(n) => {
            return Err(TransferError::Input(format!(
                "line 1: the file is of format version {n}; this scimd reads version {FORMAT_VERSION} only"
            )));
        }
        None => return Err(bad("the header has no version")),
    }
    let h: Header = serde_json::from_value(v).map_err(|e| input(1, e))?;
    let this = scim_store::sqlite::SCHEMA_VERSION;
    if h.schema > this {
        return Err(input(
            1,
            format!(
                "the file was exported by a newer scimd (schema {} > {this}, scimd {}): upgrade scimd",
                h.schema, h.scimd
            ),
        ));
    }
    Ok(h)
}

/// Reads an export from `source` into `store`: each tenant is made (or, when an earlier import
/// made it, set again) and its rows upserted in batches, each one transaction, the next read
/// while one is written; at each tenant's end, what it holds in the target is counted against
/// what the file said (see [`ImportReport::verified`]). `bar` counts the lines.
pub async fn import(
    store: Arc<dyn Store>,
    source: &mut Source,
    bar: &ProgressBar,
) -> Result<ImportReport, TransferError> {
    let first = source.next(1).await?;
    header(first.as_deref())?;
    let mut im = Importer {
        store,
        registry: Registry::standard(),
        section: None,
        tenants: HashMap::new(),
        pending: None,
        in_flight: None,
        report: ImportReport::default(),
        ended: false,
    };
    let mut n = 1;
    loop {
        n += 1;
        let Some(text) = source.next(n).await? else { break };
        bar.inc(1);
        if text.trim().is_empty() {
            continue;
        }
        if let Err(e) = im.line(n, &text).await {
            // A batch in flight still finishes (or fails) before the error is told.
            let _ = im.settle().await;
            return Err(e);
        }
    }
    im.report.lines = n - 1;
    if !im.ended {
        let where_ =
            im.section.as_ref().map(|s| format!(" in the section of tenant \"{}\"", s.name)).unwrap_or_default();
        let _ = im.settle().await;
        return Err(TransferError::Input(format!(
            "the input ends at line {}{where_} without its \"end\" line: it is truncated",
            n - 1
        )));
    }
    Ok(im.report)
}

/// What `scimd store copy` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The export side.
    pub export: ExportReport,
    /// The import side.
    pub import: ImportReport,
}

/// Copies every tenant, API key and webhook of `from` into `to`, the export streamed into the
/// import in this process (no file in between), with one progress bar.
pub async fn copy(from: &dyn Store, to: Arc<dyn Store>) -> Result<CopyReport, TransferError> {
    let (tx, rx) = mpsc::channel::<String>(4 * BATCH);
    let bar = progress(Some(0), "copying");
    let mut sink = Sink::Channel(tx);
    let mut source = Source::Channel(rx);
    let hidden = ProgressBar::hidden();
    let export = async {
        let r = export(from, &Scope::All, &mut sink, &bar).await;
        drop(sink);
        r
    };
    let (exported, imported) = tokio::join!(export, import(to, &mut source, &hidden));
    bar.finish_and_clear();
    match (exported, imported) {
        (Ok(export), Ok(import)) => Ok(CopyReport { export, import }),
        // The import's failure stopped the export.
        (Err(TransferError::Runtime(m)), Err(e)) if m == SINK_CLOSED => Err(e),
        // The export's failure ended the import's input early.
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e),
    }
}

impl ExportReport {
    /// The short summary printed on stderr.
    pub fn summary(&self, took: Duration) -> String {
        let mut text = String::new();
        for (name, counts) in &self.tenants {
            text += &format!(
                "tenant {name}: exported {counts}
"
            );
        }
        text += &format!(
            "{}, {}, {}: {} lines in {:.1} s\n",
            n(self.tenants.len() as u64, "tenant", "tenants"),
            n(self.webhooks, "webhook", "webhooks"),
            n(self.api_keys, "API key", "API keys"),
            self.lines,
            took.as_secs_f64()
        );
        text
    }
}

/// A database URL as `--database` takes it, or a plain path for a SQLite file.
fn database_url(value: &str) -> Result<String, TransferError> {
    let url = if value.contains("://") { value.to_owned() } else { format!("sqlite://{value}") };
    crate::config::check_database_url(&url).map_err(|e| TransferError::Input(e.0))?;
    Ok(url)
}

/// `scimd export`: the database of the settings, read-only, to stdout.
pub async fn run_export(
    settings: &crate::config::Settings,
    tenants: Vec<String>,
    all: bool,
) -> Result<(), TransferError> {
    let started = std::time::Instant::now();
    let store = open_source(&settings.database, settings.store).await?;
    let scope = if all { Scope::All } else { Scope::Tenants(tenants) };
    let mut sink = Sink::Writer(Box::new(tokio::io::BufWriter::with_capacity(1 << 20, tokio::io::stdout())));
    let bar = progress(Some(0), "exporting");
    let report = export(store.as_ref(), &scope, &mut sink, &bar).await;
    bar.finish_and_clear();
    eprint!("{}", report?.summary(started.elapsed()));
    Ok(())
}

fn verified(report: &ImportReport) -> Result<(), TransferError> {
    if report.verified() {
        Ok(())
    } else {
        Err(TransferError::Runtime("the target does not hold what the file has (see MISMATCH above)".into()))
    }
}

/// `scimd import`: stdin into the database of the settings (created or migrated as usual).
pub async fn run_import(settings: &crate::config::Settings) -> Result<(), TransferError> {
    if std::io::stdin().is_terminal() {
        return Err(TransferError::Input("scimd import reads an export on stdin: scimd import < FILE.jsonl".into()));
    }
    let started = std::time::Instant::now();
    let store = crate::server::open_store(settings, &Arc::new(Registry::standard())).await.map_err(|e| runtime(e.0))?;
    let mut source = Source::Reader(Box::new(tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin())));
    let bar = progress(None, "importing");
    let report = import(store, &mut source, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    eprint!("{}", report.summary(started.elapsed()));
    verified(&report)
}

/// `scimd store copy --from URL --to URL`.
pub async fn run_copy(settings: &crate::config::Settings, from: &str, to: &str) -> Result<(), TransferError> {
    let started = std::time::Instant::now();
    let (from, to) = (database_url(from)?, database_url(to)?);
    if from == to {
        return Err(TransferError::Input("--from and --to name the same database".into()));
    }
    let source = open_source(&from, settings.store).await?;
    let target = scim_store::open(&to, settings.store, Arc::new(Registry::standard()))
        .await
        .map_err(|e| runtime(format!("cannot open {}: {e}", crate::config::redact_url(&to))))?;
    let report = copy(source.as_ref(), target).await?;
    eprint!("{}", report.import.summary(started.elapsed()));
    verified(&report.import)?;
    let text = format!(
        "copied {}, {} and {} from {} to {} ({} lines, counts verified)\n",
        n(report.import.tenants.len() as u64, "tenant", "tenants"),
        n(report.import.webhooks, "webhook", "webhooks"),
        n(report.import.api_keys, "API key", "API keys"),
        crate::config::redact_url(&from),
        crate::config::redact_url(&to),
        report.export.lines
    );
    let mut stdout = tokio::io::stdout();
    stdout.write_all(text.as_bytes()).await.map_err(|e| runtime(format!("cannot write to stdout: {e}")))?;
    stdout.flush().await.map_err(|e| runtime(format!("cannot write to stdout: {e}")))
}

/// Opens the source of an export or a copy, read-only.
pub async fn open_source(url: &str, limits: scim_store::Limits) -> Result<Arc<dyn Store>, TransferError> {
    scim_store::open_read_only(url, limits, Arc::new(Registry::standard()))
        .await
        .map_err(|e| runtime(format!("cannot open {} to read it: {e}", crate::config::redact_url(url))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_their_microseconds_through_a_line() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        let line = CycleLine { start: t, last: t, requests: 1, errors: 0 };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains("2023-11-14T22:13:20.123456Z"), "{text}");
        let back: CycleLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.start, t);
    }

    #[test]
    fn a_line_names_its_kind_first_and_refuses_unknown_fields() {
        let line =
            Line::Member(MemberLine { tenant: "t".into(), group: "g".into(), member: "u".into(), display: None });
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"kind":"member","tenant":"t""#), "{text}");
        let extra = r#"{"kind":"member","tenant":"t","group":"g","member":"u","display":null,"x":1}"#;
        assert!(serde_json::from_str::<Line>(extra).is_err());
        assert!(serde_json::from_str::<Line>(r#"{"kind":"nope"}"#).is_err());
    }

    #[test]
    fn the_header_is_checked() {
        assert!(matches!(header(None), Err(TransferError::Input(m)) if m.contains("empty")));
        assert!(
            matches!(header(Some(r#"{"kind":"tenant"}"#)), Err(TransferError::Input(m)) if m.contains("no header"))
        );
        let v2 = r#"{"format":"scimd-export","version":2,"schema":8,"exported_at":"2024-01-01T00:00:00Z","scimd":"9","scope":"all"}"#;
        assert!(matches!(header(Some(v2)), Err(TransferError::Input(m)) if m.contains("format version 2")));
        let ok = v2.replace("\"version\":2", "\"version\":1");
        assert!(header(Some(&ok)).is_ok());
    }

    #[test]
    fn digests_are_hex_sha256() {
        let d = [7u8; 32];
        assert_eq!(digest(&hex(&d)).unwrap(), d);
        assert!(digest("abc").is_err());
        assert!(digest(&"zz".repeat(32)).is_err());
    }
}
