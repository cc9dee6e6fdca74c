//! What the server-rendered pages share (the support console and the customer's setup page):
//! the page frame, the style sheet, and the HTML response with its security headers.
//!
//! Pages are built with `maud` (escaped by construction, checked at compile time); no
//! JavaScript build step. The little script there is (copy buttons, the setup page's live
//! status) is inline, and every page works without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The style sheet: system fonts, high contrast (WCAG AA), a visible focus ring.
pub const CSS: &str = r#"
:root { color-scheme: light; --fg: #111; --muted: #444; --bg: #fff; --line: #bbb; --accent: #0b4f9c; --bad: #a0001c; --warn: #7a4a00; --ok: #0a6b2b; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header.top { background: #0d2240; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.5rem; align-items: center; flex-wrap: wrap; }
header.top a { color: #fff; }
header.top .muted { color: #d6deea; }
header.top nav a { margin-right: 1rem; }
main { padding: 1rem 1.2rem 3rem; max-width: 100rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 1.8rem 0 .6rem; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus, summary:focus { outline: 3px solid #f5a623; outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { font-weight: 600; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Consolas, monospace; font-size: .92em; }
pre { background: #f3f3f3; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
label { display: block; font-weight: 600; margin: .6rem 0 .2rem; }
input[type=text], input[type=password], input[type=search], select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #666; border-radius: 3px; min-width: 16rem; max-width: 100%; }
button { font: inherit; padding: .35rem .9rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 3px; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
form.inline { display: inline; }
.status { display: inline-block; padding: 0 .5rem; border-radius: 3px; font-weight: 600; border: 1px solid currentColor; }
.status-healthy, .ok { color: var(--ok); }
.status-warning, .status-stale { color: var(--warn); }
.status-failing, .bad { color: var(--bad); }
.status-never_connected, .muted { color: var(--muted); }
.notice { border-left: 4px solid var(--accent); background: #eef4fb; padding: .6rem .9rem; margin: 1rem 0; }
.notice.bad { border-color: var(--bad); background: #fbeef0; }
.secret { font-size: 1.05rem; background: #fffbe6; border: 2px dashed var(--warn); padding: .6rem; word-break: break-all; }
.pager a { margin-right: 1rem; }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; color: #000; padding: .4rem; z-index: 10; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
fieldset { border: 1px solid var(--line); margin: 1rem 0; padding: .4rem 1rem .8rem; }
legend { font-weight: 600; padding: 0 .3rem; }
.checks label, label.inline-label { display: inline; font-weight: normal; margin: 0; }
.check-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: .15rem 1rem; word-break: break-word; }
input.short { min-width: 0; width: 5rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0 1.5rem; }
details > summary { cursor: pointer; color: var(--accent); }
"#;

/// The copy buttons' script: a button with `data-copy="ID"` copies the text of element `ID`.
pub const COPY_SCRIPT: &str = r#"
document.addEventListener('click', function (e) {
  var b = e.target.closest('button[data-copy]');
  if (!b) return;
  var el = document.getElementById(b.getAttribute('data-copy'));
  if (!el || !navigator.clipboard) return;
  navigator.clipboard.writeText(el.textContent.trim()).then(function () { b.textContent = 'Copied'; });
});
"#;

/// A whole page: `title`, an optional header (navigation), and the main content.
pub fn page(title: &str, top: Option<Markup>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(top) = top { header.top { (top) } }
                main #main { (main) }
                script { (PreEscaped(COPY_SCRIPT)) }
            }
        }
    }
}

/// A copy button for the text of the element `target`.
pub fn copy_button(target: &str, what: &str) -> Markup {
    html! { button.secondary type="button" data-copy=(target) aria-label={ "Copy " (what) } { "Copy" } }
}

/// An HTML response: never cached (pages show secrets and live state), never framed, no
/// resources from elsewhere, no referrer to other sites. (`same-origin`, not `no-referrer`:
/// with `no-referrer` browsers send `Origin: null` on the page's own form posts, which the
/// console's origin check must refuse.)
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp
}

/// An HTML response whose own URL is a secret (the customer's setup page): as [`respond`], and
/// no referrer at all. Its one form needs no origin check (the secret in its URL is the
/// credential).
pub fn respond_secret_url(status: StatusCode, markup: Markup) -> Response {
    let mut resp = respond(status, markup);
    resp.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Whether a response is an HTML page (the SCIM listener leaves those as they are).
pub fn is_html(resp: &Response) -> bool {
    resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}
