//! Identity that never drifts (issue 26), end to end with real peers: an oidc-provider whose
//! discovery issuer gains and loses a trailing slash keeps every account number and the DPO's
//! lookup agrees; two SAML platforms (node-saml and python3-saml) get unlinkable numbers for
//! one pupil while the primary sector keeps the number nymgate made before sectors; a platform
//! bound to one school gets that school's logins whatever its request says.

mod common;

use common::login::{alice_sub, Options, World, ALICE};
use serde_json::{json, Value};

/// Alice's number as nymgate made it before sectors and canonical issuers, from the issuer as
/// the test configured it (no trailing slash): the number a single-platform deployment has.
fn number_before_issue_26(world: &World) -> String {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let key = ring.scope("school-a").unwrap().current();
    let sub = ALICE.iter().find(|(k, _)| *k == "sub").unwrap().1;
    common::account_number::primary(key, &world.idp.url, sub)
}

/// `nymgate pseudonym` for alice at school-a: every line it prints.
fn dpo_lookup(world: &World, issuer: Option<&str>) -> Vec<String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_nymgate"));
    command.current_dir(world.dir.path()).args([
        "pseudonym",
        "--config",
        "nymgate.toml",
        "--tenant",
        "school-a",
        "--subject",
        alice_sub(),
    ]);
    if let Some(issuer) = issuer {
        command.args(["--issuer", issuer]);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The platform's login (openid-client through nymgate's provider face): alice's `sub`.
fn platform_sub(world: &World) -> String {
    let result = world.platform_login(json!({}));
    assert_eq!(result["ok"], true, "{result}\n{}", world.file("nymgate.stderr"));
    result["id_token_claims"]["sub"].as_str().unwrap().to_owned()
}

#[test]
fn oidc_issuer_gaining_and_losing_a_trailing_slash_keeps_every_account_number() {
    // Discovery is re-read after a second, so the IdP's new spelling is what nymgate sees.
    let world = World::start(Options { oidc_a: "metadata_ttl = \"1s\"", ..Options::default() });
    let before = platform_sub(&world);
    assert_eq!(before, number_before_issue_26(&world), "a canonical issuer keeps today's numbers");
    let spellings = [format!("{}/", world.idp.url), world.idp.url.clone(), format!("{}//", world.idp.url)];
    for spelling in &spellings {
        let armed = world.idp.hook(&world, "issuer", json!({ "issuer": spelling }));
        assert_eq!(armed["armed"].as_str(), Some(spelling.as_str()), "{armed}");
        std::thread::sleep(std::time::Duration::from_millis(1_200));
        assert_eq!(platform_sub(&world), before, "the IdP advertised {spelling}");
        assert_eq!(world.last_login()["account_number"], before.as_str());
    }
    // The DPO's lookup agrees, by default and in any spelling of the issuer.
    assert_eq!(dpo_lookup(&world, None)[0], before);
    for spelling in &spellings {
        assert_eq!(dpo_lookup(&world, Some(spelling))[0], before, "{spelling}");
    }
    world.assert_no_personal_values(&[]);
}

/// An IdP that starts naming another issuer (a path added) is refused: at the next login once
/// its discovery document is re-read, by a reload, and by a start, each with a clear error.
#[test]
fn oidc_discovery_naming_another_issuer_is_refused_at_login_reload_and_start() {
    let world = World::start(Options { oidc_a: "metadata_ttl = \"1s\"", ..Options::default() });
    platform_sub(&world);
    let other = format!("{}/realms/other", world.idp.url);
    world.idp.hook(&world, "issuer", json!({ "issuer": other }));
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    let result = world.platform_login(json!({}));
    assert_ne!(result["ok"], true, "{result}");
    let audit = world.last_login();
    assert_eq!(audit["reason"], "discovery_issuer_mismatch", "{audit}");
    assert!(audit["account_number"].is_null());

    world.signal("HUP");
    let refused = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        world.log().contains("config not reloaded") && world.log().contains("names another issuer")
    });
    assert!(refused, "the reload was not refused: {}", world.log());

    // The same config, started afresh (on ports of its own), does not start.
    let config = world.file("nymgate.toml");
    let moved = config
        .replace(&format!("listen = \"127.0.0.1:{}\"", world.port), "listen = \"127.0.0.1:0\"")
        .replace(
            &format!("admin_listen = \"127.0.0.1:{}\"", world.admin_port),
            "admin_listen = \"127.0.0.1:0\"",
        );
    std::fs::write(world.dir.path().join("nymgate-fresh.toml"), moved).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .current_dir(world.dir.path())
        .args(["serve", "--config", "nymgate-fresh.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = (0..100).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        child.try_wait().unwrap()
    });
    if exited.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(exited.is_some_and(|status| !status.success()), "it started: {stderr}");
    // Named by its field, as `nymgate check` names fields (`tenants[N].issuer`).
    let config = nymgate::config::Config::load(&world.dir.path().join("nymgate-fresh.toml")).unwrap();
    let field = config.tenant_field("school-a", "issuer");
    assert!(field.starts_with("tenants[") && field.ends_with("].issuer"), "{field}");
    assert!(stderr.contains(&format!("{field}: ")) && stderr.contains("names another issuer"), "{stderr}");
}

/// A second SAML platform behind the same nymgate, run by another vendor: python3-saml
/// validates what nymgate sends it. It is bound to school-a.
const VENDOR_B: &str = "https://vendor-b.example/saml";
const VENDOR_B_ACS: &str = "https://vendor-b.example/saml/acs";

fn two_platform_world() -> World {
    let extra = format!(
        "[[login.saml_idp.service_providers]]\nentity_id = \"{VENDOR_B}\"\nacs_url = \"{VENDOR_B_ACS}\"\n\
         tenant = \"school-a\"\nsector = \"vendor-b\"\n"
    );
    World::start(Options {
        saml_out: true,
        second_school: true,
        extra: Box::leak(extra.into_boxed_str()),
        ..Options::default()
    })
}

/// The node-saml platform's browser run as vendor B (an unsigned AuthnRequest from its entity
/// id), and python3-saml's verdict on the Response nymgate posted to vendor B's ACS.
fn vendor_b_login(world: &World, tenant: &str) -> (Value, Value) {
    let run = world.saml_platform_login_with(
        json!({"tenant": tenant, "entity_id": VENDOR_B, "acs_url": VENDOR_B_ACS}),
        false,
        None,
    );
    let Some(xml) = run["xml"].as_str() else { return (run, Value::Null) };
    let checked = world.python3_saml(xml, VENDOR_B, VENDOR_B_ACS, None);
    (run, checked)
}

#[test]
fn two_saml_platforms_node_saml_and_python3_saml_get_unlinkable_numbers_for_one_pupil() {
    let world = two_platform_world();
    let on_a = world.saml_platform_login("school-a", true, None);
    assert!(on_a["error"].is_null(), "{on_a}");
    let number_a = on_a["profile"]["nameID"].as_str().unwrap().to_owned();
    assert_eq!(world.last_login()["account_number"], number_a.as_str());

    let (run, checked) = vendor_b_login(&world, "school-a");
    assert_eq!(checked["valid"], true, "{run}\n{checked}");
    let number_b = checked["name_id"].as_str().unwrap().to_owned();
    assert_eq!(world.last_login()["account_number"], number_b.as_str());
    assert_ne!(number_a, number_b, "two vendors could join their data on the number");
    // Both are persistent NameIDs qualified by their own platform (SAML Core §8.3.7).
    assert!(run["xml"].as_str().unwrap().contains(&format!("SPNameQualifier=\"{VENDOR_B}\"")), "{run}");

    // The primary sector (here: the OIDC platform client, which names no sector) keeps the
    // number alice had before sectors existed.
    let primary = platform_sub(&world);
    assert_eq!(primary, number_before_issue_26(&world));
    assert!(primary != number_a && primary != number_b);

    // The DPO sees every number alice has, each with its sector.
    let lines = dpo_lookup(&world, None);
    assert_eq!(lines[0], primary);
    assert!(lines.contains(&format!("{number_a} (sector saml-platform)")), "{lines:?}");
    assert!(lines.contains(&format!("{number_b} (sector vendor-b)")), "{lines:?}");
    world.assert_no_personal_values(&[("vendor B's response", run["xml"].as_str().unwrap())]);
}

#[test]
fn a_platform_bound_to_a_school_never_gets_another_schools_login_whatever_it_asks() {
    let world = two_platform_world();
    // Vendor B is school-a's platform: its unsigned `tenant=school-b` is refused, not obeyed.
    let (run, _) = vendor_b_login(&world, "school-b");
    assert!(run["xml"].is_null(), "a response was made: {run}");
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("tenant_not_allowed"))
    );
    // Without a tenant in its request it goes straight to its own school.
    let (run, checked) = vendor_b_login(&world, "");
    assert_eq!(checked["valid"], true, "{run}\n{checked}");
    assert_eq!(checked["attributes"]["tenant"], json!(["school-a"]));
}

/// Two tenants on one samlify IdP entity id, both taking IdP-initiated logins: the verified
/// eppn's scope files each response, and a response whose scope names no school, or two, is
/// refused rather than filed under either.
#[test]
fn shared_issuer_unsolicited_responses_naming_no_school_or_two_are_refused() {
    use common::login::SamlIdpKind;
    use common::saml::ResponseFields;
    let world = World::start(Options {
        saml: Some(SamlIdpKind::Samlify),
        saml_unsolicited: true,
        saml_shared_tenant: true,
        provider: false,
        ..Options::default()
    });
    let eppn = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";
    let post = |scopes: &[&str]| {
        let mut fields = ResponseFields::for_flow(world.school(), None);
        fields.attributes.retain(|(name, _, _)| name != eppn);
        let values = scopes.iter().map(|scope| format!("pupil-9@{scope}")).collect();
        fields.attributes.push((eppn.into(), "eduPersonPrincipalName".into(), values));
        let xml = world.saml_sign(&fields.xml(), "both", "idp", None);
        let answer = world.post_acs(None, &xml);
        (answer.status, world.last_login())
    };
    let (status, audit) = post(&["school-t.example"]);
    assert_eq!((status, audit["tenant"].as_str()), (303, Some("school-t")), "{audit}");
    let (status, audit) = post(&["IDP.school-a.example"]);
    assert_eq!((status, audit["tenant"].as_str()), (303, Some("school-s")), "{audit}");
    let (status, audit) = post(&["school-x.example"]);
    assert_eq!((status, audit["reason"].as_str()), (403, Some("tenant_not_selected")), "{audit}");
    assert!(audit["tenant"].is_null(), "filed under a school: {audit}");
    let (status, audit) = post(&["school-t.example", "idp.school-a.example"]);
    assert_eq!((status, audit["reason"].as_str()), (403, Some("tenant_ambiguous")), "{audit}");
    world.assert_no_personal_values(&[]);
}
