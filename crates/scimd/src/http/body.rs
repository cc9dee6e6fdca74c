//! Request bodies: media type, size and JSON syntax, each refused with its SCIM error.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use scim_core::ScimError;
use serde_json::Value;

use super::ApiError;
use super::state::SharedState;

/// A JSON request body: `Content-Type` JSON or absent (415 otherwise), within the body limit
/// (413), well-formed (400 `invalidSyntax`).
#[derive(Debug, Clone)]
pub(crate) struct JsonBody(pub Value);

/// Bodies larger than this are parsed on a blocking thread.
const BLOCKING_PARSE_BYTES: usize = 64 * 1024;

/// A JSON body without U+0000.
fn parse(bytes: &[u8]) -> Result<JsonBody, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::syntax(format!("the request body is not valid JSON: {e}")))?;
    if has_nul(&value) {
        return Err(ApiError::Scim(ScimError::invalid_value(NUL_REFUSED)));
    }
    Ok(JsonBody(value))
}

/// Why a string with U+0000 is refused: no SCIM attribute holds one, and PostgreSQL cannot
/// store one in text (it failed the write with a database error).
pub(crate) const NUL_REFUSED: &str =
    "strings must not contain the NUL character (U+0000); remove it from the attribute values";

/// Whether any string (key or value) of `v` holds U+0000. serde_json bounds the nesting depth
/// of what it parses (128), so the recursion is bounded too.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(xs) => xs.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Whether a `Content-Type` is JSON: `application/json`, `application/scim+json`, any `+json`,
/// with or without parameters.
pub(crate) fn is_json_media_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some((ty, sub)) = essence.split_once('/') else { return false };
    (ty == "application" || ty == "*") && (sub == "json" || sub.ends_with("+json"))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let text = ct.to_str().unwrap_or_default();
    if is_json_media_type(text) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "unsupported Content-Type \"{text}\": send application/scim+json or application/json"
    )))
}

impl FromRequest<SharedState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let limit = state.settings().max_body_bytes;
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "the request body is larger than the limit of {limit} bytes; send fewer changes per request"
                ))
            } else {
                ApiError::syntax(format!("the request body could not be read: {}", r.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::syntax("the request body is empty; send a JSON object"));
        }
        // Large bodies are parsed on a blocking thread, so that a client sending megabytes of
        // JSON does not hold up the runtime's workers (and every other request with them).
        if bytes.len() > BLOCKING_PARSE_BYTES {
            return tokio::task::spawn_blocking(move || parse(&bytes))
                .await
                .map_err(|e| ApiError::Internal(format!("parsing a request body failed: {e}")))?;
        }
        parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/scim+json",
            "application/json",
            "application/json; charset=utf-8",
            "Application/SCIM+JSON;charset=UTF-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in ["text/plain", "application/xml", "application/x-www-form-urlencoded", "json", ""] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
