//! Directory health: whether a tenant's provisioning works, derived from its live SCIM traffic
//! (the summary the provisioning log's writer keeps, `scim_store::Traffic`) and its tokens.
//!
//! | status | when |
//! |---|---|
//! | `never_connected` | no request has ever come with one of the tenant's tokens |
//! | `failing` | the latest requests were refused with 401 (a wrong or expired token in the customer's Entra), no token works any more, or most of the current cycle's requests failed |
//! | `stale` | connected once, but no request for two provisioning cycles (Entra runs one every 40 minutes) |
//! | `warning` | the current cycle had errors, or every working token expires within 14 days |
//! | `healthy` | none of these |
//!
//! The same assessment is shown by the console, the vendor API (`GET
//! /api/v1/tenants/{tenant}/health`), `scimd tenant show` and the metrics; a change of status is
//! a `tenant.health_changed` event in the tenant's feed, recorded by whichever replica's
//! monitor ([`run_monitor`]) sees it first (the store compares and sets).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scim_store::{Cycle, Store, Token, Traffic};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::admin::{OpError, fmt_time, tenant_named};
use crate::clock::Clock;
use crate::tokens;

/// Entra ID's provisioning interval: one incremental cycle every 40 minutes.
pub const CYCLE: time::Duration = time::Duration::minutes(40);
/// No request for this long makes a connected tenant stale (two cycles).
pub const STALE_AFTER: time::Duration = time::Duration::minutes(80);
/// A token expiring within this long is a warning.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(14);
/// This many 401s in a row, up to the latest request, make a tenant failing.
pub const UNAUTHORIZED_STREAK: i64 = 3;
/// How often the monitor looks at every tenant.
pub const MONITOR_EVERY: Duration = Duration::from_secs(60);

/// A tenant's health status, from best to worst in [`Status::rank`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No request yet.
    NeverConnected,
    /// Working.
    Healthy,
    /// Working, with something to look at.
    Warning,
    /// No request for two cycles.
    Stale,
    /// Not working.
    Failing,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 5] =
        [Status::NeverConnected, Status::Healthy, Status::Warning, Status::Stale, Status::Failing];

    /// `never_connected`, `healthy`, `warning`, `stale` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NeverConnected => "never_connected",
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Stale => "stale",
            Status::Failing => "failing",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Status::NeverConnected => 0,
            Status::Healthy => 1,
            Status::Warning => 2,
            Status::Stale => 3,
            Status::Failing => 4,
        }
    }
}

/// One thing wrong, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `unauthorized`, `no_token`, `errors`, `stale` or `token_expiring`.
    pub code: &'static str,
    /// What it means, for the support team and the customer's admin.
    pub detail: String,
}

/// A provisioning cycle, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleView {
    /// Its first request (RFC 3339).
    pub start: String,
    /// Its latest request.
    pub last: String,
    /// How many requests it had.
    pub requests: i64,
    /// How many were errors (4xx other than 404, and 5xx).
    pub errors: i64,
    /// `errors / requests`.
    pub error_rate: f64,
}

fn cycle_view(c: &Cycle) -> CycleView {
    CycleView {
        start: fmt_time(c.start),
        last: fmt_time(c.last),
        requests: c.requests,
        errors: c.errors,
        error_rate: if c.requests > 0 { c.errors as f64 / c.requests as f64 } else { 0.0 },
    }
}

/// A tenant's directory health (`GET /api/v1/tenants/{tenant}/health`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// The tenant.
    pub tenant: String,
    /// The status.
    pub status: Status,
    /// What is wrong, worst first.
    pub problems: Vec<Problem>,
    /// When the first request came, if one did.
    pub first_request: Option<String>,
    /// The latest request.
    pub last_request: Option<String>,
    /// The first request that succeeded (Entra's "Test connection" is one).
    pub first_success: Option<String>,
    /// The latest successful request.
    pub last_success: Option<String>,
    /// The latest successful write.
    pub last_write: Option<String>,
    /// When the first user was provisioned.
    pub first_user: Option<String>,
    /// 401s in a row up to the latest request.
    pub unauthorized_streak: i64,
    /// The cycle of the latest request.
    pub cycle: Option<CycleView>,
    /// The cycle before it.
    pub previous_cycle: Option<CycleView>,
    /// How many of the tenant's tokens work.
    pub active_tokens: usize,
    /// When the last working token expires (none: one never does, or there is none).
    pub tokens_expire: Option<String>,
}

/// The tokens that work at `now` (not OAuth access tokens, which live for an hour).
fn working(tokens: &[Token], now: OffsetDateTime) -> Vec<&Token> {
    tokens
        .iter()
        .filter(|t| t.revoked.is_none() && t.expires.is_none_or(|e| now < e) && tokens::parent_of(t).is_none())
        .collect()
}

/// Assesses a tenant from its traffic summary and tokens at `now`.
pub fn assess(tenant: &str, traffic: Option<&Traffic>, tokens: &[Token], now: OffsetDateTime) -> Health {
    let blank = Traffic::default();
    let t = traffic.unwrap_or(&blank);
    let active = working(tokens, now);
    // The last working token's expiry; none if one never expires.
    let expires = if active.is_empty() || active.iter().any(|k| k.expires.is_none()) {
        None
    } else {
        active.iter().filter_map(|k| k.expires).max()
    };
    let mut problems: Vec<(Status, Problem)> = Vec::new();
    let connected = t.first_request.is_some();
    if active.is_empty() {
        let status = if connected { Status::Failing } else { Status::NeverConnected };
        problems.push((
            status,
            Problem {
                code: "no_token",
                detail:
                    "no token of this tenant works: issue one (or a setup link) and paste it into the provisioning app"
                        .into(),
            },
        ));
    }
    if t.unauthorized_streak >= UNAUTHORIZED_STREAK {
        problems.push((
            Status::Failing,
            Problem {
                code: "unauthorized",
                detail: format!(
                    "the last {} requests were refused with 401: the Secret Token in the customer's provisioning app \
                     is wrong, expired or revoked; issue a new token and have the admin paste it and Test connection",
                    t.unauthorized_streak
                ),
            },
        ));
    }
    if let Some(c) = t.cycle.filter(|c| c.errors > 0) {
        let rate = c.errors as f64 / c.requests.max(1) as f64;
        let status = if rate >= 0.5 && c.errors >= 5 { Status::Failing } else { Status::Warning };
        problems.push((
            status,
            Problem {
                code: "errors",
                detail: format!(
                    "{} of {} requests of the current provisioning cycle failed ({:.0}%): see the provisioning log",
                    c.errors,
                    c.requests,
                    rate * 100.0
                ),
            },
        ));
    }
    if let Some(last) = t.last_request.filter(|l| now - *l > STALE_AFTER) {
        problems.push((
            Status::Stale,
            Problem {
                code: "stale",
                detail: format!(
                    "no request since {} (two provisioning cycles): provisioning may be stopped or in quarantine in Entra ID",
                    fmt_time(last)
                ),
            },
        ));
    }
    if let Some(e) = expires.filter(|e| *e - now <= EXPIRY_WARNING) {
        problems.push((
            Status::Warning,
            Problem {
                code: "token_expiring",
                detail: format!(
                    "every working token expires by {}: rotate the token and have the admin paste the new one",
                    fmt_time(e)
                ),
            },
        ));
    }
    problems.sort_by_key(|(s, _)| std::cmp::Reverse(s.rank()));
    let status = match problems.first() {
        _ if !connected => Status::NeverConnected,
        Some((s, _)) => *s,
        None => Status::Healthy,
    };
    Health {
        tenant: tenant.to_owned(),
        status,
        problems: problems.into_iter().map(|(_, p)| p).collect(),
        first_request: t.first_request.map(fmt_time),
        last_request: t.last_request.map(fmt_time),
        first_success: t.first_success.map(fmt_time),
        last_success: t.last_success.map(fmt_time),
        last_write: t.last_write.map(fmt_time),
        first_user: t.first_user.map(fmt_time),
        unauthorized_streak: t.unauthorized_streak,
        cycle: t.cycle.as_ref().map(cycle_view),
        previous_cycle: t.previous.as_ref().map(cycle_view),
        active_tokens: active.len(),
        tokens_expire: expires.map(fmt_time),
    }
}

/// One tenant's health now.
pub async fn tenant_health(store: &dyn Store, clock: &dyn Clock, name: &str) -> Result<Health, OpError> {
    let t = tenant_named(store, name).await?;
    let traffic = store.traffic(Some(t.id)).await?;
    let tokens = store.list_tokens(t.id).await?;
    Ok(assess(&t.name, traffic.first(), &tokens, clock.now()))
}

/// Every tenant's health now, by tenant name.
pub async fn all_health(store: &dyn Store, clock: &dyn Clock) -> Result<Vec<Health>, OpError> {
    Ok(assess_all(store, clock.now()).await?.into_iter().map(|a| a.health).collect())
}

/// A tenant, the health status last recorded for it, and its health now.
struct Assessed {
    tenant: scim_store::Tenant,
    recorded: Option<String>,
    health: Health,
}

/// Every tenant, by name, assessed at `now`.
async fn assess_all(store: &dyn Store, now: OffsetDateTime) -> Result<Vec<Assessed>, OpError> {
    let mut traffic: HashMap<i64, Traffic> = store.traffic(None).await?.into_iter().map(|t| (t.tenant, t)).collect();
    let mut out = Vec::new();
    for tenant in store.list_tenants().await? {
        let tokens = store.list_tokens(tenant.id).await?;
        let tr = traffic.remove(&tenant.id);
        let health = assess(&tenant.name, tr.as_ref(), &tokens, now);
        out.push(Assessed { recorded: tr.and_then(|t| t.health), tenant, health });
    }
    Ok(out)
}

/// Looks at every tenant every [`MONITOR_EVERY`]: records each change of status (a
/// `tenant.health_changed` event) and sets the health metrics. Every replica runs it; the store
/// records each change once.
pub async fn run_monitor(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MONITOR_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = monitor_once(store.as_ref(), clock.as_ref()).await {
            tracing::warn!(error = %e, "directory health: could not assess the tenants");
        }
    }
}

/// One round of the monitor; returns how many changes it recorded.
pub async fn monitor_once(store: &dyn Store, clock: &dyn Clock) -> Result<usize, OpError> {
    let now = clock.now();
    let mut counts: HashMap<Status, u64> = HashMap::new();
    let mut changes = 0;
    for Assessed { tenant: t, recorded, health: h } in assess_all(store, now).await? {
        *counts.entry(h.status).or_default() += 1;
        for s in Status::ALL {
            metrics::gauge!("scimd_tenant_health", "tenant" => t.name.clone(), "status" => s.as_str())
                .set(if s == h.status { 1.0 } else { 0.0 });
        }
        metrics::gauge!("scimd_tenant_unauthorized_streak", "tenant" => t.name.clone())
            .set(h.unauthorized_streak as f64);
        let unchanged = match &recorded {
            Some(r) => r == h.status.as_str(),
            None => h.status == Status::NeverConnected,
        };
        if unchanged {
            continue;
        }
        let data = json!({"name": t.name, "status": h.status, "problems": h.problems});
        if store.set_health(t.id, recorded, h.status.as_str().to_owned(), data, now).await? {
            changes += 1;
        }
    }
    for s in Status::ALL {
        metrics::gauge!("scimd_tenants", "health" => s.as_str()).set(counts.get(&s).copied().unwrap_or(0) as f64);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scim_store::LoggedRequest;

    fn at(min: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000) + time::Duration::minutes(min)
    }

    fn token(expires: Option<OffsetDateTime>) -> Token {
        Token {
            id: "abcdefghijkl".into(),
            tenant: 1,
            digest: vec![],
            label: None,
            created: at(0),
            expires,
            revoked: None,
            last_used: None,
        }
    }

    fn traffic(reqs: &[(i64, u16)]) -> Traffic {
        let mut t = Traffic { tenant: 1, ..Traffic::default() };
        for (min, status) in reqs {
            t.apply(&LoggedRequest {
                id: 0,
                tenant: 1,
                at: at(*min),
                token: None,
                method: "GET".into(),
                path: "/Users".into(),
                status: *status,
                scim_type: None,
                detail: None,
                latency_us: 0,
                resource: None,
                hint: None,
            });
        }
        t
    }

    #[test]
    fn statuses_follow_the_traffic() {
        let tok = [token(None)];
        assert_eq!(assess("t", None, &tok, at(0)).status, Status::NeverConnected);
        let ok = traffic(&[(0, 200), (1, 201)]);
        assert_eq!(assess("t", Some(&ok), &tok, at(2)).status, Status::Healthy);
        assert_eq!(assess("t", Some(&ok), &tok, at(1 + 81)).status, Status::Stale);
        let refused = traffic(&[(0, 200), (1, 401), (2, 401), (3, 401)]);
        let h = assess("t", Some(&refused), &tok, at(4));
        assert_eq!(h.status, Status::Failing);
        assert_eq!(h.problems[0].code, "unauthorized");
        let some_errors = traffic(&[(0, 200), (1, 400), (2, 200)]);
        assert_eq!(assess("t", Some(&some_errors), &tok, at(3)).status, Status::Warning);
        let expiring = [token(Some(at(60 * 24 * 10)))];
        let h = assess("t", Some(&ok), &expiring, at(2));
        assert_eq!((h.status, h.problems[0].code), (Status::Warning, "token_expiring"));
        assert_eq!(assess("t", Some(&ok), &[], at(2)).status, Status::Failing);
    }
}
