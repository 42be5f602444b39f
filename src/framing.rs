//! A read-side watcher of HTTP/1.1 message framing: one framing judgement for every request on
//! a connection, made on one canonical reading of its bytes.
//!
//! hyper parses requests leniently where RFC 9112 lets a recipient choose: it accepts a head
//! whose lines end in a bare LF (§2.2), frames a request with both Content-Length and
//! Transfer-Encoding by the latter and hides the former (§6.1), and keeps one of several equal
//! Content-Length lines (§6.3). Each of those is safe for hyper, and each is how request
//! smuggling starts when a front end in front of nymgate reads the same bytes the other way. So
//! the connection's bytes pass through a [`FramingWatch`] on their way into hyper. It follows the
//! whole byte stream (heads, fixed-length and chunked bodies, trailers) and gives each request
//! head a [`HeadVerdict`]; the pipeline (pipeline/mod.rs) refuses every verdict but `Clean` with 400
//! and closes the connection. It never changes a byte and never frames for hyper.
//!
//! Deny by default: the watcher accepts only the canonical subset (CRLF line ends, at most one
//! plain Content-Length, at most one `Transfer-Encoding: chunked`, well-formed chunk lines and
//! trailers). Anything else it cannot follow (a bare LF or CR, obs-fold, NUL, an over-long head
//! or chunk line, CONNECT's tunnel, a head hyper hands over that the watcher never saw) poisons
//! the connection: that request and every later one get a refusing verdict. No earlier request
//! can turn the judgement off; only [`FramingWatch::upgraded`], after a 101 has been answered,
//! ends it, and after that hyper reads no further request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sanitize::RequestFault;

/// The longest request head the watcher follows. `limits.max_header_bytes` may not exceed it
/// (config validation), so hyper's own 431 always comes first for a head this long; the config
/// checks that bound, so the constant lives there.
pub use crate::config::MAX_HEAD;
/// Longest chunk-size line (size, extensions, CRLF) the watcher follows; hyper allows less.
const MAX_CHUNK_LINE: usize = 32 * 1024;
/// Headers parsed on the stack; a head with more is parsed again into a vector sized by its
/// line count (hyper's own bound, `limits.max_headers`, refuses it anyway).
const STACK_HEADERS: usize = 64;

/// The judgement on one request head. Every verdict but `Clean` is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    Clean,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.1: a sign of smuggling).
    LengthAndChunked,
    /// Transfer-Encoding other than one field of exactly `chunked` on HTTP/1.1.
    BadTransferEncoding,
    /// More than one Content-Length field, a list, or a value that is not one decimal number.
    BadContentLength,
    /// A line ended by LF alone or a CR not before LF (RFC 9112 §2.2 lets a recipient accept
    /// bare LF; nymgate does not, as the front ends before it may not).
    BareLineEnd,
    /// obs-fold (RFC 9112 §5.2), NUL, or a head that does not parse.
    Malformed,
    /// The watcher lost the request boundaries before this head: it cannot say where this
    /// request starts, so nothing on the connection is trusted any more.
    Unfollowable,
}

impl HeadVerdict {
    /// Why the request is refused, or None for a clean head.
    pub fn fault(self) -> Option<RequestFault> {
        match self {
            HeadVerdict::Clean => None,
            HeadVerdict::LengthAndChunked => Some(RequestFault::LengthAndChunked),
            HeadVerdict::BadTransferEncoding => Some(RequestFault::BadTransferEncoding),
            HeadVerdict::BadContentLength => Some(RequestFault::BadContentLength),
            HeadVerdict::BareLineEnd => Some(RequestFault::BareLineEnd),
            HeadVerdict::Malformed => Some(RequestFault::MalformedHead),
            HeadVerdict::Unfollowable => Some(RequestFault::UnfollowableFraming),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Reading a request head: `buf` holds it from its first byte, `line` is where the line
    /// being read starts (leading empty lines are skipped, RFC 9112 §2.2).
    Head,
    /// Skipping a fixed-length body.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    ChunkDataEnd(u8),
    /// Reading trailer lines up to the empty line.
    Trailers,
    /// A 101 was answered: the bytes are another protocol and hyper reads no more requests.
    Upgraded,
    /// Lost: `fault` says from which head on every verdict refuses. Bytes are ignored.
    Poisoned,
}

/// The per-connection watcher, fed with every byte read from the client.
#[derive(Debug)]
pub struct FramingWatch {
    inner: Mutex<Watcher>,
    /// Requests the handler has asked about so far.
    handled: AtomicU64,
}

#[derive(Debug)]
struct Watcher {
    state: State,
    buf: Vec<u8>,
    /// In `Head`: where the current line starts in `buf`.
    line: usize,
    /// Complete request heads seen, all of them clean.
    heads_seen: u64,
    /// The first head that is not clean, and its verdict. Every later head is `Unfollowable`.
    /// One slot instead of a queue: heads before it are clean, so nothing else needs keeping.
    fault: Option<(u64, HeadVerdict)>,
}

impl Default for FramingWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl FramingWatch {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Watcher {
                state: State::Head,
                buf: Vec::new(),
                line: 0,
                heads_seen: 0,
                fault: None,
            }),
            handled: AtomicU64::new(0),
        }
    }

    /// Feeds bytes read from the client, in order.
    pub fn feed(&self, bytes: &[u8]) {
        let mut watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        watcher.feed(bytes);
    }

    /// How many complete request heads the client has sent, when every byte read so far belongs
    /// to those requests (no partial head or body is pending). None while a message is partly
    /// read, after an upgrade, or once the watcher is lost. The connection parks on this
    /// (conn_io.rs): only a connection that sits exactly between requests may leave hyper.
    pub fn between_requests(&self) -> Option<u64> {
        let watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (matches!(watcher.state, State::Head) && watcher.buf.is_empty()).then_some(watcher.heads_seen)
    }

    /// The verdict for the next request the handler sees (hyper hands them over in order).
    /// A request the watcher has not seen whole is `Unfollowable`: hyper and the watcher then
    /// disagree about where requests start, which is exactly what must never be forwarded.
    pub fn next_verdict(&self) -> HeadVerdict {
        let index = self.handled.fetch_add(1, Ordering::Relaxed);
        let watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        watcher.verdict(index)
    }

    /// Tells the watcher that a 101 (Switching Protocols) was answered on this connection: the
    /// bytes that follow are the upgraded protocol's, and hyper reads no further request. An
    /// `Upgrade` header alone changes nothing: until the 101, the next bytes are a request.
    pub fn upgraded(&self) {
        let mut watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        watcher.state = State::Upgraded;
        watcher.buf = Vec::new();
    }
}

impl Watcher {
    fn verdict(&self, index: u64) -> HeadVerdict {
        match self.fault {
            Some((at, verdict)) if index == at => verdict,
            Some((at, _)) if index > at => HeadVerdict::Unfollowable,
            _ if index < self.heads_seen => HeadVerdict::Clean,
            _ => HeadVerdict::Unfollowable,
        }
    }

    /// Records that the head being read (or the next one) is not clean, and stops following:
    /// from here on every verdict refuses. Returns the rest of the input: none of it is read.
    fn lose<'a>(&mut self, verdict: HeadVerdict) -> &'a [u8] {
        self.fault = Some((self.heads_seen, verdict));
        self.state = State::Poisoned;
        self.buf = Vec::new();
        &[]
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Poisoned | State::Upgraded => return,
                State::Head => self.feed_head(bytes),
                State::Fixed(remaining) => {
                    let take = remaining.min(bytes.len() as u64);
                    self.state = if take == remaining { State::Head } else { State::Fixed(remaining - take) };
                    &bytes[take as usize..]
                }
                State::ChunkSize => self.feed_chunk_size(bytes),
                State::ChunkData(remaining) => {
                    let take = remaining.min(bytes.len() as u64);
                    self.state = if take == remaining {
                        State::ChunkDataEnd(0)
                    } else {
                        State::ChunkData(remaining - take)
                    };
                    &bytes[take as usize..]
                }
                State::ChunkDataEnd(seen) => {
                    if bytes[0] != b"\r\n"[usize::from(seen)] {
                        self.lose(HeadVerdict::Unfollowable);
                        return;
                    }
                    self.state = if seen == 1 { State::ChunkSize } else { State::ChunkDataEnd(1) };
                    &bytes[1..]
                }
                State::Trailers => self.feed_trailers(bytes),
            };
        }
    }

    /// Accumulates a section into `buf` until `end` is found; returns the rest of the input, or
    /// None while the section is incomplete (the watcher is lost past `limit`).
    fn collect_until<'a>(&mut self, bytes: &'a [u8], end: &[u8], limit: usize) -> Option<&'a [u8]> {
        let start = self.buf.len().saturating_sub(end.len() - 1);
        let room = (limit + 1).saturating_sub(self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..room]);
        match find(&self.buf[start..], end) {
            Some(at) => {
                let section_end = start + at + end.len();
                let consumed_from_input = section_end - (self.buf.len() - room);
                self.buf.truncate(section_end);
                Some(&bytes[consumed_from_input..])
            }
            None => {
                if self.buf.len() > limit {
                    self.lose(HeadVerdict::Unfollowable);
                }
                None
            }
        }
    }

    fn feed_head<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        if self.buf.is_empty() || self.buf == b"\r" {
            // Empty lines before a request line are ignored (RFC 9112 §2.2); CRLF ones only.
            loop {
                match (self.buf.as_slice(), bytes) {
                    (_, []) => return bytes,
                    (b"\r", [b'\n', rest @ ..]) => {
                        self.buf.clear();
                        bytes = rest;
                    }
                    (b"\r", _) => return self.lose(HeadVerdict::BareLineEnd),
                    ([], [b'\r']) => {
                        self.buf.push(b'\r');
                        return &[];
                    }
                    ([], [b'\r', b'\n', rest @ ..]) => bytes = rest,
                    ([], [b'\r' | b'\n', ..]) => return self.lose(HeadVerdict::BareLineEnd),
                    _ => break,
                }
            }
        }
        let before = self.buf.len();
        let room = (MAX_HEAD + 1).saturating_sub(before).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..room]);
        // Each complete line is checked as it ends: CRLF only, no other CR, no NUL, no fold.
        while let Some(at) = self.buf[self.line..].iter().position(|&b| b == b'\n') {
            let end = self.line + at + 1;
            let line = &self.buf[self.line..end];
            let body = match line.strip_suffix(b"\r\n") {
                Some(body) if !body.contains(&b'\r') => body,
                _ => return self.lose(HeadVerdict::BareLineEnd),
            };
            if body.contains(&0) || (self.line > 0 && matches!(body.first(), Some(b' ' | b'\t'))) {
                // NUL, or obs-fold (RFC 9112 §5.2: a server must refuse it or replace it).
                return self.lose(HeadVerdict::Malformed);
            }
            if body.is_empty() {
                let head = std::mem::take(&mut self.buf);
                self.line = 0;
                self.on_head(&head[..end]);
                return &bytes[end - before..];
            }
            self.line = end;
        }
        if self.buf.len() > MAX_HEAD {
            return self.lose(HeadVerdict::Unfollowable);
        }
        &[]
    }

    /// Judges a complete head (CRLF line ends checked) and sets how its body is framed.
    fn on_head(&mut self, head: &[u8]) {
        let mut heap: Vec<httparse::Header<'_>>;
        let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        let mut request = httparse::Request::new(&mut stack);
        let mut parsed = request.parse(head);
        if parsed == Err(httparse::Error::TooManyHeaders) {
            heap = vec![httparse::EMPTY_HEADER; head.iter().filter(|&&b| b == b'\n').count()];
            request = httparse::Request::new(&mut heap);
            parsed = request.parse(head);
        }
        if !matches!(parsed, Ok(httparse::Status::Complete(n)) if n == head.len()) {
            self.lose(HeadVerdict::Malformed);
            return;
        }
        // Every Transfer-Encoding and Content-Length field counts, in any letter case; values
        // are read with their surrounding blanks removed, as hyper reads them.
        let mut chunked = None;
        let mut transfer_encodings = 0;
        let mut length = None;
        let mut lengths = 0;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encodings += 1;
                chunked = Some(header.value.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if header.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = parse_length(header.value);
            }
        }
        let verdict = if transfer_encodings > 0 && lengths > 0 {
            HeadVerdict::LengthAndChunked
        } else if transfer_encodings > 1
            || chunked == Some(false)
            // RFC 9112 §6.1: Transfer-Encoding is HTTP/1.1's; hyper refuses it on HTTP/1.0.
            || (chunked.is_some() && request.version != Some(1))
        {
            HeadVerdict::BadTransferEncoding
        } else if lengths > 1 || (lengths == 1 && length.is_none()) {
            HeadVerdict::BadContentLength
        } else {
            HeadVerdict::Clean
        };
        if verdict != HeadVerdict::Clean {
            self.lose(verdict);
            return;
        }
        self.heads_seen += 1;
        if request.method == Some("CONNECT") {
            // What follows a CONNECT that succeeds is a tunnel (hyper treats it as an upgrade):
            // no later byte can be trusted to start a request. The handler refuses CONNECT.
            self.lose(HeadVerdict::Unfollowable);
            return;
        }
        self.state = match (chunked, length) {
            (Some(_), _) => State::ChunkSize,
            (None, Some(n)) if n > 0 => State::Fixed(n),
            _ => State::Head,
        };
    }

    fn feed_chunk_size<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let Some(rest) = self.collect_until(bytes, b"\r\n", MAX_CHUNK_LINE) else { return &[] };
        let line = std::mem::take(&mut self.buf);
        match parse_chunk_line(&line[..line.len() - 2]) {
            None => self.lose(HeadVerdict::Unfollowable),
            Some(0) => {
                self.state = State::Trailers;
                rest
            }
            Some(n) => {
                self.state = State::ChunkData(n);
                rest
            }
        }
    }

    fn feed_trailers<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        // No trailers: the last chunk is followed directly by CRLF.
        if self.buf.is_empty() && bytes.starts_with(b"\r\n") {
            self.state = State::Head;
            return &bytes[2..];
        }
        if self.buf == b"\r" {
            if bytes[0] != b'\n' {
                return self.lose(HeadVerdict::Unfollowable);
            }
            self.buf.clear();
            self.state = State::Head;
            return &bytes[1..];
        }
        let Some(rest) = self.collect_until(bytes, b"\r\n\r\n", MAX_HEAD) else { return &[] };
        let trailers = std::mem::take(&mut self.buf);
        // Trailer lines as strict as head lines: CRLF only, no NUL, no fold.
        let fields = &trailers[..trailers.len() - 2];
        let lines_ok = fields.split_inclusive(|&b| b == b'\n').all(|line| {
            line.strip_suffix(b"\r\n").is_some_and(|line| {
                !line.is_empty()
                    && !line.contains(&b'\r')
                    && !line.contains(&0)
                    && !matches!(line[0], b' ' | b'\t')
            })
        });
        if !lines_ok {
            return self.lose(HeadVerdict::Unfollowable);
        }
        self.state = State::Head;
        rest
    }
}

/// A Content-Length value: one decimal number, nothing else (RFC 9110 §8.6). A list of equal
/// values, which RFC 9110 lets a recipient collapse, is refused: no front end need agree.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A chunk-size line without its CRLF (RFC 9112 §7.1): hex digits, optional blanks, optional
/// extensions; the size, or None for anything else (a CR, LF or NUL inside, an overflow).
fn parse_chunk_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let after_blanks = &rest[rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count()..];
    let well_formed = digits > 0
        && (after_blanks.is_empty() || after_blanks[0] == b';')
        && !rest.iter().any(|b| matches!(b, b'\r' | b'\n' | 0));
    if !well_formed {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
