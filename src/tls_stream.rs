//! The public listener's TLS stream, on rustls's unbuffered API.
//!
//! Why not tokio-rustls: its `ServerConnection` owns a record buffer that grows to at least
//! 4 KiB at the first read and never shrinks, so every idle keep-alive connection kept 4 KiB of
//! nothing (BENCHMARKS.md §1). Here nymgate owns the three buffers (ciphertext in, plaintext not
//! yet read, ciphertext out) and [`TlsStream::release_idle_buffers`] frees whichever is empty when
//! a connection parks between requests (conn_io.rs). Encryption also writes each record straight
//! into the outgoing buffer instead of a new allocation per record.
//!
//! The handshake starts in [`crate::client_hello`]: the client's first flight is judged (a
//! ClientHello over 16 KiB, or a first record that is not a handshake record, is refused at once)
//! and, on TCP, read only when it is complete, so a half-open handshake holds no buffer and no
//! rustls state. After the ClientHello, what the client sends before the handshake completes is
//! read in pieces sized to the record in flight (at least `HANDSHAKE_MIN_READ`, 512 bytes), and the bytes
//! rustls has not yet consumed may never exceed [`client_hello::MAX_FLIGHT`]: rustls itself would
//! keep up to 64 KiB of a fragmented handshake message. When the handshake completes, every
//! buffer is cut to what it still holds.
//!
//! The contract of `UnbufferedConnectionCommon::process_tls_records` (rustls 0.23): every state
//! it returns is handled before the next call, and `discard` bytes are then removed from the front
//! of the incoming buffer. Handshake records rustls asks us to encode are appended to the outgoing
//! buffer and count as transmitted once there: that buffer is always sent in order, and every
//! path that waits for the peer first tries to send it.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, ReadTraffic,
    UnbufferedStatus, WriteTraffic,
};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::client_hello::{self, Scan};

/// How much plaintext one `poll_write` encrypts: bounds the outgoing buffer.
const MAX_WRITE: usize = 4 * 16_384;
/// Per-record overhead used to size the outgoing buffer before encrypting (header, TLS 1.3 inner
/// content type, AEAD tag, TLS 1.2 explicit nonce); rustls says so when it needs more.
const RECORD_OVERHEAD: usize = 64;
/// The smallest read once the handshake is done: enough for a typical request.
const MIN_READ: usize = 4_096;
/// The smallest read during the handshake, after the ClientHello: the client's second flight is
/// about 100 bytes (TLS 1.3 Finished; TLS 1.2 key exchange and Finished); a longer record gets
/// a read sized to it.
const HANDSHAKE_MIN_READ: usize = 512;

/// A byte buffer with a read position and a fill position: `data[start..end]` is pending.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
    fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
    /// A writable tail of at least `want` bytes (zeroed once, when first grown).
    fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < want {
            // Exactly: `resize` alone may double the capacity.
            self.data.reserve_exact(self.end + want - self.data.len());
            self.data.resize(self.end + want, 0);
        }
        &mut self.data[self.end..]
    }
    fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }
    fn append(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }
    /// Frees the allocation when nothing is pending.
    fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = Buf::default();
        }
    }
    /// Keeps only what is pending, in an allocation of its size.
    fn shrink_to_pending(&mut self) {
        if self.is_empty() {
            *self = Buf::default();
        } else if self.start > 0 || self.data.capacity() > self.end {
            let data = self.pending().to_vec();
            *self = Buf { end: data.len(), data, start: 0 };
        }
    }
}

/// Appends a record rustls has ready (handshake, alert, key update), growing the buffer to the
/// record's exact size.
fn encode_into(encode: &mut EncodeTlsData<'_, ServerConnectionData>, out: &mut Buf) {
    let mut want = 0;
    loop {
        match encode.encode(out.spare(want)) {
            Ok(n) => return out.filled(n),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                want = required_size
            }
            Err(EncodeError::AlreadyEncoded) => return,
        }
    }
}

/// What processing the received records came to.
enum Progress {
    /// Plaintext was read (into the caller's buffer or the pending plaintext).
    Data,
    /// Nothing more can be done without more bytes from the peer.
    NeedBytes,
    /// The peer sent close_notify: no more data will come.
    PeerClosed,
}

/// A server-side TLS connection over a byte stream (TCP in service; any stream in tests and fuzzing).
pub struct TlsStream<T = TcpStream> {
    io: T,
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet processed.
    incoming: Buf,
    /// Plaintext decrypted and not yet read.
    plaintext: Buf,
    /// Ciphertext to send, in order.
    outgoing: Buf,
    /// The peer closed (close_notify or end of stream): reads return end-of-file.
    read_closed: bool,
    /// Our close_notify is queued: nothing more may be written.
    write_closed: bool,
}

/// Completes a TLS handshake on a client's TCP connection as a server. The first flight stays
/// in the kernel until it is complete and judged ([`client_hello::peek_flight`]); rustls's state
/// is made after. The caller bounds it with a timeout.
pub async fn accept(mut tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream<TcpStream>> {
    let flight = client_hello::peek_flight(&tcp).await?;
    let mut incoming = Buf::default();
    // The bytes were peeked, so they are there: this read does not wait for the client.
    tcp.read_exact(&mut incoming.spare(flight)[..flight]).await?;
    incoming.filled(flight);
    handshake(tcp, config, incoming).await
}

/// As [`accept`], over any stream (tests, fuzzing): the first flight is read, never past the
/// record in flight, into a buffer that grows only to validated record lengths.
pub async fn accept_stream<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    config: Arc<ServerConfig>,
) -> io::Result<TlsStream<T>> {
    let mut incoming = Buf::default();
    loop {
        match client_hello::scan(incoming.pending()) {
            Scan::Complete { .. } => break,
            Scan::Refused(refusal) => {
                // One attempt to send the alert, no waiting for it.
                let alert = client_hello::alert_record(refusal);
                let _ = poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_write(cx, &alert))).await;
                return Err(refusal.into());
            }
            Scan::Incomplete { want } => {
                let room = want - incoming.pending().len();
                let n = io.read(&mut incoming.spare(room)[..room]).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                incoming.filled(n);
            }
        }
    }
    handshake(io, config, incoming).await
}

/// The rest of the handshake, from a judged first flight in `incoming`.
async fn handshake<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    config: Arc<ServerConfig>,
    incoming: Buf,
) -> io::Result<TlsStream<T>> {
    let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = TlsStream {
        io,
        conn,
        incoming,
        plaintext: Buf::default(),
        outgoing: Buf::default(),
        read_closed: false,
        write_closed: false,
    };
    poll_fn(|cx| stream.poll_handshake(cx)).await?;
    // The handshake's buffers were sized to its records; the connection keeps none of them.
    stream.incoming.shrink_to_pending();
    stream.release_idle_buffers();
    Ok(stream)
}

impl TlsStream<TcpStream> {
    /// The TCP socket, to wait for readability while the connection is parked.
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
    /// The protocol the client and nymgate agreed by ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Frees every buffer with nothing pending (a parked connection needs none of them).
    pub fn release_idle_buffers(&mut self) {
        self.incoming.release_if_empty();
        self.plaintext.release_if_empty();
        self.outgoing.release_if_empty();
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.process(None) {
                Ok(_) => {}
                Err(error) => {
                    // Best effort: let the client see rustls's alert before the connection goes.
                    let _ = self.poll_send(cx);
                    return Poll::Ready(Err(error));
                }
            }
            ready!(self.poll_send(cx))?;
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            let pending = self.incoming.pending().len();
            if pending >= client_hello::MAX_FLIGHT {
                // A handshake message fragmented without end: rustls would wait for up to 64 KiB.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "handshake records over 32 KiB not yet consumed",
                )));
            }
            if pending == 0 && self.incoming.data.len() > HANDSHAKE_MIN_READ {
                // The ClientHello's buffer, consumed: a client that stops here holds 512 bytes.
                self.incoming.release_if_empty();
            }
            let room = client_hello::MAX_FLIGHT - pending;
            if ready!(self.poll_receive(cx, HANDSHAKE_MIN_READ, room))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Runs rustls over the received ciphertext until it needs more bytes or has plaintext.
    /// Plaintext goes into `direct` while it fits, the rest into the pending plaintext.
    /// Handshake records rustls emits are appended to the outgoing buffer.
    fn process(&mut self, mut direct: Option<&mut ReadBuf<'_>>) -> io::Result<Progress> {
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(self.incoming.pending_mut());
            let outcome = match state {
                Err(error) => {
                    self.incoming.consume(discard);
                    // rustls queued an alert for the peer when it could: collect it to send.
                    self.collect_alert();
                    return Err(invalid_data(error));
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    take_records(&mut traffic, direct.as_deref_mut(), &mut self.plaintext)?;
                    Some(Progress::Data)
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut encode, &mut self.outgoing);
                    None
                }
                // Appended to the outgoing buffer, which is sent before anything written later.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    None
                }
                Ok(ConnectionState::BlockedHandshake) | Ok(ConnectionState::WriteTraffic(_)) => {
                    Some(Progress::NeedBytes)
                }
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Some(Progress::PeerClosed),
                Ok(_) => {
                    // Early data is never enabled in server_config (tls.rs), and a state added
                    // by a later rustls is not something to guess at.
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected TLS state"));
                }
            };
            self.incoming.consume(discard);
            if let Some(progress) = outcome {
                if matches!(progress, Progress::PeerClosed) {
                    self.read_closed = true;
                }
                return Ok(progress);
            }
        }
    }

    /// After a fatal error rustls has queued its alert: move it to the outgoing buffer.
    ///
    /// Exactly one call: rustls hands out a queued record before it looks at the input again,
    /// and a second call would process the refused input once more (and panic in rustls's debug
    /// assertions when it queues a second alert). The input passed is the real one, as always:
    /// rustls's handshake reassembly refers to positions in it (passing an empty slice here made
    /// rustls panic; found by the tls_stream fuzz target).
    fn collect_alert(&mut self) {
        let UnbufferedStatus { discard, state } = self.conn.process_tls_records(self.incoming.pending_mut());
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
            encode_into(&mut encode, &mut self.outgoing);
        }
        self.incoming.consume(discard);
    }

    /// How much room the next read needs: the rest of the record being received when that is
    /// more than `min`. Buffers grow only as far as the records need: 10,000 handshakes that
    /// each took a full-size buffer left the heap fragmented (BENCHMARKS.md §1).
    fn read_size(&self, min: usize) -> usize {
        let pending = self.incoming.pending();
        let record = match pending {
            [_, _, _, high, low, ..] => 5 + usize::from(u16::from_be_bytes([*high, *low])),
            _ => 0,
        };
        record.saturating_sub(pending.len()).max(min)
    }

    /// Reads from the socket into the incoming buffer, with at least `min` bytes of room and at
    /// most `max`: the number of bytes, 0 at end of stream.
    fn poll_receive(&mut self, cx: &mut Context<'_>, min: usize, max: usize) -> Poll<io::Result<usize>> {
        let want = self.read_size(min).min(max);
        let spare = self.incoming.spare(want);
        let room = spare.len().min(max);
        let mut buf = ReadBuf::new(&mut spare[..room]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        self.incoming.filled(n);
        Poll::Ready(Ok(n))
    }

    /// Sends the whole outgoing buffer.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, self.outgoing.pending()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.consume(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts up to [`MAX_WRITE`] bytes of `data` into the outgoing buffer.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<usize> {
        let data = &data[..data.len().min(MAX_WRITE)];
        let written = self.when_writable(|traffic, out| {
            let mut want = data.len() + (data.len() / 16_384 + 1) * RECORD_OVERHEAD;
            loop {
                match traffic.encrypt(data, out.spare(want)) {
                    Ok(n) => {
                        out.filled(n);
                        return Ok(data.len());
                    }
                    Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        want = required_size
                    }
                    Err(error) => return Err(io::Error::other(error)),
                }
            }
        })?;
        written.ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }

    /// Queues close_notify (RFC 8446 §6.1). A connection already closed needs none.
    fn queue_close_notify(&mut self) -> io::Result<()> {
        self.when_writable(|traffic, out| {
            let mut want = 64;
            loop {
                match traffic.queue_close_notify(out.spare(want)) {
                    Ok(n) => {
                        out.filled(n);
                        return Ok(());
                    }
                    Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        want = required_size
                    }
                    Err(error) => return Err(io::Error::other(error)),
                }
            }
        })?;
        Ok(())
    }

    /// Runs rustls until it lets us write, keeping the plaintext of records it reads on the way
    /// for the next read, then calls `write` with the encrypter and the outgoing buffer. `None`:
    /// the connection can no longer send.
    fn when_writable<R>(
        &mut self,
        write: impl FnOnce(&mut WriteTraffic<'_, ServerConnectionData>, &mut Buf) -> io::Result<R>,
    ) -> io::Result<Option<R>> {
        let mut write = Some(write);
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(self.incoming.pending_mut());
            let result = match state {
                Err(error) => {
                    self.incoming.consume(discard);
                    self.collect_alert();
                    return Err(invalid_data(error));
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => match write.take() {
                    Some(write) => Some(write(&mut traffic, &mut self.outgoing).map(Some)),
                    None => Some(Ok(None)),
                },
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    take_records(&mut traffic, None, &mut self.plaintext)?;
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut encode, &mut self.outgoing);
                    None
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    None
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    None
                }
                // Closed, or a state with no way to write.
                Ok(_) => Some(Ok(None)),
            };
            self.incoming.consume(discard);
            if let Some(result) = result {
                return result;
            }
        }
    }
}

/// Moves the decrypted records' plaintext into `direct` while it fits, the rest into `pending`.
fn take_records(
    traffic: &mut ReadTraffic<'_, '_, ServerConnectionData>,
    mut direct: Option<&mut ReadBuf<'_>>,
    pending: &mut Buf,
) -> io::Result<()> {
    while let Some(record) = traffic.next_record() {
        let mut payload = record.map_err(invalid_data)?.payload;
        if let Some(out) = direct.as_deref_mut() {
            let n = payload.len().min(out.remaining());
            out.put_slice(&payload[..n]);
            payload = &payload[n..];
        }
        if !payload.is_empty() {
            pending.append(payload);
        }
    }
    Ok(())
}

fn invalid_data(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.plaintext.is_empty() {
                let n = this.plaintext.pending().len().min(buf.remaining());
                buf.put_slice(&this.plaintext.pending()[..n]);
                this.plaintext.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            let progress = match this.process(Some(buf)) {
                Ok(progress) => progress,
                Err(error) => {
                    // Best effort: the alert rustls queued tells the client why.
                    let _ = this.poll_send(cx);
                    return Poll::Ready(Err(error));
                }
            };
            match progress {
                Progress::Data if buf.filled().len() > before => return Poll::Ready(Ok(())),
                // An empty record, or the peer's close_notify: look again.
                Progress::Data | Progress::PeerClosed => continue,
                Progress::NeedBytes => {}
            }
            // Whatever rustls wants sent (a post-handshake message, an alert) goes before we wait.
            if let Poll::Ready(Err(error)) = this.poll_send(cx) {
                return Poll::Ready(Err(error));
            }
            if ready!(this.poll_receive(cx, MIN_READ, usize::MAX))? == 0 {
                this.read_closed = true;
                if !this.incoming.is_empty() {
                    // The stream ended inside a record: truncated, not closed.
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Back-pressure: at most one write's worth waits in the buffer.
        if this.outgoing.pending().len() >= MAX_WRITE {
            ready!(this.poll_send(cx))?;
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Poll::Ready(this.encrypt(data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            this.queue_close_notify()?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "tls_stream_tests.rs"]
mod tests;
