//! nymgate as a SAML 2.0 service provider: its metadata, and SP-initiated login with a signed
//! AuthnRequest over the HTTP-Redirect binding (SAML Bindings §3.4). The response side (the ACS,
//! with the strict profile of shared/SECURITY.md) builds on this.
//!
//! The Redirect binding signs the query string, not the XML (Bindings §3.4.4.1): the signature
//! covers `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as URL-encoded in the request, so no XML
//! signature library is involved here.

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::io::Write;

use crate::web::escape;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// nymgate's one SAML SP, shared by every SAML tenant.
pub struct SamlSp {
    pub entity_id: String,
    pub acs_url: String,
    key: KeyPair,
    /// The signing certificate, DER as base64 (for `ds:X509Certificate`).
    cert_b64: String,
}

impl std::fmt::Debug for SamlSp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlSp").field("entity_id", &self.entity_id).finish_non_exhaustive()
    }
}

/// A tenant's SAML IdP, as nymgate needs it to send a login there.
#[derive(Debug, Clone)]
pub struct SamlIdp {
    pub tenant: String,
    pub entity_id: String,
    pub sso_url: String,
    pub name_id_format: Option<String>,
    /// Sign the AuthnRequest (the tenant's `sign_authn_requests`, on by default).
    pub sign_requests: bool,
}

/// What nymgate asks of the school's IdP in its AuthnRequest on a platform's behalf (SAML Core
/// §3.4.1): the platform's ForceAuthn and IsPassive, passed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthnOptions {
    /// ForceAuthn="true": authenticate afresh, whatever session the IdP holds.
    pub force_authn: bool,
    /// IsPassive="true": show the user nothing; answer NoPassive when that can't be done.
    pub is_passive: bool,
}

/// nymgate's SP entity ID when `login.saml.entity_id` is not set (docs/SAML.md).
pub fn default_entity_id(public_url: &str) -> String {
    format!("{}{}/saml", public_url.trim_end_matches('/'), super::PREFIX)
}

/// nymgate's one AssertionConsumerService (HTTP-POST binding).
pub fn acs_url(public_url: &str) -> String {
    format!("{}{}/saml/acs", public_url.trim_end_matches('/'), super::PREFIX)
}

impl SamlSp {
    /// From PEM files: the certificate (published) and its RSA PKCS#8 key.
    pub fn new(entity_id: &str, acs_url: &str, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        let cert = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| format!("login.saml.cert_file: not a PEM certificate: {e}"))?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("login.saml.key_file: not a PKCS#8 PEM key: {e}"))?;
        let key = KeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|_| {
            "login.saml.key_file: not an RSA key (make one with `nymgate certs saml`)".to_owned()
        })?;
        Ok(Self {
            entity_id: entity_id.to_owned(),
            acs_url: acs_url.to_owned(),
            key,
            cert_b64: STANDARD.encode(cert.as_ref()),
        })
    }

    /// The SP metadata school IT uploads to its IdP or federation (SAML Metadata §2.4.4).
    pub fn metadata(&self) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
            entity = escape(&self.entity_id),
            cert = self.cert_b64,
            acs = escape(&self.acs_url),
        )
    }

    /// The AuthnRequest XML (SAML Core §3.4.1). `id` must start with a letter or `_` (xs:ID).
    fn authn_request(&self, idp: &SamlIdp, id: &str, issue_instant: &str, options: AuthnOptions) -> String {
        let policy = match &idp.name_id_format {
            Some(format) => {
                format!(r#"<samlp:NameIDPolicy Format="{}" AllowCreate="true"/>"#, escape(format))
            }
            None => r#"<samlp:NameIDPolicy AllowCreate="true"/>"#.to_owned(),
        };
        let mut asks = String::new();
        if options.force_authn {
            asks.push_str(r#" ForceAuthn="true""#);
        }
        if options.is_passive {
            asks.push_str(r#" IsPassive="true""#);
        }
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issue_instant}" Destination="{dest}"{asks} AssertionConsumerServiceURL="{acs}" ProtocolBinding="{POST_BINDING}"><saml:Issuer>{issuer}</saml:Issuer>{policy}</samlp:AuthnRequest>"#,
            dest = escape(&idp.sso_url),
            acs = escape(&self.acs_url),
            issuer = escape(&self.entity_id),
        )
    }

    /// The IdP's SSO URL with the AuthnRequest (signed unless the tenant turned that off), and
    /// the request's ID (kept in the flow cookie so the response's InResponseTo can be checked
    /// by any replica).
    pub fn login_url(&self, idp: &SamlIdp, relay_state: &str, now: u64) -> (String, String) {
        self.login_url_with(idp, relay_state, now, AuthnOptions::default())
    }

    /// As [`SamlSp::login_url`], asking the IdP for `options` (a platform's ForceAuthn and
    /// IsPassive, docs/SAML_OUT.md).
    pub fn login_url_with(
        &self,
        idp: &SamlIdp,
        relay_state: &str,
        now: u64,
        options: AuthnOptions,
    ) -> (String, String) {
        let id = format!("_{}", crate::secret::random_hex::<16>());
        let xml = self.authn_request(idp, &id, &crate::audit::rfc3339(now), options);
        // Bindings §3.4.4.1: DEFLATE (RFC 1951, raw), base64, then URL-encode.
        let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflater.write_all(xml.as_bytes()).expect("writing to a Vec cannot fail");
        let deflated = deflater.finish().expect("writing to a Vec cannot fail");
        let encode = |value: &str| -> String {
            openidconnect::url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
        };
        let sep = if idp.sso_url.contains('?') { '&' } else { '?' };
        let request =
            format!("SAMLRequest={}&RelayState={}", encode(&STANDARD.encode(deflated)), encode(relay_state));
        if !idp.sign_requests {
            return (format!("{}{sep}{request}", idp.sso_url), id);
        }
        let signed_part = format!("{request}&SigAlg={}", encode(RSA_SHA256));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signed_part.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a valid key works");
        let url =
            format!("{}{sep}{signed_part}&Signature={}", idp.sso_url, encode(&STANDARD.encode(signature)));
        (url, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sp() -> SamlSp {
        let (cert, key) =
            crate::certs::generate_saml_signing_cert("https://learn.example/nymgate/saml").unwrap();
        SamlSp::new(
            "https://learn.example/nymgate/saml",
            "https://learn.example/nymgate/saml/acs",
            cert.as_bytes(),
            key.as_bytes(),
        )
        .unwrap()
    }

    fn idp() -> SamlIdp {
        SamlIdp {
            tenant: "school-s".into(),
            entity_id: "https://idp.school-s.example/saml".into(),
            sso_url: "https://idp.school-s.example/sso?x=1".into(),
            name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
            sign_requests: true,
        }
    }

    #[test]
    fn redirect_binding_request_inflates_and_its_signature_verifies() {
        let sp = sp();
        let (url, id) = sp.login_url(&idp(), "relay&state", 1_795_994_100);
        let parsed = openidconnect::url::Url::parse(&url).unwrap();
        let get =
            |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
        assert_eq!(get("x"), "1", "the SSO URL's own query is kept");
        assert_eq!(get("RelayState"), "relay&state");
        assert_eq!(get("SigAlg"), RSA_SHA256);

        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&STANDARD.decode(get("SAMLRequest")).unwrap()[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert!(xml.contains(&format!(r#"ID="{id}""#)) && id.starts_with('_'));
        assert!(xml.contains(r#"Destination="https://idp.school-s.example/sso?x=1""#));
        assert!(xml.contains(r#"IssueInstant="2026-11-29T23:15:00Z""#));
        assert!(xml.contains("<saml:Issuer>https://learn.example/nymgate/saml</saml:Issuer>"));
        assert!(xml.contains("nameid-format:persistent"));

        // The signature is over the query exactly as sent, from SAMLRequest to SigAlg.
        let query = parsed.query().unwrap();
        let start = query.find("SAMLRequest=").unwrap();
        let end = query.find("&Signature=").unwrap();
        let signature = STANDARD.decode(get("Signature")).unwrap();
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            aws_lc_rs::signature::KeyPair::public_key(&sp.key).as_ref().to_vec(),
        );
        public.verify(&query.as_bytes()[start..end], &signature).expect("signature verifies");
        assert!(public.verify(query[start..end].replace("relay", "other").as_bytes(), &signature).is_err());
    }

    /// A platform's ForceAuthn and IsPassive reach the school's IdP as the same attributes of
    /// nymgate's AuthnRequest (SAML Core §3.4.1), and are absent when not asked for.
    #[test]
    fn force_authn_and_is_passive_are_passed_on() {
        let xml_of = |options: AuthnOptions| {
            let (url, _) = sp().login_url_with(&idp(), "relay", 1_795_994_100, options);
            let parsed = openidconnect::url::Url::parse(&url).unwrap();
            let request = parsed.query_pairs().find(|(k, _)| k == "SAMLRequest").unwrap().1.into_owned();
            let mut xml = String::new();
            flate2::read::DeflateDecoder::new(&STANDARD.decode(request).unwrap()[..])
                .read_to_string(&mut xml)
                .unwrap();
            xml
        };
        let plain = xml_of(AuthnOptions::default());
        assert!(!plain.contains("ForceAuthn") && !plain.contains("IsPassive"), "{plain}");
        let force = xml_of(AuthnOptions { force_authn: true, is_passive: false });
        assert!(force.contains(r#" ForceAuthn="true""#) && !force.contains("IsPassive"), "{force}");
        let both = xml_of(AuthnOptions { force_authn: true, is_passive: true });
        assert!(both.contains(r#" ForceAuthn="true""#) && both.contains(r#" IsPassive="true""#), "{both}");
    }

    /// A tenant with `sign_authn_requests = false`: the same request, no SigAlg or Signature.
    #[test]
    fn an_unsigned_request_carries_no_signature() {
        let unsigned = SamlIdp { sign_requests: false, ..idp() };
        let (url, id) = sp().login_url(&unsigned, "relay", 1_795_994_100);
        let parsed = openidconnect::url::Url::parse(&url).unwrap();
        let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(names, ["x", "SAMLRequest", "RelayState"]);
        let request = parsed.query_pairs().find(|(k, _)| k == "SAMLRequest").unwrap().1.into_owned();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&STANDARD.decode(request).unwrap()[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert!(xml.contains(&format!(r#"ID="{id}""#)));
    }

    #[test]
    fn metadata_names_the_acs_and_the_signing_certificate() {
        let sp = sp();
        let xml = sp.metadata();
        assert!(xml.contains(r#"entityID="https://learn.example/nymgate/saml""#));
        assert!(xml.contains(r#"Location="https://learn.example/nymgate/saml/acs""#));
        assert!(xml.contains(&sp.cert_b64));
        assert!(xml.contains(r#"AuthnRequestsSigned="true" WantAssertionsSigned="true""#));
    }
}
