//! The first-flight judgement by class: a valid ClientHello in any split into records is
//! complete exactly when its last record is, and every rule refuses at the byte that breaks it,
//! whatever comes after. End-to-end tests over loopback are in tls_stream_tests.rs and
//! tests/tls_handshake.rs.

use super::*;
use proptest::prelude::*;

/// The ClientHello handshake message (header included) a real rustls client sends.
pub(crate) fn real_client_hello() -> Vec<u8> {
    crate::tls::install_crypto_provider();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut flight = Vec::new();
    client.write_tls(&mut flight).unwrap();
    // rustls sends it in one record.
    assert_eq!(flight[0], CONTENT_HANDSHAKE);
    let len = usize::from(u16::from_be_bytes([flight[3], flight[4]]));
    assert_eq!(flight.len(), RECORD_HEADER + len);
    flight[RECORD_HEADER..].to_vec()
}

/// `message` in handshake records of the given fragment sizes (the last takes the rest).
pub(crate) fn in_records(message: &[u8], sizes: &[usize], version: [u8; 2]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut sizes = sizes.iter();
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(rest.len()).clamp(1, rest.len().min(MAX_RECORD));
        let (fragment, tail) = rest.split_at(size);
        out.extend([CONTENT_HANDSHAKE, version[0], version[1]]);
        out.extend((fragment.len() as u16).to_be_bytes());
        out.extend(fragment);
        rest = tail;
    }
    out
}

/// A handshake message of type `msg_type` declaring `length`, with `body` bytes of it present.
fn message(msg_type: u8, length: usize, body: usize) -> Vec<u8> {
    let mut out = vec![msg_type, (length >> 16) as u8, (length >> 8) as u8, length as u8];
    out.extend(std::iter::repeat_n(0x42, body));
    out
}

#[test]
fn a_real_client_hello_in_one_record_is_complete() {
    let hello = real_client_hello();
    let flight = in_records(&hello, &[], [3, 1]);
    assert_eq!(scan(&flight), Scan::Complete { flight: flight.len() });
    // Whatever follows the flight is not part of it.
    let mut more = flight.clone();
    more.extend([23, 3, 3, 0, 1, 0]);
    assert_eq!(scan(&more), Scan::Complete { flight: flight.len() });
}

#[test]
fn client_hello_of_16_kib_is_accepted_and_one_byte_more_is_refused() {
    let at_bound = in_records(&message(CLIENT_HELLO, MAX_CLIENT_HELLO, MAX_CLIENT_HELLO), &[], [3, 3]);
    assert_eq!(scan(&at_bound), Scan::Complete { flight: at_bound.len() });
    let over = in_records(&message(CLIENT_HELLO, MAX_CLIENT_HELLO + 1, 100), &[], [3, 3]);
    assert_eq!(scan(&over), Scan::Refused(Refusal::ClientHelloTooLarge));
    // The largest declarable length too (2^24 - 1).
    let huge = in_records(&message(CLIENT_HELLO, 0xff_ffff, 0), &[], [3, 3]);
    assert_eq!(scan(&huge), Scan::Refused(Refusal::ClientHelloTooLarge));
}

#[test]
fn each_record_rule_refuses_at_the_header() {
    let cases: &[(&[u8], Refusal)] = &[
        (b"GET / HTTP/1.1\r\n", Refusal::NotHandshake),
        (&[23, 3, 3, 0, 5], Refusal::NotHandshake),
        (&[21, 3, 3, 0, 2], Refusal::NotHandshake),
        (&[22, 2, 0, 0, 5], Refusal::BadVersion),
        (&[22, 3, 4, 0, 5], Refusal::BadVersion),
        (&[22, 3, 1, 0x40, 0x01], Refusal::RecordOverflow),
        (&[22, 3, 1, 0, 0], Refusal::EmptyRecord),
        (&[22, 3, 1, 0, 5, 2], Refusal::NotClientHello),
    ];
    for (bytes, refusal) in cases {
        assert_eq!(scan(bytes), Scan::Refused(*refusal), "{bytes:?}");
    }
    // The SSLv2-compatible hello (RFC 5246 Appendix E.2) has no record header of this form.
    assert_eq!(scan(&[0x80, 0x2e, 1, 3, 1]), Scan::Refused(Refusal::NotHandshake));
}

#[test]
fn records_after_the_first_are_judged_too() {
    let hello = real_client_hello();
    let mut flight = in_records(&hello[..10], &[], [3, 3]);
    flight.extend([21, 3, 3, 0, 2, 1, 0]);
    assert_eq!(scan(&flight), Scan::Refused(Refusal::NotHandshake));
}

#[test]
fn a_flight_over_32_kib_is_refused_at_the_record_that_passes_it() {
    // A 16 KiB ClientHello in 4-byte fragments: 9 bytes a record, past 32 KiB at record 3,641.
    let flight = in_records(&message(CLIENT_HELLO, MAX_CLIENT_HELLO, MAX_CLIENT_HELLO), &[4; 5000], [3, 3]);
    assert_eq!(scan(&flight), Scan::Refused(Refusal::FlightTooLong));
    let first_over = (MAX_FLIGHT / 9 + 1) * 9;
    assert_eq!(scan(&flight[..first_over - 9]), Scan::Incomplete { want: first_over - 9 + RECORD_HEADER });
    assert_eq!(scan(&flight[..first_over - 4]), Scan::Refused(Refusal::FlightTooLong));
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..8, 1usize..600, 1usize..=MAX_RECORD], 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A valid ClientHello in any split into records: every prefix is incomplete (and asks for
    /// no byte past the record in flight), the whole flight is complete, at its exact length.
    #[test]
    fn a_valid_client_hello_in_any_split_is_complete_exactly_at_its_end(
        sizes in splits(),
        version in 0u8..=3,
        padding in 0usize..(MAX_CLIENT_HELLO - 2048),
    ) {
        let mut hello = real_client_hello();
        // Longer ClientHellos up to the bound, as a client with many extensions sends.
        let length = hello.len() - HANDSHAKE_HEADER + padding;
        hello.extend(std::iter::repeat_n(0, padding));
        hello[1..4].copy_from_slice(&(length as u32).to_be_bytes()[1..]);
        let flight = in_records(&hello, &sizes, [3, version]);
        prop_assume!(flight.len() <= MAX_FLIGHT);
        prop_assert_eq!(scan(&flight), Scan::Complete { flight: flight.len() });
        for cut in (0..flight.len()).step_by(flight.len() / 64 + 1).chain([flight.len() - 1]) {
            match scan(&flight[..cut]) {
                Scan::Incomplete { want } => prop_assert!(want > cut && want <= flight.len()),
                other => prop_assert!(false, "prefix of {} bytes: {:?}", cut, other),
            }
        }
    }

    /// A ClientHello declared over the bound, in any split, is refused as soon as its length is
    /// there and never asks for a byte more.
    #[test]
    fn a_client_hello_declared_over_the_bound_is_refused_in_any_split(
        sizes in splits(),
        length in (MAX_CLIENT_HELLO + 1)..=0xff_ffff,
        present in 0usize..20_000,
    ) {
        let flight = in_records(&message(CLIENT_HELLO, length, present), &sizes, [3, 3]);
        // The record holding the length's last byte ends where the refusal is due.
        let mut seen = 0;
        let mut at = 0;
        let judged_at = loop {
            let len = usize::from(u16::from_be_bytes([flight[at + 3], flight[at + 4]]));
            let last = at + RECORD_HEADER + (HANDSHAKE_HEADER - seen).min(len);
            seen += len.min(HANDSHAKE_HEADER - seen);
            if seen == HANDSHAKE_HEADER {
                break last;
            }
            at += RECORD_HEADER + len;
        };
        if judged_at <= MAX_FLIGHT {
            prop_assert_eq!(scan(&flight), Scan::Refused(Refusal::ClientHelloTooLarge));
            prop_assert_eq!(scan(&flight[..judged_at]), Scan::Refused(Refusal::ClientHelloTooLarge));
            let before = scan(&flight[..judged_at - 1]);
            prop_assert!(matches!(before, Scan::Incomplete { .. }), "one byte before: {:?}", before);
        } else {
            prop_assert_eq!(scan(&flight), Scan::Refused(Refusal::FlightTooLong));
        }
    }

    /// Whatever the bytes, the judgement never panics and never asks past 32 KiB; the same
    /// bytes with more after them never turn a refusal into anything else.
    #[test]
    fn any_bytes_are_judged_within_the_bound(bytes in prop::collection::vec(any::<u8>(), 0..64), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = bytes;
        // Mostly valid headers, so the later rules are reached.
        if bytes.len() >= 3 { bytes[0] = CONTENT_HANDSHAKE; bytes[1] = 3; bytes[2] %= 4; }
        let judged = scan(&bytes);
        if let Scan::Incomplete { want } = judged {
            prop_assert!(want > bytes.len() && want <= MAX_FLIGHT);
        }
        let mut longer = bytes.clone();
        longer.extend(&tail);
        if let Scan::Refused(refusal) = judged {
            prop_assert_eq!(scan(&longer), Scan::Refused(refusal));
        }
    }
}
