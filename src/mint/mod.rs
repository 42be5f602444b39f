//! Minting: the only tokens the platform ever receives are compact JWS that nymgate signed
//! (RFC 7515), EdDSA (Ed25519) by default or ES256 on request, verifiable with nymgate's JWKS
//! (RFC 7517). They carry only the pseudonymous claims (shared/PRODUCT.md, "What the platform
//! receives").
//!
//! Signing uses aws-lc-rs directly with the key parsed once (jsonwebtoken re-parses the key on
//! every call; shared/DEPENDENCIES.md). Key ids are RFC 7638 JWK thumbprints, so the same key
//! always has the same `kid` on every replica. Rotation: a new current key signs; previous keys
//! stay in the JWKS until every token they signed has expired.
//!
//! # Rooms
//! Everything nymgate hands the platform about a login is made here, each face a type holding
//! what it needs; the login flows (`login/`) decide when, and pass in the pseudonymous login:
//! - `mod.rs`: the token signer ([`Minter`], [`SigningKey`], [`TokenRequest`]) and the JWKS;
//! - `provider.rs`: the OIDC provider face ([`provider::Provider`]): discovery, the platform's
//!   authorization request checked, client authentication, PKCE, codes, tokens, userinfo;
//! - `saml_idp.rs` (with `saml_idp_request.rs`, `saml_idp_tests.rs`): the SAML IdP face toward a
//!   SAML-only platform ([`saml_idp::SamlIdp`]): metadata, AuthnRequests, signed Responses;
//! - `session.rs`: the assertion output's sessions and signed header ([`session::Sessions`]).
//!
//! mint shares login's floor but sits below the flows: it imports nothing of `login`
//! (tests/layers.rs checks it). What the faces share with the flows (responses, cookies,
//! escaping) is one floor down, in `web.rs`.

pub mod provider;
pub mod saml_idp;
pub mod session;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::pseudonym::PseudonymousLogin;

/// The JWS algorithms nymgate signs with: the config names them, so the type lives there.
pub use crate::config::Algorithm;

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("signing key is not a valid {0:?} PKCS#8 key")]
    BadKey(Algorithm),
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// One signing key with its public JWK and key id.
pub struct SigningKey {
    /// The private key, parsed once (aws-lc-rs): signing re-parses nothing.
    pair: Pair,
    /// Its RFC 7638 thumbprint: the same key has the same `kid` on every replica.
    kid: String,
    /// Its public half as a JWK, for `/jwks`.
    jwk: Value,
    /// The pre-encoded JWS header, `{"alg":…,"kid":…,"typ":"JWT"}`.
    header_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 §3: base64url(SHA-256) of the required members in lexicographic order with no
/// whitespace (the caller builds that canonical JSON; §3.2).
fn jwk_thumbprint(canonical_members: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical_members.as_bytes()).as_ref())
}

impl SigningKey {
    /// A new random key, returned with its PKCS#8 DER encoding for storage.
    pub fn generate(alg: Algorithm) -> (SigningKey, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).expect("RNG works").as_ref().to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("RNG works")
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(alg, &pkcs8).expect("a key just generated parses");
        (key, pkcs8)
    }

    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, MintError> {
        let (pair, thumbprint_input, jwk) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| MintError::BadKey(alg))?;
                let x = b64(pair.public_key().as_ref());
                let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                (Pair::Ed25519(pair), thumb, json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| MintError::BadKey(alg))?;
                // Uncompressed point: 0x04 ‖ x (32) ‖ y (32).
                let point = pair.public_key().as_ref();
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (Pair::P256(pair), thumb, json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}))
            }
        };
        let kid = jwk_thumbprint(&thumbprint_input);
        let alg_name = match alg {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        };
        let mut jwk = jwk;
        jwk["kid"] = Value::from(kid.as_str());
        jwk["alg"] = Value::from(alg_name);
        jwk["use"] = Value::from("sig");
        let header = json!({"alg": alg_name, "kid": kid, "typ": "JWT"});
        let header_b64 = b64(&serde_json::to_vec(&header).expect("JSON"));
        Ok(SigningKey { pair, kid, jwk, header_b64 })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs a claims object as a compact JWS.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let payload = b64(&serde_json::to_vec(claims).expect("JSON"));
        let signing_input = format!("{}.{payload}", self.header_b64);
        let signature = match &self.pair {
            Pair::Ed25519(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
            Pair::P256(pair) => pair
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("ECDSA signing with the system RNG works")
                .as_ref()
                .to_vec(),
        };
        format!("{signing_input}.{}", b64(&signature))
    }
}

/// PKCS#8 DER as PEM (RFC 7468 §10), for `login.signing.key_file`.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The current signing key and the previous ones still published.
#[derive(Debug)]
pub struct Minter {
    /// nymgate's issuer URL (`iss`).
    issuer: String,
    /// The key that signs every new token.
    current: SigningKey,
    /// Keys kept in the JWKS until every token they signed has expired (rotation).
    previous: Vec<SigningKey>,
}

/// What a minted token is for.
pub struct TokenRequest<'a> {
    /// The platform client (`aud`).
    pub audience: &'a str,
    /// The platform's nonce, echoed when it sent one (OIDC Core §3.1.3.6).
    pub nonce: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
    /// How long the token is good for (`exp` = `now` + this).
    pub lifetime_secs: u64,
}

impl Minter {
    pub fn new(issuer: &str, current: SigningKey, previous: Vec<SigningKey>) -> Self {
        Self { issuer: issuer.to_owned(), current, previous }
    }

    /// An ID token (or assertion) for one pseudonymous login: the standard claims and the
    /// login's pseudonymous claims, nothing else.
    pub fn mint(&self, login: &PseudonymousLogin, request: &TokenRequest<'_>) -> String {
        self.mint_claims(login.claims(), request)
    }

    /// As [`Minter::mint`], from claims a session kept (made by `PseudonymousLogin::claims`).
    pub fn mint_claims(&self, mut claims: Map<String, Value>, request: &TokenRequest<'_>) -> String {
        claims.insert("iss".into(), Value::from(self.issuer.as_str()));
        claims.insert("aud".into(), Value::from(request.audience));
        claims.insert("iat".into(), Value::from(request.now));
        claims.insert("exp".into(), Value::from(request.now + request.lifetime_secs));
        claims.insert("jti".into(), Value::from(b64(&crate::secret::random_bytes::<16>())));
        if let Some(nonce) = request.nonce {
            claims.insert("nonce".into(), Value::from(nonce));
        }
        self.current.sign(&claims)
    }

    /// The `alg` of the tokens this minter signs.
    pub fn algorithm(&self) -> &'static str {
        match self.current.pair {
            Pair::Ed25519(_) => "EdDSA",
            Pair::P256(_) => "ES256",
        }
    }

    /// The JWKS document: the current key first, then those still published.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> =
            std::iter::once(&self.current).chain(&self.previous).map(|k| k.jwk().clone()).collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> PseudonymousLogin {
        PseudonymousLogin::example()
    }

    /// Verified with jsonwebtoken, an independent JOSE implementation, through the JWKS.
    fn verify(minter: &Minter, token: &str, alg: jsonwebtoken::Algorithm) -> Map<String, Value> {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(minter.jwks()).unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, alg);
        let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&["platform"]);
        validation.set_issuer(&["https://learn.example"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).unwrap().claims
    }

    #[test]
    fn eddsa_and_es256_tokens_verify_through_the_jwks() {
        for (alg, jwt_alg) in [
            (Algorithm::EdDSA, jsonwebtoken::Algorithm::EdDSA),
            (Algorithm::ES256, jsonwebtoken::Algorithm::ES256),
        ] {
            let (key, _) = SigningKey::generate(alg);
            let minter = Minter::new("https://learn.example", key, vec![]);
            let now = crate::clock::unix_now();
            let token = minter.mint(
                &login(),
                &TokenRequest { audience: "platform", nonce: Some("n-1"), now, lifetime_secs: 300 },
            );
            let claims = verify(&minter, &token, jwt_alg);
            let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(
                names,
                ["aud", "exp", "iat", "iss", "jti", "nonce", "nym_ver", "role", "school", "sub", "tenant"]
            );
            assert_eq!(claims["sub"], login().sub.as_str());
            assert_eq!(claims["nonce"], "n-1");
        }
    }

    #[test]
    fn a_token_altered_after_signing_is_refused() {
        let (key, _) = SigningKey::generate(Algorithm::EdDSA);
        let minter = Minter::new("https://learn.example", key, vec![]);
        let now = crate::clock::unix_now();
        let token = minter
            .mint(&login(), &TokenRequest { audience: "platform", nonce: None, now, lifetime_secs: 300 });
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut claims: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims.insert("role".into(), Value::from("teacher"));
        let forged = format!("{head}.{}.{signature}", b64(&serde_json::to_vec(&claims).unwrap()));
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(minter.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&["platform"]);
        assert!(jsonwebtoken::decode::<Map<String, Value>>(&forged, &key, &validation).is_err());
    }

    #[test]
    fn rotation_publishes_both_keys_and_kids_are_stable() {
        let (old, old_der) = SigningKey::generate(Algorithm::EdDSA);
        let again = SigningKey::from_pkcs8(Algorithm::EdDSA, &old_der).unwrap();
        assert_eq!(old.kid(), again.kid(), "the kid is the key's thumbprint");
        let (new, _) = SigningKey::generate(Algorithm::EdDSA);
        let new_kid = new.kid().to_owned();
        let minter = Minter::new("https://learn.example", new, vec![old]);
        let kids: Vec<String> = minter.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [new_kid, again.kid().to_owned()]);
        assert!(!minter.jwks().to_string().contains("\"d\""), "no private part in the JWKS");
        assert!(!format!("{minter:?}").contains("pair"));
    }

    #[test]
    fn rfc8037_thumbprint_example() {
        // RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        assert_eq!(jwk_thumbprint(&input), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
