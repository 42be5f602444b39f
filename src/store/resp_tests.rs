use proptest::prelude::*;

use super::*;
use crate::store::hostile_redis::encode;

/// Every reply in `chunks` (bytes in the order they arrive), one fresh reader after another,
/// and the error that ended them if one did.
fn replies(chunks: &[&[u8]]) -> (Vec<Reply>, Option<RespError>) {
    let mut reader = Reader::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            match reader.feed(rest) {
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= rest.len());
                    out.push(reply);
                    rest = &rest[used..];
                }
                Ok(None) => break,
                Err(error) => return (out, Some(error)),
            }
        }
    }
    (out, None)
}

/// `stream` split at every byte position, and fed one byte at a time, reads as it does whole.
fn assert_split_invariant(stream: &[u8]) {
    let whole = replies(&[stream]);
    for cut in 0..=stream.len() {
        assert_eq!(replies(&[&stream[..cut], &stream[cut..]]), whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(replies(&bytes), whole, "one byte at a time");
}

#[test]
fn encodes_commands_as_bulk_string_arrays() {
    assert_eq!(command(&[b"SET", b"k", b""]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

#[test]
fn parses_every_reply_kind_in_any_split() {
    let stream =
        b"+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n*0\r\n";
    let expected = vec![
        Reply::Simple("OK".into()),
        Reply::Error("ERR wrong".into()),
        Reply::Integer(42),
        Reply::Bulk(b"he\r\no".to_vec()),
        Reply::Nil,
        Reply::Array(vec![Reply::Integer(1), Reply::Array(vec![Reply::Bulk(vec![])])]),
        Reply::Nil,
        Reply::Array(vec![]),
    ];
    assert_eq!(replies(&[stream]), (expected, None));
    assert_split_invariant(stream);
    // A prefix is incomplete, never an error.
    for cut in 0..stream.len() {
        assert!(replies(&[&stream[..cut]]).1.is_none(), "cut at {cut}");
    }
}

#[test]
fn refuses_malformed_replies() {
    for bad in [
        &b"?x\r\n"[..],
        b":12a\r\n",
        b"$-5\r\n",
        b"$3\r\nabcXY",
        b"*-2\r\n",
        b"+\xff\r\n",
        b"\r\n",
        b"+OK\n",
        b"+O\rK\r\n",
        b":\r\n",
    ] {
        assert!(matches!(parse(bad), Err(RespError::Malformed(_))), "{bad:?}");
    }
}

#[test]
fn refuses_replies_beyond_each_bound_before_reading_them() {
    // Lengths are judged when declared: no byte of the bulk or array has to arrive.
    assert_eq!(parse(format!("${}\r\n", MAX_BULK + 1).as_bytes()), Err(RespError::TooLarge));
    assert_eq!(parse(b"$99999999999999999999\r\n"), Err(RespError::Malformed("not an integer")));
    assert_eq!(parse(b"$9223372036854775807\r\n"), Err(RespError::TooLarge));
    assert_eq!(parse(format!("*{}\r\n", MAX_ELEMENTS + 1).as_bytes()), Err(RespError::TooLarge));
    // Elements count over all arrays of a reply, not per array.
    let half = format!("*2\r\n*{n}\r\n", n = MAX_ELEMENTS / 2);
    let nested = [
        half.as_bytes(),
        &b":1\r\n".repeat(MAX_ELEMENTS / 2),
        format!("*{}\r\n", MAX_ELEMENTS / 2).as_bytes(),
    ]
    .concat();
    assert_eq!(parse(&nested), Err(RespError::TooLarge));
    assert_eq!(parse(&[b'+'; MAX_LINE + 2]), Err(RespError::TooLarge));
    // Total bytes: many bulk strings, each allowed, not all together.
    let bulk = encode(&Reply::Bulk(vec![b'x'; 1000]));
    let many = [format!("*{MAX_ELEMENTS}\r\n").into_bytes(), bulk.repeat(MAX_ELEMENTS)].concat();
    assert_eq!(parse(&many), Err(RespError::TooLarge));
}

#[test]
fn accepts_replies_at_each_bound() {
    let at_bounds = [
        Reply::Bulk(vec![b'x'; MAX_BULK]),
        Reply::Simple("x".repeat(MAX_LINE - 1)),
        Reply::Array(vec![Reply::Integer(1); MAX_ELEMENTS]),
        (0..MAX_DEPTH).fold(Reply::Integer(1), |inner, _| Reply::Array(vec![inner])),
    ];
    for reply in at_bounds {
        let bytes = encode(&reply);
        assert_eq!(parse(&bytes), Ok(Some((reply, bytes.len()))));
    }
}

#[test]
fn refuses_nesting_deeper_than_max_depth() {
    let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
    assert_eq!(parse(&deep), Err(RespError::TooLarge));
    // Fed a byte at a time, the same: the reader never holds more than MAX_DEPTH open arrays.
    assert_eq!(replies(&deep.chunks(1).collect::<Vec<_>>()).1, Some(RespError::TooLarge));
}

#[test]
fn a_reply_ends_where_its_bytes_end_and_the_rest_is_not_taken() {
    let mut reader = Reader::new();
    assert_eq!(reader.feed(b"+OK\r\n$-1\r\n"), Ok(Some((Reply::Simple("OK".into()), 5))));
    assert_eq!(reader.feed(b"$-1\r\n"), Ok(Some((Reply::Nil, 5))));
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(Reply::Simple),
        "[A-Z]{1,6} [a-z ]{0,12}".prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Reply::Bulk),
        Just(Reply::Nil),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| proptest::collection::vec(inner, 0..5).prop_map(Reply::Array))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Split invariance over replies Redis could send: whole, split at every byte, or a byte
    /// at a time, the same replies come out, and they are the ones sent.
    #[test]
    fn replies_split_at_every_byte_parse_as_whole(sent in proptest::collection::vec(reply_strategy(), 1..4)) {
        let stream: Vec<u8> = sent.iter().flat_map(encode).collect();
        prop_assert_eq!(replies(&[&stream]), (sent, None));
        assert_split_invariant(&stream);
    }

    /// The same over bytes Redis would never send (broken framing, truncations, garbage in
    /// RESP's alphabet): the result, error included, does not depend on where the reads split.
    #[test]
    fn any_bytes_split_at_every_byte_parse_as_whole(
        stream in proptest::collection::vec(prop_oneof![
            Just(b'*'), Just(b'$'), Just(b'+'), Just(b'-'), Just(b':'), Just(b'\r'), Just(b'\n'),
            Just(b'1'), Just(b'0'), Just(b'2'), any::<u8>(),
        ], 0..48)
    ) {
        assert_split_invariant(&stream);
    }
}
