//! The provisioning log: every SCIM request of a tenant, as the support team reads it to answer
//! "why did user X not arrive?".
//!
//! The SCIM listener's auth layer hands each finished request to [`RequestLog::record`], which
//! only puts it on a bounded queue: a request never waits for the log (when the queue is full,
//! the entry is dropped and counted in `scimd_request_log_dropped_total`). One writer task per
//! process ([`run_writer`]) takes the queue in batches, adds the hints that need a look-up (which
//! resource holds a value that must be unique), and appends each batch in one store
//! transaction, which also folds it into the tenants' traffic summaries (`crate::health`).
//!
//! What is kept: time, token id, method, path with ids and the names of the query parameters
//! (never their values), status, `scimType`, the error detail for refusals, latency, the
//! resource id and the hint. No attribute values other than in error details; no tokens.

use std::sync::Arc;
use std::time::Duration;

use scim_core::{Filter, Kind};
use scim_store::{LoggedRequest, Query, RequestQuery, Store};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::admin::{OpError, fmt_time, tenant_named};

/// How the provisioning log is kept (`[request_log]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Whether requests are logged at all.
    pub enabled: bool,
    /// How long a request is kept (`None`: by count only).
    pub age: Option<time::Duration>,
    /// How many requests are kept per tenant (`None`: by age only).
    pub count: Option<u64>,
    /// How many finished requests may wait for the writer before new ones are dropped.
    pub queue: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        use crate::defaults as d;
        LogSettings {
            enabled: d::REQUEST_LOG_ENABLED,
            age: Some(d::REQUEST_LOG_RETENTION),
            count: Some(d::REQUEST_LOG_MAX_PER_TENANT),
            queue: 65_536,
        }
    }
}

/// The most requests the writer appends in one transaction.
const BATCH: usize = 1024;
/// How long the writer lets requests gather before it writes them.
const GATHER: Duration = Duration::from_millis(100);
/// The longest path and detail kept, in characters.
const MAX_TEXT: usize = 1000;

/// Where finished requests go: a handle to the writer's queue (or nowhere, when disabled).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    tx: Option<mpsc::Sender<LoggedRequest>>,
}

impl RequestLog {
    /// A log that records nothing.
    pub fn disabled() -> RequestLog {
        RequestLog { tx: None }
    }

    /// A log and the queue its writer reads ([`run_writer`]).
    pub fn new(settings: &LogSettings) -> (RequestLog, Option<mpsc::Receiver<LoggedRequest>>) {
        if !settings.enabled {
            return (RequestLog::disabled(), None);
        }
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        (RequestLog { tx: Some(tx) }, Some(rx))
    }

    /// Whether requests are logged at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a finished request, never waiting.
    pub fn record(&self, entry: LoggedRequest) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(entry).is_err() {
            metrics::counter!("scimd_request_log_dropped_total").increment(1);
        }
    }
}

/// Cuts a text to [`MAX_TEXT`] characters.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// The path as logged: below `/scim/v2`, with the names of the query parameters and none of
/// their values (`/Users?filter&startIndex`).
pub(crate) fn logged_path(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let mut out = path.strip_prefix("/scim/v2").filter(|p| !p.is_empty()).unwrap_or(path).to_owned();
    if let Some(q) = uri.query() {
        let names: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let name = p.split('=').next().unwrap_or_default();
                percent_decode(name)
            })
            .collect();
        if !names.is_empty() {
            out.push('?');
            out.push_str(&names.join("&"));
        }
    }
    clip(&out)
}

fn percent_decode(s: &str) -> String {
    let replaced = s.replace('+', " ");
    url::form_urlencoded::parse(format!("{replaced}=").as_bytes())
        .next()
        .map_or_else(|| replaced.clone(), |(k, _)| k.into_owned())
}

/// The id in a path `/Users/{id}` or `/Groups/{id}` (not `.search`).
pub(crate) fn path_resource(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/scim/v2").unwrap_or(path);
    let id = rest.strip_prefix("/Users/").or_else(|| rest.strip_prefix("/Groups/"))?;
    let id = id.split('/').next().unwrap_or_default();
    (!id.is_empty() && id != ".search" && id.len() <= 200).then(|| id.to_owned())
}

/// Writes queued requests until the queue closes (every [`RequestLog`] handle is gone) or
/// `stop` turns true; then writes what is still queued. After the first request of a batch it
/// sleeps for [`GATHER`] instead of waiting for each next one, so that a logged request costs
/// its sender a push on the queue and no wake-up of the writer.
pub async fn run_writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<LoggedRequest>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            _ = stop.wait_for(|s| *s) => 0,
        };
        if got == 0 {
            break;
        }
        let stopping = tokio::select! {
            () = tokio::time::sleep(GATHER) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        write(&store, std::mem::take(&mut batch)).await;
        if stopping {
            break;
        }
    }
    rx.close();
    loop {
        let n = rx.recv_many(&mut batch, BATCH).await;
        if n == 0 {
            break;
        }
        write(&store, std::mem::take(&mut batch)).await;
    }
}

async fn write(store: &Arc<dyn Store>, mut batch: Vec<LoggedRequest>) {
    if batch.is_empty() {
        return;
    }
    for e in &mut batch {
        if e.status == 409 && e.scim_type.as_deref() == Some("uniqueness") && e.hint.is_none() {
            e.hint = holder_hint(store.as_ref(), e).await;
        }
    }
    let n = batch.len();
    match store.log_requests(batch).await {
        Ok(()) => metrics::counter!("scimd_request_log_written_total").increment(n as u64),
        Err(e) => {
            metrics::counter!("scimd_request_log_dropped_total").increment(n as u64);
            tracing::warn!(error = %e, requests = n, "could not write the provisioning log");
        }
    }
}

/// For a uniqueness conflict: which resource holds the value, and what to do about it.
async fn holder_hint(store: &dyn Store, e: &LoggedRequest) -> Option<String> {
    let (kind, attr, value) = crate::http::conflict_value(e.detail.as_deref()?)?;
    let escaped = serde_json::to_string(&value).ok()?;
    let filter = Filter::parse(&format!("{attr} eq {escaped}")).ok()?;
    let q = Query {
        tenant: e.tenant,
        kind,
        filter: Some(filter),
        sort: None,
        start_index: 1,
        count: 1,
        load: scim_store::Load::default(),
        position: false,
        seek: None,
    };
    let page = store.query(q).await.ok()?;
    let holder = page.records.first()?;
    let external = holder.doc.get("externalId").and_then(|v| v.as_str());
    let also = match (kind, external) {
        (Kind::User, Some(x)) => format!(" (externalId \"{x}\")"),
        _ => String::new(),
    };
    Some(format!(
        "{attr} {escaped} is held by {} {}{also}: if it is the same person, delete that {} or match on it \
         (Entra ID: Attribute mapping, \"Match objects using this attribute\"); otherwise make the value unique \
         in the source directory",
        kind.name(),
        holder.id,
        kind.name()
    ))
}

/// A logged request as the vendor API, the CLI and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// The log's key (the next page of a listing is `before=<id>`).
    pub id: i64,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// The token id presented, if recognised.
    pub token: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path below `/scim/v2`, with the names of its query parameters.
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The SCIM error's `scimType`.
    pub scim_type: Option<String>,
    /// The SCIM error's detail, for refusals.
    pub detail: Option<String>,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// The resource it was about.
    pub resource: Option<String>,
    /// What to change in the client, for known mistakes.
    pub hint: Option<String>,
}

impl From<&LoggedRequest> for RequestView {
    fn from(r: &LoggedRequest) -> Self {
        RequestView {
            id: r.id,
            time: fmt_time(r.at),
            token: r.token.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            scim_type: r.scim_type.clone(),
            detail: r.detail.clone(),
            latency_ms: r.latency_us as f64 / 1000.0,
            resource: r.resource.clone(),
            hint: r.hint.clone(),
        }
    }
}

/// Which requests to list (the vendor API's query parameters, the CLI's flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// `2xx`, `4xx`, `5xx`, `errors` (4xx and 5xx) or an exact status such as `409`.
    pub status: Option<String>,
    /// Only requests at or after this instant (RFC 3339) or this long ago (`1h`, `7d`).
    pub since: Option<String>,
    /// Only requests with a key below this one (the next page).
    pub before: Option<i64>,
    /// The most to return (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// The most requests one listing returns.
pub const MAX_LISTING: u64 = 1000;

/// Parses a status filter: `2xx`, `4xx`, `5xx`, `errors`, or a status from 100 to 599.
pub fn parse_status(s: &str) -> Result<(u16, u16), OpError> {
    let s = s.trim().to_ascii_lowercase();
    let class = |c: u16| Ok((c * 100, c * 100 + 99));
    match s.as_str() {
        "1xx" => class(1),
        "2xx" => class(2),
        "3xx" => class(3),
        "4xx" => class(4),
        "5xx" => class(5),
        "errors" | "error" => Ok((400, 599)),
        n => match n.parse::<u16>() {
            Ok(v) if (100..=599).contains(&v) => Ok((v, v)),
            _ => Err(OpError::Usage(format!(
                "invalid status \"{s}\": use 2xx, 4xx, 5xx, errors or a status such as 409"
            ))),
        },
    }
}

/// Parses `since`: an RFC 3339 instant, or a duration back from `now` (`30m`, `1h`, `7d`).
pub fn parse_since(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, OpError> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let d = crate::admin::parse_duration(s).map_err(|_| {
        OpError::Usage(format!("invalid since \"{s}\": use an RFC 3339 time or a duration such as 1h or 7d"))
    })?;
    Ok(now.checked_sub(d).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// A tenant's logged requests, newest first, as [`Listing`] says.
pub async fn list(
    store: &dyn Store,
    now: OffsetDateTime,
    tenant: &str,
    listing: &Listing,
) -> Result<Vec<RequestView>, OpError> {
    let status = listing.status.as_deref().map(parse_status).transpose()?;
    let since = listing.since.as_deref().map(|s| parse_since(s, now)).transpose()?;
    let limit = listing.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LISTING {
        return Err(OpError::Usage(format!("limit is from 1 to {MAX_LISTING}")));
    }
    let t = tenant_named(store, tenant).await?;
    let q = RequestQuery { tenant: t.id, since, before: listing.before, status, limit };
    Ok(store.requests(q).await?.iter().map(RequestView::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_path_keeps_ids_and_parameter_names_but_no_values() {
        let uri: axum::http::Uri =
            "/scim/v2/Users?filter=userName%20eq%20%22bjensen%22&startIndex=1".parse().unwrap_or_default();
        assert_eq!(logged_path(&uri), "/Users?filter&startIndex");
        let uri: axum::http::Uri = "/scim/v2/Users/2819c223".parse().unwrap_or_default();
        assert_eq!(logged_path(&uri), "/Users/2819c223");
        assert_eq!(path_resource("/scim/v2/Groups/abc"), Some("abc".to_owned()));
        assert_eq!(path_resource("/scim/v2/Users/.search"), None);
        assert_eq!(path_resource("/scim/v2/Users"), None);
    }

    #[test]
    fn status_filters() {
        assert_eq!(parse_status("4xx").ok(), Some((400, 499)));
        assert_eq!(parse_status("errors").ok(), Some((400, 599)));
        assert_eq!(parse_status("409").ok(), Some((409, 409)));
        assert!(parse_status("700").is_err());
        assert!(parse_status("x").is_err());
    }
}
