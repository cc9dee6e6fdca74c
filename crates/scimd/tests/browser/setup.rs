//! The customer's setup link, from the first click to the first provisioned user, and what the
//! support team then sees in the console.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{
    App, Browser, Driver, ENTERPRISE, entra_user, entra_user_without_employee_number, eventually, serial,
};

/// The cells of the rows of `table` (waited for) that hold a cell exactly `status`.
async fn rows_with_status(b: &Browser, table: &str, status: &str) -> Vec<Vec<String>> {
    b.rows(table).await.into_iter().filter(|r| r.iter().any(|c| c == status)).collect()
}

#[tokio::test]
async fn customer_reveals_the_token_once_provisions_and_sees_the_status_then_the_console_logs_it_and_revoking_refuses_it()
 {
    let _serial = serial().await;
    let app = App::start().await;
    app.tenant("contoso").await;
    let link = app.invite("contoso").await;
    let driver = Driver::start().await;

    // The customer opens the link in a browser of their own.
    let customer = driver.browser().await;
    customer.goto(&link).await;
    assert_eq!(customer.status().await, 200);
    assert_eq!(customer.text("code#tenant-url").await.trim(), app.scim);
    customer.wait_for("ol#entra-steps").await;
    customer.wait_for("ol#okta-steps").await;
    let mapping = customer.rows("#mapping").await;
    let employee = mapping.iter().find(|r| r.iter().any(|c| c.ends_with(":employeeNumber")));
    assert!(
        employee.is_some_and(|r| r.iter().any(|c| c == "employeeId")),
        "the mapping table names Entra's source of employeeNumber: {mapping:?}"
    );
    assert!(customer.text("#st-test").await.contains("Waiting for Test connection"));
    customer.shot("setup").await;

    // One click reveals the token, once.
    customer.click("#reveal").await;
    let token = customer.text("code#secret-token").await.trim().to_owned();
    let (token_id, token_part) = scimd::tokens::split(&token).expect("a token of scimd's shape");
    customer.goto(&link).await;
    customer.wait_for("#token-used").await;
    assert!(!customer.has("#secret-token").await, "the token is shown a second time");
    assert!(!customer.has("#reveal").await, "the token can be revealed a second time");
    assert!(!customer.source().await.contains(token_part), "the secret is on the page again");
    // A marker that survives only as long as the page is not reloaded.
    customer.js("window.scimdNotReloaded = true; return null;").await;

    // Entra ID with that token: Test connection, a user without employeeNumber, a full user.
    let (status, list) = app.test_connection(&token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["totalResults"], 0, "{list}");
    let (status, refused) =
        app.create_user(&token, &entra_user_without_employee_number("amy@contoso.com", "amy")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let detail = refused["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains(&format!("{ENTERPRISE}:employeeNumber")), "{refused}");
    let (status, created) = app.create_user(&token, &entra_user("jdoe@contoso.com", "jdoe")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // The setup page refreshes its status by itself (every 10 s).
    eventually(Duration::from_secs(15), "the setup page's status to refresh by itself", || async {
        let test = customer.text("#st-test").await;
        let user = customer.text("#st-user").await;
        (test.contains("Test connection received") && user.contains("First user provisioned")).then_some(())
    })
    .await;
    assert_eq!(customer.js("return window.scimdNotReloaded === true;").await, true, "the page was reloaded");
    let counts = customer.text("#st-counts").await;
    assert!(counts.contains("Users: 1"), "{counts}");
    customer.wait_for("#st-cycle").await;
    let refusals = rows_with_status(&customer, "#refused", "400").await;
    assert_eq!(refusals.len(), 1, "the refused create: {:?}", customer.rows("#refused").await);
    let row = refusals[0].join(" | ");
    assert!(row.contains("POST") && row.contains("/Users"), "{row}");
    assert!(row.contains(&format!("required attribute missing: {ENTERPRISE}:employeeNumber")), "the reason: {row}");
    assert!(row.contains(&format!("employeeId -> {ENTERPRISE}:employeeNumber")), "the Entra mapping fix: {row}");
    customer.js("var s = document.getElementById('status-heading'); if (s) s.scrollIntoView(); return null;").await;
    customer.shot("setup-status").await;
    // Reloaded, the page shows the same (rendered by the server this time).
    customer.c.refresh().await.unwrap();
    assert!(customer.text("#st-test").await.contains("Test connection received"));
    assert!(customer.text("#st-user").await.contains("First user provisioned"));
    assert!(customer.text("#st-counts").await.contains("Users: 1"));
    assert_eq!(rows_with_status(&customer, "#refused", "400").await.len(), 1);
    customer.close().await;

    // The support team's console shows the provisioning log: 200, 400 with the hint, 201.
    let support = driver.browser().await;
    support.sign_in(&app).await;
    support.goto(&app.console("/console/tenants/contoso/requests")).await;
    support.wait_for("select#status").await;
    let log = support.rows("#requests").await;
    let test_connection = rows_with_status(&support, "#requests", "200").await;
    assert!(
        test_connection.iter().any(|r| r.iter().any(|c| c.contains("/Users?filter"))),
        "Test connection in the log: {log:?}"
    );
    let bad = rows_with_status(&support, "#requests", "400").await;
    assert_eq!(bad.len(), 1, "the refused create in the log: {log:?}");
    let bad = bad[0].join(" | ");
    assert!(bad.contains("invalidValue"), "the scimType: {bad}");
    assert!(bad.contains(&format!("employeeId -> {ENTERPRISE}:employeeNumber")), "the hint: {bad}");
    assert!(bad.contains(token_id), "the token id: {bad}");
    let user_id = created["id"].as_str().unwrap();
    let good = rows_with_status(&support, "#requests", "201").await;
    assert_eq!(good.len(), 1, "the create in the log: {log:?}");
    assert!(good[0].iter().any(|c| c.contains(user_id)), "the created user's id: {:?}", good[0]);
    support.shot("requests").await;

    // Revoking the token in the console: within the token cache's 2 s, it gets 401.
    support.goto(&app.console("/console/tenants/contoso")).await;
    support.click(&format!("#tokens tr[data-token=\"{token_id}\"] .revoke-token")).await;
    eventually(Duration::from_secs(6), "the revoked token to get 401", || async {
        let (status, _) = app.test_connection(&token).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let revoked = app.store.list_tokens(app.stored_tenant("contoso").await.unwrap().id).await.unwrap();
    assert!(revoked.iter().any(|t| t.id == token_id && t.revoked.is_some()), "the token is revoked in the store");
    // ... and the 401 is in the log.
    eventually(Duration::from_secs(5), "the 401 in the provisioning log", || async {
        support.goto(&app.console("/console/tenants/contoso/requests")).await;
        let rows = rows_with_status(&support, "#requests", "401").await;
        rows.iter().any(|r| r.iter().any(|c| c.contains(token_id))).then_some(())
    })
    .await;
    support.close().await;
}

#[tokio::test]
async fn a_setup_link_revoked_in_the_console_answers_410() {
    let _serial = serial().await;
    let app = App::start().await;
    let tenant = app.tenant("contoso").await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.sign_in(&app).await;

    // A link made in the console opens.
    b.goto(&app.console("/console/tenants/contoso")).await;
    b.click("#create-invite").await;
    let link = b.text("code#invite-url").await.trim().to_owned();
    let secret = link.rsplit('/').next().unwrap().to_owned();
    let (invite_id, _) = scimd::tokens::split_invite(&secret).expect("a setup link's shape");
    b.click("a#back-to-tenant").await;
    b.wait_for(&format!("#invites tr[data-invite=\"{invite_id}\"]")).await;
    let customer = driver.browser().await;
    customer.goto(&link).await;
    assert_eq!(customer.status().await, 200, "the open link");
    customer.wait_for("#reveal").await;

    // Revoked in the console, it answers 410 and shows nothing of the tenant.
    b.click(&format!("#invites tr[data-invite=\"{invite_id}\"] .revoke-invite")).await;
    eventually(Duration::from_secs(5), "the setup link to be revoked", || async {
        let invites = app.store.list_invites(tenant.id).await.unwrap();
        invites.iter().any(|i| i.id == invite_id && i.revoked.is_some()).then_some(())
    })
    .await;
    customer.goto(&link).await;
    customer.wait_for("h1").await;
    assert_eq!(customer.status().await, 410, "the revoked link");
    assert!(!customer.has("#reveal").await && !customer.has("#tenant-url").await, "a revoked link shows the setup");
    assert!(!customer.source().await.contains(&app.scim), "a revoked link shows the Tenant URL");
    // Its reveal is refused as well.
    let r = app.http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);

    // An unknown link answers 404.
    customer.goto(&format!("{}/setup/scimdi_aaaaaaaaaaaa_unknown", app.origin)).await;
    customer.wait_for("h1").await;
    assert_eq!(customer.status().await, 404, "an unknown link");
    customer.close().await;
    b.close().await;
}
