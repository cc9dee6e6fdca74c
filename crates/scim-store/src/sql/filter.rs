//! The filter compiler: a plan's [`Cond`] as SQL over the alias `r` of the resources table, in
//! either dialect.
//!
//! Placeholders `$1` and `$2` are always the tenant and the kind, and the compiled condition is
//! parenthesised under them, so a filter can never widen a query beyond its tenant. Every value
//! of the condition is pushed to the argument list and bound, never spliced.

use super::{Arg, Dialect, Ty};
use crate::SortOrder;
use crate::plan::{Col, Cond, EmailCol, Op};

/// Compiles `c`, pushing its values to `args` (which already holds the tenant and the kind).
pub(crate) fn cond(d: &Dialect, c: &Cond, args: &mut Vec<Arg>) -> String {
    match c {
        Cond::True => "TRUE".into(),
        Cond::False => "FALSE".into(),
        Cond::Cmp(col, op, arg) => compare(d, &format!("r.{}", col.name()), *op, arg, args),
        Cond::NotNull(col) => format!("r.{} IS NOT NULL", col.name()),
        Cond::Email(terms) => {
            let parts: Vec<String> = terms
                .iter()
                .map(|(col, op, arg)| {
                    let name = match col {
                        EmailCol::ValueLc => "e.value_lc",
                        EmailCol::TypeLc => "e.type_lc",
                    };
                    compare(d, name, *op, arg, args)
                })
                .collect();
            // Uncorrelated and tenant-scoped, so the planner can start from `emails_value`.
            format!("r.pk IN (SELECT e.resource_pk FROM emails e WHERE e.tenant_id = $1 AND {})", parts.join(" AND "))
        }
        Cond::HasEmail => "EXISTS (SELECT 1 FROM emails e WHERE e.resource_pk = r.pk)".into(),
        Cond::Member(id) => {
            let p = bind(d, args, Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.group_pk FROM members m JOIN resources x ON x.pk = m.member_pk WHERE x.tenant_id = $1 AND x.id = {p})"
            )
        }
        Cond::HasMember => "EXISTS (SELECT 1 FROM members m WHERE m.group_pk = r.pk)".into(),
        Cond::InGroup(id) => {
            let p = bind(d, args, Arg::Text(id.clone()));
            format!(
                "r.pk IN (SELECT m.member_pk FROM members m JOIN resources g ON g.pk = m.group_pk WHERE g.tenant_id = $1 AND g.id = {p})"
            )
        }
        Cond::InAnyGroup => "EXISTS (SELECT 1 FROM members m WHERE m.member_pk = r.pk)".into(),
        Cond::And(xs) if xs.is_empty() => "TRUE".into(),
        Cond::Or(xs) if xs.is_empty() => "FALSE".into(),
        Cond::And(xs) => format!("({})", xs.iter().map(|x| cond(d, x, args)).collect::<Vec<_>>().join(" AND ")),
        Cond::Or(xs) => format!("({})", xs.iter().map(|x| cond(d, x, args)).collect::<Vec<_>>().join(" OR ")),
        Cond::Not(x) => format!("NOT COALESCE(({}), FALSE)", cond(d, x, args)),
    }
}

/// A placeholder for `arg`, typed where the dialect wants types.
fn bind(d: &Dialect, args: &mut Vec<Arg>, arg: Arg) -> String {
    let ty = if matches!(arg, Arg::Int(_)) { Ty::Int } else { Ty::Text };
    args.push(arg);
    d.param(args.len(), ty)
}

/// `col op arg`. Text columns compare by bytes on both engines (SQLite's BINARY, PostgreSQL's
/// `COLLATE "C"`); the pattern operators are plain string functions, never LIKE, so `%` and
/// `_` in a value mean themselves.
fn compare(d: &Dialect, col: &str, op: Op, arg: &Arg, args: &mut Vec<Arg>) -> String {
    let p = bind(d, args, arg.clone());
    let pos = d.position_fn;
    match op {
        Op::Eq => format!("{col} = {p}"),
        Op::Lt => format!("{col} < {p}"),
        Op::Le => format!("{col} <= {p}"),
        Op::Gt => format!("{col} > {p}"),
        Op::Ge => format!("{col} >= {p}"),
        Op::Contains => format!("{pos}({col}, {p}) > 0"),
        Op::StartsWith => {
            let upper = match (d.starts_with_fn, arg) {
                (None, Arg::Text(prefix)) => super::prefix_upper_bound(prefix).map(|u| bind(d, args, Arg::Text(u))),
                _ => None,
            };
            d.starts_with(col, &p, upper.as_deref())
        }
        Op::EndsWith => format!("substr({col}, length({col}) - length({p}) + 1) = {p}"),
    }
}

/// The `ORDER BY` of a page sorted in SQL: by an indexed column (resources without a value
/// last when ascending, first when descending), then creation order.
pub(crate) fn order_by(sort: Option<(Col, SortOrder)>) -> String {
    match sort {
        Some((col, SortOrder::Ascending)) => format!("r.{} ASC NULLS LAST, r.pk", col.name()),
        Some((col, SortOrder::Descending)) => format!("r.{} DESC NULLS FIRST, r.pk DESC", col.name()),
        None => "r.pk".to_owned(),
    }
}
