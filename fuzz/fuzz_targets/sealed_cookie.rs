//! Sealed cookies come back from browsers: any string must be refused cleanly, never panic, and
//! never open unless nymgate sealed it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::seal::Sealer;
use nymgate::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&Secret::new(vec![7; 32]), &[Secret::new(vec![8; 32])]);
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(sealer.open("flow", text, 0).is_err(), "a value nymgate never sealed opened");
    }
});
