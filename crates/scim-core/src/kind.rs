//! The two resource types scimd serves (RFC 7643 §4): `User` and `Group`.

/// A resource type of RFC 7643 §4 that scimd stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `User` (RFC 7643 §4.1), served at `/Users`.
    User,
    /// `Group` (RFC 7643 §4.2), served at `/Groups`.
    Group,
}

impl Kind {
    /// The resource type name, e.g. `User` (`meta.resourceType`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    /// The endpoint segment, e.g. `Users`.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}
