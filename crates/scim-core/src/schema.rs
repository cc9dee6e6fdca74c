//! The attribute model of RFC 7643 §2 and §7: schemas, attributes and their characteristics.
//!
//! A [`Schema`] is rendered to, and parsed from, the JSON form of RFC 7643 §7, so the same
//! model serves `/Schemas` and custom extensions loaded from a document.

use serde_json::{Map, Value, json};

use crate::error::{Result, ScimError};

/// The schema URI of a schema definition resource (RFC 7643 §7).
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// A sequence of Unicode characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An xsd:dateTime instant, e.g. `2008-01-23T04:56:22Z`.
    DateTime,
    /// Base64-encoded bytes.
    Binary,
    /// A URI naming a resource.
    Reference,
    /// An object of sub-attributes.
    Complex,
}

impl AttrType {
    /// The RFC spelling, e.g. `dateTime`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            AttrType::String,
            AttrType::Boolean,
            AttrType::Decimal,
            AttrType::Integer,
            AttrType::DateTime,
            AttrType::Binary,
            AttrType::Reference,
            AttrType::Complex,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether and how a client may change an attribute (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Set by the service provider only; client values are ignored on input.
    ReadOnly,
    /// May be updated and read at any time.
    ReadWrite,
    /// May be set once (on create or when it has no value); never changed afterwards.
    Immutable,
    /// May be set but is never returned (e.g. `password`).
    WriteOnly,
}

impl Mutability {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Mutability::ReadOnly, Mutability::ReadWrite, Mutability::Immutable, Mutability::WriteOnly]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// When an attribute is returned in a response (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    /// Always, whatever `attributes` or `excludedAttributes` say.
    Always,
    /// Never.
    Never,
    /// Unless excluded, or unless `attributes` names others only.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Returned::Always, Returned::Never, Returned::Default, Returned::Request]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// How unique an attribute's value must be (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uniqueness {
    /// No constraint.
    None,
    /// Unique within the service provider's tenant.
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Uniqueness::None, Uniqueness::Server, Uniqueness::Global]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// One attribute definition with all characteristics of RFC 7643 §7.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The name in the schema's own spelling; matched case-insensitively.
    pub name: String,
    /// The data type.
    pub ty: AttrType,
    /// Whether the attribute holds a list of values.
    pub multi_valued: bool,
    /// Human-readable description.
    pub description: String,
    /// Whether a resource must carry the attribute.
    pub required: bool,
    /// Whether string comparison is case-sensitive.
    pub case_exact: bool,
    /// Who may change the attribute.
    pub mutability: Mutability,
    /// When the attribute is returned.
    pub returned: Returned,
    /// How unique values must be.
    pub uniqueness: Uniqueness,
    /// Suggested values (e.g. `work`, `home`); other values are accepted.
    pub canonical_values: Vec<String>,
    /// For references: the resource types or `external`/`uri` that may be referenced.
    pub reference_types: Vec<String>,
    /// For complex attributes: the sub-attributes.
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    /// A single-valued, optional, readWrite attribute returned by default: the RFC defaults.
    pub fn new(name: &str, ty: AttrType) -> Self {
        Attribute {
            name: name.to_owned(),
            ty,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    /// The sub-attribute named `name`, compared case-insensitively.
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Builder: multi-valued.
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    /// Builder: required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Builder: case-exact.
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    /// Builder: mutability.
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    /// Builder: readOnly.
    pub fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    /// Builder: returned.
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    /// Builder: uniqueness.
    pub fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    /// Builder: description.
    pub fn desc(mut self, d: &str) -> Self {
        self.description = d.to_owned();
        self
    }
    /// Builder: canonical values.
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    /// Builder: reference types.
    pub fn refs(mut self, types: &[&str]) -> Self {
        self.reference_types = types.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    /// Builder: sub-attributes.
    pub fn subs(mut self, subs: Vec<Attribute>) -> Self {
        self.sub_attributes = subs;
        self
    }

    /// The JSON form of RFC 7643 §7.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.ty.as_str()));
        m.insert("multiValued".into(), json!(self.multi_valued));
        m.insert("description".into(), json!(self.description));
        m.insert("required".into(), json!(self.required));
        if self.ty != AttrType::Complex {
            m.insert("caseExact".into(), json!(self.case_exact));
        }
        if !self.canonical_values.is_empty() {
            m.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        m.insert("mutability".into(), json!(self.mutability.as_str()));
        m.insert("returned".into(), json!(self.returned.as_str()));
        if self.ty != AttrType::Complex {
            m.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
        }
        if self.ty == AttrType::Reference {
            m.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if self.ty == AttrType::Complex {
            let subs: Vec<Value> = self.sub_attributes.iter().map(Attribute::to_json).collect();
            m.insert("subAttributes".into(), Value::Array(subs));
        }
        Value::Object(m)
    }

    /// Parses the JSON form of RFC 7643 §7; absent characteristics take the RFC defaults.
    pub fn from_json(v: &Value, depth: usize) -> Result<Self> {
        let obj =
            v.as_object().ok_or_else(|| ScimError::invalid_syntax("an attribute definition must be an object"))?;
        let get = |k: &str| obj.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
        let name = get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_syntax("an attribute definition needs a \"name\""))?;
        if !crate::path::is_attr_name(name) {
            return Err(ScimError::invalid_syntax(format!(
                "\"{name}\" is not a valid attribute name (a letter, then letters, digits, '-' or '_')"
            )));
        }
        let text = |k: &str| get(k).and_then(Value::as_str);
        let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
        let bad = |k: &str, val: &str| {
            ScimError::invalid_syntax(format!("attribute \"{name}\": \"{val}\" is not a valid {k}"))
        };
        let ty = match text("type") {
            Some(t) => AttrType::parse(t).ok_or_else(|| bad("type", t))?,
            None => AttrType::String,
        };
        let mut a = Attribute::new(name, ty);
        a.multi_valued = flag("multiValued");
        a.required = flag("required");
        a.case_exact = flag("caseExact");
        a.description = text("description").unwrap_or_default().to_owned();
        if let Some(m) = text("mutability") {
            a.mutability = Mutability::parse(m).ok_or_else(|| bad("mutability", m))?;
        }
        if let Some(r) = text("returned") {
            a.returned = Returned::parse(r).ok_or_else(|| bad("returned", r))?;
        }
        if let Some(u) = text("uniqueness") {
            a.uniqueness = Uniqueness::parse(u).ok_or_else(|| bad("uniqueness", u))?;
        }
        let strings = |k: &str| -> Vec<String> {
            get(k)
                .and_then(Value::as_array)
                .map(|xs| xs.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        a.canonical_values = strings("canonicalValues");
        a.reference_types = strings("referenceTypes");
        if ty == AttrType::Complex {
            if depth > 0 {
                return Err(ScimError::invalid_syntax(format!(
                    "attribute \"{name}\": complex attributes cannot nest (RFC 7643 §2.3.8)"
                )));
            }
            if let Some(subs) = get("subAttributes").and_then(Value::as_array) {
                for s in subs {
                    a.sub_attributes.push(Attribute::from_json(s, depth + 1)?);
                }
            }
        }
        Ok(a)
    }
}

/// A schema: a URN and its attributes (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The schema URN, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub id: String,
    /// A human-readable name, e.g. `User`.
    pub name: String,
    /// A human-readable description.
    pub description: String,
    /// The top-level attributes, in the schema's order.
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// The top-level attribute named `name`, compared case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `/Schemas/{id}` document; `location` is the absolute URL of that document.
    pub fn to_json(&self, location: Option<&str>) -> Value {
        let attrs: Vec<Value> = self.attributes.iter().map(Attribute::to_json).collect();
        let mut meta = Map::new();
        meta.insert("resourceType".into(), json!("Schema"));
        if let Some(loc) = location {
            meta.insert("location".into(), json!(loc));
        }
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attrs,
            "meta": meta,
        })
    }

    /// Parses a schema document of RFC 7643 §7 form, e.g. a custom extension.
    pub fn from_json(v: &Value) -> Result<Self> {
        let obj = v.as_object().ok_or_else(|| ScimError::invalid_syntax("a schema must be a JSON object"))?;
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_syntax("a schema needs an \"id\" (its URN)"))?;
        if !id.to_ascii_lowercase().starts_with("urn:") {
            return Err(ScimError::invalid_syntax(format!("schema id \"{id}\" is not a URN")));
        }
        let attrs = obj.get("attributes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut attributes = Vec::with_capacity(attrs.len());
        for a in attrs {
            let parsed = Attribute::from_json(a, 0)?;
            if attributes.iter().any(|x: &Attribute| x.name.eq_ignore_ascii_case(&parsed.name)) {
                return Err(ScimError::invalid_syntax(format!(
                    "schema {id}: attribute \"{}\" is defined twice",
                    parsed.name
                )));
            }
            attributes.push(parsed);
        }
        Ok(Schema {
            id: id.to_owned(),
            name: obj.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            description: obj.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
            attributes,
        })
    }
}
