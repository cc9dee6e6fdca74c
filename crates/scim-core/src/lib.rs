//! # scim-core
//!
//! The SCIM 2.0 protocol (RFC 7643, RFC 7644) as scimd understands it, with no I/O: no HTTP,
//! no SQL, no async, no clock and no random ids (time and ids come in from the caller).
//! Read it as the specification of the server.
//!
//! - [`schema`], [`standard`], [`registry`]: the attribute model, the standard schemas and the
//!   resolution of attribute paths against a resource type.
//! - [`filter`], [`path`], [`eval`]: the filter language and PATCH paths, their evaluation
//!   and the sort order.
//! - [`resource`]: incoming resources checked and coerced against the schema.
//! - [`patch`]: the PATCH engine, including the member delta for groups.
//! - [`project`]: `attributes` / `excludedAttributes` and the `returned` characteristic.
//! - [`tolerance`]: every client quirk accepted, in one place.
//! - [`kind`]: the resource types served (User, Group).
//! - [`error`]: SCIM errors (status, `scimType`, detail).

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
