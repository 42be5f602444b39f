//! nymgate as a SAML 2.0 IdP toward a SAML-only platform (docs/SAML_OUT.md): its metadata,
//! the platform's AuthnRequest (read strictly in saml_idp_request.rs), and a fresh Response
//! that nymgate builds and signs: a login, or a status without an Assertion when the request
//! can't be answered with one (InvalidNameIDPolicy, NoPassive; SAML Core §3.2.2.2).
//!
//! Whatever the school sent (OIDC or SAML), the platform gets a Response and an Assertion
//! written here from the pseudonymous login alone, never an edited copy of the school's XML:
//! the NameID is the account number (persistent), and the only attributes are the tenant's
//! allowed ones. The Assertion is signed, then the Response around it (both enveloped, exclusive
//! C14N, SHA-256 digests; SAML Core §5, Profiles §4.1.3.5), so an SP that requires either or
//! both finds them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::audit::rfc3339;
use crate::pseudonym::PseudonymousLogin;
use crate::verify::saml_acs;
use crate::web::escape;

#[path = "saml_idp_request.rs"]
mod request;
#[cfg(test)]
#[path = "saml_idp_tests.rs"]
pub(crate) mod tests;

const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The prefix of every status code URI (SAML Core §3.2.2.2).
const STATUS: &str = "urn:oasis:names:tc:SAML:2.0:status:";
/// SAML Bindings §3.5.3: RelayState "MUST NOT exceed 80 bytes" (the flows hold a school's
/// RelayState to it too).
pub const MAX_RELAY_STATE: usize = 80;

/// The signature algorithms nymgate signs responses with (`signature_algorithm`): the config
/// names them, so the type and its parsing live there; the URI is this module's business.
pub use crate::config::SignatureAlgorithm;

impl SignatureAlgorithm {
    /// The XML-DSig SignatureMethod URI (RFC 6931 §2.3).
    fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        }
    }
}

/// Why an AuthnRequest or a response could not be made. Reasons are static: no request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SamlOutError {
    #[error("the SAMLRequest is not base64, DEFLATE or XML, or is too large")]
    Encoding,
    #[error("not an AuthnRequest")]
    NotAnAuthnRequest,
    #[error("the AuthnRequest's Issuer is not a registered service provider")]
    UnknownSp,
    #[error("the AuthnRequest asks for an ACS URL or binding the service provider did not register")]
    WrongAcs,
    #[error("the AuthnRequest's Destination is not nymgate's SSO URL")]
    WrongDestination,
    #[error("the AuthnRequest is signed and names no Destination")]
    NoDestination,
    #[error("the AuthnRequest's Version is not 2.0")]
    VersionMismatch,
    #[error("the RelayState is longer than the binding's 80 bytes")]
    RelayState,
    #[error("the AuthnRequest's ID was used before")]
    Replayed,
    #[error("the AuthnRequest is too old or from the future")]
    Stale,
    #[error("the AuthnRequest has no usable ID")]
    NoId,
    #[error("the service provider signs its AuthnRequests and this one is unsigned")]
    Unsigned,
    #[error("the AuthnRequest's signature does not verify or uses an algorithm not allowed")]
    BadSignature,
    #[error("the service provider does not accept IdP-initiated logins")]
    NoIdpInitiated,
    #[error("signing the response failed")]
    Signing,
}

impl SamlOutError {
    /// The reason code for the audit log and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Encoding => "authn_request_encoding",
            Self::NotAnAuthnRequest => "authn_request_malformed",
            Self::UnknownSp => "unknown_service_provider",
            Self::WrongAcs => "authn_request_acs",
            Self::WrongDestination => "authn_request_destination",
            Self::NoDestination => "authn_request_no_destination",
            Self::VersionMismatch => "authn_request_version",
            Self::RelayState => "saml_relay_state",
            Self::Replayed => "authn_request_replayed",
            Self::Stale => "authn_request_time",
            Self::NoId => "authn_request_malformed",
            Self::Unsigned => "authn_request_unsigned",
            Self::BadSignature => "authn_request_signature",
            Self::NoIdpInitiated => "idp_initiated_not_allowed",
            Self::Signing => "response_signing",
        }
    }
}

/// One platform that takes nymgate's responses.
pub struct ServiceProvider {
    /// Its entity ID: the Audience of nymgate's responses to it.
    pub entity_id: String,
    /// The only place its responses are posted to (SAML Profiles §4.1.4.5).
    pub acs_url: String,
    /// Keys its AuthnRequests must be signed with; empty: it does not sign them.
    request_keys: Vec<RequestKey>,
    /// The same keys for XML signatures (HTTP-POST binding).
    request_trust: Option<saml_acs::IdpTrust>,
    /// Whether it takes unsolicited responses (off by default: no InResponseTo binds them).
    pub idp_initiated: bool,
    /// The school to send its users to without the chooser (a platform of one school).
    pub tenant: Option<String>,
    /// Its pseudonym sector (`service_providers.sector`): `None` is the primary one.
    pub sector: Option<String>,
    /// The path of this site whose school responses are replaced (interception mode), in the
    /// canonical form requests are matched in (target.rs): every spelling of it is intercepted.
    pub intercept_path: Option<crate::target::CanonicalPath>,
}

impl ServiceProvider {
    /// What a response posted to this SP's intercepted ACS must match: this SP as the audience
    /// and recipient, and the InResponseTo of a request nymgate never saw, relayed.
    pub fn intercepted(&self, now: u64) -> saml_acs::Expected<'_> {
        saml_acs::Expected {
            sp_entity_id: &self.entity_id,
            acs_url: &self.acs_url,
            request_id: None,
            now,
            relay_in_response_to: true,
        }
    }
}

/// An SP's RSA public key (SubjectPublicKeyInfo's key, PKCS#1), for Redirect signatures.
struct RequestKey(Vec<u8>);

/// What a verified AuthnRequest (or an IdP-initiated start) asks for; rides in the flow cookie.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpRequest {
    /// The SP's entity ID (its ACS comes from the config, never from the request).
    pub sp: String,
    /// The AuthnRequest's ID, for InResponseTo; `None` when IdP-initiated.
    pub request_id: Option<String>,
    /// Returned to the SP as sent (Bindings §3.4.3, §3.5.3).
    pub relay_state: Option<String>,
    /// ForceAuthn (SAML Core §3.4.1): the school must authenticate the user afresh, whatever
    /// session it holds (on a shared classroom device, the pupil at the keyboard).
    #[serde(default)]
    pub force_authn: bool,
    /// IsPassive (SAML Core §3.4.1): neither nymgate nor the school may show the user anything;
    /// when a login needs a page, the answer is NoPassive (§3.2.2.2).
    #[serde(default)]
    pub is_passive: bool,
}

impl SpRequest {
    /// A request of `sp` that asks for nothing beyond a login: IdP-initiated, or relayed.
    pub fn new(sp: &str, request_id: Option<String>, relay_state: Option<String>) -> SpRequest {
        SpRequest { sp: sp.to_owned(), request_id, relay_state, force_authn: false, is_passive: false }
    }
}

/// A platform request as read: what it asks for, what makes it single-use, and, when it can't
/// be answered with a login, the status it is answered with instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// What the platform asked for: its ACS, ID, RelayState, ForceAuthn, IsPassive.
    pub request: SpRequest,
    /// The key its ID is claimed under (the SP's entity ID and the ID) and until when: while it
    /// could still pass the IssueInstant check, on any replica. `None`: IdP-initiated, no ID.
    pub single_use: Option<(String, u64)>,
    /// The request is good but can't be honoured (a NameIDPolicy nymgate can't meet).
    pub answer: Option<StatusAnswer>,
}

/// A verified request nymgate answers with a non-Success status instead of a login: a signed
/// Response without an Assertion, posted to the SP's ACS (SAML Core §3.2.2, §3.4.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAnswer {
    /// Requester/InvalidNameIDPolicy (§3.4.1.1): a NameID Format or SPNameQualifier nymgate
    /// does not issue.
    InvalidNameIdPolicy,
    /// Responder/NoPassive (§3.2.2.2): IsPassive, and the login needs the user's interaction.
    NoPassive,
    /// Requester/RequestUnsupported (§3.2.2.2): the request names a `<Subject>`, whose
    /// identity nymgate would have to check against the login (§3.4.1) and does not: a login
    /// for whoever signs in must not answer a request for one person.
    RequestUnsupported,
}

impl StatusAnswer {
    /// The reason code for the audit log and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidNameIdPolicy => "invalid_name_id_policy",
            Self::NoPassive => "no_passive",
            Self::RequestUnsupported => "request_unsupported",
        }
    }

    /// The top-level and second-level status codes (SAML Core §3.2.2.2).
    fn codes(self) -> (&'static str, &'static str) {
        match self {
            Self::InvalidNameIdPolicy => ("Requester", "InvalidNameIDPolicy"),
            Self::NoPassive => ("Responder", "NoPassive"),
            Self::RequestUnsupported => ("Requester", "RequestUnsupported"),
        }
    }
}

/// How long a copy of nymgate's IdP metadata is valid (`validUntil`): a week, so a platform
/// that can't refetch for a weekend keeps working, and a stale copy ends.
const METADATA_VALID_FOR: u64 = 7 * 24 * 3600;

/// How long one signed copy of the metadata is served before it is signed afresh.
const METADATA_RESIGN_AFTER: u64 = 3600;

/// How soon a platform should fetch the metadata again (`cacheDuration`, an xs:duration).
const METADATA_CACHE: &str = "PT6H";

/// nymgate's SAML IdP face.
pub struct SamlIdp {
    /// nymgate's IdP entity ID: the Issuer of every response.
    pub entity_id: String,
    /// Where platforms send their AuthnRequests (the SSO service in the metadata).
    pub sso_url: String,
    /// The signing certificate, for the metadata's KeyDescriptor.
    cert_b64: String,
    /// The signing key, loaded once into bergshamra.
    signer: bergshamra::DsigContext,
    /// The signature algorithm (`signature_algorithm`).
    algorithm: SignatureAlgorithm,
    /// How long an assertion is good for (`assertion_lifetime`, seconds).
    lifetime: u64,
    /// The tolerance on a platform request's IssueInstant, seconds.
    clock_skew: u64,
    /// The platforms it answers, by entity ID.
    sps: Vec<ServiceProvider>,
    /// nymgate's own certificate as a verifier: an intercepted ACS passes a Response of
    /// nymgate's own IdP through only when it verifies.
    own_trust: saml_acs::IdpTrust,
    /// The signed metadata and when it was signed: `/nymgate/idp/metadata` is public, and an
    /// RSA signature per request would let anyone spend nymgate's CPU; one copy is served for
    /// [`METADATA_RESIGN_AFTER`] (its validUntil is a week after its signing).
    metadata_cache: std::sync::Mutex<Option<(u64, String)>>,
}

impl std::fmt::Debug for SamlIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlIdp").field("entity_id", &self.entity_id).finish_non_exhaustive()
    }
}

/// One `[[login.saml_idp.service_providers]]`, with its certificates read.
pub struct SpSettings {
    /// `entity_id`.
    pub entity_id: String,
    /// `acs_url`.
    pub acs_url: String,
    /// The files of `certificate_files`, read: its request-signing keys.
    pub certificates: Vec<Vec<u8>>,
    /// `idp_initiated`.
    pub idp_initiated: bool,
    /// `tenant`: the school its users go to without the chooser.
    pub tenant: Option<String>,
    /// `sector`: its pseudonym sector.
    pub sector: Option<String>,
    /// Interception mode: the path of `acs_url` on nymgate's public listener.
    pub intercept_path: Option<String>,
}

impl SpSettings {
    /// A platform at `acs_url` that does not sign its requests, takes no IdP-initiated logins,
    /// has no fixed school and is not intercepted.
    pub fn new(entity_id: &str, acs_url: &str) -> SpSettings {
        SpSettings {
            entity_id: entity_id.to_owned(),
            acs_url: acs_url.to_owned(),
            certificates: Vec::new(),
            idp_initiated: false,
            tenant: None,
            sector: None,
            intercept_path: None,
        }
    }
}

impl SamlIdp {
    /// `cert_pem` and `key_pem`: nymgate's IdP signing certificate and its PKCS#8 key, of the
    /// type `algorithm` needs.
    pub fn new(
        entity_id: String,
        sso_url: String,
        cert_pem: &[u8],
        key_pem: &[u8],
        algorithm: SignatureAlgorithm,
        lifetime: u64,
        sps: Vec<SpSettings>,
    ) -> Result<SamlIdp, String> {
        use bergshamra::keys::loader;
        use rustls_pki_types::pem::PemObject;
        let cert = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| format!("login.saml_idp.cert_file: not a PEM certificate: {e}"))?;
        let key = match algorithm {
            SignatureAlgorithm::RsaSha256 | SignatureAlgorithm::RsaSha512 => {
                loader::load_rsa_private_pem(key_pem)
            }
            SignatureAlgorithm::EcdsaSha256 => loader::load_ec_p256_private_pem(key_pem),
        }
        .map_err(|_| {
            "login.saml_idp.key_file: not a PKCS#8 key of the signature_algorithm's type".to_owned()
        })?;
        let mut keys = bergshamra::KeysManager::new();
        keys.add_key(key);
        let sps = sps
            .into_iter()
            .enumerate()
            .map(|(i, sp)| {
                let field = format!("login.saml_idp.service_providers[{i}].certificate_files");
                let request_keys = sp
                    .certificates
                    .iter()
                    .map(|pem| match saml_acs::rsa_public_key(pem) {
                        Ok(Some(key)) => Ok(RequestKey(key)),
                        Ok(None) => {
                            Err(format!("{field}: AuthnRequest signatures are checked with RSA keys only"))
                        }
                        Err(e) => Err(format!("{field}: {e}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let request_trust = (!sp.certificates.is_empty())
                    .then(|| {
                        saml_acs::IdpTrust::new(
                            &sp.entity_id,
                            &sp.certificates,
                            saml_acs::RequiredSignatures::Response,
                            false,
                            60,
                            false,
                        )
                    })
                    .transpose()
                    .map_err(|e| format!("{field}: {e}"))?;
                Ok(ServiceProvider {
                    entity_id: sp.entity_id,
                    acs_url: sp.acs_url,
                    request_keys,
                    request_trust,
                    idp_initiated: sp.idp_initiated,
                    tenant: sp.tenant,
                    sector: sp.sector,
                    intercept_path: sp
                        .intercept_path
                        .map(|path| {
                            let path = path.split(['?', '#']).next().unwrap_or_default();
                            crate::target::canonical_path(path)
                        })
                        .transpose()
                        .map_err(|e| format!("login.saml_idp.service_providers[{i}].acs_url: {e}"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let own_trust = saml_acs::IdpTrust::new(
            &entity_id,
            &[cert_pem.to_vec()],
            saml_acs::RequiredSignatures::Both,
            false,
            60,
            true,
        )
        .map_err(|e| format!("login.saml_idp.cert_file: {e}"))?;
        Ok(SamlIdp {
            own_trust,
            metadata_cache: std::sync::Mutex::new(None),
            entity_id,
            sso_url,
            cert_b64: STANDARD.encode(cert.as_ref()),
            signer: bergshamra::DsigContext::new(keys),
            algorithm,
            lifetime,
            clock_skew: 60,
            sps,
        })
    }

    pub fn service_provider(&self, entity_id: &str) -> Option<&ServiceProvider> {
        self.sps.iter().find(|sp| sp.entity_id == entity_id)
    }

    /// nymgate's own Response to `sp`, checked as that SP would (both signatures, audience,
    /// recipient, times; InResponseTo as it stands): an intercepted ACS forwards it unchanged.
    /// Returns what identifies it once: its Assertion's ID and until when it could be presented.
    pub fn verify_own(
        &self,
        xml: &str,
        sp: &ServiceProvider,
        now: u64,
    ) -> Result<saml_acs::VerifiedResponse, saml_acs::SamlError> {
        saml_acs::verify(xml, &self.own_trust, &sp.intercepted(now))
    }

    /// The SP whose ACS is intercepted at `path` (canonical: any spelling of it, with or without
    /// a format suffix), if any.
    pub fn intercepting(&self, path: &crate::target::CanonicalPath) -> Option<&ServiceProvider> {
        self.sps.iter().find(|sp| sp.intercept_path.as_ref().is_some_and(|acs| path.routes_to(acs)))
    }

    /// The IdP metadata the platform imports (SAML Metadata §2.4.3): entity ID, the SSO service
    /// for both bindings, the signing certificate, persistent NameIDs; signed with the IdP key
    /// (enveloped, §3), valid for [`METADATA_VALID_FOR`] from `now` (`validUntil`, §2.3.1) and
    /// to be fetched again within [`METADATA_CACHE`] (`cacheDuration`), so a platform notices a
    /// new certificate or SSO address without trusting an unsigned copy forever.
    pub fn metadata(&self, now: u64) -> Result<String, SamlOutError> {
        let mut cache = self.metadata_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((signed_at, xml)) = cache.as_ref() {
            if (*signed_at..signed_at + METADATA_RESIGN_AFTER).contains(&now) {
                return Ok(xml.clone());
            }
        }
        let xml = self.sign_metadata(now)?;
        *cache = Some((now, xml.clone()));
        Ok(xml)
    }

    /// [`SamlIdp::metadata`], signed now.
    fn sign_metadata(&self, now: u64) -> Result<String, SamlOutError> {
        // Asked for only when every platform's requests must be signed: a platform that may send
        // unsigned ones would be told something false about itself. A platform with pinned
        // certificates has its unsigned requests refused whatever the metadata says.
        let signed_requests = !self.sps.is_empty() && self.sps.iter().all(|sp| !sp.request_keys.is_empty());
        let id = format!("_m{}", crate::secret::random_hex::<20>());
        let xml = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="{id}" entityID="{entity}" validUntil="{until}" cacheDuration="{METADATA_CACHE}">{signature}<md:IDPSSODescriptor WantAuthnRequestsSigned="{signed_requests}" protocolSupportEnumeration="{PROTOCOL}"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>{PERSISTENT}</md:NameIDFormat><md:SingleSignOnService Binding="{REDIRECT_BINDING}" Location="{sso}"/><md:SingleSignOnService Binding="{POST_BINDING}" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            entity = escape(&self.entity_id),
            until = rfc3339(now + METADATA_VALID_FOR),
            signature = self.signature_template(&id),
            cert = self.cert_b64,
            sso = escape(&self.sso_url),
        );
        let signed =
            bergshamra::dsig::sign::sign_owned(&self.signer, xml).map_err(|_| SamlOutError::Signing)?;
        Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", strip_xml_declaration(&signed)))
    }

    /// The signed Response for `login`, as the XML text, and the SP's ACS URL it goes to.
    pub fn response(
        &self,
        login: &PseudonymousLogin,
        request: &SpRequest,
        now: u64,
    ) -> Result<(String, &str), SamlOutError> {
        let sp = self.service_provider(&request.sp).ok_or(SamlOutError::UnknownSp)?;
        let issue = rfc3339(now);
        let not_after = rfc3339(now + self.lifetime);
        // Conditions start a skew early, so an SP whose clock runs behind still accepts it.
        let not_before = rfc3339(now.saturating_sub(self.clock_skew));
        let response_id = format!("_r{}", crate::secret::random_hex::<20>());
        let assertion_id = format!("_a{}", crate::secret::random_hex::<20>());
        let in_response_to = request
            .request_id
            .as_deref()
            .map(|id| format!(r#" InResponseTo="{}""#, escape(id)))
            .unwrap_or_default();
        let entity = escape(&self.entity_id);
        let (acs, sp_entity) = (escape(&sp.acs_url), escape(&sp.entity_id));
        let attributes = attribute_statement(login);
        // The Assertion alone first, declaring its own namespaces: under exclusive C14N its
        // digest is then the same once it sits in the Response.
        let assertion = format!(
            r##"<saml:Assertion xmlns:saml="{ASSERTION}" ID="{assertion_id}" Version="2.0" IssueInstant="{issue}"><saml:Issuer>{entity}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="{PERSISTENT}" NameQualifier="{entity}" SPNameQualifier="{sp_entity}">{subject}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{not_after}" Recipient="{acs}"{in_response_to}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}"><saml:AudienceRestriction><saml:Audience>{sp_entity}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{issue}" SessionIndex="{assertion_id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{attributes}</saml:Assertion>"##,
            signature = self.signature_template(&assertion_id),
            subject = escape(login.sub.as_str()),
        );
        let assertion =
            bergshamra::dsig::sign::sign_owned(&self.signer, assertion).map_err(|_| SamlOutError::Signing)?;
        let assertion = strip_xml_declaration(&assertion);
        let response = format!(
            r##"<samlp:Response xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{response_id}" Version="2.0" IssueInstant="{issue}" Destination="{acs}"{in_response_to}><saml:Issuer>{entity}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertion}</samlp:Response>"##,
            signature = self.signature_template(&response_id),
        );
        // bergshamra signs the first Signature in document order: the Response's.
        let signed =
            bergshamra::dsig::sign::sign_owned(&self.signer, response).map_err(|_| SamlOutError::Signing)?;
        Ok((strip_xml_declaration(&signed).to_owned(), &sp.acs_url))
    }

    /// A signed Response with `answer`'s status and no Assertion (SAML Core §3.2.2), for a
    /// request nymgate will not answer with a login, and the SP's ACS URL it goes to. Signed like
    /// every Response, so an SP that requires a signed Response (node-saml, for NoPassive) can
    /// trust the status.
    pub fn status_response(
        &self,
        request: &SpRequest,
        answer: StatusAnswer,
        now: u64,
    ) -> Result<(String, &str), SamlOutError> {
        let sp = self.service_provider(&request.sp).ok_or(SamlOutError::UnknownSp)?;
        let response_id = format!("_r{}", crate::secret::random_hex::<20>());
        let in_response_to = request
            .request_id
            .as_deref()
            .map(|id| format!(r#" InResponseTo="{}""#, escape(id)))
            .unwrap_or_default();
        let (top, second) = answer.codes();
        let response = format!(
            r##"<samlp:Response xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{response_id}" Version="2.0" IssueInstant="{issue}" Destination="{acs}"{in_response_to}><saml:Issuer>{entity}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value="{STATUS}{top}"><samlp:StatusCode Value="{STATUS}{second}"/></samlp:StatusCode></samlp:Status></samlp:Response>"##,
            issue = rfc3339(now),
            acs = escape(&sp.acs_url),
            entity = escape(&self.entity_id),
            signature = self.signature_template(&response_id),
        );
        let signed =
            bergshamra::dsig::sign::sign_owned(&self.signer, response).map_err(|_| SamlOutError::Signing)?;
        Ok((strip_xml_declaration(&signed).to_owned(), &sp.acs_url))
    }

    /// An enveloped signature template for the element with `id` (XML-DSig §4, exclusive C14N
    /// per SAML Core §5.4.3); bergshamra fills in the digest and the signature value.
    fn signature_template(&self, id: &str) -> String {
        format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
            method = self.algorithm.uri(),
            cert = self.cert_b64,
        )
    }
}

/// The attributes the platform gets (docs/SAML_OUT.md): the role as eduPersonAffiliation
/// (urn:oid, the standard name) and as nymgate's own `role`, then `tenant`, `school`,
/// `municipality`, `nym_ver` and `sub_prev` under their nymgate names (basic name format:
/// there is no standard attribute for them). Nothing else exists to be sent.
fn attribute_statement(login: &PseudonymousLogin) -> String {
    use crate::pseudonym::policy::Role;
    let attribute = |name: &str, friendly: Option<&str>, format: &str, value: &str| {
        let friendly = friendly.map(|f| format!(r#" FriendlyName="{f}""#)).unwrap_or_default();
        format!(
            r#"<saml:Attribute Name="{name}"{friendly} NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:{format}"><saml:AttributeValue>{}</saml:AttributeValue></saml:Attribute>"#,
            escape(value)
        )
    };
    let basic = |name: &str, value: &str| attribute(name, None, "basic", value);
    // eduPerson (201602) §2.2.1's vocabulary: a teacher is faculty.
    let affiliation = match login.role {
        Role::Student => "student",
        Role::Teacher => "faculty",
        Role::Staff => "staff",
        Role::Other => "affiliate",
    };
    let mut out = String::from("<saml:AttributeStatement>");
    out.push_str(&attribute(
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
        Some("eduPersonAffiliation"),
        "uri",
        affiliation,
    ));
    out.push_str(&basic("role", login.role.as_str()));
    out.push_str(&basic("tenant", &login.tenant));
    for (name, value) in [("school", &login.school), ("municipality", &login.municipality)] {
        if let Some(value) = value {
            out.push_str(&basic(name, value));
        }
    }
    out.push_str(&basic("nym_ver", &login.nym_ver.to_string()));
    if let Some(previous) = &login.sub_prev {
        out.push_str(&basic("sub_prev", previous.as_str()));
    }
    out.push_str("</saml:AttributeStatement>");
    out
}

fn strip_xml_declaration(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(xml, |(_, after)| after.trim_start()),
        None => xml,
    }
}
