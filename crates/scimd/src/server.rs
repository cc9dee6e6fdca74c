//! The process, assembled once: one schema registry, one clock, the store, the two routers
//! and their listeners. `scimd serve` and the integration tests both start the server through
//! [`Server`], so the tests run exactly what production runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use scim_core::Registry;
use scim_store::Store;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Settings};
use crate::http::{AppState, AuthCache, LenientIo, PeerAddr};
use tower::ServiceExt as _;

/// How long in-flight requests may take to finish after the stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server could not start or run; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// A server with its store open and its listeners bound, ready to run.
pub struct Server {
    state: AppState,
    admin_hosts: Vec<String>,
    retention: config::Retention,
    webhooks: crate::webhooks::DeliverySettings,
    request_log: crate::reqlog::LogSettings,
    log_queue: Option<tokio::sync::mpsc::Receiver<scim_store::LoggedRequest>>,
    console_session: time::Duration,
    engine: &'static str,
    /// The SCIM listener's TLS: its certificate (reloaded) and the acceptor built on it.
    tls: Option<(Arc<crate::tls::Reloading>, tokio_rustls::TlsAcceptor)>,
    scim: TcpListener,
    admin: TcpListener,
    prometheus: PrometheusHandle,
}

/// Opens the store a settings' database URL names, planning filters with `registry`.
pub async fn open_store(settings: &Settings, registry: &Arc<Registry>) -> Result<Arc<dyn Store>, ServerError> {
    scim_store::open(&settings.database, settings.store, Arc::clone(registry))
        .await
        .map_err(|e| ServerError(format!("cannot open database {}: {e}", config::redact_url(&settings.database))))
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|e| ServerError(format!("cannot listen on {addr} ({what}): {e}")))
}

impl Server {
    /// The production assembly: the standard schemas, the system clock, the store the settings
    /// name.
    pub async fn build(settings: &Settings, prometheus: PrometheusHandle) -> Result<Server, ServerError> {
        let registry = Arc::new(Registry::standard());
        let store = open_store(settings, &registry).await?;
        Server::with_store(settings, store, registry, Arc::new(SystemClock), prometheus).await
    }

    /// The assembly over a given store, registry and clock (tests wrap stores and fix time).
    pub async fn with_store(
        settings: &Settings,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        prometheus: PrometheusHandle,
    ) -> Result<Server, ServerError> {
        let tls = match &settings.tls {
            Some(files) => {
                let certs = Arc::new(crate::tls::Reloading::new(files.clone()).map_err(ServerError)?);
                let config = crate::tls::server_config(Arc::clone(&certs)).map_err(ServerError)?;
                Some((certs, tokio_rustls::TlsAcceptor::from(config)))
            }
            None => None,
        };
        let scim = bind(&settings.listen, "SCIM").await?;
        let admin = bind(&settings.admin_listen, "admin").await?;
        let auth = Arc::new(AuthCache::new(settings.http.token_cache_ttl));
        let (log, log_queue) = crate::reqlog::RequestLog::new(&settings.request_log);
        let state = AppState {
            store,
            registry,
            clock,
            auth,
            settings: Arc::new(settings.http.clone()),
            log,
            draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        Ok(Server {
            state,
            admin_hosts: settings.admin_hosts.clone(),
            retention: settings.retention,
            webhooks: settings.webhooks,
            request_log: settings.request_log,
            log_queue,
            console_session: settings.console_session,
            engine: crate::admin::engine_name(&settings.database),
            tls,
            scim,
            admin,
            prometheus,
        })
    }

    /// What the handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The bound address of the SCIM listener.
    pub fn scim_addr(&self) -> Result<SocketAddr, ServerError> {
        self.scim.local_addr().map_err(|e| ServerError(e.to_string()))
    }

    /// The bound address of the admin listener.
    pub fn admin_addr(&self) -> Result<SocketAddr, ServerError> {
        self.admin.local_addr().map_err(|e| ServerError(e.to_string()))
    }

    /// Serves both listeners until `stop` completes, then lets requests in flight finish (for
    /// at most [`SHUTDOWN_GRACE`]).
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Told to stop: readiness turns off at once; after the shutdown delay the listeners
        // stop accepting and the requests in flight finish.
        let (draining, delay) = (Arc::clone(&self.state.draining), self.state.settings.shutdown_delay);
        tokio::spawn(async move {
            stop.await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(seconds = delay.as_secs(), "stopping: /readyz answers 503 until the listeners close");
                tokio::time::sleep(delay).await;
            }
            let _ = stop_tx.send(true);
        });
        // Histograms of the Prometheus recorder need periodic upkeep when it serves no listener
        // of its own.
        let prometheus = self.prometheus.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });
        let pruner = tokio::spawn(prune_events(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
            self.retention,
            self.request_log,
        ));
        // The log's writer stops only after both listeners finished their requests, so that
        // the requests of the shutdown grace period are logged too.
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let log_writer = self
            .log_queue
            .map(|rx| tokio::spawn(crate::reqlog::run_writer(Arc::clone(&self.state.store), rx, drain_rx)));
        let monitor = tokio::spawn(crate::health::run_monitor(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
            stop_rx.clone(),
        ));
        let http = Arc::clone(&self.state.settings);
        let body_timeout = RequestBodyTimeoutLayer::new(http.body_timeout);
        let scim_app = crate::http::router(self.state.clone()).layer(body_timeout.clone());
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let scim_origin = match &http.public_url {
            Some(u) => u.trim_end_matches('/').trim_end_matches("/scim/v2").to_owned(),
            None => self.scim.local_addr().map(|a| format!("{scheme}://{a}")).unwrap_or_default(),
        };
        // SIGHUP reloads the certificate; without TLS there is nothing to reload, but the signal
        // must not end the process (`systemctl reload` sends it).
        let cert_watch = match &self.tls {
            Some((certs, _)) => tokio::spawn(crate::tls::watch(Arc::clone(certs), stop_rx.clone())),
            None => tokio::spawn(crate::tls::ignore_hangup(stop_rx.clone())),
        };
        let deliverer = match crate::webhooks::Deliverer::new(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
            self.webhooks,
            scim_origin.clone(),
        ) {
            Ok(d) => Some(tokio::spawn(d.run())),
            Err(e) => {
                tracing::error!(error = %e, "webhooks: delivery cannot start");
                None
            }
        };
        let admin_app = crate::admin::router(
            &self.state,
            crate::admin::AdminOptions {
                hosts: self.admin_hosts,
                scim_origin,
                console_session: self.console_session,
                started: std::time::Instant::now(),
                engine: self.engine,
            },
            self.prometheus,
            stop_rx.clone(),
        )
        .layer(body_timeout);
        let scim_io = match self.tls {
            Some((_, acceptor)) => Io::LenientTls(acceptor),
            None => Io::Lenient,
        };
        let scim = serve(self.scim, scim_app, &http, scim_io, stop_rx.clone());
        let admin = serve(self.admin, admin_app, &http, Io::Plain, stop_rx);
        tokio::join!(scim, admin);
        upkeep.abort();
        pruner.abort();
        monitor.abort();
        cert_watch.abort();
        // The writer writes what is queued, then ends.
        let _ = drain_tx.send(true);
        if let Some(w) = log_writer {
            if tokio::time::timeout(Duration::from_secs(5), w).await.is_err() {
                tracing::warn!("the provisioning log's last requests could not be written in time");
            }
        }
        if let Some(d) = deliverer {
            d.abort();
        }
    }
}

/// How often the change feed is pruned (and once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prunes the change feed and the provisioning log by the retention in force, every
/// [`PRUNE_EVERY`]. Every replica does; the pruning is idempotent.
async fn prune_events(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: config::Retention,
    log: crate::reqlog::LogSettings,
) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let before = retention.age.and_then(|age| clock.now().checked_sub(age));
        match store.prune_events(before, retention.count).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned the change feed"),
            Err(e) => tracing::warn!(error = %e, "pruning the change feed failed"),
        }
        let before = log.age.and_then(|age| clock.now().checked_sub(age));
        match store.prune_requests(before, log.count).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "pruned the provisioning log"),
            Err(e) => tracing::warn!(error = %e, "pruning the provisioning log failed"),
        }
    }
}

/// Serves one connection in a task of its own, watched for graceful shutdown; its slot is
/// given back when it ends.
fn spawn_connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    io: I,
    service: S,
    slot: tokio::sync::OwnedSemaphorePermit,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<axum::http::Request<hyper::body::Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let watched = graceful.watch(conn.into_owned());
    tokio::spawn(async move {
        let _ = watched.await;
        drop(slot);
    });
}

/// Waits until the stop flag turns true.
async fn until_stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Whether a listener repairs request targets ([`LenientIo`]) before hyper parses them, and
/// whether it terminates TLS first.
#[derive(Clone)]
enum Io {
    Lenient,
    LenientTls(tokio_rustls::TlsAcceptor),
    Plain,
}

/// Accepts connections until `stop` turns true, at most `max_connections` open at once (the
/// next client waits in the listen backlog), each with hyper's header timeout (which is also
/// the idle timeout between requests); then waits for open connections to finish their
/// requests, for at most [`SHUTDOWN_GRACE`].
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    http: &crate::http::HttpSettings,
    io: Io,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(http.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(http.header_timeout));
    let slots = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = until_stopped(&mut stop) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        match &io {
            Io::Lenient => spawn_connection(&builder, &graceful, LenientIo::new(tcp), service, permit),
            Io::LenientTls(acceptor) => {
                // The handshake runs in the connection's own task, within the header timeout, so
                // a slow or silent client holds only its own slot.
                let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                let limit = http.header_timeout;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(LenientIo::new(tls)), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                    drop(permit);
                });
            }
            Io::Plain => spawn_connection(&builder, &graceful, tcp, service, permit),
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {}s: stopping anyway", SHUTDOWN_GRACE.as_secs());
    }
}
