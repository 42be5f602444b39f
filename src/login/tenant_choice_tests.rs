//! Tenant choice over shared issuers: every order of the config gives every login one answer.

use super::*;
use crate::verify::identity::Attribute;
use proptest::prelude::*;

const SERVER: &str = "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\n\
                      cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";

/// A SAML tenant on `issuer`, with a selector on `eduPersonScopedAffiliation` when given values.
fn tenant(id: &str, issuer: &str, values: &[&str]) -> String {
    let mut text = format!("[[tenants]]\nid = \"{id}\"\nidp = \"saml\"\nissuer = \"{issuer}\"\n");
    if !values.is_empty() {
        let list: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&format!(
            "[tenants.select]\nattribute = \"eduPersonScopedAffiliation\"\nvalues = [{}]\n",
            list.join(", ")
        ));
    }
    text
}

fn choice(tenants: &[String]) -> TenantChoice {
    TenantChoice::new(&Config::parse(&format!("{SERVER}{}", tenants.concat())).unwrap())
}

fn login(issuer: &str, affiliations: &[&str]) -> VerifiedIdentity {
    let values = affiliations.iter().map(|v| v.to_string()).collect();
    VerifiedIdentity::test_saml(
        issuer,
        None,
        vec![Attribute {
            name: "urn:oid:1.3.6.1.4.1.5923.1.1.1.9".into(),
            friendly_name: Some("eduPersonScopedAffiliation".into()),
            values,
        }],
    )
}

const FEIDE: &str = "https://idp.feide.no";

#[test]
fn shared_issuer_unsolicited_login_goes_to_the_school_its_scope_names() {
    let c = choice(&[
        tenant("skole-a", FEIDE, &["skole-a.no"]),
        tenant("skole-b", &format!("{FEIDE}/"), &["skole-b.no"]),
        tenant("other", "https://idp.other.example", &[]),
    ]);
    // Any spelling of the shared issuer finds both, in config order.
    assert_eq!(c.by_issuer("HTTPS://idp.feide.no/"), ["skole-a", "skole-b"]);
    let candidates = c.by_issuer(FEIDE);
    assert_eq!(c.pick(&candidates, &login(FEIDE, &["student@SKOLE-B.no"])), Ok("skole-b"));
    assert_eq!(c.pick(&candidates, &login(FEIDE, &["member@skole-a.no"])), Ok("skole-a"));
    assert_eq!(c.pick(&candidates, &login(FEIDE, &["student@skole-c.no"])), Err(ChoiceError::NotSelected));
    assert_eq!(c.pick(&candidates, &login(FEIDE, &[])), Err(ChoiceError::NotSelected));
    let both = login(FEIDE, &["student@skole-a.no", "student@skole-b.no"]);
    assert_eq!(c.pick(&candidates, &both), Err(ChoiceError::Ambiguous));
    // A lone tenant of its issuer without a selector takes its logins as before.
    assert_eq!(c.pick(&c.by_issuer("https://idp.other.example"), &login("x", &[])), Ok("other"));
}

#[test]
fn shared_issuer_started_login_stays_with_its_tenant_only_when_the_attribute_names_it() {
    let c = choice(&[tenant("skole-a", FEIDE, &["skole-a.no"]), tenant("skole-b", FEIDE, &["skole-b.no"])]);
    assert_eq!(c.confirm("skole-a", &login(FEIDE, &["student@skole-a.no"])), Ok(()));
    // A pupil of school B who signs in from school A's tile is not filed under A.
    assert_eq!(c.confirm("skole-a", &login(FEIDE, &["student@skole-b.no"])), Err(ChoiceError::Mismatch));
    assert_eq!(c.confirm("skole-a", &login(FEIDE, &[])), Err(ChoiceError::Mismatch));
    // A pupil of both schools who starts at B is B's.
    assert_eq!(c.confirm("skole-b", &login(FEIDE, &["student@skole-a.no", "student@skole-b.no"])), Ok(()));
}

#[test]
fn a_tenant_without_a_selector_never_wins_a_shared_issuer() {
    let c = choice(&[tenant("skole-a", FEIDE, &[]), tenant("skole-b", FEIDE, &["skole-b.no"])]);
    let candidates = c.by_issuer(FEIDE);
    assert_eq!(c.pick(&candidates, &login(FEIDE, &["student@skole-a.no"])), Err(ChoiceError::NotSelected));
    assert_eq!(c.pick(&candidates, &login(FEIDE, &["student@skole-b.no"])), Ok("skole-b"));
}

proptest! {
    /// Every order of the config, and any spelling of the issuer in each tenant, gives a login
    /// the same tenant: the one its scope names, or a refusal.
    #[test]
    fn shared_issuer_choice_is_the_same_over_every_config_order(
        order in Just((0..4usize).collect::<Vec<_>>()).prop_shuffle(),
        slashes in proptest::collection::vec(0usize..3, 4),
        school in 0usize..6,
    ) {
        let schools = ["skole-a", "skole-b", "skole-c", "skole-d"];
        let tenants: Vec<String> = order
            .iter()
            .map(|&i| {
                let issuer = format!("{FEIDE}{}", "/".repeat(slashes[i]));
                tenant(schools[i], &issuer, &[&format!("{}.no", schools[i])])
            })
            .collect();
        let c = choice(&tenants);
        let candidates = c.by_issuer(FEIDE);
        prop_assert_eq!(candidates.len(), 4);
        let identity = login(FEIDE, &[&format!("student@skole-{}.no", ["a", "b", "c", "d", "x", "y"][school])]);
        let picked = c.pick(&candidates, &identity);
        if school < 4 {
            prop_assert_eq!(picked, Ok(schools[school]));
            for (i, id) in schools.iter().enumerate() {
                prop_assert_eq!(c.confirm(id, &identity).is_ok(), i == school);
            }
        } else {
            prop_assert_eq!(picked, Err(ChoiceError::NotSelected));
        }
    }
}
