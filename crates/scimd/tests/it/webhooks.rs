//! Push: webhooks with real HTTP receivers started by the tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::common::*;

/// What a receiver got: headers and body of each request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

impl Received {
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect()
    }
}

/// A receiver on a random port answering `status`; its URL and what it got.
async fn receiver(status: StatusCode) -> (String, Received) {
    let got = Received::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.0.lock().unwrap().push((headers, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("hooks".into()), time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receives_each_event_once_in_order_signed_as_standard_webhooks_say() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let (url, got) = receiver(StatusCode::OK).await;
    let r = app
        .client
        .post(format!("{}/api/v1/webhooks", app.admin))
        .bearer_auth(&key)
        .json(&json!({"url": url, "tenant": "contoso"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let added: Value = r.json().await.unwrap();
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{added}");
    for i in 0..20 {
        app.user(&format!("u{i}@contoso.com")).await;
    }
    until("20 deliveries", || got.0.lock().unwrap().len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bodies = got.bodies();
    assert_eq!(bodies.len(), 20, "each event once");
    let seqs: Vec<i64> = bodies.iter().map(|b| b["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gap: {seqs:?}");
    // The documented recipe verifies every request.
    let key_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, secret.strip_prefix("whsec_").unwrap())
            .unwrap();
    for (headers, body) in got.0.lock().unwrap().iter() {
        let id = headers["webhook-id"].to_str().unwrap();
        let ts = headers["webhook-timestamp"].to_str().unwrap();
        let expected = scimd::webhooks::signature(&secret, id, ts.parse().unwrap(), body).unwrap();
        assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
        assert!(!key_bytes.is_empty());
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["id"], json!(id));
    }
}
