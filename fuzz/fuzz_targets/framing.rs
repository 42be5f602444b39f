//! The HTTP/1.1 framing watcher sees every byte a client sends. Whatever the bytes and however
//! they are split into reads, it must not panic, and its verdicts must not depend on the split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::framing::{FramingWatch, HeadVerdict};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let whole = FramingWatch::new();
    whole.feed(stream);
    let pieces = FramingWatch::new();
    for chunk in stream.chunks(usize::from(split).max(1)) {
        pieces.feed(chunk);
    }
    // Parking (conn_io.rs) trusts this: it must not depend on the split either.
    assert_eq!(whole.between_requests(), pieces.between_requests(), "boundary depends on the split");
    for _ in 0..8 {
        let (a, b) = (whole.next_verdict(), pieces.next_verdict());
        assert_eq!(a, b, "verdict depends on how the bytes were split");
        let _ = a == HeadVerdict::Clean;
    }
});
