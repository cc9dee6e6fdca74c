//! The lenient SCIM listener (raw quotes and spaces in request targets) must frame requests
//! exactly as the HTTP parser does: the same byte stream gives the same number of responses on
//! the SCIM listener as on the plain admin listener.

use super::common::*;

/// How many responses a byte stream gets from the SCIM listener and from the plain admin
/// listener. `BODY_ROUTE` stands for a route that reads its body on each (`/oauth/token` on the
/// SCIM listener, `/admin/tenants` on the admin one), so that keep-alive goes on after it.
async fn responses(app: &TestApp, stream: &str) -> (usize, usize) {
    let count = |text: String| text.matches("HTTP/1.1 ").count();
    let scim = count(raw_exchange(&app.origin, stream.replace("BODY_ROUTE", "/oauth/token").as_bytes()).await);
    let plain = count(raw_exchange(&app.admin, stream.replace("BODY_ROUTE", "/admin/tenants").as_bytes()).await);
    (scim, plain)
}

/// Chunked framing (trailers, bare LFs, extensions) is where parsers disagree: a framer that
/// followed it was once put out of step with hyper by a bare LF in the trailer section, and
/// then rewrote a request hidden in a later body into one hyper executes. The framer now follows
/// no chunked request: after one, the connection passes through untouched, so hyper alone decides
/// what is a request (here it refuses the raw quotes, as it would without scimd's layer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_rewritten_after_a_chunked_request_so_framing_cannot_disagree() {
    let app = spawn_app().await;
    for trailer in ["", "X: y\r\n", "X: y\n"] {
        let stream = format!(
            "POST BODY_ROUTE HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n{trailer}\r\n\
             GET /healthz?q=\"a b\" HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let (scim, plain) = responses(&app, &stream).await;
        assert_eq!(scim, plain, "trailer {trailer:?}: the SCIM listener answered what hyper alone does not");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_with_raw_quotes_are_each_answered() {
    let app = spawn_app().await;
    let one = |last: bool| {
        format!(
            "GET /scim/v2/Users?filter=userName eq \"nobody\" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{}\r\n",
            app.token,
            if last { "Connection: close\r\n" } else { "" }
        )
    };
    let stream = format!("{}{}{}", one(false), one(false), one(true));
    let text = raw_exchange(&app.origin, stream.as_bytes()).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_looks_like_a_request_is_never_rewritten_or_run() {
    let app = spawn_app().await;
    let hidden =
        format!("GET /scim/v2/Users?filter=userName eq \"x\" HTTP/1.1\r\nAuthorization: Bearer {}\r\n\r\n", app.token);
    let stream = format!(
        "POST BODY_ROUTE HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{hidden}",
        hidden.len()
    );
    assert_eq!(responses(&app, &stream).await, (1, 1));
}
