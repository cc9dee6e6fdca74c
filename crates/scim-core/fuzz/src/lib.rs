//! Fixtures shared by the fuzz targets: the standard registry and realistic stored resources,
//! built once per process; and the oracle of the PATCH targets.

use std::sync::LazyLock;

use scim_core::resource::{UnknownAttributes, ingest};
use scim_core::{Registry, ResourceDef};
use serde_json::{Value, json};

/// The standard registry (User with the Enterprise User extension, and Group).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::standard);

/// The User resource type.
pub fn user_def() -> ResourceDef<'static> {
    REGISTRY.resource("User").expect("the standard registry defines User")
}

/// The Group resource type.
pub fn group_def() -> ResourceDef<'static> {
    REGISTRY.resource("Group").expect("the standard registry defines Group")
}

/// A user as Entra ID provisions it (POST /Users), with the quirks it sends.
pub fn entra_user_body() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.com",
        "active": "True",
        "displayName": "Test User",
        "nickName": "tuser",
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "userType": "Employee",
        "emails": [
            {"primary": true, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"},
            {"primary": false, "type": "home", "value": "test.user@example.org"}
        ],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "Test User",
            "familyName": "User",
            "givenName": "Test",
            "middleName": "Q",
            "honorificPrefix": "Dr."
        },
        "phoneNumbers": [
            {"type": "work", "value": "+1 555 0100"},
            {"type": "mobile", "value": "+1 555 0101", "primary": true}
        ],
        "addresses": [{
            "type": "work",
            "formatted": "1 Main St\nSpringfield",
            "streetAddress": "1 Main St",
            "locality": "Springfield",
            "region": "IL",
            "postalCode": "62701",
            "country": "US",
            "primary": true
        }],
        "roles": [
            {"primary": "False", "type": "WindowsAzureActiveDirectoryRole",
             "value": "{\"id\":\"27e8c4b4\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}
        ],
        "entitlements": [{"value": "license-e5", "type": "license"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Contoso",
            "division": "R&D",
            "department": "Tour Operations",
            "manager": [{"$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                         "value": "26118915-6090-4610-87e4-49d8ca9f808d"}]
        },
        "urn:ietf:params:scim:schemas:extension:contoso:2.0:User": {"badge": "x"}
    })
}

/// A group as Entra ID provisions it (POST /Groups).
pub fn entra_group_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
        "meta": {"resourceType": "Group"},
        "members": [{"value": "26118915-6090-4610-87e4-49d8ca9f808d", "type": "User"}]
    })
}

fn with_server_fields(mut v: Value, id: &str, resource_type: &str) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id));
        m.insert(
            "meta".into(),
            json!({
                "resourceType": resource_type,
                "created": "2024-01-31T12:00:00Z",
                "lastModified": "2024-02-01T08:30:00.5+01:00",
                "version": "W/\"3\"",
                "location": format!("https://scim.example.com/scim/v2/{resource_type}s/{id}")
            }),
        );
    }
    v
}

/// The stored form of [`entra_user_body`], with the `id` and `meta` the server adds.
pub static USER: LazyLock<Value> = LazyLock::new(|| {
    let ingested = ingest(&user_def(), &entra_user_body(), UnknownAttributes::Drop).expect("the sample user ingests");
    with_server_fields(ingested.resource, "2819c223-7f76-453a-919d-413861904646", "User")
});

/// The stored form of [`entra_group_body`] (members are stored apart), with `id` and `meta`.
pub static GROUP: LazyLock<Value> = LazyLock::new(|| {
    let ingested =
        ingest(&group_def(), &entra_group_body(), UnknownAttributes::Drop).expect("the sample group ingests");
    with_server_fields(ingested.resource, "e9e30dba-f08f-4109-8486-d5c6a331660a", "Group")
});

/// The oracle of the PATCH targets: what a PATCH produced is a resource the server could have
/// been sent. `patched` (the stored form `patch::apply` returned, with the fixtures' `id` and
/// `meta`) must ingest, as a PUT body, to exactly itself without `id` and `meta` (readOnly, kept
/// apart by the server): no value the PATCH engine writes is one that `ingest` would refuse,
/// coerce, reorder or drop.
pub fn assert_reingests(def: &ResourceDef<'_>, patched: &Value, body: &Value) {
    let mut stored = patched.clone();
    if let Value::Object(m) = &mut stored {
        m.shift_remove("id");
        m.shift_remove("meta");
    }
    match ingest(def, patched, UnknownAttributes::Drop) {
        Ok(again) => assert!(
            again.resource == stored,
            "re-ingesting the patched {} changed it\nPATCH: {body}\npatched: {stored}\ningested: {}",
            def.rt.name,
            again.resource
        ),
        Err(e) => panic!("the patched {} does not ingest: {e:?}\nPATCH: {body}\npatched: {stored}", def.rt.name),
    }
}
