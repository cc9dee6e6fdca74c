//! Incoming resources, checked and coerced against the schema (RFC 7643 §2, §7).
//!
//! What comes out of [`ingest`] is the stored form of a resource: attribute names in the
//! schema's spelling and order, values of the attribute's type (with the coercions of
//! [`crate::tolerance`]), extension attributes under their URN, `schemas` rebuilt, empty
//! values (`null`, `""`, `[]`, `{}`) left out, and the attributes the server owns (`id`,
//! `meta`, readOnly ones such as `groups`) dropped, and so are write-only attributes that are
//! never returned (`password`: scimd keeps no passwords, the vendor's application signs users
//! in through SSO). Unknown attributes follow one policy,
//! [`UnknownAttributes`]. A group's members come out separately, because they are stored in
//! their own table.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::error::{Result, ScimError};
use crate::path::AttrPath;
use crate::registry::{Container, ResourceDef};
use crate::schema::{AttrType, Attribute, Mutability, Schema};
use crate::tolerance;

/// What to do with an attribute the resource type does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownAttributes {
    /// Leave it out, as RFC 7644 §3.3 allows for attributes the provider does not support.
    /// Clients send attributes of extensions the server has not been told about.
    #[default]
    Drop,
    /// Refuse the request with 400 `invalidSyntax`.
    Reject,
}

/// Size limits of a resource body, enforced while it is read (so a huge body costs time linear
/// in its size, and is refused before it is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most members a group body (or one PATCH) may list.
    pub max_members: usize,
    /// The most values of one multi-valued attribute (emails, phoneNumbers, roles, ...).
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_members: 10_000, max_values: 1_000 }
    }
}

/// A member of a group, as a client names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member's `id`.
    pub value: String,
    /// `User` or `Group`, if the client said.
    pub kind: Option<String>,
    /// The `display` the client sent, if any (RFC 7644 §3.5.2.1's example sends one).
    pub display: Option<String>,
}

impl Member {
    /// A member named by id only.
    pub fn id(value: &str) -> Self {
        Member { value: value.to_owned(), kind: None, display: None }
    }
}

/// A resource checked against its resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The stored form of the resource (an object; no `id` or `meta`).
    pub resource: Value,
    /// The members, for a resource type with a member attribute and a body that lists them.
    pub members: Option<Vec<Member>>,
}

/// Checks and coerces a resource body for a create (POST) or a replace (PUT), with the default
/// [`Limits`].
pub fn ingest(def: &ResourceDef<'_>, input: &Value, unknown: UnknownAttributes) -> Result<Ingested> {
    ingest_with(def, input, unknown, &Limits::default())
}

/// [`ingest`] with the given size limits.
pub fn ingest_with(
    def: &ResourceDef<'_>,
    input: &Value,
    unknown: UnknownAttributes,
    limits: &Limits,
) -> Result<Ingested> {
    let obj = input.as_object().ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let mut doc = Map::new();
    let mut members = None;
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(schema) = container_schema(def, key) {
            let inner = match value {
                Value::Object(m) => m,
                Value::Null => continue,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "\"{key}\" must be an object of the extension's attributes"
                    )));
                }
            };
            for (k, v) in inner {
                let path = AttrPath { urn: Some(schema.id.clone()), name: k.clone(), sub: None };
                place(def, &mut doc, &mut members, &path, k, v, unknown, limits)?;
            }
            continue;
        }
        match AttrPath::parse_word(key) {
            Ok(path) => place(def, &mut doc, &mut members, &path, key, value, unknown, limits)?,
            Err(_) => unknown_attribute(key, unknown)?,
        }
    }
    let resource = finish(def, doc);
    check_required(def, &resource)?;
    Ok(Ingested { resource, members })
}

/// The schema whose attributes `key` holds as an object: an extension URN, or the core URN.
fn container_schema<'a>(def: &ResourceDef<'a>, key: &str) -> Option<&'a Schema> {
    if !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return None;
    }
    if key.eq_ignore_ascii_case(&def.core.id) {
        return Some(def.core);
    }
    def.extension(key)
}

fn unknown_attribute(key: &str, unknown: UnknownAttributes) -> Result<()> {
    match unknown {
        UnknownAttributes::Drop => Ok(()),
        UnknownAttributes::Reject => {
            Err(ScimError::invalid_syntax(format!("\"{key}\" is not an attribute of this resource type")))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn place(
    def: &ResourceDef<'_>,
    doc: &mut Map<String, Value>,
    members: &mut Option<Vec<Member>>,
    path: &AttrPath,
    key: &str,
    value: &Value,
    unknown: UnknownAttributes,
    limits: &Limits,
) -> Result<()> {
    let Some(r) = def.resolve(path) else { return unknown_attribute(key, unknown) };
    if r.leaf().mutability == Mutability::ReadOnly || r.attr.mutability == Mutability::ReadOnly {
        return Ok(());
    }
    if is_secret(r.attr) || is_secret(r.leaf()) {
        // A password is never stored: the vendor's application signs users in through SSO.
        return Ok(());
    }
    if def.member_attribute().is_some_and(|m| std::ptr::eq(m, r.attr)) && r.sub.is_none() {
        *members = Some(parse_members(value, limits)?);
        return Ok(());
    }
    let at = r.display();
    let holder = container_mut(doc, r.container, true).ok_or_else(|| ScimError::invalid_syntax("bad container"))?;
    match r.sub {
        None => {
            if let Some(v) = normalize_attr(r.attr, value, unknown, limits, &at)? {
                merge_into(holder, &r.attr.name, v);
            }
        }
        Some(sub) => {
            if let Some(v) = normalize_attr(sub, value, unknown, limits, &at)? {
                let mut m = Map::new();
                m.insert(sub.name.clone(), v);
                merge_into(holder, &r.attr.name, Value::Object(m));
            }
        }
    }
    Ok(())
}

/// A write-only attribute that is never returned (`password`): scimd does not keep it.
pub(crate) fn is_secret(attr: &Attribute) -> bool {
    attr.mutability == Mutability::WriteOnly && attr.returned == crate::schema::Returned::Never
}

/// Sets `name` to `v`, merging objects (so `name` and `name.givenName` keys combine).
fn merge_into(holder: &mut Map<String, Value>, name: &str, v: Value) {
    match (holder.get_mut(name), v) {
        (Some(Value::Object(old)), Value::Object(new)) => {
            for (k, x) in new {
                old.insert(k, x);
            }
        }
        (_, v) => {
            holder.insert(name.to_owned(), v);
        }
    }
}

/// The object holding attributes of `container` in `doc`, created if asked.
pub(crate) fn container_mut<'d>(
    doc: &'d mut Map<String, Value>,
    container: Container<'_>,
    create: bool,
) -> Option<&'d mut Map<String, Value>> {
    match container {
        Container::Root => Some(doc),
        Container::Extension(urn) => {
            if !doc.contains_key(urn) {
                if !create {
                    return None;
                }
                doc.insert(urn.to_owned(), Value::Object(Map::new()));
            }
            doc.get_mut(urn).and_then(Value::as_object_mut)
        }
    }
}

/// Orders the document as the schemas do, drops empty extension objects, sets `schemas`.
pub(crate) fn finish(def: &ResourceDef<'_>, mut doc: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Null);
    for a in def.common.iter().chain(def.core.attributes.iter()) {
        if let Some(v) = doc.remove(&a.name).and_then(|v| order_value(a, v)) {
            out.insert(a.name.clone(), v);
        }
    }
    for (schema, _) in &def.extensions {
        if let Some(Value::Object(mut inner)) = doc.remove(&schema.id) {
            let mut ordered = Map::new();
            for a in &schema.attributes {
                if let Some(v) = inner.remove(&a.name).and_then(|v| order_value(a, v)) {
                    ordered.insert(a.name.clone(), v);
                }
            }
            if !ordered.is_empty() {
                out.insert(schema.id.clone(), Value::Object(ordered));
            }
        }
    }
    let schemas = def.schemas_of(&out);
    out.insert("schemas".into(), schemas);
    Value::Object(out)
}

/// Puts sub-attributes in the schema's order. Elements of a multi-valued attribute that has a
/// `value` sub-attribute but lost theirs (`emails[type eq "work"].value` cleared) are dropped:
/// an email without an address is no email. `None` when nothing is left.
fn order_value(attr: &Attribute, v: Value) -> Option<Value> {
    if attr.ty != AttrType::Complex {
        return Some(v);
    }
    let order = |v: Value| match v {
        Value::Object(mut m) => {
            // Decoded here, in the one stored form, whichever way the element arrived (a POST,
            // a PATCH of the element or of its `value`): a PUT of the result then keeps it.
            tolerance::json_encoded_element(attr, &mut m);
            let mut o = Map::new();
            for s in &attr.sub_attributes {
                if let Some(x) = m.remove(&s.name) {
                    o.insert(s.name.clone(), x);
                }
            }
            o.extend(m);
            Value::Object(o)
        }
        other => other,
    };
    match v {
        Value::Array(xs) => {
            let needs_value = attr.sub("value").is_some();
            // Exact duplicates (after decoding and ordering) are kept once, as they would be
            // when the result is sent back as a PUT.
            let mut seen = std::collections::HashSet::with_capacity(xs.len());
            let kept: Vec<Value> = xs
                .into_iter()
                .map(order)
                .filter(|e| !needs_value || e.get("value").is_some_and(|v| !tolerance::is_clear(v)))
                .filter(|e| seen.insert(canonical_key(e)))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(order(other)),
    }
}

/// Checks that every required attribute (and required extension) is present.
pub fn check_required(def: &ResourceDef<'_>, resource: &Value) -> Result<()> {
    let mut missing = Vec::new();
    let has = |holder: Option<&Value>, a: &Attribute| holder.and_then(|h| h.get(&a.name)).is_some();
    for a in def.core.attributes.iter() {
        let is_member = def.member_attribute().is_some_and(|m| std::ptr::eq(m, a));
        if a.required && a.mutability != Mutability::ReadOnly && !is_member && !has(Some(resource), a) {
            missing.push(a.name.clone());
        }
    }
    for (schema, required) in &def.extensions {
        let holder = resource.get(&schema.id);
        if *required && holder.is_none() {
            missing.push(schema.id.clone());
            continue;
        }
        for a in schema.attributes.iter().filter(|a| a.required && a.mutability != Mutability::ReadOnly) {
            if holder.is_some() && !has(holder, a) {
                missing.push(format!("{}:{}", schema.id, a.name));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!("required attribute missing: {}", missing.join(", "))))
    }
}

/// Reads a list of members: objects with a `value`, at most `limits.max_members`, each id
/// once (the first mention wins). Linear in the number of members.
pub fn parse_members(v: &Value, limits: &Limits) -> Result<Vec<Member>> {
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(xs) => xs.iter().collect(),
        Value::Object(_) => vec![v],
        other => {
            return Err(ScimError::invalid_value(format!(
                "members must be a list of objects such as {{\"value\": \"<id>\"}}, not {} ({})",
                json_type(other),
                shown(other)
            )));
        }
    };
    if items.len() > limits.max_members {
        return Err(ScimError::too_many(format!(
            "{} members in one request; the limit is {} (send the rest in further PATCH requests)",
            items.len(),
            limits.max_members
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (i, x) in items.into_iter().enumerate() {
        let (value, kind, display) = match x {
            Value::Object(m) => {
                let get = |k: &str| m.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
                let kind = get("type").and_then(Value::as_str).map(|t| {
                    if t.eq_ignore_ascii_case("user") {
                        "User".to_owned()
                    } else if t.eq_ignore_ascii_case("group") {
                        "Group".to_owned()
                    } else {
                        t.to_owned()
                    }
                });
                let display = get("display").and_then(Value::as_str).filter(|d| !d.is_empty()).map(str::to_owned);
                (get("value").and_then(Value::as_str), kind, display)
            }
            other => {
                return Err(ScimError::invalid_value(format!(
                    "members[{i}] must be an object such as {{\"value\": \"<id>\"}}, not {} ({})",
                    json_type(other),
                    shown(other)
                )));
            }
        };
        match value {
            Some(v) if !v.is_empty() => {
                if seen.insert(v) {
                    out.push(Member { value: v.to_owned(), kind, display });
                }
            }
            _ => {
                return Err(ScimError::invalid_value(format!("members[{i}] needs a \"value\" with the member's id")));
            }
        }
    }
    Ok(out)
}

/// Coerces `v` to the attribute's type; `None` when it is empty ("clear").
pub(crate) fn normalize_attr(
    attr: &Attribute,
    v: &Value,
    unknown: UnknownAttributes,
    limits: &Limits,
    at: &str,
) -> Result<Option<Value>> {
    if attr.multi_valued {
        let items: Vec<&Value> = match v {
            Value::Array(xs) => xs.iter().collect(),
            Value::Null => return Ok(None),
            // One element of a multi-valued complex attribute (a PATCH adding one email).
            Value::Object(_) if attr.ty == AttrType::Complex => vec![v],
            other => return Err(wrong_type(attr, at, other)),
        };
        if items.len() > limits.max_values {
            return Err(ScimError::invalid_value(format!(
                "{at} has {} values; the limit is {} per attribute",
                items.len(),
                limits.max_values
            )));
        }
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for x in items {
            if let Some(n) = normalize_single(attr, x, unknown, limits, at)? {
                // Duplicates are dropped; their canonical JSON text is the key (linear time).
                if seen.insert(canonical_key(&n)) {
                    out.push(n);
                }
            }
        }
        if attr.ty == AttrType::Complex {
            let primaries = out.iter().filter(|e| e.get("primary") == Some(&Value::Bool(true))).count();
            if primaries > 1 {
                return Err(ScimError::invalid_value(format!(
                    "{at}: only one value may have \"primary\": true (RFC 7643 §2.4), {primaries} do"
                )));
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    match tolerance::single_from_list(attr, v) {
        Some(single) => normalize_single(attr, &single, unknown, limits, at),
        None => normalize_single(attr, v, unknown, limits, at),
    }
}

/// A text that is the same for equal values whatever the order of their object keys: what
/// de-duplication of multi-valued attributes compares.
pub(crate) fn canonical_key(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(x) = m.get(k) {
                        write(x, out);
                    }
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(xs) => {
                out.push('[');
                for x in xs {
                    write(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// At most 60 characters of a value, for error details.
fn shown(v: &Value) -> String {
    let mut shown = v.to_string();
    if shown.len() > 60 {
        let cut = (0..=60).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    shown
}

/// The JSON type of a value, for error details.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(attr: &Attribute, at: &str, v: &Value) -> ScimError {
    let one = match attr.ty {
        AttrType::Complex => "an object",
        AttrType::Boolean => "a boolean",
        AttrType::Integer => "an integer",
        AttrType::Decimal => "a number",
        AttrType::DateTime => "a dateTime such as \"2024-01-31T12:00:00Z\"",
        AttrType::Binary => "base64-encoded binary data",
        AttrType::String | AttrType::Reference => "a string",
    };
    let what = if attr.multi_valued { format!("a list, each element {one}") } else { one.to_owned() };
    ScimError::invalid_value(format!("{at} must be {what}, not {} ({})", json_type(v), shown(v)))
}

fn normalize_single(
    attr: &Attribute,
    v: &Value,
    unknown: UnknownAttributes,
    limits: &Limits,
    at: &str,
) -> Result<Option<Value>> {
    let v = tolerance::unwrap_value_object(attr, v).unwrap_or(v);
    if tolerance::is_clear(v) {
        return Ok(None);
    }
    let out = match attr.ty {
        AttrType::Complex => {
            let converted;
            let obj = match v {
                Value::Object(m) => m,
                other => match tolerance::scalar_for_complex(attr, other) {
                    Some(Value::Object(m)) => {
                        converted = m;
                        &converted
                    }
                    _ => return Err(wrong_type(attr, at, v)),
                },
            };
            let decoded;
            let obj = if attr.multi_valued && obj.get("value").is_some_and(Value::is_string) {
                let mut m = obj.clone();
                tolerance::json_encoded_element(attr, &mut m);
                decoded = m;
                &decoded
            } else {
                obj
            };
            let mut out = Map::new();
            for (k, x) in obj {
                let Some(sub) = attr.sub(k) else {
                    unknown_attribute(&format!("{at}.{k}"), unknown)?;
                    continue;
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(n) = normalize_attr(sub, x, unknown, limits, &format!("{at}.{}", sub.name))? {
                    out.insert(sub.name.clone(), n);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        AttrType::String | AttrType::Reference => {
            let Value::String(s) = v else { return Err(wrong_type(attr, at, v)) };
            let s = s.clone();
            let canonical = attr.canonical_values.iter().find(|c| c.eq_ignore_ascii_case(&s));
            Value::String(canonical.cloned().unwrap_or(s))
        }
        AttrType::Boolean => Value::Bool(tolerance::bool_value(v).ok_or_else(|| wrong_type(attr, at, v))?),
        AttrType::Integer => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                _ => None,
            };
            Value::Number(Number::from(n.ok_or_else(|| wrong_type(attr, at, v))?))
        }
        AttrType::Decimal => {
            let n = match v {
                Value::Number(n) => Some(n.clone()),
                _ => None,
            };
            Value::Number(n.ok_or_else(|| wrong_type(attr, at, v))?)
        }
        AttrType::DateTime => match v {
            Value::String(s) if tolerance::lenient_datetime(s).is_some() => v.clone(),
            _ => return Err(wrong_type(attr, at, v)),
        },
        AttrType::Binary => match v {
            Value::String(s) if is_base64(s) => v.clone(),
            _ => return Err(wrong_type(attr, at, v)),
        },
    };
    Ok(Some(out))
}

fn is_base64(s: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().any(|e| e.decode(&compact).is_ok())
}
