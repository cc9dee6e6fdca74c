//! The change feed against its published format: events of every type, made through the real
//! SCIM and vendor APIs and read back from `GET /api/v1/tenants/{tenant}/events`, validate
//! against docs/events.schema.json, and the schema is strict enough to refuse a broken event.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::common::*;

/// The schema as published, parsed.
fn schema() -> Value {
    serde_json::from_str(include_str!("../../../../docs/events.schema.json")).unwrap()
}

/// A validator of the published schema, checking `format` (uuid, date-time) too.
fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema()).unwrap()
}

/// The validation errors of `event`, as text (empty when it is valid).
fn errors(v: &jsonschema::Validator, event: &Value) -> Vec<String> {
    v.iter_errors(event).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// The event types the schema's `type` enum lists.
fn schema_types() -> BTreeSet<String> {
    let s = schema();
    s["properties"]["type"]["enum"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

async fn api_key(app: &TestApp) -> (String, String) {
    let (record, secret) = scimd::tokens::issue_api_key(Some("events-test".into()), time::OffsetDateTime::now_utc());
    let id = record.id.clone();
    app.store.create_api_key(record).await.unwrap();
    (id, secret)
}

/// A vendor API request with a JSON body; returns the status and the JSON answer.
async fn vendor(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = app.client.request(method, format!("{}{path}", app.admin)).bearer_auth(key);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    status_json(req.send().await.unwrap()).await
}

/// Every event of the tenant `contoso`, oldest first.
async fn all_events(app: &TestApp, key: &str) -> Vec<Value> {
    let (status, page) = vendor(app, key, Method::GET, "/api/v1/tenants/contoso/events?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["events"].as_array().unwrap().clone();
    let last = events.last().map_or(json!(0), |e| e["seq"].clone());
    assert_eq!(page["position"], last, "the position is the last event's seq");
    events
}

fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_every_type_match_the_published_schema() {
    let app = spawn_app().await;
    let (key_id, key) = api_key(&app).await;

    // Users: created (one with externalId and the enterprise extension), updated,
    // deactivated by Entra's path-less Replace, reactivated, deleted.
    let alice = app.create_user(&entra_user("alice@contoso.com", "ext-alice")).await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let bob = app.user("bob@contoso.com").await;
    let carol = app.user("carol@contoso.com").await;
    let mut changed = entra_user("alice@contoso.com", "ext-alice");
    changed["title"] = json!("Lead engineer");
    changed["name"]["givenName"] = json!("Alicia");
    let r = app.put(&format!("/Users/{alice_id}"), &changed).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.patch_ok(&format!("/Users/{alice_id}"), &patch_op(json!([{"op": "Replace", "value": {"active": false}}])))
        .await;
    app.patch_ok(&format!("/Users/{alice_id}"), &patch_op(json!([{"op": "replace", "path": "active", "value": true}])))
        .await;

    // A write that changes nothing appends nothing.
    let before_noop = all_events(&app, &key).await.len();
    app.patch_ok(&format!("/Users/{alice_id}"), &patch_op(json!([{"op": "replace", "path": "active", "value": true}])))
        .await;
    assert_eq!(all_events(&app, &key).await.len(), before_noop, "a no-op PATCH is no event");

    // Groups: created with a member, renamed, members added, one PATCH that removes and adds,
    // a member deleted (its group loses it first), the group deleted.
    let r = app.post("/Groups", &json!({"displayName": "Engineering", "members": [{"value": alice_id}]})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let group = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.patch_no_content(
        &format!("/Groups/{group}"),
        &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Platform"}])),
    )
    .await;
    app.patch_no_content(
        &format!("/Groups/{group}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": bob}]}])),
    )
    .await;
    app.patch_no_content(
        &format!("/Groups/{group}"),
        &patch_op(json!([
            {"op": "remove", "path": format!("members[value eq \"{alice_id}\"]")},
            {"op": "add", "path": "members", "value": [{"value": carol}]},
        ])),
    )
    .await;
    let r = app.delete(&format!("/Users/{bob}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.delete(&format!("/Groups/{group}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // The tenant and its tokens, through the vendor API.
    let (status, _) =
        vendor(&app, &key, Method::PATCH, "/api/v1/tenants/contoso", Some(json!({"required": ["userName"]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, issued) =
        vendor(&app, &key, Method::POST, "/api/v1/tenants/contoso/tokens", Some(json!({"label": "entra-prod"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let old = issued["id"].as_str().unwrap().to_owned();
    let secret = issued["token"].as_str().unwrap().to_owned();
    let (status, rotated) =
        vendor(&app, &key, Method::POST, &format!("/api/v1/tokens/{old}/rotate"), Some(json!({"overlap": "1h"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["id"].as_str().unwrap().to_owned();
    let (status, _) = vendor(&app, &key, Method::DELETE, &format!("/api/v1/tokens/{new}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The health monitor notices the tenant is connected (once its requests reach the log).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while scimd::health::monitor_once(app.store.as_ref(), &scimd::clock::SystemClock).await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "no tenant.health_changed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Every event validates, and every type the schema names was seen.
    let events = all_events(&app, &key).await;
    let v = validator();
    for e in &events {
        let errs = errors(&v, e);
        assert!(errs.is_empty(), "event does not match docs/events.schema.json: {errs:?}\n{e:#}");
    }
    let seen: BTreeSet<String> = events.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, schema_types(), "every type of the schema's enum, and no other");

    // What the schema cannot say: seq is 1, 2, 3, ...; ids are unique; data is the resource.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=i64::try_from(events.len()).unwrap()).collect::<Vec<_>>(), "gapless from 1");
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    assert_eq!(events[0]["type"], "tenant.created", "a tenant's feed starts with its creation");
    for e in &events {
        assert_eq!(e["tenant"], "contoso", "{e}");
        match e["resource"]["type"].as_str().unwrap() {
            "User" | "Group" => {
                assert_eq!(e["data"]["id"], e["resource"]["id"], "{e}");
                assert_eq!(e["data"].get("externalId").unwrap_or(&Value::Null), &e["resource"]["externalId"], "{e}");
            }
            "Tenant" => assert_eq!(e["data"]["name"], e["resource"]["id"], "{e}"),
            _ => assert_eq!(e["data"]["id"], e["resource"]["id"], "{e}"),
        }
        assert!(!e.to_string().contains(&secret), "no event carries a token's secret: {e}");
    }

    // The types fire where the contract says.
    let alice_events: Vec<&str> = events
        .iter()
        .filter(|e| e["resource"]["id"] == alice_id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(alice_events, ["user.created", "user.updated", "user.deactivated", "user.reactivated"]);
    let created = of_type(&events, "user.created")[0];
    assert_eq!(created["resource"]["externalId"], "ext-alice");
    assert_eq!(created["changes"], json!([]), "a creation's change is its data: {created}");
    let updated = of_type(&events, "user.updated")[0];
    let paths: Vec<&str> = updated["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["name.givenName", "title"], "{updated}");
    let deactivated = of_type(&events, "user.deactivated")[0];
    assert_eq!(deactivated["changes"], json!([{"path": "active", "before": true, "after": false}]));
    assert_eq!(deactivated["actor"]["method"], "PATCH");
    assert_eq!(deactivated["actor"]["path"], format!("/Users/{alice_id}"));
    assert_eq!(deactivated["actor"]["label"], "test");

    let group_created = of_type(&events, "group.created")[0];
    assert_eq!(group_created["data"]["members"][0]["value"], alice_id.as_str(), "{group_created}");
    let group_events: Vec<(&str, &Value)> = events
        .iter()
        .filter(|e| e["resource"]["id"] == group.as_str())
        .map(|e| (e["type"].as_str().unwrap(), &e["members"]))
        .collect();
    assert_eq!(
        group_events,
        [
            ("group.created", &Value::Null),
            ("group.updated", &Value::Null),
            ("group.members_added", &json!([bob])),
            ("group.members_removed", &json!([alice_id])),
            ("group.members_added", &json!([carol])),
            ("group.members_removed", &json!([bob])),
            ("group.deleted", &Value::Null),
        ]
    );
    let bob_deleted = events.iter().position(|e| e["type"] == "user.deleted").unwrap();
    assert_eq!(events[bob_deleted - 1]["type"], "group.members_removed", "the group loses its member first");
    assert_eq!(events[bob_deleted - 1]["actor"], events[bob_deleted]["actor"], "one request");

    let tenant_updated = of_type(&events, "tenant.updated")[0];
    assert_eq!(tenant_updated["changes"], json!([{"path": "required", "before": [], "after": ["userName"]}]));
    assert_eq!(tenant_updated["actor"]["token"], key_id.as_str(), "the vendor API's actor is its API key");
    assert_eq!(tenant_updated["actor"]["path"], "/api/v1/tenants/contoso");
    let rotation = of_type(&events, "tenant.token_rotated")[0];
    assert_eq!(rotation["resource"]["id"], old.as_str());
    assert_eq!(rotation["changes"][0]["path"], "expires", "{rotation}");
    // The vendor API says the old token's new expiry to the second; the event to the microsecond.
    let instant = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    let gap = instant(&rotation["data"]["expires"]) - instant(&rotated["replacedExpires"]);
    assert!(
        gap >= time::Duration::ZERO && gap < time::Duration::SECOND,
        "expiry set to the end of the overlap: {rotation}"
    );
    let revoked = of_type(&events, "tenant.token_revoked")[0];
    assert_eq!(revoked["resource"]["id"], new.as_str());
    assert!(revoked["data"]["revoked"].is_string(), "{revoked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_events_that_break_the_format() {
    let app = spawn_app().await;
    let (_, key) = api_key(&app).await;
    let user = app.user("dave@contoso.com").await;
    let group = app.group("Sales").await;
    app.patch_no_content(
        &format!("/Groups/{group}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": user}]}])),
    )
    .await;
    let events = all_events(&app, &key).await;
    let v = validator();
    for e in &events {
        assert!(errors(&v, e).is_empty(), "{e}");
    }
    let find = |ty: &str| of_type(&events, ty)[0].clone();
    let (user_created, token_created, added) =
        (find("user.created"), find("tenant.token_created"), find("group.members_added"));

    let broken: Vec<(&str, Value)> = vec![
        ("without seq", without(&user_created, "seq")),
        ("without actor", without(&user_created, "actor")),
        ("with an unknown field", with(&user_created, |e| e["extra"] = json!(1))),
        ("with seq 0", with(&user_created, |e| e["seq"] = json!(0))),
        ("with seq as text", with(&user_created, |e| e["seq"] = json!("3"))),
        ("with an unknown type", with(&user_created, |e| e["type"] = json!("user.renamed"))),
        ("with a time that is no RFC 3339", with(&user_created, |e| e["time"] = json!("yesterday"))),
        ("with an id that is no UUID", with(&user_created, |e| e["id"] = json!("42"))),
        ("with a resource type of another kind", with(&user_created, |e| e["resource"]["type"] = json!("Group"))),
        ("with an unknown resource type", with(&user_created, |e| e["resource"]["type"] = json!("Device"))),
        (
            "with a resource without externalId",
            with(&user_created, |e| drop(e["resource"].as_object_mut().unwrap().remove("externalId"))),
        ),
        ("with members on a user event", with(&user_created, |e| e["members"] = json!([user]))),
        ("with a user's groups in data", with(&user_created, |e| e["data"]["groups"] = json!([{"value": group}]))),
        (
            "with meta.location in data",
            with(&user_created, |e| e["data"]["meta"]["location"] = json!("http://x/Users/1")),
        ),
        (
            "with a change without after",
            with(&user_created, |e| e["changes"] = json!([{"path": "title", "before": null}])),
        ),
        (
            "with a change of meta",
            with(&user_created, |e| {
                e["changes"] = json!([{"path": "meta.version", "before": null, "after": "W/\"1\""}])
            }),
        ),
        ("with an unknown actor field", with(&user_created, |e| e["actor"]["ip"] = json!("10.0.0.1"))),
        ("with an actor method that writes nothing", with(&user_created, |e| e["actor"]["method"] = json!("GET"))),
        ("a member event without members", without(&added, "members")),
        ("a member event with no member", with(&added, |e| e["members"] = json!([]))),
        (
            "a member event with attribute changes",
            with(&added, |e| e["changes"] = json!([{"path": "displayName", "before": "a", "after": "b"}])),
        ),
        ("a group event listing members outside group.created", with(&added, |e| e["data"]["members"] = json!([]))),
        ("a token event with its secret", with(&token_created, |e| e["data"]["token"] = json!("scimd_secret"))),
        ("a token event with an externalId", with(&token_created, |e| e["resource"]["externalId"] = json!("x"))),
    ];
    for (what, event) in broken {
        assert!(!errors(&v, &event).is_empty(), "the schema accepts an event {what}: {event:#}");
    }
}

#[test]
fn the_schema_names_every_event_type_the_server_has() {
    let server: BTreeSet<String> = scim_core::change::EventType::ALL.iter().map(|t| t.as_str().to_owned()).collect();
    assert_eq!(schema_types(), server);
}

#[test]
fn the_documentation_describes_every_event_type() {
    let doc = include_str!("../../../../docs/events.md");
    for ty in schema_types() {
        assert!(doc.contains(&format!("| `{ty}` |")), "docs/events.md has no row for {ty}");
    }
}

#[test]
fn the_documented_example_event_matches_the_schema() {
    let doc = include_str!("../../../../docs/events.md");
    let (_, rest) = doc.split_once("<!-- example-event -->").expect("docs/events.md marks its example event");
    let body = rest.split_once("```json").unwrap().1.split_once("```").unwrap().0;
    let event: Value = serde_json::from_str(body).unwrap();
    let errs = errors(&validator(), &event);
    assert!(errs.is_empty(), "the example in docs/events.md: {errs:?}");
}

fn without(event: &Value, field: &str) -> Value {
    with(event, |e| drop(e.as_object_mut().unwrap().remove(field)))
}

fn with(event: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut e = event.clone();
    change(&mut e);
    e
}
