//! The canonical form of an issuer: an OIDC issuer URL, a SAML entity id, or an Entra
//! directory id. Decided once, here at the bottom floor, and used by every rule that compares
//! issuers (discovery, shared-IdP detection, tenant choice) and by the account number's HMAC
//! input (docs/PSEUDONYMS.md, "A stable issuer").
//!
//! Why: an IdP that republishes its discovery document with a trailing slash, an upper-case
//! host or an explicit `:443` still names the same issuer, and a pupil's account number must
//! not change with its spelling. Two spellings are equal when their canonical forms are:
//!
//! * an `http`/`https` URL (RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based
//!   normalization): scheme and host in lower case (an internationalized host in its
//!   A-label form, without a root dot), the default port dropped, dot segments resolved,
//!   percent-encodings of unreserved characters decoded and the others in upper case, and
//!   every trailing `/` of the path dropped (so `https://idp.example/` and `https://idp.example` are one issuer;
//!   OIDC Discovery §4.3 compares them exactly, which is why discovery still checks the
//!   advertised spelling against the ID token's `iss` byte for byte). A query is kept as
//!   written (a SAML entity id may have one); a user, a password or a fragment is refused: an
//!   issuer has none.
//! * a URN (RFC 8141 §3.1): `urn:` and the namespace id in lower case, the rest as written.
//! * anything else (an Entra directory id, a bare entity id): ASCII letters in lower case, so
//!   a GUID in either case is one id.
//!
//! Every form is refused when it is empty, has whitespace or control characters, or is longer
//! than [`MAX_ISSUER_BYTES`]: such a string is no spelling of a real issuer.

use openidconnect::url::Url;

/// Longer issuers exist nowhere in practice; the bound keeps a hostile discovery document's
/// `issuer` from costing more than a glance.
pub const MAX_ISSUER_BYTES: usize = 1024;

/// Why a string is no issuer. Never quotes it: an advertised issuer is the IdP's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 1024 bytes")]
    TooLong,
    #[error("has whitespace or control characters")]
    Whitespace,
    #[error("is not a valid URL")]
    BadUrl,
    #[error("has a user name, password or fragment, which no issuer has")]
    UrlParts,
}

/// The canonical form of `raw`. See the module doc for the rules.
pub fn canonical_issuer(raw: &str) -> Result<String, IssuerError> {
    if raw.is_empty() {
        return Err(IssuerError::Empty);
    }
    if raw.len() > MAX_ISSUER_BYTES {
        return Err(IssuerError::TooLong);
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IssuerError::Whitespace);
    }
    let scheme = raw.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https") => canonical_url(raw),
        Some("urn") => {
            let rest = &raw[4..];
            let (nid, nss) = rest.split_once(':').unwrap_or((rest, ""));
            Ok(format!("urn:{}:{nss}", nid.to_ascii_lowercase()))
        }
        _ => Ok(raw.to_ascii_lowercase()),
    }
}

/// Whether two spellings name one issuer. A string that is no issuer equals nothing.
pub fn same_issuer(a: &str, b: &str) -> bool {
    match (canonical_issuer(a), canonical_issuer(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn canonical_url(raw: &str) -> Result<String, IssuerError> {
    // The url crate applies RFC 3986 §6.2.2.1 (case), §6.2.2.3 (dot segments), §6.2.3 (default
    // port, empty path) and IDNA (UTS #46) to the host.
    let url = Url::parse(raw).map_err(|_| IssuerError::BadUrl)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(IssuerError::UrlParts);
    }
    if url.fragment().is_some() || raw.contains('#') {
        return Err(IssuerError::UrlParts);
    }
    // A fully qualified host's root dot (`idp.example.`) names the same host (RFC 1034 §3.1).
    let host = url.host_str().ok_or(IssuerError::BadUrl)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    // An empty label (`idp..`, `%2e%2e`) is no host: refused, so that no spelling has two
    // canonical forms (found by the fuzz target `issuer`).
    if host.is_empty() || host.ends_with('.') {
        return Err(IssuerError::BadUrl);
    }
    let mut out = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&normalize_percent(url.path()).ok_or(IssuerError::BadUrl)?);
    while out.ends_with('/') {
        out.pop();
    }
    // A SAML entity id may carry a query (Google Workspace's
    // `https://accounts.google.com/o/saml2?idpid=…`; SAML Core §8.3.6 allows any URI): it is
    // part of the id, kept as written, in its order. An OIDC issuer has none (OIDC Discovery
    // §3), and the ID token's `iss` is compared byte for byte anyway.
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    // Percent-encoding can triple a long path: the bound holds for the canonical form too, so
    // that a canonical form is always its own (fuzz target `issuer`).
    if out.len() > MAX_ISSUER_BYTES {
        return Err(IssuerError::TooLong);
    }
    Ok(out)
}

/// RFC 3986 §6.2.2.2: a percent-encoded unreserved character is the character; every other
/// percent-encoding is written with upper-case hex digits. `None` for a broken escape.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3)?;
        let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            out.push(value as char);
        } else {
            out.push_str(&format!("%{value:02X}"));
        }
        i += 3;
    }
    // A decoded `.` may have made a new dot segment; resolve once more (the url crate did the
    // first pass on the encoded form, where `%2E` is no dot).
    if out.split('/').any(|segment| segment == "." || segment == "..") {
        let reparsed = Url::parse(&format!("http://h{out}")).ok()?;
        return Some(reparsed.path().to_owned());
    }
    Some(out)
}

#[cfg(test)]
#[path = "issuer_tests.rs"]
mod tests;
