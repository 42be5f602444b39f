//! The first-flight judgement (src/client_hello.rs) sees every byte a client sends before rustls
//! does. Whatever the bytes: no panic, never a request to read past 32 KiB or past the record in
//! flight, a complete flight is complete at its own length, and a refusal stays a refusal
//! whatever follows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::client_hello::{scan, Scan, MAX_FLIGHT};

fuzz_target!(|data: &[u8]| {
    match scan(data) {
        Scan::Incomplete { want } => assert!(want > data.len() && want <= MAX_FLIGHT),
        Scan::Complete { flight } => {
            assert!(flight <= data.len() && flight <= MAX_FLIGHT);
            assert_eq!(scan(&data[..flight]), Scan::Complete { flight });
            if flight > 0 {
                assert!(matches!(scan(&data[..flight - 1]), Scan::Incomplete { .. }));
            }
        }
        Scan::Refused(refusal) => {
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[22, 3, 3, 0, 1, 1]);
            assert_eq!(scan(&longer), Scan::Refused(refusal));
        }
    }
});
