//! The checks of an ID token that need no network (OIDC Core §3.1.3.7), apart from the relying
//! party's flow (oidc_rp.rs) so the fuzz target and the benchmark reach them alone: the
//! signature against the IdP's keys first (jwks.rs), then openidconnect's claim checks, then
//! `nbf`, `azp` and `sub` here. No message built here quotes a claim value.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, Nonce};
use serde_json::{Map, Value};

use super::OidcError;
use crate::verify::identity::VerifiedIdentity;
use crate::verify::jwks::{IdpKeys, SignatureError};

/// What an ID token is checked against: the tenant's client id, the IdP's issuer, the allowed
/// algorithms and the clock skew.
pub struct IdTokenRules<'a> {
    pub client_id: &'a str,
    pub issuer: &'a str,
    pub algorithms: &'a [CoreJwsSigningAlgorithm],
    pub clock_skew: Duration,
}

/// [`check_id_token`], and when it passes, the verified identity of the token's claims alone
/// (no userinfo) under the expected issuer: for a caller that holds the token already, as the
/// benchmarks do. A login goes through `OidcIdp::finish`, which also merges userinfo.
pub fn verify_id_token(
    rules: &IdTokenRules<'_>,
    keys: &IdpKeys,
    id_token: &CoreIdToken,
    nonce: &str,
    now: i64,
) -> Result<VerifiedIdentity, OidcError> {
    let claims = check_id_token(rules, keys, id_token, nonce, now)?;
    Ok(VerifiedIdentity::from_oidc(rules.issuer, &claims))
}

/// Every ID-token check that needs no network (OIDC Core §3.1.3.7): openidconnect's signature,
/// algorithm, `iss`, `aud`, `exp`, `iat` and nonce checks, then `nbf`, `azp` and `sub` here.
/// Returns the claims read from the verified bytes. `now` is unix seconds.
pub fn check_id_token(
    rules: &IdTokenRules<'_>,
    keys: &IdpKeys,
    id_token: &CoreIdToken,
    nonce: &str,
    now: i64,
) -> Result<Map<String, Value>, OidcError> {
    let compact = id_token.to_string();
    // OIDC Core §3.1.3.7 (6, 7): the signature, with an allowed algorithm and the IdP's key,
    // checked with aws-lc (jwks.rs) before any claim is read.
    keys.verify(&compact, rules.algorithms).map_err(|error| match error {
        SignatureError::Malformed => OidcError::Malformed,
        SignatureError::DisallowedAlgorithm
        | SignatureError::NoMatchingKey
        | SignatureError::BadSignature => OidcError::BadSignature,
    })?;
    let skew = rules.clock_skew.as_secs() as i64;
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(rules.client_id.to_owned()),
        IssuerUrl::new(rules.issuer.to_owned()).map_err(|_| OidcError::BadIssuer)?,
        CoreJsonWebKeySet::new(Vec::new()),
    )
    // The signature was checked just above, against the same bytes openidconnect reads.
    .insecure_disable_signature_check()
    // `exp` with leeway: openidconnect refuses when now >= exp, so move "now" back by the skew.
    .set_time_fn(move || chrono::DateTime::from_timestamp(now - skew, 0).unwrap_or_default())
    .set_issue_time_verifier_fn(move |iat| {
        let iat = iat.timestamp();
        if iat > now + skew {
            Err("issued in the future".into())
        } else if iat < now - skew - 3600 {
            // An ID token is redeemed seconds after issue; an hour-old one is a replay.
            Err("issued too long ago".into())
        } else {
            Ok(())
        }
    });
    id_token.claims(&verifier, &Nonce::new(nonce.to_owned())).map_err(classify)?;

    // The signature covered these exact bytes; read every claim from them.
    let claims = decode_part(&compact, 1)?;
    if let Some(nbf) = claims.get("nbf") {
        if nbf.as_i64().is_none_or(|nbf| nbf > now + skew) {
            return Err(OidcError::BadTime);
        }
    }
    // OIDC Core §3.1.3.7 (4, 5): azp, when present, must be us; several audiences need it.
    let audiences = match claims.get("aud") {
        Some(Value::Array(list)) => list.len(),
        _ => 1,
    };
    match claims.get("azp").map(Value::as_str) {
        Some(Some(azp)) if azp == rules.client_id => {}
        Some(_) => return Err(OidcError::BadAudience),
        None if audiences > 1 => return Err(OidcError::BadAudience),
        None => {}
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(OidcError::Malformed);
    }
    Ok(claims)
}

/// One base64url JSON part of a compact JWS (0: header, 1: payload).
pub(super) fn decode_part(compact: &str, index: usize) -> Result<Map<String, Value>, OidcError> {
    let part = compact.split('.').nth(index).ok_or(OidcError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| OidcError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed)
}

/// What is wrong with an IdP's JSON, without serde's message, which quotes the IdP's values
/// (`invalid type: string "…"`) and names its keys: the kind of fault and where it is.
pub(crate) fn json_fault(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match error.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not JSON",
        Category::Data => "JSON of the wrong shape",
        Category::Eof => "JSON cut short",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// openidconnect's verdict, as a reason. Its messages quote claim values, so only the kind
/// is kept.
fn classify(error: ClaimsVerificationError) -> OidcError {
    match error {
        ClaimsVerificationError::SignatureVerification(_) => OidcError::BadSignature,
        ClaimsVerificationError::InvalidIssuer(_) => OidcError::BadIssuer,
        ClaimsVerificationError::InvalidAudience(_) => OidcError::BadAudience,
        ClaimsVerificationError::InvalidNonce(_) => OidcError::BadNonce,
        ClaimsVerificationError::Expired(_) => OidcError::BadTime,
        _ => OidcError::Malformed,
    }
}
