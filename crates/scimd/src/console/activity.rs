//! A tenant's activity: its change feed (`GET /console/tenants/{t}/events`) and its
//! provisioning log (`GET /console/tenants/{t}/requests`), newest first, a page at a time.

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use scim_core::change::EventType;
use scim_store::{Event, StoreError, Tenant};
use serde::Deserialize;
use serde_json::Value;

use super::Signed;
use super::pages::{form_error, href, op_failed, seg, show, status_of, tenant_href, unavailable};
use crate::admin::{self, AdminState, OpError, fmt_time};
use crate::reqlog::{Listing, RequestView};

/// Events per page.
const EVENTS: i64 = 100;
/// With a type filter, how many windows of [`EVENTS`] one page reads at most looking for
/// matching events (the next page goes on from where it stopped).
const MAX_WINDOWS: usize = 50;
/// Requests per page.
const REQUESTS: u64 = 100;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/tenants/{t}/events", get(events))
        .route("/console/tenants/{t}/requests", get(requests))
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    #[serde(default, rename = "type")]
    ty: String,
    #[serde(default)]
    before: String,
}

/// A filter's value, `None` for "all".
fn chosen(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty() && !v.eq_ignore_ascii_case("all")).then_some(v)
}

/// The events shown, newest first, and where the next (older) page starts (`before`), if
/// there are older events.
struct Window {
    events: Vec<Event>,
    older: Option<i64>,
    pruned: i64,
}

/// Reads the feed backwards from `before` (exclusive; the head when `None`) in windows of
/// [`EVENTS`] by `seq`, keeping the events of type `ty`.
async fn read_back(
    s: &AdminState,
    tenant: &Tenant,
    ty: Option<&str>,
    before: Option<i64>,
) -> Result<Window, StoreError> {
    let head = s.store.events(tenant.id, 0, 0).await?;
    let floor = head.pruned.max(0);
    let mut upper = before.unwrap_or(i64::MAX).min(head.position.saturating_add(1));
    let mut events = Vec::new();
    let mut windows = 0;
    while (events.len() as i64) < EVENTS && upper - 1 > floor && windows < MAX_WINDOWS {
        let after = (upper - 1 - EVENTS).max(floor);
        let feed = s.store.events(tenant.id, after, (upper - 1 - after) as u64).await?;
        events.extend(feed.events.into_iter().rev().filter(|e| e.seq < upper && ty.is_none_or(|t| e.kind == t)));
        upper = after + 1;
        windows += 1;
    }
    let older = if events.len() as i64 >= EVENTS {
        events.truncate(EVENTS as usize);
        events.last().map(|e| e.seq)
    } else {
        Some(upper)
    };
    Ok(Window { events, older: older.filter(|b| b - 1 > floor), pruned: floor })
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The resource an event is about, linked when it is a user or group.
fn resource_cell(t: &str, ev: &Value) -> Markup {
    let r = ev.get("resource").unwrap_or(&Value::Null);
    let (ty, id) = (text(r, "type"), text(r, "id"));
    let page = match ty {
        "User" => Some("users"),
        "Group" => Some("groups"),
        _ => None,
    };
    html! {
        @if !id.is_empty() {
            (ty) " "
            @match page {
                Some(p) if !text(ev, "type").ends_with(".deleted") => { a href={ (tenant_href(t)) "/" (p) "/" (seg(id)) } { code { (id) } } }
                _ => { code { (id) } }
            }
            @if !text(r, "externalId").is_empty() { " (externalId " (text(r, "externalId")) ")" }
        }
    }
}

/// Who made a change: the token's label and id, and the request.
fn actor_cell(ev: &Value) -> Markup {
    let a = ev.get("actor").unwrap_or(&Value::Null);
    html! {
        @if !text(a, "label").is_empty() { (text(a, "label")) " " }
        @if !text(a, "token").is_empty() { code { (text(a, "token")) } " " }
        span.muted { (text(a, "method")) " " (text(a, "path")) }
    }
}

/// `GET /console/tenants/{t}/events?type=T&before=SEQ`: the change feed, newest first.
async fn events(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let tenant = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let q: EventsQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let ty = chosen(&q.ty);
    let mut error = None;
    if let Some(t) = ty.filter(|t| !EventType::ALL.iter().any(|e| e.as_str() == *t)) {
        error = Some(format!("\"{t}\" is not an event type"));
    }
    let before = match q.before.trim() {
        "" => None,
        b => match b.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                error = Some(format!("before is a feed position (a positive integer), not \"{b}\""));
                None
            }
        },
    };
    let window = if error.is_some() {
        Window { events: Vec::new(), older: None, pruned: 0 }
    } else {
        match read_back(&s, &tenant, ty, before).await {
            Ok(w) => w,
            Err(StoreError::NotFound) => return op_failed(&OpError::NotFound(format!("no tenant named \"{name}\""))),
            Err(e) => return unavailable(&e.to_string()),
        }
    };
    let t = tenant_href(&tenant.name);
    let base = format!("{t}/events");
    let main = html! {
        p { a href=(t) { (tenant.name) } }
        h1 { "Change feed of " (tenant.name) }
        form #events-filter method="get" action=(base) {
            label for="type" { "Type" }
            select #type name="type" {
                option value="all" selected[ty.is_none()] { "all" }
                @for e in EventType::ALL {
                    option value=(e.as_str()) selected[ty == Some(e.as_str())] { (e.as_str()) }
                }
            }
            " " button type="submit" { "Show" }
        }
        (form_error(error.as_deref()))
        table #events {
            thead { tr {
                th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Type" } th scope="col" { "Resource" }
                th scope="col" { "Actor" } th scope="col" { "Event" }
            } }
            tbody {
                @for e in &window.events {
                    @let json = e.to_json(&tenant.name);
                    @let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
                    tr data-seq=(e.seq) {
                        td { (e.seq) }
                        td { (fmt_time(e.at)) }
                        td { code { (e.kind) } }
                        td { (resource_cell(&tenant.name, &v)) }
                        td { (actor_cell(&v)) }
                        td {
                            details {
                                summary { "JSON" span.visually-hidden { " of event " (e.seq) } }
                                pre { (serde_json::to_string_pretty(&v).unwrap_or_else(|_| json.clone())) }
                            }
                        }
                    }
                }
            }
        }
        @if window.events.is_empty() && error.is_none() { p { "No event here." } }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a #newest href=(href(&base, &[("type", ty.unwrap_or_default().to_owned())])) { "Newest" } }
            @if let Some(b) = window.older {
                a #older rel="next" href=(href(&base, &[("type", ty.unwrap_or_default().to_owned()), ("before", b.to_string())])) { "Older events" }
            } @else if window.pruned > 0 && error.is_none() {
                span.muted { "Events up to position " (window.pruned) " were pruned." }
            }
        }
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    show(status, &signed, &format!("Change feed of {}", tenant.name), main)
}

#[derive(Debug, Default, Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    before: String,
}

/// The status filter's choices: (value, label).
const STATUSES: [(&str, &str); 5] =
    [("all", "all"), ("2xx", "2xx"), ("4xx", "4xx"), ("5xx", "5xx"), ("errors", "errors (4xx and 5xx)")];

/// The resource a request was about, linked.
fn request_resource(t: &str, r: &RequestView) -> Markup {
    let page = if r.path.starts_with("/Users") {
        Some("users")
    } else if r.path.starts_with("/Groups") {
        Some("groups")
    } else {
        None
    };
    html! {
        @if let Some(id) = &r.resource {
            @match page {
                Some(p) if r.method != "DELETE" => { a href={ (tenant_href(t)) "/" (p) "/" (seg(id)) } { code { (id) } } }
                _ => { code { (id) } }
            }
        }
    }
}

/// `GET /console/tenants/{t}/requests?status=S&before=ID`: the provisioning log, newest first.
async fn requests(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let tenant = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let q: RequestsQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let status = chosen(&q.status).map(str::to_owned);
    let mut error = None;
    let before = match q.before.trim() {
        "" => None,
        b => match b.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                error = Some((StatusCode::BAD_REQUEST, format!("before is a request's id (a number), not \"{b}\"")));
                None
            }
        },
    };
    let listing = Listing { status: status.clone(), since: None, before, limit: Some(REQUESTS) };
    let rows = if error.is_some() {
        Vec::new()
    } else {
        match crate::reqlog::list(s.store.as_ref(), s.clock.now(), &tenant.name, &listing).await {
            Ok(rows) => rows,
            Err(OpError::Store(e)) => return unavailable(&e),
            Err(e) => {
                error = Some((status_of(&e), e.to_string()));
                Vec::new()
            }
        }
    };
    let older = (rows.len() as u64 == REQUESTS).then(|| rows.last().map(|r| r.id)).flatten();
    let t = tenant_href(&tenant.name);
    let base = format!("{t}/requests");
    let chosen_status = status.as_deref().unwrap_or("all");
    let main = html! {
        p { a href=(t) { (tenant.name) } }
        h1 { "Provisioning log of " (tenant.name) }
        p.muted { "Every SCIM request of the tenant's tokens: no attribute values but in error details, no tokens." }
        form #requests-filter method="get" action=(base) {
            label for="status" { "Status" }
            select #status name="status" {
                @for (v, label) in STATUSES {
                    option value=(v) selected[chosen_status.eq_ignore_ascii_case(v)] { (label) }
                }
            }
            " " button type="submit" { "Show" }
        }
        (form_error(error.as_ref().map(|(_, e)| e.as_str())))
        table #requests {
            thead { tr {
                th scope="col" { "Time" } th scope="col" { "Token" } th scope="col" { "Method" } th scope="col" { "Path" }
                th scope="col" { "Status" } th scope="col" { "scimType" } th scope="col" { "Detail" } th scope="col" { "Latency ms" }
                th scope="col" { "Resource" } th scope="col" { "Hint" }
            } }
            tbody {
                @for r in &rows {
                    tr data-request=(r.id) class=[(r.status >= 400).then_some("refused")] {
                        td { (r.time) }
                        td { @if let Some(k) = &r.token { code { (k) } } }
                        td { (r.method) }
                        td { code { (r.path) } }
                        td.bad[r.status >= 400] { (r.status) }
                        td { (r.scim_type.as_deref().unwrap_or_default()) }
                        td { (r.detail.as_deref().unwrap_or_default()) }
                        td { (format!("{:.1}", r.latency_ms)) }
                        td { (request_resource(&tenant.name, r)) }
                        td { (r.hint.as_deref().unwrap_or_default()) }
                    }
                }
            }
        }
        @if rows.is_empty() && error.is_none() { p { "No request here." } }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a #newest-requests href=(href(&base, &[("status", status.clone().unwrap_or_default())])) { "Newest" } }
            @if let Some(b) = older {
                a #older-requests rel="next" href=(href(&base, &[("status", status.clone().unwrap_or_default()), ("before", b.to_string())])) { "Older requests" }
            }
        }
    };
    let code = error.as_ref().map_or(StatusCode::OK, |(c, _)| *c);
    show(code, &signed, &format!("Provisioning log of {}", tenant.name), main)
}
