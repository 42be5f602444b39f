//! An independent oracle for the primary account number, written from its specification
//! (src/pseudonym/mod.rs, "The account number"; docs/PSEUDONYMS.md) rather than by calling the
//! library's derivation, which is crate-private: the pseudonymizer's only public entries are a
//! verified login and the audited DPO lookup. A test comparing a login's number with this one
//! checks the formula itself, so a change to it (a renumbering of every school) can't pass.

use hmac::Mac;
use nymgate::pseudonym::keyring::ScopeKey;

/// `v{version}-XXXX-XXXX-XXXX-XXXX`: the first 80 bits of
/// HMAC-SHA256(key, "nymgate/account-number/v1" ‖ be32(len issuer) ‖ issuer ‖ be32(len subject) ‖
/// subject), in Crockford base32.
pub fn primary(key: &ScopeKey, issuer: &str, subject: &str) -> String {
    let mut mac = key.mac();
    mac.update(b"nymgate/account-number/v1");
    for field in [issuer, subject] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field.as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    let bits = digest[..10].iter().fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
    let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut out = format!("v{}", key.version);
    for group in 0..4 {
        out.push('-');
        for i in 0..4 {
            let shift = 75 - 5 * (group * 4 + i);
            out.push(alphabet[((bits >> shift) & 31) as usize] as char);
        }
    }
    out
}
