//! `[pseudonyms]` and `[[tenants]]`: the schools whose IdPs log in through nymgate, their
//! subject, claim policy and IdP settings, and the checks of each tenant.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    cert_strength, check_private_file, identity, is_valid_name, login, validate_https_url,
    validate_secret_source,
};
use super::{BrandingConfig, Config, OidcTenantConfig, Role, TenantRetentionConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymConfig {
    /// The keyring file (mode 0600), written by `nymgate keys`.
    pub keyring_file: PathBuf,
}

/// Which kind of IdP a tenant has: decides the stable subject (shared/PRODUCT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpKind {
    /// Microsoft Entra ID: `tid` and `oid`.
    Entra,
    /// Google Workspace: `sub`.
    Google,
    /// Any other OIDC provider: `iss` and `sub`.
    Oidc,
    /// SAML 2.0: pairwise-id, subject-id, persistent NameID, then `subject.attribute`.
    Saml,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant id the platform sees in `tenant`: 1 to 64 of a-z, 0-9, '-' and '_'.
    pub id: String,
    /// Display name (the school chooser).
    #[serde(default)]
    pub name: Option<String>,
    /// The pseudonym scope; default: the tenant id. Tenants that share a scope (a municipality's
    /// schools) give a person the same account number in each.
    #[serde(default)]
    pub scope: Option<String>,
    pub idp: IdpKind,
    /// The issuer: the OIDC issuer URL, the SAML IdP entity id, or for Entra ID the directory
    /// (tenant) id. It is also the default issuer of `nymgate pseudonym` lookups. Its canonical
    /// form (config/issuer.rs) enters the account number: fixed here at onboarding, never the
    /// spelling an IdP advertises on the day (docs/PSEUDONYMS.md, "A stable issuer").
    pub issuer: String,
    /// The exact issuer string this tenant's account numbers were made from before nymgate
    /// canonicalized issuers, for a tenant onboarded earlier whose IdP spelled its issuer in
    /// another form (a trailing `/`, capitals): set it to that spelling and every number stays.
    /// Used verbatim; leave it unset for a new tenant.
    #[serde(default)]
    pub account_issuer: Option<String>,
    /// Which verified attribute files a login under this tenant when several tenants share one
    /// IdP (config/identity.rs, docs/PSEUDONYMS.md "One IdP, several schools").
    #[serde(default)]
    pub select: Option<identity::TenantSelectConfig>,
    #[serde(default)]
    pub subject: SubjectConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Email domains whose `login_hint` picks this tenant (the hint itself is never kept).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// The OIDC client settings, for idp = entra, google or oidc.
    #[serde(default)]
    pub oidc: Option<OidcTenantConfig>,
    /// The SAML IdP settings, for idp = saml.
    #[serde(default)]
    pub saml: Option<login::SamlTenantConfig>,
    /// This tenant's threshold for `login.blocking` (pupils behind one NAT address share it).
    #[serde(default)]
    pub max_failed_logins: Option<u32>,
    /// This school's name, logo and colour on the pages that know the tenant.
    #[serde(default)]
    pub branding: BrandingConfig,
    /// Personal values this tenant requires kept, for which roles (docs/RETENTION.md). Off
    /// unless set; needs `[retention]`.
    #[serde(default)]
    pub retention: Option<TenantRetentionConfig>,
    /// The day (`YYYY-MM-DD`, UTC) the school's contract ends: from then on its logins are
    /// refused and the culling job erases its retained records (docs/RETENTION.md).
    #[serde(default)]
    pub offboard_on: Option<String>,
}

impl TenantConfig {
    /// The pseudonym scope whose keys make this tenant's account numbers: `scope`, or the
    /// tenant's own id (the one place that default is decided).
    pub fn scope_name(&self) -> &str {
        self.scope.as_deref().unwrap_or(&self.id)
    }

    /// `offboard_on` as unix seconds (midnight UTC), when set and valid.
    pub fn offboard_at(&self) -> Option<u64> {
        crate::clock::parse_instant(&format!("{}T00:00:00Z", self.offboard_on.as_deref()?))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectConfig {
    /// SAML: the attribute after pairwise-id, subject-id and a persistent NameID, for example
    /// `urn:oid:1.3.6.1.4.1.5923.1.1.1.6` (eduPersonPrincipalName).
    #[serde(default)]
    pub attribute: Option<String>,
    /// Allow the email as the last resort. Off by default; the token then says `nym_src = "email"`.
    #[serde(default)]
    pub allow_email: bool,
}

/// Ready-made claim mappings (docs/POLICY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyPreset {
    Entra,
    Google,
    Skolfederation,
    Feide,
}

/// Which claims become `role`, `school` and `municipality`. Fields left out come from the preset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub preset: Option<PolicyPreset>,
    /// Claim or attribute names (urn:oid or friendly) whose values give the role.
    #[serde(default)]
    pub role_from: Option<Vec<String>>,
    /// IdP value (case-insensitive; `x@scope` maps as `x`) → student, teacher, staff or other.
    #[serde(default)]
    pub role_map: Option<std::collections::BTreeMap<String, Role>>,
    #[serde(default)]
    pub school_from: Option<Vec<String>>,
    /// IdP value → the school code the platform gets. Unmapped values are dropped.
    #[serde(default)]
    pub school_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub municipality_from: Option<Vec<String>>,
    #[serde(default)]
    pub municipality_map: std::collections::BTreeMap<String, String>,
}

impl Config {
    pub(super) fn validate_tenants(&self, problem: &mut impl FnMut(&str, String)) {
        match &self.pseudonyms {
            None if !self.tenants.is_empty() => problem(
                "pseudonyms.keyring_file",
                "is required once tenants are configured; create one with `nymgate keys new --keyring FILE --scope TENANT`".into(),
            ),
            Some(p) if p.keyring_file.exists() => {
                if let Err(message) = check_private_file(&p.keyring_file) {
                    problem("pseudonyms.keyring_file", message);
                }
            }
            Some(p) => problem(
                "pseudonyms.keyring_file",
                format!("{} does not exist; create it with `nymgate keys new --keyring {} --scope TENANT`", p.keyring_file.display(), p.keyring_file.display()),
            ),
            None => {}
        }
        let mut seen = std::collections::HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            if !is_valid_name(&tenant.id) {
                problem(
                    &format!("tenants[{i}].id"),
                    format!("{:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'", tenant.id),
                );
            }
            if !seen.insert(tenant.id.as_str()) {
                problem(&format!("tenants[{i}].id"), format!("{:?} is used by two tenants", tenant.id));
            }
            if let Some(scope) = &tenant.scope {
                if !is_valid_name(scope) {
                    problem(
                        &format!("tenants[{i}].scope"),
                        format!("{scope:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'"),
                    );
                }
            }
            if tenant.issuer.trim().is_empty() {
                problem(&format!("tenants[{i}].issuer"), "must not be empty".into());
            }
            let field = |name: &str| format!("tenants[{i}].{name}");
            match (&tenant.oidc, tenant.idp) {
                (Some(_), IdpKind::Saml) => {
                    problem(&field("oidc"), "applies to idp = \"entra\", \"google\" or \"oidc\"".into())
                }
                (None, IdpKind::Entra | IdpKind::Google | IdpKind::Oidc) if self.login.is_some() => problem(
                    &field("oidc"),
                    "is required for an OIDC tenant: client_id and client_secret at least".into(),
                ),
                (Some(oidc), _) => {
                    // Discovery, the JWKS and the token request (with the client secret) all
                    // follow from the issuer: plain http would carry them in the clear.
                    if let Err(message) = validate_https_url(&tenant.issuer, true) {
                        problem(&field("issuer"), format!("an OIDC issuer {message}"));
                    }
                    validate_oidc_tenant(oidc, &field, problem)
                }
                _ => {}
            }
            match (&tenant.saml, tenant.idp) {
                (Some(_), IdpKind::Entra | IdpKind::Google | IdpKind::Oidc) => {
                    problem(&field("saml"), "applies to idp = \"saml\" only".into())
                }
                (Some(saml), IdpKind::Saml) => {
                    if saml.clock_skew > Duration::from_secs(600) {
                        problem(&field("saml.clock_skew"), "must be at most 10m".into());
                    }
                    if let Some(Err(message)) =
                        saml.sso_url.as_deref().map(|url| validate_https_url(url, true))
                    {
                        problem(&field("saml.sso_url"), message);
                    }
                    if let Some(Err(message)) =
                        saml.metadata_url.as_deref().map(|url| validate_https_url(url, true))
                    {
                        problem(&field("saml.metadata_url"), message);
                    }
                    let metadata = saml.metadata_file.is_some() || saml.metadata_url.is_some();
                    if saml.metadata_file.is_some() && saml.metadata_url.is_some() {
                        problem(
                            &field("saml.metadata_url"),
                            "give metadata_file or metadata_url, not both".into(),
                        );
                    }
                    if !metadata && saml.sso_url.is_none() {
                        problem(
                            &field("saml.sso_url"),
                            "is required without metadata_file or metadata_url".into(),
                        );
                    }
                    if !metadata && saml.certificate_files.is_empty() {
                        problem(
                            &field("saml.certificate_files"),
                            "must name the IdP's signing certificate (or give its metadata)".into(),
                        );
                    }
                    if !metadata && !saml.metadata_signing_certificate_files.is_empty() {
                        problem(
                            &field("saml.metadata_signing_certificate_files"),
                            "applies to metadata only".into(),
                        );
                    }
                    let files = saml
                        .certificate_files
                        .iter()
                        .map(|p| ("saml.certificate_files", p))
                        .chain(
                            saml.metadata_signing_certificate_files
                                .iter()
                                .map(|p| ("saml.metadata_signing_certificate_files", p)),
                        )
                        .chain(saml.metadata_file.iter().map(|p| ("saml.metadata_file", p)))
                        .chain(saml.ca_file.iter().map(|p| ("saml.ca_file", p)));
                    for (name, path) in files {
                        if let Err(e) = std::fs::metadata(path) {
                            problem(&field(name), format!("cannot read {}: {e}", path.display()));
                        }
                    }
                    for path in &saml.certificate_files {
                        if let Err(message) = cert_strength::strong_enough(path, saml.allow_weak_algorithms) {
                            problem(&field("saml.certificate_files"), message);
                        }
                    }
                    if self.login.as_ref().is_some_and(|l| l.saml.is_none()) {
                        problem(
                            "login.saml",
                            format!(
                                "is required by the SAML tenant {:?}: add [login.saml] with cert_file and key_file \
                                 (nymgate's SP signing certificate and key; `nymgate certs saml --entity-id \
                                 {{public_url}}/nymgate/saml --out DIR` makes them), as in deploy/nymgate.example.toml",
                                tenant.id
                            ),
                        );
                    }
                }
                (None, IdpKind::Saml) if self.login.is_some() => problem(
                    &field("saml"),
                    "is required for a SAML tenant: sso_url and certificate_files at least".into(),
                ),
                _ => {}
            }
            for domain in &tenant.email_domains {
                if domain.is_empty() || domain.contains('@') || domain.contains(char::is_whitespace) {
                    problem(&field("email_domains"), format!("{domain:?} is not a domain name"));
                }
            }
            if tenant.subject.attribute.is_some() && tenant.idp != IdpKind::Saml {
                problem(
                    &format!("tenants[{i}].subject.attribute"),
                    "applies to SAML tenants only (idp = \"saml\")".into(),
                );
            }
        }
    }
}

fn validate_oidc_tenant(
    oidc: &OidcTenantConfig,
    field: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) {
    if let Some(url) = &oidc.discovery_url {
        if let Err(message) = validate_https_url(url, true) {
            problem(&field("oidc.discovery_url"), message);
        }
    }
    if let Some(endpoints) = &oidc.endpoints {
        if oidc.discovery_url.is_some() {
            problem(&field("oidc.endpoints"), "give either discovery_url or endpoints, not both".into());
        }
        let urls = [
            ("authorization", Some(&endpoints.authorization)),
            ("token", Some(&endpoints.token)),
            ("jwks", Some(&endpoints.jwks)),
            ("userinfo", endpoints.userinfo.as_ref()),
            ("end_session", endpoints.end_session.as_ref()),
        ];
        for (name, url) in urls {
            if let Some(Err(message)) = url.map(|u| validate_https_url(u, true)) {
                problem(&field(&format!("oidc.endpoints.{name}")), message);
            }
        }
    }
    if oidc.client_id.is_empty() {
        problem(&field("oidc.client_id"), "must not be empty".into());
    }
    validate_secret_source(&oidc.client_secret, &field("oidc.client_secret"), problem);
    // OpenID Connect Core §3.1.2.1: `openid` makes the request an OpenID Connect one; each scope
    // is a scope-token (RFC 6749 §3.3).
    if !oidc.scopes.iter().any(|scope| scope == "openid") {
        problem(&field("oidc.scopes"), "must include \"openid\" (OpenID Connect Core §3.1.2.1)".into());
    }
    for scope in &oidc.scopes {
        let token = !scope.is_empty()
            && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !token {
            problem(&field("oidc.scopes"), format!("{scope:?} is not a scope token (RFC 6749 §3.3)"));
        }
    }
    if oidc.algorithms.is_empty() {
        problem(&field("oidc.algorithms"), "must name at least one algorithm (\"RS256\")".into());
    }
    for alg in &oidc.algorithms {
        if !login::ALLOWED_IDP_ALGORITHMS.contains(&alg.as_str()) {
            problem(
                &field("oidc.algorithms"),
                format!("{alg:?} is not allowed; choose from {}", login::ALLOWED_IDP_ALGORITHMS.join(", ")),
            );
        }
    }
    if oidc.clock_skew > Duration::from_secs(600) {
        problem(&field("oidc.clock_skew"), "must be at most 10m".into());
    }
    if oidc.jwks_refresh < Duration::from_secs(1) || oidc.jwks_refresh > Duration::from_secs(3600) {
        problem(
            &field("oidc.jwks_refresh"),
            "must be from 1s (below, the JWKS would be fetched for every login) to 1h (a key the IdP \
             removed is accepted until the next refresh)"
                .into(),
        );
    }
    if oidc.jwks_refetch_interval < Duration::from_secs(1) {
        problem(
            &field("oidc.jwks_refetch_interval"),
            "must be at least 1s: every token with an unknown kid would refetch the JWKS".into(),
        );
    }
    if let Some(ca) = &oidc.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            problem(&field("oidc.ca_file"), format!("cannot read {}: {e}", ca.display()));
        }
    }
}
