//! Schemas (/Schemas, /ResourceTypes, custom extensions), ingest rules, projection, sorting and
//! the tenant policy of mandatory attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;

use scim_core::policy::RequiredPaths;
use scim_core::project::Projection;
use scim_core::resource::{self, UnknownAttributes};
use scim_core::{AttrPath, AttrType, Mutability, Registry, Returned, Schema, ScimType, Uniqueness, eval};
use serde_json::{Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn ingest(reg: &Registry, rt: &str, body: Value) -> Value {
    let def = reg.resource(rt).unwrap();
    resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap_or_else(|e| panic!("{e}")).resource
}

#[test]
fn user_schema_has_every_rfc_attribute_with_characteristics() {
    let reg = Registry::standard();
    let user = reg.schema("urn:ietf:params:scim:schemas:core:2.0:User").unwrap();
    let names: Vec<&str> = user.attributes.iter().map(|a| a.name.as_str()).collect();
    for n in [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    let user_name = user.attribute("USERNAME").unwrap();
    assert_eq!(user_name.name, "userName", "lookups are case-insensitive and give the schema's spelling");
    assert!(user_name.required);
    assert!(!user_name.case_exact);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);
    let password = user.attribute("password").unwrap();
    assert_eq!(password.returned, Returned::Never);
    assert_eq!(password.mutability, Mutability::WriteOnly);
    let groups = user.attribute("groups").unwrap();
    assert_eq!(groups.mutability, Mutability::ReadOnly);
    let emails = user.attribute("emails").unwrap();
    assert!(emails.multi_valued);
    assert_eq!(emails.sub("type").unwrap().canonical_values, vec!["work", "home", "other"]);
    assert_eq!(emails.sub("primary").unwrap().ty, AttrType::Boolean);
    let ent = reg.schema(ENT).unwrap();
    assert_eq!(ent.attribute("manager").unwrap().sub("value").unwrap().ty, AttrType::String);
}

#[test]
fn schema_json_round_trips_through_rfc7643_section7_form() {
    let reg = Registry::standard();
    for s in reg.schemas() {
        let doc = s.to_json(Some(&format!("https://h/scim/v2/Schemas/{}", s.id)));
        assert_eq!(doc["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:Schema");
        assert_eq!(doc["meta"]["resourceType"], "Schema");
        let back = Schema::from_json(&doc).unwrap();
        assert_eq!(&back, s, "{} does not round-trip", s.id);
    }
    let user = reg.schema("urn:ietf:params:scim:schemas:core:2.0:User").unwrap().to_json(None);
    let un = &user["attributes"][0];
    assert_eq!(un["name"], "userName");
    assert_eq!(un["type"], "string");
    assert_eq!(un["multiValued"], false);
    assert_eq!(un["required"], true);
    assert_eq!(un["caseExact"], false);
    assert_eq!(un["mutability"], "readWrite");
    assert_eq!(un["returned"], "default");
    assert_eq!(un["uniqueness"], "server");
}

#[test]
fn resource_types_render_with_extensions() {
    let reg = Registry::standard();
    let user = reg.resource_types().iter().find(|r| r.name == "User").unwrap().to_json(None);
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], "urn:ietf:params:scim:schemas:core:2.0:User");
    assert_eq!(user["schemaExtensions"], json!([{"schema": ENT, "required": false}]));
    assert_eq!(user["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ResourceType");
}

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";

fn with_custom_extension() -> Registry {
    let mut reg = Registry::standard();
    reg.add_schema_json(&json!({
        "id": CUSTOM,
        "name": "ContosoUser",
        "description": "Contoso's custom attributes",
        "attributes": [
            {"name": "costCode", "type": "string", "multiValued": false, "required": false,
             "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
            {"name": "badgeNumber", "type": "integer"},
            {"name": "hiredOn", "type": "dateTime"},
            {"name": "sites", "type": "complex", "multiValued": true,
             "subAttributes": [{"name": "value", "type": "string"}, {"name": "primary", "type": "boolean"}]}
        ]
    }))
    .unwrap();
    reg.extend("User", CUSTOM, false).unwrap();
    reg
}

#[test]
fn custom_extension_from_json_document_is_usable_everywhere() {
    let reg = with_custom_extension();
    let def = reg.resource("User").unwrap();
    let u = ingest(
        &reg,
        "User",
        json!({"userName": "a@b.c", CUSTOM: {"COSTCODE": "CC-1", "badgeNumber": 17, "hiredOn": "2024-02-01T00:00:00Z"}}),
    );
    assert_eq!(u[CUSTOM], json!({"costCode": "CC-1", "badgeNumber": 17, "hiredOn": "2024-02-01T00:00:00Z"}));
    assert_eq!(u["schemas"][1], CUSTOM);
    let f = scim_core::Filter::parse(&format!("{CUSTOM}:badgeNumber gt 10")).unwrap();
    assert!(eval::matches(&def, &f, &u).unwrap());
    let rt = reg.resource_types().iter().find(|r| r.name == "User").unwrap().to_json(None);
    assert_eq!(rt["schemaExtensions"][1]["schema"], CUSTOM);
}

#[test]
fn custom_extension_documents_are_validated() {
    let mut reg = Registry::standard();
    assert!(reg.add_schema_json(&json!({"id": "not-a-urn", "attributes": []})).is_err());
    assert!(reg.add_schema_json(&json!({"id": CUSTOM, "attributes": [{"name": "bad name"}]})).is_err());
    assert!(reg.add_schema_json(&json!({"id": CUSTOM, "attributes": [{"name": "x", "type": "colour"}]})).is_err());
    assert!(reg.extend("User", "urn:nope", false).is_err());
}

#[test]
fn ingest_coerces_types_and_canonical_values() {
    let reg = Registry::standard();
    let u = ingest(
        &reg,
        "User",
        json!({"UserName": "x@y.z", "active": "True", "emails": [{"value": "x@y.z", "type": "Work", "primary": "true"}],
               "id": "client-chosen", "groups": [{"value": "g"}], "unknownThing": 1,
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42"}),
    );
    assert_eq!(u["userName"], "x@y.z");
    assert_eq!(u["active"], true);
    assert_eq!(u["emails"], json!([{"value": "x@y.z", "type": "work", "primary": true}]));
    assert!(u.get("id").is_none() && u.get("groups").is_none() && u.get("unknownThing").is_none());
    assert_eq!(u[ENT]["employeeNumber"], "42");
}

/// RFC 7643 §2.3: the JSON type is part of an attribute's type. Only the CLIENTS.md quirks
/// coerce (the manager as a bare id or a one-element list, booleans as "True"/"False",
/// `{"value": ""}` to clear); every other wrong type is refused, naming the attribute, the type
/// it needs and what was sent. These were all coerced and stored before.
#[test]
fn wrong_json_types_are_refused_not_coerced() {
    let reg = Registry::standard();
    let user = reg.resource("User").unwrap();
    let group = reg.resource("Group").unwrap();
    let cases = [
        (&user, json!({"userName": ["a"]}), "userName", "a list"),
        (&user, json!({"userName": 7}), "userName", "a number"),
        (&user, json!({"userName": "a", "title": true}), "title", "a boolean"),
        (&user, json!({"userName": "a", "title": {"value": "Boss"}}), "title", "an object"),
        (&user, json!({"userName": "a", "name": {"givenName": 5}}), "name.givenName", "a number"),
        (&user, json!({"userName": "a", "preferredLanguage": ["en"]}), "preferredLanguage", "a list"),
        (&user, json!({"userName": "a", "externalId": 12}), "externalId", "a number"),
        (&user, json!({"userName": "a", ENT: {"employeeNumber": 701984}}), "employeeNumber", "a number"),
        (&user, json!({"userName": "a", "emails": "a@b.c"}), "emails", "a string"),
        (&user, json!({"userName": "a", "emails": ["a@b.c"]}), "emails", "a string"),
        (&user, json!({"userName": "a", "roles": "Admin"}), "roles", "a string"),
        (&group, json!({"displayName": 5}), "displayName", "a number"),
        (&group, json!({"displayName": "g", "members": ["u1"]}), "members", "a string"),
        (&group, json!({"displayName": "g", "members": "u1"}), "members", "a string"),
    ];
    for (def, body, attr, sent) in cases {
        let e = resource::ingest(def, &body, UnknownAttributes::Drop).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{body}: {e}");
        assert!(e.detail.contains(attr) && e.detail.contains(sent), "{body}: {}", e.detail);
    }
    // The documented quirks still coerce.
    let u = ingest(
        &reg,
        "User",
        json!({"userName": "a", "active": "False", "title": {"value": ""},
               ENT: {"manager": "m1"}}),
    );
    assert_eq!((u["active"].clone(), u.get("title")), (json!(false), None));
    assert_eq!(u[ENT]["manager"], json!({"value": "m1"}));
    let u = ingest(&reg, "User", json!({"userName": "a", ENT: {"manager": [{"value": "m2"}]}}));
    assert_eq!(u[ENT]["manager"], json!({"value": "m2"}));
}

/// Limits are enforced while reading, and de-duplication is linear: 40,000 members or 20,000
/// emails in one body are refused at once (they froze the server for seconds before).
#[test]
fn huge_member_and_value_lists_are_refused_while_reading() {
    let reg = Registry::standard();
    let group = reg.resource("Group").unwrap();
    let user = reg.resource("User").unwrap();
    let members: Vec<Value> = (0..40_000).map(|i| json!({"value": format!("u{i}")})).collect();
    let e = resource::ingest(&group, &json!({"displayName": "g", "members": members}), UnknownAttributes::Drop)
        .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::TooMany), "{e}");
    let emails: Vec<Value> = (0..20_000).map(|i| json!({"value": format!("u{i}@x.y")})).collect();
    let e = resource::ingest(&user, &json!({"userName": "a", "emails": emails}), UnknownAttributes::Drop).unwrap_err();
    assert!(e.detail.contains("limit"), "{e}");
    // Within the limit, duplicates are dropped and the first mention wins.
    let mut members: Vec<Value> = (0..10_000).map(|i| json!({"value": format!("u{}", i % 5_000)})).collect();
    members[5_000] = json!({"value": "u0", "display": "second mention"});
    let g =
        resource::ingest(&group, &json!({"displayName": "g", "members": members}), UnknownAttributes::Drop).unwrap();
    let ms = g.members.unwrap();
    assert_eq!((ms.len(), ms[0].display.as_deref()), (5_000, None));
}

#[test]
fn ingest_rejects_wrong_types_and_missing_required() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let err = |body: Value| resource::ingest(&def, &body, UnknownAttributes::Drop).unwrap_err();
    let e = err(json!({"displayName": "x"}));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    assert!(e.detail.contains("userName"), "{}", e.detail);
    assert_eq!(err(json!({"userName": "x", "active": "maybe"})).scim_type, Some(ScimType::InvalidValue));
    assert_eq!(err(json!({"userName": "x", "name": 5})).scim_type, Some(ScimType::InvalidValue));
    assert_eq!(
        err(json!({"userName": "x", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}))
            .scim_type,
        Some(ScimType::InvalidValue)
    );
    assert_eq!(err(json!([1, 2])).scim_type, Some(ScimType::InvalidSyntax));
    let strict = resource::ingest(&def, &json!({"userName": "x", "shoeSize": 44}), UnknownAttributes::Reject);
    assert_eq!(strict.unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
}

fn user_doc(reg: &Registry) -> Value {
    let mut u = ingest(
        reg,
        "User",
        json!({"userName": "bjensen", "password": "secret", "name": {"givenName": "Barbara", "familyName": "Jensen"},
               "emails": [{"value": "b@example.com", "type": "work"}], ENT: {"employeeNumber": "7"}}),
    );
    let m = u.as_object_mut().unwrap();
    m.insert("id".into(), json!("2819c223"));
    m.insert("meta".into(), json!({"resourceType": "User", "version": "W/\"1\""}));
    u
}

#[test]
fn password_is_never_returned_and_id_always_is() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let u = user_doc(&reg);
    let all = Projection::all().apply(&def, &u);
    assert!(all.get("password").is_none());
    assert_eq!(all["id"], "2819c223");
    let p = Projection::new(&def, Some("password,userName"), None).unwrap().apply(&def, &u);
    assert!(p.get("password").is_none());
    assert_eq!(p["id"], "2819c223");
    assert_eq!(p["userName"], "bjensen");
    assert!(p.get("name").is_none() && p.get("meta").is_none());
    assert!(p.get("schemas").is_some());
}

#[test]
fn attributes_selects_sub_attributes_and_extension_paths() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let u = user_doc(&reg);
    let p = Projection::new(
        &def,
        Some("name.givenName, emails.value, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
        None,
    )
    .unwrap()
    .apply(&def, &u);
    assert_eq!(p["name"], json!({"givenName": "Barbara"}));
    assert_eq!(p["emails"], json!([{"value": "b@example.com"}]));
    assert_eq!(p[ENT], json!({"employeeNumber": "7"}));
    let whole = Projection::new(&def, Some(ENT), None).unwrap().apply(&def, &u);
    assert_eq!(whole[ENT], json!({"employeeNumber": "7"}));
}

#[test]
fn excluded_attributes_drop_attributes_and_sub_attributes() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let u = user_doc(&reg);
    let p = Projection::new(&def, None, Some("emails,name.familyName,id")).unwrap().apply(&def, &u);
    assert!(p.get("emails").is_none());
    assert_eq!(p["name"], json!({"givenName": "Barbara"}));
    assert_eq!(p["id"], "2819c223", "returned: always wins over excludedAttributes");
}

#[test]
fn excluded_members_tells_the_store_not_to_load_them() {
    let reg = Registry::standard();
    let def = reg.resource("Group").unwrap();
    let members = def.member_attribute().unwrap();
    assert!(Projection::all().returns(&def, members));
    assert!(!Projection::new(&def, None, Some("members")).unwrap().returns(&def, members));
    assert!(!Projection::new(&def, Some("id,displayName"), None).unwrap().returns(&def, members));
    assert!(Projection::new(&def, Some("members.value"), None).unwrap().returns(&def, members));
}

#[test]
fn sort_follows_type_rules_and_puts_missing_last() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let mk = |v: Value| ingest(&reg, "User", v);
    let a = mk(
        json!({"userName": "alice", "name": {"familyName": "zeta"}, "emails": [{"value": "z@x", "primary": true}, {"value": "a@x"}]}),
    );
    let b = mk(json!({"userName": "Bob", "emails": [{"value": "m@x"}]}));
    let c = mk(json!({"userName": "carol"}));
    let by = |p: &str| AttrPath::parse(p).unwrap();
    assert_eq!(eval::compare_by(&def, &by("userName"), &a, &b), Ordering::Less, "case-insensitive order");
    assert_eq!(eval::compare_by(&def, &by("userName"), &b, &c), Ordering::Less);
    assert_eq!(eval::compare_by(&def, &by("name.familyName"), &a, &b), Ordering::Less, "missing sorts last");
    assert_eq!(eval::compare_by(&def, &by("emails"), &a, &b), Ordering::Greater, "the primary email sorts");
    assert_eq!(eval::compare_by(&def, &by("emails.value"), &c, &b), Ordering::Greater);
    let mut all = [c.clone(), b.clone(), a.clone()];
    all.sort_by(|x, y| eval::compare_by(&def, &by("userName"), x, y));
    assert_eq!(all.iter().map(|u| u["userName"].as_str().unwrap()).collect::<Vec<_>>(), ["alice", "Bob", "carol"]);
}

#[test]
fn sort_compares_date_times_as_instants() {
    let reg = with_custom_extension();
    let def = reg.resource("User").unwrap();
    let early = ingest(&reg, "User", json!({"userName": "a", CUSTOM: {"hiredOn": "2024-01-01T10:00:00+02:00"}}));
    let late = ingest(&reg, "User", json!({"userName": "b", CUSTOM: {"hiredOn": "2024-01-01T09:00:00Z"}}));
    let p = AttrPath::parse(&format!("{CUSTOM}:hiredOn")).unwrap();
    assert_eq!(eval::compare_by(&def, &p, &early, &late), Ordering::Less);
}

#[test]
fn reference_customer_policy_names_every_missing_attribute() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let policy = RequiredPaths::parse(
        &def,
        &[
            "userName",
            "name.familyName",
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "emails[type eq \"work\"].value",
            "preferredLanguage",
            "active",
        ],
    )
    .unwrap();
    let full = ingest(
        &reg,
        "User",
        json!({"userName": "a", "name": {"familyName": "F", "givenName": "G"}, ENT: {"employeeNumber": "1"},
               "emails": [{"type": "work", "value": "a@b"}], "preferredLanguage": "de-CH", "active": false}),
    );
    assert!(policy.missing(&def, &full).is_empty(), "active: false counts as present");
    let partial = ingest(
        &reg,
        "User",
        json!({"userName": "a", "name": {"familyName": "F"}, "emails": [{"type": "home", "value": "a@b"}]}),
    );
    assert_eq!(
        policy.missing(&def, &partial),
        vec![
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "emails[type eq \"work\"].value",
            "preferredLanguage",
            "active"
        ]
    );
    assert!(RequiredPaths::parse(&def, &["shoeSize"]).is_err());
}

#[test]
fn attributes_naming_only_unknown_attributes_returns_only_always_attributes() {
    let reg = Registry::standard();
    let def = reg.resource("User").unwrap();
    let p = Projection::new(&def, Some("nosuch"), None).unwrap().apply(&def, &user_doc(&reg));
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["schemas", "id"]);
}

#[test]
fn member_display_sent_by_the_client_is_kept() {
    let members = resource::parse_members(
        &json!([{"value": "u1", "display": "Babs Jensen", "type": "user"}, {"value": "u2"}]),
        &resource::Limits::default(),
    )
    .unwrap();
    assert_eq!(members[0].display.as_deref(), Some("Babs Jensen"));
    assert_eq!(members[0].kind.as_deref(), Some("User"));
    assert_eq!(members[1].display, None);
}

#[test]
fn schemas_documents_of_core_schemas_list_external_id() {
    let reg = Registry::standard();
    for id in ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:core:2.0:Group"] {
        let doc = reg.schema_json(reg.schema(id).unwrap(), None);
        let names: Vec<&str> =
            doc["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"externalId"), "{id}: {names:?}");
    }
    let ent = reg.schema_json(reg.schema(ENT).unwrap(), None);
    assert!(!ent["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "externalId"));
}
