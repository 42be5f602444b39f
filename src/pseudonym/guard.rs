//! The guard: a second, independent check that no personal value leaves in a claim.
//!
//! The claim policy already lets out only mapped values; the guard does not trust that. Every
//! outgoing value is compared with the login's own identifying values and run through detectors
//! for emails, phone numbers and Nordic national identity numbers. A hit fails the login closed
//! and names the claim and the detector, never the value (shared/PRODUCT.md, "What the platform
//! receives"). The guard detects personal values by *class*, not by example:
//!
//! **One fold.** Both sides go through [`fold`] once: Unicode NFKC (fullwidth letters and digits,
//! ligatures, superscripts become plain), lowercase, every dash (general category Pd, U+2212 minus)
//! becomes `-`, every Unicode space (White_Space: NBSP, thin and narrow spaces, tabs, line breaks)
//! becomes ` `, invisible characters (soft hyphen, zero-width spaces and joiners, bidi controls,
//! variation selectors, BOM) are dropped, and letters lose their diacritics (NFD, combining marks
//! dropped). Letters that do not decompose are transliterated: æ→ae, œ→oe, ß→ss, þ→th, ð→d, đ→d,
//! ł→l, ı→i, ħ→h, ŧ→t. Five letters have two spellings in use, and the guard knows both:
//! ä→a|ae, ö→o|oe, ü→u|ue, ø→o|oe, å→a|aa ([`Spelling::Plain`] and [`Spelling::Digraph`]). So
//! "Müller" matches `muller` and `mueller`, "Øberg" `oberg` and `oeberg`, "Ærø" `aero`. A value is
//! spelled one way throughout (a token mixing "ø" and "oe" is not matched by its other half).
//!
//! **Identifying fragments.** From each identifying value (email, names, subject, NameID, ePPN,
//! ...) the guard takes, in both spellings: the whole value; for a value with `@` (an email, an
//! ePPN) the local part alone, and its letter tokens (`asa.oberg2` gives `asa`, `oberg`) but never
//! the domain (the school's own domain is no secret); for a value without digits (a name) each
//! letter token. Tokens need three letters or more. Values with digits (subjects, ids, phone
//! numbers, addresses) count whole only: `pupil-1234` does not make `pupil` personal. A fragment of
//! four characters or more matches anywhere inside an outgoing value (`anna` in `annasvensson`);
//! one of three only as a whole token (boundaries are non-alphanumeric characters: `eva` trips
//! `eva-skolan`, not `medevac`); a shorter whole value only when the outgoing value is exactly it.
//! An identifying value written only with digits and separators and holding six digits or more (a
//! national id, a phone number, a numeric subject) also matches by its digits in any separator
//! form of the class below: `19990101-1234` trips `1999 0101 1234` though its check digit is wrong.
//! An outgoing value that is one of the role words nymgate itself emits (`student`, `teacher`,
//! `staff`, `other`) is not compared with fragments: it cannot carry more than the role, and a
//! surname "Dent" would otherwise refuse every pupil's login. The detectors still run on it.
//!
//! **The cost, false positives.** Substring matching errs towards refusing: a pupil whose given
//! name is "Anna" cannot log in to a tenant whose school code is `annaskolan`, nor a pupil named
//! "Holm" where a value contains `stockholm`, nor a "Per" where a code is `per-albin`. A tenant sees
//! such a refusal as a failed login with the audit reason `guard_tripped`, the claim (`school`,
//! `municipality`, `role`; the tenant id, from nymgate's own config, goes through the detectors
//! only) and the detector (`identifying_value`, `email`, `phone`,
//! `se_personnummer`, `fi_hetu`, `no_fodselsnummer`, `dk_cpr`), counted in
//! `nymgate_guard_trips_total` and alerted on; never the value. The fix is the tenant's map: map
//! the school to a code that is not a word (the Skolverket unit code) instead of a name.
//!
//! **Numbers.** The folded text is read as runs of digit groups joined by separator groups: one to
//! three characters out of space, `-`, `+`, `.`, `/`, `(`, `)`. So `811218 - 9876`,
//! `+46 (0)70-123 45 67` and `070.123.45.67` are runs. Every stretch of whole groups of up to 15
//! digits is decided on its digits and on where its separators stand:
//! - Swedish personnummer and samordningsnummer (day + 60): 10 digits `YYMMDDNNNC` or 12 with the
//!   century 18, 19 or 20; Luhn over the 10-digit form; a separator (`-`, `+` for over 100, a
//!   space, any of the class) only before the last four digits.
//! - Norwegian fødselsnummer, D-number (day + 40), H-number (month + 40): 11 digits, two mod-11
//!   check digits, a separator only after the date (`010100 12356`).
//! - Danish CPR `DDMMYY-SSSS`: no check digit since 2007, so any valid date and four digits, a
//!   separator only after the date (`070761 4286`).
//! - Finnish henkilötunnus `DDMMYYCZZZQ`: century signs `+ - A-F U-Y` (those of 2023 among them),
//!   any dash as `-`, a space either side of `+` or `-`, the mod-31 check character.
//! - Phone numbers: 9 to 15 digits (E.164) with a leading `+`, `00` or trunk `0`, any grouping.
//!   Bare digit strings without them are not phones: 8-digit school unit codes, 9-digit
//!   organisation numbers. Dates (8 digits), municipality codes (4) never form a national id.
//!
//! Validation is by the checks each number carries; a date alone (`2024-01-05`) never trips.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// Why the guard stopped a login. Carries names only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("claim {claim} carried a personal value ({detector})")]
pub struct GuardTrip {
    /// The outgoing claim's name.
    pub claim: &'static str,
    /// What matched: `identifying_value`, `email`, `phone`, `se_personnummer`, `fi_hetu`,
    /// `no_fodselsnummer` or `dk_cpr`.
    pub detector: &'static str,
}

/// Fragments shorter than this match only an outgoing value that is exactly them.
const MIN_TOKEN_LEN: usize = 3;
/// Fragments this long or longer match anywhere inside an outgoing value; shorter ones (of
/// [`MIN_TOKEN_LEN`]) only as a whole token (a three-letter name would match half the codes).
const MIN_CONTAINED_LEN: usize = 4;
/// The role values nymgate emits itself (`policy::Role::as_str`): never compared with fragments.
const ROLE_WORDS: [&str; 4] = ["student", "teacher", "staff", "other"];
/// The longest number the detectors look at (E.164).
const MAX_DIGITS: usize = 15;
/// The longest separator group inside a number (`" - "`, `") "`, `" ("`).
const MAX_SEPARATOR: usize = 3;

/// How the letters with two spellings in use (ä ö ü ø å) are written by [`fold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// Diacritics dropped: ä→a, ö→o, ü→u, ø→o, å→a.
    Plain,
    /// German and Nordic digraphs: ä→ae, ö→oe, ü→ue, ø→oe, å→aa.
    Digraph,
}

/// The guard's comparison form in the plain spelling (see [`fold`]).
pub fn normalize(value: &str) -> String {
    fold(value, Spelling::Plain)
}

/// The one fold both sides of every comparison go through: NFKC, lowercase, dashes to `-`,
/// spaces to ` `, invisible characters dropped, diacritics dropped or transliterated in
/// `spelling`, surrounding space trimmed.
pub fn fold(value: &str, spelling: Spelling) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    fold_into(value, spelling, &mut out);
    out
}

/// [`fold`] into `out` (cleared first). True when the value has a letter that the other
/// spelling writes differently.
fn fold_into(value: &str, spelling: Spelling, out: &mut String) -> bool {
    out.clear();
    let mut two_spellings = false;
    if value.is_ascii() {
        // NFKC leaves ASCII as it is (most values on a login are ASCII).
        out.extend(value.chars().map(|c| if c.is_whitespace() { ' ' } else { c.to_ascii_lowercase() }));
    } else {
        for c in value.nfkc().flat_map(char::to_lowercase) {
            two_spellings |= push_folded(c, spelling, out);
        }
    }
    let end = out.trim_end_matches(' ').len();
    out.truncate(end);
    let start = out.len() - out.trim_start_matches(' ').len();
    out.drain(..start);
    two_spellings
}

/// One NFKC-normalized, lowercased character, folded. True for a letter with two spellings.
fn push_folded(c: char, spelling: Spelling, out: &mut String) -> bool {
    let two = |plain: &str, digraph: &str, out: &mut String| {
        out.push_str(if spelling == Spelling::Plain { plain } else { digraph });
        true
    };
    match c {
        'ä' => return two("a", "ae", out),
        'ö' => return two("o", "oe", out),
        'ü' => return two("u", "ue", out),
        'ø' => return two("o", "oe", out),
        'å' => return two("a", "aa", out),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'ß' => out.push_str("ss"),
        'þ' => out.push_str("th"),
        'ð' | 'đ' => out.push('d'),
        'ł' => out.push('l'),
        'ı' => out.push('i'),
        'ħ' => out.push('h'),
        'ŧ' => out.push('t'),
        _ if is_dash(c) => out.push('-'),
        _ if c.is_whitespace() => out.push(' '),
        _ if is_invisible(c) => {}
        _ => decompose_canonical(c, |d| {
            if !is_combining_mark(d) {
                out.push(d);
            }
        }),
    }
    false
}

/// Unicode general category Pd (Dash_Punctuation, Unicode 16) and U+2212 MINUS SIGN.
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{058A}' | '\u{05BE}' | '\u{1400}' | '\u{1806}' | '\u{2010}'
            ..='\u{2015}'
                | '\u{2212}'
                | '\u{2E17}'
                | '\u{2E1A}'
                | '\u{2E3A}'
                | '\u{2E3B}'
                | '\u{2E40}'
                | '\u{2E5D}'
                | '\u{301C}'
                | '\u{3030}'
                | '\u{30A0}'
                | '\u{FE31}'
                | '\u{FE32}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{FF0D}'
                | '\u{10D6E}'
                | '\u{10EAD}'
    )
}

/// Characters that show nothing: soft hyphen, combining grapheme joiner, zero-width spaces and
/// joiners, direction marks and controls, word joiner and invisible operators, variation
/// selectors, BOM.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// One identifying fragment, folded, with its length in characters.
struct Fragment {
    text: Box<str>,
    chars: usize,
}

/// The login's identifying values, folded into fragments once.
pub struct Guard {
    fragments: Vec<Fragment>,
    /// The digits of identifying values that are numbers (see [`number_fragment`]).
    numbers: Vec<Box<str>>,
}

impl Guard {
    pub fn new<'a>(identifying: impl IntoIterator<Item = &'a str>) -> Self {
        let mut texts: Vec<Box<str>> = Vec::new();
        let mut numbers: Vec<Box<str>> = Vec::new();
        let mut folded = String::new();
        for value in identifying {
            let two_spellings = fold_into(value, Spelling::Plain, &mut folded);
            numbers.extend(number_fragment(&folded));
            if two_spellings {
                add_fragments(&folded, &mut texts);
                fold_into(value, Spelling::Digraph, &mut folded);
            }
            add_fragments(&folded, &mut texts);
        }
        texts.sort();
        texts.dedup();
        numbers.sort();
        numbers.dedup();
        let fragments =
            texts.into_iter().map(|text| Fragment { chars: text.chars().count(), text }).collect();
        Self { fragments, numbers }
    }

    /// Checks one outgoing value.
    pub fn check(&self, claim: &'static str, value: &str) -> Result<(), GuardTrip> {
        let trip = |detector| Err(GuardTrip { claim, detector });
        let mut folded = String::with_capacity(value.len() + 4);
        let two_spellings = fold_into(value, Spelling::Plain, &mut folded);
        if !ROLE_WORDS.contains(&folded.as_str()) {
            if self.identifies(&folded) || self.carries_number(&folded) {
                return trip("identifying_value");
            }
            if two_spellings {
                let digraph = fold(value, Spelling::Digraph);
                if self.identifies(&digraph) {
                    return trip("identifying_value");
                }
            }
        }
        if let Some(detector) = detect_folded(&folded) {
            return trip(detector);
        }
        Ok(())
    }

    /// Whether a folded outgoing value carries one of the login's own numbers, however separated.
    fn carries_number(&self, value: &str) -> bool {
        if self.numbers.is_empty() || !value.bytes().any(|b| b.is_ascii_digit()) {
            return false;
        }
        let skeleton = digit_skeleton(value);
        self.numbers.iter().any(|digits| skeleton.contains(&**digits))
    }

    /// Whether a folded outgoing value carries one of the fragments.
    fn identifies(&self, value: &str) -> bool {
        self.fragments.iter().any(|f| {
            if f.chars < MIN_TOKEN_LEN {
                value == &*f.text
            } else if f.chars >= MIN_CONTAINED_LEN {
                value.contains(&*f.text)
            } else {
                value.match_indices(&*f.text).any(|(at, m)| {
                    let before = value[..at].chars().next_back();
                    let after = value[at + m.len()..].chars().next();
                    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
                })
            }
        })
    }
}

/// The digits of a folded identifying value written only with digits and separators (a national
/// id, a phone number, a numeric subject), when it has six or more: found in any separator form.
fn number_fragment(folded: &str) -> Option<Box<str>> {
    let bytes = folded.as_bytes();
    let digits = || bytes.iter().filter(|b| b.is_ascii_digit());
    (digits().count() >= 6 && bytes.iter().all(|b| b.is_ascii_digit() || is_separator(*b)))
        .then(|| digits().map(|b| char::from(*b)).collect())
}

/// The digit runs of a folded value with their separator groups taken out, one space between
/// runs: `tel 070-123 45 67, 12` gives `0701234567 12`.
fn digit_skeleton(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = String::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() {
            out.push(char::from(bytes[at]));
            at += 1;
            continue;
        }
        let rest = &bytes[at..];
        let separator = rest.iter().take(MAX_SEPARATOR + 1).take_while(|b| is_separator(**b)).count();
        let inside = (1..=MAX_SEPARATOR).contains(&separator)
            && out.ends_with(|c: char| c.is_ascii_digit())
            && rest.get(separator).is_some_and(u8::is_ascii_digit);
        if !inside && out.ends_with(|c: char| c.is_ascii_digit()) {
            out.push(' ');
        }
        at += separator.max(1);
    }
    out
}

/// The fragments of one folded identifying value (see the module documentation).
fn add_fragments(folded: &str, out: &mut Vec<Box<str>>) {
    if folded.is_empty() {
        return;
    }
    out.push(folded.into());
    let tokens_of = match folded.rsplit_once('@') {
        Some((local, _)) => {
            if !local.is_empty() {
                out.push(local.into());
            }
            local
        }
        None if folded.bytes().any(|b| b.is_ascii_digit()) => return,
        None => folded,
    };
    for token in tokens_of.split(|c: char| !c.is_alphabetic()) {
        if token.chars().count() >= MIN_TOKEN_LEN && token != folded {
            out.push(token.into());
        }
    }
}

/// Pattern detectors, in order. Returns the first that matches. Folds `value` first.
pub fn detect_personal_pattern(value: &str) -> Option<&'static str> {
    detect_folded(&fold(value, Spelling::Plain))
}

/// The detectors on a value already folded: emails, national ids, then phone numbers.
fn detect_folded(value: &str) -> Option<&'static str> {
    if looks_like_email(value) {
        return Some("email");
    }
    // The numbers with check digits first, so that a hetu with a digit as its check character
    // (the shape of a CPR) is named for what it is.
    let bytes = value.as_bytes();
    let checked = |n: &Number| {
        if is_se_personnummer(n) {
            Some("se_personnummer")
        } else {
            is_no_fodselsnummer(n).then_some("no_fodselsnummer")
        }
    };
    if let Some(detector) = scan_numbers(bytes, checked) {
        return Some(detector);
    }
    if (0..bytes.len()).any(|at| is_fi_hetu_at(bytes, at)) {
        return Some("fi_hetu");
    }
    scan_numbers(bytes, |n| is_dk_cpr(n).then_some("dk_cpr"))
        .or_else(|| scan_numbers(bytes, |n| is_phone(n).then_some("phone")))
}

/// `local@domain.tld`, however it is embedded.
fn looks_like_email(value: &str) -> bool {
    value.match_indices('@').any(|(at, _)| {
        let local =
            value[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || "._%+-".contains(c));
        let domain = &value[at + 1..];
        let domain_end =
            domain.find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-')).unwrap_or(domain.len());
        let domain = &domain[..domain_end];
        local && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    })
}

/// A stretch of whole digit groups: its digits, and where separators stood.
struct Number {
    digits: [u8; MAX_DIGITS],
    len: usize,
    /// Bit `i` set: a separator group stood before digit `i`.
    separators: u32,
    /// A `+` stood right before the first digit (an international phone number).
    plus: bool,
}

impl Number {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }

    /// No separator, or one only before digit `at`.
    fn separated_at_most_at(&self, at: usize) -> bool {
        self.separators & !(1 << at) == 0
    }
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'+' | b'.' | b'/' | b'(' | b')')
}

/// Runs `decide` on every stretch of whole digit groups that starts at a group and holds at most
/// [`MAX_DIGITS`] digits; the first answer wins. Allocates nothing.
fn scan_numbers(bytes: &[u8], decide: impl Fn(&Number) -> Option<&'static str>) -> Option<&'static str> {
    (0..bytes.len())
        .filter(|&at| bytes[at].is_ascii_digit() && (at == 0 || !bytes[at - 1].is_ascii_digit()))
        .find_map(|start| numbers_from(bytes, start, &decide))
}

fn numbers_from(
    bytes: &[u8],
    start: usize,
    decide: &impl Fn(&Number) -> Option<&'static str>,
) -> Option<&'static str> {
    let plus = bytes[start.saturating_sub(MAX_SEPARATOR)..start]
        .iter()
        .rev()
        .take_while(|b| is_separator(**b))
        .any(|b| *b == b'+');
    let mut number = Number { digits: [0; MAX_DIGITS], len: 0, separators: 0, plus };
    let mut at = start;
    loop {
        while let Some(digit) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            if number.len == MAX_DIGITS {
                return None;
            }
            number.digits[number.len] = digit - b'0';
            number.len += 1;
            at += 1;
        }
        if let Some(found) = decide(&number) {
            return Some(found);
        }
        let rest = bytes.get(at..).unwrap_or_default();
        let separator = rest.iter().take(MAX_SEPARATOR + 1).take_while(|b| is_separator(**b)).count();
        if !(1..=MAX_SEPARATOR).contains(&separator) || !rest.get(separator).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        number.separators |= 1 << number.len;
        at += separator;
    }
}

/// A calendar date; 29 February in any year (the century is not always known).
fn is_valid_date(day: u32, month: u32) -> bool {
    const DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&month) && (1..=DAYS[month as usize - 1]).contains(&day)
}

fn value_of(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(*d))
}

/// The Luhn check over all digits (the last one is the check digit).
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d) << (i % 2);
            if d > 9 {
                d - 9
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// Swedish personnummer and samordningsnummer (day + 60): `YYMMDDNNNC` or `YYYYMMDDNNNC`, a
/// separator only before `NNNC`; Luhn over the 10-digit form (Skatteverket SKV 704).
fn is_se_personnummer(number: &Number) -> bool {
    let digits = number.digits();
    let ten = match digits.len() {
        10 => digits,
        12 if (18..=20).contains(&value_of(&digits[..2])) => &digits[2..],
        _ => return false,
    };
    let day = value_of(&ten[4..6]);
    let day = if day > 60 { day - 60 } else { day };
    number.separated_at_most_at(digits.len() - 4) && is_valid_date(day, value_of(&ten[2..4])) && luhn(ten)
}

/// Norwegian fødselsnummer (D-number day + 40, H-number month + 40): `DDMMYYIIIKK`, a separator
/// only after the date, two mod-11 check digits.
fn is_no_fodselsnummer(number: &Number) -> bool {
    let digits = number.digits();
    if digits.len() != 11 || !number.separated_at_most_at(6) {
        return false;
    }
    let day = value_of(&digits[0..2]);
    let month = value_of(&digits[2..4]);
    let day = if day > 40 { day - 40 } else { day };
    let month = if month > 40 { month - 40 } else { month };
    if !is_valid_date(day, month) {
        return false;
    }
    let check = |weights: &[u32]| {
        let sum: u32 = weights.iter().zip(digits).map(|(w, d)| w * u32::from(*d)).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    check(&[3, 7, 6, 1, 8, 9, 4, 5, 2]) == Some(u32::from(digits[9]))
        && check(&[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) == Some(u32::from(digits[10]))
}

/// Danish CPR: `DDMMYYSSSS`, a separator only after the date. The modulus-11 check was dropped in
/// 2007, so any valid date followed by four digits counts: the guard errs on failing closed.
fn is_dk_cpr(number: &Number) -> bool {
    let digits = number.digits();
    digits.len() == 10
        && number.separated_at_most_at(6)
        && is_valid_date(value_of(&digits[0..2]), value_of(&digits[2..4]))
}

/// A phone number: 9 to 15 digits (E.164) written with a leading `+`, `00` or trunk `0`, in any
/// grouping. Bare digit strings without them (school unit codes, org numbers) are not phones.
fn is_phone(number: &Number) -> bool {
    (9..=MAX_DIGITS).contains(&number.len) && (number.plus || number.digits[0] == 0)
}

/// Finnish henkilötunnus at `at`: `DDMMYYCZZZQ`, C a century sign (`+`, `-`, `A`-`F`, `U`-`Y`;
/// after the fold any dash is `-`, and a space may stand either side of `+` or `-`), Q the check
/// character of DDMMYYZZZ mod 31 (DVV).
fn is_fi_hetu_at(bytes: &[u8], at: usize) -> bool {
    const CHECK: &[u8] = b"0123456789abcdefhjklmnprstuvwxy";
    let digits =
        |from: usize, n: usize| bytes.get(from..from + n).filter(|s| s.iter().all(u8::is_ascii_digit));
    let Some(date) = digits(at, 6) else { return false };
    let mut next = at + 6;
    let dash_or_plus = |b: Option<&u8>| matches!(b, Some(b'+' | b'-'));
    if bytes.get(next) == Some(&b' ') && dash_or_plus(bytes.get(next + 1)) {
        next += 1;
    }
    let Some(&sign) = bytes.get(next) else { return false };
    if !matches!(sign, b'+' | b'-' | b'a'..=b'f' | b'u'..=b'y') {
        return false;
    }
    next += 1;
    if dash_or_plus(Some(&sign)) && bytes.get(next) == Some(&b' ') {
        next += 1;
    }
    let Some(serial) = digits(next, 3) else { return false };
    let ascii = |s: &[u8]| s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if !is_valid_date(ascii(&date[0..2]), ascii(&date[2..4])) {
        return false;
    }
    let n = u64::from(ascii(date)) * 1000 + u64::from(ascii(serial));
    bytes.get(next + 3) == Some(&CHECK[(n % 31) as usize])
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
