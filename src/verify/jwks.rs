//! A school IdP's signing keys (its JWKS, RFC 7517), parsed once when fetched, and the ID
//! token's JWS signature checked against them with aws-lc (RFC 7515 §5.2).
//!
//! openidconnect checks signatures with the RustCrypto `rsa` crate and rebuilds its verifier,
//! with a copy of the JWKS, on every token: 214 µs of a 250 µs callback (BENCHMARKS.md §3).
//! Here the keys become aws-lc `ParsedPublicKey`s when the JWKS arrives, one per algorithm the
//! tenant allows, and a check is one aws-lc verification. openidconnect keeps every claim check
//! (`check_id_token`), run only after this signature check has passed.
//!
//! Key selection follows openidconnect's rule (OIDC Core §10.1): the header's `kid`, when
//! present, names the key; without one, exactly one key of the algorithm's type may match. The
//! header's `jku`, `x5u` and `jwk` are never used: keys come only from the IdP's JWKS
//! (shared/SECURITY.md).

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::CoreJwsSigningAlgorithm as Alg;
use serde::Deserialize;

/// Why a signature was not accepted. No variant carries token bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// Not three base64url parts, or a header that is not a JSON object with a string `alg`.
    Malformed,
    /// `alg` is not one the tenant allows (`none` and HS* never are).
    DisallowedAlgorithm,
    /// No key, or more than one without a `kid`, fits the header.
    NoMatchingKey,
    /// The signature does not verify.
    BadSignature,
}

/// The JWKS's usable keys, each ready for every allowed algorithm its type supports.
#[derive(Clone, Default)]
pub struct IdpKeys {
    keys: Vec<IdpKey>,
}

#[derive(Clone)]
struct IdpKey {
    kid: Option<String>,
    /// (algorithm, key) for each allowed algorithm this key may verify.
    verifiers: Vec<(Alg, ParsedPublicKey)>,
}

/// The members of a JWK that nymgate reads (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

impl IdpKeys {
    /// Parses a JWKS document, keeping the keys that can verify one of `allowed`. A key that is
    /// for encryption, of another type, or malformed is skipped, not an error: IdPs publish
    /// such keys beside their signing keys. `Err` only when the document is not a JWKS.
    pub fn parse(json: &[u8], allowed: &[Alg]) -> Result<IdpKeys, String> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| format!("not a JWKS: {}", super::oidc_rp::json_fault(&e)))?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter(|jwk| jwk.key_use.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let verifiers: Vec<_> = allowed
                    .iter()
                    .filter(|alg| jwk.alg.as_deref().is_none_or(|named| Some(named) == alg_name(alg)))
                    .filter_map(|alg| Some((alg.clone(), parsed_key(&jwk, alg)?)))
                    .collect();
                (!verifiers.is_empty()).then_some(IdpKey { kid: jwk.kid, verifiers })
            })
            .collect();
        Ok(IdpKeys { keys })
    }

    /// Whether a key with this `kid` can verify one of `allowed` (an unknown one makes the
    /// caller refetch the JWKS). The set may be parsed for more algorithms than one tenant
    /// allows (it is shared by the tenants of one IdP, key_cache.rs): a key usable only with
    /// another tenant's algorithm is unknown to this one, as if the tenant had parsed alone.
    pub fn has_kid(&self, kid: &str, allowed: &[Alg]) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid) && k.verifies_one_of(allowed))
    }

    /// Whether any key can verify one of `allowed`.
    pub fn usable_with(&self, allowed: &[Alg]) -> bool {
        self.keys.iter().any(|k| k.verifies_one_of(allowed))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a compact JWS's signature (RFC 7515 §5.2) with the allowed algorithms only.
    pub fn verify(&self, compact: &str, allowed: &[Alg]) -> Result<(), SignatureError> {
        let mut parts = compact.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignatureError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| SignatureError::Malformed)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header_bytes).map_err(|_| SignatureError::Malformed)?;
        let alg = header
            .get("alg")
            .and_then(|a| serde_json::from_value::<Alg>(a.clone()).ok())
            .ok_or(SignatureError::Malformed)?;
        if !allowed.contains(&alg) {
            return Err(SignatureError::DisallowedAlgorithm);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(serde_json::Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(SignatureError::Malformed),
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SignatureError::Malformed)?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
            .filter_map(|key| key.verifiers.iter().find(|(a, _)| *a == alg).map(|(_, parsed)| parsed));
        let key = match (candidates.next(), candidates.next()) {
            (Some(key), None) => key,
            // Two keys fit and the token names neither: OIDC Core §10.1 asks for a kid then.
            _ => return Err(SignatureError::NoMatchingKey),
        };
        // The signing input is the header and payload exactly as sent (RFC 7515 §5.2 step 8).
        let signed = &compact[..header_b64.len() + 1 + payload_b64.len()];
        key.verify_sig(signed.as_bytes(), &signature).map_err(|_| SignatureError::BadSignature)
    }
}

impl IdpKey {
    fn verifies_one_of(&self, allowed: &[Alg]) -> bool {
        self.verifiers.iter().any(|(alg, _)| allowed.contains(alg))
    }
}

/// The JWS name of an algorithm, as a JWK's `alg` would give it.
fn alg_name(alg: &Alg) -> Option<&'static str> {
    Some(match alg {
        Alg::RsaSsaPkcs1V15Sha256 => "RS256",
        Alg::RsaSsaPkcs1V15Sha384 => "RS384",
        Alg::RsaSsaPkcs1V15Sha512 => "RS512",
        Alg::RsaSsaPssSha256 => "PS256",
        Alg::RsaSsaPssSha384 => "PS384",
        Alg::RsaSsaPssSha512 => "PS512",
        Alg::EcdsaP256Sha256 => "ES256",
        Alg::EcdsaP384Sha384 => "ES384",
        Alg::EdDsa => "EdDSA",
        _ => return None,
    })
}

/// The JWK as an aws-lc key for `alg`, or `None` when its type or curve does not fit. RSA keys
/// under 2048 bits are refused at verification by aws-lc's `2048_8192` parameters.
fn parsed_key(jwk: &Jwk, alg: &Alg) -> Option<ParsedPublicKey> {
    let b64 = |field: &Option<String>| field.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let rsa = |params: &'static signature::RsaParameters| {
        let (n, e) = (b64(&jwk.n)?, b64(&jwk.e)?);
        (jwk.kty == "RSA").then_some(())?;
        RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.to_parsed_public_key(params).ok()
    };
    // RFC 7518 §6.2.1: x and y are the full coordinate length; the point is 0x04 || x || y.
    let ec = |curve: &str, len: usize, params: &'static signature::EcdsaVerificationAlgorithm| {
        let (x, y) = (b64(&jwk.x)?, b64(&jwk.y)?);
        (jwk.kty == "EC" && jwk.crv.as_deref() == Some(curve) && x.len() == len && y.len() == len)
            .then_some(())?;
        let point = [&[4u8][..], &x, &y].concat();
        ParsedPublicKey::new(params, point).ok()
    };
    match alg {
        Alg::RsaSsaPkcs1V15Sha256 => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        Alg::RsaSsaPkcs1V15Sha384 => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        Alg::RsaSsaPkcs1V15Sha512 => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        Alg::RsaSsaPssSha256 => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        Alg::RsaSsaPssSha384 => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        Alg::RsaSsaPssSha512 => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        Alg::EcdsaP256Sha256 => ec("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED),
        Alg::EcdsaP384Sha384 => ec("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED),
        Alg::EdDsa => {
            let x = b64(&jwk.x)?;
            (jwk.kty == "OKP" && jwk.crv.as_deref() == Some("Ed25519") && x.len() == 32).then_some(())?;
            ParsedPublicKey::new(&signature::ED25519, x).ok()
        }
        // HS* and anything else: never (config refuses them too).
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> serde_json::Value {
        let public = key.public_key();
        json!({"kty": "RSA", "kid": kid, "use": "sig",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero())})
    }

    fn rsa_token(key: &RsaKeyPair, header: serde_json::Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(br#"{"sub":"s-1"}"#));
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
            .unwrap();
        format!("{input}.{}", b64(&signature))
    }

    fn keys(jwks: serde_json::Value, allowed: &[Alg]) -> IdpKeys {
        IdpKeys::parse(jwks.to_string().as_bytes(), allowed).unwrap()
    }

    const RS256: &[Alg] = &[Alg::RsaSsaPkcs1V15Sha256];

    #[test]
    fn rs256_token_verifies_and_any_changed_byte_is_refused() {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let set = keys(json!({"keys": [rsa_jwk(&key, "k1")]}), RS256);
        let token = rsa_token(&key, json!({"alg": "RS256", "kid": "k1"}));
        assert_eq!(set.verify(&token, RS256), Ok(()));
        // Without a kid the only RSA key is taken.
        assert_eq!(set.verify(&rsa_token(&key, json!({"alg": "RS256"})), RS256), Ok(()));
        let (head, rest) = token.split_once('.').unwrap();
        let changed = format!("{head}.{}", rest.replacen('e', "f", 1));
        assert_eq!(set.verify(&changed, RS256), Err(SignatureError::BadSignature));
        assert_eq!(set.verify(&format!("{token}."), RS256), Err(SignatureError::Malformed));
    }

    #[test]
    fn alg_none_and_hs256_confusion_are_refused() {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let jwk = rsa_jwk(&key, "k1");
        let set = keys(json!({"keys": [jwk.clone()]}), RS256);
        let payload = b64(br#"{"sub":"s-1"}"#);
        let none = format!("{}.{payload}.", b64(br#"{"alg":"none","kid":"k1"}"#));
        assert_eq!(set.verify(&none, RS256), Err(SignatureError::DisallowedAlgorithm));
        // HS256 keyed with the public key's bytes: the algorithm-confusion attack.
        let input = format!("{}.{payload}", b64(br#"{"alg":"HS256","kid":"k1"}"#));
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.to_string().as_bytes()),
            input.as_bytes(),
        );
        let hs = format!("{input}.{}", b64(mac.as_ref()));
        assert_eq!(set.verify(&hs, RS256), Err(SignatureError::DisallowedAlgorithm));
        // Even a tenant that listed HS256 gets no key for it.
        let with_hs = keys(json!({"keys": [jwk]}), &[Alg::HmacSha256]);
        assert!(with_hs.is_empty());
    }

    #[test]
    fn kid_selects_the_key_and_an_unknown_or_ambiguous_one_is_refused() {
        let (a, b) = (
            RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
            RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        );
        let set = keys(json!({"keys": [rsa_jwk(&a, "a"), rsa_jwk(&b, "b")]}), RS256);
        assert!(set.has_kid("a", RS256) && set.has_kid("b", RS256) && !set.has_kid("c", RS256));
        // A kid is known only for the algorithms the caller allows.
        assert!(!set.has_kid("a", &[Alg::EcdsaP256Sha256]) && !set.usable_with(&[Alg::EcdsaP256Sha256]));
        assert!(set.usable_with(&[Alg::EcdsaP256Sha256, Alg::RsaSsaPkcs1V15Sha256]));
        assert_eq!(set.verify(&rsa_token(&b, json!({"alg": "RS256", "kid": "b"})), RS256), Ok(()));
        // Signed by b but naming a: a's key does not verify it.
        let wrong = rsa_token(&b, json!({"alg": "RS256", "kid": "a"}));
        assert_eq!(set.verify(&wrong, RS256), Err(SignatureError::BadSignature));
        let unknown = rsa_token(&b, json!({"alg": "RS256", "kid": "c"}));
        assert_eq!(set.verify(&unknown, RS256), Err(SignatureError::NoMatchingKey));
        let ambiguous = rsa_token(&b, json!({"alg": "RS256"}));
        assert_eq!(set.verify(&ambiguous, RS256), Err(SignatureError::NoMatchingKey));
        let numeric_kid = rsa_token(&b, json!({"alg": "RS256", "kid": 1}));
        assert_eq!(set.verify(&numeric_kid, RS256), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_key_embedded_in_the_header_is_never_used() {
        let (idp, attacker) = (
            RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
            RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        );
        let set = keys(json!({"keys": [rsa_jwk(&idp, "k1")]}), RS256);
        let header = json!({"alg": "RS256", "kid": "k1", "jwk": rsa_jwk(&attacker, "k1"),
            "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"});
        assert_eq!(set.verify(&rsa_token(&attacker, header), RS256), Err(SignatureError::BadSignature));
    }

    #[test]
    fn es256_and_eddsa_keys_verify_their_own_algorithm_only() {
        let rng = SystemRandom::new();
        let ec_pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let ed = Ed25519KeyPair::generate().unwrap();
        let set = keys(
            json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
                {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            ]}),
            &[Alg::EcdsaP256Sha256, Alg::EdDsa],
        );
        let sign = |header: &str, signer: &dyn Fn(&[u8]) -> Vec<u8>| {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(b"{}"));
            format!("{input}.{}", b64(&signer(input.as_bytes())))
        };
        let es = sign(r#"{"alg":"ES256","kid":"ec"}"#, &|m| ec.sign(&rng, m).unwrap().as_ref().to_vec());
        let eddsa = sign(r#"{"alg":"EdDSA","kid":"ed"}"#, &|m| ed.sign(m).as_ref().to_vec());
        assert_eq!(set.verify(&es, &[Alg::EcdsaP256Sha256]), Ok(()));
        assert_eq!(set.verify(&eddsa, &[Alg::EdDsa]), Ok(()));
        // Each only where the tenant allows its algorithm.
        assert_eq!(set.verify(&es, &[Alg::EdDsa]), Err(SignatureError::DisallowedAlgorithm));
        // The EdDSA signature presented as ES256 under the EC key's kid.
        let swapped = sign(r#"{"alg":"ES256","kid":"ed"}"#, &|m| ed.sign(m).as_ref().to_vec());
        assert_eq!(set.verify(&swapped, &[Alg::EcdsaP256Sha256]), Err(SignatureError::NoMatchingKey));
    }

    #[test]
    fn encryption_foreign_and_malformed_keys_are_skipped_not_fatal() {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let mut enc = rsa_jwk(&key, "enc");
        enc["use"] = json!("enc");
        let mut ps_only = rsa_jwk(&key, "ps");
        ps_only["alg"] = json!("PS256");
        let set = keys(
            json!({"keys": [enc, ps_only, {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "n": "!"}, 7]}),
            RS256,
        );
        assert!(set.is_empty());
        assert!(IdpKeys::parse(b"{\"keys\": 1}", RS256).is_err());
        assert!(IdpKeys::parse(b"[]", RS256).is_err());
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        // A real RS256 token under a 1024-bit key, made for this test with `openssl dgst -sha256
        // -sign` (aws-lc will not sign with such a key); the private key was discarded.
        const N: &str = "5D9C6-ILf_sutC-ytsFEZtCOgGQqYSY7PNl8WjUWUjjDA9NHaGUELYhVMTJqFDicxPBRvdK9oNiIHFcNqGjdtKQtSplvNwdJs0-kDMIu3_4sAzHNVzd0M0XPblyI0sYpCCs3V0nyowfUSKclGaupbrN_p6yNPRezRW4mntciZ3c";
        const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IndlYWsifQ.e30.r4hzdFIEDWHdVRD4XFM8mE0O0BQWQdyK6fKg1oRXqUE0lVYCXsVP-5iyQpAJlj6P6G1-A_RlBm6SdZyId9sWvOmfYTw8p1WkUziTTpScBEqll8cuKrP8BFKunlwemvC872aFBnAJj8SKpZw3-6vDNs0d3h9b5x8IKvs-fpu21IU";
        let (input, signature) = TOKEN.rsplit_once('.').unwrap();
        let (n, signature) = (URL_SAFE_NO_PAD.decode(N).unwrap(), URL_SAFE_NO_PAD.decode(signature).unwrap());
        // The signature is genuine: legacy parameters that allow 1024 bits accept it.
        RsaPublicKeyComponents { n: n.as_slice(), e: &[1, 0, 1][..] }
            .verify(&signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, input.as_bytes(), &signature)
            .unwrap();
        let set = keys(json!({"keys": [{"kty": "RSA", "kid": "weak", "n": N, "e": "AQAB"}]}), RS256);
        assert_eq!(set.verify(TOKEN, RS256), Err(SignatureError::BadSignature));
    }
}
