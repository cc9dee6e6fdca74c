//! Request parameters: the query string, `SearchRequest` bodies and the `If-Match` family.
//!
//! Unknown query parameters are ignored (Entra appends `?aadOptscim062020`); parameter names
//! match case-insensitively; `+` and `%20` are spaces, `%22` and raw `"` quotes.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use scim_core::project::Projection;
use scim_core::{ResourceDef, ScimError};
use scim_store::SortOrder;
use serde_json::Value;

use super::ApiError;
use super::state::HttpSettings;

/// The query string as name/value pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
            Ok(Query(pairs)) => {
                if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
                    return Err(ApiError::Scim(ScimError::invalid_value(format!(
                        "query parameter \"{}\": {}",
                        k.replace('\0', "\\0"),
                        super::body::NUL_REFUSED
                    ))));
                }
                Ok(Params(pairs))
            }
            Err(e) => Err(ApiError::syntax(format!("the query string cannot be read: {}", e.body_text()))),
        }
    }
}

impl Params {
    /// Parameters given as name/value pairs (the console builds its queries this way).
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    /// The value of the first parameter called `name` (case-insensitive), if any.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether `attributes` or `excludedAttributes` was given.
    pub(crate) fn has_projection(&self) -> bool {
        self.get("attributes").is_some_and(|v| !v.trim().is_empty())
            || self.get("excludedAttributes").is_some_and(|v| !v.trim().is_empty())
    }

    /// The projection `attributes` / `excludedAttributes` ask for.
    pub(crate) fn projection<'a>(&self, def: &ResourceDef<'a>) -> Result<Projection<'a>, ApiError> {
        Ok(Projection::new(def, self.get("attributes"), self.get("excludedAttributes"))?)
    }
}

/// The parameters of a list or search request (RFC 7644 §3.4.2, §3.4.3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListParams {
    /// The filter text, if any.
    pub filter: Option<String>,
    /// 1-based index of the first result (values below 1 read as 1).
    pub start_index: u64,
    /// The page size, clamped to `0..=max_page_size`.
    pub count: u64,
    /// The sort attribute.
    pub sort_by: Option<String>,
    /// The sort direction.
    pub sort_order: SortOrder,
    /// Comma-separated `attributes`.
    pub attributes: Option<String>,
    /// Comma-separated `excludedAttributes`.
    pub excluded: Option<String>,
    /// RFC 9865 cursor paging: the `cursor` given (empty: the first page), `None` for index
    /// paging (the default).
    pub cursor: Option<String>,
}

fn integer(name: &str, text: &str) -> Result<i128, ApiError> {
    let t = text.trim();
    t.parse::<i128>()
        .or_else(|_| t.parse::<f64>().map(|f| f as i128))
        .map_err(|_| ApiError::Scim(ScimError::invalid_value(format!("{name} must be an integer, not \"{text}\""))))
}

fn json_integer(name: &str, v: &Value) -> Result<Option<i128>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_i64().map(i128::from).or_else(|| n.as_f64().map(|f| f as i128))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => integer(name, s).map(Some),
        other => Err(ApiError::Scim(ScimError::invalid_value(format!("{name} must be an integer, not {other}")))),
    }
}

fn sort_order(text: Option<&str>) -> Result<SortOrder, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(SortOrder::Ascending),
        Some(t) if t.eq_ignore_ascii_case("ascending") => Ok(SortOrder::Ascending),
        Some(t) if t.eq_ignore_ascii_case("descending") => Ok(SortOrder::Descending),
        Some(t) => Err(ApiError::Scim(ScimError::invalid_value(format!(
            "sortOrder must be \"ascending\" or \"descending\", not \"{t}\""
        )))),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An integer parameter as read: its value, or the error its text is.
type Int = Result<Option<i128>, ApiError>;

/// List parameters as read, before defaults and clamping.
struct Raw<'a> {
    filter: Option<&'a str>,
    start: Int,
    count: Int,
    cursor: Option<String>,
    sort_by: Option<&'a str>,
    order: Option<&'a str>,
    attributes: Option<String>,
    excluded: Option<String>,
}

impl Raw<'_> {
    fn build(self, settings: &HttpSettings) -> Result<ListParams, ApiError> {
        if self.cursor.is_some() {
            if !matches!(self.start, Ok(None)) {
                return Err(ApiError::Scim(ScimError::invalid_value(
                    "startIndex and cursor cannot be combined: page by index (startIndex) or by cursor \
                     (cursor, empty for the first page), not both (RFC 9865 §2.4)",
                )));
            }
            if let Err(ApiError::Scim(e)) = &self.count {
                // RFC 9865 §2.1: a count that cannot be read is invalidCount in cursor paging.
                return Err(ApiError::Scim(ScimError::invalid_count(e.detail.clone())));
            }
        }
        let start_index = self.start?.map_or(1, |s| s.clamp(1, i128::from(u32::MAX)) as u64);
        let max = i128::from(settings.max_page_size);
        let count =
            self.count?.map_or(settings.default_page_size.min(settings.max_page_size), |c| c.clamp(0, max) as u64);
        Ok(ListParams {
            filter: non_empty(self.filter),
            start_index,
            count,
            sort_by: non_empty(self.sort_by),
            sort_order: sort_order(self.order)?,
            attributes: self.attributes,
            excluded: self.excluded,
            cursor: self.cursor,
        })
    }
}

impl ListParams {
    /// Reads `filter`, `startIndex`, `count`, `sortBy`, `sortOrder`, `attributes` and
    /// `excludedAttributes` from the query string.
    pub(crate) fn from_query(p: &Params, settings: &HttpSettings) -> Result<Self, ApiError> {
        let start = p.get("startIndex").filter(|s| !s.trim().is_empty()).map(|s| integer("startIndex", s)).transpose();
        let count = p.get("count").filter(|s| !s.trim().is_empty()).map(|s| integer("count", s)).transpose();
        Raw {
            filter: p.get("filter"),
            start,
            count,
            cursor: p.get("cursor").map(str::to_owned),
            sort_by: p.get("sortBy"),
            order: p.get("sortOrder"),
            attributes: non_empty(p.get("attributes")),
            excluded: non_empty(p.get("excludedAttributes")),
        }
        .build(settings)
    }

    /// Reads a `SearchRequest` body (RFC 7644 §3.4.3); `attributes` and `excludedAttributes`
    /// may be lists or comma-separated strings.
    pub(crate) fn from_search(body: &Value, settings: &HttpSettings) -> Result<Self, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::syntax("a search request must be a JSON object (SearchRequest)"));
        };
        let get = |k: &str| obj.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
        let text = |k: &str| -> Result<Option<&str>, ApiError> {
            match get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => {
                    Err(ApiError::Scim(ScimError::invalid_value(format!("{k} must be a string, not {other}"))))
                }
            }
        };
        let list = |k: &str| -> Result<Option<String>, ApiError> {
            match get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(non_empty(Some(s))),
                Some(Value::Array(xs)) => {
                    let mut names = Vec::with_capacity(xs.len());
                    for x in xs {
                        match x.as_str() {
                            Some(s) => names.push(s.trim()),
                            None => {
                                return Err(ApiError::Scim(ScimError::invalid_value(format!(
                                    "{k} must list attribute names as strings, not {x}"
                                ))));
                            }
                        }
                    }
                    Ok(non_empty(Some(&names.join(","))))
                }
                Some(other) => Err(ApiError::Scim(ScimError::invalid_value(format!(
                    "{k} must be a list of attribute names, not {other}"
                )))),
            }
        };
        let start = get("startIndex").map(|v| json_integer("startIndex", v)).transpose().map(Option::flatten);
        let count = get("count").map(|v| json_integer("count", v)).transpose().map(Option::flatten);
        let cursor = match get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(other) => {
                return Err(ApiError::Scim(ScimError::invalid_cursor(format!(
                    "cursor must be a string (empty for the first page), not {other}"
                ))));
            }
        };
        Raw {
            filter: text("filter")?,
            start,
            count,
            cursor,
            sort_by: text("sortBy")?,
            order: text("sortOrder")?,
            attributes: list("attributes")?,
            excluded: list("excludedAttributes")?,
        }
        .build(settings)
    }
}

/// An `If-Match` header: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IfMatch(String);

/// The request's `If-Match`, if it has one (an extractor: a malformed header is a 400).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IfMatchHeader(pub Option<IfMatch>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatchHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        IfMatch::from_headers(&parts.headers).map(IfMatchHeader)
    }
}

/// The request's `If-None-Match`, if it has one.
#[derive(Debug, Clone)]
pub(crate) struct IfNoneMatch(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(IfNoneMatch(parts.headers.get(header::IF_NONE_MATCH).cloned()))
    }
}

impl IfMatch {
    /// The `If-Match` header, if the request has one.
    pub(crate) fn from_headers(h: &HeaderMap) -> Result<Option<Self>, ApiError> {
        match h.get(header::IF_MATCH) {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Ok(s) if !s.trim().is_empty() => Ok(Some(IfMatch(s.to_owned()))),
                _ => Err(ApiError::Scim(ScimError::invalid_value("If-Match must be \"*\" or an ETag such as W/\"3\""))),
            },
        }
    }

    /// An `If-Match` for a bulk operation's `version`.
    pub(crate) fn from_version(v: &str) -> Option<Self> {
        (!v.trim().is_empty()).then(|| IfMatch(v.to_owned()))
    }

    /// Whether the current version satisfies it.
    pub(crate) fn matches(&self, version: i64) -> bool {
        tags_match(&self.0, version)
    }
}

/// Whether a list of entity tags (`*`, `W/"3"`, `"3"`, `3`, comma-separated) names `version`.
/// Weak and strong forms compare equal: the version is the whole validator.
pub(crate) fn tags_match(list: &str, version: i64) -> bool {
    let want = version.to_string();
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").or_else(|| tag.strip_prefix("w/")).unwrap_or(tag);
        tag.trim_matches('"') == want
    })
}

/// Whether an `If-None-Match` header names `version` (or is `*`).
pub(crate) fn etag_matches(v: &HeaderValue, version: i64) -> bool {
    v.to_str().is_ok_and(|s| tags_match(s, version))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn list_params_defaults_clamps_and_case() {
        let s = HttpSettings::default();
        let p = ListParams::from_query(&q(&[("aadOptscim062020", "")]), &s).unwrap();
        assert_eq!((p.start_index, p.count, p.filter.clone()), (1, 100, None));
        let p = ListParams::from_query(&q(&[("startIndex", "-4"), ("count", "-1")]), &s).unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = ListParams::from_query(&q(&[("count", "999999"), ("sortOrder", "DESCENDING")]), &s).unwrap();
        assert_eq!((p.count, p.sort_order), (1000, SortOrder::Descending));
        assert!(ListParams::from_query(&q(&[("count", "ten")]), &s).is_err());
        assert!(ListParams::from_query(&q(&[("sortOrder", "up")]), &s).is_err());
    }

    #[test]
    fn search_request_lists_and_strings() {
        let s = HttpSettings::default();
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "attributes": ["userName", "emails"], "excludedAttributes": "groups", "startIndex": 2, "count": "5",
            "filter": "userName sw \"a\"", "sortBy": "userName"});
        let p = ListParams::from_search(&body, &s).unwrap();
        assert_eq!(p.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(p.excluded.as_deref(), Some("groups"));
        assert_eq!((p.start_index, p.count), (2, 5));
        assert!(ListParams::from_search(&json!([1]), &s).is_err());
        assert!(ListParams::from_search(&json!({"count": true}), &s).is_err());
    }

    #[test]
    fn cursor_params() {
        let s = HttpSettings::default();
        let p = ListParams::from_query(&q(&[("cursor", "")]), &s).unwrap();
        assert_eq!(p.cursor.as_deref(), Some(""), "present and empty: the first page by cursor");
        assert_eq!(ListParams::from_query(&q(&[]), &s).unwrap().cursor, None, "index paging by default");
        let e = ListParams::from_query(&q(&[("cursor", "x"), ("startIndex", "3")]), &s).unwrap_err();
        assert!(matches!(e, ApiError::Scim(ref e) if e.scim_type == Some(scim_core::ScimType::InvalidValue)), "{e}");
        let e = ListParams::from_query(&q(&[("cursor", ""), ("count", "ten")]), &s).unwrap_err();
        assert!(matches!(e, ApiError::Scim(ref e) if e.scim_type == Some(scim_core::ScimType::InvalidCount)), "{e}");
        let p = ListParams::from_query(&q(&[("cursor", ""), ("count", "-3")]), &s).unwrap();
        assert_eq!(p.count, 0, "a negative count is 0 (RFC 9865 §2)");
        let p = ListParams::from_search(&json!({"cursor": "abc", "count": 5}), &s).unwrap();
        assert_eq!((p.cursor.as_deref(), p.count), (Some("abc"), 5));
        assert!(ListParams::from_search(&json!({"cursor": 5}), &s).is_err());
        assert!(ListParams::from_search(&json!({"cursor": "", "startIndex": 2}), &s).is_err());
    }

    #[test]
    fn entity_tags() {
        assert!(tags_match("W/\"3\"", 3));
        assert!(tags_match("\"3\"", 3));
        assert!(tags_match("*", 9));
        assert!(tags_match("W/\"1\", W/\"3\"", 3));
        assert!(!tags_match("W/\"2\"", 3));
        assert!(!tags_match("W/\"33\"", 3));
    }
}
