//! The public listener's TLS stream, on rustls's unbuffered API.
//!
//! Why not tokio-rustls: its `ServerConnection` owns a record buffer that grows to at least
//! 4 KiB at the first read and never shrinks, so every idle keep-alive connection kept 4 KiB of
//! nothing (BENCHMARKS.md §1). Here nymgate owns the three buffers (ciphertext in, plaintext not
//! yet read, ciphertext out) and [`TlsStream::release_idle_buffers`] frees whichever is empty when
//! a connection parks between requests (conn_io.rs). Encryption also writes each record straight
//! into the outgoing buffer instead of a new allocation per record.
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How much plaintext one `poll_write` encrypts: bounds the outgoing buffer.
const MAX_WRITE: usize = 4 * 16_384;
/// Per-record overhead used to size the outgoing buffer before encrypting (header, TLS 1.3 inner
/// content type, AEAD tag, TLS 1.2 explicit nonce); rustls says so when it needs more.
const RECORD_OVERHEAD: usize = 64;
/// The smallest read: enough for a ClientHello or a typical request.
const MIN_READ: usize = 4_096;

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

/// Completes a TLS handshake on `io` as a server. The caller bounds it with a timeout.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    config: Arc<ServerConfig>,
) -> io::Result<TlsStream<T>> {
    let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Buf::default(),
        plaintext: Buf::default(),
        outgoing: Buf::default(),
        read_closed: false,
        write_closed: false,
    };
    poll_fn(|cx| stream.poll_handshake(cx)).await?;
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
            if ready!(self.poll_receive(cx))? == 0 {
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
    /// more than [`MIN_READ`]. Buffers grow only as far as the records need: 10,000 handshakes
    /// that each took a full-size buffer left the heap fragmented (BENCHMARKS.md §1).
    fn read_size(&self) -> usize {
        let pending = self.incoming.pending();
        let record = match pending {
            [_, _, _, high, low, ..] => 5 + usize::from(u16::from_be_bytes([*high, *low])),
            _ => 0,
        };
        record.saturating_sub(pending.len()).max(MIN_READ)
    }

    /// Reads from the socket into the incoming buffer: the number of bytes, 0 at end of stream.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(self.incoming.spare(self.read_size()));
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
            if ready!(this.poll_receive(cx))? == 0 {
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
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    struct Pair {
        server: TlsStream<TcpStream>,
        client: tokio_rustls::client::TlsStream<TcpStream>,
        _dir: tempfile::TempDir,
    }

    /// A real rustls client (tokio-rustls) against [`accept`] over loopback TCP.
    async fn pair(version: &'static rustls::SupportedProtocolVersion) -> Pair {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::certs::generate_dev_certs(dir.path(), &[]).unwrap();
        let resolver = Arc::new(crate::tls::ReloadingCertResolver::new(&certs.cert, &certs.key).unwrap());
        let server_config = crate::tls::server_config(resolver);
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        let ca = rustls::pki_types::CertificateDer::pem_file_iter(&certs.ca_cert).unwrap();
        roots.add_parsable_certificates(ca.map(Result::unwrap));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let server = accept(tcp, server_config).await.unwrap();
        Pair { server, client: client.await.unwrap(), _dir: dir }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn megabytes_cross_both_ways_over_tls13_and_tls12() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let Pair { mut server, mut client, _dir } = pair(version).await;
            assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
            let sent = pattern(3 << 20);
            let to_server = sent.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&to_server).await.unwrap();
                client.flush().await.unwrap();
                let mut back = vec![0; to_server.len()];
                client.read_exact(&mut back).await.unwrap();
                (client, back)
            });
            let mut received = vec![0; sent.len()];
            server.read_exact(&mut received).await.unwrap();
            assert!(received == sent, "the server read other bytes than were sent");
            server.write_all(&received).await.unwrap();
            server.flush().await.unwrap();
            let (_client, back) = writer.await.unwrap();
            assert!(back == sent, "the client read other bytes than the server wrote");
        }
    }

    #[tokio::test]
    async fn close_notify_ends_the_stream_both_ways() {
        let Pair { mut server, mut client, _dir } = pair(&rustls::version::TLS13).await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");

        server.write_all(b"goodbye").await.unwrap();
        server.shutdown().await.unwrap();
        assert!(server.write_all(b"more").await.is_err(), "wrote after close_notify");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("a clean end after close_notify");
        assert_eq!(got, b"goodbye");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_record_is_an_error_not_an_end() {
        let Pair { mut server, mut client, _dir } = pair(&rustls::version::TLS13).await;
        // The header of a 100-byte application-data record, and then nothing.
        let tcp = client.get_mut().0;
        tcp.write_all(&[23, 3, 3, 0, 100, 1, 2, 3]).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut got = Vec::new();
        let error = server.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_tampered_record_is_refused() {
        let Pair { mut server, mut client, _dir } = pair(&rustls::version::TLS13).await;
        let tcp = client.get_mut().0;
        let mut record = vec![23, 3, 3, 0, 40];
        record.extend(pattern(40));
        tcp.write_all(&record).await.unwrap();
        let mut got = [0; 16];
        let error = server.read(&mut got).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn plain_http_instead_of_a_client_hello_fails_the_handshake() {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::certs::generate_dev_certs(dir.path(), &[]).unwrap();
        let resolver = Arc::new(crate::tls::ReloadingCertResolver::new(&certs.cert, &certs.key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
            let mut answer = Vec::new();
            let _ = tcp.read_to_end(&mut answer).await;
            answer
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let error = accept(tcp, crate::tls::server_config(resolver)).await.err().expect("no handshake");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let answer = client.await.unwrap();
        // rustls's alert, if any, is a plaintext TLS alert record: never anything of HTTP.
        assert!(answer.is_empty() || answer[0] == 21, "answered {answer:?}");
    }

    /// Found by the tls_stream fuzz target: a ClientHello split over records, then a record
    /// rustls refuses. Collecting the alert once passed rustls an empty buffer while its
    /// handshake reassembly still pointed into the real one, and rustls panicked.
    #[tokio::test]
    async fn a_refused_record_after_a_split_client_hello_is_an_error_not_a_panic() {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::certs::generate_dev_certs(dir.path(), &[]).unwrap();
        let resolver = Arc::new(crate::tls::ReloadingCertResolver::new(&certs.cert, &certs.key).unwrap());
        let input = include_bytes!("../fuzz/seeds/tls_stream/regression-alert-after-split-client-hello");
        let (split, bytes) = (usize::from(input[0]), &input[1..]);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        for piece in bytes.chunks(split) {
            client.write_all(piece).await.unwrap();
        }
        client.shutdown().await.unwrap();
        let error = accept(server, crate::tls::server_config(resolver)).await.err().expect("no handshake");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn records_read_ahead_while_writing_are_kept_for_the_next_read() {
        let Pair { mut server, mut client, _dir } = pair(&rustls::version::TLS13).await;
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        client.write_all(b"world").await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut one = [0; 1];
        server.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"h");
        // Writing makes rustls process the second record first; its bytes must not be lost.
        server.write_all(b"ok").await.unwrap();
        server.flush().await.unwrap();
        let mut rest = [0; 9];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"elloworld");
        let mut ok = [0; 2];
        client.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"ok");
    }

    #[tokio::test]
    async fn released_buffers_are_freed_and_the_session_goes_on() {
        let Pair { mut server, mut client, _dir } = pair(&rustls::version::TLS13).await;
        for round in 0..3 {
            let message = format!("request {round}");
            client.write_all(message.as_bytes()).await.unwrap();
            client.flush().await.unwrap();
            let mut got = vec![0; message.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, message.as_bytes());
            server.write_all(b"answer").await.unwrap();
            server.flush().await.unwrap();
            server.release_idle_buffers();
            let held = server.incoming.data.capacity()
                + server.plaintext.data.capacity()
                + server.outgoing.data.capacity();
            assert_eq!(held, 0, "an idle stream kept {held} bytes of buffers");
            let mut answer = [0; 6];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"answer");
        }
    }
}
