//! Directory health through the real server (`GET /api/v1/tenants/{tenant}/health`): derived
//! from the tenant's live SCIM traffic and tokens, with time moved on by a test clock where it
//! must pass, and the monitor recording each change of status once as `tenant.health_changed`.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scim_store::Actor;
use scimd::admin::fmt_time;
use scimd::clock::Clock;
use scimd::health::{self, Status};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::common::*;

/// A clock that says what it is told.
#[derive(Debug, Clone, Copy)]
struct At(OffsetDateTime);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("health-test".into()), OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

fn token_id(secret: &str) -> String {
    scimd::tokens::split(secret).unwrap().0.to_owned()
}

async fn health_of(app: &TestApp, key: &str, tenant: &str) -> (StatusCode, Value) {
    let url = format!("{}/api/v1/tenants/{tenant}/health", app.admin);
    status_json(app.client.get(url).bearer_auth(key).send().await.unwrap()).await
}

/// The tenant's health once `ready` holds (requests reach the summary through the log's
/// writer, off the request path: this polls for up to 15 s).
async fn health_when(app: &TestApp, key: &str, tenant: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, h) = health_of(app, key, tenant).await;
        assert_eq!(status, StatusCode::OK, "{h}");
        if ready(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "the health never got there: {h:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The health once the summary holds `n` requests of the current cycle.
async fn health_after(app: &TestApp, key: &str, tenant: &str, n: i64) -> Value {
    health_when(app, key, tenant, |h| h["cycle"]["requests"].as_i64() >= Some(n)).await
}

fn codes(h: &Value) -> Vec<&str> {
    h["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect()
}

fn errors_problem(errors: i64, requests: i64, percent: u32) -> Value {
    json!({"code": "errors", "detail": format!(
        "{errors} of {requests} requests of the current provisioning cycle failed ({percent}%): see the provisioning log"
    )})
}

/// The tenant's `tenant.health_changed` events, oldest first.
async fn health_events(app: &TestApp, key: &str) -> Vec<Value> {
    let url = format!("{}/api/v1/tenants/contoso/events?after=0&limit=1000", app.admin);
    let page: Value = app.client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    page["events"].as_array().unwrap().iter().filter(|e| e["type"] == "tenant.health_changed").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_is_never_connected() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (status, h) = health_of(&app, &key, "contoso").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h,
        json!({
            "tenant": "contoso", "status": "never_connected", "problems": [],
            "firstRequest": null, "lastRequest": null, "firstSuccess": null, "lastSuccess": null,
            "lastWrite": null, "firstUser": null, "unauthorizedStreak": 0, "cycle": null,
            "previousCycle": null, "activeTokens": 1, "tokensExpire": null
        })
    );
    // A request without any token is no connection of this tenant.
    let r = app.client.get(format!("{}/Users", app.scim)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health_of(&app, &key, "contoso").await.1["status"], "never_connected");

    let (status, v) = health_of(&app, &key, "nosuch").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    let r = app.client.get(format!("{}/api/v1/tenants/contoso/health", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_successful_request_a_tenant_is_healthy_with_last_request_and_first_success() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let started = OffsetDateTime::now_utc();
    app.filter("/Users", "userName eq \"0c8e7a2b-3f41-4d2e-9a55-1b6c7d8e9f00\"", "").await;
    let h = health_after(&app, &key, "contoso", 1).await;
    let at = h["firstRequest"].as_str().unwrap().to_owned();
    let t = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!((t - started).abs() < time::Duration::minutes(1), "{h}");
    assert_eq!(
        h,
        json!({
            "tenant": "contoso", "status": "healthy", "problems": [],
            "firstRequest": at, "lastRequest": at, "firstSuccess": at, "lastSuccess": at,
            "lastWrite": null, "firstUser": null, "unauthorizedStreak": 0,
            "cycle": {"start": at, "last": at, "requests": 1, "errors": 0, "errorRate": 0.0},
            "previousCycle": null, "activeTokens": 1, "tokensExpire": null
        })
    );
    // The first user provisioned, and the write.
    app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await;
    let h = health_after(&app, &key, "contoso", 2).await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert!(h["firstUser"].is_string() && h["firstUser"] == h["lastWrite"], "{h}");
    assert_eq!(h["firstRequest"], json!(at), "{h}");
    assert!(h["lastRequest"].as_str().unwrap() >= at.as_str(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_401s_in_a_row_with_a_revoked_token_make_a_tenant_failing_and_a_success_resets_the_streak() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let revoked = add_token(&app.store, app.tenant.id, None).await;
    assert!(app.store.revoke_token(token_id(&revoked), OffsetDateTime::now_utc(), Actor::cli("t")).await.unwrap());
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(app.req_as(&revoked, Method::GET, "/Users").send().await.unwrap().status(), 401);
    }
    let h = health_after(&app, &key, "contoso", 3).await;
    assert_eq!((h["status"].clone(), h["unauthorizedStreak"].clone()), (json!("warning"), json!(2)), "{h:#}");
    assert_eq!(h["problems"], json!([errors_problem(2, 3, 67)]), "two 401s are no failure yet: {h:#}");

    assert_eq!(app.req_as(&revoked, Method::GET, "/Users").send().await.unwrap().status(), 401);
    let h = health_after(&app, &key, "contoso", 4).await;
    assert_eq!((h["status"].clone(), h["unauthorizedStreak"].clone()), (json!("failing"), json!(3)), "{h:#}");
    assert_eq!(
        h["problems"],
        json!([
            {"code": "unauthorized", "detail": "the last 3 requests were refused with 401: the Secret Token in the \
              customer's provisioning app is wrong, expired or revoked; issue a new token and have the admin paste \
              it and Test connection"},
            errors_problem(3, 4, 75)
        ]),
        "{h:#}"
    );
    assert_eq!(h["activeTokens"], 1, "the revoked token does not work: {h}");
    assert_eq!(h["lastSuccess"], h["firstRequest"], "{h}");

    // A success (the admin pasted a working token) ends the streak.
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    let h = health_after(&app, &key, "contoso", 5).await;
    assert_eq!(h["unauthorizedStreak"], 0, "{h:#}");
    assert_eq!((h["status"].clone(), h["problems"].clone()), (json!("warning"), json!([errors_problem(3, 5, 60)])));
    assert_eq!(h["lastSuccess"], h["lastRequest"], "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_the_current_cycle_make_a_tenant_warn_and_mostly_errors_make_it_fail() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    assert_eq!(app.get("/Users/gone").await.status(), StatusCode::NOT_FOUND);
    let h = health_after(&app, &key, "contoso", 2).await;
    assert_eq!((h["status"].clone(), h["cycle"]["errors"].clone()), (json!("healthy"), json!(0)), "a 404 is routine");

    let bad_filter = format!("/Users?filter={}", q("userName eq"));
    assert_eq!(app.get(&bad_filter).await.status(), StatusCode::BAD_REQUEST);
    let h = health_after(&app, &key, "contoso", 3).await;
    assert_eq!(h["status"], "warning", "{h:#}");
    assert_eq!(h["problems"], json!([errors_problem(1, 3, 33)]), "{h:#}");
    assert_eq!(
        (h["cycle"]["requests"].clone(), h["cycle"]["errors"].clone(), h["cycle"]["errorRate"].as_f64()),
        (json!(3), json!(1), Some(1.0 / 3.0))
    );

    for _ in 0..5 {
        assert_eq!(app.get(&bad_filter).await.status(), StatusCode::BAD_REQUEST);
    }
    let h = health_after(&app, &key, "contoso", 8).await;
    assert_eq!(h["status"], "failing", "{h:#}");
    assert_eq!(h["problems"], json!([errors_problem(6, 8, 75)]), "{h:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_a_request_for_81_minutes_is_stale() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    health_after(&app, &key, "contoso", 1).await;
    let traffic = app.store.traffic(Some(app.tenant.id)).await.unwrap();
    let tokens = app.store.list_tokens(app.tenant.id).await.unwrap();
    let last = traffic[0].last_request.unwrap();

    let h = health::assess("contoso", traffic.first(), &tokens, last + time::Duration::minutes(79));
    assert_eq!((h.status, h.problems.len()), (Status::Healthy, 0), "{h:?}");
    let h = health::assess("contoso", traffic.first(), &tokens, last + time::Duration::minutes(81));
    assert_eq!(h.status, Status::Stale, "{h:?}");
    assert_eq!(
        serde_json::to_value(&h.problems).unwrap(),
        json!([{"code": "stale", "detail": format!(
            "no request since {} (two provisioning cycles): provisioning may be stopped or in quarantine in Entra ID",
            fmt_time(last)
        )}])
    );
    // The same through the function the vendor API calls, with the clock moved on.
    let h =
        health::tenant_health(app.store.as_ref(), &At(last + time::Duration::minutes(81)), "contoso").await.unwrap();
    assert_eq!(h.status, Status::Stale);
    assert_eq!(h.last_request, Some(fmt_time(last)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_in_10_days_warns_token_expiring() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (fabrikam, _) = add_tenant(&app.store, "fabrikam", &[]).await;
    // fabrikam's only working token expires in 10 days (its first one is revoked).
    for t in app.store.list_tokens(fabrikam.id).await.unwrap() {
        app.store.revoke_token(t.id, OffsetDateTime::now_utc(), Actor::cli("t")).await.unwrap();
    }
    let expires = OffsetDateTime::now_utc() + time::Duration::days(10);
    let token = add_token(&app.store, fabrikam.id, Some(expires)).await;
    assert_eq!(app.req_as(&token, Method::GET, "/Users").send().await.unwrap().status(), StatusCode::OK);
    let h = health_after(&app, &key, "fabrikam", 1).await;
    assert_eq!(h["status"], "warning", "{h:#}");
    assert_eq!(
        h["problems"],
        json!([{"code": "token_expiring", "detail": format!(
            "every working token expires by {}: rotate the token and have the admin paste the new one",
            fmt_time(expires)
        )}])
    );
    assert_eq!((h["activeTokens"].clone(), h["tokensExpire"].clone()), (json!(1), json!(fmt_time(expires))));
    // contoso, whose token never expires, is healthy.
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    let h = health_after(&app, &key, "contoso", 1).await;
    assert_eq!((h["status"].clone(), h["tokensExpire"].clone()), (json!("healthy"), Value::Null), "{h:#}");

    // A token for 20 days is no warning today, and is one a week later.
    let traffic = app.store.traffic(Some(fabrikam.id)).await.unwrap();
    let now = traffic[0].last_request.unwrap() + time::Duration::minutes(1);
    let tokens = [scimd::tokens::issue(fabrikam.id, None, Some(now + time::Duration::days(20)), now).record];
    assert_eq!(health::assess("fabrikam", traffic.first(), &tokens, now).status, Status::Healthy);
    let week = health::assess("fabrikam", traffic.first(), &tokens, now + time::Duration::days(7));
    let codes: Vec<&str> = week.problems.iter().map(|p| p.code).collect();
    assert_eq!((week.status, codes), (Status::Stale, vec!["stale", "token_expiring"]), "{week:?}");

    // Once no token works at all, a connected tenant is failing.
    app.store.revoke_token(token_id(&token), OffsetDateTime::now_utc(), Actor::cli("t")).await.unwrap();
    let (_, h) = health_of(&app, &key, "fabrikam").await;
    assert_eq!((h["status"].clone(), codes_of(&h)), (json!("failing"), vec!["no_token".to_owned()]), "{h:#}");
    assert_eq!(h["activeTokens"], 0);
}

fn codes_of(h: &Value) -> Vec<String> {
    codes(h).into_iter().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_records_a_health_change_once_even_from_two_racing_replicas() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    health_after(&app, &key, "contoso", 1).await;
    let now = At(OffsetDateTime::now_utc());
    assert_eq!(health::monitor_once(app.store.as_ref(), &now).await.unwrap(), 1);
    assert_eq!(health::monitor_once(app.store.as_ref(), &now).await.unwrap(), 0, "nothing changed since");
    let events = health_events(&app, &key).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(
        e["changes"],
        json!([{"path": "health.status", "before": "never_connected", "after": "healthy"}]),
        "no status recorded yet: the tenant had never connected: {e:#}"
    );
    assert_eq!(e["data"], json!({"name": "contoso", "status": "healthy", "problems": []}), "{e:#}");
    assert_eq!(e["tenant"], "contoso");
    assert_eq!(e["resource"]["type"], "Tenant", "{e:#}");

    // 81 minutes later, two replicas notice at once: one event.
    let later = At(now.0 + time::Duration::minutes(81));
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let store = std::sync::Arc::clone(&app.store);
            tokio::spawn(async move { health::monitor_once(store.as_ref(), &later).await.unwrap() })
        })
        .collect();
    let mut recorded = 0;
    for r in replicas {
        recorded += r.await.unwrap();
    }
    assert_eq!(recorded, 1, "of two replicas, one records the change");
    assert_eq!(health::monitor_once(app.store.as_ref(), &later).await.unwrap(), 0);
    let events = health_events(&app, &key).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let e = &events[1];
    assert_eq!(e["changes"], json!([{"path": "health.status", "before": "healthy", "after": "stale"}]), "{e:#}");
    assert_eq!(e["data"]["status"], "stale", "{e:#}");
    assert_eq!(codes(&e["data"]), ["stale"], "{e:#}");
    let traffic = app.store.traffic(Some(app.tenant.id)).await.unwrap();
    assert_eq!(traffic[0].health.as_deref(), Some("stale"));

    // Back to healthy with the next request.
    assert_eq!(app.req(Method::GET, "/Groups").send().await.unwrap().status(), StatusCode::OK);
    health_after(&app, &key, "contoso", 2).await;
    assert_eq!(health::monitor_once(app.store.as_ref(), &At(OffsetDateTime::now_utc())).await.unwrap(), 1);
    let events = health_events(&app, &key).await;
    assert_eq!(events[2]["changes"], json!([{"path": "health.status", "before": "stale", "after": "healthy"}]));
}

/// Entra admins often append `?aadOptscim062020` to the Tenant URL (CLIENTS.md); Entra then
/// creates users with `POST /Users?aadOptscim062020`. That is the first user all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_through_a_tenant_url_with_the_aadoptscim062020_flag_counts_as_the_first_user() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let r = app.post("/Users?aadOptscim062020", &entra_user("jdoe@contoso.com", "jdoe")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let h = health_after(&app, &key, "contoso", 1).await;
    assert!(h["lastWrite"].is_string(), "{h:#}");
    assert_eq!(h["firstUser"], h["lastWrite"], "the create is the first user: {h:#}");
}
