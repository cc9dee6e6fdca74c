//! TLS on the SCIM listener (`--tls-cert FILE --tls-key FILE`, or `tls_cert` / `tls_key` in the
//! configuration file): rustls with the ring provider, TLS 1.3 and 1.2 only (rustls offers
//! nothing older, and only AEAD cipher suites with forward secrecy), ALPN `h2` and `http/1.1`.
//!
//! The certificate is reloaded without a restart: on SIGHUP, and when either file's
//! modification time changes (checked every [`WATCH_EVERY`]), so a renewal by certbot or
//! similar takes effect by itself. A reload swaps what new handshakes get; connections already
//! open keep theirs. A reload that fails (a half-written file, a key that does not match) is
//! logged and the current certificate stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are checked for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(10);

/// The certificate chain and private key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("TLS certificate {}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {}: no certificate in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("TLS key {}: {e}", files.key.display()))?;
    let provider = ring::default_provider();
    let ck = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("TLS certificate {} and key {}: {e}", files.cert.display(), files.key.display()))?;
    Ok(ck)
}

/// The certificate new handshakes get; swapped by a reload.
#[derive(Debug)]
pub struct Reloading {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloading {
    /// Loads the files (an error stops the server from starting).
    pub fn new(files: TlsFiles) -> Result<Reloading, String> {
        let ck = load(&files)?;
        Ok(Reloading { files, current: RwLock::new(Arc::new(ck)) })
    }

    /// Loads the files again; on failure the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let ck = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
        Ok(())
    }

    fn mtimes(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.files.cert), m(&self.files.key))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner())))
    }
}

/// The server configuration of the SCIM listener: TLS 1.3 and 1.2, ALPN h2 and http/1.1, the
/// certificate from `certs`.
pub fn server_config(certs: Arc<Reloading>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reloads the certificate on SIGHUP and when its files change, until `stop` turns true.
pub async fn watch(certs: Arc<Reloading>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = certs.mtimes();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let why = tokio::select! {
            _ = tick.tick() => {
                let now = certs.mtimes();
                if now == seen {
                    continue;
                }
                seen = now;
                "the files changed"
            }
            _ = hangup => "SIGHUP",
            _ = stop.wait_for(|s| *s) => return,
        };
        match certs.reload() {
            Ok(()) => tracing::info!(why, "TLS certificate reloaded"),
            Err(e) => tracing::error!(why, error = %e, "TLS certificate not reloaded; the current one stays"),
        }
    }
}

/// Without TLS: logs and otherwise ignores SIGHUP (whose default action would end the
/// process), until `stop` turns true.
pub async fn ignore_hangup(mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        loop {
            tokio::select! {
                _ = hup.recv() => tracing::info!("SIGHUP: no TLS certificate to reload"),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = stop.wait_for(|s| *s).await;
}
