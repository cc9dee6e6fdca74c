//! RFC 9865 cursors: opaque, authenticated, bound to their query.
//!
//! A cursor says where a keyset page starts: which resource type of the listing (a root
//! `/.search` lists users, then groups), the direction, and the store's [`Position`] (the sort
//! key and row key of the resource the previous page ended at). It is encrypted and
//! authenticated like a synthetic-IV scheme built on HMAC-SHA256 with the database's cursor
//! key (`Store::secret`, created once per database, so every replica accepts every other's
//! cursors):
//!
//! - `tag` = the first 16 bytes of HMAC(k_mac, binding || payload), where `binding` is a digest
//!   of the tenant, the resource types listed, the filter and the sort;
//! - the payload is XORed with HMAC(k_enc, tag || counter) blocks;
//! - the cursor is `base64url(tag || encrypted payload)`, without padding (RFC 3986
//!   unreserved characters only).
//!
//! So a cursor cannot be read (it holds row keys and sort values) nor forged, and one given
//! for another query or another tenant, or changed in any bit, fails its tag: `invalidCursor`,
//! with the same message whatever the cause. Cursors hold no state on the server and no
//! time: they do not expire (the ServiceProviderConfig gives no `cursorTimeout`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use scim_core::{Filter, Kind, ScimError};
use scim_store::{Position, Seek};
use sha2::{Digest, Sha256};

use super::ApiError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The payload format (the first byte).
const VERSION: u8 = 1;
/// Bytes of the tag.
const TAG: usize = 16;
/// The longest cursor accepted, in characters (the longest one given is far shorter).
const MAX_CURSOR: usize = 4096;

/// The keys cursors are sealed with, derived from the database's cursor secret.
pub(crate) struct CursorKeys {
    mac: [u8; 32],
    enc: [u8; 32],
}

impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKeys")
    }
}

fn hmac_of(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], ApiError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|e| ApiError::Internal(format!("cursor key: {e}")))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

impl CursorKeys {
    /// The keys of a secret (any bytes; the database's is 32 random bytes in hex).
    pub(crate) fn derive(secret: &[u8]) -> Result<Self, ApiError> {
        Ok(CursorKeys { mac: hmac_of(secret, &[b"scimd cursor mac"])?, enc: hmac_of(secret, &[b"scimd cursor enc"])? })
    }

    fn keystream_xor(&self, tag: &[u8], data: &mut [u8]) -> Result<(), ApiError> {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let block = hmac_of(&self.enc, &[tag, &u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes()])?;
            for (b, k) in chunk.iter_mut().zip(block) {
                *b ^= k;
            }
        }
        Ok(())
    }

    /// The cursor of `at` for the query `binding` describes.
    pub(crate) fn seal(&self, binding: &Binding, at: &At) -> Result<String, ApiError> {
        let mut payload = vec![VERSION, u8::from(at.seek.backward), u8::try_from(at.kind).unwrap_or(u8::MAX)];
        if let Some(p) = &at.seek.from {
            payload.extend(p.encode());
        }
        let tag = hmac_of(&self.mac, &[&binding.0, &payload])?;
        let tag = &tag[..TAG];
        self.keystream_xor(tag, &mut payload)?;
        let mut out = tag.to_vec();
        out.extend(payload);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Where a cursor given for the query `binding` describes starts; `invalidCursor` for
    /// anything else.
    pub(crate) fn open(&self, binding: &Binding, cursor: &str, kinds: usize) -> Result<At, ApiError> {
        let invalid = || {
            ApiError::Scim(ScimError::invalid_cursor(
                "the cursor is not one this server gave for this query (the same filter, sortBy and \
                 sortOrder, on the same endpoint); start again with an empty cursor",
            ))
        };
        if cursor.len() > MAX_CURSOR {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
        if raw.len() < TAG + 3 {
            return Err(invalid());
        }
        let (tag, sealed) = raw.split_at(TAG);
        let mut payload = sealed.to_vec();
        self.keystream_xor(tag, &mut payload)?;
        let mut mac =
            HmacSha256::new_from_slice(&self.mac).map_err(|e| ApiError::Internal(format!("cursor key: {e}")))?;
        mac.update(&binding.0);
        mac.update(&payload);
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        let [version, dir, kind, rest @ ..] = payload.as_slice() else { return Err(invalid()) };
        if *version != VERSION || *dir > 1 || usize::from(*kind) >= kinds {
            return Err(invalid());
        }
        let from = if rest.is_empty() { None } else { Some(Position::decode(rest).ok_or_else(invalid)?) };
        Ok(At { kind: usize::from(*kind), seek: Seek { from, backward: *dir == 1 } })
    }
}

/// Where a cursor starts: the resource type (an index into the listing's types) and the seek
/// within it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At {
    pub kind: usize,
    pub seek: Seek,
}

/// A digest of what a cursor is bound to: tenant, resource types, filter, sort.
pub(crate) struct Binding([u8; 32]);

impl Binding {
    /// The binding of a listing.
    pub(crate) fn new(
        tenant: i64,
        kinds: &[Kind],
        filter: Option<&Filter>,
        sort: Option<(&scim_core::AttrPath, scim_store::SortOrder)>,
    ) -> Self {
        let mut h = Sha256::new();
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        part(b"scimd cursor binding 1");
        part(&tenant.to_be_bytes());
        for k in kinds {
            part(k.name().as_bytes());
        }
        part(filter.map(ToString::to_string).unwrap_or_default().as_bytes());
        match sort {
            None => part(b""),
            Some((path, order)) => {
                part(path.to_string().to_lowercase().as_bytes());
                part(if order == scim_store::SortOrder::Descending { b"d" } else { b"a" });
            }
        }
        Binding(h.finalize().into())
    }
}

/// 32 random bytes in hex: a new cursor secret, stored unless the database has one.
pub(crate) fn new_secret() -> String {
    use rand::RngExt as _;
    let mut raw = [0u8; 32];
    rand::rng().fill(&mut raw[..]);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys() -> CursorKeys {
        CursorKeys::derive(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_cursor_opens_only_with_its_binding_and_keys_and_intact() {
        let k = keys();
        let b = Binding::new(1, &[Kind::User], None, None);
        let at = At { kind: 0, seek: Seek { from: None, backward: true } };
        let c = k.seal(&b, &at).unwrap();
        assert!(c.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_'), "{c}");
        assert_eq!(k.open(&b, &c, 1).unwrap(), at);
        assert!(k.open(&Binding::new(2, &[Kind::User], None, None), &c, 1).is_err(), "another tenant");
        assert!(k.open(&Binding::new(1, &[Kind::Group], None, None), &c, 1).is_err(), "another endpoint");
        let other = CursorKeys::derive(b"another secret").unwrap();
        assert!(other.open(&b, &c, 1).is_err(), "another database");
        // Every single changed character is refused.
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(bytes).unwrap();
            if t != c {
                assert!(k.open(&b, &t, 1).is_err(), "{t}");
            }
        }
        for junk in ["", "x", "!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &"A".repeat(5000)] {
            assert!(k.open(&b, junk, 1).is_err(), "{junk}");
        }
    }
}
