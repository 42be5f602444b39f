//! HTTP/1.1 toward the platform, without I/O (RFC 9112): the request head nymgate writes, and
//! the response head and body framing it reads.
//!
//! Why nymgate's own: hyper's client runs each platform connection in a task of its own and
//! hands every request and response across channels to it, and it keeps 24 KiB of buffers and
//! channel blocks for every idle connection (BENCHMARKS.md §1). A client that reads and writes
//! in the request's own task needs only this codec; the I/O around it is client.rs's.
//!
//! The platform is trusted to be the platform, not to be well-behaved (lib.rs): every response
//! is bounded (head size, header count, chunk-line and trailer lengths) and framing that could
//! split one response into two is an error, never a guess:
//! - `Transfer-Encoding` together with `Content-Length` (RFC 9112 §6.3 item 3 calls it a sign of
//!   smuggling and says to treat it as an error);
//! - a transfer coding other than a single, final `chunked` (nymgate forwards content, and
//!   cannot forward content still transfer-coded);
//! - `Content-Length` values that are not all the same decimal number;
//! - chunk lines ended by a bare LF, chunk sizes that overflow, and data not followed by CRLF.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// A response head larger than this is refused.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A response with more header fields than this is refused.
pub const MAX_HEADERS: usize = 256;
/// The longest chunk-size line (with its extensions) and the most trailer bytes accepted.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Interim (1xx) responses accepted before the final one. RFC 9110 §15.2 lets a server send any
/// number; a platform that sends more than a few (100 Continue, a 103 Early Hints or two) is
/// broken or hostile, and without a bound it holds the request, its client and a platform
/// connection for as long as it keeps sending them.
pub const MAX_INTERIM_RESPONSES: usize = 8;
/// Bytes of interim response heads accepted before the final head, all together: each is
/// bounded by [`MAX_HEAD_BYTES`], and so are all of them.
pub const MAX_INTERIM_BYTES: usize = MAX_HEAD_BYTES;

/// Why a response from the platform was refused. None of these carry the platform's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum H1Error {
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("response head with more than {MAX_HEADERS} fields")]
    TooManyHeaders,
    #[error("malformed response head: {0}")]
    MalformedHead(&'static str),
    #[error("response version other than HTTP/1.0 or HTTP/1.1")]
    Version,
    #[error("response status outside 100-599")]
    Status,
    #[error("response with both Transfer-Encoding and Content-Length")]
    ConflictingFraming,
    #[error("response with a transfer coding other than a single final chunked")]
    UnsupportedTransferCoding,
    #[error("response with an invalid Content-Length")]
    BadContentLength,
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    #[error("more than {MAX_INTERIM_RESPONSES} interim (1xx) responses, or more than {MAX_INTERIM_BYTES} bytes of them")]
    TooManyInterim,
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the platform closes the connection; the connection is not reused.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once this response is read.
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buf`. On success the head's bytes are taken from
/// `buf` (header values share them, without a copy); `None` means the head is not complete yet.
/// `method` is the request's: a response to HEAD has no body whatever its head says.
pub fn parse_response_head(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, H1Error> {
    // The head is parsed once for its length and the positions of its fields, then taken from the
    // buffer as shared bytes that the values point into.
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => return Err(H1Error::HeadTooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => return Err(H1Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::TooManyHeaders),
        Err(error) => return Err(H1Error::MalformedHead(parse_error(error))),
    };
    let version = match response.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(H1Error::Version),
    };
    let status = response
        .code
        .filter(|code| (100..600).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(H1Error::Status)?;
    let base = buf.as_ptr() as usize;
    let mut positions = Vec::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| H1Error::MalformedHead("invalid header name"))?;
        let start = field.value.as_ptr() as usize - base;
        positions.push((name, start, start + field.value.len()));
    }
    let head = buf.split_to(head_len).freeze();
    let mut headers = HeaderMap::with_capacity(positions.len());
    for (name, start, end) in positions {
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| H1Error::MalformedHead("invalid header value"))?;
        headers.append(name, value);
    }
    let framing = response_framing(status, version, &headers, method)?;
    let keep_alive = framing != Framing::UntilClose && wants_keep_alive(version, &headers);
    Ok(Some(ResponseHead { status, version, headers, framing, keep_alive }))
}

/// The interim (1xx) responses read so far for one request, for their bounds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interim {
    count: usize,
    bytes: usize,
}

/// Parses heads from the front of `buf` until the final one, which is returned: interim (1xx)
/// responses other than 101 are dropped (RFC 9110 §15.2: nymgate forwards none of them; a 101
/// is final for the connection, RFC 9110 §15.2.2), counted in `interim` and bounded by
/// [`MAX_INTERIM_RESPONSES`] and [`MAX_INTERIM_BYTES`]. `None`: no final head yet.
pub fn parse_final_response_head(
    buf: &mut BytesMut,
    method: &Method,
    interim: &mut Interim,
) -> Result<Option<ResponseHead>, H1Error> {
    loop {
        let before = buf.len();
        let Some(head) = parse_response_head(buf, method)? else { return Ok(None) };
        if !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Some(head));
        }
        interim.count += 1;
        interim.bytes += before - buf.len();
        if interim.count > MAX_INTERIM_RESPONSES || interim.bytes > MAX_INTERIM_BYTES {
            return Err(H1Error::TooManyInterim);
        }
    }
}

fn parse_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Version => "invalid version",
        _ => "invalid syntax",
    }
}

/// RFC 9112 §6.3, for a response to `method`.
fn response_framing(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Framing, H1Error> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
    {
        return Ok(Framing::Empty);
    }
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // §6.1: HTTP/1.0 has no transfer codings; §6.3: both fields at once is an error.
        if has_length || version == Version::HTTP_10 {
            return Err(H1Error::ConflictingFraming);
        }
        let mut codings = list_items(headers, &header::TRANSFER_ENCODING);
        return match (codings.next(), codings.next()) {
            (Some(only), None) if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(H1Error::UnsupportedTransferCoding),
        };
    }
    if has_length {
        return content_length(headers).map(Framing::Length);
    }
    Ok(Framing::UntilClose)
}

/// The one length that every `Content-Length` value (field lines and list items) gives.
fn content_length(headers: &HeaderMap) -> Result<u64, H1Error> {
    let mut length = None;
    for item in list_items(headers, &header::CONTENT_LENGTH) {
        let parsed = parse_decimal(item).ok_or(H1Error::BadContentLength)?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err(H1Error::BadContentLength);
        }
        length = Some(parsed);
    }
    length.ok_or(H1Error::BadContentLength)
}

/// 1*DIGIT as a u64; nothing else (no sign, no spaces, no overflow).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// The comma-separated items of every field line named `name`, trimmed of spaces and tabs.
/// An empty item (`a,,b`, a trailing comma) is kept as empty, so that it is refused where a
/// value is required.
fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers.get_all(name).into_iter().flat_map(|value| value.as_bytes().split(|&b| b == b',').map(trim))
}

fn trim(mut item: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = item {
        item = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = item {
        item = rest;
    }
    item
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes unless told `keep-alive`.
fn wants_keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut tokens = list_items(headers, &header::CONNECTION);
    if version == Version::HTTP_11 {
        !tokens.any(|t| t.eq_ignore_ascii_case(b"close"))
    } else {
        tokens.any(|t| t.eq_ignore_ascii_case(b"keep-alive"))
    }
}

/// Writes a request head: `parts`' method, origin-form target and header fields, as HTTP/1.1.
/// The fields are written as they are: the caller has sanitized them and set the framing
/// (`Content-Length` or `Transfer-Encoding: chunked`). `http`'s types cannot hold CR or LF in a
/// method, target, name or value, so nothing here can split the head.
pub fn encode_request_head(parts: &http::request::Parts, out: &mut Vec<u8>) {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The line before a chunk of `len` bytes (`len` > 0; the last chunk is [`LAST_CHUNK`]).
pub fn chunk_header(len: usize, out: &mut BytesMut) {
    use std::fmt::Write;
    // Writing to a BytesMut cannot fail.
    let _ = write!(out, "{len:X}\r\n");
}

/// The CRLF after a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, taken from the buffer.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body ended (trailers, if any, were read and dropped: nymgate forwards none).
    Done,
}

/// A chunked body decoder (RFC 9112 §7.1), fed from the connection's read buffer.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes left in the current chunk's data.
    remaining: u64,
    /// Bytes of the current chunk line or of the trailers so far, for their limits.
    line_len: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading chunk-size hex digits; at least one needed.
    #[default]
    SizeStart,
    Size,
    /// After the size: BWS, extensions, up to CR.
    Extension,
    /// After the chunk line's CR.
    SizeLf,
    Data,
    /// After the data: CR then LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the final CRLF).
    TrailerStart,
    Trailer,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    Done,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the front of `buf`, taking what it uses: chunk framing is consumed, data is
    /// returned without a copy.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        use ChunkState::*;
        loop {
            if self.state == Done {
                return Ok(Decoded::Done);
            }
            if self.state == Data {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = DataCr;
                }
                return Ok(Decoded::Data(buf.split_to(take).freeze()));
            }
            let Some(&byte) = buf.first() else { return Ok(Decoded::NeedMore) };
            buf.advance(1);
            self.state = self.step(byte)?;
        }
    }

    /// One framing byte.
    fn step(&mut self, byte: u8) -> Result<ChunkState, H1Error> {
        use ChunkState::*;
        let line_limit = |len: &mut usize, max: usize, what: &'static str| {
            *len += 1;
            if *len > max {
                Err(H1Error::BadChunk(what))
            } else {
                Ok(())
            }
        };
        Ok(match (self.state, byte) {
            (SizeStart | Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                line_limit(&mut self.line_len, MAX_CHUNK_LINE, "chunk line too long")?;
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or(H1Error::BadChunk("chunk size overflows"))?;
                Size
            }
            (SizeStart, _) => return Err(H1Error::BadChunk("chunk size expected")),
            (Size, b'\r') | (Extension, b'\r') => SizeLf,
            (Size, b';' | b' ' | b'\t') => {
                line_limit(&mut self.line_len, MAX_CHUNK_LINE, "chunk line too long")?;
                Extension
            }
            (Size, _) => return Err(H1Error::BadChunk("invalid chunk size")),
            // Extensions are ignored, but bounded and free of control bytes other than HTAB.
            (Extension, b'\t' | 0x20..=0x7e | 0x80..=0xff) => {
                line_limit(&mut self.line_len, MAX_CHUNK_LINE, "chunk line too long")?;
                Extension
            }
            (Extension, _) => return Err(H1Error::BadChunk("invalid chunk extension")),
            (SizeLf, b'\n') => {
                self.line_len = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(H1Error::BadChunk("chunk line not ended by CRLF")),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (DataCr | DataLf, _) => return Err(H1Error::BadChunk("chunk data not followed by CRLF")),
            (TrailerStart, b'\r') => EndLf,
            (Trailer, b'\r') => TrailerLf,
            (TrailerStart | Trailer, b'\n') => {
                return Err(H1Error::BadChunk("trailer line not ended by CRLF"))
            }
            (TrailerStart | Trailer, _) => {
                line_limit(&mut self.line_len, MAX_TRAILER_BYTES, "trailers too long")?;
                Trailer
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (TrailerLf | EndLf, _) => return Err(H1Error::BadChunk("trailer line not ended by CRLF")),
            // `decode` handles these before any byte reaches here.
            (Data | Done, _) => return Err(H1Error::BadChunk("decoder out of step")),
        })
    }
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
