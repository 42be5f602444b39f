//! The crate's one clock and its date arithmetic (issue 30): what time it is (Unix seconds, the
//! UTC day) and the two text forms nymgate reads and writes, RFC 3339 UTC (SAML's xs:dateTime
//! in UTC, SAML Core §1.3.3; audit lines; metadata) and back. Everything that asks the time asks
//! here, so that one place decides it; functions that judge a time take `now` as an argument
//! (tests inject it), and only the edges call [`unix_now`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now; 0 if the system clock is before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The UTC day number (days since 1970-01-01), now: what daily keys rotate on.
pub fn utc_day() -> u64 {
    unix_now() / 86_400
}

/// Unix seconds as RFC 3339 UTC (`2026-11-24T21:15:00Z`), by the civil-from-days algorithm
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// An `xs:dateTime` in UTC as SAML Core §1.3.3 requires (`2026-11-25T10:00:00Z`, optional
/// fraction), as Unix seconds (the fraction is dropped). Anything else is `None`.
pub fn parse_instant(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let rest = &b[19..];
    let rest = match rest.first() {
        Some(b'.') => {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            &rest[1 + digits..]
        }
        _ => rest,
    };
    if rest != b"Z" {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = &b[range];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), for years from 1970.
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_as_saml_writes_them() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2026-11-25T10:00:00Z"), Some(1_795_600_800));
        assert_eq!(parse_instant("2026-11-25T10:00:00.123Z"), Some(1_795_600_800));
        assert_eq!(parse_instant("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "2026-11-25T10:00:00",
            "2026-11-25T10:00:00+01:00",
            "2026-11-25 10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:60Z",
            "2026-11-25T10:00:00.Z",
            "+026-11-25T10:00:00Z",
            "2026-11-25T10:00:00ZZ",
            "1969-12-31T23:59:59Z",
            "",
            "２０２６-11-25T10:00:00Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// What rfc3339 writes, parse_instant reads back to the same second, for every time
        /// from 1970 to 9999.
        #[test]
        fn rfc3339_round_trips(unix in 0u64..253_402_300_799) {
            proptest::prop_assert_eq!(parse_instant(&rfc3339(unix)), Some(unix));
        }
    }
}
