//! One SAML tenant's IdP at run time: where to send the browser and which keys to trust, from
//! the config (pinned) or from the IdP's metadata (a file or a URL), refreshed every
//! `metadata_refresh`. A failed refresh keeps the last good copy until its `validUntil`, so an
//! IdP or federation blip does not stop logins; an expired copy is never used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;

use super::saml_sp::SamlIdp;
use crate::clock::unix_now;
use crate::config::login::SamlTenantConfig;
use crate::config::TenantConfig;
use crate::idp_http::IdpHttp;
use crate::verify::saml_acs::{IdpTrust, RequiredSignatures};
use crate::verify::saml_metadata;

/// What a login uses: the IdP as of the last (re)load.
pub struct Trusted {
    pub idp: SamlIdp,
    pub trust: IdpTrust,
    loaded: Instant,
    valid_until: Option<u64>,
}

enum Source {
    /// `sso_url` and `certificate_files` only.
    Config,
    File(PathBuf),
    Url {
        url: String,
        http: Box<IdpHttp>,
    },
}

pub struct SamlTenant {
    /// The IdP's entity id (the tenant's `issuer`): fixed, so unsolicited responses can pick
    /// their tenant before anything is fetched.
    pub entity_id: String,
    tenant: String,
    settings: SamlTenantConfig,
    pinned: Vec<Vec<u8>>,
    federation: Option<IdpTrust>,
    source: Source,
    current: ArcSwapOption<Trusted>,
    loading: tokio::sync::Mutex<()>,
}

/// Every file of a list, or the field's problem: (the tenant's field, what is wrong).
fn read_all(paths: &[PathBuf], field: &'static str) -> Result<Vec<Vec<u8>>, (&'static str, String)> {
    paths
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| (field, format!("cannot read {}: {e}", path.display()))))
        .collect()
}

impl SamlTenant {
    /// From the config. Pinned certificates and metadata files are read now, so a broken one
    /// stops `nymgate serve` with a clear error; a metadata URL is fetched at first use.
    /// A problem is given as the tenant's field (`saml.ca_file`) and what is wrong with it.
    pub fn new(tenant: &TenantConfig, settings: &SamlTenantConfig) -> Result<Self, (&'static str, String)> {
        let pinned = read_all(&settings.certificate_files, "saml.certificate_files")?;
        let federation_certs = read_all(
            &settings.metadata_signing_certificate_files,
            "saml.metadata_signing_certificate_files",
        )?;
        let federation = (!federation_certs.is_empty())
            .then(|| IdpTrust::new("", &federation_certs, RequiredSignatures::Either, false, 0, false))
            .transpose()
            .map_err(|e| ("saml.metadata_signing_certificate_files", e.to_string()))?;
        let source = match (&settings.metadata_file, &settings.metadata_url) {
            (Some(path), _) => Source::File(path.clone()),
            (None, Some(url)) => Source::Url {
                url: url.clone(),
                http: Box::new(
                    IdpHttp::new(settings.ca_file.as_deref()).map_err(|e| ("saml.ca_file", e.to_string()))?,
                ),
            },
            (None, None) => Source::Config,
        };
        let this = SamlTenant {
            entity_id: tenant.issuer.clone(),
            tenant: tenant.id.clone(),
            settings: settings.clone(),
            pinned,
            federation,
            source,
            current: ArcSwapOption::empty(),
            loading: tokio::sync::Mutex::new(()),
        };
        if let Source::Config | Source::File(_) = this.source {
            let text =
                match &this.source {
                    Source::File(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                        ("saml.metadata_file", format!("cannot read {}: {e}", path.display()))
                    })?),
                    _ => None,
                };
            // Metadata from a file is the file's problem; without one, the section's.
            let field = if text.is_some() { "saml.metadata_file" } else { "saml" };
            let trusted = this.build(text.as_deref()).map_err(|e| (field, e))?;
            this.current.store(Some(Arc::new(trusted)));
        }
        Ok(this)
    }

    /// The IdP as it stands now, reloading its metadata when due.
    pub async fn trusted(&self) -> Result<Arc<Trusted>, String> {
        let refresh = self.settings.metadata_refresh;
        let fresh = |t: &Trusted| matches!(self.source, Source::Config) || t.loaded.elapsed() < refresh;
        if let Some(current) = self.current.load_full().filter(|t| fresh(t)) {
            return Ok(current);
        }
        let _one_at_a_time = self.loading.lock().await;
        let stale = self.current.load_full();
        if let Some(current) = stale.as_ref().filter(|t| fresh(t)) {
            return Ok(current.clone());
        }
        match self.reload().await {
            Ok(trusted) => {
                let trusted = Arc::new(trusted);
                self.current.store(Some(trusted.clone()));
                tracing::info!(tenant = self.tenant, "SAML IdP metadata loaded");
                Ok(trusted)
            }
            Err(error) => match stale.filter(|t| t.valid_until.is_none_or(|until| unix_now() < until)) {
                Some(stale) => {
                    tracing::warn!(tenant = self.tenant, %error, "SAML metadata refresh failed; using the last good copy");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    async fn reload(&self) -> Result<Trusted, String> {
        let text = match &self.source {
            Source::Config => None,
            Source::File(path) => Some(
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            Source::Url { url, http } => {
                let response = http
                    .get(url, "application/samlmetadata+xml, application/xml")
                    .await
                    .map_err(|e| format!("metadata fetch failed: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("metadata fetch answered {}", response.status()));
                }
                Some(
                    String::from_utf8(response.into_body())
                        .map_err(|_| "metadata is not UTF-8".to_owned())?,
                )
            }
        };
        self.build(text.as_deref())
    }

    /// The trust from the config, with the metadata's SSO location and keys where the config
    /// gives none (pinned certificates win: an operator who pins means it).
    fn build(&self, metadata: Option<&str>) -> Result<Trusted, String> {
        let descriptor = metadata
            .map(|text| saml_metadata::read(text, &self.entity_id, self.federation.as_ref(), unix_now()))
            .transpose()?;
        let sso_url = self
            .settings
            .sso_url
            .clone()
            .or_else(|| descriptor.as_ref().and_then(|d| d.sso_url.clone()))
            .ok_or("the metadata names no HTTP-Redirect SingleSignOnService and sso_url is not set")?;
        let certificates = match (&descriptor, self.pinned.is_empty()) {
            (Some(d), true) => d.certificates.clone(),
            _ => self.pinned.clone(),
        };
        let s = &self.settings;
        let trust = IdpTrust::new(
            &self.entity_id,
            &certificates,
            s.required_signatures,
            s.allow_weak_algorithms,
            s.clock_skew.as_secs(),
            s.allow_unsolicited,
        )?;
        if s.allow_weak_algorithms {
            tracing::warn!(
                tenant = self.tenant,
                "allow_weak_algorithms: SHA-1 signatures and short RSA keys are accepted from this IdP"
            );
        }
        let idp = SamlIdp {
            tenant: self.tenant.clone(),
            entity_id: self.entity_id.clone(),
            sso_url,
            name_id_format: s.name_id_format.clone(),
            sign_requests: s.sign_authn_requests,
        };
        Ok(Trusted {
            idp,
            trust,
            loaded: Instant::now(),
            valid_until: descriptor.and_then(|d| d.valid_until),
        })
    }
}
