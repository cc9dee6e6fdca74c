//! # scimd
//!
//! The scimd server: the command line ([`cli`]), configuration ([`config`]), the SCIM HTTP API
//! ([`http`]), secret tokens ([`tokens`]), the admin listener ([`admin`]), the clock
//! ([`clock`]), the change feed's reader ([`feed`]), push ([`webhooks`], [`set`]) and the assembly of the process ([`server`]).
//! The protocol lives in `scim-core`, storage in `scim-store`; this is the only crate that
//! knows HTTP.

pub mod access;
pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_check;
pub mod console;
pub mod defaults;
pub mod feed;
pub mod health;
pub mod http;
pub mod monitoring;
pub mod rates;
pub mod reqlog;
pub mod server;
pub mod set;
pub mod setup;
pub mod tls;
pub mod tokens;
pub mod transfer;
pub mod ui;
pub mod webhooks;
