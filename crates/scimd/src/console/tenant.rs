//! A tenant's page and its forms: a new tenant, its mandatory attributes, its tokens, its setup
//! links, and deleting it. Every write goes through the operations the CLI and the vendor API
//! use (`crate::admin`, `crate::setup`), with the signed-in API key as the actor.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use scim_core::{AttrType, Attribute, Kind, Mutability, Registry, Returned};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::pages::{
    actor, form_error, op_failed, percent, see_other, seg, show, status_badge, status_of, tenant_href, unavailable,
};
use super::{CsrfForm, Signed, csrf_field};
// The reference policy a new tenant starts with (checked by default).
use crate::admin::{self, AdminState, OpError, TokenView};
use crate::{setup, tokens, ui, webhooks};
use scim_core::policy::REFERENCE;

/// A form's fields as sent, repeated names included (the attribute checkboxes).
type Pairs = Vec<(String, String)>;

/// How long a rotated token keeps working unless the form says (the field's default).
const DEFAULT_OVERLAP: &str = "24h";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/tenants", get(|| async { see_other("/console") }).post(create))
        .route("/console/tenants/new", get(new_page))
        .route("/console/tenants/{t}", get(tenant_page))
        .route("/console/tenants/{t}/policy", get(policy_page).post(save_policy))
        .route("/console/tenants/{t}/delete", get(delete_page).post(delete))
        .route("/console/tenants/{t}/tokens", post(new_token))
        .route("/console/tenants/{t}/invites", post(new_invite))
        .route("/console/tokens/{id}/revoke", post(revoke_token))
        .route("/console/tokens/{id}/rotate", post(rotate_token))
        .route("/console/invites/{id}/revoke", post(revoke_invite))
}

// ------------------------------------------------------------------ mandatory attributes

/// Whether a client can set an attribute (so a policy can ask for it).
fn settable(a: &Attribute) -> bool {
    a.mutability != Mutability::ReadOnly && a.returned != Returned::Never && !a.name.starts_with('$')
}

/// The paths of one attribute a policy can name: a simple attribute itself; a complex one's
/// settable sub-attributes; a multi-valued one with a `value`, `attr.value` and, per canonical
/// `type`, `attr[type eq "t"].value`.
fn push_paths(out: &mut Vec<String>, prefix: &str, a: &Attribute) {
    if !settable(a) {
        return;
    }
    if a.ty != AttrType::Complex {
        out.push(format!("{prefix}{}", a.name));
        return;
    }
    if a.multi_valued {
        if a.sub("value").is_some_and(settable) {
            out.push(format!("{prefix}{}.value", a.name));
            for t in a.sub("type").map(|t| t.canonical_values.as_slice()).unwrap_or_default() {
                out.push(format!("{prefix}{}[type eq \"{t}\"].value", a.name));
            }
            return;
        }
        for sub in a.sub_attributes.iter().filter(|s| settable(s) && !matches!(s.name.as_str(), "type" | "primary")) {
            out.push(format!("{prefix}{}.{}", a.name, sub.name));
        }
        return;
    }
    for sub in a.sub_attributes.iter().filter(|s| settable(s)) {
        out.push(format!("{prefix}{}.{}", a.name, sub.name));
    }
}

/// The User attribute paths the policy form offers, by schema: (legend, paths).
pub(crate) fn user_paths(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let Some(def) = registry.resource("User") else { return Vec::new() };
    let mut core = Vec::new();
    for a in def.common.iter().chain(&def.core.attributes) {
        push_paths(&mut core, "", a);
    }
    let mut out = vec![(format!("{} ({})", def.core.description, def.core.id), core)];
    for (ext, _) in &def.extensions {
        let mut paths = Vec::new();
        for a in &ext.attributes {
            push_paths(&mut paths, &format!("{}:", ext.id), a);
        }
        if !paths.is_empty() {
            out.push((format!("{} ({})", ext.description, ext.id), paths));
        }
    }
    out
}

/// The checkboxes (`req-<n>`, `name="required"`) with `checked` ticked, and `#required-other`.
fn required_picker(registry: &Registry, checked: &[String], other: &str) -> Markup {
    let mut n = 0usize;
    let groups: Vec<(String, Vec<(String, String)>)> = user_paths(registry)
        .into_iter()
        .map(|(legend, paths)| {
            let numbered = paths
                .into_iter()
                .map(|p| {
                    n += 1;
                    (format!("req-{n}"), p)
                })
                .collect();
            (legend, numbered)
        })
        .collect();
    html! {
        @for (legend, paths) in &groups {
            fieldset.checks {
                legend { (legend) }
                div.check-grid {
                    @for (id, path) in paths {
                        div {
                            input type="checkbox" id=(id) name="required" value=(path) checked[checked.iter().any(|c| c == path)];
                            " "
                            label for=(id) { code { (path) } }
                        }
                    }
                }
            }
        }
        label for="required-other" { "Other paths, comma-separated" }
        input #required-other type="text" name="required_other" value=(other) aria-describedby="required-other-help";
        p.muted #required-other-help { "Any SCIM path of the User resource, e.g. " code { "phoneNumbers[type eq \"mobile\"].value" } " or " code { "addresses[type eq \"work\"].country" } "." }
    }
}

/// The first value of the field `name`.
fn field<'a>(pairs: &'a Pairs, name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The ticked paths and the other paths' text, as sent.
fn chosen(pairs: &Pairs) -> (Vec<String>, String) {
    let checked = pairs.iter().filter(|(k, v)| k == "required" && !v.trim().is_empty()).map(|(_, v)| v.clone());
    (checked.collect(), field(pairs, "required_other").to_owned())
}

/// The policy the form asks for: the ticked paths, then the other ones.
fn all_required(checked: &[String], other: &str) -> Vec<String> {
    let mut out = checked.to_vec();
    if !other.trim().is_empty() {
        out.extend(admin::split_paths(&[other]).into_iter().filter(|p| !p.is_empty()));
    }
    out
}

// ------------------------------------------------------------------ new tenant

async fn new_page(State(s): State<AdminState>, Extension(signed): Extension<Signed>) -> Response {
    let checked: Vec<String> = REFERENCE.iter().map(|p| (*p).to_owned()).collect();
    new_form(&s, &signed, "", &checked, "", None, StatusCode::OK)
}

fn new_form(
    s: &AdminState,
    signed: &Signed,
    name: &str,
    checked: &[String],
    other: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let main = html! {
        p { a href="/console" { "Tenants" } }
        h1 { "New tenant" }
        (form_error(error))
        form #new-tenant method="post" action="/console/tenants" {
            (csrf_field(signed))
            label for="name" { "Name" }
            input #name type="text" name="name" value=(name) autocomplete="off" aria-describedby="name-help";
            p.muted #name-help { "1 to 63 characters of a-z, 0-9 and -, not starting with -. It is part of the tenant's SCIM URL and cannot be changed." }
            h2 { "Mandatory attributes" }
            p { "Every user the tenant's identity provider sends must carry these; a user without one is refused with a message that names it. The reference set is ticked." }
            (required_picker(&s.registry, checked, other))
            p { button #create-tenant type="submit" { "Create tenant" } }
        }
    };
    show(status, signed, "New tenant", main)
}

/// `POST /console/tenants`: creates the tenant, then its page.
async fn create(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    CsrfForm(pairs): CsrfForm<Pairs>,
) -> Response {
    let name = field(&pairs, "name").trim().to_owned();
    let (checked, other) = chosen(&pairs);
    let required = all_required(&checked, &other);
    let who = actor(&signed, "/console/tenants");
    match admin::create_tenant(s.store.as_ref(), s.clock.as_ref(), &s.registry, &name, &required, &who).await {
        Ok(view) => {
            tracing::info!(tenant = %view.name, "console: tenant created");
            see_other(&tenant_href(&view.name))
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => new_form(&s, &signed, &name, &checked, &other, Some(&e.to_string()), status_of(&e)),
    }
}

// ------------------------------------------------------------------ the tenant's page

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// `active`, `revoked` or `expired`.
fn token_state(t: &TokenView, now: OffsetDateTime) -> &'static str {
    if t.revoked.is_some() {
        "revoked"
    } else if t.expires.as_deref().and_then(parse_time).is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

/// How many resources of a kind the tenant has.
async fn count(s: &AdminState, tenant: &Arc<scim_store::Tenant>, kind: Kind) -> Option<u64> {
    crate::setup::count(s.store.as_ref(), tenant.id, kind).await.ok()
}

/// `GET /console/tenants/{t}`.
async fn tenant_page(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
) -> Response {
    render_tenant(&s, &signed, &name, None, StatusCode::OK).await
}

/// The tenant's page, with a refused form's error if there is one.
pub(crate) async fn render_tenant(
    s: &AdminState,
    signed: &Signed,
    name: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (store, clock) = (s.store.as_ref(), s.clock.as_ref());
    let tenant = match admin::tenant_named(store, name).await {
        Ok(t) => Arc::new(t),
        Err(e) => return op_failed(&e),
    };
    let loaded = async {
        let view = admin::show_tenant(store, clock, name).await?;
        let health = crate::health::tenant_health(store, clock, name).await?;
        let tokens = admin::list_tokens(store, name).await?;
        let invites = setup::list_invites(store, clock, name).await?;
        let hooks = webhooks::list(store, clock).await?;
        Ok::<_, OpError>((view, health, tokens, invites, hooks))
    };
    let (view, health, tokens, invites, hooks) = match loaded.await {
        Ok(x) => x,
        Err(e) => return op_failed(&e),
    };
    let hooks: Vec<_> = hooks.into_iter().filter(|w| w.tenant.as_deref().is_none_or(|t| t == view.name)).collect();
    let users = count(s, &tenant, Kind::User).await;
    let groups = count(s, &tenant, Kind::Group).await;
    let now = clock.now();
    let t = tenant_href(&view.name);
    let main = html! {
        p { a href="/console" { "Tenants" } }
        h1 { (view.name) }
        (form_error(error))
        p.muted { "Created " (view.created) ". SCIM base URL: " code { (s.scim_origin) "/scim/v2" } }
        nav aria-label="Tenant" {
            ul {
                li { a #users-link href={ (t) "/users" } { "Users" } @if let Some(n) = users { " (" (n) ")" } }
                li { a #groups-link href={ (t) "/groups" } { "Groups" } @if let Some(n) = groups { " (" (n) ")" } }
                li { a #events-link href={ (t) "/events" } { "Change feed" } }
                li { a #requests-link href={ (t) "/requests" } { "Provisioning log" } }
            }
        }

        section #health aria-labelledby="health-h" {
            h2 #health-h { "Health " (status_badge(health.status)) }
            @if health.problems.is_empty() {
                p { "No problem found." }
            } @else {
                ul #problems {
                    @for p in &health.problems { li data-code=(p.code) { (p.detail) } }
                }
            }
            table {
                tbody {
                    tr { th scope="row" { "Last request" } td { (health.last_request.as_deref().unwrap_or("never")) } }
                    tr { th scope="row" { "Last success" } td { (health.last_success.as_deref().unwrap_or("never")) } }
                    tr { th scope="row" { "Last write" } td { (health.last_write.as_deref().unwrap_or("never")) } }
                    tr { th scope="row" { "First user" } td { (health.first_user.as_deref().unwrap_or("none yet")) } }
                    tr { th scope="row" { "401s in a row" } td { (health.unauthorized_streak) } }
                    @if let Some(c) = &health.cycle {
                        tr { th scope="row" { "Current cycle" } td { (c.requests) " requests, " (c.errors) " errors (" (percent(c.error_rate)) "), " (c.start) " to " (c.last) } }
                    }
                    @if let Some(c) = &health.previous_cycle {
                        tr { th scope="row" { "Previous cycle" } td { (c.requests) " requests, " (c.errors) " errors (" (percent(c.error_rate)) "), " (c.start) " to " (c.last) } }
                    }
                    tr { th scope="row" { "Working tokens" } td { (health.active_tokens) @if let Some(e) = &health.tokens_expire { ", the last expires " (e) } } }
                    tr {
                        th scope="row" { "Deprovisioning guard" }
                        td {
                            @if !view.guard.enabled { "off" }
                            @else if view.guard.tripped {
                                strong.bad { "tripped" } @if let Some(at) = &view.guard.tripped_at { " at " (at) }
                                @if let Some(p) = view.guard.held_from { "; push delivery held from position " (p) }
                                " (release it with " code { "scimd tenant release " (view.name) } ")"
                            }
                            @else { "on: " (percent(view.guard.share)) " of active users, at least " (view.guard.min_users) ", within " (view.guard.window_seconds / 60) " minutes" }
                        }
                    }
                }
            }
        }

        section #policy aria-labelledby="policy-h" {
            h2 #policy-h { "Mandatory attributes" }
            @if view.required.is_empty() {
                p { "None: any user the SCIM protocol allows is accepted." }
            } @else {
                ul { @for p in &view.required { li { code { (p) } } } }
            }
            p { a #edit-policy href={ (t) "/policy" } { "Change the mandatory attributes" } }
        }

        section aria-labelledby="tokens-h" {
            h2 #tokens-h { "Tokens" }
            table #tokens {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Label" } th scope="col" { "Created" } th scope="col" { "Expires" }
                    th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for k in &tokens {
                        @let state = token_state(k, now);
                        tr data-token=(k.id) {
                            td { code { (k.id) } }
                            td { (k.label.as_deref().unwrap_or("")) }
                            td { (k.created) }
                            td { (k.expires.as_deref().unwrap_or("never")) }
                            td { (k.last_used.as_deref().unwrap_or("never")) }
                            td.token-state title=[k.revoked.as_ref().map(|r| format!("revoked {r}"))] { (state) }
                            td {
                                @if state == "active" {
                                    form.inline method="post" action={ "/console/tokens/" (seg(&k.id)) "/revoke" } {
                                        (csrf_field(signed))
                                        button.revoke-token.danger type="submit" aria-label={ "Revoke token " (k.id) } { "Revoke" }
                                    }
                                    @if !k.label.as_deref().is_some_and(|l| l.starts_with(tokens::OAUTH_LABEL_PREFIX)) {
                                        " "
                                        form.inline method="post" action={ "/console/tokens/" (seg(&k.id)) "/rotate" } {
                                            (csrf_field(signed))
                                            label.inline-label for={ "overlap-" (k.id) } { "old one works for" }
                                            " "
                                            input.short id={ "overlap-" (k.id) } type="text" name="overlap" value=(DEFAULT_OVERLAP);
                                            " "
                                            button.rotate-token.secondary type="submit" aria-label={ "Rotate token " (k.id) } { "Rotate" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if tokens.is_empty() { p { "No token yet." } }
            h3 { "New token" }
            form #new-token method="post" action={ (t) "/tokens" } {
                (csrf_field(signed))
                label for="token-label" { "Label" }
                input #token-label type="text" name="label" autocomplete="off";
                label for="token-expires" { "Expires after (optional, e.g. 90d, 12h, 1y)" }
                input #token-expires type="text" name="expires" autocomplete="off";
                p { button #create-token type="submit" { "Create token" } }
            }
        }

        section aria-labelledby="invites-h" {
            h2 #invites-h { "Setup links" }
            p { "A setup link gives the customer's admin the Tenant URL and a new token on a page of their own, with the Entra ID steps and live status." }
            table #invites {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Expires" }
                    th scope="col" { "Used" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for i in &invites {
                        tr data-invite=(i.id) {
                            td { code { (i.id) } }
                            td.invite-state { (i.state) }
                            td { (i.created) }
                            td { (i.expires) }
                            td { (i.redeemed.as_deref().unwrap_or("")) @if let Some(k) = &i.token { " (token " code { (k) } ")" } }
                            td {
                                @if i.state == "open" || i.state == "used" {
                                    form.inline method="post" action={ "/console/invites/" (seg(&i.id)) "/revoke" } {
                                        (csrf_field(signed))
                                        button.revoke-invite.danger type="submit" aria-label={ "Revoke setup link " (i.id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if invites.is_empty() { p { "No setup link yet." } }
            h3 { "New setup link" }
            form #new-invite method="post" action={ (t) "/invites" } {
                (csrf_field(signed))
                label for="invite-expires" { "Works for" }
                input #invite-expires type="text" name="expires" value="7d" autocomplete="off";
                p { button #create-invite type="submit" { "Create setup link" } }
            }
        }

        section aria-labelledby="webhooks-h" {
            h2 #webhooks-h { "Webhooks" }
            p.muted { "Those of this tenant and those of every tenant; manage them with " code { "scimd webhook" } " or the vendor API." }
            table #webhooks {
                thead { tr {
                    th scope="col" { "URL" } th scope="col" { "Tenants" } th scope="col" { "Events" } th scope="col" { "Format" } th scope="col" { "Delivery" }
                } }
                tbody {
                    @for w in &hooks {
                        @let d = w.deliveries.iter().find(|d| d.tenant == view.name);
                        tr data-webhook=(w.id) {
                            td { @if w.url.is_empty() { "(polled by the receiver)" } @else { code { (w.url) } } }
                            td { @if w.tenant.is_some() { "this one" } @else { "all" } }
                            td { @if w.events.is_empty() { "all" } @else { (w.events.join(", ")) } }
                            td { (w.format) " (" (w.mode) ")" }
                            td {
                                @match d {
                                    None => { "nothing yet" }
                                    Some(d) => {
                                        "position " (d.position) ", " (d.backlog) " behind"
                                        @if d.failed { "; " strong.bad { "failed" } " (a replay resumes it)" }
                                        @else if d.paused { "; " strong.bad { "paused by the guard" } }
                                        @else if d.consecutive_failures > 0 { "; " (d.consecutive_failures) " failures in a row" @if let Some(n) = &d.next_attempt { ", next attempt " (n) } }
                                        @if let Some(o) = &d.last_outcome { "; last: " (o) @if let Some(a) = &d.last_attempt { " at " (a) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if hooks.is_empty() { p { "No webhook." } }
        }

        section aria-labelledby="danger-h" {
            h2 #danger-h { "Danger zone" }
            p { a #delete-tenant-link href={ (t) "/delete" } { "Delete this tenant" } " with all its users, groups, tokens and events." }
        }
    };
    show(status, signed, &view.name, main)
}

// ------------------------------------------------------------------ policy

async fn policy_page(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
) -> Response {
    let t = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let offered: Vec<String> = user_paths(&s.registry).into_iter().flat_map(|(_, p)| p).collect();
    let (checked, rest): (Vec<String>, Vec<String>) = t.required.iter().cloned().partition(|p| offered.contains(p));
    policy_form(&s, &signed, &t.name, &checked, &rest.join(", "), None, StatusCode::OK)
}

fn policy_form(
    s: &AdminState,
    signed: &Signed,
    name: &str,
    checked: &[String],
    other: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let main = html! {
        p { a href=(tenant_href(name)) { (name) } }
        h1 { "Mandatory attributes of " (name) }
        (form_error(error))
        p { "Users the identity provider creates or changes from now on must carry these; users already stored are not checked again." }
        form #policy-form method="post" action={ (tenant_href(name)) "/policy" } {
            (csrf_field(signed))
            (required_picker(&s.registry, checked, other))
            p { button #save-policy type="submit" { "Save" } " " a href=(tenant_href(name)) { "Cancel" } }
        }
    };
    show(status, signed, &format!("Mandatory attributes of {name}"), main)
}

async fn save_policy(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    CsrfForm(pairs): CsrfForm<Pairs>,
) -> Response {
    let t = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let (checked, other) = chosen(&pairs);
    let required = all_required(&checked, &other);
    let who = actor(&signed, &format!("{}/policy", tenant_href(&t.name)));
    match admin::set_required(s.store.as_ref(), s.clock.as_ref(), &s.registry, &t.name, &required, &who).await {
        Ok(_) => {
            // The SCIM listener applies the new policy at once, not after its cache time.
            s.auth.forget_tenant_record(t.id);
            tracing::info!(tenant = %t.name, "console: tenant policy changed");
            see_other(&tenant_href(&t.name))
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => policy_form(&s, &signed, &t.name, &checked, &other, Some(&e.to_string()), status_of(&e)),
    }
}

// ------------------------------------------------------------------ delete

#[derive(Debug, Default, Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

async fn delete_page(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
) -> Response {
    match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => delete_form(&signed, &t.name, None, StatusCode::OK),
        Err(e) => op_failed(&e),
    }
}

fn delete_form(signed: &Signed, name: &str, error: Option<&str>, status: StatusCode) -> Response {
    let main = html! {
        p { a href=(tenant_href(name)) { (name) } }
        h1 { "Delete tenant " (name) }
        (form_error(error))
        p.notice.bad { "This deletes the tenant with all its users, groups, tokens, setup links and events, at once and for good. Its identity provider's requests will be refused." }
        form #delete-form method="post" action={ (tenant_href(name)) "/delete" } {
            (csrf_field(signed))
            label for="confirm" { "Type the tenant's name, " code { (name) } ", to confirm" }
            input #confirm type="text" name="confirm" autocomplete="off" spellcheck="false";
            p { button #delete-tenant.danger type="submit" { "Delete " (name) } " " a href=(tenant_href(name)) { "Cancel" } }
        }
    };
    show(status, signed, &format!("Delete {name}"), main)
}

async fn delete(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> Response {
    let t = match admin::tenant_named(s.store.as_ref(), &name).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    if f.confirm != t.name {
        let why = format!("Type the tenant's name exactly (\"{}\") to delete it.", t.name);
        return delete_form(&signed, &t.name, Some(&why), StatusCode::BAD_REQUEST);
    }
    match admin::delete_tenant(s.store.as_ref(), &t.name).await {
        Ok(id) => {
            s.auth.forget_tenant(id);
            tracing::info!(tenant = %t.name, "console: tenant deleted");
            see_other("/console")
        }
        Err(e) => op_failed(&e),
    }
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    expires: String,
}

#[derive(Debug, Default, Deserialize)]
struct RotateForm {
    #[serde(default)]
    overlap: String,
}

/// The page that shows a new secret, this once.
fn secret_page(signed: &Signed, tenant: &str, heading: &str, secret: &str, facts: Markup) -> Response {
    let main = html! {
        h1 { (heading) }
        p.notice role="status" { strong { "Copy the token now: it is shown only this once." } " scimd keeps only a digest of it; if it is lost, rotate or revoke it and make another." }
        p { code #new-token-secret .secret { (secret) } " " (ui::copy_button("new-token-secret", "the token")) }
        (facts)
        p { a #back-to-tenant href=(tenant_href(tenant)) { "Back to " (tenant) } }
    };
    show(StatusCode::OK, signed, heading, main)
}

/// `POST /console/tenants/{t}/tokens`: the new token's secret, shown once.
async fn new_token(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    CsrfForm(f): CsrfForm<TokenForm>,
) -> Response {
    if let Err(e) = admin::tenant_named(s.store.as_ref(), &name).await {
        return op_failed(&e);
    }
    let expires = match f.expires.trim() {
        "" => None,
        e => match admin::parse_duration(e) {
            Ok(d) => Some(d),
            Err(why) => return render_tenant(&s, &signed, &name, Some(&why), StatusCode::BAD_REQUEST).await,
        },
    };
    let who = actor(&signed, &format!("{}/tokens", tenant_href(&name)));
    let label = Some(f.label.as_str()).filter(|l| !l.trim().is_empty());
    match admin::create_token(s.store.as_ref(), s.clock.as_ref(), &name, label, expires, &who).await {
        Ok(v) => {
            tracing::info!(tenant = %v.tenant, token = %v.id, "console: token created");
            let facts = html! {
                table { tbody {
                    tr { th scope="row" { "Id" } td { code { (v.id) } } }
                    tr { th scope="row" { "Label" } td { (v.label.as_deref().unwrap_or("")) } }
                    tr { th scope="row" { "Expires" } td { (v.expires.as_deref().unwrap_or("never")) } }
                } }
            };
            secret_page(&signed, &v.tenant, &format!("New token for {}", v.tenant), &v.token, facts)
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => render_tenant(&s, &signed, &name, Some(&e.to_string()), status_of(&e)).await,
    }
}

/// The name of the tenant that holds token `id`, if there is such a token.
async fn token_tenant(s: &AdminState, id: &str) -> Result<Option<String>, OpError> {
    let Ok(id) = admin::token_id(id) else { return Ok(None) };
    let Some(k) = s.store.token(id.to_owned()).await? else { return Ok(None) };
    Ok(s.store.tenant_by_id(k.tenant).await?.map(|t| t.name))
}

/// A refused token or link change: its tenant's page with the error, or a 404 page.
async fn refused(s: &AdminState, signed: &Signed, tenant: Option<String>, e: &OpError) -> Response {
    match tenant {
        Some(name) => render_tenant(s, signed, &name, Some(&e.to_string()), status_of(e)).await,
        None => {
            let main = html! {
                h1 { "Not found" }
                (form_error(Some(&e.to_string())))
                p { a href="/console" { "Back to the tenants" } }
            };
            show(status_of(e), signed, "Not found", main)
        }
    }
}

/// `POST /console/tokens/{id}/revoke`: then the tenant's page.
async fn revoke_token(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<RotateForm>,
) -> Response {
    let tenant = match token_tenant(&s, &id).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let Some(name) = tenant else {
        return refused(&s, &signed, None, &OpError::NotFound(format!("no token with id \"{id}\""))).await;
    };
    let who = actor(&signed, &format!("/console/tokens/{}/revoke", seg(&id)));
    match admin::revoke_token(s.store.as_ref(), s.clock.as_ref(), &id, &who).await {
        Ok(r) => {
            s.auth.forget_token(&r.token.id);
            tracing::info!(tenant = %r.token.tenant, token = %r.token.id, "console: token revoked");
            see_other(&tenant_href(&name))
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => refused(&s, &signed, Some(name), &e).await,
    }
}

/// `POST /console/tokens/{id}/rotate`: the new token's secret, shown once.
async fn rotate_token(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<RotateForm>,
) -> Response {
    let tenant = match token_tenant(&s, &id).await {
        Ok(t) => t,
        Err(e) => return op_failed(&e),
    };
    let Some(name) = tenant else {
        return refused(&s, &signed, None, &OpError::NotFound(format!("no token with id \"{id}\""))).await;
    };
    let overlap = match f.overlap.trim() {
        "" => admin::DEFAULT_ROTATION_OVERLAP,
        o => match admin::parse_duration(o) {
            Ok(d) => d,
            Err(why) => return refused(&s, &signed, Some(name), &OpError::Usage(why)).await,
        },
    };
    let who = actor(&signed, &format!("/console/tokens/{}/rotate", seg(&id)));
    match admin::rotate(s.store.as_ref(), s.clock.as_ref(), &id, overlap, &who).await {
        Ok(r) => {
            s.auth.forget_token(&r.replaces);
            tracing::info!(tenant = %r.issued.tenant, old = %r.replaces, new = %r.issued.id, "console: token rotated");
            let v = &r.issued;
            let facts = html! {
                p { "It replaces token " code { (r.replaces) } ", which keeps working until " strong { (r.replaced_expires) } ": paste the new one into the identity provider before then." }
                table { tbody {
                    tr { th scope="row" { "Id" } td { code { (v.id) } } }
                    tr { th scope="row" { "Label" } td { (v.label.as_deref().unwrap_or("")) } }
                    tr { th scope="row" { "Expires" } td { (v.expires.as_deref().unwrap_or("never")) } }
                } }
            };
            secret_page(&signed, &v.tenant, &format!("New token for {}", v.tenant), &v.token, facts)
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => refused(&s, &signed, Some(name), &e).await,
    }
}

// ------------------------------------------------------------------ setup links

#[derive(Debug, Default, Deserialize)]
struct InviteForm {
    #[serde(default)]
    expires: String,
}

/// `POST /console/tenants/{t}/invites`: the link, shown once.
async fn new_invite(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(name): Path<String>,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> Response {
    if let Err(e) = admin::tenant_named(s.store.as_ref(), &name).await {
        return op_failed(&e);
    }
    let expires = match f.expires.trim() {
        "" => None,
        e => match admin::parse_duration(e) {
            Ok(d) => Some(d),
            Err(why) => return render_tenant(&s, &signed, &name, Some(&why), StatusCode::BAD_REQUEST).await,
        },
    };
    match setup::create_invite(s.store.as_ref(), s.clock.as_ref(), &name, expires, &s.scim_origin).await {
        Ok(v) => {
            tracing::info!(tenant = %name, invite = %v.id, "console: setup link made");
            let url = v.url.clone().unwrap_or_default();
            let heading = format!("New setup link for {}", v.tenant);
            let main = html! {
                h1 { (heading) }
                p.notice role="status" { strong { "Copy the link now: it is shown only this once." } " Send it to the customer's admin; it works once, until " (v.expires) "." }
                p { code #invite-url .secret { (url) } " " (ui::copy_button("invite-url", "the setup link")) }
                p { a #back-to-tenant href=(tenant_href(&v.tenant)) { "Back to " (v.tenant) } }
            };
            show(StatusCode::OK, &signed, &heading, main)
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => render_tenant(&s, &signed, &name, Some(&e.to_string()), status_of(&e)).await,
    }
}

/// `POST /console/invites/{id}/revoke`: then the tenant's page.
async fn revoke_invite(
    State(s): State<AdminState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<InviteForm>,
) -> Response {
    match setup::revoke_invite(s.store.as_ref(), s.clock.as_ref(), &id).await {
        Ok(v) => {
            tracing::info!(tenant = %v.tenant, invite = %v.id, "console: setup link revoked");
            see_other(&tenant_href(&v.tenant))
        }
        Err(OpError::Store(e)) => unavailable(&e),
        Err(e) => refused(&s, &signed, None, &e).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_offered_path_is_a_valid_policy_and_the_reference_set_is_offered() {
        let reg = Registry::standard();
        let offered: Vec<String> = user_paths(&reg).into_iter().flat_map(|(_, p)| p).collect();
        admin::check_required(&reg, &offered).unwrap();
        for p in REFERENCE {
            assert!(offered.iter().any(|o| o == p), "{p} is not offered");
        }
        for not in ["id", "meta.created", "groups.value", "password", "manager.displayName"] {
            assert!(!offered.iter().any(|o| o == not || o.ends_with(&format!(":{not}"))), "{not} is offered");
        }
    }

    #[test]
    fn the_form_asks_for_ticked_then_other_paths() {
        let pairs: Pairs = vec![
            ("csrf".into(), "x".into()),
            ("required".into(), "userName".into()),
            ("required".into(), "emails[type eq \"work\"].value".into()),
            ("required_other".into(), " title, addresses[type eq \"a,b\"].country ,".into()),
        ];
        let (checked, other) = chosen(&pairs);
        assert_eq!(
            all_required(&checked, &other),
            ["userName", "emails[type eq \"work\"].value", "title", "addresses[type eq \"a,b\"].country"]
        );
    }
}
