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
    Create, Delete, Get, Keyset, Load, Members, Page, Patch, PatchFn, Patched, Query, Record, Seek, SortOrder,
    StoreError, Tenant, Update,
};
use serde_json::Value;

use super::auth::Ctx;
use super::cursor::{At, Binding};
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

/// The tenant policies in use, each parsed once: by their list of paths (tenants mostly share
/// one, so the map stays small; it is cleared should it ever hold [`Policies::MOST`]).
#[derive(Debug, Default)]
pub(crate) struct Policies(std::sync::Mutex<std::collections::HashMap<Vec<String>, Arc<RequiredPaths>>>);

impl Policies {
    const MOST: usize = 1_000;

    /// The tenant's mandatory attributes of users, parsed; `None` when it has none.
    fn of(&self, def: &ResourceDef<'_>, tenant: &Tenant) -> Result<Option<Arc<RequiredPaths>>, StoreError> {
        if tenant.required.is_empty() || def.rt.name != Kind::User.name() {
            return Ok(None);
        }
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = map.get(&tenant.required) {
            return Ok(Some(Arc::clone(p)));
        }
        let parsed = Arc::new(RequiredPaths::parse(def, &tenant.required).map_err(|e| {
            StoreError::Backend(format!("tenant \"{}\" has an invalid list of required attributes: {e}", tenant.name))
        })?);
        if map.len() >= Self::MOST {
            map.clear();
        }
        map.insert(tenant.required.clone(), Arc::clone(&parsed));
        Ok(Some(parsed))
    }
}

/// Checks the tenant's mandatory attributes (users only).
pub(crate) fn check_policy(sh: &Shared, def: &ResourceDef<'_>, tenant: &Tenant, doc: &Value) -> Result<(), ApiError> {
    let required = sh.policies.of(def, tenant)?;
    policy_violation(def, required.as_deref(), doc).map_err(ApiError::from)
}

/// The tenant policy as a store error, for checks made inside a store transaction.
fn policy_violation(def: &ResourceDef<'_>, required: Option<&RequiredPaths>, doc: &Value) -> Result<(), StoreError> {
    let Some(required) = required else { return Ok(()) };
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
/// `position`, also the change-feed position the pages reflect. Index paging (`startIndex`) by
/// default, RFC 9865 cursor paging when the request has a `cursor`.
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
    let mut views = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let def = sh.def(kind)?;
        if let Some(f) = &filter {
            eval::check(&def, f)?;
        }
        let proj = Projection::new(&def, lp.attributes.as_deref(), lp.excluded.as_deref())?;
        let load = load_for(&def, &proj);
        views.push((kind, def, proj, load));
    }
    let listing = Listing {
        sh,
        ctx,
        filter,
        sort: sort_by.map(|p| (p, lp.sort_order)),
        loads: views.iter().map(|(_, _, _, load)| *load).collect(),
        kinds,
        position,
    };
    let render = |k: usize, rec: &Record| {
        let (_, def, proj, _) = &views[k];
        proj.apply(def, &render::resource(&ctx.base, rec))
    };
    let Some(cursor) = &lp.cursor else {
        let mut skip = lp.start_index.saturating_sub(1);
        let mut remaining = lp.count;
        let mut total = 0u64;
        let mut feed = None;
        let mut resources = Vec::new();
        for k in 0..kinds.len() {
            let page = listing.page(k, None, skip + 1, remaining).await?;
            let n = page.total.unwrap_or(0);
            total = total.saturating_add(n);
            feed = feed.max(page.position);
            skip = skip.saturating_sub(n);
            remaining = remaining.saturating_sub(page.records.len() as u64);
            resources.extend(page.records.iter().map(|rec| render(k, rec)));
        }
        return Ok((render::list_response(total, lp.start_index, resources), feed));
    };
    let keys = sh.cursor_keys().await?;
    let binding =
        Binding::new(ctx.tenant.id, kinds, listing.filter.as_ref(), listing.sort.as_ref().map(|(p, o)| (p, *o)));
    let start = if cursor.trim().is_empty() {
        At { kind: 0, seek: Seek::default() }
    } else {
        keys.open(&binding, cursor, kinds.len())?
    };
    let walked = listing.cursor_pages(start, lp.count).await?;
    let resources = walked.records.iter().map(|(k, rec)| render(*k, rec)).collect();
    let next = walked.next.map(|at| keys.seal(&binding, &at)).transpose()?;
    let prev = walked.prev.map(|at| keys.seal(&binding, &at)).transpose()?;
    Ok((render::cursor_response(walked.total, resources, next, prev), walked.feed))
}

/// One listing (its resource types, filter and order), paged by index or by cursor.
struct Listing<'a> {
    sh: &'a Shared,
    ctx: &'a Ctx,
    kinds: &'a [Kind],
    filter: Option<Filter>,
    sort: Option<(AttrPath, SortOrder)>,
    loads: Vec<Load>,
    position: bool,
}

/// What a cursor page gathered across the listing's resource types.
struct Walked {
    records: Vec<(usize, Record)>,
    total: Option<u64>,
    next: Option<At>,
    prev: Option<At>,
    feed: Option<i64>,
}

impl Listing<'_> {
    /// One store page of the listing's `k`th resource type.
    async fn page(&self, k: usize, seek: Option<Seek>, start_index: u64, count: u64) -> Result<Page, ApiError> {
        let query = Query {
            tenant: self.ctx.tenant.id,
            kind: self.kinds[k],
            filter: self.filter.clone(),
            sort: self.sort.clone(),
            start_index,
            count,
            load: self.loads[k],
            position: self.position,
            seek,
        };
        let _slot = self.sh.queries.acquire(self.ctx.tenant.id).await;
        Ok(self.sh.store().query(query).await?)
    }

    /// A keyset page of `kind` (an empty one, `count` 0, says what lies around `seek`).
    async fn keyset(&self, k: usize, seek: Seek, count: u64) -> Result<(Page, Keyset), ApiError> {
        let page = self.page(k, Some(seek), 1, count).await?;
        let keyset = page.keyset.clone().unwrap_or_default();
        Ok((page, keyset))
    }

    /// The page a cursor asks for, across resource types (a root search: users, then groups):
    /// up to `count` resources from `start` on (or, going backward, up to it), where the
    /// pages before and after it start, and the total when every type's is known.
    async fn cursor_pages(&self, start: At, count: u64) -> Result<Walked, ApiError> {
        let n = self.kinds.len();
        let mut totals: Vec<Option<Option<u64>>> = vec![None; n];
        let mut pieces: Vec<(usize, Vec<Record>)> = Vec::new();
        let (mut next, mut prev, mut feed) = (None, None, None);
        let mut remaining = count;
        let (mut k, mut seek) = (start.kind, start.seek.clone());
        let backward = seek.backward;
        let mut first = true;
        loop {
            let (page, ks) = self.keyset(k, seek.clone(), remaining).await?;
            totals[k] = Some(page.total);
            feed = feed.max(page.position);
            remaining = remaining.saturating_sub(page.records.len() as u64);
            if first {
                first = false;
                // At the very start of a later type (or the very end of an earlier one), the
                // page on the other side is in the nearest type that has resources.
                let beside = if backward { ks.next.clone() } else { ks.prev.clone() };
                let mut other = beside.map(|s| At { kind: k, seek: s });
                if other.is_none() && seek.from.is_none() {
                    let others: Vec<usize> = if backward { (k + 1..n).collect() } else { (0..k).rev().collect() };
                    for j in others {
                        let edge = Seek { from: None, backward: !backward };
                        let (_, around) = self.keyset(j, edge.clone(), 0).await?;
                        let found = if backward { around.next.is_some() } else { around.prev.is_some() };
                        if found {
                            other = Some(At { kind: j, seek: edge });
                            break;
                        }
                    }
                }
                if backward { next = other } else { prev = other }
            }
            pieces.push((k, page.records));
            let onward = if backward { ks.prev } else { ks.next };
            if let Some(s) = onward {
                let at = Some(At { kind: k, seek: s });
                if backward {
                    prev = at
                } else {
                    next = at
                }
                break;
            }
            // This type is done: go on in the next one (or, backward, the previous one).
            let Some(j) = (if backward { k.checked_sub(1) } else { Some(k + 1).filter(|j| *j < n) }) else { break };
            k = j;
            seek = Seek { from: None, backward };
        }
        if backward {
            pieces.reverse();
        }
        for (j, t) in totals.iter_mut().enumerate() {
            if t.is_none() {
                let (page, _) = self.keyset(j, Seek::default(), 0).await?;
                *t = Some(page.total);
            }
        }
        let total = totals.into_iter().try_fold(0u64, |sum, t| t.flatten().map(|t| sum.saturating_add(t)));
        let records = pieces.into_iter().flat_map(|(k, recs)| recs.into_iter().map(move |r| (k, r))).collect();
        Ok(Walked { records, total, next, prev, feed })
    }
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
    check_policy(sh, &def, &ctx.tenant, &ingested.resource)?;
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
    check_policy(sh, &def, &ctx.tenant, &ingested.resource)?;
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
    let required = sh.policies.of(&sh.def(kind)?, &ctx.tenant)?;
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
        policy_violation(&def, required.as_deref(), &outcome.resource)?;
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
