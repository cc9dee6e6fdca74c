//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//! Each document carries an absolute `meta.location`; the lists are list responses.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use scim_core::ScimError;
use serde_json::{Value, json};

use super::auth::Ctx;
use super::render::scim_json;
use super::state::SharedState;
use super::{ApiError, render};

/// The schema URI of the service provider configuration.
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// `GET /ServiceProviderConfig`: what this server supports, with its limits (and RFC 9865's
/// `pagination`: index paging is the default, cursors are offered too).
pub(crate) async fn service_provider_config(State(sh): State<SharedState>, Extension(ctx): Extension<Ctx>) -> Response {
    let s = sh.settings();
    let body = json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": s.max_bulk_operations, "maxPayloadSize": s.max_body_bytes},
        "filter": {"supported": true, "maxResults": s.max_page_size},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        // RFC 9865 §4. Cursors hold no state and do not expire: no cursorTimeout.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": s.default_page_size.min(s.max_page_size),
            "maxPageSize": s.max_page_size,
        },
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The tenant's secret token, sent as \"Authorization: Bearer <token>\"",
            "specUri": "https://datatracker.ietf.org/doc/html/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", ctx.base),
        },
    });
    scim_json(StatusCode::OK, &body)
}

fn list(docs: Vec<Value>) -> Response {
    let n = docs.len() as u64;
    scim_json(StatusCode::OK, &render::list_response(n, 1, docs))
}

fn resource_type_docs(sh: &SharedState, ctx: &Ctx) -> Vec<(String, Value)> {
    sh.app
        .registry
        .resource_types()
        .iter()
        .map(|rt| (rt.id.clone(), rt.to_json(Some(&format!("{}/ResourceTypes/{}", ctx.base, rt.id)))))
        .collect()
}

fn schema_docs(sh: &SharedState, ctx: &Ctx) -> Vec<(String, Value)> {
    sh.app
        .registry
        .schemas()
        .iter()
        .map(|s| (s.id.clone(), sh.app.registry.schema_json(s, Some(&format!("{}/Schemas/{}", ctx.base, s.id)))))
        .collect()
}

/// `GET /ResourceTypes`.
pub(crate) async fn resource_types(State(sh): State<SharedState>, Extension(ctx): Extension<Ctx>) -> Response {
    list(resource_type_docs(&sh, &ctx).into_iter().map(|(_, d)| d).collect())
}

/// `GET /ResourceTypes/{id}` (id case-insensitive).
pub(crate) async fn resource_type(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    resource_type_docs(&sh, &ctx)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&id))
        .map(|(_, d)| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| ApiError::Scim(ScimError::not_found(format!("no resource type \"{id}\"; see /ResourceTypes"))))
}

/// `GET /Schemas`.
pub(crate) async fn schemas(State(sh): State<SharedState>, Extension(ctx): Extension<Ctx>) -> Response {
    list(schema_docs(&sh, &ctx).into_iter().map(|(_, d)| d).collect())
}

/// `GET /Schemas/{id}` (the schema URN, case-insensitive).
pub(crate) async fn schema(
    State(sh): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    schema_docs(&sh, &ctx)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&id))
        .map(|(_, d)| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| ApiError::Scim(ScimError::not_found(format!("no schema \"{id}\"; see /Schemas"))))
}
