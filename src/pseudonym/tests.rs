//! Properties of the account number, and the pseudonymizer end to end over verified identities.

use proptest::prelude::*;
use serde_json::json;

use super::identity::{Attribute, NameId};
use super::*;

impl Pseudonymizer {
    /// The number the person's logins get now, by the DPO lookup's derivation without its audit
    /// (subject_access.rs audits every answer it gives a DPO): what these tests, and the drift
    /// tests, compare a login's number with.
    pub(super) fn current_number(
        &self,
        tenant_id: &str,
        issuer: Option<&str>,
        subject: &str,
        sector: Sector<'_>,
        now: u64,
    ) -> Result<AccountNumber, PseudonymError> {
        self.lookup_every_version(tenant_id, issuer, subject, sector, now)?
            .into_iter()
            .find(|known| known.key == KeyState::Current)
            .map(|known| known.number)
            .ok_or_else(|| PseudonymError::NoKeys(tenant_id.to_owned()))
    }
}

fn keyring_with(scopes: &[&str]) -> Keyring {
    let mut ring = Keyring::default();
    for scope in scopes {
        ring.new_scope(scope, 1_000).unwrap();
    }
    ring
}

fn key<'a>(ring: &'a Keyring, scope: &str) -> &'a ScopeKey {
    ring.scope(scope).unwrap().current()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Deterministic across processes: a keyring written and read back (as a restart or another
    /// replica would) gives the same number.
    #[test]
    fn same_input_same_number_after_reload(issuer in ".{0,40}", subject in ".{1,40}") {
        let ring = keyring_with(&["s"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        ring.save(&path).unwrap();
        let reloaded = Keyring::load(&path).unwrap();
        prop_assert_eq!(
            derive_account_number(key(&ring, "s"), &issuer, &subject),
            derive_account_number(key(&reloaded, "s"), &issuer, &subject)
        );
    }

    /// The yes-or-no check the load test uses says yes for the person's own primary number
    /// only: not for another subject, another issuer, another scope or a named sector's number.
    #[test]
    fn a_number_is_primary_for_its_own_person_only(subject in ".{1,40}", other in ".{1,40}") {
        let ring = keyring_with(&["a", "b"]);
        let number = derive_account_number(key(&ring, "a"), "iss", &subject);
        prop_assert!(number.is_primary_for(key(&ring, "a"), "iss", &subject));
        prop_assert_eq!(number.is_primary_for(key(&ring, "a"), "iss", &other), other == subject);
        prop_assert!(!number.is_primary_for(key(&ring, "a"), "iss2", &subject));
        prop_assert!(!number.is_primary_for(key(&ring, "b"), "iss", &subject));
        let sector = derive_in_sector(key(&ring, "a"), Sector::Named("vendor-b"), "iss", &subject);
        prop_assert!(!sector.is_primary_for(key(&ring, "a"), "iss", &subject));
    }

    /// Different scopes give unrelated numbers (their keys are independent).
    #[test]
    fn scopes_are_unlinkable(subject in ".{1,40}") {
        let ring = keyring_with(&["a", "b"]);
        let a = derive_account_number(key(&ring, "a"), "iss", &subject);
        let b = derive_account_number(key(&ring, "b"), "iss", &subject);
        prop_assert_ne!(&a, &b);
        // Not just different: no shared 4-character group beyond chance (1 in 32^4 per group).
        let groups = |n: &AccountNumber| n.as_str().split('-').skip(1).map(str::to_owned).collect::<Vec<_>>();
        let (ga, gb) = (groups(&a), groups(&b));
        prop_assert!(ga.iter().zip(&gb).filter(|(x, y)| x == y).count() <= 1);
    }

    /// Field boundaries can't be shifted: ("ab", "c") and ("a", "bc") differ.
    #[test]
    fn field_boundaries_are_fixed(a in "[a-z]{1,10}", b in "[a-z]{1,10}", c in "[a-z]{1,10}") {
        let ring = keyring_with(&["s"]);
        let k = key(&ring, "s");
        prop_assert_ne!(
            derive_account_number(k, &format!("{a}{b}"), &c),
            derive_account_number(k, &a, &format!("{b}{c}"))
        );
    }

    /// A new key version gives a different number, marked with its version.
    #[test]
    fn key_versions_differ(subject in ".{1,40}") {
        let mut ring = keyring_with(&["s"]);
        let v1 = derive_account_number(key(&ring, "s"), "iss", &subject);
        ring.rotate("s", 2_000, 100).unwrap();
        let v2 = derive_account_number(key(&ring, "s"), "iss", &subject);
        prop_assert!(v1.as_str().starts_with("v1-") && v2.as_str().starts_with("v2-"));
        prop_assert_ne!(&v1.as_str()[3..], &v2.as_str()[3..]);
    }

    /// The number never contains its input (for inputs long enough that chance can't explain it).
    #[test]
    fn output_never_contains_input(issuer in "[A-Za-z0-9.:/]{5,40}", subject in "[A-Za-z0-9@.]{5,40}") {
        let ring = keyring_with(&["s"]);
        let n = derive_account_number(key(&ring, "s"), &issuer, &subject);
        let text = n.as_str().to_lowercase();
        prop_assert!(!text.contains(&subject.to_lowercase()));
        prop_assert!(!text.contains(&issuer.to_lowercase()));
    }

    /// The format: `v<version>-` then four groups of four Crockford characters.
    #[test]
    fn format_is_readable(subject in ".{1,40}") {
        let ring = keyring_with(&["s"]);
        let n = derive_account_number(key(&ring, "s"), "iss", &subject);
        let groups: Vec<&str> = n.as_str().split('-').collect();
        prop_assert_eq!(groups[0], "v1");
        prop_assert_eq!(groups.len(), 5);
        for g in &groups[1..] {
            prop_assert_eq!(g.len(), 4);
            prop_assert!(g.bytes().all(|b| CROCKFORD.contains(&b)));
        }
    }
}

/// A known-answer test: pins the derivation, so that a change to it (which would re-number every
/// account on every platform) can't pass unnoticed.
#[test]
fn derivation_known_answer() {
    let key = ScopeKey::new(3, 0, crate::secret::Secret::new(vec![0x42; 32]));
    let number = derive_account_number(&key, "https://idp.school.example", "248289761001");
    assert_eq!(number.as_str(), KNOWN_ANSWER);
}
/// Computed independently of this crate, with Python's `hmac` and `hashlib` over the byte layout
/// the module doc gives (domain tag, u32 big-endian lengths), then Crockford base32 of 80 bits.
const KNOWN_ANSWER: &str = "v3-RP87-T0HQ-5C72-QFBF";

fn config_with(tenants: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"c\"\nkey_file = \"k\"\n[pseudonyms]\nkeyring_file = \"k\"\n{tenants}"
    );
    Config::parse(&text).unwrap()
}

const TENANTS: &str = r#"
[[tenants]]
id = "school-a"
idp = "saml"
issuer = "https://idp.school-a.example"
scope = "municipality-x"
subject = { attribute = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6" }
policy = { preset = "skolfederation", school_map = { "21648755" = "school-a" } }

[[tenants]]
id = "school-b"
idp = "oidc"
issuer = "https://idp.school-b.example"
scope = "municipality-x"
policy = { role_from = ["role"], role_map = { pupil = "student" }, school_from = ["school"], school_map = { "B1" = "alice@school-b.example", "B2" = "school-b" } }

[[tenants]]
id = "school-c"
idp = "google"
issuer = "https://accounts.google.com"
subject = { allow_email = true }
"#;

fn saml_alice() -> VerifiedIdentity {
    let attr = |name: &str, friendly: &str, values: &[&str]| Attribute {
        name: name.into(),
        friendly_name: Some(friendly.into()),
        values: values.iter().map(|v| (*v).into()).collect(),
    };
    VerifiedIdentity::test_saml(
        "https://idp.school-a.example",
        Some(NameId {
            value: "AAdzZWNyZXQx".into(),
            format: Some(identity::name_id_format::TRANSIENT.into()),
        }),
        vec![
            attr(identity::names::EPPN, "eduPersonPrincipalName", &["alice@school-a.example"]),
            attr(identity::names::MAIL, "mail", &["alice.andersson@school-a.example"]),
            attr(identity::names::DISPLAY_NAME, "displayName", &["Alice Andersson"]),
            attr(
                identity::names::SCOPED_AFFILIATION,
                "eduPersonScopedAffiliation",
                &["student@school-a.example"],
            ),
            attr(identity::names::NOREDU_ORG_UNIT_ID, "norEduOrgUnitUniqueIdentifier", &["21648755"]),
            attr(identity::names::NOREDU_PERSON_NIN, "norEduPersonNIN", &["200512189872"]),
        ],
    )
}

#[test]
fn saml_login_keeps_only_the_number_and_mapped_claims() {
    let p = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&["municipality-x", "school-c"])).unwrap();
    let login = p.pseudonymize("school-a", &saml_alice(), Sector::Primary, 2_000).unwrap();
    assert_eq!(login.role, Role::Student);
    assert_eq!(login.school.as_deref(), Some("school-a"));
    assert_eq!((login.nym_ver, login.sub_prev.as_ref(), login.nym_src), (1, None, None));
    let claims = serde_json::Value::Object(login.claims()).to_string();
    for personal in ["alice", "Andersson", "200512189872", "AAdzZWNyZXQx", "21648755"] {
        assert!(!claims.contains(personal), "{personal} in {claims}");
    }
    assert!(
        login.removed.contains(&"mail".to_owned()) && login.removed.contains(&"norEduPersonNIN".to_owned())
    );
    // The same person through the DPO lookup gets the same number.
    let number =
        p.current_number("school-a", None, "alice@school-a.example", Sector::Primary, 2_000).unwrap();
    assert_eq!(number, login.sub);
}

#[test]
fn a_shared_scope_gives_the_same_number_in_each_school() {
    let p = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&["municipality-x", "school-c"])).unwrap();
    let a = p
        .current_number(
            "school-a",
            Some("https://idp.municipality-x.example"),
            "pupil-17",
            Sector::Primary,
            0,
        )
        .unwrap();
    let b = p
        .current_number(
            "school-b",
            Some("https://idp.municipality-x.example"),
            "pupil-17",
            Sector::Primary,
            0,
        )
        .unwrap();
    assert_eq!(a, b);
    let c = p
        .current_number(
            "school-c",
            Some("https://idp.municipality-x.example"),
            "pupil-17",
            Sector::Primary,
            0,
        )
        .unwrap();
    assert_ne!(a, c, "another scope, another number");
}

#[test]
fn guard_trips_on_a_smuggled_email_and_names_only_the_claim() {
    // school-b's (mis)configured map turns B1 into an email address.
    let p = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&["municipality-x", "school-c"])).unwrap();
    let smuggled = VerifiedIdentity::test_oidc(
        "https://idp.school-b.example",
        json!({"sub": "s-1", "role": "pupil", "school": "B1"}).as_object().unwrap(),
    );
    let err = p.pseudonymize("school-b", &smuggled, Sector::Primary, 0).unwrap_err();
    assert_eq!(err, PseudonymError::Guard(GuardTrip { claim: "school", detector: "email" }));
    assert!(!err.to_string().contains("alice"));
    let fine = VerifiedIdentity::test_oidc(
        "https://idp.school-b.example",
        json!({"sub": "s-1", "role": "pupil", "school": "B2"}).as_object().unwrap(),
    );
    assert_eq!(
        p.pseudonymize("school-b", &fine, Sector::Primary, 0).unwrap().school.as_deref(),
        Some("school-b")
    );
}

#[test]
fn guard_trips_on_a_smuggled_personnummer_and_on_the_subject_itself() {
    let config = config_with(
        r#"
[[tenants]]
id = "school-d"
idp = "oidc"
issuer = "https://idp.d.example"
policy = { school_from = ["school"], school_map = { "D1" = "811218-9876", "D2" = "pupil-1234" } }
"#,
    );
    let p = Pseudonymizer::new(&config, keyring_with(&["school-d"])).unwrap();
    let id = |school: &str| {
        VerifiedIdentity::test_oidc(
            "https://idp.d.example",
            json!({"sub": "pupil-1234", "school": school}).as_object().unwrap(),
        )
    };
    assert_eq!(
        p.pseudonymize("school-d", &id("D1"), Sector::Primary, 0).unwrap_err(),
        PseudonymError::Guard(GuardTrip { claim: "school", detector: "se_personnummer" })
    );
    assert_eq!(
        p.pseudonymize("school-d", &id("D2"), Sector::Primary, 0).unwrap_err(),
        PseudonymError::Guard(GuardTrip { claim: "school", detector: "identifying_value" })
    );
}

#[test]
fn email_subject_only_with_opt_in_and_recorded() {
    let p = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&["municipality-x", "school-c"])).unwrap();
    let no_sub = json!({"email": "carol@school-c.example"});
    let login = p
        .pseudonymize(
            "school-c",
            &VerifiedIdentity::test_oidc("https://accounts.google.com", no_sub.as_object().unwrap()),
            Sector::Primary,
            0,
        )
        .unwrap();
    assert_eq!(login.nym_src, Some("email"));
    assert_eq!(login.claims()["nym_src"], "email");
    // school-b has no opt-in: no sub, no login.
    let err = p
        .pseudonymize(
            "school-b",
            &VerifiedIdentity::test_oidc("https://idp.school-b.example", no_sub.as_object().unwrap()),
            Sector::Primary,
            0,
        )
        .unwrap_err();
    assert_eq!(err.reason(), "no_stable_subject");
}

#[test]
fn rotation_window_carries_sub_prev_then_stops() {
    let mut ring = keyring_with(&["municipality-x", "school-c"]);
    let before = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&[])).map(|_| ()).unwrap_err();
    assert!(before.iter().any(|p| p.message.contains("nymgate keys new")));
    let p1 = Pseudonymizer::new(&config_with(TENANTS), {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        ring.save(&path).unwrap();
        Keyring::load(&path).unwrap()
    })
    .unwrap();
    let old = p1.pseudonymize("school-a", &saml_alice(), Sector::Primary, 1_500).unwrap().sub;
    ring.rotate("municipality-x", 2_000, 1_000).unwrap();
    let p2 = Pseudonymizer::new(&config_with(TENANTS), ring).unwrap();
    let during = p2.pseudonymize("school-a", &saml_alice(), Sector::Primary, 2_500).unwrap();
    assert_eq!((during.nym_ver, during.sub_prev.as_ref()), (2, Some(&old)));
    assert_ne!(during.sub, old);
    let after = p2.pseudonymize("school-a", &saml_alice(), Sector::Primary, 3_000).unwrap();
    assert_eq!((after.sub, after.sub_prev), (during.sub, None));
}

#[test]
fn unknown_tenant_is_an_error() {
    let p = Pseudonymizer::new(&config_with(TENANTS), keyring_with(&["municipality-x", "school-c"])).unwrap();
    assert_eq!(
        p.pseudonymize("nope", &saml_alice(), Sector::Primary, 0).unwrap_err().reason(),
        "unknown_tenant"
    );
}

/// The logins of the integration fixtures (tests/common/login.rs ALICE through oidc-provider,
/// tests/common/saml.rs, the demo IdP of src/demo) and the claims Entra ID, Google and
/// Keycloak put in an ID token: with every attribute but the policy's sources and the known
/// impersonal ones now identifying, none of them refuses its own login.
#[test]
fn normal_logins_of_every_fixture_pass() {
    let config = config_with(
        r#"
[[tenants]]
id = "school-a"
idp = "oidc"
issuer = "https://idp.school-a.example"
policy = { role_from = ["roles"], role_map = { "Student" = "student", "Teacher" = "teacher" }, school_from = ["school_code"], school_map = { "SCH-A-01" = "school-a-01", "NORD-01" = "nordskolan", "21648755" = "21648755" }, municipality_from = ["municipality"], municipality_map = { "0180" = "0180" } }

[[tenants]]
id = "school-s"
idp = "saml"
issuer = "https://idp.school-s.example"
policy = { role_from = ["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"], role_map = { "student" = "student", "faculty" = "teacher" }, school_from = ["urn:oid:1.3.6.1.4.1.2428.90.1.8"], school_map = { "21648755" = "21648755" } }
"#,
    );
    let p = Pseudonymizer::new(&config, keyring_with(&["school-a", "school-s"])).unwrap();
    let oidc = |claims: serde_json::Value| {
        let login = p
            .pseudonymize(
                "school-a",
                &VerifiedIdentity::test_oidc("https://idp.school-a.example", claims.as_object().unwrap()),
                Sector::Primary,
                0,
            )
            .unwrap_or_else(|e| panic!("{e} for {claims}"));
        assert!(login.school.is_some(), "{claims}");
    };
    // oidc-provider: Alice of tests/common/login.rs, with the protocol claims it adds.
    oidc(json!({
        "iss": "https://idp.school-a.example", "aud": "nymgate-school-a", "exp": 1_800_000_300,
        "iat": 1_800_000_000, "nonce": "n-1", "at_hash": "x", "sid": "f2b0c4d6", "auth_time": 1_800_000_000,
        "sub": "idp-subject-alice-7f3a9c", "email": "alice.andersson@school-a.example",
        "name": "Alice Andersson", "given_name": "Alicia", "family_name": "Andersson",
        "eppn": "alice.a@idp.school-a.example", "national_id": "19990101-2389",
        "email_verified": true, "roles": ["Student"], "school_code": "SCH-A-01",
    }));
    // The demo IdP (src/demo/idp.rs) and its personnummer claim.
    oidc(json!({
        "iss": "https://localhost:9443/nordskolan", "aud": "c", "iat": 1, "exp": 2, "nonce": "n",
        "sub": "5b0e7c1a-3f52-4d8e-9a61-2c7f0d4e8b13", "email": "elsa.lindqvist@nordskolan.example",
        "email_verified": true, "name": "Elsa Lindqvist", "given_name": "Elsa", "family_name": "Lindqvist",
        "personal_identity_number": "20090312-2380", "roles": ["Student"], "school_code": "NORD-01",
    }));
    // Entra ID (v2.0 ID token with optional claims), Google, Keycloak: protocol claims,
    // preferences and flags a map never reads.
    oidc(json!({
        "ver": "2.0", "iss": "https://login.microsoftonline.com/t/v2.0", "aud": "a", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "preferred_username": "alice.andersson@school-a.example", "name": "Alice Andersson",
        "uti": "AbCdEf", "rh": "0.ARoA", "aio": "Df2UVXL1ix", "idp": "https://sts.windows.net/t/",
        "groups": ["2b4c7e8a-1111-2222-3333-444455556666"], "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        "hasgroups": true, "roles": ["Student"], "school_code": "21648755", "municipality": "0180",
        "locale": "sv-SE", "zoneinfo": "Europe/Stockholm", "updated_at": 1_700_000_000, "hd": "school-a.example",
        "email_verified": true, "phone_number_verified": false, "amr": ["pwd", "mfa"], "acr": "1",
    }));
    // SAML: Alice as tests/common/saml.rs sends her, with a school unit code.
    let attr = |name: &str, friendly: &str, value: &str| Attribute {
        name: name.into(),
        friendly_name: Some(friendly.into()),
        values: vec![value.into()],
    };
    let saml = VerifiedIdentity::test_saml(
        "https://idp.school-s.example",
        Some(NameId {
            value: "idp-subject-alice-7f3a9c".into(),
            format: Some(identity::name_id_format::PERSISTENT.into()),
        }),
        vec![
            attr("urn:oid:0.9.2342.19200300.100.1.3", "mail", "alice.andersson@school-a.example"),
            attr("urn:oid:2.16.840.1.113730.3.1.241", "displayName", "Alice Andersson"),
            attr("urn:oid:2.5.4.42", "givenName", "Alicia"),
            attr("urn:oid:2.5.4.4", "sn", "Andersson"),
            attr("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation", "student"),
            attr(
                "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
                "eduPersonPrincipalName",
                "alice.a@idp.school-a.example",
            ),
            attr("urn:oid:1.3.6.1.4.1.2428.90.1.5", "norEduPersonNIN", "19990101-2389"),
            attr("urn:oid:1.3.6.1.4.1.2428.90.1.8", "norEduOrgUnitUniqueIdentifier", "21648755"),
            attr("urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization", "school-s.example"),
        ],
    );
    let login = p.pseudonymize("school-s", &saml, Sector::Primary, 0).unwrap();
    assert_eq!((login.role, login.school.as_deref()), (Role::Student, Some("21648755")));
}

/// End to end: a value the IdP sent under a name nobody listed stops a map that copies it,
/// while the same value in the attribute the policy reads is what the map translates.
#[test]
fn unlisted_attributes_stop_a_copying_map() {
    let config = config_with(
        r#"
[[tenants]]
id = "school-e"
idp = "oidc"
issuer = "https://idp.e.example"
policy = { school_from = ["school"], school_map = { "holmskolan" = "holmskolan", "E1" = "e-1" } }
"#,
    );
    let p = Pseudonymizer::new(&config, keyring_with(&["school-e"])).unwrap();
    let login = |claims: serde_json::Value| {
        p.pseudonymize(
            "school-e",
            &VerifiedIdentity::test_oidc("https://idp.e.example", claims.as_object().unwrap()),
            Sector::Primary,
            0,
        )
    };
    // The school's own name, read by the policy and mapped to itself: fine.
    assert!(login(json!({"sub": "s-1", "school": "holmskolan"})).is_ok());
    // A pupil named Holm in a claim nymgate does not know refuses it.
    assert_eq!(
        login(json!({"sub": "s-1", "school": "holmskolan", "familjenamn": "Holm"})).unwrap_err(),
        PseudonymError::Guard(GuardTrip { claim: "school", detector: "identifying_value" })
    );
    assert!(login(json!({"sub": "s-1", "school": "E1", "familjenamn": "Holm"})).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every number nymgate derives, in any sector, is an account number to `parse`, spelled
    /// the same way.
    #[test]
    fn every_derived_number_parses_back(subject in ".{1,40}", sector in "[a-z]{1,12}") {
        let ring = keyring_with(&["s"]);
        for number in [
            derive_account_number(key(&ring, "s"), "iss", &subject),
            derive_in_sector(key(&ring, "s"), Sector::Named(&sector), "iss", &subject),
        ] {
            prop_assert_eq!(AccountNumber::parse(number.as_str()), Some(number.clone()));
        }
    }

    /// Whatever an operator might type: `parse` takes it only when it is exactly the shape, so
    /// an email, a name, spaces, control characters or a JSON fragment never pass for one.
    #[test]
    fn only_the_account_number_shape_parses(text in "\\PC{0,40}|v[0-9]{1,3}-[0-9A-Za-z-]{0,24}") {
        let shape = regex_lite_shape(&text);
        prop_assert_eq!(AccountNumber::parse(&text).is_some(), shape, "{:?}", text);
    }
}

/// The account number's shape, written out independently of `parse`.
fn regex_lite_shape(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else { return false };
    let Some((version, groups)) = rest.split_once('-') else { return false };
    let version_ok = version.parse::<u32>().is_ok_and(|v| v > 0 && v.to_string() == version);
    let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let groups: Vec<&str> = groups.split('-').collect();
    version_ok
        && groups.len() == 4
        && groups.iter().all(|g| g.chars().count() == 4 && g.chars().all(|c| alphabet.contains(c)))
}

#[test]
fn typed_values_that_are_not_account_numbers_are_refused() {
    for text in [
        "",
        "pupil@school-a.example",
        "v1-7QX2-M9RA-4HVE-T0B",
        "v1-7QX2-M9RA-4HVE-T0BZ-",
        "v1-7qx2-m9ra-4hve-t0bz",
        "v01-7QX2-M9RA-4HVE-T0BZ",
        "v0-7QX2-M9RA-4HVE-T0BZ",
        "v1-7QX2-M9RA-4HVE-T0BU",
        " v1-7QX2-M9RA-4HVE-T0BZ",
        "v1-7QX2-M9RA-4HVE-T0BZ\n",
        "v99999999999-7QX2-M9RA-4HVE-T0BZ",
    ] {
        assert_eq!(AccountNumber::parse(text), None, "{text:?}");
    }
    assert!(AccountNumber::parse("v1-7QX2-M9RA-4HVE-T0BZ").is_some());
    assert!(AccountNumber::parse("v12-NM47-NYDH-8ZFA-EYWK").is_some());
}
