use super::*;
use proptest::prelude::*;

#[test]
fn equivalent_spellings_of_an_issuer_url_are_one_issuer() {
    let canonical = "https://idp.school.example/realms/skola";
    for spelling in [
        "https://idp.school.example/realms/skola",
        "https://idp.school.example/realms/skola/",
        "https://idp.school.example/realms/skola//",
        "HTTPS://IDP.School.Example/realms/skola",
        "https://idp.school.example:443/realms/skola",
        "https://idp.school.example/realms/./x/../skola",
        "https://idp.school.example/realms/%73kola",
        "https://idp.school.example/realms/sk%6Fla/",
        "https://idp.school.example./realms/skola",
    ] {
        assert_eq!(canonical_issuer(spelling).as_deref(), Ok(canonical), "{spelling}");
    }
    assert_eq!(canonical_issuer("https://idp.example/").as_deref(), Ok("https://idp.example"));
    assert_eq!(canonical_issuer("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
    // An internationalized host in its A-label form.
    assert_eq!(canonical_issuer("https://skölan.example").as_deref(), Ok("https://xn--sklan-kua.example"));
    assert!(same_issuer("https://SKÖLAN.example/", "https://xn--sklan-kua.example"));
}

#[test]
fn different_issuers_stay_different() {
    let base = canonical_issuer("https://idp.example/a").unwrap();
    for other in [
        "http://idp.example/a",       // another scheme
        "https://idp.example:8443/a", // another port
        "https://idp.example/A",      // paths are case-sensitive
        "https://idp.example/a/b",    // another path
        "https://idp.example.evil/a", // another host
        "https://idp.example/a%2Fb",  // an encoded slash is no separator
    ] {
        assert_ne!(canonical_issuer(other).unwrap(), base, "{other}");
    }
}

#[test]
fn strings_that_are_no_issuer_are_refused() {
    assert_eq!(canonical_issuer(""), Err(IssuerError::Empty));
    assert_eq!(canonical_issuer(" https://idp.example"), Err(IssuerError::Whitespace));
    assert_eq!(canonical_issuer("https://idp.example\n"), Err(IssuerError::Whitespace));
    // Google Workspace's SAML entity id: the query is part of the id, kept as written.
    let google = "https://accounts.google.com/o/saml2?idpid=C01abc23d";
    assert_eq!(canonical_issuer(google).as_deref(), Ok(google));
    assert!(same_issuer(google, "HTTPS://accounts.google.com/o/saml2/?idpid=C01abc23d"));
    assert!(!same_issuer(google, "https://accounts.google.com/o/saml2?idpid=C09xyz"));
    assert!(!same_issuer(google, "https://accounts.google.com/o/saml2"));
    assert_eq!(canonical_issuer("https://idp.example/#x"), Err(IssuerError::UrlParts));
    assert_eq!(canonical_issuer("https://u:p@idp.example"), Err(IssuerError::UrlParts));
    assert_eq!(canonical_issuer("https://"), Err(IssuerError::BadUrl));
    assert_eq!(canonical_issuer("https://idp.example/%zz"), Err(IssuerError::BadUrl));
    assert_eq!(canonical_issuer(&"a".repeat(MAX_ISSUER_BYTES + 1)), Err(IssuerError::TooLong));
    assert!(!same_issuer("", ""));
    // Found by the fuzz target: a path that percent-encoding makes longer than the bound.
    let long = format!("https:http://s//II{}", "\u{FFFD}".repeat(120));
    assert!(long.len() < MAX_ISSUER_BYTES);
    assert_eq!(canonical_issuer(&long), Err(IssuerError::TooLong));
    // Found by the fuzz target too: a host whose encoded dots make an empty last label.
    assert_eq!(canonical_issuer("https://sköl%2e%2e/"), Err(IssuerError::BadUrl));
    assert_eq!(canonical_issuer("https://idp.example../"), Err(IssuerError::BadUrl));
}

#[test]
fn urns_and_directory_ids_fold_only_their_case_insensitive_parts() {
    assert_eq!(
        canonical_issuer("URN:Mace:Feide.no:idp").as_deref(),
        Ok("urn:mace:Feide.no:idp"),
        "RFC 8141: only `urn` and the NID are case-insensitive"
    );
    let tid = "9188040D-6C67-4C5B-B112-36A304B66DAD";
    assert_eq!(canonical_issuer(tid).unwrap(), tid.to_ascii_lowercase());
    assert!(same_issuer(tid, &tid.to_ascii_lowercase()));
}

/// The spelling changes an IdP can make to one issuer, applied at random.
fn respell(
    host: &str,
    path: &[String],
    upper_scheme: bool,
    upper_host: bool,
    port: bool,
    slashes: usize,
) -> String {
    let scheme = if upper_scheme { "HTTPS" } else { "https" };
    let host = if upper_host { host.to_ascii_uppercase() } else { host.to_owned() };
    let port = if port { ":443" } else { "" };
    format!("{scheme}://{host}{port}/{}{}", path.join("/"), "/".repeat(slashes))
}

proptest! {
    #[test]
    fn every_respelling_of_an_issuer_has_one_canonical_form(
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){1,2}",
        path in proptest::collection::vec("[a-zA-Z0-9_-]{1,8}", 0..4),
        (a, b, c, d) in (any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3),
        (e, f, g, h) in (any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3),
    ) {
        let one = canonical_issuer(&respell(&host, &path, a, b, c, d));
        let two = canonical_issuer(&respell(&host, &path, e, f, g, h));
        // One verdict for every spelling: a host no spelling makes valid (an `xn--` label that
        // is no Punycode, as the generator can draw) is refused in all of them.
        prop_assert_eq!(one.is_ok(), two.is_ok(), "{:?} against {:?}", one, two);
        if let (Ok(one), Ok(two)) = (one, two) {
            prop_assert_eq!(&one, &two);
            // Canonical is a fixed point.
            prop_assert_eq!(canonical_issuer(&one).unwrap(), one);
        }
    }

    #[test]
    fn a_changed_path_segment_is_another_issuer(
        host in "[a-z]{1,10}\\.example",
        path in proptest::collection::vec("[a-z0-9]{1,8}", 1..4),
        extra in "[a-z0-9]{1,8}",
    ) {
        let base = canonical_issuer(&respell(&host, &path, false, false, false, 0)).unwrap();
        let mut longer = path.clone();
        longer.push(extra.clone());
        prop_assert_ne!(&canonical_issuer(&respell(&host, &longer, false, false, false, 0)).unwrap(), &base);
        let mut changed = path.clone();
        changed[0] = format!("{}{extra}", changed[0]);
        prop_assert_ne!(&canonical_issuer(&respell(&host, &changed, false, false, false, 0)).unwrap(), &base);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_refusals_stay_refused(raw in "\\PC{0,64}") {
        if let Ok(canonical) = canonical_issuer(&raw) {
            prop_assert_eq!(canonical_issuer(&canonical), Ok(canonical.clone()));
        }
    }
}
