//! `scimd config check`: the configuration in force, every key with its value and where the
//! value came from (a flag, its environment variable, the file, or the default).

use crate::config::{FileConfig, Settings, redact_url};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The flag's environment variable.
    Env,
    /// The configuration file.
    File,
    /// scimd's default.
    Default,
}

impl Source {
    /// `flag`, `env`, `file` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// Where the command line's values came from: for each key that has a flag, the flag or its
/// environment variable, if either gave it.
#[derive(Debug, Clone, Default)]
pub struct CliSources(pub Vec<(&'static str, Source)>);

impl CliSources {
    fn of(&self, key: &str) -> Option<Source> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

fn duration(d: time::Duration) -> String {
    let s = d.whole_seconds();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The rows of the report: key, value, source.
pub fn rows(file: &FileConfig, s: &Settings, cli: &CliSources) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: String, in_file: bool| {
        let source = cli.of(key).unwrap_or(if in_file { Source::File } else { Source::Default });
        out.push((key.to_owned(), value, source.as_str()));
    };
    add("database", redact_url(&s.database), file.database.is_some());
    add("listen", s.listen.clone(), file.listen.is_some());
    add("admin_listen", s.admin_listen.clone(), file.admin_listen.is_some());
    add("public_url", s.http.public_url.clone().unwrap_or_else(|| "-".into()), file.public_url.is_some());
    let tls = |f: fn(&crate::tls::TlsFiles) -> &std::path::PathBuf| {
        s.tls.as_ref().map_or_else(|| "-".to_owned(), |t| f(t).display().to_string())
    };
    add("tls_cert", tls(|t| &t.cert), file.tls_cert.is_some());
    add("tls_key", tls(|t| &t.key), file.tls_key.is_some());
    add("admin_hosts", s.admin_hosts.join(", "), file.admin_hosts.is_some());
    let proxies: Vec<String> = s.http.trusted_proxies.iter().map(ToString::to_string).collect();
    add("trusted_proxies", proxies.join(", "), file.trusted_proxies.is_some());
    add("product_name", s.http.product_name.clone(), file.product_name.is_some());
    let (h, l) = (&s.http, &file.limits);
    add("limits.max_body_bytes", h.max_body_bytes.to_string(), l.max_body_bytes.is_some());
    add("limits.default_page_size", h.default_page_size.to_string(), l.default_page_size.is_some());
    add("limits.max_page_size", h.max_page_size.to_string(), l.max_page_size.is_some());
    add(
        "limits.max_in_flight_per_tenant",
        h.max_in_flight_per_tenant.to_string(),
        l.max_in_flight_per_tenant.is_some(),
    );
    add("limits.max_queries_per_tenant", h.max_queries_per_tenant.to_string(), l.max_queries_per_tenant.is_some());
    add("limits.max_bulk_operations", h.max_bulk_operations.to_string(), l.max_bulk_operations.is_some());
    add("limits.max_patch_operations", h.patch.max_operations.to_string(), l.max_patch_operations.is_some());
    add("limits.max_patch_members", h.patch.max_members.to_string(), l.max_patch_members.is_some());
    add("limits.max_filter_length", h.filter.max_len.to_string(), l.max_filter_length.is_some());
    add("limits.max_candidates", s.store.max_candidates.to_string(), l.max_candidates.is_some());
    add("limits.max_connections", h.max_connections.to_string(), l.max_connections.is_some());
    add("limits.header_timeout_secs", secs(h.header_timeout), l.header_timeout_secs.is_some());
    add("limits.body_timeout_secs", secs(h.body_timeout), l.body_timeout_secs.is_some());
    add("limits.shutdown_delay_secs", secs(h.shutdown_delay), l.shutdown_delay_secs.is_some());
    add(
        "events.retention",
        s.retention.age.map_or_else(|| "forever".into(), duration),
        file.events.retention.is_some(),
    );
    add(
        "events.max_per_tenant",
        s.retention.count.map_or_else(|| "no limit".into(), |n| n.to_string()),
        file.events.max_per_tenant.is_some(),
    );
    let w = &s.webhooks;
    let retry = time::Duration::try_from(w.retry_for).map_or_else(|_| secs(w.retry_for), duration);
    add("webhooks.retry_for", retry, file.webhooks.retry_for.is_some());
    add("webhooks.timeout_secs", secs(w.timeout), file.webhooks.timeout_secs.is_some());
    add("webhooks.concurrency", w.concurrency.to_string(), file.webhooks.concurrency.is_some());
    let r = &s.request_log;
    add("request_log.enabled", r.enabled.to_string(), file.request_log.enabled.is_some());
    add(
        "request_log.retention",
        r.age.map_or_else(|| "forever".into(), duration),
        file.request_log.retention.is_some(),
    );
    add(
        "request_log.max_per_tenant",
        r.count.map_or_else(|| "no limit".into(), |n| n.to_string()),
        file.request_log.max_per_tenant.is_some(),
    );
    add("console.session", duration(s.console_session), file.console.session.is_some());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{Overrides, resolve};

    #[test]
    fn every_value_names_its_source() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\n[limits]\nmax_page_size = 500\n[events]\nretention = \"30d\"\n")
                .unwrap();
        let cli = Overrides { database: Some("sqlite://x.db".into()), ..Overrides::default() };
        let s = resolve(&file, cli).unwrap();
        let sources = CliSources(vec![("database", Source::Env)]);
        let rows = rows(&file, &s, &sources);
        let find = |k: &str| rows.iter().find(|r| r.0 == k).map(|r| (r.1.as_str(), r.2)).unwrap();
        assert_eq!(find("database"), ("sqlite://x.db", "env"));
        assert_eq!(find("listen"), ("0.0.0.0:9000", "file"));
        assert_eq!(find("admin_listen"), ("127.0.0.1:8081", "default"));
        assert_eq!(find("limits.max_page_size"), ("500", "file"));
        assert_eq!(find("limits.default_page_size"), ("100", "default"));
        assert_eq!(find("events.retention"), ("30d", "file"));
        assert_eq!(find("console.session"), ("8h", "default"));
        assert_eq!(find("request_log.retention"), ("30d", "default"));
    }
}
