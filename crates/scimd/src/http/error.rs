//! The one place where failures become HTTP responses.
//!
//! Every handler returns `Result<_, ApiError>`; [`ApiError`]'s `IntoResponse` turns it into a
//! SCIM error body (RFC 7644 §3.12) with the right status, `scimType` and headers
//! (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503). Internal failures are logged
//! here and shown to the client only as a generic message.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scim_core::{Kind, ScimError, ScimType};
use scim_store::StoreError;

const TENANT_GONE: &str =
    "the tenant of this token has been deleted: ask the vendor for the Tenant URL and a token of a current tenant";

/// A failed request.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// A protocol error with its status and `scimType` (400, 404, 409, ...).
    Scim(ScimError),
    /// `If-Match` names a version that is not the current one (412); the detail says which.
    PreconditionFailed(String),
    /// The request body is over the limit (413); the detail says the limit.
    PayloadTooLarge(String),
    /// The body's media type is not JSON (415); the detail names what was sent.
    UnsupportedMediaType(String),
    /// A `/Bulk` operation's `bulkId` reference cannot be resolved (409 `invalidValue`, RFC
    /// 7644 §3.7.3).
    BulkReference(String),
    /// A resource type the registry does not hold (500: a build error, never the client's).
    Unregistered(Kind),
    /// No valid bearer token (401); the detail says what was wrong.
    Unauthorized(&'static str),
    /// The tenant has too many requests in flight (429).
    Overloaded,
    /// A dependency is not available (503).
    Unavailable(String),
    /// A server-side failure (500); the detail goes to the log only.
    Internal(String),
}

impl ApiError {
    /// 400 `invalidSyntax`.
    pub fn syntax(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::invalid_syntax(detail))
    }

    /// A store failure on the resource `kind`/`id`.
    pub fn store(e: StoreError, kind: Kind, id: &str) -> Self {
        match e {
            StoreError::NotFound => ApiError::Scim(ScimError::not_found(format!("{} {id} not found", kind.name()))),
            StoreError::Conflict(detail) => ApiError::Scim(ScimError::uniqueness(detail)),
            StoreError::VersionMismatch => ApiError::PreconditionFailed(format!(
                "{} {id} has changed since the version named in If-Match; read it again and retry",
                kind.name()
            )),
            other => ApiError::from(other),
        }
    }
}

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError::Scim(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::Scim(ScimError::not_found("not found")),
            StoreError::Conflict(detail) => ApiError::Scim(ScimError::uniqueness(detail)),
            StoreError::VersionMismatch => {
                ApiError::PreconditionFailed("the resource has changed; read it again and retry".into())
            }
            StoreError::NoTenant => ApiError::Unauthorized(TENANT_GONE),
            StoreError::Scim(e) => ApiError::Scim(e),
            e @ (StoreError::Backend(_) | StoreError::Corrupt(_)) => ApiError::Internal(format!("store: {e}")),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Scim(e) => write!(f, "{e}"),
            ApiError::PreconditionFailed(d) => write!(f, "412: {d}"),
            ApiError::PayloadTooLarge(d) => write!(f, "413: {d}"),
            ApiError::UnsupportedMediaType(d) => write!(f, "415: {d}"),
            ApiError::BulkReference(d) => write!(f, "409: {d}"),
            ApiError::Unregistered(k) => write!(f, "500: resource type {} is not registered", k.name()),
            ApiError::Unauthorized(d) => write!(f, "401: {d}"),
            ApiError::Overloaded => f.write_str("429: too many requests in flight"),
            ApiError::Unavailable(d) => write!(f, "503: {d}"),
            ApiError::Internal(d) => write!(f, "500: {d}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The SCIM error a client sees, and the header that goes with it. Internal failures are
    /// logged here and replaced by a generic message.
    fn into_parts(self) -> (ScimError, Option<(HeaderName, HeaderValue)>) {
        match self {
            ApiError::Scim(e) if e.status >= 500 => {
                tracing::error!(error = %e, "request failed");
                (ScimError::status(e.status, "internal error; the details are in the server log"), None)
            }
            ApiError::Scim(e) => (e, None),
            ApiError::PreconditionFailed(detail) => (ScimError::status(412, detail), None),
            ApiError::PayloadTooLarge(detail) => (ScimError::status(413, detail), None),
            ApiError::UnsupportedMediaType(detail) => (ScimError::status(415, detail), None),
            ApiError::BulkReference(detail) => {
                (ScimError { status: 409, scim_type: Some(ScimType::InvalidValue), detail }, None)
            }
            ApiError::Unregistered(kind) => {
                tracing::error!(kind = kind.name(), "resource type is not registered");
                (ScimError::status(500, "internal error; the details are in the server log"), None)
            }
            ApiError::Unauthorized(detail) => (
                ScimError::status(401, detail),
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scimd\""))),
            ),
            ApiError::Overloaded => (
                ScimError::status(
                    429,
                    "too many concurrent requests for this tenant; retry after the time in Retry-After",
                ),
                Some((header::RETRY_AFTER, HeaderValue::from_static("1"))),
            ),
            ApiError::Unavailable(detail) => {
                (ScimError::status(503, detail), Some((header::RETRY_AFTER, HeaderValue::from_static("5"))))
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (ScimError::status(500, "internal error; the details are in the server log"), None)
            }
        }
    }

    /// The SCIM error a client sees (for `/Bulk` operation results).
    pub fn to_scim(&self) -> ScimError {
        self.clone().into_parts().0
    }
}

/// The error a response carries, for the provisioning log (`scimType` and detail as sent).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (error, extra) = self.into_parts();
        let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = super::render::scim_json(status, &error.to_json());
        if let Some((name, value)) = extra {
            resp.headers_mut().insert(name, value);
        }
        resp.extensions_mut()
            .insert(Refusal { scim_type: error.scim_type.map(ScimType::as_str), detail: error.detail });
        resp
    }
}
