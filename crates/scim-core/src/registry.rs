//! The registry of schemas and resource types, and attribute-path resolution.
//!
//! [`Registry::standard`] holds User (with the Enterprise User extension) and Group.
//! Custom extension schemas can be added from RFC 7643 §7 documents and attached to a
//! resource type. [`ResourceDef`] is the view of one resource type that every other part of
//! the core works against: it resolves attribute paths, case-insensitively, to their
//! definitions in the schema's own spelling.

use serde_json::{Map, Value, json};

use crate::error::{Result, ScimError};
use crate::path::AttrPath;
use crate::schema::{AttrType, Attribute, Schema};
use crate::standard;

/// The schema URI of a resource type resource (RFC 7643 §6).
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// An extension schema attached to a resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaExtension {
    /// The extension's schema URN.
    pub schema: String,
    /// Whether every resource of the type must carry the extension.
    pub required: bool,
}

/// A resource type (RFC 7643 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// The id, e.g. `User`.
    pub id: String,
    /// The name, e.g. `User`.
    pub name: String,
    /// The endpoint relative to the base URL, e.g. `/Users`.
    pub endpoint: String,
    /// Human-readable description.
    pub description: String,
    /// The core schema URN.
    pub schema: String,
    /// The extension schemas.
    pub extensions: Vec<SchemaExtension>,
    /// The multi-valued attribute kept outside the resource document (`members` of Group):
    /// PATCH turns operations on it into a [`crate::patch::MemberDelta`].
    pub member_attribute: Option<String>,
}

impl ResourceType {
    /// The `/ResourceTypes/{id}` document; `location` is its absolute URL.
    pub fn to_json(&self, location: Option<&str>) -> Value {
        let exts: Vec<Value> =
            self.extensions.iter().map(|e| json!({"schema": e.schema, "required": e.required})).collect();
        let mut meta = Map::new();
        meta.insert("resourceType".into(), json!("ResourceType"));
        if let Some(loc) = location {
            meta.insert("location".into(), json!(loc));
        }
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "schemaExtensions": exts,
            "meta": meta,
        })
    }
}

/// All schemas and resource types a server knows.
#[derive(Debug, Clone)]
pub struct Registry {
    schemas: Vec<Schema>,
    resource_types: Vec<ResourceType>,
    common: Vec<Attribute>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::standard()
    }
}

impl Registry {
    /// User (with the Enterprise User extension, optional) and Group, per RFC 7643.
    pub fn standard() -> Self {
        Registry {
            schemas: vec![standard::user(), standard::enterprise_user(), standard::group()],
            resource_types: vec![
                ResourceType {
                    id: "User".into(),
                    name: "User".into(),
                    endpoint: "/Users".into(),
                    description: "User Account".into(),
                    schema: standard::USER.into(),
                    extensions: vec![SchemaExtension { schema: standard::ENTERPRISE_USER.into(), required: false }],
                    member_attribute: None,
                },
                ResourceType {
                    id: "Group".into(),
                    name: "Group".into(),
                    endpoint: "/Groups".into(),
                    description: "Group".into(),
                    schema: standard::GROUP.into(),
                    extensions: vec![],
                    member_attribute: Some("members".into()),
                },
            ],
            common: standard::common_attributes(),
        }
    }

    /// Every schema, in registration order.
    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    /// The schema with this URN (case-insensitive).
    pub fn schema(&self, id: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// The `/Schemas/{id}` document of a schema. The core schema of a resource type also lists
    /// `externalId`: a common attribute (RFC 7643 §3.1) that clients map and look for there
    /// (Entra's gallery validation checks that `/Schemas` lists every mapped attribute).
    pub fn schema_json(&self, schema: &Schema, location: Option<&str>) -> Value {
        let mut doc = schema.to_json(location);
        let is_core = self.resource_types.iter().any(|rt| rt.schema.eq_ignore_ascii_case(&schema.id));
        let external_id = self.common.iter().find(|a| a.name == "externalId");
        if let (true, Some(ext), Some(Value::Array(attrs))) = (is_core, external_id, doc.get_mut("attributes")) {
            if !attrs.iter().any(|a| a.get("name").and_then(Value::as_str) == Some("externalId")) {
                attrs.push(ext.to_json());
            }
        }
        doc
    }

    /// Every resource type.
    pub fn resource_types(&self) -> &[ResourceType] {
        &self.resource_types
    }

    /// Adds a schema; its id must be new.
    pub fn add_schema(&mut self, schema: Schema) -> Result<()> {
        if self.schema(&schema.id).is_some() {
            return Err(ScimError::invalid_value(format!("schema {} is already defined", schema.id)));
        }
        self.schemas.push(schema);
        Ok(())
    }

    /// Adds a schema from its RFC 7643 §7 JSON document.
    pub fn add_schema_json(&mut self, doc: &Value) -> Result<()> {
        self.add_schema(Schema::from_json(doc)?)
    }

    /// Attaches the extension schema `urn` to the resource type named `resource_type`.
    pub fn extend(&mut self, resource_type: &str, urn: &str, required: bool) -> Result<()> {
        let schema =
            self.schema(urn).ok_or_else(|| ScimError::invalid_value(format!("no schema {urn} is defined")))?.id.clone();
        let rt = self
            .resource_types
            .iter_mut()
            .find(|r| r.name.eq_ignore_ascii_case(resource_type))
            .ok_or_else(|| ScimError::invalid_value(format!("no resource type {resource_type} is defined")))?;
        if rt.schema.eq_ignore_ascii_case(&schema) || rt.extensions.iter().any(|e| e.schema == schema) {
            return Err(ScimError::invalid_value(format!("{schema} is already a schema of {resource_type}")));
        }
        rt.extensions.push(SchemaExtension { schema, required });
        Ok(())
    }

    /// The view of the resource type named `name` (case-insensitive), e.g. `User`.
    pub fn resource(&self, name: &str) -> Option<ResourceDef<'_>> {
        let rt = self.resource_types.iter().find(|r| r.name.eq_ignore_ascii_case(name))?;
        let core = self.schema(&rt.schema)?;
        let extensions = rt.extensions.iter().filter_map(|e| self.schema(&e.schema).map(|s| (s, e.required))).collect();
        Some(ResourceDef { rt, core, extensions, common: &self.common })
    }
}

/// Where a resolved attribute lives in a resource document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container<'a> {
    /// At the top level (common and core-schema attributes).
    Root,
    /// Inside the object under this extension URN.
    Extension(&'a str),
}

/// An attribute path resolved against a resource type.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// Where the attribute lives.
    pub container: Container<'a>,
    /// The attribute.
    pub attr: &'a Attribute,
    /// The sub-attribute, if the path names one.
    pub sub: Option<&'a Attribute>,
}

impl<'a> Resolved<'a> {
    /// The definition the path ends at: the sub-attribute if any, else the attribute.
    pub fn leaf(&self) -> &'a Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical dotted spelling, URN-qualified for extension attributes.
    pub fn display(&self) -> String {
        let mut s = match self.container {
            Container::Root => String::new(),
            Container::Extension(urn) => format!("{urn}:"),
        };
        s.push_str(&self.attr.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }
}

/// One resource type with its schemas: what validation, filters, PATCH and projection use.
#[derive(Debug, Clone)]
pub struct ResourceDef<'a> {
    /// The resource type.
    pub rt: &'a ResourceType,
    /// Its core schema.
    pub core: &'a Schema,
    /// Its extension schemas, each with its `required` flag.
    pub extensions: Vec<(&'a Schema, bool)>,
    /// The common attributes (`id`, `externalId`, `meta`).
    pub common: &'a [Attribute],
}

impl<'a> ResourceDef<'a> {
    /// The extension schema with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'a Schema> {
        self.extensions.iter().map(|(s, _)| *s).find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The top-level attribute called `name`: common attributes, then the core schema, then
    /// the extensions in order (so `manager` finds the Enterprise User's manager).
    pub fn find(&self, name: &str) -> Option<(Container<'a>, &'a Attribute)> {
        if let Some(a) = self.common.iter().find(|a| a.name.eq_ignore_ascii_case(name)) {
            return Some((Container::Root, a));
        }
        if let Some(a) = self.core.attribute(name) {
            return Some((Container::Root, a));
        }
        self.extensions.iter().find_map(|(s, _)| s.attribute(name).map(|a| (Container::Extension(s.id.as_str()), a)))
    }

    /// Resolves a path; `None` when the path names no attribute of this resource type.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'a>> {
        let (container, attr) = match &path.urn {
            None => self.find(&path.name)?,
            Some(urn) if urn.eq_ignore_ascii_case(&self.core.id) => {
                let a = self
                    .common
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(&path.name))
                    .or_else(|| self.core.attribute(&path.name))?;
                (Container::Root, a)
            }
            Some(urn) => {
                let ext = self.extension(urn)?;
                (Container::Extension(ext.id.as_str()), ext.attribute(&path.name)?)
            }
        };
        let sub = match &path.sub {
            None => None,
            Some(s) if attr.ty == AttrType::Complex => Some(attr.sub(s)?),
            Some(_) => return None,
        };
        Some(Resolved { container, attr, sub })
    }

    /// The extension schema a whole path names (`urn:...:enterprise:2.0:User`), if it does.
    pub fn extension_named_by(&self, path: &AttrPath) -> Option<&'a Schema> {
        let urn = path.urn.as_ref()?;
        if path.sub.is_some() {
            return None;
        }
        self.extensions.iter().map(|(s, _)| *s).find(|s| {
            s.id.len() == urn.len() + 1 + path.name.len()
                && s.id[..urn.len()].eq_ignore_ascii_case(urn)
                && s.id[urn.len() + 1..].eq_ignore_ascii_case(&path.name)
        })
    }

    /// The `schemas` value of a resource document: the core schema and each extension that
    /// has an object in the document.
    pub fn schemas_of(&self, doc: &Map<String, Value>) -> Value {
        let mut out = vec![Value::String(self.core.id.clone())];
        for (s, _) in &self.extensions {
            if doc.get(&s.id).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
                out.push(Value::String(s.id.clone()));
            }
        }
        Value::Array(out)
    }

    /// The name of the attribute kept outside the document (`members`), if any.
    pub fn member_attribute(&self) -> Option<&'a Attribute> {
        self.rt.member_attribute.as_deref().and_then(|n| self.core.attribute(n))
    }
}
