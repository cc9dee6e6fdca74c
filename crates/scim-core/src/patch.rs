//! The PATCH engine (RFC 7644 §3.5.2) with the client shapes of CLIENTS.md.
//!
//! [`PatchRequest::parse`] reads the body tolerantly (`op` in any case, `Operations` in any
//! case); [`apply`] applies every operation to a copy of the resource and returns the result
//! only if all of them succeed, so a PATCH applies all its operations or none.
//!
//! Semantics, beyond the RFC's:
//! - `add` and `replace` on a value-filter path that matches no element create the element the
//!   filter describes (`emails[type eq "work"].value` creates `{"type":"work","value":...}`);
//!   later operations in the same request find and extend it.
//! - `add` on a single-valued attribute sets it; on a complex single-valued attribute both
//!   `add` and `replace` merge sub-attributes (RFC 7644 §3.5.2.3).
//! - `null`, `""` and `{"value":""}` clear the target.
//! - Path-less `add`/`replace` values may use plain, dotted (`name.givenName`), URN-qualified
//!   or nested extension keys; readOnly attributes in them are ignored, as in a PUT body.
//! - `primary: true` on one element clears it on the others.
//! - An explicit path to an attribute the resource type does not define is `invalidPath`,
//!   unless it is qualified by an extension URN the server does not know (Entra's custom
//!   extensions), which is ignored like unknown attributes in a body.
//! - Operations on a group's `members` never touch the document: they become a
//!   [`MemberDelta`], so the store adds or removes rows and never rewrites the member list.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Result, ScimError};
use crate::eval::{element_matches, get_ci};
use crate::filter::{CompareOp, Filter, FilterLimits, Literal};
use crate::path::{AttrPath, Path};
use crate::registry::{Resolved, ResourceDef};
use crate::resource::{self, Member, UnknownAttributes, container_mut, normalize_attr, parse_members};
use crate::schema::{AttrType, Attribute, Mutability};
use crate::tolerance::{self, OpName};

/// The schema URI of a PATCH request body.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Size limits of a PATCH request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchLimits {
    /// The most operations in one request.
    pub max_operations: usize,
    /// The most member values (added plus removed) in one request.
    pub max_members: usize,
    /// Limits for `path` expressions.
    pub path: FilterLimits,
}

impl Default for PatchLimits {
    fn default() -> Self {
        PatchLimits { max_operations: 1_000, max_members: 10_000, path: FilterLimits::default() }
    }
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// `add`, `replace` or `remove`.
    pub op: OpName,
    /// The target; `None` for a path-less operation.
    pub path: Option<Path>,
    /// The value, as sent.
    pub value: Option<Value>,
}

/// A parsed PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, in order.
    pub operations: Vec<PatchOp>,
    /// The limits it was parsed with.
    pub limits: PatchLimits,
}

impl PatchRequest {
    /// Parses a PATCH body. `op` and the `Operations` key match case-insensitively.
    pub fn parse(body: &Value, limits: &PatchLimits) -> Result<Self> {
        if !body.is_object() {
            return Err(ScimError::invalid_syntax("the PATCH body must be a JSON object"));
        }
        let ops = get_ci(body, "Operations")
            .ok_or_else(|| ScimError::invalid_syntax("the PATCH body needs \"Operations\", a list of operations"))?;
        let ops = ops.as_array().ok_or_else(|| ScimError::invalid_syntax("\"Operations\" must be a list"))?;
        if ops.is_empty() {
            return Err(ScimError::invalid_syntax("\"Operations\" is empty: a PATCH needs at least one operation"));
        }
        if ops.len() > limits.max_operations {
            return Err(ScimError::status(
                413,
                format!("the PATCH has {} operations; the limit is {}", ops.len(), limits.max_operations),
            ));
        }
        let mut operations = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            if !op.is_object() {
                return Err(ScimError::invalid_syntax(format!("Operations[{i}] must be an object")));
            }
            let name = get_ci(op, "op").and_then(Value::as_str).unwrap_or_default();
            let kind = tolerance::op_name(name).ok_or_else(|| {
                ScimError::invalid_syntax(format!(
                    "Operations[{i}]: \"op\" must be \"add\", \"replace\" or \"remove\", not \"{name}\""
                ))
            })?;
            let path = match get_ci(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(Path::parse_with(s, &limits.path)?),
                Some(_) => return Err(ScimError::invalid_path(format!("Operations[{i}]: \"path\" must be a string"))),
            };
            let value = get_ci(op, "value").cloned();
            if kind != OpName::Remove && value.is_none() {
                return Err(ScimError::invalid_syntax(format!("Operations[{i}]: \"{name}\" needs a \"value\"")));
            }
            if kind != OpName::Remove && path.is_none() && !matches!(value, Some(Value::Object(_))) {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}]: without a \"path\", \"value\" must be an object of attributes"
                )));
            }
            operations.push(PatchOp { op: kind, path, value });
        }
        Ok(PatchRequest { operations, limits: *limits })
    }
}

/// The change a PATCH makes to a group's member list, for the store to apply row by row:
/// first `remove_all`, then `remove`, then `add`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberDelta {
    /// Members to add (ignoring those already present).
    pub add: Vec<Member>,
    /// Ids of members to remove (ignoring those not present).
    pub remove: Vec<String>,
    /// Whether every member is removed first.
    pub remove_all: bool,
}

impl MemberDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && !self.remove_all
    }
}

/// Builds a [`MemberDelta`] in time linear in the members named: each id is found by hash, not
/// by scanning what was collected so far.
#[derive(Debug, Default)]
struct DeltaBuilder {
    add: Vec<Option<Member>>,
    added: HashMap<String, usize>,
    remove: Vec<Option<String>>,
    removed: HashMap<String, usize>,
    remove_all: bool,
}

impl DeltaBuilder {
    fn add(&mut self, m: Member) {
        if let Some(i) = self.removed.remove(&m.value) {
            self.remove[i] = None;
        }
        if !self.added.contains_key(&m.value) {
            self.added.insert(m.value.clone(), self.add.len());
            self.add.push(Some(m));
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(i) = self.added.remove(id) {
            self.add[i] = None;
        }
        if !self.remove_all && !self.removed.contains_key(id) {
            self.removed.insert(id.to_owned(), self.remove.len());
            self.remove.push(Some(id.to_owned()));
        }
    }

    fn clear(&mut self) {
        *self = DeltaBuilder { remove_all: true, ..DeltaBuilder::default() };
    }

    fn len(&self) -> usize {
        self.added.len() + self.removed.len()
    }

    fn finish(self) -> MemberDelta {
        MemberDelta {
            add: self.add.into_iter().flatten().collect(),
            remove: self.remove.into_iter().flatten().collect(),
            remove_all: self.remove_all,
        }
    }
}

/// The result of a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The resource after every operation, in stored form.
    pub resource: Value,
    /// The member changes (empty for resource types without members).
    pub members: MemberDelta,
    /// Whether anything changed (document or members).
    pub changed: bool,
}

/// Applies `req` to `resource` (stored form), all operations or none.
pub fn apply(def: &ResourceDef<'_>, resource: &Value, req: &PatchRequest) -> Result<PatchOutcome> {
    apply_with(def, resource, req, UnknownAttributes::Drop)
}

/// [`apply`] with an explicit policy for unknown attributes in path-less values.
pub fn apply_with(
    def: &ResourceDef<'_>,
    resource: &Value,
    req: &PatchRequest,
    unknown: UnknownAttributes,
) -> Result<PatchOutcome> {
    let before = resource.as_object().cloned().unwrap_or_default();
    let mut doc = before.clone();
    doc.remove("schemas");
    let limits = resource::Limits { max_members: req.limits.max_members, ..resource::Limits::default() };
    let mut ctx = Ctx { def, doc, delta: DeltaBuilder::default(), unknown, limits };
    for (i, op) in req.operations.iter().enumerate() {
        ctx.op(op).map_err(|mut e| {
            if req.operations.len() > 1 {
                e.detail = format!("Operations[{i}]: {}", e.detail);
            }
            e
        })?;
    }
    check_immutable(def, &before, &ctx.doc)?;
    let out = resource::finish(def, ctx.doc);
    resource::check_required(def, &out)?;
    let members = ctx.delta.finish();
    let changed = out != Value::Object(before) || !members.is_empty();
    Ok(PatchOutcome { resource: out, members, changed })
}

struct Ctx<'d, 'a> {
    def: &'d ResourceDef<'a>,
    doc: Map<String, Value>,
    delta: DeltaBuilder,
    unknown: UnknownAttributes,
    limits: resource::Limits,
}

impl<'a> Ctx<'_, 'a> {
    fn op(&mut self, op: &PatchOp) -> Result<()> {
        match &op.path {
            Some(path) => self.at_path(op.op, path, op.value.as_ref(), false),
            None if op.op == OpName::Remove => {
                Err(ScimError::no_target("\"remove\" needs a \"path\" naming what to remove"))
            }
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    return Err(ScimError::invalid_syntax("without a \"path\", \"value\" must be an object"));
                };
                for (key, v) in values {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let path = match Path::parse(key) {
                        Ok(p) => p,
                        Err(_) if self.unknown == UnknownAttributes::Drop => continue,
                        Err(e) => return Err(e),
                    };
                    self.at_path(op.op, &path, Some(v), true)?;
                }
                Ok(())
            }
        }
    }

    fn at_path(&mut self, op: OpName, path: &Path, value: Option<&Value>, pathless: bool) -> Result<()> {
        if path.filter.is_none() {
            if let Some(ext) = self.def.extension_named_by(&path.attr) {
                return self.whole_extension(op, &ext.id, value);
            }
        }
        let Some(r) = self.def.resolve(&path.attr) else {
            let foreign_urn = path
                .attr
                .urn
                .as_ref()
                .is_some_and(|u| !u.eq_ignore_ascii_case(&self.def.core.id) && self.def.extension(u).is_none());
            if (pathless || foreign_urn) && self.unknown == UnknownAttributes::Drop {
                return Ok(());
            }
            return Err(ScimError::invalid_path(format!(
                "\"{}\" is not an attribute of {}",
                path.attr, self.def.rt.name
            )));
        };
        if self.def.member_attribute().is_some_and(|m| std::ptr::eq(m, r.attr)) {
            self.members(op, path, &r, value)?;
            // Refused as soon as the request is over the limit, not after the last operation.
            let changed = self.delta.len();
            if changed > self.limits.max_members {
                return Err(ScimError::too_large(format!(
                    "the PATCH changes more than {} members (the limit); send the rest in further requests",
                    self.limits.max_members
                )));
            }
            return Ok(());
        }
        if r.attr.mutability == Mutability::ReadOnly || r.sub.is_some_and(|s| s.mutability == Mutability::ReadOnly) {
            if pathless {
                return Ok(());
            }
            return Err(ScimError::mutability(format!("{} is readOnly", r.display())));
        }
        if resource::is_secret(r.attr) || r.sub.is_some_and(resource::is_secret) {
            // A password change is accepted and not stored (see `resource`).
            return Ok(());
        }
        if path.filter.is_some() && !(r.attr.ty == AttrType::Complex && r.attr.multi_valued) {
            return Err(ScimError::invalid_path(format!(
                "{} is not a multi-valued complex attribute, so it takes no value filter",
                r.attr.name
            )));
        }
        match op {
            OpName::Remove => self.remove(&r, path.filter.as_ref(), value),
            OpName::Add | OpName::Replace => self.set(op, &r, path.filter.as_ref(), value.unwrap_or(&Value::Null)),
        }
    }

    fn whole_extension(&mut self, op: OpName, urn: &str, value: Option<&Value>) -> Result<()> {
        match (op, value) {
            (OpName::Remove, _) => {
                self.doc.remove(urn);
                Ok(())
            }
            (_, Some(Value::Object(m))) => {
                for (k, v) in m {
                    let path = Path::from(AttrPath { urn: Some(urn.to_owned()), name: k.clone(), sub: None });
                    if crate::path::is_attr_name(k) {
                        self.at_path(op, &path, Some(v), true)?;
                    }
                }
                Ok(())
            }
            (_, Some(v)) if tolerance::is_clear(v) => {
                self.doc.remove(urn);
                Ok(())
            }
            _ => Err(ScimError::invalid_value(format!("the value for {urn} must be an object of its attributes"))),
        }
    }

    fn members(&mut self, op: OpName, path: &Path, r: &Resolved<'_>, value: Option<&Value>) -> Result<()> {
        if r.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "members are added and removed whole; \"{}\" cannot be changed",
                path
            )));
        }
        match (op, &path.filter) {
            (OpName::Add, None) => {
                for m in parse_members(value.unwrap_or(&Value::Null), &self.limits)? {
                    self.delta.add(m);
                }
            }
            (OpName::Replace, None) => {
                self.delta.clear();
                for m in parse_members(value.unwrap_or(&Value::Null), &self.limits)? {
                    self.delta.add(m);
                }
            }
            (OpName::Remove, None) => match value {
                Some(v) if !tolerance::is_clear(v) => {
                    for m in parse_members(v, &self.limits)? {
                        self.delta.remove(&m.value);
                    }
                }
                _ => self.delta.clear(),
            },
            (OpName::Remove, Some(f)) => {
                let mut ids = Vec::new();
                member_ids(f, &mut ids)?;
                for id in ids {
                    self.delta.remove(&id);
                }
            }
            (_, Some(_)) => {
                return Err(ScimError::invalid_path(
                    "members cannot be changed through a value filter: add or remove them by value",
                ));
            }
        }
        Ok(())
    }

    fn set(&mut self, op: OpName, r: &Resolved<'_>, filter: Option<&Filter>, value: &Value) -> Result<()> {
        let at = r.display();
        let attr = r.attr;
        let Some(holder) = container_mut(&mut self.doc, r.container, true) else { return Ok(()) };
        match (filter, r.sub) {
            (None, None) if attr.multi_valued => {
                let new = normalize_attr(attr, value, self.unknown, &self.limits, &at)?;
                match (op, new) {
                    (_, None) if (op == OpName::Replace && tolerance::is_clear(value)) || value.is_null() => {
                        holder.remove(&attr.name);
                    }
                    (_, None) => {}
                    (OpName::Replace, Some(v)) => {
                        holder.insert(attr.name.clone(), v);
                    }
                    (_, Some(Value::Array(new))) => {
                        let mut list = take_list(holder, &attr.name);
                        let mut touched = Vec::new();
                        for v in new {
                            if let Some(i) = list.iter().position(|x| *x == v) {
                                touched.push(i);
                            } else {
                                list.push(v);
                                touched.push(list.len() - 1);
                            }
                        }
                        enforce_primary(&mut list, &touched, &at)?;
                        put_list(holder, &attr.name, list);
                    }
                    (_, Some(v)) => {
                        holder.insert(attr.name.clone(), v);
                    }
                }
            }
            (None, None) => match normalize_attr(attr, value, self.unknown, &self.limits, &at)? {
                None => {
                    holder.remove(&attr.name);
                }
                Some(Value::Object(new)) => match holder.get_mut(&attr.name) {
                    Some(Value::Object(old)) => old.extend(new),
                    _ => {
                        holder.insert(attr.name.clone(), Value::Object(new));
                    }
                },
                Some(v) => {
                    holder.insert(attr.name.clone(), v);
                }
            },
            (None, Some(sub)) => {
                let new = normalize_attr(sub, value, self.unknown, &self.limits, &at)?;
                if attr.multi_valued {
                    let mut list = take_list(holder, &attr.name);
                    if list.is_empty() {
                        if let Some(v) = new {
                            let mut m = Map::new();
                            m.insert(sub.name.clone(), v);
                            list.push(Value::Object(m));
                        }
                    } else {
                        for e in list.iter_mut() {
                            set_sub(e, &sub.name, new.clone());
                        }
                        // `emails.primary` set to true on every element would make several.
                        let all: Vec<usize> = (0..list.len()).collect();
                        enforce_primary(&mut list, &all, &at)?;
                    }
                    put_list(holder, &attr.name, list);
                } else {
                    let obj = holder.entry(attr.name.clone()).or_insert_with(|| Value::Object(Map::new()));
                    set_sub(obj, &sub.name, new);
                    prune(holder, &attr.name);
                }
            }
            (Some(f), sub) => {
                let new = match sub {
                    Some(s) => normalize_attr(s, value, self.unknown, &self.limits, &at)?,
                    None => normalize_attr(attr, value, self.unknown, &self.limits, &at)?.map(|v| match v {
                        Value::Array(mut xs) if xs.len() == 1 => xs.remove(0),
                        other => other,
                    }),
                };
                let mut list = take_list(holder, &attr.name);
                let mut matched = Vec::new();
                for (i, e) in list.iter().enumerate() {
                    if element_matches(attr, f, e)? {
                        matched.push(i);
                    }
                }
                if matched.is_empty() {
                    let Some(new) = new else {
                        put_list(holder, &attr.name, list);
                        return Ok(());
                    };
                    let mut seed = seed_from_filter(attr, f, self.unknown).ok_or_else(|| {
                        ScimError::no_target(format!(
                            "no value of {} matches [{f}], and the filter does not say what to create",
                            attr.name
                        ))
                    })?;
                    match (sub, new) {
                        (Some(s), v) => {
                            seed.insert(s.name.clone(), v);
                        }
                        (None, Value::Object(m)) => seed.extend(m),
                        (None, other) => return Err(wrong_value(&at, &other)),
                    }
                    list.push(Value::Object(seed));
                    matched.push(list.len() - 1);
                } else {
                    for &i in &matched {
                        let e = &mut list[i];
                        match (sub, &new) {
                            (Some(s), v) => set_sub(e, &s.name, v.clone()),
                            (None, None) => *e = Value::Null,
                            (None, Some(Value::Object(m))) => {
                                if op == OpName::Replace {
                                    let mut fresh = seed_from_filter(attr, f, self.unknown).unwrap_or_default();
                                    fresh.extend(m.clone());
                                    *e = Value::Object(fresh);
                                } else if let Value::Object(old) = e {
                                    old.extend(m.clone());
                                }
                            }
                            (None, Some(other)) => return Err(wrong_value(&at, other)),
                        }
                    }
                }
                enforce_primary(&mut list, &matched, &at)?;
                put_list(holder, &attr.name, list);
            }
        }
        Ok(())
    }

    fn remove(&mut self, r: &Resolved<'_>, filter: Option<&Filter>, value: Option<&Value>) -> Result<()> {
        let attr = r.attr;
        if attr.required && r.sub.is_none() && filter.is_none() {
            // RFC 7644 §3.5.2.2: removing a required attribute is a `mutability` error.
            return Err(ScimError::mutability(format!("{} is required and cannot be removed", r.display())));
        }
        let at = r.display();
        let Some(holder) = container_mut(&mut self.doc, r.container, false) else {
            return match filter {
                Some(f) => Err(ScimError::no_target(format!("no value of {} matches [{f}]", attr.name))),
                None => Ok(()),
            };
        };
        match (filter, r.sub) {
            (None, None) => match value {
                Some(v) if attr.multi_valued && !tolerance::is_clear(v) => {
                    let targets = normalize_attr(attr, v, self.unknown, &self.limits, &at)?;
                    let targets = match targets {
                        Some(Value::Array(xs)) => xs,
                        _ => Vec::new(),
                    };
                    let mut list = take_list(holder, &attr.name);
                    list.retain(|e| !targets.iter().any(|t| same_value(attr, e, t)));
                    put_list(holder, &attr.name, list);
                }
                _ => {
                    holder.remove(&attr.name);
                }
            },
            (None, Some(sub)) => {
                if attr.multi_valued {
                    let mut list = take_list(holder, &attr.name);
                    list.iter_mut().for_each(|e| set_sub(e, &sub.name, None));
                    put_list(holder, &attr.name, list);
                } else {
                    if let Some(obj) = holder.get_mut(&attr.name) {
                        set_sub(obj, &sub.name, None);
                    }
                    prune(holder, &attr.name);
                }
            }
            (Some(f), sub) => {
                let mut list = take_list(holder, &attr.name);
                let mut hit = false;
                for e in list.iter_mut() {
                    if element_matches(attr, f, e)? {
                        hit = true;
                        match sub {
                            Some(s) => set_sub(e, &s.name, None),
                            None => *e = Value::Null,
                        }
                    }
                }
                put_list(holder, &attr.name, list);
                if !hit {
                    return Err(ScimError::no_target(format!("no value of {} matches [{f}]", attr.name)));
                }
            }
        }
        Ok(())
    }
}

fn wrong_value(at: &str, v: &Value) -> ScimError {
    ScimError::invalid_value(format!("{at} needs an object of sub-attributes, not {v}"))
}

/// Takes the list under `name` out of `holder` (empty if missing); [`put_list`] puts it back.
fn take_list(holder: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    match holder.remove(name) {
        Some(Value::Array(xs)) => xs,
        _ => Vec::new(),
    }
}

/// Puts a list back without its empty elements, or drops the attribute if none are left.
/// Puts a multi-valued attribute back: without elements that lost every value, and without
/// exact duplicates (the first stays, as ingest keeps it), so that a PATCH's result is what a
/// PUT of it would store.
fn put_list(holder: &mut Map<String, Value>, name: &str, mut list: Vec<Value>) {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.retain(|e| !tolerance::is_clear(e) && seen.insert(resource::canonical_key(e)));
    if !list.is_empty() {
        holder.insert(name.to_owned(), Value::Array(list));
    }
}

/// Sets or (with `None`) removes a sub-attribute of an object.
fn set_sub(obj: &mut Value, sub: &str, v: Option<Value>) {
    if let Value::Object(m) = obj {
        match v {
            Some(v) => {
                m.insert(sub.to_owned(), v);
            }
            None => {
                m.remove(sub);
            }
        }
    }
}

/// Drops a single-valued attribute that holds nothing any more (`{}`).
fn prune(holder: &mut Map<String, Value>, name: &str) {
    if holder.get(name).is_some_and(tolerance::is_clear) {
        holder.remove(name);
    }
}

/// Two elements are the same value: equal `value` sub-attributes, else equal as a whole.
fn same_value(attr: &Attribute, e: &Value, t: &Value) -> bool {
    if attr.ty == AttrType::Complex {
        if let (Some(a), Some(b)) = (e.get("value"), t.get("value")) {
            let exact = attr.sub("value").is_some_and(|s| s.case_exact);
            return match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) if !exact => crate::eval::fold_case(x) == crate::eval::fold_case(y),
                _ => a == b,
            };
        }
    }
    e == t
}

/// After an operation touched the elements `touched`, keeps `primary: true` on one only.
fn enforce_primary(list: &mut [Value], touched: &[usize], at: &str) -> Result<()> {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let fresh: Vec<usize> = touched.iter().copied().filter(|&i| list.get(i).is_some_and(is_primary)).collect();
    if fresh.len() > 1 {
        return Err(ScimError::invalid_value(format!(
            "{at}: only one value may have \"primary\": true (RFC 7643 §2.4)"
        )));
    }
    if let Some(&keep) = fresh.first() {
        for (i, e) in list.iter_mut().enumerate() {
            if i != keep && is_primary(e) {
                set_sub(e, "primary", Some(Value::Bool(false)));
            }
        }
    }
    Ok(())
}

/// The element a value filter describes: `type eq "work"` gives `{"type": "work"}`;
/// `and` combines. Other filters describe nothing.
fn seed_from_filter(attr: &Attribute, f: &Filter, unknown: UnknownAttributes) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let mut terms = vec![f];
    while let Some(t) = terms.pop() {
        match t {
            Filter::And(xs) => terms.extend(xs.iter()),
            Filter::Compare(p, CompareOp::Eq, lit) if p.urn.is_none() && p.sub.is_none() => {
                let sub = attr.sub(&p.name)?;
                let raw = match lit {
                    Literal::String(s) => Value::String(s.clone()),
                    Literal::Number(n) => Value::Number(n.clone()),
                    Literal::Bool(b) => Value::Bool(*b),
                    Literal::Null => return None,
                };
                let v = normalize_attr(sub, &raw, unknown, &resource::Limits::default(), &sub.name).ok()??;
                out.insert(sub.name.clone(), v);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The ids a member-removal filter names: `value eq "id"`, joined by `or`.
fn member_ids(f: &Filter, out: &mut Vec<String>) -> Result<()> {
    match f {
        Filter::Or(xs) => xs.iter().try_for_each(|x| member_ids(x, out)),
        Filter::Compare(p, CompareOp::Eq, Literal::String(id))
            if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() && p.urn.is_none() =>
        {
            out.push(id.clone());
            Ok(())
        }
        _ => Err(ScimError::invalid_filter(format!(
            "members are selected by id only: use members[value eq \"<id>\"], not members[{f}]"
        ))),
    }
}

/// Refuses changes to immutable attributes that already had a value.
fn check_immutable(def: &ResourceDef<'_>, before: &Map<String, Value>, after: &Map<String, Value>) -> Result<()> {
    let schemas = std::iter::once((None, def.common.iter().chain(def.core.attributes.iter()).collect::<Vec<_>>()))
        .chain(def.extensions.iter().map(|(s, _)| (Some(s.id.as_str()), s.attributes.iter().collect())));
    for (urn, attrs) in schemas {
        let (b, a) = match urn {
            None => (Some(before), Some(after)),
            Some(u) => (before.get(u).and_then(Value::as_object), after.get(u).and_then(Value::as_object)),
        };
        for attr in attrs {
            let old = b.and_then(|m| m.get(&attr.name));
            let new = a.and_then(|m| m.get(&attr.name));
            if attr.mutability == Mutability::Immutable && old.is_some() && old != new {
                return Err(ScimError::mutability(format!("{} is immutable and already set", attr.name)));
            }
            if attr.ty == AttrType::Complex && !attr.multi_valued {
                for sub in attr.sub_attributes.iter().filter(|s| s.mutability == Mutability::Immutable) {
                    let o = old.and_then(|v| v.get(&sub.name));
                    if o.is_some() && o != new.and_then(|v| v.get(&sub.name)) {
                        return Err(ScimError::mutability(format!(
                            "{}.{} is immutable and already set",
                            attr.name, sub.name
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
