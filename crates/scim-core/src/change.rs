//! What a write changed, as the change feed tells it (DESIGN.md, Events): the event type of a
//! resource change and the exact change, attribute path by attribute path.
//!
//! Both are pure functions of the resource before and after the write, so every shape a
//! client may use for the same change (a PATCH with `"active": "False"`, a path-less replace,
//! a PUT) yields the same event.

use serde_json::{Map, Value, json};

use crate::Kind;

/// The type of an event about a user or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A user was created.
    UserCreated,
    /// A user's attributes changed, `active` staying as it was.
    UserUpdated,
    /// A user's `active` went from true (or absent) to false: the soft delete.
    UserDeactivated,
    /// A user's `active` went from false back to true (or absent).
    UserReactivated,
    /// A user was deleted.
    UserDeleted,
    /// A group was created.
    GroupCreated,
    /// A group's attributes (not its members) changed.
    GroupUpdated,
    /// Members were added to a group.
    GroupMembersAdded,
    /// Members were removed from a group.
    GroupMembersRemoved,
    /// A group was deleted.
    GroupDeleted,
    /// A tenant was created (the first event of its feed).
    TenantCreated,
    /// A tenant's policy (its mandatory attributes) changed.
    TenantUpdated,
    /// A token was issued for the tenant.
    TenantTokenCreated,
    /// A token of the tenant was revoked.
    TenantTokenRevoked,
    /// A token of the tenant was rotated: it stops working at the end of the overlap.
    TenantTokenRotated,
    /// The tenant's directory health changed (never connected, healthy, warning, failing,
    /// stale), as scimd derives it from the tenant's SCIM traffic.
    TenantHealthChanged,
}

impl EventType {
    /// Every event type, in the order of the documentation.
    pub const ALL: [EventType; 16] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserDeleted,
        EventType::GroupCreated,
        EventType::GroupUpdated,
        EventType::GroupMembersAdded,
        EventType::GroupMembersRemoved,
        EventType::GroupDeleted,
        EventType::TenantCreated,
        EventType::TenantUpdated,
        EventType::TenantTokenCreated,
        EventType::TenantTokenRevoked,
        EventType::TenantTokenRotated,
        EventType::TenantHealthChanged,
    ];

    /// The feed's spelling, e.g. `user.deactivated`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserDeleted => "user.deleted",
            EventType::GroupCreated => "group.created",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupMembersAdded => "group.members_added",
            EventType::GroupMembersRemoved => "group.members_removed",
            EventType::GroupDeleted => "group.deleted",
            EventType::TenantCreated => "tenant.created",
            EventType::TenantUpdated => "tenant.updated",
            EventType::TenantTokenCreated => "tenant.token_created",
            EventType::TenantTokenRevoked => "tenant.token_revoked",
            EventType::TenantTokenRotated => "tenant.token_rotated",
            EventType::TenantHealthChanged => "tenant.health_changed",
        }
    }

    /// Whether it takes a user's access away (a deactivation or a deletion): what the
    /// mass-deprovisioning guard counts.
    pub fn deprovisions(self) -> bool {
        matches!(self, EventType::UserDeactivated | EventType::UserDeleted)
    }

    /// Whether the type, spelled as the feed spells it, takes a user's access away.
    pub fn deprovisions_str(ty: &str) -> bool {
        matches!(ty, "user.deactivated" | "user.deleted")
    }

    /// The type of a creation.
    pub fn created(kind: Kind) -> EventType {
        match kind {
            Kind::User => EventType::UserCreated,
            Kind::Group => EventType::GroupCreated,
        }
    }

    /// The type of a deletion.
    pub fn deleted(kind: Kind) -> EventType {
        match kind {
            Kind::User => EventType::UserDeleted,
            Kind::Group => EventType::GroupDeleted,
        }
    }

    /// The type of a change of attributes from `before` to `after` (documents of `kind`): for a
    /// user whose `active` flips, a deactivation or a reactivation, whatever else changed too.
    pub fn updated(kind: Kind, before: &Value, after: &Value) -> EventType {
        match kind {
            Kind::Group => EventType::GroupUpdated,
            Kind::User => match (is_active(before), is_active(after)) {
                (true, false) => EventType::UserDeactivated,
                (false, true) => EventType::UserReactivated,
                _ => EventType::UserUpdated,
            },
        }
    }
}

/// Whether a user document is active: `active` is anything but `false` (absent means the
/// client never deactivated it).
pub fn is_active(doc: &Value) -> bool {
    doc.get("active") != Some(&Value::Bool(false))
}

/// The attributes the change of a resource never lists: its identity and metadata (`id`,
/// `meta`, `schemas`) and the memberships, which group events tell (`members`, `groups`).
const NOT_CHANGES: [&str; 5] = ["id", "meta", "schemas", "members", "groups"];

/// The exact change from `before` to `after` (either absent for a creation or a deletion):
/// for each attribute path whose value differs, `{"path", "before", "after"}` (`null` for no
/// value). Complex attributes are compared sub-attribute by sub-attribute
/// (`name.givenName`), extension attributes are named by their schema URN
/// (`urn:...:enterprise:2.0:User:employeeNumber`), and multi-valued attributes are compared
/// as a whole (`emails` before and after). Attributes in the order of their names.
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<Value> {
    let empty = Map::new();
    let obj = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => m.clone(),
        _ => empty.clone(),
    };
    let (mut b, mut a) = (obj(before), obj(after));
    for k in NOT_CHANGES {
        b.remove(k);
        a.remove(k);
    }
    let mut out = Vec::new();
    diff("", false, &b, &a, &mut out);
    out
}

/// `extension`: `prefix` is the URN of an extension schema, whose attributes are named
/// `URN:attr`.
fn diff(prefix: &str, extension: bool, before: &Map<String, Value>, after: &Map<String, Value>, out: &mut Vec<Value>) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys().filter(|k| !before.contains_key(*k))).collect();
    keys.sort();
    for key in keys {
        let (b, a) = (before.get(key).filter(|v| !v.is_null()), after.get(key).filter(|v| !v.is_null()));
        if b == a {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else if extension {
            format!("{prefix}:{key}")
        } else {
            format!("{prefix}.{key}")
        };
        let nested = |v: Option<&Value>| matches!(v, None | Some(Value::Object(_)));
        if nested(b) && nested(a) {
            let empty = Map::new();
            let as_map = |v: Option<&Value>| match v {
                Some(Value::Object(m)) => m.clone(),
                _ => empty.clone(),
            };
            let extension = prefix.is_empty() && key.starts_with("urn:");
            diff(&path, extension, &as_map(b), &as_map(a), out);
        } else {
            out.push(json!({"path": path, "before": b.cloned().unwrap_or(Value::Null), "after": a.cloned().unwrap_or(Value::Null)}));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn a_deactivation_is_its_own_type_whatever_else_changes() {
        let on = json!({"userName": "a", "active": true});
        let off = json!({"userName": "b", "active": false});
        assert_eq!(EventType::updated(Kind::User, &on, &off), EventType::UserDeactivated);
        assert_eq!(EventType::updated(Kind::User, &off, &on), EventType::UserReactivated);
        assert_eq!(EventType::updated(Kind::User, &json!({"userName": "a"}), &off), EventType::UserDeactivated);
        assert_eq!(EventType::updated(Kind::User, &on, &json!({"userName": "c"})), EventType::UserUpdated);
        assert_eq!(EventType::updated(Kind::User, &off, &json!({"userName": "c"})), EventType::UserReactivated);
        assert_eq!(EventType::updated(Kind::Group, &on, &off), EventType::GroupUpdated);
    }

    #[test]
    fn changes_name_each_attribute_path_with_before_and_after() {
        let before = json!({
            "schemas": ["a"], "id": "1", "userName": "bjensen", "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@x", "type": "work"}],
            ENTERPRISE: {"employeeNumber": "7", "manager": {"value": "m1"}},
        });
        let after = json!({
            "schemas": ["b"], "id": "1", "userName": "bjensen", "active": false,
            "name": {"givenName": "Babs", "familyName": "Jensen"},
            "emails": [{"value": "b@y", "type": "work"}],
            ENTERPRISE: {"employeeNumber": "8", "manager": {"value": "m2"}},
            "title": "Boss",
        });
        let got = changes(Some(&before), Some(&after));
        assert_eq!(
            got,
            vec![
                json!({"path": "active", "before": true, "after": false}),
                json!({"path": "emails", "before": [{"value": "b@x", "type": "work"}], "after": [{"value": "b@y", "type": "work"}]}),
                json!({"path": "name.givenName", "before": "Barbara", "after": "Babs"}),
                json!({"path": "title", "before": null, "after": "Boss"}),
                json!({"path": format!("{ENTERPRISE}:employeeNumber"), "before": "7", "after": "8"}),
                json!({"path": format!("{ENTERPRISE}:manager.value"), "before": "m1", "after": "m2"}),
            ]
        );
    }

    #[test]
    fn a_creation_lists_every_value_and_nothing_changed_lists_nothing() {
        let doc = json!({"userName": "a", "name": {"givenName": "A"}, "members": [{"value": "x"}]});
        assert_eq!(
            changes(None, Some(&doc)),
            vec![
                json!({"path": "name.givenName", "before": null, "after": "A"}),
                json!({"path": "userName", "before": null, "after": "a"}),
            ]
        );
        assert_eq!(changes(Some(&doc), None).len(), 2);
        assert!(changes(Some(&doc), Some(&doc)).is_empty());
        assert!(changes(Some(&json!({"title": null})), Some(&json!({}))).is_empty(), "null is no value");
    }
}
