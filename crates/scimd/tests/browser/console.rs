//! The support console as the support team uses it: sign-in, tenants, tokens, setup links,
//! service health, sign-out; session expiry; the keyboard.

use std::collections::BTreeSet;
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use reqwest::StatusCode;

use crate::harness::{App, Browser, Driver, REFERENCE_REQUIRED, SCIM, entra_user, eventually, serial};

/// The links of a tenant page that lead to its other pages.
const TENANT_LINKS: &[&str] =
    &["edit-policy", "users-link", "groups-link", "events-link", "requests-link", "delete-tenant-link"];

#[tokio::test]
async fn support_signs_in_creates_a_tenant_issues_a_token_shown_once_makes_a_setup_link_and_signs_out() {
    let _serial = serial().await;
    let app = App::start().await;
    let driver = Driver::start().await;
    let b = driver.browser().await;

    // Not signed in: the console sends the browser to the sign-in page.
    b.goto(&app.console("/console")).await;
    b.wait_path("/console/login").await;
    b.wait_for("#api_key").await;
    b.shot("login").await;

    // A wrong key is refused, and no session cookie is set.
    b.fill("#api_key", "scimdk_aaaaaaaaaaaa_not-the-key").await;
    b.click("#sign-in").await;
    let error = b.text("#login-error").await;
    assert!(!error.trim().is_empty(), "the refusal says why");
    assert_eq!(b.path().await, "/console/login");
    assert!(b.c.get_named_cookie("scimd_console").await.is_err(), "no session after a wrong key");

    // The right key signs in, with a cookie scripts cannot read and other sites cannot send.
    b.fill("#api_key", &app.api_key).await;
    b.click("#sign-in").await;
    b.wait_path("/console").await;
    let cookie = b.c.get_named_cookie("scimd_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict), "{cookie}");
    assert_eq!(cookie.path(), Some("/console"), "{cookie}");
    assert!(!b.source().await.contains(cookie.value()), "the session value is not on the page");
    b.wait_for("#tenants").await;
    b.wait_for("#q").await;
    b.wait_for("#sign-out").await;

    // A new tenant: the reference policy is checked by default.
    b.click("#new-tenant-link").await;
    b.wait_path("/console/tenants/new").await;
    b.wait_for("form#new-tenant").await;
    let checked = b
        .js("return Array.from(document.querySelectorAll('#new-tenant input[name=required]:checked')).map(e => e.value);")
        .await;
    let checked: BTreeSet<String> = serde_json::from_value(checked).unwrap();
    let reference: BTreeSet<String> = REFERENCE_REQUIRED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(checked, reference, "the reference policy is checked by default");
    b.wait_for("#required-other").await;
    b.wait_for("#new-tenant input[type=hidden][name=csrf]").await;
    b.fill("#name", "contoso").await;
    b.click("#create-tenant").await;
    b.wait_path("/console/tenants/contoso").await;
    let tenant = app.stored_tenant("contoso").await.expect("the tenant was created");
    let required: BTreeSet<String> = tenant.required.iter().cloned().collect();
    assert_eq!(required, reference, "the tenant has the reference policy");

    // The tenant page.
    let status = b.text("#health span.status").await;
    assert!(!status.trim().is_empty(), "the health has a status");
    let policy = b.text("#policy").await;
    assert!(policy.contains("employeeNumber") && policy.contains("preferredLanguage"), "policy: {policy}");
    for id in TENANT_LINKS {
        b.wait_for(&format!("a#{id}")).await;
    }
    for id in ["#tokens", "#invites", "#webhooks", "#sign-out"] {
        b.wait_for(id).await;
    }

    // A token: its secret is shown once, and it works.
    b.fill("#token-label", "entra-prod").await;
    b.click("#create-token").await;
    let secret = b.text("code#new-token-secret").await.trim().to_owned();
    assert!(secret.starts_with("scimd_"), "the secret token: {secret}");
    let (token_id, secret_part) = scimd::tokens::split(&secret).expect("a token of scimd's shape");
    b.shot("token").await;
    let (status, list) = app.test_connection(&secret).await;
    assert_eq!(status, StatusCode::OK, "the new token works: {list}");

    // Back on the tenant page, and after a reload, the secret is nowhere.
    b.click("a#back-to-tenant").await;
    b.wait_path("/console/tenants/contoso").await;
    b.wait_for(&format!("#tokens tr[data-token=\"{token_id}\"]")).await;
    assert!(b.has(&format!("#tokens tr[data-token=\"{token_id}\"] .revoke-token")).await);
    assert!(b.has(&format!("#tokens tr[data-token=\"{token_id}\"] .rotate-token")).await);
    assert!(!b.source().await.contains(secret_part), "the tenant page shows the secret");
    b.c.refresh().await.unwrap();
    b.wait_for(&format!("#tokens tr[data-token=\"{token_id}\"]")).await;
    assert!(!b.source().await.contains(secret_part), "the reloaded tenant page shows the secret");

    // A setup link for the customer.
    b.click("#create-invite").await;
    let link = b.text("code#invite-url").await.trim().to_owned();
    let prefix = format!("{}/setup/scimdi_", app.origin);
    assert!(link.starts_with(&prefix), "setup link {link}, expected {prefix}...");
    let invite_secret = link.rsplit('/').next().unwrap().to_owned();
    let (invite_id, invite_part) = scimd::tokens::split_invite(&invite_secret).expect("a setup link's shape");
    let r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the setup link opens");
    b.click("a#back-to-tenant").await;
    b.wait_path("/console/tenants/contoso").await;
    b.wait_for(&format!("#invites tr[data-invite=\"{invite_id}\"]")).await;
    assert!(!b.source().await.contains(invite_part), "the tenant page shows the setup link's secret");
    b.shot("tenant").await;

    // Service health.
    b.goto(&app.console("/console/health")).await;
    for id in ["#version", "#database", "#uptime", "#rates", "#sign-out"] {
        b.wait_for(id).await;
    }
    assert!(!b.text("#version").await.trim().is_empty());
    b.shot("health").await;

    // The tenants list shows the tenant; the search finds it, and only what matches.
    b.goto(&app.console("/console")).await;
    let rows = b.rows("#tenants").await;
    assert!(rows.iter().any(|r| r.first().is_some_and(|c| c == "contoso")), "tenants: {rows:?}");
    b.shot("tenants").await;
    search(&b, "cont").await;
    let rows = b.rows("#tenants").await;
    assert!(rows.iter().any(|r| r.first().is_some_and(|c| c == "contoso")), "search 'cont': {rows:?}");
    search(&b, "fabrikam").await;
    let rows = b.rows("#tenants").await;
    assert!(!rows.iter().any(|r| r.first().is_some_and(|c| c == "contoso")), "search 'fabrikam': {rows:?}");

    // Sign out: the console is closed again.
    b.click("#sign-out").await;
    b.wait_path("/console/login").await;
    b.goto(&app.console("/console")).await;
    b.wait_path("/console/login").await;
    b.goto(&app.console("/console/tenants/contoso")).await;
    b.wait_path("/console/login").await;
    b.close().await;
}

#[tokio::test]
async fn support_finds_a_user_reads_its_record_and_groups_and_the_events_then_deletes_the_tenant_after_confirming() {
    let _serial = serial().await;
    let app = App::start().await;
    let tenant = app.tenant("contoso").await;
    let token = app.token(tenant.id).await;
    let (status, user) = app.create_user(&token, &entra_user("jdoe@contoso.com", "jdoe")).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_str().unwrap().to_owned();
    let group = serde_json::json!({"displayName": "Sales", "members": [{"value": user_id}]});
    let r = app.scim_req(&token, reqwest::Method::POST, "/Groups").header("content-type", SCIM).body(group.to_string());
    assert_eq!(r.send().await.unwrap().status(), StatusCode::CREATED);
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.sign_in(&app).await;

    // The users, found by text and by SCIM filter.
    b.goto(&app.console("/console/tenants/contoso/users")).await;
    for id in ["#users", "#q", "#filter", "#user-search", "#sign-out"] {
        b.wait_for(id).await;
    }
    let has_jdoe = |rows: &[Vec<String>]| rows.iter().any(|r| r.iter().any(|c| c.contains("jdoe@contoso.com")));
    assert!(has_jdoe(&b.rows("#users").await), "{:?}", b.rows("#users").await);
    b.fill("#q", "jdoe").await;
    b.wait_for("#q").await.send_keys(&Key::Enter).await.unwrap();
    eventually(Duration::from_secs(10), "the text search", || async { b.url().await.contains("q=jdoe").then_some(()) })
        .await;
    assert!(has_jdoe(&b.rows("#users").await), "search jdoe: {:?}", b.rows("#users").await);
    b.fill("#q", "").await;
    b.fill("#filter", "userName eq \"nobody@contoso.com\"").await;
    b.wait_for("#filter").await.send_keys(&Key::Enter).await.unwrap();
    eventually(Duration::from_secs(10), "the filter search", || async {
        b.url().await.contains("filter=").then_some(())
    })
    .await;
    assert!(!has_jdoe(&b.rows("#users").await), "a filter for another user: {:?}", b.rows("#users").await);

    // The user's page: the record as stored, and its groups.
    b.goto(&app.console("/console/tenants/contoso/users")).await;
    b.click(&format!("#users a[href$=\"/users/{user_id}\"]")).await;
    b.wait_path(&format!("/console/tenants/contoso/users/{user_id}")).await;
    let record = b.text("pre#record").await;
    assert!(record.contains("jdoe@contoso.com") && record.contains("701984"), "{record}");
    let groups = b.text("#user-groups").await;
    assert!(groups.contains("Sales"), "the user's groups: {groups}");
    b.wait_for("#sign-out").await;

    // The change feed.
    b.goto(&app.console("/console/tenants/contoso/events")).await;
    b.wait_for("select#type").await;
    b.wait_for("#sign-out").await;
    let events = b.rows("#events").await;
    assert!(events.iter().any(|r| r.iter().any(|c| c == "user.created")), "events: {events:?}");
    assert!(events.iter().any(|r| r.iter().any(|c| c == "group.created")), "events: {events:?}");

    // Deleting the tenant takes its name typed out.
    b.goto(&app.console("/console/tenants/contoso")).await;
    b.click("a#delete-tenant-link").await;
    b.wait_path("/console/tenants/contoso/delete").await;
    b.fill("#confirm", "contos").await;
    b.click("#delete-tenant").await;
    b.wait_for("#confirm").await;
    assert!(app.stored_tenant("contoso").await.is_some(), "deleted without the right name");
    b.fill("#confirm", "contoso").await;
    b.click("#delete-tenant").await;
    eventually(Duration::from_secs(10), "the tenant to be deleted", || async {
        app.stored_tenant("contoso").await.is_none().then_some(())
    })
    .await;
    b.wait_path("/console").await;
    let rows = b.rows("#tenants").await;
    assert!(!rows.iter().any(|r| r.first().is_some_and(|c| c == "contoso")), "tenants: {rows:?}");
    eventually(Duration::from_secs(6), "the deleted tenant's token to get 401", || async {
        let (status, _) = app.test_connection(&token).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    b.close().await;
}

/// Searches the tenants list by typing into `#q` and pressing Enter.
async fn search(b: &Browser, text: &str) {
    b.fill("#q", text).await;
    b.wait_for("#q").await.send_keys(&Key::Enter).await.unwrap();
    let wanted = format!("q={text}");
    eventually(Duration::from_secs(10), "the search result", || async {
        b.url().await.contains(&wanted).then_some(())
    })
    .await;
    b.wait_for("#tenants").await;
}

#[tokio::test]
async fn a_console_session_ends_after_its_length_and_the_next_page_is_the_sign_in() {
    let _serial = serial().await;
    let app = App::start_with(time::Duration::minutes(30)).await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.sign_in(&app).await;

    // Within the session's 30 minutes, pages open.
    app.clock.advance(time::Duration::minutes(20));
    b.goto(&app.console("/console/health")).await;
    b.wait_for("#version").await;
    assert_eq!(b.path().await, "/console/health");

    // Past them, the next page load is the sign-in page (the browser still sends its cookie).
    app.clock.advance(time::Duration::minutes(11));
    assert!(b.c.get_named_cookie("scimd_console").await.is_ok(), "the browser still has the cookie");
    b.goto(&app.console("/console/health")).await;
    b.wait_path("/console/login").await;
    b.wait_for("#api_key").await;
    assert!(!b.has("#sign-out").await);
    b.goto(&app.console("/console")).await;
    b.wait_path("/console/login").await;

    // Signing in again works (and returns to the page asked for).
    b.goto(&app.console("/console/health")).await;
    b.wait_path("/console/login").await;
    b.fill("#api_key", &app.api_key).await;
    b.click("#sign-in").await;
    b.wait_path("/console/health").await;
    b.wait_for("#version").await;
    b.close().await;
}

/// The `id` (or else `tag:text`) of the focused element, and its outline style.
async fn focused(b: &Browser) -> (String, String) {
    let v = b
        .js("var e = document.activeElement; if (!e) return ['', ''];
             var name = e.id || (e.tagName.toLowerCase() + ':' + (e.innerText || e.value || '').trim().slice(0, 30));
             return [name, getComputedStyle(e).outlineStyle];")
        .await;
    serde_json::from_value(v).unwrap()
}

async fn press(b: &Browser, key: Key) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key.into() })
        .then(KeyAction::Up { value: key.into() });
    b.c.perform_actions(keys).await.unwrap();
}

#[tokio::test]
async fn the_sign_in_works_by_keyboard_and_the_tenant_page_links_are_reachable_by_tab() {
    let _serial = serial().await;
    let app = App::start().await;
    app.tenant("contoso").await;
    let driver = Driver::start().await;
    let b = driver.browser().await;

    // The key field has the focus when the page opens; type the key, press Enter.
    b.goto(&app.console("/console/login")).await;
    b.wait_for("#api_key").await;
    let first = eventually(Duration::from_secs(5), "#api_key has the focus on load", || async {
        let (id, _) = focused(&b).await;
        (id == "api_key").then_some(id)
    })
    .await;
    assert_eq!(first, "api_key");
    let typed = format!("{}{}", app.api_key, Key::Enter);
    b.c.active_element().await.unwrap().send_keys(&typed).await.unwrap();
    b.wait_path("/console").await;
    b.wait_for("#sign-out").await;

    // On the tenant page, Tab reaches every link, each with a visible focus ring.
    b.goto(&app.console("/console/tenants/contoso")).await;
    b.wait_for("a#requests-link").await;
    let mut seen: Vec<String> = Vec::new();
    let mut missing: BTreeSet<&str> = TENANT_LINKS.iter().copied().collect();
    for _ in 0..150 {
        press(&b, Key::Tab).await;
        let (id, outline) = focused(&b).await;
        if missing.remove(id.as_str()) {
            assert_ne!(outline, "none", "#{id} has no visible focus indicator");
        }
        seen.push(id);
        if missing.is_empty() {
            break;
        }
    }
    assert!(missing.is_empty(), "not reachable by Tab: {missing:?}; Tab went through {seen:?}");

    // And Enter on a focused link follows it.
    for _ in 0..150 {
        if focused(&b).await.0 == "requests-link" {
            break;
        }
        press(&b, Key::Tab).await;
    }
    assert_eq!(focused(&b).await.0, "requests-link");
    press(&b, Key::Enter).await;
    b.wait_path("/console/tenants/contoso/requests").await;
    b.wait_for("#requests").await;
    b.close().await;
}
