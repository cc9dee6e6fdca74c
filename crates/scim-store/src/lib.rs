//! # scim-store
//!
//! Where scimd keeps tenants, tokens, users, groups, members and the change feed.
//!
//! [`Store`] is the one interface; [`sqlite::SqliteStore`] (the embedded default) and
//! [`postgres::PgStore`] implement it, and `tests/contract.rs` runs the same suite on both.
//!
//! Invariants every implementation keeps:
//! - Every call is scoped by tenant: a filter compiled to SQL is parenthesised under the tenant
//!   predicate and binds every value ([`plan`]).
//! - A write and its change event commit in one transaction.
//! - Group membership is a table of (group, member) rows: adding or removing one member costs
//!   the same for any group size, and members are loaded only when asked for ([`Load`]).
//! - Filters on indexed attributes (`id`, `userName`, `externalId`, `displayName`,
//!   `emails.value`, `meta.created`, `meta.lastModified`, `members.value`, enterprise
//!   `employeeNumber`) run as index look-ups; any other condition is evaluated by the core on at
//!   most [`Limits::max_candidates`] rows, and an index page that would need more is refused
//!   with `tooMany`, never answered wrongly (a keyset page examines at most that many and says
//!   where the next one goes on).
//! - A tenant's resources are counted per kind by the writes, in their transaction: an
//!   unfiltered list's total is read, never counted; keyset pages and sequential index pages
//!   cost the same at any depth (`sql::paging`).
//!
//! The trait is async and every call is one owned request: each engine decides its own
//! threading (SQLite: reads on blocking threads, writes through one group-commit writer thread;
//! PostgreSQL: an async connection pool). Both engines run the same store operations
//! (`sql::ops`) and the same filter renderer (`sql::filter`); what differs between the SQL
//! dialects is in [`sql::Dialect`].

#![warn(missing_docs)]

use std::fmt;
use std::sync::Arc;

use scim_core::patch::MemberDelta;
use scim_core::resource::Member;
use scim_core::{AttrPath, Filter, Registry, ScimError};
use serde_json::Value;
use time::OffsetDateTime;

mod common;
mod document;
pub mod feed;
mod measure;
pub mod plan;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod traffic;
pub mod transfer;
pub mod webhook;

pub use document::{etag, fmt_time, materialize};
pub use feed::{Actor, Event, Feed, FeedSignal};
pub use scim_core::Kind;
pub use scim_core::change::EventType;
pub use traffic::{Cycle, Invite, LoggedRequest, RequestQuery, Session, Traffic};
pub use webhook::{Claim, Delivery, Outcome, Webhook, WebhookFormat};

/// A tenant: one customer of the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The store's key.
    pub id: i64,
    /// The unique name, e.g. `contoso`.
    pub name: String,
    /// The SCIM paths every user of the tenant must carry (DESIGN.md, tenant policy).
    pub required: Vec<String>,
    /// When it was created.
    pub created: OffsetDateTime,
    /// Its mass-deprovisioning guard.
    pub guard: Guard,
}

/// A tenant's guard against mass deprovisioning: when more than `share_permille` of its active
/// users (and at least `min_users`) are deactivated or deleted within `window`, push delivery of
/// its events is held from the event that crossed the line until an operator releases it. The
/// writes themselves are accepted and recorded in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The share of active users, in thousandths (200: 20%); 0 turns the guard off.
    pub share_permille: i64,
    /// The fewest deprovisionings that can trip it.
    pub min_users: i64,
    /// The window the deprovisionings are counted in.
    pub window: time::Duration,
    /// Tripped: the feed position from which push delivery is held.
    pub held_from: Option<i64>,
    /// When it tripped.
    pub tripped_at: Option<OffsetDateTime>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            share_permille: 200,
            min_users: 50,
            window: time::Duration::hours(1),
            held_from: None,
            tripped_at: None,
        }
    }
}

/// A change of a tenant's guard settings (each `None`: unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuardSettings {
    /// See [`Guard::share_permille`] (0: off).
    pub share_permille: Option<i64>,
    /// See [`Guard::min_users`].
    pub min_users: Option<i64>,
    /// See [`Guard::window`].
    pub window: Option<time::Duration>,
}

/// A token as stored: only a digest of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The public identifier (also the token's prefix), e.g. `k3J9x...`.
    pub id: String,
    /// The tenant the token grants access to.
    pub tenant: i64,
    /// SHA-256 of the secret part.
    pub digest: Vec<u8>,
    /// A label for humans, e.g. `entra-prod`.
    pub label: Option<String>,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked: Option<OffsetDateTime>,
    /// When it last authenticated a request, to the minute (see [`Store::touch_token`]).
    pub last_used: Option<OffsetDateTime>,
}

/// A key of the vendor API (the admin listener), as stored: only a digest of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public identifier (also the key's prefix).
    pub id: String,
    /// SHA-256 of the secret part.
    pub digest: Vec<u8>,
    /// A label for humans, e.g. `billing-sync`.
    pub label: Option<String>,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked: Option<OffsetDateTime>,
}

/// A member of a group as stored, with what responses show of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The member's id.
    pub value: String,
    /// User or Group.
    pub kind: Kind,
    /// The `display` the client gave when adding the member, else the member's displayName
    /// (or userName for a user without one).
    pub display: Option<String>,
}

/// A group a user belongs to (for the User's readOnly `groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// The group's id.
    pub value: String,
    /// The group's displayName.
    pub display: Option<String>,
}

/// A stored resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The resource type.
    pub kind: Kind,
    /// The resource's id.
    pub id: String,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it last changed.
    pub last_modified: OffsetDateTime,
    /// Incremented on every change; the ETag is `W/"<version>"`.
    pub version: i64,
    /// The stored form of the document (see `scim_core::resource`).
    pub doc: Value,
    /// The members of a group, when loaded.
    pub members: Option<Vec<MemberRow>>,
    /// The groups of a user, when loaded.
    pub groups: Option<Vec<GroupRef>>,
}

/// What to load besides the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// A group's members.
    pub members: bool,
    /// A user's groups.
    pub groups: bool,
}

/// How an update changes a group's members.
#[derive(Debug, Clone, Default)]
pub enum Members {
    /// Not at all.
    #[default]
    Unchanged,
    /// Replaced by this list (PUT).
    Replace(Vec<Member>),
    /// By this delta (PATCH).
    Delta(MemberDelta),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Ascending; resources without a value last.
    #[default]
    Ascending,
    /// Descending; resources without a value first.
    Descending,
}

/// A list or search request.
#[derive(Debug, Clone)]
pub struct Query {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// The attribute to sort by and the direction.
    pub sort: Option<(AttrPath, SortOrder)>,
    /// 1-based index of the first result (index paging; ignored with `seek`).
    pub start_index: u64,
    /// The most results to return (0 asks for the total only).
    pub count: u64,
    /// What to load with each record.
    pub load: Load,
    /// Whether to read the change-feed position the page reflects (the vendor API's lists).
    pub position: bool,
    /// Keyset paging (RFC 9865 cursors): where the page starts, instead of `start_index`. The
    /// page then has its [`Page::keyset`].
    pub seek: Option<Seek>,
}

/// The position of a resource in the order of a query: its sort key and its row key. What a
/// cursor carries; [`Position::encode`] and [`Position::decode`] are its bytes. A position stays
/// meaningful when its resource is deleted: a page after it starts at the next resource in
/// the order, whichever that is then.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    key: SortKey,
    pk: i64,
}

/// The sort key of a [`Position`], as the query's order compares it.
#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    /// The order is creation order (no `sortBy`): the row key alone.
    Pk,
    /// The resource has no value for the sort attribute.
    Null,
    /// An integer column (`meta.created`, `meta.lastModified`, in microseconds).
    Int(i64),
    /// A text column (its stored, case-folded form).
    Text(String),
    /// A value the core sorts on (a `sortBy` no column holds).
    Value(Value),
}

impl Position {
    /// The bytes of the position (a tag, the key, the row key).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let (tag, body): (u8, Vec<u8>) = match &self.key {
            SortKey::Pk => (0, Vec::new()),
            SortKey::Null => (1, Vec::new()),
            SortKey::Int(i) => (2, i.to_be_bytes().to_vec()),
            SortKey::Text(t) => (3, t.as_bytes().to_vec()),
            SortKey::Value(v) => (4, v.to_string().into_bytes()),
        };
        out.push(tag);
        out.extend_from_slice(&self.pk.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The position of [`Position::encode`]'s bytes; `None` for bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Option<Position> {
        let (&tag, rest) = bytes.split_first()?;
        let (pk, body) = rest.split_first_chunk::<8>()?;
        let key = match tag {
            0 if body.is_empty() => SortKey::Pk,
            1 if body.is_empty() => SortKey::Null,
            2 => SortKey::Int(i64::from_be_bytes(*<&[u8; 8]>::try_from(body).ok()?)),
            3 => SortKey::Text(String::from_utf8(body.to_vec()).ok()?),
            4 => SortKey::Value(serde_json::from_slice(body).ok()?),
            _ => return None,
        };
        Some(Position { key, pk: i64::from_be_bytes(*pk) })
    }
}

/// Where a keyset page starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seek {
    /// The resources after this position, in the query's order (`None`: from the first one);
    /// with `backward`, those before it (`None`: up to the last one).
    pub from: Option<Position>,
    /// The page before `from` (RFC 9865's `previousCursor`), in the query's order.
    pub backward: bool,
}

/// What a keyset page says about its neighbours.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Keyset {
    /// Where the next page starts, if resources may follow this page (`nextCursor`).
    pub next: Option<Seek>,
    /// Where the previous page starts, if resources come before this page (`previousCursor`).
    /// Not offered for a filter the core finishes.
    pub prev: Option<Seek>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// How many resources match in all. Always known for index paging; for a keyset page,
    /// `None` when counting would cost more than the page (RFC 9865 lets it be left out): a
    /// filter the core finishes, or an indexed filter matching more than
    /// [`COUNT_BOUND`] resources.
    pub total: Option<u64>,
    /// The resources of this page.
    pub records: Vec<Record>,
    /// For a [`Query::seek`] page: where the pages before and after it start.
    pub keyset: Option<Keyset>,
    /// With [`Query::position`]: the position of the tenant's change feed the page reflects
    /// (read in the same snapshot): every event up to it is reflected in the page; 0 before
    /// the first event. Events after it may repeat a change the page already shows (on
    /// PostgreSQL, a write committed but not yet sequenced); each carries the whole resource,
    /// so applying them by resource id converges on the store's state.
    pub position: Option<i64>,
}

/// The most resources a keyset page of an indexed filter counts for its `totalResults`: past
/// that, the total is left out (an unfiltered list's total is maintained, never counted).
pub const COUNT_BOUND: u64 = 10_000;

/// Limits a store enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most rows a filter on non-indexed attributes may examine.
    pub max_candidates: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_candidates: 10_000 }
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// No such resource (or tenant, or token) in this tenant.
    NotFound,
    /// The tenant a write names does not exist (any more): it was deleted while the caller
    /// still held it. Nothing was written.
    NoTenant,
    /// A uniqueness constraint: the detail names the attribute and value.
    Conflict(String),
    /// `If-Match` named a version that is no longer current.
    VersionMismatch,
    /// The request cannot be served as asked (`tooMany`, `invalidFilter`, `invalidValue`).
    Scim(ScimError),
    /// The database failed.
    Backend(String),
    /// Stored data could not be decoded (a corrupt row, or one written by a newer scimd).
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::NoTenant => f.write_str("the tenant does not exist"),
            StoreError::Conflict(d) => write!(f, "conflict: {d}"),
            StoreError::VersionMismatch => f.write_str("version mismatch"),
            StoreError::Scim(e) => write!(f, "{e}"),
            StoreError::Backend(d) => write!(f, "database: {d}"),
            StoreError::Corrupt(d) => write!(f, "stored data cannot be read: {d}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<ScimError> for StoreError {
    fn from(e: ScimError) -> Self {
        StoreError::Scim(e)
    }
}

/// Result with a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new resource (POST): version 1.
#[derive(Debug, Clone)]
pub struct Create {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The new id.
    pub id: String,
    /// The commit time.
    pub now: OffsetDateTime,
    /// The stored form of the document.
    pub doc: Value,
    /// A group's initial members (each must be a user or group of the tenant).
    pub members: Vec<Member>,
    /// Who writes, for the event.
    pub actor: Actor,
}

/// A point read by id.
#[derive(Debug, Clone)]
pub struct Get {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The id.
    pub id: String,
    /// What to load besides the document.
    pub load: Load,
}

/// A new document for a resource (PUT, or a PATCH that changes attributes).
#[derive(Debug, Clone)]
pub struct Update {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The id.
    pub id: String,
    /// Only if this is still the current version (`VersionMismatch` otherwise).
    pub if_version: Option<i64>,
    /// The commit time.
    pub now: OffsetDateTime,
    /// The new stored document.
    pub doc: Value,
    /// How the members change.
    pub members: Members,
    /// What the returned record carries.
    pub load: Load,
    /// Who writes, for the events.
    pub actor: Actor,
}

/// What a PATCH makes of a resource: its new document and the change of its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    /// The new stored document (the current one when only members change).
    pub doc: Value,
    /// The members added and removed.
    pub delta: MemberDelta,
}

/// Computes a PATCH from the current record, under the store's lock on that record: `Ok(None)`
/// when nothing changes (nothing is written), an error to refuse (nothing is written).
pub type PatchFn = Arc<dyn Fn(&Record) -> Result<Option<Patched>> + Send + Sync>;

/// A read-apply-write of one resource (PATCH): the store locks the resource, hands the current
/// record to `apply`, and writes what it returns in the same transaction, so a PATCH never
/// loses a race with another writer and needs no retry (the client's `If-Match` is checked by
/// `apply`, against the locked version).
#[derive(Clone)]
pub struct Patch {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The id.
    pub id: String,
    /// The commit time.
    pub now: OffsetDateTime,
    /// The PATCH itself.
    pub apply: PatchFn,
    /// What the returned record carries.
    pub load: Load,
    /// Who writes, for the events.
    pub actor: Actor,
}

impl fmt::Debug for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patch").field("tenant", &self.tenant).field("kind", &self.kind).field("id", &self.id).finish()
    }
}

/// A deletion.
#[derive(Debug, Clone)]
pub struct Delete {
    /// The tenant.
    pub tenant: i64,
    /// The resource type.
    pub kind: Kind,
    /// The id.
    pub id: String,
    /// Only if this is still the current version (`VersionMismatch` otherwise).
    pub if_version: Option<i64>,
    /// The commit time.
    pub now: OffsetDateTime,
    /// Who deletes, for the events.
    pub actor: Actor,
}

/// The storage interface of scimd. Every resource call is scoped by tenant; every call is an
/// owned request, so an engine may run it wherever it likes.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Creates a tenant (its feed starts with `tenant.created`); `Conflict` if the name is taken.
    async fn create_tenant(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<Tenant>;
    /// Every tenant, by name.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// The tenant with this name.
    async fn tenant(&self, name: String) -> Result<Option<Tenant>>;
    /// The tenant with this key.
    async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>>;
    /// Deletes a tenant with everything it owns; false if there was none.
    async fn delete_tenant(&self, name: String) -> Result<bool>;
    /// Replaces a tenant's mandatory attributes (`tenant.updated`, if they change); the tenant as
    /// it is now, `None` if there is none.
    async fn set_required(
        &self,
        name: String,
        required: Vec<String>,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<Option<Tenant>>;

    /// Stores a new token, with a `tenant.token_created` event unless `actor` is `None` (the
    /// short-lived OAuth access tokens derived from a token are no change of the tenant's).
    async fn create_token(&self, token: Token, actor: Option<Actor>) -> Result<()>;
    /// The token with this public id.
    async fn token(&self, id: String) -> Result<Option<Token>>;
    /// A tenant's tokens, oldest first.
    async fn list_tokens(&self, tenant: i64) -> Result<Vec<Token>>;
    /// Marks a token revoked (`tenant.token_revoked`, unless it already was); false if there was
    /// no such token.
    async fn revoke_token(&self, id: String, now: OffsetDateTime, actor: Actor) -> Result<bool>;
    /// Rotates a token in one transaction: stores `new` (`tenant.token_created`) and makes the
    /// token `old` expire at `until` (or earlier, if it already did; `tenant.token_rotated`).
    /// `NotFound` (and nothing stored) if there is no token `old`.
    async fn rotate_token(
        &self,
        new: Token,
        old: String,
        until: OffsetDateTime,
        now: OffsetDateTime,
        actor: Actor,
    ) -> Result<()>;
    /// Records that a token authenticated a request at `at` (never moving it back).
    async fn touch_token(&self, id: String, at: OffsetDateTime) -> Result<()>;
    /// Deletes the tokens whose label starts with `label_prefix` and which expired before
    /// `now`; returns how many.
    async fn purge_expired_tokens(&self, label_prefix: String, now: OffsetDateTime) -> Result<u64>;

    /// Stores a new API key.
    async fn create_api_key(&self, key: ApiKey) -> Result<()>;
    /// The API key with this public id.
    async fn api_key(&self, id: String) -> Result<Option<ApiKey>>;
    /// Every API key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Marks an API key revoked; false if there was no such key.
    async fn revoke_api_key(&self, id: String, now: OffsetDateTime) -> Result<bool>;

    /// Creates a resource with version 1. A group's initial members must each be a user or
    /// group of the tenant, else `Scim(invalidValue)`. The record has a group's members.
    async fn create(&self, req: Create) -> Result<Record>;
    /// Reads a resource.
    async fn get(&self, req: Get) -> Result<Option<Record>>;
    /// Replaces a resource's document and changes its members. `NotFound`, `Conflict` as for
    /// create, `VersionMismatch` for a stale `if_version`.
    async fn update(&self, req: Update) -> Result<Record>;
    /// Reads, changes and writes a resource in one transaction under a lock on it (see
    /// [`Patch`]). A new document is written with its index rows; a document that stays the same
    /// is not rewritten (member-only PATCHes of large groups cost the same as of small ones).
    /// Bumps the version and records an event, unless nothing changes. `NotFound` if there is no
    /// such resource; unknown member ids are `Scim(invalidValue)` with nothing applied.
    async fn patch(&self, req: Patch) -> Result<Record>;
    /// Deletes a resource (and its memberships); `NotFound` if there is none.
    async fn delete(&self, req: Delete) -> Result<()>;
    /// Lists the resources that match a query, read in one snapshot: by index (`start_index`;
    /// a sequential walk is served from where its previous page ended, see `sql::paging`) or
    /// by keyset (`seek`). The total of an unfiltered list is the count maintained by the
    /// writes, never counted.
    async fn query(&self, req: Query) -> Result<Page>;
    /// The database's secret called `name` (hex text): `candidate` is stored if there is none yet,
    /// and whatever is stored is returned, so every process on the database (every replica on
    /// PostgreSQL) gets the same one. Cursors are authenticated with it.
    async fn secret(&self, name: String, candidate: String) -> Result<String>;
    /// A tenant's change feed after position `after` (exclusive), at most `limit` events, in
    /// `seq` order, with the feed's position and how far it was pruned, read in one snapshot.
    /// `NotFound` if there is no such tenant.
    async fn events(&self, tenant: i64, after: i64, limit: u64) -> Result<Feed>;
    /// Wakes on every advance of a tenant's feed (in this process, or on PostgreSQL in any
    /// replica): the value is the newest position known. Subscribe before reading the feed,
    /// then wait for a change, so that no advance is missed.
    fn subscribe(&self, tenant: i64) -> tokio::sync::watch::Receiver<i64>;
    /// Deletes, in every tenant's feed, the events committed before `before` and those beyond
    /// the newest `keep`, oldest first; returns how many. A position that was pruned is
    /// reported by [`Feed::pruned`].
    async fn prune_events(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> Result<u64>;
    /// Wakes on every advance of any tenant's feed (see [`Store::subscribe`]).
    fn subscribe_all(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Adds a webhook, delivering from the feed's position now (`NoTenant` for a tenant that
    /// does not exist).
    async fn create_webhook(&self, webhook: Webhook) -> Result<()>;
    /// Every webhook, oldest first, with its deliveries.
    async fn list_webhooks(&self) -> Result<Vec<(Webhook, Vec<Delivery>)>>;
    /// One webhook with its deliveries.
    async fn webhook(&self, id: String) -> Result<Option<(Webhook, Vec<Delivery>)>>;
    /// Removes a webhook; false if there was none.
    async fn delete_webhook(&self, id: String) -> Result<bool>;
    /// Delivers again from position `from` (of one tenant, or of each); false if no webhook.
    async fn replay_webhook(&self, id: String, tenant: Option<i64>, from: i64) -> Result<bool>;
    /// Replaces a webhook's secret, the old one still used until `old_until`; false if none.
    async fn rotate_webhook_secret(&self, id: String, secret: String, old_until: OffsetDateTime) -> Result<bool>;
    /// Changes a tenant's guard settings; the tenant as it is now, `None` if there is none.
    async fn set_guard(&self, name: String, settings: GuardSettings) -> Result<Option<Tenant>>;
    /// Releases a tenant's tripped guard: push delivery resumes where it was held, or with
    /// `discard`, skips the deactivations and deletions held so far (each delivery notes the
    /// range, and a replay sends them after all). A new counting window starts at `now`.
    /// `None` if there is no such tenant.
    async fn release_guard(&self, name: String, discard: bool, now: OffsetDateTime) -> Result<Option<Tenant>>;
    /// Whether any delivery has events waiting and is due at `now` (a read); `None` when there
    /// is no delivery at all.
    async fn deliveries_due(&self, now: OffsetDateTime) -> Result<Option<bool>>;
    /// Claims deliveries with events waiting (see [`webhook`]).
    async fn claim_deliveries(
        &self,
        owner: String,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<Claim>>;
    /// Moves a delivery on to `position` (never back), as a poll's acknowledgement does.
    async fn ack_delivery(&self, webhook: String, tenant: i64, position: i64, now: OffsetDateTime) -> Result<bool>;
    /// Records an attempt on a claimed delivery; false if the lease was lost.
    async fn settle_delivery(
        &self,
        webhook: String,
        tenant: i64,
        owner: String,
        now: OffsetDateTime,
        outcome: Outcome,
    ) -> Result<bool>;

    /// Appends SCIM requests to the provisioning log and folds them into their tenants'
    /// [`Traffic`] summaries, in one transaction; requests of deleted tenants are dropped.
    async fn log_requests(&self, entries: Vec<LoggedRequest>) -> Result<()>;
    /// A tenant's logged requests, newest first.
    async fn requests(&self, query: RequestQuery) -> Result<Vec<LoggedRequest>>;
    /// Deletes, in every tenant's log, the requests before `before` and those beyond the newest
    /// `keep`; returns how many. The [`Traffic`] summaries stay.
    async fn prune_requests(&self, before: Option<OffsetDateTime>, keep: Option<u64>) -> Result<u64>;
    /// The traffic summary of one tenant, or of every tenant that had a request.
    async fn traffic(&self, tenant: Option<i64>) -> Result<Vec<Traffic>>;
    /// Records a tenant's health status `after` if the recorded one is still `before`, with a
    /// `tenant.health_changed` event whose `data` is `data`; false if it was not `before` (another
    /// replica recorded the change) or the tenant is gone.
    async fn set_health(
        &self,
        tenant: i64,
        before: Option<String>,
        after: String,
        data: Value,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Stores a new customer setup link (`NoTenant` if the tenant is gone).
    async fn create_invite(&self, invite: Invite) -> Result<()>;
    /// The setup link with this public id.
    async fn invite(&self, id: String) -> Result<Option<Invite>>;
    /// A tenant's setup links, newest first.
    async fn list_invites(&self, tenant: i64) -> Result<Vec<Invite>>;
    /// Revokes a setup link; false if there is none.
    async fn revoke_invite(&self, id: String, now: OffsetDateTime) -> Result<bool>;
    /// Marks a setup link used and stores the token it reveals, in one transaction, if the link
    /// is unused, unrevoked and unexpired at `now`; false (nothing stored) otherwise.
    async fn redeem_invite(&self, id: String, token: Token, now: OffsetDateTime, actor: Actor) -> Result<bool>;
    /// Stores a new console session (and forgets the ones that have ended).
    async fn create_session(&self, session: Session) -> Result<()>;
    /// The console session with this public id.
    async fn session(&self, id: String) -> Result<Option<Session>>;
    /// Ends a console session.
    async fn delete_session(&self, id: String) -> Result<()>;

    /// The tenant with this name as a move copies it ([`transfer`]), its committed events
    /// numbered first; `None` if there is none.
    async fn export_tenant(&self, name: String) -> Result<Option<transfer::TenantDump>>;
    /// A page of at most `limit` of a tenant's users and groups together, in the order they
    /// were created, after `after` (`Cursor::default()` for the first page); the records carry
    /// no members or groups.
    async fn export_resources(
        &self,
        tenant: i64,
        after: transfer::Cursor,
        limit: u64,
    ) -> Result<transfer::ExportPage<Record>>;
    /// A page of at most `limit` of a tenant's memberships, by group, then member.
    async fn export_members(
        &self,
        tenant: i64,
        after: transfer::Cursor,
        limit: u64,
    ) -> Result<transfer::ExportPage<transfer::MemberDump>>;
    /// Makes the tenant of a move, with its feed position, pruned position, guard and traffic
    /// summary as given and without any event (its feed comes with it); the target's webhooks
    /// of every tenant deliver its events from that position on. A tenant of the same name and
    /// creation time whose feed is not beyond the given position (an earlier import of it) is
    /// set again instead; any other tenant of that name is a `Conflict`.
    async fn import_tenant(&self, tenant: transfer::TenantDump) -> Result<transfer::ImportedTenant>;
    /// Upserts a batch of rows in one transaction, keeping their ids, times and versions (see
    /// [`transfer::ImportRows`]). Returns the rows refused (then nothing was written).
    async fn import_rows(&self, rows: transfer::ImportRows) -> Result<Vec<transfer::Rejected>>;
    /// What a tenant holds (tokens, setup links, users, groups, memberships, events), counted
    /// in one snapshot.
    async fn transfer_counts(&self, tenant: i64) -> Result<transfer::TransferCounts>;

    /// Sets this engine's gauges on the process's metrics recorder (SQLite: the writes waiting
    /// for the writer thread; PostgreSQL: the pool's connections), for `/metrics` to call when
    /// it is scraped. The store's timings and counters are recorded as calls run.
    fn report_metrics(&self) {}
}

/// What each schema version brought, `MIGRATION_NOTES[i]` for version `i + 1` (both engines
/// have the same versions).
pub const MIGRATION_NOTES: [&str; 9] = [
    "the first schema",
    "tenant ids are never reused; rows of deleted tenants are removed",
    "case-insensitive keys are case-folded",
    "vendor API keys",
    "the change feed's events, numbered per tenant",
    "webhooks and their delivery cursors",
    "the mass-deprovisioning guard",
    "the provisioning log, directory health, setup links and console sessions",
    "resource counts maintained by the writes (backfilled), database secrets (the cursor key), indexes for \
     keyset pages (rows without a value of a nullable sort column; on PostgreSQL the sort indexes rebuilt to end \
     in the row key)",
];

/// The schema version of the database a URL names (0: none yet) and the version this scimd
/// writes, read without migrating anything ([`open`] migrates from the one to the other).
pub async fn schema_versions(url: &str) -> Result<(i64, i64)> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_owned();
        let v = tokio::task::spawn_blocking(move || sqlite::schema_version(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        return Ok((v, sqlite::SCHEMA_VERSION));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((postgres::schema_version(url).await?, i64::from(postgres::SCHEMA_VERSION)));
    }
    Err(StoreError::Backend(format!(
        "unsupported database URL \"{url}\": use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )))
}

/// Opens (creating and migrating as needed) the store a URL names:
/// `sqlite://PATH` (e.g. `sqlite://scimd.db`, `sqlite:///var/lib/scimd/scimd.db`) or
/// `postgres://...` / `postgresql://...`. `registry` is the schema set filters are planned
/// against.
pub async fn open(url: &str, limits: Limits, registry: Arc<Registry>) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open(path, limits, registry)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open(url, limits, registry).await?));
    }
    Err(StoreError::Backend(format!(
        "unsupported database URL \"{url}\": use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )))
}

/// Opens the store a URL names for reading only, as the source of a move (`scimd export`,
/// `scimd store copy`): SQLite with `SQLITE_OPEN_READ_ONLY` (the file may be one scimd cannot
/// write), PostgreSQL without migrating or numbering the feed in the background. Nothing is
/// created or migrated: a database that does not exist, or whose schema is not this scimd's
/// version, is refused (`scimd migrate` brings an older one to it).
pub async fn open_read_only(url: &str, limits: Limits, registry: Arc<Registry>) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() || !std::path::Path::new(path).is_file() {
            return Err(StoreError::Backend(format!("no SQLite database at \"{path}\"")));
        }
    }
    let (current, this) = schema_versions(url).await?;
    if current != this {
        return Err(StoreError::Backend(if current == 0 {
            "the database has no scimd schema: is it the right one?".to_owned()
        } else {
            let fix = if current > this { "upgrade scimd" } else { "run `scimd migrate` on it first" };
            format!("the database has schema version {current}; this scimd reads version {this} only: {fix}")
        }));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_owned();
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open_read_only(&path, limits, registry))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(postgres::PgStore::open_read_only(url, limits, registry).await?))
}
