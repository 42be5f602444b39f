//! Which tenant a verified login belongs to (docs/PSEUDONYMS.md, "One IdP, several schools").
//!
//! A login nymgate started belongs to the tenant it was started for, carried in the sealed
//! flow; nothing the IdP or the browser sends afterwards changes that. A response nobody asked
//! for (IdP-initiated, or posted to an intercepted platform ACS) has only its Issuer, which is
//! unverified and which several tenants may share: it is verified against the first tenant of
//! that issuer in config order, and then a verified attribute (`tenants.select`) must name
//! exactly one of them. Nothing depends on a hash map's order, a restart or a replica.

use crate::config::identity::canonical_select_value;
use crate::config::issuer::canonical_issuer;
use crate::config::Config;
use crate::verify::identity::VerifiedIdentity;

/// Why a login is not filed under a tenant. Each is a refusal the client is answerable for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the login's select attribute names none of the tenants that share its IdP")]
    NotSelected,
    #[error("the login's select attribute names more than one tenant")]
    Ambiguous,
    #[error("the login's select attribute does not name the tenant the login was started for")]
    Mismatch,
}

impl ChoiceError {
    pub fn reason(&self) -> &'static str {
        match self {
            ChoiceError::NotSelected => "tenant_not_selected",
            ChoiceError::Ambiguous => "tenant_ambiguous",
            ChoiceError::Mismatch => "tenant_mismatch",
        }
    }
}

/// `tenants.select`, compiled: the attribute and the canonical values that mean the tenant.
#[derive(Debug, Clone)]
struct Selector {
    attribute: [String; 1],
    values: Vec<String>,
}

impl Selector {
    /// Whether any value of the attribute is, or has as its scope, one of the tenant's values.
    fn matches(&self, identity: &VerifiedIdentity) -> bool {
        identity.values(&self.attribute).into_iter().any(|value| {
            let value = canonical_select_value(value);
            let scope = value.rsplit_once('@').map(|(_, scope)| scope);
            self.values.iter().any(|v| *v == value || Some(v.as_str()) == scope)
        })
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    id: String,
    /// The configured issuer's canonical form (config/issuer.rs).
    issuer: String,
    select: Option<Selector>,
}

/// Every tenant's issuer and selector, in config order.
#[derive(Debug, Clone, Default)]
pub struct TenantChoice {
    tenants: Vec<Candidate>,
}

impl TenantChoice {
    pub fn new(config: &Config) -> Self {
        let tenants = config
            .tenants
            .iter()
            .filter_map(|t| {
                Some(Candidate {
                    id: t.id.clone(),
                    issuer: canonical_issuer(&t.issuer).ok()?,
                    select: t.select.as_ref().map(|s| Selector {
                        attribute: [s.attribute.clone()],
                        values: s.values.iter().map(|v| canonical_select_value(v)).collect(),
                    }),
                })
            })
            .collect();
        Self { tenants }
    }

    /// The tenants whose issuer `claimed` is (in any spelling), in config order.
    pub fn by_issuer(&self, claimed: &str) -> Vec<&str> {
        let Ok(claimed) = canonical_issuer(claimed) else { return Vec::new() };
        self.tenants.iter().filter(|t| t.issuer == claimed).map(|t| t.id.as_str()).collect()
    }

    /// The one tenant among `candidates` (tenants of one issuer) that a verified unsolicited
    /// login belongs to. A lone candidate without a selector takes it; otherwise exactly one
    /// candidate's selector must match, and a candidate without one never does.
    pub fn pick<'a>(
        &self,
        candidates: &[&'a str],
        identity: &VerifiedIdentity,
    ) -> Result<&'a str, ChoiceError> {
        if let [only] = candidates {
            if self.selector(only).is_none() {
                return Ok(only);
            }
        }
        let mut matching =
            candidates.iter().copied().filter(|id| self.selector(id).is_some_and(|s| s.matches(identity)));
        match (matching.next(), matching.next()) {
            (Some(id), None) => Ok(id),
            (None, _) => Err(ChoiceError::NotSelected),
            (Some(_), Some(_)) => Err(ChoiceError::Ambiguous),
        }
    }

    /// A login for `tenant` (started for it, or picked): when the tenant has a selector, the
    /// verified attribute must name it.
    pub fn confirm(&self, tenant: &str, identity: &VerifiedIdentity) -> Result<(), ChoiceError> {
        match self.selector(tenant) {
            Some(selector) if !selector.matches(identity) => Err(ChoiceError::Mismatch),
            _ => Ok(()),
        }
    }

    fn selector(&self, tenant: &str) -> Option<&Selector> {
        self.tenants.iter().find(|t| t.id == tenant)?.select.as_ref()
    }
}

#[cfg(test)]
#[path = "tenant_choice_tests.rs"]
mod tests;
