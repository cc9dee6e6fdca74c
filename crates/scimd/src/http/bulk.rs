//! `/Bulk` (RFC 7644 §3.7): many operations in one request, each run through the same
//! operation functions as its single endpoint.
//!
//! - `bulkId:X` references (in a `path`, or as the string of a `value` key in `data`: members,
//!   manager, PATCH values) are replaced by the id the POST with `bulkId` X created; the same text
//!   anywhere else is data. A bulkId used by two operations is 400 `invalidSyntax`. An operation waits until the operations it references have run,
//!   so references to later operations work; a reference to an unknown or failed bulkId, or a
//!   cycle, fails that operation with 409 `invalidValue`.
//! - `failOnErrors` N stops processing after N errors; the response lists what ran.
//! - `maxOperations` and `maxPayloadSize` (the body limit) are advertised in
//!   `/ServiceProviderConfig`; more operations than that is 413.

use std::collections::{HashMap, HashSet};

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use scim_core::{Kind, ScimError};
use scim_store::Load;
use serde_json::{Map, Value, json};

use super::auth::Ctx;
use super::body::JsonBody;
use super::params::IfMatch;
use super::render::scim_json;
use super::state::SharedState;
use super::{ApiError, ops, render};

/// The schema URI of a bulk response.
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const BULK_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation as sent.
#[derive(Debug)]
struct Op {
    method_text: String,
    method: Option<Method>,
    bulk_id: Option<String>,
    path: String,
    version: Option<String>,
    data: Option<Value>,
}

fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn parse_op(v: &Value) -> Op {
    let empty = Map::new();
    let obj = v.as_object().unwrap_or(&empty);
    let text = |k: &str| get_ci(obj, k).and_then(Value::as_str).map(str::to_owned);
    let method_text = text("method").unwrap_or_default();
    let method = match method_text.to_ascii_uppercase().as_str() {
        "POST" => Some(Method::Post),
        "PUT" => Some(Method::Put),
        "PATCH" => Some(Method::Patch),
        "DELETE" => Some(Method::Delete),
        _ => None,
    };
    Op {
        method_text,
        method,
        bulk_id: text("bulkId"),
        path: text("path").unwrap_or_default(),
        version: text("version"),
        data: get_ci(obj, "data").cloned(),
    }
}

/// The `bulkId:X` references in a value, in order: only in reference positions, i.e. the string
/// of a `value` key (`members[].value`, `manager.value`, a PATCH operation's `value`, RFC 7644
/// §3.7.2). A `bulkId:` text anywhere else (a displayName, a title) is data, left as it is.
fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(xs) => xs.iter().for_each(|x| refs_in(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k.eq_ignore_ascii_case("value") => {
                        if let Some(id) = s.strip_prefix(BULK_PREFIX) {
                            out.push(id.to_owned());
                        }
                    }
                    _ => refs_in(x, out),
                }
            }
        }
        _ => {}
    }
}

/// Replaces the references [`refs_in`] finds by the ids their operations created.
fn substitute(v: &mut Value, resolved: &HashMap<String, (Kind, String)>) {
    match v {
        Value::Array(xs) => xs.iter_mut().for_each(|x| substitute(x, resolved)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k.eq_ignore_ascii_case("value") => {
                        if let Some((_, id)) = s.strip_prefix(BULK_PREFIX).and_then(|b| resolved.get(b)) {
                            *s = id.clone();
                        }
                    }
                    _ => substitute(x, resolved),
                }
            }
        }
        _ => {}
    }
}

/// `/Users`, `/Groups/{id}`, with or without the `/scim/v2` prefix.
fn parse_path(path: &str) -> Option<(Kind, Option<&str>)> {
    let p = path.trim();
    let p = p.strip_prefix("/scim/v2").unwrap_or(p);
    let p = p.trim_start_matches('/');
    let (endpoint, id) = match p.split_once('/') {
        Some((e, id)) => (e, Some(id)),
        None => (p, None),
    };
    let kind = if endpoint.eq_ignore_ascii_case("Users") {
        Kind::User
    } else if endpoint.eq_ignore_ascii_case("Groups") {
        Kind::Group
    } else {
        return None;
    };
    match id {
        Some(id) if id.is_empty() || id.contains('/') => None,
        other => Some((kind, other)),
    }
}

fn conflict(detail: String) -> ApiError {
    ApiError::BulkReference(detail)
}

/// What one operation produced, for the response.
struct Done {
    status: u16,
    location: Option<String>,
    version: Option<i64>,
    created: Option<(Kind, String)>,
}

async fn run_op(
    sh: &SharedState,
    ctx: &Ctx,
    op: &Op,
    resolved: &HashMap<String, (Kind, String)>,
) -> Result<Done, ApiError> {
    let Some(method) = op.method else {
        return Err(ApiError::syntax(format!("method must be POST, PUT, PATCH or DELETE, not \"{}\"", op.method_text)));
    };
    let (kind, id) = parse_path(&op.path).ok_or_else(|| {
        ApiError::Scim(ScimError::invalid_value(format!(
            "path must be /Users, /Groups, /Users/{{id}} or /Groups/{{id}}, not \"{}\"",
            op.path
        )))
    })?;
    let id = id.map(|i| match i.strip_prefix(BULK_PREFIX).and_then(|b| resolved.get(b)) {
        Some((_, real)) => real.clone(),
        None => i.to_owned(),
    });
    let mut data = op.data.clone();
    if let Some(d) = data.as_mut() {
        substitute(d, resolved);
    }
    // The events of this operation name it, not the /Bulk request.
    let mut ctx = ctx.clone();
    ctx.actor.method = method.as_str().to_owned();
    ctx.actor.path = match &id {
        Some(id) => format!("/{}/{id}", kind.endpoint()),
        None => format!("/{}", kind.endpoint()),
    };
    let ctx = &ctx;
    let data_or_err = |data: Option<Value>| {
        data.filter(Value::is_object).ok_or_else(|| {
            ApiError::syntax(format!("a bulk {} operation needs \"data\", a JSON object", method.as_str()))
        })
    };
    let if_match = op.version.as_deref().and_then(IfMatch::from_version);
    let need_id = |id: Option<String>| {
        id.ok_or_else(|| {
            ApiError::Scim(ScimError::invalid_value(format!(
                "a bulk {} operation needs a path with the resource id, e.g. /{}/{{id}}",
                method.as_str(),
                kind.endpoint()
            )))
        })
    };
    let done = |status: u16, rec: &scim_store::Record| Done {
        status,
        location: Some(render::location(&ctx.base, kind, &rec.id)),
        version: Some(rec.version),
        created: None,
    };
    match method {
        Method::Post => {
            if id.is_some() {
                return Err(ApiError::Scim(ScimError::invalid_value(format!(
                    "a bulk POST goes to /{} without an id",
                    kind.endpoint()
                ))));
            }
            let rec = ops::create(sh, ctx, kind, data_or_err(data)?).await?;
            let mut d = done(201, &rec);
            d.created = Some((kind, rec.id.clone()));
            Ok(d)
        }
        Method::Put => {
            let id = need_id(id)?;
            let rec = ops::replace(sh, ctx, kind, &id, data_or_err(data)?, if_match.as_ref(), Load::default()).await?;
            Ok(done(200, &rec))
        }
        Method::Patch => {
            let id = need_id(id)?;
            let rec = ops::patch(sh, ctx, kind, &id, &data_or_err(data)?, if_match.as_ref(), Load::default()).await?;
            Ok(done(200, &rec))
        }
        Method::Delete => {
            let id = need_id(id)?;
            ops::delete(sh, ctx, kind, &id, if_match.as_ref()).await?;
            Ok(Done {
                status: 204,
                location: Some(render::location(&ctx.base, kind, &id)),
                version: None,
                created: None,
            })
        }
    }
}

fn result_entry(op: &Op, outcome: Result<Done, ApiError>) -> (Value, bool) {
    let mut e = Map::new();
    e.insert("method".into(), json!(op.method.map_or(op.method_text.clone(), |m| m.as_str().to_owned())));
    if let Some(b) = &op.bulk_id {
        e.insert("bulkId".into(), json!(b));
    }
    let failed = outcome.is_err();
    match outcome {
        Ok(d) => {
            if let Some(l) = d.location {
                e.insert("location".into(), json!(l));
            }
            if let Some(v) = d.version {
                e.insert("version".into(), json!(render::etag(v)));
            }
            e.insert("status".into(), json!(d.status.to_string()));
        }
        Err(err) => {
            let scim = err.to_scim();
            e.insert("status".into(), json!(scim.status.to_string()));
            e.insert("response".into(), scim.to_json());
        }
    }
    (Value::Object(e), failed)
}

/// `POST /Bulk`.
pub(crate) async fn handle(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let Some(obj) = body.0.as_object() else {
        return Err(ApiError::syntax("a bulk request must be a JSON object (BulkRequest)"));
    };
    let list = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::syntax("a bulk request needs \"Operations\", a list of operations"))?;
    let max = sh.settings().max_bulk_operations;
    if list.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "the bulk request has {} operations; the limit is {max} (bulk.maxOperations)",
            list.len()
        )));
    }
    let fail_on_errors = match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => Some(n as usize),
            Some(_) => None,
            None => {
                return Err(ApiError::Scim(ScimError::invalid_value(format!(
                    "failOnErrors must be a positive integer, not {v}"
                ))));
            }
        },
    };
    let ops: Vec<Op> = list.iter().map(parse_op).collect();
    let mut bulk_ids = HashSet::new();
    if let Some(dup) = ops.iter().filter_map(|o| o.bulk_id.as_deref()).find(|b| !bulk_ids.insert(*b)) {
        return Err(ApiError::syntax(format!(
            "bulkId \"{dup}\" is used by more than one operation; each bulkId must be unique in the request"
        )));
    }
    let refs: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            let mut r = Vec::new();
            if let Some(d) = &op.data {
                refs_in(d, &mut r);
            }
            if let Some(id) = op.path.rsplit('/').next().and_then(|last| last.strip_prefix(BULK_PREFIX)) {
                r.push(id.to_owned());
            }
            r
        })
        .collect();
    let defined: HashSet<&str> =
        ops.iter().filter(|o| o.method == Some(Method::Post)).filter_map(|o| o.bulk_id.as_deref()).collect();

    let mut resolved: HashMap<String, (Kind, String)> = HashMap::new();
    let mut failed_ids: HashSet<String> = HashSet::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    let mut errors = 0usize;
    while !pending.is_empty() {
        if fail_on_errors.is_some_and(|f| errors >= f) {
            break;
        }
        let ready = |i: usize| {
            refs[i].iter().all(|r| resolved.contains_key(r) || failed_ids.contains(r) || !defined.contains(r.as_str()))
        };
        let Some(pos) = pending.iter().position(|&i| ready(i)) else {
            for i in pending.drain(..) {
                let err = conflict("the operation's bulkId references form a cycle that cannot be resolved".into());
                let (entry, _) = result_entry(&ops[i], Err(err));
                results[i] = Some(entry);
            }
            break;
        };
        let i = pending.remove(pos);
        let op = &ops[i];
        let unresolved = refs[i].iter().find(|r| !resolved.contains_key(*r));
        let outcome = match unresolved {
            Some(r) if failed_ids.contains(r) => {
                Err(conflict(format!("bulkId \"{r}\" refers to an operation that failed")))
            }
            Some(r) => Err(conflict(format!("bulkId \"{r}\" is not the bulkId of any POST in this request"))),
            None => run_op(&sh, &ctx, op, &resolved).await,
        };
        match (&outcome, &op.bulk_id) {
            (Ok(Done { created: Some((kind, id)), .. }), Some(b)) => {
                resolved.insert(b.clone(), (*kind, id.clone()));
            }
            (Err(_), Some(b)) if op.method == Some(Method::Post) => {
                failed_ids.insert(b.clone());
            }
            _ => {}
        }
        let (entry, failed) = result_entry(op, outcome);
        if failed {
            errors += 1;
        }
        results[i] = Some(entry);
    }
    let body = json!({
        "schemas": [BULK_RESPONSE],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    });
    Ok(scim_json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/Users"), Some((Kind::User, None)));
        assert_eq!(parse_path("/Groups/abc"), Some((Kind::Group, Some("abc"))));
        assert_eq!(parse_path("/scim/v2/Groups/bulkId:q"), Some((Kind::Group, Some("bulkId:q"))));
        assert_eq!(parse_path("Users/x"), Some((Kind::User, Some("x"))));
        assert_eq!(parse_path("/Things"), None);
        assert_eq!(parse_path("/Users/a/b"), None);
        assert_eq!(parse_path("/Users/"), None);
    }

    #[test]
    fn references_are_found_and_substituted() {
        let mut v = json!({"members": [{"value": "bulkId:a"}, {"value": "bulkId:b"}, {"value": "plain"}]});
        let mut r = Vec::new();
        refs_in(&v, &mut r);
        assert_eq!(r, vec!["a".to_owned(), "b".to_owned()]);
        let resolved = HashMap::from([("a".to_owned(), (Kind::User, "id-a".to_owned()))]);
        substitute(&mut v, &resolved);
        assert_eq!(v, json!({"members": [{"value": "id-a"}, {"value": "bulkId:b"}, {"value": "plain"}]}));
    }
}
