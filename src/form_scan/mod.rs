//! Defence in depth for interception (issue 25): a school's SAML message in a request body on
//! any path that is not an intercepted ACS is refused, not forwarded.
//!
//! The intercepted ACS is the only place a school's response should arrive through nymgate, and
//! there it is verified and replaced (login/mod.rs). But a platform's SP library may accept a
//! response at more endpoints than the one configured (a second ACS, a legacy path, a catch-all
//! controller, a JSON API), and then the school's names and national ids would reach it
//! untouched. So every request body is watched as it streams, in two ways:
//!
//! - **By value** ([`values`]): the base64 of the SAML namespace prefix `urn:oasis:names:tc:SAML:`
//!   at each of its three alignments, in every body but declared binary media. A SAML message
//!   (a Response, an Assertion, an artifact resolution, a logout message with a NameID) carries
//!   it whatever the field's name, the encoding of the form (urlencoded, multipart, JSON, plain
//!   text) or base64 wrapped over lines, so this is the backstop of every name rule.
//! - **By field name** ([`names`]): a field whose canonical name (target.rs) is a SAML message
//!   ([`crate::target::SAML_MESSAGES`]) in bodies a framework reads as a form:
//!   `application/x-www-form-urlencoded`, `text/plain`, untyped, and `multipart/*` (whose part
//!   headers are read as a whole block, unfolded, with every encoding of a parameter decoded).
//!
//! What the watch cannot read is refused before anything is forwarded ([`BodyRefusal`]): a
//! body under a Content-Encoding (gzip: the platform's stack may inflate it), a charset that is
//! not ASCII-compatible (UTF-16 spells every letter apart), two Content-Type lines (stacks keep
//! different ones), and the PAOS binding's XML.
//!
//! The look is bounded: at most [`MAX_NAME`] bytes of a field name and [`MAX_PART_HEADERS`]
//! of one part's headers are kept, whatever the body's size, and it decides byte by byte, so it
//! finds what is split across any chunks. What it looks for precedes the personal values (a
//! field's name precedes its value; the namespace prefix comes within the first 100 bytes of a
//! base64 SAML message, before any NameID or attribute), so the chunk holding it is refused
//! before it is forwarded; the platform sees a request cut short, which it does not process.
//!
//! Cost: a few branches per byte of a watched body (BENCHMARKS.md §2). False positives, each
//! refused with 400 `saml_message_outside_acs`: a form field *named* like a SAML message, an
//! uploaded file *named* so, and any base64 SAML document posted to the platform (a base64
//! SAML metadata file, a school's logout request to the platform's own SLO endpoint).

mod names;
mod values;

use crate::target::{canonical_param, SAML_MESSAGES};

/// The longest field name kept whole (a longer one is judged by what it could spell).
pub const MAX_NAME: usize = 1024;
/// The most bytes of one multipart part's header block kept; a larger block is refused.
pub const MAX_PART_HEADERS: usize = 8192;

/// What a scanner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a SAML response or artifact in a body posted outside an intercepted ACS")]
pub struct SamlMessageInForm;

/// Why a request body is refused before it is read (each is a metric reason too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    #[error("more than one Content-Type")]
    DuplicateContentType,
    #[error("a request body under a Content-Encoding nymgate cannot watch")]
    Encoded,
    #[error("a request body in a charset that is not ASCII-compatible")]
    Charset,
    #[error("a SAML PAOS message outside an intercepted ACS")]
    Paos,
}

impl BodyRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            BodyRefusal::DuplicateContentType => "duplicate_content_type",
            BodyRefusal::Encoded => "encoded_body",
            BodyRefusal::Charset => "unsupported_charset",
            BodyRefusal::Paos => "saml_message_outside_acs",
        }
    }

    /// 415 for what nymgate cannot read, 400 for what is malformed or forbidden.
    pub fn is_unsupported_media(self) -> bool {
        matches!(self, BodyRefusal::Encoded | BodyRefusal::Charset)
    }
}

/// Streaming watch over one request body; see the module doc.
#[derive(Debug)]
pub struct FormScanner {
    /// By field name, for bodies a framework reads as a form.
    names: Option<names::Names>,
    /// By value, for every body but declared binary media.
    values: Option<values::Values>,
}

/// Charsets in which ASCII letters are the ASCII bytes (WHATWG Encoding's single-byte and UTF-8
/// labels, the common ones): a watch over bytes reads names and base64 in them as they are.
const ASCII_COMPATIBLE: &[&str] =
    &["utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "l1", "iso-8859-15", "cp1252"];

impl FormScanner {
    /// The watch for a request with these Content-Type and Content-Encoding values, `None`
    /// when there is nothing to watch, or the refusal.
    pub fn for_request<'a>(
        content_types: impl Iterator<Item = &'a [u8]>,
        content_encodings: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<FormScanner>, BodyRefusal> {
        let types: Vec<&[u8]> = content_types.collect();
        if types.len() > 1 {
            return Err(BodyRefusal::DuplicateContentType);
        }
        for encoding in content_encodings {
            for coding in encoding.split(|b| *b == b',') {
                if !coding.trim_ascii().is_empty() && !coding.trim_ascii().eq_ignore_ascii_case(b"identity") {
                    return Err(BodyRefusal::Encoded);
                }
            }
        }
        let Some(content_type) = types.first() else { return Ok(Self::for_content_type(None)) };
        let (media, params) = split_media_type(content_type);
        if let Some(charset) = param(&params, "charset") {
            let windows = charset.strip_prefix("windows-125").is_some_and(|d| d.len() == 1);
            let iso =
                charset.strip_prefix("iso-8859-").is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 16));
            if !(ASCII_COMPATIBLE.contains(&charset.as_str()) || windows || iso) {
                return Err(BodyRefusal::Charset);
            }
        }
        if media == "application/vnd.paos+xml" {
            return Err(BodyRefusal::Paos);
        }
        Ok(Self::for_content_type(Some(content_type)))
    }

    /// The watch for a body of this Content-Type (media type compared without letter case and
    /// parameters), `None` for declared binary media.
    pub fn for_content_type(content_type: Option<&[u8]>) -> Option<FormScanner> {
        let (media, params) = content_type.map(split_media_type).unwrap_or_default();
        let names = match media.as_str() {
            "" | "application/x-www-form-urlencoded" | "text/plain" => Some(names::Names::urlencoded()),
            m if m.starts_with("multipart/") => Some(names::Names::multipart(param(&params, "boundary"))),
            _ => None,
        };
        let binary = ["image/", "audio/", "video/", "font/", "model/"].iter().any(|p| media.starts_with(p))
            || matches!(
                media.as_str(),
                "application/octet-stream" | "application/pdf" | "application/zip" | "application/gzip"
            );
        let values = (!binary).then(values::Values::default);
        (names.is_some() || values.is_some()).then_some(FormScanner { names, values })
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SamlMessageInForm> {
        if let Some(values) = &mut self.values {
            values.feed(bytes)?;
        }
        if let Some(names) = &mut self.names {
            names.feed(bytes)?;
        }
        Ok(())
    }

    /// The body ended: what is still pending is decided.
    pub fn finish(&mut self) -> Result<(), SamlMessageInForm> {
        match &mut self.names {
            Some(names) => names.finish(),
            None => Ok(()),
        }
    }
}

/// The media type (lowercase; ended by `;`, `,` or white space as PHP and Rack end it) and the
/// raw parameters after it.
fn split_media_type(value: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(value);
    let text = text.trim();
    let end = text.find([';', ',', ' ', '\t']).unwrap_or(text.len());
    (text[..end].to_ascii_lowercase(), text[end..].to_owned())
}

/// A parameter's value (unquoted, lowercase for charsets; as written for boundaries).
fn param(params: &str, name: &str) -> Option<String> {
    params.split([';', ',']).find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim().trim_matches('"');
            if name == "charset" {
                value.to_ascii_lowercase()
            } else {
                value.to_owned()
            }
        })
    })
}

/// Whether a (raw) field name is a SAML message's, in canonical form.
fn is_saml_message(raw_name: &str) -> Result<(), SamlMessageInForm> {
    let name = canonical_param(raw_name);
    if SAML_MESSAGES.iter().any(|rule| name.matches(rule)) {
        Err(SamlMessageInForm)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
