//! issue 26, "One key cache per IdP": two schools (tenants `school-a` and `school-b`) sign in at
//! one real IdP (node oidc-provider), each with its own client there. nymgate keeps one copy of
//! the IdP's keys for both, refetches it on `jwks_refresh`, and fetches at once on a new `kid`.

use std::time::Duration;

use super::common::login::{Options, World};
use serde_json::json;

const TENANTS: [&str; 2] = ["school-a", "school-b"];

fn login(world: &World, tenant: &str) -> serde_json::Value {
    world.browse(&world.url(&format!("/nymgate/login/{tenant}?return_to=/echo")), None)
}

fn assert_signed_in(world: &World, tenant: &str) {
    let page = login(world, tenant);
    assert_eq!(page["status"], 200, "{tenant}: {page}");
    let audit = world.last_login();
    assert_eq!((audit["outcome"].as_str(), audit["tenant"].as_str()), (Some("ok"), Some(tenant)), "{audit}");
}

/// How many times the IdP has served its JWKS.
fn jwks_fetches(world: &World) -> u64 {
    world.idp.hook(world, "jwks_fetches", json!({}))["count"].as_u64().unwrap()
}

/// The IdP rotates its signing key and drops the old one from its JWKS. Within `jwks_refresh`
/// (2 s here) a token still signed with the removed key is refused at both schools, although
/// neither saw a token with the new key in between (the schedule, not a refetch, drops it); the
/// refusal does not count toward blocking (one counted failure would block here). Tokens under
/// the new key are accepted at both, and after a second rotation at once.
#[test]
fn jwks_rotation_with_a_removed_key_on_two_tenants_of_one_idp() {
    let refresh = r#"jwks_refresh = "2s""#;
    let world = World::start(Options {
        provider: false,
        shared_idp: true,
        oidc_a: refresh,
        oidc_b: refresh,
        blocking: "max_failures = 1",
        ..Options::default()
    });
    for tenant in TENANTS {
        assert_signed_in(&world, tenant);
    }

    let rotated = world.idp.hook(&world, "rotate", json!({"drop_old": true}));
    assert!(rotated["kid"].is_string(), "{rotated}");
    std::thread::sleep(Duration::from_millis(2_100));
    for tenant in TENANTS {
        world.idp.hook(&world, "tamper", json!({"mode": "retired_key"}));
        let page = login(&world, tenant);
        assert_eq!(page["status"], 400, "{tenant}: the removed key was not refused: {page}");
        let audit = world.last_login();
        assert_eq!(
            (audit["reason"].as_str(), audit["tenant"].as_str()),
            (Some("unknown_kid"), Some(tenant)),
            "{audit}"
        );
    }
    // Not blocked: a rotation's refusals are not the pupil's doing.
    for tenant in TENANTS {
        assert_signed_in(&world, tenant);
    }

    // Once the refetch bound (jwks_refetch_interval, 1 s in the test config) has passed since
    // the last fetch, a new kid is fetched by the first login that meets it.
    std::thread::sleep(Duration::from_millis(1_100));
    world.idp.hook(&world, "rotate", json!({"drop_old": true}));
    for tenant in TENANTS {
        assert_signed_in(&world, tenant);
    }
    assert!(world.metrics().contains("nymgate_login_blocks_total 0"), "{}", world.metrics());
    world.assert_no_personal_values(&[]);
}

/// With a long `jwks_refresh`, only the shared cache explains what the IdP sees: both schools'
/// logins cost it one JWKS request, and after a rotation the first school to meet the new kid
/// fetches it at once (not an hour later) and the other school uses that fetch.
#[test]
fn two_tenants_of_one_idp_fetch_its_jwks_once_and_a_new_kid_at_once() {
    let refresh = r#"jwks_refresh = "1h""#;
    let world = World::start(Options {
        provider: false,
        shared_idp: true,
        oidc_a: refresh,
        oidc_b: refresh,
        ..Options::default()
    });
    for tenant in TENANTS {
        assert_signed_in(&world, tenant);
    }
    assert_eq!(jwks_fetches(&world), 1, "one JWKS request for both schools");

    std::thread::sleep(Duration::from_millis(1_100));
    world.idp.hook(&world, "rotate", json!({}));
    assert_signed_in(&world, "school-b");
    assert_eq!(jwks_fetches(&world), 2, "the new kid was fetched at once");
    assert_signed_in(&world, "school-a");
    assert_eq!(jwks_fetches(&world), 2, "and school-a found it in the shared cache");
}
