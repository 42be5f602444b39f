//! Reading a secret from its source, one rule for `nymgate check` and `nymgate serve`: a
//! secret `check` accepts is one `serve` loads, and the other way round (issue 28: `check` had
//! passed an admin token `serve` then refused).

use std::path::PathBuf;

use serde::Deserialize;

use super::check_private_file;

/// A secret named by where it lives, never by its value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// A file readable by nymgate only (mode 0600 or stricter).
    File(PathBuf),
    /// An environment variable's name.
    Env(String),
}

impl SecretSource {
    /// The secret's bytes, read as `serve` reads them ([`read_secret`]).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        read_secret(self)
    }
}

/// A secret `serve` would refuse is a problem here too: both read it with
/// [`read_secret`] (or [`read_bearer_token`], via `read`).
pub(super) fn validate_secret_source(
    source: &SecretSource,
    field: &str,
    problem: &mut impl FnMut(&str, String),
) {
    validate_secret_with(source, field, problem, read_secret);
}

pub(super) fn validate_secret_with(
    source: &SecretSource,
    field: &str,
    problem: &mut impl FnMut(&str, String),
    read: fn(&SecretSource) -> Result<Vec<u8>, String>,
) {
    match read(source) {
        // Read and checked as serve will, then forgotten (zeroed: it is a secret).
        Ok(mut bytes) => bytes.iter_mut().for_each(|b| *b = 0),
        Err(message) => {
            let part = match source {
                SecretSource::File(_) => "file",
                SecretSource::Env(_) => "env",
            };
            problem(&format!("{field}.{part}"), message);
        }
    }
}

/// The shortest secret taken, in bytes after trailing newlines are dropped.
pub const MIN_SECRET_BYTES: usize = 16;

/// Reads a secret from its configured source: a file that only nymgate may read, or an
/// environment variable. Trailing newlines of either are dropped. Errors name the source,
/// never the value.
pub fn read_secret(source: &SecretSource) -> Result<Vec<u8>, String> {
    let mut bytes = match source {
        SecretSource::File(path) => {
            check_private_file(path)?;
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        SecretSource::Env(name) => std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set or not UTF-8"))?
            .into_bytes(),
    };
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET_BYTES {
        bytes.iter_mut().for_each(|b| *b = 0);
        return Err(format!(
            "secret is shorter than {MIN_SECRET_BYTES} bytes: make one with `head -c 32 /dev/urandom | base64`"
        ));
    }
    Ok(bytes)
}

/// Reads a bearer token (`[retention.api]`): a secret as [`read_secret`] takes it, which is
/// also a `b64token` (RFC 6750 §2.1: letters, digits, `-._~+/`, then `=` padding only). A
/// token with any other byte (a space, a quote, a non-ASCII letter) could not be sent in an
/// `Authorization` header as it is, so no call would ever match it: refused at `check` and at
/// start alike rather than found out at the first DPO request.
pub fn read_bearer_token(source: &SecretSource) -> Result<Vec<u8>, String> {
    let bytes = read_secret(source)?;
    let body_end = bytes.iter().position(|b| *b == b'=').unwrap_or(bytes.len());
    let body_ok = bytes[..body_end].iter().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
    let padding_ok = bytes[body_end..].iter().all(|b| *b == b'=');
    if body_end == 0 || !body_ok || !padding_ok {
        return Err("a bearer token may hold only letters, digits and -._~+/ (then = padding), \
                    as RFC 6750 §2.1 says: make one with `head -c 32 /dev/urandom | base64`"
            .into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, value: &str) -> SecretSource {
        std::env::set_var(name, value);
        SecretSource::Env(name.into())
    }

    #[test]
    fn bearer_tokens_are_b64tokens_of_at_least_16_bytes() {
        let good = env("NYMGATE_TEST_TOKEN_GOOD", "dpo-token-fedcba9876543210fedcba98+/=");
        assert!(read_bearer_token(&good).is_ok());
        for (name, value) in [
            ("NYMGATE_TEST_TOKEN_SHORT", "short-token"),
            ("NYMGATE_TEST_TOKEN_SPACE", "dpo token fedcba9876543210"),
            ("NYMGATE_TEST_TOKEN_QUOTE", "dpo-token-\"fedcba9876543210"),
            ("NYMGATE_TEST_TOKEN_UTF8", "dpo-token-fedcba9876543210-å"),
            ("NYMGATE_TEST_TOKEN_PAD", "dpo-token=fedcba9876543210"),
        ] {
            let error = read_bearer_token(&env(name, value)).unwrap_err();
            assert!(!error.contains(value), "the error echoes the token: {error}");
        }
    }
}
