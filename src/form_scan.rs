//! Defence in depth for interception (issue 25): a school's SAML response posted in a form to
//! any path that is not an intercepted ACS is refused, not forwarded.
//!
//! The intercepted ACS is the only place a school's response should arrive through nymgate, and
//! there it is verified and replaced (login/mod.rs). But a platform's SP library may accept a
//! response at more endpoints than the one configured (a second ACS index, a legacy path, a
//! catch-all controller), and then the school's names and national ids would reach it
//! untouched. So every request body a framework may read as a form is watched, as it streams,
//! for a field that carries a SAML message ([`crate::target::SAML_MESSAGES`], in canonical
//! form): `application/x-www-form-urlencoded`, `text/plain` (HTML's third form encoding),
//! `multipart/*`, and bodies without a Content-Type. Other bodies (JSON, uploads of a declared
//! type) are not looked at.
//!
//! The look is bounded: [`FormScanner`] keeps at most [`MAX_NAME`] bytes of the field name (or
//! multipart header line) it is in, whatever the body's size, and decides byte by byte, so it
//! finds a field split across any chunks. The field's value follows its name, so the chunk with
//! the name is refused before it is forwarded and no byte of the value leaves; the platform sees
//! a request cut short, which it does not process. A name longer than the bound is refused when
//! it could spell a SAML message in some encoding (it holds `saml` in any letter case, `%`, `+`
//! or a character NFKC can turn into ASCII); other long names pass (a JSON document posted as a
//! form is one long name).
//!
//! Cost: one branch per byte of a watched body, and nothing for other bodies (BENCHMARKS.md).
//! False positives: a form field *named* like a SAML message, and in a multipart body any line
//! that reads as such a Content-Disposition (an uploaded e-mail file with a form in it) are
//! refused with 400 `saml_message_outside_acs`.

use crate::target::{canonical_param, SAML_MESSAGES};

/// The longest field name (or multipart header line) kept whole.
pub const MAX_NAME: usize = 1024;

/// What a scanner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a SAML response or artifact in a form posted outside an intercepted ACS")]
pub struct SamlMessageInForm;

/// Streaming watch over one request body; see the module doc.
#[derive(Debug)]
pub struct FormScanner {
    kind: Kind,
    /// The current field name (urlencoded) or line (multipart), up to [`MAX_NAME`] bytes.
    buffer: Vec<u8>,
    /// The current name or line went past [`MAX_NAME`].
    overflow: bool,
    /// In a long name or line: something that could spell a SAML message was seen.
    suspicious: bool,
    /// How far `saml` has been matched, case-insensitively, in the current name or line.
    saml_matched: usize,
    /// Urlencoded: inside a value (its bytes are not kept). Multipart: inside a line that is not
    /// a Content-Disposition header (its bytes are not kept).
    skipping: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Urlencoded,
    Multipart,
}

impl FormScanner {
    /// The scanner for a body of this Content-Type, or `None` when no framework reads it as a
    /// form. Compared on the media type alone, without letter case or parameters.
    pub fn for_content_type(content_type: Option<&[u8]>) -> Option<FormScanner> {
        let kind = match content_type {
            None => Kind::Urlencoded,
            Some(value) => {
                let media = value.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
                let media = media.to_ascii_lowercase();
                match media.as_slice() {
                    b"application/x-www-form-urlencoded" | b"text/plain" | b"" => Kind::Urlencoded,
                    m if m.starts_with(b"multipart/") => Kind::Multipart,
                    _ => return None,
                }
            }
        };
        Some(FormScanner {
            kind,
            buffer: Vec::new(),
            overflow: false,
            suspicious: false,
            saml_matched: 0,
            skipping: false,
        })
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SamlMessageInForm> {
        for &b in bytes {
            match self.kind {
                Kind::Urlencoded => self.urlencoded(b)?,
                Kind::Multipart => self.multipart(b)?,
            }
        }
        Ok(())
    }

    /// The body ended: a last field name without `=` is decided too.
    pub fn finish(&mut self) -> Result<(), SamlMessageInForm> {
        match self.kind {
            Kind::Urlencoded if !self.skipping => self.decide_name(),
            Kind::Multipart if !self.skipping => self.decide_line(),
            _ => Ok(()),
        }
    }

    /// `name=value` pairs separated by `&`, `;` or line ends (text/plain).
    fn urlencoded(&mut self, b: u8) -> Result<(), SamlMessageInForm> {
        if self.skipping {
            if matches!(b, b'&' | b';' | b'\r' | b'\n') {
                self.reset();
            }
            return Ok(());
        }
        match b {
            b'=' => {
                self.decide_name()?;
                self.reset();
                self.skipping = true;
            }
            b'&' | b';' | b'\r' | b'\n' => {
                self.decide_name()?;
                self.reset();
            }
            _ => self.keep(b),
        }
        Ok(())
    }

    /// Lines; only those that begin as a Content-Disposition header are kept and decided.
    fn multipart(&mut self, b: u8) -> Result<(), SamlMessageInForm> {
        const HEADER: &[u8] = b"content-disposition";
        if b == b'\n' {
            if !self.skipping {
                self.decide_line()?;
            }
            self.reset();
            return Ok(());
        }
        if self.skipping {
            return Ok(());
        }
        self.keep(b);
        // A line is kept only while it can still be the header (leading space allowed).
        let start = self.buffer.iter().position(|c| !c.is_ascii_whitespace());
        if let Some(start) = start {
            let seen = &self.buffer[start..];
            let n = seen.len().min(HEADER.len());
            if !seen[..n].eq_ignore_ascii_case(&HEADER[..n]) {
                self.skipping = true;
            }
        }
        Ok(())
    }

    fn keep(&mut self, b: u8) {
        const SAML: &[u8] = b"saml";
        // `saml` in any letter case, anywhere in the name or line (for the long case).
        if b.to_ascii_lowercase() == SAML[self.saml_matched] {
            self.saml_matched += 1;
            if self.saml_matched == SAML.len() {
                self.suspicious = true;
                self.saml_matched = 0;
            }
        } else {
            self.saml_matched = usize::from(b.to_ascii_lowercase() == SAML[0]);
        }
        // An escape, a form-encoded space, or the lead byte of a fullwidth form (U+FF00-FFEF)
        // or of a 4-byte character (mathematical letters): each can hide letters from a
        // plain look.
        if matches!(b, b'%' | b'+' | 0xEF | 0xF0..=0xF4) {
            self.suspicious = true;
        }
        if self.buffer.len() < MAX_NAME {
            self.buffer.push(b);
        } else {
            self.overflow = true;
        }
    }

    fn reset(&mut self) {
        self.buffer.clear();
        self.overflow = false;
        self.suspicious = false;
        self.saml_matched = 0;
        self.skipping = false;
    }

    fn decide_name(&self) -> Result<(), SamlMessageInForm> {
        if self.overflow {
            return if self.suspicious { Err(SamlMessageInForm) } else { Ok(()) };
        }
        is_saml_message(&String::from_utf8_lossy(&self.buffer))
    }

    /// A complete Content-Disposition line: its `name` (or RFC 7578 §4.2 / RFC 5987 `name*`).
    fn decide_line(&self) -> Result<(), SamlMessageInForm> {
        if self.buffer.len() < b"content-disposition".len() {
            return Ok(());
        }
        if self.overflow {
            return if self.suspicious { Err(SamlMessageInForm) } else { Ok(()) };
        }
        let line = String::from_utf8_lossy(&self.buffer);
        for param in line.split(';').skip(1) {
            let Some((key, value)) = param.split_once('=') else { continue };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim().trim_end_matches('\r');
            let name = match key.as_str() {
                "name" => value.trim_matches('"').replace("\\\"", "\"").replace("\\\\", "\\"),
                // charset'language'percent-encoded (RFC 5987 §3.2.1); canonical_param decodes.
                "name*" => value.rsplit('\'').next().unwrap_or(value).to_owned(),
                _ => continue,
            };
            is_saml_message(&name)?;
        }
        Ok(())
    }
}

fn is_saml_message(raw_name: &str) -> Result<(), SamlMessageInForm> {
    let name = canonical_param(raw_name);
    if SAML_MESSAGES.iter().any(|rule| name.matches(rule)) {
        Err(SamlMessageInForm)
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[path = "form_scan_tests.rs"]
mod tests;
