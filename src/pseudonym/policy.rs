//! The claim policy: which IdP claims or SAML attributes become `role`, `school` and
//! `municipality`, through explicit maps. Everything else is dropped, by construction: the
//! output type has no field for anything else.

use std::collections::BTreeMap;

use super::identity::{names, VerifiedIdentity};
use crate::config::{PolicyConfig, PolicyPreset};

/// The normalized role (shared/PRODUCT.md, "What the platform receives"): the config maps
/// values to it (`role_map`), so the type lives there.
pub use crate::config::Role;

/// A tenant's compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    role_from: Vec<String>,
    /// Keys lowercased.
    role_map: BTreeMap<String, Role>,
    school_from: Vec<String>,
    school_map: BTreeMap<String, String>,
    municipality_from: Vec<String>,
    municipality_map: BTreeMap<String, String>,
}

/// The mapped attributes of one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedClaims {
    pub role: Role,
    pub school: Option<String>,
    pub municipality: Option<String>,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// eduPersonAffiliation values (eduPerson 202208 §2.2.1) onto the four roles.
fn affiliation_map() -> BTreeMap<String, Role> {
    [
        ("student", Role::Student),
        ("faculty", Role::Teacher),
        ("teacher", Role::Teacher),
        ("staff", Role::Staff),
        ("employee", Role::Staff),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Policy {
    /// Builds a policy from its config: the preset's sources and maps first, then every field the
    /// tenant sets replaces the preset's.
    pub fn new(config: &PolicyConfig) -> Policy {
        let (role_from, role_map, school_from, municipality_from) = match config.preset {
            // Entra ID has no standard role claim: app roles named Student, Teacher, Staff.
            Some(PolicyPreset::Entra) => (
                strings(&["roles"]),
                [("student", Role::Student), ("teacher", Role::Teacher), ("staff", Role::Staff)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                vec![],
                vec![],
            ),
            // Google Workspace's ID token carries no role or school: configure custom claims.
            Some(PolicyPreset::Google) | None => (vec![], BTreeMap::new(), vec![], vec![]),
            // Skolfederation: eduPersonAffiliation / eduPersonScopedAffiliation, and the school
            // unit code (Skolverket's 8-digit skolenhetskod) in norEduOrgUnitUniqueIdentifier.
            Some(PolicyPreset::Skolfederation) => (
                strings(&[
                    names::AFFILIATION,
                    "eduPersonAffiliation",
                    names::SCOPED_AFFILIATION,
                    "eduPersonScopedAffiliation",
                ]),
                affiliation_map(),
                strings(&[names::NOREDU_ORG_UNIT_ID, "norEduOrgUnitUniqueIdentifier"]),
                vec![],
            ),
            // Feide: affiliations; the school's organisation number (NO + 9 digits); the school
            // owner's organisation number (the municipality) in norEduOrgNIN.
            Some(PolicyPreset::Feide) => (
                strings(&[
                    names::AFFILIATION,
                    "eduPersonAffiliation",
                    names::PRIMARY_AFFILIATION,
                    "eduPersonPrimaryAffiliation",
                ]),
                affiliation_map(),
                strings(&[
                    names::NOREDU_ORG_UNIT_ID,
                    "norEduOrgUnitUniqueIdentifier",
                    "eduPersonOrgUnitDN:norEduOrgUnitUniqueIdentifier",
                ]),
                strings(&[names::NOREDU_ORG_NIN, "norEduOrgNIN"]),
            ),
        };
        Policy {
            role_from: config.role_from.clone().unwrap_or(role_from),
            role_map: config
                .role_map
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect())
                .unwrap_or(role_map),
            school_from: config.school_from.clone().unwrap_or(school_from),
            school_map: config.school_map.clone(),
            municipality_from: config.municipality_from.clone().unwrap_or(municipality_from),
            municipality_map: config.municipality_map.clone(),
        }
    }

    /// The attribute names this policy reads (by name or friendly name): the guard does not
    /// count their values as identifying, since they are what the maps translate (mod.rs).
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.role_from.iter().chain(&self.school_from).chain(&self.municipality_from).map(String::as_str)
    }

    /// Maps one login's attributes. Unmapped values are dropped; no role maps to `other`.
    pub fn apply(&self, identity: &VerifiedIdentity) -> MappedClaims {
        let role = identity
            .values(&self.role_from)
            .into_iter()
            .filter_map(|value| {
                // A scoped affiliation (`student@school.se`) maps by its unscoped part.
                let unscoped = value.split('@').next().unwrap_or(value).trim().to_lowercase();
                self.role_map.get(&unscoped).copied()
            })
            .max()
            .unwrap_or(Role::Other);
        let lookup = |from: &[String], map: &BTreeMap<String, String>| {
            identity.values(from).into_iter().find_map(|value| map.get(value.trim()).cloned())
        };
        MappedClaims {
            role,
            school: lookup(&self.school_from, &self.school_map),
            municipality: lookup(&self.municipality_from, &self.municipality_map),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::identity::Attribute;

    fn saml(attrs: &[(&str, Option<&str>, &[&str])]) -> VerifiedIdentity {
        VerifiedIdentity::test_saml(
            "https://idp.school",
            None,
            attrs
                .iter()
                .map(|(n, f, v)| Attribute {
                    name: (*n).into(),
                    friendly_name: f.map(Into::into),
                    values: v.iter().map(|s| (*s).into()).collect(),
                })
                .collect(),
        )
    }

    #[test]
    fn skolfederation_preset_maps_affiliation_and_school_code() {
        let config = PolicyConfig {
            preset: Some(PolicyPreset::Skolfederation),
            school_map: [("21648755".to_owned(), "school-a".to_owned())].into(),
            ..Default::default()
        };
        let policy = Policy::new(&config);
        let teacher = saml(&[
            (
                names::SCOPED_AFFILIATION,
                Some("eduPersonScopedAffiliation"),
                &["member@skola.se", "faculty@skola.se", "student@skola.se"],
            ),
            (names::NOREDU_ORG_UNIT_ID, None, &["21648755"]),
        ]);
        assert_eq!(
            policy.apply(&teacher),
            MappedClaims { role: Role::Teacher, school: Some("school-a".into()), municipality: None }
        );
        let unknown_school = saml(&[
            ("eduPersonAffiliation", None, &["student"]),
            ("norEduOrgUnitUniqueIdentifier", None, &["99999999"]),
        ]);
        assert_eq!(
            policy.apply(&unknown_school),
            MappedClaims { role: Role::Student, school: None, municipality: None }
        );
    }

    #[test]
    fn feide_preset_maps_municipality_by_friendly_name() {
        let config = PolicyConfig {
            preset: Some(PolicyPreset::Feide),
            municipality_map: [("NO974565633".to_owned(), "skotthyll".to_owned())].into(),
            ..Default::default()
        };
        let id = saml(&[
            (names::NOREDU_ORG_NIN, Some("norEduOrgNIN"), &["NO974565633"]),
            ("eduPersonAffiliation", None, &["staff"]),
        ]);
        let mapped = Policy::new(&config).apply(&id);
        assert_eq!((mapped.role, mapped.municipality.as_deref()), (Role::Staff, Some("skotthyll")));
    }

    #[test]
    fn tenant_fields_replace_the_preset_and_unmapped_roles_are_other() {
        let config = PolicyConfig {
            preset: Some(PolicyPreset::Entra),
            role_from: Some(vec!["groups".into()]),
            role_map: Some([("Lärare".to_owned(), Role::Teacher)].into()),
            ..Default::default()
        };
        let policy = Policy::new(&config);
        let claims = serde_json::json!({"groups": ["lärare"], "roles": ["Student"]});
        let id = VerifiedIdentity::test_oidc("https://x", claims.as_object().unwrap());
        assert_eq!(policy.apply(&id).role, Role::Teacher);
        let none = VerifiedIdentity::test_oidc(
            "https://x",
            serde_json::json!({"roles": ["Student"]}).as_object().unwrap(),
        );
        assert_eq!(policy.apply(&none).role, Role::Other);
    }
}
