//! The form scanner, by class: every spelling of a SAML message field, in every form encoding,
//! split into any chunks, is found; ordinary forms pass.

use proptest::prelude::*;

use super::*;

fn scan(content_type: Option<&str>, chunks: &[&[u8]]) -> Result<(), SamlMessageInForm> {
    let mut scanner = FormScanner::for_content_type(content_type.map(str::as_bytes)).expect("a watched type");
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
    let multipart = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.xml\"\r\n\r\nSAMLResponse=1\r\n--b--\r\n";
    assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[multipart]), Ok(()));
    // The documented false positive: part headers are read as one text, a file name included.
    let named = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"SAMLResponse.xml\"\r\n\r\n1\r\n--b--\r\n";
    assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[named]), Err(SamlMessageInForm));
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
fn only_form_types_are_read_by_name() {
    for other in ["image/png", "application/octet-stream"] {
        assert!(FormScanner::for_content_type(Some(other.as_bytes())).is_none(), "{other}");
    }
    assert_eq!(
        scan(Some("application/json"), &[b"{\"SAMLResponse\": 1}"]),
        Ok(()),
        "JSON is read by value only"
    );
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

#[test]
fn the_patterns_are_the_prefix_at_every_offset() {
    use base64::Engine;
    let prefix = b"urn:oasis:names:tc:SAML:";
    for lead in 0..3 {
        for tail in [&b"2.0:protocol"[..], b"1.0:assertion", b"2.0:assertion\" ID=\"_x\""] {
            let mut doc = b"<p "[..lead].to_vec();
            doc.extend_from_slice(prefix);
            doc.extend_from_slice(tail);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&doc);
            assert!(
                values::PATTERNS.iter().any(|p| encoded.as_bytes().windows(p.len()).any(|w| w == *p)),
                "offset {lead}: {encoded}"
            );
        }
    }
}

/// A school's response, base64 as the bindings write it, wrapped at 64 or 76 columns or not,
/// under any field name, in any body type a platform may read, split at any point.
fn school_response_b64(wrap: Option<usize>) -> String {
    use base64::Engine;
    let xml = "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\"><saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml:NameID>alice</saml:NameID></saml:Assertion></samlp:Response>";
    let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
    match wrap {
        None => encoded,
        Some(width) => encoded
            .as_bytes()
            .chunks(width)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n"),
    }
}

proptest! {
    #[test]
    fn saml_messages_are_found_by_value_under_any_name_and_type(
        wrap in prop::option::of(prop::sample::select(vec![64usize, 76])),
        field in "[a-z]{1,10}",
        style in 0u8..5,
        at in any::<prop::sample::Index>(),
    ) {
        let value = school_response_b64(wrap);
        let form_value: String = openidconnect::url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let (content_type, body) = match style {
            0 => ("application/x-www-form-urlencoded", format!("{field}={form_value}")),
            1 => ("application/json", format!("{{\"{field}\":{}}}", serde_json::to_string(&value).unwrap())),
            2 => ("multipart/form-data; boundary=b", format!("--b\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n--b--\r\n")),
            3 => ("text/xml", format!("<x>{value}</x>")),
            _ => ("application/x-www-form-urlencoded", format!("a=1&{field}={}", value.replace("\r\n", "%0D%0A"))),
        };
        let bytes = body.as_bytes();
        let at = at.index(bytes.len());
        prop_assert_eq!(scan(Some(content_type), &[&bytes[..at], &bytes[at..]]), Err(SamlMessageInForm), "{}", body);
    }

    /// Multipart part headers as lenient parsers read them: CR, LF or CRLF line ends, folded
    /// lines, the name in any parameter, quoted, escaped, split by RFC 2231, encoded by RFC 2047.
    #[test]
    fn multipart_headers_name_a_saml_message_in_every_reading(
        eol in prop::sample::select(vec!["\r\n", "\n", "\r"]),
        style in 0u8..9,
        at in any::<prop::sample::Index>(),
    ) {
        let header = match style {
            0 => "Content-Disposition: form-data; name=\"SAMLResponse\"".to_owned(),
            1 => format!("Content-Disposition: form-data;{eol} name=\"SAMLResponse\""),
            2 => "Content-Disposition: form-data; name='SAMLResponse'".to_owned(),
            3 => "Content-Disposition: form-data; name=\"S\\AMLResponse\"".to_owned(),
            4 => "Content-Disposition: form-data; name*0=\"SAML\"; name*1=\"Response\"".to_owned(),
            5 => "Content-Disposition: form-data; name=\"=?UTF-8?B?U0FNTFJlc3BvbnNl?=\"".to_owned(),
            6 => "Content-Disposition: form-data; name*=utf-16le''S%00A%00M%00L%00R%00e%00s%00p%00o%00n%00s%00e%00".to_owned(),
            7 => "Content-ID: SAMLart".to_owned(),
            _ => "Content-Disposition: form-data; name=\"SAMLResponse\\0x\"".to_owned(),
        };
        let body = format!("--b{eol}{header}{eol}{eol}PHNhbWw={eol}--b--{eol}");
        let bytes = body.as_bytes();
        let at = at.index(bytes.len());
        prop_assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[&bytes[..at], &bytes[at..]]), Err(SamlMessageInForm), "{:?}", body);
    }
}

#[test]
fn what_the_watch_cannot_read_is_refused() {
    let refuse = |types: &[&str], encodings: &[&str]| {
        FormScanner::for_request(types.iter().map(|t| t.as_bytes()), encodings.iter().map(|e| e.as_bytes()))
            .err()
    };
    assert_eq!(
        refuse(&["application/json", "application/x-www-form-urlencoded"], &[]),
        Some(BodyRefusal::DuplicateContentType)
    );
    assert_eq!(refuse(&["application/x-www-form-urlencoded"], &["gzip"]), Some(BodyRefusal::Encoded));
    assert_eq!(refuse(&[], &["identity, deflate"]), Some(BodyRefusal::Encoded));
    for charset in ["utf-16", "UTF-16LE", "utf-32", "cp500", "utf-7", "\"utf-16\""] {
        let t = format!("application/x-www-form-urlencoded; charset={charset}");
        assert_eq!(refuse(&[&t], &[]), Some(BodyRefusal::Charset), "{charset}");
    }
    assert_eq!(refuse(&["application/vnd.paos+xml"], &[]), Some(BodyRefusal::Paos));
    for ok in [
        "text/plain; charset=UTF-8",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
        "application/json",
        "image/png",
    ] {
        assert_eq!(refuse(&[ok], &["identity"]), None, "{ok}");
    }
}

#[test]
fn media_types_end_where_php_and_rack_end_them() {
    for spelled in [
        "application/x-www-form-urlencoded,x",
        "application/x-www-form-urlencoded x",
        " Application/X-WWW-Form-Urlencoded ;charset=utf-8",
    ] {
        assert_eq!(scan(Some(spelled), &[b"SAMLResponse=1"]), Err(SamlMessageInForm), "{spelled}");
    }
}

#[test]
fn binary_uploads_are_not_read() {
    assert!(FormScanner::for_content_type(Some(b"image/png")).is_none());
    assert!(FormScanner::for_content_type(Some(b"application/octet-stream")).is_none());
}

#[test]
fn the_epilogue_and_part_contents_are_not_headers() {
    let body = "--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n-- a signature line\r\nSAMLResponse is discussed here\r\n--b--\r\nepilogue SAMLResponse\r\n";
    assert_eq!(scan(Some("multipart/form-data; boundary=b"), &[body.as_bytes()]), Ok(()));
}
