//! The small types the configuration names and the upper floors act on: the JWS and SAML
//! signing algorithms, the signatures a school's IdP must send, the normalized roles and the path
//! prefix of nymgate's own endpoints.
//!
//! They live here, on the ground floor, because the config file spells them (issue 30: config
//! imports nothing from the rest of nymgate). Their behaviour stays upstairs: `mint` signs with
//! an [`Algorithm`], `mint::saml_idp` gives a [`SignatureAlgorithm`] its XML-DSig URI (an
//! inherent impl there), `login::saml_acs` enforces [`RequiredSignatures`], `pseudonym::policy`
//! maps attributes to a [`Role`]. Each re-exports its type under its old path.

/// Every nymgate endpoint starts with this (`login::PREFIX` re-exports it).
pub const PREFIX: &str = "/nymgate";

/// Whether a request path is one of nymgate's own (under [`PREFIX`]).
///
/// Decided on the canonical path (target.rs), so that no spelling of a nymgate path
/// (`/NYMGATE/callback`, `//nymgate/x`, `/a/../nymgate`, `/%6eymgate`) reaches the platform.
/// A path too deeply encoded to canonicalize is claimed too (and refused by the pipeline).
/// `Login::owns` is this decision; config needs it to refuse an intercepted ACS that nymgate
/// would claim for itself. `target` sits below config (a leaf: it imports nothing from the crate).
pub fn owns_path(path: &str) -> bool {
    crate::target::canonical_path(path).map_or(true, |path| path.is_under(PREFIX))
}

/// The JWS algorithms nymgate signs with (`login.signing.alg`; `mint` re-exports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Algorithm {
    EdDSA,
    ES256,
}

/// The signature algorithms nymgate signs SAML responses with
/// (`login.saml_idp.signature_algorithm`; `mint::saml_idp` re-exports it and knows its URI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha256,
    RsaSha512,
    EcdsaSha256,
}

impl SignatureAlgorithm {
    /// From the config's name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rsa-sha256" => Some(Self::RsaSha256),
            "rsa-sha512" => Some(Self::RsaSha512),
            "ecdsa-sha256" => Some(Self::EcdsaSha256),
            _ => None,
        }
    }
}

/// Which signatures a tenant requires. Either one covers the Assertion that is read (a Response
/// signature covers its one Assertion child), so `either` is the interoperable default:
/// Shibboleth signs the Response by default, ADFS the Assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequiredSignatures {
    #[default]
    Either,
    Assertion,
    Response,
    Both,
}

/// The normalized role (shared/PRODUCT.md, "What the platform receives").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    // Declared in ascending precedence: a person with several roles gets the highest.
    Other,
    Student,
    Staff,
    Teacher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Other => "other",
            Role::Student => "student",
            Role::Staff => "staff",
            Role::Teacher => "teacher",
        }
    }
}
