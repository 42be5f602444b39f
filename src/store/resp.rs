//! RESP2, the Redis wire protocol (https://redis.io/docs/latest/develop/reference/protocol-spec/):
//! commands out as arrays of bulk strings, replies in. Only what nymgate's store needs.
//!
//! A reply is bytes from the network, so a broken or hostile server must get an error, never a
//! panic, unbounded memory or unbounded work. The [`Reader`] is incremental: it keeps its place
//! across reads (the line or bulk string it is in, the arrays still open), so every byte is
//! looked at once and the cost of a reply is linear in the bytes received, however they are
//! split. One reply is refused with [`RespError::TooLarge`] beyond any of these bounds:
//!
//! | bound | value | why |
//! |---|---|---|
//! | one line (`+`, `-`, `:`, a length) | [`MAX_LINE`] = 4 KiB | Redis's own messages are short |
//! | one bulk string | [`MAX_BULK`] = 64 KiB | nymgate stores `1`; it reads no bulk value |
//! | array elements, all arrays of one reply | [`MAX_ELEMENTS`] = 1,024 | nymgate's replies have none |
//! | arrays open inside each other | [`MAX_DEPTH`] = 8 | nymgate's five commands need at most 2 |
//! | one reply, all bytes | [`MAX_REPLY`] = 256 KiB | the largest reply nymgate accepts at all |
//!
//! A declared length is checked against its bound (and against what is left of the reply's
//! budget) before any of its bytes are read or buffered.

/// Longest line: a simple string, an error, an integer or a length, without its CRLF.
pub const MAX_LINE: usize = 4096;
/// Largest bulk string.
pub const MAX_BULK: usize = 64 * 1024;
/// Most array elements declared in one reply, counting nested arrays' elements too.
pub const MAX_ELEMENTS: usize = 1024;
/// Most arrays open inside each other in one reply.
pub const MAX_DEPTH: usize = 8;
/// Most bytes in one reply.
pub const MAX_REPLY: usize = 256 * 1024;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("the store's reply is not RESP: {0}")]
    Malformed(&'static str),
    #[error("the store's reply is larger or deeper than nymgate accepts")]
    TooLarge,
}

/// Encodes a command as an array of bulk strings.
pub fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply from the start of `buf`: `Ok(None)` while it is incomplete, else the reply
/// and how many bytes it took. (A fresh [`Reader`] fed `buf` once.)
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    Reader::new().feed(buf)
}

/// Reads one reply at a time from bytes as they arrive. After an error the reader is spent
/// (the connection it reads must be dropped: nothing after a framing error can be trusted).
#[derive(Debug, Default)]
pub struct Reader {
    /// The line being read, without the LF that will end it.
    line: Vec<u8>,
    /// The bulk string being read, and how many bytes it will have with its CRLF.
    bulk: Option<(Vec<u8>, usize)>,
    /// Arrays still open, outermost first: elements so far, and how many were declared.
    open: Vec<(Vec<Reply>, usize)>,
    /// This reply's bytes so far, and its array elements declared so far.
    used: usize,
    elements: usize,
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the bytes that follow the ones fed before. `Ok(None)`: all of `input` was taken and
    /// the reply is still incomplete. `Ok(Some((reply, n)))`: the reply ended after `n` bytes of
    /// `input`; the rest is not taken, and the reader is ready for the next reply.
    pub fn feed(&mut self, input: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
        let mut at = 0;
        while at < input.len() {
            let value = if let Some((bytes, want)) = &mut self.bulk {
                let take = (*want - bytes.len()).min(input.len() - at);
                bytes.extend_from_slice(&input[at..at + take]);
                at += take;
                self.used += take;
                if bytes.len() < *want {
                    continue;
                }
                let (mut bytes, want) = self.bulk.take().unwrap_or_default();
                if !bytes.ends_with(b"\r\n") {
                    return Err(RespError::Malformed("bulk string without CRLF"));
                }
                bytes.truncate(want - 2);
                Reply::Bulk(bytes)
            } else {
                let rest = &input[at..];
                let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                    self.take_line_bytes(rest)?;
                    at = input.len();
                    continue;
                };
                self.take_line_bytes(&rest[..lf])?;
                at += lf + 1;
                self.count(1)?;
                match self.end_line()? {
                    Some(value) => value,
                    None => continue,
                }
            };
            if let Some(reply) = self.close(value) {
                *self = Reader::new();
                return Ok(Some((reply, at)));
            }
        }
        Ok(None)
    }

    /// Adds bytes of the current line (none of them LF), within the line and reply bounds.
    fn take_line_bytes(&mut self, bytes: &[u8]) -> Result<(), RespError> {
        // One more than MAX_LINE for the CR that ends the line.
        if self.line.len() + bytes.len() > MAX_LINE + 1 {
            return Err(RespError::TooLarge);
        }
        self.count(bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn count(&mut self, bytes: usize) -> Result<(), RespError> {
        self.used += bytes;
        if self.used > MAX_REPLY {
            return Err(RespError::TooLarge);
        }
        Ok(())
    }

    /// Reads the finished line: a value, or `None` when it opened an array or a bulk string.
    fn end_line(&mut self) -> Result<Option<Reply>, RespError> {
        let line = std::mem::take(&mut self.line);
        // Every RESP line ends in CRLF, and a simple string or error contains neither CR nor LF
        // (protocol spec, "Simple strings"): a bare LF or a stray CR is a framing error.
        let Some(line) = line.strip_suffix(b"\r") else { return Err(RespError::Malformed("bare LF")) };
        if line.contains(&b'\r') {
            return Err(RespError::Malformed("CR inside a line"));
        }
        let (&kind, rest) = line.split_first().ok_or(RespError::Malformed("empty line"))?;
        let text =
            || std::str::from_utf8(rest).map(str::to_owned).map_err(|_| RespError::Malformed("not UTF-8"));
        Ok(Some(match kind {
            b'+' => Reply::Simple(text()?),
            b'-' => Reply::Error(text()?),
            b':' => Reply::Integer(integer(rest)?),
            b'$' => match length(rest)? {
                None => Reply::Nil,
                Some(n) if n > MAX_BULK || n + 2 > MAX_REPLY - self.used => return Err(RespError::TooLarge),
                Some(n) => {
                    self.bulk = Some((Vec::with_capacity(n + 2), n + 2));
                    return Ok(None);
                }
            },
            b'*' => match length(rest)? {
                None => Reply::Nil,
                Some(0) => Reply::Array(Vec::new()),
                Some(n) => {
                    self.elements = self.elements.saturating_add(n);
                    if self.elements > MAX_ELEMENTS || self.open.len() >= MAX_DEPTH {
                        return Err(RespError::TooLarge);
                    }
                    self.open.push((Vec::with_capacity(n), n));
                    return Ok(None);
                }
            },
            _ => return Err(RespError::Malformed("unknown reply type")),
        }))
    }

    /// Puts a finished value into the arrays it closes: the whole reply once none is open.
    fn close(&mut self, mut value: Reply) -> Option<Reply> {
        while let Some((items, declared)) = self.open.last_mut() {
            items.push(value);
            if items.len() < *declared {
                return None;
            }
            let (items, _) = self.open.pop()?;
            value = Reply::Array(items);
        }
        Some(value)
    }
}

fn integer(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::Malformed("not an integer"))
}

/// A bulk string's or array's length: `None` for -1 (nil), an error for other negatives.
fn length(digits: &[u8]) -> Result<Option<usize>, RespError> {
    match integer(digits)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::Malformed("negative length")),
        n => usize::try_from(n).map(Some).map_err(|_| RespError::TooLarge),
    }
}

#[cfg(test)]
#[path = "resp_tests.rs"]
mod tests;
