//! Mandatory attributes per tenant (DESIGN.md, "Tenant policy").
//!
//! A tenant lists SCIM paths that every resource must carry, such as `name.familyName`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber` or
//! `emails[type eq "work"].value`. Each path `P` is checked as the filter `P pr`, so a value
//! filter means "some element matching the filter has the sub-attribute"; `active: false`
//! counts as present.

use serde_json::Value;

use crate::error::{Result, ScimError};
use crate::eval;
use crate::filter::Filter;
use crate::path::Path;
use crate::registry::ResourceDef;

/// The reference customer's mandatory attributes (DESIGN.md, tenant policy): the preset the
/// console offers for a new tenant.
pub const REFERENCE: [&str; 7] = [
    "userName",
    "name.familyName",
    "name.givenName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "emails[type eq \"work\"].value",
    "preferredLanguage",
    "active",
];

/// A tenant's mandatory attributes for one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct RequiredPaths {
    paths: Vec<(String, Filter)>,
}

impl RequiredPaths {
    /// Parses the paths and checks that each names an attribute of the resource type.
    pub fn parse<S: AsRef<str>>(def: &ResourceDef<'_>, paths: &[S]) -> Result<Self> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let text = p.as_ref().trim();
            let path = Path::parse(text)?;
            if def.resolve(&path.attr).is_none() && def.extension_named_by(&path.attr).is_none() {
                return Err(ScimError::invalid_path(format!("\"{text}\" is not an attribute of {}", def.rt.name)));
            }
            let filter = Filter::parse(&format!("{text} pr"))
                .map_err(|e| ScimError::invalid_path(format!("\"{text}\": {}", e.detail)))?;
            out.push((text.to_owned(), filter));
        }
        Ok(RequiredPaths { paths: out })
    }

    /// The paths, as given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(|(p, _)| p.as_str())
    }

    /// The paths `resource` lacks, in the order they were given.
    pub fn missing(&self, def: &ResourceDef<'_>, resource: &Value) -> Vec<&str> {
        self.paths
            .iter()
            .filter(|(_, f)| !eval::matches(def, f, resource).unwrap_or(false))
            .map(|(p, _)| p.as_str())
            .collect()
    }
}
