//! The demo's SAML school (`nymgate demo` only): the demo IdP's SAML 2.0 face for a school that
//! signs in with SAML. SP-initiated Web Browser SSO (SAML Profiles §4.1): the AuthnRequest
//! arrives over HTTP-Redirect, the person signs in at the same form as the OIDC schools, and a
//! signed Response goes back over HTTP-POST (Bindings §3.5) with the attributes a Swedish
//! school federation sends (names, mail, eduPersonAffiliation, norEduPersonNIN).
//!
//! The Assertion is signed with bergshamra (enveloped, exclusive C14N, RSA-SHA256, or ECDSA-SHA256 for the load test), the shape
//! nymgate's strict ACS profile accepts. The AuthnRequest's own signature is not checked here
//! (a demo); its ACS URL and issuer must be nymgate's, so an assertion never goes elsewhere.

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::idp::Person;
use crate::audit::rfc3339;
use crate::clock::unix_now;
use crate::web::escape;

const ASSERTION_LIFETIME: u64 = 300;

/// What the demo IdP needs to answer an AuthnRequest.
pub struct SamlIdp {
    pub entity_id: String,
    /// nymgate's SP: the only place assertions go.
    pub sp_entity_id: String,
    pub acs_url: String,
    signer: bergshamra::DsigContext,
    /// The XML-DSig SignatureMethod for the key.
    signature_method: &'static str,
}

/// The IdP's signing key type.
#[derive(Clone, Copy)]
pub enum KeyType {
    /// RSA-2048 with RSA-SHA256: what school federations use (the demo).
    Rsa,
    /// ECDSA P-256 with SHA-256: cheap to sign (the load test's built-in IdP).
    EcdsaP256,
}

/// The parts of an AuthnRequest the answer needs.
pub struct AuthnRequest {
    pub id: String,
}

impl SamlIdp {
    /// `key_pem`: the IdP's signing key (PKCS#8 PEM), whose certificate nymgate pins.
    pub fn new(
        entity_id: String,
        sp_entity_id: String,
        acs_url: String,
        key_pem: &str,
        key_type: KeyType,
    ) -> Result<SamlIdp, String> {
        use bergshamra::keys::loader;
        let (key, signature_method) = match key_type {
            KeyType::Rsa => (
                loader::load_rsa_private_pem(key_pem.as_bytes()),
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            ),
            KeyType::EcdsaP256 => (
                loader::load_ec_p256_private_pem(key_pem.as_bytes()),
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            ),
        };
        let key = key.map_err(|e| format!("SAML IdP key: {e}"))?;
        let mut keys = bergshamra::KeysManager::new();
        keys.add_key(key);
        Ok(SamlIdp {
            entity_id,
            sp_entity_id,
            acs_url,
            signer: bergshamra::DsigContext::new(keys),
            signature_method,
        })
    }

    /// Reads the Redirect binding's `SAMLRequest` (base64 of raw DEFLATE, Bindings §3.4.4.1)
    /// and checks it comes from nymgate's SP and asks for its ACS.
    pub fn read_request(&self, saml_request: &str) -> Result<AuthnRequest, &'static str> {
        let deflated = STANDARD.decode(saml_request).map_err(|_| "SAMLRequest is not base64")?;
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&deflated[..])
            .take(64 * 1024)
            .read_to_string(&mut xml)
            .map_err(|_| "SAMLRequest is not DEFLATE of UTF-8")?;
        let doc = crate::verify::saml_acs::parse(&xml).map_err(|_| "SAMLRequest is not XML")?;
        let root = doc.document_element().ok_or("SAMLRequest is empty")?;
        let element = doc.element(root).ok_or("SAMLRequest is empty")?;
        if !element.matches_name_ns("urn:oasis:names:tc:SAML:2.0:protocol", "AuthnRequest") {
            return Err("not an AuthnRequest");
        }
        let attribute = |name: &str| element.get_attribute(name).map(str::to_owned);
        if attribute("AssertionConsumerServiceURL").as_deref() != Some(self.acs_url.as_str()) {
            return Err("the AssertionConsumerServiceURL is not nymgate's");
        }
        let issuer = doc
            .children_iter(root)
            .find(|&c| {
                doc.element(c)
                    .is_some_and(|e| e.matches_name_ns("urn:oasis:names:tc:SAML:2.0:assertion", "Issuer"))
            })
            .map(|n| doc.text_content_deep(n));
        if issuer.as_deref().map(str::trim) != Some(self.sp_entity_id.as_str()) {
            return Err("the Issuer is not nymgate's SP");
        }
        let id = attribute("ID").filter(|id| !id.is_empty() && id.len() <= 128).ok_or("no ID")?;
        Ok(AuthnRequest { id })
    }

    /// A signed Response for `user` answering `request`, base64 for the POST form.
    pub fn response(&self, request: &AuthnRequest, user: &Person) -> Result<String, String> {
        let now = unix_now();
        let (issue, not_after) = (rfc3339(now), rfc3339(now + ASSERTION_LIFETIME));
        let (response_id, assertion_id) = (
            format!("_r{}", crate::secret::random_hex::<16>()),
            format!("_a{}", crate::secret::random_hex::<16>()),
        );
        let affiliation = if user.role == "Teacher" { "faculty" } else { "student" };
        let attribute = |oid: &str, friendly: &str, value: &str| {
            format!(
                r#"<saml:Attribute Name="{oid}" FriendlyName="{friendly}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue>{}</saml:AttributeValue></saml:Attribute>"#,
                escape(value)
            )
        };
        let display_name = format!("{} {}", user.given_name, user.family_name);
        let attributes = [
            attribute("urn:oid:2.5.4.42", "givenName", &user.given_name),
            attribute("urn:oid:2.5.4.4", "sn", &user.family_name),
            attribute("urn:oid:2.16.840.1.113730.3.1.241", "displayName", &display_name),
            attribute("urn:oid:0.9.2342.19200300.100.1.3", "mail", &user.email),
            attribute("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation", affiliation),
            attribute(
                "urn:oid:1.3.6.1.4.1.2428.90.1.5",
                "norEduPersonNIN",
                &user.personnummer.replace('-', ""),
            ),
        ]
        .concat();
        // The Signature template sits right after the Assertion's Issuer (SAML Core §5.4.1),
        // its Reference naming the Assertion; bergshamra fills in the digest and signature.
        let template = format!(
            r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{response_id}" Version="2.0" IssueInstant="{issue}" Destination="{acs}" InResponseTo="{request_id}"><saml:Issuer>{entity}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{assertion_id}" Version="2.0" IssueInstant="{issue}"><saml:Issuer>{entity}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{signature_method}"/><ds:Reference URI="#{assertion_id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" NameQualifier="{entity}" SPNameQualifier="{sp}">{subject}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{not_after}" Recipient="{acs}" InResponseTo="{request_id}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{issue}" NotOnOrAfter="{not_after}"><saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{issue}" SessionIndex="{assertion_id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion></samlp:Response>"##,
            acs = escape(&self.acs_url),
            entity = escape(&self.entity_id),
            sp = escape(&self.sp_entity_id),
            request_id = escape(&request.id),
            subject = escape(&user.subject),
            signature_method = self.signature_method,
        );
        let signed =
            bergshamra::sign(&self.signer, &template).map_err(|e| format!("signing the assertion: {e}"))?;
        Ok(STANDARD.encode(signed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::saml_sp::{self, SamlSp};
    use crate::verify::saml_acs::{self, Expected, IdpTrust, RequiredSignatures};

    const SP: &str = "https://localhost:8443/nymgate/saml";
    const ACS: &str = "https://localhost:8443/nymgate/saml/acs";
    const IDP: &str = "https://localhost:9000/ostra-skolan/saml";

    /// nymgate's SP, the demo IdP, and the certificate nymgate pins for it.
    fn parties(key_type: KeyType) -> (SamlSp, SamlIdp, String) {
        let (sp_cert, sp_key) = crate::certs::generate_saml_signing_cert(SP).unwrap();
        let sp = SamlSp::new(SP, ACS, sp_cert.as_bytes(), sp_key.as_bytes()).unwrap();
        let algorithm = match key_type {
            KeyType::Rsa => &rcgen::PKCS_RSA_SHA256,
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        };
        let (idp_cert, idp_key) = crate::certs::generate_saml_signing_cert_for(IDP, algorithm).unwrap();
        let idp = SamlIdp::new(IDP.into(), SP.into(), ACS.into(), &idp_key, key_type).unwrap();
        (sp, idp, idp_cert)
    }

    /// The `SAMLRequest` of nymgate's login URL for the demo IdP, and the request's ID.
    fn saml_request(sp: &SamlSp) -> (String, String) {
        let target = saml_sp::SamlIdp {
            tenant: "ostra-skolan".into(),
            entity_id: IDP.into(),
            sso_url: format!("{IDP}/sso"),
            name_id_format: None,
            sign_requests: true,
        };
        let (url, id) = sp.login_url(&target, "relay", unix_now());
        let query = url.split_once('?').unwrap().1;
        (crate::login::form(query)["SAMLRequest"].clone(), id)
    }

    /// What the demo IdP signs, with either key type, passes nymgate's own strict ACS
    /// verification for the request nymgate sent, with the persistent NameID and the school's
    /// attributes.
    #[test]
    fn the_demo_response_passes_nymgates_acs() {
        the_response_passes_nymgates_acs(KeyType::Rsa);
        the_response_passes_nymgates_acs(KeyType::EcdsaP256);
    }

    fn the_response_passes_nymgates_acs(key_type: KeyType) {
        let (sp, idp, idp_cert) = parties(key_type);
        let (request, id) = saml_request(&sp);
        let request = idp.read_request(&request).unwrap();
        assert_eq!(request.id, id);
        let user = super::super::USERS.iter().find(|u| u.login == "elev4").unwrap();
        let xml = saml_acs::decode_post(&idp.response(&request, &user.into()).unwrap()).unwrap();
        let trust =
            IdpTrust::new(IDP, &[idp_cert.into_bytes()], RequiredSignatures::Assertion, false, 60, false)
                .unwrap();
        let expected = Expected {
            sp_entity_id: SP,
            acs_url: ACS,
            request_id: Some(&id),
            now: unix_now(),
            relay_in_response_to: false,
        };
        let verified = saml_acs::verify(&xml, &trust, &expected).unwrap();
        // The persistent NameID is what the account number is derived from.
        let rules = crate::verify::identity::SubjectRules::default();
        let subject = verified.identity.stable_subject(crate::config::IdpKind::Saml, &rules).unwrap();
        assert_eq!((subject.issuer, subject.subject), (IDP, user.subject));
        assert_eq!(verified.identity.values(&["eduPersonAffiliation".to_owned()]), ["student"]);
        assert_eq!(verified.identity.values(&["norEduPersonNIN".to_owned()]), ["201002152385"]);
    }

    /// An AuthnRequest for another SP or ACS gets no assertion, and garbage gets a clear error.
    #[test]
    fn requests_from_elsewhere_are_refused() {
        let (sp, _, _) = parties(KeyType::Rsa);
        let (request, _) = saml_request(&sp);
        let (other_cert, other_key) = crate::certs::generate_saml_signing_cert(IDP).unwrap();
        drop(other_cert);
        let wrong_acs =
            SamlIdp::new(IDP.into(), SP.into(), "https://evil.example/acs".into(), &other_key, KeyType::Rsa)
                .unwrap();
        assert_eq!(
            wrong_acs.read_request(&request).err(),
            Some("the AssertionConsumerServiceURL is not nymgate's")
        );
        let wrong_sp =
            SamlIdp::new(IDP.into(), "https://evil.example/sp".into(), ACS.into(), &other_key, KeyType::Rsa)
                .unwrap();
        assert_eq!(wrong_sp.read_request(&request).err(), Some("the Issuer is not nymgate's SP"));
        assert_eq!(wrong_sp.read_request("%%%").err(), Some("SAMLRequest is not base64"));
        assert_eq!(wrong_sp.read_request("aGVsbG8=").err(), Some("SAMLRequest is not DEFLATE of UTF-8"));
    }
}
