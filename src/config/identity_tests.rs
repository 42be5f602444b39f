use super::*;

const SERVER: &str = "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\n\
                      cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";

fn problems(text: &str) -> Vec<(String, String)> {
    let config = Config::parse(&format!("{SERVER}{text}")).unwrap();
    let mut found = Vec::new();
    config.validate_identity(&mut |field: &str, message: String| found.push((field.to_owned(), message)));
    found
}

fn fields(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|(field, _)| field).collect()
}

fn saml_tenant(id: &str, issuer: &str, unsolicited: bool, select: Option<(&str, &str)>) -> String {
    let mut text = format!(
        "[[tenants]]\nid = \"{id}\"\nidp = \"saml\"\nissuer = \"{issuer}\"\n\
         [tenants.saml]\nsso_url = \"https://idp.example/sso\"\nallow_unsolicited = {unsolicited}\n"
    );
    if let Some((attribute, value)) = select {
        text.push_str(&format!("[tenants.select]\nattribute = \"{attribute}\"\nvalues = [\"{value}\"]\n"));
    }
    text
}

#[test]
fn an_issuer_that_is_no_issuer_is_refused_at_start() {
    let text = "[[tenants]]\nid = \"a\"\nidp = \"oidc\"\nissuer = \"https://idp.example/#realm\"\n";
    assert_eq!(fields(text), ["tenants[0].issuer"]);
}

/// Before canonical issuers, a SAML tenant's numbers were made from its configured issuer as
/// written, and an OIDC tenant's from the IdP's spelling: a configured issuer in another form
/// than its canonical one would renumber every pupil at the upgrade. It is refused until the
/// config says which: the canonical spelling (new numbers) or `account_issuer` (the old ones).
#[test]
fn a_non_canonical_issuer_is_refused_unless_account_issuer_says_which_numbers_stay() {
    for spelling in [
        "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
        "http://ADFS.school.example/adfs/services/trust",
        "https://idp.school.example:443/idp",
        "9188040D-6C67-4C5B-B112-36A304B66DAD",
    ] {
        let text = format!("[[tenants]]\nid = \"a\"\nidp = \"oidc\"\nissuer = \"{spelling}\"\n");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{spelling}: {found:?}");
        assert_eq!(found[0].0, "tenants[0].issuer");
        assert!(found[0].1.contains("account_issuer"), "{}", found[0].1);
        let kept = format!("{text}account_issuer = \"{spelling}\"\n");
        assert!(problems(&kept).is_empty(), "{spelling}");
    }
}

#[test]
fn shared_issuer_with_unsolicited_logins_needs_a_select_on_every_tenant() {
    let text = [
        saml_tenant("skole-a", "https://idp.feide.no", true, Some(("schacHomeOrganization", "skole-a.no"))),
        saml_tenant("skole-b", "https://idp.feide.no", false, None),
    ]
    .concat();
    assert_eq!(fields(&text), ["tenants[1].select"]);
    // Without any unsolicited route a started login keeps its tenant, and each tenant must
    // still say which users are its own (overlapping values are allowed: a pupil of both).
    let solicited_only = [
        saml_tenant("skole-a", "https://idp.feide.no", false, None),
        saml_tenant("skole-b", "https://idp.feide.no", false, Some(("schacHomeOrganization", "skole-b.no"))),
    ]
    .concat();
    assert_eq!(fields(&solicited_only), ["tenants[0].select"]);
    let both = [
        saml_tenant("skole-a", "https://idp.feide.no", false, Some(("eduPersonOrgDN", "skole-a.no"))),
        saml_tenant("skole-b", "https://idp.feide.no", false, Some(("schacHomeOrganization", "skole-a.no"))),
    ]
    .concat();
    assert!(fields(&both).is_empty());
}

#[test]
fn shared_issuer_selects_must_use_one_attribute_and_disjoint_values() {
    let same_value = [
        saml_tenant("skole-a", "https://idp.feide.no", true, Some(("schacHomeOrganization", "skole-a.no"))),
        saml_tenant("skole-b", "https://idp.feide.no", true, Some(("schacHomeOrganization", "SKOLE-A.no "))),
    ]
    .concat();
    assert_eq!(fields(&same_value), ["tenants[1].select.values"]);
    let two_attributes = [
        saml_tenant("skole-a", "https://idp.feide.no", true, Some(("schacHomeOrganization", "skole-a.no"))),
        saml_tenant("skole-b", "https://idp.feide.no", true, Some(("eduPersonOrgDN", "skole-b.no"))),
    ]
    .concat();
    assert_eq!(fields(&two_attributes), ["tenants[1].select.attribute"]);
}

#[test]
fn check_explains_shared_issuers() {
    let text = [
        saml_tenant("skole-a", "https://idp.feide.no", true, Some(("schacHomeOrganization", "skole-a.no"))),
        saml_tenant("skole-b", "https://idp.feide.no", true, Some(("schacHomeOrganization", "skole-b.no"))),
        saml_tenant("other", "https://idp.other.example", true, None),
    ]
    .concat();
    let config = Config::parse(&format!("{SERVER}{text}")).unwrap();
    let explained = config.explain_shared_issuers();
    assert_eq!(explained.len(), 1, "{explained:?}");
    assert!(explained[0].contains("skole-a, skole-b") && explained[0].contains("schacHomeOrganization"));
}

const IDP: &str = "[login]\npublic_url = \"https://learn.example\"\noutput = \"saml\"\n\
                   [login.saml_idp]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";

fn sp(entity_id: &str, sector: Option<&str>) -> String {
    let sector = sector.map(|s| format!("sector = \"{s}\"\n")).unwrap_or_default();
    format!(
        "[[login.saml_idp.service_providers]]\nentity_id = \"{entity_id}\"\nacs_url = \"{entity_id}/acs\"\n{sector}"
    )
}

#[test]
fn two_platforms_without_a_sector_are_refused() {
    let text = format!("{IDP}{}{}", sp("https://a.example", None), sp("https://b.example", None));
    let found = problems(&text);
    let named: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        named,
        ["login.saml_idp.service_providers[0].sector", "login.saml_idp.service_providers[1].sector"]
    );
    assert!(found[0].1.contains("join their data"), "{}", found[0].1);
    // One platform may stay in the primary sector; the others name theirs.
    let text = format!("{IDP}{}{}", sp("https://a.example", None), sp("https://b.example", Some("vendor-b")));
    assert!(problems(&text).is_empty());
    // Sharing is a deliberate choice: the same sector named on both.
    let text = format!(
        "{IDP}{}{}",
        sp("https://a.example", Some("shared")),
        sp("https://b.example", Some("shared"))
    );
    assert!(problems(&text).is_empty());
    let text = format!("{IDP}{}", sp("https://a.example", Some("Vendor B")));
    assert_eq!(problems(&text).len(), 1);
    // Naming the primary sector on one does not let another join it by saying nothing.
    let text = format!("{IDP}{}{}", sp("https://a.example", Some("primary")), sp("https://b.example", None));
    assert_eq!(fields(&text), ["login.saml_idp.service_providers[1].sector"]);
    let text = format!(
        "{IDP}{}{}",
        sp("https://a.example", Some("primary")),
        sp("https://b.example", Some("primary"))
    );
    assert!(problems(&text).is_empty(), "both named it: shared on purpose");
}

#[test]
fn the_assertion_header_platform_is_in_the_primary_sector() {
    let idp = IDP.replace("output = \"saml\"", "output = \"assertion_header\"");
    let found = fields(&format!("{idp}{}", sp("https://a.example", None)));
    assert_eq!(found, ["login.saml_idp.service_providers[0].sector"]);
    assert!(fields(&format!("{idp}{}", sp("https://a.example", Some("vendor-a")))).is_empty());
}
