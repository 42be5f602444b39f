//! SimpleSAMLphp (Debian `simplesamlphp`, installed by tests/run.sh) as a school's SAML IdP, on
//! PHP's built-in server on loopback, with the config in tests/peers/simplesamlphp and a work
//! folder per test (users, nymgate's SP description, the IdP's key, logs, sessions); and samlify
//! (tests/peers/saml_idp.mjs) signing the responses a test writes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::login::Peer;

pub struct SimpleSamlPhp {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The IdP's signing certificate (PEM), for nymgate's `certificate_files`.
    pub cert_pem: String,
    _process: Peer,
}

const WWW: &str = "/usr/share/simplesamlphp/www";

impl SimpleSamlPhp {
    /// `sp` describes nymgate's SP: `{"entity_id", "acs_url", "cert_b64"}`; `users` maps
    /// `login:password` to attributes.
    pub fn start(dir: &Path, sp: &Value, users: &Value) -> SimpleSamlPhp {
        assert!(
            Path::new(WWW).exists(),
            "SimpleSAMLphp is not installed: run tests/run.sh as root (Debian package simplesamlphp)"
        );
        for sub in ["cert", "log", "data", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (cert, key) = nymgate::certs::generate_saml_signing_cert("school-idp").unwrap();
        std::fs::write(dir.join("cert/idp.crt"), &cert).unwrap();
        std::fs::write(dir.join("cert/idp.key"), &key).unwrap();
        std::fs::write(dir.join("sp.json"), sp.to_string()).unwrap();
        std::fs::write(dir.join("users.json"), users.to_string()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base_url = format!("http://127.0.0.1:{port}");
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/simplesamlphp");
        let child = Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}"), "-t", WWW])
            .env("SIMPLESAMLPHP_CONFIG_DIR", &config_dir)
            .env("NYMGATE_SSP_DIR", dir)
            .env("NYMGATE_SSP_BASEURL", &base_url)
            .env("NYMGATE_SSP_SALT", nymgate::secret::random_hex::<16>())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log/php-server.log")).unwrap())
            .spawn()
            .expect("php runs (Debian php-cli)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        SimpleSamlPhp { addr, base_url, cert_pem: cert, _process: Peer(child) }
    }

    pub fn sso_url(&self) -> String {
        format!("{}/saml2/idp/SSOService.php", self.base_url)
    }

    /// The IdP's log, for failure messages.
    pub fn log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("log/simplesamlphp.log")).unwrap_or_default()
            + &std::fs::read_to_string(dir.join("log/php-server.log")).unwrap_or_default()
    }
}

/// A PEM certificate's DER as one base64 line (for SAML metadata).
pub fn pem_to_b64(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

// ---- the SAML school in a login world ------------------------------------------------------

use std::io::{BufRead, BufReader, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::login::{alice_sub, peers_dir, Options, SamlIdpKind, World, ALICE};

const METADATA_FILE: &str = "saml-idp-metadata.xml";

/// The samlify IdP's entity id (it needs no web server: the test posts what it signs).
pub const SAMLIFY_ENTITY: &str = "https://idp.school-s.example/saml";
const SAMLIFY_SSO: &str = "https://idp.school-s.example/sso";

/// The SAML school of a login world: tenant `school-s`.
pub struct SamlSchool {
    pub kind: SamlIdpKind,
    pub entity_id: String,
    pub sso_url: String,
    /// nymgate's SP entity id and ACS URL.
    pub sp_entity_id: String,
    pub acs_url: String,
    /// samlify's signing service (`POST /sign`).
    signer_url: Option<String>,
    pub ssp: Option<SimpleSamlPhp>,
    _signer: Option<Peer>,
}

impl SamlSchool {
    pub fn start(dir: &Path, kind: SamlIdpKind, nymgate_port: u16) -> SamlSchool {
        let sp_entity_id = format!("https://localhost:{nymgate_port}/nymgate/saml");
        let acs_url = format!("https://localhost:{nymgate_port}/nymgate/saml/acs");
        let (sp_cert, sp_key) = nymgate::certs::generate_saml_signing_cert(&sp_entity_id).unwrap();
        std::fs::write(dir.join("saml-sp.pem"), &sp_cert).unwrap();
        nymgate::certs::write(&dir.join("saml-sp-key.pem"), sp_key.as_bytes(), 0o600).unwrap();
        match kind {
            SamlIdpKind::Samlify | SamlIdpKind::Pysaml2 => {
                // The IdP's key, and an attacker's with the same subject DN and another key.
                let mut keys = serde_json::Map::new();
                for name in ["idp", "attacker", "federation"] {
                    let (cert, key) = nymgate::certs::generate_saml_signing_cert("school-s-idp").unwrap();
                    let (cert_file, key_file) =
                        (dir.join(format!("saml-{name}.pem")), dir.join(format!("saml-{name}-key.pem")));
                    std::fs::write(&cert_file, cert).unwrap();
                    std::fs::write(&key_file, key).unwrap();
                    keys.insert(name.into(), json!({"cert": cert_file, "key": key_file}));
                }
                let config = json!({
                    "entity_id": SAMLIFY_ENTITY,
                    "sp_entity_id": sp_entity_id,
                    "acs_url": acs_url,
                    "keys": keys,
                    "metadata_file": dir.join(METADATA_FILE),
                });
                std::fs::write(dir.join("saml-idp.json"), config.to_string()).unwrap();
                let mut signer = if kind == SamlIdpKind::Samlify {
                    let mut node = Command::new("node");
                    node.arg(peers_dir().join("saml_idp.mjs"));
                    node
                } else {
                    let python = peers_dir().join(".venv/bin/python");
                    assert!(
                        python.exists(),
                        "pysaml2 is not installed: run tests/run.sh (a venv in tests/peers/.venv from requirements.txt)"
                    );
                    let mut python = Command::new(python);
                    python.arg(peers_dir().join("saml_idp_pysaml2.py"));
                    python
                };
                let mut child = signer
                    .arg(dir.join("saml-idp.json"))
                    .stdout(Stdio::piped())
                    .stderr(std::fs::File::create(dir.join("saml-idp.log")).unwrap())
                    .spawn()
                    .expect("the signer runs");
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
                let ready: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| panic!("samlify did not start: {line:?}"));
                SamlSchool {
                    kind,
                    entity_id: SAMLIFY_ENTITY.into(),
                    sso_url: SAMLIFY_SSO.into(),
                    sp_entity_id,
                    acs_url,
                    signer_url: ready["url"].as_str().map(str::to_owned),
                    ssp: None,
                    _signer: Some(Peer(child)),
                }
            }
            SamlIdpKind::SimpleSamlPhp => {
                let description =
                    json!({"entity_id": sp_entity_id, "acs_url": acs_url, "cert_b64": pem_to_b64(&sp_cert)});
                let mut attributes = serde_json::Map::new();
                for (kind, value) in ALICE {
                    let name = match *kind {
                        "sub" => "uid",
                        "email" => "mail",
                        "name" => "displayName",
                        "given_name" => "givenName",
                        "family_name" => "sn",
                        "eppn" => "eduPersonPrincipalName",
                        "national_id" => "norEduPersonNIN",
                        other => other,
                    };
                    attributes.insert(name.into(), json!([value]));
                }
                attributes.insert("eduPersonAffiliation".into(), json!(["student"]));
                // SAML subject-id (the ladder's choice over the hashed persistent NameID).
                attributes.insert("subjectId".into(), json!([ssp_subject_id()]));
                let users = json!({ format!("{}:x", alice_sub()): attributes });
                let ssp = SimpleSamlPhp::start(&dir.join("ssp"), &description, &users);
                std::fs::write(dir.join("saml-idp.pem"), &ssp.cert_pem).unwrap();
                SamlSchool {
                    kind,
                    entity_id: format!("{}/saml2/idp/metadata.php", ssp.base_url),
                    sso_url: ssp.sso_url(),
                    sp_entity_id,
                    acs_url,
                    signer_url: None,
                    ssp: Some(ssp),
                    _signer: None,
                }
            }
        }
    }

    /// The config for nymgate's SP and the `school-s` tenant; writes the IdP's metadata first
    /// when the options ask for it.
    pub fn config(&self, dir: &Path, options: &Options) -> String {
        let source = match options.saml_metadata {
            None => format!("sso_url = \"{}\"\ncertificate_files = [\"saml-idp.pem\"]", self.sso_url),
            Some(mode) => {
                let cert = std::fs::read_to_string(dir.join("saml-idp.pem")).unwrap();
                let mut xml = self.metadata(&cert);
                if mode == "signed_url" {
                    xml = self.sign_root(&xml, "federation");
                }
                std::fs::write(dir.join(METADATA_FILE), &xml).unwrap();
                let url = format!("{}/metadata", self.signer_url.as_ref().unwrap());
                match mode {
                    "file" => format!("metadata_file = \"{METADATA_FILE}\""),
                    "url" => format!("metadata_url = \"{url}\""),
                    _ => format!("metadata_url = \"{url}\"\nmetadata_signing_certificate_files = [\"saml-federation.pem\"]"),
                }
            }
        };
        format!(
            r#"
[login.saml]
cert_file = "saml-sp.pem"
key_file = "saml-sp-key.pem"

[[tenants]]
id = "school-s"
name = "Skola S"
idp = "saml"
issuer = "{entity}"
email_domains = ["school-s.example"]
{max_failed}
{select}
[tenants.saml]
{source}
name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
required_signatures = "{required}"
allow_unsolicited = {unsolicited}
allow_weak_algorithms = {weak}
clock_skew = "60s"
[tenants.policy]
role_from = ["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"]
role_map = {{ "student" = "student", "faculty" = "teacher" }}
{shared}"#,
            entity = self.entity_id,
            required = options.saml_required,
            max_failed = options
                .saml_max_failed_logins
                .map(|n| format!("max_failed_logins = {n}"))
                .unwrap_or_default(),
            unsolicited = options.saml_unsolicited,
            weak = options.saml_weak,
            select = if options.saml_shared_tenant { select("idp.school-a.example") } else { String::new() },
            shared = if options.saml_shared_tenant {
                // A second school on the same IdP entity id (issue 26), told apart by the
                // verified eduPersonPrincipalName's scope.
                format!(
                    "\n[[tenants]]\nid = \"school-t\"\nname = \"Skola T\"\nidp = \"saml\"\nissuer = \"{entity}\"\n{select}\
                     [tenants.saml]\n{source}\nname_id_format = \"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\"\n\
                     allow_unsolicited = {unsolicited}\n[tenants.policy]\nrole_from = [\"urn:oid:1.3.6.1.4.1.5923.1.1.1.1\"]\n\
                     role_map = {{ \"student\" = \"student\" }}\n",
                    entity = self.entity_id,
                    select = select("school-t.example"),
                    unsolicited = options.saml_unsolicited,
                )
            } else {
                String::new()
            },
        )
    }
}

impl SamlSchool {
    /// The IdP's metadata as a federation aggregates it: an EntitiesDescriptor (with an ID, so
    /// it can be signed) holding the IdP's EntityDescriptor, valid for a day.
    pub fn metadata(&self, cert_pem: &str) -> String {
        format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_test-federation" Name="test-federation" validUntil="{until}"><md:EntityDescriptor entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor></md:EntitiesDescriptor>"#,
            until = instant(now() + 86_400),
            entity = self.entity_id,
            cert = pem_to_b64(cert_pem),
            sso = self.sso_url,
        )
    }

    /// samlify signs a document's root element with the named key.
    pub fn sign_root(&self, xml: &str, key: &str) -> String {
        let url = format!("{}/sign-root", self.signer_url.as_ref().expect("samlify"));
        let (status, body) = post_plain(&url, &json!({"xml": xml, "key": key}).to_string());
        assert_eq!(status, 200, "samlify could not sign: {body}");
        body
    }

    pub fn metadata_file(&self, dir: &Path) -> std::path::PathBuf {
        dir.join(METADATA_FILE)
    }
}

/// `[tenants.select]` on the eduPersonPrincipalName's scope.
fn select(scope: &str) -> String {
    format!("[tenants.select]\nattribute = \"urn:oid:1.3.6.1.4.1.5923.1.1.1.6\"\nvalues = [\"{scope}\"]\n")
}

/// Alice's SAML subject-id at SimpleSAMLphp: her IdP subject, scoped (so the privacy scan,
/// which looks for the subject, catches it anywhere).
pub fn ssp_subject_id() -> String {
    format!("{}@school-s.example", alice_sub())
}

/// A login nymgate started for this browser: its cookies, the RelayState (nymgate's state) and
/// the AuthnRequest's ID.
pub struct SamlFlow {
    pub jar: Value,
    pub relay_state: String,
    pub request_id: String,
}

/// nymgate's answer at the ACS.
#[derive(Debug)]
pub struct AcsAnswer {
    pub status: u16,
    pub location: String,
    pub set_cookie: Vec<String>,
    pub body: String,
}

impl AcsAnswer {
    pub fn session_cookie(&self) -> bool {
        self.set_cookie.iter().any(|c| c.starts_with("__Host-nymgate-session=") && !c.contains("Max-Age=0"))
    }
}

/// What the test's IdP puts in a response. `Default` is a correct answer to `request_id`.
#[derive(Clone)]
pub struct ResponseFields {
    pub response_id: String,
    pub assertion_id: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub recipient: String,
    pub audience: String,
    pub issue_instant: String,
    pub not_before: String,
    pub not_on_or_after: String,
    pub subject_not_on_or_after: String,
    pub status: String,
    pub name_id: String,
    pub name_id_format: String,
    /// (Name, FriendlyName, values); values are inserted as raw XML text.
    pub attributes: Vec<(String, String, Vec<String>)>,
}

/// A UTC xs:dateTime for Unix seconds.
pub fn instant(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> u64 {
    nymgate::clock::unix_now()
}

impl ResponseFields {
    /// Alice's login as a school IdP sends it: persistent NameID, her names and email, her
    /// affiliation, valid for five minutes.
    pub fn for_flow(school: &SamlSchool, flow: Option<&SamlFlow>) -> ResponseFields {
        let now = now();
        let value = |kind: &str| ALICE.iter().find(|(k, _)| *k == kind).unwrap().1.to_owned();
        let id = || format!("_{}", nymgate::secret::random_hex::<16>());
        ResponseFields {
            response_id: id(),
            assertion_id: id(),
            issuer: school.entity_id.clone(),
            destination: Some(school.acs_url.clone()),
            in_response_to: flow.map(|f| f.request_id.clone()),
            recipient: school.acs_url.clone(),
            audience: school.sp_entity_id.clone(),
            issue_instant: instant(now),
            not_before: instant(now - 5),
            not_on_or_after: instant(now + 300),
            subject_not_on_or_after: instant(now + 300),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            name_id: value("sub"),
            name_id_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into(),
            attributes: vec![
                ("urn:oid:0.9.2342.19200300.100.1.3".into(), "mail".into(), vec![value("email")]),
                ("urn:oid:2.16.840.1.113730.3.1.241".into(), "displayName".into(), vec![value("name")]),
                ("urn:oid:2.5.4.42".into(), "givenName".into(), vec![value("given_name")]),
                ("urn:oid:2.5.4.4".into(), "sn".into(), vec![value("family_name")]),
                (
                    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1".into(),
                    "eduPersonAffiliation".into(),
                    vec!["student".into()],
                ),
                (
                    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6".into(),
                    "eduPersonPrincipalName".into(),
                    vec![value("eppn")],
                ),
                (
                    "urn:oid:1.3.6.1.4.1.2428.90.1.5".into(),
                    "norEduPersonNIN".into(),
                    vec![value("national_id")],
                ),
            ],
        }
    }

    /// The unsigned Response, laid out as samlify and SimpleSAMLphp write theirs.
    pub fn xml(&self) -> String {
        let in_response_to =
            self.in_response_to.as_ref().map(|v| format!(r#" InResponseTo="{v}""#)).unwrap_or_default();
        let destination =
            self.destination.as_ref().map(|v| format!(r#" Destination="{v}""#)).unwrap_or_default();
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, friendly, values)| {
                let values: String = values
                    .iter()
                    .map(|v| format!(r#"<saml:AttributeValue xsi:type="xs:string">{v}</saml:AttributeValue>"#))
                    .collect();
                format!(r#"<saml:Attribute Name="{name}" FriendlyName="{friendly}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">{values}</saml:Attribute>"#)
            })
            .collect();
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{rid}" Version="2.0" IssueInstant="{now}"{destination}{in_response_to}><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status><saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="{aid}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer><saml:Subject><saml:NameID Format="{nif}">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{snoa}" Recipient="{recipient}"{in_response_to}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="{aid}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion></samlp:Response>"#,
            rid = self.response_id,
            aid = self.assertion_id,
            now = self.issue_instant,
            issuer = self.issuer,
            status = self.status,
            nif = self.name_id_format,
            name_id = self.name_id,
            snoa = self.subject_not_on_or_after,
            recipient = self.recipient,
            nb = self.not_before,
            noa = self.not_on_or_after,
            audience = self.audience,
        )
    }
}

/// A plain-HTTP POST on loopback (the samlify signer), answered with `Connection: close`.
fn post_plain(url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Node answers with chunked encoding unless told otherwise; undo it.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    (status, body)
}

impl World {
    pub fn school(&self) -> &SamlSchool {
        self.saml.as_ref().expect("a world with Options::saml")
    }

    /// A browser starts a login at nymgate for the SAML school and is sent to the IdP.
    pub fn saml_begin(&self) -> SamlFlow {
        let school = self.school();
        let result = self.browse(&self.url("/nymgate/login/school-s"), Some(&school.sso_url));
        let url = openidconnect::url::Url::parse(result["url"].as_str().unwrap()).unwrap();
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let request = STANDARD.decode(param("SAMLRequest").expect("a SAMLRequest")).unwrap();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&request[..]).read_to_string(&mut xml).unwrap();
        let id_start = xml.find(" ID=\"").unwrap() + 5;
        let request_id = xml[id_start..id_start + xml[id_start..].find('"').unwrap()].to_owned();
        SamlFlow { jar: result["jar"].clone(), relay_state: param("RelayState").unwrap(), request_id }
    }

    /// samlify signs `xml` with the named key ("idp" or "attacker"): "assertion", "response" or
    /// "both"; `algorithm` overrides RSA-SHA256.
    pub fn saml_sign(&self, xml: &str, sign: &str, key: &str, algorithm: Option<&str>) -> String {
        let url = format!("{}/sign", self.school().signer_url.as_ref().expect("samlify"));
        let request = json!({"xml": xml, "sign": sign, "key": key, "algorithm": algorithm});
        let (status, body) = post_plain(&url, &request.to_string());
        assert_eq!(status, 200, "samlify could not sign: {body}");
        body
    }

    /// The AuthnRequest of `url` (nymgate sending the browser to the school, HTTP-Redirect) as
    /// the pysaml2 school reads it (tests/peers/saml_idp_pysaml2.py `/authn-request`).
    pub fn saml_read_request(&self, url: &str) -> Value {
        let school = self.school();
        assert_eq!(school.kind, SamlIdpKind::Pysaml2, "only the pysaml2 school reads requests");
        let signer = school.signer_url.as_ref().expect("pysaml2");
        let (status, body) = post_plain(&format!("{signer}/authn-request"), &json!({"url": url}).to_string());
        assert_eq!(status, 200, "pysaml2 could not read the request: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The browser posts a response to nymgate's ACS (the HTTP-POST binding's form).
    pub fn post_acs(&self, flow: Option<&SamlFlow>, xml: &str) -> AcsAnswer {
        let encoded = STANDARD.encode(xml);
        self.post_acs_form(flow, &[("SAMLResponse", &encoded)])
    }

    /// As [`World::post_acs`] with the form's fields as given (RelayState from `flow` added).
    pub fn post_acs_form(&self, flow: Option<&SamlFlow>, fields: &[(&str, &str)]) -> AcsAnswer {
        self.post_acs_form_at(&self.school().acs_url, flow, fields)
    }

    /// As [`World::post_acs`], to another ACS address (a second replica).
    pub fn post_acs_at(&self, acs_url: &str, flow: Option<&SamlFlow>, xml: &str) -> AcsAnswer {
        let encoded = STANDARD.encode(xml);
        self.post_acs_form_at(acs_url, flow, &[("SAMLResponse", &encoded)])
    }

    fn post_acs_form_at(&self, acs_url: &str, flow: Option<&SamlFlow>, fields: &[(&str, &str)]) -> AcsAnswer {
        let mut form: Vec<(String, String)> =
            fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(flow) = flow {
            form.push(("RelayState".into(), flow.relay_state.clone()));
        }
        let host = format!("localhost:{}", self.port);
        let cookie: Vec<String> = flow
            .and_then(|f| f.jar[&host].as_object().cloned())
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect())
            .unwrap_or_default();
        let body = serde_json::to_string(&form).unwrap();
        let path = self.dir.path().join("acs-form.json");
        std::fs::write(&path, body).unwrap();
        let out = self.node_eval(&format!(
            r#"import {{ readFileSync }} from 'node:fs';
const form = new URLSearchParams(JSON.parse(readFileSync({path:?}, 'utf8')));
const r = await fetch({url:?}, {{method: 'POST', redirect: 'manual', body: form, headers: {{cookie: {cookie:?}}}}});
console.log(JSON.stringify({{status: r.status, location: r.headers.get('location') ?? '', set_cookie: r.headers.getSetCookie(), body: await r.text()}}));"#,
            path = path.to_str().unwrap(),
            url = acs_url,
            cookie = cookie.join("; "),
        ));
        let v: Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("no answer from the ACS: {out}"));
        AcsAnswer {
            status: v["status"].as_u64().unwrap() as u16,
            location: v["location"].as_str().unwrap().to_owned(),
            set_cookie: v["set_cookie"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect(),
            body: v["body"].as_str().unwrap().to_owned(),
        }
    }
}
