//! Stored records as SCIM resources: the document plus `id`, `meta`, and a group's `members`
//! or a user's `groups` when they were loaded. Projection happens after this.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scim_core::Kind;
pub(crate) use scim_store::etag;
use scim_store::{Record, fmt_time};
use serde_json::{Map, Value, json};

/// The media type of every SCIM response.
pub(crate) const SCIM_MEDIA_TYPE: &str = "application/scim+json";
/// The schema URI of a list response.
pub(crate) const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The absolute URL of a resource.
pub(crate) fn location(base: &str, kind: Kind, id: &str) -> String {
    format!("{base}/{}/{id}", kind.endpoint())
}

/// The full resource of a record (before projection).
pub(crate) fn resource(base: &str, rec: &Record) -> Value {
    let mut out = Map::new();
    let doc = rec.doc.as_object();
    if let Some(schemas) = doc.and_then(|d| d.get("schemas")) {
        out.insert("schemas".into(), schemas.clone());
    }
    out.insert("id".into(), Value::String(rec.id.clone()));
    for (k, v) in doc.into_iter().flatten() {
        if k != "schemas" && k != "id" && k != "meta" {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(members) = &rec.members {
        if !members.is_empty() {
            let list = members
                .iter()
                .map(|m| {
                    let mut e = Map::new();
                    e.insert("value".into(), json!(m.value));
                    e.insert("$ref".into(), json!(location(base, m.kind, &m.value)));
                    if let Some(d) = &m.display {
                        e.insert("display".into(), json!(d));
                    }
                    e.insert("type".into(), json!(m.kind.name()));
                    Value::Object(e)
                })
                .collect();
            out.insert("members".into(), Value::Array(list));
        }
    }
    if let Some(groups) = &rec.groups {
        if !groups.is_empty() {
            let list = groups
                .iter()
                .map(|g| {
                    let mut e = Map::new();
                    e.insert("value".into(), json!(g.value));
                    e.insert("$ref".into(), json!(location(base, Kind::Group, &g.value)));
                    if let Some(d) = &g.display {
                        e.insert("display".into(), json!(d));
                    }
                    e.insert("type".into(), json!("direct"));
                    Value::Object(e)
                })
                .collect();
            out.insert("groups".into(), Value::Array(list));
        }
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": rec.kind.name(),
            "created": fmt_time(rec.created),
            "lastModified": fmt_time(rec.last_modified),
            "location": location(base, rec.kind, &rec.id),
            "version": etag(rec.version),
        }),
    );
    Value::Object(out)
}

/// A list response (RFC 7644 §3.4.2).
pub(crate) fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    let items = resources.len();
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "Resources": resources,
        "startIndex": start_index,
        "itemsPerPage": items,
    })
}

/// A list response of cursor paging (RFC 9865 §2): no `startIndex`; `totalResults` when it is
/// known; `nextCursor` unless this is the last page, `previousCursor` unless it is the first.
pub(crate) fn cursor_response(
    total: Option<u64>,
    resources: Vec<Value>,
    next: Option<String>,
    prev: Option<String>,
) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([LIST_RESPONSE]));
    if let Some(t) = total {
        out.insert("totalResults".into(), json!(t));
    }
    out.insert("itemsPerPage".into(), json!(resources.len()));
    if let Some(c) = prev {
        out.insert("previousCursor".into(), json!(c));
    }
    if let Some(c) = next {
        out.insert("nextCursor".into(), json!(c));
    }
    out.insert("Resources".into(), Value::Array(resources));
    Value::Object(out)
}

/// A JSON response with the SCIM media type.
pub(crate) fn scim_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_MEDIA_TYPE));
    resp
}
