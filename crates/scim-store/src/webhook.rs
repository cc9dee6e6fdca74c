//! Push endpoints (webhooks) and their delivery cursors, as stored.
//!
//! A webhook receives the events of one tenant, or of every tenant. For each (webhook, tenant)
//! there is one [`Delivery`]: the feed position delivered so far, and the state of the retries.
//! Deliveries are claimed with a lease ([`Store::claim_deliveries`]) so that, with several
//! replicas, one delivers each tenant's events to an endpoint at a time, in order; the position
//! is moved on only after the receiver acknowledged the event.
//!
//! [`Store::claim_deliveries`]: crate::Store::claim_deliveries

use time::OffsetDateTime;

/// What a webhook receives: scimd's JSON events, or RFC 9967 Security Event Tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event as the feed has it (DESIGN.md, Events), signed as Standard Webhooks say.
    Json,
    /// A Security Event Token in the SCIM events profile (RFC 9967), pushed as RFC 8935 says.
    Set,
}

impl WebhookFormat {
    /// `json` or `set`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Set => "set",
        }
    }

    /// The format named `s`.
    pub fn parse(s: &str) -> Option<WebhookFormat> {
        match s {
            "json" => Some(WebhookFormat::Json),
            "set" => Some(WebhookFormat::Set),
            _ => None,
        }
    }
}

/// A push endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The public id, e.g. `wh_k3J9...`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The tenant whose events it receives; `None`: every tenant's.
    pub tenant: Option<i64>,
    /// The event types it receives, as patterns (`user.*`, `group.members_added`); empty: all.
    pub events: Vec<String>,
    /// The body format.
    pub format: WebhookFormat,
    /// The signing secret (`whsec_<base64>`): kept as is, since signing needs it.
    pub secret: String,
    /// The secret before the last rotation, still signed with until `old_secret_until`.
    pub old_secret: Option<String>,
    /// When the old secret stops being used.
    pub old_secret_until: Option<OffsetDateTime>,
    /// When it was added.
    pub created: OffsetDateTime,
}

impl Webhook {
    /// Whether it receives events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            })
    }
}

/// The delivery of one tenant's events to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The webhook.
    pub webhook: String,
    /// The tenant.
    pub tenant: i64,
    /// The tenant's name.
    pub tenant_name: String,
    /// The events up to this position were delivered (or are not for this webhook).
    pub position: i64,
    /// The tenant's feed position: `head - position` events wait (the backlog).
    pub head: i64,
    /// When the first event after `position` was committed (how long the backlog has been
    /// waiting); `None` when no event waits.
    pub oldest_waiting: Option<OffsetDateTime>,
    /// Failed attempts in a row.
    pub failures: i64,
    /// When the current run of failures began.
    pub failing_since: Option<OffsetDateTime>,
    /// No attempt before this.
    pub next_at: OffsetDateTime,
    /// The last attempt.
    pub last_at: Option<OffsetDateTime>,
    /// Its outcome: `200`, `503`, `timeout`, `connect: ...`.
    pub last_outcome: Option<String>,
    /// Given up after the retry period: nothing more is sent until a replay.
    pub failed: bool,
    /// The tenant's guard tripped: events from this position on are held.
    pub held_from: Option<i64>,
    /// The deactivations and deletions in this range (inclusive) are skipped: an operator
    /// released the guard discarding them (a replay sends them after all).
    pub discard: Option<(i64, i64)>,
}

/// A delivery claimed for sending, with its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The endpoint.
    pub webhook: Webhook,
    /// The delivery, as it was when claimed.
    pub delivery: Delivery,
}

/// What an attempt did to a claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The events up to `position` are done (acknowledged, or not for this webhook); the lease
    /// is renewed until `lease_until`.
    Advanced {
        /// The new position.
        position: i64,
        /// The outcome of the last attempt, if one was made (`200`).
        outcome: Option<String>,
        /// The renewed lease.
        lease_until: OffsetDateTime,
    },
    /// The attempt failed: retry at `next_at`, or give up (`failed`); the lease is released.
    Failed {
        /// What went wrong (`503`, `timeout`).
        outcome: String,
        /// When to try again.
        next_at: OffsetDateTime,
        /// Whether the retry period is over.
        failed: bool,
    },
    /// Nothing more to send now: the lease is released.
    Released,
}
