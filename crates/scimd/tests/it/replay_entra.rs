//! Replays of Microsoft Entra ID against the real server: "Test connection", an initial cycle,
//! incremental cycles, disable and re-enable, hard delete, the group cycle, and every test of
//! the Microsoft SCIM Validator that CLIENTS.md lists (including its preview tests and the
//! gallery checks). Bodies are Entra's (CLIENTS.md, Microsoft's provisioning tutorial); status
//! codes are those of CLIENTS.md's table.

use super::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ADSCIM_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";

/// A user of the customer's directory, as Entra knows it.
struct AadUser {
    upn: &'static str,
    mail_nickname: &'static str,
    given: &'static str,
    surname: &'static str,
    employee_id: &'static str,
    /// Index of the manager in the directory.
    manager: Option<usize>,
}

const DIRECTORY: &[AadUser] = &[
    AadUser {
        upn: "alice.ceo@contoso.com",
        mail_nickname: "alice.ceo",
        given: "Alice",
        surname: "Keller",
        employee_id: "100001",
        manager: None,
    },
    AadUser {
        upn: "bob.ops@contoso.com",
        mail_nickname: "bob.ops",
        given: "Bob",
        surname: "Meier",
        employee_id: "100002",
        manager: Some(0),
    },
    AadUser {
        upn: "carol.eng@contoso.com",
        mail_nickname: "carol.eng",
        given: "Carol",
        surname: "Huber",
        employee_id: "100003",
        manager: Some(1),
    },
    AadUser {
        upn: "dave.eng@contoso.com",
        mail_nickname: "dave.eng",
        given: "Dave",
        surname: "Frei",
        employee_id: "100004",
        manager: Some(1),
    },
];

/// Entra's create body for a directory user (default attribute mapping).
fn create_body(u: &AadUser) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": u.mail_nickname,
        "userName": u.upn,
        "active": true,
        "displayName": format!("{} {}", u.given, u.surname),
        "title": "Site engineer",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": u.upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("{} {}", u.given, u.surname), "familyName": u.surname, "givenName": u.given},
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}],
        ENTERPRISE: {"employeeNumber": u.employee_id, "department": "Ops"},
        "roles": []
    })
}

/// The attributes of a create body a server must echo as sent (all but `meta`, `roles: []`
/// and `schemas`).
fn assert_echoes(body: &Value, resource: &Value) {
    for (k, v) in body.as_object().unwrap() {
        if k == "meta" || k == "roles" || k == "schemas" {
            continue;
        }
        assert_eq!(&resource[k], v, "{k} as sent: {resource}");
    }
}

/// Entra's match query: `GET /Users?filter=userName eq "<upn>"`.
async fn match_user(app: &TestApp, filter: &str) -> Value {
    app.filter("/Users", filter, "").await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Creates the whole directory as an initial cycle would (match, create); returns the ids.
async fn provision_directory(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for u in DIRECTORY {
        let found = match_user(app, &format!("userName eq \"{}\"", u.upn)).await;
        assert_eq!(found, empty_list_response(), "{}", u.upn);
        let r = app.post("/Users", &create_body(u)).await;
        let (status, v) = status_json(r).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_echoes(&create_body(u), &v);
        ids.push(id_of(&v));
    }
    ids
}

fn manager_patch(manager_id: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": MANAGER, "value": manager_id}]})
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ----- Test connection -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_users_and_groups_get_200_empty_list_responses() {
    let app = spawn_app().await;
    app.user("someone@contoso.com").await;
    app.group("Some group").await;
    let guid = "0d6e1f8a-3b2c-4e5d-9f7a-8b1c2d3e4f50";
    for path in [
        format!("/Users?filter=userName+eq+%22{guid}%22"),
        format!("/Users?filter=userName%20eq%20%22{guid}%22"),
        format!("/Users?aadOptscim062020&filter=userName+eq+%22{guid}%22"),
        format!("/Groups?filter=displayName+eq+%22{guid}%22"),
        format!("/Groups?excludedAttributes=members&filter=displayName+eq+%22{guid}%22"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM), "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), empty_list_response(), "{path}");
    }
    // With raw quotes, as some Entra versions send them.
    for target in [
        format!("/scim/v2/Users?filter=userName+eq+\"{guid}\""),
        format!("/scim/v2/Users?filter=userName eq \"{guid}\"&aadOptscim062020"),
        format!("/scim/v2/Groups?filter=displayName eq \"{guid}\""),
    ] {
        assert_eq!(app.raw_get(&target).await, (200, empty_list_response()), "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_with_a_bad_token_is_401_not_403() {
    let app = spawn_app().await;
    let guid = "0d6e1f8a-3b2c-4e5d-9f7a-8b1c2d3e4f50";
    let path = format!("/Users?filter=userName+eq+%22{guid}%22");
    // `scimd_<id>_<secret>`: the id is the second part (not all before the last `_`: the
    // secret is base64url and may hold `_` itself).
    let id = app.token.split('_').nth(1).unwrap();
    for token in ["not-a-token".to_owned(), format!("scimd_{id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
        let r = app.req_as(&token, Method::GET, &path).send().await.unwrap();
        assert_scim_error(r, 401, None).await;
    }
    let r = app.client.get(format!("{}{path}", app.scim)).send().await.unwrap();
    assert_scim_error(r, 401, None).await;
    assert_eq!(app.get(&path).await.status(), StatusCode::OK, "the right token passes");
}

// ----- provisioning cycles -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_cycle_matches_creates_and_sets_managers() {
    let app = spawn_app().await;
    let ids = provision_directory(&app).await;

    // Managers come in a separate PATCH after the create, as a bare string id.
    for (i, u) in DIRECTORY.iter().enumerate() {
        let Some(m) = u.manager else { continue };
        let v = app.patch_ok(&format!("/Users/{}", ids[i]), &manager_patch(&ids[m])).await;
        assert_eq!(v[ENTERPRISE]["manager"], json!({"value": ids[m]}), "{v}");
        assert_eq!(v[ENTERPRISE]["employeeNumber"], json!(u.employee_id));
    }

    // The next cycle matches each user exactly once, by any matching attribute, and reads the
    // manager back in the complex form (else Entra would re-send it every cycle).
    for (i, u) in DIRECTORY.iter().enumerate() {
        for filter in [
            format!("userName eq \"{}\"", u.upn),
            format!("externalId eq \"{}\"", u.mail_nickname),
            format!("emails[type eq \"work\"].value eq \"{}\"", u.upn),
            format!("{ENTERPRISE}:employeeNumber eq \"{}\"", u.employee_id),
        ] {
            let v = match_user(&app, &filter).await;
            assert_eq!((v["totalResults"].as_u64(), resource_ids(&v)), (Some(1), vec![ids[i].clone()]), "{filter}");
            let want = u.manager.map(|m| json!({"value": ids[m]})).unwrap_or(Value::Null);
            assert_eq!(v["Resources"][0][ENTERPRISE]["manager"], want, "{filter}");
        }
    }
    let all = ok_json(app.get("/Users").await).await;
    assert_eq!(all["totalResults"], json!(DIRECTORY.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_cycle_patches_changed_users_only() {
    let app = spawn_app().await;
    let ids = provision_directory(&app).await;
    let (carol, dave) = (&ids[2], &ids[3]);

    // Carol got a new mail address and surname, moved department and got a new manager.
    let found = match_user(&app, "userName eq \"carol.eng@contoso.com\"").await;
    assert_eq!(resource_ids(&found), vec![carol.clone()]);
    let v = app
        .patch_ok(
            &format!("/Users/{carol}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "carol.weber@contoso.com"},
                {"op": "Replace", "path": "name.familyName", "value": "Weber"},
                {"op": "Replace", "path": "displayName", "value": "Carol Weber"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Engineering"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": ids[0]}
            ]}),
        )
        .await;
    assert_eq!(v["emails"], json!([{"value": "carol.weber@contoso.com", "type": "work", "primary": true}]));
    assert_eq!(v["name"], json!({"formatted": "Carol Huber", "familyName": "Weber", "givenName": "Carol"}));
    assert_eq!(
        v[ENTERPRISE],
        json!({"employeeNumber": "100003", "department": "Engineering", "manager": {"value": ids[0]}})
    );
    assert_eq!(v["meta"]["version"], "W/\"2\"");

    // Her UPN changes too (single-valued update).
    let v = app
        .patch_ok(
            &format!("/Users/{carol}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "userName", "value": "carol.weber@contoso.com"}]}),
        )
        .await;
    assert_eq!(v["userName"], "carol.weber@contoso.com");
    assert_eq!(match_user(&app, "userName eq \"carol.eng@contoso.com\"").await, empty_list_response());
    let found = match_user(&app, "userName eq \"carol.weber@contoso.com\"").await;
    assert_eq!(found["Resources"][0], ok_json(app.get(&format!("/Users/{carol}")).await).await);

    // Dave did not change: Entra sends nothing, and his resource is untouched.
    let v = ok_json(app.get(&format!("/Users/{dave}")).await).await;
    assert_eq!(v["meta"]["version"], "W/\"1\"");
    assert_echoes(&create_body(&DIRECTORY[3]), &v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_re_enable_keep_the_user_visible() {
    let app = spawn_app().await;
    let ids = provision_directory(&app).await;
    let bob = &ids[1];
    let path = format!("/Users/{bob}");

    // Unassigned or soft-deleted in Entra: disabled with the default string shape.
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    let got = ok_json(app.get(&path).await).await;
    assert_eq!(got["active"], json!(false));
    assert_echoes(&json!({"userName": "bob.ops@contoso.com", "name": create_body(&DIRECTORY[1])["name"]}), &got);
    let found = match_user(&app, "userName eq \"bob.ops@contoso.com\"").await;
    assert_eq!(resource_ids(&found), vec![bob.clone()]);
    assert_eq!(found["Resources"][0]["active"], json!(false));
    let inactive = match_user(&app, "active eq false").await;
    assert_eq!(resource_ids(&inactive), vec![bob.clone()]);
    let all = ok_json(app.get("/Users").await).await;
    assert_eq!(all["totalResults"], json!(DIRECTORY.len()), "a disabled user is still listed");

    // Re-assigned: enabled again.
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": "True"}]}),
        )
        .await;
    assert_eq!(v["active"], json!(true));
    assert_eq!(match_user(&app, "active eq false").await, empty_list_response());

    // Microsoft's tutorial body (JSON boolean, Operations before schemas).
    let v = app
        .patch_ok(
            &path,
            &json!({"Operations": [{"op": "Replace", "path": "active", "value": false}],
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}),
        )
        .await;
    assert_eq!(v["active"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_delete_after_soft_delete() {
    let app = spawn_app().await;
    let ids = provision_directory(&app).await;
    let dave = &ids[3];
    let path = format!("/Users/{dave}");
    let g = app.group("Engineering").await;
    app.patch_no_content(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": dave}, {"$ref": null, "value": ids[2]}]}])),
    )
    .await;
    app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]))).await;

    // 30 days later.
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_scim_error(app.delete(&path).await, 404, None).await;
    let body = patch_op(json!([{"op": "Replace", "path": "active", "value": "True"}]));
    assert_scim_error(app.patch(&path, &body).await, 404, None).await;
    assert_eq!(match_user(&app, "userName eq \"dave.eng@contoso.com\"").await, empty_list_response());
    let group = ok_json(app.get(&format!("/Groups/{g}")).await).await;
    assert_eq!(group_member_ids(&group), vec![ids[2].clone()], "the deleted user left its groups");
    let all = ok_json(app.get("/Users").await).await;
    assert_eq!(all["totalResults"], json!(DIRECTORY.len() - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_cycle_create_empty_add_in_batches_remove_rename_delete() {
    let app = spawn_app().await;
    let mut users = provision_directory(&app).await;
    for i in 0..5 {
        users.push(app.user(&format!("extra{i}@contoso.com")).await);
    }

    // Match, then create without members.
    let by_name = |name: &str| format!("displayName eq \"{name}\"");
    let found = app.filter("/Groups", &by_name("Ops Team"), "&excludedAttributes=members").await;
    assert_eq!(found, empty_list_response());
    let r = app
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Ops Team",
                "meta": {"resourceType": "Group"}}),
        )
        .await;
    let (status, created) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["displayName"], "Ops Team");
    assert_eq!(created["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert!(created.get("members").is_none(), "{created}");
    let g = id_of(&created);
    let path = format!("/Groups/{g}");

    // Members in batches, several per operation.
    for batch in users.chunks(4) {
        let value: Vec<Value> = batch.iter().map(|u| json!({"$ref": null, "value": u})).collect();
        app.patch_no_content(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Add", "path": "members", "value": value}]}),
        )
        .await;
    }
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(group_member_ids(&v), sorted(users.clone()));

    // Membership checks.
    let check = |u: &str| format!("id eq \"{g}\" and members eq \"{u}\"");
    let v = app.filter("/Groups", &check(&users[0]), "&attributes=id").await;
    assert_eq!(v["Resources"], json!([{"schemas": [GROUP_SCHEMA], "id": g}]));

    // Remove two members, default shape: only those go.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": users[0]}, {"$ref": null, "value": users[5]}]}]}),
    )
    .await;
    let mut rest = users.clone();
    rest.retain(|u| u != &users[0] && u != &users[5]);
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(group_member_ids(&v), sorted(rest.clone()));
    assert_eq!(app.filter("/Groups", &check(&users[0]), "&attributes=id").await, empty_list_response());

    // Rename.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "Operations"}]}),
    )
    .await;
    let v = ok_json(app.get(&format!("{path}?excludedAttributes=members")).await).await;
    assert_eq!(v["displayName"], "Operations");
    assert!(v.get("members").is_none());
    assert_eq!(app.filter("/Groups", &by_name("Ops Team"), "&excludedAttributes=members").await, empty_list_response());
    let v = app.filter("/Groups", &by_name("operations"), "&excludedAttributes=members").await;
    assert_eq!(resource_ids(&v), vec![g.clone()]);
    assert!(v["Resources"][0].get("members").is_none());

    // Delete: 204, then 404; the users stay.
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_scim_error(app.delete(&path).await, 404, None).await;
    let all = ok_json(app.get("/Users?count=0").await).await;
    assert_eq!(all["totalResults"], json!(users.len()));
}

// ----- Microsoft SCIM Validator -----

/// A user as the validator creates it (random values in Entra's default mapping).
fn validator_user(tag: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": format!("0a21f0f2-8d2a-4f8e-bf98-{tag}"),
        "userName": format!("Test_User_{tag}@testuser.com"),
        "active": true,
        "displayName": format!("Display {tag}"),
        "title": "Zvbu",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": format!("Test_User_{tag}@testuser.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "addresses": [{"type": "work", "streetAddress": "Zokq", "locality": "Vvld", "region": "Ebwl", "postalCode": "Hkzm", "country": "Zqfy"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}, {"type": "fax", "value": "4255550102"}],
        ENTERPRISE: {"employeeNumber": format!("E{tag}"), "department": "Hmkn"},
        "roles": []
    })
}

async fn validator_create(app: &TestApp, tag: &str) -> (String, Value) {
    let v = app.create_user(&validator_user(tag)).await;
    (format!("/Users/{}", id_of(&v)), v)
}

/// A GUID-shaped object id derived from a name (Entra sends the group's object id as
/// `externalId`; it is unique per tenant).
fn object_id(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("8aa1a0c0-c4c3-4bc0-b4a5-{:012x}", h & 0xffff_ffff_ffff)
}

/// A group as the validator creates it.
fn validator_group(name: &str) -> Value {
    json!({"schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
        "externalId": object_id(name),
        "displayName": name,
        "meta": {"resourceType": "Group"}})
}

async fn validator_group_create(app: &TestApp, name: &str) -> String {
    let r = app.post("/Groups", &validator_group(name)).await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    format!("/Groups/{}", id_of(&v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_create_a_new_user() {
    let app = spawn_app().await;
    let body = validator_user("ab6490ee1e48");
    let r = app.post("/Users", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_echoes(&body, &v);
    assert_eq!(location, format!("{}/Users/{}", app.scim, id_of(&v)));
    assert_eq!(v["meta"]["resourceType"], "User");
    assert_eq!(v["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
    assert_eq!(ok_json(app.get(&format!("/Users/{}", id_of(&v))).await).await, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_create_a_duplicate_user() {
    let app = spawn_app().await;
    validator_create(&app, "fd0ea19b0777").await;
    // The same body again: userName and externalId both collide; the detail names one.
    let v = assert_scim_error(app.post("/Users", &validator_user("fd0ea19b0777")).await, 409, Some("uniqueness")).await;
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("userName") || detail.contains("externalId"), "{v}");
    // Only the userName collides: the detail names it.
    let mut body = validator_user("fd0ea19b0777");
    body["externalId"] = json!("0a21f0f2-8d2a-4f8e-bf98-000000000000");
    let v = assert_scim_error(app.post("/Users", &body).await, 409, Some("uniqueness")).await;
    assert!(v["detail"].as_str().unwrap().contains("userName"), "{v}");
    let all = ok_json(app.get("/Users").await).await;
    assert_eq!(all["totalResults"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_an_existing_user() {
    let app = spawn_app().await;
    let (path, created) = validator_create(&app, "dfeef4c55681").await;
    validator_create(&app, "0a1b2c3d4e5f").await;
    let v = match_user(&app, "userName eq \"Test_User_dfeef4c55681@testuser.com\"").await;
    assert_eq!(v["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(
        (v["totalResults"].as_u64(), v["itemsPerPage"].as_u64(), v["startIndex"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(v["Resources"][0], ok_json(app.get(&path).await).await);
    assert_eq!(v["Resources"][0]["id"], created["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_a_non_existing_user() {
    let app = spawn_app().await;
    validator_create(&app, "dfeef4c55681").await;
    let v = match_user(&app, "userName eq \"Test_User_5e0d3c1e9b33@testuser.com\"").await;
    assert_eq!(v, empty_list_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_an_existing_user_with_a_different_case() {
    let app = spawn_app().await;
    let (_, created) = validator_create(&app, "dfeef4c55681").await;
    let v = match_user(&app, "userName eq \"TEST_USER_DFEEF4C55681@TESTUSER.COM\"").await;
    assert_eq!(resource_ids(&v), vec![id_of(&created)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_user_replace_attributes() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "9c2f7e1a3b4d").await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "path": "active", "value": true},
                {"op": "replace", "path": "displayName", "value": "Qwtx"},
                {"op": "replace", "path": "title", "value": "Oaqb"},
                {"op": "replace", "path": "preferredLanguage", "value": "de-CH"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "Wqzl@testuser.com"},
                {"op": "replace", "path": "name.givenName", "value": "Rdka"},
                {"op": "replace", "path": "name.familyName", "value": "Ubqe"},
                {"op": "replace", "path": "name.formatted", "value": "Rdka Ubqe"},
                {"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "Pnlh"},
                {"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": "Gfay"},
                {"op": "replace", "path": "addresses[type eq \"work\"].region", "value": "Jvum"},
                {"op": "replace", "path": "addresses[type eq \"work\"].postalCode", "value": "Kuyw"},
                {"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "Xexc"},
                {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "4255550200"},
                {"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "4255550201"},
                {"op": "replace", "path": "phoneNumbers[type eq \"fax\"].value", "value": "4255550202"},
                {"op": "replace", "path": "externalId", "value": "Hcxb"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Vkgp"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Yqpc"}
            ]}),
        )
        .await;
    assert_eq!(
        (v["displayName"].as_str(), v["title"].as_str(), v["preferredLanguage"].as_str(), v["externalId"].as_str()),
        (Some("Qwtx"), Some("Oaqb"), Some("de-CH"), Some("Hcxb"))
    );
    assert_eq!(v["emails"], json!([{"value": "Wqzl@testuser.com", "type": "work", "primary": true}]));
    assert_eq!(v["name"], json!({"formatted": "Rdka Ubqe", "familyName": "Ubqe", "givenName": "Rdka"}));
    assert_eq!(
        v["addresses"],
        json!([{"streetAddress": "Pnlh", "locality": "Gfay", "region": "Jvum", "postalCode": "Kuyw", "country": "Xexc", "type": "work"}])
    );
    assert_eq!(
        v["phoneNumbers"],
        json!([{"value": "4255550200", "type": "work"}, {"value": "4255550201", "type": "mobile"}, {"value": "4255550202", "type": "fax"}])
    );
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "Vkgp", "department": "Yqpc"}));
    assert_eq!(ok_json(app.get(&path).await).await, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_update_user_user_name() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    validator_create(&app, "0a1b2c3d4e5f").await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}
            ]}),
        )
        .await;
    assert_eq!(v["userName"], "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com");
    let found = match_user(&app, "userName eq \"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com\"").await;
    assert_eq!(resource_ids(&found), vec![id_of(&v)]);
    // Taking another user's userName is a conflict.
    let body = patch_op(json!([{"op": "Replace", "path": "userName", "value": "test_user_0a1b2c3d4e5f@testuser.com"}]));
    assert_scim_error(app.patch(&path, &body).await, 409, Some("uniqueness")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_user_disable_user() {
    let app = spawn_app().await;
    let (path, created) = validator_create(&app, "ab6490ee1e48").await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    let found = match_user(&app, "userName eq \"Test_User_ab6490ee1e48@testuser.com\"").await;
    assert_eq!(resource_ids(&found), vec![id_of(&created)]);
    assert_eq!(found["Resources"][0]["active"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_user_add_manager() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let (_, boss) = validator_create(&app, "2819c2237f76").await;
    let v = app.patch_ok(&path, &manager_patch(&id_of(&boss))).await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": id_of(&boss)}));
    let got = ok_json(app.get(&path).await).await;
    assert_eq!(got[ENTERPRISE]["manager"], json!({"value": id_of(&boss)}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_user_replace_manager() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let (_, boss) = validator_create(&app, "2819c2237f76").await;
    let (_, boss2) = validator_create(&app, "413861904646").await;
    app.patch_ok(&path, &manager_patch(&id_of(&boss))).await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": MANAGER, "value": id_of(&boss2)}]}),
        )
        .await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": id_of(&boss2)}));
    assert_eq!(ok_json(app.get(&path).await).await[ENTERPRISE]["manager"], json!({"value": id_of(&boss2)}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_user_remove_manager() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let (_, boss) = validator_create(&app, "2819c2237f76").await;
    app.patch_ok(&path, &manager_patch(&id_of(&boss))).await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Remove", "path": MANAGER}]}),
        )
        .await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");
    let got = ok_json(app.get(&path).await).await;
    assert!(got[ENTERPRISE].get("manager").is_none(), "{got}");
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "Eab6490ee1e48");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_delete_a_user() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_eq!(match_user(&app, "userName eq \"Test_User_ab6490ee1e48@testuser.com\"").await, empty_list_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_get_group_by_id_excluding_members() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "Group 40734ae6").await;
    let u = app.user("member@testuser.com").await;
    app.patch_no_content(
        &path,
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u}]}])),
    )
    .await;
    let v = ok_json(app.get(&format!("{path}?excludedAttributes=members")).await).await;
    assert_eq!(v["displayName"], "Group 40734ae6");
    assert_eq!(v["externalId"], json!(object_id("Group 40734ae6")));
    assert!(v.get("members").is_none(), "{v}");
    assert_eq!(format!("/Groups/{}", id_of(&v)), path);
    // Without the exclusion the member is there: the exclusion did the work.
    assert_eq!(group_member_ids(&ok_json(app.get(&path).await).await), vec![u]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_existing_group_excluding_members() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    validator_group_create(&app, "Other group").await;
    let u = app.user("member@testuser.com").await;
    app.patch_no_content(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": u}]}]))).await;
    let v = app.filter("/Groups", "displayName eq \"displayName 1879db59\"", "&excludedAttributes=members").await;
    assert_eq!(v["totalResults"], json!(1));
    assert_eq!(format!("/Groups/{}", id_of(&v["Resources"][0])), path);
    assert!(v["Resources"][0].get("members").is_none(), "{v}");
    // Entra's own order of parameters.
    let v = ok_json(
        app.get(&format!("/Groups?excludedAttributes=members&filter={}", q("displayName eq \"displayName 1879db59\"")))
            .await,
    )
    .await;
    assert_eq!(v["totalResults"], json!(1));
    assert!(v["Resources"][0].get("members").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_existing_group_with_a_different_case() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    let v = app.filter("/Groups", "displayName eq \"DISPLAYNAME 1879DB59\"", "&excludedAttributes=members").await;
    assert_eq!(v["totalResults"], json!(1));
    assert_eq!(format!("/Groups/{}", id_of(&v["Resources"][0])), path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_filter_for_a_non_existing_group() {
    let app = spawn_app().await;
    validator_group_create(&app, "displayName 1879db59").await;
    let v = app.filter("/Groups", "displayName eq \"displayName 5e0d3c1e\"", "&excludedAttributes=members").await;
    assert_eq!(v, empty_list_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_create_a_new_group() {
    let app = spawn_app().await;
    let r = app.post("/Groups", &validator_group("displayName 1879db59")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schemas"], json!([GROUP_SCHEMA]));
    assert_eq!(v["displayName"], "displayName 1879db59");
    assert_eq!(v["externalId"], json!(object_id("displayName 1879db59")));
    assert_eq!(v["meta"]["resourceType"], "Group");
    assert_eq!(location, format!("{}/Groups/{}", app.scim, id_of(&v)));
    assert_eq!(ok_json(app.get(&format!("/Groups/{}", id_of(&v))).await).await, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_create_a_duplicate_group() {
    let app = spawn_app().await;
    validator_group_create(&app, "displayName 1879db59").await;
    let mut dup = validator_group("displayName 1879db59");
    dup["externalId"] = json!("1f2e3d4c-5b6a-4789-8a9b-0c1d2e3f4a5b");
    let v = assert_scim_error(app.post("/Groups", &dup).await, 409, Some("uniqueness")).await;
    assert!(v["detail"].as_str().unwrap().contains("displayName"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_group_replace_attributes() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"},
            {"op": "Replace", "path": "externalId", "value": "5e0d3c1e-9b33-4f6a-8c2d-7e1f0a9b8c7d"}
        ]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(v["displayName"], "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName");
    assert_eq!(v["externalId"], "5e0d3c1e-9b33-4f6a-8c2d-7e1f0a9b8c7d");
    assert_eq!(v["meta"]["version"], "W/\"2\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_update_group_display_name() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    let other = validator_group_create(&app, "Taken name").await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "updatedDisplayName"}]}),
    )
    .await;
    let v = app.filter("/Groups", "displayName eq \"updatedDisplayName\"", "&excludedAttributes=members").await;
    assert_eq!(format!("/Groups/{}", id_of(&v["Resources"][0])), path);
    // Renaming onto another group's name (in any case) is a conflict.
    let body = patch_op(json!([{"op": "Replace", "path": "displayName", "value": "taken NAME"}]));
    assert_scim_error(app.patch(&path, &body).await, 409, Some("uniqueness")).await;
    assert_eq!(ok_json(app.get(&other).await).await["displayName"], "Taken name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_group_add_member() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    let (_, u) = validator_create(&app, "f648f8d5ea4e").await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id_of(&u)}]}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(group_member_ids(&v), vec![id_of(&u)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_patch_group_remove_member() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    let (_, u1) = validator_create(&app, "f648f8d5ea4e").await;
    let (_, u2) = validator_create(&app, "4cd38e9c0a1b").await;
    let add = json!([{"$ref": null, "value": id_of(&u1)}, {"$ref": null, "value": id_of(&u2)}]);
    app.patch_no_content(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": add}]))).await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id_of(&u1)}]}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(group_member_ids(&v), vec![id_of(&u2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_delete_a_group() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    let r = app.delete(&path).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_scim_error(app.get(&path).await, 404, None).await;
    let v = app.filter("/Groups", "displayName eq \"displayName 1879db59\"", "&excludedAttributes=members").await;
    assert_eq!(v, empty_list_response());
}

// ----- Microsoft SCIM Validator, preview tests -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_multiple_ops_on_the_same_attribute_in_one_patch() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Add", "path": "title", "value": "First"},
                {"op": "Replace", "path": "title", "value": "Second"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "first@testuser.com"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "second@testuser.com"},
                {"op": "Add", "path": "nickName", "value": "Gone"},
                {"op": "Remove", "path": "nickName"}
            ]}),
        )
        .await;
    assert_eq!(v["title"], "Second");
    assert_eq!(v["emails"], json!([{"value": "second@testuser.com", "type": "work", "primary": true}]));
    assert!(v.get("nickName").is_none(), "{v}");
    assert_eq!(ok_json(app.get(&path).await).await, v);

    // The same member added and removed in one group PATCH ends up absent.
    let g = validator_group_create(&app, "displayName 1879db59").await;
    let (_, u) = validator_create(&app, "f648f8d5ea4e").await;
    let (_, stays) = validator_create(&app, "4cd38e9c0a1b").await;
    app.patch_no_content(
        &g,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": id_of(&u)}, {"$ref": null, "value": id_of(&stays)}]},
            {"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id_of(&u)}]}
        ]}),
    )
    .await;
    assert_eq!(group_member_ids(&ok_json(app.get(&g).await).await), vec![id_of(&stays)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_multiple_ops_on_different_attributes_in_one_patch() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let (_, boss) = validator_create(&app, "2819c2237f76").await;
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Kzrw"},
                {"op": "Add", "path": "nickName", "value": "Kz"},
                {"op": "Remove", "path": "title"},
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "4255550301"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": id_of(&boss)}
            ]}),
        )
        .await;
    assert_eq!((v["displayName"].as_str(), v["nickName"].as_str()), (Some("Kzrw"), Some("Kz")));
    assert!(v.get("title").is_none(), "{v}");
    assert_eq!(v["active"], json!(false));
    assert_eq!(v["phoneNumbers"][1], json!({"value": "4255550301", "type": "mobile"}));
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": id_of(&boss)}));
    assert_eq!(ok_json(app.get(&path).await).await, v);

    // A group: rename and add a member in one request.
    let g = validator_group_create(&app, "displayName 1879db59").await;
    app.patch_no_content(
        &g,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "displayName", "value": "renamed 1879db59"},
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": id_of(&boss)}]}
        ]}),
    )
    .await;
    let v = ok_json(app.get(&g).await).await;
    assert_eq!((v["displayName"].as_str(), group_member_ids(&v)), (Some("renamed 1879db59"), vec![id_of(&boss)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_delete_a_non_existent_user() {
    let app = spawn_app().await;
    validator_create(&app, "ab6490ee1e48").await;
    assert_scim_error(app.delete("/Users/5171a35d-8207-4e06-8ce2-3c1a2b9d0e7f").await, 404, None).await;
    assert_scim_error(app.get("/Users/5171a35d-8207-4e06-8ce2-3c1a2b9d0e7f").await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_delete_a_non_existent_group() {
    let app = spawn_app().await;
    validator_group_create(&app, "displayName 1879db59").await;
    assert_scim_error(app.delete("/Groups/cdb1ce18-f659-4407-9d37-6a2b1c0d9e8f").await, 404, None).await;
    assert_scim_error(app.get("/Groups/cdb1ce18-f659-4407-9d37-6a2b1c0d9e8f").await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_delete_a_user_twice() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.delete(&path).await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_preview_delete_a_group_twice() {
    let app = spawn_app().await;
    let path = validator_group_create(&app, "displayName 1879db59").await;
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.delete(&path).await, 404, None).await;
}

// ----- gallery validation -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gallery_pagination_echoes_start_index() {
    let app = spawn_app().await;
    for i in 0..12 {
        validator_create(&app, &format!("{i:012x}")).await;
    }
    let mut seen = Vec::new();
    for (start, want) in [(1u64, 5u64), (6, 5), (11, 2), (13, 0)] {
        let v = ok_json(app.get(&format!("/Users?startIndex={start}&count=5")).await).await;
        assert_eq!(v["schemas"], json!([LIST_RESPONSE]));
        assert_eq!(
            (v["totalResults"].as_u64(), v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()),
            (Some(12), Some(start), Some(want)),
            "startIndex={start}"
        );
        assert_eq!(v["Resources"].as_array().unwrap().len() as u64, want);
        seen.extend(resource_ids(&v));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (12, 12), "every user exactly once");

    // Groups page the same way.
    for i in 0..7 {
        validator_group_create(&app, &format!("Group {i}")).await;
    }
    let v = ok_json(app.get("/Groups?startIndex=6&count=5&excludedAttributes=members").await).await;
    assert_eq!(
        (v["totalResults"].as_u64(), v["startIndex"].as_u64(), v["itemsPerPage"].as_u64()),
        (Some(7), Some(6), Some(2))
    );
}

/// The attributes of a schema as `name` and `name.sub` paths.
fn schema_paths(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for a in schema["attributes"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        out.push(name.to_owned());
        for s in a.get("subAttributes").and_then(Value::as_array).into_iter().flatten() {
            out.push(format!("{name}.{}", s["name"].as_str().unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gallery_schemas_list_every_mapped_attribute() {
    let app = spawn_app().await;
    let list = ok_json(app.get("/Schemas").await).await;
    let schema = |id: &str| {
        list["Resources"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap_or_else(|| panic!("{id}"))
    };
    // Entra's default attribute mappings for users and groups (externalId and id are common
    // attributes, RFC 7643 §3.1, and not part of a schema).
    let user = schema_paths(&schema(USER_SCHEMA));
    for path in [
        "userName",
        "active",
        "displayName",
        "title",
        "preferredLanguage",
        "emails",
        "emails.value",
        "emails.type",
        "emails.primary",
        "name.givenName",
        "name.familyName",
        "name.formatted",
        "addresses.formatted",
        "addresses.streetAddress",
        "addresses.locality",
        "addresses.region",
        "addresses.postalCode",
        "addresses.country",
        "addresses.type",
        "phoneNumbers.value",
        "phoneNumbers.type",
        "roles",
        "roles.value",
        "roles.display",
        "roles.primary",
        "roles.type",
    ] {
        assert!(user.iter().any(|p| p == path), "User schema lacks {path}: {user:?}");
    }
    let enterprise = schema_paths(&schema(ENTERPRISE));
    for path in ["employeeNumber", "department", "costCenter", "organization", "division", "manager", "manager.value"] {
        assert!(enterprise.iter().any(|p| p == path), "enterprise schema lacks {path}: {enterprise:?}");
    }
    let group = schema_paths(&schema(GROUP_SCHEMA));
    for path in ["displayName", "members", "members.value"] {
        assert!(group.iter().any(|p| p == path), "Group schema lacks {path}: {group:?}");
    }
    // Each schema is also served on its own.
    for id in [USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA] {
        assert_eq!(ok_json(app.get(&format!("/Schemas/{id}")).await).await, schema(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gallery_null_update_empties_attributes() {
    let app = spawn_app().await;
    let (path, _) = validator_create(&app, "ab6490ee1e48").await;
    let (_, boss) = validator_create(&app, "2819c2237f76").await;
    app.patch_ok(&path, &manager_patch(&id_of(&boss))).await;
    let targets = [
        "title",
        "preferredLanguage",
        "displayName",
        "name.givenName",
        "addresses[type eq \"work\"].locality",
        "emails[type eq \"work\"].value",
        "phoneNumbers[type eq \"mobile\"].value",
        "externalId",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    ];
    let fill = |round: &str| -> Value {
        let ops: Vec<Value> = targets
            .iter()
            .map(|t| {
                let value = if t.ends_with(":manager") { json!(id_of(&boss)) } else { json!(format!("{round} value")) };
                json!({"op": "Replace", "path": t, "value": value})
            })
            .collect();
        patch_op(Value::Array(ops))
    };
    for empty in [json!(""), json!(null)] {
        app.patch_ok(&path, &fill("set")).await;
        let ops: Vec<Value> = targets.iter().map(|t| json!({"op": "Replace", "path": t, "value": empty})).collect();
        let v = app.patch_ok(&path, &patch_op(Value::Array(ops))).await;
        let got = ok_json(app.get(&path).await).await;
        assert_eq!(got, v);
        for absent in [&v.get("title"), &v.get("preferredLanguage"), &v.get("displayName"), &v.get("externalId")] {
            assert!(absent.is_none(), "{empty}: {v}");
        }
        let without_value = |attr: &str, ty: &str| {
            v.get(attr)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| e["type"] == ty)
                .all(|e| e.get("value").is_none())
        };
        assert!(without_value("emails", "work") && without_value("phoneNumbers", "mobile"), "{empty}: {v}");
        assert_eq!(v["phoneNumbers"][0], json!({"value": "4255550100", "type": "work"}), "the other numbers stay");
        assert!(v["name"].get("givenName").is_none(), "{empty}: {v}");
        assert_eq!(v["name"]["familyName"], "familyName");
        assert!(v["addresses"][0].get("locality").is_none(), "{empty}: {v}");
        assert_eq!(v["addresses"][0]["streetAddress"], "Zokq");
        assert!(v[ENTERPRISE].get("department").is_none() && v[ENTERPRISE].get("manager").is_none(), "{empty}: {v}");
        assert_eq!(v[ENTERPRISE]["employeeNumber"], "Eab6490ee1e48");
        // An empty attribute is absent to filters as well.
        for attr in ["title", "emails[type eq \"work\"].value", "externalId"] {
            let filter = format!("userName eq \"Test_User_ab6490ee1e48@testuser.com\" and {attr} pr");
            assert_eq!(match_user(&app, &filter).await, empty_list_response(), "{empty}: {filter}");
        }
    }
}
