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
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<ResponseHead>, H1Error> {
        parse_response_head(&mut BytesMut::from(bytes), &Method::GET)
    }

    fn framing(bytes: &[u8]) -> Result<Framing, H1Error> {
        head(bytes).map(|h| h.expect("complete head").framing)
    }

    #[test]
    fn a_complete_head_is_taken_from_the_buffer_and_the_body_stays() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..]);
        let head = parse_response_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        let values: Vec<_> = head.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn a_partial_head_waits_and_leaves_the_buffer_alone() {
        let partial = b"HTTP/1.1 200 OK\r\nContent-Len";
        let mut buf = BytesMut::from(&partial[..]);
        assert!(parse_response_head(&mut buf, &Method::GET).unwrap().is_none());
        assert_eq!(&buf[..], partial);
    }

    #[test]
    fn heads_beyond_the_limits_are_refused() {
        let mut long = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        long.resize(MAX_HEAD_BYTES + 1, b'a');
        assert_eq!(head(&long).unwrap_err(), H1Error::HeadTooLarge, "partial and already too large");
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head(&long).unwrap_err(), H1Error::HeadTooLarge, "complete but too large");

        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(head(&many).unwrap_err(), H1Error::TooManyHeaders);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"HTTP/2.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(head(b"HTTP/1.1 600 Nope\r\n\r\n").unwrap_err(), H1Error::Status);
        assert_eq!(head(b"HTTP/1.1 099 Nope\r\n\r\n").unwrap_err(), H1Error::Status);
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Ok(Framing::Length(0)));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(Framing::Chunked));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \r\n\r\n"), Ok(Framing::Chunked));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(Framing::UntilClose));
        assert_eq!(framing(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"), Ok(Framing::Empty));
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Framing::Empty)
        );
        assert_eq!(framing(b"HTTP/1.1 100 Continue\r\n\r\n"), Ok(Framing::Empty));
        let to_head = parse_response_head(
            &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]),
            &Method::HEAD,
        );
        assert_eq!(to_head.unwrap().unwrap().framing, Framing::Empty);
        // Repeated identical lengths are one length.
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
            Ok(Framing::Length(7))
        );
    }

    #[test]
    fn framing_that_could_split_a_response_is_refused() {
        let cases: [(&[u8], H1Error); 10] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                H1Error::ConflictingFraming,
            ),
            (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1Error::ConflictingFraming),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                H1Error::UnsupportedTransferCoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                H1Error::UnsupportedTransferCoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                H1Error::UnsupportedTransferCoding,
            ),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", H1Error::UnsupportedTransferCoding),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", H1Error::BadContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", H1Error::BadContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", H1Error::BadContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", H1Error::BadContentLength),
        ];
        for (bytes, want) in cases {
            assert_eq!(framing(bytes), Err(want), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let keep = |bytes: &[u8]| head(bytes).unwrap().unwrap().keep_alive;
        assert!(keep(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!keep(b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n"));
        assert!(!keep(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(keep(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
        assert!(!keep(b"HTTP/1.1 200 OK\r\n\r\n"), "a body delimited by the close ends the connection");
    }

    #[test]
    fn the_request_head_is_written_in_origin_form() {
        let request = http::Request::builder()
            .method("POST")
            .uri("http://platform.internal:8080/a/b?x=1")
            .header("host", "learn.example")
            .header("content-length", "3")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        encode_request_head(&parts, &mut out);
        assert_eq!(out, b"POST /a/b?x=1 HTTP/1.1\r\nhost: learn.example\r\ncontent-length: 3\r\n\r\n");
    }

    /// Decodes all of `input` fed in pieces of `step` bytes; returns the body.
    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, H1Error> {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut pieces = input.chunks(step.max(1));
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Done => return Ok(body),
                Decoded::NeedMore => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None => return Err(H1Error::BadChunk("input ended")),
                },
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let input = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n";
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(decode_all(input, step).unwrap(), b"hello world", "step {step}");
        }
        assert_eq!(decode_all(b"00A \t; ext\r\n0123456789\r\n0\r\n\r\n", 4).unwrap(), b"0123456789");
        assert_eq!(decode_all(b"0\r\n\r\n", 1).unwrap(), b"");
    }

    #[test]
    fn the_decoder_stops_at_the_end_and_leaves_what_follows() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"a")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK");
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        let too_long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        let too_long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILER_BYTES));
        for bad in [
            &b"\r\n"[..],                // no size
            b"g\r\n",                    // not hex
            b"5\nhello\r\n0\r\n\r\n",    // bare LF after the size
            b"5\r\nhelloX\r\n",          // data longer than its size
            b"5\r\nhello\n0\r\n\r\n",    // bare LF after the data
            b"10000000000000000\r\n",    // 2^64: overflows
            b"1;\x01\r\na\r\n0\r\n\r\n", // control byte in an extension
            b"0\r\nX: y\n\r\n",          // bare LF in a trailer
            b"0\r\n\n",                  // bare LF as the last line
            b"-1\r\n",
            too_long_ext.as_bytes(),
            too_long_trailer.as_bytes(),
        ] {
            assert!(
                matches!(decode_all(bad, 3), Err(H1Error::BadChunk(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_headers_round_trip_through_the_decoder() {
        let mut encoded = BytesMut::new();
        for piece in [&b"abc"[..], &[7u8; 300][..], b"z"] {
            chunk_header(piece.len(), &mut encoded);
            encoded.extend_from_slice(piece);
            encoded.extend_from_slice(CHUNK_END);
        }
        encoded.extend_from_slice(LAST_CHUNK);
        let body = decode_all(&encoded, 5).unwrap();
        assert_eq!(body.len(), 304);
        assert!(body.starts_with(b"abc") && body.ends_with(b"z"));
    }
}
