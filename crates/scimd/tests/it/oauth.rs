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

/// An access token for the app's own token (its client id and secret).
async fn access_token(app: &common::TestApp) -> String {
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", app.token.as_str())];
    let (status, body, _) = post_form(app, &form, None).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn status_with(app: &common::TestApp, bearer: &str) -> u16 {
    let r = app.req_as(bearer, reqwest::Method::GET, "/Users?count=1").send().await.unwrap();
    r.status().as_u16()
}

/// Revoking a client's token ends the access tokens issued for it (they kept working before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_end_when_their_client_token_is_revoked() {
    let settings = scimd::http::HttpSettings { token_cache_ttl: std::time::Duration::ZERO, ..Default::default() };
    let app = common::spawn_app_with(settings, &[]).await;
    let access = access_token(&app).await;
    assert_eq!(status_with(&app, &access).await, 200);
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    assert!(
        app.store
            .revoke_token(id.to_owned(), time::OffsetDateTime::now_utc(), scim_store::Actor::cli("test"))
            .await
            .unwrap()
    );
    assert_eq!(status_with(&app, &access).await, 401);
}

/// An access token outlived the expiry of its client token before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_end_when_their_client_token_expires() {
    let settings = scimd::http::HttpSettings { token_cache_ttl: std::time::Duration::ZERO, ..Default::default() };
    let app = common::spawn_app_with(settings, &[]).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let short = common::add_token(&app.store, app.tenant.id, Some(soon)).await;
    let (id, _) = scimd::tokens::split(&short).unwrap();
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", short.as_str())];
    let (status, body, _) = post_form(&app, &form, None).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(status_with(&app, &access).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(status_with(&app, &access).await, 401);
}

/// The token endpoint is rate limited per client, and expired access tokens are purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_rate_limited_per_client() {
    let app = common::spawn_app().await;
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", app.token.as_str())];
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(post_form(&app, &form, None).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_tokens_are_purged_when_new_ones_are_issued() {
    let app = common::spawn_app().await;
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let (client, _) = scimd::tokens::split(&app.token).unwrap();
    let mut old = scimd::tokens::issue(app.tenant.id, Some(format!("oauth2:{client}")), Some(past), past).record;
    old.expires = Some(past + time::Duration::hours(1));
    let old_id = old.id.clone();
    app.store.create_token(old, None).await.unwrap();
    access_token(&app).await;
    assert!(app.store.token(old_id).await.unwrap().is_none(), "the expired access token is gone");
    assert_eq!(app.store.list_tokens(app.tenant.id).await.unwrap().len(), 2, "the client's token and the new one");
}
