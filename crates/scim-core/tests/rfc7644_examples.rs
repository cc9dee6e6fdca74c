//! The examples of RFC 7644 itself, applied to scim-core: every filter of §3.4.2.2 (parsed and
//! evaluated against a small set of users) with the semantic rules of that section, and every
//! PATCH of §3.5.2 with the error cases of §3.5.2 and §3.12.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use scim_core::eval;
use scim_core::patch::{self, MemberDelta, PatchOutcome, PatchRequest};
use scim_core::resource::{self, Member, UnknownAttributes};
use scim_core::{AttrPath, CompareOp, Filter, FilterLimits, Literal, Registry, ResourceDef, ScimError, ScimType};
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Babs Jensen's id in every RFC 7644 example.
const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
/// James Smith's id in the §3.5.2 examples.
const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A stored resource: the body through `ingest`, then the `id` and `meta` the server assigns.
fn stored(def: &ResourceDef<'_>, id: &str, last_modified: &str, body: Value) -> Value {
    let mut doc = resource::ingest(def, &body, UnknownAttributes::Reject)
        .unwrap_or_else(|e| panic!("fixture rejected: {e}"))
        .resource;
    let obj = doc.as_object_mut().unwrap();
    obj.insert("id".into(), json!(id));
    obj.insert(
        "meta".into(),
        json!({"resourceType": def.rt.name, "created": "2010-01-23T04:56:22Z", "lastModified": last_modified}),
    );
    doc
}

/// Four users, chosen so that every filter example of §3.4.2.2 matches at least one and misses
/// at least one. Keyed by `userName`.
///
/// | userName | title      | userType   | emails                                        | ims                       | lastModified              |
/// |----------|------------|------------|-----------------------------------------------|---------------------------|---------------------------|
/// | bjensen  | Tour Guide | Employee   | work bjensen@example.com, home babs@jensen.org | xmpp babs@jabber.example.net | 2011-05-13T04:42:34Z   |
/// | Jsmith   | -          | Intern     | home john@example.org                          | xmpp john@bar.com         | 2012-01-01T00:00:00Z      |
/// | alice    | Engineer   | Contractor | -                                              | xmpp alice@foo.com        | 2010-01-01T00:00:00Z      |
/// | dave     | -          | Employee   | work dave@other.net, home dave@example.com     | skype dave@foo.com        | 2011-05-13T06:42:34+02:00 (= bjensen's instant) |
fn users(def: &ResourceDef<'_>) -> Vec<(&'static str, Value)> {
    vec![
        (
            "bjensen",
            stored(
                def,
                BABS,
                "2011-05-13T04:42:34Z",
                json!({
                    "schemas": [USER, ENT],
                    "userName": "bjensen",
                    "externalId": "bjensen",
                    "name": {"familyName": "Jensen", "givenName": "Barbara"},
                    "title": "Tour Guide",
                    "userType": "Employee",
                    "active": true,
                    "emails": [
                        {"value": "bjensen@example.com", "type": "work", "primary": true},
                        {"value": "babs@jensen.org", "type": "home"}
                    ],
                    "ims": [{"value": "babs@jabber.example.net", "type": "xmpp"}],
                    ENT: {"employeeNumber": "701984"}
                }),
            ),
        ),
        (
            "Jsmith",
            stored(
                def,
                "6a9f1b2c-6c1d-4f3e-9a7b-000000000002",
                "2012-01-01T00:00:00Z",
                json!({
                    "schemas": [USER],
                    "userName": "Jsmith",
                    "externalId": "JS-1",
                    "name": {"familyName": "O'Malley", "givenName": "John"},
                    "userType": "Intern",
                    "active": false,
                    "emails": [{"value": "john@example.org", "type": "home"}],
                    "ims": [{"value": "john@bar.com", "type": "xmpp"}]
                }),
            ),
        ),
        (
            "alice",
            stored(
                def,
                "6a9f1b2c-6c1d-4f3e-9a7b-000000000003",
                "2010-01-01T00:00:00Z",
                json!({
                    "schemas": [USER],
                    "userName": "alice",
                    "name": {"familyName": "Liddell"},
                    "title": "Engineer",
                    "userType": "Contractor",
                    "ims": [{"value": "alice@foo.com", "type": "xmpp"}]
                }),
            ),
        ),
        (
            "dave",
            stored(
                def,
                "6a9f1b2c-6c1d-4f3e-9a7b-000000000004",
                "2011-05-13T06:42:34+02:00",
                json!({
                    "schemas": [USER],
                    "userName": "dave",
                    "name": {"familyName": "Jones"},
                    "userType": "Employee",
                    "active": true,
                    "emails": [
                        {"value": "dave@other.net", "type": "work"},
                        {"value": "dave@example.com", "type": "home"}
                    ],
                    "ims": [{"value": "dave@foo.com", "type": "skype"}]
                }),
            ),
        ),
    ]
}

fn parse(filter: &str) -> Filter {
    Filter::parse(filter).unwrap_or_else(|e| panic!("{filter:?} must parse: {e}"))
}

/// The users (by userName) that `filter` matches.
fn matching(filter: &str) -> Vec<&'static str> {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let f = parse(filter);
    eval::check(&def, &f).unwrap_or_else(|e| panic!("{filter:?} must pass the schema check: {e}"));
    users(&def)
        .into_iter()
        .filter(|(name, u)| eval::matches(&def, &f, u).unwrap_or_else(|e| panic!("{filter:?} on {name}: {e}")))
        .map(|(name, _)| name)
        .collect()
}

/// Parses `filter`, evaluates it on every user and compares the matches with `expected`.
fn assert_example(filter: &str, expected: &[&str]) {
    let all: Vec<&str> = {
        let reg = Registry::standard();
        let def = reg.resource("User").unwrap();
        users(&def).into_iter().map(|(n, _)| n).collect()
    };
    assert!(!expected.is_empty() && expected.len() < all.len(), "fixture: {filter:?} needs a match and a miss");
    assert_eq!(matching(filter), expected, "filter {filter:?}");
}

fn cmp(path: &str, op: CompareOp, value: &str) -> Filter {
    Filter::Compare(AttrPath::parse(path).unwrap(), op, Literal::String(value.to_owned()))
}

fn present(path: &str) -> Filter {
    Filter::Present(AttrPath::parse(path).unwrap())
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.4.2.2: the filter examples, in the RFC's order
// ---------------------------------------------------------------------------------------------

macro_rules! rfc_filter_example {
    ($(#[$meta:meta])* $name:ident: $filter:expr => [$($user:expr),* $(,)?]) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            assert_example($filter, &[$($user),*]);
        }
    };
}

rfc_filter_example!(rfc_filter_01_username_eq: r#"userName eq "bjensen""# => ["bjensen"]);
rfc_filter_example!(rfc_filter_02_family_name_co: r#"name.familyName co "O'Malley""# => ["Jsmith"]);
rfc_filter_example!(rfc_filter_03_username_sw: r#"userName sw "J""# => ["Jsmith"]);
rfc_filter_example!(
    rfc_filter_04_urn_qualified_username_sw: r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""# => ["Jsmith"]
);
rfc_filter_example!(rfc_filter_05_title_pr: "title pr" => ["bjensen", "alice"]);
rfc_filter_example!(
    rfc_filter_06_last_modified_gt: r#"meta.lastModified gt "2011-05-13T04:42:34Z""# => ["Jsmith"]
);
rfc_filter_example!(
    rfc_filter_07_last_modified_ge: r#"meta.lastModified ge "2011-05-13T04:42:34Z""# => ["bjensen", "Jsmith", "dave"]
);
rfc_filter_example!(
    rfc_filter_08_last_modified_lt: r#"meta.lastModified lt "2011-05-13T04:42:34Z""# => ["alice"]
);
rfc_filter_example!(
    rfc_filter_09_last_modified_le: r#"meta.lastModified le "2011-05-13T04:42:34Z""# => ["bjensen", "alice", "dave"]
);
rfc_filter_example!(
    rfc_filter_10_title_pr_and_user_type: r#"title pr and userType eq "Employee""# => ["bjensen"]
);
rfc_filter_example!(
    rfc_filter_11_title_pr_or_user_type: r#"title pr or userType eq "Intern""# => ["bjensen", "Jsmith", "alice"]
);
rfc_filter_example!(
    rfc_filter_12_schemas_eq_extension: r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""# => ["bjensen"]
);
rfc_filter_example!(
    rfc_filter_13_and_grouped_or:
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"# => ["bjensen", "dave"]
);
rfc_filter_example!(
    rfc_filter_14_ne_and_not_grouped_or:
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"# => ["alice"]
);
rfc_filter_example!(
    rfc_filter_15_and_parenthesised_sub_attribute: r#"userType eq "Employee" and (emails.type eq "work")"# => ["bjensen", "dave"]
);
rfc_filter_example!(
    rfc_filter_16_and_value_path:
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"# => ["bjensen"]
);
rfc_filter_example!(
    rfc_filter_17_value_path_or_value_path:
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"# => ["bjensen", "alice"]
);

/// The RFC prints the longer examples wrapped over two lines; a line break is whitespace.
#[test]
fn rfc_filter_examples_wrapped_as_printed_parse_like_one_line() {
    let pairs = [
        (
            "userType eq \"Employee\" and (emails co \"example.com\" or\n  emails.value co \"example.org\")",
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        ),
        (
            "emails[type eq \"work\" and value co \"@example.com\"] or\n  ims[type eq \"xmpp\" and value co \"@foo.com\"]",
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ),
    ];
    for (wrapped, one_line) in pairs {
        assert_eq!(parse(wrapped), parse(one_line));
    }
}

#[test]
fn rfc_filter_example_asts() {
    assert_eq!(parse(r#"userName eq "bjensen""#), cmp("userName", CompareOp::Eq, "bjensen"));
    assert_eq!(
        parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#),
        Filter::Compare(
            AttrPath { urn: Some(USER.to_owned()), name: "userName".into(), sub: None },
            CompareOp::Sw,
            Literal::String("J".into())
        )
    );
    assert_eq!(parse("title pr"), present("title"));
    assert_eq!(
        parse(r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#),
        Filter::And(vec![
            cmp("userType", CompareOp::Ne, "Employee"),
            Filter::Not(Box::new(Filter::Or(vec![
                cmp("emails", CompareOp::Co, "example.com"),
                cmp("emails.value", CompareOp::Co, "example.org"),
            ]))),
        ])
    );
    assert_eq!(
        parse(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#),
        Filter::And(vec![
            cmp("userType", CompareOp::Eq, "Employee"),
            Filter::ValuePath(
                AttrPath::name("emails"),
                Box::new(Filter::And(vec![
                    cmp("type", CompareOp::Eq, "work"),
                    cmp("value", CompareOp::Co, "@example.com"),
                ]))
            ),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.4.2.2: semantic rules
// ---------------------------------------------------------------------------------------------

/// RFC 7643 §4.1.1: userName has caseExact false; RFC 7643 §3.1: id and externalId are
/// caseExact true.
#[test]
fn user_name_is_case_insensitive_id_and_external_id_are_case_exact() {
    assert_eq!(matching(r#"userName eq "BJensen""#), ["bjensen"]);
    assert_eq!(matching(r#"userName eq "JSMITH""#), ["Jsmith"]);
    assert_eq!(matching(r#"userName sw "b""#), ["bjensen"]);

    assert_eq!(matching(&format!("id eq \"{BABS}\"")), ["bjensen"]);
    assert!(matching(&format!("id eq \"{}\"", BABS.to_uppercase())).is_empty(), "id is caseExact");

    assert_eq!(matching(r#"externalId eq "bjensen""#), ["bjensen"]);
    assert!(matching(r#"externalId eq "BJensen""#).is_empty(), "externalId is caseExact");
    assert!(matching(r#"externalId eq "js-1""#).is_empty(), "externalId is caseExact");
    assert_eq!(matching(r#"externalId eq "JS-1""#), ["Jsmith"]);
}

/// §3.4.2.2: "for DateTime types, it is a chronological comparison".
#[test]
fn last_modified_compares_as_instants() {
    // bjensen is stored as ...04:42:34Z, dave as the same instant written ...06:42:34+02:00.
    assert_eq!(matching(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#), ["bjensen", "dave"]);
    assert_eq!(matching(r#"meta.lastModified eq "2011-05-13T04:42:34Z""#), ["bjensen", "dave"]);
    // A string comparison would put "2011-05-13T04:42:34Z" before "2011-05-13T06:42:33+02:00".
    assert_eq!(matching(r#"meta.lastModified gt "2011-05-13T06:42:33+02:00""#), ["bjensen", "Jsmith", "dave"]);
    assert_eq!(matching(r#"meta.lastModified lt "2011-05-13T06:42:35+02:00""#), ["bjensen", "alice", "dave"]);
    assert_eq!(matching(r#"meta.lastModified ne "2011-05-13T04:42:34Z""#), ["Jsmith", "alice"]);
}

/// §3.4.2.2: "Boolean and Binary attributes SHALL cause a failed response (HTTP status code 400)
/// with "scimType" of "invalidFilter"" for gt/ge/lt/le.
#[test]
fn ordering_a_boolean_is_invalid_filter() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    for text in ["active gt true", "active ge false", "active lt true", "active le \"True\""] {
        let f = parse(text);
        let e = eval::check(&def, &f).expect_err(text);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text}: {e}");
        assert_eq!(e.status, 400);
        for (name, u) in users(&def) {
            let e = eval::matches(&def, &f, &u).expect_err(text);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text} on {name}: {e}");
        }
    }
}

/// Entra ID sends booleans as strings in filters (CLIENTS.md).
#[test]
fn active_eq_string_true_matches_boolean_true() {
    assert_eq!(matching(r#"active eq "True""#), ["bjensen", "dave"]);
    assert_eq!(matching(r#"active eq "true""#), ["bjensen", "dave"]);
    assert_eq!(matching("active eq true"), ["bjensen", "dave"]);
    assert_eq!(matching(r#"active eq "False""#), ["Jsmith"]);
    assert_eq!(matching("active eq false"), ["Jsmith"]);
}

/// `emails[type eq "work"].value eq "x"` (Entra's matching filter) is read as
/// `emails[type eq "work" and value eq "x"]`: both conditions on the same element.
#[test]
fn value_path_then_sub_attribute_comparison() {
    assert_eq!(matching(r#"emails[type eq "work"].value eq "bjensen@example.com""#), ["bjensen"]);
    assert_eq!(matching(r#"emails[type eq "work"].value eq "dave@other.net""#), ["dave"]);
    assert!(matching(r#"emails[type eq "work"].value eq "dave@example.com""#).is_empty(), "that one is home");
    assert_eq!(parse(r#"emails[type eq "work"].value eq "x""#), parse(r#"emails[type eq "work" and value eq "x"]"#));
}

/// §3.4.2.2: "Attribute names and attribute operators used in filters are case insensitive."
#[test]
fn keywords_operators_and_attribute_names_are_case_insensitive() {
    assert_eq!(parse(r#"userName EQ "x" AND title PR"#), parse(r#"userName eq "x" and title pr"#));
    assert_eq!(parse(r#"userName Eq "x" Or title pR"#), parse(r#"userName eq "x" or title pr"#));
    assert_eq!(parse(r#"NOT (title Pr) aNd userName sW "j""#), parse(r#"not (title pr) and userName sw "j""#));
    for op in CompareOp::ALL {
        let upper = op.as_str().to_uppercase();
        assert_eq!(parse(&format!("userName {upper} \"x\"")), cmp("userName", op, "x"), "operator {upper}");
    }
    assert_eq!(matching(r#"userName EQ "bjensen" AND title PR"#), ["bjensen"]);
    assert_eq!(matching(r#"USERNAME eq "bjensen""#), ["bjensen"]);
    assert_eq!(matching(r#"Emails[TYPE eq "work" AND Value co "@example.com"]"#), ["bjensen"]);
    assert_eq!(matching(r#"NAME.FAMILYNAME eq "jones""#), ["dave"]);
}

/// §3.4.2.2: "not" binds tighter than "and", which binds tighter than "or".
#[test]
fn precedence_not_then_and_then_or() {
    // a or b and c  ==  a or (b and c)
    assert_eq!(
        parse(r#"userName eq "alice" or title pr and userType eq "Intern""#),
        Filter::Or(vec![
            cmp("userName", CompareOp::Eq, "alice"),
            Filter::And(vec![present("title"), cmp("userType", CompareOp::Eq, "Intern")]),
        ])
    );
    // a and b or c  ==  (a and b) or c
    assert_eq!(
        parse(r#"title pr and userType eq "Intern" or userName eq "alice""#),
        Filter::Or(vec![
            Filter::And(vec![present("title"), cmp("userType", CompareOp::Eq, "Intern")]),
            cmp("userName", CompareOp::Eq, "alice"),
        ])
    );
    // not (a) and b  ==  (not a) and b
    assert_eq!(
        parse(r#"not (title pr) and userType eq "Employee""#),
        Filter::And(vec![Filter::Not(Box::new(present("title"))), cmp("userType", CompareOp::Eq, "Employee")])
    );
    // Parentheses override: (a or b) and c.
    assert_eq!(
        parse(r#"(userName eq "alice" or title pr) and userType eq "Intern""#),
        Filter::And(vec![
            Filter::Or(vec![cmp("userName", CompareOp::Eq, "alice"), present("title")]),
            cmp("userType", CompareOp::Eq, "Intern"),
        ])
    );

    // Evaluated: alice matches "a or (b and c)" through a alone; "(a or b) and c" would not.
    assert_eq!(matching(r#"userName eq "alice" or title pr and userType eq "Intern""#), ["alice"]);
    assert!(matching(r#"(userName eq "alice" or title pr) and userType eq "Intern""#).is_empty());
    assert_eq!(matching(r#"not (title pr) and userType eq "Employee""#), ["dave"]);
    assert_eq!(matching(r#"not (title pr) or userName eq "alice""#), ["Jsmith", "alice", "dave"]);
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.4.2.2 / §3.12: malformed filters are 400 invalidFilter, quickly, and say where
// ---------------------------------------------------------------------------------------------

/// Runs `f` on a thread with a small stack, so unbounded recursion would show as a crash.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap()
}

fn parse_error(text: String, limits: FilterLimits) -> (ScimError, Duration) {
    on_small_stack(move || {
        let start = Instant::now();
        let result = Filter::parse_with(&text, &limits);
        let took = start.elapsed();
        let shown: String = text.chars().take(60).collect();
        match result {
            Ok(f) => panic!("{shown:?} must not parse, got {f:?}"),
            Err(e) => (e, took),
        }
    })
}

fn assert_invalid_filter_with_position(text: &str) {
    let (e, took) = parse_error(text.to_owned(), FilterLimits::default());
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text:?}: {e}");
    assert_eq!(e.status, 400, "{text:?}");
    assert!(e.detail.contains("position"), "{text:?}: the detail should say where: {}", e.detail);
    assert!(took < Duration::from_secs(2), "{text:?} took {took:?}");
}

#[test]
fn malformed_filters_are_invalid_filter_with_a_position() {
    for text in [
        "userName eq",
        r#"userName xx "a""#,
        r#"(userName eq "a""#,
        r#"userName eq "unterminated"#,
        r#"emails[type eq "work""#,
        r#"userName eq "a" and"#,
        r#"userName eq "a" or or title pr"#,
        r#"userName eq "a")"#,
        "title pr title pr",
        r#"userName eq "bad \q escape""#,
        r#"emails[type eq "work"]."#,
        "",
        "   ",
        "not title pr",
        r#"emails[type eq "work" and ims[type eq "xmpp"]]"#,
    ] {
        if text.contains("ims[") {
            // Nested value filters: refused, but the message need not carry a position.
            let (e, _) = parse_error(text.to_owned(), FilterLimits::default());
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text:?}: {e}");
            continue;
        }
        assert_invalid_filter_with_position(text);
    }
}

#[test]
fn a_100_000_character_filter_is_refused_quickly() {
    let text = format!("userName eq \"{}\"", "a".repeat(100_000 - 14));
    assert_eq!(text.len(), 100_000);
    let (e, took) = parse_error(text, FilterLimits::default());
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");
    // Refused before reading: the detail states the length limit rather than a position.
    assert!(e.detail.contains("100000"), "{}", e.detail);
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // A 100,000-character chain of `or` is flat, not deep: with the length limit lifted it
    // parses, iteratively, on a small stack.
    let chain = vec![r#"userName eq "a""#; 100_000 / 19 + 1].join(" or ");
    assert!(chain.len() >= 100_000);
    let limits = FilterLimits { max_len: usize::MAX, ..FilterLimits::default() };
    let (terms, took) = on_small_stack(move || {
        let start = Instant::now();
        let f = Filter::parse_with(&chain, &limits).unwrap();
        (
            match f {
                Filter::Or(xs) => xs.len(),
                _ => 0,
            },
            start.elapsed(),
        )
    });
    assert_eq!(terms, 100_000 / 19 + 1);
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn ten_thousand_nested_parentheses_are_refused_without_stack_overflow() {
    let deep = |n: usize| format!("{}userName eq \"a\"{}", "(".repeat(n), ")".repeat(n));
    let deep_not = |n: usize| format!("{}title pr{}", "not (".repeat(n), ")".repeat(n));

    // With the default limits: too long.
    for text in [deep(10_000), deep_not(10_000)] {
        let (e, took) = parse_error(text, FilterLimits::default());
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    // Within the length limit, or with it lifted: too deep, and the detail says where.
    let lifted = FilterLimits { max_len: usize::MAX, ..FilterLimits::default() };
    for (text, limits) in [
        (deep(4_000), FilterLimits::default()),
        (deep(10_000), lifted),
        (deep_not(10_000), lifted),
        (format!("emails[{}type eq \"a\"{}]", "(".repeat(10_000), ")".repeat(10_000)), lifted),
    ] {
        let (e, took) = parse_error(text, limits);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");
        assert!(e.detail.contains("position"), "{}", e.detail);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    // The limit is not too tight for real filters.
    assert_eq!(parse(&deep(20)), cmp("userName", CompareOp::Eq, "a"));
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.5.2: PATCH
// ---------------------------------------------------------------------------------------------

fn ops(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

fn patch_ok(def: &ResourceDef<'_>, resource: &Value, body: &Value) -> PatchOutcome {
    let req = PatchRequest::parse(body, &Default::default()).unwrap_or_else(|e| panic!("parse {body}: {e}"));
    patch::apply(def, resource, &req).unwrap_or_else(|e| panic!("apply {body}: {e}"))
}

/// The error of a PATCH, whether `parse` or `apply` reports it.
fn patch_err(def: &ResourceDef<'_>, resource: &Value, body: &Value) -> ScimError {
    let req = match PatchRequest::parse(body, &Default::default()) {
        Err(e) => return e,
        Ok(req) => req,
    };
    match patch::apply(def, resource, &req) {
        Ok(out) => panic!("{body} should fail; it gave {}", out.resource),
        Err(e) => e,
    }
}

/// The RFC 7643 §8.2-style User the PATCH examples start from (work address primary false,
/// home address primary, so that §3.5.2.3's "reset primary" is observable).
fn base_user_body() -> Value {
    json!({
        "schemas": [USER],
        "userName": "bjensen",
        "externalId": "bjensen",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                "primary": false
            },
            {
                "type": "home",
                "streetAddress": "456 Hollywood Blvd",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
                "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA",
                "primary": true
            }
        ]
    })
}

/// The stored form of a User body (no id or meta: `apply` works on the stored document).
fn stored_user(def: &ResourceDef<'_>, body: &Value) -> Value {
    resource::ingest(def, body, UnknownAttributes::Reject).unwrap_or_else(|e| panic!("fixture: {e}")).resource
}

fn group_doc(def: &ResourceDef<'_>) -> Value {
    let g =
        resource::ingest(def, &json!({"schemas": [GROUP], "displayName": "Tour Guides"}), UnknownAttributes::Reject)
            .unwrap();
    g.resource
}

/// A member as the RFC's examples send it: with its `display`.
fn member(id: &str) -> Member {
    let display = match id {
        BABS => Some("Babs Jensen".to_owned()),
        JAMES => Some("James Smith".to_owned()),
        _ => None,
    };
    Member { value: id.to_owned(), kind: None, display }
}

/// Applies a Group PATCH and checks that the members stay out of the document.
fn patch_group(body: Value) -> MemberDelta {
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    let group = group_doc(&def);
    let out = patch_ok(&def, &group, &body);
    assert_eq!(out.resource, group, "members never enter the group document");
    assert!(out.resource.get("members").is_none());
    assert!(out.changed, "a member change is a change");
    out.members
}

/// §3.5.2.1: "The following example shows how to add a member to a group."
#[test]
fn rfc_patch_add_member_to_group() {
    let delta = patch_group(ops(json!([{
        "op": "add",
        "path": "members",
        "value": [{
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "value": "2819c223-7f76-453a-919d-413861904646"
        }]
    }])));
    assert_eq!(delta, MemberDelta { add: vec![member(BABS)], remove: vec![], remove_all: false });
}

/// §3.5.2.1: add to a multi-valued attribute appends the new value.
#[test]
fn rfc_patch_add_emails_with_value_array() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    body["emails"] = json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]);
    let user = stored_user(&def, &body);

    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]}])),
    );
    body["emails"] = json!([
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
    ]);
    assert_eq!(out.resource, stored_user(&def, &body));
    assert!(out.changed);
}

/// §3.5.2.1: "If the target location already contains the value specified, no changes SHOULD be
/// made to the resource".
#[test]
fn rfc_patch_add_existing_value_changes_nothing() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let user = stored_user(&def, &base_user_body());
    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]}])),
    );
    assert_eq!(out.resource, user);
    assert!(!out.changed);
}

/// §3.5.2.1: "add one or more attributes to a User resource without using a "path" attribute".
#[test]
fn rfc_patch_add_without_path() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    body["emails"] = json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]);
    let user = stored_user(&def, &body);

    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{
            "op": "add",
            "value": {
                "emails": [{"value": "babs@jensen.org", "type": "home"}],
                "nickname": "Babs"
            }
        }])),
    );
    body["emails"] = json!([
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
    ]);
    body["nickName"] = json!("Babs");
    assert_eq!(out.resource, stored_user(&def, &body));
    assert_eq!(out.resource["nickName"], "Babs", "attribute names are case-insensitive");
}

/// §3.5.2.2: remove one member of a group by a value filter.
#[test]
fn rfc_patch_remove_one_member() {
    let delta = patch_group(ops(json!([{
        "op": "remove",
        "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"
    }])));
    assert_eq!(delta, MemberDelta { add: vec![], remove: vec![BABS.to_owned()], remove_all: false });
}

/// §3.5.2.2: "The following example shows how to remove all members of a group".
#[test]
fn rfc_patch_remove_all_members() {
    let delta = patch_group(ops(json!([{"op": "remove", "path": "members"}])));
    assert_eq!(delta, MemberDelta { add: vec![], remove: vec![], remove_all: true });
}

/// §3.5.2.2: remove one member and add another, in one request. The RFC writes the filter
/// without a space before the value: `members[value eq\"2819c223...\"]`.
#[test]
fn rfc_patch_remove_and_add_members() {
    let delta = patch_group(ops(json!([
        {"op": "remove", "path": "members[value eq\"2819c223-7f76-453a-919d-413861904646\"]"},
        {
            "op": "add",
            "path": "members",
            "value": [{
                "display": "James Smith",
                "$ref": "https://example.com/v2/Users/08e1d05d-121c-4561-8b96-473d93df9210",
                "value": "08e1d05d-121c-4561-8b96-473d93df9210"
            }]
        }
    ])));
    assert_eq!(delta, MemberDelta { add: vec![member(JAMES)], remove: vec![BABS.to_owned()], remove_all: false });
}

/// Several members removed by several value-filter operations.
#[test]
fn rfc_patch_remove_multiple_members() {
    let delta = patch_group(ops(json!([
        {"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"},
        {"op": "remove", "path": "members[value eq \"08e1d05d-121c-4561-8b96-473d93df9210\"]"}
    ])));
    assert_eq!(delta, MemberDelta { add: vec![], remove: vec![BABS.to_owned(), JAMES.to_owned()], remove_all: false });
}

/// §3.5.2.2: "replace all of the members of a group with a different members list" as a remove
/// followed by an add.
#[test]
fn rfc_patch_remove_all_then_add_members() {
    let delta = patch_group(ops(json!([
        {"op": "remove", "path": "members"},
        {
            "op": "add",
            "path": "members",
            "value": [
                {
                    "display": "Babs Jensen",
                    "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                    "value": "2819c223-7f76-453a-919d-413861904646"
                },
                {
                    "display": "James Smith",
                    "$ref": "https://example.com/v2/Users/08e1d05d-121c-4561-8b96-473d93df9210",
                    "value": "08e1d05d-121c-4561-8b96-473d93df9210"
                }
            ]
        }
    ])));
    assert_eq!(delta, MemberDelta { add: vec![member(BABS), member(JAMES)], remove: vec![], remove_all: true });
}

/// §3.5.2.3: "replace all of the members of a group with a different members list in a single
/// replace operation".
#[test]
fn rfc_patch_replace_members() {
    let delta = patch_group(ops(json!([{
        "op": "replace",
        "path": "members",
        "value": [
            {
                "display": "Babs Jensen",
                "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                "value": "2819c223-7f76-453a-919d-413861904646"
            },
            {
                "display": "James Smith",
                "$ref": "https://example.com/v2/Users/08e1d05d-121c-4561-8b96-473d93df9210",
                "value": "08e1d05d-121c-4561-8b96-473d93df9210"
            }
        ]
    }])));
    assert_eq!(delta, MemberDelta { add: vec![member(BABS), member(JAMES)], remove: vec![], remove_all: true });
}

/// Group attributes other than members are patched in the document as usual.
#[test]
fn rfc_patch_group_display_name_and_members_together() {
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    let group = group_doc(&def);
    let out = patch_ok(
        &def,
        &group,
        &ops(json!([
            {"op": "replace", "path": "displayName", "value": "Tour Guides (EMEA)"},
            {"op": "add", "path": "members", "value": [{"value": BABS}]}
        ])),
    );
    assert_eq!(out.resource["displayName"], "Tour Guides (EMEA)");
    assert!(out.resource.get("members").is_none());
    assert_eq!(out.members, MemberDelta { add: vec![Member::id(BABS)], remove: vec![], remove_all: false });
}

/// §3.5.2.2: "Removal of a value from a complex multi-valued attribute".
#[test]
fn rfc_patch_remove_email_by_filter() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    let user = stored_user(&def, &body);
    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}])),
    );
    body["emails"] = json!([{"value": "babs@jensen.org", "type": "home"}]);
    assert_eq!(out.resource, stored_user(&def, &body));
}

/// §3.5.2.3: "change a User's entire "work" address, using a "valuePath" filter. Note that by
/// setting "primary" to "true", the service provider will reset "primary" to "false" for any
/// other existing values of "addresses"."
#[test]
fn rfc_patch_replace_work_address() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    let user = stored_user(&def, &body);
    let new_work = json!({
        "type": "work",
        "streetAddress": "911 Universal City Plaza",
        "locality": "Hollywood",
        "region": "CA",
        "postalCode": "91608",
        "country": "US",
        "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": true
    });
    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": new_work}])),
    );
    body["addresses"][0] = new_work;
    body["addresses"][1]["primary"] = json!(false);
    assert_eq!(out.resource, stored_user(&def, &body));
}

/// §3.5.2.3: "change a specific sub-attribute "streetAddress" ... selected by a "valuePath"
/// filter".
#[test]
fn rfc_patch_replace_work_street_address() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    let user = stored_user(&def, &body);
    let out = patch_ok(
        &def,
        &user,
        &ops(json!([{
            "op": "replace",
            "path": "addresses[type eq \"work\"].streetAddress",
            "value": "1010 Broadway Ave"
        }])),
    );
    body["addresses"][0]["streetAddress"] = json!("1010 Broadway Ave");
    assert_eq!(out.resource, stored_user(&def, &body));
}

/// §3.5.2.3: "replace all values of one or more specific attributes of a User resource. Note
/// that other attributes are unaffected."
#[test]
fn rfc_patch_replace_without_path() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut body = base_user_body();
    body["emails"] = json!([{"value": "old@example.com", "type": "other"}]);
    let user = stored_user(&def, &body);
    let emails = json!([
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
    ]);
    let out = patch_ok(&def, &user, &ops(json!([{"op": "replace", "value": {"emails": emails, "nickname": "Babs"}}])));
    body["emails"] = emails;
    body["nickName"] = json!("Babs");
    assert_eq!(out.resource, stored_user(&def, &body));
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.5.2 / §3.12: PATCH errors
// ---------------------------------------------------------------------------------------------

fn user_fixture() -> (Registry, Value) {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mut user = stored_user(&def, &base_user_body());
    let obj = user.as_object_mut().unwrap();
    obj.insert("id".into(), json!(BABS));
    obj.insert(
        "meta".into(),
        json!({"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}),
    );
    (reg, user)
}

fn assert_patch_error(body: Value, expected: ScimType) -> ScimError {
    let (reg, user) = user_fixture();
    let def = reg.resource("User").unwrap();
    let e = patch_err(&def, &user, &body);
    assert_eq!(e.scim_type, Some(expected), "{body}: {e}");
    assert_eq!(e.status, 400, "{body}");
    e
}

/// §3.5.2.2: "If "path" is unspecified, the operation fails with HTTP status code 400 and a
/// "scimType" error code of "noTarget"."
#[test]
fn remove_without_path_is_no_target() {
    assert_patch_error(ops(json!([{"op": "remove"}])), ScimType::NoTarget);
    assert_patch_error(ops(json!([{"op": "remove", "value": {"nickName": "Babs"}}])), ScimType::NoTarget);
}

/// §3.12 noTarget: "This occurs when the specified "path" value contains a filter that yields no
/// match."
#[test]
fn remove_with_a_filter_that_matches_nothing_is_no_target() {
    assert_patch_error(ops(json!([{"op": "remove", "path": "emails[type eq \"pager\"]"}])), ScimType::NoTarget);
    assert_patch_error(ops(json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}])), ScimType::NoTarget);
    assert_patch_error(
        ops(json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.org\"]"}])),
        ScimType::NoTarget,
    );
}

/// §3.12 invalidPath: "The "path" attribute was invalid or malformed".
#[test]
fn malformed_path_is_invalid_path() {
    for path in
        ["emails[type eq", "emails[type eq \"work\"", "emails[]", "name..givenName", "emails[type eq \"work\"]x"]
    {
        assert_patch_error(ops(json!([{"op": "remove", "path": path}])), ScimType::InvalidPath);
        assert_patch_error(ops(json!([{"op": "replace", "path": path, "value": "x"}])), ScimType::InvalidPath);
    }
}

/// §3.5.2: "A client MUST NOT modify an attribute that has mutability "readOnly"".
#[test]
fn replacing_id_or_meta_created_is_mutability() {
    assert_patch_error(ops(json!([{"op": "replace", "path": "id", "value": "other"}])), ScimType::Mutability);
    assert_patch_error(
        ops(json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}])),
        ScimType::Mutability,
    );
    assert_patch_error(ops(json!([{"op": "remove", "path": "meta.created"}])), ScimType::Mutability);
    assert_patch_error(ops(json!([{"op": "add", "path": "groups", "value": [{"value": "g1"}]}])), ScimType::Mutability);
}

/// §3.12 invalidValue: "a value was not compatible with the operation or attribute type".
#[test]
fn wrong_value_type_is_invalid_value() {
    assert_patch_error(ops(json!([{"op": "replace", "path": "active", "value": "maybe"}])), ScimType::InvalidValue);
    assert_patch_error(ops(json!([{"op": "replace", "path": "name", "value": 5}])), ScimType::InvalidValue);
    assert_patch_error(ops(json!([{"op": "add", "path": "name", "value": 5}])), ScimType::InvalidValue);
    assert_patch_error(ops(json!([{"op": "replace", "value": {"active": "maybe"}}])), ScimType::InvalidValue);
    assert_patch_error(
        ops(json!([{"op": "add", "path": "emails", "value": [{"value": "a@b.c", "primary": "perhaps"}]}])),
        ScimType::InvalidValue,
    );
}

/// Removing a required attribute is refused (whatever the error type).
#[test]
fn removing_user_name_is_refused() {
    let (reg, user) = user_fixture();
    let def = reg.resource("User").unwrap();
    let e = patch_err(&def, &user, &ops(json!([{"op": "remove", "path": "userName"}])));
    assert_eq!(e.status, 400, "{e}");
}

/// §3.5.2.2: "If an attribute is removed or becomes unassigned and is defined as a required
/// attribute or a read-only attribute, the server SHALL return ... a "scimType" error code of
/// "mutability"."
#[test]
fn removing_user_name_is_mutability() {
    assert_patch_error(ops(json!([{"op": "remove", "path": "userName"}])), ScimType::Mutability);
}

/// §3.5.2: "Each operation ... the service provider SHALL ... apply all of the operations or
/// none": a failing second operation leaves nothing applied.
#[test]
fn a_failing_second_operation_applies_nothing() {
    let (reg, user) = user_fixture();
    let def = reg.resource("User").unwrap();
    let before = user.clone();

    let e = patch_err(
        &def,
        &user,
        &ops(json!([
            {"op": "replace", "path": "nickName", "value": "Babs"},
            {"op": "replace", "path": "active", "value": "maybe"}
        ])),
    );
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
    assert!(e.detail.contains("Operations[1]"), "the detail names the failing operation: {}", e.detail);

    let e = patch_err(
        &def,
        &user,
        &ops(json!([
            {"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "other"}]},
            {"op": "remove", "path": "emails[type eq \"pager\"]"}
        ])),
    );
    assert_eq!(e.scim_type, Some(ScimType::NoTarget), "{e}");

    let e = patch_err(
        &def,
        &user,
        &ops(json!([
            {"op": "remove", "path": "emails"},
            {"op": "replace", "path": "id", "value": "x"}
        ])),
    );
    assert_eq!(e.scim_type, Some(ScimType::Mutability), "{e}");

    assert_eq!(user, before, "the input resource is untouched");
}
