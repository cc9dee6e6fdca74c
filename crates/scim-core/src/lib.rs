//! # scim-core
//!
//! The SCIM 2.0 protocol (RFC 7643, RFC 7644) as scimd understands it, with no I/O: no HTTP,
//! no SQL, no async, no clock and no random ids (time and ids come in from the caller).
//! Read it as the specification of the server.
//!
//! | module | implements | spec |
//! |---|---|---|
//! | [`schema`], [`standard`] | the attribute model (types, mutability, returned, uniqueness, case exactness) and the User, Group and Enterprise User schemas | RFC 7643 §2, §4, §7 |
//! | [`registry`] | resource types and their extensions; attribute paths resolved case-insensitively to the schema's spelling; `/Schemas` and `/ResourceTypes` documents | RFC 7643 §6, §7; RFC 7644 §4 |
//! | [`kind`] | the resource types served: User and Group | RFC 7643 §4 |
//! | [`filter`] | the filter grammar as an AST, parsed with a depth and length budget | RFC 7644 §3.4.2.2 |
//! | [`path`] | attribute paths and PATCH paths with value filters | RFC 7644 §3.5.2, §3.10 |
//! | [`eval`] | filter evaluation by attribute type ("any value" semantics for multi-valued attributes) and the sort order | RFC 7644 §3.4.2.2, §3.4.2.3 |
//! | [`resource`] | POST and PUT bodies turned into the one stored form; a group's members | RFC 7643 §2.4, §4.2; RFC 7644 §3.3, §3.5.1 |
//! | [`patch`] | the PATCH engine (add, replace, remove; all or nothing) and the member delta of a group | RFC 7644 §3.5.2 |
//! | [`project`] | `attributes` / `excludedAttributes` and the `returned` characteristic | RFC 7644 §3.4.2.5, §3.9 |
//! | [`policy`] | a tenant's mandatory attributes (scimd's own rule, on top of the schema) | DESIGN.md, tenant policy |
//! | [`tolerance`] | every client quirk accepted (Entra ID, Okta), in one place, each with its test | CLIENTS.md |
//! | [`change`] | the event type and the exact change (path, before, after) of a write, for the change feed | DESIGN.md, events |
//! | [`error`] | SCIM errors: status, `scimType`, a detail that says what to fix | RFC 7644 §3.12 |

#![warn(missing_docs)]

pub mod change;
pub mod error;
pub mod eval;
pub mod filter;
pub mod kind;
pub mod patch;
pub mod path;
pub mod policy;
pub mod project;
pub mod registry;
pub mod resource;
pub mod schema;
pub mod standard;
pub mod tolerance;

pub use error::{Result, ScimError, ScimType};
pub use filter::{CompareOp, Filter, FilterLimits, Literal};
pub use kind::Kind;
pub use path::{AttrPath, Path};
pub use registry::{Registry, ResourceDef, ResourceType};
pub use schema::{AttrType, Attribute, Mutability, Returned, Schema, Uniqueness};
