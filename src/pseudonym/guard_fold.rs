//! The guard's one fold (see the module documentation of guard.rs): what every value on both
//! sides of a comparison goes through, and its tables.
//!
//! The tables are written out here from the Unicode Character Database (UCD 16.0:
//! DerivedGeneralCategory.txt for Cc, Cf, Nd and Pd, DerivedCoreProperties.txt for
//! Default_Ignorable_Code_Point) because no crate in the tree carries them: unicode-normalization
//! gives NFKC and the combining-mark test, nothing else. guard_fold_tests.rs checks the digit
//! table against the standard library's own Unicode tables (`char::is_numeric`).

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// How the letters with two spellings in use (ä ö ü ø å) are written by [`fold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// Diacritics dropped: ä→a, ö→o, ü→u, ø→o, å→a.
    Plain,
    /// German and Nordic digraphs: ä→ae, ö→oe, ü→ue, ø→oe, å→aa.
    Digraph,
}

/// What the fold does with letters of other scripts that look like Latin ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookalikes {
    /// Kept as they are: the detectors' form ([`fold`]).
    Kept,
    /// Written as the Latin letter they look like ([`latin_lookalike`]): the form identifying
    /// fragments are compared in.
    Latin,
}

/// The guard's comparison form in the plain spelling (see [`fold`]).
pub fn normalize(value: &str) -> String {
    fold(value, Spelling::Plain)
}

/// The one fold both sides of every comparison go through: invisible characters dropped, NFKC,
/// lowercase, dashes to `-`, spaces to ` `, every decimal digit to its ASCII digit, middle dots
/// to `.` and apostrophes to `'`, diacritics dropped or transliterated in `spelling`,
/// surrounding space trimmed. Letters of other scripts are kept (the skeleton that maps them is
/// used for identifying fragments only).
pub fn fold(value: &str, spelling: Spelling) -> String {
    fold_with(value, spelling, Lookalikes::Kept)
}

pub(super) fn fold_with(value: &str, spelling: Spelling, lookalikes: Lookalikes) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    fold_into(value, spelling, lookalikes, &mut out);
    out
}

/// [`fold`] into `out` (cleared first). True when the value has a letter that the other
/// spelling writes differently.
pub(super) fn fold_into(value: &str, spelling: Spelling, lookalikes: Lookalikes, out: &mut String) -> bool {
    out.clear();
    let mut two_spellings = false;
    if value.is_ascii() {
        // NFKC leaves ASCII as it is, and no ASCII letter is a lookalike (most values on a
        // login are ASCII). Controls other than the white space ones are dropped.
        for b in value.bytes() {
            match b {
                b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => out.push(' '),
                0x00..=0x1F | 0x7F => {}
                _ => out.push(char::from(b.to_ascii_lowercase())),
            }
        }
    } else {
        // Invisible characters go before NFKC too, so that they cannot keep a letter and its
        // combining mark apart, nor hide a compatibility sequence.
        for c in value.chars().filter(|c| !is_ignorable(*c)).nfkc().flat_map(char::to_lowercase) {
            two_spellings |= push_folded(c, spelling, lookalikes, out);
        }
    }
    let end = out.trim_end_matches(' ').len();
    out.truncate(end);
    let start = out.len() - out.trim_start_matches(' ').len();
    out.drain(..start);
    two_spellings
}

/// One NFKC-normalized, lowercased character, folded. True for a letter with two spellings.
fn push_folded(c: char, spelling: Spelling, lookalikes: Lookalikes, out: &mut String) -> bool {
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
        // Case folding (CaseFolding.txt): the final sigma is a sigma; `char::to_lowercase`
        // cannot see which one a capital Σ stood for.
        'ς' => out.push('σ'),
        // Middle dots (Catalan l·l, the Greek ano teleia after NFKC, the hyphenation point,
        // the katakana middle dot) and apostrophes and primes, as the number separators know them.
        '\u{00B7}' | '\u{2027}' | '\u{30FB}' | '\u{2219}' | '\u{22C5}' => out.push('.'),
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' => out.push('\''),
        ' '..='~' => out.push(c),
        _ if is_dash(c) => out.push('-'),
        _ if c.is_whitespace() => out.push(' '),
        // After NFKC too: it writes U+3164 and U+FFA0 (Hangul fillers) as U+1160.
        _ if is_ignorable(c) => {}
        _ => match decimal_digit(c) {
            Some(digit) => out.push(char::from(b'0' + digit)),
            None => decompose_canonical(c, |d| {
                if !is_combining_mark(d) {
                    out.push(match lookalikes {
                        Lookalikes::Latin => latin_lookalike(d).unwrap_or(d),
                        Lookalikes::Kept => d,
                    });
                }
            }),
        },
    }
    false
}

/// Unicode general category Pd (Dash_Punctuation, Unicode 16) and U+2212 MINUS SIGN.
pub(super) fn is_dash(c: char) -> bool {
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

/// Characters that show nothing or are not text, as closed ranges in ascending order: general
/// categories Cc (C0 and C1 controls) and Cf (format characters: soft hyphen, Arabic number
/// signs, zero-width spaces and joiners, bidi marks, embeddings and isolates, word joiner and
/// invisible operators, BOM, interlinear annotation, Egyptian and shorthand format controls,
/// musical symbol beams, TAG characters) and Default_Ignorable_Code_Point (combining grapheme
/// joiner, Hangul fillers U+115F, U+1160, U+3164, U+FFA0, Khmer inherent vowels, Mongolian free
/// variation selectors, variation selectors and their supplement, the unassigned U+2065,
/// U+FFF0–FFF8 and U+E0000–E0FFF).
pub(super) const IGNORABLE: &[(u32, u32)] = &[
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// The one predicate for what the fold drops: [`IGNORABLE`], except the controls that are white
/// space (tab, line breaks, NEL), which become a space.
pub(super) fn is_ignorable(c: char) -> bool {
    let code = u32::from(c);
    !c.is_whitespace()
        && IGNORABLE
            .binary_search_by(|&(first, last)| {
                if last < code {
                    std::cmp::Ordering::Less
                } else if first > code {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// The digit zero of every block of ten decimal digits (general category Nd, Unicode 16, and
/// Tolong Siki of Unicode 17) outside ASCII, in ascending order: each is followed by the digits
/// one to nine. Myanmar Extended-C holds two blocks back to back (Pao, Eastern Pwo Karen), and
/// the mathematical digits five (NFKC already maps those, and the fullwidth ones, to ASCII).
pub(super) const DIGIT_ZEROS: &[u32] = &[
    0x0660,  // Arabic-Indic
    0x06F0,  // Extended Arabic-Indic
    0x07C0,  // NKo
    0x0966,  // Devanagari
    0x09E6,  // Bengali
    0x0A66,  // Gurmukhi
    0x0AE6,  // Gujarati
    0x0B66,  // Oriya
    0x0BE6,  // Tamil
    0x0C66,  // Telugu
    0x0CE6,  // Kannada
    0x0D66,  // Malayalam
    0x0DE6,  // Sinhala Lith
    0x0E50,  // Thai
    0x0ED0,  // Lao
    0x0F20,  // Tibetan
    0x1040,  // Myanmar
    0x1090,  // Myanmar Shan
    0x17E0,  // Khmer
    0x1810,  // Mongolian
    0x1946,  // Limbu
    0x19D0,  // New Tai Lue
    0x1A80,  // Tai Tham Hora
    0x1A90,  // Tai Tham Tham
    0x1B50,  // Balinese
    0x1BB0,  // Sundanese
    0x1C40,  // Lepcha
    0x1C50,  // Ol Chiki
    0xA620,  // Vai
    0xA8D0,  // Saurashtra
    0xA900,  // Kayah Li
    0xA9D0,  // Javanese
    0xA9F0,  // Myanmar Tai Laing
    0xAA50,  // Cham
    0xABF0,  // Meetei Mayek
    0xFF10,  // Fullwidth
    0x104A0, // Osmanya
    0x10D30, // Hanifi Rohingya
    0x10D40, // Garay
    0x11066, // Brahmi
    0x110F0, // Sora Sompeng
    0x11136, // Chakma
    0x111D0, // Sharada
    0x112F0, // Khudawadi
    0x11450, // Newa
    0x114D0, // Tirhuta
    0x11650, // Modi
    0x116C0, // Takri
    0x116D0, // Myanmar Pao
    0x116DA, // Myanmar Eastern Pwo Karen
    0x11730, // Ahom
    0x118E0, // Warang Citi
    0x11950, // Dives Akuru
    0x11BF0, // Sunuwar
    0x11C50, // Bhaiksuki
    0x11D50, // Masaram Gondi
    0x11DA0, // Gunjala Gondi
    0x11DE0, // Tolong Siki
    0x11F50, // Kawi
    0x16130, // Gurung Khema
    0x16A60, // Mro
    0x16AC0, // Tangsa
    0x16B50, // Pahawh Hmong
    0x16D70, // Kirat Rai
    0x1CCF0, // Outlined
    0x1D7CE, // Mathematical bold
    0x1D7D8, // Mathematical double-struck
    0x1D7E2, // Mathematical sans-serif
    0x1D7EC, // Mathematical sans-serif bold
    0x1D7F6, // Mathematical monospace
    0x1E140, // Nyiakeng Puachue Hmong
    0x1E2F0, // Wancho
    0x1E4F0, // Nag Mundari
    0x1E5F1, // Ol Onal
    0x1E950, // Adlam
    0x1FBF0, // Segmented
];

/// The value of a decimal digit of any script outside ASCII ([`DIGIT_ZEROS`]).
pub(super) fn decimal_digit(c: char) -> Option<u8> {
    let code = u32::from(c);
    let block = DIGIT_ZEROS.partition_point(|zero| *zero <= code).checked_sub(1)?;
    u8::try_from(code - DIGIT_ZEROS[block]).ok().filter(|digit| *digit < 10)
}

/// The Latin letter that a lowercase letter of another script, or a small capital, is written
/// to look like: a partial skeleton in the sense of UTS #39 §4 (confusable detection), for the
/// letters people use to dodge name matching. The Greek and Cyrillic letters go by the Latin
/// capital their own capital looks like (Η→h, Ν→n, Υ→y), since the fold lowercases first and
/// both cases must fold alike. There is no crate for confusables.txt in the tree, and the whole
/// table (over 6,000 mappings, many to sequences) is not needed to catch a name spelled with a
/// Cyrillic `а`. Used for identifying fragments only: the detectors read digits, `@` and the
/// Finnish check characters, which they see as written.
pub(super) fn latin_lookalike(c: char) -> Option<char> {
    Some(match c {
        // Greek (the lunate sigma Ϲ ϲ looks like C, but NFKC has made it a sigma already)
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'ζ' => 'z',
        'η' => 'h',
        'ι' => 'i',
        'κ' => 'k',
        'μ' => 'm',
        'ν' => 'n',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'y',
        'χ' => 'x',
        'ϳ' => 'j',
        // Cyrillic
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        'і' => 'i',
        'ј' => 'j',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ү' => 'y',
        'һ' => 'h',
        'ӏ' => 'l',
        // Latin letters without a decomposition: dotless i and long s (NFKC maps ſ already),
        // script a and g, iota, and the small capitals.
        'ı' | 'ɩ' | 'ɪ' => 'i',
        'ſ' => 's',
        'ɑ' | 'ᴀ' => 'a',
        'ɡ' | 'ɢ' => 'g',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ꜰ' => 'f',
        'ʜ' => 'h',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ꞯ' => 'q',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        _ => return None,
    })
}
