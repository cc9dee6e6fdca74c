//! The console's forms refuse a POST without the session's CSRF token, or from another site.

use reqwest::StatusCode;

use crate::harness::{App, Browser, Driver, serial};

/// A form of the page shown: its absolute `action` and its fields as the browser would send them.
async fn form_of(b: &Browser, css: &str) -> (String, Vec<(String, String)>) {
    let script = format!(
        "var f = document.querySelector({sel}); return [f.action, new URLSearchParams(new FormData(f)).toString()];",
        sel = serde_json::to_string(css).unwrap()
    );
    let v: (String, String) = serde_json::from_value(b.js(&script).await).unwrap();
    let fields = url::form_urlencoded::parse(v.1.as_bytes()).into_owned().collect();
    (v.0, fields)
}

/// `fields` with the `csrf` field set to `csrf` (or left out, for `None`).
fn with_csrf(fields: &[(String, String)], csrf: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    if let Some(c) = csrf {
        out.push(("csrf".into(), c.into()));
    }
    out
}

/// POSTs a form with the session cookie (and an `Origin`, when given); returns the status.
async fn post(app: &App, action: &str, cookie: &str, fields: &[(String, String)], origin: Option<&str>) -> StatusCode {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut req = app
        .http
        .post(action)
        .header("cookie", format!("scimd_console={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn a_console_post_with_a_wrong_or_missing_csrf_token_or_from_another_site_is_refused_and_changes_nothing() {
    let _serial = serial().await;
    let app = App::start().await;
    let tenant = app.tenant("contoso").await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.sign_in(&app).await;
    let cookie = b.c.get_named_cookie("scimd_console").await.unwrap().value().to_owned();

    // The new-token form, sent by hand with the browser's session.
    b.goto(&app.console("/console/tenants/contoso")).await;
    b.wait_for("form#new-token").await;
    let (action, fields) = form_of(&b, "#new-token").await;
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(!csrf.is_empty(), "#new-token carries a hidden csrf field: {fields:?}");
    let before = app.token_count(tenant.id).await;

    let wrong = post(&app, &action, &cookie, &with_csrf(&fields, Some("not-the-token")), None).await;
    assert_eq!(wrong, StatusCode::FORBIDDEN, "a wrong csrf value");
    let missing = post(&app, &action, &cookie, &with_csrf(&fields, None), None).await;
    assert_eq!(missing, StatusCode::FORBIDDEN, "no csrf field");
    let empty = post(&app, &action, &cookie, &with_csrf(&fields, Some("")), None).await;
    assert_eq!(empty, StatusCode::FORBIDDEN, "an empty csrf field");
    let other_site = post(&app, &action, &cookie, &fields, Some("http://evil.example")).await;
    assert_eq!(other_site, StatusCode::FORBIDDEN, "the right csrf value, sent from another site");
    assert_eq!(app.token_count(tenant.id).await, before, "a refused form created a token");

    // In the browser: the hidden field edited by a script, then the form submitted.
    b.js("document.querySelector('#new-token input[name=csrf]').value = 'forged'; return null;").await;
    b.click("#create-token").await;
    b.wait_for("body").await;
    assert_eq!(b.status().await, 403, "a forged csrf field in the browser");
    assert!(!b.has("#new-token-secret").await, "a refused form showed a token");
    assert_eq!(app.token_count(tenant.id).await, before, "a refused form created a token");

    // The same request with the right value (and this site's Origin) goes through, so the
    // refusals above were about the token alone.
    let ok = post(&app, &action, &cookie, &fields, Some(&app.admin)).await;
    assert_ne!(ok, StatusCode::FORBIDDEN, "the right csrf value");
    assert!(ok.is_success() || ok.is_redirection(), "the right csrf value: {ok}");
    assert_eq!(app.token_count(tenant.id).await, before + 1, "the accepted form created one token");

    // The new-tenant form.
    b.goto(&app.console("/console/tenants/new")).await;
    b.wait_for("form#new-tenant").await;
    b.js("document.querySelector('#name').value = 'fabrikam'; return null;").await;
    let (action, fields) = form_of(&b, "#new-tenant").await;
    assert_eq!(post(&app, &action, &cookie, &with_csrf(&fields, Some("x")), None).await, StatusCode::FORBIDDEN);
    assert_eq!(post(&app, &action, &cookie, &with_csrf(&fields, None), None).await, StatusCode::FORBIDDEN);
    assert_eq!(post(&app, &action, &cookie, &fields, Some("https://evil.example")).await, StatusCode::FORBIDDEN);
    assert!(app.stored_tenant("fabrikam").await.is_none(), "a refused form created a tenant");

    // Sign-out without the token does not end the session.
    let (action, fields) = form_of(&b, "form:has(#sign-out)").await;
    assert!(fields.iter().any(|(k, v)| k == "csrf" && !v.is_empty()), "the sign-out form carries csrf: {fields:?}");
    assert_eq!(post(&app, &action, &cookie, &with_csrf(&fields, None), None).await, StatusCode::FORBIDDEN);
    let page = app.http.get(app.console("/console")).header("cookie", format!("scimd_console={cookie}")).send();
    assert_eq!(page.await.unwrap().status(), StatusCode::OK, "the session still works");

    // Signing in from another site's page is refused too, and sets no cookie.
    let r = app
        .http
        .post(app.console("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://evil.example")
        .body(format!("api_key={}", app.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a sign-in posted from another site");
    assert!(r.headers().get("set-cookie").is_none(), "a refused sign-in set a cookie");
    b.close().await;
}
