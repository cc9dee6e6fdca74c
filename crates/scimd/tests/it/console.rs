//! The support console over plain HTTP: what a browser relies on that the browser tests
//! (`tests/browser`) would only show as a failed sign-in.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, REFERRER_POLICY, SET_COOKIE};
use time::OffsetDateTime;

use crate::common::*;

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("console-test".into()), OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

/// A form post's body.
trait Form {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl Form for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).unwrap())
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in; returns the session cookie (`scimd_console=...`).
async fn sign_in(app: &TestApp, c: &reqwest::Client, key: &str) -> String {
    let r = c.post(format!("{}/console/login", app.admin)).form_body(&[("api_key", key)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    set_cookie(r.headers())
}

fn set_cookie(h: &HeaderMap) -> String {
    let v = h.get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    v.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_keep_the_origin_of_their_own_form_posts() {
    // With Referrer-Policy: no-referrer, browsers send `Origin: null` on a page's own form posts,
    // which the console's origin check refuses: no sign-in was possible from a real browser.
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/console/login", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get(REFERRER_POLICY).unwrap(), "same-origin");
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    assert!(r.headers().get("content-security-policy").unwrap().to_str().unwrap().contains("frame-ancestors 'none'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_same_site_strict_and_a_form_without_its_csrf_token_is_refused() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let c = no_redirects();
    let r =
        c.post(format!("{}/console/login", app.admin)).form_body(&[("api_key", key.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/console");
    let raw = r.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(raw.contains(attr), "{attr} in {raw}");
    }
    let cookie = set_cookie(r.headers());

    // A form post without the session's CSRF token changes nothing.
    let r = c
        .post(format!("{}/console/tenants", app.admin))
        .header("cookie", &cookie)
        .form_body(&[("name", "forged"), ("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.store.tenant("forged".into()).await.unwrap().is_none());

    // Nor does one from another site, even with the right token.
    let page = c.get(format!("{}/console/tenants/new", app.admin)).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = c
        .post(format!("{}/console/tenants", app.admin))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form_body(&[("name", "forged"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.store.tenant("forged".into()).await.unwrap().is_none());

    // The same form, from the console itself: the tenant is made.
    let r = c
        .post(format!("{}/console/tenants", app.admin))
        .header("cookie", &cookie)
        .form_body(&[("name", "made"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert!(app.store.tenant("made".into()).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_a_foreign_host_a_wrong_key_and_a_session_of_a_revoked_key() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let c = no_redirects();
    let r = c.get(format!("{}/console/login", app.admin)).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "DNS rebinding");
    let r =
        c.post(format!("{}/console/login", app.admin)).form_body(&[("api_key", "scimdk_nope")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());

    let cookie = sign_in(&app, &c, &key).await;
    let r = c.get(format!("{}/console", app.admin)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = scimd::tokens::split_api_key(&key).unwrap().0.to_owned();
    assert!(app.store.revoke_api_key(id, OffsetDateTime::now_utc()).await.unwrap());
    let r = c.get(format!("{}/console", app.admin)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "revoking the key ends its sessions");
    assert!(r.headers().get(LOCATION).unwrap().to_str().unwrap().starts_with("/console/login"));
}
