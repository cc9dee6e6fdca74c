//! Concurrent requests against one resource, as Entra's parallel provisioning sends them.

use super::common;

use serde_json::json;

/// Regression: member PATCHes running at once on one group used to race on the group's
/// version, exhaust their retries and answer 412 although the client sent no If-Match.
#[tokio::test]
async fn concurrent_member_patches_on_one_group_all_succeed() {
    let app = common::spawn_app().await;
    let group = app.group("Everyone").await;
    let mut users = Vec::new();
    for i in 0..32 {
        users.push(app.user(&format!("user{i}@contoso.com")).await);
    }
    let sends = users.iter().map(|u| {
        let body = common::patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": u}]}]));
        let send = app.send_json(reqwest::Method::PATCH, &format!("/Groups/{group}"), &body).send();
        async move { send.await.unwrap() }
    });
    let answers = futures_join(sends).await;
    for r in answers {
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
    let g = common::ok_json(app.get(&format!("/Groups/{group}")).await).await;
    let mut members = common::group_member_ids(&g);
    members.sort();
    users.sort();
    assert_eq!(members, users);
    // Removals at once likewise.
    let sends = users.iter().map(|u| {
        let body = common::patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": u}]}]));
        let send = app.send_json(reqwest::Method::PATCH, &format!("/Groups/{group}"), &body).send();
        async move { send.await.unwrap() }
    });
    for r in futures_join(sends).await {
        assert_eq!(r.status(), 204);
    }
    let g = common::ok_json(app.get(&format!("/Groups/{group}")).await).await;
    assert!(common::group_member_ids(&g).is_empty());
}

/// Runs the futures concurrently on the test's runtime.
async fn futures_join<F: std::future::Future<Output = reqwest::Response> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Regression: on PostgreSQL, deleting a user locked the user's row and then the rows of its
/// groups (their new version), while a member PATCH of one of those groups locked the group's
/// row and then its members' rows: two such requests at once waited for each other, and
/// PostgreSQL aborted one ("deadlock detected"), answered 500. Many deletions of users and
/// member PATCHes of their groups at once now all succeed; a PATCH that adds a user already
/// deleted is refused as adding any unknown member is.
#[tokio::test]
async fn deleting_users_while_their_groups_are_patched_never_deadlocks() {
    use std::time::Duration;
    let app = std::sync::Arc::new(common::spawn_app().await);
    let mut groups = Vec::new();
    for i in 0..4 {
        groups.push(app.group(&format!("Team {i}")).await);
    }
    // What the server answers for a PATCH that adds an unknown member: a PATCH racing a
    // deletion may add a user that is gone, and gets the same answer.
    let unknown = common::patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}]));
    let r = app.patch(&format!("/Groups/{}", groups[0]), &unknown).await;
    common::assert_scim_error(r, 400, Some("invalidValue")).await;

    for round in 0..3 {
        let mut users = Vec::new();
        for i in 0..16 {
            users.push(app.user(&format!("r{round}-user{i}@contoso.com")).await);
        }
        let all: Vec<_> = users.iter().map(|u| json!({"value": u})).collect();
        for g in &groups {
            let body = common::patch_op(json!([{"op": "Add", "path": "members", "value": all}]));
            app.patch_no_content(&format!("/Groups/{g}"), &body).await;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, u) in users.iter().enumerate() {
            let (app, u) = (std::sync::Arc::clone(&app), u.clone());
            tasks.spawn(async move {
                // Interleaved with the PATCHes below rather than all first.
                tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
                let r = app.delete(&format!("/Users/{u}")).await;
                ("DELETE", r.status().as_u16(), r.text().await.unwrap())
            });
        }
        for (gi, g) in groups.iter().enumerate() {
            for k in 0..6 {
                // Each PATCH removes two members and adds two, the groups in opposite orders,
                // so the rows of the same users are wanted in different orders.
                let n = users.len();
                let pick = |j: usize| users[(gi * 5 + k * 3 + j) % n].clone();
                let (a, b, c, d) = if (gi + k) % 2 == 0 {
                    (pick(0), pick(7), pick(3), pick(11))
                } else {
                    (pick(11), pick(3), pick(7), pick(0))
                };
                let body = common::patch_op(json!([
                    {"op": "Remove", "path": "members", "value": [{"value": a}, {"value": b}]},
                    {"op": "Add", "path": "members", "value": [{"value": c}, {"value": d}]},
                ]));
                let (app, path) = (std::sync::Arc::clone(&app), format!("/Groups/{g}"));
                tasks.spawn(async move {
                    let r = app.patch(&path, &body).await;
                    ("PATCH", r.status().as_u16(), r.text().await.unwrap())
                });
            }
        }
        let answers = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
            .await
            .expect("requests hung: some wait for each other's row locks");
        for (method, status, body) in answers {
            match (method, status) {
                ("DELETE", 204) | ("PATCH", 204) => {}
                // The PATCH added a member deleted just before: refused as any unknown member.
                ("PATCH", 400) if body.contains("invalidValue") && body.contains("is not a user or group") => {}
                _ => panic!("round {round}: {method} answered {status}: {body}"),
            }
        }
        // Every user is gone, and so is every membership.
        for g in &groups {
            let v = common::ok_json(app.get(&format!("/Groups/{g}")).await).await;
            assert!(common::group_member_ids(&v).is_empty(), "round {round}: {v}");
        }
        let list = common::ok_json(app.get("/Users").await).await;
        assert_eq!(list["totalResults"], 0, "{list}");
    }
}
