//! The demo's school IdP (`nymgate demo` only, never `serve`): a small OpenID Provider on
//! loopback with a real login form and made-up people, so that a first run shows a whole login
//! with nothing else installed.
//!
//! It implements what nymgate's relying party uses (OpenID Connect Core 1.0): discovery, the
//! authorization code flow with PKCE S256 (RFC 7636), `client_secret_basic`, ES256 ID tokens,
//! userinfo, and the `iss` authorization response parameter (RFC 9207). One provider serves
//! each demo school under its own issuer path; a SAML school gets the SAML 2.0 face of
//! saml_idp.rs at `/{school}/saml/sso` instead, behind the same sign-in form. It is not an IdP
//! to deploy: the people are in
//! code, the password is `demo`, and nothing is kept but pending codes. The pages it shows are
//! in a room of their own, idp_pages.rs (issue 30).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::saml_idp::SamlIdp;
use super::{School, User, PASSWORD, USERS};
use crate::clock::unix_now;
use crate::mint::{Algorithm, SigningKey};

#[path = "idp_pages.rs"]
mod pages;
use pages::{saml_answer, saml_sign_in, saml_sign_in_page, sign_in_page, WRONG_PASSWORD};

/// How long a code may wait for its redemption.
const CODE_LIFETIME: u64 = 60;
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A person as the IdP knows them: a demo person, or a load test's made-up one.
#[derive(Clone)]
pub struct Person {
    pub subject: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub personnummer: String,
    /// As the IdP names it: `Student` or `Teacher`.
    pub role: &'static str,
    pub school_code: String,
}

impl From<&User> for Person {
    fn from(user: &User) -> Person {
        Person {
            subject: user.subject.into(),
            given_name: user.given_name.into(),
            family_name: user.family_name.into(),
            email: user.email.into(),
            personnummer: user.personnummer.into(),
            role: user.role,
            school_code: user.school_code.into(),
        }
    }
}

/// The IdP subject of load-test person `n` (what its account number is derived from).
pub fn load_test_subject(n: u64) -> String {
    format!("loadtest-{n}")
}

impl Person {
    /// Load-test person `n` of `school`: made-up values of every kind a school sends, so that
    /// nymgate does its whole work for each login.
    pub fn load_test(school: &School, n: u64) -> Person {
        Person {
            subject: load_test_subject(n),
            // Never a substring of a tenant id or a role: nymgate's guard refuses a login whose
            // personal values appear in what the platform would receive.
            given_name: "Alva".into(),
            family_name: format!("Nyberg{n}"),
            email: format!("person{n}@loadtest.example"),
            personnummer: format!("19900101-{:04}", n % 10_000),
            role: if n % 20 == 0 { "Teacher" } else { "Student" },
            school_code: school.code.into(),
        }
    }
}

/// Who signs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Directory {
    /// The demo people, through the sign-in form.
    Demo,
    /// `nymgate loadtest`'s built-in IdP: no form; the login is approved at once for the person
    /// numbered in the `x-loadtest-person` request header, so the IdP costs next to nothing.
    LoadTest,
}

/// The header a load test's virtual browser names its person in (built-in IdP only).
pub const LOAD_TEST_PERSON: &str = "x-loadtest-person";

/// What a code was issued for.
struct Grant {
    school: &'static str,
    user: Person,
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    expires: u64,
}

pub struct DemoIdp {
    /// `https://localhost:{port}`; a school's issuer is `{base}/{school id}`.
    base: String,
    schools: &'static [School],
    directory: Directory,
    key: SigningKey,
    /// OIDC school id → (client id, client secret, the one registered redirect URI).
    clients: HashMap<&'static str, (String, String, String)>,
    /// SAML school id → its SAML face.
    saml: HashMap<&'static str, SamlIdp>,
    codes: Mutex<HashMap<String, Grant>>,
    /// access token → person, for userinfo.
    tokens: Mutex<HashMap<String, Person>>,
}

type Answer = Response<Full<Bytes>>;

impl DemoIdp {
    /// `secrets` gives each OIDC school's client secret; `redirect_uri` is nymgate's callback;
    /// `saml` has the SAML face of each SAML school.
    pub fn new(
        base: &str,
        schools: &'static [School],
        directory: Directory,
        secrets: &HashMap<&'static str, String>,
        redirect_uri: &str,
        saml: HashMap<&'static str, SamlIdp>,
    ) -> DemoIdp {
        let clients = schools
            .iter()
            .filter(|s| !s.saml)
            .map(|s| (s.id, (client_id(s), secrets[s.id].clone(), redirect_uri.to_owned())))
            .collect();
        DemoIdp {
            base: base.trim_end_matches('/').to_owned(),
            schools,
            directory,
            key: SigningKey::generate(Algorithm::ES256).0,
            clients,
            saml,
            codes: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// Signs ID tokens with `key` instead of a fresh one (a load test's IdP keeps its key across
    /// runs, so nymgate's cached JWKS stays right).
    pub fn with_signing_key(mut self, key: SigningKey) -> DemoIdp {
        self.key = key;
        self
    }

    /// The OIDC issuer, or for a SAML school the IdP's entity ID.
    pub fn issuer(&self, school: &School) -> String {
        if school.saml {
            saml_entity_id(&self.base, school)
        } else {
            format!("{}/{}", self.base, school.id)
        }
    }

    /// One request, routed by `/{school}/{endpoint}`.
    pub async fn handle(&self, request: Request<Incoming>) -> Answer {
        let path = request.uri().path().to_owned();
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let (school_id, endpoint) = (segments.next().unwrap_or(""), segments.next().unwrap_or(""));
        let Some(school) = self.schools.iter().find(|s| s.id == school_id) else {
            return text(StatusCode::NOT_FOUND, "no such school\n");
        };
        let params = crate::login::form(request.uri().query().unwrap_or(""));
        let saml = self.saml.get(school.id);
        let sign_in = if saml.is_some() { "saml/sso" } else { "authorize" };
        // The load test's IdP: the sign-in is approved at once for the person its browser names.
        if self.directory == Directory::LoadTest && request.method() == Method::GET && endpoint == sign_in {
            let Some(person) = load_test_person(school, request.headers()) else {
                return text(StatusCode::BAD_REQUEST, "no x-loadtest-person\n");
            };
            return match saml {
                Some(saml) => saml_answer(saml, school, &params, &person),
                None => self.approve(school, &params, person),
            };
        }
        if let Some(saml) = saml {
            return match (request.method().clone(), endpoint) {
                (Method::GET, "saml/sso") => saml_sign_in_page(saml, school, &params, None),
                (Method::POST, "saml/sso") => match read_form(request).await {
                    Some(form) => saml_sign_in(saml, school, &form),
                    None => text(StatusCode::BAD_REQUEST, "unreadable form\n"),
                },
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            };
        }
        match (request.method().clone(), endpoint) {
            (Method::GET, ".well-known/openid-configuration") => self.discovery(school),
            (Method::GET, "jwks") => json_answer(StatusCode::OK, &json!({"keys": [self.key.jwk()]})),
            (Method::GET, "authorize") => self.login_form(school, &params, None),
            (Method::POST, "authorize") => match read_form(request).await {
                Some(form) => self.sign_in(school, &form),
                None => text(StatusCode::BAD_REQUEST, "unreadable form\n"),
            },
            (Method::POST, "token") => {
                let authorization = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match read_form(request).await {
                    Some(form) => self.token(school, authorization.as_deref(), &form),
                    None => oauth_error("invalid_request"),
                }
            }
            (Method::GET, "userinfo") => self.userinfo(request.headers()),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn discovery(&self, school: &School) -> Answer {
        let issuer = self.issuer(school);
        json_answer(
            StatusCode::OK,
            &json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "userinfo_endpoint": format!("{issuer}/userinfo"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    /// The authorization request is checked before the form is shown: an unknown client or an
    /// unregistered redirect URI gets an error page, never a redirect (RFC 6749 §4.1.2.1).
    fn check_request(&self, school: &School, params: &HashMap<String, String>) -> Result<(), &'static str> {
        let (client_id, _, redirect_uri) = &self.clients[school.id];
        if params.get("client_id") != Some(client_id) {
            return Err("unknown client_id");
        }
        if params.get("redirect_uri") != Some(redirect_uri) {
            return Err("redirect_uri is not registered");
        }
        if params.get("response_type").map(String::as_str) != Some("code") {
            return Err("only response_type=code");
        }
        if params.get("code_challenge_method").map(String::as_str) != Some("S256")
            || params.get("code_challenge").is_none_or(|c| c.len() != 43)
        {
            return Err("PKCE with S256 is required");
        }
        if !params.get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
            return Err("scope must include openid");
        }
        Ok(())
    }

    /// The school's sign-in page. The authorization request rides along in hidden fields.
    fn login_form(&self, school: &School, params: &HashMap<String, String>, error: Option<&str>) -> Answer {
        if let Err(problem) = self.check_request(school, params) {
            return text(StatusCode::BAD_REQUEST, &format!("bad authorization request: {problem}\n"));
        }
        let names = [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ];
        sign_in_page(school, params, &names, "authorize", error)
    }

    /// The form's answer: a known person of this school with the demo password gets a code.
    /// The request is checked by `approve`, or by `login_form` when the password was wrong.
    fn sign_in(&self, school: &School, form: &HashMap<String, String>) -> Answer {
        let Some(user) = authenticate(school, form) else {
            return self.login_form(school, form, Some(WRONG_PASSWORD));
        };
        self.approve(school, form, user.into())
    }

    /// A code for `user`, sent back to the client once the request checks out.
    fn approve(&self, school: &School, form: &HashMap<String, String>, user: Person) -> Answer {
        if let Err(problem) = self.check_request(school, form) {
            return text(StatusCode::BAD_REQUEST, &format!("bad authorization request: {problem}\n"));
        }
        let code = crate::secret::random_hex::<16>();
        let grant = Grant {
            school: school.id,
            user,
            client_id: form["client_id"].clone(),
            redirect_uri: form["redirect_uri"].clone(),
            nonce: form.get("nonce").cloned(),
            code_challenge: form["code_challenge"].clone(),
            expires: unix_now() + CODE_LIFETIME,
        };
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, g| g.expires > unix_now());
        codes.insert(code.clone(), grant);
        let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", form.get("state").map(String::as_str).unwrap_or(""))
            .append_pair("iss", &self.issuer(school))
            .finish();
        let location = format!("{}?{query}", form["redirect_uri"]);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SEE_OTHER;
        response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a URL"));
        response
    }

    /// Redeems a code once (RFC 6749 §4.1.3) with the client's secret and the PKCE verifier.
    fn token(&self, school: &School, authorization: Option<&str>, form: &HashMap<String, String>) -> Answer {
        let (client_id, secret, _) = &self.clients[school.id];
        let authenticated = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|pair| {
                let (id, given) = pair.split_once(':')?;
                let decode = |s: &str| {
                    openidconnect::url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                Some((decode(id)?, decode(given)?))
            })
            .is_some_and(|(id, given)| id == *client_id && crate::secret::ct_eq_str(&given, secret));
        if !authenticated {
            return json_answer(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_client"}));
        }
        let grant = form
            .get("code")
            .and_then(|code| self.codes.lock().unwrap_or_else(|e| e.into_inner()).remove(code));
        let Some(grant) = grant.filter(|g| g.expires > unix_now() && g.school == school.id) else {
            return oauth_error("invalid_grant");
        };
        let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
        let challenge = crate::mint::provider::pkce_s256(verifier);
        if grant.client_id != *client_id
            || form.get("redirect_uri") != Some(&grant.redirect_uri)
            || !crate::secret::ct_eq_str(&challenge, &grant.code_challenge)
        {
            return oauth_error("invalid_grant");
        }
        let now = unix_now();
        let mut claims = person_claims(&grant.user);
        claims.insert("iss".into(), json!(self.issuer(school)));
        claims.insert("aud".into(), json!(client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        if let Some(nonce) = grant.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        let access_token = crate::secret::random_hex::<24>();
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(access_token.clone(), grant.user);
        json_answer(
            StatusCode::OK,
            &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": self.key.sign(&claims)}),
        )
    }

    fn userinfo(&self, headers: &http::HeaderMap) -> Answer {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let found = token.and_then(|t| self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(t).cloned());
        match found {
            Some(user) => json_answer(StatusCode::OK, &Value::Object(person_claims(&user))),
            None => json_answer(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"})),
        }
    }
}

pub fn client_id(school: &School) -> String {
    format!("nymgate-{}", school.id)
}

/// A SAML school's IdP entity ID; its SSO endpoint is `{entity ID}/sso`.
pub fn saml_entity_id(base: &str, school: &School) -> String {
    format!("{}/{}/saml", base.trim_end_matches('/'), school.id)
}

/// A person of this school who gave the demo password.
fn authenticate(school: &School, form: &HashMap<String, String>) -> Option<&'static User> {
    let login = form.get("login").map(|l| l.trim().to_ascii_lowercase()).unwrap_or_default();
    let user = USERS.iter().find(|u| u.school == school.id && u.login == login);
    let password_ok =
        crate::secret::ct_eq_str(form.get("password").map(String::as_str).unwrap_or(""), PASSWORD);
    user.filter(|_| password_ok)
}

/// What the school knows about a person: everything nymgate must keep from the platform.
fn person_claims(user: &Person) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.subject));
    claims.insert("email".into(), json!(user.email));
    claims.insert("email_verified".into(), json!(true));
    claims.insert("name".into(), json!(format!("{} {}", user.given_name, user.family_name)));
    claims.insert("given_name".into(), json!(user.given_name));
    claims.insert("family_name".into(), json!(user.family_name));
    claims.insert("personal_identity_number".into(), json!(user.personnummer));
    claims.insert("roles".into(), json!([user.role]));
    claims.insert("school_code".into(), json!(user.school_code));
    claims
}

async fn read_form(request: Request<Incoming>) -> Option<HashMap<String, String>> {
    let bytes = Limited::new(request.into_body(), MAX_FORM_BYTES).collect().await.ok()?.to_bytes();
    Some(crate::login::form(std::str::from_utf8(&bytes).ok()?))
}

fn text(status: StatusCode, body: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(serde_json::to_vec(value).expect("JSON"))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(error: &str) -> Answer {
    json_answer(StatusCode::BAD_REQUEST, &json!({"error": error}))
}

/// Serves the IdP on `listener` until the process ends: over TLS, or plain HTTP when `tls` is
/// `None` (the load test's built-in IdP on loopback, where nymgate allows http issuers).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    idp: Arc<DemoIdp>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let (acceptor, idp) = (acceptor.clone(), idp.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let idp = idp.clone();
                async move { Ok::<_, std::convert::Infallible>(idp.handle(request).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let _ = match acceptor {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await
                }
                None => http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await,
            };
        });
    }
}

/// The load test's person for this request: `x-loadtest-person: N`.
fn load_test_person(school: &School, headers: &http::HeaderMap) -> Option<Person> {
    let n = headers.get(LOAD_TEST_PERSON)?.to_str().ok()?.parse().ok()?;
    Some(Person::load_test(school, n))
}
