//! OAuth 2.0 client credentials (RFC 6749 §4.4), which newer Entra versions offer instead of a
//! long-lived secret token (CLIENTS.md).
//!
//! The admin enters, in Entra, the token endpoint `https://HOST/oauth/token` (also served as
//! `/scim/v2/oauth/token`), a client id and a client secret. The client id is the public id of a
//! tenant's token (`scimd token list`) and the client secret is that token (the whole
//! `scimd_<id>_<secret>` string, or its secret part). Entra posts
//! `grant_type=client_credentials` with the credentials in HTTP Basic or in the form body, and
//! gets a bearer token of its own for [`ACCESS_TOKEN_LIFETIME`]. Access tokens are ordinary
//! tokens of the tenant, labelled `oauth2:<client id>`, which expire on their own, end when
//! their client's token is revoked or expires (checked on every use, within the token cache
//! time), and cannot be used as client credentials in turn. A client gets at most
//! [`MAX_ISSUES_PER_WINDOW`] access tokens a minute; expired ones are deleted as new ones are
//! issued.
//!
//! Errors follow RFC 6749 §5.2 (`{"error": ...}`), not SCIM: this endpoint is OAuth's.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::state::SharedState;
use crate::tokens;

/// How long an access token lives (Entra accepts 60 minutes to 6 hours).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

use crate::tokens::OAUTH_LABEL_PREFIX as LABEL_PREFIX;

/// The most access tokens one client may get per [`RATE_WINDOW`] (Entra asks about once an
/// hour); more are refused with 429 and `Retry-After`.
pub const MAX_ISSUES_PER_WINDOW: u32 = 10;
/// The window of [`MAX_ISSUES_PER_WINDOW`].
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Access tokens issued per client in the current window.
#[derive(Debug, Default)]
pub struct IssueLimiter {
    windows: std::sync::Mutex<HashMap<String, (std::time::Instant, u32)>>,
}

impl IssueLimiter {
    /// Counts an issue for `client`; false when the client is over its share.
    fn allow(&self, client: &str) -> bool {
        let now = std::time::Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 10_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < RATE_WINDOW);
        }
        let entry = w.entry(client.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= RATE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= MAX_ISSUES_PER_WINDOW
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (status, axum::Json(json!({"error": error, "error_description": description}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"scimd\""));
    }
    no_store(resp)
}

/// Marks a response whose error body is OAuth's, which the SCIM error layer leaves alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OAuthBody;

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store(mut resp: Response) -> Response {
    resp.extensions_mut().insert(OAuthBody);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// `client_id:client_secret` from `Authorization: Basic ...` (each part form-urlencoded,
/// RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
        pairs.into_iter().next().map(|(_, v)| v)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// `POST /oauth/token`.
pub(crate) async fn token(State(sh): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "send an application/x-www-form-urlencoded body with grant_type=client_credentials",
                );
            }
        },
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type \"{other}\" is not supported; use client_credentials"),
            );
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is missing"),
    }
    let creds = basic_credentials(&headers)
        .or_else(|| Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())));
    let Some((client_id, client_secret)) = creds else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "send client_id and client_secret (HTTP Basic or form fields)",
        );
    };
    let invalid = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    if !tokens::is_id(&client_id) {
        return invalid();
    }
    // The secret may be the whole token or only its secret part.
    let secret = match tokens::split(&client_secret) {
        Some((id, secret)) if id == client_id => secret.to_owned(),
        Some(_) => return invalid(),
        None => client_secret.clone(),
    };
    let now = sh.app.clock.now();
    let record = match sh.store().token(client_id.clone()).await {
        Ok(Some(t)) => t,
        Ok(None) => return invalid(),
        Err(e) => {
            tracing::error!(error = %e, "oauth token endpoint: store failure");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token store failed");
        }
    };
    if tokens::parent_of(&record).is_some() || !tokens::verify(&record, &secret, now) {
        return invalid();
    }
    if !sh.oauth.allow(&client_id) {
        let mut resp = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many access tokens requested for this client; retry in a minute",
        );
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return resp;
    }
    // Expired access tokens are of no use to anyone: they go as new ones come.
    if let Err(e) = sh.store().purge_expired_tokens(LABEL_PREFIX.to_owned(), now).await {
        tracing::warn!(error = %e, "oauth token endpoint: expired access tokens not purged");
    }
    let issued = tokens::issue(
        record.tenant,
        Some(format!("{LABEL_PREFIX}{client_id}")),
        Some(now + ACCESS_TOKEN_LIFETIME),
        now,
    );
    if let Err(e) = sh.store().create_token(issued.record.clone(), None).await {
        tracing::error!(error = %e, "oauth token endpoint: store failure");
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token store failed");
    }
    tracing::info!(client_id = %client_id, token = %issued.record.id, "issued an OAuth access token");
    no_store(
        (
            StatusCode::OK,
            axum::Json(json!({
                "access_token": issued.secret,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
            })),
        )
            .into_response(),
    )
}
