//! The public listener's TLS stream (src/tls_stream.rs) is the first code a client's bytes reach.
//! Whatever arrives, in whatever pieces, the handshake and the reads after it must end with a
//! result or an error, never a panic or a wait for bytes that will not come.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nymgate::tls_stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn server_config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            nymgate::tls::install_crypto_provider();
            let dir = std::env::temp_dir().join(format!("nymgate-fuzz-tls-{}", std::process::id()));
            let certs = nymgate::certs::generate_dev_certs(&dir, &[]).expect("dev certificates");
            let resolver = nymgate::tls::ReloadingCertResolver::new(&certs.cert, &certs.key).expect("resolver");
            nymgate::tls::server_config(Arc::new(resolver))
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    // The first byte is the size of the pieces the client's bytes arrive in.
    let Some((&split, client_bytes)) = data.split_first() else { return };
    let client_bytes = client_bytes.to_vec();
    let config = server_config();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async move {
        // Large enough that nymgate's handshake flight never waits for the client to read.
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let writer = async move {
            for piece in client_bytes.chunks(usize::from(split).max(1)) {
                if client.write_all(piece).await.is_err() {
                    return;
                }
            }
            // End of the client's stream: everything after must finish.
            let _ = client.shutdown().await;
            // Keep the client's read side open until the server is done.
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        };
        let reader = async move {
            let Ok(mut tls) = tls_stream::accept_stream(server, config).await else { return };
            let mut plaintext = Vec::new();
            let _ = tls.read_to_end(&mut plaintext).await;
            let _ = tls.shutdown().await;
        };
        tokio::join!(writer, reader);
    });
});
