//! What every engine shares: time encoding and the wording of conflicts and `tooMany`.

use scim_core::ScimError;
use time::OffsetDateTime;

use crate::plan::IndexKeys;
use crate::{Kind, StoreError};

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
