//! The store operations of webhooks and their deliveries (see `crate::webhook`), for both
//! engines.

use time::OffsetDateTime;

use super::{Arg, Conn, Mode, Operation, Row};
use crate::common::{instant, micros};
use crate::sql::ops::Context;
use crate::webhook::{Claim, Delivery, Outcome, Webhook, WebhookFormat};
use crate::{Result, StoreError};

const WEBHOOK_COLS: &str =
    "w.id, w.url, w.tenant_id, w.events, w.format, w.secret, w.old_secret, w.old_secret_until, w.created";
/// The last column is the commit time of the first event the delivery has not sent (an index
/// look-up in `events_seq`).
const DELIVERY_COLS: &str = "d.webhook_id, d.tenant_id, t.name, d.position, t.feed_seq, d.failures, d.failing_since, \
     d.next_at, d.last_at, d.last_outcome, d.failed, t.guard_held, d.discard_from, d.discard_to, \
     (SELECT e.at FROM events e WHERE e.tenant_id = d.tenant_id AND e.seq > d.position ORDER BY e.seq LIMIT 1)";

fn webhook_row(mut r: Row) -> Result<Webhook> {
    let events = r.text(3)?;
    let format = r.text(4)?;
    Ok(Webhook {
        id: r.text(0)?,
        url: r.text(1)?,
        tenant: r.opt_int(2)?,
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("a webhook's list of event types: {e}")))?,
        format: WebhookFormat::parse(&format)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook format \"{format}\"")))?,
        secret: r.text(5)?,
        old_secret: r.opt_text(6)?,
        old_secret_until: r.opt_int(7)?.map(instant),
        created: instant(r.int(8)?),
    })
}

fn delivery_row(mut r: Row) -> Result<Delivery> {
    Ok(Delivery {
        webhook: r.text(0)?,
        tenant: r.int(1)?,
        tenant_name: r.text(2)?,
        position: r.int(3)?,
        head: r.int(4)?,
        failures: r.int(5)?,
        failing_since: r.opt_int(6)?.map(instant),
        next_at: instant(r.int(7)?),
        last_at: r.opt_int(8)?.map(instant),
        last_outcome: r.opt_text(9)?,
        failed: r.int(10)? != 0,
        held_from: r.opt_int(11)?,
        discard: r.opt_int(12)?.zip(r.opt_int(13)?),
        oldest_waiting: r.opt_int(14)?.map(instant),
    })
}

async fn deliveries_of<C: Conn>(c: &mut C, webhook: &str) -> Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLS} FROM deliveries d JOIN tenants t ON t.id = d.tenant_id WHERE d.webhook_id = $1 ORDER BY t.name"
    );
    c.query(&sql, &[Arg::Text(webhook.to_owned())]).await?.into_iter().map(delivery_row).collect()
}

/// Adds a webhook, with a delivery for its tenant (or each tenant) starting at the feed's
/// position now: it receives what happens from now on (`replay` sends the past).
pub(crate) struct CreateWebhook(pub Webhook);

impl Operation for CreateWebhook {
    type Output = ();
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<()> {
        let w = &self.0;
        if let Some(t) = w.tenant {
            c.opt("SELECT 1 FROM tenants WHERE id = $1", &[Arg::Int(t)]).await?.ok_or(StoreError::NoTenant)?;
        }
        let events = serde_json::to_string(&w.events).map_err(|e| StoreError::Backend(e.to_string()))?;
        let args = [
            Arg::Text(w.id.clone()),
            Arg::Text(w.url.clone()),
            Arg::opt_int(w.tenant),
            Arg::Text(events),
            Arg::Text(w.format.as_str().into()),
            Arg::Text(w.secret.clone()),
            Arg::Int(micros(w.created)),
        ];
        c.exec(
            "INSERT INTO webhooks (id, url, tenant_id, events, format, secret, created) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &args,
        )
        .await?;
        let (sql, args) = match w.tenant {
            Some(t) => (
                "INSERT INTO deliveries (webhook_id, tenant_id, position) SELECT CAST($1 AS TEXT), id, feed_seq FROM tenants WHERE id = $2",
                vec![Arg::Text(w.id.clone()), Arg::Int(t)],
            ),
            None => (
                "INSERT INTO deliveries (webhook_id, tenant_id, position) SELECT CAST($1 AS TEXT), id, feed_seq FROM tenants",
                vec![Arg::Text(w.id.clone())],
            ),
        };
        c.exec(sql, &args).await?;
        Ok(())
    }
}

/// Every webhook, oldest first, with its deliveries.
pub(crate) struct ListWebhooks;

impl Operation for ListWebhooks {
    type Output = Vec<(Webhook, Vec<Delivery>)>;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Self::Output> {
        let rows = c.query(&format!("SELECT {WEBHOOK_COLS} FROM webhooks w ORDER BY w.created, w.id"), &[]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let w = webhook_row(row)?;
            let d = deliveries_of(c, &w.id).await?;
            out.push((w, d));
        }
        Ok(out)
    }
}

/// One webhook with its deliveries.
pub(crate) struct WebhookById(pub String);

impl Operation for WebhookById {
    type Output = Option<(Webhook, Vec<Delivery>)>;
    const MODE: Mode = Mode::Snapshot;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Self::Output> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.id = $1");
        let Some(row) = c.opt(&sql, &[Arg::Text(self.0.clone())]).await? else { return Ok(None) };
        let w = webhook_row(row)?;
        let d = deliveries_of(c, &w.id).await?;
        Ok(Some((w, d)))
    }
}

/// Removes a webhook and its deliveries; false if there was none.
pub(crate) struct DeleteWebhook(pub String);

impl Operation for DeleteWebhook {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let id = [Arg::Text(self.0.clone())];
        c.exec("DELETE FROM deliveries WHERE webhook_id = $1", &id).await?;
        Ok(c.exec("DELETE FROM webhooks WHERE id = $1", &id).await? > 0)
    }
}

/// Sends a webhook's events again from position `from` (of one tenant, or of each), and
/// resumes a delivery that gave up; false if there is no such webhook.
pub(crate) struct ReplayWebhook {
    pub id: String,
    pub tenant: Option<i64>,
    pub from: i64,
}

impl Operation for ReplayWebhook {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let id = Arg::Text(self.id.clone());
        if c.opt("SELECT 1 FROM webhooks WHERE id = $1", std::slice::from_ref(&id)).await?.is_none() {
            return Ok(false);
        }
        let position = Arg::Int(self.from.saturating_sub(1).max(0));
        // The lease goes too: a delivery in flight finds it lost and stops, instead of
        // recording its position over the replay's.
        let set = "position = $2, failures = 0, failing_since = NULL, next_at = 0, failed = 0, discard_from = NULL, \
                   discard_to = NULL, lease_owner = NULL, lease_until = 0";
        let n = match self.tenant {
            Some(t) => {
                let sql = format!("UPDATE deliveries SET {set} WHERE webhook_id = $1 AND tenant_id = $3");
                c.exec(&sql, &[id, position, Arg::Int(t)]).await?
            }
            None => c.exec(&format!("UPDATE deliveries SET {set} WHERE webhook_id = $1"), &[id, position]).await?,
        };
        // A webhook that does not deliver that tenant's events has nothing to replay.
        Ok(self.tenant.is_none() || n > 0)
    }
}

/// Replaces a webhook's secret; the old one is still signed with until `old_until`.
pub(crate) struct RotateWebhookSecret {
    pub id: String,
    pub secret: String,
    pub old_until: OffsetDateTime,
}

impl Operation for RotateWebhookSecret {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let args = [Arg::Text(self.id.clone()), Arg::Text(self.secret.clone()), Arg::Int(micros(self.old_until))];
        let sql = "UPDATE webhooks SET old_secret = secret, old_secret_until = $3, secret = $2 WHERE id = $1";
        if c.exec(sql, &args).await? == 0 {
            return Ok(false);
        }
        // Deliveries in flight signed with the secrets they were claimed with: their leases go,
        // so that they stop at their next event and are claimed again with the new secret.
        let sql = "UPDATE deliveries SET lease_owner = NULL, lease_until = 0 WHERE webhook_id = $1";
        c.exec(sql, &[Arg::Text(self.id.clone())]).await?;
        Ok(true)
    }
}

/// The deliveries that have events waiting and may be sent at `$1`: pushed (a URL), not given
/// up, due, not leased, not held by the tenant's guard.
const DUE: &str = "FROM deliveries d JOIN tenants t ON t.id = d.tenant_id JOIN webhooks w ON w.id = d.webhook_id
     WHERE d.position < t.feed_seq AND d.failed = 0 AND d.next_at <= $1 AND d.lease_until <= $1
       AND (t.guard_held IS NULL OR d.position + 1 < t.guard_held) AND w.url <> ''";

/// Whether any delivery is due (a read, before claiming with a write); `None` when there is
/// no delivery at all (no webhook).
pub(crate) struct AnyDue {
    pub now: OffsetDateTime,
}

impl Operation for AnyDue {
    type Output = Option<bool>;
    const MODE: Mode = Mode::Point;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Option<bool>> {
        if c.opt("SELECT 1 FROM deliveries LIMIT 1", &[]).await?.is_none() {
            return Ok(None);
        }
        let sql = format!("SELECT 1 {DUE} LIMIT 1");
        Ok(Some(c.opt(&sql, &[Arg::Int(micros(self.now))]).await?.is_some()))
    }
}

/// Claims up to `limit` deliveries that have events waiting and are due, for `owner` until
/// `lease_until`: a delivery leased by another (live) claimant is not taken.
pub(crate) struct ClaimDeliveries {
    pub owner: String,
    pub now: OffsetDateTime,
    pub lease_until: OffsetDateTime,
    pub limit: u64,
}

impl Operation for ClaimDeliveries {
    type Output = Vec<Claim>;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<Vec<Claim>> {
        let now = micros(self.now);
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT d.webhook_id, d.tenant_id {DUE} ORDER BY d.next_at, d.tenant_id LIMIT $2");
        let due = c.query(&sql, &[Arg::Int(now), Arg::Int(limit)]).await?;
        let mut claims = Vec::new();
        for mut row in due {
            let (webhook, tenant) = (row.text(0)?, row.int(1)?);
            let args = [
                Arg::Text(webhook.clone()),
                Arg::Int(tenant),
                Arg::Text(self.owner.clone()),
                Arg::Int(micros(self.lease_until)),
                Arg::Int(now),
            ];
            // Taken only if nobody took it meanwhile (the condition is checked again under the
            // row's lock).
            let sql = "UPDATE deliveries SET lease_owner = $3, lease_until = $4
                       WHERE webhook_id = $1 AND tenant_id = $2 AND lease_until <= $5";
            if c.exec(sql, &args).await? == 0 {
                continue;
            }
            let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.id = $1");
            let Some(w) = c.opt(&sql, &[Arg::Text(webhook.clone())]).await? else { continue };
            let sql = format!(
                "SELECT {DELIVERY_COLS} FROM deliveries d JOIN tenants t ON t.id = d.tenant_id
                 WHERE d.webhook_id = $1 AND d.tenant_id = $2"
            );
            let Some(d) = c.opt(&sql, &[Arg::Text(webhook), Arg::Int(tenant)]).await? else { continue };
            claims.push(Claim { webhook: webhook_row(w)?, delivery: delivery_row(d)? });
        }
        Ok(claims)
    }
}

/// Moves a delivery on to `position` (never back): a poll's acknowledgement (RFC 8936).
pub(crate) struct AckDelivery {
    pub webhook: String,
    pub tenant: i64,
    pub position: i64,
    pub now: OffsetDateTime,
}

impl Operation for AckDelivery {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let args = [
            Arg::Text(self.webhook.clone()),
            Arg::Int(self.tenant),
            Arg::Int(self.position),
            Arg::Int(micros(self.now)),
        ];
        let sql = "UPDATE deliveries SET position = $3, failures = 0, failing_since = NULL, last_at = $4, last_outcome = 'ack'
                   WHERE webhook_id = $1 AND tenant_id = $2 AND position < $3";
        Ok(c.exec(sql, &args).await? > 0)
    }
}

/// Records what an attempt did to a delivery `owner` holds; false if the lease was lost
/// (another claimant took the delivery after the lease ran out: it goes on from there).
pub(crate) struct SettleDelivery {
    pub webhook: String,
    pub tenant: i64,
    pub owner: String,
    pub now: OffsetDateTime,
    pub outcome: Outcome,
}

impl Operation for SettleDelivery {
    type Output = bool;
    const MODE: Mode = Mode::Write;
    async fn run<C: Conn>(&self, c: &mut C, _: &Context) -> Result<bool> {
        let mut args = vec![Arg::Text(self.webhook.clone()), Arg::Int(self.tenant), Arg::Text(self.owner.clone())];
        let key = "webhook_id = $1 AND tenant_id = $2 AND lease_owner = $3";
        let set = match &self.outcome {
            Outcome::Advanced { position, outcome, lease_until } => {
                args.extend([
                    Arg::Int(*position),
                    Arg::Int(micros(*lease_until)),
                    Arg::opt_text(outcome.as_deref()),
                    Arg::Int(micros(self.now)),
                ]);
                "position = $4, lease_until = $5, failures = 0, failing_since = NULL,
                 last_outcome = COALESCE(CAST($6 AS TEXT), last_outcome),
                 last_at = CASE WHEN CAST($6 AS TEXT) IS NULL THEN last_at ELSE $7 END"
            }
            Outcome::Failed { outcome, next_at, failed } => {
                args.extend([
                    Arg::Text(outcome.clone()),
                    Arg::Int(micros(*next_at)),
                    Arg::Int(i64::from(*failed)),
                    Arg::Int(micros(self.now)),
                ]);
                "failures = failures + 1, failing_since = COALESCE(failing_since, $7), last_at = $7,
                 last_outcome = $4, next_at = $5, failed = $6, lease_owner = NULL, lease_until = 0"
            }
            Outcome::Released => "lease_owner = NULL, lease_until = 0",
        };
        Ok(c.exec(&format!("UPDATE deliveries SET {set} WHERE {key}"), &args).await? > 0)
    }
}
