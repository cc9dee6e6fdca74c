//! The access log and the request id: one line per request on both listeners.
//!
//! Every request gets an id first: on the SCIM listener the `X-Request-Id` a trusted proxy
//! (`trusted_proxies`) sent, on the admin listener the caller's, if it is a sane one; else a
//! new UUID. Handlers read it from the request's extensions
//! ([`request_id`]), the response carries it back in `X-Request-Id`, and events record it
//! (`actor.request_id`). When the request is answered, [`observe`] writes one `info` line at
//! target `scimd::access` with the request id, listener, method, route template, status,
//! latency, bytes in and out, peer address, and the tenant and token (or API key) id the
//! request authenticated as. Probes (`/healthz`, `/readyz`, `/metrics`) are logged at `debug`.
//!
//! What the line never holds: the raw path or query (a setup link's path is its secret; a
//! filter holds attribute values), headers, bodies, or any secret. Only the route template is
//! logged, and only ids of tokens that exist.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Body as _;

/// The header a request's id comes in and goes back in.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The id of the request being served (a request extension, set by [`observe`]).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub Arc<str>);

/// Who a request authenticated as, put on the response by the auth layers for the access log
/// and the per-tenant metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// The tenant's name.
    pub tenant: Option<String>,
    /// The id of the token or API key (never its secret).
    pub token: Option<String>,
}

/// The access layer of one listener.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// `scim` or `admin`, the `listener` field of the line.
    pub listener: &'static str,
    /// The proxies whose `X-Request-Id` is believed; `None`: everyone's (the admin listener,
    /// where the vendor's own application calls with its ids).
    pub trusted: Option<Arc<[ipnet::IpNet]>>,
}

/// The id of the request: set by [`observe`]; a new one if the layer is not in front (it
/// always is, outside unit tests).
pub(crate) fn request_id(req_extensions: &axum::http::Extensions) -> String {
    req_extensions.get::<RequestId>().map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.to_string())
}

/// The `X-Request-Id` of a request, if it came from a trusted peer and is a sane id (1 to 128
/// visible ASCII characters).
fn forwarded_id(headers: &HeaderMap, trusted_peer: bool) -> Option<&str> {
    if !trusted_peer {
        return None;
    }
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// The middleware in front of every route of a listener (see the module documentation). On
/// the SCIM listener it also counts and times the request ([`crate::http::record_metrics`]).
pub(crate) async fn observe(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let peer = req.extensions().get::<crate::http::PeerAddr>().copied();
    let trusted = access.trusted.as_ref().is_none_or(|t| crate::http::forwarded_from_trusted(peer, t));
    let id: Arc<str> =
        forwarded_id(req.headers(), trusted).map_or_else(|| uuid::Uuid::new_v4().to_string().into(), Arc::from);
    req.extensions_mut().insert(RequestId(Arc::clone(&id)));
    let method = crate::http::method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut resp = next.run(req).await;
    let elapsed = start.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    let who = resp.extensions().get::<Identity>().cloned().unwrap_or_default();
    if access.listener == "scim" {
        crate::http::record_metrics(method, &route, status, who.tenant.as_deref(), elapsed);
    }
    let bytes_out = resp.body().size_hint().exact().unwrap_or(0);
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    let peer = peer.map(|p| p.0.ip().to_string());
    let (tenant, token) = (who.tenant.as_deref().unwrap_or("-"), who.token.as_deref().unwrap_or("-"));
    let peer = peer.as_deref().unwrap_or("-");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "scimd::access",
                request_id = %id,
                listener = access.listener,
                method,
                route = %route,
                status,
                latency_ms,
                bytes_in,
                bytes_out,
                tenant,
                token,
                peer,
                "request"
            )
        };
    }
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        line!(debug);
    } else {
        line!(info);
    }
    resp
}
