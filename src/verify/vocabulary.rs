//! Fixed vocabularies for strings an IdP chooses: claim and attribute names, and OAuth error
//! codes. An IdP's bytes are hostile (an IdP can name a claim `alice@school.example`, or put
//! the user's email in its `error` field), so nothing an IdP named reaches a log line, an audit
//! line, a metric label or a page as it came: it is looked up here and written as the
//! vocabulary's own `&'static str`, or as `other`.

/// What every name outside a vocabulary is written as.
pub const OTHER: &str = "other";

/// Claim and attribute names nymgate writes as themselves: the OIDC standard claims (OIDC Core
/// §5.1), Entra ID's and Google's identity claims, and the SAML attributes of eduPerson,
/// inetOrgPerson, SCHAC and norEdu* by friendly name. An attribute named by OID is written by
/// its friendly name (see [`SAML_OIDS`]).
const CLAIMS: &[&str] = &[
    // OIDC Core §5.1.
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    // Entra ID (ID token claims reference) and Google Workspace.
    "oid",
    "tid",
    "upn",
    "unique_name",
    "groups",
    "roles",
    "wids",
    "hasgroups",
    "onprem_sid",
    "ipaddr",
    "login_hint",
    "verified_primary_email",
    "verified_secondary_email",
    "hd",
    // SAML attributes, friendly names (eduPerson 202208, RFC 2798, SCHAC, norEdu*).
    "eduPersonPrincipalName",
    "eduPersonTargetedID",
    "eduPersonUniqueId",
    "eduPersonAffiliation",
    "eduPersonScopedAffiliation",
    "eduPersonPrimaryAffiliation",
    "eduPersonEntitlement",
    "eduPersonOrgUnitDN",
    "eduPersonOrcid",
    "eduPersonAssurance",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "cn",
    "uid",
    "mobile",
    "telephoneNumber",
    "o",
    "ou",
    "norEduPersonNIN",
    "norEduPersonLIN",
    "norEduPersonLegalName",
    "norEduOrgUnitUniqueIdentifier",
    "norEduOrgNIN",
    "schacPersonalUniqueID",
    "schacPersonalUniqueCode",
    "schacHomeOrganization",
    "schacHomeOrganizationType",
    "schacDateOfBirth",
    "personalIdentityNumber",
    "pairwise-id",
    "subject-id",
];

/// Attribute and claim names (`urn:oid:…`, OASIS subject identifiers, other spellings of known
/// attributes) and the vocabulary's name each is written as.
const SAML_OIDS: &[(&str, &str)] = &[
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.10", "eduPersonTargetedID"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.13", "eduPersonUniqueId"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.9", "eduPersonScopedAffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.5", "eduPersonPrimaryAffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.7", "eduPersonEntitlement"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.4", "eduPersonOrgUnitDN"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.16", "eduPersonOrcid"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.11", "eduPersonAssurance"),
    ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    ("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    ("urn:oid:2.5.4.42", "givenName"),
    ("urn:oid:2.5.4.4", "sn"),
    ("urn:oid:2.5.4.3", "cn"),
    ("urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    ("urn:oid:0.9.2342.19200300.100.1.41", "mobile"),
    ("urn:oid:2.5.4.20", "telephoneNumber"),
    ("urn:oid:2.5.4.10", "o"),
    ("urn:oid:2.5.4.11", "ou"),
    ("urn:oid:1.3.6.1.4.1.2428.90.1.5", "norEduPersonNIN"),
    ("urn:oid:1.3.6.1.4.1.2428.90.1.4", "norEduPersonLIN"),
    ("urn:oid:1.3.6.1.4.1.2428.90.1.10", "norEduPersonLegalName"),
    ("urn:oid:1.3.6.1.4.1.2428.90.1.8", "norEduOrgUnitUniqueIdentifier"),
    ("urn:oid:1.3.6.1.4.1.2428.90.1.12", "norEduOrgNIN"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.15", "schacPersonalUniqueID"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.14", "schacPersonalUniqueCode"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.10", "schacHomeOrganizationType"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.3", "schacDateOfBirth"),
    ("urn:oid:1.2.752.29.4.13", "personalIdentityNumber"),
    ("urn:oasis:names:tc:SAML:attribute:pairwise-id", "pairwise-id"),
    ("urn:oasis:names:tc:SAML:attribute:subject-id", "subject-id"),
    // Other spellings of the same attributes: OIDC claims for a national identity number
    // (Sweden's id.oidc.se, Norway's ID-porten `pid`, the demo IdP's), and the WS-Federation
    // claim URIs that Entra ID and ADFS put in SAML assertions.
    ("https://id.oidc.se/claim/personalIdentityNumber", "personalIdentityNumber"),
    ("personal_identity_number", "personalIdentityNumber"),
    ("pid", "personalIdentityNumber"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "email"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "given_name"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "family_name"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "name"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn"),
    ("http://schemas.microsoft.com/identity/claims/displayname", "name"),
    ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"),
    ("http://schemas.microsoft.com/identity/claims/tenantid", "tid"),
];

/// The vocabulary's name for a claim or attribute the IdP named `name`, or [`OTHER`]. Names
/// compare without letter case and surrounding space (an IdP's `Email` is the `email` claim).
pub fn claim_name(name: &str) -> &'static str {
    let name = name.trim();
    if let Some((_, friendly)) = SAML_OIDS.iter().find(|(oid, _)| oid.eq_ignore_ascii_case(name)) {
        return friendly;
    }
    CLAIMS.iter().find(|known| known.eq_ignore_ascii_case(name)).copied().unwrap_or(OTHER)
}

/// OAuth 2.0 and OIDC error codes an IdP's token or authorization endpoint may answer with
/// (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6, RFC 8628 §3.5, RFC 9449 §12.2).
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "access_denied",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "expired_token",
    "invalid_dpop_proof",
    "use_dpop_nonce",
];

/// The vocabulary's spelling of an IdP's OAuth `error` code, or [`OTHER`]. Error codes are
/// case-sensitive ASCII (RFC 6749 §5.2), so an exact match only.
pub fn oauth_error(code: &str) -> &'static str {
    OAUTH_ERRORS.iter().find(|known| **known == code).copied().unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever an IdP names a claim or sends as an error code, what nymgate writes is one
        /// of its own strings.
        #[test]
        fn idp_chosen_strings_map_into_the_vocabulary(name in any::<String>()) {
            let claim = claim_name(&name);
            prop_assert!(claim == OTHER || CLAIMS.contains(&claim));
            let error = oauth_error(&name);
            prop_assert!(error == OTHER || OAUTH_ERRORS.contains(&error));
        }
    }

    #[test]
    fn known_names_are_kept_and_personal_ones_are_not() {
        assert_eq!(claim_name("Email"), "email");
        assert_eq!(claim_name("urn:oid:2.5.4.42"), "givenName");
        assert_eq!(claim_name("URN:OID:0.9.2342.19200300.100.1.3"), "mail");
        assert_eq!(claim_name("alice@school.example"), OTHER);
        assert_eq!(claim_name("811218-9876"), OTHER);
        assert_eq!(oauth_error("invalid_grant"), "invalid_grant");
        assert_eq!(oauth_error("alice@school.example"), OTHER);
    }

    #[test]
    fn every_oid_maps_to_a_claim_of_the_vocabulary() {
        for (_, friendly) in SAML_OIDS {
            assert!(CLAIMS.contains(friendly), "{friendly}");
        }
    }
}
