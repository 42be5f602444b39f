//! Why a login failed, as one reason code (audit, metrics, alerts) and one status, and which
//! refusals count toward blocking the client.

use super::*;

/// Why a browser login failed. The page shows a reference only; the reason code goes to the
/// audit log and the metrics; the detail (without personal values) to the log.
#[derive(Debug, thiserror::Error)]
pub(super) enum FlowError {
    #[error("no such tenant")]
    UnknownTenant,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error(transparent)]
    Saml(#[from] saml_acs::SamlError),
    #[error("SAML IdP metadata unavailable: {0}")]
    SamlMetadata(String),
    #[error(transparent)]
    Pseudonym(#[from] PseudonymError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the IdP answered with an error")]
    IdpError,
    #[error(transparent)]
    SamlOut(#[from] saml_idp::SamlOutError),
    /// Answered to the platform with a SAML status instead of a login (saml_out.rs).
    #[error("answered the platform with a SAML status")]
    SamlStatus(saml_idp::StatusAnswer, Box<saml_idp::SpRequest>),
    #[error(transparent)]
    Retention(#[from] crate::retention::RetentionError),
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    /// A platform bound to one tenant (`service_providers.tenant`) asked for, or was sent,
    /// another tenant's login.
    #[error("the platform is bound to another tenant")]
    TenantNotAllowed,
}

impl FlowError {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            FlowError::UnknownTenant => "unknown_tenant",
            FlowError::BadRequest(reason) => reason,
            FlowError::Oidc(e) => e.reason(),
            FlowError::Saml(e) => e.reason(),
            FlowError::SamlMetadata(_) => "saml_metadata_unavailable",
            FlowError::Pseudonym(e) => e.reason(),
            FlowError::Store(StoreError::Full) => "store_full",
            FlowError::Store(StoreError::Unavailable) => "store_unavailable",
            FlowError::IdpError => "idp_error",
            FlowError::SamlOut(e) => e.reason(),
            FlowError::SamlStatus(answer, _) => answer.reason(),
            FlowError::Retention(_) => "retention_unavailable",
            FlowError::Choice(e) => e.reason(),
            FlowError::TenantNotAllowed => "tenant_not_allowed",
        }
    }

    /// Whether the client is answerable for this refusal, and it counts toward blocking it
    /// (a 4xx still has to be one, `count_failure`). Decided on the reason code, the one name
    /// each refusal has whichever protocol raised it (`auth_not_fresh` comes from the OIDC
    /// and the SAML checks alike): see [`NOT_COUNTED`].
    pub(super) fn counts_toward_blocking(&self) -> bool {
        !NOT_COUNTED.contains(&self.reason())
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            FlowError::UnknownTenant => StatusCode::NOT_FOUND,
            FlowError::Oidc(OidcError::Metadata(_)) => StatusCode::BAD_GATEWAY,
            FlowError::Oidc(OidcError::TokenRequest(_) | OidcError::Userinfo(_)) => StatusCode::BAD_GATEWAY,
            FlowError::Saml(saml_acs::SamlError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            FlowError::SamlMetadata(_) => StatusCode::BAD_GATEWAY,
            FlowError::Pseudonym(_) | FlowError::Choice(_) | FlowError::TenantNotAllowed => {
                StatusCode::FORBIDDEN
            }
            FlowError::Store(_) | FlowError::Retention(_) => StatusCode::SERVICE_UNAVAILABLE,
            FlowError::SamlOut(saml_idp::SamlOutError::Signing) => StatusCode::INTERNAL_SERVER_ERROR,
            FlowError::SamlOut(saml_idp::SamlOutError::UnknownSp) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Refusals that say what the school's IdP or nymgate's config did, from bytes the IdP signed
/// and sent over its back channel or in a verified response, not what the client did:
/// counting them would block a whole school behind one NAT for an IdP's or a config's fault
/// (issue 26). Each is still audited and alerted on (docs/LOGIN.md, "Blocking").
/// - `unknown_kid`: the IdP signs with a key it does not (yet) publish, a rotation nymgate
///   could not follow (the ID token came from the token endpoint, not the browser);
/// - `auth_not_fresh`: the IdP answered a ForceAuthn from an earlier session;
/// - `issuer_mismatch`, `no_pseudonym_keys`: the IdP's or the config's issuer or keys;
/// - `tenant_not_selected`, `tenant_ambiguous`: the IdP released no, or two, select values.
pub(super) const NOT_COUNTED: [&str; 6] = [
    "unknown_kid",
    "auth_not_fresh",
    "issuer_mismatch",
    "no_pseudonym_keys",
    "tenant_not_selected",
    "tenant_ambiguous",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocking decides on the reason code: each uncounted code is one these errors raise (a
    /// renamed code would otherwise be counted again unnoticed), and an attack signal counts.
    #[test]
    fn refusals_of_the_idp_or_the_config_do_not_count_toward_blocking() {
        let not_counted = [
            FlowError::Oidc(OidcError::UnknownKid),
            FlowError::Oidc(OidcError::NotFresh),
            FlowError::BadRequest("auth_not_fresh"),
            FlowError::Pseudonym(PseudonymError::IssuerMismatch),
            FlowError::Pseudonym(PseudonymError::NoKeys("s".into())),
            FlowError::Choice(ChoiceError::NotSelected),
            FlowError::Choice(ChoiceError::Ambiguous),
        ];
        let mut reasons: Vec<&str> = not_counted.iter().map(FlowError::reason).collect();
        reasons.dedup();
        assert_eq!(reasons, NOT_COUNTED);
        assert!(not_counted.iter().all(|e| !e.counts_toward_blocking()));
        for counted in [
            FlowError::Oidc(OidcError::BadSignature),
            FlowError::Oidc(OidcError::CodeRefused),
            FlowError::Choice(ChoiceError::Mismatch),
            FlowError::TenantNotAllowed,
            FlowError::BadRequest("state_replayed"),
        ] {
            assert!(counted.counts_toward_blocking(), "{}", counted.reason());
        }
    }
}
