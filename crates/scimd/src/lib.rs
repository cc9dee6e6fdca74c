//! # scimd
//!
//! The scimd server: the command line ([`cli`]), configuration ([`config`]), the SCIM HTTP API
//! ([`http`]), secret tokens ([`tokens`]) and the admin listener ([`admin`]).
//! The protocol lives in `scim-core`, storage in `scim-store`; this is the only crate that
//! knows HTTP.

pub mod admin;
pub mod cli;
pub mod config;
pub mod http;
pub mod tokens;
