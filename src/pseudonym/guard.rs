//! The guard: a second, independent check that no personal value leaves in a claim.
//!
//! The claim policy already lets out only mapped values; the guard does not trust that. Every
//! outgoing value is compared with the login's own identifying values and run through detectors
//! for emails, phone numbers and Nordic national identity numbers. A hit fails the login closed
//! and names the claim and the detector, never the value (shared/PRODUCT.md, "What the platform
//! receives"; issue 25, "The guard by class"). The guard detects personal values by *class*,
//! not by example:
//!
//! **One fold** (guard_fold.rs). Both sides go through [`fold`] once. Characters that show
//! nothing or are not text are dropped first, by one predicate over ranges: general categories
//! Cc (C0 and C1 controls: `An\0na` is `anna`, `811218\09876` is `8112189876`) and Cf (soft
//! hyphen, zero-width spaces and joiners, bidi controls, BOM, TAG characters U+E0000–E007F, ...)
//! and Default_Ignorable_Code_Point (variation selectors, Hangul fillers U+115F, U+1160, U+3164,
//! U+FFA0, Khmer inherent vowels, Mongolian variation selectors, ...); the white-space controls
//! (tab, line breaks) become a space. Then Unicode NFKC (fullwidth letters and digits,
//! ligatures, superscripts become plain), lowercase, every dash (general category Pd, U+2212
//! minus) becomes `-`, every Unicode space (White_Space) ` `, every decimal digit of any script
//! (general category Nd: Arabic-Indic `٨١١٢١٨`, Devanagari, Thai, ...) its ASCII digit, middle
//! dots `.` and typographic apostrophes `'`, and letters lose their diacritics (NFD, combining
//! marks dropped). Letters that do not decompose are transliterated: æ→ae, œ→oe, ß→ss, þ→th,
//! ð→d, đ→d, ł→l, ı→i, ħ→h, ŧ→t. Five letters have two spellings in use, and the guard knows
//! both: ä→a|ae, ö→o|oe, ü→u|ue, ø→o|oe, å→a|aa ([`Spelling::Plain`] and [`Spelling::Digraph`]).
//! So "Müller" matches `muller` and `mueller`, "Øberg" `oberg` and `oeberg`, "Ærø" `aero`. A
//! value is spelled one way throughout (a token mixing "ø" and "oe" is not matched by its other
//! half). For identifying fragments only, letters of other scripts that look like Latin ones
//! are then written as those (a partial UTS #39 skeleton: Cyrillic `а е о р с у х і ј ѕ ԁ ԛ ԝ`,
//! Greek letters whose capitals look Latin, small capitals `ᴀ ʙ ᴄ ᴅ ᴇ`, ...): `Аnnа` with
//! Cyrillic `а` matches "Anna". The detectors see letters as written.
//!
//! **Identifying values** are every value of the login that is not known to be impersonal
//! (identity.rs, `VerifiedIdentity::identifying_values_except`): an attribute whose name nymgate
//! does not know counts as identifying, except the attributes the tenant's policy reads (their
//! values are what the maps translate; a map that copies one is caught by the detectors) and a
//! fixed list of protocol and organisation claims (`iss`, `email_verified`, `locale`, `groups`,
//! eduPersonAffiliation, norEdu organisation ids, ...). Names nymgate knows to be personal
//! (email, names, national ids, Entra and ADFS claim URIs, ...) count whatever the policy reads.
//!
//! **Identifying fragments.** From each identifying value the guard takes, in both spellings:
//! the whole value; for a value with `@` (an email, an ePPN) the local part alone, and its
//! letter tokens (`asa.oberg2` gives `asa`, `oberg`) but never the domain (the school's own
//! domain is no secret); for a value without digits (a name) each letter token. Tokens need
//! three letters or more. Values with digits (subjects, ids, phone numbers, addresses) count
//! whole only: `pupil-1234` does not make `pupil` personal. A fragment of four characters or more
//! matches anywhere inside an outgoing value (`anna` in `annasvensson`); one of three only as a
//! whole token (boundaries are non-alphanumeric characters: `eva` trips `eva-skolan`, not
//! `medevac`); a shorter whole value only when the outgoing value is exactly it. An identifying
//! value written only with digits and separators and holding six digits or more (a national id,
//! a phone number, a numeric subject) also matches by its digits in any separator form of the
//! class below: `19990101-1234` trips `1999 0101 1234` though its check digit is wrong. An
//! outgoing value that is one of the role words nymgate itself emits (`student`, `teacher`,
//! `staff`, `other`) is not compared with fragments: it cannot carry more than the role, and a
//! surname "Dent" would otherwise refuse every pupil's login. The detectors still run on it.
//!
//! **The cost, false positives.** Substring matching errs towards refusing: a pupil whose given
//! name is "Anna" cannot log in to a tenant whose school code is `annaskolan`, nor a pupil named
//! "Holm" where a value contains `stockholm`, nor a "Per" where a code is `per-albin`. Since
//! unknown attributes are identifying, an IdP attribute nymgate does not know whose value is a
//! word (a department `Skola`, a title `Rektor`) refuses logins whose school code contains that
//! word. Since lookalikes fold to Latin, a Greek or Cyrillic name folds to Latin letters where
//! they look alike (`Наталья` compares as `hatalья`). Among numbers: 8 digits in phone groups
//! (`216 48 755`) read as a Norwegian or Danish phone number, a short date followed by four digits
//! (`05.01.24 1234`) as a Danish CPR, and `2024-01-05 1234` as a Swedish personnummer when its
//! Luhn sum happens to fit (one in ten). A tenant sees such a refusal as a failed login with the
//! audit reason `guard_tripped`, the claim (`school`, `municipality`, `role`; the tenant id, from
//! nymgate's own config, goes through the detectors only) and the detector
//! (`identifying_value`, `email`, `phone`, `se_personnummer`, `fi_hetu`, `no_fodselsnummer`,
//! `dk_cpr`), counted in `nymgate_guard_trips_total` and alerted on; never the value. The fix is
//! the tenant's map: map the school to a code that is not a word (the Skolverket unit code)
//! instead of a name, or read the attribute in the policy.
//!
//! **Numbers** (guard_numbers.rs). The folded text is read as runs of digit groups joined by
//! separator groups: a run of one to eight characters out of space, `-`, `+`, `.`, `/`, `(`,
//! `)`, `_`, `,` and `'` (the middle dot and typographic apostrophes fold to the last two). So
//! `811218 - 9876`, `811218  --  9876`, `+46 (0)70-123 45 67` and `070.123.45.67` are runs. Every
//! stretch of whole groups of up to 15 digits is decided on its digits and on where its
//! separators stand:
//! - Swedish personnummer and samordningsnummer (day + 60): 10 digits `YYMMDDNNNC` or 12 with the
//!   century 18, 19 or 20; Luhn over the 10-digit form; separators between the parts of the
//!   date and before the last four digits (`81 12 18-9876`, `1981-12-18-9876`, `811218+9876`).
//! - Norwegian fødselsnummer, D-number (day + 40), H-number (month + 40): 11 digits, two mod-11
//!   check digits, separators between the parts of the date, after it and before the check
//!   digits (`010100 12356`, `01.01.00 123 56`).
//! - Danish CPR `DDMMYY-SSSS`: no check digit since 2007, so any valid date and four digits,
//!   separators between the parts of the date and after it (`070761 4286`, `07.07.61-4286`).
//! - Finnish henkilötunnus `DDMMYYCZZZQ`: century signs `+ - A-F U-Y` (those of 2023 among them),
//!   any dash as `-`, separator groups inside the date and around the sign, the mod-31 check
//!   character.
//! - Phone numbers: 9 to 15 digits (E.164) with a leading `+`, `00` or trunk `0`, any grouping;
//!   and 8 digits without a prefix in phone groups, at least three groups of two or three digits
//!   (Norway and Denmark have no trunk prefix: `412 34 567`, `20 12 34 56`; Stockholm's
//!   `08-12 34 56`). Bare digit strings are not phones: 8-digit school unit codes, 9-digit
//!   organisation numbers. Dates (8 digits, their year a group of four) and municipality codes
//!   (4) never form a national id or a phone number.
//!
//! Validation is by the checks each number carries; a date alone (`2024-01-05`, `05.01.2024`)
//! never trips (guard_tests.rs, `eight_digit_dates_never_trip`, measures every date from 1850
//! to 2099 in every separator form).

#[path = "guard_fold.rs"]
mod fold;
#[path = "guard_numbers.rs"]
mod numbers;

pub use fold::{fold, normalize, Spelling};
use fold::{fold_into, fold_with, Lookalikes};
use numbers::{
    is_dk_cpr, is_fi_hetu_at, is_no_fodselsnummer, is_phone, is_se_personnummer, is_separator, scan_numbers,
    separator_len, Number,
};

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
            let two_spellings = fold_into(value, Spelling::Plain, Lookalikes::Latin, &mut folded);
            numbers.extend(number_fragment(&folded));
            if two_spellings {
                add_fragments(&folded, &mut texts);
                fold_into(value, Spelling::Digraph, Lookalikes::Latin, &mut folded);
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
        let two_spellings = fold_into(value, Spelling::Plain, Lookalikes::Kept, &mut folded);
        if !ROLE_WORDS.contains(&folded.as_str()) {
            // Fragments are compared with lookalikes folded to Latin; an ASCII value has none,
            // so its fold serves both (most values: no second fold).
            let skeleton = (!value.is_ascii()).then(|| fold_with(value, Spelling::Plain, Lookalikes::Latin));
            if self.identifies(skeleton.as_deref().unwrap_or(&folded)) || self.carries_number(&folded) {
                return trip("identifying_value");
            }
            if two_spellings && self.identifies(&fold_with(value, Spelling::Digraph, Lookalikes::Latin)) {
                return trip("identifying_value");
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
/// runs: `tel 070-123 45 67; 12` gives `0701234567 12` (`;` is no separator).
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
        let separator = separator_len(rest);
        let inside = separator > 0
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

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "guard_fold_tests.rs"]
mod fold_tests;
