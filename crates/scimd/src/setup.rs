//! Customer setup links: a one-time page on the public (SCIM) listener that connects a
//! customer's identity provider without a token sent by e-mail.
//!
//! `scimd tenant invite T [--expires 7d]` (or the console, or `POST
//! /api/v1/tenants/{tenant}/invites`) makes a link `<public URL>/setup/<secret>`; only a digest
//! of the secret is stored. The customer's admin opens it and finds, in the vendor's words:
//!
//! - the Tenant URL, and after one click a freshly created secret token, shown exactly once
//!   (the click marks the link used and stores the token in one transaction, so a second click
//!   or a second browser reveals nothing);
//! - the Entra ID steps of docs/entra-id.md with the tenant's own values, its mandatory
//!   attributes with the Entra (and Okta) source attribute to map to each;
//! - live status that updates by itself (`GET /setup/<secret>/status`, polled by a few lines
//!   of inline script; a plain link without script): "Test connection received", "first user
//!   provisioned", users and groups, the last provisioning cycle, and the last refused requests
//!   with their reason and the mapping fix.
//!
//! The link expires (default 7 days) and can be revoked; it then shows nothing but that.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, PreEscaped, html};
use scim_core::Kind;
use scim_store::{Actor, Invite, Query, RequestQuery, Store, StoreError, Tenant};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::admin::{OpError, fmt_time, tenant_named};
use crate::clock::Clock;
use crate::http::SharedState;
use crate::tokens;
use crate::ui;

/// How long a setup link works unless asked otherwise.
pub const DEFAULT_EXPIRY: time::Duration = time::Duration::days(7);
/// The label of the tokens setup links reveal.
pub const TOKEN_LABEL: &str = "setup link";

/// A setup link as listed (the URL only when it is made: the secret is not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InviteView {
    /// The public id.
    pub id: String,
    /// The tenant's name.
    pub tenant: String,
    /// The link, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `open`, `used`, `expired` or `revoked`.
    pub state: &'static str,
    /// When it was made.
    pub created: String,
    /// When it stops working.
    pub expires: String,
    /// When its token was revealed.
    pub redeemed: Option<String>,
    /// The id of the token it revealed.
    pub token: Option<String>,
    /// When it was revoked.
    pub revoked: Option<String>,
}

fn state(i: &Invite, now: OffsetDateTime) -> &'static str {
    if i.revoked.is_some() {
        "revoked"
    } else if now >= i.expires {
        "expired"
    } else if i.redeemed.is_some() {
        "used"
    } else {
        "open"
    }
}

fn invite_view(i: &Invite, tenant: &str, now: OffsetDateTime, url: Option<String>) -> InviteView {
    InviteView {
        id: i.id.clone(),
        tenant: tenant.to_owned(),
        url,
        state: state(i, now),
        created: fmt_time(i.created),
        expires: fmt_time(i.expires),
        redeemed: i.redeemed.map(fmt_time),
        token: i.token.clone(),
        revoked: i.revoked.map(fmt_time),
    }
}

/// The origin setup links are made on: the configured public URL (without `/scim/v2`), else
/// the SCIM listener's address.
pub fn public_origin(public_url: Option<&str>, listen: &str) -> String {
    match public_url {
        Some(u) => {
            let u = u.trim().trim_end_matches('/');
            u.strip_suffix("/scim/v2").unwrap_or(u).to_owned()
        }
        None => format!("http://{listen}"),
    }
}

/// Makes a setup link for a tenant, working for `expires` (default 7 days), on `origin`.
pub async fn create_invite(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &str,
    expires: Option<time::Duration>,
    origin: &str,
) -> Result<InviteView, OpError> {
    let t = tenant_named(store, tenant).await?;
    let now = clock.now();
    let until = now
        .checked_add(expires.unwrap_or(DEFAULT_EXPIRY))
        .ok_or_else(|| OpError::Usage("the expiry is too far away".to_owned()))?;
    let (record, secret) = tokens::issue_invite(t.id, until, now);
    match store.create_invite(record.clone()).await {
        Err(StoreError::NoTenant) => return Err(OpError::NotFound(format!("no tenant named \"{tenant}\""))),
        r => r?,
    }
    let url = format!("{}/setup/{secret}", origin.trim_end_matches('/'));
    Ok(invite_view(&record, &t.name, now, Some(url)))
}

/// A tenant's setup links, newest first.
pub async fn list_invites(store: &dyn Store, clock: &dyn Clock, tenant: &str) -> Result<Vec<InviteView>, OpError> {
    let t = tenant_named(store, tenant).await?;
    let now = clock.now();
    Ok(store.list_invites(t.id).await?.iter().map(|i| invite_view(i, &t.name, now, None)).collect())
}

/// Revokes a setup link.
pub async fn revoke_invite(store: &dyn Store, clock: &dyn Clock, id: &str) -> Result<InviteView, OpError> {
    let id = id.trim();
    let id = tokens::split_invite(id).map_or(id, |(id, _)| id);
    if !tokens::is_id(id) {
        return Err(OpError::Usage(format!("\"{id}\" is not a setup link id")));
    }
    let not_found = || OpError::NotFound(format!("no setup link with id \"{id}\""));
    if !store.revoke_invite(id.to_owned(), clock.now()).await? {
        return Err(not_found());
    }
    let i = store.invite(id.to_owned()).await?.ok_or_else(not_found)?;
    let name = store.tenant_by_id(i.tenant).await?.map_or_else(|| i.tenant.to_string(), |t| t.name);
    Ok(invite_view(&i, &name, clock.now(), None))
}

// ------------------------------------------------------------------ the public pages

/// The setup page's routes, on the SCIM listener: `GET /setup/{secret}` (the page), `POST
/// /setup/{secret}` (reveal the token), `GET /setup/{secret}/status` (live status, JSON).
pub(crate) fn routes() -> Router<SharedState> {
    Router::new().route("/setup/{secret}", get(show).post(reveal)).route("/setup/{secret}/status", get(status))
}

/// Why a link shows nothing.
enum Closed {
    Unknown,
    Expired,
    Revoked,
}

fn closed_page(why: Closed) -> Response {
    let (status, title, text) = match why {
        Closed::Unknown => (
            StatusCode::NOT_FOUND,
            "This setup link is not valid",
            "Check that the whole link was copied, or ask your vendor contact for a new one.",
        ),
        Closed::Expired => (
            StatusCode::GONE,
            "This setup link has expired",
            "Setup links work for a limited time. Ask your vendor contact for a new one.",
        ),
        Closed::Revoked => (
            StatusCode::GONE,
            "This setup link was withdrawn",
            "Your vendor contact withdrew this link. Ask them for a new one.",
        ),
    };
    ui::respond_secret_url(status, ui::page(title, None, html! { h1 { (title) } p { (text) } }))
}

/// The link's invite and tenant, if it is valid and open (not expired, not revoked).
async fn open_link(sh: &SharedState, secret: &str) -> Result<(Invite, Tenant), Response> {
    let (id, part) = tokens::split_invite(secret).ok_or_else(|| closed_page(Closed::Unknown))?;
    let store = sh.store();
    let lookup = store.invite(id.to_owned()).await.map_err(|_| unavailable())?;
    let invite = lookup.filter(|i| tokens::verify_invite(i, part)).ok_or_else(|| closed_page(Closed::Unknown))?;
    if invite.revoked.is_some() {
        return Err(closed_page(Closed::Revoked));
    }
    if sh.app.clock.now() >= invite.expires {
        return Err(closed_page(Closed::Expired));
    }
    let tenant = store.tenant_by_id(invite.tenant).await.map_err(|_| unavailable())?;
    let tenant = tenant.ok_or_else(|| closed_page(Closed::Unknown))?;
    Ok((invite, tenant))
}

fn unavailable() -> Response {
    let m =
        html! { h1 { "Please try again" } p { "The service cannot answer right now. Reload the page in a minute." } };
    ui::respond_secret_url(StatusCode::SERVICE_UNAVAILABLE, ui::page("Please try again", None, m))
}

fn tenant_url(sh: &SharedState, headers: &HeaderMap, peer: Option<crate::http::PeerAddr>) -> String {
    format!("{}/scim/v2", crate::http::public_origin(sh, headers, peer))
}

async fn show(
    State(sh): State<SharedState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::extract::Extension<crate::http::PeerAddr>>,
) -> Response {
    match open_link(&sh, &secret).await {
        Ok((invite, tenant)) => {
            let url = tenant_url(&sh, &headers, peer.map(|p| p.0));
            ui::respond_secret_url(StatusCode::OK, setup_page(&sh, &invite, &tenant, &url, None).await)
        }
        Err(resp) => resp,
    }
}

async fn reveal(
    State(sh): State<SharedState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::extract::Extension<crate::http::PeerAddr>>,
    rid: Option<axum::extract::Extension<crate::access::RequestId>>,
) -> Response {
    let (invite, tenant) = match open_link(&sh, &secret).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let url = tenant_url(&sh, &headers, peer.map(|p| p.0));
    if invite.redeemed.is_some() {
        return ui::respond_secret_url(StatusCode::OK, setup_page(&sh, &invite, &tenant, &url, None).await);
    }
    let now = sh.app.clock.now();
    let issued = tokens::issue(tenant.id, Some(TOKEN_LABEL.to_owned()), None, now);
    let actor = Actor {
        request_id: Some(rid.map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.0.to_string())),
        method: "POST".into(),
        path: format!("/setup/{}", invite.id),
        ..Actor::default()
    };
    match sh.store().redeem_invite(invite.id.clone(), issued.record.clone(), now, actor).await {
        Ok(true) => {
            let used = Invite { redeemed: Some(now), token: Some(issued.record.id.clone()), ..invite };
            ui::respond_secret_url(StatusCode::OK, setup_page(&sh, &used, &tenant, &url, Some(&issued.secret)).await)
        }
        // Someone else clicked first (or the link just expired): show the page as it is now.
        Ok(false) => match open_link(&sh, &secret).await {
            Ok((invite, tenant)) => {
                ui::respond_secret_url(StatusCode::OK, setup_page(&sh, &invite, &tenant, &url, None).await)
            }
            Err(resp) => resp,
        },
        Err(e) => {
            tracing::error!(error = %e, "setup link: could not reveal a token");
            unavailable()
        }
    }
}

/// The live status of a tenant's provisioning, as the setup page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupStatus {
    /// The tenant's health status.
    pub health: &'static str,
    /// When the first successful request came (Entra's Test connection is one).
    pub test_connection: Option<String>,
    /// When the first user was provisioned.
    pub first_user: Option<String>,
    /// How many users the tenant has.
    pub users: u64,
    /// How many groups.
    pub groups: u64,
    /// The latest provisioning cycle.
    pub last_cycle: Option<crate::health::CycleView>,
    /// The latest refused requests, newest first.
    pub refused: Vec<crate::reqlog::RequestView>,
}

/// How many resources of a kind a tenant has (one counting query, no rows).
pub(crate) async fn count(store: &dyn Store, tenant: i64, kind: Kind) -> Result<u64, StoreError> {
    let q = Query {
        tenant,
        kind,
        filter: None,
        sort: None,
        start_index: 1,
        count: 0,
        load: scim_store::Load::default(),
        position: false,
        seek: None,
    };
    Ok(store.query(q).await?.total.unwrap_or(0))
}

/// A tenant's setup status now.
pub async fn setup_status(store: &dyn Store, clock: &dyn Clock, tenant: &Tenant) -> Result<SetupStatus, StoreError> {
    let traffic = store.traffic(Some(tenant.id)).await?;
    let tokens = store.list_tokens(tenant.id).await?;
    let h = crate::health::assess(&tenant.name, traffic.first(), &tokens, clock.now());
    let refused = store
        .requests(RequestQuery { tenant: tenant.id, status: Some((400, 599)), limit: 5, ..RequestQuery::default() })
        .await?;
    Ok(SetupStatus {
        health: h.status.as_str(),
        test_connection: h.first_success,
        first_user: h.first_user,
        users: count(store, tenant.id, Kind::User).await?,
        groups: count(store, tenant.id, Kind::Group).await?,
        last_cycle: h.cycle,
        refused: refused.iter().map(crate::reqlog::RequestView::from).collect(),
    })
}

async fn status(State(sh): State<SharedState>, Path(secret): Path<String>) -> Response {
    let (_, tenant) = match open_link(&sh, &secret).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match setup_status(sh.store(), sh.app.clock.as_ref(), &tenant).await {
        Ok(s) => {
            let mut resp = axum::Json(s).into_response();
            resp.headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "setup link: could not read the status");
            let mut resp = axum::Json(json!({"error": "unavailable"})).into_response();
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        }
    }
}

/// The script that refreshes the status block every 10 seconds.
const STATUS_SCRIPT: &str = r#"
(function () {
  var box = document.getElementById('live');
  if (!box || !window.fetch) return;
  var esc = function (s) { var d = document.createElement('div'); d.textContent = s == null ? '' : String(s); return d.innerHTML; };
  var tick = function (ok, yes, no) { return ok ? '<span class="ok">&#10003; ' + esc(yes) + '</span>' : '<span class="muted">&#8230; ' + esc(no) + '</span>'; };
  function render(s) {
    var h = '<ul>';
    h += '<li id="st-test">' + tick(s.testConnection, 'Test connection received (' + s.testConnection + ')', 'Waiting for Test connection') + '</li>';
    h += '<li id="st-user">' + tick(s.firstUser, 'First user provisioned (' + s.firstUser + ')', 'No user provisioned yet') + '</li>';
    h += '<li id="st-counts">Users: <strong>' + esc(s.users) + '</strong>, groups: <strong>' + esc(s.groups) + '</strong></li>';
    h += '<li id="st-cycle">' + (s.lastCycle ? 'Last provisioning cycle: ' + esc(s.lastCycle.start) + ' to ' + esc(s.lastCycle.last) + ', ' + esc(s.lastCycle.requests) + ' requests, ' + esc(s.lastCycle.errors) + ' errors' : 'No provisioning cycle yet') + '</li>';
    h += '</ul>';
    if (s.refused.length) {
      h += '<h3>Last refused requests</h3><table id="refused"><thead><tr><th>Time</th><th>Request</th><th>Status</th><th>Reason</th><th>Fix</th></tr></thead><tbody>';
      s.refused.forEach(function (r) {
        h += '<tr><td>' + esc(r.time) + '</td><td class="mono">' + esc(r.method + ' ' + r.path) + '</td><td>' + esc(r.status) + '</td><td>' + esc(r.detail) + '</td><td>' + esc(r.hint) + '</td></tr>';
      });
      h += '</tbody></table>';
    }
    box.innerHTML = h;
    box.setAttribute('data-updated', new Date().toISOString());
  }
  function poll() {
    fetch(location.pathname.replace(/\/$/, '') + '/status', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) render(s); })
      .catch(function () {});
  }
  setInterval(poll, 10000);
})();
"#;

fn status_block(s: &SetupStatus) -> Markup {
    html! {
        ul {
            li #st-test {
                @if let Some(t) = &s.test_connection { span.ok { "✓ Test connection received (" (t) ")" } }
                @else { span.muted { "… Waiting for Test connection" } }
            }
            li #st-user {
                @if let Some(t) = &s.first_user { span.ok { "✓ First user provisioned (" (t) ")" } }
                @else { span.muted { "… No user provisioned yet" } }
            }
            li #st-counts { "Users: " strong { (s.users) } ", groups: " strong { (s.groups) } }
            li #st-cycle {
                @if let Some(c) = &s.last_cycle {
                    "Last provisioning cycle: " (c.start) " to " (c.last) ", " (c.requests) " requests, " (c.errors) " errors"
                } @else { "No provisioning cycle yet" }
            }
        }
        @if !s.refused.is_empty() {
            h3 { "Last refused requests" }
            table #refused {
                thead { tr { th { "Time" } th { "Request" } th { "Status" } th { "Reason" } th { "Fix" } } }
                tbody {
                    @for r in &s.refused {
                        tr {
                            td { (r.time) }
                            td.mono { (r.method) " " (r.path) }
                            td { (r.status) }
                            td { (r.detail.as_deref().unwrap_or_default()) }
                            td { (r.hint.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// The setup page, with the status as it is now.
async fn setup_page(sh: &SharedState, invite: &Invite, tenant: &Tenant, url: &str, token: Option<&str>) -> Markup {
    let status = setup_status(sh.store(), sh.app.clock.as_ref(), tenant).await;
    page_markup(&sh.settings().product_name, invite, tenant, url, token, &status)
}

fn page_markup(
    product: &str,
    invite: &Invite,
    tenant: &Tenant,
    url: &str,
    token: Option<&str>,
    status: &Result<SetupStatus, StoreError>,
) -> Markup {
    let title = format!("Connect {product} to your identity provider");
    let main = html! {
        h1 { (title) }
        p { "This page is for the administrator of your organisation's Microsoft Entra ID (or Okta). It gives you
             the values to enter and shows whether provisioning to " (product) " works." }
        h2 #tenant-url-heading { "1. Tenant URL" }
        p { code #tenant-url { (url) } " " (ui::copy_button("tenant-url", "the Tenant URL")) }
        h2 #token-heading { "2. Secret token" }
        @if let Some(t) = token {
            div.notice role="status" {
                p { strong { "This is the only time the secret token is shown." } " Copy it into Entra ID now (step 3 below). Treat it like a password." }
                p.secret { code #secret-token { (t) } }
                p { (ui::copy_button("secret-token", "the secret token")) }
            }
        } @else if let Some(at) = invite.redeemed {
            p #token-used { "The secret token of this link was revealed on " (fmt_time(at)) " and is not shown again.
                If it was lost, ask your " (product) " contact for a new setup link." }
        } @else {
            form method="post" {
                p { "The token is created when you select the button, and shown once." }
                button #reveal type="submit" { "Create and show the secret token" }
            }
        }
        h2 { "3. Connect Microsoft Entra ID" }
        ol #entra-steps {
            li { "Sign in to the Microsoft Entra admin center and go to " strong { "Enterprise applications" } " → " strong { "New application" } " → " strong { "Create your own application" } "." }
            li { "Enter a name (for example " code { (product) } "), select " strong { "Integrate any other application you don't find in the gallery (Non-gallery)" } ", and select " strong { "Create" } "." }
            li { "Open " strong { "Provisioning" } ", select " strong { "Get started" } " (or " strong { "New configuration" } ") and set " strong { "Provisioning Mode" } " to " strong { "Automatic" } "." }
            li { "Under " strong { "Admin Credentials" } ", choose " strong { "Bearer authentication" } " (secret token) if Entra asks, and enter:"
                table { tbody {
                    tr { th scope="row" { "Tenant URL" } td { code { (url) } } }
                    tr { th scope="row" { "Secret Token" } td { "the secret token from step 2, exactly as shown" } }
                } }
            }
            li { "Select " strong { "Test connection" } ". The status below shows " em { "Test connection received" } " within seconds." }
            li { "Select " strong { "Save" } "." }
            li { "Open " strong { "Mappings" } " → " strong { "Provision Microsoft Entra ID Users" } " and check the attribute mappings of the table below; add any that is missing with " strong { "Add New Mapping" } "." }
            li { "Open " strong { "Users and groups" } " and assign the users and groups to provision." }
            li { "Back in " strong { "Provisioning" } ", set " strong { "Provisioning Status" } " to " strong { "On" } " and select " strong { "Save" } " (or " strong { "Start provisioning" } "). Entra runs the first cycle within minutes, then one every 40 minutes." }
        }
        h2 #mandatory { "4. Mandatory attributes" }
        @if tenant.required.is_empty() {
            p { (product) " requires no attribute besides " code { "userName" } "." }
        } @else {
            p { "Every user must carry these attributes; a user without one is refused, and the refusal appears below with the fix." }
            table #mapping {
                thead { tr { th { "SCIM attribute (target)" } th { "Entra ID source attribute" } th { "Okta source" } } }
                tbody {
                    @for p in &tenant.required {
                        tr {
                            td { code { (p) } }
                            td { code { (crate::http::entra_source(p).unwrap_or("(choose one)")) } }
                            td { code { (crate::http::okta_source(p).unwrap_or("(choose one)")) } }
                        }
                    }
                }
            }
        }
        h2 { "Using Okta instead" }
        ol #okta-steps {
            li { "In the Okta admin console, create an app integration with " strong { "SCIM" } " provisioning (or open yours), then " strong { "Provisioning" } " → " strong { "Integration" } " → " strong { "Edit" } "." }
            li { strong { "SCIM connector base URL" } ": " code { (url) } "; " strong { "Unique identifier field for users" } ": " code { "userName" } "; " strong { "Authentication Mode" } ": " strong { "HTTP Header" } ", with the secret token alone (Okta adds " code { "Bearer" } ")." }
            li { "Select " strong { "Test Connector Configuration" } ", then " strong { "Save" } "." }
            li { "Under " strong { "To App" } ", enable " strong { "Create Users" } ", " strong { "Update User Attributes" } " and " strong { "Deactivate Users" } "; map the attributes of the table above; assign users and push groups." }
        }
        h2 #status-heading { "5. Status" }
        section #live aria-live="polite" aria-labelledby="status-heading" {
            @match status {
                Ok(s) => (status_block(s)),
                Err(_) => p { "The status cannot be read right now." },
            }
        }
        p { a href="" { "Refresh the status" } " (it also refreshes by itself every 10 seconds)." }
        p.muted { "This link works until " (fmt_time(invite.expires)) "." }
        script { (PreEscaped(STATUS_SCRIPT)) }
    };
    ui::page(&title, None, main)
}
