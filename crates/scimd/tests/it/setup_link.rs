//! Customer setup links through the real server: made and revoked on the vendor API
//! (`/api/v1/tenants/{tenant}/invites`, `/api/v1/invites/{id}`), opened by the customer's admin
//! on the public listener (`/setup/<secret>`), which reveals one new token exactly once, shows the
//! tenant's own values and mandatory attributes, and reports the live status of provisioning.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scimd::http::HttpSettings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::common::*;

const REVEAL: &str = "id=\"secret-token\"";
const USED: &str = "id=\"token-used\"";
const EMPLOYEE_NUMBER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("setup-test".into()), OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

fn token_id(secret: &str) -> String {
    scimd::tokens::split(secret).unwrap().0.to_owned()
}

/// A vendor API call with the API key.
async fn api(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = app.client.request(method, format!("{}{path}", app.admin)).bearer_auth(key);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    status_json(req.send().await.unwrap()).await
}

/// Makes a setup link for contoso; returns the API's answer.
async fn invite(app: &TestApp, key: &str) -> Value {
    let (status, v) =
        api(app, key, Method::POST, "/api/v1/tenants/contoso/invites", Some(json!({"expires": "7d"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

/// An HTML page of the setup link: status, headers, body.
struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    html: String,
}

async fn page(r: reqwest::RequestBuilder) -> Page {
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    Page { status, headers, html: r.text().await.unwrap() }
}

async fn open(app: &TestApp, url: &str) -> Page {
    page(app.client.get(url)).await
}

/// Selects "Create and show the secret token" (the page's form posts to itself, no body).
async fn click(app: &TestApp, url: &str) -> Page {
    page(app.client.post(url).header("content-type", "application/x-www-form-urlencoded")).await
}

/// The token a page reveals, if it reveals one.
fn revealed(html: &str) -> Option<String> {
    let (_, rest) = html.split_once(&format!("{REVEAL}>"))?;
    Some(rest.split('<').next()?.to_owned())
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The secret part of a setup URL (`scimdi_<id>_<secret>`).
fn secret_of(url: &str) -> &str {
    url.rsplit_once("/setup/").unwrap().1
}

async fn status_json_of(app: &TestApp, url: &str) -> (StatusCode, Value) {
    status_json(app.client.get(format!("{url}/status")).send().await.unwrap()).await
}

/// The status once `ready` holds (the provisioning log is written off the request path).
async fn status_when(app: &TestApp, url: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = status_json_of(app, url).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if ready(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "the status never got there: {v:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn setup_tokens(app: &TestApp) -> Vec<scim_store::Token> {
    let all = app.store.list_tokens(app.tenant.id).await.unwrap();
    all.into_iter().filter(|t| t.label.as_deref() == Some("setup link")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_link_reveals_a_token_once_that_works_for_its_tenant_only() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let made = invite(&app, &key).await;
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(scimd::tokens::is_id(&id), "{made}");
    let url = made["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/setup/scimdi_{id}_", app.origin)), "{made}");
    let created = OffsetDateTime::parse(made["created"].as_str().unwrap(), &Rfc3339).unwrap();
    let expires = OffsetDateTime::parse(made["expires"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(expires - created, time::Duration::days(7), "{made}");
    assert!((OffsetDateTime::now_utc() - created).abs() < time::Duration::minutes(1), "{made}");
    assert_eq!(
        (&made["tenant"], &made["state"], &made["redeemed"], &made["token"], &made["revoked"]),
        (&json!("contoso"), &json!("open"), &Value::Null, &Value::Null, &Value::Null),
        "{made}"
    );
    // Listings never show the URL (only its digest is stored).
    let (status, list) = api(&app, &key, Method::GET, "/api/v1/tenants/contoso/invites", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut listed = made.clone();
    listed.as_object_mut().unwrap().remove("url");
    assert_eq!(list, json!([listed]));
    assert!(!list.to_string().contains(secret_of(&url)), "{list}");

    // The page before the click: the Tenant URL and the button, no token.
    let p = open(&app, &url).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    assert!(p.headers["content-type"].to_str().unwrap().starts_with("text/html"), "{:?}", p.headers);
    assert!(p.html.contains(&format!("<code id=\"tenant-url\">{}</code>", app.scim)), "{}", p.html);
    assert!(p.html.contains("id=\"reveal\"") && !p.html.contains(REVEAL) && !p.html.contains(USED), "{}", p.html);
    assert!(setup_tokens(&app).await.is_empty(), "opening the page makes no token");

    // The click reveals a new token, once.
    let p = click(&app, &url).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    let token = revealed(&p.html).unwrap_or_else(|| panic!("no token revealed: {}", p.html));
    assert!(token.starts_with("scimd_"), "{token}");
    assert!(p.html.contains("This is the only time the secret token is shown."), "{}", p.html);
    let tokens = setup_tokens(&app).await;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].id, token_id(&token));
    for p in [click(&app, &url).await, open(&app, &url).await] {
        assert_eq!(p.status, StatusCode::OK, "{}", p.html);
        assert!(p.html.contains(USED), "{}", p.html);
        assert!(!p.html.contains(REVEAL) && !p.html.contains(&token), "shown twice: {}", p.html);
        assert!(!p.html.contains("id=\"reveal\""), "{}", p.html);
    }
    assert_eq!(setup_tokens(&app).await.len(), 1, "a second click makes no token");
    let (_, list) = api(&app, &key, Method::GET, "/api/v1/tenants/contoso/invites", None).await;
    assert_eq!((&list[0]["state"], &list[0]["token"]), (&json!("used"), &json!(token_id(&token))), "{list}");
    assert!(list[0]["redeemed"].is_string(), "{list}");

    // The token is contoso's and only contoso's.
    let (fabrikam, fab_token) = add_tenant(&app.store, "fabrikam", &[]).await;
    let r = app.req_as(&fab_token, Method::POST, "/Users").header("content-type", SCIM);
    let r = r.body(json!({"userName": "fab@fabrikam.com"}).to_string()).send().await.unwrap();
    let fab_user = ok_json(r).await["id"].as_str().unwrap().to_owned();
    let mine = app.user("jdoe@contoso.com").await;
    let r = app.req_as(&token, Method::GET, "/Users").send().await.unwrap();
    assert_eq!(resource_ids(&ok_json(r).await), [mine]);
    let r = app.req_as(&token, Method::GET, &format!("/Users/{fab_user}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.req_as(&token, Method::POST, "/Users").header("content-type", SCIM);
    let r = r.body(json!({"userName": "new@contoso.com"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let theirs = app.store.list_tokens(fabrikam.id).await.unwrap();
    assert!(theirs.iter().all(|t| t.id != token_id(&token)));
    // The token's creation is in contoso's feed, made by the setup link.
    let url_events = format!("{}/api/v1/tenants/contoso/events?after=0&limit=1000", app.admin);
    let feed: Value = app.client.get(url_events).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let created: Vec<&Value> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "tenant.token_created" && e["actor"]["path"] == json!(format!("/setup/{id}")))
        .collect();
    assert_eq!(created.len(), 1, "{feed:#}");
    assert!(!feed.to_string().contains(&token), "the feed holds no secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_racing_clicks_reveal_the_token_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let key = api_key(&app).await;
    const LINKS: usize = 6;
    for _ in 0..LINKS {
        let url = invite(&app, &key).await["url"].as_str().unwrap().to_owned();
        let clicks: Vec<_> = (0..2)
            .map(|_| {
                let (app, url) = (std::sync::Arc::clone(&app), url.clone());
                tokio::spawn(async move { click(&app, &url).await })
            })
            .collect();
        let mut pages = Vec::new();
        for c in clicks {
            pages.push(c.await.unwrap());
        }
        assert!(
            pages.iter().all(|p| p.status == StatusCode::OK),
            "{:?}",
            pages.iter().map(|p| p.status).collect::<Vec<_>>()
        );
        let shown: Vec<String> = pages.iter().filter_map(|p| revealed(&p.html)).collect();
        assert_eq!(shown.len(), 1, "exactly one of two racing clicks reveals the token");
        let other = pages.iter().find(|p| revealed(&p.html).is_none()).unwrap();
        assert!(other.html.contains(USED) && !other.html.contains(&shown[0]), "{}", other.html);
    }
    assert_eq!(setup_tokens(&app).await.len(), LINKS, "one token per link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_answers_410_and_reveals_nothing() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let now = OffsetDateTime::now_utc();
    let (record, secret) =
        scimd::tokens::issue_invite(app.tenant.id, now - time::Duration::minutes(1), now - time::Duration::days(7));
    app.store.create_invite(record.clone()).await.unwrap();
    let url = format!("{}/setup/{secret}", app.origin);
    for p in [open(&app, &url).await, click(&app, &url).await, page(app.client.get(format!("{url}/status"))).await] {
        assert_eq!(p.status, StatusCode::GONE, "{}", p.html);
        assert!(p.html.contains("This setup link has expired"), "{}", p.html);
        assert!(!p.html.contains(REVEAL) && !p.html.contains("scimd_") && !p.html.contains(&app.scim), "{}", p.html);
    }
    assert!(setup_tokens(&app).await.is_empty(), "an expired link makes no token");
    let stored = app.store.invite(record.id.clone()).await.unwrap().unwrap();
    assert_eq!((stored.redeemed, stored.token), (None, None));
    let (_, list) = api(&app, &key, Method::GET, "/api/v1/tenants/contoso/invites", None).await;
    assert_eq!((&list[0]["id"], &list[0]["state"]), (&json!(record.id), &json!("expired")), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_link_answers_410_and_reveals_nothing() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let made = invite(&app, &key).await;
    let (id, url) = (made["id"].as_str().unwrap(), made["url"].as_str().unwrap());
    assert_eq!(open(&app, url).await.status, StatusCode::OK);
    let (status, body) = api(&app, &key, Method::DELETE, &format!("/api/v1/invites/{id}"), None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for p in [open(&app, url).await, click(&app, url).await, page(app.client.get(format!("{url}/status"))).await] {
        assert_eq!(p.status, StatusCode::GONE, "{}", p.html);
        assert!(p.html.contains("This setup link was withdrawn"), "{}", p.html);
        assert!(!p.html.contains(REVEAL) && !p.html.contains("scimd_"), "{}", p.html);
    }
    assert!(setup_tokens(&app).await.is_empty());
    let (_, list) = api(&app, &key, Method::GET, "/api/v1/tenants/contoso/invites", None).await;
    assert_eq!(list[0]["state"], "revoked", "{list}");
    assert!(list[0]["revoked"].is_string(), "{list}");
    // Revoking again is no error; unknown and malformed ids are.
    let (status, _) = api(&app, &key, Method::DELETE, &format!("/api/v1/invites/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = api(&app, &key, Method::DELETE, "/api/v1/invites/abcdefghijkl", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = api(&app, &key, Method::DELETE, "/api/v1/invites/not-an-id", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A used link, revoked, closes too.
    let made = invite(&app, &key).await;
    let url = made["url"].as_str().unwrap();
    assert!(revealed(&click(&app, url).await.html).is_some());
    api(&app, &key, Method::DELETE, &format!("/api/v1/invites/{}", made["id"].as_str().unwrap()), None).await;
    assert_eq!(open(&app, url).await.status, StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_setup_secret_answers_404() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let made = invite(&app, &key).await;
    let url = made["url"].as_str().unwrap().to_owned();
    let last = url.chars().last().unwrap();
    let tampered = format!("{}{}", &url[..url.len() - 1], if last == 'A' { 'B' } else { 'A' });
    let secret = secret_of(&url);
    let (_, part) = scimd::tokens::split_invite(secret).unwrap();
    let foreign = format!("{}/setup/scimdi_zzzzzzzzzzzz_{part}", app.origin);
    let garbage = format!("{}/setup/nope", app.origin);
    let short = format!("{}/setup/{}", app.origin, &secret[..secret.len() - part.len()]);
    for u in [&tampered, &foreign, &garbage, &short] {
        for p in [open(&app, u).await, click(&app, u).await, page(app.client.get(format!("{u}/status"))).await] {
            assert_eq!(p.status, StatusCode::NOT_FOUND, "{u}: {}", p.html);
            assert!(p.html.contains("This setup link is not valid"), "{u}: {}", p.html);
            assert!(!p.html.contains(REVEAL) && !p.html.contains(&app.scim), "{u}: {}", p.html);
        }
    }
    assert!(setup_tokens(&app).await.is_empty(), "no token for a tampered link");
    // The real link is still open.
    let p = open(&app, &url).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.html.contains("id=\"reveal\""), "{}", p.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_status_reflects_test_connection_first_user_counts_and_refused_requests() {
    let app = spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await;
    let key = api_key(&app).await;
    let url = invite(&app, &key).await["url"].as_str().unwrap().to_owned();
    let (status, s) = status_json_of(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s,
        json!({"health": "never_connected", "testConnection": null, "firstUser": null, "users": 0, "groups": 0,
               "lastCycle": null, "refused": []})
    );
    let r = app.client.get(format!("{url}/status")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let token = revealed(&click(&app, &url).await.html).unwrap();

    // Entra's Test connection with the revealed token.
    let guid = "d0e3c7a1-6b5f-4c2e-8a9d-7f1e2b3c4d5e";
    let test = format!("/Users?filter={}", q(&format!("userName eq \"{guid}\"")));
    let r = app.req_as(&token, Method::GET, &test).send().await.unwrap();
    assert_eq!(ok_json(r).await, empty_list_response());
    let s = status_when(&app, &url, |s| s["testConnection"].is_string()).await;
    assert_eq!((&s["health"], &s["firstUser"], &s["users"]), (&json!("healthy"), &Value::Null, &json!(0)), "{s:#}");

    // A user without preferredLanguage is refused, then the fixed mapping goes through.
    let mut body = entra_user("jdoe@contoso.com", "jdoe");
    body.as_object_mut().unwrap().remove("preferredLanguage");
    let post = |b: &Value| app.req_as(&token, Method::POST, "/Users").header("content-type", SCIM).body(b.to_string());
    assert_eq!(post(&body).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let user = ok_json(post(&entra_user("jdoe@contoso.com", "jdoe")).send().await.unwrap()).await;
    let r = app.req_as(&token, Method::POST, "/Groups").header("content-type", SCIM);
    assert_eq!(r.body(json!({"displayName": "Ops"}).to_string()).send().await.unwrap().status(), 201);

    let s = status_when(&app, &url, |s| s["lastCycle"]["requests"] == 4).await;
    let first_user = s["firstUser"].as_str().unwrap_or_else(|| panic!("{s:#}"));
    assert!(first_user >= s["testConnection"].as_str().unwrap(), "{s:#}");
    assert_eq!((&s["health"], &s["users"], &s["groups"]), (&json!("warning"), &json!(1), &json!(1)), "{s:#}");
    assert_eq!((&s["lastCycle"]["requests"], &s["lastCycle"]["errors"]), (&json!(4), &json!(1)), "{s:#}");
    let refused = s["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{s:#}");
    let e = &refused[0];
    assert_eq!(
        (&e["method"], &e["path"], &e["status"], &e["scimType"], &e["token"]),
        (&json!("POST"), &json!("/Users"), &json!(400), &json!("invalidValue"), &json!(token_id(&token))),
        "{e:#}"
    );
    assert_eq!(
        e["detail"],
        "required attribute missing: preferredLanguage — map a source attribute to each in the provisioning app's \
         attribute mappings (Entra ID: preferredLanguage -> preferredLanguage)"
    );
    assert_eq!(
        e["hint"],
        "add these attribute mappings in Entra ID (source -> target): preferredLanguage -> preferredLanguage"
    );
    assert!(!s.to_string().contains(guid) && !s.to_string().contains("scimd_"), "{s}");
    // The page shows the same.
    let p = open(&app, &url).await;
    assert!(p.html.contains("Test connection received"), "{}", p.html);
    assert!(p.html.contains("First user provisioned"), "{}", p.html);
    assert!(p.html.contains("Users: <strong>1</strong>, groups: <strong>1</strong>"), "{}", p.html);
    assert!(
        p.html.contains("<table id=\"refused\">") && p.html.contains(&esc("preferredLanguage -> preferredLanguage"))
    );
    assert!(user["id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_page_shows_the_tenant_url_and_each_mandatory_attribute_with_its_entra_source() {
    let app = spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await;
    let key = api_key(&app).await;
    let url = invite(&app, &key).await["url"].as_str().unwrap().to_owned();
    let p = open(&app, &url).await;
    assert_eq!(p.status, StatusCode::OK);
    let html = &p.html;
    assert!(html.contains(&format!("<code id=\"tenant-url\">{}</code>", app.scim)), "{html}");
    assert!(html.contains(&format!("<th scope=\"row\">Tenant URL</th><td><code>{}</code></td>", app.scim)), "{html}");
    for (path, entra, okta) in [
        ("userName", "userPrincipalName", "user.login (Application username format)"),
        ("name.familyName", "surname", "user.lastName"),
        ("name.givenName", "givenName", "user.firstName"),
        (EMPLOYEE_NUMBER, "employeeId", "user.employeeNumber"),
        ("emails[type eq \"work\"].value", "mail", "user.email"),
        ("preferredLanguage", "preferredLanguage", "user.preferredLanguage"),
        (
            "active",
            "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")",
            "managed by Okta (not mapped)",
        ),
    ] {
        let row = format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(path),
            esc(entra),
            esc(okta)
        );
        assert!(html.contains(&row), "no row {row} in {html}");
    }
    assert_eq!(html.matches("<tr><td><code>").count(), REFERENCE_REQUIRED.len(), "one row per attribute");
    // A tenant without mandatory attributes says so.
    let (other, _) = add_tenant(&app.store, "fabrikam", &[]).await;
    let now = OffsetDateTime::now_utc();
    let (record, secret) = scimd::tokens::issue_invite(other.id, now + time::Duration::days(1), now);
    app.store.create_invite(record).await.unwrap();
    let p = open(&app, &format!("{}/setup/{secret}", app.origin)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.html.contains("requires no attribute besides <code>userName</code>"), "{}", p.html);
    assert!(!p.html.contains("id=\"mapping\""), "{}", p.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_pages_are_never_cached_and_send_no_referrer() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let url = invite(&app, &key).await["url"].as_str().unwrap().to_owned();
    let revoked = invite(&app, &key).await;
    api(&app, &key, Method::DELETE, &format!("/api/v1/invites/{}", revoked["id"].as_str().unwrap()), None).await;
    let pages = [
        ("open", open(&app, &url).await),
        ("reveal", click(&app, &url).await),
        ("used", open(&app, &url).await),
        ("revoked", open(&app, revoked["url"].as_str().unwrap()).await),
        ("unknown", open(&app, &format!("{}/setup/nope", app.origin)).await),
    ];
    for (what, p) in &pages {
        assert_eq!(p.headers.get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{what}");
        assert_eq!(p.headers.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("no-referrer"), "{what}");
        assert_eq!(p.headers.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
    }
    assert_eq!(pages.iter().map(|(_, p)| p.status.as_u16()).collect::<Vec<_>>(), [200, 200, 200, 410, 404]);
    assert!(revealed(&pages[1].1.html).is_some());
    let (status, v) = status_json_of(&app, &url).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invite_api_refuses_bad_input() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (status, v) = api(&app, &key, Method::POST, "/api/v1/tenants/nosuch/invites", Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    for body in [json!({"expires": "soon"}), json!({"expires": 7}), json!({"expiry": "7d"})] {
        let (status, v) = api(&app, &key, Method::POST, "/api/v1/tenants/contoso/invites", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    }
    // Without a body, the default expiry: 7 days.
    let (status, v) = api(&app, &key, Method::POST, "/api/v1/tenants/contoso/invites", None).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let created = OffsetDateTime::parse(v["created"].as_str().unwrap(), &Rfc3339).unwrap();
    let expires = OffsetDateTime::parse(v["expires"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(expires - created, time::Duration::days(7));
    let r = app.client.post(format!("{}/api/v1/tenants/contoso/invites", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.client.get(format!("{}/api/v1/tenants/contoso/invites", app.admin)).bearer_auth(&app.token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
