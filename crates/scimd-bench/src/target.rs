//! The servers under test: a scimd started on a temporary SQLite database, an external SCIM
//! server given by URL and token, and the ceiling started from this executable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

/// A server this program started; killed when dropped.
pub struct Spawned {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// `http://127.0.0.1:PORT` of scimd's admin listener (empty for the ceiling)
    pub admin: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; good enough on a quiet machine).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub fn run_cli(bin: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The default scimd binary: `scimd` next to this executable.
pub fn default_scimd_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("scimd")))
        .unwrap_or_else(|| PathBuf::from("target/release/scimd"))
}

/// Creates tenant `tenant` (unless it exists) and a token for it; returns the token.
pub fn provision(bin: &Path, database: &str, tenant: &str, require: &str) -> Result<String, String> {
    let mut args = vec!["--database", database, "tenant", "create", tenant];
    if !require.is_empty() {
        args.extend(["--require", require]);
    }
    if let Err(e) = run_cli(bin, &args) {
        if !e.contains("already exists") {
            return Err(e);
        }
    }
    let out = run_cli(bin, &["--database", database, "token", "create", "--tenant", tenant, "--label", "bench"])?;
    last_line(&out).ok_or_else(|| "scimd token create printed no token".to_owned())
}

/// Starts `scimd serve` on `database`, logging to `log`, and waits for `/healthz`.
pub async fn start_scimd(bin: &Path, database: &str, log: &Path) -> Result<Spawned, String> {
    start_scimd_with(bin, database, None, log).await
}

/// [`start_scimd`] with `--config FILE` when `config` is given.
pub async fn start_scimd_with(
    bin: &Path,
    database: &str,
    config: Option<&Path>,
    log: &Path,
) -> Result<Spawned, String> {
    let port = free_port()?;
    let admin = free_port()?;
    let logf = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(["--database", database]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let child = cmd
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        // `SCIMD_BENCH_LOG=info` measures with the access log on (scimd's default level).
        .env("RUST_LOG", std::env::var("SCIMD_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let s =
        Spawned { child, pid, origin: format!("http://127.0.0.1:{port}"), admin: format!("http://127.0.0.1:{admin}") };
    wait_healthy(&s.origin, "/healthz").await?;
    Ok(s)
}

/// Creates an API key of the vendor API; returns the key.
pub fn api_key(bin: &Path, database: &str) -> Result<String, String> {
    let out = run_cli(bin, &["--database", database, "api-key", "create", "--label", "bench"])?;
    last_line(&out).ok_or_else(|| "scimd api-key create printed no key".to_owned())
}

fn last_line(out: &str) -> Option<String> {
    out.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

/// Starts `scimd-bench ceiling` (this executable) answering `answers` (`METHOD=STATUS:BYTES`).
pub async fn start_ceiling(answers: &[String]) -> Result<Spawned, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let port = free_port()?;
    let mut cmd = Command::new(&exe);
    cmd.args(["ceiling", "--listen", &format!("127.0.0.1:{port}")]);
    for a in answers {
        cmd.args(["--answer", a]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the ceiling: {e}"))?;
    let pid = child.id();
    let s = Spawned { child, pid, origin: format!("http://127.0.0.1:{port}"), admin: String::new() };
    wait_healthy(&s.origin, "/healthz").await?;
    Ok(s)
}

async fn wait_healthy(origin: &str, path: &str) -> Result<(), String> {
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{origin}{path}");
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not answer within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Refuses anything but loopback targets: this program generates load.
pub fn check_loopback(url: &str) -> Result<(), String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("{url}: only plain http:// loopback URLs are allowed"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let ok = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if ok { Ok(()) } else { Err(format!("{url}: the target must be a loopback address (127.0.0.1, ::1, localhost)")) }
}

/// Resident memory of a process, from /proc.
pub fn memory(pid: Option<u32>) -> Option<sys::Mem> {
    pid.and_then(sys::mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(check_loopback("http://127.0.0.1:8080/scim/v2").is_ok());
        assert!(check_loopback("http://localhost:8080/scim/v2").is_ok());
        assert!(check_loopback("http://[::1]:8080/scim/v2").is_ok());
        assert!(check_loopback("http://10.0.0.1:8080/scim/v2").is_err());
        assert!(check_loopback("https://127.0.0.1/scim/v2").is_err());
        assert!(check_loopback("http://example.com/scim/v2").is_err());
    }
}
