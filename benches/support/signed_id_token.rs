//! A school IdP's RS256 ID token, signed here with a fresh key, and verified by nymgate's OIDC
//! verifier: the only way a benchmark gets a verified identity (the verifier is the only door,
//! src/verify/mod.rs), so every benchmarked login starts from a checked signature.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nymgate::verify::jwks::IdpKeys;
use nymgate::verify::oidc_rp::IdTokenRules;
use openidconnect::core::{CoreIdToken, CoreJwsSigningAlgorithm};
use serde_json::{json, Value};

pub const ALGORITHMS: [CoreJwsSigningAlgorithm; 1] = [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `claims` signed as an IdP signs them, and the IdP's keys as nymgate reads its JWKS.
pub fn sign(claims: &Value) -> (CoreIdToken, IdpKeys) {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }]});
    let header = b64(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
    let input = format!("{header}.{}", b64(&serde_json::to_vec(claims).unwrap()));
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut signature)
        .unwrap();
    let token = CoreIdToken::from_str(&format!("{input}.{}", b64(&signature))).unwrap();
    (token, IdpKeys::parse(jwks.to_string().as_bytes(), &ALGORITHMS).unwrap())
}

/// What the token is checked against: its own `aud` and `iss`.
pub fn rules<'a>(client_id: &'a str, issuer: &'a str) -> IdTokenRules<'a> {
    IdTokenRules { client_id, issuer, algorithms: &ALGORITHMS, clock_skew: Duration::from_secs(60) }
}
