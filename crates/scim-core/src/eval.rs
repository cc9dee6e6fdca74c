//! Filter evaluation against a resource document, and the sort comparator.
//!
//! Comparison follows the attribute's type (RFC 7644 §3.4.2.2): strings honour `caseExact`,
//! numbers compare numerically, dateTimes as instants, booleans only with `eq`/`ne` (the
//! strings `"True"`/`"False"` count as booleans). A multi-valued attribute matches when any of
//! its values does; a complex attribute without a sub-attribute compares its `value`.
//! `ne` is the negation of `eq`, so it holds for a resource without the attribute.
//! An attribute the resource type does not define is treated as absent.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{Result, ScimError};
use crate::filter::{CompareOp, Filter, Literal};
use crate::path::AttrPath;
use crate::registry::{Container, ResourceDef};
use crate::schema::{AttrType, Attribute, Returned};
use crate::tolerance;

/// Whether `resource` matches `filter`. Errors (`invalidFilter`) for comparisons the
/// attribute's type does not allow, such as `active gt true`.
pub fn matches(def: &ResourceDef<'_>, filter: &Filter, resource: &Value) -> Result<bool> {
    eval(&Scope::Root(def), filter, resource)
}

/// Checks the filter against the schema without a resource: comparisons the attribute's type
/// does not allow, and value filters on attributes that are not complex.
pub fn check(def: &ResourceDef<'_>, filter: &Filter) -> Result<()> {
    let mut refused = Ok(());
    filter.visit_paths(&mut |p| {
        if refused.is_ok() {
            refused = refuse_never_returned(def, p);
        }
    });
    refused?;
    check_in(&Scope::Root(def), filter)
}

enum Scope<'s, 'a> {
    Root(&'s ResourceDef<'a>),
    Element(&'a Attribute),
}

/// Gets `name` from an object, exactly or else case-insensitively.
pub(crate) fn get_ci<'v>(obj: &'v Value, name: &str) -> Option<&'v Value> {
    let map = obj.as_object()?;
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The values a path selects in `obj`, flattened, with the definition of the leaf.
fn collect<'v, 'a>(scope: &Scope<'_, 'a>, path: &AttrPath, obj: &'v Value) -> (Vec<&'v Value>, Option<&'a Attribute>) {
    let mut out = Vec::new();
    let (holder, attr, sub_name) = match scope {
        Scope::Root(_) if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("schemas") => {
            // `schemas` is no schema attribute, but filters may test it (RFC 7644 §3.4.2.2).
            if let Some(v) = get_ci(obj, "schemas") {
                flatten(v, &mut out);
            }
            return (out, None);
        }
        Scope::Root(def) => match def.resolve(path) {
            Some(r) => {
                let holder = match r.container {
                    Container::Root => Some(obj),
                    Container::Extension(urn) => get_ci(obj, urn),
                };
                (holder, Some(r.attr), path.sub.as_deref())
            }
            None => return (out, None),
        },
        Scope::Element(parent) => match parent.sub(&path.name) {
            Some(a) if path.sub.is_none() && path.urn.is_none() => (Some(obj), Some(a), None),
            _ => return (out, None),
        },
    };
    let (Some(holder), Some(attr)) = (holder, attr) else { return (out, None) };
    let sub_name = match (sub_name, attr.ty) {
        (None, AttrType::Complex) if attr.sub("value").is_some() => Some("value"),
        (s, _) => s,
    };
    let leaf = leaf_of(attr, sub_name);
    let Some(v) = get_ci(holder, &attr.name) else { return (out, leaf) };
    let mut push = |x: &'v Value| match sub_name {
        Some(s) => {
            if let Some(y) = get_ci(x, s) {
                flatten(y, &mut out)
            }
        }
        None => flatten(x, &mut out),
    };
    match v {
        Value::Array(xs) => xs.iter().for_each(&mut push),
        x => push(x),
    }
    (out, leaf)
}

fn leaf_of<'a>(attr: &'a Attribute, sub: Option<&str>) -> Option<&'a Attribute> {
    match sub {
        Some(s) => attr.sub(s),
        None => Some(attr),
    }
}

fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(xs) => out.extend(xs.iter().filter(|x| !x.is_null())),
        Value::Null => {}
        x => out.push(x),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(xs) => xs.iter().any(present),
        Value::Object(m) => m.values().any(present),
        _ => true,
    }
}

fn eval(scope: &Scope<'_, '_>, f: &Filter, obj: &Value) -> Result<bool> {
    Ok(match f {
        Filter::And(xs) => {
            for x in xs {
                if !eval(scope, x, obj)? {
                    return Ok(false);
                }
            }
            true
        }
        Filter::Or(xs) => {
            for x in xs {
                if eval(scope, x, obj)? {
                    return Ok(true);
                }
            }
            false
        }
        Filter::Not(x) => !eval(scope, x, obj)?,
        Filter::Present(p) => collect(scope, p, obj).0.into_iter().any(present),
        Filter::Compare(p, op, lit) => {
            let (vals, leaf) = collect(scope, p, obj);
            compare_any(leaf, &vals, *op, lit)?
        }
        Filter::ValuePath(p, inner) => {
            let Scope::Root(def) = scope else {
                return Err(ScimError::invalid_filter("value filters cannot be nested"));
            };
            let Some(r) = def.resolve(p) else { return Ok(false) };
            if r.attr.ty != AttrType::Complex || r.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "\"{}\" is not a complex attribute, so it takes no value filter",
                    r.display()
                )));
            }
            let holder = match r.container {
                Container::Root => Some(obj),
                Container::Extension(urn) => get_ci(obj, urn),
            };
            let elements = holder.and_then(|h| get_ci(h, &r.attr.name));
            let element_scope = Scope::Element(r.attr);
            match elements {
                Some(Value::Array(xs)) => {
                    for x in xs {
                        if eval(&element_scope, inner, x)? {
                            return Ok(true);
                        }
                    }
                    false
                }
                Some(x @ Value::Object(_)) => eval(&element_scope, inner, x)?,
                _ => false,
            }
        }
    })
}

/// `invalidFilter` for a path to an attribute that is never returned (`password`): filtering
/// or sorting on it would tell its value one question at a time.
pub fn refuse_never_returned(def: &ResourceDef<'_>, path: &AttrPath) -> Result<()> {
    match def.resolve(path) {
        Some(r) if r.attr.returned == Returned::Never || r.leaf().returned == Returned::Never => {
            Err(ScimError::invalid_filter(format!(
                "{} is never returned, so it cannot be filtered or sorted on",
                r.display()
            )))
        }
        _ => Ok(()),
    }
}

fn check_in(scope: &Scope<'_, '_>, f: &Filter) -> Result<()> {
    match f {
        Filter::And(xs) | Filter::Or(xs) => xs.iter().try_for_each(|x| check_in(scope, x)),
        Filter::Not(x) => check_in(scope, x),
        Filter::Present(_) => Ok(()),
        Filter::Compare(p, op, lit) => {
            let leaf = match scope {
                Scope::Root(def) => def.resolve(p).map(|r| {
                    let r_leaf = r.leaf();
                    if r_leaf.ty == AttrType::Complex { r_leaf.sub("value").unwrap_or(r_leaf) } else { r_leaf }
                }),
                Scope::Element(parent) => parent.sub(&p.name),
            };
            match leaf {
                Some(a) => allowed(a.ty, *op, lit, p),
                None => Ok(()),
            }
        }
        Filter::ValuePath(p, inner) => {
            let Scope::Root(def) = scope else {
                return Err(ScimError::invalid_filter("value filters cannot be nested"));
            };
            match def.resolve(p) {
                Some(r) if r.attr.ty == AttrType::Complex && r.sub.is_none() => {
                    check_in(&Scope::Element(r.attr), inner)
                }
                Some(r) => Err(ScimError::invalid_filter(format!(
                    "\"{}\" is not a complex attribute, so it takes no value filter",
                    r.display()
                ))),
                None => Ok(()),
            }
        }
    }
}

/// Whether `op` with `lit` may be applied to an attribute of type `ty`.
fn allowed(ty: AttrType, op: CompareOp, lit: &Literal, path: &AttrPath) -> Result<()> {
    let bad = |why: &str| Err(ScimError::invalid_filter(format!("\"{path} {} {lit}\": {why}", op.as_str())));
    if *lit == Literal::Null {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            bad("null compares only with eq or ne")
        };
    }
    match ty {
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return bad("a boolean compares only with eq or ne");
            }
            if literal_bool(lit).is_none() {
                return bad("the value must be true or false");
            }
            Ok(())
        }
        AttrType::Binary if op.is_ordering() => bad("binary values cannot be ordered"),
        AttrType::Complex => bad("a complex attribute needs a sub-attribute to compare"),
        AttrType::DateTime if op.is_ordering() || op == CompareOp::Eq || op == CompareOp::Ne => match lit {
            Literal::String(s) if tolerance::lenient_datetime(s).is_some() => Ok(()),
            _ => bad("the value must be a dateTime such as \"2024-01-31T12:00:00Z\""),
        },
        AttrType::Integer | AttrType::Decimal => match lit {
            Literal::Number(_) => Ok(()),
            Literal::String(s) if s.trim().parse::<f64>().is_ok() => Ok(()),
            _ => bad("the value must be a number"),
        },
        _ => Ok(()),
    }
}

fn literal_bool(lit: &Literal) -> Option<bool> {
    match lit {
        Literal::Bool(b) => Some(*b),
        Literal::String(s) => tolerance::bool_value(&Value::String(s.clone())),
        _ => None,
    }
}

fn compare_any(leaf: Option<&Attribute>, vals: &[&Value], op: CompareOp, lit: &Literal) -> Result<bool> {
    if let Some(a) = leaf {
        allowed(a.ty, op, lit, &AttrPath::name(&a.name))?;
    }
    if *lit == Literal::Null {
        let any = vals.iter().any(|v| present(v));
        return Ok(if op == CompareOp::Eq { !any } else { any });
    }
    if op == CompareOp::Ne {
        return Ok(!compare_any(leaf, vals, CompareOp::Eq, lit)?);
    }
    Ok(vals.iter().any(|v| compare_one(leaf, v, op, lit)))
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn ordering_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_one(leaf: Option<&Attribute>, v: &Value, op: CompareOp, lit: &Literal) -> bool {
    let ty = match leaf {
        Some(a) => a.ty,
        None => match (v, lit) {
            (Value::Bool(_), _) | (_, Literal::Bool(_)) => AttrType::Boolean,
            (Value::Number(_), _) => AttrType::Decimal,
            _ => AttrType::String,
        },
    };
    match ty {
        AttrType::Boolean => match (tolerance::bool_value(v), literal_bool(lit)) {
            (Some(a), Some(b)) => (a == b) == (op == CompareOp::Eq),
            _ => false,
        },
        AttrType::Integer | AttrType::Decimal => {
            let rhs = match lit {
                Literal::Number(n) => n.as_f64(),
                Literal::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match (num(v), rhs) {
                (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordering_holds(op, o)),
                _ => false,
            }
        }
        AttrType::DateTime if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
            let lhs = v.as_str().and_then(tolerance::lenient_datetime);
            let rhs = match lit {
                Literal::String(s) => tolerance::lenient_datetime(s),
                _ => None,
            };
            match (lhs, rhs) {
                (Some(a), Some(b)) => ordering_holds(op, a.cmp(&b)),
                _ => false,
            }
        }
        _ => {
            let case_exact = leaf.is_some_and(|a| a.case_exact);
            let lhs = match v {
                Value::String(s) => s.clone(),
                // Values of attributes the schema does not type (none are stored today).
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            let rhs = match lit {
                Literal::String(s) => s.clone(),
                Literal::Number(n) => n.to_string(),
                Literal::Bool(b) => b.to_string(),
                Literal::Null => return false,
            };
            string_op(&lhs, &rhs, op, case_exact)
        }
    }
}

fn string_op(lhs: &str, rhs: &str, op: CompareOp, case_exact: bool) -> bool {
    if case_exact {
        return str_op(lhs, rhs, op);
    }
    if op == CompareOp::Eq && lhs.is_ascii() && rhs.is_ascii() {
        return lhs.eq_ignore_ascii_case(rhs);
    }
    str_op(&fold_case(lhs), &fold_case(rhs), op)
}

fn str_op(lhs: &str, rhs: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => lhs.contains(rhs),
        CompareOp::Sw => lhs.starts_with(rhs),
        CompareOp::Ew => lhs.ends_with(rhs),
        _ => ordering_holds(op, lhs.cmp(rhs)),
    }
}

/// The value a resource sorts by for `path` (RFC 7644 §3.4.2.3): the attribute's value; for a
/// multi-valued attribute the primary value, else the first; a complex attribute's `value`.
pub fn sort_value<'v>(def: &ResourceDef<'_>, path: &AttrPath, resource: &'v Value) -> Option<&'v Value> {
    let r = def.resolve(path)?;
    let holder = match r.container {
        Container::Root => resource,
        Container::Extension(urn) => get_ci(resource, urn)?,
    };
    let v = get_ci(holder, &r.attr.name)?;
    let sub = match r.sub {
        Some(s) => Some(s.name.as_str()),
        None if r.attr.ty == AttrType::Complex => Some("value"),
        None => None,
    };
    let element = match v {
        Value::Array(xs) => xs
            .iter()
            .find(|x| get_ci(x, "primary").and_then(tolerance::bool_value) == Some(true))
            .or_else(|| xs.first())?,
        x => x,
    };
    let out = match sub {
        Some(s) => get_ci(element, s)?,
        None => element,
    };
    (!out.is_null()).then_some(out)
}

/// Orders two resources by `path` ascending; resources without a value sort last. Reverse the
/// result for `descending` (which puts them first, as RFC 7644 §3.4.2.3 asks).
pub fn compare_by(def: &ResourceDef<'_>, path: &AttrPath, a: &Value, b: &Value) -> Ordering {
    compare_sort_values(sort_leaf(def, path), sort_value(def, path, a), sort_value(def, path, b))
}

/// The attribute whose type orders the values [`sort_value`] picks for `path`.
pub fn sort_leaf<'a>(def: &ResourceDef<'a>, path: &AttrPath) -> Option<&'a Attribute> {
    def.resolve(path).map(|r| match r.sub {
        Some(s) => s,
        None if r.attr.ty == AttrType::Complex => r.attr.sub("value").unwrap_or(r.attr),
        None => r.attr,
    })
}

/// Orders two sort values ([`sort_value`]) of one attribute ascending; a missing value last.
pub fn compare_sort_values(leaf: Option<&Attribute>, a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_values(leaf, x, y),
    }
}

/// Orders two values of one attribute by its type.
pub fn compare_values(leaf: Option<&Attribute>, x: &Value, y: &Value) -> Ordering {
    match leaf.map(|a| a.ty) {
        Some(AttrType::Integer | AttrType::Decimal) => {
            if let (Some(a), Some(b)) = (num(x), num(y)) {
                return a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            }
        }
        Some(AttrType::DateTime) => {
            if let (Some(a), Some(b)) =
                (x.as_str().and_then(tolerance::lenient_datetime), y.as_str().and_then(tolerance::lenient_datetime))
            {
                return a.cmp(&b);
            }
        }
        Some(AttrType::Boolean) => {
            if let (Some(a), Some(b)) = (tolerance::bool_value(x), tolerance::bool_value(y)) {
                return a.cmp(&b);
            }
        }
        _ => {}
    }
    match (x, y) {
        (Value::String(a), Value::String(b)) => {
            if leaf.is_some_and(|a| a.case_exact) {
                a.cmp(b)
            } else {
                fold_case(a).cmp(&fold_case(b)).then_with(|| a.cmp(b))
            }
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(Ordering::Equal),
        _ => x.to_string().cmp(&y.to_string()),
    }
}

/// Whether one element of the complex attribute `attr` matches a value filter's inner filter.
pub(crate) fn element_matches(attr: &Attribute, filter: &Filter, element: &Value) -> Result<bool> {
    eval(&Scope::Element(attr), filter, element)
}

/// The case-folded form of a text, for case-insensitive comparison, sorting and uniqueness
/// (RFC 7643 §2.1: `caseExact` false): each character lower-cased on its own, and final sigma
/// folded to sigma, so `ΟΔΟΣ`, `οδος` and `οδοσ` are one name. (`str::to_lowercase` applies the
/// context rule for a final sigma, which made `ΟΔΟΣ` and `οδοσ` two different userNames.)
pub fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).map(|c| if c == 'ς' { 'σ' } else { c }).collect()
}
