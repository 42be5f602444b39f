//! Unit tests of the HTTP/1.1 codec toward the platform (h1.rs).
use super::*;

fn head(bytes: &[u8]) -> Result<Option<ResponseHead>, H1Error> {
    parse_response_head(&mut BytesMut::from(bytes), &Method::GET)
}

fn framing(bytes: &[u8]) -> Result<Framing, H1Error> {
    head(bytes).map(|h| h.expect("complete head").framing)
}

#[test]
fn a_complete_head_is_taken_from_the_buffer_and_the_body_stays() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..]);
    let head = parse_response_head(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.keep_alive);
    let values: Vec<_> = head.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(values, ["1", "2"]);
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn a_partial_head_waits_and_leaves_the_buffer_alone() {
    let partial = b"HTTP/1.1 200 OK\r\nContent-Len";
    let mut buf = BytesMut::from(&partial[..]);
    assert!(parse_response_head(&mut buf, &Method::GET).unwrap().is_none());
    assert_eq!(&buf[..], partial);
}

#[test]
fn heads_beyond_the_limits_are_refused() {
    let mut long = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    long.resize(MAX_HEAD_BYTES + 1, b'a');
    assert_eq!(head(&long).unwrap_err(), H1Error::HeadTooLarge, "partial and already too large");
    long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head(&long).unwrap_err(), H1Error::HeadTooLarge, "complete but too large");

    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(head(&many).unwrap_err(), H1Error::TooManyHeaders);
}

#[test]
fn malformed_heads_are_refused() {
    for bad in [
        &b"HTTP/2.0 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
    ] {
        assert!(head(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(head(b"HTTP/1.1 600 Nope\r\n\r\n").unwrap_err(), H1Error::Status);
    assert_eq!(head(b"HTTP/1.1 099 Nope\r\n\r\n").unwrap_err(), H1Error::Status);
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Ok(Framing::Length(0)));
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(Framing::Chunked));
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \r\n\r\n"), Ok(Framing::Chunked));
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(Framing::UntilClose));
    assert_eq!(framing(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"), Ok(Framing::Empty));
    assert_eq!(
        framing(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(Framing::Empty)
    );
    assert_eq!(framing(b"HTTP/1.1 100 Continue\r\n\r\n"), Ok(Framing::Empty));
    let to_head = parse_response_head(
        &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]),
        &Method::HEAD,
    );
    assert_eq!(to_head.unwrap().unwrap().framing, Framing::Empty);
    // Repeated identical lengths are one length.
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
        Ok(Framing::Length(7))
    );
}

#[test]
fn framing_that_could_split_a_response_is_refused() {
    let cases: [(&[u8], H1Error); 10] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            H1Error::ConflictingFraming,
        ),
        (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1Error::ConflictingFraming),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", H1Error::UnsupportedTransferCoding),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            H1Error::UnsupportedTransferCoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            H1Error::UnsupportedTransferCoding,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", H1Error::UnsupportedTransferCoding),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", H1Error::BadContentLength),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", H1Error::BadContentLength),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", H1Error::BadContentLength),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", H1Error::BadContentLength),
    ];
    for (bytes, want) in cases {
        assert_eq!(framing(bytes), Err(want), "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn interim_responses_are_skipped_up_to_their_bounds() {
    let continue_ = b"HTTP/1.1 100 Continue\r\n\r\n";
    let last = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let read = |interims: usize, each: &[u8]| {
        let mut buf = BytesMut::new();
        for _ in 0..interims {
            buf.extend_from_slice(each);
        }
        buf.extend_from_slice(last);
        let mut interim = Interim::default();
        parse_final_response_head(&mut buf, &Method::GET, &mut interim).map(|h| h.map(|h| h.status))
    };
    assert_eq!(read(MAX_INTERIM_RESPONSES, continue_), Ok(Some(StatusCode::OK)));
    assert_eq!(read(MAX_INTERIM_RESPONSES + 1, continue_), Err(H1Error::TooManyInterim));
    // Few but large: the bytes bound.
    let big = format!("HTTP/1.1 103 Early Hints\r\nLink: <{}>\r\n\r\n", "a".repeat(20_000));
    assert_eq!(read(3, big.as_bytes()), Ok(Some(StatusCode::OK)));
    assert_eq!(read(4, big.as_bytes()), Err(H1Error::TooManyInterim));
    // A 101 is final; the count carries over calls (a head per read).
    let mut interim = Interim::default();
    for _ in 0..MAX_INTERIM_RESPONSES {
        let mut buf = BytesMut::from(&continue_[..]);
        assert!(parse_final_response_head(&mut buf, &Method::GET, &mut interim).unwrap().is_none());
    }
    let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]);
    let head = parse_final_response_head(&mut buf, &Method::GET, &mut interim).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
    let mut buf = BytesMut::from(&continue_[..]);
    assert_eq!(
        parse_final_response_head(&mut buf, &Method::GET, &mut interim).unwrap_err(),
        H1Error::TooManyInterim
    );
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    let keep = |bytes: &[u8]| head(bytes).unwrap().unwrap().keep_alive;
    assert!(keep(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep(b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(keep(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep(b"HTTP/1.1 200 OK\r\n\r\n"), "a body delimited by the close ends the connection");
}

#[test]
fn the_request_head_is_written_in_origin_form() {
    let request = http::Request::builder()
        .method("POST")
        .uri("http://platform.internal:8080/a/b?x=1")
        .header("host", "learn.example")
        .header("content-length", "3")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let mut out = Vec::new();
    encode_request_head(&parts, &mut out);
    assert_eq!(out, b"POST /a/b?x=1 HTTP/1.1\r\nhost: learn.example\r\ncontent-length: 3\r\n\r\n");
}

/// Decodes all of `input` fed in pieces of `step` bytes; returns the body.
fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, H1Error> {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut pieces = input.chunks(step.max(1));
    loop {
        match decoder.decode(&mut buf)? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::Done => return Ok(body),
            Decoded::NeedMore => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return Err(H1Error::BadChunk("input ended")),
            },
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_read_sizes() {
    let input = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n";
    for step in [1, 2, 3, 7, 64] {
        assert_eq!(decode_all(input, step).unwrap(), b"hello world", "step {step}");
    }
    assert_eq!(decode_all(b"00A \t; ext\r\n0123456789\r\n0\r\n\r\n", 4).unwrap(), b"0123456789");
    assert_eq!(decode_all(b"0\r\n\r\n", 1).unwrap(), b"");
}

#[test]
fn the_decoder_stops_at_the_end_and_leaves_what_follows() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"a")));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
    assert!(decoder.is_done());
    assert_eq!(&buf[..], b"HTTP/1.1 200 OK");
}

#[test]
fn malformed_chunked_bodies_are_refused() {
    let too_long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
    let too_long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILER_BYTES));
    for bad in [
        &b"\r\n"[..],                // no size
        b"g\r\n",                    // not hex
        b"5\nhello\r\n0\r\n\r\n",    // bare LF after the size
        b"5\r\nhelloX\r\n",          // data longer than its size
        b"5\r\nhello\n0\r\n\r\n",    // bare LF after the data
        b"10000000000000000\r\n",    // 2^64: overflows
        b"1;\x01\r\na\r\n0\r\n\r\n", // control byte in an extension
        b"0\r\nX: y\n\r\n",          // bare LF in a trailer
        b"0\r\n\n",                  // bare LF as the last line
        b"-1\r\n",
        too_long_ext.as_bytes(),
        too_long_trailer.as_bytes(),
    ] {
        assert!(
            matches!(decode_all(bad, 3), Err(H1Error::BadChunk(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn chunk_headers_round_trip_through_the_decoder() {
    let mut encoded = BytesMut::new();
    for piece in [&b"abc"[..], &[7u8; 300][..], b"z"] {
        chunk_header(piece.len(), &mut encoded);
        encoded.extend_from_slice(piece);
        encoded.extend_from_slice(CHUNK_END);
    }
    encoded.extend_from_slice(LAST_CHUNK);
    let body = decode_all(&encoded, 5).unwrap();
    assert_eq!(body.len(), 304);
    assert!(body.starts_with(b"abc") && body.ends_with(b"z"));
}
