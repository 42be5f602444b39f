//! Replies from the shared store (Redis) are bytes from the network: whatever a broken or
//! hostile server sends, the parser must not panic or hang, and the replies it finds must not
//! depend on how the bytes arrived.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::store::resp::{self, Reply};

fn replies(stream: &[u8], split: usize) -> (Vec<Reply>, bool) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(split.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match resp::parse(&buf) {
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= buf.len());
                    out.push(reply);
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let (whole, whole_failed) = replies(stream, stream.len());
    let (pieces, pieces_failed) = replies(stream, usize::from(split));
    if !whole_failed && !pieces_failed {
        assert_eq!(whole, pieces, "replies depend on how the bytes were split");
    }
    // What nymgate sends is read back as the same parts.
    let parts: Vec<&[u8]> = stream.split(|b| *b == 0).take(8).collect();
    let encoded = resp::command(&parts);
    let Ok(Some((Reply::Array(items), used))) = resp::parse(&encoded) else {
        if encoded.len() > 1 << 20 { return; }
        panic!("a command does not parse back");
    };
    assert_eq!(used, encoded.len());
    assert_eq!(items, parts.iter().map(|p| Reply::Bulk(p.to_vec())).collect::<Vec<_>>());
});
