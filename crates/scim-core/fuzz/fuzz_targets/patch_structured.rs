//! PATCH engine on structured input: the fuzzer picks op names, paths, keys and values from
//! lists of what real clients (Entra ID, Okta) send, plus arbitrary text, so it reaches the
//! deep branches of the engine (value filters that create elements, members, extensions,
//! path-less values) without having to discover the JSON shape first. No panics allowed.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use scim_core::patch::{self, PatchRequest};
use scim_core::resource::UnknownAttributes;
use scim_core_fuzz::{GROUP, USER, assert_reingests, group_def, user_def};
use serde_json::{Map, Number, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const OPS: &[&str] = &["add", "Add", "ADD", "replace", "Replace", "remove", "Remove", "REMOVE", "delete", ""];

const PATHS: &[&str] = &[
    "emails[type eq \"work\"].value",
    "emails[type eq \"work\"]",
    "emails[type eq \"home\" and primary eq true].value",
    "emails[value co \"@\"]",
    "emails[not (type eq \"work\")].value",
    "emails[type eq \"work\" or type eq \"home\"].primary",
    "emails",
    "emails.value",
    "emails.primary",
    "name.givenName",
    "name.familyName",
    "name",
    "name.formatted",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
    "urn:ietf:params:scim:schemas:extension:contoso:2.0:User:badge",
    "manager",
    "members",
    "members[value eq \"x\"]",
    "members[value eq \"u1\" or value eq \"u2\"]",
    "members[display eq \"x\"]",
    "members.value",
    "active",
    "userName",
    "displayName",
    "externalId",
    "title",
    "phoneNumbers[type eq \"mobile\"].value",
    "phoneNumbers[type eq \"work\"]",
    "addresses[type eq \"work\"].streetAddress",
    "addresses[type eq \"work\"].formatted",
    "addresses",
    "roles",
    "roles[primary eq \"True\"].value",
    "entitlements[value eq \"license-e5\"]",
    "x509Certificates",
    "x509Certificates[value eq \"AAAA\"]",
    "groups",
    "id",
    "meta.created",
    "meta",
    "schemas",
    "nickName[value eq \"x\"]",
    "unknownAttribute",
];

const ATTRS: &[&str] = &[
    "emails",
    "phoneNumbers",
    "addresses",
    "roles",
    "entitlements",
    "ims",
    "photos",
    "x509Certificates",
    "members",
    "name",
    "manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "userName",
    "groups",
];

const SUBS: &[&str] =
    &["value", "type", "primary", "display", "$ref", "givenName", "streetAddress", "formatted", "country", "unknown"];

const KEYS: &[&str] = &[
    "value",
    "type",
    "primary",
    "display",
    "displayName",
    "$ref",
    "givenName",
    "familyName",
    "formatted",
    "name",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails[type eq \"work\"].value",
    "phoneNumbers",
    "addresses",
    "roles",
    "active",
    "userName",
    "externalId",
    "title",
    "id",
    "meta",
    "groups",
    "members",
    "schemas",
    "manager",
    "employeeNumber",
    "department",
    ENTERPRISE,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
    "urn:ietf:params:scim:schemas:extension:contoso:2.0:User",
    "urn:ietf:params:scim:schemas:extension:contoso:2.0:User:badge",
];

const STRINGS: &[&str] = &[
    "work",
    "home",
    "mobile",
    "other",
    "True",
    "False",
    "true",
    "",
    "x",
    "u1",
    "u2",
    "a@b.c",
    "User",
    "Group",
    "26118915-6090-4610-87e4-49d8ca9f808d",
    "2024-01-31T12:00:00Z",
    "2024-01-31T12:00:00",
    "AAAA",
    "701984",
    "{\"id\":\"27e8c4b4\",\"value\":\"Admin\",\"displayName\":\"Admin\"}",
    "{\"value\":\"\"}",
    "{",
];

fn pick<'a>(u: &mut Unstructured<'_>, list: &[&'a str]) -> Result<&'a str> {
    u.choose(list).copied()
}

/// A short arbitrary string, so the fuzzer can also try text outside the lists.
fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let len = u.int_in_range(0..=24)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(u.arbitrary::<char>()?);
    }
    Ok(s)
}

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 6)? { text(u) } else { Ok(pick(u, STRINGS)?.to_owned()) }
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? { text(u) } else { Ok(pick(u, KEYS)?.to_owned()) }
}

fn number(u: &mut Unstructured<'_>) -> Result<Number> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Number::from(u.int_in_range(-2i64..=2)?),
        1 => Number::from(u.arbitrary::<i64>()?),
        2 => Number::from(u.arbitrary::<u64>()?),
        _ => Number::from_f64(u.arbitrary::<f64>()?).unwrap_or_else(|| Number::from(0)),
    })
}

/// A JSON value, nested at most `depth` levels (serde_json refuses deeper bodies anyway).
fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(number(u)?),
        3 | 4 => Value::String(string(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            let mut xs = Vec::with_capacity(n);
            for _ in 0..n {
                xs.push(value(u, depth - 1)?);
            }
            Value::Array(xs)
        }
        _ => {
            let n = u.int_in_range(0..=5)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(key(u)?, value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

fn literal(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => "true".to_owned(),
        1 => "null".to_owned(),
        2 => number(u)?.to_string(),
        _ => Value::String(string(u)?).to_string(),
    })
}

/// A path composed from an attribute, an optional value filter and an optional sub-attribute.
fn composed_path(u: &mut Unstructured<'_>) -> Result<String> {
    let mut p = pick(u, ATTRS)?.to_owned();
    if u.arbitrary()? {
        let terms = u.int_in_range(1..=3)?;
        p.push('[');
        for i in 0..terms {
            if i > 0 {
                p.push_str(pick(u, &[" and ", " or ", " AND "])?);
            }
            let sub = pick(u, SUBS)?;
            if u.ratio(1, 5)? {
                p.push_str(&format!("{sub} pr"));
            } else {
                let op = pick(u, &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ"])?;
                p.push_str(&format!("{sub} {op} {}", literal(u)?));
            }
        }
        p.push(']');
    }
    if u.arbitrary()? {
        p.push('.');
        p.push_str(pick(u, SUBS)?);
    }
    Ok(p)
}

fn path(u: &mut Unstructured<'_>) -> Result<Option<Value>> {
    Ok(match u.int_in_range(0..=9)? {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(Value::String(text(u)?)),
        3 | 4 => Some(Value::String(composed_path(u)?)),
        _ => Some(Value::String(pick(u, PATHS)?.to_owned())),
    })
}

fn operation(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut op = Map::new();
    op.insert(pick(u, &["op", "Op", "OP"])?.to_owned(), Value::String(pick(u, OPS)?.to_owned()));
    if let Some(p) = path(u)? {
        op.insert("path".into(), p);
    }
    if u.ratio(7, 8)? {
        op.insert("value".into(), value(u, 3)?);
    }
    Ok(Value::Object(op))
}

fn body(u: &mut Unstructured<'_>) -> Result<Value> {
    let n = u.int_in_range(1..=6)?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        ops.push(operation(u)?);
    }
    let mut b = Map::new();
    b.insert("schemas".into(), serde_json::json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"]));
    b.insert(pick(u, &["Operations", "operations"])?.to_owned(), Value::Array(ops));
    Ok(Value::Object(b))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(body) = body(&mut u) else { return };
    let Ok(req) = PatchRequest::parse(&body, &Default::default()) else { return };
    let (user, group) = (user_def(), group_def());
    if let Ok(out) = patch::apply(&user, &USER, &req) {
        assert_reingests(&user, &out.resource, &body);
        if let Ok(again) = patch::apply(&user, &out.resource, &req) {
            assert_reingests(&user, &again.resource, &body);
        }
    }
    if let Ok(out) = patch::apply(&group, &GROUP, &req) {
        assert_reingests(&group, &out.resource, &body);
        if let Ok(again) = patch::apply(&group, &out.resource, &req) {
            assert_reingests(&group, &again.resource, &body);
        }
    }
    let _ = patch::apply_with(&user, &USER, &req, UnknownAttributes::Reject);
});
