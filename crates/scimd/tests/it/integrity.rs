//! Smaller integrity defects of issue 9, each named after what broke.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_etag_and_last_modified_change_when_its_groups_change() {
    let app = spawn_app().await;
    let user = app.user("etag@contoso.com").await;
    let first = app.get(&format!("/Users/{user}")).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let before: Value = first.json().await.unwrap();
    let group = app.group("Readers").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let add = patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": user}]}]));
    app.patch_no_content(&format!("/Groups/{group}"), &add).await;
    let r =
        app.req(reqwest::Method::GET, &format!("/Users/{user}")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a stale 304 hid the new group");
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["groups"][0]["value"], json!(group));
    assert_ne!(after["meta"]["lastModified"], before["meta"]["lastModified"]);
    // And again when it leaves the group.
    let etag = after["meta"]["version"].as_str().unwrap().to_owned();
    let remove = patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": user}]}]));
    app.patch_no_content(&format!("/Groups/{group}"), &remove).await;
    let r =
        app.req(reqwest::Method::GET, &format!("/Users/{user}")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("groups").is_none(), "{v}");
    // Deleting the group changes its former members too.
    app.patch_no_content(&format!("/Groups/{group}"), &add).await;
    let etag = ok_json(app.get(&format!("/Users/{user}")).await).await["meta"]["version"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/Groups/{group}")).await.status(), StatusCode::NO_CONTENT);
    let v = ok_json(app.get(&format!("/Users/{user}")).await).await;
    assert_ne!(v["meta"]["version"].as_str().unwrap(), etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_member_sub_attributes_are_400_not_silently_empty() {
    let app = spawn_app().await;
    let user = app.user("m@contoso.com").await;
    let group = app.group("Members").await;
    let add = patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": user, "display": "M"}]}]));
    app.patch_no_content(&format!("/Groups/{group}"), &add).await;
    for (endpoint, filter) in [
        ("/Groups", r#"members.display eq "M""#),
        ("/Groups", r#"members.type eq "User""#),
        ("/Groups", r#"members[display eq "M"]"#),
        ("/Users", r#"groups.display eq "Members""#),
    ] {
        let r = app.get(&format!("{endpoint}?filter={}", q(filter))).await;
        assert_scim_error(r, 400, Some("invalidFilter")).await;
    }
    // The forms the members table answers still work.
    let v = app.filter("/Groups", &format!(r#"members eq "{user}""#), "").await;
    assert_eq!(v["totalResults"], 1);
    let v = app.filter("/Users", &format!(r#"groups[value eq "{group}"]"#), "").await;
    assert_eq!(v["totalResults"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_differing_only_by_a_final_sigma_are_one_name() {
    let app = spawn_app().await;
    app.create_user(&json!({"userName": "ΟΔΟΣ"})).await;
    let r = app.post("/Users", &json!({"userName": "οδοσ"})).await;
    assert_scim_error(r, 409, Some("uniqueness")).await;
    let r = app.post("/Users", &json!({"userName": "οδος"})).await;
    assert_scim_error(r, 409, Some("uniqueness")).await;
    for spelling in ["οδος", "οδοσ", "ΟΔΟΣ"] {
        let v = app.filter("/Users", &format!(r#"userName eq "{spelling}""#), "").await;
        assert_eq!(v["totalResults"], 1, "{spelling}");
        // The same through the core: `or` with a non-indexed attribute makes the core evaluate it all.
        let v = app.filter("/Users", &format!(r#"userName eq "{spelling}" or title eq "never""#), "").await;
        assert_eq!(v["totalResults"], 1, "{spelling}, evaluated by the core");
    }
}

/// Every comparison operator gives the same answer through SQL as through the core: each
/// filter is sent as is (an index look-up) and `or`-ed with a term on a non-indexed attribute
/// that no user matches, which makes the core evaluate the whole filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_the_core_agree_on_every_operator() {
    let app = spawn_app().await;
    for name in ["alpha@x.io", "Beta@x.io", "gamma@y.io", "δέλτα@x.io"] {
        app.create_user(&json!({"userName": name, "externalId": name.to_uppercase()})).await;
    }
    let mut filters = Vec::new();
    for attr in ["userName", "externalId", "emails.value"] {
        for (op, lit) in [
            ("eq", "beta@x.io"),
            ("ne", "beta@x.io"),
            ("co", "@x"),
            ("sw", "a"),
            ("ew", ".io"),
            ("ew", ""),
            ("sw", ""),
            ("co", ""),
            ("gt", "b"),
            ("ge", "beta@x.io"),
            ("lt", "c"),
            ("le", "beta@x.io"),
        ] {
            filters.push(format!("{attr} {op} \"{lit}\""));
        }
        filters.push(format!("{attr} pr"));
    }
    for f in filters {
        let sql = app.filter("/Users", &f, "&count=100&sortBy=userName").await;
        let core = app.filter("/Users", &format!("({f}) or title eq \"never\""), "&count=100&sortBy=userName").await;
        assert_eq!(resource_ids(&sql), resource_ids(&core), "{f}");
        assert_eq!(sql["totalResults"], core["totalResults"], "{f}");
    }
}

/// `bulkId:` text outside a reference position is data: a displayName or title that reads
/// `bulkId:x` was silently replaced by another resource's id before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_substitutes_bulk_ids_only_in_reference_positions() {
    let app = spawn_app().await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "bulk@contoso.com", "title": "bulkId:u"}},
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "bulkId:u",
            "members": [{"type": "User", "value": "bulkId:u"}]}}
    ]});
    let v = ok_json(app.post("/Bulk", &body).await).await;
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!((ops[0]["status"].as_str(), ops[1]["status"].as_str()), (Some("201"), Some("201")), "{v}");
    let user = app.filter("/Users", r#"userName eq "bulk@contoso.com""#, "").await;
    let uid = user["Resources"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(user["Resources"][0]["title"], "bulkId:u", "a title is data");
    let group = app.filter("/Groups", r#"displayName eq "bulkId:u""#, "").await;
    assert_eq!(group["totalResults"], 1, "a displayName is data: {group}");
    let gid = group["Resources"][0]["id"].as_str().unwrap();
    let g = ok_json(app.get(&format!("/Groups/{gid}")).await).await;
    assert_eq!(group_member_ids(&g), [uid], "members[].value is a reference");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_refuses_a_bulk_id_used_twice() {
    let app = spawn_app().await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "same", "data": {"userName": "one@contoso.com"}},
        {"method": "POST", "path": "/Users", "bulkId": "same", "data": {"userName": "two@contoso.com"}}
    ]});
    assert_scim_error(app.post("/Bulk", &body).await, 400, Some("invalidSyntax")).await;
    assert_eq!(app.filter("/Users", r#"userName pr"#, "").await["totalResults"], 0, "nothing ran");
}

/// `X-Forwarded-Host` chose the host of every `meta.location` for anyone who sent it; it is
/// believed only from a trusted proxy (loopback by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let settings = scimd::http::HttpSettings { trusted_proxies: Vec::new(), ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let r = app
        .send_json(reqwest::Method::POST, "/Users", &json!({"userName": "fw@contoso.com"}))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let location = v["meta"]["location"].as_str().unwrap();
    assert!(location.starts_with(&app.origin), "{location}");
    // From loopback, the default, they are believed.
    let app = spawn_app().await;
    let r = app
        .send_json(reqwest::Method::POST, "/Users", &json!({"userName": "fw@contoso.com"}))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "scim.example.com")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["meta"]["location"].as_str().unwrap().starts_with("https://scim.example.com/scim/v2/Users/"), "{v}");
}

/// A password was kept in clear text and `password sw "a"` answered as a prefix oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_not_stored_returned_filtered_or_sorted_on() {
    let app = spawn_app().await;
    let user = app.create_user(&json!({"userName": "pw@contoso.com", "password": "s3cret!"})).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert!(user.get("password").is_none(), "{user}");
    let r = app
        .patch_ok(&format!("/Users/{id}"), &patch_op(json!([{"op": "Replace", "path": "password", "value": "n3w"}])))
        .await;
    assert!(r.get("password").is_none(), "{r}");
    let got = ok_json(app.get(&format!("/Users/{id}?attributes=password")).await).await;
    assert!(got.get("password").is_none(), "{got}");
    let stored = app
        .store
        .get(scim_store::Get {
            tenant: app.tenant.id,
            kind: scim_core::Kind::User,
            id: id.clone(),
            load: Default::default(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.doc.to_string().contains("s3cret") && !stored.doc.to_string().contains("n3w"), "{}", stored.doc);
    for filter in [r#"password sw "s""#, r#"password pr"#, r#"userName eq "x" or password eq "s3cret!""#] {
        assert_scim_error(app.get(&format!("/Users?filter={}", q(filter))).await, 400, Some("invalidFilter")).await;
    }
    assert_scim_error(app.get("/Users?sortBy=password").await, 400, Some("invalidFilter")).await;
}
