//! Configuration: the optional TOML file, and how it combines with flags and the environment.
//!
//! Every setting is taken from, in this order: the command-line flag, its environment variable,
//! the configuration file (`--config FILE`, env `SCIMD_CONFIG`), the built-in default.
//! The file is optional; unknown keys in it are errors (a typo must not be silently ignored).
//!
//! ```toml
//! # scimd.toml: every key is optional.
//! listen = "0.0.0.0:8080"                 # SCIM listener             (default 127.0.0.1:8080)
//! admin_listen = "127.0.0.1:8081"         # /metrics and vendor API   (default 127.0.0.1:8081)
//! database = "sqlite:///var/lib/scimd/scimd.db"   # or postgres://... (default sqlite://scimd.db)
//! public_url = "https://scim.example.com" # base of the Tenant URL and meta.location
//! trusted_proxies = ["127.0.0.0/8", "::1"] # whose X-Forwarded-Proto/-Host are believed
//! admin_hosts = ["localhost", "127.0.0.1", "::1"]  # Host names the vendor API answers to
//!
//! [limits]
//! max_body_bytes = 2097152
//! default_page_size = 100
//! max_page_size = 1000
//! max_in_flight_per_tenant = 64
//! max_queries_per_tenant = 2      # lists and searches of one tenant at once; more wait
//! max_bulk_operations = 1000
//! max_patch_operations = 1000
//! max_patch_members = 10000
//! max_filter_length = 10000
//! max_candidates = 10000
//! max_connections = 1024          # open connections per listener; more wait in the backlog
//! header_timeout_secs = 10        # to send a request head, and idle time between requests
//! body_timeout_secs = 30          # to send a request body
//! shutdown_delay_secs = 0         # on SIGTERM, /readyz is 503 this long before the listeners close
//!
//! [events]
//! retention = "90d"               # events older than this are pruned; "forever" keeps them
//! # max_per_tenant = 1000000      # and/or only the newest N of each tenant (default: no limit)
//!
//! [webhooks]
//! retry_for = "3d"                # a failing delivery is retried this long, then marked failed
//! timeout_secs = 10               # for a receiver to answer one event
//! concurrency = 32                # deliveries one replica sends at once
//! ```
//!
//! The values above are the defaults. `/ServiceProviderConfig` advertises the limits in force
//! where SCIM has a field for them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http::HttpSettings;

use crate::defaults::{ADMIN_LISTEN as DEFAULT_ADMIN_LISTEN, DATABASE as DEFAULT_DATABASE, LISTEN as DEFAULT_LISTEN};

/// The configuration file, as written. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `listen`: the address of the SCIM listener, `HOST:PORT`.
    /// Default `127.0.0.1:8080`; overridden by `--listen` / `SCIMD_LISTEN`.
    pub listen: Option<String>,
    /// `admin_listen`: the address of the admin listener (`/metrics`, `/healthz`, `/readyz`, and
    /// the vendor API under `/api/v1`, which needs an API key).
    /// Default `127.0.0.1:8081`; overridden by `--admin-listen` / `SCIMD_ADMIN_LISTEN`.
    pub admin_listen: Option<String>,
    /// `database`: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`.
    /// Default `sqlite://scimd.db`; overridden by `--database` / `SCIMD_DATABASE`.
    pub database: Option<String>,
    /// `public_url`: the URL clients reach scimd at, without `/scim/v2`, e.g.
    /// `https://scim.example.com` (behind a TLS-terminating proxy). The Tenant URL printed for
    /// Entra and `meta.location` are built from it. Default: none (the listen address is used);
    /// overridden by `--public-url` / `SCIMD_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `admin_hosts`: the host names (without port) the `Host` header of a vendor API request
    /// may carry, e.g. `["scim-admin.internal"]`; others are refused, which defeats DNS
    /// rebinding. Default: `localhost`, `127.0.0.1`, `::1` and the admin listener's address.
    pub admin_hosts: Option<Vec<String>>,
    /// `trusted_proxies`: addresses or networks (`10.0.0.0/8`) of the proxies in front of
    /// scimd whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed when `public_url` is
    /// unset. Default: loopback only (`127.0.0.0/8`, `::1`).
    pub trusted_proxies: Option<Vec<String>>,
    /// `[limits]`: sizes the server refuses to exceed.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[events]`: how long the change feed keeps events.
    #[serde(default)]
    pub events: EventsConfig,
    /// `[webhooks]`: how events are pushed.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `tls_cert`, `tls_key`: PEM files of the SCIM listener's certificate chain and key: it then
    /// serves HTTPS (TLS 1.3 and 1.2), reloading them on SIGHUP and when they change. Both or
    /// neither; overridden by `--tls-cert` / `--tls-key`.
    pub tls_cert: Option<std::path::PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// `product_name`: the vendor's product, as the customer's setup page and the console name
    /// it, e.g. `"Acme HR"`. Default: "the application".
    pub product_name: Option<String>,
    /// `[request_log]`: the provisioning log.
    #[serde(default)]
    pub request_log: RequestLogConfig,
    /// `[console]`: the support console.
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// The `[request_log]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLogConfig {
    /// `enabled`: whether every SCIM request of a tenant is logged. Default true.
    pub enabled: Option<bool>,
    /// `retention`: how long a request is kept (`30d`, `12h`, or `forever`). Default 30 days.
    pub retention: Option<String>,
    /// `max_per_tenant`: the most requests kept per tenant (the oldest go first). Default 100000.
    pub max_per_tenant: Option<u64>,
}

/// The `[console]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `session`: how long a console sign-in lasts (`8h`, `30m`). Default 8 hours.
    pub session: Option<String>,
}

/// The `[webhooks]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `retry_for`: how long a failing delivery is retried (with exponential back-off) before
    /// it is marked failed, e.g. `"3d"`. Default `"3d"`.
    pub retry_for: Option<String>,
    /// `timeout_secs`: how long a receiver has to answer one event. Default 10.
    pub timeout_secs: Option<u64>,
    /// `concurrency`: deliveries (tenant and endpoint pairs) one replica sends at once.
    /// Default 32.
    pub concurrency: Option<u64>,
}

/// The `[events]` table: the change feed's retention. A consumer asking for a pruned
/// position gets 410 and resynchronises from a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `retention`: events older than this are deleted, e.g. `"90d"`, `"26w"`, `"1y"`;
    /// `"forever"` keeps them. Default `"90d"`.
    pub retention: Option<String>,
    /// `max_per_tenant`: only the newest this many events of each tenant are kept. Default: no
    /// limit.
    pub max_per_tenant: Option<u64>,
}

/// The change feed's retention in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are pruned (`None`: kept whatever their age).
    pub age: Option<time::Duration>,
    /// Only the newest this many of each tenant are kept (`None`: no limit).
    pub count: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { age: Some(crate::defaults::EVENTS_RETENTION), count: crate::defaults::EVENTS_MAX_PER_TENANT }
    }
}

/// The `[limits]` table. Every key is optional; a value must be at least 1 (except
/// `max_in_flight_per_tenant`, where 0 means no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// `max_body_bytes`: the largest request body, in bytes; larger ones get 413.
    /// Default 2097152 (2 MiB).
    pub max_body_bytes: Option<u64>,
    /// `default_page_size`: results per page when a list request has no `count`.
    /// Default 100. At most `max_page_size`.
    pub default_page_size: Option<u64>,
    /// `max_page_size`: the largest `count` honoured (larger ones are lowered to it).
    /// Default 1000.
    pub max_page_size: Option<u64>,
    /// `max_in_flight_per_tenant`: concurrent requests per tenant before 429 with `Retry-After`;
    /// 0 turns the limit off. Default 64.
    pub max_in_flight_per_tenant: Option<u64>,
    /// `max_queries_per_tenant`: lists and searches of one tenant running at once; more wait
    /// their turn, so one tenant's searches cannot take the store from the others. Default 2.
    pub max_queries_per_tenant: Option<u64>,
    /// `max_bulk_operations`: operations in one `/Bulk` request. Default 1000.
    pub max_bulk_operations: Option<u64>,
    /// `max_patch_operations`: operations in one PATCH request. Default 1000.
    pub max_patch_operations: Option<u64>,
    /// `max_patch_members`: group member values added plus removed in one PATCH. Default 10000.
    pub max_patch_members: Option<u64>,
    /// `max_filter_length`: the longest `filter` (and PATCH `path`), in bytes. Default 10000.
    pub max_filter_length: Option<u64>,
    /// `max_candidates`: the most rows a filter on non-indexed attributes may examine before it
    /// is refused with `tooMany`. Default 10000.
    pub max_candidates: Option<u64>,
    /// `max_connections`: open connections per listener; further clients wait in the listen
    /// backlog until one closes. Default 1024.
    pub max_connections: Option<u64>,
    /// `header_timeout_secs`: the time a client has to send a request's head, and the longest
    /// a keep-alive connection may sit idle between requests. Default 10.
    pub header_timeout_secs: Option<u64>,
    /// `body_timeout_secs`: the time a client has to send a request's body. Default 30.
    pub body_timeout_secs: Option<u64>,
    /// `shutdown_delay_secs`: on SIGTERM, how long `/readyz` answers 503 while scimd still
    /// accepts and serves requests, before it stops accepting and lets the requests in flight
    /// finish (time for a load balancer to take the replica out). Default 0.
    pub shutdown_delay_secs: Option<u64>,
}

/// A configuration that cannot be used. Always a usage error (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    /// Reads and parses a configuration file. Errors name the file, and for syntax errors
    /// and unknown keys the line and column.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read configuration file {}: {e}", path.display())))?;
        FileConfig::parse(&text).map_err(|e| ConfigError(format!("configuration file {}: {e}", path.display())))
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_owned()))
    }

    /// Loads the file if one is named, else the empty configuration.
    pub fn load_optional(path: Option<&PathBuf>) -> Result<FileConfig, ConfigError> {
        path.map_or_else(|| Ok(FileConfig::default()), |p| FileConfig::load(p))
    }
}

/// What the command line (flags and their environment variables, as clap merged them) says.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database` / `SCIMD_DATABASE`.
    pub database: Option<String>,
    /// `--listen` / `SCIMD_LISTEN`.
    pub listen: Option<String>,
    /// `--admin-listen` / `SCIMD_ADMIN_LISTEN`.
    pub admin_listen: Option<String>,
    /// `--public-url` / `SCIMD_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--tls-cert` / `SCIMD_TLS_CERT`.
    pub tls_cert: Option<std::path::PathBuf>,
    /// `--tls-key` / `SCIMD_TLS_KEY`.
    pub tls_key: Option<std::path::PathBuf>,
}

/// The settings in force, after precedence and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database URL.
    pub database: String,
    /// The SCIM listener address.
    pub listen: String,
    /// The admin listener address.
    pub admin_listen: String,
    /// The settings of the SCIM HTTP API (includes `public_url`).
    pub http: HttpSettings,
    /// The store's limits.
    pub store: scim_store::Limits,
    /// The names the `Host` header of a vendor API request may carry.
    pub admin_hosts: Vec<String>,
    /// How long the change feed keeps events.
    pub retention: Retention,
    /// How events are pushed to webhooks.
    pub webhooks: crate::webhooks::DeliverySettings,
    /// How the provisioning log is kept.
    pub request_log: crate::reqlog::LogSettings,
    /// How long a console sign-in lasts.
    pub console_session: time::Duration,
    /// The SCIM listener's certificate and key, when it serves TLS.
    pub tls: Option<crate::tls::TlsFiles>,
}

/// How long a console sign-in lasts unless configured.
pub const DEFAULT_CONSOLE_SESSION: time::Duration = crate::defaults::CONSOLE_SESSION;

/// Combines the command line and the file (command line first) over the defaults, and checks
/// the result.
pub fn resolve(file: &FileConfig, cli: Overrides) -> Result<Settings, ConfigError> {
    let pick = |flag: Option<String>, from_file: &Option<String>, default: &str| {
        flag.filter(|s| !s.is_empty()).or_else(|| from_file.clone()).unwrap_or_else(|| default.to_owned())
    };
    let database = pick(cli.database, &file.database, DEFAULT_DATABASE);
    check_database_url(&database)?;
    let listen = pick(cli.listen, &file.listen, DEFAULT_LISTEN);
    let admin_listen = pick(cli.admin_listen, &file.admin_listen, DEFAULT_ADMIN_LISTEN);
    let public_url = cli.public_url.filter(|s| !s.is_empty()).or_else(|| file.public_url.clone());
    let public_url = public_url.map(|u| check_public_url(&u)).transpose()?;

    let l = &file.limits;
    let mut http = HttpSettings { public_url, ..HttpSettings::default() };
    if let Some(list) = &file.trusted_proxies {
        http.trusted_proxies = list
            .iter()
            .map(|p| {
                let p = p.trim();
                p.parse::<ipnet::IpNet>().or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)).map_err(
                    |_| ConfigError(format!("trusted_proxies: \"{p}\" is not an address or a network like 10.0.0.0/8")),
                )
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = l.max_body_bytes {
        http.max_body_bytes = limit("max_body_bytes", v)?;
    }
    if let Some(v) = l.default_page_size {
        http.default_page_size = limit("default_page_size", v)?;
    }
    if let Some(v) = l.max_page_size {
        http.max_page_size = limit("max_page_size", v)?;
    }
    if let Some(v) = l.max_in_flight_per_tenant {
        http.max_in_flight_per_tenant = limit_or_off("max_in_flight_per_tenant", v)?;
    }
    if let Some(v) = l.max_queries_per_tenant {
        http.max_queries_per_tenant = limit_or_off("max_queries_per_tenant", v)?;
    }
    if let Some(v) = l.max_bulk_operations {
        http.max_bulk_operations = limit("max_bulk_operations", v)?;
    }
    if let Some(v) = l.max_patch_operations {
        http.patch.max_operations = limit("max_patch_operations", v)?;
    }
    if let Some(v) = l.max_patch_members {
        http.patch.max_members = limit("max_patch_members", v)?;
    }
    if let Some(v) = l.max_filter_length {
        http.filter.max_len = limit("max_filter_length", v)?;
        http.patch.path.max_len = limit("max_filter_length", v)?;
    }
    if let Some(v) = l.max_connections {
        http.max_connections = limit("max_connections", v)?;
    }
    if let Some(v) = l.header_timeout_secs {
        http.header_timeout = std::time::Duration::from_secs(limit("header_timeout_secs", v)?);
    }
    if let Some(v) = l.shutdown_delay_secs {
        http.shutdown_delay = std::time::Duration::from_secs(limit_or_off::<u64>("shutdown_delay_secs", v)?.min(300));
    }
    if let Some(v) = l.body_timeout_secs {
        http.body_timeout = std::time::Duration::from_secs(limit("body_timeout_secs", v)?);
    }
    let mut store = scim_store::Limits { max_candidates: crate::defaults::MAX_CANDIDATES };
    if let Some(v) = l.max_candidates {
        store.max_candidates = limit("max_candidates", v)?;
    }
    let (default_page, max_page): (u64, u64) =
        (widen(http.default_page_size, "default_page_size")?, widen(http.max_page_size, "max_page_size")?);
    if default_page > max_page {
        return Err(ConfigError(format!(
            "[limits] default_page_size ({default_page}) must not be larger than max_page_size ({max_page})"
        )));
    }
    let admin_hosts = match &file.admin_hosts {
        Some(hosts) => hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
        None => crate::admin::default_hosts(&admin_listen),
    };
    let mut retention = Retention::default();
    if let Some(r) = &file.events.retention {
        retention.age = match r.trim() {
            "forever" => None,
            r => Some(crate::admin::parse_duration(r).map_err(|e| ConfigError(format!("[events] retention: {e}")))?),
        };
    }
    if let Some(n) = file.events.max_per_tenant {
        if n == 0 {
            return Err(ConfigError("[events] max_per_tenant must be at least 1".into()));
        }
        retention.count = Some(n);
    }
    let mut webhooks = crate::webhooks::DeliverySettings::default();
    let w = &file.webhooks;
    if let Some(r) = &w.retry_for {
        let d = crate::admin::parse_duration(r).map_err(|e| ConfigError(format!("[webhooks] retry_for: {e}")))?;
        webhooks.retry_for = d.try_into().map_err(|_| ConfigError("[webhooks] retry_for is out of range".into()))?;
    }
    let at_least_one = |key: &str, v: u64| {
        if v == 0 { Err(ConfigError(format!("[webhooks] {key} must be at least 1"))) } else { Ok(v) }
    };
    if let Some(v) = w.timeout_secs {
        webhooks.timeout = std::time::Duration::from_secs(at_least_one("timeout_secs", v)?.min(300));
    }
    if let Some(v) = w.concurrency {
        webhooks.concurrency = usize::try_from(at_least_one("concurrency", v)?.min(1024)).unwrap_or(1024);
    }
    if let Some(name) = &file.product_name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ConfigError("product_name must be 1 to 100 characters, without control characters".into()));
        }
        http.product_name = name.to_owned();
    }
    let mut request_log = crate::reqlog::LogSettings::default();
    let r = &file.request_log;
    if let Some(on) = r.enabled {
        request_log.enabled = on;
    }
    if let Some(age) = &r.retention {
        request_log.age = match age.trim() {
            "forever" => None,
            a => Some(
                crate::admin::parse_duration(a).map_err(|e| ConfigError(format!("[request_log] retention: {e}")))?,
            ),
        };
    }
    if let Some(n) = r.max_per_tenant {
        if n == 0 {
            return Err(ConfigError("[request_log] max_per_tenant must be at least 1".into()));
        }
        request_log.count = Some(n);
    }
    let console_session = match &file.console.session {
        Some(d) => crate::admin::parse_duration(d).map_err(|e| ConfigError(format!("[console] session: {e}")))?,
        None => DEFAULT_CONSOLE_SESSION,
    };
    let tls_cert = cli.tls_cert.or_else(|| file.tls_cert.clone());
    let tls_key = cli.tls_key.or_else(|| file.tls_key.clone());
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err(ConfigError("TLS needs both a certificate (tls_cert) and its key (tls_key)".into())),
    };
    Ok(Settings {
        database,
        listen,
        admin_listen,
        http,
        store,
        admin_hosts,
        retention,
        webhooks,
        request_log,
        console_session,
        tls,
    })
}

/// A `[limits]` value converted to the type of the setting it goes to: at least 1, and small
/// enough for that type.
fn limit<T: TryFrom<u64>>(key: &str, value: u64) -> Result<T, ConfigError> {
    if value == 0 {
        return Err(ConfigError(format!("[limits] {key} must be at least 1")));
    }
    T::try_from(value).map_err(|_| ConfigError(format!("[limits] {key} = {value} is too large")))
}

/// Like [`limit`], but 0 (no limit) is allowed.
fn limit_or_off<T: TryFrom<u64>>(key: &str, value: u64) -> Result<T, ConfigError> {
    T::try_from(value).map_err(|_| ConfigError(format!("[limits] {key} = {value} is too large")))
}

fn widen<T: TryInto<u64>>(value: T, key: &str) -> Result<u64, ConfigError> {
    value.try_into().map_err(|_| ConfigError(format!("[limits] {key} is too large")))
}

/// Checks that a database URL names a supported database.
pub fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let ok = url.strip_prefix("sqlite://").is_some_and(|p| !p.is_empty())
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "unsupported database URL \"{}\": use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
            redact_url(url)
        )))
    }
}

/// Checks a public URL (`http://` or `https://`, no query) and drops a trailing `/` or
/// `/scim/v2` (the Tenant URL is this URL plus `/scim/v2`).
pub fn check_public_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/scim/v2").unwrap_or(trimmed).trim_end_matches('/');
    let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !trimmed.contains(['?', '#', ' ']) => Ok(trimmed.to_owned()),
        _ => Err(ConfigError(format!(
            "public URL \"{url}\" must look like https://HOST or https://HOST/PREFIX (without /scim/v2)"
        ))),
    }
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let s = resolve(&FileConfig::parse("").unwrap(), Overrides::default()).unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.admin_listen, DEFAULT_ADMIN_LISTEN);
        assert_eq!(s.database, DEFAULT_DATABASE);
        assert_eq!(s.http.public_url, None);
        assert_eq!(s.store, scim_store::Limits::default());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = FileConfig::parse(
            "listen = \"0.0.0.0:9000\"\nadmin_listen = \"127.0.0.1:9001\"\ndatabase = \"sqlite://a.db\"\n\
             public_url = \"https://scim.example.com/\"\n",
        )
        .unwrap();
        let s = resolve(&file, Overrides::default()).unwrap();
        assert_eq!((s.listen.as_str(), s.admin_listen.as_str()), ("0.0.0.0:9000", "127.0.0.1:9001"));
        assert_eq!(s.database, "sqlite://a.db");
        assert_eq!(s.http.public_url.as_deref(), Some("https://scim.example.com"));
        let cli = Overrides {
            database: Some("sqlite://b.db".into()),
            listen: Some("127.0.0.1:1".into()),
            admin_listen: None,
            public_url: Some("http://localhost:8080".into()),
            ..Overrides::default()
        };
        let s = resolve(&file, cli).unwrap();
        assert_eq!((s.listen.as_str(), s.admin_listen.as_str()), ("127.0.0.1:1", "127.0.0.1:9001"));
        assert_eq!(s.database, "sqlite://b.db");
        assert_eq!(s.http.public_url.as_deref(), Some("http://localhost:8080"));
    }

    #[test]
    #[allow(clippy::useless_conversion)] // the settings' integer types are not this module's
    fn limits_reach_the_http_settings_and_the_store() {
        let file = FileConfig::parse(
            "[limits]\nmax_body_bytes = 2048\ndefault_page_size = 5\nmax_page_size = 50\n\
             max_in_flight_per_tenant = 3\nmax_bulk_operations = 7\nmax_patch_operations = 11\n\
             max_patch_members = 13\nmax_filter_length = 17\nmax_candidates = 19\nmax_connections = 23\n\
             header_timeout_secs = 29\nbody_timeout_secs = 31\n",
        )
        .unwrap();
        let s = resolve(&file, Overrides::default()).unwrap();
        let h = &s.http;
        assert_eq!(u64::try_from(h.max_body_bytes).unwrap(), 2048);
        assert_eq!(u64::try_from(h.default_page_size).unwrap(), 5);
        assert_eq!(u64::try_from(h.max_page_size).unwrap(), 50);
        assert_eq!(u64::try_from(h.max_in_flight_per_tenant).unwrap(), 3);
        assert_eq!(u64::try_from(h.max_bulk_operations).unwrap(), 7);
        assert_eq!((h.patch.max_operations, h.patch.max_members), (11, 13));
        assert_eq!((h.filter.max_len, h.patch.path.max_len), (17, 17));
        assert_eq!(s.store.max_candidates, 19);
        assert_eq!(h.max_connections, 23);
        assert_eq!((h.header_timeout.as_secs(), h.body_timeout.as_secs()), (29, 31));
    }

    #[test]
    fn unknown_keys_are_refused_with_line_and_column() {
        let e = FileConfig::parse("listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.0.contains("line 2, column 1"), "{e}");
        assert!(e.0.contains("listen_addr"), "{e}");
        let e = FileConfig::parse("[limits]\nmax_page = 3\n").unwrap_err();
        assert!(e.0.contains("line 2"), "{e}");
        let e = FileConfig::parse("[limits]\nmax_page_size = \"many\"\n").unwrap_err();
        assert!(e.0.contains("line 2"), "{e}");
        let e = FileConfig::parse("listen = \n").unwrap_err();
        assert!(e.0.contains("line 1"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let zero = FileConfig::parse("[limits]\nmax_page_size = 0\n").unwrap();
        assert!(resolve(&zero, Overrides::default()).unwrap_err().0.contains("max_page_size must be at least 1"));
        let pages = FileConfig::parse("[limits]\ndefault_page_size = 10\nmax_page_size = 5\n").unwrap();
        assert!(resolve(&pages, Overrides::default()).is_err());
        let db = FileConfig::parse("database = \"mysql://x\"\n").unwrap();
        assert!(resolve(&db, Overrides::default()).unwrap_err().0.contains("unsupported database URL"));
        let url = FileConfig::parse("public_url = \"scim.example.com\"\n").unwrap();
        assert!(resolve(&url, Overrides::default()).is_err());
        let off = FileConfig::parse("[limits]\nmax_in_flight_per_tenant = 0\n").unwrap();
        assert_eq!(resolve(&off, Overrides::default()).unwrap().http.max_in_flight_per_tenant, 0);
    }

    #[test]
    fn public_urls_lose_a_trailing_scim_v2() {
        for given in
            ["https://h.example", "https://h.example/", "https://h.example/scim/v2", "https://h.example/scim/v2/"]
        {
            assert_eq!(check_public_url(given).unwrap(), "https://h.example");
        }
        assert_eq!(check_public_url("https://h.example/tenant-a").unwrap(), "https://h.example/tenant-a");
        assert!(check_public_url("https://").is_err());
        assert!(check_public_url("https://h.example/?x").is_err());
    }

    #[test]
    fn the_documented_example_parses_and_its_limits_are_the_defaults() {
        let source = include_str!("config.rs");
        let example: String = source
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_owned() + "\n")
            .collect();
        let file = FileConfig::parse(&example).unwrap();
        let documented = resolve(&file, Overrides::default()).unwrap();
        let defaults = resolve(&FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(format!("{:?}", documented.store), format!("{:?}", defaults.store));
        let (d, h) = (&defaults.http, &documented.http);
        assert_eq!(
            (h.max_body_bytes, h.default_page_size, h.max_page_size, h.max_in_flight_per_tenant, h.max_bulk_operations),
            (d.max_body_bytes, d.default_page_size, d.max_page_size, d.max_in_flight_per_tenant, d.max_bulk_operations)
        );
        assert_eq!(
            (h.patch.max_operations, h.patch.max_members, h.filter.max_len),
            (d.patch.max_operations, d.patch.max_members, d.filter.max_len)
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://scimd:s3cret@db:5432/scimd"), "postgres://scimd:***@db:5432/scimd");
        assert_eq!(redact_url("postgres://db/scimd"), "postgres://db/scimd");
        assert_eq!(redact_url("sqlite://scimd.db"), "sqlite://scimd.db");
    }
}
