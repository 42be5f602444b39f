//! Tests of src/tls_stream.rs: a real rustls client over loopback, and hostile first flights.

use super::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Pair {
    server: TlsStream<TcpStream>,
    client: tokio_rustls::client::TlsStream<TcpStream>,
    _dir: tempfile::TempDir,
}

/// A server config with a fresh development certificate, and a client config that trusts it
/// and speaks only `version`.
fn configs(
    version: &'static rustls::SupportedProtocolVersion,
) -> (tempfile::TempDir, Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
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
    (dir, server_config, Arc::new(client_config))
}

/// A real rustls client (tokio-rustls) against [`accept`] over loopback TCP.
async fn pair(version: &'static rustls::SupportedProtocolVersion) -> Pair {
    let (dir, server_config, client_config) = configs(version);
    let connector = tokio_rustls::TlsConnector::from(client_config);
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
    let error = accept_stream(server, crate::tls::server_config(resolver)).await.err().expect("no handshake");
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

/// A seeded generator (xorshift), so that a failure names the case that failed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A real rustls client on a blocking socket whose ClientHello goes out re-framed into records
/// of `records` fragment sizes, written in TCP segments of `segments` sizes (Nagle off, a pause
/// now and then so segments arrive apart); then the handshake as usual, and `ping`.
fn fragmented_client(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    records: Vec<usize>,
    segments: Vec<usize>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    use std::io::Write;
    std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(config, name).unwrap();
        let mut first = Vec::new();
        client.write_tls(&mut first)?;
        let flight = crate::client_hello::tests::in_records(&first[5..], &records, [3, 1]);
        let mut rest = &flight[..];
        for (i, size) in segments.iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let (segment, tail) = rest.split_at((*size).clamp(1, rest.len()));
            tcp.write_all(segment)?;
            if i % 16 == 15 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            rest = tail;
        }
        while client.is_handshaking() {
            client.complete_io(&mut tcp)?;
        }
        client.writer().write_all(b"ping")?;
        client.complete_io(&mut tcp)?;
        Ok(())
    })
}

/// The class: a ClientHello split across records and TCP segments at random points, within the
/// bound, always completes the handshake on the real (peeking) accept path, TLS 1.3 and 1.2.
#[tokio::test]
async fn a_client_hello_in_any_split_of_records_and_segments_completes() {
    for seed in 1..=24u64 {
        let version = if seed % 3 == 0 { &rustls::version::TLS12 } else { &rustls::version::TLS13 };
        let (_dir, server_config, client_config) = configs(version);
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let biggest = [1, 8, 300, 20_000][seed as usize % 4];
        let records: Vec<usize> = (0..3000).map(|_| 1 + rng.below(biggest)).collect();
        let segments: Vec<usize> = (0..3000)
            .map(|_| {
                let biggest = [1, 7, 500, 4000][rng.below(4)];
                1 + rng.below(biggest)
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = fragmented_client(listener.local_addr().unwrap(), client_config, records, segments);
        let (tcp, _) = listener.accept().await.unwrap();
        let mut server = tokio::time::timeout(std::time::Duration::from_secs(20), accept(tcp, server_config))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: no handshake in 20 s"))
            .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        let mut ping = [0; 4];
        server.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping", "seed {seed}");
        client.join().unwrap().unwrap_or_else(|error| panic!("seed {seed}: client: {error}"));
    }
}

/// After the handshake the connection keeps no buffer larger than what it still holds.
#[tokio::test]
async fn buffers_are_cut_to_what_they_hold_when_the_handshake_completes() {
    let Pair { server, _dir, .. } = pair(&rustls::version::TLS13).await;
    assert_eq!(server.incoming.data.capacity(), server.incoming.pending().len());
    assert_eq!(server.outgoing.data.capacity(), 0);
    assert_eq!(server.plaintext.data.capacity(), 0);
}

/// After a valid ClientHello, a handshake message fragmented without end (a TLS 1.2 client key
/// exchange declaring 64 KiB, in records of 4 KiB) is refused once 32 KiB of it wait, instead
/// of rustls holding up to 64 KiB until the handshake timeout.
#[tokio::test]
async fn a_later_handshake_message_past_the_bound_is_refused() {
    let (_dir, server_config, client_config) = configs(&rustls::version::TLS12);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut first = Vec::new();
        client.write_tls(&mut first).unwrap();
        tcp.write_all(&first).await.unwrap();
        // client_key_exchange (16) declaring 0xffff bytes, sent as 4 KiB records.
        let mut message = vec![16, 0, 0xff, 0xff];
        message.extend(pattern(0xffff));
        let records = crate::client_hello::tests::in_records(&message, &[4096; 20], [3, 3]);
        let _ = tcp.write_all(&records).await;
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let error = tokio::time::timeout(std::time::Duration::from_secs(10), accept(tcp, server_config))
        .await
        .expect("refused, not left waiting")
        .err()
        .expect("no handshake");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    // Refused by the bound, not by rustls.
    assert!(error.to_string().contains("over 32 KiB"), "{error}");
    client.abort();
}
