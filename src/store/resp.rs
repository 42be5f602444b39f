//! RESP2, the Redis wire protocol (https://redis.io/docs/latest/develop/reference/protocol-spec/):
//! commands out as arrays of bulk strings, replies in. Only what nymgate's store needs, with
//! limits, because a reply is bytes from the network: a broken or hostile server must get an
//! error, never a panic or unbounded memory.

/// Largest bulk string accepted (nymgate stores small values: an issued code is under 2 KB).
const MAX_BULK: usize = 1 << 20;
/// Most elements in one array reply, and deepest nesting.
const MAX_ARRAY: usize = 1024;
const MAX_DEPTH: usize = 4;
/// Longest simple line (+OK, -ERR ..., :123): Redis error messages are short.
const MAX_LINE: usize = 4096;

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
    #[error("the store's reply is larger than nymgate accepts")]
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
/// and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::TooLarge);
    }
    let Some((line, mut used)) = line(buf)? else { return Ok(None) };
    let (&kind, rest) = line.split_first().ok_or(RespError::Malformed("empty line"))?;
    let text = || std::str::from_utf8(rest).map(str::to_owned).map_err(|_| RespError::Malformed("not UTF-8"));
    let reply = match kind {
        b'+' => Reply::Simple(text()?),
        b'-' => Reply::Error(text()?),
        b':' => Reply::Integer(integer(rest)?),
        b'$' => match integer(rest)? {
            -1 => Reply::Nil,
            n if n < 0 => return Err(RespError::Malformed("negative length")),
            n => {
                let n = usize::try_from(n).map_err(|_| RespError::TooLarge)?;
                if n > MAX_BULK {
                    return Err(RespError::TooLarge);
                }
                if buf.len() < used + n + 2 {
                    return Ok(None);
                }
                if &buf[used + n..used + n + 2] != b"\r\n" {
                    return Err(RespError::Malformed("bulk string without CRLF"));
                }
                let bulk = buf[used..used + n].to_vec();
                used += n + 2;
                Reply::Bulk(bulk)
            }
        },
        b'*' => match integer(rest)? {
            -1 => Reply::Nil,
            n if n < 0 => return Err(RespError::Malformed("negative length")),
            n => {
                let n = usize::try_from(n).map_err(|_| RespError::TooLarge)?;
                if n > MAX_ARRAY {
                    return Err(RespError::TooLarge);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let Some((item, took)) = parse_at(&buf[used..], depth + 1)? else { return Ok(None) };
                    items.push(item);
                    used += took;
                }
                Reply::Array(items)
            }
        },
        _ => return Err(RespError::Malformed("unknown reply type")),
    };
    Ok(Some((reply, used)))
}

/// The first CRLF-terminated line, without its CRLF, and the bytes it took.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > MAX_LINE => Err(RespError::TooLarge),
        Some(end) => Ok(Some((&buf[..end], end + 2))),
        None if buf.len() > MAX_LINE => Err(RespError::TooLarge),
        None => Ok(None),
    }
}

fn integer(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::Malformed("not an integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        assert_eq!(command(&[b"SET", b"k", b""]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn parses_every_reply_kind_in_any_split() {
        let stream =
            b"+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n";
        let expected = vec![
            Reply::Simple("OK".into()),
            Reply::Error("ERR wrong".into()),
            Reply::Integer(42),
            Reply::Bulk(b"he\r\no".to_vec()),
            Reply::Nil,
            Reply::Array(vec![Reply::Integer(1), Reply::Array(vec![Reply::Bulk(vec![])])]),
            Reply::Nil,
        ];
        // Every prefix is either incomplete or yields the replies in order.
        for cut in 0..=stream.len() {
            let mut got = Vec::new();
            let mut at = 0;
            while let Some((reply, used)) = parse(&stream[at..cut]).unwrap() {
                got.push(reply);
                at += used;
            }
            assert_eq!(got[..], expected[..got.len()], "cut at {cut}");
            if cut == stream.len() {
                assert_eq!(got, expected);
            }
        }
    }

    #[test]
    fn refuses_malformed_or_oversized_replies() {
        for bad in [&b"?x\r\n"[..], b":12a\r\n", b"$-5\r\n", b"$3\r\nabcXY", b"*-2\r\n", b"+\xff\r\n"] {
            assert!(matches!(parse(bad), Err(RespError::Malformed(_))), "{bad:?}");
        }
        assert_eq!(parse(b"$99999999999\r\n"), Err(RespError::TooLarge));
        assert_eq!(parse(b"*100000\r\n"), Err(RespError::TooLarge));
        assert_eq!(parse(&[b'+'; 5000]), Err(RespError::TooLarge));
        assert_eq!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), Err(RespError::TooLarge));
    }
}
