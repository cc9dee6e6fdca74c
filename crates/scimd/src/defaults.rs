//! Every configuration default, in one place: what scimd does when neither a flag, its
//! environment variable nor the configuration file says otherwise. The `Default` impls of the
//! settings structs read these; the README's configuration table gives the same values (a test
//! compares it with `scimd config check`).

use std::time::Duration;

/// `listen`: the SCIM listener.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `admin_listen`: `/metrics`, the vendor API and the console.
pub const ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// `database`: the embedded SQLite file in the working directory.
pub const DATABASE: &str = "sqlite://scimd.db";
/// `trusted_proxies`: loopback (a proxy on the same host).
pub const TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1/128"];
/// `product_name`: the vendor's product on the setup page and console.
pub const PRODUCT_NAME: &str = "the application";

/// `[limits] max_body_bytes`: 2 MiB.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// `[limits] default_page_size`.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// `[limits] max_page_size`.
pub const MAX_PAGE_SIZE: u64 = 1000;
/// `[limits] max_in_flight_per_tenant` (0: no limit).
pub const MAX_IN_FLIGHT_PER_TENANT: usize = 64;
/// `[limits] max_queries_per_tenant` (0: no limit).
pub const MAX_QUERIES_PER_TENANT: usize = 2;
/// `[limits] max_bulk_operations`.
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// `[limits] max_patch_operations`.
pub const MAX_PATCH_OPERATIONS: usize = 1000;
/// `[limits] max_patch_members`.
pub const MAX_PATCH_MEMBERS: usize = 10_000;
/// `[limits] max_filter_length`, in bytes.
pub const MAX_FILTER_LENGTH: usize = 10_000;
/// `[limits] max_candidates`: rows a filter on non-indexed attributes may examine.
pub const MAX_CANDIDATES: u64 = 10_000;
/// `[limits] max_connections`: open connections per listener.
pub const MAX_CONNECTIONS: usize = 1024;
/// `[limits] header_timeout_secs`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[limits] body_timeout_secs`.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `[limits] shutdown_delay_secs`: none, the listeners close at once.
pub const SHUTDOWN_DELAY: Duration = Duration::ZERO;
/// How long a token and its tenant are trusted from cache (not configurable: the revocation
/// delay of other replicas).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

/// `[events] retention`.
pub const EVENTS_RETENTION: time::Duration = time::Duration::days(90);
/// `[events] max_per_tenant`: no limit.
pub const EVENTS_MAX_PER_TENANT: Option<u64> = None;

/// `[webhooks] retry_for`: 3 days.
pub const WEBHOOK_RETRY_FOR: Duration = Duration::from_secs(3 * 24 * 3600);
/// `[webhooks] timeout_secs`.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// `[webhooks] concurrency`: deliveries one replica sends at once.
pub const WEBHOOK_CONCURRENCY: usize = 32;

/// `[request_log] enabled`.
pub const REQUEST_LOG_ENABLED: bool = true;
/// `[request_log] retention`.
pub const REQUEST_LOG_RETENTION: time::Duration = time::Duration::days(30);
/// `[request_log] max_per_tenant`.
pub const REQUEST_LOG_MAX_PER_TENANT: u64 = 100_000;

/// `[console] session`: how long a console sign-in lasts.
pub const CONSOLE_SESSION: time::Duration = time::Duration::hours(8);
