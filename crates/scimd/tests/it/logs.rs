//! The access log and the request id (issue 13, logs): one line per request with its id,
//! tenant, token id, method, route template, status, latency and bytes; no attribute value and
//! no secret at info level.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use super::cli::{Db, Server, free_port, wait_healthy};
use super::common::*;

/// A `scimd serve` at info level with JSON logs, on the engine under test.
fn serve_json_logs(db: &Db, port: u16, admin: u16) -> Server {
    let mut cmd: Command = db.command(&[
        "--log-format",
        "json",
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
    ]);
    cmd.env("RUST_LOG", "info");
    Server::spawn(cmd)
}

/// A full provisioning run (users and groups created, read by filter, patched, replaced,
/// refused, deleted; a bad token; a setup link opened and redeemed), then every line scimd
/// wrote is searched for what the run sent: no attribute value, no token, no setup link
/// secret may appear. And each request has its access line.
#[test]
fn a_provisioning_run_logs_one_json_line_per_request_without_values_or_secrets() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = if on_postgres() { Db::postgres() } else { Db::new() };
    db.expect(0, &["tenant", "create", "acme"]);
    let token = db.new_token("acme");
    let token_id = token.trim_start_matches("scimd_").split('_').next().unwrap().to_owned();
    let invite = db.expect(0, &["tenant", "invite", "acme", "--public-url", "http://127.0.0.1:1"]);
    let link = invite.split_whitespace().find(|w| w.contains("/setup/")).unwrap().to_owned();
    let link_secret = link.rsplit('/').next().unwrap().to_owned();
    let (port, admin) = (free_port(), free_port());
    let server = serve_json_logs(&db, port, admin);
    let origin = format!("http://127.0.0.1:{port}");
    let scim = format!("{origin}/scim/v2");
    let client = reqwest::Client::new();
    // Values only this run sends: none may show up in the log.
    let values = [
        "Quixotic7f3a",
        "Zebulon9c2e",
        "zq.7f3a@example.com",
        "EMP-998877",
        "Displayname4242",
        "Teamname5151",
        "zz-QQ",
        "ext-0x5eed",
    ];
    let mut sent = 0;
    let mut ids = Vec::new();
    rt.block_on(async {
        wait_healthy(&client, &format!("{origin}/healthz")).await;
        let req = |m: Method, path: &str| client.request(m, format!("{scim}{path}")).bearer_auth(&token);
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": "zq.7f3a@example.com",
            "externalId": "ext-0x5eed",
            "name": {"givenName": "Zebulon9c2e", "familyName": "Quixotic7f3a"},
            "emails": [{"type": "work", "value": "zq.7f3a@example.com", "primary": true}],
            "preferredLanguage": "zz-QQ",
            "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "EMP-998877"}
        });
        let r =
            req(Method::POST, "/Users").header("x-request-id", "rid-from-proxy-1").json(&user).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-request-id"], "rid-from-proxy-1", "a loopback proxy's id is kept");
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let r = req(Method::POST, "/Users").json(&user).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 409);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let filter = "filter=userName%20eq%20%22zq.7f3a%40example.com%22";
        let r = req(Method::GET, &format!("/Users?{filter}")).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 200);
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Displayname4242"}]});
        let r = req(Method::PATCH, &format!("/Users/{id}")).json(&patch).send().await.unwrap();
        sent += 1;
        assert!(r.status().is_success(), "{}", r.status());
        let mut replaced = user.clone();
        replaced["active"] = json!(false);
        let r = req(Method::PUT, &format!("/Users/{id}")).json(&replaced).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 200);
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Teamname5151", "members": [{"value": id}]});
        let r = req(Method::POST, "/Groups").json(&group).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 201);
        let r = client.get(format!("{scim}/Users")).bearer_auth(format!("{token}x")).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 401);
        let r = req(Method::DELETE, &format!("/Users/{id}")).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 204);
        // The setup link: its path is its secret.
        let setup = format!("{origin}/setup/{link_secret}");
        let r = client.get(&setup).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 200);
        let r = client.get(format!("{origin}/no/such/Quixotic7f3a")).send().await.unwrap();
        sent += 1;
        assert_eq!(r.status(), 404);
        assert!(r.headers().contains_key("x-request-id"), "every answer has an id, a 404 too");
    });
    let (_, stderr) = server.stop_cleanly_with_stderr();

    for needle in values.iter().copied().chain([token.as_str(), link_secret.as_str()]) {
        assert!(!stderr.contains(needle), "the log holds {needle:?}:\n{stderr}");
    }
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "scimd::access").collect();
    assert_eq!(access.len(), sent, "one access line per request (probes are at debug): {access:#?}");
    for l in &access {
        for field in ["timestamp", "request_id", "method", "route", "status", "latency_ms", "bytes_in", "bytes_out"] {
            assert!(!l[field].is_null(), "{field} missing in {l}");
        }
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["listener"], "scim");
    }
    let created = access.iter().find(|l| l["request_id"] == "rid-from-proxy-1").expect("the proxy's id is logged");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["route"], "/scim/v2/Users");
    assert_eq!(created["status"], 201);
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["token"], token_id.as_str());
    assert!(created["bytes_in"].as_u64().unwrap() > 100 && created["bytes_out"].as_u64().unwrap() > 100, "{created}");
    let conflict = access.iter().find(|l| l["request_id"] == ids[0].as_str()).expect("the made-up id is logged");
    assert_eq!(conflict["status"], 409);
    let routes: Vec<&str> = access.iter().filter_map(|l| l["route"].as_str()).collect();
    for template in ["/scim/v2/Users/{id}", "/scim/v2/Groups", "/setup/{secret}", "unmatched"] {
        assert!(routes.contains(&template), "{template} not among {routes:?}");
    }
    let refused = access.iter().find(|l| l["status"] == 401).unwrap();
    assert_eq!(refused["tenant"], "-", "a refused token authenticates as no tenant");
}

/// `X-Request-Id` is believed only from a trusted proxy: from anyone else scimd makes one up,
/// so a client cannot pass itself off as another request in the logs and events.
#[tokio::test]
async fn request_id_of_an_untrusted_peer_is_replaced_and_every_answer_has_one() {
    let settings = scimd::http::HttpSettings { trusted_proxies: Vec::new(), ..Default::default() };
    let app = spawn_app_with(settings, &[]).await;
    let r = app.req(Method::GET, "/Users").header("x-request-id", "forged-id").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "forged-id");
    assert!(uuid_like(&id), "{id}");
    let r = app.post("/Users", &entra_user("idcheck@example.com", "idcheck")).await;
    assert_eq!(r.status(), 201);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let feed = app.store.events(app.tenant.id, 0, 10).await.unwrap();
    let body: Value = serde_json::from_str(&feed.events.last().unwrap().body).unwrap();
    assert_eq!(body["actor"]["request_id"], rid.as_str(), "the event records the id the client got");
    for path in ["/healthz", "/readyz", "/nope"] {
        let r = app.client.get(format!("{}{path}", app.origin)).send().await.unwrap();
        assert!(r.headers().contains_key("x-request-id"), "{path}");
    }
    // The vendor API's callers are the vendor's own application: their ids are kept.
    let r = app.client.get(format!("{}/healthz", app.admin)).header("x-request-id", "app-1").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "app-1");

    // A trusted proxy's (loopback, the default) id is kept, a malformed one replaced.
    let app = spawn_app().await;
    let r = app.req(Method::GET, "/Users").header("x-request-id", "lb-7a9c").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "lb-7a9c");
    let r = app.req(Method::GET, "/Users").header("x-request-id", "has space").send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"], "has space");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}
