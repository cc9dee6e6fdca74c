//! Replays of Okta against the real server: the connection probe, a user cycle (match, create,
//! PUT update, path-less deactivate and reactivate, password push) and Group Push (create, add
//! members, remove with a value-filter path, rename by PATCH and by PUT, delete). Bodies are
//! those of Okta's SCIM 2.0 guide.

use super::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Okta's create body for a user.
fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// Okta's match query: `userName eq "..."` with `startIndex=1&count=100`.
async fn okta_match(app: &TestApp, user_name: &str) -> Value {
    let r =
        app.get(&format!("/Users?filter={}&startIndex=1&count=100", q(&format!("userName eq \"{user_name}\"")))).await;
    ok_json(r).await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn okta_create(app: &TestApp, user_name: &str, external_id: &str) -> String {
    let r = app.post("/Users", &okta_user(user_name, external_id)).await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    id_of(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_probes_users_and_groups_with_start_index_and_count() {
    let app = spawn_app().await;
    // On an empty tenant.
    for path in ["/Users?startIndex=1&count=2", "/Groups?startIndex=1&count=100"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
        assert_eq!(r.json::<Value>().await.unwrap(), empty_list_response(), "{path}");
    }
    // With data: a page of two users, all groups.
    for i in 0..3 {
        okta_create(&app, &format!("probe{i}@okta.local"), &format!("00ujl29u0le5T6Aj10h{i}")).await;
    }
    app.group("Test SCIMv2").await;
    let v = ok_json(app.get("/Users?startIndex=1&count=2").await).await;
    assert_eq!(
        (v["totalResults"].as_u64(), v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(v["Resources"].as_array().unwrap().len(), 2);
    assert!(v["Resources"][0].get("password").is_none(), "{v}");
    let v = ok_json(app.get("/Groups?startIndex=1&count=100").await).await;
    assert_eq!(
        (v["totalResults"].as_u64(), v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(v["Resources"][0]["displayName"], "Test SCIMv2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_user_cycle_match_create_put_deactivate_reactivate() {
    let app = spawn_app().await;
    let user_name = "test.user@okta.local";

    // Match: none.
    let v = okta_match(&app, user_name).await;
    assert_eq!(v, empty_list_response());

    // Create: 201 with the resource; the password is taken and never returned, and the
    // (readOnly) empty groups list is accepted.
    let body = okta_user(user_name, "00ujl29u0le5T6Aj10h7");
    let r = app.post("/Users", &body).await;
    let (status, created) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for k in ["userName", "name", "emails", "displayName", "locale", "externalId", "active"] {
        assert_eq!(created[k], body[k], "{k}: {created}");
    }
    assert!(created.get("password").is_none(), "{created}");
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    assert_eq!(ok_json(app.get(&path).await).await, created);

    // Match again: exactly this user.
    let v = okta_match(&app, user_name).await;
    assert_eq!((v["totalResults"].as_u64(), resource_ids(&v)), (Some(1), vec![id.clone()]));

    // Profile update with PUT, as Okta sends it (id and meta included).
    let put = json!({
        "schemas": [USER_SCHEMA],
        "id": id,
        "userName": user_name,
        "name": {"givenName": "Another", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Another User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "active": true,
        "meta": {"resourceType": "User", "created": created["meta"]["created"], "lastModified": created["meta"]["lastModified"]}
    });
    let r = app.put(&path, &put).await;
    let (status, updated) = status_json(r).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], json!(id));
    assert_eq!(updated["name"], json!({"familyName": "User", "givenName": "Another"}));
    assert_eq!(updated["displayName"], "Another User");
    assert_eq!(updated["meta"]["version"], "W/\"2\"");
    assert_eq!(updated["meta"]["created"], created["meta"]["created"]);
    assert_eq!(ok_json(app.get(&path).await).await, updated);

    // Deactivate: path-less replace.
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    assert_eq!(v["displayName"], "Another User", "nothing else changes");
    let got = ok_json(app.get(&path).await).await;
    assert_eq!(got["active"], json!(false));
    let v = okta_match(&app, user_name).await;
    assert_eq!(resource_ids(&v), vec![id.clone()]);
    assert_eq!(v["Resources"][0]["active"], json!(false));

    // Reactivate.
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(v["active"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_password_push_is_accepted_and_never_returned() {
    let app = spawn_app().await;
    let id = okta_create(&app, "test.user@okta.local", "00ujl29u0le5T6Aj10h7").await;
    let path = format!("/Users/{id}");
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"password": "t1meMa$heen"}}]}),
        )
        .await;
    assert!(v.get("password").is_none(), "{v}");
    assert!(!v.to_string().contains("t1meMa$heen"), "{v}");
    let got = ok_json(app.get(&path).await).await;
    assert!(!got.to_string().contains("t1meMa$heen") && !got.to_string().contains("1mz050nq"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_group_push_create_add_remove_rename_delete() {
    let app = spawn_app().await;
    let alice = okta_create(&app, "alice@okta.local", "00ujl29u0le5T6Aj1001").await;
    let bob = okta_create(&app, "bob@okta.local", "00ujl29u0le5T6Aj1002").await;
    let carol = okta_create(&app, "carol@okta.local", "00ujl29u0le5T6Aj1003").await;

    // Okta looks the group up by name first.
    let v = app.filter("/Groups", "displayName eq \"Test SCIMv2\"", "&startIndex=1&count=100").await;
    assert_eq!(v, empty_list_response());

    let r = app.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []})).await;
    let (status, created) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["displayName"], "Test SCIMv2");
    assert!(created.get("members").is_none(), "{created}");
    let g = id_of(&created);
    let path = format!("/Groups/{g}");

    // Add members, with the display Okta sends.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "add", "path": "members", "value": [
                {"value": alice, "display": "alice@okta.local"},
                {"value": bob, "display": "bob@okta.local"},
                {"value": carol, "display": "carol@okta.local"}
            ]}
        ]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    let mut want = vec![alice.clone(), bob.clone(), carol.clone()];
    want.sort();
    assert_eq!(group_member_ids(&v), want);
    let m = v["members"].as_array().unwrap().iter().find(|m| m["value"] == json!(bob)).unwrap();
    assert_eq!(m["display"], "bob@okta.local");

    // Remove one member with a value-filter path.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{bob}\"]")}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    let mut want = vec![alice.clone(), carol.clone()];
    want.sort();
    assert_eq!(group_member_ids(&v), want);

    // Rename with a path-less replace that carries the (readOnly) id.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"id": g, "displayName": "Test SCIMv2 renamed"}}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert_eq!((v["id"].as_str(), v["displayName"].as_str()), (Some(g.as_str()), Some("Test SCIMv2 renamed")));
    assert_eq!(group_member_ids(&v), want, "a rename keeps the members");

    // Delete.
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_scim_error(app.delete(&path).await, 404, None).await;
    assert_eq!(app.get(&format!("/Users/{alice}")).await.status(), StatusCode::OK, "members stay users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_group_rename_with_put_sets_name_and_members() {
    let app = spawn_app().await;
    let alice = okta_create(&app, "alice@okta.local", "00ujl29u0le5T6Aj1001").await;
    let bob = okta_create(&app, "bob@okta.local", "00ujl29u0le5T6Aj1002").await;
    let r = app.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []})).await;
    let g = id_of(&ok_json(r).await);
    let path = format!("/Groups/{g}");
    app.patch_no_content(
        &path,
        &patch_op(
            json!([{"op": "add", "path": "members", "value": [{"value": alice, "display": "alice@okta.local"}]}]),
        ),
    )
    .await;
    let r = app
        .put(
            &path,
            &json!({"schemas": [GROUP_SCHEMA], "id": g, "displayName": "Test SCIMv1",
                "members": [{"value": alice, "display": "alice@okta.local"}, {"value": bob, "display": "bob@okta.local"}]}),
        )
        .await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["displayName"], "Test SCIMv1");
    let mut want = vec![alice, bob];
    want.sort();
    assert_eq!(group_member_ids(&v), want);
    assert_eq!(ok_json(app.get(&path).await).await, v);
    let v = app.filter("/Groups", "displayName eq \"Test SCIMv1\"", "&startIndex=1&count=100").await;
    assert_eq!(resource_ids(&v), vec![g]);
}
