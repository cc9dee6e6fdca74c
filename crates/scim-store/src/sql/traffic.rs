//! The store operations of the provisioning log, the traffic summary, health changes, setup
//! links and console sessions (see `crate::traffic`), for both engines.

use std::collections::BTreeMap;

use scim_core::change::EventType;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Arg, Conn, Lock, Mode, Operation, Row};
use crate::common::{instant, micros};
use crate::feed::NewEvent;
use crate::sql::ops::{Context, CreateToken, event, lock_tenant};
use crate::traffic::{Cycle, Invite, LoggedRequest, RequestQuery, Session, Traffic};
use crate::{Actor, Result, StoreError, Token};

const REQUEST_COLS: &str =
    "id, tenant_id, at, token, method, path, status, scim_type, detail, latency_us, resource, hint";
const TRAFFIC_COLS: &str = "tenant_id, first_request, last_request, first_success, last_success, first_user, \
     last_write, unauthorized_streak, cycle_start, cycle_last, cycle_requests, cycle_errors, prev_start, prev_last, \
     prev_requests, prev_errors, health";
const INVITE_COLS: &str = "id, tenant_id, digest, created, expires, revoked, redeemed, token_id";
const SESSION_COLS: &str = "id, digest, api_key_id, csrf, created, expires";

/// Rows of one multi-row `INSERT` of the log.
const INSERT_ROWS: usize = 64;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    let bad = || StoreError::Corrupt(format!("a stored digest is not hex: {text:?}"));
    if text.len() % 2 != 0 {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

fn request_row(mut r: Row) -> Result<LoggedRequest> {
    Ok(LoggedRequest {
        id: r.int(0)?,
        tenant: r.int(1)?,
        at: instant(r.int(2)?),
        token: r.opt_text(3)?,
        method: r.text(4)?,
        path: r.text(5)?,
        status: u16::try_from(r.int(6)?).map_err(|_| StoreError::Corrupt("a logged status out of range".into()))?,
        scim_type: r.opt_text(7)?,
        detail: r.opt_text(8)?,
        latency_us: r.int(9)?,
        resource: r.opt_text(10)?,
        hint: r.opt_text(11)?,
    })
}

fn cycle(start: Option<i64>, last: Option<i64>, requests: i64, errors: i64) -> Option<Cycle> {
    Some(Cycle { start: instant(start?), last: instant(last?), requests, errors })
}

fn traffic_row(mut r: Row) -> Result<Traffic> {
    Ok(Traffic {
        tenant: r.int(0)?,
        first_request: r.opt_int(1)?.map(instant),
        last_request: r.opt_int(2)?.map(instant),
        first_success: r.opt_int(3)?.map(instant),
        last_success: r.opt_int(4)?.map(instant),
        first_user: r.opt_int(5)?.map(instant),
        last_write: r.opt_int(6)?.map(instant),
        unauthorized_streak: r.int(7)?,
        cycle: cycle(r.opt_int(8)?, r.opt_int(9)?, r.int(10)?, r.int(11)?),
        previous: cycle(r.opt_int(12)?, r.opt_int(13)?, r.int(14)?, r.int(15)?),
        health: r.opt_text(16)?,
    })
}

fn invite_row(mut r: Row) -> Result<Invite> {
    let digest = r.text(2)?;
    Ok(Invite {
        id: r.text(0)?,
        tenant: r.int(1)?,
        digest: unhex(&digest)?,
        created: instant(r.int(3)?),
        expires: instant(r.int(4)?),
        revoked: r.opt_int(5)?.map(instant),
        redeemed: r.opt_int(6)?.map(instant),
        token: r.opt_text(7)?,
    })
}

fn session_row(mut r: Row) -> Result<Session> {
    let digest = r.text(1)?;
    Ok(Session {
        id: r.text(0)?,
        digest: unhex(&digest)?,
        api_key: r.text(2)?,
        csrf: r.text(3)?,
        created: instant(r.int(4)?),
        expires: instant(r.int(5)?),
    })
}

/// The traffic row of a tenant, locked, made if missing; `None` if the tenant is gone.
async fn locked_traffic<C: Conn>(c: &mut C, tenant: i64) -> Result<Option<Traffic>> {
    let exists = format!("SELECT 1 FROM tenants WHERE id = $1{}", c.dialect().lock(Lock::KeyShare));
    if c.opt(&exists, &[Arg::Int(tenant)]).await?.is_none() {
        return Ok(None);
    }
    c.exec("INSERT INTO traffic (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING", &[Arg::Int(tenant)])
        .await?;
    let sql = format!("SELECT {TRAFFIC_COLS} FROM traffic WHERE tenant_id = $1{}", c.dialect().lock(Lock::NoKeyUpdate));
    c.opt(&sql, &[Arg::Int(tenant)]).await?.map(traffic_row).transpose()
}

/// The traffic rows of `tenants` (which exist), locked in key order, with the last number given
/// in each tenant's log; tenants without a row are missing from the map.
async fn locked_summaries<C: Conn>(c: &mut C, tenants: &[i64]) -> Result<BTreeMap<i64, (Traffic, i64)>> {
    let d = c.dialect();
    let sql = format!(
        "SELECT {TRAFFIC_COLS}, log_seq FROM traffic WHERE {} ORDER BY tenant_id{}",
        d.in_list("tenant_id", 1),
        d.lock(Lock::NoKeyUpdate)
    );
    let seq_col = TRAFFIC_COLS.split(',').count();
    let mut out = BTreeMap::new();
    for row in c.query(&sql, &[Arg::Ints(tenants.to_vec())]).await? {
        let seq = row.int(seq_col)?;
        let t = traffic_row(row)?;
        out.insert(t.tenant, (t, seq));
    }
    Ok(out)
}

/// Appends requests to the provisioning log and folds them into their tenants' summaries, in
/// one transaction. Requests of a tenant that no longer exists are dropped.
///
/// The statements do not grow with the tenants of a batch beyond one `UPDATE` of each
/// summary: the tenants are checked (and held against deletion) in one statement, their
/// summaries read and locked in another (made first where missing), and the requests of every
/// tenant inserted together, [`INSERT_ROWS`] to a statement. Locks are taken in tenant order.
pub(crate) struct LogRequests(pub Vec<LoggedRequest>);

impl Operation for LogRequests {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let mut by_tenant: BTreeMap<i64, Vec<&LoggedRequest>> = BTreeMap::new();
        for r in &self.0 {
            by_tenant.entry(r.tenant).or_default().push(r);
        }
        if by_tenant.is_empty() {
            return Ok(());
        }
        let d = c.dialect();
        let sql = format!("SELECT id FROM tenants WHERE {} ORDER BY id{}", d.in_list("id", 1), d.lock(Lock::KeyShare));
        let asked: Vec<i64> = by_tenant.keys().copied().collect();
        let live: Vec<i64> =
            c.query(&sql, &[Arg::Ints(asked)]).await?.iter().map(|r| r.int(0)).collect::<Result<_>>()?;
        if live.is_empty() {
            return Ok(());
        }
        let mut summaries = locked_summaries(c, &live).await?;
        let missing: Vec<i64> = live.iter().copied().filter(|t| !summaries.contains_key(t)).collect();
        if !missing.is_empty() {
            let values: Vec<String> = (1..=missing.len()).map(|i| format!("(${i})")).collect();
            let sql = format!(
                "INSERT INTO traffic (tenant_id) VALUES {} ON CONFLICT (tenant_id) DO NOTHING",
                values.join(", ")
            );
            let args: Vec<Arg> = missing.iter().map(|t| Arg::Int(*t)).collect();
            c.exec(&sql, &args).await?;
            summaries.extend(locked_summaries(c, &missing).await?);
        }
        // (number in its tenant's log, request), inserted once every summary is written
        let mut rows: Vec<(i64, &LoggedRequest)> = Vec::with_capacity(self.0.len());
        for (tenant, reqs) in by_tenant {
            let Some((mut t, mut seq)) = summaries.remove(&tenant) else { continue };
            for r in &reqs {
                t.apply(r);
            }
            let opt = |v: Option<OffsetDateTime>| Arg::opt_int(v.map(micros));
            let cyc = |c: Option<Cycle>| {
                [
                    opt(c.map(|c| c.start)),
                    opt(c.map(|c| c.last)),
                    Arg::Int(c.map_or(0, |c| c.requests)),
                    Arg::Int(c.map_or(0, |c| c.errors)),
                ]
            };
            // The requests' numbers in the tenant's log follow the last one given.
            let mut args = vec![
                Arg::Int(tenant),
                opt(t.first_request),
                opt(t.last_request),
                opt(t.first_success),
                opt(t.last_success),
                opt(t.first_user),
                opt(t.last_write),
                Arg::Int(t.unauthorized_streak),
            ];
            args.extend(cyc(t.cycle));
            args.extend(cyc(t.previous));
            args.push(Arg::Int(seq + reqs.len() as i64));
            let sql = "UPDATE traffic SET first_request = $2, last_request = $3, first_success = $4, \
                last_success = $5, first_user = $6, last_write = $7, unauthorized_streak = $8, cycle_start = $9, \
                cycle_last = $10, cycle_requests = $11, cycle_errors = $12, prev_start = $13, prev_last = $14, \
                prev_requests = $15, prev_errors = $16, log_seq = $17 WHERE tenant_id = $1";
            c.exec(sql, &args).await?;
            for r in reqs {
                seq += 1;
                rows.push((seq, r));
            }
        }
        for chunk in rows.chunks(INSERT_ROWS) {
            let mut values = Vec::with_capacity(chunk.len());
            let mut args = Vec::with_capacity(chunk.len() * 12);
            for (seq, r) in chunk {
                let n = args.len();
                let row: Vec<String> = (n + 1..=n + 12).map(|i| format!("${i}")).collect();
                values.push(format!("({})", row.join(", ")));
                args.extend([
                    Arg::Int(r.tenant),
                    Arg::Int(*seq),
                    Arg::Int(micros(r.at)),
                    Arg::opt_text(r.token.as_deref()),
                    Arg::Text(r.method.clone()),
                    Arg::Text(r.path.clone()),
                    Arg::Int(i64::from(r.status)),
                    Arg::opt_text(r.scim_type.as_deref()),
                    Arg::opt_text(r.detail.as_deref()),
                    Arg::Int(r.latency_us),
                    Arg::opt_text(r.resource.as_deref()),
                    Arg::opt_text(r.hint.as_deref()),
                ]);
            }
            let sql = format!(
                "INSERT INTO requests (tenant_id, id, at, token, method, path, status, scim_type, detail, \
                 latency_us, resource, hint) VALUES {}",
                values.join(", ")
            );
            c.exec(&sql, &args).await?;
        }
        Ok(())
    }
}

/// A tenant's logged requests, newest first.
pub(crate) struct Requests(pub RequestQuery);

impl Operation for Requests {
    type Output = Vec<LoggedRequest>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<LoggedRequest>> {
        let q = &self.0;
        let mut sql = format!("SELECT {REQUEST_COLS} FROM requests WHERE tenant_id = $1");
        let mut args = vec![Arg::Int(q.tenant)];
        if let Some(since) = q.since {
            args.push(Arg::Int(micros(since)));
            sql.push_str(&format!(" AND at >= ${}", args.len()));
        }
        if let Some(before) = q.before {
            args.push(Arg::Int(before));
            sql.push_str(&format!(" AND id < ${}", args.len()));
        }
        if let Some((lo, hi)) = q.status {
            args.push(Arg::Int(i64::from(lo)));
            args.push(Arg::Int(i64::from(hi)));
            sql.push_str(&format!(" AND status >= ${} AND status <= ${}", args.len() - 1, args.len()));
        }
        args.push(Arg::Int(i64::try_from(q.limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
        c.query(&sql, &args).await?.into_iter().map(request_row).collect()
    }
}

/// Prunes one tenant's log, a batch at a time: the requests before `before` and those beyond
/// the newest `keep`, at most [`PRUNE_BATCH`] of them (the oldest) per call, so that a long log
/// is cut in many short transactions, with other writes between them. Run until it answers
/// `None`.
pub(crate) struct PruneRequests {
    pub tenant: i64,
    pub before: Option<i64>,
    pub keep: Option<u64>,
}

/// The most requests one pruning transaction deletes. Deleting a log of two million requests
/// down to the 100,000 kept in one transaction held SQLite's writer for two seconds.
pub(crate) const PRUNE_BATCH: i64 = 10_000;

impl Operation for PruneRequests {
    /// How many it deleted; `None` when there was nothing (more) to prune.
    type Output = Option<u64>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<u64>> {
        let t = Arg::Int(self.tenant);
        let Some(oldest) = c.opt("SELECT min(id) FROM requests WHERE tenant_id = $1", std::slice::from_ref(&t)).await?
        else {
            return Ok(None);
        };
        let Some(oldest) = oldest.opt_int(0)? else { return Ok(None) };
        // Everything up to `cut` goes: the requests before the first one to keep by age, and
        // those older than the newest `keep`.
        let mut cut = oldest - 1;
        if let Some(before) = self.before {
            // The scan from the oldest row stops at the first one to keep.
            let first_kept = "SELECT id FROM requests WHERE tenant_id = $1 AND at >= $2 ORDER BY id LIMIT 1";
            cut = match c.opt(first_kept, &[t.clone(), Arg::Int(before)]).await? {
                Some(row) => cut.max(row.int(0)? - 1),
                None => i64::MAX,
            };
        }
        if let Some(keep) = self.keep {
            // Ids are given in order within a tenant, so the newest `keep` are above the newest
            // id less `keep` (a gap left by an earlier prune only keeps fewer).
            let newest = c.opt("SELECT max(id) FROM requests WHERE tenant_id = $1", std::slice::from_ref(&t)).await?;
            if let Some(newest) = newest.map(|r| r.opt_int(0)).transpose()?.flatten() {
                cut = cut.max(newest.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX)));
            }
        }
        let cut = cut.min(oldest.saturating_add(PRUNE_BATCH - 1));
        if cut < oldest {
            return Ok(None);
        }
        let n = c.exec("DELETE FROM requests WHERE tenant_id = $1 AND id <= $2", &[t, Arg::Int(cut)]).await?;
        Ok(Some(n))
    }
}

/// The traffic summaries of one tenant or of every tenant that has one.
pub(crate) struct TrafficOf(pub Option<i64>);

impl Operation for TrafficOf {
    type Output = Vec<Traffic>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Traffic>> {
        let rows = match self.0 {
            Some(t) => {
                c.query(&format!("SELECT {TRAFFIC_COLS} FROM traffic WHERE tenant_id = $1"), &[Arg::Int(t)]).await?
            }
            None => c.query(&format!("SELECT {TRAFFIC_COLS} FROM traffic ORDER BY tenant_id"), &[]).await?,
        };
        rows.into_iter().map(traffic_row).collect()
    }
}

/// Records a tenant's new health status, if it still is `before` (so that of several replicas
/// noticing the same change, one records it), with a `tenant.health_changed` event.
pub(crate) struct SetHealth {
    pub tenant: i64,
    pub before: Option<String>,
    pub after: String,
    pub data: Value,
    pub now: OffsetDateTime,
}

impl Operation for SetHealth {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        if locked_traffic(c, self.tenant).await?.is_none() {
            return Ok(false);
        }
        let sql = "UPDATE traffic SET health = $2 WHERE tenant_id = $1 AND COALESCE(health, '') = $3";
        let args =
            [Arg::Int(self.tenant), Arg::Text(self.after.clone()), Arg::Text(self.before.clone().unwrap_or_default())];
        if c.exec(sql, &args).await? == 0 {
            return Ok(false);
        }
        let row = c.opt("SELECT name FROM tenants WHERE id = $1", &[Arg::Int(self.tenant)]).await?;
        let name = match row {
            Some(mut r) => r.text(0)?,
            None => return Ok(false),
        };
        let ev = NewEvent {
            ty: EventType::TenantHealthChanged,
            resource: json!({"type": "Tenant", "id": name, "externalId": null}),
            data: self.data.clone(),
            // No status recorded yet: the tenant had never connected.
            changes: vec![json!({
                "path": "health.status",
                "before": self.before.as_deref().unwrap_or("never_connected"),
                "after": self.after,
            })],
            members: None,
        };
        event(c, self.tenant, &Actor::system("health"), micros(self.now), ev).await?;
        Ok(true)
    }
}

/// Stores a new setup link.
pub(crate) struct CreateInvite(pub Invite);

impl Operation for CreateInvite {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let i = &self.0;
        lock_tenant(c, i.tenant).await?;
        let args = [
            Arg::Text(i.id.clone()),
            Arg::Int(i.tenant),
            Arg::Text(hex(&i.digest)),
            Arg::Int(micros(i.created)),
            Arg::Int(micros(i.expires)),
            Arg::opt_int(i.revoked.map(micros)),
            Arg::opt_int(i.redeemed.map(micros)),
            Arg::opt_text(i.token.as_deref()),
        ];
        c.exec(&format!("INSERT INTO invites ({INVITE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"), &args).await?;
        Ok(())
    }
}

/// A setup link by id, or a tenant's links (newest first).
pub(crate) enum Invites {
    Id(String),
    Tenant(i64),
}

impl Operation for Invites {
    type Output = Vec<Invite>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Invite>> {
        let rows = match self {
            Invites::Id(id) => {
                c.query(&format!("SELECT {INVITE_COLS} FROM invites WHERE id = $1"), &[Arg::Text(id.clone())]).await?
            }
            Invites::Tenant(t) => {
                let sql = format!("SELECT {INVITE_COLS} FROM invites WHERE tenant_id = $1 ORDER BY created DESC, id");
                c.query(&sql, &[Arg::Int(*t)]).await?
            }
        };
        rows.into_iter().map(invite_row).collect()
    }
}

/// Revokes a setup link; false if there is none.
pub(crate) struct RevokeInvite {
    pub id: String,
    pub now: OffsetDateTime,
}

impl Operation for RevokeInvite {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let sql = "UPDATE invites SET revoked = COALESCE(revoked, $2) WHERE id = $1";
        Ok(c.exec(sql, &[Arg::Text(self.id.clone()), Arg::Int(micros(self.now))]).await? > 0)
    }
}

/// Reveals a setup link's token: marks the link redeemed and stores the token in one
/// transaction, only if the link is still unused, unrevoked and unexpired (so two clicks at
/// once reveal one token). False, and nothing stored, otherwise.
pub(crate) struct RedeemInvite {
    pub id: String,
    pub token: Token,
    pub now: OffsetDateTime,
    pub actor: Actor,
}

impl Operation for RedeemInvite {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, ctx: &Context) -> Result<bool> {
        let sql = "UPDATE invites SET redeemed = $2, token_id = $3 \
                   WHERE id = $1 AND tenant_id = $4 AND redeemed IS NULL AND revoked IS NULL AND expires > $2";
        let args = [
            Arg::Text(self.id.clone()),
            Arg::Int(micros(self.now)),
            Arg::Text(self.token.id.clone()),
            Arg::Int(self.token.tenant),
        ];
        if c.exec(sql, &args).await? == 0 {
            return Ok(false);
        }
        CreateToken(self.token.clone(), Some(self.actor.clone())).run(c, ctx).await?;
        Ok(true)
    }
}

/// Stores a new console session, and forgets the sessions that have ended.
pub(crate) struct CreateSession(pub Session);

impl Operation for CreateSession {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let s = &self.0;
        c.exec("DELETE FROM console_sessions WHERE expires <= $1", &[Arg::Int(micros(s.created))]).await?;
        let args = [
            Arg::Text(s.id.clone()),
            Arg::Text(hex(&s.digest)),
            Arg::Text(s.api_key.clone()),
            Arg::Text(s.csrf.clone()),
            Arg::Int(micros(s.created)),
            Arg::Int(micros(s.expires)),
        ];
        c.exec(&format!("INSERT INTO console_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"), &args)
            .await?;
        Ok(())
    }
}

/// A console session by id.
pub(crate) struct SessionById(pub String);

impl Operation for SessionById {
    type Output = Option<Session>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLS} FROM console_sessions WHERE id = $1");
        c.opt(&sql, &[Arg::Text(self.0.clone())]).await?.map(session_row).transpose()
    }
}

/// Ends a console session.
pub(crate) struct DeleteSession(pub String);

impl Operation for DeleteSession {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        c.exec("DELETE FROM console_sessions WHERE id = $1", &[Arg::Text(self.0.clone())]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let d = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&d), "0001abff");
        assert_eq!(unhex("0001abff").ok(), Some(d));
        assert!(unhex("0g").is_err());
        assert!(unhex("abc").is_err());
    }
}
