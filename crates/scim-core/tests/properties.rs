//! Property tests: filters survive display then parse, PATCH add then remove is the identity,
//! and no generated PATCH or filter makes the core panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use scim_core::patch::{self, PatchRequest};
use scim_core::resource::{self, UnknownAttributes};
use scim_core::{AttrPath, CompareOp, Filter, FilterLimits, Literal, Registry, eval};
use serde_json::{Map, Number, Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

// ---------------------------------------------------------------------------------------------
// Filter ASTs
// ---------------------------------------------------------------------------------------------

/// Attribute paths as clients write them: plain, dotted, URN-qualified, odd case, `$ref`.
const ATTR_PATHS: &[&str] = &[
    "userName",
    "UserName",
    "displayName",
    "title",
    "active",
    "id",
    "externalId",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "meta.lastModified",
    "meta.created",
    "members.$ref",
    "x-custom_attr2",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:example:custom:1.0:Thing:Level",
];

/// Attributes that take a value filter.
const VALUE_PATH_ATTRS: &[&str] = &[
    "emails",
    "phoneNumbers",
    "addresses",
    "ims",
    "roles",
    "members",
    "Emails",
    "urn:ietf:params:scim:schemas:core:2.0:User:emails",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
];

/// Sub-attribute names inside a value filter.
const SUB_NAMES: &[&str] = &["type", "value", "primary", "display", "streetAddress", "$ref", "Type"];

fn attr_path(names: &'static [&'static str]) -> impl Strategy<Value = AttrPath> + Clone {
    prop::sample::select(names).prop_map(|p| AttrPath::parse(p).unwrap())
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(CompareOp::ALL.to_vec())
}

/// Strings with the characters that need care: quotes, backslashes, control characters,
/// non-ASCII letters, astral-plane characters, and keywords.
fn tricky_string() -> impl Strategy<Value = String> {
    tricky_text(true)
}

/// [`tricky_string`], or with `unicode` false its ASCII-only variant.
fn tricky_text(unicode: bool) -> BoxedStrategy<String> {
    let ascii = prop_oneof![
        4 => prop::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just(' '),
        1 => Just('('),
        1 => Just(']'),
        1 => prop::sample::select(vec!['\n', '\t', '\u{1}', '\u{1f}', '\u{7f}', '.', ':', '$']),
        // Not U+0000: strings with it are refused (see `nul_in_filter_literals_is_refused`).
        1 => prop::char::range('\u{1}', '\u{7f}'),
    ];
    let ch = if unicode {
        prop_oneof![
            8 => ascii,
            1 => prop::sample::select(vec!['é', 'ß', 'İ', 'Σ', '中', '😀', '\u{2028}']),
            1 => any::<char>().prop_filter("no U+0000", |c| *c != '\0'),
        ]
        .boxed()
    } else {
        ascii.boxed()
    };
    prop_oneof![
        8 => prop::collection::vec(ch, 0..12).prop_map(String::from_iter),
        1 => prop::sample::select(vec!["and", "or", "not", "pr", "eq", "true", "null", "5"]).prop_map(str::to_owned),
    ]
    .boxed()
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        4 => tricky_string().prop_map(Literal::String),
        2 => any::<i64>().prop_map(|n| Literal::Number(Number::from(n))),
        1 => any::<u64>().prop_map(|n| Literal::Number(Number::from(n))),
        1 => any::<bool>().prop_map(Literal::Bool),
        1 => Just(Literal::Null),
    ]
}

fn leaf(paths: impl Strategy<Value = AttrPath> + Clone) -> impl Strategy<Value = Filter> {
    prop_oneof![
        4 => (paths.clone(), compare_op(), literal()).prop_map(|(p, op, v)| Filter::Compare(p, op, v)),
        1 => paths.prop_map(Filter::Present),
    ]
}

/// And/Or with 2-4 terms and Not over `inner`.
///
/// Any nesting round-trips: `Display` parenthesises And/Or children of And and Or children of
/// Or, and the parser keeps a parenthesised group as its own node (it only flattens one
/// level of `a and b and c`), so `And([And([a, b]), c])` prints as `(a and b) and c` and
/// parses back the same. Only single-term And/Or (printed as the bare term) would not.
fn combine(inner: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    prop_oneof![
        2 => prop::collection::vec(inner.clone(), 2..=4).prop_map(Filter::And),
        2 => prop::collection::vec(inner.clone(), 2..=4).prop_map(Filter::Or),
        1 => inner.prop_map(|f| Filter::Not(Box::new(f))),
    ]
}

/// The filter inside `attr[...]`: sub-attribute names only, and no value path of its own.
fn value_filter() -> impl Strategy<Value = Filter> {
    leaf(attr_path(SUB_NAMES)).prop_recursive(2, 8, 4, combine)
}

/// Any filter the parser can produce, up to depth 4.
fn filter() -> impl Strategy<Value = Filter> {
    let base = prop_oneof![
        4 => leaf(attr_path(ATTR_PATHS)),
        1 => (attr_path(VALUE_PATH_ATTRS), value_filter()).prop_map(|(p, f)| Filter::ValuePath(p, Box::new(f))),
    ];
    base.prop_recursive(4, 24, 4, combine)
}

#[test]
fn nul_in_filter_literals_is_refused() {
    for text in [r#"userName eq "a\u0000b""#, r#"emails[value sw "\u0000"]"#] {
        let e = Filter::parse(text).unwrap_err();
        assert!(e.detail.contains("U+0000"), "{text}: {e}");
    }
}

proptest! {
    #[test]
    fn filter_display_then_parse_is_identity(f in filter()) {
        let text = f.to_string();
        let limits = FilterLimits { max_len: usize::MAX, ..FilterLimits::default() };
        let parsed = if text.len() <= FilterLimits::default().max_len {
            Filter::parse(&text)
        } else {
            Filter::parse_with(&text, &limits)
        };
        prop_assert_eq!(parsed, Ok(f.clone()), "text: {}", text);
        // And the text is a fixed point.
        prop_assert_eq!(Filter::parse_with(&text, &limits).unwrap().to_string(), text);
    }
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// A random User body from a few optional attributes. It never has `nickName`, `title`, an
/// email of type `other` or an email / role outside the `@work.example` / letters-only forms,
/// so the properties below can add those and know they were absent.
fn user_body() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9._-]{0,11}",
        proptest::option::of("[A-Za-z][A-Za-z ]{0,15}"),
        proptest::option::of(("[A-Za-z]{1,10}", "[A-Za-z']{1,10}")),
        proptest::option::of(any::<bool>()),
        prop::collection::vec(("[a-z]{1,8}", prop::sample::select(vec!["work", "home"]), any::<bool>()), 0..3),
        prop::collection::vec("[A-Za-z]{1,8}", 0..3),
        proptest::option::of("[0-9]{1,6}"),
        proptest::option::of("[A-Za-z0-9-]{1,12}"),
    )
        .prop_map(|(user_name, display, name, active, emails, roles, employee_number, external_id)| {
            let mut m = Map::new();
            m.insert("schemas".into(), json!([USER]));
            m.insert("userName".into(), json!(user_name));
            if let Some(d) = display {
                m.insert("displayName".into(), json!(d));
            }
            if let Some((given, family)) = name {
                m.insert("name".into(), json!({"givenName": given, "familyName": family}));
            }
            if let Some(a) = active {
                m.insert("active".into(), json!(a));
            }
            if !emails.is_empty() {
                let mut primary_used = false;
                let list: Vec<Value> = emails
                    .into_iter()
                    .map(|(local, ty, primary)| {
                        let mut e = json!({"value": format!("{local}@work.example"), "type": ty});
                        if primary && !primary_used {
                            primary_used = true;
                            e["primary"] = json!(true);
                        }
                        e
                    })
                    .collect();
                m.insert("emails".into(), Value::Array(list));
            }
            if !roles.is_empty() {
                m.insert("roles".into(), Value::Array(roles.into_iter().map(|r| json!({"value": r})).collect()));
            }
            if let Some(n) = employee_number {
                m.insert(ENT.into(), json!({"employeeNumber": n}));
            }
            if let Some(x) = external_id {
                m.insert("externalId".into(), json!(x));
            }
            Value::Object(m)
        })
}

/// The stored form of a random User.
fn stored_user() -> impl Strategy<Value = Value> {
    user_body().prop_map(|body| {
        let reg = Registry::standard();
        let def = reg.resource("User").unwrap();
        resource::ingest(&def, &body, UnknownAttributes::Reject)
            .unwrap_or_else(|e| panic!("generated user {body} rejected: {e}"))
            .resource
    })
}

fn ops(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// Applies one PATCH body to a User; panics on error.
fn patch_user(user: &Value, body: &Value) -> scim_core::patch::PatchOutcome {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let req = PatchRequest::parse(body, &Default::default()).unwrap_or_else(|e| panic!("parse {body}: {e}"));
    patch::apply(&def, user, &req).unwrap_or_else(|e| panic!("apply {body}: {e}"))
}

/// A filter literal for `s`: a JSON string.
fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A multi-valued element the random user does not have, and the value filter that selects it.
fn new_element() -> impl Strategy<Value = (&'static str, Value, String)> {
    // Any character but U+0000, which strings may not hold.
    let anything = prop::collection::vec(any::<char>().prop_filter("no U+0000", |c| *c != '\0'), 0..12)
        .prop_map(String::from_iter);
    prop_oneof![
        anything.clone().prop_map(|local| {
            let v = format!("{local}@other.example");
            ("emails", json!({"type": "other", "value": v}), format!("emails[value eq {}]", quoted(&v)))
        }),
        tricky_string().prop_map(|local| {
            let v = format!("{local}@other.example");
            (
                "emails",
                json!({"value": v, "type": "other"}),
                format!("emails[type eq \"other\" and value eq {}]", quoted(&v)),
            )
        }),
        anything.prop_map(|r| {
            let v = format!("new-{r}");
            ("roles", json!({"value": v}), format!("roles[value eq {}]", quoted(&v)))
        }),
    ]
}

proptest! {
    /// RFC 7644 §3.5.2.1 add then §3.5.2.2 remove of a value not present gives back the resource.
    #[test]
    fn add_then_remove_of_a_new_multi_valued_element_is_identity(
        user in stored_user(),
        (attr, element, remove_path) in new_element(),
        as_array in any::<bool>(),
    ) {
        let value = if as_array { json!([element]) } else { element.clone() };
        let add = ops(json!([{"op": "add", "path": attr, "value": value}]));
        let remove = ops(json!([{"op": "remove", "path": remove_path}]));

        // Two requests.
        let added = patch_user(&user, &add);
        prop_assert!(added.changed);
        let list = added.resource[attr].as_array().cloned().unwrap_or_default();
        prop_assert!(list.contains(&element), "{} should hold {}: {}", attr, element, added.resource);
        let removed = patch_user(&added.resource, &remove);
        prop_assert_eq!(&removed.resource, &user);

        // One request with both operations.
        let both = ops(json!([
            {"op": "add", "path": attr, "value": value},
            {"op": "remove", "path": remove_path}
        ]));
        let out = patch_user(&user, &both);
        prop_assert_eq!(&out.resource, &user);
        prop_assert!(!out.changed, "nothing changed overall");
    }

    /// Add then remove of a single-valued attribute that is not present gives back the resource.
    #[test]
    fn add_then_remove_of_a_new_single_valued_attribute_is_identity(
        user in stored_user(),
        attr in prop::sample::select(vec!["nickName", "title", "nickname", "TITLE"]),
        value in prop::collection::vec(any::<char>(), 1..16).prop_map(String::from_iter),
    ) {
        let add = ops(json!([{"op": "add", "path": attr, "value": value}]));
        let remove = ops(json!([{"op": "remove", "path": attr}]));
        let added = patch_user(&user, &add);
        let canonical = if attr.eq_ignore_ascii_case("title") { "title" } else { "nickName" };
        prop_assert_eq!(&added.resource[canonical], &json!(value));
        let removed = patch_user(&added.resource, &remove);
        prop_assert_eq!(&removed.resource, &user);

        let both = ops(json!([{"op": "add", "path": attr, "value": value}, {"op": "remove", "path": attr}]));
        prop_assert_eq!(&patch_user(&user, &both).resource, &user);

        // The path-less form of add, then remove by path.
        let mut attrs = Map::new();
        attrs.insert(attr.to_owned(), json!(value));
        let pathless = ops(json!([{"op": "add", "value": attrs}]));
        let added = patch_user(&user, &pathless);
        prop_assert_eq!(&added.resource[canonical], &json!(value));
        prop_assert_eq!(&patch_user(&added.resource, &remove).resource, &user);
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: no panics
// ---------------------------------------------------------------------------------------------

const PATCH_PATHS: &[&str] = &[
    "userName",
    "nickName",
    "active",
    "name",
    "name.givenName",
    "emails",
    "emails.value",
    "emails[type eq \"work\"]",
    "emails[type eq \"work\"].value",
    "emails[type eq \"work\" and value ew \"example.com\"]",
    "emails[value co \"@\" or primary eq true].primary",
    "emails[not (type pr)]",
    "addresses[type eq \"work\"].streetAddress",
    "phoneNumbers[type eq \"mobile\"]",
    "roles[primary eq \"True\"].value",
    "members",
    "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]",
    "members[value eq \"a\" or value eq \"b\"]",
    "members[display eq \"x\"]",
    "members.value",
    "displayName",
    "id",
    "meta",
    "meta.created",
    "groups",
    "externalId",
    "x509Certificates",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:example:unknown:2.0:User:thing",
    "unknownAttribute",
    "name[givenName eq \"x\"]",
    "emails[type eq",
    "emails[type eq \"work\"].",
    "emails]",
    "",
    " ",
];

const VALUE_KEYS: &[&str] = &[
    "value",
    "type",
    "primary",
    "display",
    "userName",
    "nickname",
    "name",
    "givenName",
    "emails",
    "members",
    "active",
    "id",
    "meta",
    "schemas",
    "$ref",
    "streetAddress",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "name.familyName",
    "emails[type eq \"work\"].value",
    "manager",
];

/// Random JSON; object keys are ASCII unless `unicode`.
fn json_value(unicode: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        tricky_string().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "True",
            "false",
            "work",
            "2011-05-13T04:42:34Z",
            "{\"value\":\"x\"}",
            "aGVsbG8="
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        let key = prop_oneof![
            4 => prop::sample::select(VALUE_KEYS).prop_map(str::to_owned),
            1 => tricky_text(unicode),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A random PATCH operation; its path and value keys are ASCII unless `unicode`.
fn patch_op(unicode: bool) -> impl Strategy<Value = Value> {
    let op = prop::sample::select(vec!["add", "replace", "remove", "Add", "REPLACE", "Remove", "move", ""]);
    let path = prop_oneof![
        4 => prop::sample::select(PATCH_PATHS).prop_map(|p| Some(Value::from(p))),
        1 => tricky_text(unicode).prop_map(|s| Some(Value::from(s))),
        1 => (attr_path(VALUE_PATH_ATTRS), value_filter())
            .prop_map(|(a, f)| Some(Value::from(format!("{a}[{f}]")))),
        1 => Just(Some(json!(5))),
        2 => Just(None),
    ];
    (op, path, proptest::option::of(json_value(unicode))).prop_map(|(op, path, value)| {
        let mut m = Map::new();
        m.insert("op".into(), json!(op));
        if let Some(p) = path {
            m.insert("path".into(), p);
        }
        if let Some(v) = value {
            m.insert("value".into(), v);
        }
        Value::Object(m)
    })
}

/// Parses and applies a PATCH to a User and to a Group; returns Err on a broken invariant.
fn apply_anything(user: &Value, operations: Vec<Value>) -> Result<(), TestCaseError> {
    let reg = Registry::standard();
    let body = ops(Value::Array(operations));
    if let Ok(req) = PatchRequest::parse(&body, &Default::default()) {
        let user_def = reg.resource("User").unwrap();
        if let Ok(out) = patch::apply(&user_def, user, &req) {
            prop_assert!(out.resource.is_object());
            prop_assert!(out.resource.get("userName").is_some(), "userName is required: {}", out.resource);
        }
        let _ = patch::apply_with(&user_def, user, &req, UnknownAttributes::Reject);
        let group_def = reg.resource("Group").unwrap();
        let group =
            resource::ingest(&group_def, &json!({"displayName": "g"}), UnknownAttributes::Drop).unwrap().resource;
        let _ = patch::apply(&group_def, &group, &req);
    }
    Ok(())
}

proptest! {
    /// Parsing and applying any PATCH returns Ok or Err and never panics (ASCII paths and keys).
    #[test]
    fn applying_any_patch_never_panics(
        user in stored_user(),
        operations in prop::collection::vec(patch_op(false), 0..5),
    ) {
        apply_anything(&user, operations)?;
    }

    /// The same with non-ASCII characters in paths and in the keys of path-less values.
    #[test]
    fn applying_any_patch_with_unicode_paths_never_panics(
        user in stored_user(),
        operations in prop::collection::vec(patch_op(true), 0..5),
    ) {
        apply_anything(&user, operations)?;
    }

    /// Evaluating any filter against any user returns Ok or Err and never panics.
    #[test]
    fn evaluating_any_filter_never_panics(user in stored_user(), f in filter()) {
        let reg = Registry::standard();
        let def = reg.resource("User").unwrap();
        let _ = eval::check(&def, &f);
        let _ = eval::matches(&def, &f, &user);
    }

    /// Parsing arbitrary ASCII text, or any prefix of a valid filter, never panics.
    #[test]
    fn parsing_any_ascii_text_never_panics(text in prop_oneof![
        "[\\x00-\\x7f]{0,40}",
        filter().prop_map(|f| f.to_string()).prop_flat_map(|s| {
            let len = s.chars().count();
            (Just(s), 0..=len)
        }).prop_map(|(s, cut)| s.chars().take(cut).collect::<String>()),
    ]) {
        let _ = Filter::parse(&text);
        let _ = scim_core::Path::parse(&text);
    }

    /// Parsing arbitrary text never panics.
    #[test]
    fn parsing_any_text_never_panics(text in any::<String>()) {
        let _ = Filter::parse(&text);
        let _ = scim_core::Path::parse(&text);
    }
}

/// The shortest form of the panic the unicode properties find: an attribute word longer than
/// four bytes whose fourth byte is inside a multi-byte character.
#[test]
fn non_ascii_attribute_words_are_errors_not_panics() {
    let e = Filter::parse("aéé pr").unwrap_err();
    assert_eq!(e.scim_type, Some(scim_core::ScimType::InvalidFilter), "{e}");
    let e = scim_core::Path::parse("aéé").unwrap_err();
    assert_eq!(e.scim_type, Some(scim_core::ScimType::InvalidPath), "{e}");

    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let user = resource::ingest(&def, &json!({"userName": "a"}), UnknownAttributes::Drop).unwrap().resource;
    let req = PatchRequest::parse(&ops(json!([{"op": "add", "value": {"aéé": "x"}}])), &Default::default()).unwrap();
    assert_eq!(patch::apply(&def, &user, &req).unwrap().resource, user, "unknown keys are dropped");
    let body = json!({"userName": "a", "aéé": "x"});
    assert_eq!(resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap().resource, user);
    assert!(resource::ingest(&def, &body, UnknownAttributes::Reject).is_err());
}

proptest! {
    /// A filter that passes the schema check (`eval::check`, what the server runs before a
    /// query) evaluates without error on every resource: an invalidFilter must not depend on
    /// which attributes a resource happens to hold.
    #[test]
    fn a_filter_that_passes_check_evaluates_without_error(user in stored_user(), f in filter()) {
        let reg = Registry::standard();
        let def = reg.resource("User").unwrap();
        if eval::check(&def, &f).is_ok() {
            let matched = eval::matches(&def, &f, &user);
            prop_assert!(matched.is_ok(), "{} passed check but failed on {}: {:?}", f, user, matched);
        }
    }
}

/// Found by fuzzing: `5e130` displayed and parsed again must be the same number.
#[test]
fn float_literals_survive_display_and_parse() {
    for text in ["x le 5e130", "N gt -1.0e37", "a[b eq 5e130]", "x eq 0.1"] {
        let f = scim_core::Filter::parse(text).unwrap();
        assert_eq!(scim_core::Filter::parse(&f.to_string()).unwrap(), f, "{text}");
    }
}

/// Found by fuzzing: a value filter rewritten with a sub-attribute comparison must still parse
/// after display at the depth limit.
#[test]
fn rewritten_value_filter_at_the_depth_limit_round_trips_or_is_refused() {
    let mut text = "emails[a pr or b pr].value eq 1".to_owned();
    for _ in 0..40 {
        text = format!("x pr and (y pr or {text})");
        if let Ok(f) = scim_core::Filter::parse(&text) {
            assert_eq!(scim_core::Filter::parse(&f.to_string()).unwrap(), f);
        }
    }
}

// ----- regressions found by the re-ingest oracle of the PATCH fuzz targets -----

fn two_email_user() -> Value {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let body = json!({"userName": "a", "emails": [{"value": "a@x.y", "type": "work", "primary": true}, {"value": "b@x.y", "type": "home"}]});
    resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap().resource
}

fn try_patch(user: &Value, body: &Value) -> Result<scim_core::patch::PatchOutcome, scim_core::ScimError> {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let req = PatchRequest::parse(body, &Default::default()).unwrap();
    patch::apply(&def, user, &req)
}

#[test]
fn replacing_emails_primary_on_every_element_is_refused_not_stored_as_two_primaries() {
    let e = try_patch(&two_email_user(), &ops(json!([{"op": "replace", "path": "emails.primary", "value": true}])))
        .unwrap_err();
    assert!(e.detail.contains("only one value may have"), "{e}");
}

#[test]
fn adding_an_element_equal_to_an_existing_one_keeps_one() {
    let user = two_email_user();
    let add =
        ops(json!([{"op": "add", "path": "emails[type eq \"other\"]", "value": {"value": "b@x.y", "type": "home"}}]));
    let out = try_patch(&user, &add).unwrap();
    assert_eq!(out.resource["emails"].as_array().unwrap().len(), 2, "{}", out.resource);
    let twice = try_patch(&out.resource, &add).unwrap();
    assert_eq!(twice.resource, out.resource);
}

#[test]
fn an_email_that_reads_like_json_is_stored_as_sent() {
    let set = ops(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "{\"value\":\"x\"}"}]));
    let out = try_patch(&two_email_user(), &set).unwrap();
    assert_eq!(out.resource["emails"][0]["value"], "{\"value\":\"x\"}");
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let again = resource::ingest(&def, &out.resource, UnknownAttributes::Drop).unwrap().resource;
    assert_eq!(again, out.resource, "only roles are JSON-decoded (Entra's app roles)");
}
