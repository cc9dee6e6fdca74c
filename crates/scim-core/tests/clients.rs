//! Every PATCH and body shape of CLIENTS.md, each in its own test with the client's exact body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use scim_core::patch::{self, MemberDelta, PatchRequest};
use scim_core::resource::{self, Member, UnknownAttributes};
use scim_core::{Filter, Registry, ScimType, eval};
use serde_json::{Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn registry() -> Registry {
    Registry::standard()
}

/// The typical Entra create body of CLIENTS.md.
fn entra_create_body() -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
     "externalId":"jdoe","userName":"jdoe@contoso.com","active":true,"displayName":"John Doe",
     "title":"Site engineer","preferredLanguage":"en-US",
     "emails":[{"primary":true,"type":"work","value":"jdoe@contoso.com"}],
     "meta":{"resourceType":"User"},
     "name":{"formatted":"John Doe","familyName":"Doe","givenName":"John"},
     "addresses":[{"type":"work","streetAddress":"1 Main St","locality":"Bern","postalCode":"3000","country":"CH"}],
     "phoneNumbers":[{"type":"work","value":"4255550100"},{"type":"mobile","value":"4255550101"}],
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Ops"},
     "roles":[]})
}

fn user() -> Value {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    resource::ingest(&def, &entra_create_body(), UnknownAttributes::Drop).unwrap().resource
}

fn patch_user(user: &Value, body: Value) -> Value {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    let req = PatchRequest::parse(&body, &Default::default()).unwrap();
    patch::apply(&def, user, &req).unwrap_or_else(|e| panic!("{e}")).resource
}

fn patch_user_err(user: &Value, body: Value) -> scim_core::ScimError {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    match PatchRequest::parse(&body, &Default::default()) {
        Err(e) => e,
        Ok(req) => patch::apply(&def, user, &req).expect_err("the PATCH should fail"),
    }
}

fn patch_group(body: Value) -> MemberDelta {
    let reg = registry();
    let def = reg.resource("Group").unwrap();
    let group = resource::ingest(&def, &json!({"displayName":"Sales"}), UnknownAttributes::Drop).unwrap().resource;
    let req = PatchRequest::parse(&body, &Default::default()).unwrap();
    let out = patch::apply(&def, &group, &req).unwrap();
    assert!(out.resource.get("members").is_none(), "members never enter the group document");
    out.members
}

fn ops(ops: Value) -> Value {
    json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":ops})
}

fn user_matches(user: &Value, filter: &str) -> bool {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    eval::matches(&def, &Filter::parse(filter).unwrap(), user).unwrap()
}

#[test]
fn entra_create_body_is_accepted_and_stored_as_sent() {
    let u = user();
    assert_eq!(u["userName"], "jdoe@contoso.com");
    assert_eq!(u["phoneNumbers"][0]["value"], "4255550100", "phone numbers stay as typed");
    assert_eq!(u[ENT]["employeeNumber"], "701984");
    assert!(u.get("meta").is_none(), "client-sent meta is ignored");
    assert!(u.get("roles").is_none(), "roles: [] is accepted and means no roles");
    assert_eq!(u["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT]));
}

#[test]
fn unknown_schema_uri_in_schemas_is_ignored() {
    let reg = registry();
    let def = reg.resource("Group").unwrap();
    let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName":"Group1DisplayName","externalId":"60e4ae0a","members":[]});
    let g = resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap();
    assert_eq!(g.resource["displayName"], "Group1DisplayName");
    assert_eq!(g.members, Some(vec![]));
}

#[test]
fn extension_attributes_without_the_urn_in_schemas_are_kept() {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@b.c",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"1"}});
    let u = resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap().resource;
    assert_eq!(u[ENT]["employeeNumber"], "1");
    assert_eq!(u["schemas"][1], ENT);
}

#[test]
fn pascal_case_ops_are_accepted() {
    let u = patch_user(
        &user(),
        ops(
            json!([{"op":"Replace","path":"displayName","value":"Johnny"},{"op":"Add","path":"nickName","value":"JJ"}]),
        ),
    );
    assert_eq!(u["displayName"], "Johnny");
    assert_eq!(u["nickName"], "JJ");
    let u = patch_user(&u, ops(json!([{"op":"Remove","path":"nickName"}])));
    assert!(u.get("nickName").is_none());
}

#[test]
fn operations_key_is_case_insensitive() {
    let u = patch_user(&user(), json!({"operations":[{"op":"replace","path":"title","value":"Boss"}]}));
    assert_eq!(u["title"], "Boss");
}

#[test]
fn disable_with_string_false_pascal_case() {
    let u = patch_user(&user(), ops(json!([{"op":"Replace","path":"active","value":"False"}])));
    assert_eq!(u["active"], false);
    assert!(user_matches(&u, "active eq false"), "a disabled user is still found by filters");
}

#[test]
fn disable_with_string_false_lower_case() {
    let u = patch_user(&user(), ops(json!([{"op":"replace","path":"active","value":"false"}])));
    assert_eq!(u["active"], false);
}

#[test]
fn disable_with_json_boolean() {
    let u = patch_user(&user(), ops(json!([{"op":"replace","path":"active","value":false}])));
    assert_eq!(u["active"], false);
    let u = patch_user(&u, ops(json!([{"op":"Replace","path":"active","value":"True"}])));
    assert_eq!(u["active"], true);
}

#[test]
fn okta_pathless_deactivate() {
    let u = patch_user(&user(), ops(json!([{"op":"replace","value":{"active":false}}])));
    assert_eq!(u["active"], false);
}

#[test]
fn string_boolean_inside_complex_value() {
    let u = patch_user(
        &user(),
        ops(json!([{"op":"Add","path":"emails","value":[{"type":"home","value":"j@home.example","primary":"True"}]}])),
    );
    let emails = u["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[1]["primary"], true);
    assert_eq!(emails[0]["primary"], false, "primary: true on one element clears it on the others");
}

#[test]
fn string_boolean_in_filter_literal_matches_boolean() {
    let u = patch_user(
        &user(),
        ops(json!([{"op":"Add","path":"roles","value":[{"value":"Admin","display":"Admin","primary":true}]}])),
    );
    assert!(user_matches(&u, r#"roles[primary eq "True"].value eq "Admin""#));
    let u = patch_user(
        &u,
        ops(json!([{"op":"Replace","path":"roles[primary eq \"True\"].display","value":"Administrator"}])),
    );
    assert_eq!(u["roles"][0]["display"], "Administrator");
}

#[test]
fn work_email_replace_keeps_other_emails() {
    let u = patch_user(
        &user(),
        ops(json!([{"op":"Add","path":"emails","value":[{"type":"home","value":"j@home.example"}]}])),
    );
    let u = patch_user(
        &u,
        ops(json!([{"op":"Replace","path":"emails[type eq \"work\"].value","value":"john@contoso.com"}])),
    );
    let emails = u["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0]["value"], "john@contoso.com");
    assert_eq!(emails[0]["type"], "work");
    assert_eq!(emails[1]["value"], "j@home.example");
}

#[test]
fn value_filter_path_creates_missing_element() {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    let bare = resource::ingest(&def, &json!({"userName":"x@y.z"}), UnknownAttributes::Drop).unwrap().resource;
    let u = patch_user(&bare, ops(json!([{"op":"Add","path":"emails[type eq \"work\"].value","value":"x@y.z"}])));
    assert_eq!(u["emails"], json!([{"value":"x@y.z","type":"work"}]));
    let u = patch_user(
        &u,
        ops(json!([{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"+41 79 000 00 00"}])),
    );
    assert_eq!(u["phoneNumbers"], json!([{"value":"+41 79 000 00 00","type":"mobile"}]));
}

#[test]
fn several_ops_on_work_address_land_in_one_element() {
    let reg = registry();
    let def = reg.resource("User").unwrap();
    let bare = resource::ingest(&def, &json!({"userName":"x@y.z"}), UnknownAttributes::Drop).unwrap().resource;
    let u = patch_user(
        &bare,
        ops(json!([
            {"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"},
            {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Bern"},
            {"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"3000"},
            {"op":"Add","path":"addresses[type eq \"work\"].country","value":"CH"}
        ])),
    );
    assert_eq!(
        u["addresses"],
        json!([{"streetAddress":"1 Main St","locality":"Bern","postalCode":"3000","country":"CH","type":"work"}])
    );
}

#[test]
fn urn_qualified_paths() {
    let u = patch_user(
        &user(),
        ops(json!([
            {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"42"},
            {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Sales"},
            {"op":"Replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:title","value":"Chief"}
        ])),
    );
    assert_eq!(u[ENT]["employeeNumber"], "42");
    assert_eq!(u[ENT]["department"], "Sales");
    assert_eq!(u["title"], "Chief");
}

#[test]
fn add_on_single_valued_attribute_overwrites() {
    let u = patch_user(&user(), ops(json!([{"op":"Add","path":"displayName","value":"J. Doe"}])));
    assert_eq!(u["displayName"], "J. Doe");
}

#[test]
fn pathless_replace_with_plain_dotted_urn_keys() {
    let u = patch_user(
        &user(),
        ops(json!([{"op":"replace","value":{
            "displayName":"X",
            "name.givenName":"Y",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Z",
            "active":false}}])),
    );
    assert_eq!(u["displayName"], "X");
    assert_eq!(u["name"]["givenName"], "Y");
    assert_eq!(u["name"]["familyName"], "Doe", "the other name parts stay");
    assert_eq!(u[ENT]["employeeNumber"], "Z");
    assert_eq!(u["active"], false);
}

#[test]
fn pathless_replace_with_nested_extension_object_merges() {
    let u = patch_user(
        &user(),
        ops(json!([{"op":"replace","value":{
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Finance"},
            "name":{"givenName":"Jonathan"}}}])),
    );
    assert_eq!(u[ENT]["department"], "Finance");
    assert_eq!(u[ENT]["employeeNumber"], "701984", "nested objects merge");
    assert_eq!(u["name"]["givenName"], "Jonathan");
    assert_eq!(u["name"]["familyName"], "Doe");
}

#[test]
fn attribute_names_are_case_insensitive() {
    let u = patch_user(
        &user(),
        ops(json!([
            {"op":"Add","path":"addresses[type eq \"other\"].Formatted","value":"Somewhere 1"},
            {"op":"Replace","path":"DISPLAYNAME","value":"Upper"},
            {"op":"Replace","path":"Name.GivenName","value":"Jo"}
        ])),
    );
    assert_eq!(u["addresses"][1], json!({"formatted":"Somewhere 1","type":"other"}));
    assert_eq!(u["displayName"], "Upper");
    assert_eq!(u["name"]["givenName"], "Jo");
}

const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";

#[test]
fn manager_as_bare_string_id() {
    let u =
        patch_user(&user(), ops(json!([{"op":"Add","path":MANAGER,"value":"26118915-6090-4610-87e4-49d8ca9f808d"}])));
    assert_eq!(u[ENT]["manager"], json!({"value":"26118915-6090-4610-87e4-49d8ca9f808d"}));
}

#[test]
fn manager_as_value_object() {
    let u = patch_user(&user(), ops(json!([{"op":"Replace","path":MANAGER,"value":{"value":"m-1"}}])));
    assert_eq!(u[ENT]["manager"], json!({"value":"m-1"}));
}

#[test]
fn manager_as_list_with_ref() {
    let u =
        patch_user(&user(), ops(json!([{"op":"Add","path":MANAGER,"value":[{"$ref":"../Users/m-2","value":"m-2"}]}])));
    assert_eq!(u[ENT]["manager"], json!({"value":"m-2","$ref":"../Users/m-2"}));
}

#[test]
fn manager_by_plain_path() {
    let u = patch_user(&user(), ops(json!([{"op":"Add","path":"manager","value":"m-3"}])));
    assert_eq!(u[ENT]["manager"], json!({"value":"m-3"}));
}

#[test]
fn manager_cleared_by_empty_string_empty_value_or_remove() {
    let with = patch_user(&user(), ops(json!([{"op":"Add","path":MANAGER,"value":"m-1"}])));
    for clear in [
        json!([{"op":"Replace","path":MANAGER,"value":""}]),
        json!([{"op":"Replace","path":MANAGER,"value":{"value":""}}]),
        json!([{"op":"Remove","path":MANAGER}]),
        json!([{"op":"remove","path":MANAGER,"value":[{"value":"m-1"}]}]),
    ] {
        let u = patch_user(&with, ops(clear.clone()));
        assert!(u[ENT].get("manager").is_none(), "{clear} should clear the manager: {u}");
        assert_eq!(u[ENT]["employeeNumber"], "701984");
    }
}

#[test]
fn remove_manager_that_is_not_set_is_a_no_op() {
    let u = patch_user(&user(), ops(json!([{"op":"Remove","path":MANAGER}])));
    assert_eq!(u, user());
}

#[test]
fn roles_as_json_encoded_strings() {
    let u = patch_user(
        &user(),
        ops(
            json!([{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"27ae5db5-9a4a-4d43-8b1f-7f5e5c7b0a1e\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]),
        ),
    );
    assert_eq!(u["roles"], json!([{"value":"Admin","display":"Admin"}]));
}

/// Regression (found by the `patch_apply` fuzz target): a role whose string decoded to an
/// object with a number for `value` was stored as `{"value": 4e44}`, which no PUT could send back.
#[test]
fn a_json_encoded_role_whose_inner_value_is_not_a_string_stays_the_string_it_was() {
    let sent = "{\"ivaleud\":\"2\",\"value\":4e44}";
    let u = patch_user(&user(), ops(json!([{"op":"Add","path":"roles","value":[{"valuE":sent}]}])));
    assert_eq!(u["roles"], json!([{"value":sent}]));
    let reg = registry();
    let def = reg.resource("User").unwrap();
    let again = resource::ingest(&def, &u, UnknownAttributes::Drop).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.resource, u);
    // A non-string display or type is left out, the string value still decodes.
    let mixed = "{\"value\":\"Admin\",\"displayName\":7,\"type\":[1]}";
    let u = patch_user(&user(), ops(json!([{"op":"Add","path":"roles","value":[{"value":mixed}]}])));
    assert_eq!(u["roles"], json!([{"value":"Admin"}]));
}

#[test]
fn null_empty_string_and_empty_value_clear_attributes() {
    let u = patch_user(
        &user(),
        ops(json!([
            {"op":"Replace","path":"title","value":""},
            {"op":"Replace","path":"displayName","value":null},
            {"op":"Replace","path":"name.formatted","value":{"value":""}},
            {"op":"Replace","path":"preferredLanguage","value":{"value":""}}
        ])),
    );
    assert!(u.get("title").is_none());
    assert!(u.get("displayName").is_none());
    assert!(u["name"].get("formatted").is_none());
    assert!(u.get("preferredLanguage").is_none());
}

#[test]
fn gallery_null_update_test_empties_attributes() {
    let u = patch_user(&user(), ops(json!([{"op":"Replace","value":{"title":"","nickName":""}}])));
    assert!(u.get("title").is_none());
    let u = patch_user(&u, ops(json!([{"op":"Replace","value":{"displayName":null}}])));
    assert!(u.get("displayName").is_none());
}

#[test]
fn empty_operations_is_refused() {
    let e = patch_user_err(&user(), ops(json!([])));
    assert_eq!(e.status, 400);
}

#[test]
fn preview_multiple_ops_on_same_and_different_attributes() {
    let u = patch_user(
        &user(),
        ops(json!([
            {"op":"Replace","path":"displayName","value":"A"},
            {"op":"Replace","path":"displayName","value":"B"},
            {"op":"Add","path":"emails[type eq \"work\"].value","value":"b@contoso.com"},
            {"op":"Replace","path":"name.familyName","value":"Roe"},
            {"op":"Remove","path":"title"}
        ])),
    );
    assert_eq!(u["displayName"], "B");
    assert_eq!(u["emails"][0]["value"], "b@contoso.com");
    assert_eq!(u["name"]["familyName"], "Roe");
    assert!(u.get("title").is_none());
}

#[test]
fn update_username() {
    let u = patch_user(&user(), ops(json!([{"op":"Replace","path":"userName","value":"new@contoso.com"}])));
    assert_eq!(u["userName"], "new@contoso.com");
}

#[test]
fn group_add_members_many_per_op_with_null_ref() {
    let d = patch_group(ops(
        json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1"},{"$ref":null,"value":"u2"}]}]),
    ));
    assert_eq!(
        d.add,
        vec![
            Member { value: "u1".into(), kind: None, display: None },
            Member { value: "u2".into(), kind: None, display: None }
        ]
    );
    assert!(d.remove.is_empty() && !d.remove_all);
}

#[test]
fn group_remove_with_value_array_removes_only_those() {
    let d = patch_group(ops(json!([{"op":"Remove","path":"members","value":[{"value":"u1"}]}])));
    assert_eq!(d.remove, vec!["u1".to_owned()]);
    assert!(!d.remove_all, "naive servers wipe the group here");
}

#[test]
fn group_remove_with_value_filter_path() {
    let d = patch_group(ops(json!([{"op":"remove","path":"members[value eq \"u7\"]"}])));
    assert_eq!(d.remove, vec!["u7".to_owned()]);
    assert!(!d.remove_all);
}

#[test]
fn group_remove_members_without_value_removes_all() {
    let d = patch_group(ops(json!([{"op":"remove","path":"members"}])));
    assert!(d.remove_all);
}

#[test]
fn group_replace_members_is_remove_all_then_add() {
    let d = patch_group(ops(json!([{"op":"replace","path":"members","value":[{"value":"u9"}]}])));
    assert!(d.remove_all);
    assert_eq!(d.add, vec![Member { value: "u9".into(), kind: None, display: None }]);
}

#[test]
fn group_add_then_remove_same_member_in_one_request_cancels() {
    let d = patch_group(ops(json!([
        {"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2"}]},
        {"op":"Remove","path":"members","value":[{"value":"u1"}]}
    ])));
    assert_eq!(d.add, vec![Member { value: "u2".into(), kind: None, display: None }]);
    assert_eq!(d.remove, vec!["u1".to_owned()]);
}

#[test]
fn group_rename() {
    let reg = registry();
    let def = reg.resource("Group").unwrap();
    let group = resource::ingest(&def, &json!({"displayName":"Sales"}), UnknownAttributes::Drop).unwrap().resource;
    let req = PatchRequest::parse(
        &ops(json!([{"op":"Replace","path":"displayName","value":"Sales EU"}])),
        &Default::default(),
    )
    .unwrap();
    let out = patch::apply(&def, &group, &req).unwrap();
    assert_eq!(out.resource["displayName"], "Sales EU");
    assert!(out.changed);
}

#[test]
fn okta_group_push_remove_member_by_filter() {
    let d = patch_group(ops(json!([{"op":"remove","path":"members[value eq \"00u1\"]"}])));
    assert_eq!(d.remove, vec!["00u1".to_owned()]);
}

#[test]
fn test_connection_filters_parse() {
    for f in [
        r#"userName eq "0f6c0a4e-4b5d-4b4e-9a1e-6a6f5c0c5d3e""#,
        r#"displayName eq "cd4e1b65-7c1b-4d6b-8d2e-1f5e2e0e2b8c""#,
        r#"externalId eq "jdoe""#,
        r#"emails[type eq "work"].value eq "jdoe@contoso.com""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        r#"id eq "g1" and members eq "u1""#,
    ] {
        Filter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn entra_matching_filters_find_the_user() {
    let u = user();
    assert!(user_matches(&u, r#"userName eq "JDOE@contoso.com""#), "userName is case-insensitive");
    assert!(user_matches(&u, r#"externalId eq "jdoe""#));
    assert!(!user_matches(&u, r#"externalId eq "JDOE""#), "externalId is case-exact");
    assert!(user_matches(&u, r#"emails[type eq "work"].value eq "jdoe@contoso.com""#));
    assert!(user_matches(
        &u,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
    ));
}

#[test]
fn readonly_attribute_in_path_is_mutability() {
    let e = patch_user_err(&user(), ops(json!([{"op":"replace","path":"id","value":"x"}])));
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
}

#[test]
fn clearing_the_work_email_value_removes_the_work_email() {
    let u = patch_user(&user(), ops(json!([{"op":"Replace","path":"emails[type eq \"work\"].value","value":""}])));
    assert!(u.get("emails").is_none(), "an email without an address is no email: {u}");
    let u = patch_user(
        &user(),
        ops(json!([{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":null}])),
    );
    assert_eq!(u["phoneNumbers"], json!([{"value":"4255550100","type":"work"}]));
}
