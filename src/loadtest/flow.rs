//! One complete login as a virtual browser makes it, step by step, each step timed, and the
//! platform's token verified: the signature against nymgate's JWKS, and the account number
//! against the one expected for the person.

use std::time::{Duration, Instant};

use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::browser::{Browser, Reply};
use super::html;
use super::report::Step;
use crate::demo::idp::LOAD_TEST_PERSON;

/// How the platform receives logins.
// No Debug: it holds a client secret or test people's passwords.
#[derive(Clone)]
pub enum Output {
    /// `login.output = "assertion_header"`: the platform's page is nymgate's echo platform, whose
    /// answer shows the assertion header nymgate added.
    AssertionHeader { header: String },
    /// `login.output = "provider"`: the load test is the platform, an OIDC client of nymgate.
    Provider { client_id: String, client_secret: String, redirect_uri: String },
}

/// What every login of a run shares.
pub struct Target {
    /// `https://host:port`, no trailing slash.
    pub base: String,
    pub tenant: String,
    pub idp: Idp,
    pub output: Output,
    /// Proxied paths: the first is the page a login returns to; ordinary requests cycle
    /// through all (never empty: clap gives the default).
    pub paths: Vec<String>,
    pub requests_per_login: u32,
    pub keys: Vec<(String, DecodingKey, Algorithm)>,
}

/// Which IdP the logins go through.
// No Debug: it holds a client secret or test people's passwords.
#[derive(Clone)]
pub enum Idp {
    /// The load test's own (`demo::idp` in load-test mode): approves at once for the person
    /// named in a header, with a redirect (OIDC) or the HTTP-POST form (SAML) back to nymgate.
    BuiltIn,
    /// A real school IdP (a staging tenant's test IdP): its pages are followed as a browser
    /// would, its login form filled with person `n % people.len()`'s login and password, other
    /// forms (consent, the SAML POST binding) submitted as they are.
    External { people: Vec<(String, String)> },
}

/// The most pages a browser follows at an IdP before giving up.
const MAX_IDP_PAGES: usize = 12;

/// The account number a person must get.
pub trait Expectation: Send + Sync {
    /// `Err` with the error kind when `account` is not the one for `person`.
    fn check(&self, person: u64, account: &str) -> Result<(), &'static str>;
}

/// Why a login failed: the step and what went wrong (a short, fixed text: it is a report key).
pub type Failed = (Step, String);

/// A finished login's step times.
pub struct Timed {
    pub steps: Vec<(Step, Duration)>,
}

fn status_error(step: Step, reply: &Reply) -> Failed {
    (step, format!("unexpected status {}", reply.status.as_u16()))
}

fn request_failed(step: Step) -> impl Fn(super::browser::Failure) -> Failed {
    move |failure| (step, failure.kind().to_owned())
}

/// The absolute target of a redirect answering a request for `url`, or the step's error.
fn redirect(step: Step, reply: &Reply, url: &str) -> Result<String, Failed> {
    if !reply.status.is_redirection() {
        return Err(status_error(step, reply));
    }
    let location = reply.headers.get(http::header::LOCATION).and_then(|l| l.to_str().ok());
    let location = location.ok_or((step, "redirect without a usable Location".into()))?;
    Ok(html::resolve(url, location))
}

/// One login of `person`, then the run's ordinary requests.
pub async fn login(
    browser: &mut Browser,
    target: &Target,
    expectation: &dyn Expectation,
    person: u64,
) -> Result<Timed, Failed> {
    browser.clear_cookies();
    let mut steps = Vec::with_capacity(5 + target.requests_per_login as usize);
    let mut timed = |step: Step, started: Instant| steps.push((step, started.elapsed()));
    // 1. Start: nymgate sends the browser to the school's IdP.
    let pkce_verifier = crate::secret::random_hex::<32>();
    let nonce = crate::secret::random_hex::<16>();
    let start_url = match &target.output {
        Output::AssertionHeader { .. } => {
            format!("{}/nymgate/login/{}?return_to={}", target.base, target.tenant, encode(&target.paths[0]))
        }
        Output::Provider { client_id, redirect_uri, .. } => {
            let challenge = crate::mint::provider::pkce_s256(&pkce_verifier);
            format!(
                "{}/nymgate/authorize?response_type=code&scope=openid&client_id={}&redirect_uri={}&state=s{person}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256&tenant={}",
                target.base,
                encode(client_id),
                encode(redirect_uri),
                encode(&target.tenant)
            )
        }
    };
    let started = Instant::now();
    let reply = browser.get(&start_url, &[]).await.map_err(request_failed(Step::LoginStart))?;
    let idp_url = redirect(Step::LoginStart, &reply, &start_url)?;
    timed(Step::LoginStart, started);

    // 2. The IdP, until it sends the browser back to nymgate.
    let started = Instant::now();
    let back = match &target.idp {
        Idp::BuiltIn => {
            let person = HeaderValue::from_str(&person.to_string()).expect("digits");
            let named = [(HeaderName::from_static(LOAD_TEST_PERSON), person)];
            through_idp(browser, &target.base, idp_url, &named, None).await?
        }
        Idp::External { people } => {
            let (login, password) = &people[(person % people.len() as u64) as usize];
            through_idp(browser, &target.base, idp_url, &[], Some((login, password))).await?
        }
    };
    timed(Step::Idp, started);

    // 3. Back at nymgate: the callback or the ACS verifies the school's answer.
    let started = Instant::now();
    let (back_url, reply) = match &back {
        Back::Get(url) => (url, browser.get(url, &[]).await),
        Back::Post { action, form } => (action, browser.post_form(action, &[], form.fields()).await),
    };
    let reply = reply.map_err(request_failed(Step::Callback))?;
    let next = redirect(Step::Callback, &reply, back_url)?;
    timed(Step::Callback, started);

    // 4. The platform receives the login.
    let started = Instant::now();
    let token = match &target.output {
        Output::AssertionHeader { header } => {
            let reply = browser.get(&next, &[]).await.map_err(request_failed(Step::Platform))?;
            if reply.status != StatusCode::OK {
                return Err(status_error(Step::Platform, &reply));
            }
            echoed_header(&reply.body, header)
                .ok_or((Step::Platform, "no assertion header in the echo platform's answer".into()))?
        }
        Output::Provider { client_id, client_secret, redirect_uri } => {
            let code =
                query_value(&next, "code").ok_or((Step::Platform, "no code in the redirect".into()))?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                encode(client_id),
                encode(client_secret)
            ));
            let authorization = HeaderValue::from_str(&format!("Basic {basic}")).expect("base64");
            let reply = browser
                .post_form(
                    &format!("{}/nymgate/token", target.base),
                    &[(http::header::AUTHORIZATION, authorization)],
                    [
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", redirect_uri),
                        ("code_verifier", &pkce_verifier),
                    ],
                )
                .await
                .map_err(request_failed(Step::Platform))?;
            if reply.status != StatusCode::OK {
                return Err(status_error(Step::Platform, &reply));
            }
            serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["id_token"].as_str().map(str::to_owned))
                .ok_or((Step::Platform, "no id_token in the token answer".into()))?
        }
    };
    let claims = verify(target, &token).map_err(|kind| (Step::Platform, kind.to_owned()))?;
    if let Output::Provider { client_id, .. } = &target.output {
        let audience_ok = claims["aud"] == *client_id
            || claims["aud"].as_array().is_some_and(|a| a.contains(&Value::from(client_id.as_str())));
        if !audience_ok || claims["nonce"] != nonce.as_str() {
            return Err((Step::Platform, "token for another client or nonce".into()));
        }
    }
    if claims["tenant"] != target.tenant.as_str() {
        return Err((Step::Platform, "token for another tenant".into()));
    }
    let account = claims["sub"].as_str().ok_or((Step::Platform, "token without sub".into()))?;
    expectation.check(person, account).map_err(|kind| (Step::Platform, kind.to_owned()))?;
    timed(Step::Platform, started);

    // 5. Ordinary traffic of the signed-in person.
    for path in target.paths.iter().cycle().take(target.requests_per_login as usize) {
        let started = Instant::now();
        let reply = browser
            .get(&format!("{}{path}", target.base), &[])
            .await
            .map_err(request_failed(Step::Request))?;
        if !reply.status.is_success() {
            return Err(status_error(Step::Request, &reply));
        }
        timed(Step::Request, started);
    }
    Ok(Timed { steps })
}

/// How the IdP sends the browser back to nymgate.
enum Back {
    Get(String),
    Post { action: String, form: html::Form },
}

/// Follows the IdP's pages as a browser would: redirects, its login form (filled in with
/// `login` when it asks for a password), other forms (consent, the SAML POST binding) as they
/// are, until a redirect or a form leads back to nymgate (`base`). `headers` go with every
/// request to the IdP.
async fn through_idp(
    browser: &mut Browser,
    base: &str,
    first: String,
    headers: &[(HeaderName, HeaderValue)],
    login: Option<(&str, &str)>,
) -> Result<Back, Failed> {
    let back_at_nymgate = |url: &str| url == base || url.starts_with(&format!("{base}/"));
    let mut next = (first, None::<html::Form>);
    for _ in 0..MAX_IDP_PAGES {
        let (url, posted) = next;
        let reply = match &posted {
            None => browser.get(&url, headers).await,
            Some(form) => browser.post_form(&url, headers, form.fields()).await,
        }
        .map_err(request_failed(Step::Idp))?;
        if reply.status.is_redirection() {
            let target = redirect(Step::Idp, &reply, &url)?;
            if back_at_nymgate(&target) {
                return Ok(Back::Get(target));
            }
            next = (target, None);
            continue;
        }
        if reply.status != StatusCode::OK {
            return Err(status_error(Step::Idp, &reply));
        }
        let page = String::from_utf8_lossy(&reply.body);
        let mut form = html::first_form(&page).ok_or((Step::Idp, "an IdP page without a form".into()))?;
        let action = html::resolve(&url, &form.action);
        if let (true, Some((login, password))) = (form.has_password(), login) {
            form.fill_login(login, password);
        }
        if back_at_nymgate(&action) {
            return Ok(Back::Post { action, form });
        }
        next = if form.method == "post" {
            (action, Some(form))
        } else {
            let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.fields())
                .finish();
            (format!("{}?{query}", action.split('?').next().unwrap_or(&action)), None)
        };
    }
    Err((Step::Idp, format!("still at the IdP after {MAX_IDP_PAGES} pages")))
}

/// The token's signature with one of nymgate's keys, its expiry, and its claims.
fn verify(target: &Target, token: &str) -> Result<Value, &'static str> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "token is not a JWS")?;
    let (_, key, algorithm) = target
        .keys
        .iter()
        .find(|(kid, _, _)| header.kid.as_deref() == Some(kid.as_str()))
        .ok_or("token signed with an unknown key")?;
    if header.alg != *algorithm {
        return Err("token algorithm is not its key's");
    }
    let mut validation = Validation::new(*algorithm);
    validation.validate_aud = false; // checked by the caller where it is known
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Value>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| "token signature or expiry invalid")
}

/// nymgate's signing keys, from its JWKS.
pub fn decoding_keys(jwks: &[u8]) -> Result<Vec<(String, DecodingKey, Algorithm)>, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(jwks).map_err(|e| format!("nymgate's JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().ok_or("a JWKS key without kid")?;
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => return Err("nymgate's JWKS holds a key type it never uses".into()),
        };
        keys.push((kid, DecodingKey::from_jwk(jwk).map_err(|e| format!("nymgate's JWKS: {e}"))?, algorithm));
    }
    if keys.is_empty() {
        return Err("nymgate's JWKS is empty".into());
    }
    Ok(keys)
}

/// The value of header `name` in the echo platform's JSON answer.
fn echoed_header(body: &[u8], name: &str) -> Option<String> {
    let echo: crate::echo::Echo = serde_json::from_slice(body).ok()?;
    echo.headers.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    crate::login::form(query).remove(name)
}

fn encode(value: &str) -> String {
    openidconnect::url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(query_value("https://p/cb?state=1&code=a%2Bb", "code").unwrap(), "a+b");
        assert!(query_value("https://p/cb", "code").is_none());
    }
}
