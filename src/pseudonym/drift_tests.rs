//! Identity that never drifts: the account number's issuer is the tenant's configured one in
//! canonical form, and each sector's numbers are its own (issue 26).

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn keyring() -> Keyring {
    let mut ring = Keyring::default();
    ring.new_scope("school-o", 1_000).unwrap();
    ring
}

fn pseudonymizer(issuer: &str, account_issuer: Option<&str>) -> Pseudonymizer {
    let extra = account_issuer.map(|a| format!("account_issuer = \"{a}\"\n")).unwrap_or_default();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"c\"\nkey_file = \"k\"\n\
         [pseudonyms]\nkeyring_file = \"k\"\n[[tenants]]\nid = \"school-o\"\nidp = \"oidc\"\nissuer = \"{issuer}\"\n{extra}"
    );
    Pseudonymizer::new(&Config::parse(&text).unwrap(), keyring()).unwrap()
}

/// An OIDC login whose `iss` the verifier took from the IdP's discovery document.
fn login_from(advertised: &str) -> VerifiedIdentity {
    VerifiedIdentity::test_oidc(advertised, json!({"sub": "pupil-17"}).as_object().unwrap())
}

/// Computed with Python's `hmac` over the layout of the module doc, "Sectors".
#[test]
fn sector_derivation_known_answer() {
    let key = ScopeKey::new(3, 0, crate::secret::Secret::new(vec![0x42; 32]));
    let sector =
        derive_in_sector(&key, Sector::Named("vendor-b"), "https://idp.school.example", "248289761001");
    assert_eq!(sector.as_str(), "v3-Q91J-WKG1-94ZY-H7MB");
    let primary = derive_in_sector(&key, Sector::Primary, "https://idp.school.example", "248289761001");
    assert_eq!(primary, derive_account_number(&key, "https://idp.school.example", "248289761001"));
    assert_eq!(Sector::of(Some("primary")), Sector::Primary);
    assert_eq!(Sector::of(None), Sector::Primary);
}

#[test]
fn issuer_gaining_a_trailing_slash_keeps_every_account_number() {
    let p = pseudonymizer("https://idp.school-o.example", None);
    let before = p.pseudonymize("school-o", &login_from("https://idp.school-o.example"), Sector::Primary, 0);
    let after = p.pseudonymize("school-o", &login_from("https://idp.school-o.example/"), Sector::Primary, 0);
    assert_eq!(before.unwrap().sub, after.unwrap().sub);
    // The DPO's lookup agrees, whichever spelling the DPO types.
    let login =
        p.pseudonymize("school-o", &login_from("https://IDP.school-o.example:443/"), Sector::Primary, 0);
    for typed in [None, Some("https://idp.school-o.example/"), Some("HTTPS://idp.school-o.example")] {
        let number = p.current_number("school-o", typed, "pupil-17", Sector::Primary, 0).unwrap();
        assert_eq!(number, login.as_ref().unwrap().sub, "{typed:?}");
    }
}

#[test]
fn a_login_from_another_issuer_is_refused_not_numbered() {
    let p = pseudonymizer("https://idp.school-o.example", None);
    for other in ["https://idp.school-o.example/other", "https://evil.example", "not an issuer"] {
        let error = p.pseudonymize("school-o", &login_from(other), Sector::Primary, 0).unwrap_err();
        assert_eq!(error.reason(), "issuer_mismatch", "{other}");
    }
}

#[test]
fn account_issuer_keeps_the_numbers_made_from_an_old_spelling() {
    // Before canonical issuers, an IdP that advertised `…/` gave numbers from that spelling.
    let p = pseudonymizer("https://idp.school-o.example", Some("https://idp.school-o.example/"));
    let key = p.keyring.scope("school-o").unwrap().current();
    let old = derive_account_number(key, "https://idp.school-o.example/", "pupil-17");
    let login = p.pseudonymize("school-o", &login_from("https://idp.school-o.example"), Sector::Primary, 0);
    assert_eq!(login.unwrap().sub, old);
    assert_eq!(p.current_number("school-o", None, "pupil-17", Sector::Primary, 0).unwrap(), old);
}

#[test]
fn two_platforms_in_two_sectors_get_unlinkable_numbers_and_the_primary_keeps_its_own() {
    let p = pseudonymizer("https://idp.school-o.example", None);
    let identity = login_from("https://idp.school-o.example");
    let number = |sector| p.pseudonymize("school-o", &identity, sector, 0).unwrap().sub;
    let primary = number(Sector::Primary);
    let (a, b) = (number(Sector::Named("vendor-a")), number(Sector::Named("vendor-b")));
    assert!(primary != a && primary != b && a != b);
    assert_eq!(a, number(Sector::Named("vendor-a")), "one sector, one number");
    // The primary sector's number is the one nymgate made before sectors existed.
    let key = p.keyring.scope("school-o").unwrap().current();
    assert_eq!(primary, derive_account_number(key, "https://idp.school-o.example", "pupil-17"));
    assert_eq!(p.current_number("school-o", None, "pupil-17", Sector::Named("vendor-b"), 0).unwrap(), b);
}

proptest! {
    /// Any respelling of the configured issuer, advertised by the IdP, gives the same number.
    #[test]
    fn every_respelling_of_the_issuer_gives_the_same_number(
        upper in any::<bool>(), port in any::<bool>(), slashes in 0usize..3,
    ) {
        let p = pseudonymizer("https://idp.school-o.example/realms/o", None);
        let host = if upper { "IDP.School-O.example" } else { "idp.school-o.example" };
        let port = if port { ":443" } else { "" };
        let advertised = format!("https://{host}{port}/realms/o{}", "/".repeat(slashes));
        let a = p.pseudonymize("school-o", &login_from(&advertised), Sector::Primary, 0).unwrap().sub;
        let b = p.pseudonymize("school-o", &login_from("https://idp.school-o.example/realms/o"), Sector::Primary, 0).unwrap().sub;
        prop_assert_eq!(a, b);
    }

    /// Distinct sector names never share a number for one person.
    #[test]
    fn distinct_sectors_give_distinct_numbers(a in "[a-z0-9_-]{1,16}", b in "[a-z0-9_-]{1,16}") {
        prop_assume!(a != b && a != "primary" && b != "primary");
        let key = ScopeKey::new(1, 0, crate::secret::Secret::new(vec![7; 32]));
        let one = derive_in_sector(&key, Sector::Named(&a), "https://idp.example", "s");
        let two = derive_in_sector(&key, Sector::Named(&b), "https://idp.example", "s");
        prop_assert_ne!(one, two);
    }
}
