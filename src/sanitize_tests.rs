//! Header hygiene and the query policy.

use super::*;
use crate::config::ClientIpConfig;

/// A request head with these fields (shared with sanitize_admit.rs's tests).
pub(super) fn parts(raw: &[(&str, &str)], uri: &str) -> Parts {
    let mut b = http::Request::builder().uri(uri);
    for (k, v) in raw {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn hop_by_hop_and_connection_named_headers_go() {
    let mut p = parts(
        &[
            ("connection", "x-secret, keep-alive"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-kept", "3"),
        ],
        "/",
    );
    strip_hop_by_hop(&mut p.headers);
    assert_eq!(p.headers.len(), 1, "{:?}", p.headers);
    assert!(p.headers.contains_key("x-kept"));
}

fn reducer() -> IpReducer {
    IpReducer::new(&ClientIpConfig::default(), None)
}

#[test]
fn request_rewrite_removes_client_claims_and_sets_nymgate_headers() {
    let policy = SanitizePolicy::new(&PrivacyConfig {
        drop_headers: vec!["x-device".into()],
        pseudonymize_headers: vec!["x-client-hash".into()],
        drop_query_params: vec!["email".into()],
        pseudonymize_query_params: vec!["device".into()],
        ..Default::default()
    });
    let mut p = parts(
        &[
            ("host", "learn.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-nymgate-assertion", "forged"),
            ("x-forwarded-email", "alice@school.se"),
            ("x-device", "d"),
            ("x-client-hash", "abc"),
            ("x-request-id", "client-chosen"),
        ],
        "/p?a=1&email=alice%40school.se&device=xyz&b=2",
    );
    let client = ReducedIp::Network("203.0.113.0".parse().unwrap());
    let request_id = HeaderValue::from_static("r1");
    let facts =
        ForwardingFacts { client: &client, host: "learn.example", request_id: &request_id, upgrade: None };
    let r = reducer();
    sanitize_request(&mut p, &policy, &r, facts);
    let h = &p.headers;
    assert_eq!(h["x-forwarded-for"], "203.0.113.0");
    assert_eq!(h["forwarded"], "for=203.0.113.0;proto=https;host=learn.example");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-request-id"], "r1");
    for gone in ["x-real-ip", "x-nymgate-assertion", "x-forwarded-email", "x-device"] {
        assert!(!h.contains_key(gone), "{gone}");
    }
    assert_ne!(h["x-client-hash"], "abc");
    let q = p.uri.query().unwrap();
    assert!(q.starts_with("a=1&device=_") && q.ends_with("&b=2") && !q.contains("alice"), "{q}");
    assert!(!format!("{h:?}").contains("6.6.6.6"));
}

#[test]
fn query_names_compare_decoded() {
    let policy = SanitizePolicy::new(&PrivacyConfig {
        drop_query_params: vec!["e mail".into()],
        ..Default::default()
    });
    assert_eq!(sanitize_query("e+mail=x&e%20mail=y&z=1", &policy, &reducer()), "z=1");
}

#[test]
fn percent_decoding_edges() {
    assert_eq!(percent_decode("a%41%4"), b"aA%4");
    assert_eq!(percent_decode("%"), b"%");
    assert_eq!(percent_decode("%zz+"), b"%zz ");
}

/// Renders a header name as a client may: any letter case, `_` for any `-`.
fn spell_header(name: &str, hows: &[bool]) -> String {
    name.chars()
        .zip(hows.iter().cycle())
        .enumerate()
        .map(|(i, (c, upper))| match c {
            '-' if hows.get(i).copied().unwrap_or(false) => '_',
            c if *upper => c.to_ascii_uppercase(),
            c => c,
        })
        .collect()
}

fn sanitized(headers: &[(&str, &str)], uri: &str, policy: &SanitizePolicy) -> Parts {
    let mut p = parts(headers, uri);
    let client = ReducedIp::Dropped;
    let request_id = HeaderValue::from_static("r1");
    let facts =
        ForwardingFacts { client: &client, host: "learn.example", request_id: &request_id, upgrade: None };
    sanitize_request(&mut p, policy, &reducer(), facts);
    p
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Every header of an identity family or a routing override goes, in any letter case and
    /// with `_` for `-`, whatever follows the family's prefix.
    #[test]
    fn identity_header_families_go_in_every_spelling(
        family in proptest::sample::select(IDENTITY_PREFIXES.to_vec()),
        suffix in "[a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,2}",
        hows in proptest::collection::vec(proptest::bool::ANY, 1..40),
    ) {
        let name = spell_header(&format!("{family}{suffix}"), &hows);
        let policy = SanitizePolicy::new(&PrivacyConfig::default());
        let p = sanitized(&[(&name, "alice@school.example")], "/", &policy);
        proptest::prop_assert!(!format!("{:?}", p.headers).contains("alice"), "{}", name);
    }

    #[test]
    fn routing_override_headers_go_in_every_spelling(
        name in proptest::sample::select(ROUTING_OVERRIDES.to_vec()),
        hows in proptest::collection::vec(proptest::bool::ANY, 1..40),
    ) {
        let name = spell_header(name, &hows);
        let policy = SanitizePolicy::new(&PrivacyConfig::default());
        let p = sanitized(&[(&name, "/nymgate/callback")], "/", &policy);
        proptest::prop_assert!(!format!("{:?}", p.headers).contains("/nymgate"), "{}", name);
    }

    /// A configured drop or pseudonym rule takes every spelling a framework reads as its name.
    #[test]
    fn query_rules_match_every_spelling(
        upper in proptest::collection::vec(proptest::bool::ANY, 5),
        encoded in proptest::collection::vec(proptest::bool::ANY, 5),
        form in 0u8..6,
        separator in proptest::sample::select(vec!['&', ';']),
    ) {
        let mut name: String = "email"
            .chars()
            .zip(upper.iter().zip(&encoded))
            .map(|(c, (u, e))| {
                let c = if *u { c.to_ascii_uppercase() } else { c };
                if *e { format!("%{:02X}", c as u32) } else { c.to_string() }
            })
            .collect();
        name = match form {
            0 => name,
            1 => format!("{name}[]"),
            2 => format!("{name}[3]"),
            3 => format!("user[{name}]"),
            4 => format!("{name}%5B%5D"),
            _ => format!("+{name}"),
        };
        let policy = SanitizePolicy::new(&PrivacyConfig {
            drop_query_params: vec!["Email".into()],
            ..Default::default()
        });
        let query = format!("a=1{separator}{name}=alice%40school.se{separator}b=2");
        let kept = sanitize_query(&query, &policy, &reducer());
        proptest::prop_assert_eq!(kept, format!("a=1{separator}b=2"), "{}", query);
    }

    /// No spelling of a nymgate cookie name set by the platform reaches the browser.
    #[test]
    fn platform_cannot_set_nymgate_cookies(
        prefix in proptest::sample::select(vec!["__Host-", "__host-", "__HOST-", "__Secure-", ""]),
        name in proptest::sample::select(vec!["nymgate-session", "nymgate-flow-abc", "nymgate-school"]),
        hows in proptest::collection::vec(proptest::bool::ANY, 1..20),
        space in proptest::bool::ANY,
        nameless in proptest::bool::ANY,
    ) {
        let name = spell_header(name, &hows).replace('_', "-");
        let lead = match (space, nameless) { (false, false) => "", (true, false) => " ", (_, true) => "=" };
        let cookie = format!("{lead}{prefix}{name}=forged; Path=/; Secure");
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_str(&cookie).unwrap());
        headers.append(header::SET_COOKIE, HeaderValue::from_static("platform=1; Path=/"));
        proptest::prop_assert_eq!(sanitize_response(&mut headers, None), 1);
        let left: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        proptest::prop_assert_eq!(left, vec!["platform=1; Path=/"]);
    }
}

#[test]
fn named_identity_headers_of_common_proxies_go() {
    let policy = SanitizePolicy::new(&PrivacyConfig::default());
    for name in [
        "X-Auth-Request-Preferred-Username",
        "X-Auth-Request-Groups",
        "X_Forwarded_User",
        "X-MS-CLIENT-PRINCIPAL-NAME",
        "X-Amzn-Oidc-Data",
        "X-Goog-Authenticated-User-Email",
        "OIDC_CLAIM_email",
        "Shib-Identity-Provider",
        "X-SSL-Client-S-DN",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-HTTP-Method-Override",
        "X-Auth-Email",
        "X-WEBAUTH-USER",
        "Remote-Email",
        "X-Pomerium-Claim-Email",
        "X-Vouch-User",
        "X-Authentik-Email",
        "X-MS-TOKEN-AAD-ID-TOKEN",
        "X-Userinfo",
        "X-Consumer-Username",
        "X-JWT-Assertion",
        "X-UserId",
        "X-Username",
        "OIDC_userinfo_json",
        "SCRIPT_NAME",
        "X-Envoy-Original-Path",
    ] {
        assert!(policy.removes(&name.to_ascii_lowercase()), "{name}");
    }
    for kept in ["accept", "cookie", "user-agent", "x-requested-with", "content-type"] {
        assert!(!policy.removes(kept), "{kept}");
    }
}

#[test]
fn pseudonymized_headers_match_in_canonical_form() {
    let policy = SanitizePolicy::new(&PrivacyConfig {
        pseudonymize_headers: vec!["x-device-id".into()],
        ..Default::default()
    });
    let p = sanitized(&[("x_device_id", "d-123"), ("x-device-id", "d-123")], "/", &policy);
    let values: Vec<_> =
        p.headers.iter().filter(|(_, v)| v.as_bytes().starts_with(b"_")).map(|(_, v)| v).collect();
    assert_eq!(values.len(), 2, "{:?}", p.headers);
    assert_eq!(values[0], values[1], "one pseudonym for both spellings");
    assert!(!format!("{:?}", p.headers).contains("d-123"));
}
