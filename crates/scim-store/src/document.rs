//! Records as documents: what filters on non-indexed attributes are evaluated against.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Record;

/// RFC 3339 text of an instant, e.g. `2024-01-31T12:00:00.123456Z`.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The ETag of a version: `W/"<n>"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The record's document with `id` and `meta` (no location): the resource as filters see it.
pub fn materialize(rec: &Record) -> Value {
    let mut out = Map::new();
    if let Value::Object(doc) = &rec.doc {
        if let Some(s) = doc.get("schemas") {
            out.insert("schemas".into(), s.clone());
        }
        out.insert("id".into(), Value::String(rec.id.clone()));
        for (k, v) in doc {
            if k != "schemas" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": rec.kind.name(),
            "created": fmt_time(rec.created),
            "lastModified": fmt_time(rec.last_modified),
            "version": etag(rec.version),
        }),
    );
    Value::Object(out)
}
