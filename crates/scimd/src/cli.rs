//! The command line: `scimd serve`, `scimd tenant ...`, `scimd token ...`.
//!
//! Machine output goes to stdout, logs and errors to stderr. Exit codes: 0 ok, 1 runtime
//! failure (database unreachable, unknown tenant, name taken), 2 usage (bad arguments, bad
//! configuration file).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use scim_core::Registry;
use scim_store::{Actor, Store};
use tracing_subscriber::EnvFilter;

use crate::admin::{self, IssuedView, OpError, TenantView, TokenView};
use crate::clock::{Clock as _, SystemClock};
use crate::config::{self, ConfigError, FileConfig, Overrides, Settings};
use crate::http::HttpSettings;
use crate::server::{Server, ServerError};

/// scimd: a multi-tenant SCIM 2.0 provisioning server for Microsoft Entra ID, Okta and other
/// SCIM clients.
#[derive(Debug, Parser)]
#[command(name = "scimd", version, propagate_version = true, args_override_self = true, max_term_width = 100)]
struct Cli {
    /// Database: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB; the schema is created or
    /// migrated automatically [default: sqlite://scimd.db]
    #[arg(long, global = true, env = "SCIMD_DATABASE", value_name = "URL", hide_env_values = true)]
    database: Option<String>,

    /// Configuration file (TOML); flags and environment variables take precedence over it
    #[arg(long, global = true, env = "SCIMD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log format on stderr: `text` (for people) or `json` (one object per line, for a log
    /// pipeline) [default: text on a terminal, json otherwise]
    #[arg(long, global = true, env = "SCIMD_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve SCIM, and /metrics and the vendor API on the admin listener. On an empty database,
    /// create tenant "default", print its token once and explain how to connect Entra ID.
    Serve(ServeArgs),
    /// Create, list, show and delete tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke secret tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, list and revoke keys of the vendor API (the admin listener's /api/v1).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Read a tenant's change feed.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Push the change feed to receivers: add, list, remove, test, replay, rotate-secret.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Read a tenant's provisioning log: its SCIM requests, newest first.
    Log(LogArgs),
    /// Check the configuration: print every key's value in force and where it came from
    /// (flag, env, file, default); exit 2 when it is invalid.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Bring the database's schema to this scimd's version (`serve` does it at start); with
    /// --check, only say which migrations would run.
    Migrate {
        /// Change nothing: print the database's version and the migrations that would run
        #[arg(long)]
        check: bool,
    },
    /// Copy the SQLite database to a new file, consistent while scimd serves it (SQLite's online
    /// backup API). For PostgreSQL, use pg_dump.
    Backup {
        /// The new file (it must not exist)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Write tenants to stdout as JSON Lines (`> FILE.jsonl`): policy, guard, token digests,
    /// users, groups, memberships and the change feed, with every id, version and position;
    /// with --all also the API keys and webhooks. Reads the database read-only
    /// (docs/export-format.md).
    Export {
        /// A tenant to export (repeat for more)
        #[arg(long, value_name = "NAME", required_unless_present = "all", conflicts_with = "all")]
        tenant: Vec<String>,
        /// Every tenant, the API keys and the webhooks
        #[arg(long)]
        all: bool,
    },
    /// Read an export from stdin (`< FILE.jsonl`) into the database, then count each tenant's
    /// rows against the file's (exit 1 if they differ); importing a file again changes nothing.
    Import,
    /// Copy a whole store to another database: `store copy --from URL --to URL`.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every tenant, API key and webhook from one database to another (export and import
    /// streamed in this process), reading the source read-only, then check the counts.
    Copy {
        /// The source: sqlite://PATH (or a path) or postgres://...; at this scimd's schema version
        #[arg(long, value_name = "URL")]
        from: String,
        /// The target: created or migrated as `serve` does
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the configuration in force, with the source of each value; takes `serve`'s flags.
    Check(ServeArgs),
}

#[derive(Debug, Args)]
struct LogArgs {
    /// The tenant
    #[arg(long)]
    tenant: String,
    /// Only refused requests (4xx and 5xx)
    #[arg(long, conflicts_with = "status")]
    errors: bool,
    /// Only this status or class: 2xx, 4xx, 5xx, errors, or e.g. 409
    #[arg(long)]
    status: Option<String>,
    /// Only requests since this RFC 3339 time or this long ago (30m, 1h, 7d)
    #[arg(long)]
    since: Option<String>,
    /// The most requests to print (1 to 1000)
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Print one JSON object per line instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Add a receiver; its signing secret is printed alone on the last line, shown once.
    Add {
        /// Where events are POSTed (http:// or https://)
        #[arg(long, required_unless_present = "poll")]
        url: Option<String>,
        /// No URL: the receiver polls POST /api/v1/webhooks/{id}/poll (RFC 8936; --format set)
        #[arg(long, conflicts_with = "url")]
        poll: bool,
        /// The tenant whose events it receives [default: every tenant's]
        #[arg(long, value_name = "NAME", conflicts_with = "all_tenants")]
        tenant: Option<String>,
        /// Receive every tenant's events, and those of tenants created later (the default)
        #[arg(long)]
        all_tenants: bool,
        /// The event types, comma-separated, e.g. user.*,group.members_added [default: all]
        #[arg(long, value_name = "TYPES")]
        events: Vec<String>,
        /// json (scimd's events) or set (RFC 9967 Security Event Tokens)
        #[arg(long, default_value = "json", value_parser = ["json", "set"])]
        format: String,
    },
    /// List the receivers and the state of each tenant's delivery.
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a receiver.
    Remove {
        /// The webhook id (wh_...)
        id: String,
    },
    /// Send a signed ping event (webhook.ping) and print the receiver's answer.
    Test {
        /// The webhook id
        id: String,
    },
    /// Deliver the events again from a feed position (and resume a delivery that gave up).
    Replay {
        /// The webhook id
        id: String,
        /// The first position to deliver again
        #[arg(long, value_name = "SEQ")]
        from: i64,
        /// Only this tenant's delivery [default: every tenant's]
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
    },
    /// Give a receiver a new signing secret, printed alone on the last line; the old one
    /// signs beside it during the overlap.
    RotateSecret {
        /// The webhook id
        id: String,
        /// How long the old secret still signs, e.g. 24h
        #[arg(long, default_value = "24h", value_parser = admin::parse_duration)]
        overlap: time::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print a tenant's events after a position, one JSON object per line, oldest first.
    Tail {
        /// The tenant
        #[arg(long, value_name = "NAME")]
        tenant: String,
        /// Print the events after this position (the `seq` of the last event already seen)
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: u64,
        /// Keep waiting for new events instead of stopping at the end of the feed
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key; it is printed alone on the last line and never shown again.
    Create {
        /// A label for humans, e.g. billing-sync
        #[arg(long, value_name = "L")]
        label: Option<String>,
    },
    /// List the API keys (never their secrets).
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key, given by its id or as the whole key.
    Revoke {
        /// The key id (as `api-key list` shows it) or the whole key
        #[arg(value_name = "ID")]
        key: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address of the SCIM listener [default: 127.0.0.1:8080]
    #[arg(long, env = "SCIMD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Address of the admin listener (/metrics, /healthz, /readyz, and the vendor API under
    /// /api/v1, which needs an API key from `scimd api-key create`) [default: 127.0.0.1:8081]
    #[arg(long, env = "SCIMD_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Public base URL (e.g. https://scim.example.com, without /scim/v2) of the Tenant URL and
    /// meta.location; without it, the printed Tenant URL uses the listen address and
    /// meta.location the request's Host
    #[arg(long, env = "SCIMD_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Serve the SCIM listener over TLS with this certificate chain (PEM, leaf first);
    /// reloaded on SIGHUP and when the file changes. Needs --tls-key
    #[arg(long, env = "SCIMD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, env = "SCIMD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// The tenant's name: 1-63 characters of a-z, 0-9 and '-', not starting with '-'
        #[arg(value_parser = tenant_name)]
        name: String,
        /// Mandatory user attributes as SCIM paths, comma-separated or repeated, e.g.
        /// userName,name.familyName,emails[type eq "work"].value
        #[arg(long, value_name = "ATTR,...")]
        require: Vec<String>,
    },
    /// List the tenants.
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a tenant: its required attributes, creation time and tokens.
    Show {
        /// The tenant's name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Release a tenant whose mass-deprovisioning guard tripped: push delivery resumes.
    Release {
        /// The tenant's name
        name: String,
        /// Skip the held deactivations and deletions instead of delivering them (they stay
        /// in the feed, and `webhook replay` sends them after all)
        #[arg(long)]
        discard: bool,
    },
    /// Set a tenant's guard against mass deprovisioning (default: 20% of active users, at
    /// least 50, within 1h, holds push delivery until `tenant release`).
    Guard {
        /// The tenant's name
        name: String,
        /// Turn the guard off
        #[arg(long, conflicts_with = "on")]
        off: bool,
        /// Turn the guard on again
        #[arg(long)]
        on: bool,
        /// The share of active users that trips it, e.g. 0.2
        #[arg(long, value_name = "FRACTION")]
        share: Option<f64>,
        /// The fewest deactivations and deletions that trip it
        #[arg(long, value_name = "N")]
        min: Option<i64>,
        /// The window they are counted in, e.g. 1h
        #[arg(long, value_name = "DURATION", value_parser = admin::parse_duration)]
        window: Option<time::Duration>,
    },
    /// Make a one-time setup link for the tenant's admin: it shows the Tenant URL, reveals a
    /// new secret token once and guides the Entra ID setup. The URL is printed alone on the
    /// last line.
    Invite {
        /// The tenant's name
        name: String,
        /// How long the link works, e.g. 7d, 48h
        #[arg(long, value_name = "DURATION", value_parser = admin::parse_duration)]
        expires: Option<time::Duration>,
        /// The public URL the link is made on (default: public_url of the configuration, else
        /// the listen address)
        #[arg(long, env = "SCIMD_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// List a tenant's setup links.
    Invites {
        /// The tenant's name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a setup link (by the id `tenant invites` shows).
    RevokeInvite {
        /// The link's id
        id: String,
    },
    /// Delete a tenant with all its users, groups and tokens.
    Delete {
        /// The tenant's name
        name: String,
        /// Confirm the deletion (required)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a secret token; it is printed alone on the last line and never shown again.
    Create {
        /// The tenant the token grants access to
        #[arg(long, value_name = "NAME")]
        tenant: String,
        /// A label for humans, e.g. entra-prod
        #[arg(long, value_name = "L")]
        label: Option<String>,
        /// Lifetime: a number and a unit m, h, d, w or y, e.g. 90d [default: never expires]
        #[arg(long, value_name = "DURATION", value_parser = admin::parse_duration)]
        expires: Option<time::Duration>,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        /// The tenant
        #[arg(long, value_name = "NAME")]
        tenant: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token, given by its id or as the whole token.
    Revoke {
        /// The token id (as `token list` shows it) or the whole token
        #[arg(value_name = "TOKEN_ID")]
        token: String,
    },
}

fn tenant_name(s: &str) -> Result<String, String> {
    admin::check_tenant_name(s).map(|()| s.to_owned())
}

/// The most threads running blocking store calls at once.
const BLOCKING_THREADS: usize = 16;

/// Why a command failed, with its exit code.
#[derive(Debug)]
enum Failure {
    /// Exit code 2.
    Usage(String),
    /// Exit code 1.
    Runtime(String),
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Usage(m) => Failure::Usage(m),
            other => Failure::Runtime(other.to_string()),
        }
    }
}

impl From<ServerError> for Failure {
    fn from(e: ServerError) -> Self {
        Failure::Runtime(e.0)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.0)
    }
}

impl From<crate::transfer::TransferError> for Failure {
    fn from(e: crate::transfer::TransferError) -> Self {
        match e {
            crate::transfer::TransferError::Input(m) => Failure::Usage(m),
            crate::transfer::TransferError::Runtime(m) => Failure::Runtime(m),
        }
    }
}

/// Runs the command line; `main.rs` calls it.
pub fn main() -> ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(x) => x,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let sources = cli_sources(&matches);
    // Kept to the end of main: dropping it flushes the log lines still queued.
    let _log = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("scimd")
        // SQLite reads that find no free reader run on blocking threads and wait for one of its
        // four connections: more threads would only wait and hold memory.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli, sources));
    // Nothing may keep the process alive after the command: connections close with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr through a writer thread, so a request never waits for the terminal or
/// the log pipeline (when it falls behind by more than the buffer, lines are dropped, never
/// requests slowed). `RUST_LOG` filters (default `info`; `scimd::access=off` silences the
/// access log).
fn init_logging(format: Option<LogFormat>) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal { LogFormat::Text } else { LogFormat::Json });
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    guard
}

/// Where the flags that override the configuration file got their values (the flag or its
/// environment variable), for `config check`.
fn cli_sources(m: &clap::ArgMatches) -> crate::config_check::CliSources {
    use crate::config_check::Source;
    use clap::parser::ValueSource;
    let of = |m: &clap::ArgMatches, id: &str| match m.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Source::Flag),
        Some(ValueSource::EnvVariable) => Some(Source::Env),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(s) = of(m, "database") {
        out.push(("database", s));
    }
    if let Some(("config", m)) = m.subcommand() {
        if let Some(("check", m)) = m.subcommand() {
            for id in ["listen", "admin_listen", "public_url", "tls_cert", "tls_key"] {
                if let Some(s) = of(m, id) {
                    out.push((id, s));
                }
            }
        }
    }
    crate::config_check::CliSources(out)
}

async fn run(cli: Cli, sources: crate::config_check::CliSources) -> Result<(), Failure> {
    let file = FileConfig::load_optional(cli.config.as_ref())?;
    let mut overrides = Overrides { database: cli.database, ..Overrides::default() };
    let serve_args = match &cli.command {
        Command::Serve(args) | Command::Config(ConfigCommand::Check(args)) => Some(args),
        _ => None,
    };
    if let Some(args) = serve_args {
        overrides.listen = args.listen.clone();
        overrides.admin_listen = args.admin_listen.clone();
        overrides.public_url = args.public_url.clone();
        overrides.tls_cert = args.tls_cert.clone();
        overrides.tls_key = args.tls_key.clone();
    }
    let settings = config::resolve(&file, overrides)?;
    match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Tenant(cmd) => tenant(cmd, &settings).await,
        Command::Token(cmd) => token(cmd, &settings).await,
        Command::ApiKey(cmd) => api_key(cmd, &settings).await,
        Command::Events(cmd) => events(cmd, &settings).await,
        Command::Webhook(cmd) => webhook(cmd, &settings).await,
        Command::Log(args) => log(args, &settings).await,
        Command::Backup { to } => backup(&settings, &to).await,
        Command::Export { tenant, all } => Ok(crate::transfer::run_export(&settings, tenant, all).await?),
        Command::Import => Ok(crate::transfer::run_import(&settings).await?),
        Command::Store(StoreCommand::Copy { from, to }) => Ok(crate::transfer::run_copy(&settings, &from, &to).await?),
        Command::Migrate { check } => migrate(&settings, check).await,
        Command::Config(ConfigCommand::Check(_)) => {
            let rows = crate::config_check::rows(&file, &settings, &sources);
            let rows: Vec<Vec<String>> = rows.into_iter().map(|(k, v, s)| vec![k, v, s.to_owned()]).collect();
            let from = cli.config.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string());
            out(&format!(
                "configuration file: {from}\nthe configuration is valid\n{}",
                table(&["KEY", "VALUE", "SOURCE"], &rows)
            ))
        }
    }
}

async fn webhook(cmd: WebhookCommand, settings: &Settings) -> Result<(), Failure> {
    use crate::webhooks;
    let registry = Arc::new(Registry::standard());
    let clock = SystemClock;
    if let WebhookCommand::Add { url: Some(url), .. } = &cmd {
        // Check the arguments before touching the database.
        webhooks::check_url(url).map_err(Failure::Usage)?;
    }
    let store = open_store(settings, &registry).await?;
    let s = store.as_ref();
    match cmd {
        WebhookCommand::Add { url, poll: _, tenant, all_tenants: _, events, format } => {
            let added = webhooks::add(s, &clock, url.as_deref(), tenant.as_deref(), &events, &format).await?;
            let w = &added.webhook;
            let scope = w.tenant.as_deref().map_or_else(|| "every tenant".to_owned(), |t| format!("tenant {t}"));
            out(&format!(
                "added webhook {} for {scope} ({}, events: {})\nsigning secret (shown once):\n{}\n",
                w.id,
                w.format,
                if w.events.is_empty() { "all".to_owned() } else { w.events.join(",") },
                added.secret
            ))
        }
        WebhookCommand::List { json: as_json } => {
            let list = webhooks::list(s, &clock).await?;
            if as_json {
                return out(&json(&list)?);
            }
            let mut rows = Vec::new();
            for w in &list {
                for d in &w.deliveries {
                    rows.push(vec![
                        w.id.clone(),
                        w.url.clone(),
                        d.tenant.clone(),
                        d.position.to_string(),
                        d.backlog.to_string(),
                        dash(d.last_attempt.as_deref()).to_owned(),
                        dash(d.last_outcome.as_deref()).to_owned(),
                        d.consecutive_failures.to_string(),
                        if d.failed {
                            "failed"
                        } else if d.consecutive_failures > 0 {
                            "retrying"
                        } else {
                            "ok"
                        }
                        .to_owned(),
                    ]);
                }
                if w.deliveries.is_empty() {
                    rows.push(vec![
                        w.id.clone(),
                        w.url.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "ok".into(),
                    ]);
                }
            }
            out(&table(
                &["ID", "URL", "TENANT", "POSITION", "BACKLOG", "LAST ATTEMPT", "OUTCOME", "FAILURES", "STATE"],
                &rows,
            ))
        }
        WebhookCommand::Remove { id } => {
            webhooks::remove(s, &id).await?;
            out(&format!("removed webhook {}\n", id.trim()))
        }
        WebhookCommand::Test { id } => {
            let t = webhooks::test(s, &clock, &id).await?;
            out(&format!("ping {}: {}\n", t.id, t.outcome))?;
            if t.ok { Ok(()) } else { Err(Failure::Runtime(format!("the receiver answered {}", t.outcome))) }
        }
        WebhookCommand::Replay { id, from, tenant } => {
            let w = webhooks::replay(s, &clock, &id, from, tenant.as_deref()).await?;
            out(&format!("webhook {} delivers again from position {from}\n", w.id))
        }
        WebhookCommand::RotateSecret { id, overlap } => {
            let r = webhooks::rotate_secret(s, &clock, &id, overlap).await?;
            out(&format!(
                "webhook {}: new signing secret (shown once); the old one also signs until {}:\n{}\n",
                r.webhook.id,
                r.webhook.previous_secret_until.as_deref().unwrap_or("now"),
                r.secret
            ))
        }
    }
}

/// How often `events tail --follow` reads the feed while it waits: the writers are other
/// processes, whose commits only wake it on PostgreSQL.
const TAIL_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

async fn events(cmd: EventsCommand, settings: &Settings) -> Result<(), Failure> {
    let EventsCommand::Tail { tenant, after, follow } = cmd;
    let registry = Arc::new(Registry::standard());
    let store = open_store(settings, &registry).await?;
    let t = store
        .tenant(tenant.clone())
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?
        .ok_or_else(|| Failure::Runtime(format!("no tenant named \"{tenant}\"")))?;
    let mut after = i64::try_from(after).map_err(|_| Failure::Usage("--after is too large".into()))?;
    let wait = if follow { crate::feed::MAX_WAIT } else { std::time::Duration::ZERO };
    loop {
        let page = crate::feed::read(store.as_ref(), &t, after, crate::feed::MAX_LIMIT, wait, Some(TAIL_RECHECK), None)
            .await
            .map_err(|e| Failure::Runtime(e.detail()))?;
        let mut text = String::new();
        for e in &page.events {
            text.push_str(&e.to_json(&t.name));
            text.push('\n');
        }
        out(&text)?;
        if !follow && page.events.is_empty() {
            return Ok(());
        }
        after = page.position;
    }
}

async fn open_store(settings: &Settings, registry: &Arc<Registry>) -> Result<Arc<dyn Store>, Failure> {
    Ok(crate::server::open_store(settings, registry).await?)
}

/// Writes machine output to stdout; a closed pipe is not an error worth a panic.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Runtime(format!("cannot write to stdout: {e}")))
}

fn json(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Failure::Runtime(format!("cannot encode JSON: {e}")))
}

async fn tenant(cmd: TenantCommand, settings: &Settings) -> Result<(), Failure> {
    let registry = Arc::new(Registry::standard());
    let clock = SystemClock;
    match cmd {
        TenantCommand::Create { name, require } => {
            // Check the arguments before touching the database.
            admin::check_required(&registry, &admin::split_paths(&require)).map_err(Failure::Usage)?;
            let store = open_store(settings, &registry).await?;
            let t = admin::create_tenant(
                store.as_ref(),
                &clock,
                &registry,
                &name,
                &require,
                &Actor::cli("scimd tenant create"),
            )
            .await?;
            let mut text = format!("created tenant {}\n", t.name);
            if !t.required.is_empty() {
                text += &format!("required attributes: {}\n", t.required.join(", "));
            }
            text += &format!("next: scimd token create --tenant {}\n", t.name);
            out(&text)
        }
        TenantCommand::List { json: as_json } => {
            let store = open_store(settings, &registry).await?;
            let list = admin::list_tenants(store.as_ref(), &clock).await?;
            out(&if as_json { json(&list)? } else { tenant_table(&list) })
        }
        TenantCommand::Show { name, json: as_json } => {
            let store = open_store(settings, &registry).await?;
            let t = admin::show_tenant(store.as_ref(), &clock, &name).await?;
            let h = crate::health::tenant_health(store.as_ref(), &clock, &name).await?;
            if as_json {
                let mut v = serde_json::to_value(&t).map_err(|e| Failure::Runtime(e.to_string()))?;
                if let Some(m) = v.as_object_mut() {
                    m.insert("health".into(), serde_json::to_value(&h).map_err(|e| Failure::Runtime(e.to_string()))?);
                }
                out(&json(&v)?)
            } else {
                out(&(tenant_details(&t) + &health_details(&h)))
            }
        }
        TenantCommand::Invite { name, expires, public_url } => {
            let store = open_store(settings, &registry).await?;
            let public = public_url.as_deref().map(config::check_public_url).transpose()?;
            let origin = crate::setup::public_origin(
                public.as_deref().or(settings.http.public_url.as_deref()),
                &settings.listen,
            );
            let i = crate::setup::create_invite(store.as_ref(), &clock, &name, expires, &origin).await?;
            out(&format!(
                "setup link {} for tenant {}, works until {} (once it reveals a token, it shows it no more;                  revoke with: scimd tenant revoke-invite {})\n{}\n",
                i.id,
                i.tenant,
                i.expires,
                i.id,
                i.url.unwrap_or_default()
            ))
        }
        TenantCommand::Invites { name, json: as_json } => {
            let store = open_store(settings, &registry).await?;
            let list = crate::setup::list_invites(store.as_ref(), &clock, &name).await?;
            if as_json {
                return out(&json(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.state.to_owned(),
                        i.created.clone(),
                        i.expires.clone(),
                        dash(i.redeemed.as_deref()).to_owned(),
                        dash(i.token.as_deref()).to_owned(),
                    ]
                })
                .collect();
            out(&table(&["ID", "STATE", "CREATED", "EXPIRES", "REVEALED", "TOKEN"], &rows))
        }
        TenantCommand::RevokeInvite { id } => {
            let store = open_store(settings, &registry).await?;
            let i = crate::setup::revoke_invite(store.as_ref(), &clock, &id).await?;
            out(&format!("revoked setup link {} of tenant {}\n", i.id, i.tenant))
        }
        TenantCommand::Release { name, discard } => {
            let store = open_store(settings, &registry).await?;
            let t = admin::release_guard(store.as_ref(), &clock, &name, discard).await?;
            out(&tenant_details(&t))
        }
        TenantCommand::Guard { name, off, on, share, min, window } => {
            let store = open_store(settings, &registry).await?;
            let enabled = if off { Some(false) } else { on.then_some(true) };
            let t = admin::set_guard(store.as_ref(), &clock, &name, enabled, share, min, window).await?;
            out(&tenant_details(&t))
        }
        TenantCommand::Delete { name, yes } => {
            if !yes {
                return Err(Failure::Usage(format!(
                    "deleting tenant \"{name}\" removes all its users, groups and tokens: add --yes to confirm"
                )));
            }
            let store = open_store(settings, &registry).await?;
            admin::delete_tenant(store.as_ref(), &name).await?;
            out(&format!("deleted tenant {name}\n"))
        }
    }
}

async fn token(cmd: TokenCommand, settings: &Settings) -> Result<(), Failure> {
    let registry = Arc::new(Registry::standard());
    let clock = SystemClock;
    match cmd {
        TokenCommand::Create { tenant, label, expires } => {
            let store = open_store(settings, &registry).await?;
            let t = admin::create_token(
                store.as_ref(),
                &clock,
                &tenant,
                label.as_deref(),
                expires,
                &Actor::cli("scimd token create"),
            )
            .await?;
            out(&issued_text(&t))
        }
        TokenCommand::List { tenant, json: as_json } => {
            let store = open_store(settings, &registry).await?;
            let list = admin::list_tokens(store.as_ref(), &tenant).await?;
            out(&if as_json { json(&list)? } else { token_table(&list) })
        }
        TokenCommand::Revoke { token } => {
            admin::token_id(&token)?;
            let store = open_store(settings, &registry).await?;
            let r = admin::revoke_token(store.as_ref(), &clock, &token, &Actor::cli("scimd token revoke")).await?;
            let k = &r.token;
            let when = if r.already { "was already revoked" } else { "revoked" };
            out(&format!("token {} of tenant {} {when}\n", k.id, k.tenant))
        }
    }
}

async fn api_key(cmd: ApiKeyCommand, settings: &Settings) -> Result<(), Failure> {
    let registry = Arc::new(Registry::standard());
    let clock = SystemClock;
    let store = open_store(settings, &registry).await?;
    match cmd {
        ApiKeyCommand::Create { label } => {
            let (view, secret) = admin::create_api_key(store.as_ref(), &clock, label.as_deref()).await?;
            let label = view.label.as_deref().map(|l| format!(", label \"{l}\"")).unwrap_or_default();
            out(&format!(
                "created API key {}{label}\n\
                 Copy the key on the next line now: scimd keeps only its hash and cannot show it again.\n\
                 {secret}\n",
                view.id
            ))
        }
        ApiKeyCommand::List { json: as_json } => {
            let list = admin::list_api_keys(store.as_ref()).await?;
            if as_json {
                return out(&json(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        dash(k.label.as_deref()).to_owned(),
                        k.created.clone(),
                        dash(k.revoked.as_deref()).to_owned(),
                    ]
                })
                .collect();
            out(&table(&["ID", "LABEL", "CREATED", "REVOKED"], &rows))
        }
        ApiKeyCommand::Revoke { key } => {
            let view = admin::revoke_api_key(store.as_ref(), &clock, &key).await?;
            out(&format!("API key {} revoked\n", view.id))
        }
    }
}

fn issued_text(t: &IssuedView) -> String {
    let label = t.label.as_deref().map(|l| format!(", label \"{l}\"")).unwrap_or_default();
    let expires = t.expires.as_deref().map_or_else(|| ", never expires".to_owned(), |e| format!(", expires {e}"));
    format!(
        "created token {} for tenant {}{label}{expires}\n\
         Copy the secret token on the next line now: scimd keeps only its hash and cannot show it again.\n\
         {}\n",
        t.id, t.tenant, t.token
    )
}

fn dash(v: Option<&str>) -> &str {
    v.filter(|s| !s.is_empty()).unwrap_or("-")
}

/// Left-aligned columns separated by two spaces, with a header row.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line += cell;
            } else {
                line += &format!("{cell:<w$}  ");
            }
        }
        text += line.trim_end();
        text.push('\n');
    }
    text
}

fn tenant_table(list: &[TenantView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.created.clone(),
                format!("{}/{}", t.active_tokens, t.tokens),
                if t.required.is_empty() { "-".to_owned() } else { t.required.join(",") },
            ]
        })
        .collect();
    table(&["NAME", "CREATED", "TOKENS(ACTIVE/ALL)", "REQUIRED"], &rows)
}

fn tenant_details(t: &TenantView) -> String {
    let required = if t.required.is_empty() { "-".to_owned() } else { t.required.join(", ") };
    let g = &t.guard;
    let guard = if !g.enabled {
        "off".to_owned()
    } else {
        let line =
            format!("{}% of active users (at least {}) within {}s", g.share * 100.0, g.min_users, g.window_seconds);
        match (g.held_from, &g.tripped_at) {
            (Some(from), at) => format!(
                "TRIPPED at {}: push delivery held from position {from}; `scimd tenant release {}` resumes it ({line})",
                at.as_deref().unwrap_or("-"),
                t.name
            ),
            _ => line,
        }
    };
    format!(
        "name:     {}\ncreated:  {}\nrequired: {required}\ntokens:   {} ({} active)\nguard:    {guard}\n",
        t.name, t.created, t.tokens, t.active_tokens
    )
}

fn health_details(h: &crate::health::Health) -> String {
    let mut text = format!(
        "health:   {}\nlast request: {}\nlast write:   {}\n401 streak:   {}\n",
        h.status.as_str(),
        dash(h.last_request.as_deref()),
        dash(h.last_write.as_deref()),
        h.unauthorized_streak
    );
    if let Some(c) = &h.cycle {
        text += &format!(
            "cycle:        {} to {}, {} requests, {} errors ({:.1}%)\n",
            c.start,
            c.last,
            c.requests,
            c.errors,
            c.error_rate * 100.0
        );
    }
    for p in &h.problems {
        text += &format!("problem:      {}: {}\n", p.code, p.detail);
    }
    text
}

async fn migrate(settings: &Settings, check: bool) -> Result<(), Failure> {
    let db = config::redact_url(&settings.database);
    let (current, target) =
        scim_store::schema_versions(&settings.database).await.map_err(|e| Failure::Runtime(e.to_string()))?;
    if current > target {
        return Err(Failure::Runtime(format!(
            "{db} has schema version {current}, newer than this scimd's ({target}): upgrade scimd"
        )));
    }
    let steps: Vec<String> = (current + 1..=target)
        .map(|v| {
            let note = usize::try_from(v - 1).ok().and_then(|i| scim_store::MIGRATION_NOTES.get(i)).copied();
            format!("  {v}: {}", note.unwrap_or_default())
        })
        .collect();
    if steps.is_empty() {
        return out(&format!("{db}: schema version {current}, up to date\n"));
    }
    if check {
        return out(&format!(
            "{db}: schema version {current}; this scimd writes {target}; would run (forward only, at the next start \
             or with `scimd migrate`):\n{}\n",
            steps.join("\n")
        ));
    }
    let registry = Arc::new(Registry::standard());
    open_store(settings, &registry).await?;
    out(&format!("{db}: migrated from schema version {current} to {target}:\n{}\n", steps.join("\n")))
}

async fn backup(settings: &Settings, to: &std::path::Path) -> Result<(), Failure> {
    let Some(path) = settings.database.strip_prefix("sqlite://") else {
        return Err(Failure::Usage(format!(
            "scimd backup copies SQLite databases; {} is PostgreSQL: use pg_dump, e.g. \
             pg_dump --format=custom --file=scimd.dump \"$DATABASE_URL\" (and pg_restore to restore)",
            config::redact_url(&settings.database)
        )));
    };
    if !std::path::Path::new(path).exists() {
        return Err(Failure::Runtime(format!("no database at {path}")));
    }
    if to.exists() {
        return Err(Failure::Usage(format!("{} exists already: choose a new file", to.display())));
    }
    let (path, target) = (path.to_owned(), to.to_owned());
    let report = tokio::task::spawn_blocking(move || scim_store::sqlite::backup(&path, &target))
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    out(&format!(
        "backed up {} to {} ({} pages, {} bytes, checked); restore by stopping scimd and putting the file in place \
         of the database (with no -wal and -shm files beside it)\n",
        settings.database,
        to.display(),
        report.pages,
        report.bytes
    ))
}

async fn log(args: LogArgs, settings: &Settings) -> Result<(), Failure> {
    let registry = Arc::new(Registry::standard());
    let store = open_store(settings, &registry).await?;
    let listing = crate::reqlog::Listing {
        status: if args.errors { Some("errors".to_owned()) } else { args.status },
        since: args.since,
        before: None,
        limit: Some(args.limit),
    };
    let list = crate::reqlog::list(store.as_ref(), SystemClock.now(), &args.tenant, &listing).await?;
    if args.json {
        let mut text = String::new();
        for r in &list {
            text += &serde_json::to_string(r).map_err(|e| Failure::Runtime(e.to_string()))?;
            text.push('\n');
        }
        return out(&text);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let mut why = r.detail.clone().unwrap_or_default();
            if let Some(h) = &r.hint {
                why = format!("{why} [fix: {h}]");
            }
            vec![
                r.time.clone(),
                dash(r.token.as_deref()).to_owned(),
                format!("{} {}", r.method, r.path),
                r.status.to_string(),
                dash(r.scim_type.as_deref()).to_owned(),
                format!("{:.1}", r.latency_ms),
                dash(r.resource.as_deref()).to_owned(),
                if why.is_empty() { "-".to_owned() } else { why },
            ]
        })
        .collect();
    out(&table(&["TIME", "TOKEN", "REQUEST", "STATUS", "SCIMTYPE", "MS", "RESOURCE", "DETAIL"], &rows))
}

fn token_table(list: &[TokenView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                dash(k.label.as_deref()).to_owned(),
                k.created.clone(),
                dash(k.expires.as_deref()).to_owned(),
                dash(k.revoked.as_deref()).to_owned(),
                dash(k.last_used.as_deref()).to_owned(),
            ]
        })
        .collect();
    table(&["ID", "LABEL", "CREATED", "EXPIRES", "REVOKED", "LAST USED"], &rows)
}

async fn serve(settings: Settings) -> Result<(), Failure> {
    let prometheus = crate::monitoring::install()
        .map_err(|e| Failure::Runtime(format!("cannot install the metrics recorder: {e}")))?;
    let server = Server::build(&settings, prometheus).await?;
    tracing::info!(database = %config::redact_url(&settings.database), "database open");
    let scim_addr = server.scim_addr()?;
    let admin_addr = server.admin_addr()?;
    let state = server.state();
    let first = admin::bootstrap(state.store.as_ref(), state.clock.as_ref())
        .await
        .map_err(|e| Failure::Runtime(format!("cannot create the first tenant: {e}")))?;
    let tenants = state.store.list_tenants().await.map_err(|e| Failure::Runtime(e.to_string()))?.len();
    metrics::gauge!("scimd_tenants").set(tenants as f64);
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    let base = settings.http.public_url.clone().unwrap_or_else(|| {
        // A wildcard address is not one a client can reach: show loopback with the same port.
        let mut shown = scim_addr;
        if shown.ip().is_unspecified() {
            shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{shown}")
    });
    if let Some(issued) = first {
        tracing::info!(tenant = %issued.tenant, token = %issued.id, "empty database: created tenant and token");
        out(&welcome(&issued, &base, &settings.http, settings.tls.is_some()))?;
    }
    tracing::info!("SCIM listening on {scheme}://{scim_addr}/scim/v2 (Tenant URL {base}/scim/v2)");
    tracing::info!(
        "admin listening on http://{admin_addr} (/metrics, /healthz, /readyz; vendor API under /api/v1 with an API key)"
    );
    server
        .run(async {
            let signal = shutdown_signal().await;
            tracing::info!(signal, "shutting down: finishing requests in flight");
        })
        .await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM and says which.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    }
}

/// What `serve` prints once, on an empty database.
fn welcome(issued: &IssuedView, base: &str, http: &HttpSettings, tls: bool) -> String {
    let mut text = format!(
        "scimd: the database was empty, so tenant \"{tenant}\" was created with a first secret token.\n\
         The token is shown only this once (scimd keeps only its hash); make more with\n\
         `scimd token create --tenant {tenant}`, and more tenants with `scimd tenant create NAME`.\n\
         \n\
         Tenant URL:   {base}/scim/v2\n\
         Secret Token: {token}\n\
         \n\
         To connect Microsoft Entra ID:\n\
         \x20 1. Entra admin center > Enterprise applications > New application > Create your own application (non-gallery).\n\
         \x20 2. In that application: Provisioning > Provisioning Mode: Automatic.\n\
         \x20 3. Admin Credentials: paste the Tenant URL and the Secret Token above, then Test Connection.\n\
         \x20 4. Save, check the attribute Mappings, assign users and groups, and start provisioning.\n",
        tenant = issued.tenant,
        token = issued.token,
    );
    if !tls && !http.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) {
        text += "  Entra only reaches public HTTPS URLs: serve TLS (--tls-cert FILE --tls-key FILE) or put scimd \
                 behind a TLS proxy, and pass --public-url https://HOST.\n";
    }
    text
}
