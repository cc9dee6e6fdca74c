//! Hostile input through the real HTTP server: wrong JSON types, malformed and oversized
//! bodies, NUL characters, bad ids, paths and headers, a tenant deleted under its client,
//! unbounded metrics labels and abusive filters. Every answer must be a 4xx SCIM error (never
//! a 5xx), and a refused request must leave the tenant exactly as it was.

use super::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ----- helpers -----

/// Asserts a SCIM error with this status and `scimType`; any other status (a 5xx above all)
/// fails with the body that came back, so a failure shows what the server said.
async fn refused(r: Response, status: u16, scim_type: Option<&str>, what: &str) -> Value {
    let got = r.status().as_u16();
    if got != status {
        let body = r.text().await.unwrap_or_default();
        panic!("{what}: expected {status} {scim_type:?}, got {got}: {body}");
    }
    assert_scim_error(r, status, scim_type).await
}

/// Like [`refused`], with any of these `scimType`s (where RFC 7644 allows more than one).
async fn refused_any(r: Response, status: u16, scim_types: &[&str], what: &str) -> Value {
    let got = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
    let body = r.text().await.unwrap_or_default();
    assert!(got == status, "{what}: expected {status} {scim_types:?}, got {got}: {body}");
    assert!(ct.starts_with(SCIM), "{what}: content type {ct}");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(v["schemas"], json!([ERROR]), "{what}: {body}");
    assert_eq!(v["status"], json!(status.to_string()), "{what}: {body}");
    let t = v["scimType"].as_str().unwrap_or_default();
    assert!(scim_types.contains(&t), "{what}: scimType {t:?} is not one of {scim_types:?}: {body}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {body}");
    v
}

/// Asserts that the detail of a SCIM error names every word (case-insensitively).
fn assert_detail_names(err: &Value, words: &[&str], what: &str) {
    let detail = err["detail"].as_str().unwrap_or_default().to_ascii_lowercase();
    for w in words {
        assert!(detail.contains(&w.to_ascii_lowercase()), "{what}: the detail should name {w:?}: {err}");
    }
}

/// Everything the tenant has, as the API shows it: both lists and every resource read alone.
async fn everything(app: &TestApp) -> Value {
    let users = ok_json(app.get("/Users?count=1000&sortBy=userName").await).await;
    let groups = ok_json(app.get("/Groups?count=1000&sortBy=displayName").await).await;
    let mut each = Vec::new();
    for id in resource_ids(&users) {
        each.push(ok_json(app.get(&format!("/Users/{id}")).await).await);
    }
    for id in resource_ids(&groups) {
        each.push(ok_json(app.get(&format!("/Groups/{id}")).await).await);
    }
    json!({"users": users, "groups": groups, "each": each})
}

/// Asserts that the tenant is exactly as `before`.
async fn assert_unchanged(app: &TestApp, before: &Value, what: &str) {
    let now = everything(app).await;
    assert!(now == *before, "{what} changed the tenant:\nbefore: {before}\nafter:  {now}");
}

/// How many users the tenant has.
async fn user_total(app: &TestApp) -> u64 {
    ok_json(app.get("/Users?count=0").await).await["totalResults"].as_u64().unwrap()
}

/// The seeded tenant: a user as Entra creates it, a manager, and a group with the user in it.
struct Seed {
    user: String,
    manager: String,
    group: String,
}

async fn seed(app: &TestApp) -> Seed {
    let user = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let manager = app.user("boss@contoso.com").await;
    let r = app.post("/Groups", &json!({"displayName": "Ops", "members": [{"value": user}]})).await;
    let group = ok_json(r).await["id"].as_str().unwrap().to_owned();
    Seed { user, manager, group }
}

/// Sets `value` at `path` (object keys) inside `doc`, creating objects on the way.
fn set_at(doc: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = doc;
    for p in parents {
        cur = cur.as_object_mut().unwrap().entry(*p).or_insert_with(|| json!({}));
    }
    cur.as_object_mut().unwrap().insert((*last).to_owned(), value);
}

/// A request body of raw text with a JSON content type.
async fn send_text(app: &TestApp, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Response {
    app.req(method, path).header("content-type", SCIM).body(body).send().await.unwrap()
}

/// Sends raw bytes on a new connection and reads the whole answer. Write errors are ignored
/// (the server may answer and close before reading everything). Returns the status (0 when
/// there was no answer), the whole answer as text and the body as JSON (`Null` if it is not).
async fn raw_bytes(app: &TestApp, request: &[u8]) -> (u16, String, Value) {
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let request = request.to_vec();
    let exchange = async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&request).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(30), exchange).await.expect("the server never answered");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, text, v)
}

/// Asserts that a raw answer is a SCIM error with this status and `scimType`.
fn assert_raw_scim_error(status: u16, text: &str, v: &Value, want: u16, scim_type: Option<&str>, what: &str) {
    assert_eq!(status, want, "{what}: {text}");
    let head = text.split_once("\r\n\r\n").map_or(text, |(h, _)| h).to_ascii_lowercase();
    assert!(head.contains("content-type: application/scim+json"), "{what}: {text}");
    assert_eq!(v["schemas"], json!([ERROR]), "{what}: {text}");
    assert_eq!(v["status"], json!(want.to_string()), "{what}: {text}");
    match scim_type {
        Some(t) => assert_eq!(v["scimType"], json!(t), "{what}: {text}"),
        None => assert!(v.get("scimType").is_none(), "{what}: {text}"),
    }
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {text}");
}

// ----- 1. wrong JSON types -----

/// A user attribute sent with the wrong JSON type, and the words its refusal must name.
struct BadUserValue {
    /// Where it goes in a create or replace body.
    body_path: &'static [&'static str],
    /// The PATCH path (also the key of a path-less replace).
    patch_path: String,
    value: Value,
    /// The attribute, the expected type and what was sent, as the detail must name them.
    names: [&'static str; 3],
}

fn bad_user_values() -> Vec<BadUserValue> {
    let emp = format!("{ENTERPRISE}:employeeNumber");
    let bad = |body_path: &'static [&'static str], patch_path: &str, value: Value, names: [&'static str; 3]| {
        BadUserValue { body_path, patch_path: patch_path.to_owned(), value, names }
    };
    vec![
        bad(&["userName"], "userName", json!(["a"]), ["userName", "string", "list"]),
        bad(&["userName"], "userName", json!(7), ["userName", "string", "number"]),
        bad(&["title"], "title", json!(true), ["title", "string", "boolean"]),
        bad(&["name", "givenName"], "name.givenName", json!(5), ["givenName", "string", "number"]),
        bad(&["preferredLanguage"], "preferredLanguage", json!(["en"]), ["preferredLanguage", "string", "list"]),
        bad(&["externalId"], "externalId", json!(12), ["externalId", "string", "number"]),
        bad(&[ENTERPRISE, "employeeNumber"], &emp, json!(701984), ["employeeNumber", "string", "number"]),
        bad(&["emails"], "emails", json!("a@b.c"), ["emails", "object", "string"]),
        bad(&["emails"], "emails", json!(["a@b.c"]), ["emails", "object", "string"]),
        bad(&["roles"], "roles", json!("Admin"), ["roles", "object", "string"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_json_types_on_user_create_are_400_naming_attribute_type_and_value() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = everything(&app).await;
    for b in bad_user_values() {
        let mut body = entra_user("new@contoso.com", "new");
        set_at(&mut body, b.body_path, b.value.clone());
        let what = format!("POST /Users with {} = {}", b.patch_path, b.value);
        let err = refused(app.post("/Users", &body).await, 400, Some("invalidValue"), &what).await;
        assert_detail_names(&err, &b.names, &what);
        assert_unchanged(&app, &before, &what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_json_types_on_user_put_are_400_and_leave_the_user_unchanged() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    for b in bad_user_values() {
        let mut body = entra_user("jdoe@contoso.com", "jdoe");
        body["title"] = json!("Changed title");
        set_at(&mut body, b.body_path, b.value.clone());
        let what = format!("PUT /Users/{{id}} with {} = {}", b.patch_path, b.value);
        let err = refused(app.put(&format!("/Users/{}", s.user), &body).await, 400, Some("invalidValue"), &what).await;
        assert_detail_names(&err, &b.names, &what);
        assert_unchanged(&app, &before, &what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_json_types_on_user_patch_with_path_are_400_and_leave_the_user_unchanged() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    for b in bad_user_values() {
        for op in ["Replace", "Add", "replace"] {
            // A valid change first in the same request: the whole request must be refused.
            let body = patch_op(json!([
                {"op": "Replace", "path": "displayName", "value": "Changed"},
                {"op": op, "path": b.patch_path, "value": b.value},
            ]));
            let what = format!("PATCH {op} path {} value {}", b.patch_path, b.value);
            let r = app.patch(&format!("/Users/{}", s.user), &body).await;
            let err = refused(r, 400, Some("invalidValue"), &what).await;
            assert_detail_names(&err, &b.names, &what);
            assert_unchanged(&app, &before, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_json_types_on_user_pathless_patch_replace_are_400_and_leave_the_user_unchanged() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    for b in bad_user_values() {
        // As a key of the value (plain, dotted or URN-qualified) and, for nested attributes,
        // as a nested object too.
        let mut values = vec![json!({"displayName": "Changed", b.patch_path.clone(): b.value})];
        if b.body_path.len() > 1 {
            let mut nested = json!({"displayName": "Changed"});
            set_at(&mut nested, b.body_path, b.value.clone());
            values.push(nested);
        }
        for value in values {
            let body = patch_op(json!([{"op": "replace", "value": value}]));
            let what = format!("path-less PATCH replace with {value}");
            let r = app.patch(&format!("/Users/{}", s.user), &body).await;
            let err = refused(r, 400, Some("invalidValue"), &what).await;
            assert_detail_names(&err, &b.names, &what);
            assert_unchanged(&app, &before, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_json_types_on_groups_are_400_on_create_put_and_patch_and_change_nothing() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let u = s.manager.as_str();
    let cases: [(&str, Value, [&str; 3]); 3] = [
        ("displayName", json!(5), ["displayName", "string", "number"]),
        ("members", json!([u]), ["members", "object", "string"]),
        ("members", json!(u), ["members", "object", "string"]),
    ];
    let gpath = format!("/Groups/{}", s.group);
    for (attr, value, names) in cases {
        let mut create = json!({"displayName": "New group", "members": [{"value": u}]});
        create[attr] = value.clone();
        let what = format!("POST /Groups with {attr} = {value}");
        let err = refused(app.post("/Groups", &create).await, 400, Some("invalidValue"), &what).await;
        assert_detail_names(&err, &names, &what);
        assert_unchanged(&app, &before, &what).await;

        let mut put = json!({"displayName": "Ops renamed", "members": [{"value": u}]});
        put[attr] = value.clone();
        let what = format!("PUT /Groups/{{id}} with {attr} = {value}");
        let err = refused(app.put(&gpath, &put).await, 400, Some("invalidValue"), &what).await;
        assert_detail_names(&err, &names, &what);
        assert_unchanged(&app, &before, &what).await;

        for op in ["Add", "Replace"] {
            let body = patch_op(json!([
                {"op": "Replace", "path": "externalId", "value": "changed"},
                {"op": op, "path": attr, "value": value},
            ]));
            let what = format!("PATCH /Groups/{{id}} {op} path {attr} value {value}");
            let err = refused(app.patch(&gpath, &body).await, 400, Some("invalidValue"), &what).await;
            assert_detail_names(&err, &names, &what);
            assert_unchanged(&app, &before, &what).await;
        }

        let body = patch_op(json!([{"op": "replace", "value": {"externalId": "changed", attr: value}}]));
        let what = format!("path-less PATCH /Groups/{{id}} replace with {attr} = {value}");
        let err = refused(app.patch(&gpath, &body).await, 400, Some("invalidValue"), &what).await;
        assert_detail_names(&err, &names, &what);
        assert_unchanged(&app, &before, &what).await;
    }
}

/// The strict types must not break the CLIENTS.md quirks: one positive check each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_quirks_still_coerce_next_to_strict_types() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let path = format!("/Users/{}", s.user);
    // active as the string "False".
    let v = app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]))).await;
    assert_eq!(v["active"], json!(false), "{v}");
    // manager as a bare string id, read back in the complex form.
    let body = patch_op(json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": s.manager}]));
    let v = app.patch_ok(&path, &body).await;
    assert_eq!(v[ENTERPRISE]["manager"]["value"], json!(s.manager), "{v}");
    // {"value": ""} clears.
    let v = app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": {"value": ""}}]))).await;
    assert!(v.get("title").is_none(), "{v}");
    let v = ok_json(app.get(&path).await).await;
    assert_eq!((v["active"].clone(), v.get("title")), (json!(false), None), "{v}");
}

// ----- 2. malformed, deep, huge and mistyped bodies; routes and methods -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_bodies_are_400_invalid_syntax_and_change_nothing() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user = format!("/Users/{}", s.user);
    let group = format!("/Groups/{}", s.group);
    let targets = [
        (Method::POST, "/Users"),
        (Method::PUT, user.as_str()),
        (Method::PATCH, user.as_str()),
        (Method::POST, "/Groups"),
        (Method::PUT, group.as_str()),
        (Method::PATCH, group.as_str()),
        (Method::POST, "/Users/.search"),
        (Method::POST, "/.search"),
        (Method::POST, "/Bulk"),
    ];
    let bodies: [&[u8]; 8] = [
        b"{\"userName\": \"trunc",
        b"{\"userName\": \"a\", \"displayName\": ",
        b"{\"userName\": \"a\"} trailing garbage",
        b"{\"userName\": \"a\"}{}",
        b"[1]",
        b"",
        b"   \r\n ",
        b"{\"userName\": \"\xff\xfe\"}",
    ];
    for (m, p) in &targets {
        for body in bodies {
            let what = format!("{m} {p} with body {:?}", String::from_utf8_lossy(body));
            let r = send_text(&app, m.clone(), p, body.to_vec()).await;
            refused(r, 400, Some("invalidSyntax"), &what).await;
        }
    }
    assert_unchanged(&app, &before, "malformed bodies").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_400_invalid_syntax_without_stack_overflow() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let n = 100_000;
    let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let user = format!("/Users/{}", s.user);
    for (shape, deep) in [("arrays", &arrays), ("objects", &objects)] {
        let bodies = [
            (Method::POST, "/Users", deep.clone()),
            (Method::POST, "/Users", format!("{{\"userName\": \"deep\", \"name\": {deep}}}")),
            (Method::PUT, user.as_str(), format!("{{\"userName\": \"jdoe@contoso.com\", \"title\": {deep}}}")),
            (
                Method::PATCH,
                user.as_str(),
                format!(
                    "{{\"schemas\": [\"{PATCH_OP}\"], \"Operations\": [{{\"op\": \"add\", \"path\": \"title\", \"value\": {deep}}}]}}"
                ),
            ),
            (Method::POST, "/Groups", format!("{{\"displayName\": \"deep\", \"members\": {deep}}}")),
            (Method::POST, "/Bulk", deep.clone()),
            (Method::POST, "/.search", format!("{{\"filter\": {deep}}}")),
        ];
        for (m, p, body) in bodies {
            let what = format!("{m} {p} with 100,000 nested {shape}");
            refused(send_text(&app, m, p, body).await, 400, Some("invalidSyntax"), &what).await;
        }
    }
    // Nesting the JSON parser accepts, where a flat string is expected.
    let shallow = format!("{}\"x\"{}", "[".repeat(100), "]".repeat(100));
    let body = format!("{{\"userName\": \"shallow\", \"name\": {{\"givenName\": {shallow}}}}}");
    let err = refused(send_text(&app, Method::POST, "/Users", body).await, 400, Some("invalidValue"), "100 deep").await;
    assert_detail_names(&err, &["givenName"], "100 nested arrays as name.givenName");
    assert_unchanged(&app, &before, "deeply nested bodies").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_indexed_values_are_refused_or_stored_never_5xx() {
    let app = spawn_app().await;
    let id = app.user("patched@contoso.com").await;
    // Each case its own 1.9 MB value (1.9 MB of one letter), so none collides with another.
    let huge = |c: char| c.to_string().repeat(1_900_000);
    let patch_user_name = patch_op(json!([{"op": "Replace", "path": "userName", "value": huge('d')}]));
    let cases = [
        ("userName", Method::POST, "/Users".to_owned(), json!({"userName": huge('a')}), huge('a')),
        (
            "externalId",
            Method::POST,
            "/Users".to_owned(),
            json!({"userName": "ext@contoso.com", "externalId": huge('b')}),
            huge('b'),
        ),
        (
            "emails.value",
            Method::POST,
            "/Users".to_owned(),
            json!({"userName": "mail@contoso.com", "emails": [{"type": "work", "value": huge('c')}]}),
            huge('c'),
        ),
        ("userName", Method::PATCH, format!("/Users/{id}"), patch_user_name, huge('d')),
        ("displayName", Method::POST, "/Groups".to_owned(), json!({"displayName": huge('e')}), huge('e')),
    ];
    let mut failures = Vec::new();
    for (attr, m, path, body, huge) in cases {
        let what = format!("{m} {path} with a 1.9 MB {attr}");
        let before = everything(&app).await;
        let r = app.send_json(m.clone(), &path, &body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if status == 200 || status == 201 {
            eprintln!("{what}: STORED ({status})");
            let v: Value = serde_json::from_str(&text).unwrap();
            let endpoint = if path.starts_with("/Groups") { "/Groups" } else { "/Users" };
            let back = ok_json(app.get(&format!("{endpoint}/{}", v["id"].as_str().unwrap())).await).await;
            let read = match attr {
                "emails.value" => &back["emails"][0]["value"],
                a => &back[a],
            };
            if read.as_str() != Some(huge.as_str()) {
                failures.push(format!("{what}: stored, but does not read back as sent"));
            }
            continue;
        }
        eprintln!("{what}: REFUSED ({status}): {text:.300}");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let scim = v["schemas"] == json!([ERROR]) && v["status"] == json!(status.to_string());
        if !(status == 400 || status == 413) || !scim {
            failures.push(format!("{what}: expected 2xx, or a SCIM 400 or 413; got {status}: {text:.300}"));
        }
        let now = everything(&app).await;
        if now != before {
            failures.push(format!("{what}: refused ({status}) but the tenant changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_2_mib_limit_is_413_and_changes_nothing() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let limit = 2 * 1024 * 1024;
    let padding = "x".repeat(limit);
    let user = format!("/Users/{}", s.user);
    let bodies = [
        (Method::POST, "/Users", json!({"userName": "big@contoso.com", "displayName": padding})),
        (Method::PUT, user.as_str(), json!({"userName": "jdoe@contoso.com", "displayName": padding})),
        (Method::PATCH, user.as_str(), patch_op(json!([{"op": "Replace", "path": "displayName", "value": padding}]))),
        (
            Method::POST,
            "/Bulk",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "bulk@contoso.com", "title": padding}}
            ]}),
        ),
    ];
    for (m, p, body) in bodies {
        let what = format!("{m} {p} with a {} byte body", body.to_string().len());
        refused(app.send_json(m, p, &body).send().await.unwrap(), 413, None, &what).await;
    }
    assert_unchanged(&app, &before, "bodies over the limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415_and_changes_nothing() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user = format!("/Users/{}", s.user);
    let body = json!({"userName": "jdoe@contoso.com", "displayName": "Changed"}).to_string();
    let patch = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Changed"}])).to_string();
    for ct in ["text/plain", "application/xml", "multipart/form-data; boundary=x", "text/json", "json", "%%%"] {
        for (m, p, b) in [(Method::POST, "/Users", &body), (Method::PUT, &user, &body), (Method::PATCH, &user, &patch)]
        {
            let r = app.req(m.clone(), p).header("content-type", ct).body(b.clone()).send().await.unwrap();
            refused(r, 415, None, &format!("{m} {p} as {ct}")).await;
        }
    }
    assert_unchanged(&app, &before, "wrong content types").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_scim_404() {
    let app = spawn_app().await;
    for path in ["/scim/v2/Widgets", "/scim/v2/Users/abc/def", "/scim/v2/Users/abc/", "/scim/v3/Users", "/", "/scim"] {
        let r = app.client.get(format!("{}{path}", app.origin)).bearer_auth(&app.token).send().await.unwrap();
        refused(r, 404, None, &format!("GET {path}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_and_names_the_allowed_methods() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user = format!("/Users/{}", s.user);
    let cases: [(Method, &str, &[&str]); 6] = [
        (Method::DELETE, "/Users", &["GET", "POST"]),
        (Method::PUT, "/Groups", &["GET", "POST"]),
        (Method::POST, user.as_str(), &["GET", "PUT", "PATCH", "DELETE"]),
        (Method::GET, "/Bulk", &["POST"]),
        (Method::POST, "/ServiceProviderConfig", &["GET"]),
        (Method::DELETE, "/Users/.search", &["POST"]),
    ];
    let mut failures = Vec::new();
    for (m, p, allowed) in cases {
        let what = format!("{m} {p}");
        let r = send_text(&app, m.clone(), p, "{}").await;
        let allow = r.headers().get("allow").map(|v| v.to_str().unwrap_or_default().to_ascii_uppercase());
        let err = refused(r, 405, None, &what).await;
        let Some(allow) = allow else {
            failures.push(format!("{what}: a 405 must carry an Allow header: {err}"));
            continue;
        };
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        if allowed.iter().any(|a| !listed.contains(a)) || listed.contains(&m.as_str()) {
            failures.push(format!("{what}: Allow {allow:?} should list exactly {allowed:?}"));
        }
        // A detail that offers a list of allowed methods must give the right one (the admin
        // reads it in Entra's provisioning log).
        let detail = err["detail"].as_str().unwrap_or_default().to_ascii_uppercase();
        if detail.contains("ALLOWED") && allowed.iter().any(|a| !detail.contains(a)) {
            failures.push(format!("{what}: the detail should name {allowed:?} (Allow: {allow}): {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_unchanged(&app, &before, "wrong methods").await;
}

// ----- 3. NUL characters -----

/// Whether a write carrying a NUL was stored exactly as sent (201/200) or refused with 400
/// `invalidValue`; anything else fails. Returns the stored resource, if it was stored.
async fn stored_or_refused(r: Response, ok: u16, what: &str) -> Option<Value> {
    let status = r.status().as_u16();
    if status == ok {
        eprintln!("{what}: STORED ({status})");
        return Some(r.json().await.unwrap());
    }
    let err = refused(r, 400, Some("invalidValue"), what).await;
    eprintln!("{what}: REFUSED (400): {err}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_values_is_stored_exactly_or_refused_never_5xx() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let nul_name = "a\u{0}b@contoso.com";
    let before = everything(&app).await;
    match stored_or_refused(app.post("/Users", &json!({"userName": nul_name})).await, 201, "NUL in userName").await {
        Some(v) => {
            let id = v["id"].as_str().unwrap();
            let back = ok_json(app.get(&format!("/Users/{id}")).await).await;
            assert_eq!(back["userName"], json!(nul_name));
            let list = app.filter("/Users", &format!("userName eq \"{}\"", "a\\u0000b@contoso.com"), "").await;
            assert_eq!(resource_ids(&list), vec![id.to_owned()], "a stored NUL is found by its filter");
            assert_eq!(app.delete(&format!("/Users/{id}")).await.status(), StatusCode::NO_CONTENT);
        }
        None => assert_unchanged(&app, &before, "NUL in userName").await,
    }
    let before = everything(&app).await;
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "x\u{0}y"}]));
    let r = app.patch(&format!("/Users/{}", s.user), &body).await;
    match stored_or_refused(r, 200, "NUL in a PATCHed title").await {
        Some(v) => assert_eq!(v["title"], json!("x\u{0}y")),
        None => assert_unchanged(&app, &before, "NUL in a PATCHed title").await,
    }
    let before = everything(&app).await;
    let r = app.post("/Groups", &json!({"displayName": "G\u{0}roup"})).await;
    match stored_or_refused(r, 201, "NUL in a group displayName").await {
        Some(v) => assert_eq!(v["displayName"], json!("G\u{0}roup")),
        None => assert_unchanged(&app, &before, "NUL in a group displayName").await,
    }
    let before = everything(&app).await;
    let body = json!({"userName": "nulmail@contoso.com", "emails": [{"type": "wo\u{0}rk", "value": "n\u{0}@x"}]});
    match stored_or_refused(app.post("/Users", &body).await, 201, "NUL in emails").await {
        Some(v) => assert_eq!(v["emails"][0]["value"], json!("n\u{0}@x")),
        None => assert_unchanged(&app, &before, "NUL in emails").await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_filter_literals_is_200_empty_or_400_never_5xx() {
    let app = spawn_app().await;
    seed(&app).await;
    let filters = [
        ("/Users", "userName eq \"a\\u0000b\"".to_owned()),
        ("/Users", "userName eq \"a\u{0}b\"".to_owned()),
        ("/Users", "externalId eq \"\u{0}\"".to_owned()),
        ("/Users", "emails[type eq \"work\"].value eq \"a\u{0}b\"".to_owned()),
        ("/Users", "id eq \"abc\u{0}def\"".to_owned()),
        ("/Users", format!("{ENTERPRISE}:employeeNumber eq \"7\u{0}\"")),
        ("/Users", "title co \"\u{0}\"".to_owned()),
        ("/Users", "userName sw \"a\\u0000\"".to_owned()),
        ("/Groups", "displayName eq \"O\u{0}ps\"".to_owned()),
        ("/Groups", "members eq \"abc\u{0}def\"".to_owned()),
    ];
    let mut failures = Vec::new();
    for (endpoint, f) in &filters {
        // q() encodes a NUL as %00, the escape \u0000 as its six characters; the same filter
        // goes in a SearchRequest body too.
        let get = app.get(&format!("{endpoint}?filter={}", q(f))).await;
        let search = app.post(&format!("{endpoint}/.search"), &json!({"filter": f})).await;
        for (what, r) in
            [(format!("GET {endpoint}?filter={}", q(f)), get), (format!("POST {endpoint}/.search {f:?}"), search)]
        {
            let status = r.status().as_u16();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let text = r.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let ok = match status {
                200 => v["totalResults"] == json!(0),
                400 => {
                    ct.starts_with(SCIM)
                        && v["schemas"] == json!([ERROR])
                        && (v["scimType"] == "invalidFilter" || v["scimType"] == "invalidValue")
                }
                _ => false,
            };
            eprintln!("{what}: {status} {text:.200}");
            if !ok {
                failures.push(format!(
                    "{what}: expected 200 empty or 400 invalidFilter/invalidValue, got {status}: {text:.300}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_a_resource_id_is_404() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user_put = entra_user("jdoe@contoso.com", "jdoe");
    let patch = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Changed"}]));
    let ids = ["abc%00def".to_owned(), "%00".to_owned(), format!("{}%00", s.user), format!("%00{}", s.user)];
    for id in &ids {
        for endpoint in ["/Users", "/Groups"] {
            let p = format!("{endpoint}/{id}");
            refused(app.get(&p).await, 404, None, &format!("GET {p}")).await;
            let put = if endpoint == "/Users" { user_put.clone() } else { json!({"displayName": "Ops"}) };
            refused(app.put(&p, &put).await, 404, None, &format!("PUT {p}")).await;
            refused(app.patch(&p, &patch).await, 404, None, &format!("PATCH {p}")).await;
            refused(app.delete(&p).await, 404, None, &format!("DELETE {p}")).await;
        }
    }
    assert_unchanged(&app, &before, "NUL in ids").await;
}

// ----- 4. bad ids and paths -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_encoded_and_unicode_ids_are_scim_404() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user_put = entra_user("jdoe@contoso.com", "jdoe");
    let patch = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Changed"}]));
    let ids = [
        "a".repeat(10_000),
        format!("{}%2F{}", s.user, s.user),
        format!("{}%2F", s.user),
        "%2F".to_owned(),
        "..%2F..%2FGroups".to_owned(),
        q("ünïcødé"),
        q("用户"),
        q("😀"),
        q(&format!("{}\u{301}", s.user)),
        "%E2%80%AE".to_owned(),
        q("' OR '1'='1"),
    ];
    for id in &ids {
        for endpoint in ["/Users", "/Groups"] {
            let p = format!("{endpoint}/{id}");
            let short = format!("{endpoint}/{:.60}", id);
            refused(app.get(&p).await, 404, None, &format!("GET {short}")).await;
            let put = if endpoint == "/Users" { user_put.clone() } else { json!({"displayName": "Ops"}) };
            refused(app.put(&p, &put).await, 404, None, &format!("PUT {short}")).await;
            refused(app.patch(&p, &patch).await, 404, None, &format!("PATCH {short}")).await;
            refused(app.delete(&p).await, 404, None, &format!("DELETE {short}")).await;
        }
    }
    // A percent-encoding that is not UTF-8 cannot name a resource either; never a 5xx.
    for p in ["/Users/%FF%FE", "/Groups/%C3"] {
        let r = app.get(p).await;
        let status = r.status().as_u16();
        assert!(status == 400 || status == 404, "GET {p}: {status}");
        refused(r, status, None, &format!("GET {p}")).await;
    }
    assert_unchanged(&app, &before, "bad ids").await;
}

// ----- 5. bad headers -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_authorization_headers_are_401() {
    let app = spawn_app().await;
    let huge = "a".repeat(16 * 1024);
    let shaped = format!("scimd_{}_{}", "z".repeat(8 * 1024), "A".repeat(8 * 1024));
    // `scimd_<id>_<secret>`: the id is the second part (not all before the last `_`: the
    // secret is base64url and may hold `_` itself).
    let id = app.token.split('_').nth(1).unwrap();
    let long_secret = format!("scimd_{id}_{}", "A".repeat(16 * 1024));
    let values = [
        format!("Bearer {huge}"),
        format!("Bearer {shaped}"),
        format!("Bearer {long_secret}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        "bearer".to_owned(),
        "Bearer\t".to_owned(),
        format!("Bearer {} {}", app.token, app.token),
        "Basic".to_owned(),
        "Basic !!!notbase64".to_owned(),
        format!("Token {}", app.token),
        "".to_owned(),
        "scimd__".to_owned(),
        "Bearer scimd__".to_owned(),
        "Bearer _".to_owned(),
    ];
    for v in &values {
        let r = app.client.get(format!("{}/Users", app.scim)).header("authorization", v.as_str()).send().await;
        let what = format!("Authorization: {:.60} ({} bytes)", v, v.len());
        refused(r.unwrap(), 401, None, &what).await;
    }
    // Two Authorization headers, one good: refused, never the good one picked blindly.
    let r = app
        .client
        .get(format!("{}/Users", app.scim))
        .header("authorization", "Bearer garbage")
        .header("authorization", format!("Bearer {}", app.token))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 200 || status == 401 || status == 400, "two Authorization headers: {status}");
    if status != 200 {
        refused(r, status, None, "two Authorization headers").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_header_values_are_4xx_never_5xx() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let tok = app.token.as_bytes();
    let req = |line: &str, headers: &[&[u8]], body: &[u8]| -> Vec<u8> {
        let mut out =
            format!("{line}\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n", body.len()).into_bytes();
        for h in headers {
            out.extend_from_slice(h);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    };
    let auth = [b"Authorization: Bearer ".as_slice(), tok].concat();
    let body = json!({"userName": "jdoe@contoso.com", "displayName": "Changed"}).to_string();
    let user = format!("/scim/v2/Users/{}", s.user);
    // A non-UTF-8 token.
    let mut bad_token = auth.clone();
    bad_token.extend_from_slice(b"\xff\xfe");
    let mut del_token = auth.clone();
    del_token.push(0x7f);
    let cases: Vec<(String, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "token \\xff\\xfe".into(),
            req("GET /scim/v2/Users HTTP/1.1", &[b"Authorization: Bearer \xff\xfe\x80"], b""),
            401,
            None,
        ),
        ("token + \\xff\\xfe".into(), req("GET /scim/v2/Users HTTP/1.1", &[&bad_token], b""), 401, None),
        (
            "Content-Type \\xff".into(),
            req(&format!("PUT {user} HTTP/1.1"), &[&auth, b"Content-Type: application/\xffjson"], body.as_bytes()),
            415,
            None,
        ),
        (
            "If-Match \\xff".into(),
            req(
                &format!("PUT {user} HTTP/1.1"),
                &[&auth, b"Content-Type: application/scim+json", b"If-Match: W/\"\xff\""],
                body.as_bytes(),
            ),
            400,
            Some("invalidValue"),
        ),
    ];
    // A control character in a header value is refused by the HTTP parser itself: a 4xx.
    let (status, text, _) = raw_bytes(&app, &req("GET /scim/v2/Users HTTP/1.1", &[&del_token], b"")).await;
    assert!((400..500).contains(&status), "token + DEL: {text}");
    for (what, bytes, want, scim_type) in &cases {
        let (status, text, v) = raw_bytes(&app, bytes).await;
        assert_raw_scim_error(status, &text, &v, *want, *scim_type, what);
    }
    // Headers the server does not read may carry anything.
    for h in
        [b"X-Junk: \xff\xfe\x80".as_slice(), b"X-Forwarded-Host: \xffevil", b"Accept: \xff/\xfe", b"User-Agent: \xc3"]
    {
        let what = format!("GET /Users with {}", String::from_utf8_lossy(h));
        let (status, text, v) = raw_bytes(&app, &req("GET /scim/v2/Users HTTP/1.1", &[&auth, h], b"")).await;
        assert!(status < 500 && status != 0, "{what}: {text}");
        if status >= 400 {
            assert_raw_scim_error(status, &text, &v, status, v["scimType"].as_str(), &what);
        }
    }
    assert_unchanged(&app, &before, "non-UTF-8 headers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_if_match_is_412_and_changes_nothing() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let user = format!("/Users/{}", s.user);
    let group = format!("/Groups/{}", s.group);
    let put = entra_user("jdoe@contoso.com", "jdoe");
    let patch = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Changed"}]));
    let gpatch = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Changed"}]));
    let garbage = [
        "garbage".to_owned(),
        "W/\"".to_owned(),
        "\"\"".to_owned(),
        "W/".to_owned(),
        "\"-1\"".to_owned(),
        "W/\"99999999999999999999999999\"".to_owned(),
        "W/\"1e3\"".to_owned(),
        ",,,".to_owned(),
        "\"a\", \"b\", W/\"c\"".to_owned(),
        "x".repeat(8 * 1024),
        format!("W/\"{}\"", "9".repeat(4096)),
    ];
    for g in &garbage {
        let what = |m: &str, p: &str| format!("{m} {p} If-Match {:.60}", g);
        let sends = [
            (app.send_json(Method::PUT, &user, &put), what("PUT", &user)),
            (app.send_json(Method::PATCH, &user, &patch), what("PATCH", &user)),
            (app.req(Method::DELETE, &user), what("DELETE", &user)),
            (app.send_json(Method::PATCH, &group, &gpatch), what("PATCH", &group)),
            (app.req(Method::DELETE, &group), what("DELETE", &group)),
        ];
        for (rb, what) in sends {
            let r = rb.header("if-match", g.as_str()).send().await.unwrap();
            refused(r, 412, None, &what).await;
        }
    }
    assert_unchanged(&app, &before, "garbage If-Match").await;
}

// ----- 6. a tenant deleted while its client writes -----

/// One create's answer, with when it was sent and received.
struct Answer {
    sent: Instant,
    received: Instant,
    status: u16,
    body: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_deleted_while_its_client_writes_answers_401_or_404_and_leaves_nothing() {
    let app = Arc::new(spawn_app().await);
    let old = app.tenant.id;
    let creates = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (app, creates) = (Arc::clone(&app), Arc::clone(&creates));
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut refusals = 0;
            let mut i = 0;
            while refusals < 20 && i < 5_000 {
                let body = json!({"userName": format!("t{t}-{i}@contoso.com"), "displayName": "Racer"});
                let sent = Instant::now();
                let r = app.post("/Users", &body).await;
                let received = Instant::now();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                if status == 201 {
                    creates.fetch_add(1, Ordering::SeqCst);
                } else {
                    refusals += 1;
                }
                answers.push(Answer { sent, received, status, body });
                i += 1;
            }
            (refusals, answers)
        }));
    }
    let wait = Instant::now();
    while creates.load(Ordering::SeqCst) < 50 {
        assert!(wait.elapsed() < Duration::from_secs(60), "50 creates never happened");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(app.store.delete_tenant("contoso".into()).await.unwrap(), "the tenant was there");
    // When the delete returned: a 201 for a request sent after this is a failure.
    let deleted = Instant::now();
    let created_before = creates.load(Ordering::SeqCst);

    let mut late_sent = Vec::new();
    let mut bad = Vec::new();
    let (mut ok_after_delete, mut refusals_total) = (0, 0);
    for (t, task) in tasks.into_iter().enumerate() {
        let (refusals, answers) = task.await.unwrap();
        assert_eq!(refusals, 20, "task {t} never saw 20 refusals (kept getting 201?)");
        refusals_total += refusals;
        for a in answers {
            if a.status == 201 {
                if a.sent > deleted {
                    late_sent.push(format!(
                        "task {t}: 201 sent {:?} and received {:?} after the delete returned: {}",
                        a.sent - deleted,
                        a.received - deleted,
                        a.body
                    ));
                } else if a.received > deleted {
                    ok_after_delete += 1;
                }
                continue;
            }
            let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
            let scim = v["schemas"] == json!([ERROR]) && v["status"] == json!(a.status.to_string());
            if !(a.status == 401 || a.status == 404) || !scim {
                let when = if a.sent > deleted { "after" } else { "before" };
                bad.push(format!("task {t}: {} (sent {when} the delete): {}", a.status, a.body));
            }
        }
    }
    eprintln!(
        "tenant race: {created_before} creates before the delete, {ok_after_delete} 201s sent before but received \
         after it, {refusals_total} refusals"
    );
    assert!(late_sent.is_empty(), "creates sent after the tenant was deleted succeeded:\n{}", late_sent.join("\n"));
    assert!(bad.is_empty(), "refusals other than a SCIM 401/404:\n{}", bad.join("\n"));

    // Nothing of the old tenant is left in the store.
    for kind in [scim_core::Kind::User, scim_core::Kind::Group] {
        let page = app
            .store
            .query(scim_store::Query {
                tenant: old,
                kind,
                filter: None,
                sort: None,
                start_index: 1,
                count: 10,
                load: Default::default(),
                position: false,
                seek: None,
            })
            .await
            .unwrap();
        assert_eq!(page.total, Some(0), "{kind:?} of the deleted tenant left in the store: {:?}", page.records.first());
    }

    // A new tenant of the same name starts empty, and the old token never reaches it.
    let (tenant, token) = add_tenant(&app.store, "contoso", &[]).await;
    assert_ne!(tenant.id, old, "a new tenant must not take the deleted tenant's id");
    let v = ok_json(app.req_as(&token, Method::GET, "/Users").send().await.unwrap()).await;
    assert_eq!(v["totalResults"], json!(0), "{v:.500}");
    let r = app.req_as(&token, Method::POST, "/Users").header("content-type", SCIM);
    let r = r.body(json!({"userName": "fresh@contoso.com"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.req(Method::GET, "/Users").send().await.unwrap();
        let status = r.status().as_u16();
        if status == 401 {
            refused(r, 401, None, "the old token").await;
            break;
        }
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!((status, &v["totalResults"]), (200, &json!(0)), "the old token sees the new tenant: {v:.500}");
        assert!(Instant::now() < until, "the deleted tenant's token still works after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- 7. metrics labels -----

/// 200 requests, each with its own 1 KB method name (raw HTTP).
fn distinct_method_requests(app: &TestApp, path: &str) -> Vec<(String, String)> {
    (0..200)
        .map(|i| {
            let method = format!("{:X>1024}", format!("M{i}"));
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                app.token
            );
            (method, req)
        })
        .collect()
}

/// The /metrics check itself is on the admin listener, which the harness does not expose;
/// this one checks the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_1kb_methods_are_refused_with_4xx_never_5xx() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = everything(&app).await;
    for (path, want) in [("/scim/v2/Users", 405), ("/scim/v2/Nope", 404)] {
        for (method, req) in distinct_method_requests(&app, path) {
            let (status, text, v) = raw_bytes(&app, req.as_bytes()).await;
            let what = format!("{:.20}... {path}", method);
            assert!(status != 0 && status < 500, "{what}: {text:.500}");
            assert_raw_scim_error(status, &text, &v, want, None, &what);
        }
    }
    assert_unchanged(&app, &before, "unknown methods").await;
}

/// Not on /metrics (the harness does not expose the admin listener): the server's metrics go
/// through the `metrics` facade, so a recorder local to this (single) thread sees what the
/// request counter is given. Distinct unknown methods must not each mint a label value.
#[tokio::test(flavor = "current_thread")]
async fn distinct_unknown_methods_do_not_mint_metrics_labels() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let app = spawn_app().await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    for (_, req) in distinct_method_requests(&app, "/scim/v2/Users") {
        let (status, text, _) = raw_bytes(&app, req.as_bytes()).await;
        assert!(status != 0 && status < 500, "{text:.300}");
    }
    let text = handle.render();
    assert!(
        text.contains("scimd_http_requests_total{method=\"GET\""),
        "the local recorder sees the server: {text:.2000}"
    );
    let mut methods: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("scimd_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    methods.sort_unstable();
    methods.dedup();
    assert!(methods.iter().all(|m| m.len() <= 16), "a client-chosen method became a label: {:.200}", methods.join(","));
    assert!(methods.len() <= 12, "{} method labels from 200 requests: {:.300}", methods.len(), methods.join(","));
}

// ----- 8. filters and list parameters -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_over_10000_characters_is_400_invalid_filter() {
    let app = spawn_app().await;
    seed(&app).await;
    let frame = "userName eq \"\"".len();
    let at_limit = format!("userName eq \"{}\"", "a".repeat(10_000 - frame));
    let over = format!("userName eq \"{}\"", "a".repeat(10_001 - frame));
    assert_eq!((at_limit.len(), over.len()), (10_000, 10_001));
    let v = app.filter("/Users", &at_limit, "").await;
    assert_eq!(v["totalResults"], json!(0), "a filter of exactly 10,000 characters is served");
    for endpoint in ["/Users", "/Groups"] {
        let r = app.get(&format!("{endpoint}?filter={}", q(&over))).await;
        refused(r, 400, Some("invalidFilter"), &format!("GET {endpoint} with a 10,001-character filter")).await;
        let r = app.post(&format!("{endpoint}/.search"), &json!({"filter": over})).await;
        refused(r, 400, Some("invalidFilter"), &format!("POST {endpoint}/.search with a 10,001-character filter"))
            .await;
    }
    let r = app.post("/.search", &json!({"filter": over})).await;
    refused(r, 400, Some("invalidFilter"), "POST /.search with a 10,001-character filter").await;
    // Far over the limit.
    let r = app.get(&format!("/Users?filter={}", q(&format!("userName eq \"{}\"", "a".repeat(40_000))))).await;
    refused(r, 400, Some("invalidFilter"), "a 40 KB filter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_nested_1000_deep_is_400_invalid_filter_without_stack_overflow() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let before = everything(&app).await;
    let n = 1000;
    let filters = [
        format!("{}userName eq \"a\"{}", "(".repeat(n), ")".repeat(n)),
        format!("{}userName eq \"a\"{}", "not (".repeat(n), ")".repeat(n)),
        format!("{}userName eq \"a\"", "(".repeat(n)),
        format!("emails[{}type eq \"work\"{}]", "(".repeat(n), ")".repeat(n)),
        format!("{}userName eq \"a\"{}", "(userName pr and ".repeat(n), ")".repeat(n)),
        format!("{}{}", "emails[".repeat(n), "]".repeat(n)),
    ];
    for f in &filters {
        let what = format!("filter {:.40}... ({} characters)", f, f.len());
        refused(app.get(&format!("/Users?filter={}", q(f))).await, 400, Some("invalidFilter"), &what).await;
        let r = app.post("/Users/.search", &json!({"filter": f})).await;
        refused(r, 400, Some("invalidFilter"), &format!("POST /Users/.search {what}")).await;
    }
    // The same nesting in a PATCH path.
    let path = format!("emails[{}type eq \"work\"{}].value", "(".repeat(n), ")".repeat(n));
    let body = patch_op(json!([{"op": "Replace", "path": path, "value": "x@contoso.com"}]));
    let r = app.patch(&format!("/Users/{}", s.user), &body).await;
    refused_any(r, 400, &["invalidPath", "invalidFilter"], "a 1000-deep PATCH path").await;
    assert_unchanged(&app, &before, "deep filters").await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK, "the server keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paging_and_sorting_parameters_never_5xx() {
    let app = spawn_app().await;
    seed(&app).await;
    let total = user_total(&app).await;
    // RFC 7644 §3.4.2.4: a negative count is read as 0.
    let v = ok_json(app.get("/Users?count=-1").await).await;
    assert_eq!(v["totalResults"], json!(total), "{v}");
    assert_eq!(v.get("Resources").and_then(Value::as_array).map_or(0, Vec::len), 0, "{v}");
    // A startIndex below 1 is read as 1.
    let v = ok_json(app.get("/Users?startIndex=-5").await).await;
    assert_eq!((v["startIndex"].clone(), v["totalResults"].clone()), (json!(1), json!(total)), "{v}");
    for p in ["startIndex=abc", "count=abc", "startIndex=", "count=1x", "sortOrder=sideways"] {
        let r = app.get(&format!("/Users?{p}")).await;
        let status = r.status().as_u16();
        if p.ends_with('=') {
            assert_eq!(status, 200, "{p}: an empty parameter is as if absent");
            continue;
        }
        refused(r, 400, Some("invalidValue"), &format!("GET /Users?{p}")).await;
    }
    // An attribute no resource has sorts nothing away.
    let v = ok_json(app.get("/Users?sortBy=nosuch").await).await;
    assert_eq!(v["totalResults"], json!(total), "sortBy=nosuch: {v}");
    assert_eq!(resource_ids(&v).len() as u64, total, "sortBy=nosuch: {v}");
    // Anything else: a 2xx or a SCIM 400, never a 5xx.
    let long_sort = "a".repeat(10_001);
    for p in [
        "count=99999999999999999999999999999999999999999",
        "count=1e400",
        "count=NaN",
        "startIndex=1e400",
        "startIndex=-99999999999999999999999999999999999999999",
        "sortBy=((",
        "sortBy=emails[type%20eq%20%22work%22].value",
        "sortBy=urn:nosuch:schema:attr",
        "sortBy=%00",
        &format!("sortBy={long_sort}"),
        "attributes=%00,((,[[",
        "excludedAttributes=%00,((,[[",
        "attributes=emails[type eq \"work\"]",
        "filter=&count=-1&startIndex=-1",
        "filter=%20",
    ] {
        let r = app.get(&format!("/Users?{p}")).await;
        let status = r.status().as_u16();
        let what = format!("GET /Users?{:.80}", p);
        if status >= 300 {
            let err = refused_any(r, 400, &["invalidValue", "invalidFilter", "invalidPath"], &what).await;
            eprintln!("{what}: 400 {err}");
        } else {
            eprintln!("{what}: {status}");
        }
    }
}

/// Slow-loris: 300 idle half-sent requests made `/healthz` time out. Stalled connections are
/// now closed after the header timeout, and at most `max_connections` are open at once, so
/// others are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_and_do_not_starve_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let settings = scimd::http::HttpSettings {
        header_timeout: std::time::Duration::from_millis(500),
        max_connections: 20,
        ..Default::default()
    };
    let app = spawn_app_with(settings, &[]).await;
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..60 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        stalled.push(s);
    }
    // The server closes each stalled connection once its header time is up.
    let mut first = stalled.remove(0);
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), first.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a half-sent request was not cut off");
    // And a well-behaved client is served while the stalled ones are still open.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.client.get(format!("{}/healthz", app.origin)).send(),
    )
    .await;
    assert!(r.is_ok_and(|r| r.is_ok_and(|r| r.status() == 200)), "/healthz was starved");
    drop(stalled);
}

/// A body with thousands of values is checked on a blocking thread; it is stored the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_body_is_ingested_off_the_runtime_and_stored_the_same() {
    let app = spawn_app().await;
    let roles: Vec<serde_json::Value> =
        (0..900).map(|i| serde_json::json!({"value": format!("r{i}"), "type": "t"})).collect();
    let user = app.create_user(&serde_json::json!({"userName": "heavy@contoso.com", "roles": roles})).await;
    assert_eq!(user["roles"].as_array().unwrap().len(), 900);
    assert_eq!(user["roles"][899]["value"], "r899");
}
