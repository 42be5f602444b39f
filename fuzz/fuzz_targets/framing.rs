//! The HTTP/1.1 framing watcher sees every byte a client sends. Whatever the bytes and however
//! they are split into reads, it must not panic, its verdicts must not depend on the split, and
//! once a verdict refuses, every later one refuses too (no byte can turn the judgement off).
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
    let mut refused = false;
    for _ in 0..16 {
        let (a, b) = (whole.next_verdict(), pieces.next_verdict());
        assert_eq!(a, b, "verdict depends on how the bytes were split");
        assert!(!(refused && a == HeadVerdict::Clean), "a clean verdict after a refusing one");
        refused |= a != HeadVerdict::Clean;
        assert_eq!(a.fault().is_none(), a == HeadVerdict::Clean);
    }
    // Sitting between requests, whatever came before, the next bytes are a head: one with both
    // framings is never clean.
    let smuggling = FramingWatch::new();
    smuggling.feed(stream);
    if let Some(heads) = smuggling.between_requests() {
        smuggling.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        for _ in 0..heads {
            smuggling.next_verdict();
        }
        assert_ne!(smuggling.next_verdict(), HeadVerdict::Clean, "the smuggling head was judged clean");
    }
});
