//! The retention store reads bytes that whoever can write to its database chooses: the `nonce`
//! column, a record's blob, a wrapped data key, and the padding inside a record
//! (src/retention/seal.rs). The check is src/retention/fuzz.rs: arbitrary stored bytes are
//! refused without a panic and never open; what nymgate sealed opens under its own binding
//! only, and not once a bit of it is changed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nymgate::retention::fuzz::stored_bytes(data));
