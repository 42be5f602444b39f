//! The form scanner, by class: every spelling of a SAML message field, in every form encoding,
//! split into any chunks, is found; ordinary forms pass.

use proptest::prelude::*;

use super::*;

fn scan(content_type: Option<&str>, chunks: &[&[u8]]) -> Result<(), SamlMessageInForm> {
    let mut scanner = FormScanner::for_content_type(content_type.map(str::as_bytes)).expect("a form type");
    for chunk in chunks {
        scanner.feed(chunk)?;
    }
    scanner.finish()
}

/// A field name spelled as a client may: letter case, percent-encoding (once or twice),
/// fullwidth letters, array and nested suffixes.
fn spell(name: &str, hows: &[u8], form: u8) -> String {
    let mut out: String = name
        .chars()
        .zip(hows.iter().cycle())
        .map(|(c, how)| match how % 5 {
            0 => c.to_string(),
            1 => c.to_ascii_uppercase().to_string(),
            2 => format!("%{:02X}", c as u32),
            3 => format!("%25{:02x}", c as u32),
            _ => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap().to_string(),
        })
        .collect();
    out = match form % 4 {
        0 => out,
        1 => format!("{out}[]"),
        2 => format!("a[{out}]"),
        _ => format!("{out}%5B0%5D"),
    };
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A SAML message field in an urlencoded or text/plain body, in any spelling, among other
    /// fields, and split at any points, is found.
    #[test]
    fn saml_message_fields_are_found_in_every_spelling_and_split(
        message in prop::sample::select(vec!["SAMLResponse", "SAMLart"]),
        hows in prop::collection::vec(any::<u8>(), 1..12),
        form in any::<u8>(),
        separator in prop::sample::select(vec!["&", ";", "\r\n"]),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        content_type in prop::sample::select(vec![None, Some("application/x-www-form-urlencoded; charset=UTF-8"), Some("text/plain"), Some("APPLICATION/X-WWW-FORM-URLENCODED")]),
    ) {
        let body = format!("a=1{separator}{}=PHNhbWxwOlJlc3BvbnNl{separator}b=2", spell(message, &hows, form));
        let bytes = body.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for point in points {
            chunks.push(&bytes[last..point]);
            last = point;
        }
        chunks.push(&bytes[last..]);
        prop_assert_eq!(scan(content_type, &chunks), Err(SamlMessageInForm), "{}", body);
    }

    /// The same in a multipart body's Content-Disposition, `name` quoted or not, or `name*`.
    #[test]
    fn saml_message_parts_are_found_in_every_spelling(
        message in prop::sample::select(vec!["SAMLResponse", "SAMLart"]),
        hows in prop::collection::vec(0u8..4, 1..12),
        style in 0u8..3,
        split in any::<prop::sample::Index>(),
    ) {
        let name = spell(message, &hows, 0);
        let disposition = match style {
            0 => format!("form-data; name=\"{name}\""),
            1 => format!("form-data; name={name}"),
            _ => format!("form-data; name*=utf-8''{name}"),
        };
        let body = format!("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b\r\ncontent-DISPOSITION: {disposition}\r\n\r\nPHNhbWw=\r\n--b--\r\n");
        let bytes = body.as_bytes();
        let at = split.index(bytes.len());
        prop_assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[&bytes[..at], &bytes[at..]]), Err(SamlMessageInForm), "{}", body);
    }

    /// Ordinary forms pass, whatever their values say.
    #[test]
    fn ordinary_forms_pass(
        names in prop::collection::vec("[a-z_]{1,12}", 1..6),
        values in prop::collection::vec("[A-Za-z0-9%+ ]{0,30}", 6),
    ) {
        prop_assume!(names.iter().all(|n| n != "samlresponse" && n != "samlart"));
        let body: Vec<String> = names.iter().zip(&values).map(|(n, v)| format!("{n}={v}")).collect();
        prop_assert_eq!(scan(None, &[body.join("&").as_bytes()]), Ok(()));
    }
}

#[test]
fn values_that_mention_saml_pass() {
    let body = b"comment=SAMLResponse%3Dx&topic=saml";
    assert_eq!(scan(Some("application/x-www-form-urlencoded"), &[body]), Ok(()));
    let multipart = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"SAMLResponse.xml\"\r\n\r\nSAMLResponse=1\r\n--b--\r\n";
    assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[multipart]), Ok(()));
}

#[test]
fn a_json_document_posted_as_a_form_passes_unless_it_could_hide_a_name() {
    let long = format!("{{\"text\":\"{}\"}}", "ö".repeat(2000));
    assert_eq!(scan(None, &[long.as_bytes()]), Ok(()));
    let hidden = format!("{}%53AMLResponse=x", "a".repeat(2000));
    assert_eq!(scan(None, &[hidden.as_bytes()]), Err(SamlMessageInForm));
    let plain = format!("{}SAMLResponse=x", "a".repeat(2000));
    assert_eq!(scan(None, &[plain.as_bytes()]), Err(SamlMessageInForm));
}

#[test]
fn only_form_types_are_watched() {
    for other in ["application/json", "image/png", "application/octet-stream"] {
        assert!(FormScanner::for_content_type(Some(other.as_bytes())).is_none(), "{other}");
    }
    for form in
        ["multipart/mixed; boundary=x", "text/plain;charset=utf-8", "Application/X-Www-Form-Urlencoded"]
    {
        assert!(FormScanner::for_content_type(Some(form.as_bytes())).is_some(), "{form}");
    }
}

#[test]
fn a_trailing_bare_name_is_decided_at_the_end() {
    assert_eq!(scan(None, &[b"a=1&SAMLart"]), Err(SamlMessageInForm));
}
