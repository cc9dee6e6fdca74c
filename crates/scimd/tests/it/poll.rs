//! RFC 8936 poll of a `set` webhook: tokens by jti, acknowledgements move the delivery on, a
//! poll without returnImmediately waits for the next commit.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::*;

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_set_webhook_returns_tokens_until_acknowledged_and_waits_for_new_ones() {
    let app = spawn_app().await;
    let (record, key) = scimd::tokens::issue_api_key(None, time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    let post = |path: String, body: Value| {
        app.client.post(format!("{}/api/v1{path}", app.admin)).bearer_auth(&key).json(&body).send()
    };
    let (status, added) =
        status_json(post("/webhooks".into(), json!({"tenant": "contoso", "format": "set"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["mode"], "poll");
    let id = added["id"].as_str().unwrap().to_owned();
    let (status, _) = status_json(post("/webhooks".into(), json!({"tenant": "contoso"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a json webhook needs a URL");
    let user = app.user("jdoe@contoso.com").await;
    let poll = format!("/webhooks/{id}/poll");
    let (status, first) = status_json(post(poll.clone(), json!({"returnImmediately": true})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let sets = first["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{first}");
    let (jti, token) = sets.iter().next().unwrap();
    let claims = payload(token.as_str().unwrap());
    assert_eq!(&claims["jti"], &json!(jti));
    assert_eq!(claims["sub_id"]["uri"], json!(format!("/Users/{user}")));
    assert!(claims["events"]["urn:ietf:params:scim:event:prov:create:full"]["data"].is_object(), "{claims}");
    assert_eq!(first["moreAvailable"], false);
    // Not acknowledged: returned again.
    let (_, again) = status_json(post(poll.clone(), json!({"returnImmediately": true})).await.unwrap()).await;
    assert_eq!(again["sets"].as_object().unwrap().keys().collect::<Vec<_>>(), [jti]);
    // Acknowledged: gone; a poll that waits is answered by the next commit.
    let waiting = {
        let (client, url, key, jti) =
            (app.client.clone(), format!("{}/api/v1{poll}", app.admin), key.clone(), jti.clone());
        tokio::spawn(async move {
            let r =
                client.post(url).bearer_auth(key).json(&json!({"ack": [jti], "maxEvents": 5})).send().await.unwrap();
            (Instant::now(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let off = patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(app.patch(&format!("/Users/{user}"), &off).await.status(), StatusCode::OK);
    let committed = Instant::now();
    let (answered, body) = waiting.await.unwrap();
    assert!(answered.duration_since(committed) < Duration::from_secs(5));
    let sets = body["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{body}");
    let claims = payload(sets.values().next().unwrap().as_str().unwrap());
    let events = claims["events"].as_object().unwrap();
    assert!(events.contains_key("urn:ietf:params:scim:event:prov:deactivate"), "{claims}");
    assert!(events.contains_key("urn:ietf:params:scim:event:prov:patch:full"), "{claims}");
}
