//! The verified identity: what a school's IdP said about a person, after nymgate verified it.
//!
//! Only the OIDC and SAML verifiers construct one (the constructors are `pub(in crate::verify)`,
//! the fields private, and nothing derives `Deserialize` or `Default`), and the pseudonymizer
//! accepts nothing else, so an unverified claim can't become an account number: the compiler
//! refuses the code that would try. Its `Debug` prints attribute names, never values.

use std::fmt;

use crate::config::IdpKind;

/// Well-known attribute names (OIDC claim names, and SAML urn:oid names with friendly names).
pub mod names {
    pub const OIDC_SUB: &str = "sub";
    pub const OIDC_EMAIL: &str = "email";
    /// Entra ID: the directory (tenant) id and the object id (Microsoft identity platform ID
    /// token claims reference). `oid` is stable and never reassigned within a tenant.
    pub const ENTRA_TID: &str = "tid";
    pub const ENTRA_OID: &str = "oid";
    /// SAML subject identifiers (OASIS SAML V2.0 Subject Identifier Attributes Profile, §3).
    pub const SAML_PAIRWISE_ID: &str = "urn:oasis:names:tc:SAML:attribute:pairwise-id";
    pub const SAML_SUBJECT_ID: &str = "urn:oasis:names:tc:SAML:attribute:subject-id";
    /// eduPerson and inetOrgPerson attributes (eduPerson 202208, RFC 2798).
    pub const EPPN: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";
    pub const EPTID: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.10";
    pub const MAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";
    pub const AFFILIATION: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1";
    pub const SCOPED_AFFILIATION: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.9";
    pub const PRIMARY_AFFILIATION: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.5";
    pub const ORG_UNIT_DN: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.4";
    /// norEdu: the school unit code (Skolfederation: Skolverket's 8-digit skolenhetskod) and the
    /// organisation number of the school owner (Feide: the municipality).
    pub const NOREDU_ORG_UNIT_ID: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.8";
    pub const NOREDU_ORG_NIN: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.12";
    pub const NOREDU_PERSON_NIN: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.5";
    pub const SCHAC_PERSONAL_UNIQUE_ID: &str = "urn:oid:1.3.6.1.4.1.25178.1.2.15";
    pub const DISPLAY_NAME: &str = "urn:oid:2.16.840.1.113730.3.1.241";
    pub const GIVEN_NAME: &str = "urn:oid:2.5.4.42";
    pub const SURNAME: &str = "urn:oid:2.5.4.4";
    pub const COMMON_NAME: &str = "urn:oid:2.5.4.3";
    pub const UID: &str = "urn:oid:0.9.2342.19200300.100.1.1";
    pub const MOBILE: &str = "urn:oid:0.9.2342.19200300.100.1.41";
    pub const TELEPHONE: &str = "urn:oid:2.5.4.20";

    /// norEdu and SCHAC attributes about the person (norEdu 1.6, SCHAC 1.6).
    pub const NOREDU_PERSON_LIN: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.4";
    pub const NOREDU_PERSON_LEGAL_NAME: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.10";
    pub const NOREDU_PERSON_BIRTH_DATE: &str = "urn:oid:1.3.6.1.4.1.2428.90.1.3";
    pub const SCHAC_DATE_OF_BIRTH: &str = "urn:oid:1.3.6.1.4.1.25178.1.2.3";
    /// eduPersonUniqueId (eduPerson 202208 §2.2.14).
    pub const EDU_PERSON_UNIQUE_ID: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.13";
    /// Skolfederation and Swedish e-identification: personalIdentityNumber (urn:oid:1.2.752.29.4.13).
    pub const PERSONAL_IDENTITY_NUMBER: &str = "urn:oid:1.2.752.29.4.13";

    /// Attributes whose values identify a person, by name or friendly name, compared without
    /// regard to ASCII case. Every attribute that is not known to be impersonal
    /// ([`NON_PERSONAL`]) or read by the tenant's policy feeds the guard anyway
    /// (`VerifiedIdentity::identifying_values_except`); this list says which ones feed it
    /// *whatever* the policy reads and whatever their other name says.
    pub const IDENTIFYING: &[&str] = &[
        // OpenID Connect Core §5.1, Entra ID, Keycloak, ID-porten, Swedish OIDC claims.
        "sub",
        "oid",
        "email",
        "emails",
        "verified_primary_email",
        "verified_secondary_email",
        "upn",
        "unique_name",
        "preferred_username",
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "phone_number",
        "birthdate",
        "address",
        "picture",
        "profile",
        "website",
        "login_hint",
        "ipaddr",
        "onprem_sid",
        "pid",
        "personal_identity_number",
        "https://id.oidc.se/claim/personalIdentityNumber",
        "https://id.oidc.se/claim/coordinationNumber",
        // Entra ID and ADFS SAML claim URIs (WS-Federation claim types).
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/mobilephone",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/homephone",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/otherphone",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/dateofbirth",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/streetaddress",
        "http://schemas.microsoft.com/identity/claims/displayname",
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
        "http://schemas.xmlsoap.org/claims/CommonName",
        "http://schemas.xmlsoap.org/claims/EmailAddress",
        "http://schemas.xmlsoap.org/claims/UPN",
        // SAML: eduPerson, inetOrgPerson, norEdu, SCHAC, by OID and by friendly name.
        EPPN,
        EPTID,
        EDU_PERSON_UNIQUE_ID,
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.16", // eduPersonOrcid
        MAIL,
        NOREDU_PERSON_NIN,
        NOREDU_PERSON_LIN,
        NOREDU_PERSON_LEGAL_NAME,
        NOREDU_PERSON_BIRTH_DATE,
        SCHAC_PERSONAL_UNIQUE_ID,
        "urn:oid:1.3.6.1.4.1.25178.1.2.14", // schacPersonalUniqueCode
        SCHAC_DATE_OF_BIRTH,
        PERSONAL_IDENTITY_NUMBER,
        DISPLAY_NAME,
        GIVEN_NAME,
        SURNAME,
        COMMON_NAME,
        UID,
        MOBILE,
        TELEPHONE,
        "urn:oid:0.9.2342.19200300.100.1.20", // homePhone
        "urn:oid:0.9.2342.19200300.100.1.39", // homePostalAddress
        "urn:oid:2.5.4.16",                   // postalAddress
        "urn:oid:2.5.4.9",                    // street
        "urn:oid:2.5.4.43",                   // initials
        "urn:oid:2.16.840.1.113730.3.1.3",    // employeeNumber
        SAML_PAIRWISE_ID,
        SAML_SUBJECT_ID,
        "eduPersonPrincipalName",
        "eduPersonTargetedID",
        "eduPersonUniqueId",
        "eduPersonOrcid",
        "mail",
        "displayName",
        "givenName",
        "sn",
        "cn",
        "uid",
        "norEduPersonNIN",
        "norEduPersonLIN",
        "norEduPersonLegalName",
        "norEduPersonBirthDate",
        "schacDateOfBirth",
        "schacPersonalUniqueID",
        "schacPersonalUniqueCode",
        "personalIdentityNumber",
        "mobile",
        "telephoneNumber",
        "homePhone",
        "homePostalAddress",
        "postalAddress",
        "street",
        "initials",
        "employeeNumber",
        "pairwise-id",
        "subject-id",
    ];

    /// OIDC and JWT protocol claims: about the token, not the person (OpenID Connect Core §2,
    /// RFC 7519 §4.1, Entra ID's token claims). Not listed as "removed" on a login either.
    pub const PROTOCOL: &[&str] = &[
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "auth_time",
        "azp",
        "sid",
        "jti",
        "acr",
        "amr",
        "ver",
        "uti",
        "rh",
        "aio",
        "idp",
        "s_hash",
    ];

    /// Claims and attributes known to say nothing about the person, besides [`PROTOCOL`]:
    /// verification flags and preferences, the directory (tenant) and its groups and roles, the
    /// hosted domain, affiliations and entitlements, organisation ids and names. Compared
    /// without regard to ASCII case; a name in [`IDENTIFYING`] wins over these.
    pub const NON_PERSONAL: &[&str] = &[
        "email_verified",
        "phone_number_verified",
        "locale",
        "zoneinfo",
        "updated_at",
        "tid",
        "groups",
        "roles",
        "wids",
        "hasgroups",
        "hd",
        // Entra ID's SAML names for tid, groups, roles, idp and amr.
        "http://schemas.microsoft.com/identity/claims/tenantid",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "http://schemas.microsoft.com/identity/claims/identityprovider",
        "http://schemas.microsoft.com/claims/authnmethodsreferences",
        // eduPerson (202208): affiliations, entitlement, the organisation's DNs.
        AFFILIATION,
        SCOPED_AFFILIATION,
        PRIMARY_AFFILIATION,
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.7", // eduPersonEntitlement
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.3", // eduPersonOrgDN
        ORG_UNIT_DN,
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.8", // eduPersonPrimaryOrgUnitDN
        "eduPersonAffiliation",
        "eduPersonScopedAffiliation",
        "eduPersonPrimaryAffiliation",
        "eduPersonEntitlement",
        "eduPersonOrgDN",
        "eduPersonOrgUnitDN",
        "eduPersonPrimaryOrgUnitDN",
        // norEdu (1.6): the organisation's and the unit's numbers, ids and acronym.
        "urn:oid:1.3.6.1.4.1.2428.90.1.1", // norEduOrgUniqueNumber
        "urn:oid:1.3.6.1.4.1.2428.90.1.2", // norEduOrgUnitUniqueNumber
        "urn:oid:1.3.6.1.4.1.2428.90.1.6", // norEduOrgAcronym
        "urn:oid:1.3.6.1.4.1.2428.90.1.7", // norEduOrgUniqueIdentifier
        NOREDU_ORG_UNIT_ID,
        NOREDU_ORG_NIN,
        "norEduOrgUniqueNumber",
        "norEduOrgUnitUniqueNumber",
        "norEduOrgAcronym",
        "norEduOrgUniqueIdentifier",
        "norEduOrgUnitUniqueIdentifier",
        "norEduOrgNIN",
        // SCHAC (1.6): the home organisation and its type.
        "urn:oid:1.3.6.1.4.1.25178.1.2.9",  // schacHomeOrganization
        "urn:oid:1.3.6.1.4.1.25178.1.2.10", // schacHomeOrganizationType
        "schacHomeOrganization",
        "schacHomeOrganizationType",
        // X.520 organisation and unit names.
        "urn:oid:2.5.4.10",
        "urn:oid:2.5.4.11",
        "o",
        "ou",
        "organizationName",
        "organizationalUnitName",
    ];

    fn listed(list: &[&str], name: &str) -> bool {
        list.iter().any(|known| known.eq_ignore_ascii_case(name))
    }

    /// Whether `name` (an attribute's name or friendly name) is known to identify a person.
    pub fn is_identifying(name: &str) -> bool {
        listed(IDENTIFYING, name)
    }

    /// Whether `name` is known to say nothing about the person ([`PROTOCOL`], [`NON_PERSONAL`]).
    pub fn is_non_personal(name: &str) -> bool {
        listed(PROTOCOL, name) || listed(NON_PERSONAL, name)
    }
}

/// SAML NameID formats (SAML core §8.3).
pub mod name_id_format {
    pub const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    pub const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
    pub const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
    pub const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
}

/// One attribute or claim, with all its values as text.
#[derive(Clone)]
pub struct Attribute {
    /// OIDC claim name, or SAML `Name` (usually urn:oid).
    pub name: String,
    /// SAML `FriendlyName`, if given.
    pub friendly_name: Option<String>,
    /// Every value, as text, in the order the IdP sent them.
    pub values: Vec<String>,
}

/// A SAML NameID.
#[derive(Clone)]
pub struct NameId {
    /// The NameID as sent (personal: never logged).
    pub value: String,
    /// Its `Format` (SAML Core §8.3): a transient one is no stable subject.
    pub format: Option<String>,
}

/// An identity that nymgate verified. See the module doc.
///
/// The door is the compiler's: outside `verify`, neither constructor nor a struct literal
/// compiles (`cargo test --doc`, run by tests/run.sh, checks both; error codes are checked only
/// by a nightly rustdoc, so the first example is the control that everything else compiles).
///
/// ```
/// // Everything the refused examples need, without the refused step.
/// let claims = serde_json::Map::new();
/// let read = |id: &nymgate::verify::identity::VerifiedIdentity| id.issuer().len();
/// let _ = (claims, read);
/// ```
///
/// ```compile_fail,E0624
/// let claims = serde_json::Map::new();
/// let id = nymgate::verify::identity::VerifiedIdentity::from_oidc("https://idp.example", &claims);
/// ```
///
/// ```compile_fail,E0624
/// let id = nymgate::verify::identity::VerifiedIdentity::from_saml("https://idp.example", None, vec![]);
/// ```
///
/// ```compile_fail,E0451
/// let id = nymgate::verify::identity::VerifiedIdentity {
///     issuer: String::new(),
///     attributes: vec![],
///     name_id: None,
/// };
/// ```
pub struct VerifiedIdentity {
    /// OIDC `iss`, or the SAML IdP's entity id.
    issuer: String,
    /// Every claim or attribute of the verified token or assertion, nothing else.
    attributes: Vec<Attribute>,
    /// The verified assertion's Subject NameID (SAML only).
    name_id: Option<NameId>,
}

/// The crate's own unit tests of the floors above (the policy, the guard, the chooser) build
/// identities directly. Only under `cfg(test)`, which is the library's unit-test build alone: no
/// binary, benchmark, fuzz target or integration test can reach these.
#[cfg(test)]
impl VerifiedIdentity {
    pub(crate) fn test_oidc(issuer: &str, claims: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self::from_oidc(issuer, claims)
    }

    pub(crate) fn test_saml(entity_id: &str, name_id: Option<NameId>, attributes: Vec<Attribute>) -> Self {
        Self::from_saml(entity_id, name_id, attributes)
    }
}

impl fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdentity")
            .field("attributes", &self.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>())
            .field("name_id", &self.name_id.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl VerifiedIdentity {
    /// From a verified ID token's (and userinfo's) claims. Strings, numbers and booleans become
    /// text; arrays become several values; objects are kept out (no policy reads them).
    pub(in crate::verify) fn from_oidc(
        issuer: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        use serde_json::Value;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let attributes = claims
            .iter()
            .map(|(name, value)| Attribute {
                name: name.clone(),
                friendly_name: None,
                values: match value {
                    Value::Array(items) => items.iter().filter_map(text).collect(),
                    other => text(other).into_iter().collect(),
                },
            })
            .collect();
        Self { issuer: issuer.to_owned(), attributes, name_id: None }
    }

    /// From a verified SAML assertion's NameID and attributes.
    pub(in crate::verify) fn from_saml(
        entity_id: &str,
        name_id: Option<NameId>,
        attributes: Vec<Attribute>,
    ) -> Self {
        Self { issuer: entity_id.to_owned(), attributes, name_id }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// All values of the first attribute matching any of `names` (by name or friendly name).
    pub fn values(&self, names: &[String]) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|a| names.iter().any(|n| a.name == *n || a.friendly_name.as_deref() == Some(n)))
            .flat_map(|a| a.values.iter().map(String::as_str))
            .collect()
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name || a.friendly_name.as_deref() == Some(name))
            .and_then(|a| a.values.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every value that may identify the person, for the guard: see
    /// [`identifying_values_except`](Self::identifying_values_except), with no policy sources.
    pub fn identifying_values(&self) -> Vec<&str> {
        self.identifying_values_except::<&str>(&[])
    }

    /// Every value that may identify the person, for the guard, and the NameID. An attribute
    /// counts unless it is known to be impersonal: its name or friendly name is among
    /// `policy_sources` (the names the tenant's policy reads, compared as the policy compares
    /// them: exactly) or [`names::PROTOCOL`] or [`names::NON_PERSONAL`]. A name in
    /// [`names::IDENTIFYING`] makes it count whatever its other name is and whatever the policy
    /// reads. Known lists compare without regard to ASCII case (`EMAIL`, `Mail`).
    ///
    /// Inverted on purpose: an IdP sends claims nobody listed (an ID-porten `pid`, a custom
    /// `personnummer`, a directory's `homeroom_teacher`), and a value the guard does not know
    /// is a value it cannot stop.
    pub fn identifying_values_except<S: AsRef<str>>(&self, policy_sources: &[S]) -> Vec<&str> {
        let impersonal = |attribute: &Attribute| {
            let names = || std::iter::once(attribute.name.as_str()).chain(attribute.friendly_name.as_deref());
            let exempt = |name: &str| {
                names::is_non_personal(name) || policy_sources.iter().any(|source| source.as_ref() == name)
            };
            names().any(exempt) && !names().any(names::is_identifying)
        };
        let mut out: Vec<&str> = self
            .attributes
            .iter()
            .filter(|a| !impersonal(a))
            .flat_map(|a| a.values.iter().map(String::as_str))
            .collect();
        if let Some(name_id) = &self.name_id {
            out.push(&name_id.value);
        }
        out
    }
}

/// Where the stable subject came from (recorded in the token when it is the email).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSource {
    EntraObjectId,
    OidcSub,
    SamlPairwiseId,
    SamlSubjectId,
    SamlPersistentNameId,
    SamlAttribute,
    /// Only with the tenant's explicit `subject.allow_email`.
    Email,
}

/// The input to the account number: which issuer, which stable subject.
pub struct StableSubject<'a> {
    /// The issuer component of the HMAC input: the Entra directory id, the OIDC `iss`, or the
    /// SAML entity id.
    pub issuer: &'a str,
    /// The stable subject itself (personal: only ever an HMAC input).
    pub subject: &'a str,
    /// Which rung of the ladder gave it: an email subject is recorded in the token (`nym_src`).
    pub source: SubjectSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the IdP sent no stable subject this tenant accepts ({0})")]
    Missing(&'static str),
}

/// What a tenant accepts as the stable subject.
#[derive(Debug, Clone, Default)]
pub struct SubjectRules {
    /// SAML: the attribute tried after pairwise-id, subject-id and a persistent NameID
    /// (for example eduPersonPrincipalName or eduPersonTargetedID).
    pub attribute: Option<String>,
    /// Use the email when nothing else is there. Off by default; recorded in the token.
    pub allow_email: bool,
}

impl VerifiedIdentity {
    /// The stable-subject ladder (shared/PRODUCT.md, "Stable subject"). Email only on opt-in,
    /// and only as the last rung.
    pub fn stable_subject(
        &self,
        idp: IdpKind,
        rules: &SubjectRules,
    ) -> Result<StableSubject<'_>, SubjectError> {
        let found = |issuer, subject, source| Ok(StableSubject { issuer, subject, source });
        match idp {
            IdpKind::Entra => {
                // tid + oid: `sub` is pairwise per application, `oid` is the object in the directory.
                if let (Some(tid), Some(oid)) = (self.first(names::ENTRA_TID), self.first(names::ENTRA_OID)) {
                    return found(tid, oid, SubjectSource::EntraObjectId);
                }
            }
            IdpKind::Google | IdpKind::Oidc => {
                if let Some(sub) = self.first(names::OIDC_SUB) {
                    return found(&self.issuer, sub, SubjectSource::OidcSub);
                }
            }
            IdpKind::Saml => {
                if let Some(v) = self.first(names::SAML_PAIRWISE_ID) {
                    return found(&self.issuer, v, SubjectSource::SamlPairwiseId);
                }
                if let Some(v) = self.first(names::SAML_SUBJECT_ID) {
                    return found(&self.issuer, v, SubjectSource::SamlSubjectId);
                }
                if let Some(id) = &self.name_id {
                    if id.format.as_deref() == Some(name_id_format::PERSISTENT) && !id.value.is_empty() {
                        return found(&self.issuer, &id.value, SubjectSource::SamlPersistentNameId);
                    }
                }
                if let Some(v) = rules.attribute.as_deref().and_then(|name| self.first(name)) {
                    return found(&self.issuer, v, SubjectSource::SamlAttribute);
                }
            }
        }
        if rules.allow_email {
            let email = self
                .first(names::OIDC_EMAIL)
                .or_else(|| self.first(names::MAIL))
                .or_else(|| self.first("mail"))
                .or_else(|| {
                    self.name_id
                        .as_ref()
                        .filter(|id| id.format.as_deref() == Some(name_id_format::EMAIL))
                        .map(|id| id.value.as_str())
                });
            if let Some(email) = email {
                let issuer = if idp == IdpKind::Entra {
                    self.first(names::ENTRA_TID).unwrap_or(&self.issuer)
                } else {
                    &self.issuer
                };
                return found(issuer, email, SubjectSource::Email);
            }
        }
        Err(SubjectError::Missing(match idp {
            IdpKind::Entra => "tid and oid",
            IdpKind::Google | IdpKind::Oidc => "sub",
            IdpKind::Saml => "pairwise-id, subject-id, a persistent NameID or the configured attribute",
        }))
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
