//! Replies from the shared store (Redis) are bytes from the network: whatever a broken or
//! hostile server sends, the incremental reader must not panic or hang, must keep within its
//! bounds, and the replies it finds (and the error that stops it) must not depend on how the
//! bytes arrived: whole, split at the fuzzer's point, or a byte at a time.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::store::resp::{self, Reader, Reply, MAX_REPLY};

/// Every reply in `chunks`, read in order by one reader after another, and the error that
/// ended them if one did.
fn replies(chunks: &[&[u8]]) -> (Vec<Reply>, Option<resp::RespError>) {
    let mut reader = Reader::new();
    let mut out = Vec::new();
    // Bytes of the reply being read so far, across chunks: never beyond the bound.
    let mut in_reply = 0;
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            match reader.feed(rest) {
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= rest.len());
                    assert!(in_reply + used <= MAX_REPLY, "a reply over the bound was accepted");
                    in_reply = 0;
                    out.push(reply);
                    rest = &rest[used..];
                }
                Ok(None) => {
                    in_reply += rest.len();
                    assert!(in_reply <= MAX_REPLY, "an incomplete reply over the bound was kept");
                    break;
                }
                Err(error) => return (out, Some(error)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((split, stream)) = data.split_first_chunk::<2>() else { return };
    let cut = usize::from(u16::from_le_bytes(*split)) % (stream.len() + 1);
    let whole = replies(&[stream]);
    assert_eq!(replies(&[&stream[..cut], &stream[cut..]]), whole, "replies depend on where the bytes split");
    if stream.len() <= 4096 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(replies(&bytes), whole, "replies depend on how the bytes were split");
    }
    // What nymgate sends is read back as the same parts, when within a reply's bounds.
    let parts: Vec<&[u8]> = stream.split(|b| *b == 0).take(8).collect();
    let encoded = resp::command(&parts);
    match resp::parse(&encoded) {
        Ok(Some((Reply::Array(items), used))) => {
            assert_eq!(used, encoded.len());
            assert_eq!(items, parts.iter().map(|p| Reply::Bulk(p.to_vec())).collect::<Vec<_>>());
        }
        Err(resp::RespError::TooLarge)
            if encoded.len() > MAX_REPLY || parts.iter().any(|p| p.len() > resp::MAX_BULK) => {}
        other => panic!("a command does not parse back: {other:?}"),
    }
});
