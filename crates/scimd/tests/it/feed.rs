//! The change feed through the real server: what each client shape produces, who is named as
//! the actor, the long poll, retention (410), and a consumer that loads a snapshot and then
//! follows the feed while writes go on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::common::*;

async fn api_key(app: &TestApp) -> String {
    let (record, secret) = scimd::tokens::issue_api_key(Some("feed-test".into()), time::OffsetDateTime::now_utc());
    app.store.create_api_key(record).await.unwrap();
    secret
}

/// A reader of the contoso tenant's feed through the vendor API.
struct Feed<'a> {
    app: &'a TestApp,
    key: String,
}

impl<'a> Feed<'a> {
    async fn new(app: &'a TestApp) -> Feed<'a> {
        Feed { app, key: api_key(app).await }
    }

    async fn get(&self, query: &str) -> reqwest::Response {
        let url = format!("{}/api/v1/tenants/contoso/events?{query}", self.app.admin);
        self.app.client.get(url).bearer_auth(&self.key).send().await.unwrap()
    }

    /// The page after `after` (no wait).
    async fn page(&self, after: i64) -> Value {
        let r = self.get(&format!("after={after}&limit=1000")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// The events after `after`.
    async fn after(&self, after: i64) -> Vec<Value> {
        self.page(after).await["events"].as_array().unwrap().clone()
    }

    /// The feed's position now.
    async fn position(&self) -> i64 {
        let mut at = 0;
        loop {
            let page = self.page(at).await;
            if page["events"].as_array().unwrap().is_empty() {
                return at;
            }
            at = page["position"].as_i64().unwrap();
        }
    }

    /// The list of a tenant's resources through the vendor API, with its position.
    async fn snapshot(&self, kind: &str) -> (Vec<Value>, i64) {
        let url = format!("{}/api/v1/tenants/contoso/{kind}?count=1000", self.app.admin);
        let body: Value = self.app.client.get(url).bearer_auth(&self.key).send().await.unwrap().json().await.unwrap();
        (body["Resources"].as_array().unwrap().clone(), body["position"].as_i64().unwrap())
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_is_its_own_event_whatever_shape_the_client_sends() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let id = app.user("jdoe@contoso.com").await;
    let path = format!("/Users/{id}");
    let off_on = [
        // Entra's default: a string boolean.
        (
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        ),
        // Okta: a path-less replace.
        (json!([{"op": "replace", "value": {"active": false}}]), json!([{"op": "replace", "value": {"active": true}}])),
    ];
    for (off, on) in off_on {
        let at = feed.position().await;
        assert_eq!(app.patch(&path, &patch_op(off)).await.status(), StatusCode::OK);
        assert_eq!(app.patch(&path, &patch_op(on)).await.status(), StatusCode::OK);
        assert_eq!(types(&feed.after(at).await), ["user.deactivated", "user.reactivated"]);
    }
    // Okta updates profiles with PUT: a PUT with active false is a deactivation too.
    let at = feed.position().await;
    let put = json!({"userName": "jdoe@contoso.com", "active": false, "title": "Gone"});
    assert_eq!(app.put(&path, &put).await.status(), StatusCode::OK);
    let events = feed.after(at).await;
    assert_eq!(types(&events), ["user.deactivated"]);
    let changes = events[0]["changes"].as_array().unwrap();
    assert!(changes.contains(&json!({"path": "active", "before": true, "after": false})), "{changes:?}");
    assert!(changes.contains(&json!({"path": "title", "before": null, "after": "Gone"})), "{changes:?}");
    assert_eq!(events[0]["data"]["active"], false, "data is the resource after the change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_changes_nothing_produces_no_event() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let id = app.user("a@contoso.com").await;
    let g = app.group("Sales").await;
    let path = format!("/Users/{id}");
    assert_eq!(
        app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "t"}]))).await.status(),
        200
    );
    let at = feed.position().await;
    // The same value again, the same document again, a member that is one already.
    assert_eq!(
        app.patch(&path, &patch_op(json!([{"op": "Replace", "path": "title", "value": "t"}]))).await.status(),
        200
    );
    let same = app.get(&path).await.json::<Value>().await.unwrap();
    assert_eq!(app.put(&path, &same).await.status(), StatusCode::OK);
    let add = patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]));
    assert_eq!(app.patch(&format!("/Groups/{g}"), &add).await.status(), StatusCode::NO_CONTENT);
    let at2 = feed.position().await;
    assert_eq!(app.patch(&format!("/Groups/{g}"), &add).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(types(&feed.after(at).await), ["group.members_added"], "only the first member add changed anything");
    assert_eq!(feed.position().await, at2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_patch_that_adds_and_removes_gives_both_events_with_the_member_ids() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let (a, b, c) = (app.user("a@contoso.com").await, app.user("b@contoso.com").await, app.user("c@contoso.com").await);
    let g = app.group("Sales").await;
    let gpath = format!("/Groups/{g}");
    let add = patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": a}, {"value": b}]}]));
    assert_eq!(app.patch(&gpath, &add).await.status(), StatusCode::NO_CONTENT);
    let at = feed.position().await;
    // Okta's removal by value filter, an add, and a rename, in one request.
    let mixed = patch_op(json!([
        {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
        {"op": "add", "path": "members", "value": [{"value": c}]},
        {"op": "replace", "path": "displayName", "value": "Sales EU"},
    ]));
    assert_eq!(app.patch(&gpath, &mixed).await.status(), StatusCode::NO_CONTENT);
    let events = feed.after(at).await;
    assert_eq!(types(&events), ["group.updated", "group.members_removed", "group.members_added"]);
    assert_eq!(events[0]["changes"], json!([{"path": "displayName", "before": "Sales", "after": "Sales EU"}]));
    assert_eq!((&events[1]["members"], &events[2]["members"]), (&json!([a]), &json!([c])));
    assert!(events.iter().all(|e| e["data"].get("members").is_none()), "a group's data never lists its members");
    assert!(events.iter().all(|e| e["resource"] == json!({"type": "Group", "id": g, "externalId": null})));
    // Entra's "replace all members" nets out the members that stay.
    let at = feed.position().await;
    let replace = patch_op(json!([{"op": "Replace", "path": "members", "value": [{"value": b}, {"value": a}]}]));
    assert_eq!(app.patch(&gpath, &replace).await.status(), StatusCode::NO_CONTENT);
    let events = feed.after(at).await;
    assert_eq!(types(&events), ["group.members_removed", "group.members_added"]);
    assert_eq!((&events[0]["members"], &events[1]["members"]), (&json!([c]), &json!([a])));
    // Deleting a member tells its groups first.
    let at = feed.position().await;
    assert_eq!(app.delete(&format!("/Users/{b}")).await.status(), StatusCode::NO_CONTENT);
    let events = feed.after(at).await;
    assert_eq!(types(&events), ["group.members_removed", "user.deleted"]);
    assert_eq!(events[0]["members"], json!([b]));
    assert_eq!(events[1]["data"]["userName"], "b@contoso.com", "a deletion carries the resource as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_names_its_actor_token_request_method_and_path() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let at = feed.position().await;
    let r = app
        .send_json(Method::POST, "/Users", &json!({"userName": "x@contoso.com"}))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-42", "the request id is echoed");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": format!("/Users/{id}"), "data": patch_op(json!([{"op": "Replace", "path": "title", "value": "Boss"}]))}],
    });
    let r = app.post("/Bulk", &bulk).await;
    assert_eq!(r.status(), StatusCode::OK);
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let events = feed.after(at).await;
    assert_eq!(types(&events), ["user.created", "user.updated"]);
    let token_id = app.token.split('_').nth(1).unwrap();
    let created = &events[0]["actor"];
    assert_eq!(created["token"], token_id, "{created}");
    assert_eq!((&created["label"], &created["request_id"]), (&json!("test"), &json!("req-42")));
    assert_eq!((&created["method"], &created["path"]), (&json!("POST"), &json!("/Users")));
    let patched = &events[1]["actor"];
    assert_eq!(
        (&patched["method"], &patched["path"]),
        (&json!("PATCH"), &json!(format!("/Users/{id}"))),
        "a bulk operation is named, not /Bulk"
    );
    assert_eq!(patched["request_id"], json!(generated));
    assert_eq!(events[1]["tenant"], "contoso");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_is_woken_by_the_commit_and_otherwise_returns_empty_at_its_deadline() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let at = feed.position().await;
    let start = Instant::now();
    let r = feed.get(&format!("after={at}&wait=300ms")).await;
    let waited = start.elapsed();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"events": [], "position": at}));
    assert!(waited >= Duration::from_millis(290), "returned after {waited:?}");
    let poll = {
        let (url, key) = (format!("{}/api/v1/tenants/contoso/events?after={at}&wait=20s", app.admin), feed.key.clone());
        let client = app.client.clone();
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            (Instant::now(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = app.user("late@contoso.com").await;
    let committed = Instant::now();
    let (woken, body) = poll.await.unwrap();
    assert!(woken.duration_since(committed) < Duration::from_secs(2), "woken {:?} after the commit", woken - committed);
    assert_eq!(body["events"][0]["resource"]["id"], json!(id));
    assert_eq!(body["position"], body["events"][0]["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_position_is_410_resync_never_a_silent_jump() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    for i in 0..5 {
        app.user(&format!("u{i}@contoso.com")).await;
    }
    let head = feed.position().await;
    assert_eq!(app.store.prune_events(None, Some(2)).await.unwrap(), (head - 2) as u64);
    let r = feed.get("after=0").await;
    assert_eq!(r.status(), StatusCode::GONE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (&body["error"], &body["status"], &body["pruned"]),
        (&json!("resync_required"), &json!("410"), &json!(head - 2))
    );
    assert!(body["detail"].as_str().unwrap().contains("snapshot"), "{body}");
    // From the pruned position on, the feed is whole.
    assert_eq!(feed.after(head - 2).await.len(), 2);
    // A position this feed never gave (a tenant created again under its name) is 410 too.
    let r = feed.get(&format!("after={}", head + 100)).await;
    assert_eq!(r.status(), StatusCode::GONE);
    // Pruning by age: everything older than now goes, and the position stays.
    app.store.prune_events(Some(time::OffsetDateTime::now_utc()), None).await.unwrap();
    assert!(feed.after(head).await.is_empty());
    assert_eq!(feed.get(&format!("after={}", head - 1)).await.status(), StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_feed_parameters_are_400_and_an_unknown_tenant_404() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    for q in ["after=-1", "after=x", "limit=0", "limit=1001", "wait=abc", "wait=1h", "after=1.5"] {
        let r = feed.get(q).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{q}: {body}");
    }
    let r = app
        .client
        .get(format!("{}/api/v1/tenants/nope/events", app.admin))
        .bearer_auth(&feed.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.client.get(format!("{}/api/v1/tenants/contoso/events", app.admin)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Applies a feed event to a consumer's copy of the users: the resource as the event says, or
/// gone.
fn apply(copy: &mut HashMap<String, Value>, event: &Value) {
    if event["resource"]["type"] != "User" {
        return;
    }
    let id = event["resource"]["id"].as_str().unwrap().to_owned();
    if event["type"] == "user.deleted" {
        copy.remove(&id);
    } else {
        copy.insert(id, event["data"].clone());
    }
}

/// What the consumer compares: a user without `groups` and `meta.location` (the feed's data has
/// neither).
fn comparable(mut user: Value) -> Value {
    let m = user.as_object_mut().unwrap();
    m.remove("groups");
    if let Some(meta) = m.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("location");
    }
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_that_loads_a_snapshot_then_follows_the_feed_ends_with_the_servers_state() {
    let app = spawn_app().await;
    let feed = Feed::new(&app).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.user(&format!("seed{i}@contoso.com")).await);
    }
    // Writes go on while the consumer loads its snapshot and follows the feed.
    let writer = {
        let (scim, token, client, ids) = (app.scim.clone(), app.token.clone(), app.client.clone(), ids.clone());
        tokio::spawn(async move {
            for i in 0..40usize {
                let req = match i % 4 {
                    0 => client.post(format!("{scim}/Users")).json(&json!({"userName": format!("new{i}@contoso.com")})),
                    // The first ten seed users are changed, the last ten deleted one by one.
                    1 => client
                        .patch(format!("{scim}/Users/{}", ids[i % 10]))
                        .json(&patch_op(json!([{"op": "Replace", "path": "title", "value": format!("t{i}")}]))),
                    2 => client
                        .patch(format!("{scim}/Users/{}", ids[(i * 7) % 10]))
                        .json(&patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
                    _ => client.delete(format!("{scim}/Users/{}", ids[10 + i / 4])),
                };
                let r = req.bearer_auth(&token).header("content-type", SCIM).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (users, position) = feed.snapshot("Users").await;
    let mut copy: HashMap<String, Value> =
        users.into_iter().map(|u| (u["id"].as_str().unwrap().to_owned(), comparable(u))).collect();
    let mut at = position;
    let mut seqs = Vec::new();
    loop {
        let done = writer.is_finished();
        let page = feed.page(at).await;
        for e in page["events"].as_array().unwrap() {
            seqs.push(e["seq"].as_i64().unwrap());
            apply(&mut copy, e);
        }
        at = page["position"].as_i64().unwrap();
        if done && page["events"].as_array().unwrap().is_empty() {
            break;
        }
    }
    writer.await.unwrap();
    assert_eq!(seqs, ((position + 1)..=at).collect::<Vec<_>>(), "every event after the snapshot, once, in order");
    let (now, _) = feed.snapshot("Users").await;
    let truth: HashMap<String, Value> =
        now.into_iter().map(|u| (u["id"].as_str().unwrap().to_owned(), comparable(u))).collect();
    assert_eq!(copy.len(), truth.len());
    for (id, user) in &truth {
        assert_eq!(copy.get(id), Some(user), "user {id}");
    }
}
