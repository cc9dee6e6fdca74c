//! The support console: server-rendered HTML on the admin listener, under `/console`.
//!
//! Sign-in is with a vendor API key (`scimd api-key create`); the console then keeps a session
//! in the store (so every replica knows it) and a cookie `scimd_console` that is `HttpOnly`,
//! `SameSite=Strict`, scoped to `/console`, and ends with the session (`[console] session`,
//! default 8 hours) or when the key is revoked. Every form carries the session's CSRF token
//! ([`CsrfForm`] checks it, in constant time, before a handler sees the form), and a POST whose
//! `Origin` names another site is refused. The `Host` must be one of `admin_hosts`, as for the
//! API (DNS rebinding).
//!
//! Pages are in [`pages`]; the frame and style are `crate::ui`'s.

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use scim_store::Session;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::admin::AdminState;
use crate::tokens;
use crate::ui;

pub(crate) mod activity;
pub(crate) mod pages;
pub(crate) mod resources;
pub(crate) mod tenant;

/// The session cookie's name.
pub const COOKIE: &str = "scimd_console";

/// The signed-in session of a console request.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub session: Session,
    /// The label of the API key it was signed in with.
    pub key_label: Option<String>,
}

/// The console's routes (merged into the admin router).
pub(crate) fn router(state: AdminState) -> Router<AdminState> {
    let signed_in = pages::routes()
        .route("/console/logout", post(logout))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_session));
    Router::new()
        .route("/console/login", get(login_page).post(login))
        .merge(signed_in)
        .route_layer(axum::middleware::from_fn_with_state(state, check_host))
}

/// The `Host` must be one of the configured admin names.
async fn check_host(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(crate::admin::host_name);
    if !host.is_some_and(|h| s.hosts.contains(&h)) {
        let m = html! { h1 { "Wrong host name" } p { "Open the console at one of the admin listener's names (admin_hosts)." } };
        return ui::respond(StatusCode::MISDIRECTED_REQUEST, ui::page("Wrong host name", None, m));
    }
    next.run(req).await
}

/// The value of the session cookie, if the request carries one.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The session a cookie names, if it is valid now and its API key still works.
async fn session_of(s: &AdminState, headers: &HeaderMap) -> Option<Signed> {
    let value = cookie_value(headers)?;
    let (id, secret) = tokens::split_session(&value)?;
    let session = s.store.session(id.to_owned()).await.ok()??;
    if !tokens::verify_session(&session, secret, s.clock.now()) {
        return None;
    }
    let key = s.store.api_key(session.api_key.clone()).await.ok()??;
    if key.revoked.is_some() {
        return None;
    }
    Some(Signed { session, key_label: key.label })
}

/// In front of every signed-in page: a valid session (else to the sign-in page), and for a
/// POST an `Origin` of this site, if the browser sent one.
async fn require_session(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    let Some(signed) = session_of(&s, req.headers()).await else {
        if req.method() == axum::http::Method::GET {
            let next = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            let to = format!(
                "/console/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&to).into_response();
        }
        return forbidden("Your session has ended. Sign in again.");
    };
    if req.method() == axum::http::Method::POST && !same_origin(req.headers()) {
        return forbidden("This form was sent from another site.");
    }
    req.extensions_mut().insert(signed);
    next.run(req).await
}

/// Whether a POST's `Origin` (when present) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let bare = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).unwrap_or("");
    !host.is_empty() && bare.eq_ignore_ascii_case(host)
}

/// 403 page.
pub(crate) fn forbidden(why: &str) -> Response {
    let m = html! { h1 { "Not allowed" } p { (why) } p { a href="/console/login" { "Sign in" } } };
    ui::respond(StatusCode::FORBIDDEN, ui::page("Not allowed", None, m))
}

/// A form of a signed-in page, after its CSRF token was checked against the session's.
pub(crate) struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<AdminState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AdminState) -> Result<Self, Response> {
        let signed = req.extensions().get::<Signed>().cloned().ok_or_else(|| forbidden("Sign in first."))?;
        let bytes = axum::body::Bytes::from_request(req, s).await.map_err(IntoResponse::into_response)?;
        let field: CsrfField =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| forbidden("The form cannot be read."))?;
        if field.csrf.is_empty() || !tokens::same_text(&field.csrf, &signed.session.csrf) {
            return Err(forbidden(
                "The form's security token does not match your session. Reload the page and try again.",
            ));
        }
        let form: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| pages::message(StatusCode::BAD_REQUEST, "The form cannot be read", &e.to_string()))?;
        Ok(CsrfForm(form))
    }
}

/// The hidden CSRF field of every form.
pub(crate) fn csrf_field(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a console path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/console".to_owned(),
    }
}

fn login_markup(next: &str, error: Option<&str>) -> Markup {
    let main = html! {
        h1 { "Sign in to the scimd console" }
        @if let Some(e) = error { p.notice.bad role="alert" #login-error { (e) } }
        form method="post" action="/console/login" {
            label for="api_key" { "API key" }
            input #api_key type="password" name="api_key" autocomplete="off" required autofocus;
            input type="hidden" name="next" value=(next);
            p { button #sign-in type="submit" { "Sign in" } }
        }
        p.muted { "Create a key on the server with " code { "scimd api-key create --label NAME" } "." }
    };
    ui::page("Sign in · scimd console", None, main)
}

async fn login_page(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    ui::respond(StatusCode::OK, login_markup(&safe_next(q.next.as_deref()), None))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(State(s): State<AdminState>, headers: HeaderMap, axum::Form(f): axum::Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    if !same_origin(&headers) {
        return forbidden("This form was sent from another site.");
    }
    let refused = || {
        ui::respond(StatusCode::UNAUTHORIZED, login_markup(&next, Some("This API key is not valid or was revoked.")))
    };
    let Some((id, secret)) = tokens::split_api_key(f.api_key.trim()) else { return refused() };
    let key = match s.store.api_key(id.to_owned()).await {
        Ok(Some(k)) if tokens::verify_api_key(&k, secret) => k,
        Ok(_) => return refused(),
        Err(e) => {
            tracing::error!(error = %e, "console: sign-in failed");
            return pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "The database does not answer.",
            );
        }
    };
    let now = s.clock.now();
    let expires = now.checked_add(s.console_session).unwrap_or(now);
    let (session, value) = tokens::issue_session(&key.id, expires, now);
    if let Err(e) = s.store.create_session(session).await {
        tracing::error!(error = %e, "console: could not store a session");
        return pages::message(StatusCode::SERVICE_UNAVAILABLE, "Please try again", "The database does not answer.");
    }
    tracing::info!(key = %key.id, "console: signed in");
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let c = cookie::Cookie::build((COOKIE, value))
        .path("/console")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(s.console_session.whole_seconds()))
        .build();
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(
    State(s): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    CsrfForm(_): CsrfForm<CsrfField>,
) -> Response {
    if let Err(e) = s.store.delete_session(signed.session.id.clone()).await {
        tracing::warn!(error = %e, "console: could not end a session");
    }
    let c = cookie::Cookie::build((COOKIE, ""))
        .path("/console")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut resp = Redirect::to("/console/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
