//! Backups and moves: `scimd export` / `scimd import` and `scimd store copy`, run as a user runs
//! them, on stores populated through the real HTTP API. A copy must serve exactly what the
//! original served (every resource with its meta and ETag, the change feed byte for byte,
//! tokens, policy, guard, webhooks), an import must be idempotent and give tenants the
//! target's own keys, and a bad file must be refused with exit code 2.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{Db, Server, wait_healthy};
use crate::common::{PATCH_OP, SCIM, entra_user};

/// Two free ports, different (both are held while the second is found).
fn ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// What a populated store's tests need to know.
struct Fixture {
    /// contoso's token (label, expiry).
    contoso: String,
    /// contoso's revoked token.
    revoked: String,
    /// fabrikam's token.
    fabrikam: String,
    /// A key of the vendor API.
    api_key: String,
    /// The ids of contoso's users and groups (and fabrikam's), for GETs.
    users: Vec<(String, String)>,
    groups: Vec<(String, String)>,
    /// What the original served over HTTP (see [`served`]).
    served: String,
}

/// Asserts that two texts are equal, showing the first line that differs (they are long).
#[track_caller]
fn same(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let (l, r): (Vec<&str>, Vec<&str>) = (left.lines().collect(), right.lines().collect());
    let i = (0..l.len().max(r.len())).find(|&i| l.get(i) != r.get(i)).unwrap_or(0);
    panic!(
        "{what}: they differ at line {}:\n  {}\n  {}\n(the line before: {})",
        i + 1,
        l.get(i).unwrap_or(&"<none>"),
        r.get(i).unwrap_or(&"<none>"),
        i.checked_sub(1).and_then(|j| l.get(j)).unwrap_or(&"<none>")
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap().trim().to_owned()
}

/// `scimd ARGS` on `db` with `input` on stdin.
fn with_stdin(db: &Db, args: &[&str], input: &[u8]) -> Output {
    let mut child =
        db.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: scimd may stop reading (a refused file) before the end.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn import(db: &Db, file: &[u8]) -> Output {
    with_stdin(db, &["import"], file)
}

/// `scimd export ARGS` on `db`: the file.
fn export(db: &Db, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let out = db.run(&all);
    assert_eq!(out.status.code(), Some(0), "scimd {all:?}: {}", stderr(&out));
    out.stdout
}

/// A file without its header line (which says when it was exported).
fn body(file: &[u8]) -> String {
    let text = String::from_utf8(file.to_vec()).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let h: Value = serde_json::from_str(header).unwrap();
    assert_eq!(h["format"], "scimd-export", "{header}");
    assert_eq!(h["version"], 1, "{header}");
    rest.to_owned()
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, v)
}

/// Populates `db` through the CLI and the HTTP API of a `scimd serve` on it: two tenants (one
/// with required attributes and other guard settings, one whose guard tripped), tokens (one
/// revoked), a setup link, an API key, two webhooks, users with the enterprise extension,
/// groups with members (a group in a group), a PATCH, a deactivation, a DELETE. Returns what
/// the server served at the end.
fn populate(db: &Db) -> Fixture {
    db.expect(0, &["tenant", "create", "contoso", "--require", "userName,name.familyName"]);
    db.expect(0, &["tenant", "create", "fabrikam"]);
    db.expect(0, &["tenant", "guard", "contoso", "--share", "0.3", "--min", "10", "--window", "2h"]);
    db.expect(0, &["tenant", "guard", "fabrikam", "--share", "0.01", "--min", "1"]);
    let contoso =
        last_line(&db.expect(0, &["token", "create", "--tenant", "contoso", "--label", "entra", "--expires", "90d"]));
    let revoked = db.new_token("contoso");
    db.expect(0, &["token", "revoke", &revoked]);
    let fabrikam = db.new_token("fabrikam");
    db.expect(0, &["tenant", "invite", "contoso", "--public-url", "https://scim.example.com"]);
    let api_key = last_line(&db.expect(0, &["api-key", "create", "--label", "billing"]));
    db.expect(0, &["webhook", "add", "--url", "http://127.0.0.1:9/hook", "--events", "user.*"]);
    db.expect(0, &["webhook", "add", "--poll", "--format", "set", "--tenant", "contoso"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (port, admin) = ports();
    let server = Server::start(db, port, admin);
    let origin = format!("http://127.0.0.1:{port}");
    let scim = format!("{origin}/scim/v2");
    let c = reqwest::Client::new();
    rt.block_on(wait_healthy(&c, &format!("{origin}/healthz")));
    let fixture = rt.block_on(async {
        let post = |token: &str, path: &str, body: Value| {
            c.post(format!("{scim}{path}")).bearer_auth(token).header("content-type", SCIM).body(body.to_string())
        };
        let patch = |token: &str, path: &str, ops: Value| {
            let body = json!({"schemas": [PATCH_OP], "Operations": ops});
            c.patch(format!("{scim}{path}")).bearer_auth(token).header("content-type", SCIM).body(body.to_string())
        };
        let mut users = Vec::new();
        let mut groups = Vec::new();
        let create = |who: &str, path: &str, body: Value| {
            let req = post(if who == "fabrikam" { &fabrikam } else { &contoso }, path, body);
            async move {
                let r = req.send().await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                assert_eq!(status, StatusCode::CREATED, "{v}");
                v["id"].as_str().unwrap().to_owned()
            }
        };
        let a = create("contoso", "/Users", entra_user("a@contoso.com", "ext-a")).await;
        let b = create("contoso", "/Users", entra_user("b@contoso.com", "ext-b")).await;
        let cc = create("contoso", "/Users", entra_user("c@contoso.com", "ext-c")).await;
        let nested = create("contoso", "/Groups", json!({"displayName": "nested"})).await;
        let d = create("contoso", "/Users", entra_user("d@contoso.com", "ext-d")).await;
        let staff = create(
            "contoso",
            "/Groups",
            json!({"displayName": "staff", "externalId": "g-staff",
                   "members": [{"value": a}, {"value": b, "display": "Bee"}, {"value": cc}]}),
        )
        .await;
        let f = create("fabrikam", "/Users", json!({"userName": "f@fabrikam.com", "displayName": "F"})).await;
        let g = create("fabrikam", "/Users", json!({"userName": "g@fabrikam.com"})).await;
        // Members of both kinds, the group created before the user: the copy must list them
        // in the same order.
        let (status, v) = send(patch(
            &contoso,
            &format!("/Groups/{staff}"),
            json!([{"op": "add", "path": "members",
                "value": [{"value": d, "display": "Dee"}, {"value": nested}]}]),
        ))
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
        let (status, v) =
            send(patch(&contoso, &format!("/Users/{a}"), json!([{"op": "replace", "path": "title", "value": "Boss"}])))
                .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (status, v) =
            send(patch(&contoso, &format!("/Users/{b}"), json!([{"op": "replace", "value": {"active": false}}]))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (status, v) =
            send(patch(&fabrikam, &format!("/Users/{g}"), json!([{"op": "replace", "value": {"active": false}}])))
                .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (status, _) = send(c.delete(format!("{scim}/Users/{cc}")).bearer_auth(&contoso)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // The policy refuses a user without name.familyName.
        let (status, v) = send(post(&contoso, "/Users", json!({"userName": "nofamily@contoso.com"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        for id in [&a, &b, &d] {
            users.push(("contoso".to_owned(), id.clone()));
        }
        users.extend([("fabrikam".to_owned(), f), ("fabrikam".to_owned(), g)]);
        groups.extend([("contoso".to_owned(), nested), ("contoso".to_owned(), staff)]);
        let tokens = [("contoso", contoso.clone()), ("fabrikam", fabrikam.clone())];
        let served = served(&c, &origin, &tokens, &users, &groups).await;
        Fixture {
            contoso: contoso.clone(),
            revoked: revoked.clone(),
            fabrikam: fabrikam.clone(),
            api_key,
            users,
            groups,
            served,
        }
    });
    server.stop_cleanly_with_stderr();
    let show = db.expect(0, &["tenant", "show", "fabrikam"]);
    assert!(show.contains("TRIPPED"), "fabrikam's guard tripped: {show}");
    fixture
}

/// Everything the SCIM API serves of the fixture's resources, as text with the server's origin
/// replaced: the lists of each tenant, then every user and group with its ETag header.
async fn served(
    c: &reqwest::Client,
    origin: &str,
    tokens: &[(&str, String)],
    users: &[(String, String)],
    groups: &[(String, String)],
) -> String {
    let token = |tenant: &str| tokens.iter().find(|(t, _)| *t == tenant).map(|(_, k)| k.clone()).unwrap();
    let mut text = String::new();
    for (tenant, _) in tokens {
        for list in ["/Users?count=100", "/Groups?count=100", "/Users?filter=userName+sw+%22a%22"] {
            let r = c.get(format!("{origin}/scim/v2{list}")).bearer_auth(token(tenant)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{list}");
            text += &format!("{tenant} {list}\n{}\n", r.text().await.unwrap());
        }
    }
    for (path, list) in [("Users", users), ("Groups", groups)] {
        for (tenant, id) in list {
            let r = c.get(format!("{origin}/scim/v2/{path}/{id}")).bearer_auth(token(tenant)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}/{id}");
            let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            text += &format!("{tenant} {path}/{id} {etag}\n{}\n", r.text().await.unwrap());
        }
    }
    text.replace(origin, "ORIGIN")
}

/// What the command line shows of a store, without a server (so nothing changes meanwhile):
/// the full feed of each tenant, the tenants, tokens, setup links, API keys and webhooks.
fn shown(db: &Db) -> String {
    let mut text = String::new();
    for tenant in ["contoso", "fabrikam"] {
        for args in [
            vec!["events", "tail", "--tenant", tenant],
            vec!["tenant", "show", tenant, "--json"],
            vec!["token", "list", "--tenant", tenant, "--json"],
            vec!["tenant", "invites", tenant, "--json"],
        ] {
            text += &format!("{args:?}\n{}", db.expect(0, &args));
        }
    }
    for args in [vec!["tenant", "list", "--json"], vec!["api-key", "list", "--json"], vec!["webhook", "list", "--json"]]
    {
        text += &format!("{args:?}\n{}", db.expect(0, &args));
    }
    text
}

fn copy(from: &Db, to: &Db) {
    let out = from.run(&["store", "copy", "--from", from.url(), "--to", to.url()]);
    assert_eq!(out.status.code(), Some(0), "store copy: {}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("counts verified"), "{}", stdout(&out));
    assert!(stderr(&out).contains("tenant contoso: imported: 3 users, 2 groups, 4 memberships"), "{}", stderr(&out));
}

/// Serves `db` and checks it serves what the original did, that its tokens authenticate as
/// before (the revoked one still refused), that the policy still refuses, and that the API key
/// still opens the vendor API.
fn check_served(db: &Db, f: &Fixture) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (port, admin) = ports();
    let server = Server::start(db, port, admin);
    let origin = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    rt.block_on(async {
        wait_healthy(&c, &format!("{origin}/healthz")).await;
        let tokens = [("contoso", f.contoso.clone()), ("fabrikam", f.fabrikam.clone())];
        let now = served(&c, &origin, &tokens, &f.users, &f.groups).await;
        same(&now, &f.served, "the copy serves what the original served");
        let r = c.get(format!("{origin}/scim/v2/Users")).bearer_auth(&f.revoked).send().await.unwrap();
        assert_eq!(r.status(), 401, "the revoked token is still refused");
        let body = json!({"userName": "nofamily@contoso.com"}).to_string();
        let r = c
            .post(format!("{origin}/scim/v2/Users"))
            .bearer_auth(&f.contoso)
            .header("content-type", SCIM)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "the policy still refuses a user without name.familyName");
        let r = c
            .get(format!("http://127.0.0.1:{admin}/api/v1/tenants/contoso/events?after=0&limit=3"))
            .bearer_auth(&f.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the API key opens the vendor API");
    });
    server.stop_cleanly_with_stderr();
}

/// sqlite -> `middle` -> a second sqlite: each copy shows, exports and serves what the
/// original did.
fn copies_keep_everything(middle: Db) {
    let src = Db::new();
    let f = populate(&src);
    let before = shown(&src);
    let original = body(&export(&src, &["--all"]));
    for needle in ["\"kind\":\"webhook\"", "\"kind\":\"api_key\"", "\"kind\":\"invite\"", "\"type\":\"user.deleted\""] {
        assert!(original.contains(needle), "the export has {needle}");
    }

    copy(&src, &middle);
    same(&shown(&middle), &before, "the first copy shows what the original shows");
    same(&body(&export(&middle, &["--all"])), &original, "the first copy exports what the original exports");
    let last = Db::new();
    copy(&middle, &last);
    same(&shown(&last), &before, "the second copy shows what the original shows");
    same(&body(&export(&last, &["--all"])), &original, "the second copy exports what the original exports");

    check_served(&middle, &f);
    check_served(&last, &f);
}

#[test]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
fn store_copy_sqlite_to_postgres_to_sqlite_keeps_everything() {
    copies_keep_everything(Db::postgres());
}

#[test]
fn store_copy_sqlite_to_sqlite_keeps_everything() {
    copies_keep_everything(Db::new());
}

/// The tenants of a store, `NAME`s in order.
fn tenants(db: &Db) -> Vec<String> {
    let list: Value = serde_json::from_str(&db.expect(0, &["tenant", "list", "--json"])).unwrap();
    list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn import_twice_is_idempotent_and_gives_tenants_the_targets_own_keys() {
    let src = Db::new();
    let f = populate(&src);
    let file = export(&src, &["--tenant", "contoso"]);
    assert!(!body(&file).contains("fabrikam"), "only contoso is exported");

    // A target with tenants of its own: contoso gets another key there.
    let dst = Db::new();
    dst.expect(0, &["tenant", "create", "other"]);
    dst.expect(0, &["tenant", "create", "zeta"]);
    let other = dst.new_token("other");
    dst.expect(0, &["webhook", "add", "--url", "http://127.0.0.1:9/all"]);
    let other_feed = dst.expect(0, &["events", "tail", "--tenant", "other"]);

    let out = import(&dst, &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("tenant contoso: imported: 3 users, 2 groups, 4 memberships"), "{}", stderr(&out));
    assert!(stderr(&out).contains("counts verified"), "{}", stderr(&out));
    let once = body(&export(&dst, &["--tenant", "contoso"]));
    same(&once, &body(&file), "the target exports contoso as the source did");
    let contoso_feed = src.expect(0, &["events", "tail", "--tenant", "contoso"]);
    same(&dst.expect(0, &["events", "tail", "--tenant", "contoso"]), &contoso_feed, "contoso's feed");
    let list_before = dst.expect(0, &["tenant", "list", "--json"]);

    let again = import(&dst, &file);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("tenant contoso: imported again"), "{}", stderr(&again));
    same(&body(&export(&dst, &["--tenant", "contoso"])), &once, "a second import changes nothing");
    assert_eq!(dst.expect(0, &["tenant", "list", "--json"]), list_before);
    assert_eq!(tenants(&dst), ["contoso", "other", "zeta"]);
    assert_eq!(dst.expect(0, &["events", "tail", "--tenant", "other"]), other_feed, "the other tenants are untouched");
    // The target's webhook of every tenant delivers contoso's events from the imported position on.
    let hooks: Value = serde_json::from_str(&dst.expect(0, &["webhook", "list", "--json"])).unwrap();
    let contoso_delivery =
        hooks[0]["deliveries"].as_array().unwrap().iter().find(|d| d["tenant"] == "contoso").cloned().unwrap();
    assert_eq!(contoso_delivery["position"], contoso_feed.lines().count(), "{hooks}");

    // Served: contoso's token sees contoso's users, the other tenant's sees none of them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (port, admin) = ports();
    let server = Server::start(&dst, port, admin);
    let origin = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    rt.block_on(async {
        wait_healthy(&c, &format!("{origin}/healthz")).await;
        let total = |token: String| {
            let c = c.clone();
            let url = format!("{origin}/scim/v2/Users?count=0");
            async move {
                let v: Value = c.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
                v["totalResults"].as_u64().unwrap()
            }
        };
        assert_eq!(total(f.contoso.clone()).await, 3);
        assert_eq!(total(other.clone()).await, 0);
        let r = c.get(format!("{origin}/scim/v2/Users")).bearer_auth(&f.fabrikam).send().await.unwrap();
        assert_eq!(r.status(), 401, "fabrikam was not imported");
    });
    server.stop_cleanly_with_stderr();
}

#[test]
fn a_bad_file_is_refused_with_exit_2_naming_the_line() {
    let src = Db::new();
    src.expect(0, &["tenant", "create", "contoso"]);
    src.new_token("contoso");
    let good = String::from_utf8(export(&src, &["--all"])).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let dst = Db::new();

    let refused = |file: &str, want: &str| {
        let out = import(&dst, file.as_bytes());
        assert_eq!(out.status.code(), Some(2), "{want}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "wanted {want:?} in: {}", stderr(&out));
    };
    refused("", "empty");
    refused(&lines[1..].join("\n"), "line 1: the first line is no header");
    refused("not json\n", "line 1: the first line is not JSON");
    refused(&good.replacen("\"version\":1", "\"version\":2", 1), "format version 2");
    let truncated = lines[..lines.len() - 3].join("\n");
    refused(&truncated, "truncated");
    let garbage: Vec<&str> = [&lines[..2], &["{\"kind\":"], &lines[2..]].concat();
    refused(&garbage.join("\n"), "line 3:");
    let unknown: Vec<&str> = [&lines[..2], &["{\"kind\":\"secret\"}"], &lines[2..]].concat();
    refused(&unknown.join("\n"), "line 3: unknown variant `secret`");
    let token = lines.iter().position(|l| l.contains("\"kind\":\"token\"")).unwrap();
    let bad_digest = good.replace(lines[token], &lines[token].replacen("\"digest\":\"", "\"digest\":\"zz", 1));
    refused(&bad_digest, &format!("line {}: digest", token + 1));
    let miscounted = good.replace("\"tokens\":1", "\"tokens\":2");
    refused(&miscounted, "counts");
    assert_eq!(tenants(&dst), ["contoso"], "the header-less and broken files wrote nothing but the tenant line");

    // Another tenant of the same name in the target is a runtime failure.
    let other = Db::new();
    other.expect(0, &["tenant", "create", "contoso"]);
    let out = import(&other, good.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("another tenant named \"contoso\""), "{}", stderr(&out));
}

/// Every file of a directory with its bytes.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `scimd ARGS` in `dir`, as nobody when this runs as root (root ignores file modes).
fn unprivileged(dir: &std::path::Path, args: &[&str]) -> Output {
    let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_scimd")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_scimd"))
    };
    for var in ["SCIMD_DATABASE", "SCIMD_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn").args(args).current_dir(dir).output().unwrap()
}

#[test]
fn store_copy_reads_a_read_only_source_and_refuses_one_of_another_schema() {
    let src = Db::new();
    src.expect(0, &["tenant", "create", "contoso"]);
    src.new_token("contoso");
    let original = body(&export(&src, &["--all"]));
    // The source: one file (a backup: no -wal or -shm beside it), 0444 in a directory 0555.
    let ro = tempfile::tempdir().unwrap();
    let file = ro.path().join("src.db");
    src.expect(0, &["backup", "--to", file.to_str().unwrap()]);
    let from = format!("sqlite://{}", file.display());
    set_mode(&file, 0o444);
    set_mode(ro.path(), 0o555);
    let before = files(ro.path());
    let target = tempfile::tempdir().unwrap();
    set_mode(target.path(), 0o777);
    let to = format!("sqlite://{}", target.path().join("copy.db").display());
    let out = unprivileged(target.path(), &["store", "copy", "--from", &from, "--to", &to]);
    let exported = unprivileged(target.path(), &["--database", &from, "export", "--all"]);
    let after = files(ro.path());
    set_mode(ro.path(), 0o755);
    set_mode(&file, 0o644);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
    same(&body(&exported.stdout), &original, "export reads the read-only file too");
    assert!(after == before, "the source's directory is as it was");
    let copy = Db::new();
    let out = copy.run(&["store", "copy", "--from", &to, "--to", copy.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    same(&body(&export(&copy, &["--all"])), &original, "the copy of the read-only file holds everything");

    // A source of schema version 7 is neither read nor migrated: `scimd migrate` is named.
    let mut old = std::fs::read(&file).unwrap();
    old[60..64].copy_from_slice(&7u32.to_be_bytes());
    let old_file = ro.path().join("old.db");
    std::fs::write(&old_file, &old).unwrap();
    let old_url = format!("sqlite://{}", old_file.display());
    let fresh = Db::new();
    let out = fresh.run(&["store", "copy", "--from", &old_url, "--to", fresh.url()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("schema version 7") && stderr(&out).contains("scimd migrate"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&old_file).unwrap(), old, "the source was not migrated");
    let out = fresh.run(&["--database", &old_url, "export", "--all"]);
    assert_eq!(out.status.code(), Some(1), "export refuses it too: {}", stderr(&out));

    // A source that does not exist is not made; a copy onto itself is refused.
    let missing = ro.path().join("missing.db");
    let out = fresh.run(&["store", "copy", "--from", missing.to_str().unwrap(), "--to", fresh.url()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!missing.exists());
    let out = fresh.run(&["store", "copy", "--from", &from, "--to", &from]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
