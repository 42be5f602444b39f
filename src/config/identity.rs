//! The identity rules of a config (docs/PSEUDONYMS.md, "Identity that never drifts"): every
//! issuer has a canonical form, tenants that share an IdP are told apart by a verified
//! attribute, and every platform's account numbers belong to one sector.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::issuer::{canonical_issuer, same_issuer};
use super::{Config, IdpKind, TenantConfig};

/// Google's OIDC issuer, for every Google Workspace.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The sector whose account numbers are the ones nymgate made before sectors existed: a
/// platform in it keeps every number it has.
pub const PRIMARY_SECTOR: &str = "primary";

/// `[tenants.select]`: which verified attribute files an unsolicited login under this tenant
/// when several tenants share one IdP (Feide serves every Norwegian school from one entity id;
/// a municipality IdP serves several schools). The login belongs to the tenant one of whose
/// `values` the attribute carries; a login that names no tenant, or two, is refused. A tenant
/// with a `select` also refuses a login it started whose attribute names another tenant or
/// none: a pupil of school B who signs in from school A's tile is not filed under A.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSelectConfig {
    /// The attribute or claim, by name or SAML FriendlyName (e.g. `schacHomeOrganization`,
    /// `eduPersonPrincipalName`, `eduPersonScopedAffiliation`, or a school-code attribute).
    pub attribute: String,
    /// The values that mean this tenant. A value matches when it is one of them, or when its
    /// scope (the part after its last `@`, as in `student@school-a.no`) is; compared in the
    /// canonical form of [`canonical_select_value`].
    pub values: Vec<String>,
}

/// The one form in which select values are compared: Unicode NFKC, surrounding whitespace
/// removed, lower case. A scope (`SKOLA-A.no`, `skola-a.no `) is one value in every spelling.
pub fn canonical_select_value(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // Lower case after NFKC, and NFKC once more: a few capitals lower-case to sequences that
    // compose, and the form must be its own canonical form.
    let lower = value.nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect::<String>().trim().to_owned()
}

/// Tenants whose issuers are one issuer, grouped by its canonical form, in config order.
/// Tenants whose issuer is no issuer are left out (validation reports them).
pub fn shared_issuers(tenants: &[TenantConfig]) -> Vec<(String, Vec<&TenantConfig>)> {
    let mut groups: Vec<(String, Vec<&TenantConfig>)> = Vec::new();
    for tenant in tenants {
        let Ok(canonical) = canonical_issuer(&tenant.issuer) else { continue };
        match groups.iter_mut().find(|(issuer, _)| *issuer == canonical) {
            Some((_, members)) => members.push(tenant),
            None => groups.push((canonical, vec![tenant])),
        }
    }
    groups.retain(|(_, members)| members.len() > 1);
    groups
}

impl Config {
    /// Issuers, shared IdPs and sectors (docs/PSEUDONYMS.md).
    pub(super) fn validate_identity(&self, problem: &mut impl FnMut(&str, String)) {
        for (i, tenant) in self.tenants.iter().enumerate() {
            match canonical_issuer(&tenant.issuer) {
                Err(error) => problem(&format!("tenants[{i}].issuer"), format!("{error}")),
                // Numbers used to be made from this spelling (SAML) or the IdP's (OIDC): an
                // upgrade must not renumber a school's pupils without the config saying so.
                Ok(canonical) if canonical != tenant.issuer && tenant.account_issuer.is_none() => problem(
                    &format!("tenants[{i}].issuer"),
                    format!(
                        "is not in canonical form ({canonical:?}), and account numbers are made from the \
                         canonical form: write it so for a new tenant, or, for a tenant onboarded before \
                         canonical issuers whose numbers must stay, set account_issuer to the spelling \
                         they were made from (docs/PSEUDONYMS.md, \"Upgrading\")"
                    ),
                ),
                Ok(_) => {}
            }
            // Google has one issuer for every Workspace (a school is told apart by `hd`).
            if tenant.idp == IdpKind::Google && !same_issuer(&tenant.issuer, GOOGLE_ISSUER) {
                problem(
                    &format!("tenants[{i}].issuer"),
                    format!("for idp = \"google\" it is {GOOGLE_ISSUER:?} (pin the school with required_claims hd)"),
                );
            }
            if let Some(account_issuer) = &tenant.account_issuer {
                if account_issuer.is_empty() || account_issuer.chars().any(char::is_control) {
                    problem(&format!("tenants[{i}].account_issuer"), "must be a non-empty string".into());
                }
            }
            if let Some(select) = &tenant.select {
                if select.attribute.trim().is_empty() {
                    problem(&format!("tenants[{i}].select.attribute"), "must name an attribute".into());
                }
                if select.values.is_empty()
                    || select.values.iter().any(|v| canonical_select_value(v).is_empty())
                {
                    problem(&format!("tenants[{i}].select.values"), "must list non-empty values".into());
                }
            }
        }
        self.validate_shared_issuers(problem);
        self.validate_sectors(problem);
    }

    /// Whether a response that no flow of nymgate's asked for can reach `tenant`: IdP-initiated
    /// SAML, or a school's response posted to an intercepted platform ACS.
    fn unsolicited_possible(&self, tenant: &TenantConfig) -> bool {
        let intercepting = self
            .login
            .as_ref()
            .and_then(|l| l.saml_idp.as_ref())
            .is_some_and(|idp| idp.service_providers.iter().any(|sp| sp.intercept));
        tenant.idp == IdpKind::Saml
            && (tenant.saml.as_ref().is_some_and(|s| s.allow_unsolicited) || intercepting)
    }

    /// Tenants on one IdP that an unsolicited response can reach must each say, with the same
    /// verified attribute and values no other of them uses, which of its logins are theirs.
    /// Otherwise the (unverified) Issuer alone would pick one: which one would depend on
    /// nothing the school controls.
    fn validate_shared_issuers(&self, problem: &mut impl FnMut(&str, String)) {
        for (_, members) in shared_issuers(&self.tenants) {
            let ids: Vec<&str> = members.iter().map(|t| t.id.as_str()).collect();
            if !members.iter().any(|t| self.unsolicited_possible(t)) {
                // Only logins nymgate started: each stays with its tenant, and each tenant must
                // still say which of the IdP's users are its own, or a pupil of school B who
                // starts at school A's tile is filed under A (deny by default).
                for tenant in members.iter().filter(|t| !pins_its_users(t)) {
                    problem(
                        &format!("tenants[{}].select", self.index_of(&tenant.id)),
                        format!(
                            "tenants {} share one IdP: each needs `select` (or, for OIDC, \
                             `oidc.required_claims` such as Google's hd) saying which of its users \
                             are this school's",
                            ids.join(", ")
                        ),
                    );
                }
                continue;
            }
            let attribute = members[0].select.as_ref().map(|s| s.attribute.as_str());
            let mut owner: BTreeMap<String, &str> = BTreeMap::new();
            for tenant in &members {
                let field = format!("tenants[{}].select", self.index_of(&tenant.id));
                let Some(select) = &tenant.select else {
                    problem(
                        &field,
                        format!(
                            "tenants {} share one IdP that can send logins nobody asked for \
                             (IdP-initiated or intercepted): each needs `select` (the verified \
                             attribute and values that mean this school)",
                            ids.join(", ")
                        ),
                    );
                    continue;
                };
                if Some(select.attribute.as_str()) != attribute {
                    problem(
                        &format!("{field}.attribute"),
                        format!(
                            "tenants {} share one IdP: give them the same select.attribute",
                            ids.join(", ")
                        ),
                    );
                }
                for value in &select.values {
                    if let Some(other) = owner.insert(canonical_select_value(value), &tenant.id) {
                        if other != tenant.id {
                            problem(
                                &format!("{field}.values"),
                                format!("{value:?} is also a value of tenant {other:?}: a login must name one school"),
                            );
                        }
                    }
                }
            }
        }
    }

    fn index_of(&self, tenant: &str) -> usize {
        self.tenants.iter().position(|t| t.id == tenant).unwrap_or(0)
    }

    /// Two platforms get unlinkable numbers unless they share a sector on purpose. A platform
    /// that names no sector is in the primary one; two such platforms would share numbers by
    /// omission, which is refused (OIDC Core §8.1: clients on one redirect host are one
    /// sector, so several clients of one platform may omit it).
    fn validate_sectors(&self, problem: &mut impl FnMut(&str, String)) {
        let Some(login) = &self.login else { return };
        let mut implicit: Vec<(String, String)> = Vec::new();
        // Platforms that name the primary sector: they share it on purpose, but one that names
        // nothing must not join them by omission.
        let mut explicit_primary = 0;
        // The platform behind nymgate that reads the assertion header is in the primary sector.
        if login.output == super::LoginOutput::AssertionHeader {
            implicit.push(("login.output".into(), "the assertion-header platform".into()));
        }
        let service_providers =
            login.saml_idp.iter().flat_map(|idp| idp.service_providers.iter()).enumerate();
        for (i, sp) in service_providers {
            let field = format!("login.saml_idp.service_providers[{i}].sector");
            match &sp.sector {
                Some(sector) => {
                    check_sector_name(sector, &field, problem);
                    explicit_primary += usize::from(sector == PRIMARY_SECTOR);
                }
                None => implicit.push((field, format!("service provider {:?}", sp.entity_id))),
            }
        }
        let mut client_hosts: Vec<Vec<String>> = Vec::new();
        // Clients are platforms only where the provider output answers them.
        let clients = login.clients.iter().filter(|_| login.output == super::LoginOutput::Provider);
        for (i, client) in clients.enumerate() {
            let field = format!("login.clients[{i}].sector");
            match &client.sector {
                Some(sector) => {
                    check_sector_name(sector, &field, problem);
                    explicit_primary += usize::from(sector == PRIMARY_SECTOR);
                }
                None => {
                    let mut hosts: Vec<String> = client
                        .redirect_uris
                        .iter()
                        .filter_map(|uri| uri.parse::<http::Uri>().ok()?.host().map(str::to_ascii_lowercase))
                        .collect();
                    hosts.sort();
                    hosts.dedup();
                    if !client_hosts.contains(&hosts) {
                        client_hosts.push(hosts);
                        implicit.push((field, format!("client {:?}", client.client_id)));
                    }
                }
            }
        }
        if implicit.len() + explicit_primary > 1 {
            let names: Vec<&str> = implicit.iter().map(|(_, name)| name.as_str()).collect();
            // The assertion-header platform has no sector of its own to set: the others must.
            for (field, _) in implicit.iter().filter(|(field, _)| field != "login.output") {
                problem(
                    field,
                    format!(
                        "{} name no sector, so each pupil would have one account number on all of \
                         them and the platforms could join their data: give each its own `sector` \
                         (the one that keeps today's numbers: \"{PRIMARY_SECTOR}\"), or the same \
                         one to share numbers on purpose (docs/PSEUDONYMS.md)",
                        names.join(", ")
                    ),
                );
            }
        }
    }

    /// Groups of tenants that share an IdP and how a login is filed under one of them, for
    /// `nymgate check`.
    pub fn explain_shared_issuers(&self) -> Vec<String> {
        shared_issuers(&self.tenants)
            .into_iter()
            .map(|(issuer, members)| {
                let ids: Vec<&str> = members.iter().map(|t| t.id.as_str()).collect();
                let rule = match members[0].select.as_ref() {
                    Some(select) => format!(
                        "a login nymgate started stays with the tenant it was started for and must \
                         carry one of that tenant's `{}` values; an unsolicited one goes to the \
                         tenant whose value it carries",
                        select.attribute
                    ),
                    None => "a login stays with the tenant it was started for and must carry that \
                             tenant's required_claims; unsolicited logins cannot reach them"
                        .to_owned(),
                };
                format!("tenants {} share the issuer {issuer}: {rule}", ids.join(", "))
            })
            .collect()
    }
}

/// Whether a tenant says, by a verified attribute, which of a shared IdP's users are its own.
fn pins_its_users(tenant: &TenantConfig) -> bool {
    tenant.select.is_some() || tenant.oidc.as_ref().is_some_and(|oidc| !oidc.required_claims.is_empty())
}

fn check_sector_name(sector: &str, field: &str, problem: &mut impl FnMut(&str, String)) {
    if !super::is_valid_name(sector) {
        problem(field, format!("{sector:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'"));
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
