//! HTTP/2 by hand (RFC 9113 §4.1 frames, RFC 7541 literals without Huffman coding): for tests
//! that need frames no well-behaved client sends, or a client that stops reading.

use tokio::io::AsyncWriteExt;

use super::{tls_connect, Gateway};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;

/// One frame: 24-bit length, type, flags, stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET https://learn.example{path}` (a path under 128 bytes).
pub fn get_block(path: &str) -> Vec<u8> {
    assert!(path.len() < 128, "a one-byte length prefix");
    let mut block = vec![0x82, 0x87]; // :method GET, :scheme https
    block.extend_from_slice(&[0x04, path.len() as u8]); // :path, literal without indexing
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 13]); // :authority
    block.extend_from_slice(b"learn.example");
    block
}

/// Opens an HTTP/2 connection with raw frames: preface and empty SETTINGS.
pub async fn raw_h2(gw: &Gateway) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = tls_connect(gw.addr(), &gw.ca, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(PREFACE).await.unwrap();
    tls.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    tls
}
