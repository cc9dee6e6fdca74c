//! The resource operations, shared by the single endpoints and `/Bulk`.
//!
//! Each takes what the request parsed, runs the core (ingest, PATCH, tenant policy, filter
//! checks), awaits one owned store request, and returns a [`Record`] (or a list response);
//! rendering is the caller's, statuses are `error.rs`'s.

use std::sync::Arc;

use scim_core::filter::Filter;
use scim_core::patch::{self, PatchRequest};
use scim_core::policy::RequiredPaths;
use scim_core::project::Projection;
use scim_core::resource::{self, UnknownAttributes};
use scim_core::{AttrPath, Kind, ResourceDef, ScimError, eval};
use scim_store::{
    Create, Delete, Get, Load, Members, Patch, PatchFn, Patched, Query, Record, StoreError, Tenant, Update,
};
use serde_json::Value;

use super::auth::Ctx;
use super::params::{IfMatch, ListParams};
use super::state::Shared;
use super::{ApiError, hints, render};

/// What to load besides the document for a response projected by `proj`.
pub(crate) fn load_for(def: &ResourceDef<'_>, proj: &Projection<'_>) -> Load {
    let returns = |name: &str| def.core.attribute(name).is_some_and(|a| proj.returns(def, a));
    let members = def.member_attribute().is_some_and(|m| proj.returns(def, m));
    let groups = def.rt.name == Kind::User.name() && returns("groups");
    Load { members, groups }
}

/// Checks the tenant's mandatory attributes (users only).
pub(crate) fn check_policy(def: &ResourceDef<'_>, tenant: &Tenant, doc: &Value) -> Result<(), ApiError> {
    policy_violation(def, tenant, doc).map_err(ApiError::from)
}

/// The tenant policy as a store error, for checks made inside a store transaction.
fn policy_violation(def: &ResourceDef<'_>, tenant: &Tenant, doc: &Value) -> Result<(), StoreError> {
    if tenant.required.is_empty() || def.rt.name != Kind::User.name() {
        return Ok(());
    }
    let required = RequiredPaths::parse(def, &tenant.required).map_err(|e| {
        StoreError::Backend(format!("tenant \"{}\" has an invalid list of required attributes: {e}", tenant.name))
    })?;
    let missing = required.missing(def, doc);
    if missing.is_empty() {
        return Ok(());
    }
    Err(StoreError::Scim(ScimError::invalid_value(hints::missing_required(&missing))))
}

fn precondition_failed(kind: Kind, id: &str, version: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "{} {id} is at version {}, which If-Match does not name; read it again and retry",
        kind.name(),
        render::etag(version)
    ))
}

/// Lists (or searches) resources of `kinds`, in that order, as one list response; with
/// `position`, also the change-feed position the pages reflect.
pub(crate) async fn list(
    sh: &Shared,
    ctx: &Ctx,
    kinds: &[Kind],
    lp: &ListParams,
    position: bool,
) -> Result<(Value, Option<i64>), ApiError> {
    let filter = match &lp.filter {
        Some(text) => Some(Filter::parse_with(text, &sh.settings().filter)?),
        None => None,
    };
    let sort_by = match &lp.sort_by {
        Some(text) => {
            Some(AttrPath::parse(text).map_err(|e| ScimError::invalid_value(format!("sortBy: {}", e.detail)))?)
        }
        None => None,
    };
    if let Some(path) = &sort_by {
        for &kind in kinds {
            eval::refuse_never_returned(&sh.def(kind)?, path)?;
        }
    }
    let mut skip = lp.start_index.saturating_sub(1);
    let mut remaining = lp.count;
    let mut total = 0u64;
    let mut feed = None;
    let mut resources = Vec::new();
    for &kind in kinds {
        let def = sh.def(kind)?;
        if let Some(f) = &filter {
            eval::check(&def, f)?;
        }
        let proj = Projection::new(&def, lp.attributes.as_deref(), lp.excluded.as_deref())?;
        let query = Query {
            tenant: ctx.tenant.id,
            kind,
            filter: filter.clone(),
            sort: sort_by.clone().map(|p| (p, lp.sort_order)),
            start_index: skip + 1,
            count: remaining,
            load: load_for(&def, &proj),
            position,
        };
        let page = {
            let _slot = sh.queries.acquire(ctx.tenant.id).await;
            sh.store().query(query).await?
        };
        total = total.saturating_add(page.total);
        feed = feed.max(page.position);
        skip = skip.saturating_sub(page.total);
        remaining = remaining.saturating_sub(page.records.len() as u64);
        for rec in &page.records {
            resources.push(proj.apply(&def, &render::resource(&ctx.base, rec)));
        }
    }
    Ok((render::list_response(total, lp.start_index, resources), feed))
}

/// 404 for an id no resource can have (scimd's ids are UUIDs; U+0000 cannot even be stored),
/// before the store is asked.
fn check_id(kind: Kind, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 1024 || id.contains('\0') {
        let shown: String = id.chars().take(64).collect::<String>().replace('\0', "\\0");
        return Err(ApiError::store(StoreError::NotFound, kind, &shown));
    }
    Ok(())
}

/// Reads one resource; 404 if the tenant has none with this id.
pub(crate) async fn get(sh: &Shared, ctx: &Ctx, kind: Kind, id: &str, load: Load) -> Result<Record, ApiError> {
    check_id(kind, id)?;
    let req = Get { tenant: ctx.tenant.id, kind, id: id.to_owned(), load };
    sh.store()
        .get(req)
        .await
        .map_err(|e| ApiError::store(e, kind, id))?
        .ok_or_else(|| ApiError::store(StoreError::NotFound, kind, id))
}

/// The version to pass to the store for an `If-Match`: `None` without one; else the current
/// version, after checking that the header names it (412 otherwise).
async fn if_version(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    if_match: Option<&IfMatch>,
) -> Result<Option<i64>, ApiError> {
    let Some(m) = if_match else { return Ok(None) };
    let cur = get(sh, ctx, kind, id, Load::default()).await?;
    if !m.matches(cur.version) {
        return Err(precondition_failed(kind, id, cur.version));
    }
    Ok(Some(cur.version))
}

/// More JSON values than this in a body make its ingest run on a blocking thread.
const HEAVY_BODY_VALUES: usize = 2_000;

/// Whether `v` holds more than [`HEAVY_BODY_VALUES`] values (counted up to that bound only).
fn is_heavy(v: &Value) -> bool {
    fn count(v: &Value, left: &mut usize) -> bool {
        if *left == 0 {
            return true;
        }
        *left -= 1;
        match v {
            Value::Array(xs) => xs.iter().any(|x| count(x, left)),
            Value::Object(m) => m.values().any(|x| count(x, left)),
            _ => false,
        }
    }
    let mut left = HEAVY_BODY_VALUES;
    count(v, &mut left)
}

/// Checks a POST or PUT body against the resource type: inline for an ordinary body, on a
/// blocking thread for a heavy one, so that no client keeps a runtime worker busy.
async fn ingest(sh: &Shared, kind: Kind, body: Value) -> Result<resource::Ingested, ApiError> {
    if !is_heavy(&body) {
        return Ok(resource::ingest(&sh.def(kind)?, &body, UnknownAttributes::Drop)?);
    }
    let registry = Arc::clone(&sh.app.registry);
    tokio::task::spawn_blocking(move || {
        let def = registry.resource(kind.name()).ok_or(ApiError::Unregistered(kind))?;
        Ok(resource::ingest(&def, &body, UnknownAttributes::Drop)?)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("checking a request body failed: {e}")))?
}

/// POST: creates a resource with a new id. The record carries a group's members and a user's
/// (empty) groups.
pub(crate) async fn create(sh: &Shared, ctx: &Ctx, kind: Kind, body: Value) -> Result<Record, ApiError> {
    let ingested = ingest(sh, kind, body).await?;
    let def = sh.def(kind)?;
    check_policy(&def, &ctx.tenant, &ingested.resource)?;
    let id = uuid::Uuid::new_v4().to_string();
    let req = Create {
        tenant: ctx.tenant.id,
        kind,
        id: id.clone(),
        now: sh.app.clock.now(),
        doc: ingested.resource,
        members: ingested.members.unwrap_or_default(),
        actor: ctx.actor.clone(),
    };
    sh.store().create(req).await.map_err(|e| ApiError::store(e, kind, &id))
}

/// PUT: replaces a resource (RFC 7644 §3.5.1); a group's member list becomes the body's.
pub(crate) async fn replace(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: Value,
    if_match: Option<&IfMatch>,
    load: Load,
) -> Result<Record, ApiError> {
    let ingested = ingest(sh, kind, body).await?;
    let def = sh.def(kind)?;
    check_policy(&def, &ctx.tenant, &ingested.resource)?;
    check_id(kind, id)?;
    let if_version = if_version(sh, ctx, kind, id, if_match).await?;
    let members = match kind {
        Kind::Group => Members::Replace(ingested.members.unwrap_or_default()),
        Kind::User => Members::Unchanged,
    };
    let req = Update {
        tenant: ctx.tenant.id,
        kind,
        id: id.to_owned(),
        if_version,
        now: sh.app.clock.now(),
        doc: ingested.resource,
        members,
        load,
        actor: ctx.actor.clone(),
    };
    sh.store().update(req).await.map_err(|e| ApiError::store(e, kind, id))
}

/// PATCH (RFC 7644 §3.5.2): all operations or none, applied by the core to the current
/// resource under the store's lock on it (so no concurrent writer can get in between, and a
/// client that sent no `If-Match` never sees 412). A PATCH that changes nothing writes nothing,
/// so nothing for the tenant policy to refuse.
pub(crate) async fn patch(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&IfMatch>,
    load: Load,
) -> Result<Record, ApiError> {
    check_id(kind, id)?;
    sh.def(kind)?;
    let req = PatchRequest::parse(body, &sh.settings().patch)?;
    let registry = Arc::clone(&sh.app.registry);
    let tenant = Arc::clone(&ctx.tenant);
    let if_match = if_match.cloned();
    let apply: PatchFn = Arc::new(move |current: &Record| {
        if if_match.as_ref().is_some_and(|m| !m.matches(current.version)) {
            return Err(StoreError::VersionMismatch);
        }
        let def = registry
            .resource(kind.name())
            .ok_or_else(|| StoreError::Backend(format!("resource type {} is not registered", kind.name())))?;
        let outcome = patch::apply(&def, &current.doc, &req)?;
        if !outcome.changed {
            return Ok(None);
        }
        policy_violation(&def, &tenant, &outcome.resource)?;
        Ok(Some(Patched { doc: outcome.resource, delta: outcome.members }))
    });
    let now = sh.app.clock.now();
    let req = Patch { tenant: ctx.tenant.id, kind, id: id.to_owned(), now, apply, load, actor: ctx.actor.clone() };
    sh.store().patch(req).await.map_err(|e| ApiError::store(e, kind, id))
}

/// DELETE: removes a resource (and its memberships).
pub(crate) async fn delete(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    if_match: Option<&IfMatch>,
) -> Result<(), ApiError> {
    check_id(kind, id)?;
    let if_version = if_version(sh, ctx, kind, id, if_match).await?;
    let now = sh.app.clock.now();
    let req = Delete { tenant: ctx.tenant.id, kind, id: id.to_owned(), if_version, now, actor: ctx.actor.clone() };
    sh.store().delete(req).await.map_err(|e| ApiError::store(e, kind, id))
}
