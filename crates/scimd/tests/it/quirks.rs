//! One test per client quirk of CLIENTS.md, through the real HTTP server, each with the body
//! the client sends and named after the quirk. The quirks are accepted by the tolerance layer
//! (`scim_core::tolerance`, plus the grammar extensions of `filter` and `patch`); these tests
//! show that every one of them reaches it intact through HTTP.

use super::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const JDOE: &str = "jdoe@contoso.com";

/// A user created with Entra's default-mapping body; returns its id and its path.
async fn entra_jdoe(app: &TestApp) -> (String, String) {
    let v = app.create_user(&entra_user(JDOE, "jdoe")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    (id, path)
}

/// The stored resource after a PATCH: the PATCH response and a fresh GET must agree.
async fn patched(app: &TestApp, path: &str, body: &Value) -> Value {
    let v = app.patch_ok(path, body).await;
    let got = ok_json(app.get(path).await).await;
    assert_eq!(got, v, "the PATCH response is the stored resource");
    v
}

// ----- PATCH operation names and booleans -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pascal_case_ops_add_replace_remove() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "Replace", "path": "displayName", "value": "Johnny Doe"},
            {"op": "Remove", "path": "title"}
        ]}),
    )
    .await;
    assert_eq!(v["nickName"], "Babs");
    assert_eq!(v["displayName"], "Johnny Doe");
    assert!(v.get("title").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_case_ops_with_the_aad_opt_flag() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &format!("{path}?aadOptscim062020"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "replace", "path": "displayName", "value": "Johnny Doe"},
            {"op": "remove", "path": "title"}
        ]}),
    )
    .await;
    assert_eq!((v["nickName"].as_str(), v["displayName"].as_str()), (Some("Babs"), Some("Johnny Doe")));
    assert!(v.get("title").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_booleans_for_active_in_every_spelling() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    for (value, want) in [
        (json!("False"), false),
        (json!("True"), true),
        (json!("false"), false),
        (json!("true"), true),
        (json!(false), false),
        (json!(true), true),
    ] {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": value}]});
        let v = patched(&app, &path, &body).await;
        assert_eq!(v["active"], json!(want), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_boolean_active_in_a_create_body() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["active"] = json!("True");
    let v = app.create_user(&body).await;
    assert_eq!(v["active"], json!(true));
    let mut body = entra_user("mary@contoso.com", "mary");
    body["active"] = json!("False");
    let v = app.create_user(&body).await;
    assert_eq!(v["active"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_boolean_primary_inside_a_complex_value() {
    let app = spawn_app().await;
    let id = app.user(JDOE).await;
    let path = format!("/Users/{id}");
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "emails", "value": [{"type": "work", "value": JDOE, "primary": "True"}]},
            {"op": "Add", "path": "phoneNumbers", "value": [{"type": "mobile", "value": "4255550101", "primary": "False"}]}
        ]}),
    )
    .await;
    assert_eq!(v["emails"], json!([{"value": JDOE, "type": "work", "primary": true}]));
    assert_eq!(v["phoneNumbers"][0]["primary"], json!(false), "{v}");
    // Stored as a boolean: a filter on the boolean finds it.
    let list = app.filter("/Users", "emails[primary eq true]", "").await;
    assert_eq!(resource_ids(&list), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_boolean_in_a_value_filter_matches_a_boolean_true() {
    let app = spawn_app().await;
    let (id, path) = entra_jdoe(&app).await;
    app.patch_ok(
        &path,
        &patch_op(json!([{"op": "Add", "path": "roles", "value": [{"value": "Reader", "primary": true}]}])),
    )
    .await;
    // `roles[primary eq "True"]` selects the element whose primary is the boolean true.
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "roles[primary eq \"True\"].value", "value": "Admin"},
            {"op": "Replace", "path": "roles[primary eq \"True\"].display", "value": "Administrator"}
        ]}),
    )
    .await;
    assert_eq!(v["roles"], json!([{"value": "Admin", "display": "Administrator", "primary": true}]));
    // And in a query filter.
    let list = app.filter("/Users", "roles[primary eq \"True\"].value eq \"Admin\"", "").await;
    assert_eq!(resource_ids(&list), vec![id]);
}

// ----- value-filter paths -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_boolean_value_filter_creates_the_element_with_a_boolean() {
    let app = spawn_app().await;
    let (id, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "roles[primary eq \"True\"].value", "value": "Admin"},
            {"op": "Add", "path": "roles[primary eq \"True\"].display", "value": "Administrator"}
        ]}),
    )
    .await;
    assert_eq!(v["roles"], json!([{"value": "Admin", "display": "Administrator", "primary": true}]));
    let list = app.filter("/Users", "roles[primary eq true].value eq \"Admin\"", "").await;
    assert_eq!(resource_ids(&list), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_filter_path_creates_the_element_when_none_matches() {
    let app = spawn_app().await;
    let id = app.user(JDOE).await;
    let path = format!("/Users/{id}");
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": JDOE},
            {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "4255550101"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"}
        ]}),
    )
    .await;
    assert_eq!(v["emails"], json!([{"value": JDOE, "type": "work"}]));
    assert_eq!(v["phoneNumbers"], json!([{"value": "4255550101", "type": "mobile"}]));
    assert_eq!(v["addresses"], json!([{"streetAddress": "1 Main St", "type": "work"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_ops_on_one_value_filter_land_in_one_element() {
    let app = spawn_app().await;
    let id = app.user(JDOE).await;
    let path = format!("/Users/{id}");
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Bern"},
            {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "3000"},
            {"op": "Add", "path": "addresses[type eq \"work\"].country", "value": "CH"}
        ]}),
    )
    .await;
    assert_eq!(
        v["addresses"],
        json!([{"streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH", "type": "work"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_work_email_keeps_the_other_emails() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["emails"] = json!([
        {"primary": true, "type": "work", "value": JDOE},
        {"type": "home", "value": "john@home.example"}
    ]);
    let id = app.create_user(&body).await["id"].as_str().unwrap().to_owned();
    let v = patched(
        &app,
        &format!("/Users/{id}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@contoso.com"}
        ]}),
    )
    .await;
    assert_eq!(
        v["emails"],
        json!([
            {"value": "updatedEmail@contoso.com", "type": "work", "primary": true},
            {"value": "john@home.example", "type": "home"}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_names_in_paths_are_case_insensitive() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "addresses[type eq \"other\"].Formatted", "value": "2 Side St, 3000 Bern"},
            {"op": "Replace", "path": "Name.GivenName", "value": "Jon"}
        ]}),
    )
    .await;
    let addresses = v["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 2, "{v}");
    assert_eq!(addresses[1], json!({"formatted": "2 Side St, 3000 Bern", "type": "other"}));
    assert_eq!(addresses[0]["streetAddress"], "1 Main St", "the work address stays");
    assert_eq!(v["name"]["givenName"], "Jon");
    // In bodies and filters too.
    let v = app
        .create_user(&json!({"UserName": "mary@contoso.com", "Name": {"GivenName": "Mary"}, "Active": "True"}))
        .await;
    assert_eq!((v["userName"].as_str(), v["name"]["givenName"].as_str()), (Some("mary@contoso.com"), Some("Mary")));
    assert_eq!(v["active"], json!(true));
    let list = app.filter("/Users", "USERNAME eq \"mary@contoso.com\" and name.GIVENNAME eq \"mary\"", "").await;
    assert_eq!(resource_ids(&list), vec![v["id"].as_str().unwrap().to_owned()]);
}

// ----- URN-qualified paths and single-valued add -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urn_qualified_paths_for_enterprise_attributes() {
    let app = spawn_app().await;
    let id = app.user(JDOE).await;
    let v = patched(
        &app,
        &format!("/Users/{id}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701984"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Ops"}
        ]}),
    )
    .await;
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "701984", "department": "Ops"}));
    assert!(v["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_on_a_single_valued_attribute_overwrites_it() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "title", "value": "Lead engineer"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Eng"}
        ]}),
    )
    .await;
    assert_eq!(v["title"], "Lead engineer");
    assert_eq!(v[ENTERPRISE]["department"], "Eng");
}

// ----- path-less replace -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathless_replace_with_plain_dotted_and_urn_keys() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {
                "displayName": "X",
                "name.givenName": "Y",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Z",
                "active": false
            }}
        ]}),
    )
    .await;
    assert_eq!(v["displayName"], "X");
    assert_eq!(v["name"], json!({"formatted": "John Doe", "familyName": "Doe", "givenName": "Y"}));
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "Z", "department": "Ops"}));
    assert_eq!(v["active"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathless_replace_with_a_nested_extension_object_merges() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Eng"},
                "name": {"familyName": "Smith"}
            }}
        ]}),
    )
    .await;
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "701984", "department": "Eng"}));
    assert_eq!(v["name"], json!({"formatted": "John Doe", "familyName": "Smith", "givenName": "John"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathless_replace_with_string_boolean_manager_and_unknown_extension_keys() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {
                "active": "False",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": boss,
                "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode": "X1"
            }}
        ]}),
    )
    .await;
    assert_eq!(v["active"], json!(false));
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss}));
    assert!(!v.to_string().contains("CustomExtensionName"), "{v}");
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": ""}}
        ]}),
    )
    .await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathless_replace_as_microsoft_documents_it_for_the_flag() {
    // The body of Microsoft's "Known issues for SCIM 2.0 protocol compliance" page, including a
    // value-filter key (beyond the key shapes CLIENTS.md lists).
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "value": {
                "displayName": "Pvlo",
                "emails[type eq \"work\"].value": "TestBcwqnm@test.microsoft.com",
                "name.givenName": "Gtfd",
                "name.familyName": "Pkqf",
                "externalId": "Eqpj",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Eoob"
            }}
        ]}),
    )
    .await;
    assert_eq!(v["displayName"], "Pvlo");
    assert_eq!(v["emails"], json!([{"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": true}]));
    assert_eq!((v["name"]["givenName"].as_str(), v["name"]["familyName"].as_str()), (Some("Gtfd"), Some("Pkqf")));
    assert_eq!(v["externalId"], "Eqpj");
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "Eoob");
}

// ----- manager, in every shape -----

/// Sets up jdoe and a manager; returns (jdoe's path, manager id).
async fn with_manager(app: &TestApp) -> (String, String) {
    let (_, path) = entra_jdoe(app).await;
    let boss = app.create_user(&entra_user("boss@contoso.com", "boss")).await["id"].as_str().unwrap().to_owned();
    (path, boss)
}

/// Asserts the manager reads back as `{"value": id}` under the enterprise key, in a GET and
/// in a filter result.
async fn assert_manager(app: &TestApp, path: &str, boss: &str) {
    let v = ok_json(app.get(path).await).await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss}), "{v}");
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "701984", "the other enterprise attributes stay");
    let list = app.filter("/Users", &format!("userName eq \"{JDOE}\""), "").await;
    assert_eq!(list["Resources"][0][ENTERPRISE]["manager"], json!({"value": boss}));
}

async fn assert_no_manager(app: &TestApp, path: &str) {
    let v = ok_json(app.get(path).await).await;
    assert!(v[ENTERPRISE].get("manager").is_none(), "{v}");
    assert_eq!(v[ENTERPRISE]["employeeNumber"], "701984");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_as_a_bare_string_id() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": boss}
        ]}),
    )
    .await;
    assert_manager(&app, &path, &boss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_on_a_user_without_enterprise_attributes() {
    // A cloud-only user without employee id or department still gets its manager.
    let app = spawn_app().await;
    let id = app.user(JDOE).await;
    let boss = app.user("boss@contoso.com").await;
    let path = format!("/Users/{id}");
    let v = app
        .patch_ok(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": boss}
            ]}),
        )
        .await;
    assert_eq!(v[ENTERPRISE], json!({"manager": {"value": boss}}));
    assert!(v["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)), "{v}");
    assert_eq!(ok_json(app.get(&path).await).await, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_as_a_value_object() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": boss}}
        ]}),
    )
    .await;
    assert_manager(&app, &path, &boss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_as_a_list_with_ref_and_value() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let href = format!("{}/Users/{boss}", app.scim);
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": [{"$ref": href, "value": boss}]}
        ]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    // The complex form, with the reference the client sent.
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss, "$ref": href}), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_with_the_plain_path_manager() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "manager", "value": boss}
        ]}),
    )
    .await;
    assert_manager(&app, &path, &boss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_as_a_bare_string_in_a_create_body() {
    let app = spawn_app().await;
    let boss = app.user("boss@contoso.com").await;
    let mut body = entra_user(JDOE, "jdoe");
    body[ENTERPRISE]["manager"] = json!(boss);
    let v = app.create_user(&body).await;
    assert_eq!(v[ENTERPRISE]["manager"], json!({"value": boss}), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_cleared_with_an_empty_string() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let manager = format!("{ENTERPRISE}:manager");
    app.patch_ok(&path, &patch_op(json!([{"op": "Add", "path": manager, "value": boss}]))).await;
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": ""}
        ]}),
    )
    .await;
    assert_no_manager(&app, &path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_cleared_with_an_empty_value_object() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let manager = format!("{ENTERPRISE}:manager");
    app.patch_ok(&path, &patch_op(json!([{"op": "Add", "path": manager, "value": boss}]))).await;
    app.patch_ok(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": ""}}
        ]}),
    )
    .await;
    assert_no_manager(&app, &path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_cleared_with_remove_even_when_unset() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let manager = format!("{ENTERPRISE}:manager");
    app.patch_ok(&path, &patch_op(json!([{"op": "Add", "path": manager, "value": boss}]))).await;
    let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}
    ]});
    app.patch_ok(&path, &remove).await;
    assert_no_manager(&app, &path).await;
    // Entra removes managers that may never have been set: still 200.
    app.patch_ok(&path, &remove).await;
    assert_no_manager(&app, &path).await;
}

// ----- roles, clearing -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_encoded_role_values_are_decoded() {
    let app = spawn_app().await;
    let (id, path) = entra_jdoe(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "roles", "value": [
                {"value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}
            ]}
        ]}),
    )
    .await;
    assert_eq!(v["roles"], json!([{"value": "Admin", "display": "Admin"}]));
    let list = app.filter("/Users", "roles.value eq \"Admin\"", "").await;
    assert_eq!(resource_ids(&list), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_empty_string_and_empty_value_object_clear_an_attribute() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    for clear in [json!(null), json!(""), json!({"value": ""})] {
        app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "Boss"}]))).await;
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "title", "value": clear}]});
        let v = patched(&app, &path, &body).await;
        assert!(v.get("title").is_none(), "{clear}: {v}");
    }
}

// ----- bodies: schemas, meta, roles, values as sent -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_schema_uris_are_ignored() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["schemas"] = json!([
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
    ]);
    body["urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"] = json!({"costCode": "X1"});
    let v = app.create_user(&body).await;
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]));
    assert!(v.get("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User").is_none(), "{v}");

    // A PATCH on the unknown extension's attribute is ignored too.
    let path = format!("/Users/{}", v["id"].as_str().unwrap());
    let r = app
        .patch(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode", "value": "X2"},
                {"op": "Replace", "path": "title", "value": "Lead"}
            ]}),
        )
        .await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["title"], "Lead");

    // A group with Microsoft's ADSCIM schema.
    let r = app
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_attributes_without_their_urn_in_schemas() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
    let v = app.create_user(&body).await;
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "701984", "department": "Ops"}));
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]));
    let list = app.filter("/Users", &format!("{ENTERPRISE}:employeeNumber eq \"701984\""), "").await;
    assert_eq!(resource_ids(&list), vec![v["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_meta_and_empty_roles_in_a_create_body_are_accepted() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["meta"] = json!({"resourceType": "User", "created": "2001-01-01T00:00:00Z", "version": "W/\"42\""});
    let v = app.create_user(&body).await;
    assert_eq!(v["meta"]["resourceType"], "User");
    assert_eq!(v["meta"]["version"], "W/\"1\"", "client-sent meta is ignored");
    assert_ne!(v["meta"]["created"], "2001-01-01T00:00:00Z");
    assert!(v.get("roles").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_stored_exactly_as_sent() {
    let app = spawn_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["phoneNumbers"] =
        json!([{"type": "work", "value": "+41 (0)31 555 01 00"}, {"type": "mobile", "value": "079.555.01.01"}]);
    body["displayName"] = json!("  Jöhn   Döe ");
    let v = app.create_user(&body).await;
    assert_eq!(v["phoneNumbers"], body["phoneNumbers"]);
    assert_eq!(v["displayName"], "  Jöhn   Döe ");
    let got = ok_json(app.get(&format!("/Users/{}", v["id"].as_str().unwrap())).await).await;
    assert_eq!(got["phoneNumbers"], body["phoneNumbers"]);
}

// ----- every shape in one request -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_shape_mixed_in_one_request() {
    let app = spawn_app().await;
    let (path, boss) = with_manager(&app).await;
    let v = patched(
        &app,
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "john.doe@contoso.com"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Zurich"},
            {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "8000"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": boss},
            {"op": "Add", "path": "roles", "value": [{"value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]},
            {"op": "replace", "value": {"name.givenName": "Jon", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Eng"}},
            {"op": "Replace", "path": "title", "value": {"value": ""}},
            {"op": "Remove", "path": "phoneNumbers[type eq \"mobile\"]"}
        ]}),
    )
    .await;
    assert_eq!(v["active"], json!(false));
    assert_eq!(v["emails"], json!([{"value": "john.doe@contoso.com", "type": "work", "primary": true}]));
    assert_eq!(
        v["addresses"],
        json!([{"streetAddress": "1 Main St", "locality": "Zurich", "postalCode": "8000", "country": "CH", "type": "work"}])
    );
    assert_eq!(v[ENTERPRISE], json!({"employeeNumber": "701984", "department": "Eng", "manager": {"value": boss}}));
    assert_eq!(v["roles"], json!([{"value": "Admin", "display": "Admin"}]));
    assert_eq!(v["name"]["givenName"], "Jon");
    assert!(v.get("title").is_none(), "{v}");
    assert_eq!(v["phoneNumbers"], json!([{"value": "4255550100", "type": "work"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_operations_list_is_400() {
    let app = spawn_app().await;
    let (_, path) = entra_jdoe(&app).await;
    let r = app
        .patch(&path, &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []}))
        .await;
    assert_scim_error(r, 400, Some("invalidSyntax")).await;
}

// ----- group members -----

/// A group and `n` users; returns (group path, user ids).
async fn group_and_users(app: &TestApp, n: usize) -> (String, Vec<String>) {
    let g = app.group("Ops Team").await;
    let mut users = Vec::new();
    for i in 0..n {
        users.push(app.user(&format!("member{i}@contoso.com")).await);
    }
    (format!("/Groups/{g}"), users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_add_with_null_ref_many_per_op() {
    let app = spawn_app().await;
    let (path, users) = group_and_users(&app, 3).await;
    let value: Vec<Value> = users.iter().map(|u| json!({"$ref": null, "value": u})).collect();
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "members", "value": value}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    let mut want = users.clone();
    want.sort();
    assert_eq!(group_member_ids(&v), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removal_with_a_value_array_removes_only_those_members() {
    let app = spawn_app().await;
    let (path, users) = group_and_users(&app, 4).await;
    let all: Vec<Value> = users.iter().map(|u| json!({"$ref": null, "value": u})).collect();
    app.patch_no_content(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    let mut want = vec![users[0].clone(), users[3].clone()];
    want.sort();
    assert_eq!(group_member_ids(&v), want, "only the listed members go");
    // Removing members that are no longer in the group (a retried cycle) changes nothing.
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": users[1]}]}]}),
    )
    .await;
    assert_eq!(group_member_ids(&ok_json(app.get(&path).await).await), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removal_with_a_value_filter_path() {
    let app = spawn_app().await;
    let (path, users) = group_and_users(&app, 2).await;
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch_no_content(&path, &patch_op(json!([{"op": "add", "path": "members", "value": all}]))).await;
    app.patch_no_content(
        &format!("{path}?aadOptscim062020"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert_eq!(group_member_ids(&v), vec![users[1].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removal_without_a_value_removes_all() {
    let app = spawn_app().await;
    let (path, users) = group_and_users(&app, 2).await;
    let all: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    app.patch_no_content(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    app.patch_no_content(
        &path,
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "members"}]}),
    )
    .await;
    let v = ok_json(app.get(&path).await).await;
    assert!(v.get("members").is_none(), "{v}");
}

// ----- query strings -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aad_opt_flag_and_unknown_query_parameters_are_ignored_on_every_method() {
    let app = spawn_app().await;
    for suffix in ["?aadOptscim062020", "?aadOptscim062020&foo=bar&Unknown=", "?someday=1"] {
        let r = app.get(&format!("/Users{suffix}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{suffix}");
        let r = app.get(&format!("/Groups{suffix}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{suffix}");
        let r = app.get(&format!("/Schemas{suffix}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{suffix}");
        let r = app.get(&format!("/ServiceProviderConfig{suffix}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{suffix}");
    }
    let r = app.post("/Users?aadOptscim062020", &entra_user(JDOE, "jdoe")).await;
    let (status, v) = status_json(r).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let path = format!("/Users/{}", v["id"].as_str().unwrap());
    let r = app.get(&format!("{path}?aadOptscim062020")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = patch_op(json!([{"op": "replace", "path": "title", "value": "Lead"}]));
    let v = app.patch_ok(&format!("{path}?aadOptscim062020"), &body).await;
    assert_eq!(v["title"], "Lead");
    let r = app.put(&format!("{path}?aadOptscim062020"), &entra_user(JDOE, "jdoe")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let g = app.post("/Groups?aadOptscim062020", &json!({"displayName": "Flagged"})).await;
    let (status, g) = status_json(g).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    app.patch_no_content(
        &format!("{gpath}?aadOptscim062020"),
        &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Flagged 2"}])),
    )
    .await;
    assert_eq!(app.delete(&format!("{gpath}?aadOptscim062020")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("{path}?aadOptscim062020")).await.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&format!("{path}?aadOptscim062020")).await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_and_percent_20_as_spaces_in_filters() {
    let app = spawn_app().await;
    let (id, _) = entra_jdoe(&app).await;
    for path in [
        "/Users?filter=userName+eq+%22jdoe%40contoso.com%22",
        "/Users?filter=userName%20eq%20%22jdoe@contoso.com%22",
        "/Users?filter=userName+eq+%22jdoe@contoso.com%22&aadOptscim062020",
        "/Users?aadOptscim062020&filter=userName%20eq%20%22JDOE@contoso.com%22",
        "/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22jdoe%40contoso.com%22",
    ] {
        let v = ok_json(app.get(path).await).await;
        assert_eq!(resource_ids(&v), vec![id.clone()], "{path}");
        assert_eq!(v["totalResults"], json!(1), "{path}");
    }
    // A value with a `+` of its own stays a `+` when encoded as %2B.
    let v = app.create_user(&json!({"userName": "j+doe@contoso.com"})).await;
    let list = ok_json(app.get("/Users?filter=userName+eq+%22j%2Bdoe%40contoso.com%22").await).await;
    assert_eq!(resource_ids(&list), vec![v["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_quotes_and_spaces_in_the_filter_of_the_request_line() {
    let app = spawn_app().await;
    let (id, _) = entra_jdoe(&app).await;
    for target in [
        "/scim/v2/Users?filter=userName eq \"jdoe@contoso.com\"",
        "/scim/v2/Users?filter=userName+eq+\"jdoe@contoso.com\"",
        "/scim/v2/Users?filter=userName%20eq%20\"jdoe@contoso.com\"&aadOptscim062020",
        "/scim/v2/Users?filter=emails[type eq \"work\"].value eq \"jdoe@contoso.com\"",
    ] {
        let (status, v) = app.raw_get(target).await;
        assert_eq!(status, 200, "{target}: {v}");
        assert_eq!(resource_ids(&v), vec![id.clone()], "{target}");
    }
    let (status, v) =
        app.raw_get("/scim/v2/Groups?excludedAttributes=members&filter=displayName eq \"No group\"").await;
    assert_eq!((status, v), (200, empty_list_response()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_json_content_type_is_accepted() {
    let app = spawn_app().await;
    let r = app
        .req(Method::POST, "/Users")
        .header("content-type", "application/json")
        .body(entra_user(JDOE, "jdoe").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with(SCIM));
    let v: Value = r.json().await.unwrap();
    let body = patch_op(json!([{"op": "Replace", "path": "title", "value": "Lead"}])).to_string();
    let r = app
        .req(Method::PATCH, &format!("/Users/{}", v["id"].as_str().unwrap()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
