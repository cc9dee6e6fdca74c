//! Paging through the real server: RFC 9865 cursors (`cursor`, `nextCursor`,
//! `previousCursor`) and index paging (`startIndex`), on lists and `POST .search`.

use reqwest::Method;
use scimd::http::HttpSettings;
use serde_json::{Value, json};

use crate::common::*;

/// Users `user000`..: their userNames are out of creation order; every third has a title.
async fn users(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let mut body =
                json!({"userName": format!("user{:03}", (i * 37) % n), "displayName": format!("U {}", i % 9)});
            if i % 3 == 0 {
                body["title"] = json!(format!("t{}", i % 4));
            }
            let (client, url, token) = (app.client.clone(), format!("{}/Users", app.scim), app.token.clone());
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", SCIM)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                v["id"].as_str().unwrap().to_owned()
            }));
        }
        for t in tasks {
            ids.push(t.await.unwrap());
        }
    }
    ids
}

fn enc(s: &str) -> String {
    q(s)
}

/// Walks `path` (a query string without `cursor`) by cursor: the ids of every page, checking
/// the RFC 9865 response shape of each page; then back from the last page by
/// `previousCursor`. Returns (forward, backward reversed into forward order, pages).
async fn cursor_walk(app: &TestApp, path: &str, total: Option<u64>) -> (Vec<String>, Vec<String>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}cursor");
    let mut forward = Vec::new();
    let mut pages = Vec::new();
    loop {
        let v = ok_json(app.get(&url).await).await;
        assert_eq!(v["schemas"], json!([LIST_RESPONSE]));
        assert!(v.get("startIndex").is_none(), "no startIndex in a cursor response: {v}");
        assert_eq!(v["totalResults"].as_u64(), total, "{url}");
        let ids = resource_ids(&v);
        assert_eq!(v["itemsPerPage"].as_u64(), Some(ids.len() as u64));
        if pages.is_empty() {
            assert!(v.get("previousCursor").is_none(), "the first page has no previousCursor: {v}");
        }
        forward.extend(ids);
        pages.push(v.clone());
        match v.get("nextCursor") {
            Some(c) => {
                let c = c.as_str().unwrap();
                assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{c}");
                url = format!("{path}{sep}cursor={c}");
            }
            None => break,
        }
        assert!(pages.len() < 500, "the walk does not end");
    }
    let mut backward = Vec::new();
    let mut at = pages.last().cloned();
    while let Some(v) = at {
        let mut ids = resource_ids(&v);
        ids.reverse();
        backward.extend(ids);
        at = match v.get("previousCursor") {
            Some(c) => Some(ok_json(app.get(&format!("{path}{sep}cursor={}", c.as_str().unwrap())).await).await),
            None => None,
        };
    }
    backward.reverse();
    (forward, backward, pages.len())
}

/// Walks `path` by startIndex in pages of `count`.
async fn index_walk(app: &TestApp, path: &str, count: usize) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut start = 1;
    loop {
        let v = ok_json(app.get(&format!("{path}{sep}startIndex={start}&count={count}")).await).await;
        assert_eq!(v["startIndex"], json!(start));
        let ids = resource_ids(&v);
        if ids.is_empty() {
            break;
        }
        start += ids.len();
        out.extend(ids);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_and_index_walks_give_every_user_once_in_order_and_back() {
    let app = spawn_app().await;
    let created = users(&app, 250).await;
    let all = resource_ids(&ok_json(app.get("/Users?count=1000").await).await);
    assert_eq!(all.len(), 250);
    let mut sorted_created = created.clone();
    sorted_created.sort();
    let mut sorted_all = all.clone();
    sorted_all.sort();
    assert_eq!(sorted_all, sorted_created);

    let (forward, backward, pages) = cursor_walk(&app, "/Users?count=7", Some(250)).await;
    assert_eq!(forward, all, "by cursor, every user once, in order");
    assert_eq!(backward, all, "back by previousCursor");
    assert_eq!(pages, 36);
    assert_eq!(index_walk(&app, "/Users", 7).await, all, "by startIndex, every user once, in order");

    // Sorted, both ways, by cursor and by index.
    for sort in ["sortBy=userName", "sortBy=userName&sortOrder=descending", "sortBy=displayName&sortOrder=descending"] {
        let all = resource_ids(&ok_json(app.get(&format!("/Users?count=1000&{sort}")).await).await);
        let (forward, backward, _) = cursor_walk(&app, &format!("/Users?count=7&{sort}"), Some(250)).await;
        assert_eq!(forward, all, "{sort}");
        assert_eq!(backward, all, "{sort}");
        assert_eq!(index_walk(&app, &format!("/Users?{sort}"), 7).await, all, "{sort}");
    }
    let names: Vec<String> = ok_json(app.get("/Users?count=3&sortBy=userName&cursor=").await).await["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["user000", "user001", "user002"], "`cursor=` is the first page too");

    // Filters: an indexed one (counted), one the core finishes (no total), the core's order.
    let f = enc(r#"userName sw "user1""#);
    let all = resource_ids(&ok_json(app.get(&format!("/Users?count=1000&filter={f}")).await).await);
    let (forward, backward, _) = cursor_walk(&app, &format!("/Users?count=7&filter={f}"), Some(100)).await;
    assert_eq!((&forward, &backward), (&all, &all));
    let f = enc(r#"title eq "t2""#);
    let all = resource_ids(&ok_json(app.get(&format!("/Users?count=1000&filter={f}")).await).await);
    assert!(!all.is_empty());
    let (forward, backward, _) = cursor_walk(&app, &format!("/Users?count=7&filter={f}"), None).await;
    assert_eq!(forward, all, "a filter the core finishes pages by cursor");
    let last_start = (all.len() - 1) / 7 * 7;
    assert_eq!(backward, all[last_start..].to_vec(), "no previousCursor for it: back from the last page is that page");
    let all = resource_ids(&ok_json(app.get("/Users?count=1000&sortBy=title&sortOrder=descending").await).await);
    let (forward, backward, _) = cursor_walk(&app, "/Users?count=7&sortBy=title&sortOrder=descending", Some(250)).await;
    assert_eq!((&forward, &backward), (&all, &all), "sorted by the core");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_works_only_for_its_query_and_tenant() {
    let app = spawn_app().await;
    users(&app, 20).await;
    let g = app.group("g1").await;
    assert!(!g.is_empty());
    let first = ok_json(app.get("/Users?count=5&cursor").await).await;
    let next = first["nextCursor"].as_str().unwrap().to_owned();
    assert_eq!(resource_ids(&ok_json(app.get(&format!("/Users?count=5&cursor={next}")).await).await).len(), 5);
    let sorted = ok_json(app.get("/Users?count=5&sortBy=userName&cursor").await).await["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let v =
        ok_json(app.get(&format!("/Users?count=5&sortBy=username&sortOrder=Ascending&cursor={sorted}")).await).await;
    assert_eq!(v["itemsPerPage"], json!(5), "sortBy is case-insensitive, ascending the default");
    let f = enc(r#"userName sw "user""#);
    let (_, other) = add_tenant(&app.store, "fabrikam", &[]).await;
    let tampered = {
        let mut b = next.clone().into_bytes();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    for (what, path) in [
        ("another filter", format!("/Users?count=5&filter={f}&cursor={next}")),
        ("another sortBy", format!("/Users?count=5&sortBy=userName&cursor={next}")),
        ("another sortOrder", format!("/Users?count=5&sortBy=userName&sortOrder=descending&cursor={sorted}")),
        ("another endpoint", format!("/Groups?count=5&cursor={next}")),
        ("tampered", format!("/Users?count=5&cursor={tampered}")),
        ("truncated", format!("/Users?count=5&cursor={}", &next[..next.len() - 3])),
        ("garbage", "/Users?count=5&cursor=not-a-cursor".to_owned()),
        ("not base64url", "/Users?count=5&cursor=%2B%2F%3D%3D".to_owned()),
        ("huge", format!("/Users?count=5&cursor={}", "A".repeat(6000))),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 400, "{what}");
        let e = assert_scim_error(r, 400, Some("invalidCursor")).await;
        assert!(e["detail"].as_str().unwrap().contains("cursor"), "{what}: {e}");
    }
    let r = app.req_as(&other, Method::GET, &format!("/Users?count=5&cursor={next}")).send().await.unwrap();
    assert_scim_error(r, 400, Some("invalidCursor")).await;
    // POST .search checks the same.
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "cursor": tampered});
    assert_scim_error(app.post("/Users/.search", &body).await, 400, Some("invalidCursor")).await;
    let body = json!({"cursor": 7});
    assert_scim_error(app.post("/Users/.search", &body).await, 400, Some("invalidCursor")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_index_and_cursor_together_count_zero_and_an_unreadable_count() {
    let app = spawn_app().await;
    users(&app, 12).await;
    let e = assert_scim_error(app.get("/Users?startIndex=2&cursor").await, 400, Some("invalidValue")).await;
    assert!(e["detail"].as_str().unwrap().contains("startIndex and cursor"), "{e}");
    let body = json!({"cursor": "", "startIndex": 1});
    assert_scim_error(app.post("/Users/.search", &body).await, 400, Some("invalidValue")).await;
    assert_scim_error(app.get("/Users?cursor&count=many").await, 400, Some("invalidCount")).await;

    // count=0: the total and a cursor to go on from, no resources.
    let v = ok_json(app.get("/Users?cursor&count=0").await).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(12), Some(0)));
    assert_eq!(v["Resources"], json!([]));
    assert!(v.get("previousCursor").is_none());
    let next = v["nextCursor"].as_str().unwrap();
    let page = ok_json(app.get(&format!("/Users?cursor={next}&count=5")).await).await;
    let all = resource_ids(&ok_json(app.get("/Users?count=100").await).await);
    assert_eq!(resource_ids(&page), all[..5].to_vec(), "count 0 kept the position (the start)");
    // ... and in the middle of a walk.
    let next = page["nextCursor"].as_str().unwrap();
    let zero = ok_json(app.get(&format!("/Users?cursor={next}&count=0")).await).await;
    assert!(zero.get("previousCursor").is_some(), "{zero}");
    let same = zero["nextCursor"].as_str().unwrap();
    let page = ok_json(app.get(&format!("/Users?cursor={same}&count=5")).await).await;
    assert_eq!(resource_ids(&page), all[5..10].to_vec());
    // A count above maxPageSize is lowered to it; a negative one is 0.
    let v = ok_json(app.get("/Users?cursor&count=-4").await).await;
    assert_eq!(v["itemsPerPage"], json!(0));
    // The last page has no nextCursor.
    let last = ok_json(app.get(&format!("/Users?cursor={}&count=5", page["nextCursor"].as_str().unwrap())).await).await;
    assert_eq!(resource_ids(&last), all[10..].to_vec());
    assert!(last.get("nextCursor").is_none(), "{last}");
    assert!(last.get("previousCursor").is_some(), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_survives_the_deletion_of_the_resource_it_points_at() {
    let app = spawn_app().await;
    users(&app, 30).await;
    for sort in ["", "&sortBy=userName", "&sortBy=displayName&sortOrder=descending"] {
        let all = resource_ids(&ok_json(app.get(&format!("/Users?count=100{sort}")).await).await);
        let page = ok_json(app.get(&format!("/Users?count=7&cursor{sort}")).await).await;
        let ids = resource_ids(&page);
        assert_eq!(ids, all[..7].to_vec());
        let r = app.delete(&format!("/Users/{}", ids[6])).await;
        assert_eq!(r.status(), 204);
        let next = page["nextCursor"].as_str().unwrap();
        let page = ok_json(app.get(&format!("/Users?count=7&cursor={next}{sort}")).await).await;
        assert_eq!(resource_ids(&page), all[7..14].to_vec(), "{sort}");
        assert_eq!(page["totalResults"].as_u64(), Some(all.len() as u64 - 1));
        // Back from there: the six left of the first page.
        let prev = page["previousCursor"].as_str().unwrap();
        let back = ok_json(app.get(&format!("/Users?count=7&cursor={prev}{sort}")).await).await;
        assert_eq!(resource_ids(&back), all[..6].to_vec(), "{sort}");
        assert!(back.get("previousCursor").is_none(), "that is the first page: {back}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_search_pages_by_cursor_and_root_search_crosses_resource_types() {
    let app = spawn_app().await;
    users(&app, 10).await;
    let mut groups = Vec::new();
    for i in 0..4 {
        groups.push(app.group(&format!("group{i}")).await);
    }
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "cursor": "", "count": 4,
        "filter": "userName sw \"user\"", "sortBy": "userName", "attributes": ["userName"]});
    let all = resource_ids(
        &ok_json(app.get(&format!("/Users?count=100&sortBy=userName&filter={}", enc(r#"userName sw "user""#))).await)
            .await,
    );
    let mut seen = Vec::new();
    let mut body = search.clone();
    loop {
        let v = ok_json(app.post("/Users/.search", &body).await).await;
        assert_eq!(v["totalResults"], json!(10));
        assert!(v["Resources"].as_array().unwrap().iter().all(|r| r.get("displayName").is_none()), "projected");
        seen.extend(resource_ids(&v));
        match v.get("nextCursor") {
            Some(c) => body["cursor"] = c.clone(),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // The root search: users, then groups, pages of 3 across the boundary, and back.
    let users_then_groups: Vec<String> = {
        let v = ok_json(app.post("/.search", &json!({"count": 100})).await).await;
        resource_ids(&v)
    };
    assert_eq!(users_then_groups.len(), 14);
    assert_eq!(users_then_groups[10..].to_vec(), groups);
    let mut body = json!({"cursor": "", "count": 3});
    let mut pages = Vec::new();
    loop {
        let v = ok_json(app.post("/.search", &body).await).await;
        assert_eq!(v["totalResults"], json!(14));
        pages.push(v.clone());
        match v.get("nextCursor") {
            Some(c) => body["cursor"] = c.clone(),
            None => break,
        }
    }
    let forward: Vec<String> = pages.iter().flat_map(resource_ids).collect();
    assert_eq!(forward, users_then_groups);
    let mut back = Vec::new();
    let mut at = pages.last().cloned();
    while let Some(v) = at {
        back.splice(0..0, resource_ids(&v));
        at = match v.get("previousCursor") {
            Some(c) => Some(ok_json(app.post("/.search", &json!({"cursor": c, "count": 3})).await).await),
            None => None,
        };
    }
    assert_eq!(back, users_then_groups);
    // Starting a page exactly at the first group: its previous page is the last users.
    let v = ok_json(app.post("/.search", &json!({"cursor": "", "count": 10})).await).await;
    let next = v["nextCursor"].clone();
    let groups_page = ok_json(app.post("/.search", &json!({"cursor": next, "count": 10})).await).await;
    assert_eq!(resource_ids(&groups_page), groups);
    let prev = groups_page["previousCursor"].clone();
    let v = ok_json(app.post("/.search", &json!({"cursor": prev, "count": 2})).await).await;
    assert_eq!(resource_ids(&v), users_then_groups[8..10].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_provider_config_advertises_pagination() {
    let settings = HttpSettings { default_page_size: 50, max_page_size: 200, ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let v = ok_json(app.get("/ServiceProviderConfig").await).await;
    assert_eq!(
        v["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index", "defaultPageSize": 50, "maxPageSize": 200}),
        "no cursorTimeout: cursors do not expire"
    );
    // Index paging stays the default: a list without paging parameters is an index page.
    users(&app, 3).await;
    let v = ok_json(app.get("/Users").await).await;
    assert_eq!(v["startIndex"], json!(1));
    assert!(v.get("nextCursor").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_walk_stays_right_while_users_come_and_go() {
    let app = spawn_app().await;
    users(&app, 40).await;
    let mut start = 1;
    let mut step = 0;
    loop {
        let all = resource_ids(&ok_json(app.get("/Users?count=1000").await).await);
        let v = ok_json(app.get(&format!("/Users?startIndex={start}&count=6")).await).await;
        let from = (start - 1).min(all.len());
        assert_eq!(resource_ids(&v), all[from..].iter().take(6).cloned().collect::<Vec<_>>(), "at {start}");
        assert_eq!(v["totalResults"].as_u64(), Some(all.len() as u64));
        if from >= all.len() {
            break;
        }
        step += 1;
        match step % 3 {
            0 => assert_eq!(app.delete(&format!("/Users/{}", all[0])).await.status(), 204),
            1 => {
                app.user(&format!("late{step}")).await;
            }
            _ => {}
        }
        start += 6;
    }
}
