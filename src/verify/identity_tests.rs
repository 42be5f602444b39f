//! The verified identity: the stable-subject ladder, and which values count as identifying.

use super::*;
use serde_json::json;

fn oidc(claims: serde_json::Value) -> VerifiedIdentity {
    VerifiedIdentity::from_oidc("https://idp.example", claims.as_object().unwrap())
}

fn attr(name: &str, value: &str) -> Attribute {
    Attribute { name: name.into(), friendly_name: None, values: vec![value.into()] }
}

#[test]
fn entra_uses_tid_and_oid_not_sub() {
    let id = oidc(json!({"sub": "pairwise", "tid": "t-1", "oid": "o-1", "email": "a@b.se"}));
    let s = id.stable_subject(IdpKind::Entra, &SubjectRules::default()).unwrap();
    assert_eq!((s.issuer, s.subject, s.source), ("t-1", "o-1", SubjectSource::EntraObjectId));
}

#[test]
fn generic_oidc_uses_iss_and_sub() {
    let id = oidc(json!({"sub": "248289761001", "email": "a@b.se"}));
    let s = id.stable_subject(IdpKind::Google, &SubjectRules::default()).unwrap();
    assert_eq!((s.issuer, s.subject), ("https://idp.example", "248289761001"));
}

#[test]
fn saml_ladder_in_order() {
    let persistent = NameId { value: "nid".into(), format: Some(name_id_format::PERSISTENT.into()) };
    let rules = SubjectRules { attribute: Some(names::EPPN.into()), allow_email: false };
    let all = VerifiedIdentity::from_saml(
        "https://idp.school",
        Some(persistent.clone()),
        vec![
            attr(names::EPPN, "e@school"),
            attr(names::SAML_SUBJECT_ID, "sid@school"),
            attr(names::SAML_PAIRWISE_ID, "pw@school"),
        ],
    );
    assert_eq!(all.stable_subject(IdpKind::Saml, &rules).unwrap().source, SubjectSource::SamlPairwiseId);
    let no_pairwise = VerifiedIdentity::from_saml(
        "https://idp.school",
        Some(persistent.clone()),
        vec![attr(names::EPPN, "e@school"), attr(names::SAML_SUBJECT_ID, "sid@school")],
    );
    assert_eq!(
        no_pairwise.stable_subject(IdpKind::Saml, &rules).unwrap().source,
        SubjectSource::SamlSubjectId
    );
    let nameid_only = VerifiedIdentity::from_saml(
        "https://idp.school",
        Some(persistent),
        vec![attr(names::EPPN, "e@school")],
    );
    assert_eq!(
        nameid_only.stable_subject(IdpKind::Saml, &rules).unwrap().source,
        SubjectSource::SamlPersistentNameId
    );
    let transient = NameId { value: "t".into(), format: Some(name_id_format::TRANSIENT.into()) };
    let attribute_only = VerifiedIdentity::from_saml(
        "https://idp.school",
        Some(transient),
        vec![attr(names::EPPN, "e@school")],
    );
    let s = attribute_only.stable_subject(IdpKind::Saml, &rules).unwrap();
    assert_eq!((s.subject, s.source), ("e@school", SubjectSource::SamlAttribute));
}

#[test]
fn email_only_on_explicit_opt_in() {
    let id =
        VerifiedIdentity::from_saml("https://idp.school", None, vec![attr(names::MAIL, "alice@school.se")]);
    assert!(id.stable_subject(IdpKind::Saml, &SubjectRules::default()).is_err());
    let rules = SubjectRules { attribute: None, allow_email: true };
    let s = id.stable_subject(IdpKind::Saml, &rules).unwrap();
    assert_eq!((s.subject, s.source), ("alice@school.se", SubjectSource::Email));
}

#[test]
fn debug_shows_names_not_values() {
    let id = oidc(json!({"sub": "s-123", "email": "alice@school.se"}));
    let text = format!("{id:?}");
    assert!(text.contains("email") && !text.contains("alice") && !text.contains("s-123"), "{text}");
}

fn saml_attr(name: &str, friendly: Option<&str>, value: &str) -> Attribute {
    Attribute { name: name.into(), friendly_name: friendly.map(Into::into), values: vec![value.into()] }
}

/// A name in the letter case an IdP chose: each ASCII letter upper or lower by `mask`.
fn spelled(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Attribute names by class: a known identifying name in any letter case counts, whatever
    /// its other name says (a friendly name `o`, a policy source); a known impersonal name in
    /// any letter case does not; any other name counts.
    #[test]
    fn attribute_names_by_class(
        identifying in prop::sample::select(names::IDENTIFYING),
        impersonal in prop::sample::select(names::NON_PERSONAL),
        protocol in prop::sample::select(names::PROTOCOL),
        unknown in "[a-zA-Z_:./-]{1,40}",
        mask in any::<u64>(),
    ) {
        let known = |n: &str| names::is_identifying(n) || names::is_non_personal(n);
        let id = VerifiedIdentity::from_saml(
            "https://idp.school",
            None,
            vec![
                saml_attr(&spelled(identifying, mask), Some("o"), "value-identifying"),
                saml_attr("ou", Some(&spelled(identifying, !mask)), "value-friendly"),
                saml_attr(&spelled(impersonal, mask), None, "value-impersonal"),
                saml_attr(&spelled(protocol, !mask), None, "value-protocol"),
                saml_attr(&unknown, None, "value-unknown"),
            ],
        );
        let values = id.identifying_values_except(&[identifying, "ou"]);
        prop_assert!(values.contains(&"value-identifying"));
        prop_assert!(values.contains(&"value-friendly"));
        prop_assert!(!values.contains(&"value-impersonal"));
        prop_assert!(!values.contains(&"value-protocol"));
        prop_assert_eq!(values.contains(&"value-unknown"), !known(&unknown), "{}", unknown);
    }
}

/// An attribute nobody listed (an ID-porten `pid` under another name, a directory's own
/// fields) counts as identifying; so do the newly listed claim URIs and OIDs.
#[test]
fn unknown_attributes_are_identifying() {
    let id = oidc(json!({
        "sub": "s-1",
        "personnummer": "19990101-2389",
        "homeroom_teacher": "Birgitta Holm",
        "x-custom": ["a", "b"],
        "email_verified": true,
        "zoneinfo": "Europe/Stockholm",
    }));
    let values = id.identifying_values();
    for value in ["s-1", "19990101-2389", "Birgitta Holm", "a", "b"] {
        assert!(values.contains(&value), "{value} missing from {values:?}");
    }
    assert!(!values.contains(&"true") && !values.contains(&"Europe/Stockholm"), "{values:?}");
    for name in [
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "http://schemas.microsoft.com/identity/claims/displayname",
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "urn:oid:1.2.752.29.4.13",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.13",
        "urn:oid:1.3.6.1.4.1.2428.90.1.10",
        "norEduPersonLIN",
        "schacDateOfBirth",
        "pid",
        "https://id.oidc.se/claim/personalIdentityNumber",
        "emails",
        "verified_primary_email",
        "verified_secondary_email",
        "personal_identity_number",
        "urn:oid:0.9.2342.19200300.100.1.41",
        "urn:oid:2.5.4.20",
    ] {
        assert!(names::is_identifying(name), "{name}");
        assert!(names::is_identifying(&name.to_uppercase()), "{name}");
        // Even when the policy reads it.
        let id = VerifiedIdentity::from_saml("https://idp", None, vec![saml_attr(name, None, "v")]);
        assert_eq!(id.identifying_values_except(&[name]), ["v"], "{name}");
    }
}

/// The attributes a tenant's policy reads, compared as the policy compares them (exactly, by
/// name or friendly name), and the known impersonal ones do not count; the NameID always does.
#[test]
fn policy_sources_are_not() {
    let id = VerifiedIdentity::from_saml(
        "https://idp",
        Some(NameId { value: "nid-1".into(), format: None }),
        vec![
            saml_attr("school_code", None, "SCH-A-01"),
            saml_attr("urn:oid:1.2.3.4", Some("kommun"), "0180"),
            saml_attr(names::SCOPED_AFFILIATION, Some("eduPersonScopedAffiliation"), "student@school"),
            saml_attr("urn:oid:2.5.4.10", Some("o"), "Skolan"),
            saml_attr("School_Code", None, "read by nobody"),
        ],
    );
    assert_eq!(id.identifying_values_except(&["school_code", "kommun"]), ["read by nobody", "nid-1"]);
    assert_eq!(
        id.identifying_values(),
        ["SCH-A-01", "0180", "read by nobody", "nid-1"],
        "without the policy, its sources count"
    );
}
