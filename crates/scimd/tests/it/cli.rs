//! The `scimd` command line, run as a user runs it: the built binary on a temporary database
//! (SQLite; a few tests also on a PostgreSQL database of their own, with
//! `SCIMD_TEST_POSTGRES_URL`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

/// A database of one test's own, and `scimd` commands on it (also used by `webhooks`).
pub(super) struct Db {
    dir: TempDir,
    url: String,
    /// The PostgreSQL database behind `url`, dropped with the `Db`.
    _pg: Option<PgDatabase>,
}

/// A PostgreSQL database of one test's own: (server URL, database name); dropped, with any
/// connection a server left behind, when the guard is.
struct PgDatabase {
    server: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.server)
            .arg("-qc")
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .status();
    }
}

impl Db {
    pub(super) fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Db { dir, url, _pg: None }
    }

    /// A fresh, empty database on the server `SCIMD_TEST_POSTGRES_URL` names.
    pub(super) fn postgres() -> Db {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let server = std::env::var("SCIMD_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .expect("the PostgreSQL tests run (cfg scimd_pg) but SCIMD_TEST_POSTGRES_URL names no server");
        let name = format!("cli_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let status = Command::new("psql").arg(&server).arg("-qc").arg(format!("CREATE DATABASE {name}")).status();
        assert!(status.is_ok_and(|s| s.success()), "psql CREATE DATABASE {name}");
        let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
        let pg = PgDatabase { server, name };
        Db { dir: tempfile::tempdir().unwrap(), url, _pg: Some(pg) }
    }

    /// The database URL (also used by `transfer`).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// `scimd --database URL ARGS...`, with no SCIMD_* variables from the environment.
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimd"));
        for var in ["SCIMD_DATABASE", "SCIMD_CONFIG", "SCIMD_LISTEN", "SCIMD_ADMIN_LISTEN", "SCIMD_PUBLIC_URL"] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "warn").arg("--database").arg(&self.url).args(args).current_dir(self.dir.path());
        cmd
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and asserts the exit code; returns stdout.
    pub(super) fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "scimd {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs, asserts the exit code and returns stderr.
    fn expect_err(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "scimd {args:?}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    }

    pub(super) fn new_token(&self, tenant: &str) -> String {
        let out = self.expect(0, &["token", "create", "--tenant", tenant]);
        out.lines().last().unwrap().to_owned()
    }
}

const REFERENCE: &str = "userName,name.familyName,name.givenName,\
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,\
    emails[type eq \"work\"].value,preferredLanguage,active";

#[test]
fn tenant_create_list_show_delete() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "contoso", "--require", REFERENCE]);
    db.expect(0, &["tenant", "create", "fabrikam"]);

    let list = db.expect(0, &["tenant", "list"]);
    assert!(list.lines().any(|l| l.starts_with("contoso ")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("fabrikam ")), "{list}");

    let show = db.expect(0, &["tenant", "show", "contoso"]);
    assert!(show.contains("contoso"), "{show}");
    assert!(show.contains("emails[type eq \"work\"].value"), "{show}");
    assert!(show.contains("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"), "{show}");
    assert!(show.contains("tokens:   0"), "{show}");
    assert!(show.contains("created:  20"), "{show}");

    let json: serde_json::Value =
        serde_json::from_str(&db.expect(0, &["tenant", "show", "contoso", "--json"])).unwrap();
    assert_eq!(json["name"], "contoso");
    assert_eq!(json["required"].as_array().unwrap().len(), 7);
    let json: serde_json::Value = serde_json::from_str(&db.expect(0, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // A name taken is a runtime failure, not a usage error.
    let err = db.expect_err(1, &["tenant", "create", "contoso"]);
    assert!(err.contains("already exists"), "{err}");

    let err = db.expect_err(2, &["tenant", "delete", "contoso"]);
    assert!(err.contains("--yes"), "{err}");
    assert!(db.expect(0, &["tenant", "list"]).contains("contoso"), "delete without --yes deleted");

    db.expect(0, &["tenant", "delete", "contoso", "--yes"]);
    let list = db.expect(0, &["tenant", "list"]);
    assert!(!list.contains("contoso") && list.contains("fabrikam"), "{list}");
    db.expect_err(1, &["tenant", "show", "contoso"]);
    db.expect_err(1, &["tenant", "delete", "contoso", "--yes"]);
}

#[test]
fn bad_required_paths_and_names_are_usage_errors() {
    let db = Db::new();
    let err = db.expect_err(2, &["tenant", "create", "acme", "--require", "userName,name.nosuch"]);
    assert!(err.contains("name.nosuch"), "{err}");
    let err = db.expect_err(2, &["tenant", "create", "acme", "--require", "emails[type eq].value"]);
    assert!(err.contains("emails[type eq].value"), "{err}");
    for bad in ["Acme", "-acme", "a_b", "", &"a".repeat(64)] {
        let err = db.expect_err(2, &["tenant", "create", "--", bad]);
        assert!(err.contains("tenant name"), "{err}");
    }
    assert_eq!(db.expect(0, &["tenant", "list", "--json"]).trim(), "[]", "nothing was created");
}

#[test]
fn token_create_prints_the_secret_alone_on_the_last_line() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "contoso"]);
    let out = db.expect(0, &["token", "create", "--tenant", "contoso", "--label", "entra-prod", "--expires", "90d"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "a description comes first: {out}");
    let secret = *lines.last().unwrap();
    assert!(secret.starts_with("scimd_"), "{out}");
    assert!(!secret.contains(char::is_whitespace), "{out}");
    assert!(out.ends_with('\n'));
    assert_eq!(out.matches(secret).count(), 1, "the secret appears once: {out}");
    let id = secret.strip_prefix("scimd_").unwrap().split('_').next().unwrap();

    let list = db.expect(0, &["token", "list", "--tenant", "contoso"]);
    assert!(list.contains(id), "{list}");
    assert!(list.contains("entra-prod"), "{list}");
    assert!(!list.contains(secret), "token list shows a secret: {list}");
    // The secret part is base64url, which may itself hold '_': all that follows "scimd_<id>_".
    let secret_part = secret.strip_prefix(&format!("scimd_{id}_")).unwrap();
    assert!(!list.contains(secret_part), "{list}");
    let json = db.expect(0, &["token", "list", "--tenant", "contoso", "--json"]);
    assert!(!json.contains(secret_part), "{json}");
    let tokens: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(tokens[0]["id"], id);
    assert!(tokens[0]["expires"].is_string());
    assert!(tokens[0]["revoked"].is_null());

    for units in ["12h", "30m", "2w", "1y"] {
        db.expect(0, &["token", "create", "--tenant", "contoso", "--expires", units]);
    }
    db.expect_err(2, &["token", "create", "--tenant", "contoso", "--expires", "5x"]);
    db.expect_err(2, &["token", "create", "--tenant", "contoso", "--expires", "0d"]);
    assert!(db.expect(0, &["tenant", "show", "contoso"]).contains("tokens:   5 (5 active)"));
}

#[test]
fn token_revoke_by_id_or_by_whole_token() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "contoso"]);
    let first = db.new_token("contoso");
    let second = db.new_token("contoso");
    let first_id = first.strip_prefix("scimd_").unwrap().split('_').next().unwrap().to_owned();

    db.expect(0, &["token", "revoke", &first_id]);
    db.expect(0, &["token", "revoke", &second]);
    let tokens: serde_json::Value =
        serde_json::from_str(&db.expect(0, &["token", "list", "--tenant", "contoso", "--json"])).unwrap();
    assert!(tokens.as_array().unwrap().iter().all(|t| t["revoked"].is_string()), "{tokens}");
    let list = db.expect(0, &["token", "list", "--tenant", "contoso"]);
    assert!(!list.contains(&second), "{list}");
    assert!(db.expect(0, &["tenant", "show", "contoso"]).contains("tokens:   2 (0 active)"));

    // Revoking again is fine; an unknown id is a runtime failure; a mangled token is a usage error.
    db.expect(0, &["token", "revoke", &first_id]);
    db.expect_err(1, &["token", "revoke", "nosuchtoken0"]);
    db.expect_err(2, &["token", "revoke", "scimd_mangled"]);
}

#[test]
fn unknown_tenants_are_runtime_failures() {
    let db = Db::new();
    for args in [
        &["token", "create", "--tenant", "nope"][..],
        &["token", "list", "--tenant", "nope"],
        &["tenant", "show", "nope"],
        &["tenant", "delete", "nope", "--yes"],
    ] {
        let err = db.expect_err(1, args);
        assert!(err.contains("nope"), "{args:?}: {err}");
    }
}

#[test]
fn bad_usage_exits_2() {
    let db = Db::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["tenant"],
        &["tenant", "create"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["tenant", "list", "--nope"],
        &["serve", "--listen"],
    ] {
        db.expect_err(2, args);
    }
    db.expect(0, &["--help"]);
    assert!(db.expect(0, &["token", "create", "--help"]).contains("--expires"));
    let err = db.expect_err(2, &["--database", "mysql://localhost/x", "tenant", "list"]);
    assert!(err.contains("sqlite://"), "{err}");
}

#[test]
fn an_unreachable_database_is_a_runtime_failure() {
    let db = Db::new();
    let out = db
        .command(&["tenant", "list"])
        .arg("--database")
        .arg("postgres://scimd:s3cret@127.0.0.1:1/scimd")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("s3cret"), "the password leaks: {err}");
    let file = db.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let impossible = format!("sqlite://{}/t.db", file.display());
    let out = db.command(&["tenant", "list"]).arg("--database").arg(&impossible).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn configuration_file_errors_are_usage_errors_with_line_and_column() {
    let db = Db::new();
    let path = db.dir.path().join("scimd.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[limits]\nmax_page = 5\n").unwrap();
    let err = db.expect_err(2, &["--config", path.to_str().unwrap(), "tenant", "list"]);
    assert!(err.contains("line 3, column 1"), "{err}");
    assert!(err.contains("max_page"), "{err}");
    db.expect_err(2, &["--config", "/nonexistent/scimd.toml", "tenant", "list"]);

    // A valid file's database is used, and --database wins over it.
    let other = db.dir.path().join("other.db");
    std::fs::write(&path, format!("database = \"sqlite://{}\"\n", other.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .env_remove("SCIMD_DATABASE")
        .env("SCIMD_CONFIG", &path)
        .args(["tenant", "create", "fromfile"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(other.exists());
    assert!(!db.expect(0, &["tenant", "list"]).contains("fromfile"), "--database beats the file");
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .env("SCIMD_DATABASE", &db.url)
        .env("SCIMD_CONFIG", &path)
        .args(["tenant", "create", "fromenv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(db.expect(0, &["tenant", "list"]).contains("fromenv"), "SCIMD_DATABASE beats the file");
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `scimd serve`, killed when dropped.
/// A running `scimd serve`, killed (SIGKILL) when dropped (also used by `webhooks`).
pub(super) struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Collects stderr (echoed into the test's output as it comes) until the process exits.
    stderr: Option<JoinHandle<String>>,
}

impl Server {
    pub(super) fn start(db: &Db, port: u16, admin_port: u16) -> Server {
        Server::spawn(db.command(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ]))
    }

    /// Runs a `scimd serve` command, reading its stdout and stderr.
    pub(super) fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("scimd: {line}");
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Server { child, lines, stderr: Some(stderr) }
    }

    /// The stdout lines until one starts with `prefix` (or ~10 s pass).
    pub(super) fn read_until(&self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line starting with {prefix:?} within 10 s; stdout so far: {seen:#?}");
    }

    /// Stops the server with SIGTERM, asserts that it stopped gracefully (exit code 0, no panic
    /// on stderr), and returns what it printed on stdout that was not read yet.
    fn stop_cleanly(self) -> Vec<String> {
        self.stop_cleanly_with_stderr().0
    }

    /// [`Server::stop_cleanly`], also returning all that scimd wrote on stderr.
    pub(super) fn stop_cleanly_with_stderr(mut self) -> (Vec<String>, String) {
        let status = self.terminate();
        // The reader threads end at end of file, when the process has exited.
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert_eq!(status.code(), Some(0), "SIGTERM is a graceful stop: {status}\nstderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "scimd panicked while stopping:\n{stderr}");
        (self.lines.iter().collect(), stderr)
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "scimd did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer 200 within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn serve_on_an_empty_database_prints_the_tenant_url_and_a_working_token() {
    let db = Db::new();
    // A key of the vendor API: the key alone on the last line.
    let created = db.expect(0, &["api-key", "create", "--label", "ci"]);
    let api_key = created.lines().last().unwrap().trim().to_owned();
    assert!(api_key.starts_with("scimdk_"), "{created}");
    let (port, admin_port) = (free_port(), free_port());
    let server = Server::start(&db, port, admin_port);
    let out = server.read_until("Secret Token:");
    let url_line = out.iter().find(|l| l.starts_with("Tenant URL:")).unwrap_or_else(|| panic!("{out:#?}"));
    let tenant_url = url_line.trim_start_matches("Tenant URL:").trim().to_owned();
    assert_eq!(tenant_url, format!("http://127.0.0.1:{port}/scim/v2"));
    let token = out.last().unwrap().trim_start_matches("Secret Token:").trim().to_owned();
    assert!(token.starts_with("scimd_"), "{out:#?}");
    let guide = server.read_until("  3.");
    assert!(guide.iter().any(|l| l.contains("Microsoft Entra ID")), "{guide:#?}");
    assert!(guide.last().unwrap().contains("Test Connection"), "{guide:#?}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        wait_healthy(&client, &format!("http://127.0.0.1:{port}/healthz")).await;

        // Entra's "Test Connection".
        let users = format!("{tenant_url}/Users?filter=userName%20eq%20%22x%22");
        let r = client.get(&users).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["totalResults"], 0, "{body}");
        let r = client.get(&users).bearer_auth("scimd_aaaaaaaaaaaa_wrong").send().await.unwrap();
        assert_eq!(r.status(), 401);

        // The admin listener: health, metrics, and the JSON API mirroring the CLI.
        let admin = format!("http://127.0.0.1:{admin_port}");
        assert_eq!(client.get(format!("{admin}/healthz")).send().await.unwrap().status(), 200);
        let metrics = client.get(format!("{admin}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert!(metrics.text().await.unwrap().contains("scimd_tenants 1"));
        // The vendor API needs the key.
        let api = format!("{admin}/api/v1");
        let r = client.get(format!("{api}/tenants")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("api-key")), "{body}");
        let tenants: serde_json::Value =
            client.get(format!("{api}/tenants")).bearer_auth(&api_key).send().await.unwrap().json().await.unwrap();
        assert_eq!(tenants[0]["name"], "default");
        assert_eq!(tenants[0]["tokens"], 1);

        let created = client
            .post(format!("{api}/tenants"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"name": "acme", "required": ["userName", "emails[type eq \"work\"].value"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let bad = client
            .post(format!("{api}/tenants"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"name": "bad", "required": ["nosuch"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let dup = client
            .post(format!("{api}/tenants"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"name": "acme"}))
            .send()
            .await;
        assert_eq!(dup.unwrap().status(), 409);
        let shown: serde_json::Value =
            client.get(format!("{api}/tenants/acme")).bearer_auth(&api_key).send().await.unwrap().json().await.unwrap();
        assert_eq!(shown["required"][1], "emails[type eq \"work\"].value");
        assert_eq!(client.get(format!("{api}/tenants/nope")).bearer_auth(&api_key).send().await.unwrap().status(), 404);
        let patched = client
            .patch(format!("{api}/tenants/acme"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"required": ["userName"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        assert_eq!(patched.json::<serde_json::Value>().await.unwrap()["required"], serde_json::json!(["userName"]));

        let issued = client
            .post(format!("{api}/tenants/acme/tokens"))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"label": "okta", "expires": "12h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 201);
        let issued: serde_json::Value = issued.json().await.unwrap();
        let acme_token = issued["token"].as_str().unwrap().to_owned();
        let r = client.get(format!("{tenant_url}/Users")).bearer_auth(&acme_token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let listed = client
            .get(format!("{api}/tenants/acme/tokens"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(listed.contains(issued["id"].as_str().unwrap()) && !listed.contains(&acme_token), "{listed}");

        // Rotation: a new secret; the old one works during the overlap.
        let rotated = client
            .post(format!("{api}/tokens/{}/rotate", issued["id"].as_str().unwrap()))
            .bearer_auth(&api_key)
            .json(&serde_json::json!({"overlap": "1h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(rotated.status(), 201);
        let rotated: serde_json::Value = rotated.json().await.unwrap();
        assert_eq!(rotated["replaces"], issued["id"]);
        let new_token = rotated["token"].as_str().unwrap().to_owned();
        for t in [&acme_token, &new_token] {
            let r = client.get(format!("{tenant_url}/Users")).bearer_auth(t).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }

        let revoked = client
            .delete(format!("{api}/tokens/{}", issued["id"].as_str().unwrap()))
            .bearer_auth(&api_key)
            .send()
            .await;
        assert_eq!(revoked.unwrap().status(), 204);
        let gone = client.delete(format!("{api}/tokens/nosuchtoken0")).bearer_auth(&api_key).send().await;
        assert_eq!(gone.unwrap().status(), 404);
        assert_eq!(
            client.delete(format!("{api}/tenants/acme")).bearer_auth(&api_key).send().await.unwrap().status(),
            204
        );
        assert_eq!(client.get(format!("{api}/tenants/acme")).bearer_auth(&api_key).send().await.unwrap().status(), 404);

        // DNS rebinding and cross-site posts: a foreign Host, a form body.
        let r = client
            .get(format!("{api}/tenants"))
            .bearer_auth(&api_key)
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421);
        let r = client
            .post(format!("{api}/tenants"))
            .bearer_auth(&api_key)
            .header("content-type", "text/plain")
            .body(r#"{"name": "csrf"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415);
        // A revoked key no longer works.
        let key_id = api_key.trim_start_matches("scimdk_").split('_').next().unwrap().to_owned();
        let listed = db.expect(0, &["api-key", "list"]);
        assert!(listed.contains(&key_id) && !listed.contains(&api_key), "{listed}");
        db.expect(0, &["api-key", "revoke", &key_id]);
        let r = client.get(format!("{api}/tenants")).bearer_auth(&api_key).send().await.unwrap();
        assert_eq!(r.status(), 401);
    });

    // SIGTERM is a graceful stop: exit code 0, no panic (sigterm_on_postgres_... for PostgreSQL).
    server.stop_cleanly();

    // A second start on the same database creates nothing and prints nothing.
    let port = free_port();
    let server = Server::start(&db, port, free_port());
    rt.block_on(wait_healthy(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}/healthz")));
    let lines = server.stop_cleanly();
    assert!(lines.is_empty(), "a second start printed {lines:#?}");
}

/// DESIGN.md: a write acknowledged to the client survives a `kill -9` of the server.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "acme"]);
    let token = db.new_token("acme");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    let (port, admin_port) = (free_port(), free_port());
    let mut server = Server::start(&db, port, admin_port);
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let ids: Vec<String> = rt.block_on(async {
        wait_healthy(&client, &format!("http://127.0.0.1:{port}/healthz")).await;
        let mut ids = Vec::new();
        for i in 0..25 {
            let body = serde_json::json!({"userName": format!("user{i}@contoso.com"), "active": true});
            let r = client
                .post(format!("{base}/Users"))
                .bearer_auth(&token)
                .header("Content-Type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        let patch = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        let r = client
            .patch(format!("{base}/Users/{}", ids[24]))
            .bearer_auth(&token)
            .header("Content-Type", "application/scim+json")
            .body(patch.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids
    });
    // SIGKILL: no shutdown, no flush, no checkpoint.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let _server = Server::start(&db, port, admin_port);
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    rt.block_on(async {
        wait_healthy(&client, &format!("http://127.0.0.1:{port}/healthz")).await;
        for (i, id) in ids.iter().enumerate() {
            let r = client.get(format!("{base}/Users/{id}")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200, "user {i} was acknowledged but is gone after kill -9");
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(v["active"], i != 24, "the last PATCH was acknowledged too");
        }
    });
}

/// The old PostgreSQL engine was the blocking `postgres` client inside the tokio server: on
/// SIGTERM, dropping it panicked in `postgres::Client::drop` ("Cannot start a runtime from within
/// a runtime") and scimd exited 101. The SQLite counterpart is
/// `serve_on_an_empty_database_prints_the_tenant_url_and_a_working_token`.
#[test]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
fn sigterm_on_postgres_exits_0_instead_of_panicking_in_the_client_drop() {
    let db = Db::postgres();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    for start in ["first", "second"] {
        let port = free_port();
        let server = Server::start(&db, port, free_port());
        let token = (start == "first").then(|| {
            let out = server.read_until("Secret Token:");
            out.last().unwrap().trim_start_matches("Secret Token:").trim().to_owned()
        });
        rt.block_on(async {
            wait_healthy(&client, &format!("http://127.0.0.1:{port}/healthz")).await;
            // Requests that take connections from the pool, so that some are open at the stop.
            if let Some(token) = &token {
                let users = format!("http://127.0.0.1:{port}/scim/v2/Users");
                for _ in 0..3 {
                    let r = client.get(&users).bearer_auth(token).send().await.unwrap();
                    assert_eq!(r.status(), 200, "the {start} start");
                }
            }
        });
        server.stop_cleanly();
    }
}

/// Runs `cmd` to its end, with stdout and stderr captured; fails if it takes more than 20 s.
fn output_within_20s(mut cmd: Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("scimd did not exit within 20 s");
        }
    }
}

/// `scimd serve` with its SCIM listener, then its admin listener, on a port another socket holds:
/// exit code 1 and a message naming the address and that it is in use, no panic.
fn a_busy_port_exits_1_with_address_in_use(db: &Db) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let free = format!("127.0.0.1:{}", free_port());
    for (listen, admin_listen, what) in [(&busy, &free, "SCIM"), (&free, &busy, "admin")] {
        let args = ["serve", "--listen", listen, "--admin-listen", admin_listen];
        let out = output_within_20s(db.command(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "scimd {args:?}: {}\nstderr:\n{err}", out.status);
        assert!(!err.contains("panicked"), "scimd {args:?} panicked:\n{err}");
        let expected = format!("error: cannot listen on {busy} ({what}): ");
        assert!(err.contains(&expected), "scimd {args:?}: no {expected:?} in stderr:\n{err}");
        assert!(err.to_lowercase().contains("address already in use"), "scimd {args:?}:\n{err}");
    }
    drop(taken);
}

/// With the blocking PostgreSQL client, the failed start dropped it inside the runtime and scimd
/// exited 101 with its panic instead of saying that the address is in use.
#[test]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
fn a_busy_port_on_postgres_exits_1_with_address_in_use_instead_of_a_panic() {
    a_busy_port_exits_1_with_address_in_use(&Db::postgres());
}

#[test]
fn a_busy_port_on_sqlite_exits_1_with_address_in_use() {
    a_busy_port_exits_1_with_address_in_use(&Db::new());
}

#[test]
fn events_tail_prints_the_feed_one_json_event_per_line_and_follows_it() {
    let db = Db::new();
    db.expect(0, &["tenant", "create", "acme"]);
    let token = db.new_token("acme");
    db.expect(0, &["token", "revoke", &token]);
    let out = db.expect(0, &["events", "tail", "--tenant", "acme"]);
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["tenant.created", "tenant.token_created", "tenant.token_revoked"], "{out}");
    assert_eq!(events.iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        (&events[1]["actor"]["method"], &events[1]["actor"]["path"]),
        (&json!("CLI"), &json!("scimd token create"))
    );
    // `scimd_<id>_<secret>`: the secret is base64url and may hold `_` itself.
    let secret = token.splitn(3, '_').nth(2).unwrap();
    assert!(!out.contains(secret), "a secret in the feed: {out}");
    assert_eq!(db.expect(0, &["events", "tail", "--tenant", "acme", "--after", "2"]).lines().count(), 1);
    assert!(db.expect_err(1, &["events", "tail", "--tenant", "nope"]).contains("no tenant"));

    // --follow keeps printing what other processes write.
    let mut child = db
        .command(&["events", "tail", "--tenant", "acme", "--after", "3", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    db.new_token("acme");
    let line = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!((&event["seq"], &event["type"]), (&json!(4), &json!("tenant.token_created")));
}

#[test]
fn sigterm_ends_a_long_poll_of_the_feed_at_once_instead_of_waiting_for_it() {
    let db = Db::new();
    let key = db.expect(0, &["api-key", "create"]).lines().last().unwrap().trim().to_owned();
    let (port, admin_port) = (free_port(), free_port());
    let server = Server::start(&db, port, admin_port);
    server.read_until("Secret Token:");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        wait_healthy(&client, &format!("http://127.0.0.1:{admin_port}/healthz")).await;
        let url = format!("http://127.0.0.1:{admin_port}/api/v1/tenants/default/events?after=2&wait=60s");
        let poll = tokio::spawn({
            let (client, key) = (client.clone(), key.clone());
            async move { client.get(url).bearer_auth(key).send().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        let stopped = tokio::task::spawn_blocking(move || server.stop_cleanly());
        let answer = poll.await.unwrap().unwrap();
        assert_eq!(answer.status(), 200, "the long poll is answered, empty");
        assert_eq!(answer.json::<serde_json::Value>().await.unwrap(), json!({"events": [], "position": 2}));
        stopped.await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "stopping took {:?}", start.elapsed());
    });
}

/// `systemctl reload` sends SIGHUP: without TLS there is nothing to reload, and the signal's
/// default action used to end the process.
#[test]
fn sighup_without_tls_leaves_the_server_serving() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = Db::new();
    let port = free_port();
    let server = Server::start(&db, port, free_port());
    let health = format!("http://127.0.0.1:{port}/healthz");
    rt.block_on(wait_healthy(&reqwest::Client::new(), &health));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(wait_healthy(&reqwest::Client::new(), &health));
    server.stop_cleanly();
}

/// Creates users `{prefix}0..{n}` through the SCIM API; returns how many were acknowledged.
async fn create_users(scim: &str, token: &str, prefix: &str, n: usize) -> usize {
    let client = reqwest::Client::new();
    let mut ok = 0;
    for i in 0..n {
        let r = client
            .post(format!("{scim}/Users"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(json!({"userName": format!("{prefix}{i}@contoso.com")}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ok += 1;
    }
    ok
}

async fn total_users(scim: &str, token: &str) -> u64 {
    let r = reqwest::Client::new().get(format!("{scim}/Users?count=0")).bearer_auth(token).send().await.unwrap();
    r.json::<serde_json::Value>().await.unwrap()["totalResults"].as_u64().unwrap()
}

#[test]
fn backup_copies_the_sqlite_database_while_it_is_served_and_written() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = Db::new();
    let port = free_port();
    let server = Server::start(&db, port, free_port());
    let token =
        server.read_until("Secret Token:").last().unwrap().trim_start_matches("Secret Token:").trim().to_owned();
    let scim = format!("http://127.0.0.1:{port}/scim/v2");
    rt.block_on(wait_healthy(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}/healthz")));
    let before = rt.block_on(create_users(&scim, &token, "a", 50));
    // Writes go on while the backup runs.
    let writer = {
        let (scim, token) = (scim.clone(), token.clone());
        rt.spawn(async move { create_users(&scim, &token, "b", 200).await })
    };
    let copy = db.dir.path().join("copy.db");
    let out = db.expect(0, &["backup", "--to", copy.to_str().unwrap()]);
    assert!(out.contains("checked"), "{out}");
    let during = rt.block_on(writer).unwrap();
    assert_eq!(during, 200);
    let again = db.run(&["backup", "--to", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing file is never overwritten");
    drop(server);

    // The copy is a database scimd serves, as of one moment between the two batches.
    let copy_db = Db { url: format!("sqlite://{}", copy.display()), dir: tempfile::tempdir().unwrap(), _pg: None };
    let port = free_port();
    let _copy_server = Server::start(&copy_db, port, free_port());
    let scim = format!("http://127.0.0.1:{port}/scim/v2");
    rt.block_on(wait_healthy(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}/healthz")));
    let n = rt.block_on(total_users(&scim, &token));
    assert!((before as u64..=(before + during) as u64).contains(&n), "{n} users in the copy");
    let listed = copy_db.expect(0, &["tenant", "list"]);
    assert!(listed.contains("default"), "{listed}");
}

#[test]
fn backup_of_a_postgres_database_says_to_use_pg_dump() {
    let db = Db { url: "postgres://u:secret@127.0.0.1:1/x".into(), dir: tempfile::tempdir().unwrap(), _pg: None };
    let out = db.run(&["backup", "--to", "/tmp/never.db"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump") && !err.contains("secret"), "{err}");
}

/// DESIGN.md, graceful shutdown: on SIGTERM readiness turns off first (both listeners' /readyz
/// answer 503 while requests are still served), then the listeners close and scimd exits 0.
#[test]
fn sigterm_turns_readiness_off_for_the_shutdown_delay_then_exits_0() {
    readiness_off_for_the_delay_then_exit_0(&Db::new());
}

/// The same on PostgreSQL (its pool and `LISTEN` connection close with the process).
#[test]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
fn sigterm_on_postgres_turns_readiness_off_for_the_shutdown_delay_then_exits_0() {
    readiness_off_for_the_delay_then_exit_0(&Db::postgres());
}

fn readiness_off_for_the_delay_then_exit_0(db: &Db) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = db.dir.path().join("scimd.toml");
    std::fs::write(&config, "[limits]\nshutdown_delay_secs = 3\n").unwrap();
    let (port, admin) = (free_port(), free_port());
    let mut child = db
        .command(&[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let (ready, alive, admin_ready) = (
        format!("http://127.0.0.1:{port}/readyz"),
        format!("http://127.0.0.1:{port}/healthz"),
        format!("http://127.0.0.1:{admin}/readyz"),
    );
    rt.block_on(wait_healthy(&client, &alive));
    let status = |url: &str| rt.block_on(async { client.get(url).send().await.map(|r| r.status().as_u16()).ok() });
    assert_eq!(status(&ready), Some(200));
    let stopped_at = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&ready), Some(503), "readiness off first");
    assert_eq!(status(&admin_ready), Some(503));
    assert_eq!(status(&alive), Some(200), "still serving during the delay");
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(15), "scimd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    assert!(stopped_at.elapsed() >= Duration::from_secs(3), "the listeners stayed open for the delay");
}

#[test]
fn migrate_check_says_what_would_run_and_changes_nothing() {
    let db = Db::new();
    let out = db.expect(0, &["migrate", "--check"]);
    assert!(out.contains("schema version 0") && out.contains("  1: the first schema"), "{out}");
    assert!(out.contains("  8: the provisioning log"), "{out}");
    assert!(out.contains("  9: resource counts maintained by the writes"), "{out}");
    assert!(!db.dir.path().join("t.db").exists(), "--check made no database");
    let out = db.expect(0, &["migrate"]);
    assert!(out.contains("migrated from schema version 0 to 9"), "{out}");
    let out = db.expect(0, &["migrate", "--check"]);
    assert!(out.contains("schema version 9, up to date"), "{out}");
}

#[test]
fn config_check_prints_every_value_with_its_source_and_refuses_a_bad_file() {
    let db = Db::new();
    let path = db.dir.path().join("scimd.toml");
    std::fs::write(&path, "admin_listen = \"127.0.0.1:9001\"\n[limits]\nmax_page_size = 500\n").unwrap();
    let out = db
        .command(&["--config", path.to_str().unwrap(), "config", "check", "--public-url", "https://scim.example.com"])
        .env("SCIMD_LISTEN", "127.0.0.1:9000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row {key}:\n{text}"))
    };
    assert_eq!(row("listen")[1..], ["127.0.0.1:9000", "env"]);
    assert_eq!(row("admin_listen")[1..], ["127.0.0.1:9001", "file"]);
    assert_eq!(row("public_url")[1..], ["https://scim.example.com", "flag"]);
    assert_eq!(row("database")[2], "flag", "the tests' --database");
    assert_eq!(row("limits.max_page_size")[1..], ["500", "file"]);
    assert_eq!(row("limits.default_page_size")[1..], ["100", "default"]);
    assert_eq!(row("request_log.retention")[1..], ["30d", "default"]);

    std::fs::write(&path, "[limits]\nmax_page_size = 0\n").unwrap();
    let err = db.expect_err(2, &["--config", path.to_str().unwrap(), "config", "check"]);
    assert!(err.contains("max_page_size"), "{err}");
    std::fs::write(&path, "tls_cert = \"/x.pem\"\n").unwrap();
    let err = db.expect_err(2, &["--config", path.to_str().unwrap(), "config", "check"]);
    assert!(err.contains("tls_key"), "{err}");
}

/// The README's configuration table is the documentation of every key: each key `config
/// check` knows has a row, and each row's default is the one in force (the defaults live in
/// `scimd::defaults`; this catches a change there that the README missed).
#[test]
fn readme_configuration_table_gives_every_key_and_the_default_in_force() {
    let readme = include_str!("../../../../README.md");
    let table = readme.split("| key | flag / env | default | what |").nth(1).expect("the README's table");
    let mut documented: Vec<(String, String)> = Vec::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (keys, default) = (cells[1], cells[3]);
        let mut section = String::new();
        let mut names = Vec::new();
        for part in keys.split('`').skip(1).step_by(2) {
            let name = match part.strip_prefix('[').and_then(|p| p.split_once("] ")) {
                Some((s, name)) => {
                    section = format!("{s}.");
                    name
                }
                None => part,
            };
            names.push(format!("{section}{name}"));
        }
        let defaults: Vec<&str> = default.split(" / ").collect();
        for (i, name) in names.iter().enumerate() {
            let d = if defaults.len() == names.len() { defaults[i] } else { default };
            let d = d.replace('`', "");
            let d = if d.starts_with("none") { "-".to_owned() } else { d };
            documented.push((name.clone(), d));
        }
    }
    let db = Db::new();
    let out = db.expect(0, &["config", "check"]);
    let mut in_force = Vec::new();
    for line in out.lines().skip_while(|l| !l.starts_with("KEY")).skip(1) {
        let (key, rest) = line.split_once(' ').unwrap();
        let value = rest.trim().rsplit_once(' ').unwrap().0.trim();
        let value = if key.ends_with("_secs") { value.trim_end_matches('s') } else { value };
        in_force.push((key.to_owned(), value.to_owned()));
    }
    for (key, value) in &in_force {
        let row = documented.iter().find(|(k, _)| k == key);
        let (_, doc) = row.unwrap_or_else(|| panic!("`{key}` has no row in the README's table: {documented:?}"));
        // The database is the test's own; admin_hosts is described, not listed.
        if key != "database" && key != "admin_hosts" {
            assert_eq!(doc, value, "README default of {key}");
        }
    }
    for (key, _) in &documented {
        assert!(in_force.iter().any(|(k, _)| k == key), "the README documents `{key}`, config check does not know it");
    }
}

/// SSL settings of the test server, reset when dropped (the server is shared by the suite;
/// connections without `sslmode=require` keep working while SSL is on).
struct PgSsl {
    server: String,
}

impl Drop for PgSsl {
    fn drop(&mut self) {
        let _ = psql(&self.server, "ALTER SYSTEM RESET ssl");
        let _ = psql(&self.server, "ALTER SYSTEM RESET ssl_cert_file");
        let _ = psql(&self.server, "ALTER SYSTEM RESET ssl_key_file");
        let _ = psql(&self.server, "SELECT pg_reload_conf()");
    }
}

fn psql(server: &str, sql: &str) -> String {
    let out = Command::new("psql").arg(server).args(["-XtAc", sql]).output().unwrap();
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// deploy.md: a managed PostgreSQL that requires TLS. With `sslmode=require` scimd connects with
/// TLS, every connection (the pool's and the feed listener's), after verifying the server's
/// certificate against `PGSSLROOTCERT`; without a root that vouches for it, it does not connect
/// (and so never sends the password to an unverified server).
#[test]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
fn sslmode_require_connects_to_postgres_with_a_verified_tls_certificate() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = Db::postgres();
    let server = std::env::var("SCIMD_TEST_POSTGRES_URL").unwrap();
    // The server's certificate, signed by a CA of the test's own; the files are the server's.
    let files = tempfile::tempdir().unwrap();
    std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "scimd test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let ca_issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf.signed_by(&key, &ca_issuer).unwrap();
    let (cert_path, key_path, ca_path) =
        (files.path().join("server.crt"), files.path().join("server.key"), files.path().join("ca.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&ca_path, ca.pem()).unwrap();
    // Owned by whoever runs the server (`postgres` when the suite runs as root).
    let data_dir = psql(&server, "SHOW data_directory");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data_dir).unwrap());
    for f in [&cert_path, &key_path] {
        std::os::unix::fs::chown(f, Some(owner), None).unwrap();
    }
    let _ssl = PgSsl { server: server.clone() };
    psql(&server, &format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert_path.display()));
    psql(&server, &format!("ALTER SYSTEM SET ssl_key_file = '{}'", key_path.display()));
    psql(&server, "ALTER SYSTEM SET ssl = on");
    psql(&server, "SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(10);
    while psql(&server, "SHOW ssl") != "on" {
        assert!(Instant::now() < deadline, "the test server did not turn SSL on");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("{}?sslmode=require", db.url);
    let run = |root: Option<&std::path::Path>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimd"));
        cmd.env_remove("SCIMD_CONFIG").env("RUST_LOG", "warn").arg("--database").arg(&url).args(args);
        match root {
            Some(r) => cmd.env("PGSSLROOTCERT", r),
            None => cmd.env_remove("PGSSLROOTCERT"),
        };
        cmd.current_dir(db.dir.path());
        cmd
    };

    // Without the CA, the certificate is not trusted: no connection.
    let out = run(None, &["tenant", "list"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate") || err.contains("PGSSLROOTCERT"), "{err}");
    // A root file that is no certificate is a clear error.
    let junk = files.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = run(Some(&junk), &["tenant", "list"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PGSSLROOTCERT"));

    // With it: the CLI works, and a server's every connection is TLS.
    let out = run(Some(&ca_path), &["tenant", "create", "tls-tenant"]).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_port());
    let server_process = Server::spawn(run(
        Some(&ca_path),
        &["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &admin],
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_healthy(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}/readyz")));
    let name = db.url.rsplit('/').next().unwrap();
    let count = |ssl: bool| {
        psql(
            &server,
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = '{name}' AND a.application_name LIKE 'scimd%' AND s.ssl = {ssl}"
            ),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(true).parse::<u32>().unwrap() < 2 {
        assert!(Instant::now() < deadline, "no TLS connections of the pool and the listener");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(false), "0", "every connection of scimd is TLS");
    let feed = psql(
        &server,
        &format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{name}' AND a.application_name = 'scimd-feed' AND s.ssl"
        ),
    );
    assert_eq!(feed, "1", "the change feed's listener connects with TLS too");
    server_process.stop_cleanly();
}
