//! The vendor API's read access to a tenant's users and groups (admin listener, `/api/v1`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::*;

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("test".into()), time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_api_lists_a_tenants_users_in_scim_json_with_the_feed_position() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let alice = app.user("alice@contoso.com").await;
    app.user("bob@contoso.com").await;
    let api = format!("{}/api/v1/tenants/contoso", app.admin);
    let get = |path: String| app.client.get(path).bearer_auth(&key).send();

    let list: Value =
        get(format!("{api}/Users?filter={}&count=1", q(r#"userName sw "a""#))).await.unwrap().json().await.unwrap();
    assert_eq!(list["schemas"], json!([LIST_RESPONSE]), "{list}");
    assert_eq!((list["totalResults"].clone(), list["itemsPerPage"].clone()), (json!(1), json!(1)), "{list}");
    assert_eq!(list["Resources"][0]["id"], json!(alice));
    assert!(list["Resources"][0]["meta"]["location"].as_str().unwrap().starts_with(&app.scim), "{list}");
    assert_eq!(list["position"], 4, "tenant.created, tenant.token_created and two user.created: {list}");

    let one: Value = get(format!("{api}/Users/{alice}?attributes=userName")).await.unwrap().json().await.unwrap();
    assert_eq!((one["id"].as_str(), one["userName"].as_str()), (Some(alice.as_str()), Some("alice@contoso.com")));
    assert!(one.get("emails").is_none(), "{one}");

    let groups: Value = get(format!("{api}/Groups")).await.unwrap().json().await.unwrap();
    assert_eq!(groups["totalResults"], 0);

    let r = get(format!("{api}/Users/nope")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string() && body["detail"].is_string(), "{body}");
    let r = get(format!("{api}/Users?filter={}", q("userName eq"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalidFilter");
    let r = get(format!("{}/api/v1/tenants/nosuch/Users", app.admin)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.client.get(format!("{api}/Users")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_list_says_when_each_token_was_last_used() {
    let app = spawn_app().await;
    let key = api_key(&app).await;
    let tokens = format!("{}/api/v1/tenants/contoso/tokens", app.admin);
    let list: Value = app.client.get(&tokens).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["lastUsed"], Value::Null, "never used yet: {list}");
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let list: Value = app.client.get(&tokens).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        if let Some(at) = list[0]["lastUsed"].as_str() {
            let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
            assert!((time::OffsetDateTime::now_utc() - at).abs() < time::Duration::minutes(1), "{list}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lastUsed never set: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
