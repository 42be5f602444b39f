//! Pseudonyms: the account number the platform knows a person by, and the only claims that may
//! leave with it.
//!
//! # The account number
//! `HMAC-SHA256(key[scope, version], "nymgate/account-number/v1" ‖ len(issuer) ‖ issuer ‖
//! len(subject) ‖ subject)`, lengths as 4-byte big-endian, so that no two (issuer, subject) pairs
//! give the same input (`ab`+`c` and `a`+`bc` differ). The first 80 bits of the MAC are written
//! in Crockford base32 (digits and capitals without I, L, O, U, so nothing reads as another
//! character), in four groups of four, after the key version:
//!
//! ```text
//! v1-7QX2-M9RA-4HVE-T0BZ
//! ```
//!
//! Collisions: with n people in one scope the chance that any two share a number is about
//! n² / 2⁸¹. For 10 million people (every pupil and teacher of a country in one scope) that is
//! 10¹⁴ / 2.4·10²⁴ ≈ 4·10⁻¹¹. Guessing a given person's number without the key is 1 in 2⁸⁰.
//!
//! The issuer in that input is the tenant's configured issuer in canonical form
//! (config/issuer.rs), or its `account_issuer` when one is set: never the spelling the IdP
//! advertises on the day, so a discovery document that gains a trailing slash changes no
//! number. The verified login's own issuer must be the same issuer (else `issuer_mismatch`).
//!
//! # Sectors
//! A platform in a named sector (`sector = "…"` on its config) gets
//! `HMAC(key, "nymgate/account-number/v1/sector" ‖ len(sector) ‖ sector ‖ len(issuer) ‖ issuer ‖
//! len(subject) ‖ subject)` instead: pairwise numbers (OIDC Core §8.1, SAML Core §8.3.7), so two
//! vendors behind one nymgate can't join their data on the number. The primary sector keeps the
//! number above, the one nymgate made before sectors existed.
//!
//! The number is deterministic (same key, same person, same number, on every replica and after
//! every restart, with no database), unlinkable across scopes (each scope has its own random
//! key), not reversible without the key, rotatable (a new version gives new numbers; during the
//! migration window tokens carry `sub_prev` too) and erasable (delete the scope's keys).
//!
//! # The two entries
//! [`Pseudonymizer::pseudonymize`], every login's, takes only a [`VerifiedIdentity`], which only
//! a verifier can build (src/verify/). [`Pseudonymizer::subject_access`], a DPO's, takes a
//! subject someone typed, so it is audited by construction (subject_access.rs). Nothing else
//! public derives a number: the derivation itself is crate-private.
//!
//! # The pipeline
//! [`Pseudonymizer::pseudonymize`] takes only a [`VerifiedIdentity`]: stable subject (ladder per
//! IdP kind) → account number(s) → claim policy (explicit maps) → guard on every outgoing value,
//! against every value of the login but those of known impersonal attributes and of the
//! attributes the policy reads (guard.rs, "Identifying values").

pub mod guard;
pub mod keyring;
pub mod keyring_backup;
pub mod keyring_write;
pub mod policy;
mod subject_access;
pub use subject_access::{record_refusal, KeyState, KnownNumber, SubjectAccessError, SubjectRequest};

use std::collections::HashMap;
use std::fmt;

use hmac::Mac;

use crate::config::{Config, ConfigProblem, IdpKind};
use crate::verify::identity::{self, SubjectError, SubjectRules, SubjectSource, VerifiedIdentity};
use crate::verify::vocabulary;
use guard::{Guard, GuardTrip};
use keyring::{Keyring, ScopeKey};
use policy::{Policy, Role};

/// Domain separation: an account number's MAC can't be confused with any other use of the key.
const DOMAIN_TAG: &[u8] = b"nymgate/account-number/v1";
/// The same for a named sector's numbers: no sector's input can equal the primary one's.
const SECTOR_DOMAIN_TAG: &[u8] = b"nymgate/account-number/v1/sector";
/// Crockford's base32 alphabet.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Bits of the MAC kept: 16 base32 characters.
pub const ACCOUNT_NUMBER_BITS: usize = 80;

/// A pseudonymous account number, such as `v1-7QX2-M9RA-4HVE-T0BZ`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccountNumber(String);

impl AccountNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `text` when it is an account number exactly as nymgate writes them (`v{version}-` and
    /// four groups of four of Crockford's base32 capitals, `derive_in_sector`), else `None`.
    /// What an operator or a caller types is taken only through this, so nothing else can
    /// reach the audit log, a store key or a log as an account number. Not canonicalized
    /// (no lowercase, no `O` for `0`): the store knows one spelling only.
    pub fn parse(text: &str) -> Option<AccountNumber> {
        let (version, groups) = text.strip_prefix('v')?.split_once('-')?;
        let digits_ok = !version.is_empty()
            && version.len() <= 10
            && version.bytes().all(|b| b.is_ascii_digit())
            && !version.starts_with('0');
        let number: u32 = version.parse().ok().filter(|_| digits_ok)?;
        let parts: Vec<&str> = groups.split('-').collect();
        let well_formed = parts.len() == 4
            && parts.iter().all(|g| g.len() == 4 && g.bytes().all(|b| CROCKFORD.contains(&b)));
        (number > 0 && well_formed).then(|| AccountNumber(text.to_owned()))
    }

    /// Whether this is the primary-sector number of (issuer, subject) under `key`: for a caller
    /// that holds the keyring and a number it was given (the load test checks every login's).
    /// It answers yes or no, never a number: numbers are made only from a verified identity
    /// ([`Pseudonymizer::pseudonymize`]) or by the audited DPO lookup
    /// ([`Pseudonymizer::subject_access`]).
    pub fn is_primary_for(&self, key: &ScopeKey, issuer: &str, subject: &str) -> bool {
        crate::secret::ct_eq_str(derive_account_number(key, issuer, subject).as_str(), self.as_str())
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountNumber({})", self.0)
    }
}

/// The platform a login's number is made for (module doc, "Sectors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sector<'a> {
    /// The numbers nymgate made before sectors existed.
    Primary,
    /// A named sector's pairwise numbers.
    Named(&'a str),
}

impl<'a> Sector<'a> {
    /// A platform's configured sector: unset and `"primary"` are the primary sector.
    pub fn of(configured: Option<&'a str>) -> Sector<'a> {
        match configured {
            None | Some(crate::config::identity::PRIMARY_SECTOR) => Sector::Primary,
            Some(name) => Sector::Named(name),
        }
    }
}

/// Derives the account number of (issuer, subject) under one scope key. See the module doc.
pub(crate) fn derive_account_number(key: &ScopeKey, issuer: &str, subject: &str) -> AccountNumber {
    derive_in_sector(key, Sector::Primary, issuer, subject)
}

/// Derives the account number of (issuer, subject) for a platform in `sector`.
pub(crate) fn derive_in_sector(
    key: &ScopeKey,
    sector: Sector<'_>,
    issuer: &str,
    subject: &str,
) -> AccountNumber {
    let mut mac = key.mac();
    let fields: &[&[u8]] = match sector {
        Sector::Primary => {
            mac.update(DOMAIN_TAG);
            &[issuer.as_bytes(), subject.as_bytes()]
        }
        Sector::Named(name) => {
            mac.update(SECTOR_DOMAIN_TAG);
            &[name.as_bytes(), issuer.as_bytes(), subject.as_bytes()]
        }
    };
    for field in fields {
        // u32 lengths: identifiers are far shorter; a longer one is cut by try_from failing closed.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(field);
    }
    let digest = mac.finalize().into_bytes();
    // 80 bits = 10 bytes = 16 groups of 5 bits.
    let bits = digest[..10].iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut out = format!("v{}", key.version);
    for i in 0..16 {
        if i % 4 == 0 {
            out.push('-');
        }
        let index = (bits >> (75 - 5 * i)) & 0x1f;
        out.push(CROCKFORD[index as usize] as char);
    }
    AccountNumber(out)
}

/// One tenant's pseudonym settings, compiled.
#[derive(Debug, Clone)]
pub struct TenantPseudonyms {
    /// The keyring scope whose keys make this tenant's numbers (shared by tenants that share one).
    pub scope: String,
    /// Which ladder finds the stable subject (identity.rs, `stable_subject`).
    pub idp: IdpKind,
    /// The configured issuer in canonical form: a verified login's issuer must be this one.
    pub issuer: String,
    /// The issuer that enters the account number: `issuer`, or `TenantConfig::account_issuer`.
    pub account_issuer: String,
    /// The tenant's choices for that ladder (email opt-in, the SAML attributes to read).
    pub subject: SubjectRules,
    /// What may leave with the number: roles, school and municipality by explicit maps.
    pub policy: Policy,
}

/// What the platform may learn about one login. Nothing else exists to leak. Serializable
/// only to travel sealed (inside an authorization code, mint/provider.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudonymousLogin {
    /// The tenant id from nymgate's config, never a value from the IdP.
    pub tenant: String,
    /// The account number: the only identifier the platform gets.
    pub sub: AccountNumber,
    /// The key version that made `sub`.
    pub nym_ver: u32,
    /// During a migration window: the number under the previous key version.
    pub sub_prev: Option<AccountNumber>,
    /// `Some("email")` when the tenant opted in to email as the subject (PRODUCT.md).
    pub nym_src: Option<&'static str>,
    /// The role the tenant's policy mapped (student, teacher, ...), or none.
    pub role: Role,
    /// The school code the policy mapped, never the IdP's raw value.
    pub school: Option<String>,
    /// The municipality code the policy mapped, never the IdP's raw value.
    pub municipality: Option<String>,
    /// Names (never values) of what the IdP sent and the platform does not get, for the
    /// transparency page.
    pub removed: Vec<String>,
}

impl PseudonymousLogin {
    /// A student's login at `school-a` under a fixed key, for unit tests of what is made from
    /// a login (tokens, SAML responses).
    #[cfg(test)]
    pub(crate) fn example() -> PseudonymousLogin {
        let key = keyring::ScopeKey::new(1, 0, crate::secret::Secret::new(vec![9; 32]));
        PseudonymousLogin {
            tenant: "school-a".into(),
            sub: derive_account_number(&key, "iss", "sub"),
            nym_ver: 1,
            sub_prev: None,
            nym_src: None,
            role: policy::Role::Student,
            school: Some("school-a".into()),
            municipality: None,
            removed: vec!["email".into()],
        }
    }

    /// The pseudonymous claims as JSON, for the tokens nymgate mints (shared/PRODUCT.md table).
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let mut map = serde_json::Map::new();
        map.insert("sub".into(), Value::from(self.sub.as_str()));
        map.insert("tenant".into(), Value::from(self.tenant.as_str()));
        map.insert("role".into(), Value::from(self.role.as_str()));
        map.insert("nym_ver".into(), Value::from(self.nym_ver));
        if let Some(prev) = &self.sub_prev {
            map.insert("sub_prev".into(), Value::from(prev.as_str()));
        }
        if let Some(source) = self.nym_src {
            map.insert("nym_src".into(), Value::from(source));
        }
        if let Some(school) = &self.school {
            map.insert("school".into(), Value::from(school.as_str()));
        }
        if let Some(municipality) = &self.municipality {
            map.insert("municipality".into(), Value::from(municipality.as_str()));
        }
        map
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    #[error("no tenant {0:?} in the config")]
    UnknownTenant(String),
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Guard(#[from] GuardTrip),
    #[error("scope {0:?} has no keys")]
    NoKeys(String),
    #[error("the login's issuer is not the tenant's configured issuer")]
    IssuerMismatch,
}

impl PseudonymError {
    /// A reason code for metrics and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            PseudonymError::UnknownTenant(_) => "unknown_tenant",
            PseudonymError::Subject(_) => "no_stable_subject",
            PseudonymError::Guard(_) => "guard_tripped",
            PseudonymError::NoKeys(_) => "no_pseudonym_keys",
            PseudonymError::IssuerMismatch => "issuer_mismatch",
        }
    }
}

/// The keyring and every tenant's settings.
#[derive(Debug)]
pub struct Pseudonymizer {
    /// Every scope's keys, current and previous: the HMAC keys of the numbers.
    keyring: Keyring,
    /// Each configured tenant's compiled settings, by tenant id.
    tenants: HashMap<String, TenantPseudonyms>,
}

impl Pseudonymizer {
    /// Compiles the tenants and checks that each tenant's scope has keys.
    pub fn new(config: &Config, keyring: Keyring) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut tenants = HashMap::new();
        for (i, tenant) in config.tenants.iter().enumerate() {
            let scope = tenant.scope_name().to_owned();
            if keyring.scope(&scope).is_err() {
                problems.push(ConfigProblem {
                    field: format!("tenants[{i}].scope"),
                    message: format!(
                        "the keyring has no keys for scope {scope:?}; create them with `nymgate keys new --keyring FILE --scope {scope}`"
                    ),
                });
            }
            // Validation refuses an issuer with no canonical form; should one reach here the
            // tenant is still refused rather than given numbers from a raw spelling.
            let Ok(issuer) = crate::config::issuer::canonical_issuer(&tenant.issuer) else {
                problems.push(ConfigProblem {
                    field: format!("tenants[{i}].issuer"),
                    message: "is not an issuer".into(),
                });
                continue;
            };
            tenants.insert(
                tenant.id.clone(),
                TenantPseudonyms {
                    scope,
                    idp: tenant.idp,
                    account_issuer: tenant.account_issuer.clone().unwrap_or_else(|| issuer.clone()),
                    issuer,
                    subject: SubjectRules {
                        attribute: tenant.subject.attribute.clone(),
                        allow_email: tenant.subject.allow_email,
                    },
                    policy: Policy::new(&tenant.policy),
                },
            );
        }
        if problems.is_empty() {
            Ok(Self { keyring, tenants })
        } else {
            Err(problems)
        }
    }

    /// The keys of a tenant's pseudonym scope (the retention store wraps its data keys with
    /// keys derived from them).
    pub fn scope_keys(&self, tenant_id: &str) -> Option<&keyring::ScopeKeys> {
        self.keyring.scope(&self.tenants.get(tenant_id)?.scope).ok()
    }

    /// The other tenants that share `tenant`'s pseudonym scope.
    pub fn sharing_scope_with(&self, tenant: &str) -> Vec<String> {
        let Some(scope) = self.tenants.get(tenant).map(|t| &t.scope) else { return Vec::new() };
        self.tenants
            .iter()
            .filter(|(id, t)| id.as_str() != tenant && &t.scope == scope)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn tenant(&self, id: &str) -> Result<&TenantPseudonyms, PseudonymError> {
        self.tenants.get(id).ok_or_else(|| PseudonymError::UnknownTenant(id.to_owned()))
    }

    /// The whole pseudonym step of a login. `now` is unix seconds (injected for rotation tests).
    /// `sector` is the platform's that receives the login.
    pub fn pseudonymize(
        &self,
        tenant_id: &str,
        identity: &VerifiedIdentity,
        sector: Sector<'_>,
        now: u64,
    ) -> Result<PseudonymousLogin, PseudonymError> {
        let tenant = self.tenant(tenant_id)?;
        let subject = identity.stable_subject(tenant.idp, &tenant.subject)?;
        // The verifier checked the login's issuer against what the IdP advertises; this checks
        // it names the tenant's configured issuer, whose fixed form then makes the number.
        // Byte-equal first (the usual case, 0.6 µs saved per login; BENCHMARKS.md §9).
        if subject.issuer != tenant.issuer
            && crate::config::issuer::canonical_issuer(subject.issuer).ok().as_deref() != Some(&tenant.issuer)
        {
            return Err(PseudonymError::IssuerMismatch);
        }
        let keys =
            self.keyring.scope(&tenant.scope).map_err(|_| PseudonymError::NoKeys(tenant.scope.clone()))?;
        let current = keys.current();
        let issuer = tenant.account_issuer.as_str();
        let sub = derive_in_sector(current, sector, issuer, subject.subject);
        let sub_prev = keys.previous(now).map(|key| derive_in_sector(key, sector, issuer, subject.subject));
        let mapped = tenant.policy.apply(identity);

        // The guard checks every value that came from the IdP through the policy, against the
        // login's identifying values (the stable subject among them) and the detectors. Every
        // attribute counts as identifying but the known impersonal ones and those the policy
        // reads: their values are what the maps translate (a school code mapped to itself must
        // not refuse the login), and a map that copies a personal one is caught by the
        // detectors (identity.rs, `identifying_values_except`).
        let sources: Vec<&str> = tenant.policy.sources().collect();
        let mut identifying = identity.identifying_values_except(&sources);
        identifying.push(subject.subject);
        let guard = Guard::new(identifying);
        guard.check("role", mapped.role.as_str())?;
        if let Some(school) = &mapped.school {
            guard.check("school", school)?;
        }
        if let Some(municipality) = &mapped.municipality {
            guard.check("municipality", municipality)?;
        }
        // The tenant id comes from nymgate's config, not the IdP, and is the same for every
        // pupil of the school: it cannot carry a pupil's value, so it is run through the
        // detectors only. Fragments would refuse a pupil named "Holm" at `stockholm-skola`.
        if let Some(detector) = guard::detect_personal_pattern(&guard::normalize(tenant_id)) {
            return Err(GuardTrip { claim: "tenant", detector }.into());
        }

        // Names the IdP chose: written only as the vocabulary's own names or `other`, since
        // they reach the log line of the login and the transparency page (vocabulary.rs).
        let mut removed: Vec<String> = identity
            .attributes()
            .iter()
            .filter(|a| !identity::names::PROTOCOL.contains(&a.name.as_str()))
            .map(|a| {
                let by_name = vocabulary::claim_name(&a.name);
                let name = match (by_name, &a.friendly_name) {
                    (vocabulary::OTHER, Some(friendly)) => vocabulary::claim_name(friendly),
                    _ => by_name,
                };
                name.to_owned()
            })
            .collect();
        removed.sort();
        removed.dedup();
        Ok(PseudonymousLogin {
            tenant: tenant_id.to_owned(),
            sub,
            nym_ver: current.version,
            sub_prev,
            nym_src: (subject.source == SubjectSource::Email).then_some("email"),
            role: mapped.role,
            school: mapped.school,
            municipality: mapped.municipality,
            removed,
        })
    }
}

#[cfg(test)]
mod tests;

/// [`PseudonymousLogin`] on the wire: `nym_src` is one of a fixed set of names, read back onto
/// the same static strings.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoginWire {
    tenant: String,
    sub: AccountNumber,
    nym_ver: u32,
    sub_prev: Option<AccountNumber>,
    nym_src: Option<String>,
    role: Role,
    school: Option<String>,
    municipality: Option<String>,
    removed: Vec<String>,
}

// By hand: a derive would tie the deserializer's lifetime to the `&'static str` field.
impl serde::Serialize for PseudonymousLogin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LoginWire::from(self.clone()).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for PseudonymousLogin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LoginWire::deserialize(deserializer)?.try_into().map_err(serde::de::Error::custom)
    }
}

impl From<PseudonymousLogin> for LoginWire {
    fn from(login: PseudonymousLogin) -> Self {
        LoginWire {
            tenant: login.tenant,
            sub: login.sub,
            nym_ver: login.nym_ver,
            sub_prev: login.sub_prev,
            nym_src: login.nym_src.map(str::to_owned),
            role: login.role,
            school: login.school,
            municipality: login.municipality,
            removed: login.removed,
        }
    }
}

impl TryFrom<LoginWire> for PseudonymousLogin {
    type Error = String;
    fn try_from(wire: LoginWire) -> Result<Self, String> {
        let nym_src = match wire.nym_src.as_deref() {
            None => None,
            Some("email") => Some("email"),
            Some(other) => return Err(format!("unknown nym_src {other:?}")),
        };
        Ok(PseudonymousLogin {
            tenant: wire.tenant,
            sub: wire.sub,
            nym_ver: wire.nym_ver,
            sub_prev: wire.sub_prev,
            nym_src,
            role: wire.role,
            school: wire.school,
            municipality: wire.municipality,
            removed: wire.removed,
        })
    }
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod drift_tests;
