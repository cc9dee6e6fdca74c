//! The ceiling: the same HTTP stack as scimd (tokio multi-thread runtime, hyper through
//! `axum::serve`, an axum `Router`) answering every request with a fixed body of a given size,
//! without auth, parsing, core or store. What scimd does on top of this is its own cost.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What to answer to one method.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Parses `METHOD=STATUS:BYTES`.
pub fn parse_answer(s: &str) -> Result<(Method, Answer), String> {
    let (m, rest) = s.split_once('=').ok_or_else(|| format!("{s}: expected METHOD=STATUS:BYTES"))?;
    let (st, bytes) = rest.split_once(':').ok_or_else(|| format!("{s}: expected METHOD=STATUS:BYTES"))?;
    let method = Method::from_bytes(m.as_bytes()).map_err(|e| format!("{s}: {e}"))?;
    let status = st
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| format!("{s}: bad status {st}"))?;
    let n: usize = bytes.parse().map_err(|e| format!("{s}: bad size {bytes}: {e}"))?;
    Ok((method, Answer { status, body: filler(n) }))
}

/// A JSON document of exactly `n` bytes (at least `{}`), so that clients that look at it see JSON.
pub fn filler(n: usize) -> Bytes {
    if n == 0 {
        return Bytes::new();
    }
    if n < 8 {
        return Bytes::from(" ".repeat(n));
    }
    // {"x":"aaaa"} is 8 bytes plus the a's
    let mut s = String::with_capacity(n);
    s.push_str("{\"x\":\"");
    s.push_str(&"a".repeat(n - 8));
    s.push_str("\"}");
    Bytes::from(s)
}

type Answers = Arc<HashMap<Method, Answer>>;

async fn answer(State(answers): State<Answers>, method: Method, body: Bytes) -> Response {
    // Read the request body like scimd does, then drop it.
    drop(body);
    let Some(a) = answers.get(&method) else {
        return StatusCode::OK.into_response();
    };
    if a.body.is_empty() {
        return a.status.into_response();
    }
    let mut resp = (a.status, a.body.clone()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    resp
}

/// Serves until the process is killed; prints the bound address on the first line of stdout.
pub fn serve(listen: &str, answers: Vec<(Method, Answer)>) -> Result<(), String> {
    let answers: Answers = Arc::new(answers.into_iter().collect());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ceiling")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("{addr}");
        let app = Router::new().fallback(answer).with_state(answers);
        axum::serve(listener, app).await.map_err(|e| format!("ceiling server failed: {e}"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_the_exact_size() {
        for n in [0, 1, 7, 8, 9, 100, 4096] {
            assert_eq!(filler(n).len(), n);
        }
    }

    #[test]
    fn answers_parse() {
        let (m, a) = parse_answer("PATCH=204:0").unwrap();
        assert_eq!(m, Method::PATCH);
        assert_eq!(a.status, StatusCode::NO_CONTENT);
        assert!(parse_answer("GET=2x0:1").is_err());
    }
}
