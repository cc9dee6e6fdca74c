//! What the store keeps of a tenant's SCIM traffic, and the short-lived secrets of the support
//! console and the customer's setup page:
//!
//! - the provisioning log: one [`LoggedRequest`] per SCIM request (no attribute values except
//!   in error details, never a token), kept by age and count per tenant;
//! - a running summary per tenant, [`Traffic`], folded from the same requests as they are
//!   logged ([`Traffic::apply`]): directory health is derived from it, so it survives the
//!   pruning of the log and costs one row per tenant to read;
//! - customer setup links ([`Invite`]) and console sessions ([`Session`]), stored as digests.

use time::{Duration, OffsetDateTime};

/// One SCIM request as the provisioning log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The log's key: increasing in the order requests were logged (0 before it is stored).
    pub id: i64,
    /// The tenant.
    pub tenant: i64,
    /// When the request arrived.
    pub at: OffsetDateTime,
    /// The id of the token presented (never the secret), if one was recognised.
    pub token: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path below `/scim/v2`, with ids, and the names of the query parameters (never their
    /// values), e.g. `/Users?filter`.
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The SCIM error's `scimType`, if any.
    pub scim_type: Option<String>,
    /// The SCIM error's `detail`, for refusals.
    pub detail: Option<String>,
    /// How long the request took, in microseconds.
    pub latency_us: i64,
    /// The id of the resource the request was about (created, read, changed or deleted).
    pub resource: Option<String>,
    /// What to change in the client for a known mistake (the Entra mapping of a missing
    /// mandatory attribute; which resource holds a value that must be unique).
    pub hint: Option<String>,
}

impl LoggedRequest {
    /// Whether the request asked for a change (a search by `POST .../.search` is a read).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && !self.path.contains(".search")
    }

    /// Whether the request counts as an error for directory health: every 4xx and 5xx except
    /// 404 (a client looking for or deleting what is already gone is routine for Entra).
    pub fn is_error(&self) -> bool {
        self.status >= 400 && self.status != 404
    }
}

/// Which logged requests to read: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestQuery {
    /// The tenant.
    pub tenant: i64,
    /// Only requests at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only requests with a key below this one (the next page of a newest-first listing).
    pub before: Option<i64>,
    /// Only statuses in this inclusive range, e.g. (400, 499).
    pub status: Option<(u16, u16)>,
    /// The most requests to return.
    pub limit: u64,
}

/// A provisioning cycle: a run of requests with no pause longer than [`CYCLE_GAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// Its first request.
    pub start: OffsetDateTime,
    /// Its latest request.
    pub last: OffsetDateTime,
    /// How many requests it had.
    pub requests: i64,
    /// How many of them were errors ([`LoggedRequest::is_error`]).
    pub errors: i64,
}

/// A pause between requests longer than this ends a provisioning cycle. Entra ID runs an
/// incremental cycle every 40 minutes, and a cycle's requests follow each other within seconds.
pub const CYCLE_GAP: Duration = Duration::minutes(10);

/// A tenant's traffic so far, as the provisioning log's writer folds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Traffic {
    /// The tenant.
    pub tenant: i64,
    /// The first request ever (none: never connected).
    pub first_request: Option<OffsetDateTime>,
    /// The latest request.
    pub last_request: Option<OffsetDateTime>,
    /// The first request that succeeded (Entra's "Test connection" is one).
    pub first_success: Option<OffsetDateTime>,
    /// The latest request that succeeded.
    pub last_success: Option<OffsetDateTime>,
    /// The first user created.
    pub first_user: Option<OffsetDateTime>,
    /// The latest successful write.
    pub last_write: Option<OffsetDateTime>,
    /// How many requests in a row, up to the latest, were refused with 401.
    pub unauthorized_streak: i64,
    /// The cycle of the latest request.
    pub cycle: Option<Cycle>,
    /// The cycle before it.
    pub previous: Option<Cycle>,
    /// The health status last recorded for the tenant (see `Store::set_health`).
    pub health: Option<String>,
}

impl Traffic {
    /// Folds one more request into the summary (requests come in the order they arrived).
    pub fn apply(&mut self, r: &LoggedRequest) {
        let at = r.at;
        self.first_request.get_or_insert(at);
        self.last_request = Some(self.last_request.map_or(at, |l| l.max(at)));
        if r.status < 400 {
            self.first_success.get_or_insert(at);
            self.last_success = Some(self.last_success.map_or(at, |l| l.max(at)));
            if r.is_write() {
                self.last_write = Some(self.last_write.map_or(at, |l| l.max(at)));
            }
            // The path keeps query parameter names (`/Users?aadOptscim062020`).
            let path = r.path.split('?').next().unwrap_or_default();
            if r.method == "POST" && r.status == 201 && path == "/Users" {
                self.first_user.get_or_insert(at);
            }
        }
        if r.status == 401 {
            self.unauthorized_streak += 1;
        } else {
            self.unauthorized_streak = 0;
        }
        let error = i64::from(r.is_error());
        match &mut self.cycle {
            Some(c) if at - c.last <= CYCLE_GAP => {
                c.last = c.last.max(at);
                c.requests += 1;
                c.errors += error;
            }
            _ => {
                self.previous = self.cycle.take();
                self.cycle = Some(Cycle { start: at, last: at, requests: 1, errors: error });
            }
        }
    }
}

/// A customer setup link: a one-time link on the public listener that shows the customer's
/// admin how to connect, and reveals one new token once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The public identifier (also the secret's prefix).
    pub id: String,
    /// The tenant.
    pub tenant: i64,
    /// SHA-256 of the secret part.
    pub digest: Vec<u8>,
    /// When it was made.
    pub created: OffsetDateTime,
    /// When it stops working.
    pub expires: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked: Option<OffsetDateTime>,
    /// When its token was revealed, if it was.
    pub redeemed: Option<OffsetDateTime>,
    /// The id of the token it revealed.
    pub token: Option<String>,
}

/// A signed-in session of the support console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The public identifier (also the cookie's prefix).
    pub id: String,
    /// SHA-256 of the secret part.
    pub digest: Vec<u8>,
    /// The API key it was signed in with (revoking the key ends the session).
    pub api_key: String,
    /// The token every form of the session must carry.
    pub csrf: String,
    /// When it began.
    pub created: OffsetDateTime,
    /// When it ends.
    pub expires: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(at_min: i64, method: &str, path: &str, status: u16) -> LoggedRequest {
        LoggedRequest {
            id: 0,
            tenant: 1,
            at: OffsetDateTime::UNIX_EPOCH + Duration::minutes(at_min),
            token: None,
            method: method.into(),
            path: path.into(),
            status,
            scim_type: None,
            detail: None,
            latency_us: 1,
            resource: None,
            hint: None,
        }
    }

    #[test]
    fn the_summary_tracks_first_and_last_and_the_401_streak() {
        let mut t = Traffic::default();
        t.apply(&req(0, "GET", "/Users?filter", 401));
        t.apply(&req(1, "GET", "/Users?filter", 401));
        assert_eq!(t.unauthorized_streak, 2);
        assert_eq!(t.first_success, None);
        t.apply(&req(2, "GET", "/Users?filter", 200));
        assert_eq!(t.unauthorized_streak, 0);
        assert_eq!(t.first_success, Some(OffsetDateTime::UNIX_EPOCH + Duration::minutes(2)));
        assert_eq!(t.first_user, None);
        t.apply(&req(3, "POST", "/Users/.search", 200));
        assert_eq!(t.last_write, None, "a search is a read");
        t.apply(&req(4, "POST", "/Users", 201));
        assert_eq!(t.first_user, Some(OffsetDateTime::UNIX_EPOCH + Duration::minutes(4)));
        assert_eq!(t.last_write, t.first_user);
        assert_eq!(t.first_request, Some(OffsetDateTime::UNIX_EPOCH));
    }

    #[test]
    fn a_pause_longer_than_the_gap_starts_a_new_cycle() {
        let mut t = Traffic::default();
        t.apply(&req(0, "GET", "/Users", 200));
        t.apply(&req(5, "POST", "/Users", 400));
        t.apply(&req(6, "GET", "/Users/x", 404));
        let c = t.cycle.unwrap_or_else(|| unreachable!());
        assert_eq!((c.requests, c.errors), (3, 1), "a 404 is no error");
        t.apply(&req(40, "GET", "/Users", 200));
        assert_eq!(t.previous, Some(c));
        assert_eq!(t.cycle.map(|c| (c.requests, c.errors)), Some((1, 0)));
    }
}
