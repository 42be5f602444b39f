//! What an OIDC IdP publishes about itself, read for [`OidcIdp`]: the discovery document (OIDC
//! Discovery §4, or the endpoints the tenant configures instead), checked to name the tenant's
//! issuer (§4.3, and Entra ID's `{tenantid}` template), the client built from it, and the IdP's
//! keys from the shared JWKS cache (key_cache.rs). Cached for `metadata_ttl`, with the stale
//! copy serving on through an IdP's blip.
//!
//! A room of oidc_rp.rs (issue 30): the login itself (start, finish, the ID token and userinfo
//! checks) stays there and asks this room for the IdP's current metadata.

use std::time::Instant;

use openidconnect::core::CoreJsonWebKeySet;
use openidconnect::{AuthUrl, ClientId, ClientSecret, IssuerUrl, TokenUrl};

use super::*;
use crate::verify::key_cache::FetchedKeys;

/// The IdP's discovery document: only the members nymgate uses (OIDC Discovery §3, RFC 9207
/// §3, RP-Initiated Logout §2.1).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Discovery as fetched, with the client built from it.
pub(super) struct Discovered {
    /// The exact `iss` expected in ID tokens and RFC 9207 parameters.
    pub(super) issuer: String,
    /// openidconnect's client for the IdP's endpoints: authorization URLs and the code exchange.
    pub(super) client: RpClient,
    /// The IdP's keys, shared with every tenant of the same JWKS (key_cache.rs).
    pub(super) jwks: Arc<JwksCache>,
    /// Where userinfo is asked, when the tenant merges it (OIDC Core §5.3).
    pub(super) userinfo_endpoint: Option<String>,
    /// RP-initiated logout, when the IdP publishes it (RP-Initiated Logout §2.1).
    pub(super) end_session_endpoint: Option<String>,
    /// The IdP advertises RFC 9207 `iss` (§3): a response without it is refused (§2.4).
    pub(super) iss_parameter_supported: bool,
    /// When it was fetched: discovery is read again after `metadata_ttl`.
    fetched: Instant,
}

impl OidcIdp {
    /// The issuer ID tokens must carry: the discovered one, with Entra's `{tenantid}` template
    /// filled with this tenant's directory id (the multi-tenant endpoints advertise the template).
    fn expected_issuer(&self, advertised: &str) -> Result<String, OidcError> {
        if advertised.contains("{tenantid}") {
            let tid = self.entra_tid.as_deref().ok_or(OidcError::DiscoveryIssuerMismatch)?;
            return Ok(advertised.replace("{tenantid}", tid));
        }
        // OIDC Discovery §4.3: the issuer in the document must be the one discovered, here in
        // the canonical form (config/issuer.rs): an IdP that adds a trailing slash or writes
        // its host in capitals is still this IdP. The advertised spelling is kept, and ID
        // tokens and RFC 9207 parameters must carry it byte for byte (OIDC Core §3.1.3.7).
        if !same_issuer(advertised, &self.discovery_url) {
            return Err(OidcError::DiscoveryIssuerMismatch);
        }
        // And it must be the tenant's configured issuer, whose canonical form makes the account
        // numbers: a `discovery_url` that names itself elsewhere is refused here, at the start,
        // not at every pupil's login (Entra's tenant issuer is its directory id, pinned by `tid`).
        if self.kind != IdpKind::Entra && !same_issuer(advertised, &self.explicit_issuer) {
            return Err(OidcError::DiscoveryIssuerMismatch);
        }
        Ok(advertised.to_owned())
    }

    /// `what` names the document for the log: never its URL, which (for the JWKS) the IdP chose.
    async fn fetch_json(&self, url: &str, what: &'static str) -> Result<Vec<u8>, OidcError> {
        let response =
            self.http.get(url, "application/json").await.map_err(|e| OidcError::Metadata(e.to_string()))?;
        if !response.status().is_success() {
            return Err(OidcError::Metadata(format!("the {what} answered {}", response.status().as_u16())));
        }
        Ok(response.into_body())
    }

    /// The IdP's keys for this tenant, no older than `jwks_refresh` (key_cache.rs).
    pub(super) async fn keys(&self, jwks: &JwksCache) -> Result<Arc<FetchedKeys>, OidcError> {
        let keys =
            jwks.fresh(self.jwks_refresh, self.jwks_refetch_interval).await.map_err(OidcError::Metadata)?;
        // The set may be shared with tenants that allow other algorithms.
        if !keys.keys.usable_with(&self.algorithms) {
            return Err(OidcError::Metadata(
                "JWKS: no signing key for the algorithms tenants.oidc.algorithms allows".into(),
            ));
        }
        Ok(keys)
    }

    /// The discovery document (OIDC Discovery §4), and the issuer it names once checked
    /// against the tenant's (`expected_issuer`).
    async fn read_discovery(&self) -> Result<(Metadata, String), OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.discovery_url.trim_end_matches('/'));
        let body = self.fetch_json(&url, "discovery document").await?;
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Metadata(format!("discovery: {}", json_fault(&e))))?;
        let issuer = self.expected_issuer(&metadata.issuer)?;
        Ok((metadata, issuer))
    }

    async fn discover(&self) -> Result<Discovered, OidcError> {
        let (metadata, issuer) = match &self.endpoints {
            Some(endpoints) => (
                Metadata {
                    issuer: self.explicit_issuer.clone(),
                    authorization_endpoint: endpoints.authorization.clone(),
                    token_endpoint: endpoints.token.clone(),
                    userinfo_endpoint: endpoints.userinfo.clone(),
                    jwks_uri: endpoints.jwks.clone(),
                    end_session_endpoint: endpoints.end_session.clone(),
                    authorization_response_iss_parameter_supported: endpoints.iss_parameter,
                },
                self.explicit_issuer.clone(),
            ),
            None => self.read_discovery().await?,
        };
        let http = self.http.clone();
        let jwks =
            self.key_caches
                .cache_for(&metadata.jwks_uri, self.ca_file.as_deref(), &self.tenant, || Arc::new(http));
        // The keys are fetched with discovery (or found in the shared cache), so an IdP whose
        // JWKS is unusable fails the login at its start, not after the person signed in.
        self.keys(&jwks).await?;
        let bad = |what: &str| OidcError::Metadata(format!("discovery: {what} is not a URL"));
        let client = CoreClient::new(
            ClientId::new(self.client_id.clone()),
            IssuerUrl::new(issuer.clone()).map_err(|_| bad("issuer"))?,
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_client_secret(ClientSecret::new(
            String::from_utf8_lossy(self.client_secret.expose()).into_owned(),
        ))
        .set_auth_uri(
            AuthUrl::new(metadata.authorization_endpoint).map_err(|_| bad("authorization_endpoint"))?,
        )
        .set_token_uri(TokenUrl::new(metadata.token_endpoint).map_err(|_| bad("token_endpoint"))?)
        .set_redirect_uri(self.redirect_uri.clone());
        Ok(Discovered {
            issuer,
            client,
            jwks,
            userinfo_endpoint: metadata.userinfo_endpoint,
            end_session_endpoint: metadata.end_session_endpoint,
            iss_parameter_supported: metadata.authorization_response_iss_parameter_supported,
            fetched: Instant::now(),
        })
    }

    /// Discovery, cached for `metadata_ttl` (the keys have their own schedule, key_cache.rs).
    /// When a refresh fails the stale copy serves on (an IdP blip must not stop logins).
    pub(super) async fn discovered(&self) -> Result<Arc<Discovered>, OidcError> {
        if let Some(current) = self.cached.load_full() {
            if current.fetched.elapsed() < self.metadata_ttl {
                return Ok(current);
            }
        }
        let _one_at_a_time = self.fetching.lock().await;
        let stale = self.cached.load_full();
        if let Some(current) = &stale {
            if current.fetched.elapsed() < self.metadata_ttl {
                return Ok(current.clone());
            }
        }
        match self.discover().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.cached.store(Some(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => match stale {
                // An IdP that now names another issuer is not having a blip: the cached copy
                // would keep logins going under an issuer the IdP no longer claims.
                Some(_) if error == OidcError::DiscoveryIssuerMismatch => Err(error),
                Some(stale) => {
                    tracing::warn!(tenant = self.tenant, reason = error.reason(), detail = %error, "IdP metadata refresh failed; using the cached copy");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    /// At start and at a reload: whether the IdP's discovery document names this tenant's
    /// issuer. An IdP that names another is refused then, with a clear error, rather than at the
    /// first pupil's login; one that does not answer is retried at the first login.
    /// Nothing is cached or fetched beyond the document: the first login still reads the
    /// metadata and keys as it always does.
    pub async fn check_issuer(&self) -> Result<(), OidcError> {
        match &self.endpoints {
            Some(_) => Ok(()),
            None => self.read_discovery().await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::idp;
    use super::*;

    #[test]
    fn rp_discovery_issuer_not_matching_config_is_refused() {
        let rp = idp(IdpKind::Oidc, "https://idp.school.example", None);
        assert_eq!(rp.expected_issuer("https://idp.school.example/").unwrap(), "https://idp.school.example/");
        assert_eq!(rp.expected_issuer("https://evil.example"), Err(OidcError::DiscoveryIssuerMismatch));
        // Spellings of the same issuer (config/issuer.rs) are this IdP; the advertised spelling is
        // what ID tokens must carry byte for byte.
        for spelling in [
            "HTTPS://IDP.School.example",
            "https://idp.school.example:443//",
            "https://idp.school.example/./",
        ] {
            assert_eq!(rp.expected_issuer(spelling).as_deref(), Ok(spelling), "{spelling}");
        }
        // A prefix, a path, another scheme or a userinfo is another issuer.
        for other in [
            "https://idp.school.example.evil",
            "https://idp.school.example/tenant",
            "http://idp.school.example",
            "https://a@idp.school.example",
        ] {
            assert_eq!(rp.expected_issuer(other), Err(OidcError::DiscoveryIssuerMismatch), "{other}");
        }
    }

    #[test]
    fn entra_multi_tenant_issuer_template_takes_the_tenants_directory_id() {
        let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let rp = idp(IdpKind::Entra, tid, Some("https://login.microsoftonline.com/organizations/v2.0"));
        assert_eq!(
            rp.expected_issuer("https://login.microsoftonline.com/{tenantid}/v2.0").unwrap(),
            format!("https://login.microsoftonline.com/{tid}/v2.0")
        );
        // A template is no wildcard for a generic OIDC tenant.
        let generic = idp(IdpKind::Oidc, "https://idp.example", None);
        assert!(generic.expected_issuer("https://idp.example/{tenantid}").is_err());
        // Entra's default discovery URL is the tenant-specific one.
        assert_eq!(
            idp(IdpKind::Entra, tid, None).discovery_url,
            format!("https://login.microsoftonline.com/{tid}/v2.0")
        );
    }
}
