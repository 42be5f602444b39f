//! The canonical form of a request target: the one spelling every routing and privacy rule
//! decides on (issue 25, "Canonicalize once, then decide").
//!
//! A platform framework reads a path or a query parameter name more loosely than its bytes say:
//! it percent-decodes (sometimes twice), drops `;params`, merges slashes, resolves `..`, ignores
//! a trailing slash or letter case, and some servers read `\` as `/`. A rule that compares raw
//! bytes is passed by any of these spellings. So nymgate turns the target into one *decision
//! form* that is at least as loose as any framework it fronts, and matches rules only on that:
//!
//! - paths ([`canonical_path`]): percent-decoding of every escape, repeated while it changes
//!   (double encoding), then NFKC and lowercase, `\` read as `/`, `;params` removed from every
//!   segment (RFC 3986 §3.3), dot segments removed (RFC 3986 §5.2.4), empty segments and a
//!   trailing slash dropped;
//! - query parameter names ([`canonical_param`]): the same decoding and folding (`+` is a space,
//!   WHATWG URL §5.1), surrounding space trimmed, and the bracket and dot suffixes of nested
//!   names (`email[]`, `email[0]`, `user[email]`, `user.email`) split into keys that are
//!   matched each; [`query_pairs`] splits on `&` and on `;` (HTML 4 §B.2.2, still honoured by
//!   several frameworks).
//!
//! The decision form is stricter than RFC 3986 §6.2.2 on purpose: it is only ever compared, never
//! forwarded, so reading more spellings as one costs at most a refusal of an odd path that would
//! have meant nymgate's endpoint or an intercepted ACS to some framework anyway. What is
//! forwarded to the platform is the client's target, unchanged, unless a rule rewrote it.

use unicode_normalization::UnicodeNormalization;

/// Query and form parameter names (canonical) that carry a SAML protocol message with a school's
/// identity in it: a Response (HTTP-POST or HTTP-Redirect binding) or an artifact that resolves
/// to one (SAML Bindings §3.4-3.6). None reaches the platform unverified.
pub const SAML_MESSAGES: &[&str] = &["samlresponse", "samlart"];

/// Rounds of percent-decoding at most: enough for any double or triple encoding a chain of
/// decoders applies; a path that still changes after that is read as its last round.
const MAX_DECODE_ROUNDS: usize = 4;

/// The decision form of a request path; see the module doc. Always starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path is `route`, or `route` with a format suffix on its last segment
    /// (`/saml/acs.json`, `/saml/acs.xml`): Rails' optional `(.:format)` and Spring's suffix
    /// patterns route those to the same action.
    pub fn routes_to(&self, route: &CanonicalPath) -> bool {
        if self == route {
            return true;
        }
        match self.0.rsplit_once('/') {
            Some((_, last)) if last.contains('.') => {
                let stem = &self.0[..self.0.len() - (last.len() - last.find('.').unwrap_or(last.len()))];
                stem == route.0
            }
            _ => false,
        }
    }

    /// Whether this path is `prefix` or below it (`prefix` in canonical form, without a
    /// trailing slash): `/nymgate` owns `/nymgate` and `/nymgate/x`, not `/nymgatex`.
    pub fn is_under(&self, prefix: &str) -> bool {
        self.0 == prefix || self.0.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// A path still percent-encoded after [`MAX_DECODE_ROUNDS`] rounds of decoding: no framework
/// decodes that deep, and no rule can say what it means, so the request is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request path is percent-encoded more than {MAX_DECODE_ROUNDS} times over")]
pub struct Unsettled;

/// The decision form of a path (the part of a request target before `?`).
pub fn canonical_path(raw: &str) -> Result<CanonicalPath, Unsettled> {
    let decoded = settle(raw, false).ok_or(Unsettled)?;
    let mut segments: Vec<&str> = Vec::new();
    // `\` is a separator to IIS, some Java containers and Windows-hosted frameworks.
    for segment in decoded.split(['/', '\\']) {
        // Path parameters (RFC 3986 §3.3; Java's `;jsessionid=`) belong to their segment only.
        let segment = segment.split(';').next().unwrap_or("");
        // Windows-hosted servers ignore a segment's trailing dots and spaces and an NTFS stream
        // name (`acs.`, `acs%20`, `acs::$DATA`); a NUL ends the segment for C-string readers.
        let segment = segment.split('\0').next().unwrap_or("");
        let segment = segment.split("::").next().unwrap_or("");
        let segment = match segment {
            "." | ".." => segment,
            s if s.trim_end_matches(['.', ' ']).is_empty() => "",
            s => s.trim_end_matches(['.', ' ']),
        };
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(CanonicalPath(out))
}

/// A query parameter's name in decision form, with the keys a framework may read it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalParam {
    /// The whole name, decoded and folded (`user[email]`).
    pub name: String,
    /// The parts of a nested name: `user[email]` and `user.email` give `user`, `email`;
    /// `email[]` and `email[0]` give `email`. Numeric and empty keys are left out.
    pub keys: Vec<String>,
}

impl CanonicalParam {
    /// Whether a rule naming `rule` (already canonical, see [`canonical_rule_name`]) applies.
    pub fn matches(&self, rule: &str) -> bool {
        self.name == rule || self.keys.iter().any(|k| k == rule)
    }
}

/// The decision form of a raw (still encoded) query parameter name.
pub fn canonical_param(raw_name: &str) -> CanonicalParam {
    // A name still encoded after every round is read as it is: it then matches no rule's
    // plain name, and names (unlike paths) are not refused for it, since the value is what a
    // rule protects and the whole pair is what a drop rule removes.
    let decoded = settle(raw_name, true).unwrap_or_else(|| fold(raw_name));
    let name = decoded.trim().to_owned();
    // PHP and other C-string readers end a name at NUL (`SAMLResponse%00x` is `samlresponse`);
    // other control characters are dropped, as no framework's route or rule names hold them.
    let cut: String = name.split('\0').next().unwrap_or("").chars().filter(|c| !c.is_control()).collect();
    let cut = cut.trim();
    let mut keys: Vec<String> = Vec::new();
    for part in [name.as_str(), cut] {
        // Nested names: PHP and Rack brackets, Spring's `user['email']`, ASP.NET's dots.
        keys.extend(
            part.split(['[', ']', '.'])
                .map(|k| k.trim().trim_matches(['\'', '"']).trim())
                .filter(|k| !k.is_empty() && !k.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned),
        );
    }
    if cut != name {
        keys.push(cut.to_owned());
    }
    keys.sort();
    keys.dedup();
    CanonicalParam { name, keys }
}

/// A configured parameter name in the form [`CanonicalParam::matches`] compares with.
pub fn canonical_rule_name(name: &str) -> String {
    fold(name).trim().to_owned()
}

/// The pairs of a raw query, split on `&` and `;`: each with the separator before it (`None`
/// for the first), its raw name and its raw value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = QueryPair<'_>> {
    let mut rest = Some(query);
    let mut separator = None;
    std::iter::from_fn(move || {
        let text = rest?;
        let (pair, next) = match text.find(['&', ';']) {
            Some(i) => (&text[..i], Some((&text[i + 1..], text.as_bytes()[i] as char))),
            None => (text, None),
        };
        let this = separator;
        match next {
            Some((after, sep)) => {
                rest = Some(after);
                separator = Some(sep);
            }
            None => rest = None,
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        Some(QueryPair { separator: this, raw: pair, name, value })
    })
}

/// One `name=value` of a query, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryPair<'a> {
    pub separator: Option<char>,
    pub raw: &'a str,
    pub name: &'a str,
    pub value: &'a str,
}

/// Whether a raw query carries a parameter whose canonical name matches one of `rules`.
pub fn query_has(query: &str, rules: &[&str]) -> bool {
    query_pairs(query).any(|pair| pair_matches(&pair, rules))
}

/// Whether a pair is a parameter one of `rules` names: by its own name, or by a name inside it
/// once decoded, since a stack that decodes the query before splitting it reads
/// `x=1%26email%3Dv` as `x=1&email=v`.
pub fn pair_matches<R: AsRef<str>>(pair: &QueryPair<'_>, rules: &[R]) -> bool {
    let matches = |param: &CanonicalParam| rules.iter().any(|rule| param.matches(rule.as_ref()));
    if matches(&canonical_param(pair.name)) {
        return true;
    }
    if !pair.raw.contains('%') {
        return false;
    }
    let decoded = settle(pair.raw, true).unwrap_or_default();
    decoded.contains(['&', ';'])
        && query_pairs(&decoded).skip(1).any(|inner| matches(&canonical_param(inner.name)))
}

/// Whether a cookie name is one of nymgate's own (`__Host-nymgate-session`, the flow and school
/// cookies): compared without letter case and without its `__Host-`/`__Secure-` prefix
/// (RFC 6265bis §4.1.3: browsers match those prefixes case-insensitively), so that every
/// cookie whose name starts `nymgate` is nymgate's, however it is spelled. Decides both which
/// cookies a request carries on to the platform and which `Set-Cookie` the platform may send.
pub fn is_own_cookie_name(name: &[u8]) -> bool {
    let name = name.trim_ascii().to_ascii_lowercase();
    let name = name.strip_prefix(b"__host-").or_else(|| name.strip_prefix(b"__secure-")).unwrap_or(&name);
    name.starts_with(b"nymgate")
}

/// NFKC (fullwidth and compatibility letters read as their plain forms) and lowercase.
fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    // Case-insensitive comparisons in Java (`equalsIgnoreCase`) and .NET read the Turkish
    // dotted and dotless I and the long s as i and s; NFKC and lowercase leave them apart
    // (`İ` lowercases to `i̇`, i and a combining dot).
    text.nfkc()
        .collect::<String>()
        .to_lowercase()
        .chars()
        .filter(|c| *c != '\u{0307}')
        .map(|c| match c {
            'ı' => 'i',
            'ſ' => 's',
            c => c,
        })
        .collect()
}

/// Percent-decodes and folds until nothing changes; `None` when it still changes after
/// [`MAX_DECODE_ROUNDS`] rounds. Folding is inside the loop because it can make escapes: NFKC
/// reads a fullwidth `％` as `%`, so `/％6eymgate` is `/%6eymgate` and then `/nymgate` to a
/// framework that normalizes before it decodes. `plus_is_space` for form-encoded names (first
/// round only: a `%2B` is a literal plus). Bytes that are not UTF-8 become U+FFFD: they match
/// no rule.
fn settle(input: &str, plus_is_space: bool) -> Option<String> {
    let mut current = input.to_owned();
    for round in 0..=MAX_DECODE_ROUNDS {
        let decoded = percent_decode(current.as_bytes(), plus_is_space && round == 0);
        let next = fold(&String::from_utf8_lossy(&decoded));
        if next == current {
            return Some(current);
        }
        current = next;
    }
    None
}

/// One round of percent-decoding; a `%` not followed by two hex digits stays as it is.
fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                if let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                // IIS and classic ASP.NET also read `%uXXXX` as the UTF-16 code unit XXXX.
                if matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
                    let unit = (2..6).try_fold(0u32, |n, k| hex(bytes.get(i + k)).map(|d| n * 16 + d));
                    if let Some(c) = unit.and_then(char::from_u32) {
                        let mut utf8 = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                        i += 6;
                        continue;
                    }
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
