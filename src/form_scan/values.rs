//! By value: the base64 of `urn:oasis:names:tc:SAML:` in a body, however it is wrapped.
//!
//! Every SAML 1.x and 2.0 protocol message and assertion names its namespace, which begins
//! with that prefix, within its first hundred bytes. Base64 writes a given byte string in one of
//! three ways, by its offset modulo 3; the three patterns below are the characters that depend
//! on the prefix alone at each offset (checked in the tests by encoding the prefix after 0, 1
//! and 2 other bytes). None holds `+`, `/` or `=`, so they pass form and JSON encoding as they
//! are. The bytes are read through a small normalizer first: white space and a form's `+`
//! (base64 wrapped at 64 or 76 columns), percent escapes (a form-encoded value, with its
//! `%0D%0A`) and JSON's `\n`, `\r`, `\t` and `\/` escapes are read as what they stand for.

/// The base64 of `urn:oasis:names:tc:SAML:` at offsets 0, 1 and 2 modulo 3.
pub(super) const PATTERNS: [&[u8]; 3] = [
    b"dXJuOm9hc2lzOm5hbWVzOnRjOlNBTUw6",
    b"VybjpvYXNpczpuYW1lczp0YzpTQU1M",
    b"1cm46b2FzaXM6bmFtZXM6dGM6U0FN",
];

/// The longest pattern: the normalized bytes kept to match across chunks.
const WINDOW: usize = 32;

#[derive(Debug, Default)]
pub(super) struct Values {
    /// The last normalized bytes, up to `2 * WINDOW` (shifted down by `WINDOW` when full).
    recent: Vec<u8>,
    /// A `%` escape in progress, with its first hex digit (raw) once read.
    escape: Option<Option<u8>>,
    /// A JSON backslash was just read.
    backslash: bool,
}

/// The shortest pattern: a match needs this many normalized bytes in a row.
const MIN_MATCH: usize = 28;

/// A byte that no pattern holds and that the normalizer never skips or decodes through: every
/// match lies wholly between two of them.
fn breaks_runs(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || b.is_ascii_whitespace() || matches!(b, b'%' | b'\\' | b'+'))
}

impl Values {
    /// Reads the next bytes. A stretch between two run-breaking bytes that is shorter than the
    /// shortest pattern cannot hold a match (normalizing only shortens), so it is skipped with
    /// the state reset, as reading it byte by byte would leave it; the first stretch continues
    /// what the last chunk left, and the last one may go on in the next chunk, so both are read.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<(), super::SamlMessageInForm> {
        let mut stretches = bytes.split(|b| breaks_runs(*b));
        let Some(first) = stretches.next() else { return Ok(()) };
        self.read(first)?;
        let mut last = None;
        for stretch in stretches {
            if let Some(previous) = last.replace(stretch) {
                self.reset();
                if previous.len() >= MIN_MATCH {
                    self.read(previous)?;
                }
            }
        }
        if let Some(last) = last {
            self.reset();
            self.read(last)?;
        }
        Ok(())
    }

    /// What a run-breaking byte leaves: nothing a match could continue from.
    fn reset(&mut self) {
        self.recent.clear();
        self.escape = None;
        self.backslash = false;
    }

    fn read(&mut self, bytes: &[u8]) -> Result<(), super::SamlMessageInForm> {
        for &b in bytes {
            if let Some(first) = self.escape {
                let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                match (first, hex(b)) {
                    (None, Some(_)) => self.escape = Some(Some(b)),
                    (Some(high), Some(low)) => {
                        self.escape = None;
                        self.normalized(hex(high).unwrap_or_default() * 16 + low)?;
                    }
                    (first, None) => {
                        // Not an escape: the `%` (and a first digit) are bytes of their own,
                        // and this byte is read afresh.
                        self.escape = None;
                        self.normalized(b'%')?;
                        if let Some(first) = first {
                            self.normalized(first)?;
                        }
                        self.read(&[b])?;
                    }
                }
                continue;
            }
            if self.backslash {
                self.backslash = false;
                match b {
                    b'n' | b'r' | b't' => continue,
                    b'/' => {
                        self.normalized(b'/')?;
                        continue;
                    }
                    _ => self.normalized(b'\\')?,
                }
            }
            match b {
                b'%' => self.escape = Some(None),
                b'\\' => self.backslash = true,
                _ => self.normalized(b)?,
            }
        }
        Ok(())
    }

    /// One byte of the text the value stands for; white space and `+` are skipped.
    fn normalized(&mut self, b: u8) -> Result<(), super::SamlMessageInForm> {
        if b.is_ascii_whitespace() || b == b'+' {
            return Ok(());
        }
        if self.recent.len() == 2 * WINDOW {
            self.recent.drain(..WINDOW);
        }
        self.recent.push(b);
        for pattern in PATTERNS {
            if pattern.last() == Some(&b) && self.recent.ends_with(pattern) {
                return Err(super::SamlMessageInForm);
            }
        }
        Ok(())
    }
}
