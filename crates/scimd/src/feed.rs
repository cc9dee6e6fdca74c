//! The change feed as the vendor reads it: a tenant's events after a position, waiting for
//! the first one if there is none yet (a long poll, woken by the store's signal when a write
//! commits, never by reading the database in a loop). The vendor API
//! (`GET /api/v1/tenants/{tenant}/events`) and `scimd events tail` share this code.

use std::time::Duration;

use scim_store::{Event, Store, StoreError, Tenant};
use tokio::sync::watch;
use tokio::time::Instant;

/// Events per page unless asked otherwise.
pub const DEFAULT_LIMIT: u64 = 100;
/// The most events one page returns.
pub const MAX_LIMIT: u64 = 1000;
/// The longest a read waits for the first event; a longer `wait` is shortened to it.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Why a feed cannot be read from a position.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedError {
    /// The tenant is gone.
    NoTenant,
    /// The events after `after` up to `pruned` were deleted by retention: reading on would
    /// skip them.
    Pruned {
        /// The position asked for.
        after: i64,
        /// The feed's events up to here are gone.
        pruned: i64,
        /// The feed's position now.
        position: i64,
    },
    /// The position was never given by this feed (it is past its end): the consumer's state
    /// belongs to another feed, e.g. of a tenant deleted and created again under its name.
    Ahead {
        /// The position asked for.
        after: i64,
        /// The feed's events up to here are gone.
        pruned: i64,
        /// The feed's position now.
        position: i64,
    },
    /// The store failed.
    Store(StoreError),
}

impl FeedError {
    /// What the consumer should do, in words.
    pub fn detail(&self) -> String {
        match self {
            FeedError::NoTenant => "no such tenant".to_owned(),
            FeedError::Pruned { after, pruned, position } => format!(
                "the events after position {after} up to {pruned} are no longer kept (retention); \
                 resynchronise from a snapshot (GET .../Users and .../Groups, which say their \"position\"), \
                 then read the events after that position (the feed is at {position})"
            ),
            FeedError::Ahead { after, position, .. } => format!(
                "position {after} is past the end of this tenant's feed (at {position}): it belongs to \
                 another feed (was the tenant deleted and created again?); resynchronise from a snapshot \
                 (GET .../Users and .../Groups), then read the events after its \"position\""
            ),
            FeedError::Store(e) => e.to_string(),
        }
    }
}

impl From<StoreError> for FeedError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound | StoreError::NoTenant => FeedError::NoTenant,
            other => FeedError::Store(other),
        }
    }
}

/// A page of a tenant's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The events, in order.
    pub events: Vec<Event>,
    /// The position to read on from: the last event's `seq`, or the position asked for.
    pub position: i64,
}

impl Page {
    /// `{"events": [...], "position": N}`, each event as DESIGN.md spells it.
    pub fn to_json(&self, tenant: &str) -> String {
        let events: Vec<String> = self.events.iter().map(|e| e.to_json(tenant)).collect();
        format!("{{\"events\":[{}],\"position\":{}}}", events.join(","), self.position)
    }
}

/// The events of `tenant` after position `after`, at most `limit` (at least 1), waiting up
/// to `wait` (at most [`MAX_WAIT`]) for the first one. `recheck`: also read the feed this
/// often while waiting, for a reader in another process than the writers (`events tail` on
/// SQLite, which has no cross-process signal).
/// `stopping`: the server's stop signal; a wait ends when it turns true (a long poll must not
/// hold up a shutdown).
pub async fn read(
    store: &dyn Store,
    tenant: &Tenant,
    after: i64,
    limit: u64,
    wait: Duration,
    recheck: Option<Duration>,
    stopping: Option<&watch::Receiver<bool>>,
) -> Result<Page, FeedError> {
    let mut stopping = stopping.cloned();
    let deadline = Instant::now() + wait.min(MAX_WAIT);
    let limit = limit.clamp(1, MAX_LIMIT);
    // Subscribed before the first read: a commit after it is never missed.
    let mut signal = store.subscribe(tenant.id);
    loop {
        signal.borrow_and_update();
        let feed = store.events(tenant.id, after, limit).await?;
        if after < feed.pruned {
            return Err(FeedError::Pruned { after, pruned: feed.pruned, position: feed.position });
        }
        if after > feed.position {
            return Err(FeedError::Ahead { after, pruned: feed.pruned, position: feed.position });
        }
        let now = Instant::now();
        if !feed.events.is_empty() || now >= deadline {
            let position = feed.events.last().map_or(after, |e| e.seq);
            return Ok(Page { events: feed.events, position });
        }
        let nap = recheck.map_or(deadline - now, |r| r.min(deadline - now));
        let stop = async {
            match stopping.as_mut() {
                Some(rx) => drop(rx.wait_for(|s| *s).await),
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout(nap, signal.changed()) => {
                if let Ok(Err(_)) = r {
                    // The store is going away: answer with nothing new.
                    return Ok(Page { events: Vec::new(), position: after });
                }
            }
            () = stop => return Ok(Page { events: Vec::new(), position: after }),
        }
    }
}

/// A `wait` as the API takes it: seconds (`30`, `30s`), milliseconds (`500ms`) or minutes
/// (`1m`); longer than [`MAX_WAIT`] is shortened to it.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("wait must be a duration such as 30s, 500ms or 1m, not \"{text}\""))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("wait must be a duration such as 30s, 500ms or 1m, not \"{text}\"")),
    };
    Ok(d.min(MAX_WAIT))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_seconds_milliseconds_or_minutes_and_capped() {
        assert_eq!(parse_wait("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("5m").unwrap(), MAX_WAIT);
        assert_eq!(parse_wait("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "-1", "1h", "1.5s", "30 s", "99999999999999999999"] {
            assert!(parse_wait(bad).is_err(), "{bad:?}");
        }
    }
}
