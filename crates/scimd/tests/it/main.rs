//! scimd's integration tests, in one binary: the real server (built by `scimd::server`, as
//! `scimd serve` builds it) on a random port, driven over HTTP, and the CLI as a user runs it.
//!
//! The HTTP suite runs on SQLite by default and on PostgreSQL with
//! `SCIMD_TEST_ENGINE=postgres` and `SCIMD_TEST_POSTGRES_URL` (scripts/test.sh runs both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod api;
mod cli;
mod concurrency;
mod console;
mod events_schema;
mod feed;
mod guard;
mod health;
mod hostile;
mod integrity;
mod lenient;
mod logs;
mod metrics;
mod oauth;
mod openapi;
mod paging;
mod policy;
mod poll;
mod props;
mod provisioning_log;
mod quirks;
mod replay_entra;
mod replay_okta;
mod setup_link;
mod tls;
mod transfer;
mod vendor;
mod webhooks;
