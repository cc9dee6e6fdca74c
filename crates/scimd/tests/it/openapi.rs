//! The admin listener's OpenAPI document (`docs/openapi.json`, served at
//! `/api/v1/openapi.json`) against the router it describes, `scimd::admin::API_ROUTES`: the
//! same routes both ways, each one live with its method, each operation's security as
//! documented, and the documented response schemas naming the fields of the live answers.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::*;

/// The document in the source tree.
const DOC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

/// The keys of an OpenAPI path item that are operations.
const OPERATIONS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A token id of the right shape that no token has.
const NO_SUCH_TOKEN: &str = "zzzzzzzzzzzz";

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("openapi".into()), time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

fn doc_text() -> String {
    std::fs::read_to_string(DOC_FILE).unwrap_or_else(|e| panic!("{DOC_FILE}: {e}"))
}

fn doc() -> Value {
    serde_json::from_str(&doc_text()).unwrap()
}

/// (METHOD, path template) of every operation in the document.
fn doc_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if OPERATIONS.contains(&key.as_str()) {
                out.insert((key.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn api_routes() -> BTreeSet<(String, String)> {
    scimd::admin::API_ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect()
}

/// Follows `$ref`s (local ones only: the document is served alone) to the schema itself.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("$ref {r} is not local to the document"));
        v = doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {r} names nothing"));
    }
    v
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(xs) => xs.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_allows(ty: &Value, actual: &str) -> bool {
    let ok = |t: &str| t == actual || (t == "number" && actual == "integer");
    match ty {
        Value::String(t) => ok(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(ok),
        _ => true,
    }
}

/// Checks `live` against `schema` with the parts of JSON Schema the document uses (`$ref`,
/// `type`, `const`, `enum`, `required`, `properties`, `items`), stricter in one way: an object
/// field the schema's `properties` do not name is a failure unless `additionalProperties` is
/// `true` (the schemas must name every field the server sends). Failures go to `out`.
fn conform(doc: &Value, schema: &Value, live: &Value, at: &str, out: &mut Vec<String>) {
    let s = resolve(doc, schema);
    if let Some(ty) = s.get("type") {
        if !type_allows(ty, json_type(live)) {
            out.push(format!("{at}: a {} where the schema says {ty}", json_type(live)));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if c != live {
            out.push(format!("{at}: {live} where the schema says const {c}"));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(live) {
            out.push(format!("{at}: {live} is none of the schema's enum"));
        }
    }
    match live {
        Value::Object(m) => {
            for r in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push(format!("{at}: the required field \"{r}\" is missing"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let open = s.get("additionalProperties") == Some(&Value::Bool(true));
                for (k, v) in m {
                    match props.get(k) {
                        Some(p) => conform(doc, p, v, &format!("{at}.{k}"), out),
                        None if !open => out.push(format!("{at}: the field \"{k}\" is not in the schema")),
                        None => {}
                    }
                }
            }
        }
        Value::Array(xs) => {
            if let Some(items) = s.get("items") {
                for (i, x) in xs.iter().enumerate() {
                    conform(doc, items, x, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The `properties` keys of a schema.
fn property_keys(doc: &Value, schema: &Value) -> BTreeSet<String> {
    resolve(doc, schema)["properties"].as_object().expect("an object schema").keys().cloned().collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

/// A route template with concrete values for its `{tenant}` and `{id}`.
fn concrete(template: &str, tenant: &str, id: &str) -> String {
    template.replace("{tenant}", tenant).replace("{id}", id)
}

/// A live answer: status, content type, and the body (JSON; text when it is not JSON; `Null`
/// when there is none).
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

/// Sends `method path` to the admin listener, with the API key when given, and with `body`
/// as JSON when given.
async fn call(app: &TestApp, key: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, format!("{}{path}", app.admin));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() && content_type.is_empty() {
        Value::Null
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Answer { status, content_type, body }
}

/// Sends a request for the operation `method template` and checks the answer against the
/// document: its status is one the operation documents, and its body conforms to that
/// response's schema (or is empty when the response has no content). Returns the body.
async fn documented(
    doc: &Value,
    app: &TestApp,
    key: Option<&str>,
    (method, template): (&str, &str),
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let a = call(app, key, method, path, body).await;
    let op = &doc["paths"][template][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not in the document");
    let Some(resp) = op["responses"].get(a.status.as_str()) else {
        panic!("{method} {path}: {} is not a documented status of {method} {template}: {}", a.status, a.body)
    };
    let resp = resolve(doc, resp);
    match resp.get("content").and_then(Value::as_object) {
        None => assert_eq!(a.body, Value::Null, "{method} {path}: {} has no content in the document", a.status),
        Some(content) => {
            let media = content.keys().find(|m| a.content_type.starts_with(m.split(';').next().unwrap()));
            let Some(media) = media else {
                panic!("{method} {path}: content type {:?} is not documented for {}", a.content_type, a.status)
            };
            if let Some(schema) = content[media].get("schema") {
                let mut failures = Vec::new();
                conform(doc, schema, &a.body, "body", &mut failures);
                assert!(failures.is_empty(), "{method} {path} ({}): {failures:#?}\n{}", a.status, a.body);
            }
        }
    }
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_docs_openapi_json_and_describes_exactly_the_admin_routes() {
    let app = spawn_app().await;
    let key = api_key(&app).await;

    let r = app.client.get(format!("{}/api/v1/openapi.json", app.admin)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), doc_text(), "the served document is docs/openapi.json as it is now");
    let r = app.client.get(format!("{}/api/v1/openapi.json", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the document needs the API key like the rest of /api/v1");

    let doc = doc();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);

    let listed = api_routes();
    assert_eq!(listed.len(), scimd::admin::API_ROUTES.len(), "API_ROUTES lists a route twice");
    let documented = doc_routes(&doc);
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(undocumented.is_empty(), "routes of API_ROUTES missing from docs/openapi.json: {undocumented:?}");
    assert!(unlisted.is_empty(), "operations of docs/openapi.json that API_ROUTES does not list: {unlisted:?}");

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        resolve(&doc, &json!({ "$ref": r }));
    }

    // Bearer security for everything but the three open routes.
    assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["type"], "http");
    assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"apiKey": []}]));
    for (method, path) in &listed {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let open = ["/metrics", "/healthz", "/readyz"].contains(&path.as_str());
        let security = op.get("security");
        if open {
            assert_eq!(security, Some(&json!([])), "{method} {path} is open");
        } else {
            assert_eq!(security, None, "{method} {path} needs the API key (the document's security)");
            assert!(op["responses"].get("401").is_some(), "{method} {path} documents its 401");
            assert!(op["responses"].get("421").is_some(), "{method} {path} documents its 421");
        }
    }
}

/// Whether an answer is the admin router's own: no route with that path, or not with that
/// method.
fn unrouted(a: &Answer, no_route: &Value) -> bool {
    a.status == StatusCode::METHOD_NOT_ALLOWED || (a.status == StatusCode::NOT_FOUND && &a.body == no_route)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_route_is_served_with_its_method_on_the_live_admin_listener() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    // DELETE /api/v1/tenants/{tenant} is tried on a tenant of its own.
    add_tenant(&app.store, "scratch", &[]).await;

    // The router's answer to a path it has no route for: the same whatever the path.
    let no_route = call(&app, Some(&key), "GET", "/api/v1/nope", None).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert!(no_route.body.is_object(), "the fallback answers a JSON error: {}", no_route.body);
    let deeper = call(&app, Some(&key), "GET", "/api/v1/tenants/contoso/nope/deeper", None).await;
    assert_eq!((deeper.status, &deeper.body), (no_route.status, &no_route.body));
    let no_route = no_route.body;

    // The check tells a missing route or method when there is one.
    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v1/tenants/contoso/Users/x/y"),
        ("POST", "/api/v1/tenants/contoso/Users"),
        ("PUT", "/api/v1/tenants"),
        ("GET", "/api/v1/tokens/x"),
        ("POST", "/healthz"),
    ] {
        assert!(!scimd::admin::API_ROUTES.contains(&(method, path)));
        let a = call(&app, Some(&key), method, path, None).await;
        assert!(unrouted(&a, &no_route), "{method} {path} is no route, yet answers {} {}", a.status, a.body);
    }

    let doc = doc();
    // Without the key first (nothing changes), then with it.
    for with_key in [false, true] {
        let mut unserved = Vec::new();
        for &(method, template) in scimd::admin::API_ROUTES {
            let tenant =
                if (method, template) == ("DELETE", "/api/v1/tenants/{tenant}") { "scratch" } else { "contoso" };
            let id = if template.starts_with("/api/v1/tokens/") { NO_SUCH_TOKEN } else { "nope" };
            let path = concrete(template, tenant, id);
            let body = matches!(method, "POST" | "PATCH").then(|| json!({}));
            let a = call(&app, with_key.then_some(key.as_str()), method, &path, body.as_ref()).await;
            if unrouted(&a, &no_route) {
                unserved.push(format!("{method} {path}: {} {}", a.status, a.body));
            }
            assert!(!a.status.is_server_error(), "{method} {path}: {} {}", a.status, a.body);
            let open = doc["paths"][template][method.to_ascii_lowercase()].get("security") == Some(&json!([]));
            if !with_key {
                assert_eq!(
                    a.status == StatusCode::UNAUTHORIZED,
                    !open,
                    "{method} {path} without the API key: {}",
                    a.status
                );
            }
        }
        assert!(unserved.is_empty(), "API_ROUTES entries the admin router does not serve: {unserved:#?}");
    }
    let gone = call(&app, Some(&key), "GET", "/api/v1/tenants/scratch", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "DELETE /api/v1/tenants/scratch was served: {}", gone.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_schemas_name_the_fields_of_the_live_answers() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let k = Some(key.as_str());
    let doc = doc();

    // The spot check: the keys of the live objects are the schema's properties.
    let ten_schema =
        &doc["paths"]["/api/v1/tenants"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let (status, tenants) = documented(&doc, &app, k, ("GET", "/api/v1/tenants"), "/api/v1/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!tenants.as_array().unwrap().is_empty(), "{tenants}");
    for t in tenants.as_array().unwrap() {
        assert_eq!(keys(t), property_keys(&doc, &resolve(&doc, ten_schema)["items"]), "{t}");
    }
    let tok_template = "/api/v1/tenants/{tenant}/tokens";
    let tok_schema = &doc["paths"][tok_template]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let (status, tokens) =
        documented(&doc, &app, k, ("GET", tok_template), "/api/v1/tenants/contoso/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!tokens.as_array().unwrap().is_empty(), "{tokens}");
    for t in tokens.as_array().unwrap() {
        assert_eq!(keys(t), property_keys(&doc, &resolve(&doc, tok_schema)["items"]), "{t}");
    }

    // Every other route, answering its main status and some of its errors: each status is
    // documented for its operation and the body conforms to that response's schema.
    let t = "/api/v1/tenants/{tenant}";
    let new_tenant = json!({"name": "fabrikam", "required": ["userName"]});
    let (s, _) = documented(&doc, &app, k, ("POST", "/api/v1/tenants"), "/api/v1/tenants", Some(&new_tenant)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = documented(&doc, &app, k, ("POST", "/api/v1/tenants"), "/api/v1/tenants", Some(&new_tenant)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let bad = json!({"name": "Bad Name"});
    let (s, _) = documented(&doc, &app, k, ("POST", "/api/v1/tenants"), "/api/v1/tenants", Some(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = documented(&doc, &app, k, ("GET", t), "/api/v1/tenants/fabrikam", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = documented(&doc, &app, k, ("GET", t), "/api/v1/tenants/nosuch", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = documented(&doc, &app, None, ("GET", t), "/api/v1/tenants/fabrikam", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let policy = json!({"required": ["userName", "active"]});
    let (s, _) = documented(&doc, &app, k, ("PATCH", t), "/api/v1/tenants/fabrikam", Some(&policy)).await;
    assert_eq!(s, StatusCode::OK);

    let (s, issued) = documented(
        &doc,
        &app,
        k,
        ("POST", tok_template),
        "/api/v1/tenants/fabrikam/tokens",
        Some(&json!({"label": "entra", "expires": "90d"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = issued["id"].as_str().unwrap();
    let rotate = ("POST", "/api/v1/tokens/{id}/rotate");
    let (s, rotated) =
        documented(&doc, &app, k, rotate, &format!("/api/v1/tokens/{id}/rotate"), Some(&json!({"overlap": "1h"})))
            .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(rotated["replaces"], json!(id));
    let revoke = ("DELETE", "/api/v1/tokens/{id}");
    let (s, _) = documented(&doc, &app, k, revoke, &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = documented(&doc, &app, k, rotate, &format!("/api/v1/tokens/{id}/rotate"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a revoked token cannot be rotated");
    let (s, _) = documented(&doc, &app, k, revoke, &format!("/api/v1/tokens/{NO_SUCH_TOKEN}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = documented(&doc, &app, k, ("DELETE", t), "/api/v1/tenants/fabrikam", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Users and groups, and the feed their writes made.
    let alice = app.user("alice@contoso.com").await;
    let bob = app.user("bob@contoso.com").await;
    let sales = app.group("Sales").await;
    app.patch_no_content(
        &format!("/Groups/{sales}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": alice}, {"value": bob}]}])),
    )
    .await;
    app.patch_ok(&format!("/Users/{bob}"), &patch_op(json!([{"op": "replace", "path": "active", "value": false}])))
        .await;
    for (kind, id) in [("Users", alice.as_str()), ("Groups", sales.as_str())] {
        let list = format!("/api/v1/tenants/{{tenant}}/{kind}");
        let (s, page) =
            documented(&doc, &app, k, ("GET", &list), &format!("/api/v1/tenants/contoso/{kind}"), None).await;
        assert_eq!(s, StatusCode::OK);
        let documented_keys = property_keys(&doc, &json!({"$ref": "#/components/schemas/ListResponse"}));
        let without = |names: &[&str]| -> BTreeSet<String> {
            documented_keys.iter().filter(|k| !names.contains(&k.as_str())).cloned().collect()
        };
        assert_eq!(keys(&page), without(&["nextCursor", "previousCursor"]), "an index page");
        // A first cursor page (RFC 9865): no startIndex, no previousCursor; two users, one group.
        let first = format!("/api/v1/tenants/contoso/{kind}?cursor=&count=1");
        let (s, page) = documented(&doc, &app, k, ("GET", &list), &first, None).await;
        assert_eq!(s, StatusCode::OK);
        let absent: &[&str] = if kind == "Users" {
            &["startIndex", "previousCursor"]
        } else {
            &["startIndex", "previousCursor", "nextCursor"]
        };
        assert_eq!(keys(&page), without(absent), "a first cursor page of {kind}");
        let filtered = format!("/api/v1/tenants/contoso/{kind}?filter={}", q("id eq"));
        let (s, e) = documented(&doc, &app, k, ("GET", &list), &filtered, None).await;
        assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidFilter")));
        let (s, _) = documented(&doc, &app, k, ("GET", &list), &format!("/api/v1/tenants/nosuch/{kind}"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let one = format!("{list}/{{id}}");
        let (s, _) =
            documented(&doc, &app, k, ("GET", &one), &format!("/api/v1/tenants/contoso/{kind}/{id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) =
            documented(&doc, &app, k, ("GET", &one), &format!("/api/v1/tenants/contoso/{kind}/nope"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    // On PostgreSQL events are numbered just after their commit: read until the last is there.
    let feed = ("GET", "/api/v1/tenants/{tenant}/events");
    let wanted = ["tenant.created", "user.created", "group.created", "group.members_added", "user.deactivated"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let (s, page) = documented(&doc, &app, k, feed, "/api/v1/tenants/contoso/events", None).await;
        assert_eq!(s, StatusCode::OK);
        let types: BTreeSet<String> =
            page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        if wanted.iter().all(|t| types.contains(*t)) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{wanted:?} in {types:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(keys(&page), property_keys(&doc, &json!({"$ref": "#/components/schemas/EventPage"})));
    let position = page["position"].as_i64().unwrap();
    let after = format!("/api/v1/tenants/contoso/events?after={position}&wait=10ms");
    let (s, empty) = documented(&doc, &app, k, feed, &after, None).await;
    assert_eq!((s, empty), (StatusCode::OK, json!({"events": [], "position": position})));
    let ahead = format!("/api/v1/tenants/contoso/events?after={}", position + 10);
    let (s, gone) = documented(&doc, &app, k, feed, &ahead, None).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(keys(&gone), property_keys(&doc, &json!({"$ref": "#/components/schemas/ResyncRequired"})));
    let (s, _) = documented(&doc, &app, k, feed, "/api/v1/tenants/contoso/events?limit=0", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    for open in ["/healthz", "/readyz", "/metrics"] {
        let (s, _) = documented(&doc, &app, None, ("GET", open), open, None).await;
        assert_eq!(s, StatusCode::OK, "{open}");
    }
    let (s, _) = documented(&doc, &app, k, ("GET", "/api/v1/openapi.json"), "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
}
