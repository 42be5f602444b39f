//! The client's first flight, judged before rustls or a buffer sees it.
//!
//! Why: rustls accepts a handshake message of up to 64 KiB and, on its unbuffered API, keeps the
//! fragments of one in the caller's buffer until the message is complete. A client that sent most
//! of a 64 KiB ClientHello and then nothing held about 64 KiB of nymgate's heap until
//! `limits.tls_handshake_timeout`: at the default connection cap, over a gigabyte (issue 27).
//! So the records that carry the ClientHello are read here first, by these rules:
//!
//! - Every record before the ClientHello is complete is a handshake record (content type 22,
//!   RFC 8446 §5.1: handshake messages are not interleaved with other record types), with a
//!   legacy version of {3,0} to {3,3} (RFC 8446 §5.1 allows {3,1} for an initial ClientHello and
//!   {3,3} otherwise; RFC 5246 Appendix E.1 lets a TLS 1.2 client send {3,0}), a length of at
//!   most 2^14 (RFC 8446 §5.1, else `record_overflow`), and never zero (§5.1: no zero-length
//!   fragments of handshake messages).
//! - The first handshake message is a ClientHello (msg_type 1, RFC 8446 §4) whose declared
//!   24-bit length is at most [`MAX_CLIENT_HELLO`] = 16 KiB. Real ones are 0.2 to 2 KB (a
//!   post-quantum key share included).
//! - The records carrying it take at most [`MAX_FLIGHT`] = 32 KiB on the wire. Fragmenting is
//!   legal (§5.1), so a ClientHello may come in many small records: this bound leaves room for
//!   a 16 KiB one in records of 2^9 bytes (RFC 6066's smallest max_fragment_length) and for a
//!   real 1.5 KB one in records of a single byte, and bounds what the judging reads.
//!
//! Anything else is refused as soon as the bytes that break a rule arrive (a fatal alert is sent
//! if the socket takes it at once, and the connection is closed), whatever the declared lengths
//! promise further on. The judgement ([`scan`]) is a pure function of the bytes received so far.
//!
//! On the public listener (TCP), the bytes stay in the kernel until the whole flight is there
//! ([`peek_flight`]): nymgate peeks at the socket's receive queue with one per-thread buffer of
//! [`MAX_FLIGHT`] bytes, and reads the flight into a buffer of its exact size only when it is
//! complete. A half-open handshake holds no buffer of nymgate's and no rustls state (rustls's
//! connection is made after), only its task and socket. The kernel holds what the client sent,
//! as it does for any connection whose data nymgate has not read yet: bounded by the socket's
//! receive buffer and the system's `tcp_mem`, under the kernel's memory pressure handling
//! (which collapses a queue of tiny segments). Reading early would only add a second copy.
//!
//! Peeking leaves the socket readable, so a wait for more bytes first clears tokio's readiness,
//! in the same step as the peek so that no arrival in between is missed (tokio's `try_io`
//! clears it only if no new event came since it looked), and then waits for the next arrival.
//! Each arrival costs one peek of at most [`MAX_FLIGHT`] bytes; a pause that grows with each
//! incomplete peek (1 ms doubling to [`MAX_PAUSE`]) bounds how often a client that sends its
//! ClientHello a byte at a time makes nymgate look. A real client's ClientHello is complete at
//! the first or second peek.
//!
//! Other streams (tests, fuzzing) read the flight instead ([`Scan::Incomplete`] says how far a
//! read may go: never past the record in flight, whose length is validated), into a buffer that
//! grows only to validated lengths.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest ClientHello accepted: its declared length (RFC 8446 §4), header excluded.
pub const MAX_CLIENT_HELLO: usize = 16_384;
/// The most bytes the records carrying the ClientHello may take, headers included.
pub const MAX_FLIGHT: usize = 32_768;
/// The longest pause between two peeks at an incomplete flight.
pub const MAX_PAUSE: Duration = Duration::from_millis(64);

/// RFC 8446 §5.1: a record's header is 5 bytes; a plaintext record carries at most 2^14.
const RECORD_HEADER: usize = 5;
const MAX_RECORD: usize = 16_384;
/// RFC 8446 §4: msg_type (1 byte) and a 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;

/// Why a first flight was refused. The names are the log's and the test's; no client byte is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A record of another content type than handshake (e.g. plain HTTP on the TLS port).
    NotHandshake,
    /// A record version outside {3,0}..{3,3}.
    BadVersion,
    /// A record longer than 2^14.
    RecordOverflow,
    /// A handshake record with no fragment.
    EmptyRecord,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// The ClientHello declares more than [`MAX_CLIENT_HELLO`].
    ClientHelloTooLarge,
    /// Its records would take more than [`MAX_FLIGHT`].
    FlightTooLong,
}

impl Refusal {
    /// The fatal alert that says why (RFC 8446 §6.2).
    fn alert(self) -> u8 {
        match self {
            Refusal::NotHandshake | Refusal::NotClientHello => 10, // unexpected_message
            Refusal::RecordOverflow => 22,                         // record_overflow
            Refusal::BadVersion | Refusal::EmptyRecord => 50,      // decode_error
            // As OpenSSL answers a handshake message over its size limit.
            Refusal::ClientHelloTooLarge | Refusal::FlightTooLong => 47, // illegal_parameter
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotHandshake => "first record is not a handshake record",
            Refusal::BadVersion => "record version is not TLS",
            Refusal::RecordOverflow => "record longer than 2^14",
            Refusal::EmptyRecord => "empty handshake record",
            Refusal::NotClientHello => "first handshake message is not a ClientHello",
            Refusal::ClientHelloTooLarge => "ClientHello declared over 16 KiB",
            Refusal::FlightTooLong => "ClientHello records over 32 KiB",
        })
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for io::Error {
    fn from(refusal: Refusal) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, refusal)
    }
}

/// The plaintext fatal alert record for `refusal`.
pub fn alert_record(refusal: Refusal) -> [u8; 7] {
    [21, 3, 3, 0, 2, 2, refusal.alert()]
}

/// What the bytes received so far come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Valid so far; the flight is not complete until at least `want` bytes are there
    /// (`want` ≤ [`MAX_FLIGHT`], and never past the end of a record whose header was validated).
    Incomplete {
        want: usize,
    },
    /// The first `flight` bytes are whole records carrying the whole ClientHello.
    Complete {
        flight: usize,
    },
    Refused(Refusal),
}

/// Judges the start of a connection's byte stream. Pure; linear in `bytes.len()` (only the
/// first [`MAX_FLIGHT`] bytes are looked at).
pub fn scan(bytes: &[u8]) -> Scan {
    let mut at = 0;
    // The handshake message's header, gathered across fragments; the message bytes that the
    // complete records seen so far carry.
    let mut header = [0u8; HANDSHAKE_HEADER];
    let mut gathered = 0;
    let mut carried = 0;
    let mut declared = None;
    loop {
        let Some(record) = bytes.get(at..at + RECORD_HEADER) else {
            return Scan::Incomplete { want: at + RECORD_HEADER };
        };
        if record[0] != CONTENT_HANDSHAKE {
            return Scan::Refused(Refusal::NotHandshake);
        }
        if record[1] != 3 || record[2] > 3 {
            return Scan::Refused(Refusal::BadVersion);
        }
        let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
        if len > MAX_RECORD {
            return Scan::Refused(Refusal::RecordOverflow);
        }
        if len == 0 {
            return Scan::Refused(Refusal::EmptyRecord);
        }
        let end = at + RECORD_HEADER + len;
        if end > MAX_FLIGHT {
            return Scan::Refused(Refusal::FlightTooLong);
        }
        // The message's header may itself be split over records: judge each byte as it comes.
        let fragment = &bytes[at + RECORD_HEADER..end.min(bytes.len())];
        for &byte in fragment.iter().take(HANDSHAKE_HEADER - gathered) {
            header[gathered] = byte;
            gathered += 1;
            if header[0] != CLIENT_HELLO {
                return Scan::Refused(Refusal::NotClientHello);
            }
        }
        if declared.is_none() && gathered == HANDSHAKE_HEADER {
            let length = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
            if length > MAX_CLIENT_HELLO {
                return Scan::Refused(Refusal::ClientHelloTooLarge);
            }
            declared = Some(length);
        }
        if end > bytes.len() {
            return Scan::Incomplete { want: end };
        }
        carried += len;
        at = end;
        if let Some(length) = declared {
            if carried >= HANDSHAKE_HEADER + length {
                return Scan::Complete { flight: at };
            }
        }
    }
}

thread_local! {
    /// The buffer a worker thread peeks into. A peek never waits, so one per thread serves every
    /// connection the thread handles.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Waits, reading nothing, until the whole first flight is in `tcp`'s receive queue, and returns
/// its length. A refused flight is answered with a fatal alert if the socket takes it at once.
/// The caller bounds the wait with the handshake timeout.
pub async fn peek_flight(tcp: &TcpStream) -> io::Result<usize> {
    let mut pause = Duration::from_millis(1);
    loop {
        let ready = tcp.ready(Interest::READABLE).await?;
        // WouldBlock from the closure clears the readiness, unless an event came since `try_io`
        // looked at it: then the next `ready` returns at once and the new bytes are peeked.
        let judged = tcp.try_io(Interest::READABLE, || {
            SCRATCH.with_borrow_mut(|scratch| {
                scratch.resize(MAX_FLIGHT, 0);
                let mut buf = ReadBuf::new(scratch);
                match tcp.poll_peek(&mut Context::from_waker(Waker::noop()), &mut buf) {
                    Poll::Ready(Ok(0)) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                    Poll::Ready(Ok(_)) => match scan(buf.filled()) {
                        Scan::Incomplete { .. } => Err(io::ErrorKind::WouldBlock.into()),
                        Scan::Complete { flight } => Ok(Ok(flight)),
                        Scan::Refused(refusal) => Ok(Err(refusal)),
                    },
                    Poll::Ready(Err(error)) => Err(error),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            })
        });
        match judged {
            Ok(Ok(flight)) => return Ok(flight),
            Ok(Err(refusal)) => {
                let _ = tcp.try_write(&alert_record(refusal));
                return Err(refusal.into());
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if ready.is_read_closed() {
                    // The client ended its stream before its ClientHello did.
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
#[path = "client_hello_tests.rs"]
pub(crate) mod tests;
