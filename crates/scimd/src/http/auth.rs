//! Authentication: bearer token -> tenant, with short-lived caches, and the request context.
//!
//! A token is looked up by its public id (`tokens::split`), its secret checked against the
//! stored digest (`tokens::verify`, which also checks expiry and revocation), and its tenant
//! loaded. Tokens and tenants are cached for `token_cache_ttl`, so a revocation takes effect
//! within that time on every replica. Every failure is 401 with `WWW-Authenticate`; nothing
//! tells a caller whether a token id exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scim_store::{Actor, Tenant, Token};

use super::ApiError;
use super::state::SharedState;
use crate::access::Identity;
use crate::tokens;

/// What a handler knows about an authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The tenant the token belongs to.
    pub tenant: Arc<Tenant>,
    /// The absolute SCIM base URL, e.g. `https://scim.example.com/scim/v2`.
    pub base: String,
    /// Who makes the request, for the events of its writes.
    pub actor: Actor,
}

/// How often a token's `last used` time is written, at most (per token and process).
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

const MAX_CACHED: usize = 10_000;

/// A small TTL cache (entries include negative answers, so bad tokens do not hammer the store).
#[derive(Debug)]
struct TtlMap<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlMap { ttl, map: Mutex::new(HashMap::new()) }
    }

    fn get(&self, k: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, v: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= MAX_CACHED {
                map.clear();
            }
        }
        map.insert(k, (Instant::now(), v));
    }

    fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, (_, v)| keep(k, v));
    }
}

/// Tokens by id and tenants by key, each trusted for the TTL (the revocation delay of other
/// replicas). What this process deletes or revokes itself it forgets at once. Also when this
/// process last recorded each token's use.
#[derive(Debug)]
pub struct AuthCache {
    tokens: TtlMap<String, Option<Token>>,
    tenants: TtlMap<i64, Option<Arc<Tenant>>>,
    used: TtlMap<String, ()>,
}

impl AuthCache {
    /// A cache trusting what it read for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        AuthCache { tokens: TtlMap::new(ttl), tenants: TtlMap::new(ttl), used: TtlMap::new(LAST_USED_EVERY) }
    }

    /// Forgets a deleted tenant and every token of it.
    pub fn forget_tenant(&self, tenant: i64) {
        self.tenants.retain(|id, _| *id != tenant);
        self.tokens.retain(|_, t| t.as_ref().is_none_or(|t| t.tenant != tenant));
    }

    /// Forgets what it read of a tenant (its policy changed); its tokens stay cached.
    pub fn forget_tenant_record(&self, tenant: i64) {
        self.tenants.retain(|id, _| *id != tenant);
    }

    /// Forgets a revoked token.
    pub fn forget_token(&self, id: &str) {
        self.tokens.retain(|k, _| k != id);
    }
}

const NO_TOKEN: &str =
    "missing bearer token: send \"Authorization: Bearer <token>\" with the secret token of your tenant";
const BAD_TOKEN: &str =
    "invalid, expired or revoked token: check the Secret Token in the provisioning app, or create a new one";

/// The token in `Authorization: Bearer X` (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|t| !t.is_empty())
}

/// A token by id, from the cache or the store.
async fn cached_token(sh: &SharedState, id: &str) -> Result<Option<Token>, ApiError> {
    if let Some(t) = sh.app.auth.tokens.get(&id.to_owned()) {
        return Ok(t);
    }
    let t = sh.store().token(id.to_owned()).await?;
    sh.app.auth.tokens.put(id.to_owned(), t.clone());
    Ok(t)
}

/// Records that a token was used, at most once a minute per token and process, without making
/// the request wait for it.
fn note_use(sh: &SharedState, id: &str) {
    if sh.app.auth.used.get(&id.to_owned()).is_some() {
        return;
    }
    sh.app.auth.used.put(id.to_owned(), ());
    let (store, id, now) = (Arc::clone(&sh.app.store), id.to_owned(), sh.app.clock.now());
    tokio::spawn(async move {
        if let Err(e) = store.touch_token(id, now).await {
            tracing::warn!(error = %e, "could not record a token's last use");
        }
    });
}

/// The tenant a presented token grants access to, and the token. An OAuth access token works
/// only while the token it was issued for (its parent) still does: revoking or expiry of the
/// parent ends it.
async fn authenticate(sh: &SharedState, presented: &str) -> Result<(Arc<Tenant>, Token), ApiError> {
    let refuse = |reason| {
        token_failure(reason);
        ApiError::Unauthorized(BAD_TOKEN)
    };
    let (id, secret) = tokens::split(presented).ok_or_else(|| refuse("malformed"))?;
    let token = cached_token(sh, id).await?.ok_or_else(|| refuse("unknown"))?;
    let now = sh.app.clock.now();
    if !tokens::verify(&token, secret, now) {
        return Err(refuse(if !tokens::verify_secret(&token, secret) {
            "wrong_secret"
        } else if token.revoked.is_some() {
            "revoked"
        } else {
            "expired"
        }));
    }
    if let Some(parent) = tokens::parent_of(&token) {
        let parent = cached_token(sh, parent).await?;
        let alive = parent
            .is_some_and(|p| p.tenant == token.tenant && p.revoked.is_none() && p.expires.is_none_or(|e| now < e));
        if !alive {
            return Err(refuse("revoked"));
        }
    }
    let tenant = match sh.app.auth.tenants.get(&token.tenant) {
        Some(t) => t,
        None => {
            let t = sh.store().tenant_by_id(token.tenant).await?.map(Arc::new);
            sh.app.auth.tenants.put(token.tenant, t.clone());
            t
        }
    };
    let tenant = tenant.ok_or_else(|| refuse("tenant_gone"))?;
    // An OAuth access token is a use of the token it was issued for.
    note_use(sh, tokens::parent_of(&token).unwrap_or(&token.id));
    Ok((tenant, token))
}

/// The resource a response is about, for the provisioning log.
#[derive(Debug, Clone)]
pub(crate) struct ResourceId(pub String);

/// What the provisioning log needs of a request before it is answered.
struct Pending {
    at: time::OffsetDateTime,
    start: Instant,
    method: String,
    path: String,
    resource: Option<String>,
}

impl Pending {
    fn new(sh: &SharedState, req: &Request) -> Pending {
        Pending {
            at: sh.app.clock.now(),
            start: Instant::now(),
            method: req.method().as_str().to_owned(),
            path: crate::reqlog::logged_path(req.uri()),
            resource: crate::reqlog::path_resource(req.uri().path()),
        }
    }

    /// Hands the finished request to the provisioning log (which never makes it wait).
    fn record(self, sh: &SharedState, tenant: i64, token: Option<String>, resp: &Response) {
        let refusal = resp.extensions().get::<super::error::Refusal>();
        let failed = resp.status().is_client_error() || resp.status().is_server_error();
        let detail = refusal.filter(|_| failed).map(|r| crate::reqlog::clip(&r.detail));
        let hint = detail.as_deref().and_then(super::hints::for_refusal);
        let resource = resp.extensions().get::<ResourceId>().map(|r| r.0.clone()).or(self.resource);
        sh.app.log.record(scim_store::LoggedRequest {
            id: 0,
            tenant,
            at: self.at,
            token,
            method: self.method,
            path: self.path,
            status: resp.status().as_u16(),
            scim_type: refusal.filter(|_| failed).and_then(|r| r.scim_type).map(str::to_owned),
            detail,
            latency_us: i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX),
            resource,
            hint,
        });
    }
}

/// The tenant and id of a presented token that failed authentication, if it names a token at
/// all (a revoked or expired token, or a wrong secret for a real id): its 401 belongs in that
/// tenant's log.
async fn refused_token(sh: &SharedState, presented: &str) -> Option<(i64, String)> {
    let (id, _) = tokens::split(presented)?;
    let token = cached_token(sh, id).await.ok()??;
    let owner = tokens::parent_of(&token).map_or_else(|| token.id.clone(), str::to_owned);
    Some((token.tenant, owner))
}

/// The middleware in front of every `/scim/v2` route: authenticates, applies the per-tenant
/// in-flight limit, puts a [`Ctx`] into the request, and logs the request in the tenant's
/// provisioning log.
pub(crate) async fn require(State(sh): State<SharedState>, mut req: Request, next: Next) -> Response {
    let Some(presented) = bearer(req.headers()) else {
        token_failure("missing");
        return ApiError::Unauthorized(NO_TOKEN).into_response();
    };
    // Nothing is gathered for the log when it is off.
    let pending = sh.app.log.enabled().then(|| Pending::new(&sh, &req));
    let (tenant, token) = match authenticate(&sh, presented).await {
        Ok(t) => t,
        Err(e) => {
            let mut resp = e.into_response();
            if let Some(pending) = pending {
                if let Some((tenant, token)) = refused_token(&sh, presented).await {
                    resp.extensions_mut().insert(Identity { tenant: None, token: Some(token.clone()) });
                    pending.record(&sh, tenant, Some(token), &resp);
                }
            }
            return resp;
        }
    };
    let logged_token = tokens::parent_of(&token).map_or_else(|| token.id.clone(), str::to_owned);
    let who = Identity { tenant: Some(tenant.name.clone()), token: Some(logged_token.clone()) };
    let Some(permit) = sh.limiter.try_acquire(tenant.id) else {
        let mut resp = ApiError::Overloaded.into_response();
        if let Some(pending) = pending {
            pending.record(&sh, tenant.id, Some(logged_token), &resp);
        }
        resp.extensions_mut().insert(who);
        return resp;
    };
    let peer = req.extensions().get::<PeerAddr>().copied();
    let forwarded = forwarded_from_trusted(peer, &sh.settings().trusted_proxies);
    let base = format!("{}/scim/v2", origin(sh.settings().public_url.as_deref(), req.headers(), forwarded));
    let request_id = crate::access::request_id(req.extensions());
    let path = req.uri().path();
    let actor = Actor {
        token: Some(token.id),
        label: token.label,
        request_id: Some(request_id.clone()),
        method: req.method().as_str().to_owned(),
        path: path.strip_prefix("/scim/v2").filter(|p| !p.is_empty()).unwrap_or(path).to_owned(),
    };
    let tenant_id = tenant.id;
    req.extensions_mut().insert(Ctx { tenant, base, actor });
    let mut resp = next.run(req).await;
    drop(permit);
    if let Some(pending) = pending {
        pending.record(&sh, tenant_id, Some(logged_token), &resp);
    }
    resp.extensions_mut().insert(who);
    resp
}

/// Counts a refused token by why (`scimd_token_failures_total{reason}`: missing, malformed,
/// unknown, wrong_secret, revoked, expired, tenant_gone; a fixed set).
fn token_failure(reason: &'static str) {
    metrics::counter!("scimd_token_failures_total", "reason" => reason).increment(1);
}

/// The address of the peer a request came from (set by the server for each connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Whether the `X-Forwarded-*` headers of a request from `peer` are to be believed: only from a
/// configured trusted proxy (anyone else could otherwise choose the host written into every
/// `meta.location` and `Location`).
pub(crate) fn forwarded_from_trusted(peer: Option<PeerAddr>, trusted: &[ipnet::IpNet]) -> bool {
    peer.is_some_and(|p| trusted.iter().any(|net| net.contains(&p.0.ip())))
}

/// The public origin: the configured URL, else `X-Forwarded-Proto`/`X-Forwarded-Host` when
/// `forwarded` (the request came through a trusted proxy), else `Host`.
pub(crate) fn origin(public_url: Option<&str>, headers: &HeaderMap, forwarded: bool) -> String {
    if let Some(u) = public_url {
        let u = u.trim().trim_end_matches('/');
        return u.strip_suffix("/scim/v2").unwrap_or(u).to_owned();
    }
    let first = |name: &str| {
        if !forwarded && name.starts_with("x-forwarded-") {
            return None;
        }
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = match first("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let valid_host =
        |h: &&str| h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    let host = first("x-forwarded-host").filter(valid_host).or_else(|| first("host").filter(valid_host));
    format!("{proto}://{}", host.unwrap_or("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "bearer  abc ")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "BEARER abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }

    #[test]
    fn origin_prefers_config_then_forwarded_then_host() {
        let h = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "scim.example.com"),
        ]);
        assert_eq!(origin(Some("https://pub.example.com/"), &h, true), "https://pub.example.com");
        assert_eq!(origin(Some("https://pub.example.com/scim/v2"), &h, true), "https://pub.example.com");
        assert_eq!(origin(None, &h, true), "https://scim.example.com");
        assert_eq!(origin(None, &h, false), "http://internal:8080", "not from a trusted proxy");
        assert_eq!(origin(None, &headers(&[("host", "internal:8080")]), true), "http://internal:8080");
        assert_eq!(origin(None, &headers(&[("host", "bad host\"<")]), true), "http://localhost");
    }
}
