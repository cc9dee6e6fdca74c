//! The browser suite's harness: the real scimd server in-process (built by
//! `scimd::server::Server`, as `scimd serve` builds it) on a fresh SQLite store with a clock the
//! test can move, a `chromedriver` child process, and headless Chromium sessions driven through
//! WebDriver (fantoccini).
//!
//! Tests run one at a time ([`serial`]): two Chromiums at once on a 2-core CI machine make
//! timings flaky, and one chromedriver per test keeps them independent.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use scim_core::Registry;
use scim_store::{Actor, Store, Tenant};
use scimd::clock::Clock;
use scimd::config::Settings;
use scimd::server::Server;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const SCIM: &str = "application/scim+json";
pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The reference customer's mandatory attributes (DESIGN.md, tenant policy), which the new-tenant
/// form checks by default.
pub const REFERENCE_REQUIRED: &[&str] = &scim_core::policy::REFERENCE;

/// How long a test waits for a page or an element.
pub const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ one test at a time

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for a whole test: the browser tests run one after another.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

// ------------------------------------------------------------------ the clock

/// The system clock plus an offset the test moves forward.
#[derive(Debug, Default)]
pub struct TestClock {
    offset: Mutex<time::Duration>,
}

impl TestClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: time::Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.offset.lock().unwrap()
    }
}

// ------------------------------------------------------------------ the server

/// A running scimd (both listeners) over a fresh SQLite store, and a vendor API key.
pub struct App {
    /// `http://127.0.0.1:PORT` of the admin listener (the console).
    pub admin: String,
    /// `http://127.0.0.1:PORT` of the SCIM listener (the setup pages).
    pub origin: String,
    /// `http://127.0.0.1:PORT/scim/v2`
    pub scim: String,
    /// The store behind the server.
    pub store: Arc<dyn Store>,
    /// The server's clock.
    pub clock: Arc<TestClock>,
    /// The secret of an API key labelled `support` (`scimdk_...`).
    pub api_key: String,
    /// An HTTP client that follows no redirect.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl App {
    /// A server with the default console session length (8 hours).
    pub async fn start() -> App {
        App::start_with(scimd::config::DEFAULT_CONSOLE_SESSION).await
    }

    /// A server whose console sessions last `console_session`.
    pub async fn start_with(console_session: time::Duration) -> App {
        let registry = Arc::new(Registry::standard());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = scim_store::open(&url, Default::default(), Arc::clone(&registry)).await.unwrap();
        let settings = Settings {
            database: String::new(),
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            http: Default::default(),
            store: Default::default(),
            admin_hosts: scimd::admin::default_hosts("127.0.0.1:0"),
            retention: Default::default(),
            webhooks: Default::default(),
            request_log: Default::default(),
            console_session,
            tls: None,
        };
        let clock = Arc::new(TestClock::default());
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
        let server = Server::with_store(
            &settings,
            Arc::clone(&store),
            registry,
            Arc::clone(&clock) as Arc<dyn Clock>,
            prometheus,
        )
        .await
        .unwrap();
        let origin = format!("http://{}", server.scim_addr().unwrap());
        let admin = format!("http://{}", server.admin_addr().unwrap());
        tokio::spawn(server.run(std::future::pending()));
        let (_, api_key) = scimd::admin::create_api_key(store.as_ref(), clock.as_ref(), Some("support")).await.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        App { scim: format!("{origin}/scim/v2"), admin, origin, store, clock, api_key, http, _dir: dir }
    }

    /// `{admin}{path}`
    pub fn console(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// Creates a tenant with the reference policy, as `scimd tenant create` does.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let required = REFERENCE_REQUIRED.iter().map(|s| (*s).to_owned()).collect();
        self.store.create_tenant(name.to_owned(), required, self.clock.now(), Actor::cli("test")).await.unwrap()
    }

    /// Makes a setup link for `tenant` (as `scimd tenant invite` does); returns its URL.
    pub async fn invite(&self, tenant: &str) -> String {
        let v = scimd::setup::create_invite(self.store.as_ref(), self.clock.as_ref(), tenant, None, &self.origin)
            .await
            .unwrap();
        v.url.unwrap()
    }

    /// Issues a token for the tenant, as `scimd token create` does; returns the secret.
    pub async fn token(&self, tenant: i64) -> String {
        let issued = scimd::tokens::issue(tenant, Some("test".into()), None, self.clock.now());
        self.store.create_token(issued.record, Some(Actor::cli("test"))).await.unwrap();
        issued.secret
    }

    /// The tenant named `name`, as stored now.
    pub async fn stored_tenant(&self, name: &str) -> Option<Tenant> {
        self.store.tenant(name.to_owned()).await.unwrap()
    }

    /// How many tokens the tenant has (revoked ones included).
    pub async fn token_count(&self, tenant: i64) -> usize {
        self.store.list_tokens(tenant).await.unwrap().len()
    }

    /// A SCIM request with a bearer token.
    pub fn scim_req(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.scim)).bearer_auth(token)
    }

    /// Entra ID's "Test connection": `GET /Users?filter=userName eq "<random GUID>"`, encoded
    /// as Entra encodes it. Returns the status and body.
    pub async fn test_connection(&self, token: &str) -> (StatusCode, Value) {
        let filter = format!("userName eq \"{}\"", uuid::Uuid::new_v4());
        let r = self.scim_req(token, reqwest::Method::GET, &format!("/Users?filter={}", q(&filter))).send().await;
        status_json(r.unwrap()).await
    }

    /// `POST /Users` with this body, as `application/scim+json`.
    pub async fn create_user(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .scim_req(token, reqwest::Method::POST, "/Users")
            .header("content-type", SCIM)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_json(r).await
    }
}

/// The status and JSON body of a response (`Null` when empty).
pub async fn status_json(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    (status, v)
}

/// Percent-encodes a query value (spaces as `+`, as Entra sends them).
pub fn q(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The create body Entra ID sends with its default mapping (CLIENTS.md).
pub fn entra_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "John Doe",
        "title": "Site engineer",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "John Doe", "familyName": "Doe", "givenName": "John"},
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Bern", "postalCode": "3000", "country": "CH"}],
        "phoneNumbers": [{"type": "work", "value": "4255550100"}, {"type": "mobile", "value": "4255550101"}],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Ops"},
        "roles": []
    })
}

/// The same body for a cloud-only user without an employee id: Entra leaves the attribute out.
pub fn entra_user_without_employee_number(user_name: &str, external_id: &str) -> Value {
    let mut v = entra_user(user_name, external_id);
    v[ENTERPRISE] = json!({"department": "Ops"});
    v
}

// ------------------------------------------------------------------ chromedriver

/// A `chromedriver` child process on a free port; shut down (with its browsers) when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

fn find_program(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

const INSTALL: &str = "install Debian's `chromium` and `chromium-driver` packages \
     (apt-get install chromium chromium-driver; .ci/run installs them), or set SCIMD_CHROMEDRIVER \
     and SCIMD_CHROMIUM";

impl Driver {
    /// Starts chromedriver (env `SCIMD_CHROMEDRIVER`, else `chromedriver` on `PATH`) and waits
    /// until it answers. Fails, never skips, when it is missing.
    pub async fn start() -> Driver {
        let Some(program) = find_program("SCIMD_CHROMEDRIVER", "chromedriver") else {
            panic!("the browser tests need chromedriver and Chromium: {INSTALL}");
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(&program);
        cmd.arg(format!("--port={port}")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // Its own process group, so that dropping the driver also ends the browsers it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start {}: {e}; {INSTALL}", program.display()),
        };
        let driver = Driver { child, port };
        let status = format!("{}/status", driver.url());
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if http.get(&status).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port} within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new browser session: a fresh profile, no cookies.
    pub async fn browser(&self) -> Browser {
        // Both ring and aws-lc-rs are compiled into rustls here, so it cannot pick a provider
        // by itself (the WebDriver connection is plain HTTP; the connector still builds one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chromium = std::env::var("SCIMD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        if !std::path::Path::new(&chromium).exists() {
            panic!("no Chromium at {chromium}: {INSTALL}");
        }
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1024"],
                "binary": chromium,
            }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let c = ClientBuilder::rustls().unwrap().capabilities(caps).connect(&self.url()).await;
        let c = match c {
            Ok(c) => c,
            Err(e) => panic!("chromedriver could not start Chromium ({chromium}): {e}; {INSTALL}"),
        };
        Browser { c }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver's /shutdown quits every session (and so its browser), then itself.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = s.write_all(b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (a browser that did not quit) goes too.
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ the browser

/// One WebDriver session, with the look-ups the tests use.
pub struct Browser {
    pub c: Client,
}

impl Browser {
    /// Ends the session (closes the browser).
    pub async fn close(self) {
        let _ = self.c.close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.c.goto(url).await.unwrap();
    }

    /// Waits (at most [`WAIT`]) for an element.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                panic!(
                    "no element `{css}` on {} within {WAIT:?} ({e}); the page shows: {}",
                    self.url().await,
                    self.page_text().await
                )
            }
        }
    }

    /// Whether the page has an element now.
    pub async fn has(&self, css: &str) -> bool {
        !self.c.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    /// The rendered text of an element (waited for), read in one script call: a part of the
    /// page that a script re-renders (the setup page's status) cannot go stale in between.
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "var e = document.querySelector({sel}); return e ? e.innerText : null;",
            sel = serde_json::to_string(css).unwrap()
        );
        let deadline = Instant::now() + WAIT;
        loop {
            if let Value::String(t) = self.js(&script).await {
                return t;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element `{css}` on {} within {WAIT:?}; the page shows: {}",
                    self.url().await,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks an element (waited for); accepts a confirmation dialog if the click opened one.
    /// An element of a page that was just being replaced (after a form was sent) is looked up
    /// again on the new page.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.click().await {
                Ok(()) => break,
                Err(e) if is_stale(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("clicking `{css}`: {e}"),
            }
        }
        let _ = self.c.accept_alert().await;
    }

    /// Types into an input (waited for), after clearing it; as [`Browser::click`], an element of
    /// a page being replaced is looked up again.
    pub async fn fill(&self, css: &str, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.wait_for(css).await;
            let done = match e.clear().await {
                Ok(()) => e.send_keys(text).await,
                Err(err) => Err(err),
            };
            match done {
                Ok(()) => return,
                Err(err) if is_stale(&err) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("typing into `{css}`: {err}"),
            }
        }
    }

    /// The text of the page (the start of it), for failure messages.
    pub async fn page_text(&self) -> String {
        let v = self.c.execute("return document.body ? document.body.innerText : '';", vec![]).await;
        let text = v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        text.chars().take(1500).collect()
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.c.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    /// The current URL's path.
    pub async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_owned()
    }

    /// Waits (at most [`WAIT`]) until the current URL's path is `path`.
    pub async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            if Instant::now() >= deadline {
                panic!("expected to land on {path}, still on {} showing: {}", self.url().await, self.page_text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The HTTP status of the page shown (Navigation Timing's `responseStatus`).
    pub async fn status(&self) -> u16 {
        let v = self
            .c
            .execute("return performance.getEntriesByType('navigation')[0].responseStatus;", vec![])
            .await
            .unwrap();
        v.as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0)
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.c.source().await.unwrap()
    }

    /// Runs a script that returns a value.
    pub async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// The cells' text of each body row of a table: `[[cell, ...], ...]`.
    pub async fn rows(&self, table: &str) -> Vec<Vec<String>> {
        self.wait_for(table).await;
        let script = format!(
            "return Array.from(document.querySelectorAll({sel})).map(r => Array.from(r.cells).map(c => c.innerText.trim()));",
            sel = serde_json::to_string(&format!("{table} tbody tr")).unwrap()
        );
        serde_json::from_value(self.js(&script).await).unwrap()
    }

    /// Signs in to the console with the app's API key.
    pub async fn sign_in(&self, app: &App) {
        self.goto(&app.console("/console/login")).await;
        self.fill("#api_key", &app.api_key).await;
        self.click("#sign-in").await;
        self.wait_path("/console").await;
        self.wait_for("#sign-out").await;
    }

    /// Saves a screenshot `DIR/{name}.png` when `SCIMD_SCREENSHOTS=DIR` is set (a relative DIR
    /// is taken from the repository root, where scripts/screenshots.sh runs). The window grows
    /// to the page's height first (at most 2,400 px), so the picture shows the whole page.
    pub async fn shot(&self, name: &str) {
        let Some(dir) = screenshot_dir() else { return };
        std::fs::create_dir_all(&dir).unwrap();
        self.js("window.scrollTo(0, 0); return null;").await;
        let height = self.js("return document.documentElement.scrollHeight;").await.as_u64().unwrap_or(1024);
        let height = u32::try_from(height.clamp(1024, 2400)).unwrap_or(1024);
        // Window size includes the (headless) browser frame; a little extra avoids a scroll bar.
        let _ = self.c.set_window_size(1280, height + 100).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = self.c.screenshot().await.unwrap();
        let _ = self.c.set_window_size(1280, 1024).await;
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

fn screenshot_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SCIMD_SCREENSHOTS")?);
    if dir.is_absolute() {
        return Some(dir);
    }
    Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir))
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a WebDriver error says the element belongs to a page that is gone.
fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    e.is_stale_element_reference()
}
