//! The SCIM HTTP API through a real server on a random port, over a fresh SQLite store.
//! Shapes are those of CLIENTS.md (Entra ID, Okta) and RFC 7644.

use super::common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use scimd::http::HttpSettings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn ids(list: &Value) -> Vec<String> {
    list["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut v: Vec<String> = group
        .get("members")
        .and_then(Value::as_array)
        .map(|ms| ms.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn json_of(r: reqwest::Response) -> Value {
    let (status, v) = status_json(r).await;
    assert!(status.is_success(), "{status}: {v}");
    v
}

const EMPTY_LIST: fn() -> Value =
    || json!({"schemas": [LIST_RESPONSE], "totalResults": 0, "Resources": [], "startIndex": 1, "itemsPerPage": 0});

// ----- health -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ok_without_a_token() {
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/healthz", app.origin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ok_when_the_database_answers_and_503_when_not() {
    let (store, dir) = fresh_store().await;
    let spy = Spy::new(store);
    let app = spawn_app_on(spy.clone(), dir, HttpSettings::default(), &[]).await;
    let r = app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    Spy::set(&spy.fail_ping, true);
    let r = app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap();
    let v = assert_scim_error(r, 503, None).await;
    assert!(!v.to_string().contains("SECRET"), "internals leak: {v}");
}

// ----- authentication -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_401_with_scim_body_and_www_authenticate() {
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/Users", app.scim)).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"scimd\"");
    assert_scim_error(r, 401, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_401_never_403() {
    let app = spawn_app().await;
    let good = app.token.clone();
    // `scimd_<id>_<secret>`: the id is the second part (not all before the last `_`: the
    // secret is base64url and may hold `_` itself).
    let id = good.split('_').nth(1).unwrap();
    let wrong_secret = format!("scimd_{id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let unknown_id = "scimd_zzzzzzzzzzzz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    for token in ["garbage".to_owned(), wrong_secret, unknown_id] {
        let r = app.req_as(&token, Method::GET, "/Users").send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"scimd\"");
        assert_scim_error(r, 401, None).await;
    }
    let r = app.client.get(format!("{}/Users", app.scim)).basic_auth("admin", Some(&good)).send().await.unwrap();
    assert_scim_error(r, 401, None).await;
    // The scheme is case-insensitive.
    let r = app.client.get(format!("{}/Users", app.scim)).header("authorization", format!("bearer {good}")).send();
    assert_eq!(r.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_401() {
    let app = spawn_app().await;
    let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let expired = add_token(&app.store, app.tenant.id, Some(past)).await;
    let r = app.req_as(&expired, Method::GET, "/Users").send().await.unwrap();
    assert_scim_error(r, 401, None).await;
    let future = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let valid = add_token(&app.store, app.tenant.id, Some(future)).await;
    assert_eq!(app.req_as(&valid, Method::GET, "/Users").send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_401_once_the_cache_expires() {
    // With a zero TTL, revocation takes effect on the next request.
    let settings = HttpSettings { token_cache_ttl: Duration::ZERO, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    let (id, _) = scimd::tokens::split(&app.token).unwrap();
    assert!(
        app.store.revoke_token(id.to_owned(), OffsetDateTime::now_utc(), scim_store::Actor::cli("test")).await.unwrap()
    );
    assert_scim_error(app.get("/Users").await, 401, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints_need_a_token() {
    let app = spawn_app().await;
    for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/ResourceTypes/User"] {
        let r = app.client.get(format!("{}{path}", app.scim)).send().await.unwrap();
        assert_scim_error(r, 401, None).await;
    }
}

// ----- discovery -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_provider_config_advertises_features_and_limits() {
    let settings = HttpSettings { max_bulk_operations: 77, max_page_size: 333, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let r = app.get("/ServiceProviderConfig").await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
    let v = json_of(r).await;
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(v["patch"]["supported"], json!(true));
    assert_eq!(v["bulk"], json!({"supported": true, "maxOperations": 77, "maxPayloadSize": 2 * 1024 * 1024}));
    assert_eq!(v["filter"], json!({"supported": true, "maxResults": 333}));
    assert_eq!(v["changePassword"]["supported"], json!(false));
    assert_eq!(v["sort"]["supported"], json!(true));
    assert_eq!(v["etag"]["supported"], json!(true));
    let auth = &v["authenticationSchemes"][0];
    assert_eq!((auth["type"].as_str(), auth["primary"].as_bool()), (Some("oauthbearertoken"), Some(true)));
    assert!(auth["name"].is_string() && auth["description"].is_string());
    assert_eq!(v["meta"]["resourceType"], "ServiceProviderConfig");
    assert_eq!(v["meta"]["location"], json!(format!("{}/ServiceProviderConfig", app.scim)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_resource_types_are_list_responses_with_absolute_locations() {
    let app = spawn_app().await;
    let schemas = json_of(app.get("/Schemas").await).await;
    assert_eq!(schemas["schemas"], json!([LIST_RESPONSE]));
    let ids: Vec<&str> = schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"));
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:Group"));
    assert!(ids.contains(&ENTERPRISE));
    assert_eq!(schemas["totalResults"], json!(ids.len()));
    for s in schemas["Resources"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        assert_eq!(s["meta"]["location"], json!(format!("{}/Schemas/{id}", app.scim)));
        assert!(s["attributes"].as_array().is_some_and(|a| !a.is_empty()));
    }
    let user = json_of(app.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await).await;
    assert!(user["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "userName"));

    let rts = json_of(app.get("/ResourceTypes").await).await;
    assert_eq!(rts["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(rts["totalResults"], json!(2));
    let user_rt = json_of(app.get("/ResourceTypes/User").await).await;
    assert_eq!(user_rt["endpoint"], "/Users");
    assert_eq!(user_rt["schemaExtensions"][0]["schema"], ENTERPRISE);
    assert_eq!(user_rt["meta"]["location"], json!(format!("{}/ResourceTypes/User", app.scim)));
    assert_scim_error(app.get("/ResourceTypes/Nope").await, 404, None).await;
    assert_scim_error(app.get("/Schemas/urn:nope").await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_url_and_forwarded_headers_make_absolute_locations() {
    let settings = HttpSettings { public_url: Some("https://scim.example.com/".into()), ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let v = json_of(app.get("/ResourceTypes/Group").await).await;
    assert_eq!(v["meta"]["location"], "https://scim.example.com/scim/v2/ResourceTypes/Group");

    let app = spawn_app().await;
    let r = app
        .req(Method::GET, "/ServiceProviderConfig")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "idp.example.org")
        .send()
        .await
        .unwrap();
    let v = json_of(r).await;
    assert_eq!(v["meta"]["location"], "https://idp.example.org/scim/v2/ServiceProviderConfig");
}

// ----- Entra "Test connection" -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_users_filter_is_200_empty_list_response() {
    let app = spawn_app().await;
    let guid = "2c3a5b9e-8f1d-4d3e-9a6b-1f2e3d4c5b6a";
    for path in [
        format!("/Users?filter=userName+eq+%22{guid}%22"),
        format!("/Users?filter=userName%20eq%20%22{guid}%22"),
        format!("/Users?aadOptscim062020&filter=userName+eq+%22{guid}%22"),
        format!("/Users?filter=userName+eq+%22{guid}%22&aadOptscim062020"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
        assert_eq!(r.json::<Value>().await.unwrap(), EMPTY_LIST(), "{path}");
    }
    // reqwest encodes a raw `userName eq "..."` itself (as %20 and %22).
    let r = app.get(&format!("/Users?filter=userName eq \"{guid}\"")).await;
    assert_eq!(r.json::<Value>().await.unwrap(), EMPTY_LIST());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_quotes_and_spaces_in_the_request_line_are_accepted() {
    let app = spawn_app().await;
    let id = app.user("jdoe@contoso.com").await;
    // Quotes as typed (Postman), then even raw spaces; then a second request on the same
    // connection after a body, to show the framing is followed.
    for target in [
        "/scim/v2/Users?filter=userName%20eq%20\"jdoe@contoso.com\"",
        "/scim/v2/Users?filter=userName eq \"jdoe@contoso.com\"",
        "/scim/v2/Users?filter=userName+eq+\"JDOE@contoso.com\"&aadOptscim062020",
    ] {
        let (status, text) = app
            .raw(&format!(
                "GET {target} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                app.token
            ))
            .await;
        assert_eq!(status, 200, "{target}: {text}");
        assert!(text.contains("\"totalResults\":1") && text.contains(&id), "{target}: {text}");
    }
    let body = json!({"userName": "second \"quoted\" user"}).to_string();
    let (_, text) = app
        .raw(&format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\nContent-Type: {SCIM}\r\nContent-Length: {}\r\n\r\n{body}\
             GET /scim/v2/Users?filter=userName eq \"second \\\"quoted\\\" user\" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n",
            body.len(),
            t = app.token
        ))
        .await;
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    assert!(text.contains("HTTP/1.1 200") && text.contains("\"totalResults\":1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_groups_display_name_filter_is_200_empty_list_response() {
    let app = spawn_app().await;
    let r = app.get("/Groups?excludedAttributes=members&filter=displayName+eq+%22no+such+group%22").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), EMPTY_LIST());
}

// ----- users: create, duplicates, filters -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_user_with_entra_body_is_201_with_id_meta_location_and_etag() {
    let app = spawn_app().await;
    let r = app.post("/Users", &entra_user("jdoe@contoso.com", "jdoe")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(location, format!("{}/Users/{id}", app.scim));
    assert_eq!(v["meta"]["location"], json!(location));
    assert_eq!(v["meta"]["resourceType"], "User");
    assert_eq!(v["meta"]["version"], json!(etag));
    assert_eq!(etag, "W/\"1\"");
    let created = OffsetDateTime::parse(v["meta"]["created"].as_str().unwrap(), &Rfc3339).unwrap();
    let modified = OffsetDateTime::parse(v["meta"]["lastModified"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(created, modified);
    assert_eq!(v["userName"], "jdoe@contoso.com");
    assert_eq!(v["externalId"], "jdoe");
    assert_eq!(v["active"], json!(true));
    assert_eq!(v["name"]["givenName"], "John");
    assert_eq!(v["phoneNumbers"][0]["value"], "4255550100", "stored exactly as sent");
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "701984");
    assert!(v["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)));
    assert!(v.get("roles").is_none(), "an empty roles list is accepted and not stored");
    assert!(v.get("password").is_none());
    // GET returns the same resource.
    let got = json_of(app.get(&format!("/Users/{id}")).await).await;
    assert_eq!(got, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_user_is_409_uniqueness_naming_the_attribute() {
    let app = spawn_app().await;
    app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await;
    let v =
        assert_scim_error(app.post("/Users", &entra_user("jdoe@contoso.com", "jdoe")).await, 409, Some("uniqueness"))
            .await;
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("userName") || detail.contains("externalId"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_user_name_differing_in_case_is_409() {
    let app = spawn_app().await;
    app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await;
    let v =
        assert_scim_error(app.post("/Users", &entra_user("JDoe@Contoso.COM", "other")).await, 409, Some("uniqueness"))
            .await;
    assert!(v["detail"].as_str().unwrap().contains("userName"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_external_id_is_409() {
    let app = spawn_app().await;
    app.create_user(&entra_user("a@contoso.com", "same")).await;
    let v = assert_scim_error(app.post("/Users", &entra_user("b@contoso.com", "same")).await, 409, Some("uniqueness"))
        .await;
    assert!(v["detail"].as_str().unwrap().contains("externalId"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_for_existing_non_existing_and_different_case_user() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    app.user("someone.else@contoso.com").await;

    let v = json_of(app.get(&format!("/Users?filter={}", q("userName eq \"jdoe@contoso.com\""))).await).await;
    assert_eq!((v["totalResults"].as_u64(), ids(&v)), (Some(1), vec![id.clone()]));
    assert_eq!(v["itemsPerPage"], json!(1));

    let v = json_of(app.get(&format!("/Users?filter={}", q("userName eq \"JDOE@CONTOSO.COM\""))).await).await;
    assert_eq!(ids(&v), vec![id.clone()], "userName is not case-exact");

    let v = json_of(app.get(&format!("/Users?filter={}", q("userName eq \"nobody@contoso.com\""))).await).await;
    assert_eq!(v, EMPTY_LIST());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_by_entra_matching_attributes() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    app.create_user(&entra_user("mary@contoso.com", "mary")).await;
    for f in [
        "externalId eq \"jdoe\"".to_owned(),
        "emails[type eq \"work\"].value eq \"jdoe@contoso.com\"".to_owned(),
        "emails[type eq \"work\" and value eq \"jdoe@contoso.com\"]".to_owned(),
        format!("{ENTERPRISE}:employeeNumber eq \"701984\" and userName sw \"jdoe\""),
        format!("id eq \"{id}\""),
    ] {
        let v = json_of(app.get(&format!("/Users?filter={}", q(&f))).await).await;
        assert_eq!(ids(&v), vec![id.clone()], "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_echoes_start_index_and_counts_exactly() {
    let app = spawn_app().await;
    for i in 0..12 {
        app.user(&format!("u{i:02}@contoso.com")).await;
    }
    let v = json_of(app.get("/Users?startIndex=6&count=5&sortBy=userName").await).await;
    assert_eq!(v["totalResults"], json!(12));
    assert_eq!(v["startIndex"], json!(6));
    assert_eq!(v["itemsPerPage"], json!(5));
    let names: Vec<&str> = v["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap()).collect();
    assert_eq!(names, ["u05@contoso.com", "u06@contoso.com", "u07@contoso.com", "u08@contoso.com", "u09@contoso.com"]);

    let v = json_of(app.get("/Users?startIndex=11&count=5").await).await;
    assert_eq!((v["itemsPerPage"].as_u64(), v["startIndex"].as_u64()), (Some(2), Some(11)));
    let v = json_of(app.get("/Users?startIndex=40&count=5").await).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(12), Some(0)));
    assert_eq!(v["Resources"], json!([]));

    // Okta's probe; startIndex below 1 counts as 1; count 0 gives the total only.
    let v = json_of(app.get("/Users?startIndex=1&count=2").await).await;
    assert_eq!(v["itemsPerPage"], json!(2));
    let v = json_of(app.get("/Users?startIndex=0&count=3").await).await;
    assert_eq!((v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()), (Some(1), Some(3)));
    let v = json_of(app.get("/Users?count=0").await).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(12), Some(0)));
    assert_eq!(v["Resources"], json!([]));
    let v = json_of(app.get("/Users?count=-3").await).await;
    assert_eq!(v["itemsPerPage"], json!(0));

    // Paging without sortBy visits every user exactly once.
    let mut seen = Vec::new();
    for start in [1, 6, 11] {
        seen.extend(ids(&json_of(app.get(&format!("/Users?startIndex={start}&count=5")).await).await));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (12, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_is_capped_by_settings() {
    let settings = HttpSettings { default_page_size: 2, max_page_size: 3, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    for i in 0..5 {
        app.user(&format!("p{i}")).await;
    }
    let v = json_of(app.get("/Users").await).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(5), Some(2)));
    let v = json_of(app.get("/Users?count=1000").await).await;
    assert_eq!(v["itemsPerPage"], json!(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sorting_on_non_indexed_attributes() {
    let app = spawn_app().await;
    let mut body = entra_user("a@contoso.com", "a");
    body["title"] = json!("Site engineer");
    let a = app.create_user(&body).await["id"].as_str().unwrap().to_owned();
    let mut body = entra_user("b@contoso.com", "b");
    body["title"] = json!("Architect");
    body["active"] = json!(false);
    let b = app.create_user(&body).await["id"].as_str().unwrap().to_owned();
    let c = app.user("c@contoso.com").await;
    let since = "2000-01-01T00:00:00Z";
    for (f, want) in [
        ("title co \"engineer\"".to_owned(), vec![a.clone()]),
        ("title sw \"arch\" or userName eq \"c@contoso.com\"".to_owned(), sorted(vec![b.clone(), c.clone()])),
        ("not (title pr)".to_owned(), vec![c.clone()]),
        ("active eq true and title pr".to_owned(), vec![a.clone()]),
        (format!("meta.lastModified gt \"{since}\""), sorted(vec![a.clone(), b.clone(), c.clone()])),
        ("phoneNumbers[type eq \"mobile\" and value eq \"4255550101\"]".to_owned(), sorted(vec![a.clone(), b.clone()])),
    ] {
        let v = json_of(app.get(&format!("/Users?filter={}", q(&f))).await).await;
        assert_eq!(sorted(ids(&v)), want, "{f}");
        assert_eq!(v["totalResults"], json!(want.len()), "{f}");
    }
    let v = json_of(app.get("/Users?sortBy=title&sortOrder=ascending").await).await;
    assert_eq!(ids(&v), vec![b.clone(), a.clone(), c.clone()], "resources without a value sort last");
    let v = json_of(app.get("/Users?sortBy=title&sortOrder=descending&count=1").await).await;
    assert_eq!((ids(&v), v["totalResults"].as_u64()), (vec![c], Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_user_name_ascending_and_descending() {
    let app = spawn_app().await;
    for n in ["carol", "Alice", "bob"] {
        app.user(n).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap().to_owned()).collect()
    };
    let v = json_of(app.get("/Users?sortBy=userName").await).await;
    assert_eq!(names(&v), ["Alice", "bob", "carol"]);
    let v = json_of(app.get("/Users?sortBy=userName&sortOrder=Descending").await).await;
    assert_eq!(names(&v), ["carol", "bob", "Alice"]);
    assert_scim_error(app.get("/Users?sortBy=userName&sortOrder=sideways").await, 400, Some("invalidValue")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_and_excluded_attributes_select_what_is_returned() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();

    let v = json_of(app.get(&format!("/Users/{id}?attributes=userName")).await).await;
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "schemas", "userName"]);

    let v = json_of(app.get(&format!("/Users/{id}?attributes=name.givenName,emails")).await).await;
    assert_eq!(v["name"], json!({"givenName": "John"}));
    assert!(v["emails"].is_array() && v.get("title").is_none());

    let v = json_of(app.get(&format!("/Users/{id}?excludedAttributes=emails,name,{ENTERPRISE}")).await).await;
    assert!(v.get("emails").is_none() && v.get("name").is_none() && v.get(ENTERPRISE).is_none(), "{v}");
    assert!(v["userName"].is_string() && v["meta"].is_object() && v["id"].is_string());

    let v = json_of(app.get("/Users?attributes=userName&filter=userName+pr").await).await;
    let r = &v["Resources"][0];
    assert!(r.get("name").is_none() && r["userName"].is_string() && r["id"].is_string());
}

// ----- users: PATCH -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_user_replace_attributes_with_entra_shapes_is_200_with_resource() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let body = patch_op(json!([
        {"op": "Replace", "path": "displayName", "value": "Jane Doe"},
        {"op": "Replace", "path": "name.givenName", "value": "Jane"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane@contoso.com"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Zurich"},
        {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "8000"},
        {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Eng"},
        {"op": "Add", "path": "title", "value": "Lead"}
    ]));
    let r = app.patch(&format!("/Users/{id}"), &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["displayName"], "Jane Doe");
    assert_eq!(v["name"]["givenName"], "Jane");
    assert_eq!(v["name"]["familyName"], "Doe");
    assert_eq!(v["emails"], json!([{"value": "jane@contoso.com", "type": "work", "primary": true}]));
    assert_eq!(v["addresses"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["addresses"][0]["locality"], "Zurich");
    assert_eq!(v["addresses"][0]["postalCode"], "8000");
    assert_eq!(v[ENTERPRISE]["department"], "Eng");
    assert_eq!(v["title"], "Lead");
    assert_eq!(v["meta"]["version"], "W/\"2\"");
    let got = json_of(app.get(&format!("/Users/{id}")).await).await;
    assert_eq!(got, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_that_changes_nothing_writes_nothing() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "Site engineer"}]));
    let r = app.patch(&format!("/Users/{id}"), &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["version"], "W/\"1\"", "no new version for a no-op PATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_user_response_honours_attributes() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "Boss"}]));
    let v = json_of(app.patch(&format!("/Users/{id}?excludedAttributes=emails,addresses"), &body).await).await;
    assert_eq!(v["title"], "Boss");
    assert!(v.get("emails").is_none() && v.get("addresses").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_user_disable_with_string_false_keeps_the_user_visible() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let active_id = app.user("still.active@contoso.com").await;
    let v = json_of(
        app.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}])))
            .await,
    )
    .await;
    assert_eq!(v["active"], json!(false));
    let got = json_of(app.get(&format!("/Users/{id}")).await).await;
    assert_eq!(got["active"], json!(false));
    let v = json_of(app.get("/Users?filter=active+eq+false").await).await;
    assert_eq!(ids(&v), vec![id.clone()]);
    let v = json_of(app.get(&format!("/Users?filter={}", q("userName eq \"jdoe@contoso.com\""))).await).await;
    assert_eq!(v["Resources"][0]["active"], json!(false));
    // Okta re-activates with a path-less lower-case replace.
    let v = json_of(
        app.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "value": {"active": true}}]))).await,
    )
    .await;
    assert_eq!(v["active"], json!(true));
    let _ = active_id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_user_manager_add_replace_remove_reads_back_complex() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let boss = app.user("boss@contoso.com").await;
    let boss2 = app.user("boss2@contoso.com").await;
    let path = format!("/Users/{id}");
    let manager = format!("{ENTERPRISE}:manager");

    app.patch(&path, &patch_op(json!([{"op": "Add", "path": manager, "value": boss}]))).await;
    let v = json_of(app.get(&path).await).await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss}));
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "701984", "other enterprise attributes stay");

    app.patch(&path, &patch_op(json!([{"op": "Replace", "path": manager, "value": {"value": boss2}}]))).await;
    let v = json_of(app.get(&path).await).await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss2}));

    let r = app.patch(&path, &patch_op(json!([{"op": "Remove", "path": manager}]))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(app.get(&path).await).await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");

    // Removing an absent manager succeeds; replace with "" clears too.
    let r = app.patch(&path, &patch_op(json!([{"op": "Remove", "path": manager}]))).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.patch(&path, &patch_op(json!([{"op": "Add", "path": manager, "value": boss}]))).await;
    app.patch(&path, &patch_op(json!([{"op": "Replace", "path": manager, "value": ""}]))).await;
    let v = json_of(app.get(&path).await).await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_with_bad_operations_is_400() {
    let app = spawn_app().await;
    let id = app.user("x@contoso.com").await;
    let path = format!("/Users/{id}");
    assert_scim_error(app.patch(&path, &patch_op(json!([]))).await, 400, Some("invalidSyntax")).await;
    assert_scim_error(app.patch(&path, &json!({"schemas": [PATCH_OP]})).await, 400, Some("invalidSyntax")).await;
    assert_scim_error(
        app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "noSuchAttribute", "value": "x"}]))).await,
        400,
        Some("invalidPath"),
    )
    .await;
    assert_scim_error(
        app.patch(&path, &patch_op(json!([{"op": "Remove", "path": "emails[type eq \"home\"]"}]))).await,
        400,
        Some("noTarget"),
    )
    .await;
    assert_scim_error(
        app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "id", "value": "other"}]))).await,
        400,
        Some("mutability"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_id_is_404_for_every_method() {
    let app = spawn_app().await;
    let path = "/Users/3f0c1a2b-0000-4000-8000-000000000000";
    assert_scim_error(app.get(path).await, 404, None).await;
    assert_scim_error(app.put(path, &json!({"userName": "x"})).await, 404, None).await;
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "x"}]));
    assert_scim_error(app.patch(path, &body).await, 404, None).await;
    assert_scim_error(app.delete(path).await, 404, None).await;
    assert_scim_error(app.get("/Groups/nope").await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_retries_when_a_concurrent_writer_got_in_between() {
    let (store, dir) = fresh_store().await;
    let spy = Spy::new(store);
    let app = spawn_app_on(spy.clone(), dir, HttpSettings::default(), &[]).await;
    let id = app.user("race@contoso.com").await;
    let path = format!("/Users/{id}");
    let concurrent = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "race@contoso.com", "displayName": "Changed meanwhile"});

    // Another writer stores version 2 between our read and our write: the PATCH is re-applied
    // on top of it, so neither change is lost.
    spy.interfere.lock().unwrap().push(concurrent.clone());
    let v =
        json_of(app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "Mine"}]))).await).await;
    assert_eq!(v["title"], "Mine");
    assert_eq!(v["displayName"], "Changed meanwhile");
    assert_eq!(v["meta"]["version"], "W/\"3\"");

    // With the client's own If-Match, the concurrent change makes it a 412 instead.
    spy.interfere.lock().unwrap().push(concurrent);
    let r = app
        .send_json(Method::PATCH, &path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "Again"}])))
        .header("if-match", "W/\"3\"")
        .send()
        .await
        .unwrap();
    assert_scim_error(r, 412, None).await;
    let v = json_of(app.get(&path).await).await;
    assert_eq!(v["meta"]["version"], "W/\"4\"");
    assert!(v.get("title").is_none(), "the concurrent writer's version stands: {v}");
}

// ----- users: PUT, ETags, DELETE -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_user_replaces_the_resource() {
    let app = spawn_app().await;
    let id = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "ignored", "userName": "jdoe@contoso.com",
        "externalId": "jdoe", "displayName": "Johnny", "active": true, "meta": {"version": "W/\"99\""}});
    let r = app.put(&format!("/Users/{id}"), &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], json!(id));
    assert_eq!(v["displayName"], "Johnny");
    assert!(v.get("title").is_none() && v.get("emails").is_none(), "PUT replaces: {v}");
    let got = json_of(app.get(&format!("/Users/{id}")).await).await;
    assert_eq!(got, v);
    // A PUT that takes another user's userName is a conflict.
    app.user("taken@contoso.com").await;
    let r = app.put(&format!("/Users/{id}"), &json!({"userName": "Taken@contoso.com"})).await;
    assert_scim_error(r, 409, Some("uniqueness")).await;
    // userName is required.
    assert_scim_error(app.put(&format!("/Users/{id}"), &json!({"displayName": "x"})).await, 400, Some("invalidValue"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_with_a_stale_etag_is_412_and_with_the_current_one_succeeds() {
    let app = spawn_app().await;
    let id = app.user("x@contoso.com").await;
    let path = format!("/Users/{id}");
    let patch = patch_op(json!([{"op": "Replace", "path": "title", "value": "t"}]));
    let put = json!({"userName": "x@contoso.com", "title": "p"});
    let stale = "W/\"7\"";
    let r = app.send_json(Method::PUT, &path, &put).header("if-match", stale).send().await.unwrap();
    assert_scim_error(r, 412, None).await;
    let r = app.send_json(Method::PATCH, &path, &patch).header("if-match", stale).send().await.unwrap();
    assert_scim_error(r, 412, None).await;
    let r = app.req(Method::DELETE, &path).header("if-match", stale).send().await.unwrap();
    assert_scim_error(r, 412, None).await;

    let r = app.send_json(Method::PATCH, &path, &patch).header("if-match", "W/\"1\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.send_json(Method::PUT, &path, &put).header("if-match", "\"2\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the strong form matches too");
    let r = app.send_json(Method::PUT, &path, &put).header("if-match", "*").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The same document again changed nothing: the version stays 3.
    let r = app.req(Method::DELETE, &path).header("if-match", "W/\"3\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_with_the_current_etag_is_304_without_body() {
    let app = spawn_app().await;
    let id = app.user("x@contoso.com").await;
    let path = format!("/Users/{id}");
    let r = app.req(Method::GET, &path).header("if-none-match", "W/\"1\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.bytes().await.unwrap().is_empty());
    app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "t"}]))).await;
    let r = app.req(Method::GET, &path).header("if-none-match", "W/\"1\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_is_204_then_404_on_get_and_on_a_second_delete() {
    let app = spawn_app().await;
    let id = app.user("x@contoso.com").await;
    let path = format!("/Users/{id}");
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_scim_error(app.delete(&path).await, 404, None).await;
    // The userName is free again.
    app.user("x@contoso.com").await;
}

// ----- groups -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_group_with_the_microsoft_adscim_schema() {
    let app = spawn_app().await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Ops Team",
        "meta": {"resourceType": "Group"}
    });
    let r = app.post("/Groups", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]));
    assert_eq!(v["displayName"], "Ops Team");
    assert_eq!(v["meta"]["resourceType"], "Group");
    assert_eq!(location, format!("{}/Groups/{}", app.scim, v["id"].as_str().unwrap()));
    assert!(v.get("members").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_group_display_name_in_any_case_is_409_uniqueness() {
    let app = spawn_app().await;
    app.group("Ops Team").await;
    let v = assert_scim_error(app.post("/Groups", &json!({"displayName": "ops team"})).await, 409, Some("uniqueness"))
        .await;
    assert!(v["detail"].as_str().unwrap().contains("displayName"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_groups_existing_different_case_and_non_existing() {
    let app = spawn_app().await;
    let g = app.group("Ops Team").await;
    let v = json_of(
        app.get(&format!("/Groups?excludedAttributes=members&filter={}", q("displayName eq \"OPS team\""))).await,
    )
    .await;
    assert_eq!(ids(&v), vec![g]);
    let v = json_of(app.get(&format!("/Groups?filter={}", q("displayName eq \"Nope\""))).await).await;
    assert_eq!(v, EMPTY_LIST());
}

async fn group_with_members(app: &TestApp, n: usize) -> (String, Vec<String>) {
    let g = app.group("Team").await;
    let mut users = Vec::new();
    for i in 0..n {
        users.push(app.user(&format!("m{i}@contoso.com")).await);
    }
    (g, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_adds_members_in_batches_and_answers_204() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 6).await;
    let path = format!("/Groups/{g}");
    for batch in users.chunks(3) {
        let value: Vec<Value> = batch.iter().map(|u| json!({"$ref": null, "value": u})).collect();
        let r = app.patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": value}]))).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let v = json_of(app.get(&path).await).await;
    assert_eq!(member_ids(&v), sorted(users.clone()));
    let m = v["members"].as_array().unwrap().iter().find(|m| m["value"] == json!(users[0])).unwrap();
    assert_eq!(m["type"], "User");
    assert_eq!(m["display"], "m0@contoso.com");
    assert_eq!(m["$ref"], json!(format!("{}/Users/{}", app.scim, users[0])));
    // Adding an existing member again changes nothing; a foreign id is refused.
    let r =
        app.patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": users[0]}]}]))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}])))
        .await;
    assert_scim_error(r, 400, Some("invalidValue")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_remove_with_value_list_removes_only_the_listed_members() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 4).await;
    let path = format!("/Groups/{g}");
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    let r = app
        .patch(
            &path,
            &patch_op(
                json!([{"op": "Remove", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]}]),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v = json_of(app.get(&path).await).await;
    assert_eq!(member_ids(&v), sorted(vec![users[0].clone(), users[3].clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_remove_with_value_filter_path() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 3).await;
    let path = format!("/Groups/{g}");
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": all}]))).await;
    let r = app
        .patch(&path, &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])}])))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v = json_of(app.get(&path).await).await;
    assert_eq!(member_ids(&v), sorted(users[1..].to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_remove_members_without_value_removes_all() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 3).await;
    let path = format!("/Groups/{g}");
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    let r = app.patch(&path, &patch_op(json!([{"op": "Remove", "path": "members"}]))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v = json_of(app.get(&path).await).await;
    assert!(v.get("members").is_none(), "{v}");
    // The users themselves are untouched.
    assert_eq!(app.get(&format!("/Users/{}", users[0])).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rename_via_patch_is_204() {
    let app = spawn_app().await;
    let g = app.group("Old name").await;
    let path = format!("/Groups/{g}");
    let r = app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "displayName", "value": "New name"}]))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let v = json_of(app.get(&path).await).await;
    assert_eq!(v["displayName"], "New name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_with_attributes_answers_200_with_the_resource() {
    let app = spawn_app().await;
    let g = app.group("Old name").await;
    let body = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "Renamed"}]));
    let r = app.patch(&format!("/Groups/{g}?attributes=displayName"), &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["displayName"], "Renamed");
    assert_eq!(v["id"], json!(g));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_group_excluding_members_never_loads_them() {
    let (store, dir) = fresh_store().await;
    let spy = Spy::new(store);
    let app = spawn_app_on(spy.clone(), dir, HttpSettings::default(), &[]).await;
    let (g, users) = group_with_members(&app, 2).await;
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch(&format!("/Groups/{g}"), &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    spy.take_loads();

    let v = json_of(app.get(&format!("/Groups/{g}?excludedAttributes=members")).await).await;
    assert!(v.get("members").is_none() && v["displayName"] == "Team", "{v}");
    let v =
        json_of(app.get(&format!("/Groups?excludedAttributes=members&filter={}", q("displayName eq \"team\""))).await)
            .await;
    assert_eq!(v["totalResults"], json!(1));
    assert!(v["Resources"][0].get("members").is_none());
    let loads = spy.take_loads();
    assert!(!loads.is_empty() && loads.iter().all(|l| !l.members), "{loads:?}");

    // A group PATCH answered with 204 loads no members either.
    app.patch(&format!("/Groups/{g}"), &patch_op(json!([{"op": "Replace", "path": "displayName", "value": "T2"}])))
        .await;
    assert!(spy.take_loads().iter().all(|l| !l.members));

    // Without the exclusion they are loaded and returned.
    let v = json_of(app.get(&format!("/Groups/{g}")).await).await;
    assert_eq!(member_ids(&v), sorted(users));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_check_with_id_and_members_filter() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 2).await;
    app.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": users[0]}]}])),
    )
    .await;
    let check =
        |u: &str| format!("/Groups?filter={}&attributes=id", q(&format!("id eq \"{g}\" and members eq \"{u}\"")));
    let v = json_of(app.get(&check(&users[0])).await).await;
    assert_eq!(v["totalResults"], json!(1));
    let r = v["Resources"][0].as_object().unwrap();
    let mut keys: Vec<&str> = r.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "schemas"]);
    let v = json_of(app.get(&check(&users[1])).await).await;
    assert_eq!(v, EMPTY_LIST());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_shows_its_groups_and_deleting_it_removes_it_from_them() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 2).await;
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch(&format!("/Groups/{g}"), &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;

    let u = json_of(app.get(&format!("/Users/{}", users[0])).await).await;
    assert_eq!(
        u["groups"],
        json!([{"value": g, "$ref": format!("{}/Groups/{g}", app.scim), "display": "Team", "type": "direct"}])
    );
    assert_eq!(app.delete(&format!("/Users/{}", users[0])).await.status(), StatusCode::NO_CONTENT);
    let v = json_of(app.get(&format!("/Groups/{g}")).await).await;
    assert_eq!(member_ids(&v), vec![users[1].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_group_replaces_its_member_list() {
    let app = spawn_app().await;
    let (g, users) = group_with_members(&app, 3).await;
    let path = format!("/Groups/{g}");
    let r =
        app.put(&path, &json!({"displayName": "Team", "members": [{"value": users[0]}, {"value": users[1]}]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(member_ids(&v), sorted(users[..2].to_vec()));
    let v = json_of(app.put(&path, &json!({"displayName": "Team", "members": [{"value": users[2]}]})).await).await;
    assert_eq!(member_ids(&v), vec![users[2].clone()]);
    let v = json_of(app.put(&path, &json!({"displayName": "Renamed"})).await).await;
    assert!(v.get("members").is_none(), "a PUT without members empties the group: {v}");
    assert_eq!(v["displayName"], "Renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_group_is_204_then_404() {
    let app = spawn_app().await;
    let g = app.group("Gone").await;
    assert_eq!(app.delete(&format!("/Groups/{g}")).await.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&format!("/Groups/{g}")).await, 404, None).await;
    assert_scim_error(app.delete(&format!("/Groups/{g}")).await, 404, None).await;
}

// ----- tenants -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_nothing_of_each_other() {
    let app = spawn_app().await;
    let uid = app.create_user(&entra_user("jdoe@contoso.com", "jdoe")).await["id"].as_str().unwrap().to_owned();
    let gid = app.group("Ops").await;
    let (_, other) = add_tenant(&app.store, "fabrikam", &[]).await;

    for path in [format!("/Users/{uid}"), format!("/Groups/{gid}")] {
        let r = app.req_as(&other, Method::GET, &path).send().await.unwrap();
        assert_scim_error(r, 404, None).await;
        let r = app.req_as(&other, Method::DELETE, &path).send().await.unwrap();
        assert_scim_error(r, 404, None).await;
    }
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "x"}]));
    let r =
        app.req_as(&other, Method::PATCH, &format!("/Users/{uid}")).header("content-type", SCIM).body(body.to_string());
    assert_scim_error(r.send().await.unwrap(), 404, None).await;

    for path in ["/Users", "/Groups", "/Users?filter=userName+eq+%22jdoe@contoso.com%22"] {
        let r = app.req_as(&other, Method::GET, path).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), EMPTY_LIST(), "{path}");
    }
    // The other tenant may use the same userName, and cannot add tenant A's user to its group.
    let r = app
        .req_as(&other, Method::POST, "/Users")
        .header("content-type", SCIM)
        .body(entra_user("jdoe@contoso.com", "jdoe").to_string());
    assert_eq!(r.send().await.unwrap().status(), StatusCode::CREATED);
    let r = app
        .req_as(&other, Method::POST, "/Groups")
        .header("content-type", SCIM)
        .body(json!({"displayName": "X", "members": [{"value": uid}]}).to_string());
    assert_scim_error(r.send().await.unwrap(), 400, Some("invalidValue")).await;
    // Tenant A still sees its own.
    assert_eq!(app.get(&format!("/Users/{uid}")).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_attributes_policy_names_every_missing_attribute() {
    let app = spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await;
    let mut body = entra_user("jdoe@contoso.com", "jdoe");
    body.as_object_mut().unwrap().remove("preferredLanguage");
    body["emails"] = json!([{"type": "home", "value": "john@home.example"}]);
    let v = assert_scim_error(app.post("/Users", &body).await, 400, Some("invalidValue")).await;
    let detail = v["detail"].as_str().unwrap();
    // Every missing attribute, in the policy's order, and nothing else; then how to fix it.
    assert!(
        detail.starts_with(
            "required attribute missing: emails[type eq \"work\"].value, preferredLanguage — map a source attribute"
        ),
        "{detail}"
    );
    assert!(detail.contains("attribute mappings"), "{detail}");

    // A complete body passes; active: false counts as present.
    let mut ok = entra_user("jdoe@contoso.com", "jdoe");
    ok["active"] = json!(false);
    let id = app.create_user(&ok).await["id"].as_str().unwrap().to_owned();

    // A PATCH that would remove a required attribute is refused and changes nothing.
    let r = app.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "Remove", "path": "preferredLanguage"}]))).await;
    let v = assert_scim_error(r, 400, Some("invalidValue")).await;
    assert!(v["detail"].as_str().unwrap().contains("preferredLanguage"));
    let got = json_of(app.get(&format!("/Users/{id}")).await).await;
    assert_eq!(got["preferredLanguage"], "en-US");
    assert_eq!(got["meta"]["version"], "W/\"1\"");

    // A PUT without the employee number is refused.
    let mut put = entra_user("jdoe@contoso.com", "jdoe");
    put[ENTERPRISE] = json!({"department": "Ops"});
    let v = assert_scim_error(app.put(&format!("/Users/{id}"), &put).await, 400, Some("invalidValue")).await;
    assert!(v["detail"].as_str().unwrap().contains("employeeNumber"));

    // Groups are not subject to the user policy.
    app.group("Any group").await;
}

// ----- HTTP-level errors -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_scim_404() {
    let app = spawn_app().await;
    assert_scim_error(app.get("/Widgets").await, 404, None).await;
    let r = app.client.get(format!("{}/nope", app.origin)).send().await.unwrap();
    assert_scim_error(r, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_on_a_known_route_is_scim_405() {
    let app = spawn_app().await;
    let r = app.req(Method::DELETE, "/Users").send().await.unwrap();
    assert!(r.headers().get("allow").is_some());
    assert_scim_error(r, 405, None).await;
    for (m, p) in [
        (Method::POST, "/ServiceProviderConfig"),
        (Method::PUT, "/Schemas"),
        (Method::PATCH, "/ResourceTypes"),
        (Method::DELETE, "/ResourceTypes"),
        (Method::GET, "/Bulk"),
        (Method::POST, "/Users/some-id"),
    ] {
        let r = app.req(m.clone(), p).header("content-type", SCIM).body("{}").send().await.unwrap();
        assert_scim_error(r, 405, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_scim_413() {
    let settings = HttpSettings { max_body_bytes: 1024, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let big = json!({"userName": "big", "displayName": "x".repeat(4000)});
    assert_scim_error(app.post("/Users", &big).await, 413, None).await;
    // Within the limit is fine.
    assert_eq!(app.post("/Users", &json!({"userName": "small"})).await.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_content_type_is_415_and_json_variants_are_accepted() {
    let app = spawn_app().await;
    let body = json!({"userName": "a"}).to_string();
    let r = app.req(Method::POST, "/Users").header("content-type", "text/plain").body(body).send().await.unwrap();
    assert_scim_error(r, 415, None).await;
    let r = app.req(Method::POST, "/Users").header("content-type", "application/x-www-form-urlencoded").body("a=b");
    assert_scim_error(r.send().await.unwrap(), 415, None).await;
    for (i, ct) in ["application/json; charset=utf-8", "application/scim+json;charset=UTF-8", ""].iter().enumerate() {
        let mut r = app.req(Method::POST, "/Users").body(json!({"userName": format!("ok{i}")}).to_string());
        if !ct.is_empty() {
            r = r.header("content-type", *ct);
        }
        assert_eq!(r.send().await.unwrap().status(), StatusCode::CREATED, "{ct:?}");
    }
    // Responses are SCIM JSON even when the client accepts only application/json.
    let r = app.req(Method::GET, "/Users").header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_invalid_syntax() {
    let app = spawn_app().await;
    for body in ["{\"userName\": ", "", "[1,2]", "\"str\"", "{\"userName\": \"a\"} trailing"] {
        let r = app.req(Method::POST, "/Users").header("content-type", SCIM).body(body).send().await.unwrap();
        assert_scim_error(r, 400, Some("invalidSyntax")).await;
    }
    let id = app.user("x").await;
    let r = app.req(Method::PATCH, &format!("/Users/{id}")).header("content-type", SCIM).body("{oops").send();
    assert_scim_error(r.await.unwrap(), 400, Some("invalidSyntax")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_and_parameters_are_400_never_500() {
    let app = spawn_app().await;
    for f in [
        "userName eq",
        "userName xx \"a\"",
        "((((",
        "active gt true",
        "emails[type eq \"work\"",
        "userName eq \"a\" and",
    ] {
        let r = app.get(&format!("/Users?filter={}", q(f))).await;
        assert_scim_error(r, 400, Some("invalidFilter")).await;
    }
    let deep = format!("{}userName pr{}", "(".repeat(200), ")".repeat(200));
    assert_scim_error(app.get(&format!("/Users?filter={}", q(&deep))).await, 400, Some("invalidFilter")).await;
    let long = format!("userName eq \"{}\"", "a".repeat(20_000));
    assert_scim_error(app.get(&format!("/Users?filter={}", q(&long))).await, 400, Some("invalidFilter")).await;
    assert_scim_error(app.get("/Users?count=ten").await, 400, Some("invalidValue")).await;
    assert_scim_error(app.get("/Users?startIndex=x").await, 400, Some("invalidValue")).await;
    // A filter on an attribute that does not exist matches nothing.
    let v = json_of(app.get("/Users?filter=noSuchAttr+eq+%22x%22").await).await;
    assert_eq!(v, EMPTY_LIST());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_is_500_without_internals_and_a_panic_too() {
    let (store, dir) = fresh_store().await;
    let spy = Spy::new(store);
    let app = spawn_app_on(spy.clone(), dir, HttpSettings::default(), &[]).await;
    Spy::set(&spy.fail_query, true);
    let v = assert_scim_error(app.get("/Users").await, 500, None).await;
    assert!(!v.to_string().contains("SECRET"), "internals leak: {v}");
    Spy::set(&spy.fail_query, false);
    Spy::set(&spy.panic_query, true);
    let v = assert_scim_error(app.get("/Users").await, 500, None).await;
    assert!(!v.to_string().contains("panicked"), "{v}");
    Spy::set(&spy.panic_query, false);
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK, "the server keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_requests_in_flight_than_allowed_is_429_with_retry_after() {
    let settings = HttpSettings { max_in_flight_per_tenant: 1, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    // Hold one request open: the headers are in, the body is not complete.
    let addr = app.origin.trim_start_matches("http://").to_owned();
    let mut held = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = json!({"userName": "held"}).to_string();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.token,
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&body.as_bytes()[..1]).await.unwrap();
    held.flush().await.unwrap();

    // Until the server has taken the held request in, a second one may still pass; once it
    // has, the second one is refused. If one of those probes held the slot just when the held
    // request came in, the held request is the one refused: send it again. No sleeping: each
    // attempt is a full round trip.
    let mut refused = None;
    for _ in 0..10_000 {
        let mut probe = [0u8; 1];
        if held.try_read(&mut probe).is_ok_and(|n| n > 0) {
            held = tokio::net::TcpStream::connect(&addr).await.unwrap();
            held.write_all(head.as_bytes()).await.unwrap();
            held.write_all(&body.as_bytes()[..1]).await.unwrap();
            held.flush().await.unwrap();
        }
        let r = app.get("/Users?count=0").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        tokio::task::yield_now().await;
    }
    let r = refused.expect("the second concurrent request was never refused");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_scim_error(r, 429, None).await;
    // Another tenant is not affected.
    let (_, other) = add_tenant(&app.store, "fabrikam", &[]).await;
    assert_eq!(app.req_as(&other, Method::GET, "/Users").send().await.unwrap().status(), StatusCode::OK);

    // Finish the held request; then the tenant is served again.
    held.write_all(&body.as_bytes()[1..]).await.unwrap();
    let mut answer = Vec::new();
    held.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 201"), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
}

// ----- search -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_search_on_users_groups_and_root() {
    let app = spawn_app().await;
    let a = app.user("alice@contoso.com").await;
    app.user("bob@contoso.com").await;
    let g = app.group("Admins").await;

    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"ali\"", "attributes": ["userName"], "startIndex": 1, "count": 10});
    let v = json_of(app.post("/Users/.search", &body).await).await;
    assert_eq!(ids(&v), vec![a.clone()]);
    assert!(v["Resources"][0].get("meta").is_none());

    let v = json_of(
        app.post("/Groups/.search", &json!({"filter": "displayName eq \"admins\"", "excludedAttributes": "members"}))
            .await,
    )
    .await;
    assert_eq!(ids(&v), vec![g.clone()]);

    // The root search lists users, then groups, paging across both.
    let v = json_of(app.post("/.search", &json!({"count": 10})).await).await;
    assert_eq!(v["totalResults"], json!(3));
    assert_eq!(ids(&v).last(), Some(&g));
    let v = json_of(app.post("/.search", &json!({"startIndex": 2, "count": 2, "attributes": "id"})).await).await;
    assert_eq!(
        (v["totalResults"].as_u64(), v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(ids(&v).last(), Some(&g));
    let v = json_of(app.post("/.search", &json!({"filter": "displayName eq \"Admins\""})).await).await;
    assert_eq!(ids(&v), vec![g]);
    assert_scim_error(app.post("/Users/.search", &json!({"count": "many"})).await, 400, Some("invalidValue")).await;
}

// ----- bulk -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_creates_users_and_a_group_that_references_them_by_bulk_id() {
    let app = spawn_app().await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g",
             "data": {"displayName": "Bulk group", "members": [{"value": "bulkId:u1", "type": "User"}, {"value": "bulkId:u2"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "bulk1@contoso.com"}},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "bulk2@contoso.com"}},
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Bulked"}]}}
        ]
    });
    let v = json_of(app.post("/Bulk", &body).await).await;
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]));
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "{v}");
    let by_bulk = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap().clone();
    for b in ["g", "u1", "u2"] {
        let o = by_bulk(b);
        assert_eq!(o["status"], "201", "{o}");
        assert_eq!(o["method"], "POST");
        assert_eq!(o["version"], "W/\"1\"");
    }
    let loc = |b: &str| by_bulk(b)["location"].as_str().unwrap().to_owned();
    let id_of = |l: String| l.rsplit('/').next().unwrap().to_owned();
    let (u1, u2) = (id_of(loc("u1")), id_of(loc("u2")));
    assert_eq!(loc("u1"), format!("{}/Users/{u1}", app.scim));
    let group = json_of(app.get(&format!("/Groups/{}", id_of(loc("g")))).await).await;
    assert_eq!(member_ids(&group), sorted(vec![u1.clone(), u2]));
    let patch = ops.iter().find(|o| o["method"] == "PATCH").unwrap();
    assert_eq!(patch["status"], "200", "{patch}");
    let user = json_of(app.get(&format!("/Users/{u1}")).await).await;
    assert_eq!(user["title"], "Bulked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_reports_errors_per_operation_and_honours_fail_on_errors() {
    let app = spawn_app().await;
    let existing = app.user("dup@contoso.com").await;
    let body = json!({"Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "dup@contoso.com"}},
        {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"displayName": "G", "members": [{"value": "bulkId:a"}]}},
        {"method": "DELETE", "path": format!("/Users/{existing}")},
        {"method": "POST", "path": "/Groups", "data": {"displayName": "H", "members": [{"value": "bulkId:nowhere"}]}},
        {"method": "FROB", "path": "/Users"}
    ]});
    let v = json_of(app.post("/Bulk", &body).await).await;
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 5);
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[1]["status"], "409", "a reference to a failed POST fails: {}", ops[1]);
    assert_eq!(ops[2]["status"], "204");
    assert_eq!(ops[3]["status"], "409");
    assert_eq!(ops[4]["status"], "400");
    assert_scim_error(app.get(&format!("/Users/{existing}")).await, 404, None).await;

    // failOnErrors 1 stops after the first error.
    let body = json!({"failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"displayName": "no userName"}},
        {"method": "POST", "path": "/Users", "bulkId": "y", "data": {"userName": "never@contoso.com"}}
    ]});
    let v = json_of(app.post("/Bulk", &body).await).await;
    assert_eq!(v["Operations"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["Operations"][0]["status"], "400");
    let v = json_of(app.get(&format!("/Users?filter={}", q("userName eq \"never@contoso.com\""))).await).await;
    assert_eq!(v["totalResults"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_with_more_operations_than_allowed_is_413() {
    let settings = HttpSettings { max_bulk_operations: 2, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let op = json!({"method": "POST", "path": "/Users", "data": {"userName": "x"}});
    let r = app.post("/Bulk", &json!({"Operations": [op, op, op]})).await;
    assert_scim_error(r, 413, None).await;
    let v = json_of(app.get("/Users").await).await;
    assert_eq!(v["totalResults"], json!(0), "nothing ran");
    assert_scim_error(app.post("/Bulk", &json!({"nope": 1})).await, 400, Some("invalidSyntax")).await;
}

// ----- metrics -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_method_route_and_status() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
    let app = spawn_app().await;
    let id = app.user("m@contoso.com").await;
    assert_eq!(app.get(&format!("/Users/{id}")).await.status(), StatusCode::OK);
    assert_eq!(app.get("/Users/missing").await.status(), StatusCode::NOT_FOUND);
    let text = handle.render();
    assert!(
        text.contains("scimd_http_requests_total{method=\"GET\",route=\"/scim/v2/Users/{id}\",status=\"2xx\"}"),
        "{text}"
    );
    assert!(text.contains("route=\"/scim/v2/Users/{id}\",status=\"4xx\""), "{text}");
    assert!(text.contains("scimd_http_request_duration_seconds"), "{text}");
}
