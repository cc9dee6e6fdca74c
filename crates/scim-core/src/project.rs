//! Projection of outgoing resources: `attributes`, `excludedAttributes` (RFC 7644 §3.4.2.5)
//! and the `returned` characteristic (RFC 7643 §7).
//!
//! - `returned: never` (`password`) is never returned; `always` (`id`, and `schemas`) always.
//! - With `attributes`, only the named attributes (and sub-attributes) and the `always` ones.
//! - Otherwise every `default` attribute except the excluded ones; `request` ones only when
//!   named in `attributes`.
//!
//! A store asks [`Projection::returns`] before loading something costly, so
//! `excludedAttributes=members` never loads a group's members.

use serde_json::{Map, Value};

use crate::error::{Result, ScimError};
use crate::path::AttrPath;
use crate::registry::{Container, Resolved, ResourceDef};
use crate::schema::{AttrType, Attribute, Returned};

/// One entry of `attributes` or `excludedAttributes`, resolved.
#[derive(Debug, Clone, Copy)]
enum Entry<'a> {
    Attr(Resolved<'a>),
    /// A whole extension schema, by URN.
    Extension(&'a str),
}

/// What of one attribute is returned.
#[derive(Debug, Clone)]
enum Pick<'a> {
    All,
    Only(Vec<&'a str>),
    Except(Vec<&'a str>),
}

/// The attribute selection of one request.
#[derive(Debug, Clone)]
pub struct Projection<'a> {
    /// Whether `attributes` was given (even if it named nothing this type defines).
    attributes_given: bool,
    attributes: Vec<Entry<'a>>,
    excluded: Vec<Entry<'a>>,
}

fn parse_list<'a>(def: &ResourceDef<'a>, list: Option<&str>, what: &str) -> Result<Vec<Entry<'a>>> {
    let mut out = Vec::new();
    for item in list.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path = AttrPath::parse(item).map_err(|e| ScimError::invalid_value(format!("{what}: {}", e.detail)))?;
        if let Some(ext) = def.extension_named_by(&path) {
            out.push(Entry::Extension(ext.id.as_str()));
        } else if let Some(r) = def.resolve(&path) {
            out.push(Entry::Attr(r));
        }
        // Names the resource type does not define select nothing.
    }
    Ok(out)
}

impl<'a> Projection<'a> {
    /// Every attribute that is returned by default.
    pub fn all() -> Self {
        Projection { attributes_given: false, attributes: Vec::new(), excluded: Vec::new() }
    }

    /// Reads the comma-separated `attributes` and `excludedAttributes` parameters.
    pub fn new(def: &ResourceDef<'a>, attributes: Option<&str>, excluded: Option<&str>) -> Result<Self> {
        Ok(Projection {
            attributes_given: attributes.is_some_and(|a| a.split(',').any(|s| !s.trim().is_empty())),
            attributes: parse_list(def, attributes, "attributes")?,
            excluded: parse_list(def, excluded, "excludedAttributes")?,
        })
    }

    /// Whether the attribute `attr` (top-level) is returned at all: a store checks this before
    /// loading what it keeps elsewhere, such as members.
    pub fn returns(&self, def: &ResourceDef<'_>, attr: &Attribute) -> bool {
        let container = match def.find(&attr.name) {
            Some((c, a)) if std::ptr::eq(a, attr) => c,
            _ => Container::Root,
        };
        self.select(container, attr).is_some()
    }

    /// What of `attr` is returned; `None` for nothing.
    fn select(&self, container: Container<'_>, attr: &Attribute) -> Option<Pick<'a>> {
        let names_attr = |e: &Entry<'_>| match e {
            Entry::Attr(r) => std::ptr::eq(r.attr, attr) && r.sub.is_none(),
            Entry::Extension(urn) => container == Container::Extension(urn),
        };
        let subs_of = |list: &[Entry<'a>]| -> Vec<&'a str> {
            list.iter()
                .filter_map(|e| match e {
                    Entry::Attr(r) if std::ptr::eq(r.attr, attr) => r.sub.map(|s| s.name.as_str()),
                    _ => None,
                })
                .collect()
        };
        match attr.returned {
            Returned::Never => return None,
            Returned::Always => return Some(Pick::All),
            _ => {}
        }
        if self.attributes_given {
            if self.attributes.iter().any(names_attr) {
                return Some(Pick::All);
            }
            let subs = subs_of(&self.attributes);
            return (!subs.is_empty()).then_some(Pick::Only(subs));
        }
        if attr.returned == Returned::Request || self.excluded.iter().any(names_attr) {
            return None;
        }
        let excluded = subs_of(&self.excluded);
        Some(if excluded.is_empty() { Pick::All } else { Pick::Except(excluded) })
    }

    /// The resource as the client asked to see it.
    pub fn apply(&self, def: &ResourceDef<'_>, resource: &Value) -> Value {
        let Some(obj) = resource.as_object() else { return resource.clone() };
        let mut out = Map::new();
        for (key, value) in obj {
            if key == "schemas" {
                out.insert(key.clone(), value.clone());
                continue;
            }
            if let Some(ext) = def.extension(key) {
                let container = Container::Extension(ext.id.as_str());
                let mut inner = Map::new();
                if let Some(m) = value.as_object() {
                    for (k, v) in m {
                        if let Some(a) = ext.attribute(k) {
                            if let Some(v) = self.project(container, a, v) {
                                inner.insert(k.clone(), v);
                            }
                        }
                    }
                }
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
                continue;
            }
            match def.find(key) {
                Some((container @ Container::Root, a)) => {
                    if let Some(v) = self.project(container, a, value) {
                        out.insert(key.clone(), v);
                    }
                }
                _ => {
                    if !self.attributes_given {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        Value::Object(out)
    }

    fn project(&self, container: Container<'_>, attr: &Attribute, v: &Value) -> Option<Value> {
        let selection = self.select(container, attr)?;
        if attr.ty != AttrType::Complex {
            return Some(v.clone());
        }
        let keep = |s: &Attribute| match &selection {
            _ if s.returned == Returned::Never => false,
            _ if s.returned == Returned::Always => true,
            Pick::All => s.returned != Returned::Request,
            Pick::Only(subs) => subs.contains(&s.name.as_str()),
            Pick::Except(subs) => s.returned != Returned::Request && !subs.contains(&s.name.as_str()),
        };
        let trim = |e: &Value| -> Option<Value> {
            let m = e.as_object()?;
            let kept: Map<String, Value> =
                m.iter().filter(|(k, _)| attr.sub(k).is_none_or(keep)).map(|(k, x)| (k.clone(), x.clone())).collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        };
        match v {
            Value::Array(xs) => {
                let kept: Vec<Value> = xs.iter().filter_map(trim).collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            other => trim(other),
        }
    }
}
