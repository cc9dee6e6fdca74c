//! A tenant's users and groups, read as the SCIM API reads them (`crate::http::vendor_list`,
//! `vendor_get`): one page query of 50 per request, never a whole list, so a tenant of a
//! million users (or a group of a million members) pages as fast as a small one.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use scim_core::Kind;
use scim_store::Tenant;
use serde::Deserialize;
use serde_json::Value;

use super::Signed;
use super::pages::{form_error, href, message, op_failed, seg, show, tenant_href};
use crate::admin::{self, AdminState};
use crate::http::{ApiError, Params};

/// Rows per page.
pub(crate) const PAGE: u64 = 50;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/tenants/{t}/users", get(users))
        .route("/console/tenants/{t}/users/{id}", get(user))
        .route("/console/tenants/{t}/groups", get(groups))
        .route("/console/tenants/{t}/groups/{id}", get(group))
}

/// The query of a list page: `filter` (SCIM), `q` (plain text), `start` (1-based).
#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    start: String,
}

impl Search {
    fn read(raw: Option<&str>) -> Search {
        serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default()
    }

    fn start(&self) -> u64 {
        self.start.trim().parse::<u64>().ok().filter(|s| *s >= 1).unwrap_or(1)
    }
}

/// A JSON string literal for a filter (quotes and backslashes escaped).
fn literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The filter a plain-text search stands for.
fn text_filter(kind: Kind, q: &str) -> String {
    let v = literal(q);
    match kind {
        Kind::User => {
            format!("userName sw {v} or displayName sw {v} or emails.value sw {v} or externalId eq {v}")
        }
        Kind::Group => format!("displayName sw {v} or externalId eq {v}"),
    }
}

/// The filter of a list page: the SCIM filter, the text search, or both.
fn search_filter(kind: Kind, filter: &str, q: &str) -> Option<String> {
    let (f, q) = (filter.trim(), q.trim());
    match (f.is_empty(), q.is_empty()) {
        (true, true) => None,
        (false, true) => Some(f.to_owned()),
        (true, false) => Some(text_filter(kind, q)),
        (false, false) => Some(format!("({f}) and ({})", text_filter(kind, q))),
    }
}

/// The attributes a list row shows.
fn row_attributes(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "userName,displayName,active,externalId",
        Kind::Group => "displayName,externalId,meta.lastModified",
    }
}

/// One page of a tenant's resources: (total, resources).
async fn page_of(
    s: &AdminState,
    tenant: &Arc<Tenant>,
    kind: Kind,
    filter: Option<String>,
    start: u64,
) -> Result<(u64, Vec<Value>), ApiError> {
    let mut pairs = vec![
        ("startIndex".to_owned(), start.to_string()),
        ("count".to_owned(), PAGE.to_string()),
        ("attributes".to_owned(), row_attributes(kind).to_owned()),
    ];
    if let Some(f) = filter {
        pairs.push(("filter".to_owned(), f));
    }
    let base = format!("{}/scim/v2", s.scim_origin);
    let list = crate::http::vendor_list(&s.scim, Arc::clone(tenant), base, kind, &Params::from_pairs(pairs)).await?;
    let total = list.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
    let resources = list.get("Resources").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok((total, resources))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The pager: where the page is, and links to the pages before and after it.
fn pager(link: &dyn Fn(u64) -> String, start: u64, shown: usize, total: u64) -> Markup {
    let shown = shown as u64;
    let last = start + shown.saturating_sub(1);
    // Past the end, the previous page is the last one.
    let prev = if shown == 0 && total > 0 && start > total {
        (total - 1) / PAGE * PAGE + 1
    } else {
        start.saturating_sub(PAGE).max(1)
    };
    html! {
        nav.pager aria-label="Pages" {
            span.total {
                @if shown > 0 { (start) "–" (last) " of " (total) } @else if total == 0 { "0 results" } @else { "Nothing on this page; there are " (total) " in all" }
            }
            " "
            @if start > 1 { a #prev-page rel="prev" href=(link(prev)) { "Previous page" } }
            @if shown > 0 && last < total { a #next-page rel="next" href=(link(last + 1)) { "Next page" } }
        }
    }
}

/// A list's table of users.
fn user_rows(t: &str, table_id: &str, rows: &[Value]) -> Markup {
    html! {
        table id=(table_id) {
            thead { tr { th scope="col" { "userName" } th scope="col" { "displayName" } th scope="col" { "active" } th scope="col" { "externalId" } } }
            tbody {
                @for u in rows {
                    @let id = text(u, "id");
                    tr data-id=(id) {
                        td { a href={ (tenant_href(t)) "/users/" (seg(id)) } { @if text(u, "userName").is_empty() { (id) } @else { (text(u, "userName")) } } }
                        td { (text(u, "displayName")) }
                        td { @match u.get("active").and_then(Value::as_bool) { Some(true) => "yes", Some(false) => "no", None => "" } }
                        td { (text(u, "externalId")) }
                    }
                }
            }
        }
    }
}

/// A list's table of groups.
fn group_rows(t: &str, rows: &[Value]) -> Markup {
    html! {
        table #groups {
            thead { tr { th scope="col" { "displayName" } th scope="col" { "externalId" } th scope="col" { "Last modified" } } }
            tbody {
                @for g in rows {
                    @let id = text(g, "id");
                    tr data-id=(id) {
                        td { a href={ (tenant_href(t)) "/groups/" (seg(id)) } { @if text(g, "displayName").is_empty() { (id) } @else { (text(g, "displayName")) } } }
                        td { (text(g, "externalId")) }
                        td { (g.get("meta").map_or("", |m| text(m, "lastModified"))) }
                    }
                }
            }
        }
    }
}

/// A refused read: a filter the SCIM API refuses is the form's error (its status); anything
/// else is a page of its own.
fn read_error(e: &ApiError) -> (StatusCode, String) {
    let scim = e.to_scim();
    (StatusCode::from_u16(scim.status).unwrap_or(StatusCode::BAD_REQUEST), scim.detail)
}

async fn users(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    list_page(&s, &signed, &name, Kind::User, &Search::read(raw.as_deref())).await
}

async fn groups(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    list_page(&s, &signed, &name, Kind::Group, &Search::read(raw.as_deref())).await
}

/// `GET /console/tenants/{t}/users` (or `groups`): a page of 50, searched.
async fn list_page(s: &AdminState, signed: &Signed, name: &str, kind: Kind, q: &Search) -> Response {
    let tenant = match admin::tenant_named(s.store.as_ref(), name).await {
        Ok(t) => Arc::new(t),
        Err(e) => return op_failed(&e),
    };
    let start = q.start();
    let (noun, path) = match kind {
        Kind::User => ("Users", "users"),
        Kind::Group => ("Groups", "groups"),
    };
    let (status, error, total, rows) =
        match page_of(s, &tenant, kind, search_filter(kind, &q.filter, &q.q), start).await {
            Ok((total, rows)) => (StatusCode::OK, None, total, rows),
            Err(e) => {
                let (status, detail) = read_error(&e);
                if status.is_server_error() {
                    return message(status, "Please try again", &detail);
                }
                (status, Some(detail), 0, Vec::new())
            }
        };
    let base = format!("{}/{path}", tenant_href(&tenant.name));
    let link = |n: u64| {
        let start = if n > 1 { n.to_string() } else { String::new() };
        href(&base, &[("filter", q.filter.clone()), ("q", q.q.clone()), ("start", start)])
    };
    let search_id = match kind {
        Kind::User => "user-search",
        Kind::Group => "group-search",
    };
    let main = html! {
        p { a href=(tenant_href(&tenant.name)) { (tenant.name) } }
        h1 { (noun) " of " (tenant.name) }
        form id=(search_id) role="search" method="get" action=(base) {
            label for="q" { "Search" }
            input #q type="search" name="q" value=(q.q) aria-describedby="q-help";
            p.muted #q-help {
                @match kind {
                    Kind::User => { "The start of a userName, displayName or e-mail address, or an exact externalId." }
                    Kind::Group => { "The start of a displayName, or an exact externalId." }
                }
            }
            label for="filter" { "SCIM filter" }
            input #filter type="text" name="filter" value=(q.filter) autocomplete="off" spellcheck="false" aria-describedby="filter-help";
            p.muted #filter-help { "As the SCIM API takes it, e.g. " code { @match kind { Kind::User => "active eq false", Kind::Group => "displayName co \"sales\"" } } "." }
            p { button type="submit" { "Search" } " " a href=(base) { "Clear" } }
        }
        (form_error(error.as_deref()))
        @match kind {
            Kind::User => (user_rows(&tenant.name, "users", &rows)),
            Kind::Group => (group_rows(&tenant.name, &rows)),
        }
        @if rows.is_empty() && error.is_none() { p { "No " (path) " match." } }
        (pager(&link, start, rows.len(), total))
    };
    show(status, signed, &format!("{noun} of {}", tenant.name), main)
}

/// A resource as the SCIM API shows it, or the page that says why not.
async fn resource(
    s: &AdminState,
    tenant: &Arc<Tenant>,
    kind: Kind,
    id: &str,
    params: Params,
) -> Result<Value, Response> {
    let base = format!("{}/scim/v2", s.scim_origin);
    crate::http::vendor_get(&s.scim, Arc::clone(tenant), base, kind, id, &params).await.map_err(|e| {
        let (status, detail) = read_error(&e);
        let title = match (status, kind) {
            (StatusCode::NOT_FOUND, Kind::User) => "No such user",
            (StatusCode::NOT_FOUND, Kind::Group) => "No such group",
            _ => "This cannot be shown",
        };
        message(status, title, &detail)
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `GET /console/tenants/{t}/users/{id}`: the user's SCIM JSON and its groups.
async fn user(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let tenant = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => Arc::new(t),
        Err(e) => return op_failed(&e),
    };
    let doc = match resource(&s, &tenant, Kind::User, &id, Params::default()).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let title = Some(text(&doc, "userName")).filter(|n| !n.is_empty()).unwrap_or(&id).to_owned();
    let groups = doc.get("groups").and_then(Value::as_array).cloned().unwrap_or_default();
    let t = tenant_href(&tenant.name);
    let main = html! {
        p { a href=(t) { (tenant.name) } " › " a href={ (t) "/users" } { "Users" } }
        h1 { (title) }
        h2 { "Groups" }
        table #user-groups {
            thead { tr { th scope="col" { "Group" } th scope="col" { "Membership" } } }
            tbody {
                @for g in &groups {
                    @let gid = text(g, "value");
                    tr data-id=(gid) {
                        td { a href={ (t) "/groups/" (seg(gid)) } { @if text(g, "display").is_empty() { (gid) } @else { (text(g, "display")) } } }
                        td { (text(g, "type")) }
                    }
                }
            }
        }
        @if groups.is_empty() { p { "Not in any group." } }
        h2 { "SCIM record" }
        pre #record { (pretty(&doc)) }
    };
    show(StatusCode::OK, &signed, &format!("{title} · {}", tenant.name), main)
}

/// `GET /console/tenants/{t}/groups/{id}?start=N`: the group without its members, and a page
/// of its user members (a Users query on `groups.value`).
async fn group(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path((name, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let tenant = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => Arc::new(t),
        Err(e) => return op_failed(&e),
    };
    let params = Params::from_pairs(vec![("excludedAttributes".to_owned(), "members".to_owned())]);
    let doc = match resource(&s, &tenant, Kind::Group, &id, params).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let q = Search::read(raw.as_deref());
    let start = q.start();
    let filter = format!("groups.value eq {}", literal(&id));
    let (total, members) = match page_of(&s, &tenant, Kind::User, Some(filter), start).await {
        Ok(x) => x,
        Err(e) => {
            let (status, detail) = read_error(&e);
            return message(status, "The members cannot be shown", &detail);
        }
    };
    let title = Some(text(&doc, "displayName")).filter(|n| !n.is_empty()).unwrap_or(&id).to_owned();
    let t = tenant_href(&tenant.name);
    let base = format!("{t}/groups/{}", seg(&id));
    let link = |n: u64| href(&base, &[("start", if n > 1 { n.to_string() } else { String::new() })]);
    let main = html! {
        p { a href=(t) { (tenant.name) } " › " a href={ (t) "/groups" } { "Groups" } }
        h1 { (title) }
        h2 { "Members" }
        p.muted { "Its users; a group nested in it is not listed here." }
        (user_rows(&tenant.name, "members", &members))
        @if members.is_empty() { p { "No user member here." } }
        (pager(&link, start, members.len(), total))
        h2 { "SCIM record" }
        p.muted { "Without its members." }
        pre #record { (pretty(&doc)) }
    };
    show(StatusCode::OK, &signed, &format!("{title} · {}", tenant.name), main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_search_is_a_filter_with_the_text_escaped() {
        assert_eq!(
            search_filter(Kind::User, "", "a\"b"),
            Some(
                r#"userName sw "a\"b" or displayName sw "a\"b" or emails.value sw "a\"b" or externalId eq "a\"b""#
                    .to_owned()
            )
        );
        assert_eq!(search_filter(Kind::Group, " active eq true ", ""), Some("active eq true".to_owned()));
        assert_eq!(
            search_filter(Kind::Group, "x pr", "s"),
            Some(r#"(x pr) and (displayName sw "s" or externalId eq "s")"#.to_owned())
        );
        assert_eq!(search_filter(Kind::User, " ", ""), None);
    }
}
