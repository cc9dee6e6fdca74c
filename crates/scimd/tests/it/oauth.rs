//! OAuth 2.0 client credentials (CLIENTS.md: newer Entra versions call a token endpoint with a
//! client id and secret, then use the access token as the bearer token).

use super::common;

use base64::Engine as _;
use serde_json::Value;

async fn post_form(app: &common::TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value, String) {
    let client = reqwest::Client::new();
    let body = serde_urlencoded::to_string(form).unwrap();
    let mut req = client
        .post(format!("{}/oauth/token", app.origin))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.header("Authorization", format!("Basic {creds}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null), cache)
}

#[tokio::test]
async fn client_credentials_in_the_form_give_a_bearer_token_that_works() {
    let app = common::spawn_app().await;
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    let (status, body, cache) = post_form(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", &app.token)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache, "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap();
    assert_ne!(access, app.token);
    let r = reqwest::Client::new()
        .get(format!("{}/Users?filter=userName eq \"x\"", app.scim))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn client_credentials_in_http_basic_with_the_secret_part_only() {
    let app = common::spawn_app().await;
    let (id, secret) = scimd::tokens::split(&app.token).unwrap();
    let (status, body, _) = post_form(&app, &[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("scimd_"));
}

#[tokio::test]
async fn wrong_client_secret_is_401_invalid_client() {
    let app = common::spawn_app().await;
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    let (status, body, _) =
        post_form(&app, &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", "nope")], None)
            .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    let (status, _, _) = post_form(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", "aaaaaaaaaaaa"), ("client_secret", &app.token)],
        None,
    )
    .await;
    assert_eq!(status, 401, "a secret of another client id does not count");
}

#[tokio::test]
async fn other_grant_types_are_400_unsupported_grant_type() {
    let app = common::spawn_app().await;
    let (status, body, _) = post_form(&app, &[("grant_type", "password"), ("username", "a")], None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn an_access_token_cannot_mint_further_tokens() {
    let app = common::spawn_app().await;
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    let (_, body, _) = post_form(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", &app.token)],
        None,
    )
    .await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (aid, _) = scimd::tokens::split(&access).unwrap();
    let (status, _, _) =
        post_form(&app, &[("grant_type", "client_credentials"), ("client_id", aid), ("client_secret", &access)], None)
            .await;
    assert_eq!(status, 401);
}
