//! Which tenant and which sector a login is for, as the login face decides them (issue 26,
//! docs/PSEUDONYMS.md "Identity that never drifts"): the start-time issuer check, the sector of
//! the platform a login goes to, a platform's bound tenant, and the tenant of a response nobody
//! asked for. The pure rules are in tenant_choice.rs and config/identity.rs; these read the
//! login face's state.

use std::sync::Arc;

use super::{saml_tenant, FlowError, Login, Next, ISSUER_CHECK_WITHIN};
use crate::config::Config;
use crate::pseudonym::Sector;
use crate::verify::oidc_rp::OidcError;
use crate::verify::saml_acs;

impl Login {
    /// At start and at a reload: every OIDC tenant's IdP is asked for its discovery document at
    /// once (bounded by `ISSUER_CHECK_WITHIN`), and one that names another issuer than the
    /// tenant's configured one refuses the start or the reload (docs/PSEUDONYMS.md, "A stable
    /// issuer"). An IdP that does not answer in time is logged and retried at the first login:
    /// a school's outage must not stop every other school's logins.
    pub async fn check_issuers(&self, config: &Config) -> Result<(), Vec<crate::config::ConfigProblem>> {
        let checks = self.oidc.iter().map(|(tenant, idp)| async move {
            (tenant, tokio::time::timeout(ISSUER_CHECK_WITHIN, idp.check_issuer()).await)
        });
        let mut problems = Vec::new();
        for (tenant, outcome) in futures_util::future::join_all(checks).await {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(OidcError::DiscoveryIssuerMismatch)) => problems
                    .push(crate::config::ConfigProblem::new(
                    config.tenant_field(tenant, "issuer"),
                    "the IdP's discovery document names another issuer than the tenant's `issuer` (in any \
                     spelling); account numbers are made from the configured issuer, so correct the config \
                     or the IdP",
                )),
                Ok(Err(error)) => {
                    tracing::warn!(
                        tenant,
                        reason = error.reason(),
                        "IdP discovery not read at start; retried at the first login"
                    )
                }
                Err(_) => tracing::warn!(
                    tenant,
                    "IdP discovery did not answer at start; retried at the first login"
                ),
            }
        }
        problems.sort_by(|a, b| a.field.cmp(&b.field));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The sector of the platform a login goes to: its number is made for that platform
    /// (pseudonym/mod.rs, "Sectors"). The assertion header's platform is the primary one.
    pub(super) fn sector(&self, next: &Next) -> Sector<'_> {
        let configured = match next {
            Next::Platform(request) => {
                self.provider.client(request.client_id()).and_then(|c| c.sector.as_deref())
            }
            Next::SamlSp(request) => return self.sp_sector(&request.sp),
            Next::Session { .. } => None,
        };
        Sector::of(configured)
    }

    /// The tenant a SAML platform is bound to (`service_providers.tenant`), if any.
    pub(super) fn bound_tenant(&self, sp: &str) -> Option<&str> {
        self.saml_idp.as_ref()?.service_provider(sp)?.tenant.as_deref()
    }

    pub(super) fn sp_sector(&self, entity_id: &str) -> Sector<'_> {
        let sp = self.saml_idp.as_ref().and_then(|idp| idp.service_provider(entity_id));
        Sector::of(sp.and_then(|sp| sp.sector.as_deref()))
    }

    async fn saml_trust(&self, tenant: &str) -> Result<Arc<saml_tenant::Trusted>, FlowError> {
        let saml = self.saml.get(tenant).ok_or(FlowError::UnknownTenant)?;
        saml.trusted().await.map_err(FlowError::SamlMetadata)
    }

    /// The SAML tenants whose issuer a response's (unverified) Issuer names, in config order.
    pub(super) fn saml_tenants_of(&self, xml: &str) -> Result<Vec<String>, FlowError> {
        let issuer = saml_acs::claimed_issuer(xml)?;
        let candidates: Vec<String> = self
            .choice
            .by_issuer(&issuer)
            .into_iter()
            .filter(|id| self.saml.contains_key(*id))
            .map(str::to_owned)
            .collect();
        if candidates.is_empty() {
            return Err(saml_acs::SamlError::Issuer.into());
        }
        Ok(candidates)
    }

    /// A response no flow of nymgate's asked for, from an IdP that `candidates` (config order)
    /// share: verified with the first one's trust, filed under the one tenant its verified
    /// `select` attribute names (tenant_choice.rs), and verified with that tenant's own trust
    /// too when it is another. `tenant` is set for the audit once the tenant is known.
    pub(super) async fn verify_unsolicited(
        &self,
        xml: &str,
        candidates: &[String],
        expected: &saml_acs::Expected<'_>,
        tenant: &mut Option<String>,
    ) -> Result<(String, saml_acs::VerifiedResponse), FlowError> {
        let first = candidates.first().ok_or(saml_acs::SamlError::Issuer)?;
        if candidates.len() == 1 {
            *tenant = Some(first.clone());
        }
        let verified = saml_acs::verify(xml, &self.saml_trust(first).await?.trust, expected)?;
        let names: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let chosen = self.choice.pick(&names, &verified.identity)?.to_owned();
        *tenant = Some(chosen.clone());
        if chosen == *first {
            return Ok((chosen, verified));
        }
        let verified = saml_acs::verify(xml, &self.saml_trust(&chosen).await?.trust, expected)?;
        Ok((chosen, verified))
    }
}
