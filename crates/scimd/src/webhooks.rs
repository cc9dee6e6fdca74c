//! Push: webhooks that receive each tenant's change feed, in order, signed (docs/webhooks.md).
//!
//! - Management ([`add`], [`list`], [`show`], [`remove`], [`replay`], [`rotate_secret`],
//!   [`test`]) is shared by `scimd webhook ...` and `/api/v1/webhooks`.
//! - Delivery ([`Deliverer`]) runs beside the SCIM server on every replica. It claims, with a
//!   lease in the store, the (webhook, tenant) deliveries that have events waiting, and sends
//!   each one's events one at a time: the next event of a tenant goes out only after the
//!   receiver acknowledged the previous one with a 2xx, and the position is stored before it
//!   does, so a restart re-sends at most the event that was in flight. Failures are retried with
//!   exponential back-off and jitter for [`DeliverySettings::retry_for`] (3 days), then the
//!   delivery is marked failed (a replay resumes it). Different tenants and endpoints are
//!   delivered in parallel, each by one replica at a time. Nothing here runs on a SCIM
//!   request's path: the worker is woken by the store's feed signal after commits.
//! - Signing follows Standard Webhooks: `webhook-id` (the event id), `webhook-timestamp` (Unix
//!   seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed
//!   with the base64-decoded part of the `whsec_` secret; during a secret's rotation both
//!   signatures are sent, space-separated.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scim_store::{Claim, Delivery, Event, Outcome, Store, StoreError, Webhook, WebhookFormat};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};

use crate::admin::{OpError, fmt_time};
use crate::clock::Clock;
use crate::tokens;

/// How delivery behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// How long a failing delivery is retried before it is marked failed.
    pub retry_for: Duration,
    /// How long a receiver has to answer one event.
    pub timeout: Duration,
    /// How many deliveries this process sends at once.
    pub concurrency: usize,
    /// How long a claim lasts without renewal (a replica that died gives its deliveries up
    /// after this).
    pub lease: Duration,
    /// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
    pub first_backoff: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_for: crate::defaults::WEBHOOK_RETRY_FOR,
            timeout: crate::defaults::WEBHOOK_TIMEOUT,
            concurrency: crate::defaults::WEBHOOK_CONCURRENCY,
            lease: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// How long the worker lets commits gather after a wake before it looks for work.
const COALESCE: Duration = Duration::from_millis(2);
/// The same while there is no webhook at all.
const IDLE_COALESCE: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A webhook as listed: its delivery state per tenant, never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// The id.
    pub id: String,
    /// Where events go; empty for a receiver that polls (RFC 8936).
    pub url: String,
    /// `push` (POSTed to the URL) or `poll` (the receiver polls `/api/v1/webhooks/{id}/poll`).
    pub mode: String,
    /// The tenant whose events it receives, or `null` for every tenant.
    pub tenant: Option<String>,
    /// The event types it receives (patterns); empty: all.
    pub events: Vec<String>,
    /// `json` or `set`.
    pub format: String,
    /// When it was added.
    pub created: String,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_until: Option<String>,
    /// The delivery of each tenant's events.
    pub deliveries: Vec<DeliveryView>,
}

/// The delivery of one tenant's events to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The tenant.
    pub tenant: String,
    /// The feed position delivered.
    pub position: i64,
    /// Events of the feed not yet delivered (or skipped).
    pub backlog: i64,
    /// The last attempt.
    pub last_attempt: Option<String>,
    /// Its outcome (`200`, `503`, `timeout`, ...).
    pub last_outcome: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// When the next attempt is due, while failing.
    pub next_attempt: Option<String>,
    /// Given up after the retry period (a replay resumes it).
    pub failed: bool,
    /// Paused by the tenant's mass-deprovisioning guard (`scimd tenant release` resumes it).
    pub paused: bool,
}

/// A webhook just added: its view, and the signing secret shown this once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddedView {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_...`: the key receivers verify signatures with.
    pub secret: String,
}

fn view(w: &Webhook, deliveries: &[Delivery], tenant_name: Option<String>, now: OffsetDateTime) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        mode: if w.url.is_empty() { "poll" } else { "push" }.to_owned(),
        tenant: tenant_name,
        events: w.events.clone(),
        format: w.format.as_str().to_owned(),
        created: fmt_time(w.created),
        previous_secret_until: w.old_secret_until.filter(|u| *u > now).map(fmt_time),
        deliveries: deliveries
            .iter()
            .map(|d| DeliveryView {
                tenant: d.tenant_name.clone(),
                position: d.position,
                backlog: (d.head - d.position).max(0),
                last_attempt: d.last_at.map(fmt_time),
                last_outcome: d.last_outcome.clone(),
                consecutive_failures: d.failures,
                next_attempt: (d.failures > 0 && !d.failed).then(|| fmt_time(d.next_at)),
                failed: d.failed,
                paused: d.held_from.is_some_and(|h| d.position + 1 >= h),
            })
            .collect(),
    }
}

async fn view_of(store: &dyn Store, w: &Webhook, d: &[Delivery], now: OffsetDateTime) -> Result<WebhookView, OpError> {
    let tenant = match w.tenant {
        Some(t) => Some(store.tenant_by_id(t).await?.map_or_else(|| t.to_string(), |t| t.name)),
        None => None,
    };
    Ok(view(w, d, tenant, now))
}

/// Checks a receiver's URL: `http` or `https`, a host, no credentials, at most 2,048 bytes.
pub fn check_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let parsed = url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("a webhook URL is http:// or https://, not {}://", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("a webhook URL needs a host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a webhook URL must not carry credentials; receivers verify the signature".to_owned());
    }
    if url.len() > 2048 {
        return Err("a webhook URL is at most 2,048 bytes".to_owned());
    }
    Ok(parsed.to_string())
}

/// Checks the event type patterns: each a type (`user.deactivated`) or a prefix ending in
/// `*` (`user.*`, `*`).
pub fn check_events(patterns: &[String]) -> Result<Vec<String>, String> {
    let types: Vec<&str> = scim_core::change::EventType::ALL.iter().map(|t| t.as_str()).collect();
    let mut out = Vec::new();
    for p in patterns.iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let known = match p.strip_suffix('*') {
            Some(prefix) => types.iter().any(|t| t.starts_with(prefix)),
            None => types.contains(&p),
        };
        if !known {
            return Err(format!(
                "\"{p}\" is no event type (nor a pattern like user.*); the types: {}",
                types.join(", ")
            ));
        }
        if !out.iter().any(|x| x == p) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// Adds a webhook for one tenant (or every tenant, `tenant` `None`); it receives the events
/// from now on.
pub async fn add(
    store: &dyn Store,
    clock: &dyn Clock,
    url: Option<&str>,
    tenant: Option<&str>,
    events: &[String],
    format: &str,
) -> Result<AddedView, OpError> {
    let format = WebhookFormat::parse(format.trim())
        .ok_or_else(|| OpError::Usage(format!("the format is json or set, not \"{format}\"")))?;
    // Without a URL, a receiver polls for its tokens (RFC 8936): only Security Event Tokens.
    let url = match url {
        Some(u) => check_url(u).map_err(OpError::Usage)?,
        None if format == WebhookFormat::Set => String::new(),
        None => {
            return Err(OpError::Usage("a webhook needs a URL (only --format set can be polled without one)".into()));
        }
    };
    let events = check_events(events).map_err(OpError::Usage)?;
    let tenant = match tenant {
        Some(name) => Some(crate::admin::tenant_named(store, name).await?),
        None => None,
    };
    let now = clock.now();
    let w = Webhook {
        id: tokens::webhook_id(),
        url,
        tenant: tenant.as_ref().map(|t| t.id),
        events,
        format,
        secret: tokens::webhook_secret(),
        old_secret: None,
        old_secret_until: None,
        created: now,
    };
    match store.create_webhook(w.clone()).await {
        Err(StoreError::NoTenant) => return Err(OpError::NotFound("the tenant is gone".to_owned())),
        r => r?,
    }
    let (w, d) = store.webhook(w.id.clone()).await?.ok_or_else(|| OpError::Store("the new webhook is gone".into()))?;
    let secret = w.secret.clone();
    Ok(AddedView { webhook: view(&w, &d, tenant.map(|t| t.name), now), secret })
}

/// Every webhook.
pub async fn list(store: &dyn Store, clock: &dyn Clock) -> Result<Vec<WebhookView>, OpError> {
    let now = clock.now();
    let mut out = Vec::new();
    for (w, d) in store.list_webhooks().await? {
        out.push(view_of(store, &w, &d, now).await?);
    }
    Ok(out)
}

fn not_found(id: &str) -> OpError {
    OpError::NotFound(format!("no webhook with id \"{id}\""))
}

fn check_id(id: &str) -> Result<&str, OpError> {
    let id = id.trim();
    let ok = id.strip_prefix("wh_").is_some_and(tokens::is_id);
    if ok { Ok(id) } else { Err(not_found(id.get(..64).unwrap_or(id))) }
}

async fn get(store: &dyn Store, id: &str) -> Result<(Webhook, Vec<Delivery>), OpError> {
    let id = check_id(id)?;
    store.webhook(id.to_owned()).await?.ok_or_else(|| not_found(id))
}

/// One webhook.
pub async fn show(store: &dyn Store, clock: &dyn Clock, id: &str) -> Result<WebhookView, OpError> {
    let (w, d) = get(store, id).await?;
    view_of(store, &w, &d, clock.now()).await
}

/// Removes a webhook: nothing more is sent to it.
pub async fn remove(store: &dyn Store, id: &str) -> Result<(), OpError> {
    let id = check_id(id)?;
    if store.delete_webhook(id.to_owned()).await? { Ok(()) } else { Err(not_found(id)) }
}

/// Delivers a webhook's events again from position `from` (of one tenant, or of each), and
/// resumes a delivery that gave up.
pub async fn replay(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    from: i64,
    tenant: Option<&str>,
) -> Result<WebhookView, OpError> {
    if from < 1 {
        return Err(OpError::Usage("the position to replay from is 1 or more".to_owned()));
    }
    let (w, _) = get(store, id).await?;
    let tenant = match tenant {
        Some(name) => Some(crate::admin::tenant_named(store, name).await?.id),
        None => None,
    };
    if !store.replay_webhook(w.id.clone(), tenant, from).await? {
        return Err(OpError::NotFound(format!("webhook {} does not receive that tenant's events", w.id)));
    }
    show(store, clock, &w.id).await
}

/// Gives a webhook a new secret; the old one still signs (beside the new) for `overlap`.
/// Returns the view and the new secret, shown once.
pub async fn rotate_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    overlap: time::Duration,
) -> Result<AddedView, OpError> {
    let (w, _) = get(store, id).await?;
    let now = clock.now();
    let secret = tokens::webhook_secret();
    let until = now.checked_add(overlap).unwrap_or(now);
    if !store.rotate_webhook_secret(w.id.clone(), secret.clone(), until).await? {
        return Err(not_found(&w.id));
    }
    Ok(AddedView { webhook: show(store, clock, &w.id).await?, secret })
}

/// What a test delivery got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestOutcome {
    /// The ping's event id.
    pub id: String,
    /// The receiver's status (`200`) or what went wrong (`timeout`).
    pub outcome: String,
    /// Whether it was a 2xx.
    pub ok: bool,
}

/// Sends a `webhook.ping` event (not part of any feed) to the receiver, signed as events are.
pub async fn test(store: &dyn Store, clock: &dyn Clock, id: &str) -> Result<TestOutcome, OpError> {
    let (w, _) = get(store, id).await?;
    if w.url.is_empty() {
        return Err(OpError::Usage(format!("webhook {} is polled (RFC 8936): it has no URL to send a ping to", w.id)));
    }
    let now = clock.now();
    let event_id = uuid::Uuid::new_v4().to_string();
    let body = json!({"id": event_id, "type": "webhook.ping", "time": fmt_time(now), "webhook": w.id}).to_string();
    let client = http_client(DeliverySettings::default().timeout).map_err(OpError::Store)?;
    let r = post(&client, &w, &event_id, "application/json", body, now).await;
    let (outcome, ok) = match r {
        Ok(status) => (status.as_u16().to_string(), status.is_success()),
        Err(e) => (e, false),
    };
    Ok(TestOutcome { id: event_id, outcome, ok })
}

// ---------------------------------------------------------------- polling (RFC 8936)

/// A poll request (RFC 8936 §2.4): acknowledge what was processed, ask for more.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollRequest {
    /// The `jti` of the tokens processed.
    #[serde(default)]
    pub ack: Vec<String>,
    /// Tokens the receiver could not process, by `jti`: they count as delivered.
    #[serde(default)]
    pub set_errs: serde_json::Map<String, serde_json::Value>,
    /// The most tokens to return (0: only acknowledge); default 10, at most 1,000.
    pub max_events: Option<u64>,
    /// Answer at once even if there is nothing (else wait up to 30 s for tokens).
    #[serde(default)]
    pub return_immediately: bool,
}

/// A poll response: tokens by `jti`, and whether more are waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    /// Signed tokens (compact JWS), by `jti`.
    pub sets: serde_json::Map<String, serde_json::Value>,
    /// More tokens wait beyond these.
    pub more_available: bool,
}

/// How long a poll without `returnImmediately` waits for tokens.
pub const POLL_WAIT: Duration = Duration::from_secs(30);

/// Answers a poll of a `set` webhook: the acknowledged tokens move its deliveries on (up to
/// the last one acknowledged without an unacknowledged one before it); then up to
/// `maxEvents` tokens of each tenant's events, oldest first. Tokens not acknowledged are
/// returned again by the next poll (at least once). A tripped guard holds tokens as it holds
/// pushes.
pub async fn poll(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    req: &PollRequest,
    issuer: &str,
    stopping: Option<&tokio::sync::watch::Receiver<bool>>,
) -> Result<PollResponse, OpError> {
    let mut stopping = stopping.cloned();
    let (w, _) = get(store, id).await?;
    if w.format != WebhookFormat::Set || !w.url.is_empty() {
        return Err(OpError::Usage(
            "only a webhook of format set without a URL is polled (RFC 8936); this one is pushed".into(),
        ));
    }
    let max = usize::try_from(req.max_events.unwrap_or(10).min(1000)).unwrap_or(1000);
    let done: HashSet<&str> =
        req.ack.iter().map(String::as_str).chain(req.set_errs.keys().map(String::as_str)).collect();
    let deadline = tokio::time::Instant::now() + if req.return_immediately { Duration::ZERO } else { POLL_WAIT };
    let mut signal = store.subscribe_all();
    loop {
        signal.borrow_and_update();
        let (_, deliveries) = get(store, &w.id).await?;
        let (mut sets, mut more, mut moved) = (serde_json::Map::new(), false, false);
        for d in &deliveries {
            let feed = store.events(d.tenant, d.position, 1000).await?;
            let mut done_to = None;
            let mut gap = false;
            for e in &feed.events {
                if feed.held_from.is_some_and(|h| e.seq >= h) {
                    break;
                }
                let discarded = d.discard.is_some_and(|(from, to)| (from..=to).contains(&e.seq))
                    && scim_core::change::EventType::deprovisions_str(&e.kind);
                let token = if w.wants(&e.kind) && !discarded {
                    crate::set::token(&w, &d.tenant_name, e, issuer)
                } else {
                    None
                };
                match token {
                    Some(t) if !done.contains(e.id.as_str()) => {
                        gap = true;
                        if sets.len() >= max {
                            more = true;
                            break;
                        }
                        sets.insert(e.id.clone(), serde_json::Value::String(t));
                    }
                    _ if !gap => done_to = Some(e.seq),
                    _ => {}
                }
            }
            if let Some(position) = done_to {
                store.ack_delivery(w.id.clone(), d.tenant, position, clock.now()).await?;
                moved = true;
            }
        }
        if !sets.is_empty() || max == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(PollResponse { sets, more_available: more });
        }
        if moved {
            // Only events with no token for this receiver were read: read on from there.
            continue;
        }
        let stop = async {
            match stopping.as_mut() {
                Some(rx) => drop(rx.wait_for(|s| *s).await),
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, signal.changed()) => {}
            // The server is stopping: answer with what there is (nothing).
            () = stop => return Ok(PollResponse { sets, more_available: more }),
        }
    }
}

// ---------------------------------------------------------------- signing and sending

/// The key of a `whsec_` secret: its base64-decoded part.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with `secret`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = key_of(secret)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: the current secret's signature, and the previous
/// secret's while its rotation overlap lasts.
fn signature_header(w: &Webhook, id: &str, timestamp: i64, body: &str, now: OffsetDateTime) -> String {
    let mut sigs: Vec<String> = signature(&w.secret, id, timestamp, body).into_iter().collect();
    if let (Some(old), Some(until)) = (&w.old_secret, w.old_secret_until) {
        if now < until {
            sigs.extend(signature(old, id, timestamp, body));
        }
    }
    sigs.join(" ")
}

/// The HTTP client of deliveries: HTTP/1.1, TLS by rustls (ring) with the system's root
/// certificates, no redirects followed (a 3xx is no acknowledgement).
#[derive(Clone)]
struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

fn http_client(timeout: Duration) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the system has but rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
    Ok(HttpClient { client, timeout })
}

/// POSTs one signed body; the status, or what went wrong.
async fn post(
    client: &HttpClient,
    w: &Webhook,
    id: &str,
    content_type: &str,
    body: String,
    now: OffsetDateTime,
) -> Result<StatusCode, String> {
    let ts = now.unix_timestamp();
    let sig = signature_header(w, id, ts, &body, now);
    let req = Request::post(w.url.as_str())
        .header(header::CONTENT_TYPE, content_type)
        .header(header::USER_AGENT, concat!("scimd/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match tokio::time::timeout(client.timeout, client.client.request(req)).await {
        Err(_) => Err("timeout".to_owned()),
        Ok(Err(e)) if e.is_connect() => Err("connection refused or unreachable".to_owned()),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(resp)) => {
            let status = resp.status();
            // Read (and drop) the answer, so that the connection can be used again.
            let _ = tokio::time::timeout(client.timeout, resp.into_body().collect()).await;
            Ok(status)
        }
    }
}

/// The body of an event for a webhook, with its content type; `None` when the webhook's
/// format has no form for it (a SET exists only for user and group events).
fn render(w: &Webhook, tenant: &str, e: &Event, issuer: &str) -> Option<(String, &'static str)> {
    match w.format {
        WebhookFormat::Json => Some((e.to_json(tenant), "application/json")),
        WebhookFormat::Set => crate::set::token(w, tenant, e, issuer).map(|t| (t, "application/secevent+jwt")),
    }
}

// ---------------------------------------------------------------- metrics

/// Counts and times one POST of an event to a webhook (`scimd_webhook_deliveries_total`,
/// `scimd_webhook_delivery_duration_seconds`): a 2xx is `ok`, anything else `failed`.
fn record_attempt(webhook: &str, took: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!("scimd_webhook_deliveries_total", "webhook" => webhook.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("scimd_webhook_delivery_duration_seconds", "webhook" => webhook.to_owned())
        .record(took.as_secs_f64());
}

/// The webhooks whose backlog gauges this process set last (see [`report_backlog`]).
static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Sets, from the store, each webhook's `scimd_webhook_backlog_events` (the events of its
/// tenants' feeds it has not been sent yet, summed over its tenants, as `webhook list` shows
/// them) and `scimd_webhook_delivery_lag_seconds` (how long the oldest of them has waited, the
/// most over its tenants; 0 when caught up). `/metrics` calls it when scraped: one read of the
/// webhooks and their deliveries. The values come from the shared database, so every replica
/// reports the same ones. A webhook removed since the last call is set to 0 once and then no
/// longer updated (the recorder keeps a series until the process ends).
pub async fn report_backlog(store: &dyn Store, now: OffsetDateTime) {
    let webhooks = match store.list_webhooks().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: cannot read the backlog for the metrics");
            return;
        }
    };
    let mut current = BTreeSet::new();
    for (w, deliveries) in &webhooks {
        let backlog: i64 = deliveries.iter().map(|d| (d.head - d.position).max(0)).sum();
        let lag = deliveries
            .iter()
            .filter_map(|d| d.oldest_waiting)
            .map(|at| (now - at).as_seconds_f64())
            .fold(0.0, f64::max);
        set_backlog(&w.id, backlog as f64, lag);
        current.insert(w.id.clone());
    }
    let mut reported = REPORTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for gone in reported.difference(&current) {
        set_backlog(gone, 0.0, 0.0);
    }
    *reported = current;
}

fn set_backlog(webhook: &str, events: f64, lag_seconds: f64) {
    metrics::gauge!("scimd_webhook_backlog_events", "webhook" => webhook.to_owned()).set(events);
    metrics::gauge!("scimd_webhook_delivery_lag_seconds", "webhook" => webhook.to_owned()).set(lag_seconds);
}

// ---------------------------------------------------------------- the worker

/// The delivery worker of one process (see the module documentation).
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    /// This process's name in leases.
    owner: String,
    /// `iss` of Security Event Tokens: the public URL of the SCIM listener.
    issuer: String,
    client: HttpClient,
    /// The deliveries this process is sending (not claimed again while it does).
    busy: Mutex<HashSet<(String, i64)>>,
    /// A delivery ended: look for work again at once.
    done: Notify,
}

impl Deliverer {
    /// A worker over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
        issuer: String,
    ) -> Result<Arc<Deliverer>, String> {
        let client = http_client(settings.timeout)?;
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        // A lease outlasts the slowest attempt (the answer's head and its body each get the
        // timeout), so that no other replica takes a delivery while its event is in flight.
        let settings = DeliverySettings { lease: settings.lease.max(settings.timeout * 3), ..settings };
        Ok(Arc::new(Deliverer {
            store,
            clock,
            settings,
            owner,
            issuer,
            client,
            busy: Mutex::default(),
            done: Notify::new(),
        }))
    }

    /// Runs until dropped (abort the task): claims deliveries when a feed advances, when a
    /// delivery ends, and every second (for retries that came due).
    pub async fn run(self: Arc<Self>) {
        let mut feeds = self.store.subscribe_all();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        loop {
            feeds.borrow_and_update();
            let free = slots.available_permits();
            // A read first: the claim is a write, and most wakes find nothing to send.
            let due = self.store.deliveries_due(self.clock.now()).await.unwrap_or(Some(true));
            // No webhook at all: commits wake this loop less often (a new webhook's first event
            // waits up to IDLE_COALESCE).
            let idle = due.is_none();
            let due = free > 0 && due.unwrap_or(false);
            if due {
                let now = self.clock.now();
                let lease = now + self.settings.lease;
                match self.store.claim_deliveries(self.owner.clone(), now, lease, free as u64).await {
                    Ok(claims) => {
                        for claim in claims {
                            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { break };
                            let key = (claim.webhook.id.clone(), claim.delivery.tenant);
                            if !self.lock(&key).insert(key.clone()) {
                                // Still being sent here, yet claimable: a replay took it back
                                // (or its lease ran out). Give this claim up: the task sending
                                // it finds its lease lost at its next record and stops, and the
                                // next claim goes on from the position in the database, which a
                                // replay moved back (regression test
                                // a_replay_while_a_backlog_is_being_delivered_still_...).
                                let me = Arc::clone(&self);
                                tokio::spawn(async move {
                                    me.settle(&claim, Outcome::Released).await;
                                    me.done.notify_one();
                                });
                                continue;
                            }
                            let me = Arc::clone(&self);
                            tokio::spawn(async move {
                                let end = me.deliver(&claim).await;
                                me.lock(&key).remove(&key);
                                if let Some(outcome) = end {
                                    me.settle(&claim, outcome).await;
                                }
                                drop(slot);
                                me.done.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhooks: cannot claim deliveries"),
                }
            }
            tokio::select! {
                _ = feeds.changed() => {
                    // Commits come in bursts: look once for all of a few milliseconds' worth.
                    tokio::time::sleep(if idle { IDLE_COALESCE } else { COALESCE }).await;
                }
                () = self.done.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn lock(&self, _: &(String, i64)) -> std::sync::MutexGuard<'_, HashSet<(String, i64)>> {
        self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an attempt; false if the lease was lost (someone else goes on from there).
    async fn settle(&self, c: &Claim, outcome: Outcome) -> bool {
        let d = &c.delivery;
        let now = self.clock.now();
        match self.store.settle_delivery(c.webhook.id.clone(), d.tenant, self.owner.clone(), now, outcome).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, webhook = %c.webhook.id, tenant = %d.tenant_name, "webhooks: cannot record a delivery");
                false
            }
        }
    }

    /// Sends a claimed delivery's waiting events in order, until none is left, one fails, or
    /// the lease is lost. Returns what ends the claim (release, or the failure to record), for
    /// the caller to record once this process no longer counts the delivery as its own: a
    /// claim made in between would otherwise be skipped and its lease left to run out.
    async fn deliver(&self, c: &Claim) -> Option<Outcome> {
        let (w, d) = (&c.webhook, &c.delivery);
        let mut position = d.position;
        loop {
            let feed = match self.store.events(d.tenant, position, 100).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, webhook = %w.id, tenant = %d.tenant_name, "webhooks: cannot read the feed");
                    return Some(Outcome::Released);
                }
            };
            if position < feed.pruned {
                // The events it still had to send were pruned: nothing can be sent in order any
                // more; a replay from a kept position resumes it.
                let outcome = format!("events {}..{} were pruned before delivery", position + 1, feed.pruned);
                let failed = Outcome::Failed { outcome, next_at: self.clock.now(), failed: true };
                return Some(failed);
            }
            if feed.events.is_empty() {
                return Some(Outcome::Released);
            }
            let start = position;
            let mut held = false;
            for e in &feed.events {
                if feed.held_from.is_some_and(|h| e.seq >= h) {
                    // The tenant's guard holds everything from here on, in order: stop here.
                    held = true;
                    break;
                }
                let discarded = d.discard.is_some_and(|(from, to)| (from..=to).contains(&e.seq))
                    && scim_core::change::EventType::deprovisions_str(&e.kind);
                let Some((body, content_type)) =
                    (w.wants(&e.kind) && !discarded).then(|| render(w, &d.tenant_name, e, &self.issuer)).flatten()
                else {
                    position = e.seq;
                    continue;
                };
                let now = self.clock.now();
                let started = std::time::Instant::now();
                let sent = post(&self.client, w, &e.id, content_type, body, now).await;
                record_attempt(&w.id, started.elapsed(), sent.as_ref().is_ok_and(StatusCode::is_success));
                match sent {
                    Ok(status) if status.is_success() => {
                        position = e.seq;
                        let lease_until = self.clock.now() + self.settings.lease;
                        let advanced =
                            Outcome::Advanced { position, outcome: Some(status.as_u16().to_string()), lease_until };
                        if !self.settle(c, advanced).await {
                            return None;
                        }
                    }
                    r => {
                        let outcome = match r {
                            Ok(status) => status.as_u16().to_string(),
                            Err(e) => e,
                        };
                        if position > start {
                            // What was skipped before the failure stays done.
                            let lease_until = self.clock.now() + self.settings.lease;
                            self.settle(c, Outcome::Advanced { position, outcome: None, lease_until }).await;
                        }
                        return Some(self.failure(d, outcome));
                    }
                }
            }
            if position > start {
                let lease_until = self.clock.now() + self.settings.lease;
                if !self.settle(c, Outcome::Advanced { position, outcome: None, lease_until }).await {
                    return None;
                }
            }
            if held {
                return Some(Outcome::Released);
            }
        }
    }

    /// The next retry after a failed attempt: exponential back-off with jitter, or giving up
    /// once the failures have lasted the retry period.
    fn failure(&self, d: &Delivery, outcome: String) -> Outcome {
        let now = self.clock.now();
        let since = d.failing_since.unwrap_or(now);
        let failed = now - since >= self.settings.retry_for;
        let exp = u32::try_from(d.failures.clamp(0, 20)).unwrap_or(20);
        let base = self.settings.first_backoff.saturating_mul(2u32.saturating_pow(exp)).min(MAX_BACKOFF);
        let jitter = rand::random_range(0.5..1.5);
        let next_at = now + base.mul_f64(jitter);
        Outcome::Failed { outcome, next_at, failed }
    }
}
