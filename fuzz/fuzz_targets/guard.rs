//! The guard's fold and detectors run on values an IdP controls: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::pseudonym::guard::{detect_personal_pattern, fold, normalize, Guard, Spelling};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (identifying, value) = text.split_once('\u{0}').unwrap_or((text, text));
    let guard = Guard::new(identifying.split('\u{1}'));
    let _ = guard.check("school", value);
    let _ = detect_personal_pattern(value);
    let _ = detect_personal_pattern(&normalize(value));
    let _ = fold(value, Spelling::Digraph);
});
