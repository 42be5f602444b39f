//! A platform's response is read by nymgate's HTTP/1.1 codec (src/upstream/h1.rs). The platform
//! is trusted to be the platform, not to be well-behaved: whatever the bytes and however they are
//! split into reads, the codec must not panic, and what it makes of them must not depend on the
//! split.
#![no_main]
use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use nymgate::upstream::h1::{parse_final_response_head, ChunkedDecoder, Decoded, Framing, Interim};

/// The head (or its error) and, for a chunked body, the body bytes and how it ended.
fn read(stream: &[u8], step: usize, method: &Method) -> String {
    let mut buf = BytesMut::new();
    let mut pieces = stream.chunks(step);
    // Interim (1xx) heads are skipped and counted as client.rs does, across reads.
    let mut interim = Interim::default();
    let head = loop {
        match parse_final_response_head(&mut buf, method, &mut interim) {
            Ok(Some(head)) => break head,
            Ok(None) => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return "incomplete head".into(),
            },
            Err(error) => return format!("head: {error}"),
        }
    };
    let mut outcome = format!("{} {:?} {:?} {}", head.status, head.framing, head.headers, head.keep_alive);
    if head.framing != Framing::Chunked {
        return outcome;
    }
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(data)) => {
                assert!(!data.is_empty(), "empty data frame");
                body.extend_from_slice(&data);
            }
            Ok(Decoded::Done) => break outcome.push_str(&format!(" body {body:?} rest {}", buf.len() + pieces.map(<[u8]>::len).sum::<usize>())),
            Ok(Decoded::NeedMore) => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => break outcome.push_str(&format!(" body {body:?} incomplete")),
            },
            Err(error) => break outcome.push_str(&format!(" body {body:?} error {error}")),
        }
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let method = if split & 0x80 != 0 { Method::HEAD } else { Method::GET };
    let whole = read(stream, stream.len().max(1), &method);
    let pieces = read(stream, usize::from(split & 0x7f).max(1), &method);
    assert_eq!(whole, pieces, "the outcome depends on how the bytes were split");
});
