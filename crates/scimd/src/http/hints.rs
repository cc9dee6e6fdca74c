//! What to tell an admin whose provisioning app leaves out a mandatory attribute.
//!
//! Entra ID never sends `null` for an empty source attribute: it leaves the attribute out, so
//! a tenant's mandatory attribute goes missing when the admin has not mapped it (or the source
//! is empty for cloud-only users). The `detail` of the 400 names each missing SCIM path and,
//! where Entra has a typical source attribute for it, the mapping to add. Entra shows that
//! detail in its provisioning log, so it is written for the admin who reads it there.

use scim_core::standard::ENTERPRISE_USER;

/// The Entra ID source attribute (or expression) typically mapped to a SCIM path, if any.
///
/// Paths match case-insensitively, with runs of spaces counted as one, and enterprise
/// attributes match with or without their URN.
pub(crate) fn entra_source(path: &str) -> Option<&'static str> {
    let mut key = path.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let enterprise = ENTERPRISE_USER.to_ascii_lowercase();
    if let Some(rest) = key.strip_prefix(&enterprise).and_then(|r| r.strip_prefix(':')) {
        key = rest.to_owned();
    }
    let source = match key.as_str() {
        "username" => "userPrincipalName",
        "externalid" => "mailNickname",
        "displayname" => "displayName",
        "name.givenname" => "givenName",
        "name.familyname" => "surname",
        "name.formatted" => "Join(\" \", [givenName], [surname])",
        "title" => "jobTitle",
        "preferredlanguage" => "preferredLanguage",
        "usagelocation" => "usageLocation",
        "active" => "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")",
        "emails" | "emails.value" | "emails[type eq \"work\"].value" => "mail",
        "phonenumbers[type eq \"work\"].value" => "telephoneNumber",
        "phonenumbers[type eq \"mobile\"].value" => "mobile",
        "phonenumbers[type eq \"fax\"].value" => "facsimileTelephoneNumber",
        "addresses[type eq \"work\"].streetaddress" => "streetAddress",
        "addresses[type eq \"work\"].locality" => "city",
        "addresses[type eq \"work\"].region" => "state",
        "addresses[type eq \"work\"].postalcode" => "postalCode",
        "addresses[type eq \"work\"].country" => "country",
        "employeenumber" => "employeeId",
        "department" => "department",
        "organization" => "companyName",
        "manager" => "manager",
        _ => return None,
    };
    Some(source)
}

/// The Okta source (a user profile expression) typically mapped to a SCIM path, if any.
pub(crate) fn okta_source(path: &str) -> Option<&'static str> {
    let mut key = path.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let enterprise = ENTERPRISE_USER.to_ascii_lowercase();
    if let Some(rest) = key.strip_prefix(&enterprise).and_then(|r| r.strip_prefix(':')) {
        key = rest.to_owned();
    }
    let source = match key.as_str() {
        "username" => "user.login (Application username format)",
        "displayname" => "user.displayName",
        "name.givenname" => "user.firstName",
        "name.familyname" => "user.lastName",
        "title" => "user.title",
        "preferredlanguage" => "user.preferredLanguage",
        "active" => "managed by Okta (not mapped)",
        "emails" | "emails.value" | "emails[type eq \"work\"].value" => "user.email",
        "phonenumbers[type eq \"work\"].value" => "user.primaryPhone",
        "phonenumbers[type eq \"mobile\"].value" => "user.mobilePhone",
        "employeenumber" => "user.employeeNumber",
        "department" => "user.department",
        "organization" => "user.organization",
        _ => return None,
    };
    Some(source)
}

/// The `detail` of a refused create or change: every missing path, in the policy's order, then
/// the Entra mapping to add for each path that has a typical source, in one sentence.
pub(crate) fn missing_required(missing: &[&str]) -> String {
    let mut detail = format!(
        "required attribute missing: {} — map a source attribute to each in the provisioning app's attribute mappings",
        missing.join(", ")
    );
    let hints: Vec<String> =
        missing.iter().filter_map(|p| entra_source(p).map(|source| format!("{source} -> {p}"))).collect();
    if !hints.is_empty() {
        detail.push_str(" (Entra ID: ");
        detail.push_str(&hints.join(", "));
        detail.push(')');
    }
    detail
}

const MISSING: &str = "required attribute missing: ";

/// The hint the provisioning log shows for a refusal it recognises: for missing mandatory
/// attributes ([`missing_required`]), the Entra mapping to add for each.
pub(crate) fn for_refusal(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix(MISSING)?;
    let paths = rest.split(" — ").next()?;
    let entra = rest.rsplit_once(" (Entra ID: ").and_then(|(_, m)| m.strip_suffix(')'));
    Some(match entra {
        Some(m) => format!("add these attribute mappings in Entra ID (source -> target): {m}"),
        None => format!("map a source attribute to each of: {paths}"),
    })
}

/// The resource type, attribute and value of a uniqueness conflict's detail (as the store words
/// it: `userName "x" is already used by another User of this tenant ...`); `None` for other
/// details and for values shown cut.
pub(crate) fn conflict_value(detail: &str) -> Option<(scim_core::Kind, &'static str, String)> {
    let (attr, rest) = detail.split_once(' ')?;
    let attr = match attr {
        "userName" => "userName",
        "externalId" => "externalId",
        "displayName" => "displayName",
        _ => return None,
    };
    let (quoted, tail) = rest.split_once(" is already used by another ")?;
    let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if value.ends_with("...") {
        return None;
    }
    let kind = if tail.starts_with("User") {
        scim_core::Kind::User
    } else if tail.starts_with("Group") {
        scim_core::Kind::Group
    } else {
        return None;
    };
    Some((kind, attr, value.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_log_recognises_its_own_refusals() {
        let d = missing_required(&["name.givenName", "nickName"]);
        assert_eq!(
            for_refusal(&d).as_deref(),
            Some("add these attribute mappings in Entra ID (source -> target): givenName -> name.givenName")
        );
        assert_eq!(
            for_refusal(&missing_required(&["nickName"])).as_deref(),
            Some("map a source attribute to each of: nickName")
        );
        assert_eq!(for_refusal("something else"), None);
        let c = "userName \"bjensen@example.com\" is already used by another User of this tenant (compared case-insensitively)";
        assert_eq!(conflict_value(c), Some((scim_core::Kind::User, "userName", "bjensen@example.com".to_owned())));
        assert_eq!(conflict_value("externalId \"abc...\" is already used by another User of this tenant"), None);
        assert_eq!(
            conflict_value("displayName \"Sales\" is already used by another Group of this tenant"),
            Some((scim_core::Kind::Group, "displayName", "Sales".to_owned()))
        );
    }

    use super::*;

    #[test]
    fn every_reference_policy_path_has_an_entra_source() {
        for (path, source) in [
            ("userName", "userPrincipalName"),
            ("name.familyName", "surname"),
            ("name.givenName", "givenName"),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "employeeId"),
            ("emails[type eq \"work\"].value", "mail"),
            ("preferredLanguage", "preferredLanguage"),
            ("active", "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")"),
        ] {
            assert_eq!(entra_source(path), Some(source), "{path}");
        }
    }

    #[test]
    fn paths_match_case_insensitively_and_with_loose_spaces() {
        assert_eq!(entra_source("Emails[Type  eq \"Work\"].Value"), Some("mail"));
        assert_eq!(entra_source(" PreferredLanguage "), Some("preferredLanguage"));
        assert_eq!(entra_source("employeeNumber"), Some("employeeId"));
        assert_eq!(entra_source("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager"), Some("manager"));
        assert_eq!(entra_source("nickName"), None);
        assert_eq!(entra_source("emails[type eq \"home\"].value"), None);
    }

    #[test]
    fn detail_names_each_path_and_the_mapping_to_add() {
        assert_eq!(
            missing_required(&["emails[type eq \"work\"].value", "preferredLanguage"]),
            "required attribute missing: emails[type eq \"work\"].value, preferredLanguage — map a source \
             attribute to each in the provisioning app's attribute mappings (Entra ID: mail -> \
             emails[type eq \"work\"].value, preferredLanguage -> preferredLanguage)"
        );
        assert_eq!(
            missing_required(&["nickName", "name.givenName"]),
            "required attribute missing: nickName, name.givenName — map a source attribute to each in the \
             provisioning app's attribute mappings (Entra ID: givenName -> name.givenName)"
        );
        assert_eq!(
            missing_required(&["nickName"]),
            "required attribute missing: nickName — map a source attribute to each in the provisioning app's \
             attribute mappings"
        );
    }
}
