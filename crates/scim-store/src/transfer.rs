//! What moving a store's contents to another store needs (`scimd export` / `scimd import`,
//! `scimd store copy`): the rows as they are stored, read page by page in the store's own
//! order, and written back in batches, each batch one transaction, keeping every id, version,
//! time and feed position.
//!
//! Reading: [`Store::export_tenant`] (the tenant row with its feed position, guard state and
//! traffic summary), [`Store::export_resources`] (users and groups together, in the order they
//! were created, so that the copy lists members and groups in the same order) and
//! [`Store::export_members`], each a page after a [`Cursor`]; tokens, setup links, events, API
//! keys and webhooks are read with the ordinary calls.
//!
//! Writing: [`Store::import_tenant`] makes the tenant (or finds the one an earlier import of the
//! same tenant made) and [`Store::import_rows`] upserts a batch, so importing the same rows
//! twice leaves the same store. Rows keep their ids; the store's own keys (a tenant's id, a
//! resource's key) are the target's. [`Store::transfer_counts`] counts what a tenant holds, for
//! the import's final check.
//!
//! [`Store::export_tenant`]: crate::Store::export_tenant
//! [`Store::export_resources`]: crate::Store::export_resources
//! [`Store::export_members`]: crate::Store::export_members
//! [`Store::import_tenant`]: crate::Store::import_tenant
//! [`Store::import_rows`]: crate::Store::import_rows
//! [`Store::transfer_counts`]: crate::Store::transfer_counts

use time::OffsetDateTime;

use crate::{ApiKey, Event, Invite, Record, Token, Traffic, Webhook};

/// A tenant row as a move copies it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantDump {
    /// The store's key for it (the source's; an import ignores it).
    pub id: i64,
    /// The unique name.
    pub name: String,
    /// The SCIM paths every user must carry.
    pub required: Vec<String>,
    /// When it was created (with the name, what tells an earlier import of it from another
    /// tenant of the same name).
    pub created: OffsetDateTime,
    /// The feed's position: the `seq` of its newest event (0 before the first).
    pub feed_position: i64,
    /// The events up to this position were pruned.
    pub feed_pruned: i64,
    /// The guard against mass deprovisioning, with its counting window.
    pub guard: GuardState,
    /// The traffic summary (directory health), if the tenant had a request.
    pub traffic: Option<TrafficDump>,
}

/// A tenant's guard as stored: its settings and where its counting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardState {
    /// The share of active users, in thousandths; 0: off.
    pub share_permille: i64,
    /// The fewest deprovisionings that trip it.
    pub min_users: i64,
    /// The window, in microseconds.
    pub window_us: i64,
    /// When the current counting window began.
    pub window_start: OffsetDateTime,
    /// The deprovisionings counted in it.
    pub count: i64,
    /// The active users when it began.
    pub base: i64,
    /// Tripped: push delivery is held from this position.
    pub held_from: Option<i64>,
    /// When it tripped.
    pub tripped_at: Option<OffsetDateTime>,
}

/// A tenant's traffic summary with the number of its last logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficDump {
    /// The summary (its `tenant` is the source's key; an import ignores it).
    pub summary: Traffic,
    /// The number the provisioning log gave last (the log itself is not moved).
    pub log_seq: i64,
}

/// A member of a group as stored: ids, and the `display` the client sent (`None`: the
/// member's own name is shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDump {
    /// The group's id.
    pub group: String,
    /// The member's id (a user or a group of the same tenant).
    pub member: String,
    /// The display the client sent when adding it.
    pub display: Option<String>,
}

/// Where a page of an export ends: pass it to get the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor(pub(crate) i64, pub(crate) i64);

/// One page of an export: the rows, and the cursor of the next page (`None`: this was the
/// last).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPage<T> {
    /// The rows, in the store's order.
    pub rows: Vec<T>,
    /// Where the next page starts.
    pub next: Option<Cursor>,
}

/// A webhook with its deliveries, as a move copies it (the leases are not: no replica of the
/// target holds one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDump {
    /// The endpoint; its `tenant` is the target's key.
    pub webhook: Webhook,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryDump>,
}

/// A delivery cursor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDump {
    /// The tenant (the target's key).
    pub tenant: i64,
    /// The position delivered.
    pub position: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    /// When the current run of failures began.
    pub failing_since: Option<OffsetDateTime>,
    /// No attempt before this.
    pub next_at: OffsetDateTime,
    /// The last attempt.
    pub last_at: Option<OffsetDateTime>,
    /// Its outcome.
    pub last_outcome: Option<String>,
    /// Given up until a replay.
    pub failed: bool,
    /// The deprovisionings skipped by a release with `--discard` (inclusive).
    pub discard: Option<(i64, i64)>,
}

/// A batch of rows to upsert, in one transaction.
#[derive(Debug, Clone)]
pub enum ImportRows {
    /// Tokens of a tenant (the `tenant` of each token is ignored).
    Tokens {
        /// The tenant (the target's key).
        tenant: i64,
        /// The tokens.
        rows: Vec<Token>,
    },
    /// Setup links of a tenant (the `tenant` of each is ignored).
    Invites {
        /// The tenant.
        tenant: i64,
        /// The links.
        rows: Vec<Invite>,
    },
    /// Users and groups of a tenant, with their ids, times, versions and documents (members
    /// and groups are not read from the records: see `Members`).
    Resources {
        /// The tenant.
        tenant: i64,
        /// The resources, in the order they were created.
        rows: Vec<Record>,
    },
    /// Memberships of a tenant's groups.
    Members {
        /// The tenant.
        tenant: i64,
        /// The memberships.
        rows: Vec<MemberDump>,
    },
    /// Events of a tenant's feed, with their positions (each within the tenant's feed: after
    /// its pruned part, at most its position).
    Events {
        /// The tenant.
        tenant: i64,
        /// The events.
        rows: Vec<Event>,
    },
    /// Keys of the vendor API.
    ApiKeys(Vec<ApiKey>),
    /// A webhook with its deliveries; a webhook of every tenant also gets a delivery, at the
    /// feed's position, for each tenant that has none.
    Webhook(WebhookDump),
}

/// A row of a batch that was refused (the batch wrote nothing then): its index in the batch
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The row's index in the batch.
    pub index: usize,
    /// Why, e.g. `member "u1" is not a user or group of this tenant`.
    pub reason: String,
}

/// The result of [`crate::Store::import_tenant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedTenant {
    /// The tenant's key in the target.
    pub id: i64,
    /// Whether the import made it (false: an earlier import of the same tenant had).
    pub created: bool,
}

/// What a tenant holds, counted in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferCounts {
    /// Tokens (OAuth access tokens included).
    pub tokens: u64,
    /// Setup links.
    pub invites: u64,
    /// Users.
    pub users: u64,
    /// Groups.
    pub groups: u64,
    /// Memberships.
    pub members: u64,
    /// Events in the feed.
    pub events: u64,
}
