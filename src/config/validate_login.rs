//! The checks of `[login]`, `[login.saml_idp]` and its service providers.

use std::time::Duration;

use super::{
    cert_strength, check_private_file, login, owns_path, validate_https_url, validate_secret_source,
};
use super::{Config, LoginOutput, SignatureAlgorithm};

impl Config {
    pub(super) fn validate_login(&self, problem: &mut impl FnMut(&str, String)) {
        let Some(login) = &self.login else { return };
        if let Err(message) = validate_https_url(&login.public_url, false) {
            problem("login.public_url", message);
        } else if let Some(hosts) = self.public_hosts() {
            // Every link nymgate hands out names public_url: a host it would then refuse with
            // 421 breaks every login.
            let host = login.public_url.split("://").nth(1).unwrap_or("").split(['/', '?', '#']).next();
            if !host.is_some_and(|h| hosts.allows(h)) {
                problem(
                    "login.public_url",
                    "its host is not one of server.public_hosts (or, with none listed, a name of the \
                     TLS certificate): add it there"
                        .into(),
                );
            }
        }
        if let Some(source) = &login.seal_secret {
            validate_secret_source(source, "login.seal_secret", problem);
        }
        for (field, path) in
            login.signing.key_file.iter().map(|p| ("login.signing.key_file", p)).chain(
                login.signing.previous_key_files.iter().map(|p| ("login.signing.previous_key_files", p)),
            )
        {
            if let Err(message) = check_private_file(path) {
                problem(field, message);
            }
        }
        if login.code_lifetime.is_zero() || login.code_lifetime > Duration::from_secs(600) {
            problem("login.code_lifetime", "must be more than 0s and at most 10m (RFC 6749 §4.1.2)".into());
        }
        for (field, value) in [
            ("login.flow_lifetime", login.flow_lifetime),
            ("login.session_lifetime", login.session_lifetime),
            ("login.token_lifetime", login.token_lifetime),
            ("login.assertion.lifetime", login.assertion.lifetime),
            ("login.blocking.window", login.blocking.window),
            ("login.blocking.block_for", login.blocking.block_for),
        ] {
            if value.is_zero() {
                problem(field, "must be more than 0s".into());
            }
        }
        if login.blocking.max_failures == 0 {
            problem("login.blocking.max_failures", "must be at least 1".into());
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            if tenant.max_failed_logins == Some(0) {
                problem(&format!("tenants[{i}].max_failed_logins"), "must be at least 1".into());
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, client) in login.clients.iter().enumerate() {
            if client.client_id.is_empty() || !ids.insert(client.client_id.as_str()) {
                problem(&format!("login.clients[{i}].client_id"), "must be non-empty and unique".into());
            }
            validate_secret_source(
                &client.client_secret,
                &format!("login.clients[{i}].client_secret"),
                problem,
            );
            if client.redirect_uris.is_empty() {
                problem(&format!("login.clients[{i}].redirect_uris"), "must list at least one URI".into());
            }
            for uri in &client.redirect_uris {
                if let Err(message) = validate_https_url(uri, true) {
                    problem(&format!("login.clients[{i}].redirect_uris"), message);
                }
            }
        }
        if login.output == LoginOutput::Provider && login.clients.is_empty() {
            problem("login.clients", "the provider output needs at least one platform client".into());
        }
        if http::HeaderName::from_bytes(login.assertion.header.as_bytes()).is_err() {
            problem(
                "login.assertion.header",
                format!("{:?} is not a valid header name", login.assertion.header),
            );
        }
        if self.tenants.is_empty() {
            problem("tenants", "login needs at least one tenant".into());
        }
        if let Some(saml) = &login.saml {
            if let Err(e) = std::fs::metadata(&saml.cert_file) {
                problem("login.saml.cert_file", format!("cannot read {}: {e}", saml.cert_file.display()));
            }
            if let Err(message) = check_private_file(&saml.key_file) {
                problem("login.saml.key_file", message);
            }
        }
        match &login.saml_idp {
            Some(idp) => self.validate_saml_idp(idp, problem),
            None if login.output == LoginOutput::Saml => {
                problem("login.saml_idp", "the saml output needs [login.saml_idp]".into())
            }
            None => {}
        }
    }

    /// `[login.saml_idp]` and its service providers.
    fn validate_saml_idp(&self, idp: &login::SamlIdpConfig, problem: &mut impl FnMut(&str, String)) {
        if let Err(e) = std::fs::metadata(&idp.cert_file) {
            problem("login.saml_idp.cert_file", format!("cannot read {}: {e}", idp.cert_file.display()));
        }
        if let Err(message) = check_private_file(&idp.key_file) {
            problem("login.saml_idp.key_file", message);
        }
        if SignatureAlgorithm::from_name(&idp.signature_algorithm).is_none() {
            problem(
                "login.saml_idp.signature_algorithm",
                format!("{:?}: use rsa-sha256, rsa-sha512 or ecdsa-sha256", idp.signature_algorithm),
            );
        }
        if idp.assertion_lifetime.is_zero() || idp.assertion_lifetime > Duration::from_secs(3600) {
            problem("login.saml_idp.assertion_lifetime", "must be more than 0s and at most 1h".into());
        }
        if idp.service_providers.is_empty() {
            problem("login.saml_idp.service_providers", "must list at least one platform".into());
        }
        let mut ids = std::collections::HashSet::new();
        for (i, sp) in idp.service_providers.iter().enumerate() {
            let field = |name: &str| format!("login.saml_idp.service_providers[{i}].{name}");
            if sp.entity_id.trim().is_empty() || !ids.insert(sp.entity_id.as_str()) {
                problem(&field("entity_id"), "must be non-empty and unique".into());
            }
            if let Err(message) = validate_https_url(&sp.acs_url, true) {
                problem(&field("acs_url"), message);
            }
            for path in &sp.certificate_files {
                // Read as serve reads it (saml_idp.rs: IdpTrust without weak algorithms).
                if let Err(message) = cert_strength::strong_enough(path, false) {
                    problem(&field("certificate_files"), message);
                }
            }
            let own_path = self.login.as_ref().and_then(|l| {
                let rest = sp.acs_url.strip_prefix(l.public_url.trim_end_matches('/'))?;
                rest.starts_with('/').then_some(rest)
            });
            match own_path {
                Some(path) if sp.intercept && owns_path(path) => problem(
                    &field("acs_url"),
                    "an intercepted ACS is the platform's path, not one under /nymgate".into(),
                ),
                None if sp.intercept => problem(
                    &field("acs_url"),
                    "with intercept = true it must be a path of login.public_url (the platform behind nymgate)"
                        .into(),
                ),
                _ => {}
            }
            if let Some(tenant) = &sp.tenant {
                if !self.tenants.iter().any(|t| &t.id == tenant) {
                    problem(&field("tenant"), format!("{tenant:?} is not a configured tenant"));
                }
            }
        }
    }
}
