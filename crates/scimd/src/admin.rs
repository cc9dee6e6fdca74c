//! Tenants, tokens and API keys, as the vendor manages them: the operations shared by the
//! command line and the vendor API, and the admin listener's router.
//!
//! The admin listener serves (DESIGN.md, vendor API):
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics`, `GET /healthz`, `GET /readyz` | open: Prometheus text; 200 while alive; 200 while the database answers, else 503 |
//! | `GET /api/v1/tenants` | `[tenant]` |
//! | `POST /api/v1/tenants` `{"name", "required": [...]}` | 201 `tenant` |
//! | `GET /api/v1/tenants/{tenant}` | `tenant` |
//! | `PATCH /api/v1/tenants/{tenant}` `{"required": [...]}` | `tenant` with its new policy |
//! | `DELETE /api/v1/tenants/{tenant}` | 204 (the tenant and all it owns are gone) |
//! | `GET /api/v1/tenants/{tenant}/tokens` | `[token]` (never secrets) |
//! | `POST /api/v1/tenants/{tenant}/tokens` `{"label", "expires": "90d"}` | 201 `{"id", "token", ...}`, the secret shown once |
//! | `DELETE /api/v1/tokens/{id}` | 204 (revoked; `id` may also be the whole token) |
//! | `GET /api/v1/tenants/{tenant}/Users`, `.../Groups` | the SCIM list response (same query parameters as SCIM) with `"position"`: the change-feed position it reflects |
//! | `GET /api/v1/tenants/{tenant}/Users/{id}`, `.../Groups/{id}` | the resource in SCIM JSON |
//! | `POST /api/v1/tokens/{id}/rotate` `{"overlap": "24h"}` | 201 `{"id", "token", ..., "replaces", "replacedExpires"}`: a new token with the same tenant and label; the old one keeps working for the overlap |
//! | `GET /api/v1/tenants/{tenant}/events?after=N&limit=M&wait=S` | `{"events": [...], "position": N}` (`crate::feed`); 410 for a pruned position |
//! | `GET/POST /api/v1/webhooks`, `GET/DELETE /api/v1/webhooks/{id}` | push endpoints (`crate::webhooks`); a create answers the signing secret once |
//! | `POST /api/v1/webhooks/{id}/test`, `.../replay` `{"from", "tenant"}`, `.../rotate-secret` `{"overlap"}` | a signed ping; deliver again from a position; a new secret (shown once) |
//! | `POST /api/v1/tenants/{tenant}/release` `{"discard": false}` | releases a tripped mass-deprovisioning guard; `PATCH` of the tenant with `{"guard": {"enabled", "share", "minUsers", "window"}}` sets it |
//! | `POST /api/v1/webhooks/{id}/poll` `{"ack", "setErrs", "maxEvents", "returnImmediately"}` | RFC 8936 poll of a `set` webhook: `{"sets": {jti: token}, "moreAvailable"}` |
//! | `GET /api/v1/openapi.json` | this listener's OpenAPI 3.1 document (`docs/openapi.json`, built in); behind the API key like the rest of `/api/v1` |
//!
//! where `tenant` is `{"name", "required", "created", "tokens", "activeTokens"}` and `token` is
//! `{"id", "tenant", "label", "created", "expires", "revoked", "lastUsed"}`.
//!
//! Everything under `/api/v1` needs `Authorization: Bearer <API key>` (`scimd api-key create`;
//! only a digest is stored) and a `Host` the operator configured (`admin_hosts`; by default the
//! loopback names), which defeats DNS rebinding; request bodies must be JSON
//! (`Content-Type: application/json`), which defeats cross-site form posts. Errors are
//! `{"error": "<code>", "detail": "..."}` with the status the code names.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use scim_core::Registry;
use scim_core::policy::RequiredPaths;
use scim_store::{Actor, Store, StoreError, Tenant, Token};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Clock;
use crate::feed::FeedError;
use crate::tokens;

/// Why an operation failed, in the terms both the CLI (exit code) and the API (status) need.
#[derive(Debug, Clone, PartialEq)]
pub enum OpError {
    /// The request is malformed: a bad name, path, duration or label (CLI exit 2, HTTP 400).
    Usage(String),
    /// No such tenant or token (CLI exit 1, HTTP 404).
    NotFound(String),
    /// The name is taken (CLI exit 1, HTTP 409).
    Conflict(String),
    /// The database failed (CLI exit 1, HTTP 500).
    Store(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Usage(m) | OpError::NotFound(m) | OpError::Conflict(m) => f.write_str(m),
            OpError::Store(m) => write!(f, "database: {m}"),
        }
    }
}

impl std::error::Error for OpError {}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend(m) => OpError::Store(m),
            other => OpError::Store(other.to_string()),
        }
    }
}

/// A tenant as shown by `tenant list` / `show` and the vendor API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The tenant's name.
    pub name: String,
    /// Its mandatory attributes (SCIM paths).
    pub required: Vec<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// How many tokens it has, revoked and expired ones included.
    pub tokens: usize,
    /// How many of them still work.
    pub active_tokens: usize,
    /// Its guard against mass deprovisioning.
    pub guard: GuardView,
}

/// A tenant's mass-deprovisioning guard, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardView {
    /// Whether it is on.
    pub enabled: bool,
    /// The share of active users (0.2 = 20%) whose deactivation or deletion within the window
    /// trips it.
    pub share: f64,
    /// The fewest deprovisionings that trip it.
    pub min_users: i64,
    /// The window, in seconds.
    pub window_seconds: i64,
    /// Tripped: push delivery of the tenant's events is held.
    pub tripped: bool,
    /// The feed position from which delivery is held.
    pub held_from: Option<i64>,
    /// When it tripped.
    pub tripped_at: Option<String>,
}

fn guard_view(g: &scim_store::Guard) -> GuardView {
    GuardView {
        enabled: g.share_permille > 0,
        share: g.share_permille as f64 / 1000.0,
        min_users: g.min_users,
        window_seconds: g.window.whole_seconds(),
        tripped: g.held_from.is_some(),
        held_from: g.held_from,
        tripped_at: g.tripped_at.map(fmt_time),
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// The public id.
    pub id: String,
    /// The tenant's name.
    pub tenant: String,
    /// The label, if any.
    pub label: Option<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it expires, if ever.
    pub expires: Option<String>,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
    /// When it last authenticated a request (to the minute), if ever.
    #[serde(rename = "lastUsed")]
    pub last_used: Option<String>,
}

/// A newly created token, with the secret that is shown only this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedView {
    /// The public id.
    pub id: String,
    /// The whole secret token.
    pub token: String,
    /// The tenant's name.
    pub tenant: String,
    /// The label, if any.
    pub label: Option<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it expires, if ever.
    pub expires: Option<String>,
}

/// A rotated token: the new one (its secret shown once) and the one it replaces, which keeps
/// working until `replaced_expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    /// The new token.
    #[serde(flatten)]
    pub issued: IssuedView,
    /// The id of the token it replaces.
    pub replaces: String,
    /// When the replaced token stops working (RFC 3339).
    pub replaced_expires: String,
}

/// A vendor API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyView {
    /// The public id.
    pub id: String,
    /// The label, if any.
    pub label: Option<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
}

/// How long a rotated token keeps working beside its replacement, unless asked otherwise: one
/// day, for the customer's admin to paste the new secret into Entra.
pub const DEFAULT_ROTATION_OVERLAP: time::Duration = time::Duration::days(1);

/// A revoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The token as it is now.
    pub token: TokenView,
    /// Whether it had been revoked before.
    pub already: bool,
}

/// RFC 3339 text of an instant, to the second.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

/// Checks a tenant name: 1 to 63 characters of `a-z`, `0-9` and `-`, not starting with `-`.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 63 || !ok_chars || name.starts_with('-') {
        return Err(format!(
            "invalid tenant name \"{name}\": use 1 to 63 characters of a-z, 0-9 and '-', not starting with '-'"
        ));
    }
    Ok(())
}

/// Splits `--require` arguments at commas that are outside `[...]` and quotes, so
/// `emails[type eq "work"].value,userName` is two paths.
pub fn split_paths<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        let (mut depth, mut quoted, mut escaped, mut cur) = (0usize, false, false, String::new());
        for c in arg.as_ref().chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '[' if !quoted => depth += 1,
                ']' if !quoted => depth = depth.saturating_sub(1),
                ',' if !quoted && depth == 0 => {
                    out.push(std::mem::take(&mut cur).trim().to_owned());
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        out.push(cur.trim().to_owned());
    }
    out
}

/// Checks mandatory-attribute paths against the User resource type; returns them trimmed and
/// without duplicates, in the order given.
pub fn check_required(registry: &Registry, paths: &[String]) -> Result<Vec<String>, String> {
    let def = registry.resource("User").ok_or_else(|| "the User resource type is not defined".to_owned())?;
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for p in paths {
        let p = p.trim();
        if p.is_empty() {
            return Err("empty attribute path in --require".to_owned());
        }
        RequiredPaths::parse(&def, &[p]).map_err(|e| format!("invalid required attribute \"{p}\": {}", e.detail))?;
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// Parses a token lifetime: a positive number and a unit, `m` (minutes), `h` (hours),
/// `d` (days), `w` (weeks) or `y` (365 days), e.g. `90d`, `12h`, `30m`, `2w`, `1y`.
pub fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let err = || format!("invalid duration \"{text}\": use a number and a unit m, h, d, w or y, e.g. 90d, 12h, 1y");
    let t = text.trim();
    let unit_at = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(unit_at);
    let n: i64 = num.parse().map_err(|_| err())?;
    let secs_per: i64 = match unit {
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(err()),
    };
    if n == 0 {
        return Err(format!("invalid duration \"{text}\": it must be longer than zero"));
    }
    let secs = n.checked_mul(secs_per).filter(|s| *s <= 100 * 365 * 86_400);
    secs.map(time::Duration::seconds).ok_or_else(|| format!("invalid duration \"{text}\": at most 100 years"))
}

fn check_label(label: &str) -> Result<(), String> {
    if label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err("a token label must be at most 200 characters, without control characters".to_owned());
    }
    if label.starts_with(tokens::OAUTH_LABEL_PREFIX) {
        return Err(format!(
            "labels starting with \"{}\" are kept for OAuth access tokens",
            tokens::OAUTH_LABEL_PREFIX
        ));
    }
    Ok(())
}

pub(crate) async fn tenant_named(store: &dyn Store, name: &str) -> Result<Tenant, OpError> {
    if check_tenant_name(name).is_err() {
        // No tenant can have such a name; the store is not asked (U+0000 cannot even be sent).
        return Err(OpError::NotFound("no tenant with such a name".to_owned()));
    }
    store.tenant(name.to_owned()).await?.ok_or_else(|| OpError::NotFound(format!("no tenant named \"{name}\"")))
}

async fn tenant_view(store: &dyn Store, t: &Tenant, now: OffsetDateTime) -> Result<TenantView, OpError> {
    let toks = store.list_tokens(t.id).await?;
    let active = toks.iter().filter(|k| k.revoked.is_none() && k.expires.is_none_or(|e| now < e)).count();
    Ok(TenantView {
        name: t.name.clone(),
        required: t.required.clone(),
        created: fmt_time(t.created),
        tokens: toks.len(),
        active_tokens: active,
        guard: guard_view(&t.guard),
    })
}

/// Changes a tenant's mass-deprovisioning guard: `enabled` false turns it off (true turns it
/// back on at 20% unless `share` says), `share` in (0, 1], `min_users` at least 1, `window` a
/// duration.
pub async fn set_guard(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    enabled: Option<bool>,
    share: Option<f64>,
    min_users: Option<i64>,
    window: Option<time::Duration>,
) -> Result<TenantView, OpError> {
    check_guard(share, min_users, window)?;
    let t = tenant_named(store, name).await?;
    let share_permille = match (enabled, share) {
        (Some(false), _) => Some(0),
        (_, Some(s)) => Some((s * 1000.0).round().clamp(1.0, 1000.0) as i64),
        (Some(true), None) if t.guard.share_permille == 0 => Some(scim_store::Guard::default().share_permille),
        _ => None,
    };
    let settings = scim_store::GuardSettings { share_permille, min_users, window };
    let t = store
        .set_guard(name.to_owned(), settings)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no tenant named \"{name}\"")))?;
    tenant_view(store, &t, clock.now()).await
}

/// Checks guard settings: `share` in (0, 1], `min_users` at least 1, `window` positive.
pub fn check_guard(share: Option<f64>, min_users: Option<i64>, window: Option<time::Duration>) -> Result<(), OpError> {
    if let Some(s) = share {
        if !(s > 0.0 && s <= 1.0) {
            return Err(OpError::Usage(format!(
                "the guard's share is a fraction above 0 and at most 1 (0.2 = 20%), not {s}"
            )));
        }
    }
    if min_users.is_some_and(|m| m < 1) {
        return Err(OpError::Usage("the guard's minimum is at least 1 user".to_owned()));
    }
    if window.is_some_and(|w| w <= time::Duration::ZERO) {
        return Err(OpError::Usage("the guard's window is a positive duration, e.g. 1h".to_owned()));
    }
    Ok(())
}

/// Releases a tenant's tripped guard: push delivery resumes with the held events, or with
/// `discard`, without the held deactivations and deletions (a webhook replay still sends them).
pub async fn release_guard(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    discard: bool,
) -> Result<TenantView, OpError> {
    tenant_named(store, name).await?;
    let t = store
        .release_guard(name.to_owned(), discard, clock.now())
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no tenant named \"{name}\"")))?;
    tenant_view(store, &t, clock.now()).await
}

fn token_view(k: &Token, tenant: &str) -> TokenView {
    TokenView {
        id: k.id.clone(),
        tenant: tenant.to_owned(),
        label: k.label.clone(),
        created: fmt_time(k.created),
        expires: k.expires.map(fmt_time),
        revoked: k.revoked.map(fmt_time),
        last_used: k.last_used.map(fmt_time),
    }
}

/// Creates a tenant with its mandatory attributes.
pub async fn create_tenant(
    store: &dyn Store,
    clock: &dyn Clock,
    registry: &Registry,
    name: &str,
    require: &[String],
    actor: &Actor,
) -> Result<TenantView, OpError> {
    check_tenant_name(name).map_err(OpError::Usage)?;
    let require = check_required(registry, &split_paths(require)).map_err(OpError::Usage)?;
    let now = clock.now();
    match store.create_tenant(name.to_owned(), require, now, actor.clone()).await {
        Ok(t) => tenant_view(store, &t, now).await,
        Err(StoreError::Conflict(_)) => Err(OpError::Conflict(format!("a tenant named \"{name}\" already exists"))),
        Err(e) => Err(e.into()),
    }
}

/// Every tenant, by name.
pub async fn list_tenants(store: &dyn Store, clock: &dyn Clock) -> Result<Vec<TenantView>, OpError> {
    let now = clock.now();
    let mut out = Vec::new();
    for t in store.list_tenants().await? {
        out.push(tenant_view(store, &t, now).await?);
    }
    Ok(out)
}

/// One tenant.
pub async fn show_tenant(store: &dyn Store, clock: &dyn Clock, name: &str) -> Result<TenantView, OpError> {
    let t = tenant_named(store, name).await?;
    tenant_view(store, &t, clock.now()).await
}

/// Deletes a tenant with its users, groups and tokens; returns its key.
pub async fn delete_tenant(store: &dyn Store, name: &str) -> Result<i64, OpError> {
    let tenant = tenant_named(store, name).await?;
    if store.delete_tenant(name.to_owned()).await? {
        Ok(tenant.id)
    } else {
        Err(OpError::NotFound(format!("no tenant named \"{name}\"")))
    }
}

/// Issues a token for a tenant.
pub async fn create_token(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &str,
    label: Option<&str>,
    expires: Option<time::Duration>,
    actor: &Actor,
) -> Result<IssuedView, OpError> {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    if let Some(l) = label {
        check_label(l).map_err(OpError::Usage)?;
    }
    let t = tenant_named(store, tenant).await?;
    let now = clock.now();
    let expires_at = match expires {
        Some(d) => Some(now.checked_add(d).ok_or_else(|| OpError::Usage("the expiry is too far away".to_owned()))?),
        None => None,
    };
    let issued = tokens::issue(t.id, label.map(str::to_owned), expires_at, now);
    store.create_token(issued.record.clone(), Some(actor.clone())).await?;
    let k = &issued.record;
    Ok(IssuedView {
        id: k.id.clone(),
        token: issued.secret,
        tenant: t.name,
        label: k.label.clone(),
        created: fmt_time(k.created),
        expires: k.expires.map(fmt_time),
    })
}

/// A tenant's tokens, oldest first.
pub async fn list_tokens(store: &dyn Store, tenant: &str) -> Result<Vec<TokenView>, OpError> {
    let t = tenant_named(store, tenant).await?;
    Ok(store.list_tokens(t.id).await?.iter().map(|k| token_view(k, &t.name)).collect())
}

/// The public id of a token given by its id or as the whole token.
pub fn token_id(given: &str) -> Result<&str, OpError> {
    let given = given.trim();
    if given.starts_with(tokens::PREFIX) {
        return tokens::split(given)
            .map(|(id, _)| id)
            .ok_or_else(|| OpError::Usage("this is not a valid scimd token (nor a token id)".to_owned()));
    }
    if given.is_empty() || given.len() > 64 || !given.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(OpError::Usage(format!("\"{given}\" is not a token id: give the id shown by `token list`")));
    }
    Ok(given)
}

/// Revokes a token, given by its id or as the whole token.
pub async fn revoke_token(
    store: &dyn Store,
    clock: &dyn Clock,
    given: &str,
    actor: &Actor,
) -> Result<Revoked, OpError> {
    let id = token_id(given)?;
    let not_found = || OpError::NotFound(format!("no token with id \"{id}\""));
    let before = store.token(id.to_owned()).await?.ok_or_else(not_found)?;
    if !store.revoke_token(id.to_owned(), clock.now(), actor.clone()).await? {
        return Err(not_found());
    }
    let after = store.token(id.to_owned()).await?.ok_or_else(not_found)?;
    let tenant = store.tenant_by_id(after.tenant).await?.map_or_else(|| after.tenant.to_string(), |t| t.name);
    Ok(Revoked { token: token_view(&after, &tenant), already: before.revoked.is_some() })
}

/// Replaces a tenant's mandatory attributes.
pub async fn set_required(
    store: &dyn Store,
    clock: &dyn Clock,
    registry: &Registry,
    name: &str,
    required: &[String],
    actor: &Actor,
) -> Result<TenantView, OpError> {
    let required = check_required(registry, &split_paths(required)).map_err(OpError::Usage)?;
    tenant_named(store, name).await?;
    let t = store
        .set_required(name.to_owned(), required, clock.now(), actor.clone())
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no tenant named \"{name}\"")))?;
    tenant_view(store, &t, clock.now()).await
}

/// Issues a new token in place of another (same tenant, label and lifetime); the old one keeps
/// working for `overlap`, so the customer's admin can switch Entra over without an outage.
pub async fn rotate(
    store: &dyn Store,
    clock: &dyn Clock,
    given: &str,
    overlap: time::Duration,
    actor: &Actor,
) -> Result<Rotated, OpError> {
    let id = token_id(given)?;
    let not_found = || OpError::NotFound(format!("no token with id \"{id}\""));
    let old = store.token(id.to_owned()).await?.ok_or_else(not_found)?;
    let now = clock.now();
    if old.revoked.is_some() || old.expires.is_some_and(|e| e <= now) || tokens::parent_of(&old).is_some() {
        return Err(OpError::Usage(format!(
            "token \"{id}\" no longer works or is an OAuth access token; create a new one"
        )));
    }
    let tenant = store.tenant_by_id(old.tenant).await?.ok_or_else(not_found)?;
    let lifetime = old.expires.map(|e| e - old.created);
    let expires = lifetime.and_then(|l| now.checked_add(l));
    let issued = tokens::issue(old.tenant, old.label.clone(), expires, now);
    let until = now.checked_add(overlap).unwrap_or(now);
    match store.rotate_token(issued.record.clone(), id.to_owned(), until, now, actor.clone()).await {
        Err(StoreError::NotFound) => return Err(not_found()),
        r => r?,
    }
    let replaced = store.token(id.to_owned()).await?.ok_or_else(not_found)?;
    let k = &issued.record;
    Ok(Rotated {
        issued: IssuedView {
            id: k.id.clone(),
            token: issued.secret,
            tenant: tenant.name,
            label: k.label.clone(),
            created: fmt_time(k.created),
            expires: k.expires.map(fmt_time),
        },
        replaces: id.to_owned(),
        replaced_expires: replaced.expires.map(fmt_time).unwrap_or_default(),
    })
}

/// Creates a vendor API key; returns its view and the key, to show once.
pub async fn create_api_key(
    store: &dyn Store,
    clock: &dyn Clock,
    label: Option<&str>,
) -> Result<(ApiKeyView, String), OpError> {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    if let Some(l) = label {
        check_label(l).map_err(OpError::Usage)?;
    }
    let (record, secret) = tokens::issue_api_key(label.map(str::to_owned), clock.now());
    store.create_api_key(record.clone()).await?;
    Ok((api_key_view(&record), secret))
}

fn api_key_view(k: &scim_store::ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id.clone(),
        label: k.label.clone(),
        created: fmt_time(k.created),
        revoked: k.revoked.map(fmt_time),
    }
}

/// Every vendor API key, oldest first.
pub async fn list_api_keys(store: &dyn Store) -> Result<Vec<ApiKeyView>, OpError> {
    Ok(store.list_api_keys().await?.iter().map(api_key_view).collect())
}

/// Revokes a vendor API key, given by its id or as the whole key.
pub async fn revoke_api_key(store: &dyn Store, clock: &dyn Clock, given: &str) -> Result<ApiKeyView, OpError> {
    let given = given.trim();
    let id = match tokens::split_api_key(given) {
        Some((id, _)) => id,
        None if tokens::is_id(given) => given,
        None => {
            return Err(OpError::Usage(format!(
                "\"{given}\" is not an API key id: give the id shown by `api-key list`"
            )));
        }
    };
    if !store.revoke_api_key(id.to_owned(), clock.now()).await? {
        return Err(OpError::NotFound(format!("no API key with id \"{id}\"")));
    }
    let key =
        store.api_key(id.to_owned()).await?.ok_or_else(|| OpError::NotFound(format!("no API key with id \"{id}\"")))?;
    Ok(api_key_view(&key))
}

/// On an empty database (no tenant at all), creates tenant `default` and its first token
/// (label `initial`). `None` when there already was a tenant, or another replica created it
/// at the same moment.
pub async fn bootstrap(store: &dyn Store, clock: &dyn Clock) -> Result<Option<IssuedView>, OpError> {
    if !store.list_tenants().await?.is_empty() {
        return Ok(None);
    }
    let actor = Actor::cli("scimd serve");
    match store.create_tenant("default".to_owned(), Vec::new(), clock.now(), actor.clone()).await {
        Ok(_) => create_token(store, clock, "default", Some("initial"), None, &actor).await.map(Some),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What the admin listener is assembled with besides the application state.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// The names the `Host` header of an API or console request may carry (without port).
    pub hosts: Vec<String>,
    /// The public origin of the SCIM listener (for `meta.location` and setup links).
    pub scim_origin: String,
    /// How long a console sign-in lasts.
    pub console_session: time::Duration,
    /// When the process started (the console's uptime).
    pub started: std::time::Instant,
    /// The database engine, as the console names it (`SQLite`, `PostgreSQL`).
    pub engine: &'static str,
}

/// The database engine a URL names, as the console shows it.
pub fn engine_name(database: &str) -> &'static str {
    if database.starts_with("sqlite://") {
        "SQLite"
    } else if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        "PostgreSQL"
    } else {
        "unknown"
    }
}

/// What the admin listener's handlers (the vendor API's and the console's) share.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: Arc<crate::http::AuthCache>,
    pub(crate) hosts: Arc<Vec<String>>,
    /// The SCIM handlers' machinery, for read access to a tenant's resources.
    pub(crate) scim: crate::http::SharedState,
    /// The public origin of the SCIM listener, for `meta.location` in what it reads and for
    /// setup links.
    pub(crate) scim_origin: Arc<String>,
    pub(crate) prometheus: PrometheusHandle,
    /// The server's stop signal: long polls end when it turns true.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// How long a console sign-in lasts.
    pub(crate) console_session: time::Duration,
    /// When the process started.
    pub(crate) started: std::time::Instant,
    /// The database engine's name.
    pub(crate) engine: &'static str,
}

/// Every route the admin router serves, as (method, path template as axum spells it): the
/// three open ones, then those under `/api/v1`. `docs/openapi.json` describes exactly these
/// (the integration test `openapi` checks it both ways and requests each one on a live
/// listener), so a route added to [`router`] must be added here and to that document.
/// `HEAD` is answered wherever `GET` is (axum does it) and is not listed.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/tenants"),
    ("POST", "/api/v1/tenants"),
    ("GET", "/api/v1/tenants/{tenant}"),
    ("PATCH", "/api/v1/tenants/{tenant}"),
    ("DELETE", "/api/v1/tenants/{tenant}"),
    ("GET", "/api/v1/tenants/{tenant}/tokens"),
    ("POST", "/api/v1/tenants/{tenant}/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/tokens/{id}/rotate"),
    ("GET", "/api/v1/tenants/{tenant}/Users"),
    ("GET", "/api/v1/tenants/{tenant}/Groups"),
    ("GET", "/api/v1/tenants/{tenant}/Users/{id}"),
    ("GET", "/api/v1/tenants/{tenant}/Groups/{id}"),
    ("GET", "/api/v1/tenants/{tenant}/events"),
    ("POST", "/api/v1/tenants/{tenant}/release"),
    ("GET", "/api/v1/tenants/{tenant}/requests"),
    ("GET", "/api/v1/tenants/{tenant}/health"),
    ("GET", "/api/v1/tenants/{tenant}/invites"),
    ("POST", "/api/v1/tenants/{tenant}/invites"),
    ("DELETE", "/api/v1/invites/{id}"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{id}"),
    ("DELETE", "/api/v1/webhooks/{id}"),
    ("POST", "/api/v1/webhooks/{id}/test"),
    ("POST", "/api/v1/webhooks/{id}/replay"),
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"),
    ("POST", "/api/v1/webhooks/{id}/poll"),
];

/// `GET /api/v1/openapi.json`: `docs/openapi.json`, the OpenAPI 3.1 description of
/// [`API_ROUTES`], built into the binary. It needs the API key like the rest of `/api/v1`: it
/// holds no secret, but the listener tells strangers nothing about itself beyond the open
/// `/healthz`, `/readyz` and `/metrics`, and an integrator has a key anyway.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../../docs/openapi.json")).into_response()
}

/// The admin listener's routes (see the module documentation). `hosts` are the names the
/// `Host` header of an API request may carry (without port).
pub fn router(
    app: &crate::http::AppState,
    options: AdminOptions,
    prometheus: PrometheusHandle,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let access = crate::access::Access { listener: "admin", trusted: None };
    let state = AdminState {
        scim: crate::http::vendor_state(app.clone()),
        scim_origin: Arc::new(options.scim_origin),
        store: Arc::clone(&app.store),
        registry: Arc::clone(&app.registry),
        clock: Arc::clone(&app.clock),
        auth: Arc::clone(&app.auth),
        hosts: Arc::new(options.hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect()),
        prometheus,
        stopping,
        console_session: options.console_session,
        started: options.started,
        engine: options.engine,
    };
    let api = Router::new()
        .route("/api/v1/tenants", get(get_tenants).post(post_tenant))
        .route("/api/v1/tenants/{tenant}", get(get_tenant).patch(patch_tenant).delete(delete_tenant_route))
        .route("/api/v1/tenants/{tenant}/tokens", get(get_tokens).post(post_token))
        .route("/api/v1/tokens/{id}", delete(delete_token))
        .route("/api/v1/tokens/{id}/rotate", post(rotate_token))
        .route("/api/v1/tenants/{tenant}/Users", get(list_resources::<false>))
        .route("/api/v1/tenants/{tenant}/Groups", get(list_resources::<true>))
        .route("/api/v1/tenants/{tenant}/Users/{id}", get(get_resource::<false>))
        .route("/api/v1/tenants/{tenant}/Groups/{id}", get(get_resource::<true>))
        .route("/api/v1/tenants/{tenant}/events", get(get_events))
        .route("/api/v1/tenants/{tenant}/release", post(release_tenant))
        .route("/api/v1/tenants/{tenant}/requests", get(get_requests))
        .route("/api/v1/tenants/{tenant}/health", get(get_health))
        .route("/api/v1/tenants/{tenant}/invites", get(get_invites).post(post_invite))
        .route("/api/v1/invites/{id}", delete(delete_invite))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/webhooks", get(get_webhooks).post(post_webhook))
        .route("/api/v1/webhooks/{id}", get(get_webhook).delete(delete_webhook))
        .route("/api/v1/webhooks/{id}/test", post(test_webhook))
        .route("/api/v1/webhooks/{id}/replay", post(replay_webhook))
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate_webhook_secret))
        .route("/api/v1/webhooks/{id}/poll", post(poll_webhook))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(crate::console::router(state.clone()))
        .fallback(|| async { ApiError::NotFound("no such route of the vendor API".to_owned()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not support the request's method".to_owned())
        })
        .layer(axum::middleware::from_fn_with_state(access, crate::access::observe))
        .with_state(state)
        .layer(axum::middleware::map_response(json_error_bodies))
}

/// Gives every error response that is not JSON (or a console page) already the API's error
/// body: axum's own rejections (a body over the limit, a path that is not UTF-8) answer in
/// plain text.
async fn json_error_bodies(resp: Response) -> Response {
    let status = resp.status();
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || crate::ui::is_html(&resp) {
        return resp;
    }
    let (code, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large".to_owned()),
        StatusCode::BAD_REQUEST => {
            ("bad_request", "the request cannot be read (a path or query that is not UTF-8?)".to_owned())
        }
        s if s.is_server_error() => ("internal", "internal error; the details are in the server log".to_owned()),
        s => ("error", s.canonical_reason().unwrap_or("error").to_owned()),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = json!({"error": code, "detail": detail}).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The host names an API request's `Host` may carry by default: loopback, and the admin
/// listener's own address.
pub fn default_hosts(listen: &str) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).to_vec();
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_unspecified() {
            let ip = addr.ip().to_string();
            if !hosts.contains(&ip) {
                hosts.push(ip);
            }
        }
    }
    hosts
}

/// The host of a `Host` header, without port and brackets, lower-cased.
pub(crate) fn host_name(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        v.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(v, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// In front of every `/api/v1` route: the `Host` is one of the configured names, a body is JSON,
/// and the bearer is a valid API key.
async fn require_api_key(
    State(s): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(host_name);
    if !host.is_some_and(|h| s.hosts.contains(&h)) {
        return ApiError::BadHost(format!(
            "the Host header must name this listener ({}); add the name to admin_hosts",
            s.hosts.join(", ")
        ))
        .into_response();
    }
    let has_body = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !crate::http::is_json_media_type(ct) {
            return ApiError::UnsupportedMediaType(format!(
                "send the request body as JSON with Content-Type: application/json, not \"{ct}\""
            ))
            .into_response();
        }
    }
    let presented = crate::http::bearer(req.headers());
    let Some((id, secret)) = presented.and_then(tokens::split_api_key) else {
        return ApiError::Unauthorized(
            "send Authorization: Bearer <API key>; create one with `scimd api-key create`".to_owned(),
        )
        .into_response();
    };
    match s.store.api_key(id.to_owned()).await {
        Ok(Some(key)) if tokens::verify_api_key(&key, secret) => {
            let mut req = req;
            let who = crate::access::Identity { tenant: None, token: Some(key.id.clone()) };
            let actor = Actor {
                token: Some(key.id),
                label: key.label,
                request_id: Some(crate::access::request_id(req.extensions())),
                method: req.method().as_str().to_owned(),
                path: req.uri().path().to_owned(),
            };
            req.extensions_mut().insert(actor);
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(who);
            resp
        }
        Ok(_) => ApiError::Unauthorized("invalid or revoked API key".to_owned()).into_response(),
        Err(e) => ApiError::from(OpError::from(e)).into_response(),
    }
}

/// A JSON answer with `application/json`.
struct Json<T>(T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => ApiError::from(OpError::Store(e.to_string())).into_response(),
        }
    }
}

/// A failed vendor API request: `{"error": "<code>", "detail": "..."}` with its status.
enum ApiError {
    /// A SCIM read failed: its status, and its `scimType` (or the status's name) as the code.
    Scim(scim_core::ScimError),
    BadRequest(String),
    Unauthorized(String),
    NotFound(String),
    MethodNotAllowed(String),
    Conflict(String),
    BadHost(String),
    UnsupportedMediaType(String),
    /// A feed position that cannot be read on from (pruned, or not of this feed).
    Gone {
        detail: String,
        pruned: i64,
        position: i64,
    },
    Internal(String),
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Usage(m) => ApiError::BadRequest(m),
            OpError::NotFound(m) => ApiError::NotFound(m),
            OpError::Conflict(m) => ApiError::Conflict(m),
            OpError::Store(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match self {
            ApiError::Scim(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                let code = e.scim_type.map_or_else(
                    || status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_"),
                    |t| t.as_str().to_owned(),
                );
                (status, code, e.detail)
            }
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad_request".into(), d),
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, "unauthorized".into(), d),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found".into(), d),
            ApiError::MethodNotAllowed(d) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into(), d),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict".into(), d),
            ApiError::BadHost(d) => (StatusCode::MISDIRECTED_REQUEST, "bad_host".into(), d),
            ApiError::UnsupportedMediaType(d) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into(), d)
            }
            ApiError::Gone { detail, pruned, position } => {
                // The vendor API's error, with the SCIM error's fields too (RFC 7644 §3.12).
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "410",
                    "error": "resync_required",
                    "detail": detail,
                    "pruned": pruned,
                    "position": position,
                });
                return (StatusCode::GONE, Json(body)).into_response();
            }
            ApiError::Internal(d) => {
                tracing::error!(error = %d, "vendor API: internal failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal".into(),
                    "internal error; the details are in the server log".to_owned(),
                )
            }
        };
        let mut resp = (status, Json(json!({"error": code, "detail": detail}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer realm=\"scimd-api\""));
        }
        resp
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn metrics(State(s): State<AdminState>) -> Response {
    if let Ok(tenants) = s.store.list_tenants().await {
        metrics::gauge!("scimd_tenants").set(tenants.len() as f64);
        let held = tenants.iter().filter(|t| t.guard.held_from.is_some()).count();
        metrics::gauge!("scimd_tenants_guard_tripped").set(held as f64);
    }
    s.store.report_metrics();
    crate::webhooks::report_backlog(s.store.as_ref(), s.clock.now()).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.prometheus.render()).into_response()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.scim.app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "error": "shutting down"})))
            .into_response();
    }
    match s.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            // The cause goes to the log, not to an unauthenticated caller.
            tracing::error!(error = %e, "readiness check failed: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "the database does not answer"})),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    #[serde(default)]
    name: String,
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    required: Option<Vec<String>>,
    guard: Option<GuardPatch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GuardPatch {
    enabled: Option<bool>,
    share: Option<f64>,
    min_users: Option<i64>,
    window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    #[serde(default)]
    discard: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    #[serde(default)]
    overlap: Option<String>,
}

impl Rotation {
    /// The overlap asked for, or [`DEFAULT_ROTATION_OVERLAP`] (a token's and a webhook
    /// secret's alike).
    fn overlap(&self) -> Result<time::Duration, ApiError> {
        self.overlap
            .as_deref()
            .map_or(Ok(DEFAULT_ROTATION_OVERLAP), |o| parse_duration(o).map_err(ApiError::BadRequest))
    }
}

async fn get_tenants(State(s): State<AdminState>) -> Result<Response, ApiError> {
    Ok(Json(list_tenants(s.store.as_ref(), s.clock.as_ref()).await?).into_response())
}

async fn post_tenant(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewTenant = parse_body(&body)?;
    let view = create_tenant(s.store.as_ref(), s.clock.as_ref(), &s.registry, &req.name, &req.required, &actor).await?;
    tracing::info!(tenant = %view.name, "vendor API: tenant created");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_tenant(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(show_tenant(s.store.as_ref(), s.clock.as_ref(), &name).await?).into_response())
}

async fn patch_tenant(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TenantPatch = parse_body(&body)?;
    // Everything is checked before anything changes.
    let guard = match &req.guard {
        Some(g) => {
            let window = g.window.as_deref().map(parse_duration).transpose().map_err(ApiError::BadRequest)?;
            check_guard(g.share, g.min_users, window)?;
            Some((g.enabled, g.share, g.min_users, window))
        }
        None => None,
    };
    let mut view = match req.required {
        Some(required) => {
            set_required(s.store.as_ref(), s.clock.as_ref(), &s.registry, &name, &required, &actor).await?
        }
        None => show_tenant(s.store.as_ref(), s.clock.as_ref(), &name).await?,
    };
    if let Some((enabled, share, min_users, window)) = guard {
        view = set_guard(s.store.as_ref(), s.clock.as_ref(), &name, enabled, share, min_users, window).await?;
    }
    // The SCIM listener must apply the new policy at once, not after its cache time.
    if let Ok(Some(t)) = s.store.tenant(name).await {
        s.auth.forget_tenant_record(t.id);
    }
    tracing::info!(tenant = %view.name, "vendor API: tenant policy changed");
    Ok(Json(view).into_response())
}

/// `POST /api/v1/tenants/{tenant}/release` `{"discard": false}`: releases a tripped guard.
async fn release_tenant(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: Release = parse_body(&body)?;
    let view = release_guard(s.store.as_ref(), s.clock.as_ref(), &name, req.discard).await?;
    tracing::info!(tenant = %name, discard = req.discard, "vendor API: guard released");
    Ok(Json(view).into_response())
}

async fn delete_tenant_route(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let id = delete_tenant(s.store.as_ref(), &name).await?;
    s.auth.forget_tenant(id);
    tracing::info!(tenant = %name, "vendor API: tenant deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_token(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewToken = parse_body(&body)?;
    let expires = req.expires.as_deref().map(parse_duration).transpose().map_err(ApiError::BadRequest)?;
    let view = create_token(s.store.as_ref(), s.clock.as_ref(), &name, req.label.as_deref(), expires, &actor).await?;
    tracing::info!(tenant = %view.tenant, token = %view.id, "vendor API: token created");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_tokens(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(list_tokens(s.store.as_ref(), &name).await?).into_response())
}

async fn delete_token(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = revoke_token(s.store.as_ref(), s.clock.as_ref(), &id, &actor).await?;
    s.auth.forget_token(&r.token.id);
    tracing::info!(tenant = %r.token.tenant, token = %r.token.id, "vendor API: token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

impl From<crate::http::ApiError> for ApiError {
    fn from(e: crate::http::ApiError) -> Self {
        ApiError::Scim(e.to_scim())
    }
}

/// `GET /api/v1/tenants/{tenant}/Users` (or `Groups`): the SCIM list with `position`.
async fn list_resources<const G: bool>(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    params: crate::http::Params,
) -> Result<Response, ApiError> {
    let tenant = Arc::new(tenant_named(s.store.as_ref(), &name).await?);
    let kind = crate::http::route_kind::<G>();
    let base = format!("{}/scim/v2", s.scim_origin);
    Ok(Json(crate::http::vendor_list(&s.scim, tenant, base, kind, &params).await?).into_response())
}

/// `GET /api/v1/tenants/{tenant}/Users/{id}` (or `Groups`): the resource in SCIM JSON.
async fn get_resource<const G: bool>(
    State(s): State<AdminState>,
    Path((name, id)): Path<(String, String)>,
    params: crate::http::Params,
) -> Result<Response, ApiError> {
    let tenant = Arc::new(tenant_named(s.store.as_ref(), &name).await?);
    let kind = crate::http::route_kind::<G>();
    let base = format!("{}/scim/v2", s.scim_origin);
    Ok(Json(crate::http::vendor_get(&s.scim, tenant, base, kind, &id, &params).await?).into_response())
}

/// The query of `GET /api/v1/tenants/{tenant}/requests`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    status: Option<String>,
    since: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn query_number<T: std::str::FromStr>(name: &str, v: Option<&str>) -> Result<Option<T>, ApiError> {
    v.map(|v| v.trim().parse::<T>().map_err(|_| ApiError::BadRequest(format!("{name} must be a number, not \"{v}\""))))
        .transpose()
}

/// `GET /api/v1/tenants/{tenant}/requests?status=4xx&since=1h&before=ID&limit=N`: the
/// provisioning log, newest first.
async fn get_requests(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q: RequestsQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}; use status, since, before and limit")))?;
    let listing = crate::reqlog::Listing {
        status: q.status,
        since: q.since,
        before: query_number("before", q.before.as_deref())?,
        limit: query_number("limit", q.limit.as_deref())?,
    };
    let now = s.clock.now();
    let requests = crate::reqlog::list(s.store.as_ref(), now, &name, &listing).await?;
    let next = if requests.len() as u64 == listing.limit.unwrap_or(100) { requests.last().map(|r| r.id) } else { None };
    Ok(Json(json!({"requests": requests, "next": next})).into_response())
}

/// `GET /api/v1/tenants/{tenant}/health`: the tenant's directory health.
async fn get_health(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(crate::health::tenant_health(s.store.as_ref(), s.clock.as_ref(), &name).await?).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    #[serde(default)]
    expires: Option<String>,
}

async fn get_invites(State(s): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(crate::setup::list_invites(s.store.as_ref(), s.clock.as_ref(), &name).await?).into_response())
}

/// `POST /api/v1/tenants/{tenant}/invites` `{"expires": "7d"}`: 201 with the link, shown once.
async fn post_invite(State(s): State<AdminState>, Path(name): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let req: NewInvite = parse_body(&body)?;
    let expires = req.expires.as_deref().map(parse_duration).transpose().map_err(ApiError::BadRequest)?;
    let view = crate::setup::create_invite(s.store.as_ref(), s.clock.as_ref(), &name, expires, &s.scim_origin).await?;
    tracing::info!(tenant = %name, invite = %view.id, "vendor API: setup link made");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn delete_invite(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let view = crate::setup::revoke_invite(s.store.as_ref(), s.clock.as_ref(), &id).await?;
    tracing::info!(invite = %view.id, "vendor API: setup link revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewWebhook {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    all_tenants: bool,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    tenant: Option<String>,
}

async fn get_webhooks(State(s): State<AdminState>) -> Result<Response, ApiError> {
    Ok(Json(crate::webhooks::list(s.store.as_ref(), s.clock.as_ref()).await?).into_response())
}

/// `POST /api/v1/webhooks` `{"url", "tenant" | "allTenants": true, "events": [...], "format"}`:
/// 201 with the webhook and its secret, shown once.
async fn post_webhook(State(s): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let req: NewWebhook = parse_body(&body)?;
    if req.all_tenants && req.tenant.is_some() {
        return Err(ApiError::BadRequest("give \"tenant\" or \"allTenants\": true, not both".to_owned()));
    }
    let format = req.format.as_deref().unwrap_or("json");
    let added = crate::webhooks::add(
        s.store.as_ref(),
        s.clock.as_ref(),
        req.url.as_deref(),
        req.tenant.as_deref(),
        &req.events,
        format,
    )
    .await?;
    tracing::info!(webhook = %added.webhook.id, url = %added.webhook.url, "vendor API: webhook added");
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

async fn get_webhook(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(crate::webhooks::show(s.store.as_ref(), s.clock.as_ref(), &id).await?).into_response())
}

async fn delete_webhook(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    crate::webhooks::remove(s.store.as_ref(), &id).await?;
    tracing::info!(webhook = %id, "vendor API: webhook removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn test_webhook(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(crate::webhooks::test(s.store.as_ref(), s.clock.as_ref(), &id).await?).into_response())
}

async fn replay_webhook(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: Replay = parse_body(&body)?;
    let from = req.from.ok_or_else(|| ApiError::BadRequest("\"from\" (a feed position) is required".to_owned()))?;
    let view = crate::webhooks::replay(s.store.as_ref(), s.clock.as_ref(), &id, from, req.tenant.as_deref()).await?;
    Ok(Json(view).into_response())
}

/// `POST /api/v1/webhooks/{id}/poll`: RFC 8936 poll of a `set` webhook.
async fn poll_webhook(State(s): State<AdminState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let req: crate::webhooks::PollRequest = parse_body(&body)?;
    let resp =
        crate::webhooks::poll(s.store.as_ref(), s.clock.as_ref(), &id, &req, &s.scim_origin, Some(&s.stopping)).await?;
    Ok(Json(resp).into_response())
}

async fn rotate_webhook_secret(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: Rotation = parse_body(&body)?;
    let overlap = req.overlap()?;
    let rotated = crate::webhooks::rotate_secret(s.store.as_ref(), s.clock.as_ref(), &id, overlap).await?;
    Ok((StatusCode::CREATED, Json(rotated)).into_response())
}

/// The query of `GET /api/v1/tenants/{tenant}/events`.
#[derive(Debug, Default, Deserialize)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

/// `GET /api/v1/tenants/{tenant}/events?after=N&limit=M&wait=S`: the change feed.
async fn get_events(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q: FeedQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!("after must be a feed position (an integer, 0 or more), not \"{a}\""))
        })?,
    };
    let limit = match q.limit.as_deref() {
        None => crate::feed::DEFAULT_LIMIT,
        Some(l) => {
            l.trim().parse::<u64>().ok().filter(|n| (1..=crate::feed::MAX_LIMIT).contains(n)).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be an integer from 1 to {}, not \"{l}\"",
                    crate::feed::MAX_LIMIT
                ))
            })?
        }
    };
    let wait = match q.wait.as_deref() {
        None => std::time::Duration::ZERO,
        Some(w) => crate::feed::parse_wait(w).map_err(ApiError::BadRequest)?,
    };
    let tenant = tenant_named(s.store.as_ref(), &name).await?;
    match crate::feed::read(s.store.as_ref(), &tenant, after, limit, wait, None, Some(&s.stopping)).await {
        Ok(page) => Ok(([(header::CONTENT_TYPE, "application/json")], page.to_json(&tenant.name)).into_response()),
        Err(e @ (FeedError::Pruned { pruned, position, .. } | FeedError::Ahead { pruned, position, .. })) => {
            Err(ApiError::Gone { detail: e.detail(), pruned, position })
        }
        Err(FeedError::NoTenant) => Err(ApiError::NotFound(format!("no tenant named \"{name}\""))),
        Err(FeedError::Store(e)) => Err(OpError::from(e).into()),
    }
}

async fn rotate_token(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: Rotation = parse_body(&body)?;
    let overlap = req.overlap()?;
    let rotated = rotate(s.store.as_ref(), s.clock.as_ref(), &id, overlap, &actor).await?;
    s.auth.forget_token(&rotated.replaces);
    tracing::info!(tenant = %rotated.issued.tenant, old = %rotated.replaces, new = %rotated.issued.id, "vendor API: token rotated");
    Ok((StatusCode::CREATED, Json(rotated)).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["a", "contoso", "acme-2", "0", &"a".repeat(63)] {
            assert!(check_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "Acme", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(check_tenant_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), time::Duration::days(90));
        assert_eq!(parse_duration("12h").unwrap(), time::Duration::hours(12));
        assert_eq!(parse_duration("30m").unwrap(), time::Duration::minutes(30));
        assert_eq!(parse_duration("2w").unwrap(), time::Duration::weeks(2));
        assert_eq!(parse_duration("1y").unwrap(), time::Duration::days(365));
        for bad in ["", "d", "90", "0d", "-1d", "1.5d", "3 days", "1s", "99999999999999999999d", "101y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_paths_split_outside_brackets_and_are_checked() {
        let paths = split_paths(&["userName,emails[type eq \"work\"].value", " name.familyName "]);
        assert_eq!(paths, ["userName", "emails[type eq \"work\"].value", "name.familyName"]);
        assert_eq!(split_paths(&["emails[type eq \"a,b\"].value"]), ["emails[type eq \"a,b\"].value"]);
        let reg = Registry::standard();
        let reference = [
            "userName",
            "name.familyName",
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "emails[type eq \"work\"].value",
            "preferredLanguage",
            "active",
            "userName",
        ]
        .map(String::from);
        assert_eq!(check_required(&reg, &reference).unwrap().len(), 7, "duplicates are dropped");
        for bad in ["nosuch", "name.nosuch", "emails[type eq].value", ""] {
            assert!(check_required(&reg, &[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_ids_are_taken_from_whole_tokens() {
        let now = OffsetDateTime::now_utc();
        let issued = tokens::issue(1, None, None, now);
        assert_eq!(token_id(&issued.secret).unwrap(), issued.record.id);
        assert_eq!(token_id("abc123").unwrap(), "abc123");
        assert!(matches!(token_id("scimd_nope"), Err(OpError::Usage(_))));
        assert!(matches!(token_id("a/b"), Err(OpError::Usage(_))));
    }
}
