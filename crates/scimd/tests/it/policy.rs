//! Mandatory attributes in practice (DESIGN.md, "Tenant policy"), through the real server.
//!
//! With the reference customer's policy, a user that Entra sends without a mandatory attribute
//! (Entra leaves an unmapped or empty source attribute out) is refused with 400 `invalidValue`
//! whose detail names each missing SCIM attribute and the Entra mapping to add; everything
//! Entra sends for a fully mapped user goes through; tenants without a policy are unaffected.

use super::common;

use common::*;
use reqwest::StatusCode;
use scimd::http::HttpSettings;
use serde_json::{Value, json};

const JDOE: &str = "jdoe@contoso.com";
const WORK_EMAIL: &str = "emails[type eq \"work\"].value";
const EMPLOYEE_NUMBER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
const LEAD: &str = "— map a source attribute to each in the provisioning app's attribute mappings";

/// The detail for these missing paths, with these Entra mappings.
fn detail(missing: &[&str], mappings: &[(&str, &str)]) -> String {
    let mut d = format!("required attribute missing: {} {LEAD}", missing.join(", "));
    if !mappings.is_empty() {
        let m: Vec<String> = mappings.iter().map(|(source, path)| format!("{source} -> {path}")).collect();
        d.push_str(&format!(" (Entra ID: {})", m.join(", ")));
    }
    d
}

async fn reference_app() -> TestApp {
    spawn_app_with(HttpSettings::default(), REFERENCE_REQUIRED).await
}

/// POSTs `body` and expects the policy's refusal; returns the detail.
async fn refused(app: &TestApp, body: &Value) -> String {
    let v = assert_scim_error(app.post("/Users", body).await, 400, Some("invalidValue")).await;
    v["detail"].as_str().unwrap().to_owned()
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

async fn user_count(app: &TestApp) -> u64 {
    ok_json(app.get("/Users?count=0").await).await["totalResults"].as_u64().unwrap()
}

// ----- refusals name the attribute and the mapping -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_missing_preferred_language_and_work_email_names_both_and_their_entra_mappings() {
    let app = reference_app().await;
    let mut body = without(entra_user(JDOE, "jdoe"), "preferredLanguage");
    body.as_object_mut().unwrap().remove("emails");
    assert_eq!(
        refused(&app, &body).await,
        "required attribute missing: emails[type eq \"work\"].value, preferredLanguage — map a source attribute \
         to each in the provisioning app's attribute mappings (Entra ID: mail -> emails[type eq \"work\"].value, \
         preferredLanguage -> preferredLanguage)"
    );
    assert_eq!(user_count(&app).await, 0, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_missing_preferred_language_is_refused_naming_the_mapping() {
    let app = reference_app().await;
    let body = without(entra_user(JDOE, "jdoe"), "preferredLanguage");
    assert_eq!(
        refused(&app, &body).await,
        detail(&["preferredLanguage"], &[("preferredLanguage", "preferredLanguage")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_with_only_a_home_email_lacks_the_work_email() {
    let app = reference_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body["emails"] = json!([{"primary": true, "type": "home", "value": "john@home.example"}]);
    assert_eq!(refused(&app, &body).await, detail(&[WORK_EMAIL], &[("mail", WORK_EMAIL)]));
    // A work email without a value does not count either.
    body["emails"] = json!([{"primary": true, "type": "work"}]);
    assert_eq!(refused(&app, &body).await, detail(&[WORK_EMAIL], &[("mail", WORK_EMAIL)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_only_user_without_employee_id_is_refused_naming_the_mapping() {
    let app = reference_app().await;
    let mut body = entra_user(JDOE, "jdoe");
    body[ENTERPRISE] = json!({"department": "Ops"});
    assert_eq!(refused(&app, &body).await, detail(&[EMPLOYEE_NUMBER], &[("employeeId", EMPLOYEE_NUMBER)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reference_attribute_missing_is_named_with_its_entra_source() {
    let app = reference_app().await;
    let enterprise = format!("/{}", ENTERPRISE.replace('/', "~1"));
    // (missing path, JSON pointer of the value Entra leaves out, Entra source)
    let cases = [
        ("name.familyName", "/name/familyName".to_owned(), "surname"),
        ("name.givenName", "/name/givenName".to_owned(), "givenName"),
        (EMPLOYEE_NUMBER, format!("{enterprise}/employeeNumber"), "employeeId"),
        (WORK_EMAIL, "/emails".to_owned(), "mail"),
        ("active", "/active".to_owned(), "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")"),
    ];
    for (path, pointer, source) in cases {
        let mut body = entra_user(JDOE, "jdoe");
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
        assert!(parent.as_object_mut().unwrap().remove(key).is_some(), "{pointer}");
        assert_eq!(refused(&app, &body).await, detail(&[path], &[(source, path)]), "{path}");
    }
    // userName is required by the User schema itself: refused before the policy, naming it.
    let d = refused(&app, &without(entra_user(JDOE, "jdoe"), "userName")).await;
    assert!(d.contains("userName"), "{d}");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_missing_attribute_is_named_in_the_policys_order() {
    let app = reference_app().await;
    let d = refused(&app, &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": JDOE})).await;
    let switch = "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")";
    assert_eq!(
        d,
        detail(
            &["name.familyName", "name.givenName", EMPLOYEE_NUMBER, WORK_EMAIL, "preferredLanguage", "active"],
            &[
                ("surname", "name.familyName"),
                ("givenName", "name.givenName"),
                ("employeeId", EMPLOYEE_NUMBER),
                ("mail", WORK_EMAIL),
                ("preferredLanguage", "preferredLanguage"),
                (switch, "active"),
            ]
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_paths_without_an_entra_source_are_named_without_a_mapping() {
    let app = spawn_app_with(HttpSettings::default(), &["nickName", "name.givenName"]).await;
    let mut body = entra_user(JDOE, "jdoe");
    body["name"] = json!({"familyName": "Doe"});
    assert_eq!(refused(&app, &body).await, detail(&["nickName", "name.givenName"], &[("givenName", "name.givenName")]));
    body["name"]["givenName"] = json!("John");
    assert_eq!(refused(&app, &body).await, detail(&["nickName"], &[]));
    body["nickName"] = json!("Johnny");
    app.create_user(&body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_the_mapping_lets_the_same_user_through() {
    let app = reference_app().await;
    let body = without(entra_user(JDOE, "jdoe"), "preferredLanguage");
    refused(&app, &body).await;
    // The admin maps preferredLanguage; Entra retries with it.
    let v = app.create_user(&entra_user(JDOE, "jdoe")).await;
    assert_eq!(v["preferredLanguage"], "en-US");
    assert_eq!(user_count(&app).await, 1);
}

// ----- changes that would leave an attribute missing -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_would_clear_a_required_attribute_is_refused_and_changes_nothing() {
    let app = reference_app().await;
    let created = app.create_user(&entra_user(JDOE, "jdoe")).await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    for (op, missing, source) in [
        (json!({"op": "Replace", "path": "preferredLanguage", "value": ""}), "preferredLanguage", "preferredLanguage"),
        (json!({"op": "Remove", "path": "preferredLanguage"}), "preferredLanguage", "preferredLanguage"),
        (json!({"op": "Remove", "path": "emails[type eq \"work\"]"}), WORK_EMAIL, "mail"),
        (json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": ""}), WORK_EMAIL, "mail"),
        (json!({"op": "Replace", "path": EMPLOYEE_NUMBER, "value": {"value": ""}}), EMPLOYEE_NUMBER, "employeeId"),
        (json!({"op": "Replace", "path": "name.givenName", "value": null}), "name.givenName", "givenName"),
        (json!({"op": "replace", "value": {"name.familyName": ""}}), "name.familyName", "surname"),
    ] {
        let r = app.patch(&path, &patch_op(json!([op]))).await;
        let v = assert_scim_error(r, 400, Some("invalidValue")).await;
        assert_eq!(v["detail"], json!(detail(&[missing], &[(source, missing)])), "{op}");
    }
    assert_eq!(ok_json(app.get(&path).await).await, created, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_without_a_required_attribute_is_refused() {
    let app = reference_app().await;
    let created = app.create_user(&entra_user(JDOE, "jdoe")).await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let put = without(entra_user(JDOE, "jdoe"), "preferredLanguage");
    let v = assert_scim_error(app.put(&path, &put).await, 400, Some("invalidValue")).await;
    assert_eq!(v["detail"], json!(detail(&["preferredLanguage"], &[("preferredLanguage", "preferredLanguage")])));
    assert_eq!(ok_json(app.get(&path).await).await, created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_create_without_a_required_attribute_gets_the_same_detail() {
    let app = reference_app().await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": without(entra_user(JDOE, "jdoe"), "preferredLanguage")},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": entra_user("mary@contoso.com", "mary")}
    ]});
    let v = ok_json(app.post("/Bulk", &body).await).await;
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "400", "{v}");
    assert_eq!(ops[0]["response"]["scimType"], "invalidValue");
    assert_eq!(
        ops[0]["response"]["detail"],
        json!(detail(&["preferredLanguage"], &[("preferredLanguage", "preferredLanguage")]))
    );
    assert_eq!(ops[1]["status"], "201", "{v}");
}

// ----- what a fully mapped user goes through -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_entra_sends_for_a_fully_mapped_user_is_accepted() {
    let app = reference_app().await;
    // Test connection and match.
    let v = app.filter("/Users", "userName eq \"5a3b9c1d-2e4f-4a6b-8c7d-9e0f1a2b3c4d\"", "").await;
    assert_eq!(v, empty_list_response());
    assert_eq!(app.filter("/Users", &format!("userName eq \"{JDOE}\""), "").await, empty_list_response());

    // Create, both users (the manager first).
    let boss = app.create_user(&entra_user("boss@contoso.com", "boss")).await;
    let boss = boss["id"].as_str().unwrap().to_owned();
    let mut body = entra_user(JDOE, "jdoe");
    body[ENTERPRISE]["employeeNumber"] = json!("701985");
    let created = app.create_user(&body).await;
    let path = format!("/Users/{}", created["id"].as_str().unwrap());

    // Manager, incremental updates, roles, a UPN change.
    for ops in [
        json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": boss}]),
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "john.doe@contoso.com"},
            {"op": "Replace", "path": "name.familyName", "value": "Doe-Meier"},
            {"op": "Replace", "path": "preferredLanguage", "value": "de-CH"},
            {"op": "Replace", "path": EMPLOYEE_NUMBER, "value": "701999"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Zurich"},
            {"op": "Remove", "path": "title"}
        ]),
        json!([{"op": "Add", "path": "roles", "value": [{"value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]),
        json!([{"op": "Replace", "path": "userName", "value": "john.doe@contoso.com"}]),
        json!([{"op": "replace", "value": {"displayName": "John Doe-Meier", "name.givenName": "Jon", EMPLOYEE_NUMBER: "702000"}}]),
    ] {
        app.patch_ok(&path, &patch_op(ops)).await;
    }

    // Disable (active false counts as present), re-enable, disable again.
    for value in [json!("False"), json!("True"), json!(false)] {
        let v = app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": value}]))).await;
        assert_eq!(v["active"], json!(value == json!("True")));
    }
    let got = ok_json(app.get(&path).await).await;
    assert_eq!(got["userName"], "john.doe@contoso.com");
    assert_eq!(got[ENTERPRISE]["manager"], json!({"value": boss}));
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "702000");
    assert_eq!(got["active"], json!(false));

    // A clear of an optional attribute is fine; the hard delete too.
    app.patch_ok(&path, &patch_op(json!([{"op": "Replace", "path": "displayName", "value": ""}]))).await;
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_scim_error(app.get(&path).await, 404, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_not_subject_to_the_user_policy() {
    let app = reference_app().await;
    let g = app.group("Ops Team").await;
    let u = app.create_user(&entra_user(JDOE, "jdoe")).await["id"].as_str().unwrap().to_owned();
    app.patch_no_content(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": u}]}])),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_a_policy_accepts_what_the_reference_policy_refuses() {
    let app = spawn_app().await;
    let v = app.create_user(&json!({"userName": "minimal@contoso.com"})).await;
    assert_eq!(v["userName"], "minimal@contoso.com");
    let mut body = without(entra_user(JDOE, "jdoe"), "preferredLanguage");
    body.as_object_mut().unwrap().remove("emails");
    body[ENTERPRISE] = json!({"department": "Ops"});
    let v = app.create_user(&body).await;
    let path = format!("/Users/{}", v["id"].as_str().unwrap());
    let v = app
        .patch_ok(
            &path,
            &patch_op(json!([{"op": "Remove", "path": "name.givenName"}, {"op": "Remove", "path": "active"}])),
        )
        .await;
    assert!(v["name"].get("givenName").is_none() && v.get("active").is_none(), "{v}");
    // The same tenant store, another tenant with the policy, refuses the same body.
    let (_, strict) = add_tenant(&app.store, "fabrikam", REFERENCE_REQUIRED).await;
    let r = app.req_as(&strict, reqwest::Method::POST, "/Users").header("content-type", SCIM).body(body.to_string());
    let v = assert_scim_error(r.send().await.unwrap(), 400, Some("invalidValue")).await;
    assert!(v["detail"].as_str().unwrap().starts_with("required attribute missing: "), "{v}");
}
