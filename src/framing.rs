//! A read-side watcher of HTTP/1.1 message framing, for the one smuggling signal hyper hides.
//!
//! When a request carries both `Content-Length` and `Transfer-Encoding: chunked`, hyper follows
//! RFC 9112 §6.1: it frames by Transfer-Encoding, drops Content-Length from the headers, and closes
//! the connection afterwards. That is safe, but the request still reaches the handler looking
//! like an ordinary chunked request, and shared/SECURITY.md wants such a request refused with 400
//! and never forwarded (a front end that disagrees with us about framing is how smuggling starts).
//!
//! So the connection's bytes pass through a [`FramingWatch`] on their way into hyper. It finds
//! each request head, notes whether it had both headers, and follows the body framing to find
//! the next head. It never changes a byte and never decides framing for hyper: if anything
//! surprises it, it stops watching (hyper's own parser then rules alone, as before).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A request head longer than this is hyper's to refuse (431); the watcher stops.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line (size, extensions, CRLF) the watcher follows; hyper allows less.
const MAX_CHUNK_LINE: usize = 32 * 1024;
/// Verdicts kept at most: pipelined heads not yet handled. More is abuse; the watcher stops.
const MAX_PENDING: usize = 64;

/// What the watcher saw in one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    Clean,
    /// Both Content-Length and Transfer-Encoding.
    LengthAndChunked,
}

#[derive(Debug)]
enum State {
    /// Reading a request head (leading empty lines are skipped, RFC 9112 §2.2).
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
    /// Stopped: an upgrade, CONNECT, or something the watcher does not follow.
    Off,
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
    heads_seen: u64,
    verdicts: VecDeque<(u64, HeadVerdict)>,
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
                heads_seen: 0,
                verdicts: VecDeque::new(),
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
    /// read, or once the watcher has stopped. The connection parks on this (conn_io.rs): only a
    /// connection that sits exactly between requests may leave hyper.
    pub fn between_requests(&self) -> Option<u64> {
        let watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (matches!(watcher.state, State::Head) && watcher.buf.is_empty()).then_some(watcher.heads_seen)
    }

    /// The connection was upgraded (a 101 went out): its bytes are a tunnel's from here on, and
    /// no request follows on it.
    pub fn upgraded(&self) {
        let mut watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        watcher.state = State::Off;
        watcher.buf = Vec::new();
    }

    /// The verdict for the next request the handler sees (hyper hands them over in order).
    /// `Clean` when the watcher had stopped or never saw that head.
    pub fn next_verdict(&self) -> HeadVerdict {
        let index = self.handled.fetch_add(1, Ordering::Relaxed);
        let mut watcher = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(i, verdict)) = watcher.verdicts.front() {
            if i < index {
                watcher.verdicts.pop_front();
            } else if i == index {
                watcher.verdicts.pop_front();
                return verdict;
            } else {
                break;
            }
        }
        HeadVerdict::Clean
    }
}

impl Watcher {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Off => return,
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
                    let expected = b"\r\n"[usize::from(seen)];
                    if bytes[0] != expected {
                        self.state = State::Off;
                        return;
                    }
                    self.state = if seen == 1 { State::ChunkSize } else { State::ChunkDataEnd(1) };
                    &bytes[1..]
                }
                State::Trailers => self.feed_trailers(bytes),
            };
        }
    }

    /// Accumulates a line-oriented section into `buf` until `end` is found; returns the rest of
    /// the input, or None while the section is incomplete.
    fn collect_until<'a>(&mut self, bytes: &'a [u8], end: &[u8], limit: usize) -> Option<&'a [u8]> {
        let start = self.buf.len().saturating_sub(end.len() - 1);
        self.buf.extend_from_slice(bytes);
        match find(&self.buf[start..], end) {
            Some(at) => {
                let section_end = start + at + end.len();
                let consumed_from_input = section_end - (self.buf.len() - bytes.len());
                self.buf.truncate(section_end);
                Some(&bytes[consumed_from_input..])
            }
            None => {
                if self.buf.len() > limit {
                    self.state = State::Off;
                }
                None
            }
        }
    }

    fn feed_head<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        if self.buf.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            while let [b'\r' | b'\n', rest @ ..] = bytes {
                bytes = rest;
            }
            if bytes.is_empty() {
                return bytes;
            }
        }
        let Some(rest) = self.collect_until(bytes, b"\r\n\r\n", MAX_HEAD) else { return &[] };
        let head = std::mem::take(&mut self.buf);
        self.on_head(&head);
        rest
    }

    fn on_head(&mut self, head: &[u8]) {
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
            // hyper will refuse it; nothing after it is a request boundary we can know.
            self.state = State::Off;
            return;
        }
        let index = self.heads_seen;
        self.heads_seen += 1;
        let mut lengths = request.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length"));
        let has_te = request.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        let first_length = lengths.next();
        let verdict =
            if has_te && first_length.is_some() { HeadVerdict::LengthAndChunked } else { HeadVerdict::Clean };
        if verdict != HeadVerdict::Clean {
            if self.verdicts.len() >= MAX_PENDING {
                self.state = State::Off;
                return;
            }
            self.verdicts.push_back((index, verdict));
        }
        let upgrade = request.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
        self.state = if upgrade || request.method == Some("CONNECT") || verdict != HeadVerdict::Clean {
            // After an upgrade the bytes are another protocol; after a flagged head hyper closes.
            State::Off
        } else if has_te {
            State::ChunkSize
        } else if let Some(length) = first_length {
            match std::str::from_utf8(length.value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(0) => State::Head,
                Some(n) => State::Fixed(n),
                None => State::Off,
            }
        } else {
            State::Head
        };
    }

    fn feed_chunk_size<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let Some(rest) = self.collect_until(bytes, b"\r\n", MAX_CHUNK_LINE) else { return &[] };
        let line = std::mem::take(&mut self.buf);
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let size =
            std::str::from_utf8(&line[..digits]).ok().and_then(|hex| u64::from_str_radix(hex, 16).ok());
        self.state = match size {
            None => State::Off,
            Some(0) => State::Trailers,
            Some(n) => State::ChunkData(n),
        };
        rest
    }

    fn feed_trailers<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        // No trailers: the last chunk is followed directly by CRLF.
        if self.buf.is_empty() && bytes.starts_with(b"\r\n") {
            self.state = State::Head;
            return &bytes[2..];
        }
        if self.buf.len() == 1 && self.buf[0] == b'\r' && bytes[0] == b'\n' {
            self.buf.clear();
            self.state = State::Head;
            return &bytes[1..];
        }
        let Some(rest) = self.collect_until(bytes, b"\r\n\r\n", MAX_HEAD) else { return &[] };
        self.buf.clear();
        self.state = State::Head;
        rest
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], split: usize) -> Vec<HeadVerdict> {
        let watch = FramingWatch::new();
        for piece in stream.chunks(split.max(1)) {
            watch.feed(piece);
        }
        let heads = watch.inner.lock().unwrap().heads_seen;
        (0..heads).map(|_| watch.next_verdict()).collect()
    }

    const PIPELINE: &[u8] = b"\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\nPOST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn follows_pipelined_framing_in_any_split() {
        use HeadVerdict::*;
        for split in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                verdicts(PIPELINE, split),
                vec![Clean, Clean, Clean, Clean, LengthAndChunked],
                "split {split}"
            );
        }
    }

    #[test]
    fn stops_on_garbage_without_flagging() {
        assert_eq!(
            verdicts(
                b"NOT HTTP\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                5
            ),
            vec![]
        );
        let watch = FramingWatch::new();
        watch.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(watch.next_verdict(), HeadVerdict::Clean);
    }

    #[test]
    fn knows_when_it_sits_between_requests() {
        let watch = FramingWatch::new();
        assert_eq!(watch.between_requests(), Some(0));
        watch.feed(b"\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n");
        assert_eq!(watch.between_requests(), None, "partial head");
        watch.feed(b"\r\nab");
        assert_eq!(watch.between_requests(), None, "partial body");
        watch.feed(b"c");
        assert_eq!(watch.between_requests(), Some(1));
        watch.feed(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
        assert_eq!(watch.between_requests(), None, "chunked body without its last CRLF");
        watch.feed(b"\r\n");
        assert_eq!(watch.between_requests(), Some(2));
        watch.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
        assert_eq!(watch.between_requests(), None, "after an upgrade the bytes are not HTTP");
    }

    #[test]
    fn verdict_order_matches_requests() {
        let watch = FramingWatch::new();
        watch.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(watch.next_verdict(), HeadVerdict::Clean);
        assert_eq!(watch.next_verdict(), HeadVerdict::LengthAndChunked);
        assert_eq!(watch.next_verdict(), HeadVerdict::Clean);
    }
}
