//! The guard's number detectors (see "Numbers" in the module documentation of guard.rs): digit
//! groups and separator groups on a folded value, and the checks each national number carries.

/// The longest number the detectors look at (E.164).
pub(super) const MAX_DIGITS: usize = 15;
/// The longest separator group inside a number: a run of up to this many separator characters
/// counts as one (`" - "`, `") "`, `" -- "`, `"  -  "`, `" (0)"` is a group and a digit).
pub(super) const MAX_SEPARATOR: usize = 8;

/// A separator character of the folded text: space, `-` (every dash folds to it), `+`, `.`
/// (and the middle dots), `/`, brackets, `_`, `,`, `'` (and the typographic apostrophes).
pub(super) fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'+' | b'.' | b'/' | b'(' | b')' | b'_' | b',' | b'\'')
}

/// The length of the separator group at the start of `rest`: 0 when there is none, or when the
/// run is longer than [`MAX_SEPARATOR`] (then it ends the number).
pub(super) fn separator_len(rest: &[u8]) -> usize {
    let run = rest.iter().take(MAX_SEPARATOR + 1).take_while(|b| is_separator(**b)).count();
    if run > MAX_SEPARATOR {
        0
    } else {
        run
    }
}

/// A stretch of whole digit groups: its digits, and where separators stood.
pub(super) struct Number {
    digits: [u8; MAX_DIGITS],
    pub(super) len: usize,
    /// Bit `i` set: a separator group stood before digit `i`.
    separators: u32,
    /// A `+` stood in the separator group right before the first digit (an international phone
    /// number).
    plus: bool,
}

/// Separator positions as a bit mask (bit `i`: before digit `i`).
const fn at(positions: &[usize]) -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < positions.len() {
        mask |= 1 << positions[i];
        i += 1;
    }
    mask
}

impl Number {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }

    /// Separators only where `allowed` has a bit, or none.
    fn separated_only_at(&self, allowed: u32) -> bool {
        self.separators & !allowed == 0
    }

    /// At least two separator groups, and every digit group two or three digits long.
    fn grouped_in_twos_and_threes(&self) -> bool {
        let mut groups = 0;
        let mut start = 0;
        for end in (1..=self.len).filter(|&i| i == self.len || self.separators & (1 << i) != 0) {
            if !(2..=3).contains(&(end - start)) {
                return false;
            }
            groups += 1;
            start = end;
        }
        groups >= 3
    }
}

/// Runs `decide` on every stretch of whole digit groups that starts at a group and holds at most
/// [`MAX_DIGITS`] digits; the first answer wins. Allocates nothing.
pub(super) fn scan_numbers(
    bytes: &[u8],
    decide: impl Fn(&Number) -> Option<&'static str>,
) -> Option<&'static str> {
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
        let separator = separator_len(rest);
        if separator == 0 || !rest.get(separator).is_some_and(u8::is_ascii_digit) {
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

/// Swedish personnummer and samordningsnummer (day + 60): `YYMMDDNNNC` or `YYYYMMDDNNNC`;
/// separators between the parts of the date and before `NNNC` (`81 12 18-9876`,
/// `1981-12-18-9876`); Luhn over the 10-digit form (Skatteverket SKV 704).
pub(super) fn is_se_personnummer(number: &Number) -> bool {
    let digits = number.digits();
    let (ten, allowed) = match digits.len() {
        10 => (digits, at(&[2, 4, 6])),
        12 if (18..=20).contains(&value_of(&digits[..2])) => (&digits[2..], at(&[4, 6, 8])),
        _ => return false,
    };
    let day = value_of(&ten[4..6]);
    let day = if day > 60 { day - 60 } else { day };
    number.separated_only_at(allowed) && is_valid_date(day, value_of(&ten[2..4])) && luhn(ten)
}

/// Norwegian fødselsnummer (D-number day + 40, H-number month + 40): `DDMMYYIIIKK`; separators
/// between the parts of the date, after it, and before the check digits (`01.01.00 123 56`);
/// two mod-11 check digits.
pub(super) fn is_no_fodselsnummer(number: &Number) -> bool {
    let digits = number.digits();
    if digits.len() != 11 || !number.separated_only_at(at(&[2, 4, 6, 9])) {
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

/// Danish CPR: `DDMMYYSSSS`, separators between the parts of the date and after it. The
/// modulus-11 check was dropped in 2007, so any valid date followed by four digits counts: the
/// guard errs on failing closed.
pub(super) fn is_dk_cpr(number: &Number) -> bool {
    let digits = number.digits();
    digits.len() == 10
        && number.separated_only_at(at(&[2, 4, 6]))
        && is_valid_date(value_of(&digits[0..2]), value_of(&digits[2..4]))
}

/// A phone number: 9 to 15 digits (E.164) written with a leading `+`, `00` or trunk `0`, in any
/// grouping; or a national number of 8 digits without a trunk prefix (Norway, Denmark, and
/// Sweden's Stockholm numbers `08-12 34 56`) written in phone groups: at least three groups of
/// two or three digits (`412 34 567`, `20 12 34 56`). Bare digit strings (8-digit school unit
/// codes, 9-digit organisation numbers) are not phones, nor is an 8-digit date in any form (its
/// year is a group of four).
pub(super) fn is_phone(number: &Number) -> bool {
    ((9..=MAX_DIGITS).contains(&number.len) && (number.plus || number.digits[0] == 0))
        || (number.len == 8 && number.grouped_in_twos_and_threes())
}

/// Finnish henkilötunnus at `at`: `DDMMYYCZZZQ`, C a century sign (`+`, `-`, `A`-`F`, `U`-`Y`),
/// Q the check character of DDMMYYZZZ mod 31 (DVV). Separator groups may stand between the
/// parts of the date (`13.10.52-308T`); a `+` or `-` sign may be any group holding one (after
/// the fold any dash is `-`: `131052 - 308T`, `131052 -- 308T`), a letter sign may have a
/// group either side.
pub(super) fn is_fi_hetu_at(bytes: &[u8], at: usize) -> bool {
    const CHECK: &[u8] = b"0123456789abcdefhjklmnprstuvwxy";
    let digits =
        |from: usize, n: usize| bytes.get(from..from + n).filter(|s| s.iter().all(u8::is_ascii_digit));
    let ascii = |s: &[u8]| s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let mut next = at;
    let mut date = [0u32; 3];
    for (i, part) in date.iter_mut().enumerate() {
        if i > 0 {
            next += separator_len(&bytes[next..]);
        }
        let Some(two) = digits(next, 2) else { return false };
        *part = ascii(two);
        next += 2;
    }
    if !is_valid_date(date[0], date[1]) {
        return false;
    }
    let group = separator_len(bytes.get(next..).unwrap_or_default());
    let signed = bytes[next..next + group].iter().any(|b| matches!(b, b'+' | b'-'));
    next += group;
    if !signed {
        if !matches!(bytes.get(next), Some(b'a'..=b'f' | b'u'..=b'y')) {
            return false;
        }
        next += 1;
        next += separator_len(bytes.get(next..).unwrap_or_default());
    }
    let Some(serial) = digits(next, 3) else { return false };
    let n = u64::from(date[0] * 10_000 + date[1] * 100 + date[2]) * 1000 + u64::from(ascii(serial));
    bytes.get(next + 3) == Some(&CHECK[(n % 31) as usize])
}
