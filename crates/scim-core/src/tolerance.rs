//! The tolerance layer: every client quirk scimd accepts, in one place, each named after the
//! quirk (see CLIENTS.md). The rest of the core calls these functions and stays strict.
//!
//! | quirk | who sends it | accepted as |
//! |---|---|---|
//! | [`bool_value`]: `"True"`, `"False"`, `"true"` for booleans | Entra ID | the boolean |
//! | [`op_name`]: `Add`, `Replace`, `Remove` | Entra ID | the RFC op, compared case-insensitively |
//! | [`scalar_for_complex`]: `"manager": "<id>"` (a single-valued complex attribute) | Entra ID | `{"value": "<id>"}` |
//! | [`single_from_list`]: `"manager": [{"value": "<id>"}]` (a single-valued complex attribute) | Entra ID | the one element |
//! | [`json_encoded_element`]: `{"value": "{\"value\":\"Admin\",...}"}` in `roles` | Entra ID | the decoded element |
//! | [`is_clear`]: `null`, `""`, `{"value": ""}` | Entra ID, Okta | "clear this attribute" |
//! | [`lenient_datetime`]: a dateTime without a zone | various | UTC |
//! | [`unwrap_value_object`]: `{"value": ""}` for a simple attribute | Entra ID | "clear this attribute" |
//!
//! Nothing else is coerced: a number or boolean for a string, a string for an integer, a list
//! for a single value, a string for a multi-valued attribute, or a non-object element of a
//! multi-valued complex attribute is 400 `invalidValue`, naming the attribute, the type it
//! needs and what was sent (RFC 7643 §2.3: the JSON type is part of the attribute's type).
//!
//! Other tolerances live in the grammar itself and are documented there: unknown schema URIs
//! and attributes are dropped ([`crate::resource`]), dotted, URN-qualified and nested keys of a
//! path-less PATCH ([`crate::patch`]), value filters that create the element they name
//! ([`crate::patch`]), and `emails[type eq "work"].value eq "x"` in filters ([`crate::filter`]).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::schema::{AttrType, Attribute};

/// A boolean from JSON `true`/`false` or from the strings `"true"`/`"false"` in any case.
pub fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The PATCH operations of RFC 7644 §3.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `remove`
    Remove,
}

/// A PATCH `op` compared case-insensitively (Entra sends `Add`, `Replace`, `Remove`).
pub fn op_name(s: &str) -> Option<OpName> {
    if s.eq_ignore_ascii_case("add") {
        Some(OpName::Add)
    } else if s.eq_ignore_ascii_case("replace") {
        Some(OpName::Replace)
    } else if s.eq_ignore_ascii_case("remove") {
        Some(OpName::Remove)
    } else {
        None
    }
}

/// A string sent for a single-valued complex attribute that has a `value` sub-attribute
/// becomes `{"value": string}` (Entra's manager PATCH carries the bare manager id).
pub fn scalar_for_complex(attr: &Attribute, v: &Value) -> Option<Value> {
    if attr.ty != AttrType::Complex || attr.multi_valued || attr.sub("value").is_none() {
        return None;
    }
    match v {
        Value::String(_) => {
            let mut m = Map::new();
            m.insert("value".into(), v.clone());
            Some(Value::Object(m))
        }
        _ => None,
    }
}

/// A one-element list sent for a single-valued complex attribute is that element (Entra's
/// manager as `[{"$ref": ..., "value": "<id>"}]`); an empty one clears it.
pub fn single_from_list(attr: &Attribute, v: &Value) -> Option<Value> {
    if attr.multi_valued || attr.ty != AttrType::Complex {
        return None;
    }
    match v {
        Value::Array(xs) if xs.len() == 1 => xs.first().cloned(),
        Value::Array(xs) if xs.is_empty() => Some(Value::Null),
        _ => None,
    }
}

/// An element of a multi-valued complex attribute whose `value` is itself a JSON object in a
/// string (Entra's app-role assignments: `{"value": "{\"id\":..,\"value\":\"Admin\",\"displayName\":\"Admin\"}"}`)
/// is decoded: `value` and `display` (from `display` or `displayName`) come from the inner
/// object, and fields the element already has win.
pub fn json_encoded_element(attr: &Attribute, element: &mut Map<String, Value>) {
    // Only `roles` (Entra's app-role assignments): an email that reads like JSON is an email.
    if !attr.name.eq_ignore_ascii_case("roles") {
        return;
    }
    let Some(Value::String(s)) = element.get("value") else { return };
    let trimmed = s.trim_start();
    if !trimmed.starts_with('{') {
        return;
    }
    let Ok(Value::Object(inner)) = serde_json::from_str::<Value>(trimmed) else { return };
    // Only strings come out: `value`, `display` and `type` of a role are strings, and an inner
    // object whose `value` is not one was never an app-role assignment, so the element keeps the
    // string it was sent with (and stays a role a PUT of the stored form can send back).
    let get = |k: &str| {
        inner.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v).filter(|v| v.is_string()).cloned()
    };
    let Some(value) = get("value") else { return };
    element.insert("value".into(), value);
    if !element.contains_key("display") {
        if let Some(d) = get("display").or_else(|| get("displayName")) {
            element.insert("display".into(), d);
        }
    }
    if !element.contains_key("type") {
        if let Some(t) = get("type") {
            element.insert("type".into(), t);
        }
    }
}

/// `null`, `""` and `{"value": ""}` (or `{"value": null}`) mean "clear this attribute".
pub fn is_clear(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.values().all(is_clear),
        Value::Array(xs) => xs.is_empty(),
        _ => false,
    }
}

/// An xsd:dateTime instant: RFC 3339, or without a zone (read as UTC).
pub fn lenient_datetime(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    if s.len() < 40 && !s.ends_with('Z') {
        return OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339).ok();
    }
    None
}

/// A simple (non-complex) attribute sent as `{"value": ""}` (or `{"value": null}`) is cleared:
/// Entra clears attributes that way. Any other object for a simple attribute is a type error.
pub fn unwrap_value_object<'v>(attr: &Attribute, v: &'v Value) -> Option<&'v Value> {
    if attr.ty == AttrType::Complex {
        return None;
    }
    match v {
        Value::Object(m) if m.len() == 1 => m.get("value").filter(|inner| is_clear(inner)),
        _ => None,
    }
}
