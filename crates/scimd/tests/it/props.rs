//! A property of the whole HTTP API, checked on random requests against the real server: whatever
//! a client sends (any method, a path under `/scim/v2` with garbage segments and
//! percent-encodings, `filter`, `count`, `startIndex` and `attributes` of random text or of the
//! filter grammar, odd `Content-Type` and `If-Match` headers, arbitrary JSON bodies and
//! SCIM-shaped bodies with wrong types), the answer is never a 5xx, a 4xx is a SCIM error
//! (`schemas` is the Error URN and `status` is the HTTP status as a string), and the server
//! still answers `GET /healthz` afterwards.
//!
//! One runtime and one server serve every case (over SQLite, or PostgreSQL with
//! `SCIMD_TEST_ENGINE=postgres`). 300 cases by default (`PROPTEST_CASES` overrides,
//! `PROPTEST_RNG_SEED` fixes the seed). A failure is shrunk to the smallest request that still
//! fails, and the test panics with it as it went on the wire.

use super::common;

use std::fmt;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::Method;
use serde_json::{Map, Number, Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:contoso:2.0:User";

// ----- the request -----

/// The `Authorization` a request carries.
#[derive(Clone, Debug)]
enum Auth {
    /// The tenant's bearer token.
    Token,
    /// None at all.
    Missing,
    /// This header value.
    Other(String),
}

/// One random request.
#[derive(Clone)]
struct Req {
    /// Written as bytes on a new connection, so that the request target keeps raw quotes and
    /// spaces (as some clients send filters); otherwise sent with reqwest, which encodes them.
    raw: bool,
    method: String,
    /// Path and query string, e.g. `/scim/v2/Users?filter=...`.
    target: String,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

/// The request as it goes on the wire (the token abbreviated).
impl fmt::Debug for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = if self.raw { "raw bytes" } else { "reqwest" };
        writeln!(f, "{} {} HTTP/1.1    (sent as {via})", self.method, self.target)?;
        match &self.auth {
            Auth::Token => writeln!(f, "Authorization: Bearer <the tenant's token>")?,
            Auth::Missing => {}
            Auth::Other(v) => writeln!(f, "Authorization: {v}")?,
        }
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        if let Some(b) = &self.body {
            writeln!(f, "Content-Length: {}\n", b.len())?;
            match std::str::from_utf8(b) {
                Ok(text) => write!(f, "{text}")?,
                Err(_) => write!(f, "(not UTF-8) {b:?}")?,
            }
        }
        Ok(())
    }
}

/// What came back.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

// ----- strategies: text -----

/// Strings that mean something to a SCIM server, and arbitrary ones.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&[
            "", "x", "jdoe@contoso.com", "True", "False", "true", "work", "home", "User", "Group",
            "2024-01-31T12:00:00Z", "2024-01-31T12:00:00", "not a date", "AAAA", "==", "701984",
            "{\"value\":\"\"}", "{\"value\":\"Admin\",\"displayName\":\"Admin\"}", "{", "\u{0}",
            "a\u{0}b", "\u{feff}", "🦀", "Σσς", "ǅ", "İ", "ﬃ", " ", "  padded  ", "-1", "1e999",
            "urn:ietf:params:scim:schemas:core:2.0:User", "../Users/x", "null", "[]",
        ][..])
        .prop_map(str::to_owned),
        2 => "\\PC{0,16}",
        1 => ".{0,8}",
        1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// Percent-encodes what a request target cannot carry raw, plus `&`, `#`, `%` and `+`; leaves
/// quotes and spaces raw (a raw request line keeps them for the lenient listener; reqwest encodes
/// them).
fn loose(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if (' '..='~').contains(&ch) && !"&#%+".contains(ch) {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// How a query value is written.
fn encoded(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (s, 0..8u8, select(&["%", "%G1", "%FF", "%C3", "%00", "%2", "%%", "%E2%82", "%C0%AF"][..])).prop_map(
        |(s, how, junk)| match how {
            0..=3 => q(&s),
            4..=6 => loose(&s),
            _ => format!("{}{junk}", q(&s)),
        },
    )
}

/// Attribute paths, real and not.
fn attr_path() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(&[
            "userName", "name.givenName", "name.familyName", "name", "emails", "emails.value",
            "emails.type", "emails.primary", "meta.created", "meta.lastModified", "meta.version",
            "meta.resourceType", "id", "externalId", "active", "displayName", "members",
            "members.value", "members.display", "members.type", "groups", "groups.value", "title",
            "x509Certificates.value", "phoneNumbers.value", "addresses.streetAddress", "roles",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "urn:foo:bar",
            "unknownAttribute", "password", "schemas", "USERNAME", "Emails.Value",
        ][..])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z$_-][a-zA-Z0-9$_.:-]{0,12}",
    ]
    .boxed()
}

/// A comparison value of the filter grammar, well-formed or not.
fn literal() -> BoxedStrategy<String> {
    prop_oneof![
        3 => text().prop_map(|s| Value::String(s).to_string()),
        1 => select(&["true", "false", "null", "True", "NULL", "\"\"", "'x'", "x", "\"unterminated"][..])
            .prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|x| format!("{x:e}")),
        1 => select(&["1e999", "-0", "01", "1.", ".5", "99999999999999999999999"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

const OPERATORS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Sw", "xx", "pr", "in", ""];
const MULTI: &[&str] = &["emails", "members", "phoneNumbers", "addresses", "roles", "groups", "name", "userName"];

/// Filters of the RFC 7644 grammar (with wrong operators, attributes and values mixed in), then
/// sometimes cut or spliced, so that most are near a valid filter.
fn filter() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        4 => (attr_path(), select(OPERATORS), literal()).prop_map(|(a, o, v)| format!("{a} {o} {v}")),
        1 => attr_path().prop_map(|a| format!("{a} pr")),
        1 => text(),
    ];
    let tree = leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), select(&["and", "or", "AND", "Or", "nand", ""][..]), inner.clone())
                .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            inner.clone().prop_map(|f| format!("not ({f})")),
            inner.clone().prop_map(|f| format!("({f})")),
            (select(MULTI), inner.clone()).prop_map(|(a, f)| format!("{a}[{f}]")),
            (select(MULTI), inner, select(&["value", "type", "display", "x"][..]))
                .prop_map(|(a, f, s)| format!("{a}[{f}].{s}")),
        ]
    });
    (tree, 0..6u8, any::<prop::sample::Index>(), select(&["(", ")", "[", "]", "\"", "\\", " ", "\u{0}", "%"][..]))
        .prop_map(|(f, how, at, junk)| {
            let cut = |f: &str| {
                let i = at.index(f.len() + 1);
                (0..=i).rev().find(|&i| f.is_char_boundary(i)).unwrap_or(0)
            };
            match how {
                0 => f[..cut(&f)].to_owned(),
                1 => {
                    let i = cut(&f);
                    format!("{}{junk}{}", &f[..i], &f[i..])
                }
                _ => f,
            }
        })
        .boxed()
}

/// Integers as query or JSON text, in range and not.
fn int_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => (-3i64..2000).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => select(&["", "abc", "1e3", "1.5", " 5", "+5", "0x10", "99999999999999999999999", "-0", "NaN", "∞"][..])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

// ----- strategies: JSON -----

/// Object keys a SCIM server reads, and others.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(&[
            "schemas", "id", "externalId", "userName", "name", "givenName", "familyName", "displayName",
            "emails", "value", "type", "primary", "display", "$ref", "active", "members", "meta",
            "Operations", "op", "path", "groups", "password", "title", "roles", "phoneNumbers",
            "employeeNumber", "manager", "filter", "startIndex", "count", "attributes", "method",
            "bulkId", "data", "failOnErrors", "version", "name.givenName", "emails[type eq \"work\"].value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", CONTOSO, "USERNAME", "",
        ][..])
        .prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-2i64..3).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|x| Number::from_f64(x).map_or(Value::Null, Value::Number)),
    ]
    .boxed()
}

/// Any JSON value, nested at most 5 deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf =
        prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), text().prop_map(Value::String)];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// An object with some of these attributes, each with its right value (mostly) or any JSON value.
fn shaped(fields: Vec<(&'static str, Value)>) -> BoxedStrategy<Value> {
    let n = fields.len();
    (subsequence(fields, 0..=n), prop::collection::vec((prop::bool::weighted(0.8), json_value()), n))
        .prop_map(|(chosen, values)| {
            let mut m = Map::new();
            for ((k, good), (right, any)) in chosen.into_iter().zip(values) {
                m.insert(k.to_owned(), if right { good } else { any });
            }
            Value::Object(m)
        })
        .boxed()
}

/// Ids of the seeded resources, and impossible ones.
fn id(ids: &[String]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(ids.to_vec()),
        1 => "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        1 => "[A-Za-z0-9_.~-]{0,40}",
        1 => select(&["0", "-1", "99999999999999999999", "bulkId:qwerty", ".search", "..", "%00", "%FF", "%2F"][..])
            .prop_map(str::to_owned),
        1 => (1usize..2000).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

fn user_body(ids: &[String]) -> BoxedStrategy<Value> {
    let (u, g) = (ids[0].clone(), ids[ids.len() - 1].clone());
    let unique = "[a-z]{1,8}@contoso\\.com";
    (
        unique,
        shaped(vec![
            ("schemas", json!([USER, ENTERPRISE])),
            ("externalId", json!("ext-1")),
            ("name", json!({"givenName": "Jo", "familyName": "Doe", "formatted": "Jo Doe"})),
            ("displayName", json!("Jo Doe")),
            ("emails", json!([{"value": "jo@contoso.com", "type": "work", "primary": true}])),
            ("phoneNumbers", json!([{"value": "+1 555", "type": "work"}])),
            ("addresses", json!([{"streetAddress": "1 Main St", "type": "work", "primary": true}])),
            ("active", json!(true)),
            (
                "roles",
                json!([{"value": "{\"id\":\"1\",\"value\":\"Admin\",\"displayName\":\"Admin\"}", "primary": "False"}]),
            ),
            ("x509Certificates", json!([{"value": "AAAA"}])),
            (ENTERPRISE, json!({"employeeNumber": "701984", "manager": {"value": u}})),
            (CONTOSO, json!({"badge": "x"})),
            ("groups", json!([{"value": g}])),
            ("id", json!("my-own-id")),
            ("meta", json!({"resourceType": "User", "version": "W/\"9\""})),
            ("password", json!("hunter2")),
            ("preferredLanguage", json!("en-US")),
        ]),
        any::<bool>(),
        json_value(),
    )
        .prop_map(|(name, mut v, right, any)| {
            v["userName"] = if right { Value::String(name) } else { any };
            v
        })
        .boxed()
}

fn group_body(ids: &[String]) -> BoxedStrategy<Value> {
    let u = ids[0].clone();
    shaped(vec![
        ("schemas", json!([GROUP])),
        ("displayName", json!("Ops")),
        ("externalId", json!("g-1")),
        ("members", json!([{"value": u, "type": "User"}])),
        ("meta", json!({"resourceType": "Group"})),
    ])
}

/// A PATCH target path: the filter grammar's value paths, attribute paths, or any JSON value.
fn patch_path() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => attr_path().prop_map(Value::String),
        2 => (select(MULTI), filter(), prop::option::of(select(&["value", "type", "primary", "display"][..])))
            .prop_map(|(a, f, s)| Value::String(match s {
                Some(s) => format!("{a}[{f}].{s}"),
                None => format!("{a}[{f}]"),
            })),
        1 => json_value(),
    ]
    .boxed()
}

fn patch_body(ids: &[String]) -> BoxedStrategy<Value> {
    let member = json!([{"value": ids[0]}]);
    let op = (
        select(&["add", "replace", "remove", "Add", "REPLACE", "Remove", "copy", "", "delete"][..]),
        prop::option::of(patch_path()),
        prop_oneof![
            2 => json_value(),
            1 => Just(member),
            1 => Just(json!({"name.givenName": "Jo", "emails[type eq \"work\"].value": "jo@x.y", "active": "False"})),
        ],
        any::<bool>(),
    )
        .prop_map(|(op, path, value, with_value)| {
            let mut m = Map::new();
            m.insert("op".into(), json!(op));
            if let Some(p) = path {
                m.insert("path".into(), p);
            }
            if with_value {
                m.insert("value".into(), value);
            }
            Value::Object(m)
        });
    (prop::collection::vec(op, 0..4), prop::bool::weighted(0.9), json_value())
        .prop_map(|(ops, right, any)| {
            let ops = if right { Value::Array(ops) } else { any };
            json!({"schemas": [PATCH_OP], "Operations": ops})
        })
        .boxed()
}

fn bulk_body(ids: &[String]) -> BoxedStrategy<Value> {
    let paths: Vec<String> = ["/Users", "/Groups", "/Users/bulkId:u1", "/Bulk", "Users", "/Schemas", ""]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(ids.iter().map(|i| format!("/Users/{i}")))
        .chain(ids.iter().map(|i| format!("/Groups/{i}")))
        .collect();
    let data = prop_oneof![user_body(ids), group_body(ids), patch_body(ids), json_value()];
    let op = (
        select(&["POST", "PUT", "PATCH", "DELETE", "GET", "post", "FOO"][..]),
        select(paths),
        prop::option::of(select(&["u1", "g1", "", "u1"][..])),
        prop::option::of(data),
    )
        .prop_map(|(method, path, bulk_id, data)| {
            let mut m = Map::new();
            m.insert("method".into(), json!(method));
            m.insert("path".into(), json!(path));
            if let Some(b) = bulk_id {
                m.insert("bulkId".into(), json!(b));
            }
            if let Some(d) = data {
                m.insert("data".into(), d);
            }
            Value::Object(m)
        });
    (prop::collection::vec(op, 0..4), prop::option::of(json_value()))
        .prop_map(|(ops, fail_on_errors)| {
            let mut v = json!({"schemas": [BULK], "Operations": ops});
            if let Some(f) = fail_on_errors {
                v["failOnErrors"] = f;
            }
            v
        })
        .boxed()
}

fn search_body() -> BoxedStrategy<Value> {
    let list = prop::collection::vec(attr_path(), 0..3).prop_map(|a| json!(a));
    let n = || prop_oneof![int_text().prop_map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))), json_value()];
    (
        shaped(vec![("schemas", json!([SEARCH]))]),
        prop::option::of(prop_oneof![filter().prop_map(Value::String), json_value()]),
        prop::option::of(n()),
        prop::option::of(n()),
        prop::option::of(prop_oneof![list, json_value()]),
        prop::option::of(prop_oneof![attr_path().prop_map(Value::String), json_value()]),
    )
        .prop_map(|(mut v, filter, start, count, attributes, sort_by)| {
            let fields = [
                ("filter", filter),
                ("startIndex", start),
                ("count", count),
                ("attributes", attributes),
                ("sortBy", sort_by),
            ];
            for (k, x) in fields {
                if let Some(x) = x {
                    v[k] = x;
                }
            }
            v
        })
        .boxed()
}

/// Bodies that are not JSON, or are JSON at the edge of what parsers take.
fn odd_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        select(
            &[
                "",
                "{",
                "[1,2",
                "null",
                "{}",
                "[]",
                "\"x\"",
                "{\"a\":1}{",
                "{\"userName\":\"a\",\"userName\":\"b\"}",
                "{\"userName\":\"\\u0000\"}",
                "{\"userName\":\"\\ud800\"}",
                "1e999",
                "{\"count\":1e999}",
                "\u{feff}{}",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        (1usize..300).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
    .boxed()
}

fn body(ids: &[String]) -> BoxedStrategy<Option<Vec<u8>>> {
    let json = |s: BoxedStrategy<Value>| s.prop_map(|v| Some(v.to_string().into_bytes()));
    prop_oneof![
        2 => Just(None),
        2 => json(json_value()),
        2 => json(user_body(ids)),
        1 => json(group_body(ids)),
        2 => json(patch_body(ids)),
        1 => json(bulk_body(ids)),
        1 => json(search_body()),
        1 => odd_body().prop_map(Some),
    ]
    .boxed()
}

// ----- strategies: method, target, headers -----

fn method() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(&["GET", "POST", "PUT", "PATCH", "DELETE"][..]).prop_map(str::to_owned),
        2 => select(&["HEAD", "OPTIONS", "TRACE", "get", "Post", "PROPFIND", "M-SEARCH", "QUERY", "PURGE", "FOO"][..])
            .prop_map(str::to_owned),
        1 => "[A-Z]{1,20}",
    ]
    .boxed()
}

const ENDPOINTS: &[&str] = &[
    "",
    "/",
    "/Users",
    "/Groups",
    "/Users/",
    "/Users/.search",
    "/Groups/.search",
    "/.search",
    "/Bulk",
    "/Schemas",
    "/ResourceTypes",
    "/ServiceProviderConfig",
    "/ResourceTypes/User",
    "/ResourceTypes/Group",
    "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group",
    "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "/Me",
    "/users",
    "/GROUPS",
    "/bulk",
];

/// A path segment: garbage, dot segments and percent-encodings (valid or not).
fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        2 => "[A-Za-z0-9._~-]{1,12}",
        2 => select(&[
            "..", ".", "%2e%2e", "%2E", "%2F", "%00", "%", "%zz", "%C3", "%FF%FE", "Users", "Groups", ".search",
            "Bulk", "Me", "%55sers", "{id}", "*", "~", "'", "(", ")", ";", "=", ",", "!", "$", "@", ":", "+", "%20",
        ][..])
        .prop_map(str::to_owned),
        1 => "\\PC{1,6}".prop_map(|s| q(&s)),
    ]
    .boxed()
}

/// Percent-encodes the characters of `s` where `flags` says so (`%55sers` for `Users`).
fn mangle(s: &str, flags: &[bool]) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if flags.get(i).copied().unwrap_or(false) && c.is_ascii() && c != '/' {
                format!("%{:02X}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn path(ids: &[String]) -> BoxedStrategy<String> {
    let resource = select(&["/Users/", "/Groups/", "/users/", "/Users/.search/", "/ResourceTypes/", "/Schemas/"][..]);
    prop_oneof![
        3 => select(ENDPOINTS).prop_map(str::to_owned),
        3 => (resource, id(ids)).prop_map(|(r, id)| format!("{r}{id}")),
        2 => prop::collection::vec(segment(), 1..4).prop_map(|s| format!("/{}", s.join("/"))),
        1 => (select(ENDPOINTS), segment()).prop_map(|(p, s)| format!("{p}/{s}")),
        1 => (select(ENDPOINTS), prop::collection::vec(prop::bool::weighted(0.3), 40)).prop_map(|(p, f)| mangle(p, &f)),
    ]
    .prop_map(|p| format!("/scim/v2{p}"))
    .boxed()
}

fn query() -> BoxedStrategy<String> {
    let param = prop_oneof![
        4 => encoded(prop_oneof![3 => filter(), 1 => text()]).prop_map(|f| format!("filter={f}")),
        2 => (select(&["count", "startIndex", "Count", "startindex"][..]), encoded(int_text()))
            .prop_map(|(k, v)| format!("{k}={v}")),
        2 => (select(&["attributes", "excludedAttributes"][..]), encoded(prop::collection::vec(attr_path(), 0..3).prop_map(|a| a.join(","))))
            .prop_map(|(k, v)| format!("{k}={v}")),
        1 => (encoded(attr_path()), encoded(select(&["ascending", "descending", "up", ""][..]).prop_map(str::to_owned)))
            .prop_map(|(by, order)| format!("sortBy={by}&sortOrder={order}")),
        1 => ("[ -~]{0,12}").prop_map(|s| loose(&s)),
    ];
    (prop::collection::vec(param, 0..4), select(&["?", "?", "?", "?", "?", "?", "?", "??", "?&", "&"][..]))
        .prop_map(|(ps, lead)| if ps.is_empty() { String::new() } else { format!("{lead}{}", ps.join("&")) })
        .boxed()
}

/// Visible ASCII and spaces: what a header value can carry.
fn header_text() -> BoxedStrategy<String> {
    "[ -~]{0,24}".prop_map(|s| s.trim().to_owned()).boxed()
}

fn headers() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let content_type = prop_oneof![
        12 => Just(Some(SCIM.to_owned())),
        2 => Just(Some("application/json".to_owned())),
        4 => select(&[
            "application/json", "application/json; charset=utf-8", "application/scim+json; charset=UTF-16",
            "APPLICATION/SCIM+JSON", "text/plain", "application/xml", "", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "application/json;;", "*/*", "application/scim+jsonx",
            "application/merge-patch+json", "application/json-patch+json",
        ][..])
        .prop_map(|s| Some(s.to_owned())),
        1 => header_text().prop_map(Some),
        2 => Just(None),
    ];
    let tag = prop_oneof![
        3 => select(&["*", "W/\"1\"", "\"1\"", "W/\"2\", W/\"1\"", "W/\"-1\"", "W/\"99999999999999999999\"", "W/", "\"", "W/\"\"", "W/\"1", ","][..])
            .prop_map(str::to_owned),
        1 => header_text(),
    ];
    let accept = select(&["application/scim+json", "application/json", "text/html", "*/*", "image/png", ""][..]);
    (
        content_type,
        prop::option::of(tag.clone()),
        prop::option::weighted(0.15, tag),
        prop::option::weighted(0.15, accept),
    )
        .prop_map(|(ct, if_match, if_none_match, accept)| {
            let mut h = Vec::new();
            if let Some(ct) = ct {
                h.push(("Content-Type", ct));
            }
            if let Some(t) = if_match {
                h.push(("If-Match", t));
            }
            if let Some(t) = if_none_match {
                h.push(("If-None-Match", t));
            }
            if let Some(a) = accept {
                h.push(("Accept", a.to_owned()));
            }
            h
        })
        .boxed()
}

fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        30 => Just(Auth::Token),
        1 => Just(Auth::Missing),
        1 => prop_oneof![
            select(&["Bearer", "Bearer ", "Bearer x", "Basic dXNlcjpwYXNz", "bearer x.y.z", "Token abc"][..]).prop_map(str::to_owned),
            header_text(),
        ]
        .prop_map(Auth::Other),
    ]
    .boxed()
}

/// A request: mostly a method, path and body that fit together (so that it gets past routing
/// and content negotiation to the SCIM code), each part still random; sometimes all at random.
fn request(ids: &[String]) -> BoxedStrategy<Req> {
    let s = |m: &'static str, p: &'static str| (Just(m.to_owned()), Just(p.to_owned()));
    let at = |prefix: &'static str| id(ids).prop_map(move |i| format!("/scim/v2/{prefix}/{i}"));
    let json = |s: BoxedStrategy<Value>| s.prop_map(|v| Some(v.to_string().into_bytes())).boxed();
    let write = || select(&["POST", "PUT", "PATCH"][..]).prop_map(str::to_owned);
    let users = prop_oneof![
        3 => s("POST", "/scim/v2/Users"),
        3 => (Just("PUT".to_owned()), at("Users")),
        1 => (write(), prop_oneof![Just("/scim/v2/Users".to_owned()), at("Users")]),
    ];
    let groups = prop_oneof![
        3 => s("POST", "/scim/v2/Groups"),
        3 => (Just("PUT".to_owned()), at("Groups")),
        1 => (write(), prop_oneof![Just("/scim/v2/Groups".to_owned()), at("Groups")]),
    ];
    let patch = (prop_oneof![6 => Just("PATCH".to_owned()), 1 => method()], prop_oneof![at("Users"), at("Groups")]);
    let list = (
        Just("GET".to_owned()),
        select(&["/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/Users/"][..])
            .prop_map(str::to_owned),
    );
    let search = (
        Just("POST".to_owned()),
        select(&["/scim/v2/Users/.search", "/scim/v2/Groups/.search", "/scim/v2/.search"][..]).prop_map(str::to_owned),
    );
    let read = (
        select(&["GET", "GET", "DELETE"][..]).prop_map(str::to_owned),
        prop_oneof![at("Users"), at("Groups"), path(ids)],
    );
    let shape = prop_oneof![
        3 => (users, json(user_body(ids))).prop_map(|((m, p), b)| (m, p, b)),
        1 => (groups, json(group_body(ids))).prop_map(|((m, p), b)| (m, p, b)),
        3 => (patch, json(patch_body(ids))).prop_map(|((m, p), b)| (m, p, b)),
        1 => (s("POST", "/scim/v2/Bulk"), json(bulk_body(ids))).prop_map(|((m, p), b)| (m, p, b)),
        1 => (search, json(search_body())).prop_map(|((m, p), b)| (m, p, b)),
        3 => list.prop_map(|(m, p)| (m, p, None)),
        1 => read.prop_map(|(m, p)| (m, p, None)),
        2 => (method(), path(ids), body(ids)),
    ];
    (shape, query(), headers(), auth(), prop::bool::weighted(0.2))
        .prop_map(|((method, path, body), query, headers, auth, raw)| {
            let mut target = format!("{path}{query}");
            // The lenient listener repairs raw quotes and spaces in a request line whose method
            // is a token (lenient.rs); after anything else such a line is not HTTP, and hyper
            // refuses it with a bare 400 before any SCIM code runs.
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            let is_token = !method.is_empty() && method.bytes().all(token);
            if raw && !is_token {
                target = repair(&target);
            }
            Req { raw, method, target, auth, headers, body }
        })
        .boxed()
}

/// Percent-encodes the bytes the HTTP parser refuses in a request target (what the lenient
/// listener does).
fn repair(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for c in target.chars() {
        match c {
            ' ' | '"' | '#' | '<' | '>' | '`' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

// ----- sending and checking -----

async fn send(app: &TestApp, req: &Req) -> Result<Answer, String> {
    if req.raw {
        return send_raw(app, req).await;
    }
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| format!("method: {e}"))?;
    let mut b = app.client.request(method, format!("{}{}", app.origin, req.target)).timeout(Duration::from_secs(20));
    match &req.auth {
        Auth::Token => b = b.bearer_auth(&app.token),
        Auth::Missing => {}
        Auth::Other(v) => b = b.header("Authorization", v.as_str()),
    }
    for (k, v) in &req.headers {
        b = b.header(*k, v.as_str());
    }
    if let Some(body) = &req.body {
        b = b.body(body.clone());
    }
    let r = b.send().await.map_err(|e| format!("no answer: {e:?}"))?;
    let status = r.status().as_u16();
    let content_type =
        r.headers().get("content-type").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    let body = r.bytes().await.map_err(|e| format!("the body did not arrive: {e:?}"))?.to_vec();
    Ok(Answer { status, content_type, body })
}

/// Writes the request as bytes on a new connection (`Connection: close`) and reads the answer.
async fn send_raw(app: &TestApp, req: &Req) -> Result<Answer, String> {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: t\r\n", req.method, req.target);
    match &req.auth {
        Auth::Token => head.push_str(&format!("Authorization: Bearer {}\r\n", app.token)),
        Auth::Missing => {}
        Auth::Other(v) => head.push_str(&format!("Authorization: {v}\r\n")),
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = req.body.clone().unwrap_or_default();
    if req.body.is_some() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    let text = raw_exchange(&app.origin, &bytes).await;
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no answer (read {text:?})"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        if k.eq_ignore_ascii_case("content-type") {
            content_type = v.trim().to_owned();
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Ok(Answer { status, content_type, body: body.into_bytes() })
}

/// The payload of a chunked body.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The property, for one request.
async fn check(app: &TestApp, req: &Req) -> Result<(), TestCaseError> {
    let a = send(app, req).await.map_err(TestCaseError::fail)?;
    let shown = || format!("{} {}: {}", a.status, a.content_type, String::from_utf8_lossy(&a.body));
    if a.status >= 500 || a.status < 100 {
        return Err(TestCaseError::fail(format!("a server error: {}", shown())));
    }
    if (400..500).contains(&a.status) && !req.method.eq_ignore_ascii_case("HEAD") {
        if !a.content_type.starts_with(SCIM) {
            return Err(TestCaseError::fail(format!("a 4xx that is not application/scim+json: {}", shown())));
        }
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| TestCaseError::fail(format!("a 4xx whose body is not JSON ({e}): {}", shown())))?;
        if v["schemas"] != json!([ERROR]) || v["status"] != json!(a.status.to_string()) {
            return Err(TestCaseError::fail(format!(
                "a 4xx that is not a SCIM error with status \"{}\": {}",
                a.status,
                shown()
            )));
        }
    }
    let health = app
        .client
        .get(format!("{}/healthz", app.origin))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("GET /healthz failed afterwards: {e:?}")))?;
    if health.status() != 200 {
        return Err(TestCaseError::fail(format!("GET /healthz answered {} afterwards", health.status())));
    }
    Ok(())
}

#[test]
fn random_requests_get_scim_answers() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, ids) = rt.block_on(async {
        let app = spawn_app().await;
        let user = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
        let other = app.user("boss@contoso.com").await;
        let r = app.post("/Groups", &json!({"displayName": "Ops", "members": [{"value": user}]})).await;
        let group = ok_json(r).await["id"].as_str().unwrap().to_owned();
        (app, vec![user, other, group])
    });
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300);
    // No regression files in the source tree: a failure prints its request instead.
    let config = Config { cases, failure_persistence: None, max_shrink_time: 120_000, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&request(&ids), |req| rt.block_on(check(&app, &req)));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, req)) => panic!("{why}\nthe smallest failing request:\n{req:?}"),
        Err(TestError::Abort(why)) => panic!("proptest gave up: {why}"),
    }
}
