//! The guard against mass deprovisioning: writes are accepted and recorded, push delivery of
//! the tenant is held from the event that crossed the line, until an operator releases it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::*;

/// A receiver that answers 200 and keeps the bodies; its URL.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: String| {
            let g = Arc::clone(&g);
            async move {
                g.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Waits until `got` holds `n` bodies, then a little more to see that no more come.
async fn settle_at(got: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} delivered", got.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    got.lock().unwrap().clone()
}

struct Admin<'a> {
    app: &'a TestApp,
    key: String,
}

impl Admin<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .app
            .client
            .request(method, format!("{}/api/v1{path}", self.app.admin))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }
}

fn types(bodies: &[Value]) -> Vec<String> {
    bodies.iter().map(|b| b["type"].as_str().unwrap().to_owned()).collect()
}

/// 20 users, a webhook, a guard at 20% (at least 5): the 5th deactivation in the window trips it.
async fn tripped(app: &TestApp) -> (Admin<'_>, Arc<Mutex<Vec<Value>>>, Vec<String>) {
    let (record, key) = scimd::tokens::issue_api_key(None, time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    let admin = Admin { app, key };
    let guard = json!({"guard": {"share": 0.2, "minUsers": 5, "window": "1h"}});
    let (status, t) = admin.send(reqwest::Method::PATCH, "/tenants/contoso", guard).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["guard"]["minUsers"], 5, "{t}");
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.user(&format!("u{i}@contoso.com")).await);
    }
    let (url, got) = receiver().await;
    let (status, _) = admin.send(reqwest::Method::POST, "/webhooks", json!({"url": url, "tenant": "contoso"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let off = patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    for id in &ids[..6] {
        assert_eq!(app.patch(&format!("/Users/{id}"), &off).await.status(), StatusCode::OK, "the writes are accepted");
    }
    app.user("after@contoso.com").await;
    (admin, got, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_deactivation_holds_push_delivery_until_released() {
    let app = spawn_app().await;
    let (admin, got, _) = tripped(&app).await;
    let before = settle_at(&got, 4).await;
    assert_eq!(types(&before), vec!["user.deactivated"; 4], "the 5th deactivation and what follows are held");
    let (_, t) = admin.send(reqwest::Method::GET, "/tenants/contoso", Value::Null).await;
    assert_eq!(t["guard"]["tripped"], true, "{t}");
    let held_from = t["guard"]["heldFrom"].as_i64().unwrap();
    let (_, hooks) = admin.send(reqwest::Method::GET, "/webhooks", Value::Null).await;
    assert_eq!(hooks[0]["deliveries"][0]["paused"], true, "{hooks}");
    assert_eq!(held_from, before[3]["seq"].as_i64().unwrap() + 1);
    // The feed itself is not held: a pull consumer sees everything.
    let feed = format!("{}/api/v1/tenants/contoso/events?after={}", app.admin, held_from - 1);
    let page: Value = app.client.get(feed).bearer_auth(&admin.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let (status, t) = admin.send(reqwest::Method::POST, "/tenants/contoso/release", json!({})).await;
    assert_eq!((status, &t["guard"]["tripped"]), (StatusCode::OK, &json!(false)), "{t}");
    let all = settle_at(&got, 7).await;
    let (_, hooks) = admin.send(reqwest::Method::GET, "/webhooks", Value::Null).await;
    assert_eq!(hooks[0]["deliveries"][0]["paused"], false, "{hooks}");
    assert_eq!(
        types(&all[4..]),
        ["user.deactivated", "user.deactivated", "user.created"],
        "delivered in order after the release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_discard_skips_the_held_deprovisionings_and_delivers_the_rest() {
    let app = spawn_app().await;
    let (admin, got, _) = tripped(&app).await;
    settle_at(&got, 4).await;
    let (status, _) = admin.send(reqwest::Method::POST, "/tenants/contoso/release", json!({"discard": true})).await;
    assert_eq!(status, StatusCode::OK);
    let all = settle_at(&got, 5).await;
    assert_eq!(types(&all[4..]), ["user.created"], "the two held deactivations were discarded: {all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_turned_off_never_holds_delivery() {
    let app = spawn_app().await;
    let (record, key) = scimd::tokens::issue_api_key(None, time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    let admin = Admin { app: &app, key };
    let (_, t) = admin.send(reqwest::Method::PATCH, "/tenants/contoso", json!({"guard": {"enabled": false}})).await;
    assert_eq!(t["guard"]["enabled"], false, "{t}");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(app.user(&format!("u{i}@contoso.com")).await);
    }
    let (url, got) = receiver().await;
    admin.send(reqwest::Method::POST, "/webhooks", json!({"url": url, "tenant": "contoso"})).await;
    for id in &ids {
        assert_eq!(app.delete(&format!("/Users/{id}")).await.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(types(&settle_at(&got, 3).await), vec!["user.deleted"; 3]);
    let (status, body) = admin.send(reqwest::Method::PATCH, "/tenants/contoso", json!({"guard": {"share": 1.5}})).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("bad_request")));
}
