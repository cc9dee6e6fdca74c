//! Secret tokens: how they are made, stored and checked.
//!
//! A token reads `scimd_<id>_<secret>`: `id` is 12 lower-case letters and digits, public, and
//! names the token in listings and logs; `secret` is 32 random bytes in base64url. The store
//! keeps only SHA-256 of the secret, and a presented token is checked by comparing digests in
//! constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt as _;
use scim_store::{ApiKey, Invite, Session, Token};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The prefix every scimd token starts with (so secret scanners can find leaked ones).
pub const PREFIX: &str = "scimd_";
const ID_LEN: usize = 12;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A newly issued token: the record to store and the secret to show once.
#[derive(Debug, Clone)]
pub struct Issued {
    /// What the store keeps.
    pub record: Token,
    /// The whole token, to hand to the customer's admin. Never stored.
    pub secret: String,
}

/// The prefix of vendor API keys (`scimdk_<id>_<secret>`), distinct from tenant tokens so that
/// neither can be mistaken for the other.
pub const API_KEY_PREFIX: &str = "scimdk_";

/// A fresh public id and secret part.
fn fresh() -> (String, String) {
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN).map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char).collect();
    let mut raw = [0u8; 32];
    rng.fill(&mut raw[..]);
    (id, URL_SAFE_NO_PAD.encode(raw))
}

/// A new webhook id, `wh_<12 of a-z0-9>`.
pub fn webhook_id() -> String {
    format!("wh_{}", fresh().0)
}

/// A new webhook signing secret as Standard Webhooks spell it: `whsec_` and 32 random bytes in
/// standard base64 (the HMAC key is those bytes).
pub fn webhook_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill(&mut raw[..]);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Makes a new token for `tenant`.
pub fn issue(tenant: i64, label: Option<String>, expires: Option<OffsetDateTime>, now: OffsetDateTime) -> Issued {
    let (id, secret_part) = fresh();
    let record = Token {
        id: id.clone(),
        tenant,
        digest: digest(&secret_part),
        label,
        created: now,
        expires,
        revoked: None,
        last_used: None,
    };
    Issued { record, secret: format!("{PREFIX}{id}_{secret_part}") }
}

/// Makes a new vendor API key: the record to store and the key to show once.
pub fn issue_api_key(label: Option<String>, now: OffsetDateTime) -> (ApiKey, String) {
    let (id, secret_part) = fresh();
    let record = ApiKey { id: id.clone(), digest: digest(&secret_part), label, created: now, revoked: None };
    (record, format!("{API_KEY_PREFIX}{id}_{secret_part}"))
}

/// The prefix of customer setup links' secrets (`scimdi_<id>_<secret>`, the last part of
/// `/setup/<secret>`).
pub const INVITE_PREFIX: &str = "scimdi_";

/// The prefix of console session cookies (`scimdc_<id>_<secret>`).
pub const SESSION_PREFIX: &str = "scimdc_";

/// Makes a new setup link for `tenant`, working until `expires`: the record to store and the
/// secret of its URL, to show once.
pub fn issue_invite(tenant: i64, expires: OffsetDateTime, now: OffsetDateTime) -> (Invite, String) {
    let (id, secret_part) = fresh();
    let record = Invite {
        id: id.clone(),
        tenant,
        digest: digest(&secret_part),
        created: now,
        expires,
        revoked: None,
        redeemed: None,
        token: None,
    };
    (record, format!("{INVITE_PREFIX}{id}_{secret_part}"))
}

/// Splits a setup link's secret into its public id and its secret part.
pub fn split_invite(presented: &str) -> Option<(&str, &str)> {
    split_with(INVITE_PREFIX, presented)
}

/// Whether `secret` is the secret of the setup link `record` (whatever its state).
pub fn verify_invite(record: &Invite, secret: &str) -> bool {
    same_digest(&digest(secret), &record.digest)
}

/// Makes a new console session signed in with `api_key`, ending at `expires`: the record to
/// store and the cookie's value.
pub fn issue_session(api_key: &str, expires: OffsetDateTime, now: OffsetDateTime) -> (Session, String) {
    let (id, secret_part) = fresh();
    let (_, csrf) = fresh();
    let record = Session {
        id: id.clone(),
        digest: digest(&secret_part),
        api_key: api_key.to_owned(),
        csrf,
        created: now,
        expires,
    };
    (record, format!("{SESSION_PREFIX}{id}_{secret_part}"))
}

/// Splits a session cookie into its public id and its secret part.
pub fn split_session(presented: &str) -> Option<(&str, &str)> {
    split_with(SESSION_PREFIX, presented)
}

/// Whether `secret` is the secret of the session `record` and it has not ended at `now`.
pub fn verify_session(record: &Session, secret: &str, now: OffsetDateTime) -> bool {
    same_digest(&digest(secret), &record.digest) && now < record.expires
}

/// Whether two texts are equal, compared in constant time (CSRF tokens).
pub fn same_text(a: &str, b: &str) -> bool {
    same_digest(a.as_bytes(), b.as_bytes())
}

/// Splits a presented API key into its public id and its secret part.
pub fn split_api_key(presented: &str) -> Option<(&str, &str)> {
    split_with(API_KEY_PREFIX, presented)
}

/// Whether `secret` is the secret of the API key `record`, and the key is not revoked.
pub fn verify_api_key(record: &ApiKey, secret: &str) -> bool {
    same_digest(&digest(secret), &record.digest) && record.revoked.is_none()
}

/// Compares two digests in constant time.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The label prefix of OAuth access tokens: `oauth2:<client id>`, where the client id is the
/// public id of the token they were issued for (their parent).
pub const OAUTH_LABEL_PREFIX: &str = "oauth2:";

/// The parent token id of an OAuth access token (from its label), if `record` is one.
pub fn parent_of(record: &Token) -> Option<&str> {
    record.label.as_deref()?.strip_prefix(OAUTH_LABEL_PREFIX)
}

/// Whether `s` has the shape of a token's public id (12 of `a-z0-9`).
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| ID_ALPHABET.contains(&b))
}

/// Splits a presented token into its public id and its secret part.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    split_with(PREFIX, presented)
}

fn split_with<'p>(prefix: &str, presented: &'p str) -> Option<(&'p str, &'p str)> {
    let rest = presented.strip_prefix(prefix)?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    (id.bytes().all(|b| ID_ALPHABET.contains(&b)) && !secret.is_empty()).then_some((id, secret))
}

/// SHA-256 of a secret part.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `secret` is the secret of `record` and the token is still valid at `now`.
pub fn verify(record: &Token, secret: &str, now: OffsetDateTime) -> bool {
    verify_secret(record, secret) && record.revoked.is_none() && record.expires.is_none_or(|e| now < e)
}

/// Whether `secret` is the token's secret, whatever the token's state.
pub fn verify_secret(record: &Token, secret: &str) -> bool {
    same_digest(&digest(secret), &record.digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issued_tokens_verify_and_wrong_ones_do_not() {
        let now = OffsetDateTime::now_utc();
        let t = issue(7, Some("entra".into()), None, now);
        let (id, secret) = split(&t.secret).unwrap();
        assert_eq!(id, t.record.id);
        assert!(verify(&t.record, secret, now));
        assert!(!verify(&t.record, "nope", now));
        let other = issue(7, None, None, now);
        assert_ne!(other.secret, t.secret);
        assert!(split("Bearer x").is_none());
        assert!(split("scimd_short").is_none());
    }

    #[test]
    fn expired_and_revoked_tokens_do_not_verify() {
        let now = OffsetDateTime::now_utc();
        let mut t = issue(1, None, Some(now), now);
        let (_, secret) = split(&t.secret).unwrap();
        let secret = secret.to_owned();
        assert!(!verify(&t.record, &secret, now), "expiry is exclusive");
        t.record.expires = None;
        t.record.revoked = Some(now);
        assert!(!verify(&t.record, &secret, now));
    }
}
