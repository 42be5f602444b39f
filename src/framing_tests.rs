//! The framing watcher: pipelined framing, verdicts, poisoning, and a property test over
//! generated request sequences.

use super::*;
use proptest::prelude::*;

/// The verdicts of the first `n` requests, fed in pieces of `split` bytes.
fn verdicts_n(stream: &[u8], split: usize, n: usize) -> Vec<HeadVerdict> {
    let watch = FramingWatch::new();
    for piece in stream.chunks(split.max(1)) {
        watch.feed(piece);
    }
    (0..n).map(|_| watch.next_verdict()).collect()
}

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
            verdicts_n(PIPELINE, split, 6),
            vec![Clean, Clean, Clean, Clean, LengthAndChunked, Unfollowable],
            "split {split}"
        );
    }
}

#[test]
fn garbage_refuses_what_follows() {
    use HeadVerdict::*;
    let stream =
        b"NOT HTTP\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(verdicts_n(stream, 5, 2), vec![Malformed, Unfollowable]);
    // A chunk line the watcher cannot read: the request it belongs to was clean, the next is not.
    let watch = FramingWatch::new();
    watch.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!(watch.next_verdict(), Clean);
    assert_eq!(watch.next_verdict(), Unfollowable);
}

#[test]
fn a_head_hyper_hands_over_unseen_is_refused() {
    let watch = FramingWatch::new();
    watch.feed(b"GET / HTTP/1.1\r\nHost: h\r\n");
    assert_eq!(watch.next_verdict(), HeadVerdict::Unfollowable, "the watcher never saw it whole");
}

#[test]
fn head_faults_are_named() {
    use HeadVerdict::*;
    let cases: &[(&[u8], HeadVerdict)] = &[
        (b"GET / HTTP/1.1\nHost: h\n\n", BareLineEnd),
        (b"GET / HTTP/1.1\r\nHost: h\n\r\n", BareLineEnd),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\n", BareLineEnd),
        (b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", BareLineEnd),
        (b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", BareLineEnd),
        (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", Malformed),
        (b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", Malformed),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", Malformed),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BadTransferEncoding),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", BadTransferEncoding),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            BadTransferEncoding,
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BadTransferEncoding),
        (b"POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\ncontent-length: 3\r\n\r\n", LengthAndChunked),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", BadContentLength),
        (b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", BadContentLength),
        (b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", BadContentLength),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", BadContentLength),
    ];
    for (stream, want) in cases {
        for split in [1, 3, 4096] {
            assert_eq!(
                verdicts_n(stream, split, 2),
                vec![*want, Unfollowable],
                "{:?} split {split}",
                String::from_utf8_lossy(stream)
            );
        }
    }
    // Spellings of one canonical framing are clean.
    for clean in [
        &b"POST / HTTP/1.1\r\nTRANSFER-ENCODING:  Chunked \r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\ncontent-length: 007\r\n\r\n1234567",
        b"\r\n\r\nGET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ] {
        assert_eq!(verdicts_n(clean, 2, 1), vec![Clean], "{:?}", String::from_utf8_lossy(clean));
    }
}

#[test]
fn unfollowable_bodies_poison_the_connection() {
    use HeadVerdict::*;
    let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
    let long_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    for body in [
        "1\r\nxy\r\n0\r\n\r\n",       // chunk data longer than its size
        "1\nx\r\n0\r\n\r\n",          // bare LF after the size
        "1 2\r\nx\r\n0\r\n\r\n",      // digits after blanks
        "1;a\nb\r\nx\r\n0\r\n\r\n",   // LF in an extension
        "0\r\nX: 1\nY: 2\r\n\r\n",    // bare LF in the trailers
        "0\r\n\rX\r\n\r\n",           // CR without LF in the trailers
        "0\r\nX: 1\r\n fold\r\n\r\n", // obs-fold in the trailers
        "ffffffffffffffffff\r\n",     // a size past u64
        &long_ext,
    ] {
        let stream = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        assert_eq!(verdicts_n(stream.as_bytes(), 7, 2), vec![Clean, Unfollowable], "{body:?}");
    }
    assert_eq!(verdicts_n(long_head.as_bytes(), 4096, 1), vec![Unfollowable]);
    let connect = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(verdicts_n(connect, 5, 2), vec![Clean, Unfollowable]);
}

#[test]
fn an_upgrade_header_does_not_stop_the_watch_but_a_101_does() {
    use HeadVerdict::*;
    let stream = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(verdicts_n(stream, 1, 2), vec![Clean, LengthAndChunked]);
    let watch = FramingWatch::new();
    watch.feed(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert_eq!(watch.between_requests(), Some(1), "still watching after an Upgrade header");
    watch.upgraded();
    watch.feed(b"\x81\x05hello");
    assert_eq!(watch.between_requests(), None, "after a 101 the bytes are not HTTP");
    assert_eq!(watch.next_verdict(), Clean);
    assert_eq!(watch.next_verdict(), Unfollowable);
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
    watch.feed(b"GET / HTTP/1.1\nHost: h\n\n");
    assert_eq!(watch.between_requests(), None, "lost: never parks");
}

#[test]
fn verdict_order_matches_requests() {
    let watch = FramingWatch::new();
    watch.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(watch.next_verdict(), HeadVerdict::Clean);
    assert_eq!(watch.next_verdict(), HeadVerdict::LengthAndChunked);
    assert_eq!(watch.next_verdict(), HeadVerdict::Unfollowable);
}

#[test]
fn many_pipelined_heads_keep_their_verdicts() {
    // No queue to overflow: a hundred clean heads read at once are each Clean.
    let stream = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".repeat(100);
    assert!(verdicts(&stream, 4096).iter().all(|v| *v == HeadVerdict::Clean));
    assert_eq!(verdicts(&stream, 4096).len(), 100);
}

/// One generated request: its bytes, and whether a front end could read its framing another
/// way (smuggling-shaped), and whether it is in the watcher's canonical subset.
#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    smuggling: bool,
    canonical: bool,
}

const TE_SPELLINGS: &[(&str, bool)] = &[
    ("Transfer-Encoding: chunked", true),
    ("transfer-encoding: CHUNKED", true),
    ("Transfer-Encoding:   chunked  ", true),
    ("Transfer-Encoding:\tChunked", true),
    ("Transfer-Encoding: gzip, chunked", false),
    ("Transfer-Encoding: chunked, identity", false),
    ("Transfer-Encoding: identity", false),
    ("Transfer-Encoding: xchunked", false),
    ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", false),
    ("Transfer-Encoding : chunked", false),
    ("Transfer-Encoding:\r\n chunked", false),
    ("X: y\r\nTransfer-Encoding: chunked\0", false),
];

const CL_SPELLINGS: &[(&str, bool)] = &[
    ("Content-Length: 5", true),
    ("content-length:5", true),
    ("CONTENT-LENGTH:  05 ", true),
    ("Content-Length: 5, 5", false),
    ("Content-Length: +5", false),
    ("Content-Length: 5\r\nContent-Length: 5", false),
    ("Content-Length: 5\r\ncontent-length: 6", false),
];

fn request() -> impl Strategy<Value = Generated> {
    // kind: 0 no body, 1 length, 2 chunked, 3 both; te/cl: which spelling; lf: bare LF ends.
    (0u8..4, 0..TE_SPELLINGS.len(), 0..CL_SPELLINGS.len(), prop::bool::weighted(0.15), 0u8..3).prop_map(
        |(kind, te, cl, lf, chunks)| {
            let (te, te_ok) = TE_SPELLINGS[te];
            let (cl, cl_ok) = CL_SPELLINGS[cl];
            let mut fields = vec!["Host: h".to_owned()];
            let mut body = String::new();
            let (smuggling, mut canonical) = match kind {
                0 => (false, true),
                1 => {
                    fields.push(cl.to_owned());
                    body.push_str("hello");
                    (!cl_ok, cl_ok)
                }
                2 => {
                    fields.push(te.to_owned());
                    for i in 0..chunks {
                        body.push_str(&format!(
                            "{:x};e={i}\r\n{}\r\n",
                            i + 1,
                            "z".repeat(usize::from(i) + 1)
                        ));
                    }
                    body.push_str(if chunks == 2 { "0\r\nT: 1\r\n\r\n" } else { "0\r\n\r\n" });
                    (!te_ok, te_ok)
                }
                _ => {
                    fields.push(cl.to_owned());
                    fields.push(te.to_owned());
                    // The body a CL reader and a TE reader split differently.
                    body.push_str("0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
                    (true, false)
                }
            };
            let mut head = format!("POST /{kind} HTTP/1.1\r\n{}\r\n\r\n", fields.join("\r\n"));
            if lf {
                head = head.replace("\r\n", "\n");
                canonical = false;
            }
            Generated { bytes: [head.into_bytes(), body.into_bytes()].concat(), smuggling, canonical }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever came before on the connection, a smuggling-shaped request is never Clean, nor is
    /// anything after a head the watcher could not follow; canonical requests before that are
    /// Clean; and no verdict depends on how the bytes were split into reads.
    #[test]
    fn smuggling_shaped_requests_are_never_clean(requests in prop::collection::vec(request(), 1..6)) {
        let stream: Vec<u8> = requests.iter().flat_map(|r| r.bytes.clone()).collect();
        let n = requests.len();
        let whole = verdicts_n(&stream, stream.len(), n);
        let first_odd = requests.iter().position(|r| !r.canonical).unwrap_or(n);
        for (i, (request, verdict)) in requests.iter().zip(&whole).enumerate() {
            if request.smuggling || i >= first_odd {
                prop_assert_ne!(*verdict, HeadVerdict::Clean, "request {} of {:?}", i, String::from_utf8_lossy(&stream));
            } else {
                prop_assert_eq!(*verdict, HeadVerdict::Clean, "request {} of {:?}", i, String::from_utf8_lossy(&stream));
            }
        }
        prop_assert_eq!(&verdicts_n(&stream, 1, n), &whole);
        for at in 1..stream.len() {
            let watch = FramingWatch::new();
            watch.feed(&stream[..at]);
            watch.feed(&stream[at..]);
            let split: Vec<HeadVerdict> = (0..n).map(|_| watch.next_verdict()).collect();
            prop_assert_eq!(&split, &whole, "split at {}", at);
        }
    }
}
