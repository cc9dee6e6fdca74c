//! The console's signed-in pages.

use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Signed, csrf_field};
use crate::admin::AdminState;
use crate::ui;

/// The signed-in routes (the session check is `super`'s).
pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/console", get(tenants))
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
        Err(e) => return message(StatusCode::SERVICE_UNAVAILABLE, "Please try again", &e.to_string()),
    };
    let needle = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_ascii_lowercase);
    let shown: Vec<_> =
        health.iter().filter(|h| needle.as_ref().is_none_or(|n| h.tenant.contains(n.as_str()))).collect();
    let main = html! {
        h1 { "Tenants" }
        form role="search" method="get" action="/console" {
            label for="q" { "Search tenants" }
            input #q type="search" name="q" value=(q.q.as_deref().unwrap_or_default());
            " " button type="submit" { "Search" }
        }
        table #tenants {
            thead { tr { th { "Tenant" } th { "Health" } th { "Last request" } th { "Problems" } } }
            tbody {
                @for h in &shown {
                    tr {
                        td { a href={ "/console/tenants/" (h.tenant) } { (h.tenant) } }
                        td { span class={ "status status-" (h.status.as_str()) } { (h.status.as_str()) } }
                        td { (h.last_request.as_deref().unwrap_or("never")) }
                        td { @for p in &h.problems { div { (p.detail) } } }
                    }
                }
            }
        }
        @if shown.is_empty() { p { "No tenant matches." } }
    };
    ui::respond(StatusCode::OK, ui::page("Tenants · scimd console", Some(top(&signed)), main))
}
