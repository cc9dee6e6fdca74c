//! What every handler shares: the application state given to [`super::router`], plus the
//! auth caches and the per-tenant limiter built from it. Handlers and child modules take it
//! from here; nothing below imports it back from the router.

use std::sync::Arc;
use std::time::Duration;

use scim_core::{Kind, Registry, ResourceDef};
use scim_store::Store;

pub use super::auth::AuthCache;
use super::error::ApiError;
use super::limit::InFlight;
use crate::clock::Clock;

/// What the SCIM API needs: the store, the schemas, the clock and the settings.
#[derive(Clone)]
pub struct AppState {
    /// Where tenants, tokens and resources live.
    pub store: Arc<dyn Store>,
    /// The schemas and resource types served (the same registry the store plans with).
    pub registry: Arc<Registry>,
    /// The clock every time comes from.
    pub clock: Arc<dyn Clock>,
    /// Tokens and tenants read from the store, trusted for `settings.token_cache_ttl`; shared
    /// with the admin listener, which makes the SCIM listener forget what it deletes.
    pub auth: Arc<AuthCache>,
    /// Limits and knobs of the HTTP API.
    pub settings: Arc<HttpSettings>,
    /// Where every finished SCIM request of a tenant goes (the provisioning log).
    pub log: crate::reqlog::RequestLog,
    /// Set when the server has been told to stop: `/readyz` answers 503 from then on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Limits and knobs of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The public origin, e.g. `https://scim.example.com` (a trailing `/scim/v2` is tolerated);
    /// when unset, it is derived from `X-Forwarded-Proto`/`X-Forwarded-Host` or `Host`.
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes (also `/Bulk`'s `maxPayloadSize`).
    pub max_body_bytes: usize,
    /// `count` when a list request gives none.
    pub default_page_size: u64,
    /// The largest `count` honoured (`filter.maxResults`).
    pub max_page_size: u64,
    /// Concurrent requests one tenant may have in flight before getting 429 (0: no limit).
    pub max_in_flight_per_tenant: usize,
    /// Concurrent queries (lists, searches) of one tenant; more wait their turn (0: no limit).
    pub max_queries_per_tenant: usize,
    /// How long a token or tenant looked up in the store is trusted (revocation delay).
    pub token_cache_ttl: Duration,
    /// PATCH limits (operations, members, path length).
    pub patch: scim_core::patch::PatchLimits,
    /// Filter limits (length, depth).
    pub filter: scim_core::FilterLimits,
    /// The most operations in one `/Bulk` request.
    pub max_bulk_operations: usize,
    /// Open connections per listener; more wait in the listen backlog.
    pub max_connections: usize,
    /// The time to send a request head, and the longest idle time between requests.
    pub header_timeout: Duration,
    /// The time to send a request body.
    pub body_timeout: Duration,
    /// The proxies whose `X-Forwarded-Proto`/`X-Forwarded-Host` are believed (when
    /// `public_url` is unset). Default: loopback only.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The vendor's product name, as the customer's setup page and the console say it.
    pub product_name: String,
    /// On SIGTERM, how long `/readyz` answers 503 before the listeners stop accepting.
    pub shutdown_delay: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        use crate::defaults as d;
        HttpSettings {
            public_url: None,
            max_body_bytes: d::MAX_BODY_BYTES,
            default_page_size: d::DEFAULT_PAGE_SIZE,
            max_page_size: d::MAX_PAGE_SIZE,
            max_in_flight_per_tenant: d::MAX_IN_FLIGHT_PER_TENANT,
            max_queries_per_tenant: d::MAX_QUERIES_PER_TENANT,
            token_cache_ttl: d::TOKEN_CACHE_TTL,
            patch: scim_core::patch::PatchLimits {
                max_operations: d::MAX_PATCH_OPERATIONS,
                max_members: d::MAX_PATCH_MEMBERS,
                ..Default::default()
            },
            filter: scim_core::FilterLimits { max_len: d::MAX_FILTER_LENGTH, ..Default::default() },
            max_bulk_operations: d::MAX_BULK_OPERATIONS,
            max_connections: d::MAX_CONNECTIONS,
            header_timeout: d::HEADER_TIMEOUT,
            body_timeout: d::BODY_TIMEOUT,
            trusted_proxies: d::TRUSTED_PROXIES.iter().filter_map(|n| n.parse().ok()).collect(),
            product_name: d::PRODUCT_NAME.to_owned(),
            shutdown_delay: d::SHUTDOWN_DELAY,
        }
    }
}

/// The router's state: the application state plus the auth caches and the limiter.
pub(crate) struct Shared {
    pub app: AppState,
    pub limiter: InFlight,
    pub queries: super::limit::QuerySlots,
    pub oauth: super::oauth::IssueLimiter,
    /// The keys cursors are sealed with, read from the database on first use.
    cursor_keys: tokio::sync::OnceCell<super::cursor::CursorKeys>,
    /// Tenant policies, parsed once per list of paths.
    pub policies: super::ops::Policies,
}

/// The router's state as handlers receive it.
pub(crate) type SharedState = Arc<Shared>;

impl Shared {
    pub(crate) fn new(app: AppState) -> Self {
        Shared {
            limiter: InFlight::new(app.settings.max_in_flight_per_tenant),
            queries: super::limit::QuerySlots::new(app.settings.max_queries_per_tenant),
            oauth: super::oauth::IssueLimiter::default(),
            cursor_keys: tokio::sync::OnceCell::new(),
            policies: super::ops::Policies::default(),
            app,
        }
    }

    /// The keys of this database's cursors (its `cursor` secret, made on first use).
    pub(crate) async fn cursor_keys(&self) -> Result<&super::cursor::CursorKeys, ApiError> {
        self.cursor_keys
            .get_or_try_init(|| async {
                let secret = self.store().secret("cursor".into(), super::cursor::new_secret()).await?;
                super::cursor::CursorKeys::derive(secret.as_bytes())
            })
            .await
    }

    pub(crate) fn settings(&self) -> &HttpSettings {
        &self.app.settings
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.app.store.as_ref()
    }

    /// The resource type of `kind`.
    pub(crate) fn def(&self, kind: Kind) -> Result<ResourceDef<'_>, ApiError> {
        self.app.registry.resource(kind.name()).ok_or(ApiError::Unregistered(kind))
    }
}
