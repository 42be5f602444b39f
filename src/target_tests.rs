//! The canonical target, by class: generated spellings decide as the canonical form does.

use proptest::prelude::*;

use super::*;

/// A plain path of lowercase segments, the form rules are written in.
fn plain_path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z0-9_-]{1,8}", 1..5)
}

/// One character written in any way a client may: as it is, in the other case, fullwidth,
/// percent-encoded (either hex case), or percent-encoded twice.
fn spell_char(c: char, how: u8) -> String {
    match how % 6 {
        0 => c.to_string(),
        1 => c.to_ascii_uppercase().to_string(),
        2 if c.is_ascii_alphanumeric() => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap().to_string(),
        3 => format!("%{:02X}", c as u32),
        4 => format!("%{:02x}", c as u32),
        _ => format!("%25{:02X}", c as u32),
    }
}

/// A separator between segments: one or more slashes or backslashes, `/./`, or a detour
/// through a segment that `..` takes back.
fn spell_separator(how: u8, detour: &str) -> String {
    match how % 7 {
        0 | 1 => "/".into(),
        2 => "//".into(),
        3 => "\\".into(),
        4 => "/./".into(),
        5 => format!("/{detour}/../"),
        _ => "/%2e/".into(),
    }
}

prop_compose! {
    fn spelled_path()(segments in plain_path())
        (hows in prop::collection::vec(any::<u8>(), segments.iter().map(|s| s.len()).sum::<usize>()),
         seps in prop::collection::vec(any::<u8>(), segments.len()),
         params in prop::collection::vec(prop::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"), segments.len()),
         trailing in any::<bool>(),
         segments in Just(segments))
        -> (String, String)
    {
        let plain = format!("/{}", segments.join("/"));
        let mut spelled = String::new();
        let mut how = hows.iter();
        for (i, segment) in segments.iter().enumerate() {
            spelled.push_str(&spell_separator(seps[i], "detour"));
            for c in segment.chars() {
                spelled.push_str(&spell_char(c, *how.next().unwrap()));
            }
            if let Some(param) = &params[i] {
                spelled.push(';');
                spelled.push_str(param);
            }
        }
        if trailing {
            spelled.push('/');
        }
        (plain, spelled)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn path_spellings_decide_as_the_canonical_form((plain, spelled) in spelled_path()) {
        prop_assert_eq!(canonical_path(&spelled).unwrap(), canonical_path(&plain).unwrap(), "{}", spelled);
        let canonical = canonical_path(&plain).unwrap();
        prop_assert_eq!(canonical.as_str(), plain.as_str());
    }

    #[test]
    fn canonical_form_is_a_fixed_point(raw in "(\\PC|%[0-9a-fA-F]{2}|％|／|．){0,40}") {
        let Ok(once) = canonical_path(&raw) else { return Ok(()) };
        prop_assert_eq!(canonical_path(once.as_str()).unwrap(), once.clone());
        prop_assert!(once.as_str().starts_with('/'));
        prop_assert!(!once.as_str().contains("//") && !once.as_str().contains("/../"));
    }

    /// Every spelling of a parameter name a framework reads as `email`: any letter case or
    /// encoding, `+` or encoded spaces around it, array and nested forms.
    #[test]
    fn param_spellings_match_the_rule(
        hows in prop::collection::vec(any::<u8>(), 5),
        form in 0u8..8,
        index in 0u32..100,
    ) {
        let mut name: String = "email".chars().zip(&hows).map(|(c, how)| spell_char(c, *how)).collect();
        name = match form {
            0 => name,
            1 => format!("{name}[]"),
            2 => format!("{name}[{index}]"),
            3 => format!("user[{name}]"),
            4 => format!("user.{name}"),
            5 => format!("+{name}%20"),
            6 => format!("{name}%5B%5D"),
            _ => format!("data[{index}][{name}]"),
        };
        prop_assert!(canonical_param(&name).matches(&canonical_rule_name("email")), "{}", name);
        prop_assert!(query_has(&format!("a=1;{name}=x&b=2"), &["email"]), "{}", name);
    }

    #[test]
    fn query_pairs_rejoin_to_the_query(query in "[a-z=&;%0-9]{0,30}") {
        let mut rejoined = String::new();
        for pair in query_pairs(&query) {
            if let Some(sep) = pair.separator {
                rejoined.push(sep);
            }
            rejoined.push_str(pair.raw);
        }
        prop_assert_eq!(rejoined, query);
    }
}

#[test]
fn named_spellings_of_an_acs_path() {
    let acs = canonical_path("/saml/acs").unwrap();
    for spelled in [
        "/saml/acs/",
        "/SAML/ACS",
        "//saml//acs",
        "/saml/./acs",
        "/x/../saml/acs",
        "/s%61ml/acs",
        "/saml/acs;jsessionid=1",
        "/saml;v=1/acs",
        "/saml\\acs",
        "/saml/%2561cs",
        "/saml/acs%2F",
        "/ｓａｍｌ/acs",
        "/saml/..;/saml/acs",
        "/saml/％61cs",
        "/saml／acs",
        "/saml/acs.",
        "/saml/acs%20",
        "/saml/acs::$DATA",
        "/saml/acs%00.php",
        "/saml/%u0061cs",
        "/saml/acs/..%2f/acs",
    ] {
        assert_eq!(canonical_path(spelled).unwrap(), acs, "{spelled}");
    }
    for other in ["/saml/acsx", "/saml", "/samlacs", "/saml/acs/extra"] {
        assert_ne!(canonical_path(other).unwrap(), acs, "{other}");
    }
}

#[test]
fn the_prefix_owns_its_subtree_only() {
    assert!(canonical_path("/NYMGATE/callback").unwrap().is_under("/nymgate"));
    assert!(canonical_path("/%6eymgate").unwrap().is_under("/nymgate"));
    assert!(canonical_path("/a/../nymgate/").unwrap().is_under("/nymgate"));
    assert!(!canonical_path("/nymgatex").unwrap().is_under("/nymgate"));
    assert!(!canonical_path("/").unwrap().is_under("/nymgate"));
}

#[test]
fn names_that_are_not_the_rule() {
    let rule = canonical_rule_name("email");
    for name in ["emails", "e-mail", "x_email", "emai", "mail", "email2"] {
        assert!(!canonical_param(name).matches(&rule), "{name}");
    }
}

#[test]
fn plus_decoded_once_only() {
    // `%2B` is a literal plus, not a space: a name with one is not the name with a space.
    assert_eq!(canonical_param("a+b").name, "a b");
    assert_eq!(canonical_param("a%2Bb").name, "a+b");
}

#[test]
fn a_path_encoded_deeper_than_any_framework_decodes_is_refused() {
    let deep = (0..MAX_DECODE_ROUNDS + 1).fold("%61".to_owned(), |p, _| p.replacen('%', "%25", 1));
    assert_eq!(canonical_path(&format!("/{deep}")), Err(Unsettled));
    let shallow = (0..MAX_DECODE_ROUNDS - 1).fold("%61".to_owned(), |p, _| p.replacen('%', "%25", 1));
    assert_eq!(canonical_path(&format!("/{shallow}")).unwrap().as_str(), "/a");
}

#[test]
fn a_format_suffix_routes_to_the_same_action() {
    let acs = canonical_path("/saml/acs").unwrap();
    for spelled in ["/saml/acs.json", "/SAML/acs.xml", "/saml/acs.html/"] {
        assert!(canonical_path(spelled).unwrap().routes_to(&acs), "{spelled}");
    }
    for other in ["/saml/acsx.json", "/saml.json/acs2", "/saml/acs/x.json"] {
        assert!(!canonical_path(other).unwrap().routes_to(&acs), "{other}");
    }
}

#[test]
fn names_that_frameworks_cut_or_fold_match() {
    let rule = canonical_rule_name("email");
    for name in ["email%00x", "emai%u006c", "EMAİL", "emaıl", "user['email']", "user[\"email\"]", "email%01"]
    {
        assert!(canonical_param(name).matches(&rule), "{name}");
    }
    let saml = canonical_rule_name("SAMLResponse");
    assert!(canonical_param("SAMLResponse%00.x").matches(&saml));
    assert!(canonical_param("%u0053AMLResponse").matches(&saml));
}

#[test]
fn a_name_hidden_in_an_encoded_pair_is_found() {
    assert!(query_has("x=1%26email%3Dalice", &["email"]));
    assert!(query_has("x=1%3BSAMLResponse%3Dabc", SAML_MESSAGES));
    assert!(!query_has("x=1%26y%3D2", &["email"]));
}
