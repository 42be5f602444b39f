//! The guard's fold and detectors run on values an IdP controls: never panic. And the fold
//! drops invisible characters before anything else reads the value: a zero-width space between
//! every two characters (which also sends an ASCII value down the Unicode path) changes no fold
//! and no decision.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::pseudonym::guard::{detect_personal_pattern, fold, normalize, Guard, Spelling};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (identifying, value) = text.split_once('\u{0}').unwrap_or((text, text));
    let guard = Guard::new(identifying.split('\u{1}'));
    let decision = guard.check("school", value);
    let detected = detect_personal_pattern(value);
    let _ = detect_personal_pattern(&normalize(value));
    let _ = fold(value, Spelling::Digraph);

    let hidden: String = value.chars().flat_map(|c| [c, '\u{200B}']).collect();
    for spelling in [Spelling::Plain, Spelling::Digraph] {
        assert_eq!(fold(&hidden, spelling), fold(value, spelling));
    }
    assert_eq!(detect_personal_pattern(&hidden), detected);
    assert_eq!(guard.check("school", &hidden), decision);
});
