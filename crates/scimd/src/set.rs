//! Events as Security Event Tokens in the SCIM events profile (RFC 9967, on RFC 8417), for
//! webhooks of format `set` (pushed as RFC 8935 says: `application/secevent+jwt`).
//!
//! | scimd event | SET event URIs (in one token: they arise from the same change) |
//! |---|---|
//! | `user.created`, `group.created` | `prov:create:full` with `data` (the resource) |
//! | `user.updated`, `group.updated` by PUT | `prov:put:full` with `data` (the resource) |
//! | `user.updated`, `group.updated` otherwise | `prov:patch:full` with `data`, a PatchOp of the change |
//! | `user.deactivated` / `user.reactivated` | the above, and `prov:deactivate` / `prov:activate` |
//! | `group.members_added` / `_removed` | `prov:patch:full`: a PatchOp adding / removing the members |
//! | `user.deleted`, `group.deleted` | `prov:delete` |
//!
//! Each token has `jti` (the event id), `iat` (the commit time), `iss` (scimd's public URL),
//! `aud` (the receiver's URL, or the webhook's id for a polled one), `txn` (the request id: one request's tokens share it), and
//! `sub_id` in the `scim` format (`uri` relative to the SCIM base, `id`, `externalId`). Tenant
//! events have no SET form and are not sent to `set` webhooks. Tokens are signed with HS256,
//! keyed with the webhook's secret (the base64-decoded part of `whsec_...`).

use base64::Engine as _;
use scim_store::{Event, Webhook};
use serde_json::{Map, Value, json};

const PREFIX: &str = "urn:ietf:params:scim:event:prov:";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The event URI `urn:ietf:params:scim:event:prov:<what>`.
fn uri(what: &str) -> String {
    format!("{PREFIX}{what}")
}

/// A PatchOp that makes the change described by `changes` (`[{path, before, after}]`).
fn patch_of(changes: &Value) -> Value {
    let ops: Vec<Value> = changes
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| match &c["after"] {
                    Value::Null => json!({"op": "remove", "path": c["path"]}),
                    v => json!({"op": "replace", "path": c["path"], "value": v}),
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The claims of the token for an event of tenant `tenant`; `None` for an event with no SET
/// form (tenant events).
pub fn claims(w: &Webhook, e: &Event, issuer: &str) -> Option<Value> {
    let body: Value = serde_json::from_str(&e.body).ok()?;
    let resource = &body["resource"];
    let endpoint = match resource["type"].as_str()? {
        "User" => "Users",
        "Group" => "Groups",
        _ => return None,
    };
    let id = resource["id"].as_str()?;
    let data = &body["data"];
    let version = data["meta"]["version"].clone();
    let full = |what: &str| (uri(what), json!({"data": data, "version": version}));
    let mut events = Map::new();
    let mut put = |(k, v): (String, Value)| {
        events.insert(k, v);
    };
    match e.kind.as_str() {
        "user.created" | "group.created" => put(full("create:full")),
        "user.deleted" | "group.deleted" => put((uri("delete"), json!({}))),
        "group.members_added" | "group.members_removed" => {
            let op = if e.kind == "group.members_added" { "add" } else { "remove" };
            let ids = body["members"].as_array().cloned().unwrap_or_default();
            let value: Vec<Value> = ids.iter().map(|m| json!({"value": m})).collect();
            let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": value}]});
            put((uri("patch:full"), json!({"data": patch, "version": version})));
        }
        "user.updated" | "group.updated" | "user.deactivated" | "user.reactivated" => {
            if body["actor"]["method"] == "PUT" {
                put(full("put:full"));
            } else {
                put((uri("patch:full"), json!({"data": patch_of(&body["changes"]), "version": version})));
            }
            match e.kind.as_str() {
                "user.deactivated" => put((uri("deactivate"), json!({}))),
                "user.reactivated" => put((uri("activate"), json!({}))),
                _ => {}
            }
        }
        _ => return None,
    }
    let mut sub_id = json!({"format": "scim", "uri": format!("/{endpoint}/{id}"), "id": id});
    if let Some(x) = resource["externalId"].as_str() {
        sub_id["externalId"] = json!(x);
    }
    let txn = body["actor"]["request_id"].as_str().unwrap_or(&e.id).to_owned();
    Some(json!({
        "jti": e.id,
        "iat": e.at.unix_timestamp(),
        "iss": issuer,
        // A polled webhook has no URL: its audience is the webhook itself.
        "aud": if w.url.is_empty() { &w.id } else { &w.url },
        "txn": txn,
        "sub_id": sub_id,
        "events": events,
    }))
}

/// The signed token (compact JWS, HS256, `typ: secevent+jwt`) for an event; `None` for an
/// event with no SET form, or a secret that is not base64.
pub fn token(w: &Webhook, _tenant: &str, e: &Event, issuer: &str) -> Option<String> {
    let claims = claims(w, e, issuer)?;
    let key = base64::engine::general_purpose::STANDARD.decode(w.secret.strip_prefix("whsec_")?).ok()?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("secevent+jwt".to_owned());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&key)).ok()
}
