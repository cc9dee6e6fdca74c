//! What every engine shares: time encoding, the wording of conflicts and `tooMany`, and the part
//! of a query that SQL cannot answer (residual filter, in-memory sort, paging).

use scim_core::registry::ResourceDef;
use scim_core::{AttrPath, Filter, ScimError, eval};
use serde_json::Value;
use time::OffsetDateTime;

use crate::plan::IndexKeys;
use crate::{Kind, Record, Result, SortOrder, StoreError};

/// Microseconds since the epoch: how instants are stored.
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The instant of a stored microsecond count.
pub(crate) fn instant(m: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Which uniqueness constraint a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    /// userName (User) or displayName (Group), case-insensitively.
    Name,
    /// externalId.
    ExternalId,
    /// The resource id.
    Id,
}

/// The `Conflict` for a broken uniqueness constraint, naming the attribute and the value sent.
pub(crate) fn conflict(kind: Kind, keys: &IndexKeys, which: Unique) -> StoreError {
    // At most the first 100 characters of the value (it may be long).
    let cut = |s: &str| -> String {
        let mut out: String = s.chars().take(100).collect();
        if out.len() < s.len() {
            out.push_str("...");
        }
        out
    };
    StoreError::Conflict(match which {
        Unique::ExternalId => format!(
            "externalId \"{}\" is already used by another {} of this tenant",
            cut(keys.external_id.as_deref().unwrap_or_default()),
            kind.name()
        ),
        Unique::Name => {
            let attr = if kind == Kind::User { "userName" } else { "displayName" };
            format!(
                "{attr} \"{}\" is already used by another {} of this tenant (compared case-insensitively)",
                cut(&keys.name),
                kind.name()
            )
        }
        Unique::Id => "a resource with this id already exists".into(),
    })
}

/// `tooMany`: the query would examine more resources one by one than allowed.
pub(crate) fn too_many(examined: u64, limit: u64) -> StoreError {
    StoreError::Scim(ScimError::too_many(format!(
        "the filter or sortBy needs {examined} resources examined one by one; the limit is {limit}. \
         Narrow the filter with an indexed attribute (id, userName, externalId, displayName, emails.value, \
         meta.lastModified, employeeNumber)"
    )))
}

/// The part of a query SQL cannot answer: keeps the candidates (in creation order) that match
/// the residual filter, sorts them with the core's comparison if asked, and cuts the page.
/// Returns the number of matches and the page.
pub(crate) fn residual_page<K>(
    def: &ResourceDef<'_>,
    residual: Option<&Filter>,
    sort: Option<(&AttrPath, SortOrder)>,
    mut candidates: Vec<(K, Record)>,
    offset: u64,
    count: u64,
) -> Result<(u64, Vec<(K, Record)>)> {
    if let Some(residual) = residual {
        let mut kept = Vec::with_capacity(candidates.len());
        for (k, rec) in candidates {
            if eval::matches(def, residual, &crate::materialize(&rec))? {
                kept.push((k, rec));
            }
        }
        candidates = kept;
    }
    if let Some((path, order)) = sort {
        let mut keyed: Vec<(Value, (K, Record))> =
            candidates.into_iter().map(|x| (crate::materialize(&x.1), x)).collect();
        keyed.sort_by(|a, b| {
            let o = eval::compare_by(def, path, &a.0, &b.0);
            if order == SortOrder::Descending { o.reverse() } else { o }
        });
        candidates = keyed.into_iter().map(|(_, x)| x).collect();
    }
    let total = candidates.len() as u64;
    let page = candidates
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    Ok((total, page))
}
