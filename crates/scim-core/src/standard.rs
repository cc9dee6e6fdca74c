//! The standard schemas of RFC 7643: User (§4.1), Group (§4.2), Enterprise User (§4.3), and the
//! common attributes every resource carries (§3.1). The characteristics follow §8.7.1.

use crate::schema::{AttrType as T, Attribute as A, Mutability as M, Returned as R, Schema, Uniqueness as U};

/// `urn:ietf:params:scim:schemas:core:2.0:User`
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// `urn:ietf:params:scim:schemas:core:2.0:Group`
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn s(name: &str, d: &str) -> A {
    A::new(name, T::String).desc(d)
}

/// `value`, `display`, `type`, `primary`: the sub-attributes of a typical multi-valued attribute.
fn plural(value: A, types: &[&str], what: &str) -> Vec<A> {
    vec![
        value,
        s("display", &format!("A human-readable name for the {what}, primarily used for display purposes.")),
        s("type", &format!("A label indicating the {what}'s function.")).canonical(types),
        A::new("primary", T::Boolean)
            .desc(&format!("Whether this is the primary {what}; 'true' appears no more than once.")),
    ]
}

/// `id`, `externalId` and `meta` (RFC 7643 §3.1): defined for every resource type.
pub fn common_attributes() -> Vec<A> {
    vec![
        s("id", "A unique identifier for the resource, assigned by the service provider.")
            .case_exact()
            .read_only()
            .returned(R::Always)
            .unique(U::Server),
        s("externalId", "An identifier for the resource as defined by the provisioning client.").case_exact(),
        A::new("meta", T::Complex).read_only().desc("Resource metadata maintained by the service provider.").subs(
            vec![
                s("resourceType", "The name of the resource type of the resource.").case_exact().read_only(),
                A::new("created", T::DateTime).read_only().desc("When the resource was added."),
                A::new("lastModified", T::DateTime).read_only().desc("When the resource was last changed."),
                A::new("location", T::Reference)
                    .refs(&["uri"])
                    .case_exact()
                    .read_only()
                    .desc("The URI of the resource."),
                s("version", "The version (ETag) of the resource.").case_exact().read_only(),
            ],
        ),
    ]
}

/// The User schema (RFC 7643 §4.1, §8.7.1).
pub fn user() -> Schema {
    let name = A::new("name", T::Complex).desc("The components of the user's real name.").subs(vec![
        s("formatted", "The full name, formatted for display."),
        s("familyName", "The family name, or last name."),
        s("givenName", "The given name, or first name."),
        s("middleName", "The middle name(s)."),
        s("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
        s("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
    ]);
    let address = A::new("addresses", T::Complex).multi().desc("Physical mailing addresses.").subs(vec![
        s("formatted", "The full mailing address, formatted for display."),
        s("streetAddress", "The full street address component."),
        s("locality", "The city or locality component."),
        s("region", "The state or region component."),
        s("postalCode", "The zip code or postal code component."),
        s("country", "The country name component (ISO 3166-1 alpha-2)."),
        s("type", "A label indicating the address's function.").canonical(&["work", "home", "other"]),
        A::new("primary", T::Boolean).desc("Whether this is the primary address."),
    ]);
    let group_ref =
        A::new("groups", T::Complex).multi().read_only().desc("The groups the user belongs to.").subs(vec![
            s("value", "The identifier of the group.").read_only(),
            A::new("$ref", T::Reference).refs(&["User", "Group"]).read_only().desc("The URI of the group."),
            s("display", "The group's displayName.").read_only(),
            s("type", "'direct' or 'indirect' membership.").canonical(&["direct", "indirect"]).read_only(),
        ]);
    Schema {
        id: USER.into(),
        name: "User".into(),
        description: "User Account".into(),
        attributes: vec![
            s("userName", "A unique identifier for the user, used to authenticate. Required.")
                .required()
                .unique(U::Server),
            name,
            s("displayName", "The name of the user, suitable for display."),
            s("nickName", "The casual way to address the user."),
            A::new("profileUrl", T::Reference).refs(&["external"]).desc("A URI of the user's online profile."),
            s("title", "The user's title, such as 'Vice President'."),
            s("userType", "The relationship between the organization and the user, e.g. 'Employee'."),
            s("preferredLanguage", "The user's preferred written or spoken language, e.g. 'en-US'."),
            s("locale", "The user's default location for localizing items, e.g. 'en-US'."),
            s("timezone", "The user's time zone in IANA form, e.g. 'America/Los_Angeles'."),
            A::new("active", T::Boolean).desc("The user's administrative status."),
            s("password", "The user's cleartext password; never returned.").mutability(M::WriteOnly).returned(R::Never),
            A::new("emails", T::Complex).multi().desc("Email addresses for the user.").subs(plural(
                s("value", "The email address, canonicalized per RFC 5321."),
                &["work", "home", "other"],
                "email address",
            )),
            A::new("phoneNumbers", T::Complex).multi().desc("Phone numbers for the user.").subs(plural(
                s("value", "The phone number, as sent."),
                &["work", "home", "mobile", "fax", "pager", "other"],
                "phone number",
            )),
            A::new("ims", T::Complex).multi().desc("Instant messaging addresses for the user.").subs(plural(
                s("value", "The instant messaging address."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
                "instant messaging address",
            )),
            A::new("photos", T::Complex).multi().desc("URLs of photos of the user.").subs(plural(
                A::new("value", T::Reference).refs(&["external"]).desc("The URL of a photo of the user."),
                &["photo", "thumbnail"],
                "photo",
            )),
            address,
            group_ref,
            A::new("entitlements", T::Complex).multi().desc("Entitlements the user has.").subs(plural(
                s("value", "The value of an entitlement."),
                &[],
                "entitlement",
            )),
            A::new("roles", T::Complex).multi().desc("Roles the user has.").subs(plural(
                s("value", "The value of a role."),
                &[],
                "role",
            )),
            A::new("x509Certificates", T::Complex).multi().desc("Certificates issued to the user.").subs(plural(
                A::new("value", T::Binary).desc("The value of an X.509 certificate (DER, base64)."),
                &[],
                "certificate",
            )),
        ],
    }
}

/// The Group schema (RFC 7643 §4.2, §8.7.1), with the `display` member sub-attribute that
/// clients read back.
pub fn group() -> Schema {
    Schema {
        id: GROUP.into(),
        name: "Group".into(),
        description: "Group".into(),
        attributes: vec![
            s("displayName", "A human-readable name for the group. Required, unique per tenant.")
                .required()
                .unique(U::Server),
            A::new("members", T::Complex).multi().desc("A list of members of the group.").subs(vec![
                s("value", "The identifier of the member.").case_exact().mutability(M::Immutable),
                A::new("$ref", T::Reference)
                    .refs(&["User", "Group"])
                    .case_exact()
                    .mutability(M::Immutable)
                    .desc("The URI of the member resource."),
                s("display", "The member's display name: as the client sent it, else the member's displayName.")
                    .mutability(M::Immutable),
                s("type", "The type of the member: 'User' or 'Group'.")
                    .canonical(&["User", "Group"])
                    .mutability(M::Immutable),
            ]),
        ],
    }
}

/// The Enterprise User extension (RFC 7643 §4.3).
pub fn enterprise_user() -> Schema {
    Schema {
        id: ENTERPRISE_USER.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        attributes: vec![
            s("employeeNumber", "A numeric or alphanumeric identifier assigned by the organization."),
            s("costCenter", "The name of a cost center."),
            s("organization", "The name of an organization."),
            s("division", "The name of a division."),
            s("department", "The name of a department."),
            A::new("manager", T::Complex).desc("The user's manager.").subs(vec![
                s("value", "The id of the manager's User resource."),
                A::new("$ref", T::Reference).refs(&["User"]).desc("The URI of the manager's User resource."),
                s("displayName", "The manager's displayName.").read_only(),
            ]),
        ],
    }
}
