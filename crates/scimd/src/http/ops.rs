//! The resource operations, shared by the single endpoints and `/Bulk`.
//!
//! Each takes what the request parsed, runs the core (ingest, PATCH, tenant policy, filter
//! checks), calls the store on a blocking thread, and returns a [`Record`] (or a list
//! response); rendering and status codes are the caller's.

use scim_core::filter::Filter;
use scim_core::patch::{self, PatchRequest};
use scim_core::policy::RequiredPaths;
use scim_core::project::Projection;
use scim_core::resource::{self, UnknownAttributes};
use scim_core::{AttrPath, ResourceDef, ScimError, eval};
use scim_store::{Kind, Load, Members, Query, Record, StoreError, Tenant};
use serde_json::Value;
use time::OffsetDateTime;

use super::auth::Ctx;
use super::params::{IfMatch, ListParams};
use super::{ApiError, Shared, hints, render};

/// How often a PATCH is retried when another writer changed the resource in between.
const PATCH_ATTEMPTS: usize = 5;

/// What to load besides the document for a response projected by `proj`.
pub(crate) fn load_for(def: &ResourceDef<'_>, proj: &Projection<'_>) -> Load {
    let returns = |name: &str| def.core.attribute(name).is_some_and(|a| proj.returns(def, a));
    let members = def.member_attribute().is_some_and(|m| proj.returns(def, m));
    let groups = def.rt.name == Kind::User.name() && returns("groups");
    Load { members, groups }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Checks the tenant's mandatory attributes (users only).
pub(crate) fn check_policy(def: &ResourceDef<'_>, tenant: &Tenant, doc: &Value) -> Result<(), ApiError> {
    if tenant.required.is_empty() || def.rt.name != Kind::User.name() {
        return Ok(());
    }
    let required = RequiredPaths::parse(def, &tenant.required).map_err(|e| {
        ApiError::Internal(format!("tenant \"{}\" has an invalid list of required attributes: {e}", tenant.name))
    })?;
    let missing = required.missing(def, doc);
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::Scim(ScimError::invalid_value(hints::missing_required(&missing))))
}

fn precondition_failed(kind: Kind, id: &str, version: i64) -> ApiError {
    ApiError::Scim(ScimError::status(
        412,
        format!(
            "{} {id} is at version {}, which If-Match does not name; read it again and retry",
            kind.name(),
            render::etag(version)
        ),
    ))
}

/// Lists (or searches) resources of `kinds`, in that order, as one list response.
pub(crate) async fn list(sh: &Shared, ctx: &Ctx, kinds: &[Kind], lp: &ListParams) -> Result<Value, ApiError> {
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
    let mut skip = lp.start_index.saturating_sub(1);
    let mut remaining = lp.count;
    let mut total = 0u64;
    let mut resources = Vec::new();
    for &kind in kinds {
        let def = sh.def(kind)?;
        if let Some(f) = &filter {
            eval::check(&def, f)?;
        }
        let proj = Projection::new(&def, lp.attributes.as_deref(), lp.excluded.as_deref())?;
        let load = load_for(&def, &proj);
        let (tenant, filter, sort, order) = (ctx.tenant.id, filter.clone(), sort_by.clone(), lp.sort_order);
        let (start_index, count) = (skip + 1, remaining);
        let page = sh
            .run(move |s| {
                let q = Query {
                    filter: filter.as_ref(),
                    sort: sort.as_ref().map(|p| (p, order)),
                    start_index,
                    count,
                    load,
                };
                s.query(tenant, kind, &q)
            })
            .await
            .map_err(ApiError::from)?;
        total = total.saturating_add(page.total);
        skip = skip.saturating_sub(page.total);
        remaining = remaining.saturating_sub(page.records.len() as u64);
        for rec in &page.records {
            resources.push(proj.apply(&def, &render::resource(&ctx.base, rec)));
        }
    }
    Ok(render::list_response(total, lp.start_index, resources))
}

/// Reads one resource; 404 if the tenant has none with this id.
pub(crate) async fn get(sh: &Shared, ctx: &Ctx, kind: Kind, id: &str, load: Load) -> Result<Record, ApiError> {
    let (tenant, key) = (ctx.tenant.id, id.to_owned());
    sh.run_point(move |s| s.get(tenant, kind, &key, load))
        .await
        .map_err(|e| ApiError::store(e, kind, id))?
        .ok_or_else(|| ApiError::store(StoreError::NotFound, kind, id))
}

/// Fills in members / groups a response needs when the store's answer lacks them.
async fn ensure_loaded(sh: &Shared, ctx: &Ctx, mut rec: Record, load: Load) -> Result<Record, ApiError> {
    let needs_members = load.members && rec.kind == Kind::Group && rec.members.is_none();
    let needs_groups = load.groups && rec.kind == Kind::User && rec.groups.is_none();
    if needs_members || needs_groups {
        let fresh = get(sh, ctx, rec.kind, &rec.id, load).await?;
        if needs_members {
            rec.members = fresh.members;
        }
        if needs_groups {
            rec.groups = fresh.groups;
        }
    }
    Ok(rec)
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

/// POST: creates a resource with a new id.
pub(crate) async fn create(sh: &Shared, ctx: &Ctx, kind: Kind, body: Value, load: Load) -> Result<Record, ApiError> {
    let def = sh.def(kind)?;
    let ingested = resource::ingest(&def, &body, UnknownAttributes::Drop)?;
    check_policy(&def, &ctx.tenant, &ingested.resource)?;
    let id = uuid::Uuid::new_v4().to_string();
    let (tenant, key, doc, members) =
        (ctx.tenant.id, id.clone(), ingested.resource, ingested.members.unwrap_or_default());
    let mut rec = sh
        .run(move |s| s.create(tenant, kind, &key, now(), &doc, &members))
        .await
        .map_err(|e| ApiError::store(e, kind, &id))?;
    if kind == Kind::User && rec.groups.is_none() {
        rec.groups = Some(Vec::new()); // a new user belongs to no group yet
    }
    ensure_loaded(sh, ctx, rec, load).await
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
    let def = sh.def(kind)?;
    let ingested = resource::ingest(&def, &body, UnknownAttributes::Drop)?;
    check_policy(&def, &ctx.tenant, &ingested.resource)?;
    let version = if_version(sh, ctx, kind, id, if_match).await?;
    let (tenant, key, doc, members) = (ctx.tenant.id, id.to_owned(), ingested.resource, ingested.members);
    let rec = sh
        .run(move |s| {
            let m = match kind {
                Kind::Group => Members::Replace(members.as_deref().unwrap_or(&[])),
                Kind::User => Members::Unchanged,
            };
            s.update(tenant, kind, &key, version, now(), &doc, m, load)
        })
        .await
        .map_err(|e| ApiError::store(e, kind, id))?;
    ensure_loaded(sh, ctx, rec, load).await
}

/// PATCH (RFC 7644 §3.5.2): all operations or none; retried when a concurrent writer got in
/// between the read and the write, unless the client's own `If-Match` no longer holds.
pub(crate) async fn patch(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&IfMatch>,
    load: Load,
) -> Result<Record, ApiError> {
    let def = sh.def(kind)?;
    let req = PatchRequest::parse(body, &sh.settings().patch)?;
    let mut last_version = 0;
    for _ in 0..PATCH_ATTEMPTS {
        let cur = get(sh, ctx, kind, id, load).await?;
        if if_match.is_some_and(|m| !m.matches(cur.version)) {
            return Err(precondition_failed(kind, id, cur.version));
        }
        let outcome = patch::apply(&def, &cur.doc, &req)?;
        if !outcome.changed {
            return Ok(cur); // nothing to write, so nothing for the tenant policy to refuse
        }
        check_policy(&def, &ctx.tenant, &outcome.resource)?;
        let (tenant, key, version) = (ctx.tenant.id, id.to_owned(), cur.version);
        if outcome.resource == cur.doc && if_match.is_none() {
            // Only members change: applied row by row, so concurrent member PATCHes of one
            // group never conflict (no version check, no retry).
            let delta = outcome.members;
            return match sh.run(move |s| s.update_members(tenant, kind, &key, now(), &delta, load)).await {
                Ok(rec) => ensure_loaded(sh, ctx, rec, load).await,
                Err(e) => Err(ApiError::store(e, kind, id)),
            };
        }
        let result = sh
            .run(move |s| {
                s.update(
                    tenant,
                    kind,
                    &key,
                    Some(version),
                    now(),
                    &outcome.resource,
                    Members::Delta(&outcome.members),
                    load,
                )
            })
            .await;
        match result {
            Ok(rec) => return ensure_loaded(sh, ctx, rec, load).await,
            Err(StoreError::VersionMismatch) => {
                last_version = cur.version;
                continue;
            }
            Err(e) => return Err(ApiError::store(e, kind, id)),
        }
    }
    tracing::warn!(kind = kind.name(), id, "PATCH gave up: the resource kept changing under it");
    Err(ApiError::Scim(ScimError::status(
        412,
        format!(
            "{} {id} kept changing while this PATCH was applied (last seen at {}); retry",
            kind.name(),
            render::etag(last_version)
        ),
    )))
}

/// DELETE: removes a resource (and its memberships).
pub(crate) async fn delete(
    sh: &Shared,
    ctx: &Ctx,
    kind: Kind,
    id: &str,
    if_match: Option<&IfMatch>,
) -> Result<(), ApiError> {
    let version = if_version(sh, ctx, kind, id, if_match).await?;
    let (tenant, key) = (ctx.tenant.id, id.to_owned());
    sh.run(move |s| s.delete(tenant, kind, &key, version, now())).await.map_err(|e| ApiError::store(e, kind, id))
}
