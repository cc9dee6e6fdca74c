//! The provisioning log through the real server: what each SCIM request leaves in its tenant's
//! log (`GET /api/v1/tenants/{tenant}/requests`), what it never keeps (query values, token
//! secrets), whose log a refused token lands in, the listing's filters and paging, pruning, and
//! a burst that is logged in full off the request path.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scim_store::{Actor, RequestQuery};
use scimd::http::HttpSettings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;

const JDOE: &str = "jdoe@contoso.com";
const EMPLOYEE_NUMBER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
const BAD_TOKEN: &str =
    "invalid, expired or revoked token: check the Secret Token in the provisioning app, or create a new one";

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("reqlog-test".into()), OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

/// The public id of a token (`scimd_<id>_<secret>`).
fn token_id(secret: &str) -> String {
    scimd::tokens::split(secret).unwrap().0.to_owned()
}

/// `GET /api/v1/tenants/{tenant}/requests?{query}` with the API key.
async fn listing(app: &TestApp, key: &str, tenant: &str, query: &str) -> (StatusCode, Value) {
    let url = format!("{}/api/v1/tenants/{tenant}/requests?{query}", app.admin);
    status_json(app.client.get(url).bearer_auth(key).send().await.unwrap()).await
}

/// The tenant's log, newest first, once it holds `n` requests (the writer logs off the
/// request path, so this polls for up to 15 s); fails if it holds more.
async fn logged(app: &TestApp, key: &str, tenant: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = listing(app, key, tenant, "limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let list = v["requests"].as_array().unwrap().clone();
        if list.len() >= n {
            assert_eq!(list.len(), n, "more requests logged than made: {v:#}");
            return list;
        }
        assert!(Instant::now() < deadline, "only {} of {n} requests logged after 15 s: {v:#}", list.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every entry the store holds for a tenant, newest first.
async fn stored(app: &TestApp, tenant: i64) -> Vec<scim_store::LoggedRequest> {
    app.store.requests(RequestQuery { tenant, limit: 100_000, ..RequestQuery::default() }).await.unwrap()
}

fn ids_of(list: &[Value]) -> Vec<i64> {
    list.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn statuses(list: &[Value]) -> Vec<u64> {
    list.iter().map(|r| r["status"].as_u64().unwrap()).collect()
}

/// A logged entry's fields that do not depend on timing (no `id`, `time`, `latencyMs`).
fn shape(entry: &Value) -> Value {
    let mut e = entry.clone();
    let o = e.as_object_mut().unwrap();
    for k in ["id", "time", "latencyMs"] {
        assert!(o.remove(k).is_some(), "{k} missing in {entry}");
    }
    e
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_test_connection_is_logged_as_users_filter_without_the_filter_value() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let guid = "5a3e4c1d-8f2b-4e6a-9c7d-0b1f2e3d4c5a";
    // Test connection: spaces as `+`, quotes as `%22` (CLIENTS.md), and the answer it needs.
    let list = app.filter("/Users", &format!("userName eq \"{guid}\""), "").await;
    assert_eq!(list, empty_list_response());
    let before = OffsetDateTime::now_utc();

    let log = logged(&app, &key, "contoso", 1).await;
    let e = &log[0];
    assert_eq!(
        shape(e),
        json!({"token": token_id(&app.token), "method": "GET", "path": "/Users?filter", "status": 200,
               "scimType": null, "detail": null, "resource": null, "hint": null}),
        "{e}"
    );
    let at = OffsetDateTime::parse(e["time"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((before - at).abs() < time::Duration::minutes(1), "{e}");
    assert!(e["latencyMs"].as_f64().unwrap() >= 0.0, "{e}");
    assert!(!e.to_string().contains(guid), "the filter value is not kept: {e}");
    assert!(!e.to_string().contains("userName"), "nor the filter's text: {e}");
    let raw = stored(&app, app.tenant.id).await;
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].path, "/Users?filter");
    let debug = format!("{:?}", raw[0]);
    assert!(!debug.contains(guid) && !debug.contains("userName"), "the stored entry keeps no value: {debug}");

    // The other shapes Entra and Postman send: raw quotes in the request line, and the
    // Groups probe with `excludedAttributes`.
    let (status, _) = app.raw_get(&format!("/scim/v2/Users?filter=userName%20eq%20\"{guid}\"")).await;
    assert_eq!(status, 200);
    let list = app.filter("/Groups", &format!("displayName eq \"{guid}\""), "&excludedAttributes=members").await;
    assert_eq!(list, empty_list_response());
    let log = logged(&app, &key, "contoso", 3).await;
    let paths: Vec<&str> = log.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/Groups?filter&excludedAttributes", "/Users?filter", "/Users?filter"]);
    for e in &log {
        assert!(!e.to_string().contains(guid), "{e}");
    }
    for r in stored(&app, app.tenant.id).await {
        assert!(!format!("{r:?}").contains(guid), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_missing_mandatory_attributes_is_logged_400_with_the_attributes_and_the_entra_mapping_hint() {
    let app = spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await;
    let key = api_key(&app).await;
    // A cloud-only user: Entra leaves out employeeNumber (no employeeId) and preferredLanguage.
    let body = without(without(entra_user(JDOE, "jdoe"), ENTERPRISE), "preferredLanguage");
    let err = assert_scim_error(app.post("/Users", &body).await, 400, Some("invalidValue")).await;
    let want_detail = format!(
        "required attribute missing: {EMPLOYEE_NUMBER}, preferredLanguage — map a source attribute to each in the \
         provisioning app's attribute mappings (Entra ID: employeeId -> {EMPLOYEE_NUMBER}, preferredLanguage -> \
         preferredLanguage)"
    );
    assert_eq!(err["detail"], json!(want_detail), "{err}");

    let log = logged(&app, &key, "contoso", 1).await;
    assert_eq!(
        shape(&log[0]),
        json!({
            "token": token_id(&app.token), "method": "POST", "path": "/Users", "status": 400,
            "scimType": "invalidValue", "detail": want_detail, "resource": null,
            "hint": format!("add these attribute mappings in Entra ID (source -> target): employeeId -> \
                {EMPLOYEE_NUMBER}, preferredLanguage -> preferredLanguage"),
        }),
        "{:#}",
        log[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_conflict_is_logged_409_uniqueness_with_a_hint_naming_the_user_that_holds_it() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let holder = app.create_user(&entra_user(JDOE, "jdoe")).await["id"].as_str().unwrap().to_owned();
    let err = assert_scim_error(app.post("/Users", &entra_user(JDOE, "jdoe-2")).await, 409, Some("uniqueness")).await;
    let detail = err["detail"].as_str().unwrap().to_owned();
    assert_eq!(
        detail,
        format!("userName \"{JDOE}\" is already used by another User of this tenant (compared case-insensitively)")
    );

    let log = logged(&app, &key, "contoso", 2).await;
    assert_eq!(
        shape(&log[1]),
        json!({"token": token_id(&app.token), "method": "POST", "path": "/Users", "status": 201,
               "scimType": null, "detail": null, "resource": holder, "hint": null}),
        "the create names the user it made: {}",
        log[1]
    );
    assert_eq!(
        shape(&log[0]),
        json!({
            "token": token_id(&app.token), "method": "POST", "path": "/Users", "status": 409,
            "scimType": "uniqueness", "detail": detail, "resource": null,
            "hint": format!(
                "userName \"{JDOE}\" is held by User {holder} (externalId \"jdoe\"): if it is the same person, delete \
                 that User or match on it (Entra ID: Attribute mapping, \"Match objects using this attribute\"); \
                 otherwise make the value unique in the source directory"
            ),
        }),
        "{:#}",
        log[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_401_lands_in_its_tenants_log_with_its_token_id() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let revoked = add_token(&app.store, app.tenant.id, None).await;
    let now = OffsetDateTime::now_utc();
    assert!(app.store.revoke_token(token_id(&revoked), now, Actor::cli("test")).await.unwrap());
    let r = app.req_as(&revoked, Method::GET, "/Users?startIndex=1&count=2").send().await.unwrap();
    assert_scim_error(r, 401, None).await;
    // A real id with a wrong secret is that token's refusal too.
    let wrong = format!("scimd_{}_not-the-secret", token_id(&app.token));
    let r = app.req_as(&wrong, Method::DELETE, "/Users/abc").send().await.unwrap();
    assert_scim_error(r, 401, None).await;

    let log = logged(&app, &key, "contoso", 2).await;
    assert_eq!(
        shape(&log[1]),
        json!({"token": token_id(&revoked), "method": "GET", "path": "/Users?startIndex&count", "status": 401,
               "scimType": null, "detail": BAD_TOKEN, "resource": null, "hint": null}),
        "{}",
        log[1]
    );
    assert_eq!(
        shape(&log[0]),
        json!({"token": token_id(&app.token), "method": "DELETE", "path": "/Users/abc", "status": 401,
               "scimType": null, "detail": BAD_TOKEN, "resource": "abc", "hint": null}),
        "{}",
        log[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_garbage_token_lands_in_no_log() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (other, _) = add_tenant(&app.store, "fabrikam", &[]).await;
    for token in ["garbage", "scimd_zzzzzzzzzzzz_unknown-id", "scimd_", "Bearer", "scimdk_abcdefghijkl_x"] {
        let r = app.req_as(token, Method::GET, "/Users").send().await.unwrap();
        assert_scim_error(r, 401, None).await;
    }
    let r = app.client.get(format!("{}/Users", app.scim)).send().await.unwrap();
    assert_scim_error(r, 401, None).await;
    // A marker after them: once it is logged, everything before it was written too.
    assert_eq!(app.get("/ServiceProviderConfig").await.status(), StatusCode::OK);
    let log = logged(&app, &key, "contoso", 1).await;
    assert_eq!(log[0]["path"], "/ServiceProviderConfig", "{log:?}");
    assert_eq!(stored(&app, app.tenant.id).await.len(), 1);
    assert!(stored(&app, other.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_lands_in_its_tenants_log_with_its_token_id() {
    let settings = HttpSettings { max_in_flight_per_tenant: 1, ..HttpSettings::default() };
    let app = spawn_app_with(settings, &[]).await;
    let key = api_key(&app).await;
    // A create whose body is still on its way holds the tenant's only slot.
    let body = json!({"userName": "slow@contoso.com"}).to_string();
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.token,
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body.as_bytes()[..5]).await.unwrap();
    // Let the server take the slow create in before any other request of the tenant.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.get("/Users?count=1").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_scim_error(r, 429, None).await;
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(Instant::now() < deadline, "the slow create never held the slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 201"), "{}", String::from_utf8_lossy(&answer));

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = listing(&app, &key, "contoso", "status=429").await;
        let list = v["requests"].as_array().unwrap().clone();
        if let Some(e) = list.first() {
            assert_eq!(list.len(), 1, "{v}");
            assert_eq!(
                (&e["token"], &e["method"], &e["path"], &e["status"]),
                (&json!(token_id(&app.token)), &json!("GET"), &json!("/Users?count"), &json!(429)),
                "{e}"
            );
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "the 429 was never logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filters_by_status_since_and_before_and_pages_with_next() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    // Oldest to newest: 201, 409, 404, 400, 200, 200.
    app.user("a@contoso.com").await;
    assert_eq!(app.post("/Users", &json!({"userName": "a@contoso.com"})).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.get("/Users/missing").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/Users?filter={}", q("userName eq"))).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    assert_eq!(app.get("/Groups").await.status(), StatusCode::OK);
    let all = logged(&app, &key, "contoso", 6).await;
    assert_eq!(statuses(&all), [200, 200, 400, 404, 409, 201], "newest first");
    let ids = ids_of(&all);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let get = |query: &'static str| listing(&app, &key, "contoso", query);
    let page = |v: &Value| v["requests"].as_array().unwrap().clone();
    for (query, want) in [
        ("status=4xx", vec![400, 404, 409]),
        ("status=2xx", vec![200, 200, 201]),
        ("status=errors", vec![400, 404, 409]),
        ("status=409", vec![409]),
        ("status=5xx", vec![]),
        ("since=1h", vec![200, 200, 400, 404, 409, 201]),
        ("status=2xx&since=1h&limit=2", vec![200, 200]),
    ] {
        let (status, v) = get(query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        assert_eq!(statuses(&page(&v)), want, "{query}: {v}");
    }
    let future = (OffsetDateTime::now_utc() + time::Duration::hours(1)).replace_nanosecond(0).unwrap();
    let (_, v) = listing(&app, &key, "contoso", &format!("since={}", future.format(&Rfc3339).unwrap())).await;
    assert_eq!(v, json!({"requests": [], "next": null}));
    let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let (_, v) = listing(&app, &key, "contoso", &format!("since={}", q(&past.format(&Rfc3339).unwrap()))).await;
    assert_eq!(ids_of(&page(&v)), ids);
    let (_, v) = listing(&app, &key, "contoso", &format!("before={}", ids[2])).await;
    assert_eq!(ids_of(&page(&v)), ids[3..], "before is exclusive");
    assert_eq!(v["next"], Value::Null, "a page that is not full is the last");

    // Paging by `next`: full pages name the next one; the pages together are the whole log.
    let mut seen = Vec::new();
    let mut query = "limit=4".to_owned();
    let mut nexts = Vec::new();
    loop {
        let (status, v) = listing(&app, &key, "contoso", &query).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        seen.extend(ids_of(&page(&v)));
        match v["next"].as_i64() {
            Some(n) => {
                assert_eq!(Some(&n), seen.last(), "next is the last id of the page: {v}");
                nexts.push(n);
                query = format!("limit=4&before={n}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(nexts, [ids[3]]);
    let (_, v) = listing(&app, &key, "contoso", "limit=3").await;
    assert_eq!((ids_of(&page(&v)), v["next"].as_i64()), (ids[..3].to_vec(), Some(ids[2])));
    let (_, v) = listing(&app, &key, "contoso", &format!("limit=3&before={}", ids[2])).await;
    assert_eq!((ids_of(&page(&v)), v["next"].as_i64()), (ids[3..].to_vec(), Some(ids[5])));
    let (_, v) = listing(&app, &key, "contoso", &format!("limit=3&before={}", ids[5])).await;
    assert_eq!(v, json!({"requests": [], "next": null}));

    // Bad parameters are 400 with the API's error body; unknown tenants 404; no key 401.
    for query in [
        "status=7xx",
        "status=teapot",
        "since=yesterday",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "before=abc",
        "filter=x",
    ] {
        let (status, v) = get(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(v["error"].is_string() && v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{query}: {v}");
    }
    let (status, v) = listing(&app, &key, "nosuch", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].is_string(), "{v}");
    let r = app.client.get(format!("{}/api/v1/tenants/contoso/requests", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.client.get(format!("{}/api/v1/tenants/contoso/requests", app.admin)).bearer_auth(&app.token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "a tenant token is no API key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_secret_ever_appears_in_any_log_entry() {
    let app = spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await;
    let key = api_key(&app).await;
    let revoked = add_token(&app.store, app.tenant.id, None).await;
    assert!(app.store.revoke_token(token_id(&revoked), OffsetDateTime::now_utc(), Actor::cli("t")).await.unwrap());
    let wrong_secret = format!("scimd_{}_{}", token_id(&app.token), "A".repeat(43));
    let secrets = [app.token.clone(), revoked.clone(), wrong_secret.clone()];

    let mut n = 0;
    // Successes, with a token as a query value and as a filter literal.
    assert_eq!(app.get(&format!("/Users?access_token={}", q(&app.token))).await.status(), StatusCode::OK);
    app.filter("/Users", &format!("userName eq \"{}\"", app.token), "").await;
    app.create_user(&entra_user(JDOE, "jdoe")).await;
    n += 3;
    // Refusals: policy, conflict, not found, bad filter, refused tokens.
    let r = app.post("/Users", &without(entra_user("x@contoso.com", "x"), "preferredLanguage")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.post("/Users", &entra_user(JDOE, "jdoe-2")).await.status(), StatusCode::CONFLICT);
    assert_eq!(app.get("/Users/nope").await.status(), StatusCode::NOT_FOUND);
    n += 3;
    for token in [&revoked, &wrong_secret] {
        let r = app.req_as(token, Method::GET, &format!("/Users?filter={}", q(&format!("userName eq \"{token}\""))));
        assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        n += 1;
    }

    let log = logged(&app, &key, "contoso", n).await;
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("scimd_"), "a token secret in the log: {text}");
    for r in stored(&app, app.tenant.id).await {
        let debug = format!("{r:?}");
        assert!(!debug.contains("scimd_"), "{debug}");
        for s in &secrets {
            let (_, part) = scimd::tokens::split(s).unwrap();
            assert!(!debug.contains(part), "a token's secret part in {debug}");
        }
    }
    let tokens: Vec<&str> = log.iter().map(|e| e["token"].as_str().unwrap()).collect();
    let id = token_id(&app.token);
    let rev = token_id(&revoked);
    assert_eq!(
        tokens,
        [id.as_str(), rev.as_str(), id.as_str(), id.as_str(), id.as_str(), id.as_str(), id.as_str(), id.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_requests_never_show() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (fabrikam, other) = add_tenant(&app.store, "fabrikam", &[]).await;
    let other_revoked = add_token(&app.store, fabrikam.id, None).await;
    let now = OffsetDateTime::now_utc();
    assert!(app.store.revoke_token(token_id(&other_revoked), now, Actor::cli("t")).await.unwrap());
    app.user("contoso-user").await;
    app.get("/Users").await;
    for path in ["/Users", "/Groups", "/Users/x"] {
        app.req_as(&other, Method::GET, path).send().await.unwrap();
    }
    let r = app.req_as(&other, Method::POST, "/Users").header("content-type", SCIM);
    assert_eq!(r.body(json!({"userName": "fab"}).to_string()).send().await.unwrap().status(), StatusCode::CREATED);
    let r = app.req_as(&other_revoked, Method::GET, "/Users").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let mine = logged(&app, &key, "contoso", 2).await;
    let theirs = logged(&app, &key, "fabrikam", 5).await;
    assert!(mine.iter().all(|e| e["token"] == json!(token_id(&app.token))), "{mine:?}");
    let fab_tokens: Vec<&str> = theirs.iter().map(|e| e["token"].as_str().unwrap()).collect();
    let (o, r) = (token_id(&other), token_id(&other_revoked));
    assert_eq!(fab_tokens, [r.as_str(), o.as_str(), o.as_str(), o.as_str(), o.as_str()]);
    assert_eq!(statuses(&theirs), [401, 201, 404, 200, 200]);
    // Each tenant's log is numbered on its own; paging one never reaches into the other's.
    assert_eq!(ids_of(&theirs), [5, 4, 3, 2, 1]);
    assert_eq!(ids_of(&mine), [2, 1]);
    let (_, v) = listing(&app, &key, "contoso", "before=1000").await;
    assert_eq!(v["requests"].as_array().unwrap(), &mine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_pruned_by_count_leaving_the_newest() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    for i in 0..10 {
        assert_eq!(app.get(&format!("/Users/u{i}")).await.status(), StatusCode::NOT_FOUND);
    }
    let all = logged(&app, &key, "contoso", 10).await;
    let health = |app: &TestApp| {
        let url = format!("{}/api/v1/tenants/contoso/health", app.admin);
        let req = app.client.get(url).bearer_auth(&key);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let before = health(&app).await;
    assert_eq!(app.store.prune_requests(None, Some(4)).await.unwrap(), 6);
    let left = logged(&app, &key, "contoso", 4).await;
    assert_eq!(left, all[..4].to_vec(), "the newest 4 stay, unchanged");
    let paths: Vec<&str> = left.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/Users/u9", "/Users/u8", "/Users/u7", "/Users/u6"]);
    assert_eq!(app.store.prune_requests(None, Some(4)).await.unwrap(), 0, "pruning again prunes nothing");
    assert_eq!(health(&app).await, before, "the traffic summary survives the pruning");
    assert_eq!(before["cycle"]["requests"], 10, "{before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_1000_requests_is_logged_in_full() {
    let app = std::sync::Arc::new(spawn_app().await);
    let key = api_key(&app).await;
    const WORKERS: usize = 25;
    const EACH: usize = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let app = std::sync::Arc::clone(&app);
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..EACH {
                let r = app.get(&format!("/Users?count=1&w{w}i{i}")).await;
                statuses.push(r.status());
            }
            statuses
        });
    }
    let mut answered = 0;
    while let Some(statuses) = tasks.join_next().await {
        for s in statuses.unwrap() {
            assert_eq!(s, StatusCode::OK, "a request of the burst failed");
            answered += 1;
        }
    }
    assert_eq!(answered, WORKERS * EACH);

    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let entries = stored(&app, app.tenant.id).await;
        if entries.len() >= WORKERS * EACH || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entries.len(), WORKERS * EACH, "every request of the burst is logged, none dropped");
    let mut paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), WORKERS * EACH, "each request once");
    assert!(entries.iter().all(|e| e.status == 200));
    // Through the API: a full page of 1000 and a next that leads to the end.
    let (_, v) = listing(&app, &key, "contoso", "limit=1000").await;
    assert_eq!(v["requests"].as_array().unwrap().len(), 1000);
    let next = v["next"].as_i64().unwrap();
    let (_, v) = listing(&app, &key, "contoso", &format!("before={next}")).await;
    assert_eq!(v, json!({"requests": [], "next": null}));
}

/// The log's writer takes the requests of many tenants into one batch: each tenant's entries
/// are numbered on their own in the order they came (one statement inserts them all), each
/// summary counts its own, and a tenant deleted before its entries are written leaves none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_of_many_tenants_logged_together_are_each_numbered_and_counted_in_their_own_tenant() {
    const TENANTS: usize = 40;
    const EACH: usize = 5;
    let app = std::sync::Arc::new(spawn_app().await);
    let key = api_key(&app).await;
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        tenants.push(add_tenant(&app.store, &format!("many-{t:02}"), &[]).await);
    }
    // Every tenant at once, each sending its requests one after the other: 200 requests in a
    // few batches of the writer, every batch holding many tenants' entries.
    let mut tasks = tokio::task::JoinSet::new();
    for (t, (_, token)) in tenants.iter().enumerate() {
        let (app, token) = (std::sync::Arc::clone(&app), token.clone());
        tasks.spawn(async move {
            for i in 0..EACH {
                let r = app.req_as(&token, Method::GET, &format!("/Users/t{t}-r{i}")).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::NOT_FOUND);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // A tenant deleted at once: its requests may still be queued, and are then dropped.
    let gone = &tenants[TENANTS - 1].0;
    assert!(app.store.delete_tenant(gone.name.clone()).await.unwrap());
    for (t, (tenant, _)) in tenants.iter().enumerate().take(TENANTS - 1) {
        let log = logged(&app, &key, &tenant.name, EACH).await;
        assert_eq!(ids_of(&log), (1..=EACH as i64).rev().collect::<Vec<_>>(), "{}: {log:#?}", tenant.name);
        let paths: Vec<String> = log.iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect();
        let want: Vec<String> = (0..EACH).rev().map(|i| format!("/Users/t{t}-r{i}")).collect();
        assert_eq!(paths, want, "{}: in the order sent, newest first", tenant.name);
        let url = format!("{}/api/v1/tenants/{}/health", app.admin, tenant.name);
        let health: Value = app.client.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["cycle"]["requests"], EACH, "{}: {health}", tenant.name);
    }
    assert!(stored(&app, gone.id).await.is_empty(), "nothing is kept of a deleted tenant");
    assert_eq!(logged(&app, &key, "contoso", 0).await, Vec::<Value>::new(), "the app's own tenant sent nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_on_external_id_a_differently_cased_user_name_and_a_group_name_name_their_holder() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let holder = app.create_user(&entra_user(JDOE, "jdoe")).await["id"].as_str().unwrap().to_owned();
    let group = app.group("Ops").await;
    let r = app.post("/Users", &entra_user("JDoe@Contoso.com", "jdoe-3")).await;
    let cased = assert_scim_error(r, 409, Some("uniqueness")).await;
    let r = app.post("/Users", &entra_user("other@contoso.com", "jdoe")).await;
    let external = assert_scim_error(r, 409, Some("uniqueness")).await;
    let r = app.post("/Groups", &json!({"displayName": "OPS"})).await;
    let group_conflict = assert_scim_error(r, 409, Some("uniqueness")).await;
    let rename = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Ops"}]));
    let r = app.patch(&format!("/Groups/{group}"), &rename).await;
    assert!(r.status().is_success(), "renaming a group to its own name is no conflict");

    let log = logged(&app, &key, "contoso", 6).await;
    let hint = |i: usize| log[i]["hint"].as_str().unwrap_or_else(|| panic!("no hint: {}", log[i])).to_owned();
    let tail = "if it is the same person, delete that User or match on it (Entra ID: Attribute mapping, \"Match \
                objects using this attribute\"); otherwise make the value unique in the source directory";
    assert_eq!(log[3]["detail"], cased["detail"]);
    let cased_value = cased["detail"].as_str().unwrap().split('"').nth(1).unwrap().to_owned();
    assert_eq!(hint(3), format!("userName \"{cased_value}\" is held by User {holder} (externalId \"jdoe\"): {tail}"));
    assert_eq!(log[2]["detail"], external["detail"]);
    assert_eq!(hint(2), format!("externalId \"jdoe\" is held by User {holder} (externalId \"jdoe\"): {tail}"));
    assert_eq!(log[1]["detail"], group_conflict["detail"]);
    let group_value = group_conflict["detail"].as_str().unwrap().split('"').nth(1).unwrap().to_owned();
    assert_eq!(
        hint(1),
        format!(
            "displayName \"{group_value}\" is held by Group {group}: if it is the same person, delete that Group or \
             match on it (Entra ID: Attribute mapping, \"Match objects using this attribute\"); otherwise make the \
             value unique in the source directory"
        )
    );
    assert_eq!((&log[0]["status"], &log[0]["resource"]), (&json!(204), &json!(group)), "{}", log[0]);
}
