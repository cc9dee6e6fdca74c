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
//!  -> store       ops::*: every store call on a blocking thread, scoped by the tenant
//!  -> projection  render::resource (id, meta, members/groups) + Projection::apply
//!  -> response    application/scim+json; every failure is an [`ApiError`], mapped in one place
//! ```
//!
//! `ops` holds the resource operations (list, get, create, replace, patch, delete); the
//! handlers here and the `/Bulk` endpoint (`bulk`) both call them, so a bulk operation
//! behaves exactly like the single request it stands for.
//!
//! Routes: `GET /healthz`, `GET /readyz` (no auth) and, under `/scim/v2` (bearer token
//! required, including discovery): `/Users`, `/Groups` (and `/{id}`, `/.search`), `/.search`,
//! `/Bulk`, `/ServiceProviderConfig`, `/ResourceTypes[/{id}]`, `/Schemas[/{id}]`. Unknown
//! routes are a SCIM 404, a wrong method a SCIM 405.
//!
//! Serve the router through [`LenientListener`] (`axum::serve(LenientListener(tcp), router(state))`)
//! so that request lines with raw quotes or spaces in the filter reach the router instead of
//! being refused by the HTTP parser.

mod auth;
mod body;
mod bulk;
mod discovery;
mod error;
mod hints;
mod lenient;
mod limit;
mod oauth;
mod ops;
mod params;
mod render;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scim_core::project::Projection;
use scim_core::{Registry, ScimError};
use scim_store::{Kind, Store};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;
pub use lenient::{LenientIo, LenientListener};
use limit::InFlight;

use auth::{Ctx, TenantName};
use body::JsonBody;
use params::{ListParams, Params};

/// What the SCIM API needs: the store, the schemas and the settings.
#[derive(Clone)]
pub struct AppState {
    /// Where tenants, tokens and resources live.
    pub store: Arc<dyn Store>,
    /// The schemas and resource types served.
    pub registry: Arc<Registry>,
    /// Limits and knobs of the HTTP API.
    pub settings: Arc<HttpSettings>,
}

/// Limits and knobs of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The public origin, e.g. `https://scim.example.com` (a trailing `/scim/v2` is tolerated);
    /// when unset, it is derived from `X-Forwarded-Proto`/`X-Forwarded-Host` or `Host`.
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes (also `/Bulk`'s `maxPayloadSize`).
    pub max_body_bytes: usize,
    /// `count` when a list request gives none.
    pub default_page_size: u64,
    /// The largest `count` honoured (`filter.maxResults`).
    pub max_page_size: u64,
    /// Concurrent requests one tenant may have in flight before getting 429 (0: no limit).
    pub max_in_flight_per_tenant: usize,
    /// How long a token or tenant looked up in the store is trusted (revocation delay).
    pub token_cache_ttl: Duration,
    /// PATCH limits (operations, members, path length).
    pub patch: scim_core::patch::PatchLimits,
    /// Filter limits (length, depth).
    pub filter: scim_core::FilterLimits,
    /// The most operations in one `/Bulk` request.
    pub max_bulk_operations: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            public_url: None,
            max_body_bytes: 2 * 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
            max_in_flight_per_tenant: 64,
            token_cache_ttl: Duration::from_secs(2),
            patch: scim_core::patch::PatchLimits::default(),
            filter: scim_core::FilterLimits::default(),
            max_bulk_operations: 1000,
        }
    }
}

/// The router's state: the application state plus the auth caches and the limiter.
pub(crate) struct Shared {
    app: AppState,
    auth: auth::AuthCache,
    limiter: InFlight,
}

type Sh = Arc<Shared>;

impl Shared {
    fn settings(&self) -> &HttpSettings {
        &self.app.settings
    }

    /// The resource type of `kind`.
    fn def(&self, kind: Kind) -> Result<scim_core::ResourceDef<'_>, ApiError> {
        self.app
            .registry
            .resource(kind.name())
            .ok_or_else(|| ApiError::Internal(format!("resource type {} is not registered", kind.name())))
    }

    /// Runs a point read (one row by key): on this thread when the store says such reads take
    /// microseconds (SQLite), else on a blocking thread.
    async fn run_point<T, F>(&self, f: F) -> scim_store::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> scim_store::Result<T> + Send + 'static,
    {
        if self.app.store.point_reads_are_fast() {
            return f(self.app.store.as_ref());
        }
        self.run(f).await
    }

    /// Runs a store call on a blocking thread.
    async fn run<T, F>(&self, f: F) -> scim_store::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> scim_store::Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.app.store);
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(r) => r,
            Err(e) => Err(scim_store::StoreError::Backend(format!("store task failed: {e}"))),
        }
    }
}

/// The SCIM API: `/healthz`, `/readyz` and everything under `/scim/v2`.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let shared = Arc::new(Shared {
        auth: auth::AuthCache::new(state.settings.token_cache_ttl),
        limiter: InFlight::new(state.settings.max_in_flight_per_tenant),
        app: state,
    });
    let scim = Router::new()
        .route("/scim/v2/Users", get(list_h::<USERS>).post(create_h::<USERS>))
        .route("/scim/v2/Users/.search", post(search_h::<USERS>))
        .route(
            "/scim/v2/Users/{id}",
            get(get_h::<USERS>).put(replace_h::<USERS>).patch(patch_h::<USERS>).delete(delete_h::<USERS>),
        )
        .route("/scim/v2/Groups", get(list_h::<GROUPS>).post(create_h::<GROUPS>))
        .route("/scim/v2/Groups/.search", post(search_h::<GROUPS>))
        .route(
            "/scim/v2/Groups/{id}",
            get(get_h::<GROUPS>).put(replace_h::<GROUPS>).patch(patch_h::<GROUPS>).delete(delete_h::<GROUPS>),
        )
        .route("/scim/v2/.search", post(search_root))
        .route("/scim/v2/Bulk", post(bulk::handle))
        .route("/scim/v2/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/scim/v2/Schemas", get(discovery::schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shared), auth::require));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/oauth/token", post(oauth::token))
        .route("/scim/v2/oauth/token", post(oauth::token))
        .merge(scim)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::map_response(scim_error_bodies))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(observe))
        .with_state(shared)
}

/// A JSON response with the SCIM media type.
pub(crate) fn scim_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(render::SCIM_MEDIA_TYPE));
    resp
}

// ----- cross-cutting layers -----

/// Counts and times every request, and logs it at debug.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let tenant = resp.extensions().get::<TenantName>().map_or("-", |t| t.0.as_str());
    metrics::counter!(
        "scimd_http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("scimd_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::debug!(%method, route = %route, status, tenant, duration_ms = elapsed.as_secs_f64() * 1e3, "request");
    resp
}

/// Gives every error response that is not already one a SCIM error body (axum's own 405,
/// body-limit and extractor rejections).
async fn scim_error_bodies(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
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

// ----- unauthenticated -----

async fn healthz() -> Response {
    scim_json(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(State(sh): State<Sh>) -> Response {
    match sh.run(|s| s.ping()).await {
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

// ----- resource handlers: thin wrappers that pick the resource type -----
//
// Each is generic over the route's resource type: `/Users` routes use `::<USERS>`, `/Groups`
// routes `::<GROUPS>`.

const USERS: bool = false;
const GROUPS: bool = true;

fn kind<const G: bool>() -> Kind {
    if G { Kind::Group } else { Kind::User }
}

async fn list_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    p: Params,
) -> Result<Response, ApiError> {
    list(sh, ctx, kind::<G>(), p).await
}
async fn search_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    b: JsonBody,
) -> Result<Response, ApiError> {
    search(sh, ctx, kind::<G>(), b).await
}
async fn get_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    p: Params,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    get_one(sh, ctx, kind::<G>(), id, p, h).await
}
async fn create_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    p: Params,
    b: JsonBody,
) -> Result<Response, ApiError> {
    create(sh, ctx, kind::<G>(), p, b).await
}
async fn replace_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    p: Params,
    h: HeaderMap,
    b: JsonBody,
) -> Result<Response, ApiError> {
    replace(sh, ctx, kind::<G>(), id, p, h, b).await
}
async fn patch_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    p: Params,
    h: HeaderMap,
    b: JsonBody,
) -> Result<Response, ApiError> {
    patch(sh, ctx, kind::<G>(), id, p, h, b).await
}
async fn delete_h<const G: bool>(
    State(sh): State<Sh>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Response, ApiError> {
    delete(sh, ctx, kind::<G>(), id, h).await
}

// ----- resource handlers: the HTTP side of each operation -----

async fn list(sh: Sh, ctx: Ctx, kind: Kind, p: Params) -> Result<Response, ApiError> {
    let lp = ListParams::from_query(&p, sh.settings())?;
    let body = ops::list(&sh, &ctx, &[kind], &lp).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search(sh: Sh, ctx: Ctx, kind: Kind, b: JsonBody) -> Result<Response, ApiError> {
    let lp = ListParams::from_search(&b.0, sh.settings())?;
    let body = ops::list(&sh, &ctx, &[kind], &lp).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search_root(State(sh): State<Sh>, Extension(ctx): Extension<Ctx>, b: JsonBody) -> Result<Response, ApiError> {
    let lp = ListParams::from_search(&b.0, sh.settings())?;
    let body = ops::list(&sh, &ctx, &[Kind::User, Kind::Group], &lp).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

/// A rendered resource with its `ETag` (and `Location` for a create).
fn resource_response(
    status: StatusCode,
    ctx: &Ctx,
    def: &scim_core::ResourceDef<'_>,
    proj: &Projection<'_>,
    rec: &scim_store::Record,
) -> Response {
    let full = render::resource(&ctx.base, rec);
    let mut resp = scim_json(status, &proj.apply(def, &full));
    if let Ok(v) = HeaderValue::from_str(&render::etag(rec.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&render::location(&ctx.base, rec.kind, &rec.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

async fn get_one(sh: Sh, ctx: Ctx, kind: Kind, id: String, p: Params, h: HeaderMap) -> Result<Response, ApiError> {
    let def = sh.def(kind)?;
    let proj = p.projection(&def)?;
    let rec = ops::get(&sh, &ctx, kind, &id, ops::load_for(&def, &proj)).await?;
    if let Some(inm) = h.get(header::IF_NONE_MATCH) {
        if params::etag_matches(inm, rec.version) {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(&render::etag(rec.version)) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            return Ok(resp);
        }
    }
    Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec))
}

async fn create(sh: Sh, ctx: Ctx, kind: Kind, p: Params, b: JsonBody) -> Result<Response, ApiError> {
    let def = sh.def(kind)?;
    let proj = p.projection(&def)?;
    let rec = ops::create(&sh, &ctx, kind, b.0, ops::load_for(&def, &proj)).await?;
    Ok(resource_response(StatusCode::CREATED, &ctx, &def, &proj, &rec))
}

async fn replace(
    sh: Sh,
    ctx: Ctx,
    kind: Kind,
    id: String,
    p: Params,
    h: HeaderMap,
    b: JsonBody,
) -> Result<Response, ApiError> {
    let def = sh.def(kind)?;
    let proj = p.projection(&def)?;
    let if_match = params::IfMatch::from_headers(&h)?;
    let rec = ops::replace(&sh, &ctx, kind, &id, b.0, if_match.as_ref(), ops::load_for(&def, &proj)).await?;
    Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec))
}

async fn patch(
    sh: Sh,
    ctx: Ctx,
    kind: Kind,
    id: String,
    p: Params,
    h: HeaderMap,
    b: JsonBody,
) -> Result<Response, ApiError> {
    let def = sh.def(kind)?;
    let proj = p.projection(&def)?;
    let if_match = params::IfMatch::from_headers(&h)?;
    // A group PATCH answers 204 (what Entra expects) unless the client asked to see attributes.
    let with_body = kind == Kind::User || p.has_projection();
    let load = if with_body { ops::load_for(&def, &proj) } else { scim_store::Load::default() };
    let rec = ops::patch(&sh, &ctx, kind, &id, &b.0, if_match.as_ref(), load).await?;
    if with_body {
        return Ok(resource_response(StatusCode::OK, &ctx, &def, &proj, &rec));
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&render::etag(rec.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn delete(sh: Sh, ctx: Ctx, kind: Kind, id: String, h: HeaderMap) -> Result<Response, ApiError> {
    let if_match = params::IfMatch::from_headers(&h)?;
    ops::delete(&sh, &ctx, kind, &id, if_match.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
