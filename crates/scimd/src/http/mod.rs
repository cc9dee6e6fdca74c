//! The SCIM HTTP API (RFC 7644) on the SCIM listener.
//!
//! One request reads top to bottom:
//!
//! ```text
//! HTTP (axum route; observe: metrics + log; catch_panic; body limit)
//!  -> auth        auth::require: Bearer token -> tokens::split -> store.token (cached)
//!                 -> tokens::verify -> tenant (cached); per-tenant in-flight limit (429)
//!  -> parse       params::Params (query string) / params::ListParams (query or SearchRequest),
//!                 body::JsonBody (Content-Type 415, size 413, JSON 400 invalidSyntax)
//!  -> core        resource::ingest, patch::apply, policy::RequiredPaths, Filter::parse + eval::check
//!  -> extractors  params::IfMatchHeader, View (resource type + projection), JsonBody
//!  -> ops         ops::*: the core, then one owned store request, scoped by the tenant
//!  -> projection  render::resource (id, meta, members/groups) + Projection::apply
//!  -> response    application/scim+json; every failure is an [`ApiError`], mapped in one place
//! ```
//!
//! The shared state lives in `state` (below the handlers); `ops` holds the resource operations (list, get, create, replace, patch, delete); the
//! handlers here and the `/Bulk` endpoint (`bulk`) both call them, so a bulk operation
//! behaves exactly like the single request it stands for.
//!
//! Routes: `GET /healthz`, `GET /readyz` (no auth) and, under `/scim/v2` (bearer token
//! required, including discovery): `/Users`, `/Groups` (and `/{id}`, `/.search`), `/.search`,
//! `/Bulk`, `/ServiceProviderConfig`, `/ResourceTypes[/{id}]`, `/Schemas[/{id}]`. Unknown
//! routes are a SCIM 404, a wrong method a SCIM 405.
//!
//! The SCIM listener's connections go through [`LenientIo`] (`scimd::server` does this), so
//! that request lines with raw quotes or spaces in the filter reach the router instead of
//! being refused by the HTTP parser.

mod auth;
mod body;
mod bulk;
mod cursor;
mod discovery;
mod error;
mod hints;
mod lenient;
mod limit;
mod oauth;
mod ops;
mod params;
mod render;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scim_core::project::Projection;
use scim_core::{Kind, Registry, ResourceDef, ScimError};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::PeerAddr;
pub(crate) use auth::{bearer, forwarded_from_trusted};
pub(crate) use body::is_json_media_type;
pub use error::ApiError;
pub(crate) use hints::{conflict_value, entra_source, okta_source};
pub use lenient::LenientIo;
pub use state::{AppState, AuthCache, HttpSettings};

use auth::Ctx;
use body::JsonBody;
pub(crate) use params::Params;
use params::{IfMatchHeader, IfNoneMatch, ListParams};
use render::scim_json;
use state::Shared;
pub(crate) use state::SharedState;

/// The SCIM API: `/healthz`, `/readyz` and everything under `/scim/v2`.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let access =
        crate::access::Access { listener: "scim", trusted: Some(state.settings.trusted_proxies.clone().into()) };
    let shared: SharedState = Arc::new(Shared::new(state));
    let scim = Router::new()
        .route("/scim/v2/Users", get(list::<USERS>).post(create::<USERS>))
        .route("/scim/v2/Users/.search", post(search::<USERS>))
        .route(
            "/scim/v2/Users/{id}",
            get(get_one::<USERS>).put(replace::<USERS>).patch(patch::<USERS>).delete(delete::<USERS>),
        )
        .route("/scim/v2/Groups", get(list::<GROUPS>).post(create::<GROUPS>))
        .route("/scim/v2/Groups/.search", post(search::<GROUPS>))
        .route(
            "/scim/v2/Groups/{id}",
            get(get_one::<GROUPS>).put(replace::<GROUPS>).patch(patch::<GROUPS>).delete(delete::<GROUPS>),
        )
        .route("/scim/v2/.search", post(search_root))
        .route("/scim/v2/Bulk", post(bulk::handle))
        .route("/scim/v2/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/scim/v2/Schemas", get(discovery::schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shared), auth::require));
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/oauth/token", post(oauth::token))
        .route("/scim/v2/oauth/token", post(oauth::token))
        .merge(scim)
        .merge(crate::setup::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(access, crate::access::observe))
        .with_state(shared);
    // Around the routing, not inside each route: a route's 405 gets its `Allow` header only
    // once it leaves the route.
    Router::new().fallback_service(routes).layer(middleware::map_response(scim_error_bodies))
}

// ----- cross-cutting layers -----

/// Counts and times a request of the SCIM listener (called by the access layer,
/// [`crate::access::observe`]). Every label comes from a fixed set (the method of RFC 9110 or
/// `other`, the route template or `unmatched`, the status class, the operation; the tenant is
/// one the operator created), so no client can grow the metrics: distinct 16 KB method names
/// once added a series each.
pub(crate) fn record_metrics(method: &'static str, route: &str, status: u16, tenant: Option<&str>, elapsed: Duration) {
    crate::rates::record(status);
    let class = status_class(status);
    metrics::counter!(
        "scimd_http_requests_total",
        "method" => method,
        "route" => route.to_owned(),
        "status" => class
    )
    .increment(1);
    metrics::histogram!("scimd_http_request_duration_seconds", "method" => method, "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
    if let (Some(tenant), Some((resource, operation))) = (tenant, operation(method, route)) {
        metrics::counter!(
            "scimd_scim_requests_total",
            "tenant" => tenant.to_owned(),
            "resource" => resource,
            "operation" => operation,
            "status" => class
        )
        .increment(1);
    }
}

/// The resource type and SCIM operation of a route template and method, for the per-tenant
/// metrics: `("Users", "patch")`, `("-", "bulk")`, ...; `None` outside `/scim/v2`.
fn operation(method: &str, route: &str) -> Option<(&'static str, &'static str)> {
    let rest = route.strip_prefix("/scim/v2/")?;
    let (head, tail) = rest.split_once('/').map_or((rest, ""), |(h, t)| (h, t));
    let resource = match head {
        "Users" => "Users",
        "Groups" => "Groups",
        ".search" => return Some(("-", "search")),
        "Bulk" => return Some(("-", "bulk")),
        "ServiceProviderConfig" | "ResourceTypes" | "Schemas" => return Some(("-", "discovery")),
        _ => return None,
    };
    let op = match (tail, method) {
        ("", "GET") => "list",
        ("", "POST") => "create",
        (".search", _) => "search",
        ("{id}", "GET") => "get",
        ("{id}", "PUT") => "replace",
        ("{id}", "PATCH") => "patch",
        ("{id}", "DELETE") => "delete",
        _ => "other",
    };
    Some((resource, op))
}

/// The metrics label of a method: one of the RFC 9110 methods, else `other`.
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `2xx`, `4xx`, ...
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Gives every error response that is not already one a SCIM error body (axum's own 405,
/// body-limit and extractor rejections).
async fn scim_error_bodies(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || crate::ui::is_html(&resp) {
        return resp;
    }
    let is_scim =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/scim+json"));
    if is_scim || resp.extensions().get::<oauth::OAuthBody>().is_some() {
        return resp;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = resp.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default();
            format!("this endpoint does not support the request's method; allowed: {allow}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        StatusCode::NOT_FOUND => "no such endpoint".to_owned(),
        s if s.is_server_error() => "internal error; the details are in the server log".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_owned(),
    };
    // Keep the headers (Allow, Retry-After) and extensions (the tenant, for the log).
    let (mut parts, _) = resp.into_parts();
    let body = serde_json::to_vec(&ScimError::status(status.as_u16(), detail).to_json()).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(render::SCIM_MEDIA_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// A panic in a handler becomes a SCIM 500 (the panic itself is logged, not shown).
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<axum::body::Body> {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %what, "request handler panicked");
    ApiError::Internal("handler panicked".into()).into_response()
}

// ----- the vendor API's read access (admin listener) -----

/// What the vendor API reads a tenant's resources with: the SCIM handlers' state, its own.
pub(crate) fn vendor_state(app: AppState) -> SharedState {
    Arc::new(Shared::new(app))
}

/// A tenant's users or groups as `GET /scim/v2/Users` (or `/Groups`) answers them, same query
/// parameters, plus `position`: the change-feed position the list reflects.
pub(crate) async fn vendor_list(
    sh: &SharedState,
    tenant: Arc<scim_store::Tenant>,
    base: String,
    kind: Kind,
    params: &Params,
) -> Result<serde_json::Value, ApiError> {
    let lp = ListParams::from_query(params, sh.settings())?;
    let (mut body, position) =
        ops::list(sh, &auth::Ctx { tenant, base, actor: scim_store::Actor::default() }, &[kind], &lp, true).await?;
    if let Some(m) = body.as_object_mut() {
        m.insert("position".into(), json!(position.unwrap_or(0)));
    }
    Ok(body)
}

/// One resource as `GET /scim/v2/Users/{id}` answers it (same projection parameters).
pub(crate) async fn vendor_get(
    sh: &SharedState,
    tenant: Arc<scim_store::Tenant>,
    base: String,
    kind: Kind,
    id: &str,
    params: &Params,
) -> Result<serde_json::Value, ApiError> {
    let def = sh.def(kind)?;
    let proj = params.projection(&def)?;
    let ctx = auth::Ctx { tenant, base, actor: scim_store::Actor::default() };
    let rec = ops::get(sh, &ctx, kind, id, ops::load_for(&def, &proj)).await?;
    Ok(proj.apply(&def, &render::resource(&ctx.base, &rec)))
}

/// The public origin of a request to the SCIM listener (see `auth::origin`).
pub(crate) fn public_origin(sh: &SharedState, headers: &axum::http::HeaderMap, peer: Option<PeerAddr>) -> String {
    let forwarded = auth::forwarded_from_trusted(peer, &sh.settings().trusted_proxies);
    auth::origin(sh.settings().public_url.as_deref(), headers, forwarded)
}

// ----- unauthenticated -----

async fn healthz() -> Response {
    scim_json(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(State(sh): State<SharedState>) -> Response {
    if sh.app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return ApiError::Unavailable("shutting down: send new requests to another replica".into()).into_response();
    }
    match sh.store().ping().await {
        Ok(()) => scim_json(StatusCode::OK, &json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed: the database does not answer");
            ApiError::Unavailable("the database does not answer".into()).into_response()
        }
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::Scim(ScimError::not_found(format!(
        "no endpoint {}; the SCIM endpoints are under /scim/v2 (/Users, /Groups, /Schemas, ...)",
        uri.path()
    )))
}

// ----- resource handlers -----
//
// Each is generic over the route's resource type: `/Users` routes use `::<USERS>`, `/Groups`
// routes `::<GROUPS>`.

const USERS: bool = false;
const GROUPS: bool = true;

/// The resource type of a route and the projection its query asks for (`attributes`,
/// `excludedAttributes`): an extractor, so a handler starts with what it serves.
struct View<const G: bool> {
    registry: Arc<Registry>,
    params: Params,
}

/// The resource type of a route generic over `G` (`USERS` or `GROUPS`).
pub(crate) const fn route_kind<const G: bool>() -> Kind {
    if G { Kind::Group } else { Kind::User }
}

impl<const G: bool> View<G> {
    const KIND: Kind = route_kind::<G>();

    fn def(&self) -> Result<ResourceDef<'_>, ApiError> {
        self.registry.resource(Self::KIND.name()).ok_or(ApiError::Unregistered(Self::KIND))
    }
}

impl<const G: bool> FromRequestParts<SharedState> for View<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, sh: &SharedState) -> Result<Self, ApiError> {
        let params = Params::from_request_parts(parts, sh).await?;
        Ok(View { registry: Arc::clone(&sh.app.registry), params })
    }
}

/// A resource as the client asked to see it, with its `ETag` (and `Location` for a create).
fn resource_response(
    status: StatusCode,
    ctx: &Ctx,
    def: &ResourceDef<'_>,
    proj: &Projection<'_>,
    rec: &scim_store::Record,
) -> Response {
    let full = render::resource(&ctx.base, rec);
    let mut resp = scim_json(status, &proj.apply(def, &full));
    set_etag(&mut resp, rec.version);
    resp.extensions_mut().insert(auth::ResourceId(rec.id.clone()));
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&render::location(&ctx.base, rec.kind, &rec.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

fn set_etag(resp: &mut Response, version: i64) {
    if let Ok(v) = HeaderValue::from_str(&render::etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
}

async fn list<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    view: View<G>,
) -> Result<Response, ApiError> {
    let lp = ListParams::from_query(&view.params, sh.settings())?;
    let (body, _) = ops::list(&sh, &ctx, &[View::<G>::KIND], &lp, false).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let lp = ListParams::from_search(&body.0, sh.settings())?;
    let (body, _) = ops::list(&sh, &ctx, &[route_kind::<G>()], &lp, false).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search_root(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let lp = ListParams::from_search(&body.0, sh.settings())?;
    let (body, _) = ops::list(&sh, &ctx, &[Kind::User, Kind::Group], &lp, false).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn get_one<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    view: View<G>,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response, ApiError> {
    let def = view.def()?;
    let proj = view.params.projection(&def)?;
    let rec = ops::get(&sh, &ctx, View::<G>::KIND, &id, ops::load_for(&def, &proj)).await?;
    if if_none_match.is_some_and(|inm| params::etag_matches(&inm, rec.version)) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        set_etag(&mut resp, rec.version);
        return Ok(resp);
    }
    Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec))
}

async fn create<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    view: View<G>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let def = view.def()?;
    let proj = view.params.projection(&def)?;
    let rec = ops::create(&sh, &ctx, View::<G>::KIND, body.0).await?;
    Ok(resource_response(StatusCode::CREATED, &ctx, &def, &proj, &rec))
}

async fn replace<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    view: View<G>,
    IfMatchHeader(if_match): IfMatchHeader,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let def = view.def()?;
    let proj = view.params.projection(&def)?;
    let load = ops::load_for(&def, &proj);
    let rec = ops::replace(&sh, &ctx, View::<G>::KIND, &id, body.0, if_match.as_ref(), load).await?;
    Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec))
}

async fn patch<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    view: View<G>,
    IfMatchHeader(if_match): IfMatchHeader,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let def = view.def()?;
    let proj = view.params.projection(&def)?;
    // A group PATCH answers 204 (what Entra expects) unless the client asked to see attributes.
    let with_body = !G || view.params.has_projection();
    let load = if with_body { ops::load_for(&def, &proj) } else { scim_store::Load::default() };
    let rec = ops::patch(&sh, &ctx, View::<G>::KIND, &id, &body.0, if_match.as_ref(), load).await?;
    if with_body {
        return Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec));
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set_etag(&mut resp, rec.version);
    Ok(resp)
}

async fn delete<const G: bool>(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    IfMatchHeader(if_match): IfMatchHeader,
) -> Result<Response, ApiError> {
    ops::delete(&sh, &ctx, route_kind::<G>(), &id, if_match.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
