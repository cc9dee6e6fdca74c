//! What the contract suite (`tests/contract.rs`) cannot see of the PostgreSQL engine:
//! concurrent opens and writers, broken connections, the database's collation, the pool's cap.
//!
//! Like the contract suite's PostgreSQL tests these are compiled with `cfg(scimd_pg)`, which
//! `build.rs` sets when `SCIMD_TEST_POSTGRES_URL` names a server; without it cargo reports them
//! as ignored. With it, a server that is missing or does not answer fails them. Each test runs in
//! a database of its own, dropped (`WITH (FORCE)`) after its store; the side connections that
//! hold locks, watch `pg_stat_activity` or end sessions are plain `tokio-postgres` clients
//! (without the store's `application_name`, `scimd`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scim_core::{AttrPath, Filter, Registry};
use scim_store::postgres::{MAX_CONNECTIONS, PgStore, SCHEMA_VERSION};
use scim_store::{Actor, Create, Get, Kind, Limits, Load, Members, Query, SortOrder, Store, StoreError, Update};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_postgres::{Client, NoTls};

/// How long a test waits for the server to reach a state before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// The server's URL; with `cfg(scimd_pg)` its absence fails the test.
fn server_url() -> String {
    std::env::var("SCIMD_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the PostgreSQL tests run (cfg scimd_pg) but SCIMD_TEST_POSTGRES_URL names no server")
}

/// `url` naming the database `db` instead (any `?options` kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, options) = match url.split_once('?') {
        Some((base, options)) => (base, Some(options)),
        None => (url, None),
    };
    let (server, _) = base.rsplit_once('/').expect("a PostgreSQL URL ends with /DATABASE");
    match options {
        Some(options) => format!("{server}/{db}?{options}"),
        None => format!("{server}/{db}"),
    }
}

/// A side connection; a server that does not answer fails the test.
async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the PostgreSQL test server: {e:?}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::standard())
}

/// A database of the test's own.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    /// Creates the database (`CREATE DATABASE name <options>`).
    async fn new(options: &str) -> TestDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let admin = server_url();
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
        let name = format!("pgstore_{}_{nanos}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name} {options}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} {options}: {e:?}"));
        let url = with_database(&admin, &name);
        TestDb { admin, name, url }
    }

    async fn open(&self) -> PgStore {
        PgStore::open(&self.url, Limits::default(), registry()).await.unwrap_or_else(|e| panic!("opening: {e}"))
    }

    /// A side connection to the test's database.
    async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    /// Drops the database. Tests declare their store after their `TestDb`, so the store (and
    /// its pool) is gone by now; `FORCE` ends whatever session is left, e.g. after a panic.
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await: the statement runs on a runtime of its own, on a thread of its own.
        let done = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&admin, NoTls).await.map_err(|e| format!("{e:?}"))?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.map_err(|e| format!("{e:?}"))
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop the test database {}: the thread panicked", self.name),
        }
    }
}

/// Polls `check` until it yields a value; fails the test after [`DEADLINE`].
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The store's sessions (application_name `scimd`) of the database that wait for a lock.
async fn waiting(watcher: &Client) -> Vec<i32> {
    watcher
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'scimd' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Ends every session of the store (application_name `scimd`) in the database: their pids.
async fn terminate_store_sessions(watcher: &Client) -> Vec<i32> {
    watcher
        .query(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'scimd'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Whether any of `pids` is still a session of the server.
async fn any_alive(watcher: &Client, pids: &[i32]) -> bool {
    let n: i64 =
        watcher.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", &[&pids]).await.unwrap().get(0);
    n > 0
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

fn create(tenant: i64, id: &str, doc: Value) -> Create {
    Create { tenant, kind: Kind::User, id: id.into(), now: now(), doc, members: vec![], actor: Actor::cli("test") }
}

fn get(tenant: i64, id: &str) -> Get {
    Get { tenant, kind: Kind::User, id: id.into(), load: Load::default() }
}

/// Every user of the tenant, in one page.
fn list(tenant: i64) -> Query {
    Query {
        tenant,
        kind: Kind::User,
        filter: None,
        sort: None,
        start_index: 1,
        count: 100,
        load: Load::default(),
        position: false,
        seek: None,
    }
}

async fn tenant(s: &PgStore) -> i64 {
    s.create_tenant("a".into(), vec![], now(), Actor::cli("test")).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn concurrent_opens_create_the_schema_once() {
    let t = TestDb::new("").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (url, barrier) = (t.url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                // Both ways in: the engine's own and the URL dispatcher's.
                if i % 2 == 0 {
                    PgStore::open(&url, Limits::default(), registry()).await.map(drop)
                } else {
                    scim_store::open(&url, Limits::default(), registry()).await.map(drop)
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let rows = t.client().await.query("SELECT version FROM schema_version", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// Replicas on one database get one cursor secret, whoever asked first (so each accepts the
/// others' cursors), however many ask at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn replicas_share_one_cursor_secret() {
    let t = TestDb::new("").await;
    let replicas = [Arc::new(t.open().await), Arc::new(t.open().await), Arc::new(t.open().await)];
    let mut asks = Vec::new();
    for (i, r) in replicas.iter().cycle().take(9).enumerate() {
        let r = Arc::clone(r);
        asks.push(tokio::spawn(async move { r.secret("cursor".into(), format!("candidate{i}")).await.unwrap() }));
    }
    let mut got = Vec::new();
    for a in asks {
        got.push(a.await.unwrap());
    }
    assert!(got.iter().all(|g| *g == got[0] && g.starts_with("candidate")), "{got:?}");
    let again = replicas[2].secret("cursor".into(), "late".into()).await.unwrap();
    assert_eq!(again, got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn a_newer_schema_is_refused() {
    let t = TestDb::new("").await;
    drop(t.open().await);
    t.client().await.execute("UPDATE schema_version SET version = version + 1", &[]).await.unwrap();
    match PgStore::open(&t.url, Limits::default(), registry()).await {
        Err(StoreError::Backend(d)) => assert!(d.contains("newer than this scimd"), "{d}"),
        Err(e) => panic!("expected a version error, got {e}"),
        Ok(_) => panic!("expected a version error"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn if_match_lets_one_of_concurrent_writers_win() {
    let t = TestDb::new("").await;
    let s = Arc::new(t.open().await);
    let tenant = tenant(&s).await;
    s.create(create(tenant, "u1", user("x"))).await.unwrap();
    // Another session holds the row, so that all writers queue up on it and then race.
    let mut blocker = t.client().await;
    let hold = blocker.transaction().await.unwrap();
    hold.execute("SELECT 1 FROM resources WHERE id = 'u1' FOR SHARE", &[]).await.unwrap();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.update(Update {
                    tenant,
                    kind: Kind::User,
                    id: "u1".into(),
                    if_version: Some(1),
                    now: now(),
                    doc: user(&format!("x{i}")),
                    members: Members::Unchanged,
                    load: Load::default(),
                    actor: Actor::cli("test"),
                })
                .await
            })
        })
        .collect();
    let watcher = t.client().await;
    until("the 8 writers to wait for the row lock", async || (waiting(&watcher).await.len() == 8).then_some(())).await;
    hold.commit().await.unwrap();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(
        results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::VersionMismatch))),
        "{results:?}"
    );
    assert_eq!(s.get(get(tenant, "u1")).await.unwrap().unwrap().version, 2);
    let types: Vec<String> = s.events(tenant, 0, 100).await.unwrap().events.into_iter().map(|e| e.kind).collect();
    assert_eq!(types, ["tenant.created", "user.created", "user.updated"]);
}

/// Ends every other session of the test's database, and lets the server close the sockets.
async fn kill_all(t: &TestDb) {
    let killed = t
        .client()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(killed >= 1, "the store held no connection to end");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn a_broken_connection_is_replaced() {
    let t = TestDb::new("").await;
    let s = t.open().await;
    let tenant = tenant(&s).await;
    kill_all(&t).await;
    s.ping().await.unwrap();
    kill_all(&t).await;
    s.create(create(tenant, "u1", user("x"))).await.unwrap();
    kill_all(&t).await;
    assert_eq!(s.query(list(tenant)).await.unwrap().total, Some(1));
    kill_all(&t).await;
    assert!(s.get(get(tenant, "u1")).await.unwrap().is_some());
}

/// Makes the pool hold `n` open connections: `n` point reads that each wait for a table lock
/// need a connection each.
async fn fill_pool(t: &TestDb, s: &Arc<PgStore>, tenant: i64, n: usize) {
    let watcher = t.client().await;
    let mut locker = t.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.get(get(tenant, "u1")).await })
        })
        .collect();
    until("the reads to wait for the table lock", async || (waiting(&watcher).await.len() == n).then_some(())).await;
    tx.commit().await.unwrap();
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn a_connection_broken_inside_a_read_is_retried() {
    let t = TestDb::new("").await;
    let s = Arc::new(t.open().await);
    let tenant = tenant(&s).await;
    s.create(create(tenant, "u1", user("x"))).await.unwrap();
    let watcher = t.client().await;
    // The sessions of idle pooled connections end; the very next list (one snapshot) and
    // point read succeed: a read that fails on a broken connection is retried on another.
    fill_pool(&t, &s, tenant, 4).await;
    let killed = terminate_store_sessions(&watcher).await;
    assert!(killed.len() >= 4, "{killed:?}");
    assert_eq!(s.query(list(tenant)).await.unwrap().total, Some(1));
    fill_pool(&t, &s, tenant, 4).await;
    let killed = terminate_store_sessions(&watcher).await;
    assert!(killed.len() >= 4, "{killed:?}");
    assert!(s.get(get(tenant, "u1")).await.unwrap().is_some());
    // Once the killed sessions are gone, a write (never retried) gets a working connection.
    fill_pool(&t, &s, tenant, 4).await;
    let killed = terminate_store_sessions(&watcher).await;
    until("the ended sessions to go", async || (!any_alive(&watcher, &killed).await).then_some(())).await;
    s.create(create(tenant, "u2", user("y"))).await.unwrap();
    assert_eq!(s.query(list(tenant)).await.unwrap().total, Some(2));
}

/// Runs `call` while a side transaction holds `resources` locked, ends the store's session
/// the call waits in, and then releases the lock. Returns the session the call waited in
/// after that, if any (a retry waits for the lock again, in another session; a call that is
/// not retried has ended by then), and the call's result.
async fn end_the_session_of<T: Send + 'static>(
    t: &TestDb,
    call: impl Future<Output = T> + Send + 'static,
) -> (Option<i32>, T) {
    let watcher = t.client().await;
    let mut locker = t.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let call = tokio::spawn(call);
    let first = until("the call to wait for the table lock", async || match waiting(&watcher).await[..] {
        [pid] => Some(pid),
        _ => None,
    })
    .await;
    let ended: bool = watcher.query_one("SELECT pg_terminate_backend($1)", &[&first]).await.unwrap().get(0);
    assert!(ended);
    let again = until("the call to end or to wait again", async || {
        if call.is_finished() {
            return Some(None);
        }
        waiting(&watcher).await.into_iter().find(|&pid| pid != first).map(Some)
    })
    .await;
    tx.commit().await.unwrap();
    (again, call.await.unwrap())
}

/// The old engine-internal test (a session ending itself inside `snapshot`, `read` and
/// `write`) through the public API: the session ends while the call waits for a lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn a_read_broken_mid_statement_is_retried_once_and_a_write_is_not() {
    let t = TestDb::new("").await;
    let s = Arc::new(t.open().await);
    let tenant = tenant(&s).await;
    s.create(create(tenant, "u1", user("x"))).await.unwrap();
    // A list (one snapshot) and a point read are retried, on a fresh connection.
    let s2 = s.clone();
    let (again, page) = end_the_session_of(&t, async move { s2.query(list(tenant)).await }).await;
    assert!(again.is_some(), "the list was not retried: {page:?}");
    assert_eq!(page.unwrap().total, Some(1));
    let s2 = s.clone();
    let (again, rec) = end_the_session_of(&t, async move { s2.get(get(tenant, "u1")).await }).await;
    assert!(again.is_some(), "the read was not retried: {rec:?}");
    assert!(rec.unwrap().is_some());
    // A write is not (it may have been applied): it fails, here with nothing applied ...
    let s2 = s.clone();
    let (again, out) = end_the_session_of(&t, async move { s2.create(create(tenant, "u2", user("y"))).await }).await;
    assert_eq!(again, None, "the write was retried: {out:?}");
    assert!(matches!(out, Err(StoreError::Backend(_))), "{out:?}");
    assert!(s.get(get(tenant, "u2")).await.unwrap().is_none());
    // ... and the next one gets a working connection.
    s.create(create(tenant, "u2", user("y"))).await.unwrap();
    // No connection was leaked: the pool can still have all of its connections busy at once.
    fill_pool(&t, &s, tenant, MAX_CONNECTIONS).await;
    assert_eq!(s.query(list(tenant)).await.unwrap().total, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn text_compares_and_sorts_by_bytes_whatever_the_database_collation() {
    // A database whose default collation sorts "a" before "B" and ignores punctuation.
    let t = TestDb::new("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'").await;
    let s = t.open().await;
    let tenant = tenant(&s).await;
    for (i, ext) in ["b", "B", "a", "Z", "é", "_x", "a%b", "axb"].iter().enumerate() {
        let doc = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{i}"), "externalId": ext});
        s.create(create(tenant, &format!("u{i}"), doc)).await.unwrap();
    }
    let by = AttrPath::parse("externalId").unwrap();
    let list = async |filter: Option<&str>, order: SortOrder| {
        let q = Query {
            tenant,
            kind: Kind::User,
            filter: filter.map(|f| Filter::parse(f).unwrap()),
            sort: Some((by.clone(), order)),
            start_index: 1,
            count: 100,
            load: Load::default(),
            position: false,
            seek: None,
        };
        s.query(q)
            .await
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.doc["externalId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(None, SortOrder::Ascending).await, ["B", "Z", "_x", "a", "a%b", "axb", "b", "é"]);
    assert_eq!(list(None, SortOrder::Descending).await, ["é", "b", "axb", "a%b", "a", "_x", "Z", "B"]);
    assert_eq!(list(Some(r#"externalId gt "Z""#), SortOrder::Ascending).await, ["_x", "a", "a%b", "axb", "b", "é"]);
    assert_eq!(list(Some(r#"externalId sw "a%""#), SortOrder::Ascending).await, ["a%b"], "no LIKE patterns");
    assert_eq!(list(Some(r#"externalId co "_""#), SortOrder::Ascending).await, ["_x"]);
    assert_eq!(list(Some(r#"externalId ew "%b""#), SortOrder::Ascending).await, ["a%b"]);
    assert_eq!(list(Some(r#"externalId sw "é""#), SortOrder::Ascending).await, ["é"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn a_feed_reader_never_misses_an_event_of_concurrent_writers_on_several_replicas() {
    let t = TestDb::new("").await;
    // Three replicas write, a fourth reads: four stores, each with its own sequencer.
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(Arc::new(t.open().await));
    }
    let reader = replicas.pop().unwrap();
    let tenant = tenant(&reader).await;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let s = replicas[w % replicas.len()].clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let id = format!("w{w}u{i}");
                    s.create(create(tenant, &id, user(&id))).await.unwrap();
                }
            })
        })
        .collect();
    // Reads the feed as a consumer does: always after the last seq it has seen, waiting for
    // the signal in between (woken by the other replicas' sequencers through NOTIFY).
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut last = 0;
    let total = 1 + 6 * 40;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < total && Instant::now() < deadline {
        let mut signal = reader.subscribe(tenant);
        let page = reader.events(tenant, last, 1000).await.unwrap();
        if page.events.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(5), signal.changed()).await;
        }
        for e in page.events {
            assert!(e.seq > last, "seq {} after {last}", e.seq);
            last = e.seq;
            seen.push((e.seq, e.id));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), total, "the reader missed events");
    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "every number once, in order, no gap");
    let ids: std::collections::HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), total, "every event once");
    // Nothing is left unnumbered once the writers are done.
    assert_eq!(reader.events(tenant, 0, 1).await.unwrap().position, total as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(scimd_pg), ignore = "SCIMD_TEST_POSTGRES_URL is not set")]
async fn the_pool_stays_within_its_cap() {
    let t = TestDb::new("").await;
    let s = Arc::new(t.open().await);
    let tenant = tenant(&s).await;
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let id = format!("u{i}");
                s.create(create(tenant, &id, user(&id))).await.unwrap();
                s.get(get(tenant, &id)).await.unwrap().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let open: i64 = t
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scimd'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((1..=MAX_CONNECTIONS as i64).contains(&open), "{open} connections");
}
