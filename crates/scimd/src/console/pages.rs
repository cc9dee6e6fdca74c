//! The console's signed-in pages: the tenants list and the service health here, with what
//! every page shares (the navigation bar, the page frame, form errors, links); a tenant's page
//! and its forms (policy, tokens, setup links, deletion) in `super::tenant`; its users and
//! groups in `super::resources`; its change feed and provisioning log in `super::activity`.
//!
//! | route | page |
//! |---|---|
//! | `GET /console` | the tenants, with their health |
//! | `GET /console/health` | the service: version, database, uptime, request rates, tenants by health |
//! | `GET /console/tenants/new`, `POST /console/tenants` | a new tenant (`super::tenant`) |
//! | `GET /console/tenants/{t}` | a tenant: health, policy, tokens, setup links, webhooks |
//! | `GET/POST /console/tenants/{t}/policy`, `.../delete` | its mandatory attributes; deleting it |
//! | `POST /console/tenants/{t}/tokens`, `.../invites` | a new token, a new setup link (the secret shown once) |
//! | `POST /console/tokens/{id}/revoke`, `.../rotate`, `POST /console/invites/{id}/revoke` | token and link changes |
//! | `GET /console/tenants/{t}/users[/{id}]`, `.../groups[/{id}]` | its resources (`super::resources`) |
//! | `GET /console/tenants/{t}/events`, `.../requests` | its change feed and provisioning log (`super::activity`) |
//!
//! Every form carries the session's CSRF token and is read through [`super::CsrfForm`]; a write
//! that shows no secret answers 303 to the page it belongs to; a refused form is shown again
//! with its error in `#form-error` (400, 409 for a taken name, 404 for an unknown tenant or
//! token).

use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use scim_store::Actor;
use serde::Deserialize;

use super::{Signed, csrf_field};
use crate::admin::{AdminState, OpError};
use crate::health::Status;
use crate::ui;

/// The signed-in routes (the session check is `super`'s).
pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console", get(tenants))
        .route("/console/health", get(service_health))
        .merge(super::tenant::routes())
        .merge(super::resources::routes())
        .merge(super::activity::routes())
}

/// The navigation bar of every signed-in page, with the sign-out form.
pub(crate) fn top(signed: &Signed) -> Markup {
    html! {
        strong { a href="/console" { "scimd console" } }
        nav aria-label="Main" {
            a href="/console" { "Tenants" }
            a href="/console/health" { "Service health" }
        }
        form.inline method="post" action="/console/logout" {
            (csrf_field(signed))
            span.muted { "Signed in as " (signed.key_label.as_deref().unwrap_or(&signed.session.api_key)) " " }
            button.secondary #sign-out type="submit" { "Sign out" }
        }
    }
}

/// A page with only a heading and a sentence (errors, confirmations).
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let m = html! { h1 { (title) } p { (text) } p { a href="/console" { "Back to the tenants" } } };
    ui::respond(status, ui::page(title, None, m))
}

/// A signed-in page: `<title>` "`page` · scimd console", the navigation bar, `main`.
pub(crate) fn show(status: StatusCode, signed: &Signed, page: &str, main: Markup) -> Response {
    ui::respond(status, ui::page(&format!("{page} · scimd console"), Some(top(signed)), main))
}

/// Why a form was refused, if it was: `p#form-error`, announced to screen readers.
pub(crate) fn form_error(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { p.notice.bad role="alert" #form-error { (e) } } }
}

/// 303 See Other to `to` (after a write that shows nothing).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Who makes a console write, as its event records it.
pub(crate) fn actor(signed: &Signed, path: &str) -> Actor {
    Actor {
        token: Some(signed.session.api_key.clone()),
        label: signed.key_label.clone(),
        request_id: None,
        method: "POST".into(),
        path: path.into(),
    }
}

/// The status a refused operation answers with.
pub(crate) fn status_of(e: &OpError) -> StatusCode {
    match e {
        OpError::Usage(_) => StatusCode::BAD_REQUEST,
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::Conflict(_) => StatusCode::CONFLICT,
        OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The page of an operation that failed where no form can be shown again: 404 for an unknown
/// tenant or token, 503 when the database fails (its cause goes to the log), else 400.
pub(crate) fn op_failed(e: &OpError) -> Response {
    match e {
        OpError::NotFound(m) => message(StatusCode::NOT_FOUND, "Not found", m),
        OpError::Store(m) => unavailable(m),
        OpError::Usage(m) | OpError::Conflict(m) => message(status_of(e), "This cannot be done", m),
    }
}

/// 503: the database failed; the cause goes to the log.
pub(crate) fn unavailable(cause: &str) -> Response {
    tracing::error!(error = %cause, "console: the database failed");
    message(StatusCode::SERVICE_UNAVAILABLE, "Please try again", "The database does not answer.")
}

/// A path segment, percent-encoded (ids are server-made, but a link must never break).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?query` with the non-empty parameters of `pairs`, form-encoded.
pub(crate) fn href(path: &str, pairs: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.as_str())).collect();
    if kept.is_empty() {
        return path.to_owned();
    }
    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish();
    format!("{path}?{q}")
}

/// The page of the tenant `name`.
pub(crate) fn tenant_href(name: &str) -> String {
    format!("/console/tenants/{}", seg(name))
}

/// A tenant's status badge (spelled as the API and the CLI spell it).
pub(crate) fn status_badge(status: Status) -> Markup {
    html! { span class={ "status status-" (status.as_str()) } { (status.as_str()) } }
}

#[derive(Debug, Default, Deserialize)]
struct TenantsQuery {
    #[serde(default)]
    q: Option<String>,
}

/// `GET /console`: every tenant with its health, searchable by name.
async fn tenants(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<TenantsQuery>,
) -> Response {
    let health = match crate::health::all_health(s.store.as_ref(), s.clock.as_ref()).await {
        Ok(h) => h,
        Err(e) => return unavailable(&e.to_string()),
    };
    let needle = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_ascii_lowercase);
    let shown: Vec<_> =
        health.iter().filter(|h| needle.as_ref().is_none_or(|n| h.tenant.contains(n.as_str()))).collect();
    let main = html! {
        h1 { "Tenants" }
        p { a #new-tenant-link href="/console/tenants/new" { "New tenant" } }
        form role="search" method="get" action="/console" {
            label for="q" { "Search tenants" }
            input #q type="search" name="q" value=(q.q.as_deref().unwrap_or_default());
            " " button type="submit" { "Search" }
        }
        table #tenants {
            thead { tr { th scope="col" { "Tenant" } th scope="col" { "Health" } th scope="col" { "Last request" } th scope="col" { "Problems" } } }
            tbody {
                @for h in &shown {
                    tr {
                        td { a href=(tenant_href(&h.tenant)) { (h.tenant) } }
                        td { (status_badge(h.status)) }
                        td { (h.last_request.as_deref().unwrap_or("never")) }
                        td { @for p in &h.problems { div { (p.detail) } } }
                    }
                }
            }
        }
        @if shown.is_empty() { p { "No tenant matches." } }
    };
    show(StatusCode::OK, &signed, "Tenants", main)
}

/// `3d 4h 5m 6s`.
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {seconds}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// A share as a percentage, `12.5%`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// How many tenants the health table names per status before it only counts.
const NAMED_PER_STATUS: usize = 50;

/// `GET /console/health`: the service's health.
async fn service_health(State(s): State<AdminState>, Extension(signed): Extension<Signed>) -> Response {
    let ping = s.store.ping().await;
    if let Err(e) = &ping {
        tracing::error!(error = %e, "console: the database does not answer");
    }
    let windows = [
        ("Last minute", crate::rates::window(Duration::from_secs(60))),
        ("Last hour", crate::rates::window(Duration::from_secs(3600))),
    ];
    let health = match &ping {
        Ok(()) => crate::health::all_health(s.store.as_ref(), s.clock.as_ref()).await.map_err(|e| e.to_string()),
        Err(_) => Err("the database does not answer".to_owned()),
    };
    let main = html! {
        h1 { "Service health" }
        table #service {
            tbody {
                tr { th scope="row" { "Version" } td #version { (env!("CARGO_PKG_VERSION")) } }
                tr {
                    th scope="row" { "Database" }
                    td #database {
                        @match &ping {
                            Ok(()) => { (s.engine) " " span.status.status-healthy { "answers" } }
                            Err(_) => { (s.engine) " " span.status.status-failing { "does not answer" } " (the cause is in the server log)" }
                        }
                    }
                }
                tr { th scope="row" { "Uptime" } td #uptime { (duration_text(s.started.elapsed())) } }
            }
        }
        h2 { "Requests to the SCIM API" }
        p.muted { "Of this process (each replica counts its own); an error is a 4xx other than 404, or a 5xx." }
        table #rates {
            thead { tr { th scope="col" { "Window" } th scope="col" { "Requests" } th scope="col" { "Per second" } th scope="col" { "Errors" } th scope="col" { "Error rate" } } }
            tbody {
                @for (name, w) in &windows {
                    tr {
                        th scope="row" { (name) }
                        td { (w.requests) }
                        td { (format!("{:.2}", w.per_second)) }
                        td { (w.errors) }
                        td { (percent(w.error_rate)) }
                    }
                }
            }
        }
        h2 { "Tenants by health" }
        @match &health {
            Err(e) => { p.notice.bad { "The tenants' health cannot be read: " (e) "." } }
            Ok(all) => {
                table #tenant-health {
                    thead { tr { th scope="col" { "Status" } th scope="col" { "Tenants" } th scope="col" { "Which" } } }
                    tbody {
                        @for status in Status::ALL.iter().rev() {
                            @let these: Vec<_> = all.iter().filter(|h| h.status == *status).collect();
                            tr data-status=(status.as_str()) {
                                td { (status_badge(*status)) }
                                td { (these.len()) }
                                td {
                                    @for (i, h) in these.iter().take(NAMED_PER_STATUS).enumerate() {
                                        @if i > 0 { ", " }
                                        a href=(tenant_href(&h.tenant)) { (h.tenant) }
                                    }
                                    @if these.len() > NAMED_PER_STATUS { " and " (these.len() - NAMED_PER_STATUS) " more" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    show(StatusCode::OK, &signed, "Service health", main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(Duration::from_secs(5)), "5s");
        assert_eq!(duration_text(Duration::from_secs(65)), "1m 5s");
        assert_eq!(duration_text(Duration::from_secs(3 * 3600 + 5)), "3h 0m 5s");
        assert_eq!(duration_text(Duration::from_secs(2 * 86_400 + 3600)), "2d 1h 0m 0s");
    }

    #[test]
    fn links_are_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(href("/x", &[("filter", "a eq \"b\"".into()), ("q", String::new())]), "/x?filter=a+eq+%22b%22");
        assert_eq!(href("/x", &[("q", String::new())]), "/x");
    }
}
