//! The verified identity: what a school's IdP said about a person, after nymgate verified it.
//!
//! Only the OIDC and SAML verifiers construct one (the constructors are `pub(crate)`), and the
//! pseudonymizer accepts nothing else, so an unverified claim can't become an account number by
//! accident. Its `Debug` prints attribute names, never values.

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

    /// Attributes whose values identify a person: all of them feed the guard, whatever the policy.
    pub const IDENTIFYING: &[&str] = &[
        "sub",
        "oid",
        "email",
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
        EPPN,
        EPTID,
        MAIL,
        NOREDU_PERSON_NIN,
        SCHAC_PERSONAL_UNIQUE_ID,
        DISPLAY_NAME,
        GIVEN_NAME,
        SURNAME,
        COMMON_NAME,
        UID,
        MOBILE,
        TELEPHONE,
        SAML_PAIRWISE_ID,
        SAML_SUBJECT_ID,
        "eduPersonPrincipalName",
        "eduPersonTargetedID",
        "mail",
        "displayName",
        "givenName",
        "sn",
        "cn",
        "uid",
        "norEduPersonNIN",
        "mobile",
        "telephoneNumber",
        "schacPersonalUniqueID",
    ];
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
    pub values: Vec<String>,
}

/// A SAML NameID.
#[derive(Clone)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
}

/// An identity that nymgate verified. See the module doc.
pub struct VerifiedIdentity {
    /// OIDC `iss`, or the SAML IdP's entity id.
    issuer: String,
    attributes: Vec<Attribute>,
    name_id: Option<NameId>,
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
    #[cfg_attr(not(test), allow(dead_code))] // called by the OIDC verifier
    pub(crate) fn from_oidc(issuer: &str, claims: &serde_json::Map<String, serde_json::Value>) -> Self {
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
    #[cfg_attr(not(test), allow(dead_code))] // called by the SAML verifier
    pub(crate) fn from_saml(entity_id: &str, name_id: Option<NameId>, attributes: Vec<Attribute>) -> Self {
        Self { issuer: entity_id.to_owned(), attributes, name_id }
    }

    /// For benchmarks and tests outside the crate only: an identity nobody verified.
    #[cfg(feature = "unverified-identity")]
    pub fn unverified_for_benchmarks(
        issuer: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self::from_oidc(issuer, claims)
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

    /// Every value that identifies the person, for the guard.
    pub fn identifying_values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .attributes
            .iter()
            .filter(|a| {
                names::IDENTIFYING.contains(&a.name.as_str())
                    || a.friendly_name.as_deref().is_some_and(|f| names::IDENTIFYING.contains(&f))
            })
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
    pub subject: &'a str,
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
mod tests {
    use super::*;
    use serde_json::json;

    fn oidc(claims: serde_json::Value) -> VerifiedIdentity {
        VerifiedIdentity::from_oidc("https://idp.example", claims.as_object().unwrap())
    }

    fn attr(name: &str, value: &str) -> Attribute {
        Attribute { name: name.into(), friendly_name: None, values: vec![value.into()] }
    }

    #[test]
    fn entra_uses_tid_and_oid_not_sub() {
        let id = oidc(json!({"sub": "pairwise", "tid": "t-1", "oid": "o-1", "email": "a@b.se"}));
        let s = id.stable_subject(IdpKind::Entra, &SubjectRules::default()).unwrap();
        assert_eq!((s.issuer, s.subject, s.source), ("t-1", "o-1", SubjectSource::EntraObjectId));
    }

    #[test]
    fn generic_oidc_uses_iss_and_sub() {
        let id = oidc(json!({"sub": "248289761001", "email": "a@b.se"}));
        let s = id.stable_subject(IdpKind::Google, &SubjectRules::default()).unwrap();
        assert_eq!((s.issuer, s.subject), ("https://idp.example", "248289761001"));
    }

    #[test]
    fn saml_ladder_in_order() {
        let persistent = NameId { value: "nid".into(), format: Some(name_id_format::PERSISTENT.into()) };
        let rules = SubjectRules { attribute: Some(names::EPPN.into()), allow_email: false };
        let all = VerifiedIdentity::from_saml(
            "https://idp.school",
            Some(persistent.clone()),
            vec![
                attr(names::EPPN, "e@school"),
                attr(names::SAML_SUBJECT_ID, "sid@school"),
                attr(names::SAML_PAIRWISE_ID, "pw@school"),
            ],
        );
        assert_eq!(all.stable_subject(IdpKind::Saml, &rules).unwrap().source, SubjectSource::SamlPairwiseId);
        let no_pairwise = VerifiedIdentity::from_saml(
            "https://idp.school",
            Some(persistent.clone()),
            vec![attr(names::EPPN, "e@school"), attr(names::SAML_SUBJECT_ID, "sid@school")],
        );
        assert_eq!(
            no_pairwise.stable_subject(IdpKind::Saml, &rules).unwrap().source,
            SubjectSource::SamlSubjectId
        );
        let nameid_only = VerifiedIdentity::from_saml(
            "https://idp.school",
            Some(persistent),
            vec![attr(names::EPPN, "e@school")],
        );
        assert_eq!(
            nameid_only.stable_subject(IdpKind::Saml, &rules).unwrap().source,
            SubjectSource::SamlPersistentNameId
        );
        let transient = NameId { value: "t".into(), format: Some(name_id_format::TRANSIENT.into()) };
        let attribute_only = VerifiedIdentity::from_saml(
            "https://idp.school",
            Some(transient),
            vec![attr(names::EPPN, "e@school")],
        );
        let s = attribute_only.stable_subject(IdpKind::Saml, &rules).unwrap();
        assert_eq!((s.subject, s.source), ("e@school", SubjectSource::SamlAttribute));
    }

    #[test]
    fn email_only_on_explicit_opt_in() {
        let id = VerifiedIdentity::from_saml(
            "https://idp.school",
            None,
            vec![attr(names::MAIL, "alice@school.se")],
        );
        assert!(id.stable_subject(IdpKind::Saml, &SubjectRules::default()).is_err());
        let rules = SubjectRules { attribute: None, allow_email: true };
        let s = id.stable_subject(IdpKind::Saml, &rules).unwrap();
        assert_eq!((s.subject, s.source), ("alice@school.se", SubjectSource::Email));
    }

    #[test]
    fn debug_shows_names_not_values() {
        let id = oidc(json!({"sub": "s-123", "email": "alice@school.se"}));
        let text = format!("{id:?}");
        assert!(text.contains("email") && !text.contains("alice") && !text.contains("s-123"), "{text}");
    }
}
