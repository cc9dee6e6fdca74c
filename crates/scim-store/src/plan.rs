//! Query planning: which part of a filter runs as index look-ups in SQL, and which part the
//! core evaluates on a bounded candidate set. Also the index keys of a document.
//!
//! The plan is engine-neutral ([`Cond`]); `sql::filter` renders it in either dialect.
//! Every value is bound, never spliced into SQL text, and the compiled condition is always
//! parenthesised under the tenant predicate.

use scim_core::eval::fold_case;
use scim_core::filter::{CompareOp, Filter, Literal};
use scim_core::registry::{Container, ResourceDef};
use scim_core::standard::ENTERPRISE_USER;
use scim_core::{AttrPath, ScimError, tolerance};
use serde_json::Value;

use crate::Kind;

/// An indexed column of the resources table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// `id` (case-exact)
    Id,
    /// userName (User) or displayName (Group), lower-cased
    NameLc,
    /// displayName, lower-cased
    DisplayLc,
    /// externalId (case-exact)
    ExternalId,
    /// enterprise employeeNumber, lower-cased
    EmployeeNumberLc,
    /// meta.created, microseconds since the epoch
    Created,
    /// meta.lastModified, microseconds since the epoch
    Modified,
}

impl Col {
    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Col::Id => "id",
            Col::NameLc => "name_lc",
            Col::DisplayLc => "display_lc",
            Col::ExternalId => "external_id",
            Col::EmployeeNumberLc => "employee_number_lc",
            Col::Created => "created",
            Col::Modified => "modified",
        }
    }
}

pub use crate::sql::Arg;

/// Comparison operators SQL evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// contains
    Contains,
    /// starts with
    StartsWith,
    /// ends with
    EndsWith,
}

/// Which column of the emails table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailCol {
    /// the address, lower-cased
    ValueLc,
    /// the type, lower-cased
    TypeLc,
}

/// An engine-neutral SQL condition over a resources row `r`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Always true.
    True,
    /// Always false.
    False,
    /// `r.col op arg`
    Cmp(Col, Op, Arg),
    /// `r.col IS NOT NULL`
    NotNull(Col),
    /// Some email row of `r` satisfies every (column, op, arg).
    Email(Vec<(EmailCol, Op, Arg)>),
    /// `r` has an email row.
    HasEmail,
    /// `r` (a group) has the member with this id.
    Member(String),
    /// `r` (a group) has a member.
    HasMember,
    /// `r` (a user or group) is a direct member of the group with this id.
    InGroup(String),
    /// `r` is a member of some group.
    InAnyGroup,
    /// all
    And(Vec<Cond>),
    /// any
    Or(Vec<Cond>),
    /// negation (a NULL inside counts as false first)
    Not(Box<Cond>),
}

/// The plan of a filter: SQL for what is indexed, and the rest for the core.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The SQL part; rows failing it never match.
    pub cond: Cond,
    /// What the core must still check on each candidate, if anything.
    pub residual: Option<Filter>,
}

/// Plans a filter for a resource type.
pub fn plan(def: &ResourceDef<'_>, kind: Kind, filter: Option<&Filter>) -> Result<Plan, ScimError> {
    let Some(f) = filter else { return Ok(Plan { cond: Cond::True, residual: None }) };
    if let Some(c) = compile(def, kind, f)? {
        return Ok(Plan { cond: c, residual: None });
    }
    let residual = match f {
        Filter::And(terms) => {
            let mut sql = Vec::new();
            let mut rest = Vec::new();
            for t in terms {
                match compile(def, kind, t)? {
                    Some(c) => sql.push(c),
                    None => rest.push(t.clone()),
                }
            }
            let residual = if rest.len() == 1 { rest.remove(0) } else { Filter::And(rest) };
            let cond = if sql.is_empty() { Cond::True } else { Cond::And(sql) };
            Plan { cond, residual: Some(residual) }
        }
        other => Plan { cond: Cond::True, residual: Some(other.clone()) },
    };
    if let Some(r) = &residual.residual {
        refuse_member_residual(def, kind, r)?;
    }
    Ok(residual)
}

/// Members (and a user's groups) are not part of the document, so the core cannot evaluate
/// filters on them: only the forms the members table answers are accepted, and any other path
/// into them (`members.display`, `members.type`, `groups.display`, ...) is refused, never
/// answered with a silently empty list.
fn refuse_member_residual(def: &ResourceDef<'_>, kind: Kind, f: &Filter) -> Result<(), ScimError> {
    let mut bad = None;
    f.visit_paths(&mut |p| {
        if in_member_table(def, kind, p) {
            bad = Some(p.to_string());
        }
    });
    match bad {
        None => Ok(()),
        Some(path) => {
            let name = if kind == Kind::Group { "members" } else { "groups" };
            Err(ScimError::invalid_filter(format!(
                "{path} cannot be filtered: {name} can be filtered only as {name} eq \"<id>\", \
                 {name}[value eq \"<id>\"] or {name} pr (combined with and/or/not as needed)"
            )))
        }
    }
}

/// Whether a path names a group's `members` or a user's `groups` (or one of their
/// sub-attributes): what lives in the members table, not in the document.
fn in_member_table(def: &ResourceDef<'_>, kind: Kind, p: &AttrPath) -> bool {
    let Some(r) = def.resolve(p) else { return false };
    r.container == Container::Root
        && matches!((kind, r.attr.name.as_str()), (Kind::Group, "members") | (Kind::User, "groups"))
}

fn lit_text(lit: &Literal) -> Option<String> {
    match lit {
        Literal::String(s) => Some(s.clone()),
        Literal::Number(n) => Some(n.to_string()),
        Literal::Bool(b) => Some(b.to_string()),
        Literal::Null => None,
    }
}

fn sql_op(op: CompareOp) -> Option<Op> {
    Some(match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Co => Op::Contains,
        CompareOp::Sw => Op::StartsWith,
        CompareOp::Ew => Op::EndsWith,
        CompareOp::Ne => return None,
    })
}

/// The indexed column a path names, and whether its values are lower-cased.
fn column(def: &ResourceDef<'_>, kind: Kind, path: &AttrPath) -> Option<(Col, bool)> {
    let r = def.resolve(path)?;
    let name = r.attr.name.as_str();
    let sub = r.sub.map(|s| s.name.as_str());
    Some(match (r.container, kind, name, sub) {
        (Container::Root, _, "id", None) => (Col::Id, false),
        (Container::Root, _, "externalId", None) => (Col::ExternalId, false),
        (Container::Root, Kind::User, "userName", None) => (Col::NameLc, true),
        (Container::Root, Kind::Group, "displayName", None) => (Col::NameLc, true),
        (Container::Root, Kind::User, "displayName", None) => (Col::DisplayLc, true),
        (Container::Root, _, "meta", Some("created")) => (Col::Created, false),
        (Container::Root, _, "meta", Some("lastModified")) => (Col::Modified, false),
        (Container::Extension(urn), Kind::User, "employeeNumber", None) if urn == ENTERPRISE_USER => {
            (Col::EmployeeNumberLc, true)
        }
        _ => return None,
    })
}

fn is_time(col: Col) -> bool {
    matches!(col, Col::Created | Col::Modified)
}

/// Microseconds since the epoch of a dateTime literal.
pub fn micros_of(s: &str) -> Option<i64> {
    let t = tolerance::lenient_datetime(s)?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

fn cmp(col: Col, lower: bool, op: CompareOp, lit: &Literal, path: &AttrPath) -> Result<Option<Cond>, ScimError> {
    if *lit == Literal::Null {
        let present = Cond::NotNull(col);
        return Ok(Some(match op {
            CompareOp::Eq => Cond::Not(Box::new(present)),
            CompareOp::Ne => present,
            _ => return Err(ScimError::invalid_filter(format!("{path}: null compares only with eq or ne"))),
        }));
    }
    let Some(text) = lit_text(lit) else { return Ok(None) };
    let arg = if is_time(col) {
        let Some(m) = micros_of(&text) else {
            return Err(ScimError::invalid_filter(format!(
                "{path}: \"{text}\" is not a dateTime such as \"2024-01-31T12:00:00Z\""
            )));
        };
        if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
            return Ok(None);
        }
        Arg::Int(m)
    } else if lower {
        Arg::Text(fold_case(&text))
    } else {
        Arg::Text(text)
    };
    Ok(Some(match sql_op(op) {
        Some(o) => Cond::Cmp(col, o, arg),
        None => Cond::Not(Box::new(Cond::Cmp(col, Op::Eq, arg))),
    }))
}

/// The SQL condition for a whole filter, or `None` if some part is not indexed.
fn compile(def: &ResourceDef<'_>, kind: Kind, f: &Filter) -> Result<Option<Cond>, ScimError> {
    Ok(match f {
        Filter::And(xs) | Filter::Or(xs) => {
            let mut out = Vec::with_capacity(xs.len());
            for x in xs {
                match compile(def, kind, x)? {
                    Some(c) => out.push(c),
                    None => return Ok(None),
                }
            }
            Some(if matches!(f, Filter::And(_)) { Cond::And(out) } else { Cond::Or(out) })
        }
        Filter::Not(x) => compile(def, kind, x)?.map(|c| Cond::Not(Box::new(c))),
        Filter::Present(p) => {
            if let Some((col, _)) = column(def, kind, p) {
                return Ok(Some(Cond::NotNull(col)));
            }
            match special(def, kind, p) {
                Some(Special::Email) => Some(Cond::HasEmail),
                Some(Special::Member) => Some(Cond::HasMember),
                Some(Special::Group) => Some(Cond::InAnyGroup),
                None => None,
            }
        }
        Filter::Compare(p, op, lit) => {
            if let Some((col, lower)) = column(def, kind, p) {
                return cmp(col, lower, *op, lit, p);
            }
            match special(def, kind, p) {
                Some(Special::Email) => email_cmp(EmailCol::ValueLc, *op, lit).map(|c| Cond::Email(vec![c])),
                Some(Special::Member) => id_eq(*op, lit).map(|(id, eq)| negate_unless(eq, Cond::Member(id))),
                Some(Special::Group) => id_eq(*op, lit).map(|(id, eq)| negate_unless(eq, Cond::InGroup(id))),
                None => None,
            }
        }
        Filter::ValuePath(p, inner) => match special(def, kind, &AttrPath { sub: None, ..p.clone() }) {
            Some(Special::Email) => email_value_path(inner).map(Cond::Email),
            Some(Special::Member) => id_value_path(inner, &Cond::Member),
            Some(Special::Group) => id_value_path(inner, &Cond::InGroup),
            None => None,
        },
    })
}

enum Special {
    Email,
    Member,
    Group,
}

/// `eq "<id>"` or `ne "<id>"`: the id and whether it was `eq`.
fn id_eq(op: CompareOp, lit: &Literal) -> Option<(String, bool)> {
    match (op, lit) {
        (CompareOp::Eq, Literal::String(id)) => Some((id.clone(), true)),
        (CompareOp::Ne, Literal::String(id)) => Some((id.clone(), false)),
        _ => None,
    }
}

fn negate_unless(keep: bool, c: Cond) -> Cond {
    if keep { c } else { Cond::Not(Box::new(c)) }
}

/// `emails` / `emails.value` (User), `members` / `members.value` (Group) and `groups` /
/// `groups.value` (User): the last two live in the members table, not in the document.
fn special(def: &ResourceDef<'_>, kind: Kind, p: &AttrPath) -> Option<Special> {
    let r = def.resolve(p)?;
    if r.container != Container::Root || r.sub.is_some_and(|s| s.name != "value") {
        return None;
    }
    match (kind, r.attr.name.as_str()) {
        (Kind::User, "emails") => Some(Special::Email),
        (Kind::Group, "members") => Some(Special::Member),
        (Kind::User, "groups") => Some(Special::Group),
        _ => None,
    }
}

fn email_cmp(col: EmailCol, op: CompareOp, lit: &Literal) -> Option<(EmailCol, Op, Arg)> {
    let o = sql_op(op)?;
    Some((col, o, Arg::Text(fold_case(&lit_text(lit)?))))
}

/// `emails[type eq "work" and value eq "x"]`: a conjunction on `value` and `type`.
fn email_value_path(inner: &Filter) -> Option<Vec<(EmailCol, Op, Arg)>> {
    let terms: Vec<&Filter> = match inner {
        Filter::And(xs) => xs.iter().collect(),
        x => vec![x],
    };
    let mut out = Vec::new();
    for t in terms {
        let Filter::Compare(p, op, lit) = t else { return None };
        if p.urn.is_some() || p.sub.is_some() {
            return None;
        }
        let col = if p.name.eq_ignore_ascii_case("value") {
            EmailCol::ValueLc
        } else if p.name.eq_ignore_ascii_case("type") {
            EmailCol::TypeLc
        } else {
            return None;
        };
        out.push(email_cmp(col, *op, lit)?);
    }
    Some(out)
}

/// `members[value eq "id"]` / `groups[value eq "id"]`, with `or` of several.
fn id_value_path(inner: &Filter, cond: &dyn Fn(String) -> Cond) -> Option<Cond> {
    match inner {
        Filter::Compare(p, CompareOp::Eq, Literal::String(id))
            if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() && p.urn.is_none() =>
        {
            Some(cond(id.clone()))
        }
        Filter::Or(xs) => xs.iter().map(|x| id_value_path(x, cond)).collect::<Option<Vec<_>>>().map(Cond::Or),
        _ => None,
    }
}

/// The indexed column a `sortBy` path sorts on, if any.
pub fn sort_column(def: &ResourceDef<'_>, kind: Kind, path: &AttrPath) -> Option<Col> {
    column(def, kind, path).map(|(c, _)| c)
}

/// The values a document contributes to the indexes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexKeys {
    /// userName (User) or displayName (Group), as sent.
    pub name: String,
    /// `name`, lower-cased; unique per tenant and kind.
    pub name_lc: String,
    /// What member lists show: displayName, else userName.
    pub display: Option<String>,
    /// displayName, lower-cased.
    pub display_lc: Option<String>,
    /// externalId as sent; unique per tenant and kind where set.
    pub external_id: Option<String>,
    /// enterprise employeeNumber, lower-cased.
    pub employee_number_lc: Option<String>,
    /// (address lower-cased, type lower-cased) of each email.
    pub emails: Vec<(String, Option<String>)>,
}

/// The longest value of an indexed attribute, in bytes: B-tree index entries must fit in a
/// page (PostgreSQL refused a 1.9 MB userName with a database error), and no identity provider
/// sends names or addresses anywhere near this long.
pub const MAX_INDEXED_BYTES: usize = 1024;

impl IndexKeys {
    /// `invalidValue` naming the first indexed attribute longer than [`MAX_INDEXED_BYTES`].
    pub fn check(&self, kind: Kind) -> Result<(), ScimError> {
        let name = if kind == Kind::User { "userName" } else { "displayName" };
        let too_long = [
            (name, Some(self.name.as_str())),
            ("displayName", self.display_lc.as_deref()),
            ("externalId", self.external_id.as_deref()),
            ("employeeNumber", self.employee_number_lc.as_deref()),
        ]
        .into_iter()
        .chain(self.emails.iter().map(|(v, _)| ("emails.value", Some(v.as_str()))))
        .chain(self.emails.iter().map(|(_, t)| ("emails.type", t.as_deref())))
        .find(|(_, v)| v.is_some_and(|v| v.len() > MAX_INDEXED_BYTES));
        match too_long {
            Some((attr, Some(v))) => Err(ScimError::invalid_value(format!(
                "{attr} is {} bytes long; the longest value scimd stores for it is {MAX_INDEXED_BYTES} bytes",
                v.len()
            ))),
            _ => Ok(()),
        }
    }

    /// The keys of a stored-form document.
    pub fn of(kind: Kind, doc: &Value) -> IndexKeys {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let display = text(doc.get("displayName"));
        let name = match kind {
            Kind::User => text(doc.get("userName")),
            Kind::Group => display.clone(),
        };
        let emails = doc
            .get("emails")
            .and_then(Value::as_array)
            .map(|xs| {
                xs.iter()
                    .filter_map(|e| {
                        let v = fold_case(e.get("value")?.as_str()?);
                        Some((v, e.get("type").and_then(Value::as_str).map(fold_case)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = name.unwrap_or_default();
        IndexKeys {
            name_lc: fold_case(&name),
            display_lc: display.as_deref().map(fold_case),
            display: display.or_else(|| Some(name.clone()).filter(|n| !n.is_empty())),
            name,
            external_id: text(doc.get("externalId")),
            employee_number_lc: doc
                .get(ENTERPRISE_USER)
                .and_then(|e| e.get("employeeNumber"))
                .and_then(Value::as_str)
                .map(fold_case),
            emails,
        }
    }
}
