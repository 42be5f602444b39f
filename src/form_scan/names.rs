//! By field name: urlencoded pairs, and multipart part headers read as a whole.
//!
//! Urlencoded (and text/plain, and untyped) bodies are `name=value` pairs split by `&`, `;` or
//! a line end; each name is decided in canonical form (target.rs) when its `=` or separator
//! arrives, before its value. A name longer than [`MAX_NAME`] is refused when it could spell a
//! SAML message (it holds `saml` in any letter case, `%`, `+`, or a character NFKC can turn into
//! ASCII) and passes otherwise (a JSON document posted as a form is one long name).
//!
//! Multipart bodies are cut into parts by their boundary (RFC 2046 §5.1.1) on lines ended by
//! CR, LF or CRLF, as the lenient parsers read them (Werkzeug, PHP). Each part's header block,
//! up to the empty line, is decided as one text, so that no parser's reading of it matters:
//! folded lines, a `name` in any parameter (Content-Disposition, Content-ID), quoted or not,
//! with backslash escapes, RFC 2231 continuations (`name*0`, `name*1`) and charsets, RFC 2047
//! encoded words, percent escapes and NULs are all undone, and the block is refused when the
//! text left holds a SAML message's name anywhere (an uploaded file named `SAMLResponse.xml`
//! too).

use super::{is_saml_message, SamlMessageInForm, MAX_NAME, MAX_PART_HEADERS};
use crate::target::SAML_MESSAGES;

#[derive(Debug)]
pub(super) enum Names {
    Urlencoded(Urlencoded),
    Multipart(Multipart),
}

impl Names {
    pub(super) fn urlencoded() -> Names {
        Names::Urlencoded(Urlencoded::default())
    }

    /// `boundary`: the Content-Type's; without one, any line that starts with `--` opens a
    /// part (what a lenient parser guesses).
    pub(super) fn multipart(boundary: Option<String>) -> Names {
        Names::Multipart(Multipart {
            boundary: boundary.map(|b| format!("--{b}").into_bytes()),
            ..Default::default()
        })
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<(), SamlMessageInForm> {
        match self {
            Names::Urlencoded(u) => u.feed(bytes),
            Names::Multipart(m) => bytes.iter().try_for_each(|b| m.byte(*b)),
        }
    }

    pub(super) fn finish(&mut self) -> Result<(), SamlMessageInForm> {
        match self {
            Names::Urlencoded(u) if !u.in_value => u.name.decide(),
            Names::Urlencoded(_) => Ok(()),
            Names::Multipart(m) => m.end_line().and_then(|()| m.end_headers()),
        }
    }
}

/// A field name being read, bounded.
#[derive(Debug, Default)]
struct Name {
    /// Up to [`MAX_NAME`] bytes of it.
    bytes: Vec<u8>,
    /// It went past [`MAX_NAME`].
    overflow: bool,
    /// Something that could spell a SAML message was seen in it.
    suspicious: bool,
    /// How far `saml` has been matched, case-insensitively.
    saml_matched: usize,
}

impl Name {
    fn push(&mut self, b: u8) {
        const SAML: &[u8] = b"saml";
        let lower = b.to_ascii_lowercase();
        if lower == SAML[self.saml_matched] {
            self.saml_matched += 1;
            if self.saml_matched == SAML.len() {
                self.suspicious = true;
                self.saml_matched = 0;
            }
        } else {
            self.saml_matched = usize::from(lower == SAML[0]);
        }
        // An escape, a form-encoded space, a NUL (a C reader's end of the name), or the lead
        // byte of a fullwidth form (U+FF00-FFEF) or of a 4-byte character (mathematical
        // letters): each can hide letters from a plain look.
        if matches!(b, b'%' | b'+' | 0 | 0xEF | 0xF0..=0xF4) {
            self.suspicious = true;
        }
        if self.bytes.len() < MAX_NAME {
            self.bytes.push(b);
        } else {
            self.overflow = true;
        }
    }

    fn decide(&self) -> Result<(), SamlMessageInForm> {
        if self.overflow {
            return if self.suspicious { Err(SamlMessageInForm) } else { Ok(()) };
        }
        is_saml_message(&String::from_utf8_lossy(&self.bytes))
    }
}

#[derive(Debug, Default)]
pub(super) struct Urlencoded {
    name: Name,
    /// Inside a value, whose bytes are not kept.
    in_value: bool,
}

impl Urlencoded {
    /// A value's bytes are skipped to the next separator in one search, not byte by byte.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), SamlMessageInForm> {
        while !bytes.is_empty() {
            if self.in_value {
                match bytes.iter().position(|b| matches!(b, b'&' | b';' | b'\r' | b'\n')) {
                    Some(at) => bytes = &bytes[at..],
                    None => return Ok(()),
                }
            }
            self.byte(bytes[0])?;
            bytes = &bytes[1..];
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), SamlMessageInForm> {
        let separator = matches!(b, b'&' | b';' | b'\r' | b'\n');
        if self.in_value {
            if separator {
                *self = Urlencoded::default();
            }
            return Ok(());
        }
        if b == b'=' || separator {
            self.name.decide()?;
            *self = Urlencoded { in_value: b == b'=', ..Urlencoded::default() };
        } else {
            self.name.push(b);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(super) struct Multipart {
    /// `--` and the boundary.
    boundary: Option<Vec<u8>>,
    /// The start of the current line (enough to tell a delimiter), or the whole line in headers.
    line: Vec<u8>,
    /// The previous byte was a CR (a CRLF is one line end).
    after_cr: bool,
    /// Inside a part's header block, and the block so far (lines joined by `\n`).
    in_headers: bool,
    headers: Vec<u8>,
    /// The close delimiter (`--boundary--`) was read: the epilogue is not parts.
    closed: bool,
}

impl Multipart {
    fn byte(&mut self, b: u8) -> Result<(), SamlMessageInForm> {
        match b {
            b'\n' if self.after_cr => self.after_cr = false,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                self.end_line()?;
            }
            _ => {
                self.after_cr = false;
                let keep = if self.in_headers {
                    MAX_PART_HEADERS + 1
                } else {
                    self.boundary.as_ref().map_or(2, |d| d.len() + 2)
                };
                if self.line.len() < keep {
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), SamlMessageInForm> {
        let line = std::mem::take(&mut self.line);
        if self.in_headers {
            if line.is_empty() {
                return self.end_headers();
            }
            self.headers.push(b'\n');
            self.headers.extend_from_slice(&line);
            if self.headers.len() > MAX_PART_HEADERS {
                return Err(SamlMessageInForm);
            }
            return Ok(());
        }
        if self.closed {
            return Ok(());
        }
        let delimiter = match &self.boundary {
            Some(delimiter) => line.strip_prefix(delimiter.as_slice()),
            None => line.strip_prefix(b"--"),
        };
        match delimiter {
            Some(rest) if self.boundary.is_some() && rest.starts_with(b"--") => self.closed = true,
            Some(_) => self.in_headers = true,
            None => {}
        }
        Ok(())
    }

    fn end_headers(&mut self) -> Result<(), SamlMessageInForm> {
        let block = std::mem::take(&mut self.headers);
        self.in_headers = false;
        if block_names_saml_message(&block) {
            Err(SamlMessageInForm)
        } else {
            Ok(())
        }
    }
}

/// Whether a part's header block, with every encoding undone, holds a SAML message's name.
pub(super) fn block_names_saml_message(block: &[u8]) -> bool {
    let text = decode_encoded_words(&String::from_utf8_lossy(block));
    // Backslash escapes and quotes (RFC 7578 §4.2, Rack's dequote), white space and NULs
    // (folded lines, UTF-16 charsets in `name*`), then RFC 2231 continuation keys.
    let mut flat: String = text
        .chars()
        .filter(|c| !matches!(c, '\\' | '"' | '\'') && !c.is_whitespace() && !c.is_control())
        .collect();
    flat = flat.to_ascii_lowercase();
    let flat = remove_continuation_keys(&flat);
    // Percent escapes (RFC 2231 values, any other), folded as names are: the canonical form
    // of the whole block, NULs from decoded UTF-16 dropped.
    let decoded: String =
        crate::target::canonical_param(&flat).name.chars().filter(|c| !c.is_control()).collect();
    SAML_MESSAGES.iter().any(|name| decoded.contains(name) || flat.contains(name))
}

/// `;name*1=`, `;name*2*=` … removed, so that `name*0=saml;name*1=response` reads `samlresponse`.
fn remove_continuation_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(';') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let key_end = after.find('=').unwrap_or(0);
        let key = &after[..key_end];
        let is_continuation = key.split_once('*').is_some_and(|(_, n)| {
            let n = n.trim_end_matches('*');
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        if is_continuation {
            rest = &after[key_end + 1..];
        } else {
            out.push(';');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// RFC 2047 encoded words (`=?charset?B?…?=`, `=?charset?Q?…?=`) decoded to their bytes, read
/// as UTF-8 (the letters of a name are ASCII in every charset this watch accepts).
fn decode_encoded_words(text: &str) -> String {
    use base64::Engine;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let decoded = match parts.as_slice() {
            [_charset, encoding, tail] => tail.find("?=").and_then(|end| {
                let payload = &tail[..end];
                let bytes = match encoding.to_ascii_lowercase().as_str() {
                    "b" => base64::engine::general_purpose::STANDARD
                        .decode(payload.trim_end_matches('='))
                        .or_else(|_| {
                            base64::engine::general_purpose::STANDARD_NO_PAD
                                .decode(payload.trim_end_matches('='))
                        })
                        .ok()?,
                    "q" => quoted_printable(payload),
                    _ => return None,
                };
                let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
            }),
            _ => None,
        };
        match decoded {
            Some((text, consumed)) => {
                out.push_str(&text);
                rest = &rest[consumed..];
            }
            None => {
                out.push_str("=?");
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// RFC 2047 §4.2 "Q": `_` is a space, `=XX` a byte.
fn quoted_printable(payload: &str) -> Vec<u8> {
    let bytes = payload.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default()).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}
