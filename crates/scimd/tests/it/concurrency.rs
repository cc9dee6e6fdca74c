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
