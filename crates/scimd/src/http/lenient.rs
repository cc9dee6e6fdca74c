//! Leniency below the HTTP parser: request lines with raw quotes and spaces.
//!
//! Some clients send a filter unencoded in the request line, e.g.
//! `GET /scim/v2/Users?filter=userName%20eq%20"x" HTTP/1.1` (Postman leaves `"` as typed) or even
//! with raw spaces. The `http` crate refuses `"`, `<`, `>`, `` ` `` and spaces in a request
//! target, so hyper answers a bare 400 before any SCIM code runs. [`LenientIo`] wraps each
//! connection of the SCIM listener and percent-encodes exactly those bytes (and `#`, which a
//! request line never carries as a fragment) in each HTTP/1 request target, and nothing else.
//!
//! To find request lines on a keep-alive connection it follows HTTP/1.1 framing, but only where
//! no two parsers can disagree: CRLF line ends, one plain `Content-Length` (or none), no
//! `Transfer-Encoding`. Anything else (a bare LF, obs-fold, a header without a colon, several
//! or odd `Content-Length`s, chunked bodies, upgrades, HTTP/2) makes it pass the rest of the
//! connection through untouched, so from there on the HTTP parser sees exactly what the client
//! sent. It rewrites bytes of request targets only, never of headers or bodies. (A framer that
//! followed chunked trailers once read a bare LF differently from hyper and then rewrote bytes
//! inside a later body, which let a request hidden in that body through.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose incoming request lines are rewritten (see the module).
#[derive(Debug)]
pub struct LenientIo<T> {
    inner: T,
    framer: Framer,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<T> LenientIo<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        LenientIo { inner, framer: Framer::default(), out: Vec::new(), out_pos: 0, eof: false }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LenientIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.framer.state == State::Raw {
                // Nothing left to rewrite on this connection: read straight into the caller's buffer.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.framer.finish(&mut this.out);
                        this.eof = true;
                    } else {
                        this.framer.feed(rb.filled(), &mut this.out);
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LenientIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The longest line followed; longer ones end the rewriting (the parser refuses them anyway).
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting a request line.
    #[default]
    Line,
    /// In the header section.
    Headers,
    /// In a body with this many bytes left.
    Body(u64),
    /// Passing everything through.
    Raw,
}

/// Follows HTTP/1.1 request framing where it is unambiguous, and rewrites request lines.
#[derive(Debug, Default)]
struct Framer {
    state: State,
    line: Vec<u8>,
    content_length: Option<u64>,
    raw_after_headers: bool,
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An RFC 9110 token character (header names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Framer {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match self.state {
                State::Raw => {
                    out.extend_from_slice(input);
                    return;
                }
                State::Body(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                    out.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    let left = n - k as u64;
                    self.state = if left == 0 { State::Line } else { State::Body(left) };
                }
                State::Line | State::Headers => match input.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.line.extend_from_slice(&input[..=i]);
                        input = &input[i + 1..];
                        let line = std::mem::take(&mut self.line);
                        self.on_line(&line, out);
                    }
                    None => {
                        self.line.extend_from_slice(input);
                        input = &[];
                        if self.line.len() > MAX_LINE {
                            out.append(&mut self.line);
                            self.state = State::Raw;
                        }
                    }
                },
            }
        }
    }

    /// The connection ended: whatever is buffered goes out as it came.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.line);
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let content = trim_eol(line);
        let crlf = line.ends_with(b"\r\n");
        match self.state {
            State::Line => {
                if content.is_empty() && crlf {
                    out.extend_from_slice(line); // a stray CRLF between requests
                } else if !crlf || content.starts_with(b"PRI * HTTP/2") || content.starts_with(b"CONNECT ") {
                    out.extend_from_slice(line);
                    self.state = State::Raw;
                } else {
                    out.extend_from_slice(&rewrite_request_line(line));
                    self.content_length = None;
                    self.raw_after_headers = false;
                    self.state = State::Headers;
                }
            }
            State::Headers => {
                out.extend_from_slice(line);
                if !crlf {
                    self.state = State::Raw;
                } else if content.is_empty() {
                    self.state = match (self.raw_after_headers, self.content_length) {
                        (true, _) => State::Raw,
                        (false, Some(n)) if n > 0 => State::Body(n),
                        (false, _) => State::Line,
                    };
                } else {
                    self.header(content);
                }
            }
            State::Body(_) | State::Raw => out.extend_from_slice(line),
        }
    }

    /// Notes what a header line says about framing; anything this framer does not follow
    /// exactly as every HTTP/1.1 parser would makes the connection raw after the header
    /// section.
    fn header(&mut self, content: &[u8]) {
        let Some(colon) = content.iter().position(|&b| b == b':') else {
            self.raw_after_headers = true;
            return;
        };
        let name = &content[..colon];
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            // obs-fold (a line starting with a space), or a malformed name.
            self.raw_after_headers = true;
            return;
        }
        let value = &content[colon + 1..];
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let plain = !value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit);
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
            match n {
                Some(n) if plain && self.content_length.is_none() => self.content_length = Some(n),
                _ => self.raw_after_headers = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") || name.eq_ignore_ascii_case(b"upgrade") {
            self.raw_after_headers = true;
        }
    }
}

/// `METHOD SP target SP HTTP/x.y`: percent-encodes the bytes of the target that the HTTP parser
/// refuses. Lines of any other shape come back unchanged.
fn rewrite_request_line(line: &[u8]) -> Vec<u8> {
    let content = trim_eol(line);
    let eol = &line[content.len()..];
    let (Some(first), Some(last)) = (content.iter().position(|&b| b == b' '), content.iter().rposition(|&b| b == b' '))
    else {
        return line.to_vec();
    };
    let method = &content[..first];
    let version = &content[last + 1..];
    if first >= last || method.is_empty() || !method.iter().copied().all(is_tchar) || !version.starts_with(b"HTTP/") {
        return line.to_vec();
    }
    let target = &content[first + 1..last];
    if !target.starts_with(b"/") {
        return line.to_vec();
    }
    let mut out = Vec::with_capacity(line.len() + 16);
    out.extend_from_slice(&content[..=first]);
    for &b in target {
        match b {
            b' ' => out.extend_from_slice(b"%20"),
            b'"' => out.extend_from_slice(b"%22"),
            b'#' => out.extend_from_slice(b"%23"),
            b'<' => out.extend_from_slice(b"%3C"),
            b'>' => out.extend_from_slice(b"%3E"),
            b'`' => out.extend_from_slice(b"%60"),
            other => out.push(other),
        }
    }
    out.extend_from_slice(&content[last..]);
    out.extend_from_slice(eol);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn text(v: &[u8]) -> String {
        String::from_utf8_lossy(v).into_owned()
    }

    #[test]
    fn raw_quotes_spaces_and_hash_in_the_target_are_encoded() {
        let got = run(&[b"GET /scim/v2/Users?filter=userName eq \"a#b\" HTTP/1.1\r\nHost: x\r\n\r\n"]);
        assert_eq!(text(&got), "GET /scim/v2/Users?filter=userName%20eq%20%22a%23b%22 HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn valid_request_lines_and_headers_are_unchanged() {
        let req: &[u8] = b"GET /scim/v2/Users?filter=userName+eq+%22a%22 HTTP/1.1\r\nX-Q: \"quoted\" <v>\r\n\r\n";
        assert_eq!(run(&[req]), req);
    }

    #[test]
    fn bodies_are_never_rewritten_and_the_next_request_line_is() {
        let body = b"{\"userName\": \"a b\"}";
        let mut req = format!("POST /scim/v2/Users HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        req.extend_from_slice(b"GET /x?f=\"y\" HTTP/1.1\r\n\r\n");
        // Byte by byte, to exercise every state boundary.
        let chunks: Vec<&[u8]> = req.chunks(1).collect();
        let got = text(&run(&chunks));
        assert!(got.contains("{\"userName\": \"a b\"}"), "{got}");
        assert!(got.ends_with("GET /x?f=%22y%22 HTTP/1.1\r\n\r\n"), "{got}");
    }

    #[test]
    fn chunked_bodies_make_the_connection_raw() {
        // The smuggling case: a bare LF in the trailer section, then a request hidden in what
        // hyper reads as the next body. Nothing after the chunked request's head is rewritten.
        let req: &[u8] =
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\nGET /b?q=\"1 2\" HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[req]), req);
    }

    #[test]
    fn a_bare_lf_anywhere_in_a_head_makes_the_connection_raw() {
        for req in [
            &b"GET /a?q=\"x\" HTTP/1.1\nHost: x\r\n\r\nGET /\"y\" HTTP/1.1\r\n\r\n"[..],
            b"GET /a HTTP/1.1\r\nHost: x\n\r\nGET /\"y\" HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n\nGET /\"y\" HTTP/1.1\r\n\r\n",
        ] {
            let got = run(&[req]);
            assert!(!text(&got).contains("%22y%22"), "{}", text(&got));
        }
    }

    #[test]
    fn pipelined_requests_are_each_rewritten_and_bodies_never() {
        let body = b"GET /\"hidden\" HTTP/1.1\r\n\r\n";
        let mut req = format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        req.extend_from_slice(b"GET /b?q=\"1\" HTTP/1.1\r\n\r\nGET /c?q=\"2\" HTTP/1.1\r\n\r\n");
        let got = text(&run(&[&req]));
        assert!(got.contains("GET /\"hidden\" HTTP/1.1"), "the body is left alone: {got}");
        assert!(
            got.contains("GET /b?q=%221%22 HTTP/1.1") && got.ends_with("GET /c?q=%222%22 HTTP/1.1\r\n\r\n"),
            "{got}"
        );
    }

    #[test]
    fn odd_framing_headers_make_the_connection_raw() {
        for head in [
            "Content-Length: +5",
            "Content-Length: 5, 5",
            "Content-Length: 05x",
            " folded: x",
            "Upgrade: h2c",
            "bad name: x",
        ] {
            let req = format!("POST /a HTTP/1.1\r\n{head}\r\n\r\nGET /\"y\" HTTP/1.1\r\n\r\n");
            let got = run(&[req.as_bytes()]);
            assert_eq!(got, req.as_bytes(), "{head}");
        }
    }

    #[test]
    fn what_is_not_understood_passes_through() {
        let h2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\"x y\"";
        assert_eq!(run(&[h2]), h2);
        let bad: &[u8] =
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nGET /\"x\" HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[bad]), bad);
        let odd: &[u8] = b"G(T /\"x\" HTTP/1.1\r\n\r\n";
        assert_eq!(run(&[odd]), odd, "a method that is no token: left to the HTTP parser");
        // Any method token is repaired (lower-case ones too: HTTP methods are case-sensitive
        // tokens, and the router answers them with a SCIM 405).
        assert_eq!(text(&run(&[b"get /\"x\" HTTP/1.1\r\n\r\n"])), "get /%22x%22 HTTP/1.1\r\n\r\n");
        let partial: &[u8] = b"GET /\"x\" HT";
        assert_eq!(run(&[partial]), partial, "an unfinished line at EOF goes out as it came");
    }
}
