//! The login world: real peers on loopback. A school IdP (node `oidc-provider`, tests/peers),
//! the `nymgate` binary as ops run it (debug logs captured to a file, audit to a file), and the
//! platform as node `openid-client` or the built-in echo platform. Each world has its own folder,
//! certificates, keyring and secrets, so tests run in parallel.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The test users' personal values: none of them may appear anywhere the platform or the logs
/// can see (shared/SECURITY.md, "Privacy").
pub const ALICE: &[(&str, &str)] = &[
    ("sub", "idp-subject-alice-7f3a9c"),
    ("email", "alice.andersson@school-a.example"),
    ("name", "Alice Andersson"),
    ("given_name", "Alicia"),
    ("family_name", "Andersson"),
    // SAML IdPs send these too (eduPersonPrincipalName, a Nordic national identity number).
    ("eppn", "alice.a@idp.school-a.example"),
    ("national_id", "19990101-2389"),
];

/// The raw IP every test client connects from (a loopback address nothing else uses, bound by
/// tests/peers/client_address.mjs). It is personal data too: the scan looks for it everywhere,
/// while its reduction (`127.83.19.0`, the /24) is what nymgate may record.
pub const CLIENT_ADDRESS: &str = "127.83.19.201";

/// Alice's IdP subject, which is also what she types as her login at the IdP.
pub fn alice_sub() -> &'static str {
    ALICE.iter().find(|(k, _)| *k == "sub").unwrap().1
}

pub const PLATFORM_REDIRECT: &str = "https://platform.test/callback";
pub const PLATFORM_CLIENT: &str = "learning-platform";

/// The folder of the node peers, installed by tests/run.sh (`npm ci --prefix tests/peers`).
pub fn peers_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "the node test peers are not installed: run `npm ci --prefix tests/peers` (tests/run.sh does)"
    );
    dir
}

/// The SAML-only platform of the SAML output tests (tests/peers/saml_platform.mjs).
pub const SAML_PLATFORM: &str = "https://platform.example/saml";
pub const SAML_PLATFORM_ACS: &str = "https://platform.example/saml/acs";
/// The SAML-only platform behind nymgate whose ACS (`/saml/acs`) nymgate intercepts
/// (tests/peers/saml_platform_server.mjs).
pub const SAML_INTERCEPTED: &str = "https://platform.example/intercepted";

/// Whether nymgate stopped because a port picked for it was taken meanwhile (its own message
/// for the public port, src/listener.rs; the system's for the others).
fn port_taken(stderr: &str) -> bool {
    stderr.contains("already listens on") || stderr.contains("Address already in use")
}

/// A port free on 127.0.0.1 a moment ago, and never handed out before in this process: the
/// kernel may give a port just closed to the next bind(0), so two peers of one test (its IdP
/// and nymgate) could otherwise be told the same port, and nymgate then refuses to share it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until `nymgate serve` logs "nymgate serving" on its stderr, written to `stderr` (it
/// does so once every listener is bound). A connect to its port is not proof: a port picked by
/// `free_port` can be taken by another test's process in between, which then answers the
/// connect while nymgate exits with "already listens on" (or "Address already in use"). `Err` with the log's text if
/// nymgate exits or is not serving in 10 s.
pub fn wait_serving(child: &mut Child, stderr: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(stderr).unwrap_or_default();
    for _ in 0..200 {
        if log().contains("nymgate serving") {
            return Ok(());
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nymgate did not start in 10 s: {}", log()))
}

pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A child process killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node peer that prints `ready URL` on its first line; its stderr goes to `log`.
pub fn start_node_peer(dir: &Path, script: &str, config: &Path, log: &str) -> (String, Peer) {
    let mut child = Command::new("node")
        .arg(peers_dir().join(script))
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .expect("node runs (Debian nodejs or the machine's node)");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
        .to_owned();
    // Keep reading: oidc-provider writes notices to stdout, and a closed pipe kills it.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (url, Peer(child))
}

/// The ops team's alert webhook (tests/peers/webhook_receiver.mjs), which verifies every
/// delivery with the Standard Webhooks reference library.
pub struct WebhookReceiver {
    pub url: String,
    _process: Peer,
}

impl WebhookReceiver {
    /// Writes the shared secret to `webhook-secret` (0600) for nymgate's config.
    fn start(dir: &Path) -> WebhookReceiver {
        use base64::Engine;
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(nymgate::secret::random_bytes::<32>())
        );
        write_private(&dir.join("webhook-secret"), &secret);
        let config = json!({
            "cert": dir.join("certs/localhost.pem"),
            "key": dir.join("certs/localhost-key.pem"),
            "secret": secret,
        });
        let path = dir.join("webhook.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let (url, process) = start_node_peer(dir, "webhook_receiver.mjs", &path, "webhook.log");
        WebhookReceiver { url, _process: process }
    }

    /// Every delivery so far, as the receiver recorded it.
    pub fn received(&self, world: &World) -> Vec<Value> {
        let out = world.node_eval(&format!(
            "const r = await fetch({:?}); console.log(await r.text());",
            format!("{}/__test/received", self.url)
        ));
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("receiver answered: {out}"))
    }

    /// Sets how the receiver answers: `ok`, `fail_first` or `hold`; `release` answers held ones.
    pub fn set(&self, world: &World, mode: &str) {
        let (path, body) = match mode {
            "release" => ("release", json!({})),
            _ => ("mode", json!({ "mode": mode })),
        };
        let out = world.node_eval(&format!(
            "const r = await fetch({url:?}, {{method: 'POST', body: {body:?}}}); console.log(r.status);",
            url = format!("{}/__test/{path}", self.url),
            body = body.to_string(),
        ));
        assert_eq!(out.trim(), "200", "receiver's {path} hook");
    }
}

/// One node `oidc-provider` instance: a school's IdP.
pub struct SchoolIdp {
    pub url: String,
    _process: Peer,
}

impl SchoolIdp {
    /// `nymgate_port`: where nymgate's callback lives, for the registered redirect URI.
    pub fn start(dir: &Path, name: &str, nymgate_port: u16, conform_id_token_claims: bool) -> SchoolIdp {
        SchoolIdp::start_for(dir, name, &[name], nymgate_port, conform_id_token_claims)
    }

    /// As [`SchoolIdp::start`], with a client registered for each school in `schools` (one IdP
    /// serving several schools, as a municipality's or Feide does).
    pub fn start_for(
        dir: &Path,
        name: &str,
        schools: &[&str],
        nymgate_port: u16,
        conform_id_token_claims: bool,
    ) -> SchoolIdp {
        // oidc-provider's dev login makes the typed login the account id, which is the `sub`.
        let mut users = serde_json::Map::new();
        users.insert(
            alice_sub().to_owned(),
            Value::Object(
                ALICE.iter().filter(|(k, _)| *k != "sub").map(|(k, v)| (k.to_string(), json!(v))).collect(),
            ),
        );
        let alice = users.get_mut(alice_sub()).unwrap().as_object_mut().unwrap();
        alice.insert("email_verified".into(), json!(true));
        alice.insert("roles".into(), json!(["Student"]));
        alice.insert("school_code".into(), json!("SCH-A-01"));
        let config = json!({
            "port": 0,
            "host": "127.0.0.1",
            "cert": dir.join("certs/localhost.pem"),
            "key": dir.join("certs/localhost-key.pem"),
            "clients": schools.iter().map(|school| {
                let client_secret = std::fs::read_to_string(dir.join(format!("{school}-client-secret"))).unwrap();
                json!({
                    "client_id": format!("nymgate-{school}"),
                    "client_secret": client_secret.trim(),
                    "redirect_uris": [format!("https://localhost:{nymgate_port}/nymgate/callback")],
                    "post_logout_redirect_uris": [format!("https://localhost:{nymgate_port}/nymgate/logged-out")],
                })
            }).collect::<Vec<_>>(),
            "conform_id_token_claims": conform_id_token_claims,
            "claims": {
                "openid": ["sub", "roles", "school_code"],
                "email": ["email", "email_verified"],
                "profile": ["name", "given_name", "family_name"],
            },
            "users": users,
        });
        let path = dir.join(format!("{name}-idp.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let (url, process) = start_node_peer(dir, "oidc_idp.mjs", &path, &format!("{name}-idp.log"));
        SchoolIdp { url, _process: process }
    }

    /// POSTs to one of the IdP's `/__test/` hooks.
    pub fn hook(&self, world: &World, path: &str, body: Value) -> Value {
        let out = world.node_eval(&format!(
            "const r = await fetch({url:?}, {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: {body:?}}}); console.log(await r.text());",
            url = format!("{}/__test/{path}", self.url),
            body = body.to_string(),
        ));
        serde_json::from_str(out.trim()).unwrap_or(Value::Null)
    }
}

/// How the platform gets its logins, and how the IdP hands out claims.
#[derive(Clone)]
pub struct Options {
    pub provider: bool,
    /// No `login.seal_secret` (the first-run default, and what `demo` runs): nymgate draws one.
    pub no_seal_secret: bool,
    /// oidc-provider's conformIdTokenClaims: true puts email and names only in userinfo.
    pub conform_id_token_claims: bool,
    /// nymgate reads userinfo too.
    pub userinfo: bool,
    /// A second school (tenant `school-b`) with its own IdP, for mix-up tests.
    pub second_school: bool,
    /// A second school (tenant `school-b`) that signs in at school-a's IdP, with its own client
    /// there (one IdP serving several schools). Not with `second_school`.
    pub shared_idp: bool,
    /// The platform behind nymgate (`http://…`); default: the built-in echo platform.
    pub upstream: Option<String>,
    /// Configure school-a's IdP by explicit endpoints instead of discovery.
    pub explicit_endpoints: bool,
    /// What school-a's policy maps the school code to (a bad policy can leak a value).
    pub school_value: &'static str,
    /// School codes school-a's policy maps to themselves (a careless map that copies IdP
    /// values): the guard must stop any of them that is personal.
    pub copied_school_codes: Vec<String>,
    /// A SAML school (tenant `school-s`) and which IdP it signs in with.
    pub saml: Option<SamlIdpKind>,
    /// `required_signatures` of the SAML tenant.
    pub saml_required: &'static str,
    pub saml_unsolicited: bool,
    /// A second SAML tenant, `school-t`, on school-s's IdP entity id; both pick their logins
    /// by the eduPersonPrincipalName's scope.
    pub saml_shared_tenant: bool,
    pub saml_weak: bool,
    /// The samlify school's keys and SSO from its metadata instead of the config: "file",
    /// "url", or "signed_url" (signed by a federation key nymgate pins).
    pub saml_metadata: Option<&'static str>,
    /// TOML lines for `[login.blocking]`; default: nymgate's defaults.
    pub blocking: &'static str,
    /// The SAML school's `max_failed_logins`.
    pub saml_max_failed_logins: Option<u32>,
    /// TOML lines for `[alerts]`; default: nymgate's defaults.
    pub alerts: &'static str,
    /// TOML lines added to school-a's `[[tenants]]` table (`scope = …`).
    pub tenant_a: &'static str,
    /// TOML lines added to school-a's `[tenants.oidc]` table (`required_claims = …`).
    pub oidc_a: &'static str,
    /// TOML lines added to school-b's `[tenants.oidc]` table.
    pub oidc_b: &'static str,
    /// TOML tables added at the end of the config (`[limits]` …).
    pub extra: &'static str,
    /// Start the alert webhook receiver; these TOML lines are added to `[alerts.webhook]`.
    pub webhook: Option<&'static str>,
    /// nymgate's SAML IdP face (`[login.saml_idp]`) for the node-saml platform of
    /// tests/peers/saml_platform.mjs, which signs its AuthnRequests.
    pub saml_out: bool,
    /// TOML lines added to `[audit]` (`max_bytes = …`).
    pub audit: &'static str,
}

/// The SAML school's IdP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SamlIdpKind {
    /// samlify signs responses the test writes (every field under the test's control).
    Samlify,
    /// The same, signed by pysaml2 through xmlsec1 instead.
    Pysaml2,
    /// SimpleSAMLphp with its login form, as a school runs it.
    SimpleSamlPhp,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            provider: true,
            no_seal_secret: false,
            conform_id_token_claims: false,
            userinfo: false,
            second_school: false,
            shared_idp: false,
            upstream: None,
            explicit_endpoints: false,
            school_value: "school-a-01",
            copied_school_codes: Vec::new(),
            saml: None,
            saml_required: "either",
            saml_unsolicited: false,
            saml_shared_tenant: false,
            saml_weak: false,
            saml_metadata: None,
            blocking: "",
            saml_max_failed_logins: None,
            alerts: "",
            webhook: None,
            saml_out: false,
            audit: "",
            tenant_a: "",
            oidc_a: "",
            oidc_b: "",
            extra: "",
        }
    }
}

/// A second nymgate process of a world ([`World::start_replica`]).
pub struct Replica {
    pub port: u16,
    pub admin_port: u16,
    pub nymgate: Peer,
}

impl Replica {
    /// `url` (on the world's nymgate) moved to this replica's port.
    pub fn moved(&self, world: &World, url: &str) -> String {
        url.replace(&format!("localhost:{}", world.port), &format!("localhost:{}", self.port))
    }
}

/// A running login world.
pub struct World {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub admin_port: u16,
    pub ca: PathBuf,
    pub idp: SchoolIdp,
    pub idp_b: Option<SchoolIdp>,
    pub platform_secret: String,
    /// The SAML school's IdP, when `Options::saml` is set.
    pub saml: Option<super::saml::SamlSchool>,
    /// The alert webhook, when `Options::webhook` is set.
    pub webhook: Option<WebhookReceiver>,
    _nymgate: Peer,
}

impl World {
    /// Starts a world. Ports are picked free and then bound by nymgate and the peers, so another
    /// test's process can take one in between; such a start is retried with new ports.
    pub fn start(options: Options) -> World {
        for _ in 0..5 {
            match World::try_start(options.clone()) {
                Ok(world) => return world,
                Err(stderr) if port_taken(&stderr) => continue,
                Err(stderr) => panic!("nymgate did not start: {stderr}"),
            }
        }
        panic!("nymgate found no free ports in five tries");
    }

    fn try_start(options: Options) -> Result<World, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let files = nymgate::certs::generate_dev_certs(&path.join("certs"), &[]).unwrap();
        let port = free_port();
        let admin_port = free_port();
        let secret = || nymgate::secret::random_hex::<24>();
        for name in ["school-a", "school-b"] {
            write_private(&path.join(format!("{name}-client-secret")), &secret());
        }
        let platform_secret = secret();
        write_private(&path.join("platform-secret"), &platform_secret);
        write_private(&path.join("seal-secret"), &secret());

        let schools: &[&str] = if options.shared_idp { &["school-a", "school-b"] } else { &["school-a"] };
        let idp = SchoolIdp::start_for(path, "school-a", schools, port, options.conform_id_token_claims);
        let idp_b = options
            .second_school
            .then(|| SchoolIdp::start(path, "school-b", port, options.conform_id_token_claims));

        let keyring = path.join("keyring.toml");
        let mut ring = nymgate::pseudonym::keyring::Keyring::load_or_empty(&keyring).unwrap();
        let now = nymgate::clock::unix_now();
        ring.new_scope("school-a", now).unwrap();
        ring.new_scope("school-b", now).unwrap();
        ring.new_scope("school-s", now).unwrap();
        ring.new_scope("school-t", now).unwrap();
        ring.save(&keyring).unwrap();

        let tenant = |id: &str, url: &str| {
            let endpoints = if options.explicit_endpoints && id == "school-a" {
                format!("endpoints = {{ authorization = \"{url}/auth\", token = \"{url}/token\", jwks = \"{url}/jwks\", userinfo = \"{url}/me\", end_session = \"{url}/session/end\", iss_parameter = true }}")
            } else {
                String::new()
            };
            format!(
                r#"
[[tenants]]
id = "{id}"
name = "Skola {id}"
idp = "oidc"
issuer = "{url}"
email_domains = ["{id}.example"]
{tenant_extra}
[tenants.oidc]
client_id = "nymgate-{id}"
client_secret = {{ file = "{id}-client-secret" }}
scopes = ["openid", "email", "profile"]
userinfo = {userinfo}
ca_file = "certs/dev-ca.pem"
jwks_refetch_interval = "1s"
{oidc_extra}
{pinned}
{endpoints}
[tenants.policy]
role_from = ["roles"]
role_map = {{ "Student" = "student", "Teacher" = "teacher" }}
school_from = ["school_code"]
school_map = {{ "SCH-A-01" = "{school}"{copied} }}
"#,
                userinfo = options.userinfo,
                school = options.school_value,
                copied = options
                    .copied_school_codes
                    .iter()
                    .map(|code| {
                        // A JSON string is a TOML basic string (raw UTF-8, `\"` and `\\` escaped).
                        let code = serde_json::to_string(code).unwrap();
                        format!(", {code} = {code}")
                    })
                    .collect::<String>(),
                tenant_extra = if id == "school-a" { options.tenant_a } else { "" },
                oidc_extra = if id == "school-a" { options.oidc_a } else { options.oidc_b },
                // Two tenants on one IdP each say which of its users are theirs (issue 26).
                pinned =
                    if options.shared_idp { "required_claims = { school_code = \"SCH-A-01\" }" } else { "" },
            )
        };
        let mut config = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
cert_file = "certs/localhost.pem"
key_file = "certs/localhost-key.pem"
workers = 2

[log]
format = "json"
level = "trace"

[audit]
file = "audit.log"
{audit_extra}

[pseudonyms]
keyring_file = "keyring.toml"

[login]
public_url = "https://localhost:{port}"
{seal}output = "{output}"

[[login.clients]]
client_id = "{PLATFORM_CLIENT}"
client_secret = {{ file = "platform-secret" }}
redirect_uris = ["{PLATFORM_REDIRECT}"]
{tenant_a}
"#,
            output = if options.provider { "provider" } else { "assertion_header" },
            seal = if options.no_seal_secret { "" } else { "seal_secret = { file = \"seal-secret\" }\n" },
            tenant_a = tenant("school-a", &idp.url),
            audit_extra = options.audit,
        );
        if let Some(b) = &idp_b {
            config.push_str(&tenant("school-b", &b.url));
        }
        if options.shared_idp {
            config.push_str(&tenant("school-b", &idp.url));
        }
        let saml = options.saml.map(|kind| {
            let school = super::saml::SamlSchool::start(path, kind, port);
            config.push_str(&school.config(path, &options));
            school
        });
        if !options.blocking.is_empty() {
            config.push_str(&format!("\n[login.blocking]\n{}\n", options.blocking));
        }
        config.push_str(&format!("\n[alerts]\n{}\n", options.alerts));
        let webhook = options.webhook.map(|extra| {
            let receiver = WebhookReceiver::start(path);
            config.push_str(&format!(
                "[alerts.webhook]\nurl = \"{}/hooks/nymgate\"\nsecret = {{ file = \"webhook-secret\" }}\nca_file = \"certs/dev-ca.pem\"\n{extra}\n",
                receiver.url
            ));
            receiver
        });
        if options.saml_out {
            // nymgate's IdP signing pair and the platform's request-signing pair (RSA).
            let (cert, key) =
                nymgate::certs::generate_saml_signing_cert(&format!("https://localhost:{port}/nymgate/idp"))
                    .unwrap();
            std::fs::write(path.join("saml-out.pem"), cert).unwrap();
            write_private(&path.join("saml-out-key.pem"), &key);
            let (cert, key) = nymgate::certs::generate_saml_signing_cert(SAML_PLATFORM).unwrap();
            std::fs::write(path.join("saml-platform.pem"), cert).unwrap();
            write_private(&path.join("saml-platform-key.pem"), &key);
            config.push_str(&format!(
                "\n[login.saml_idp]\ncert_file = \"saml-out.pem\"\nkey_file = \"saml-out-key.pem\"\n\
                 [[login.saml_idp.service_providers]]\nentity_id = \"{SAML_PLATFORM}\"\nacs_url = \"{SAML_PLATFORM_ACS}\"\n\
                 certificate_files = [\"saml-platform.pem\"]\nsector = \"saml-platform\"\n\
                 [[login.saml_idp.service_providers]]\nentity_id = \"{SAML_INTERCEPTED}\"\n\
                 acs_url = \"https://localhost:{port}/saml/acs\"\nintercept = true\nidp_initiated = true\n\
                 sector = \"intercepted\"\n"
            ));
        }
        config.push_str(&format!("\n{}\n", options.extra));
        if let Some(url) = &options.upstream {
            config.push_str(&format!("\n[upstream]\nurl = \"{url}\"\n"));
        }
        std::fs::write(path.join("nymgate.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
            .args(["serve", "--config"])
            .arg(path.join("nymgate.toml"))
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(path.join("nymgate.log")).unwrap())
            .stderr(std::fs::File::create(path.join("nymgate.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut world = World {
            port,
            admin_port,
            ca: files.ca_cert,
            idp,
            idp_b,
            platform_secret,
            saml,
            webhook,
            _nymgate: Peer(child),
            dir,
        };
        world.wait_ready()?;
        Ok(world)
    }

    /// Until nymgate serves; `Err` with its stderr if it exits or never does.
    fn wait_ready(&mut self) -> Result<(), String> {
        let path = self.dir.path();
        wait_serving(&mut self._nymgate.0, &path.join("nymgate.stderr"))
    }

    /// A second nymgate on the same config (a replica behind the same public name): its own
    /// ports, log and audit file. With `[store] backend = "redis"` the two share state.
    pub fn start_replica(&self) -> Replica {
        self.start_replica_with(|config| config)
    }

    /// [`World::start_replica`] with its config text changed by `edit` (say, its own keyring
    /// file, for a rolling reload).
    pub fn start_replica_with(&self, edit: impl Fn(String) -> String) -> Replica {
        let path = self.dir.path();
        let config = edit(std::fs::read_to_string(path.join("nymgate.toml")).unwrap());
        for _ in 0..5 {
            let (port, admin_port) = (free_port(), free_port());
            let text = config
                .replace(
                    &format!("listen = \"127.0.0.1:{}\"", self.port),
                    &format!("listen = \"127.0.0.1:{port}\""),
                )
                .replace(
                    &format!("admin_listen = \"127.0.0.1:{}\"", self.admin_port),
                    &format!("admin_listen = \"127.0.0.1:{admin_port}\""),
                )
                .replace("file = \"audit.log\"", "file = \"audit-b.log\"");
            std::fs::write(path.join("nymgate-b.toml"), text).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
                .args(["serve", "--config"])
                .arg(path.join("nymgate-b.toml"))
                .env_remove("RUST_LOG")
                .stdout(std::fs::File::create(path.join("nymgate-b.log")).unwrap())
                .stderr(std::fs::File::create(path.join("nymgate-b.stderr")).unwrap())
                .spawn()
                .unwrap();
            let mut replica = Replica { port, admin_port, nymgate: Peer(child) };
            match wait_serving(&mut replica.nymgate.0, &path.join("nymgate-b.stderr")) {
                Ok(()) => return replica,
                Err(stderr) if port_taken(&stderr) => continue,
                Err(stderr) => panic!("replica did not start: {stderr}"),
            }
        }
        panic!("the replica found no free ports in five tries");
    }

    /// Sends nymgate's process a signal (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self._nymgate.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// GET on an admin listener's path, as (status, body).
    pub fn admin_get(&self, admin_port: u16, path: &str) -> (u16, String) {
        let out = self.node_eval(&format!(
            "const r = await fetch('http://127.0.0.1:{admin_port}{path}'); console.log(r.status + '\\n' + await r.text());"
        ));
        let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
        (status.trim().parse().unwrap_or_else(|_| panic!("no status: {out}")), body.to_owned())
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// nymgate's operational log (JSON lines on stdout and stderr).
    pub fn log(&self) -> String {
        self.file("nymgate.log") + &self.file("nymgate.stderr")
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// A node test client: trusts the test CA and connects from [`CLIENT_ADDRESS`].
    fn node_client(&self) -> Command {
        let mut node = Command::new("node");
        node.args(["--import", "./client_address.mjs"])
            .env("NYMGATE_TEST_CLIENT_ADDRESS", CLIENT_ADDRESS)
            .env("NODE_EXTRA_CA_CERTS", &self.ca)
            .current_dir(peers_dir());
        node
    }

    pub fn node(&self, script: &str, args: &[&str]) -> std::process::Output {
        self.node_client().arg(peers_dir().join(script)).args(args).output().unwrap()
    }

    /// Runs a snippet of ESM in node (with the test CA trusted) and returns its stdout.
    pub fn node_eval(&self, code: &str) -> String {
        let out = self.node_client().args(["--input-type=module", "-e", code]).output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            // What a caller then fails to parse says why node failed.
            text.push_str(&format!(
                "\n--- node {}: ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text
    }

    /// The SAML-only platform (node-saml, strict) logs alice in at `tenant` through nymgate's
    /// SAML IdP face (tests/peers/saml_platform.mjs). `signed`: it signs its AuthnRequest;
    /// `tamper`: a (from, to) change made to a copy of the response, which must be refused.
    pub fn saml_platform_login(&self, tenant: &str, signed: bool, tamper: Option<(&str, &str)>) -> Value {
        self.saml_platform_login_with(json!({"tenant": tenant}), signed, tamper)
    }

    /// As [`World::saml_platform_login`], with `extra` settings of the platform (`"choose"`: no
    /// tenant in the request, the school picked on nymgate's chooser).
    pub fn saml_platform_login_with(
        &self,
        extra: Value,
        signed: bool,
        tamper: Option<(&str, &str)>,
    ) -> Value {
        let path = self.dir.path();
        let config = json!({
            "sso_url": self.url("/nymgate/idp/sso"),
            "entity_id": SAML_PLATFORM,
            "acs_url": SAML_PLATFORM_ACS,
            "idp_cert": std::fs::read_to_string(path.join("saml-out.pem")).unwrap(),
            "sp_key": signed.then(|| std::fs::read_to_string(path.join("saml-platform-key.pem")).unwrap()),
            "relay_state": "platform-state-42",
            "user": alice_sub(),
            "tamper_from": tamper.map(|t| t.0),
            "tamper_to": tamper.map(|t| t.1),
        });
        let mut config = config;
        for (name, value) in extra.as_object().unwrap() {
            config[name] = value.clone();
        }
        let file = path.join("saml-platform.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let out = self.node("saml_platform.mjs", &[file.to_str().unwrap()]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "saml_platform.mjs printed no JSON: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.file("nymgate.stderr").lines().rev().take(20).collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// PyPI python3-saml (OneLogin) in strict mode, as the platform `entity_id` with its ACS at
    /// `acs_url`, validates a Response nymgate posted, and a copy with `tamper` applied
    /// (tests/peers/saml_platform_py.py).
    pub fn python3_saml(
        &self,
        xml: &str,
        entity_id: &str,
        acs_url: &str,
        tamper: Option<(&str, &str)>,
    ) -> Value {
        let path = self.dir.path();
        let request_id = xml.split("InResponseTo=\"").nth(1).and_then(|rest| rest.split('"').next());
        let config = json!({
            "xml": xml,
            "entity_id": entity_id,
            "acs_url": acs_url,
            "idp_entity_id": self.url("/nymgate/idp"),
            "sso_url": self.url("/nymgate/idp/sso"),
            "idp_cert": std::fs::read_to_string(path.join("saml-out.pem")).unwrap(),
            "request_id": request_id,
            "tamper_from": tamper.map(|t| t.0),
            "tamper_to": tamper.map(|t| t.1),
        });
        let file = path.join("python3-saml.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let python = peers_dir().join(".venv/bin/python");
        assert!(python.exists(), "python3-saml is not installed: run tests/run.sh (tests/peers/.venv)");
        let out =
            Command::new(python).arg(peers_dir().join("saml_platform_py.py")).arg(&file).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("saml_platform_py.py printed no JSON: {}", String::from_utf8_lossy(&out.stderr))
        })
    }

    /// The platform (node openid-client) logs alice in through nymgate's provider face.
    pub fn platform_login(&self, extra: Value) -> Value {
        let mut config = json!({
            "issuer": self.url("/nymgate"),
            "client_id": PLATFORM_CLIENT,
            "client_secret": self.platform_secret,
            "redirect_uri": PLATFORM_REDIRECT,
            "user": alice_sub(),
            "extra_auth_params": {"tenant": "school-a"},
        });
        if let (Some(target), Some(source)) = (config.as_object_mut(), extra.as_object()) {
            for (k, v) in source {
                target.insert(k.clone(), v.clone());
            }
        }
        let path = self.dir.path().join("platform.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let out = self.node("platform_rp.mjs", &[path.to_str().unwrap()]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "platform_rp.mjs printed no JSON: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// A scripted browser (tests/peers/browser.mjs) from `start` until a page that is not a
    /// redirect, or until the next URL starts with `stop_at`.
    pub fn browse(&self, start: &str, stop_at: Option<&str>) -> Value {
        self.browse_with_jar(start, stop_at, &json!({}))
    }

    /// As [`World::browse`], starting with the cookies of an earlier browse.
    pub fn browse_with_jar(&self, start: &str, stop_at: Option<&str>, jar: &Value) -> Value {
        let jar_file = self.dir.path().join("jar.json");
        std::fs::write(&jar_file, jar.to_string()).unwrap();
        let args = [start, alice_sub(), stop_at.unwrap_or("-"), jar_file.to_str().unwrap()];
        let out = self.node("browser.mjs", &args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "browser.mjs printed no JSON: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// GET with the cookies a browser jar (from `browse`) holds for nymgate; returns the status.
    pub fn get_with_jar(&self, url: &str, jar: &Value) -> u16 {
        let host = format!("localhost:{}", self.port);
        let cookie: Vec<String> = jar[&host]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect())
            .unwrap_or_default();
        let out = self.node_eval(&format!(
            "const r = await fetch({url:?}, {{redirect: 'manual', headers: {{cookie: {cookie:?}}}}}); console.log(r.status);",
            cookie = cookie.join("; ")
        ));
        out.trim().parse().unwrap_or_else(|_| panic!("no status: {out}"))
    }

    /// The admin listener's metrics page.
    pub fn metrics(&self) -> String {
        self.node_eval(&format!(
            "const r = await fetch('http://127.0.0.1:{}/metrics'); console.log(await r.text());",
            self.admin_port
        ))
    }

    /// The audit log's lines as JSON.
    pub fn audit(&self) -> Vec<Value> {
        self.file("audit.log").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The last login attempt's audit line.
    pub fn last_login(&self) -> Value {
        self.audit().into_iter().rev().find(|e| e["kind"] == "login").expect("a login audit line")
    }

    /// Every place a personal value must never reach: nymgate's log (trace level), its audit
    /// log, its metrics page, the alert webhook's deliveries, and whatever else the test
    /// collected (the platform's bytes, error pages). The values: alice's (ALICE) and the raw
    /// client IP (CLIENT_ADDRESS).
    /// Panics naming the value's kind and where it was found.
    pub fn assert_no_personal_values(&self, other: &[(&str, &str)]) {
        let metrics = self.metrics();
        assert!(metrics.contains("nymgate_open_connections"), "metrics page unreadable: {metrics}");
        // One request on the public listener, so even an idle world has trace lines to scan.
        self.node_eval(&format!("await fetch({:?});", self.url("/nymgate/jwks")));
        let log = self.file("nymgate.log") + &self.file("nymgate.stderr");
        assert!(log.contains("\"level\":\"TRACE\""), "the log must be at trace level to prove anything");
        let mut places =
            vec![("nymgate log", log), ("audit log", self.file("audit.log")), ("metrics", metrics)];
        if let Some(webhook) = &self.webhook {
            places.push(("alert webhook", serde_json::to_string(&webhook.received(self)).unwrap()));
        }
        places.extend(other.iter().map(|(name, text)| (*name, text.to_string())));
        let client = ("raw client IP", CLIENT_ADDRESS);
        for (kind, value) in ALICE.iter().chain([&client]) {
            for (place, text) in &places {
                let lower = text.to_lowercase();
                assert!(!lower.contains(&value.to_lowercase()), "alice's {kind} appears in the {place}");
            }
        }
    }
}

impl Drop for World {
    /// A failed test shows what nymgate and the IdP said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["nymgate.stderr", "nymgate.log", "school-a-idp.log", "saml-idp.log", "audit.log"] {
                let text = self.file(name);
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("--- {name} (last lines) ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
