//! A SAML IdP's metadata (SAML Metadata 2.0): where its SSO service is and which keys sign its
//! responses, read from a file or a URL, and, when a federation key is configured, accepted
//! only with a valid signature by that key over the whole document (the federation's metadata
//! signing, as Skolfederation and Feide/eduGAIN publish it).
//!
//! The same strict parser as the ACS reads it (no DTD, no processing instructions, xml_bounds.rs's
//! per-element bounds; its document-wide ones sized for a federation's aggregate), and the
//! signature passes the same structural checks: one Signature on the root element, one
//! Reference to the root's ID, exclusive C14N, allowlisted algorithms, pinned keys only.

use uppsala::{Document, NodeId};

use super::saml_acs::{self, attr, IdpTrust};

const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// What nymgate takes from an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpDescriptor {
    /// The SingleSignOnService for the HTTP-Redirect binding.
    pub sso_url: Option<String>,
    /// The signing certificates, as PEM.
    pub certificates: Vec<Vec<u8>>,
    /// The earliest `validUntil` on the path to the entity (Metadata §2.3.1), as Unix seconds.
    pub valid_until: Option<u64>,
}

/// Reads the descriptor of `entity_id` from metadata text: a lone EntityDescriptor or an
/// EntitiesDescriptor (a federation's aggregate) holding it. With `federation`, the root must
/// carry a valid signature by one of the federation's keys. Errors are fixed phrases plus
/// structure, never document content.
pub fn read(
    xml: &str,
    entity_id: &str,
    federation: Option<&IdpTrust>,
    now: u64,
) -> Result<IdpDescriptor, String> {
    let doc = saml_acs::parse_within(xml, &super::xml_bounds::METADATA)
        .map_err(|e| format!("metadata refused: {e}"))?;
    let root = doc.document_element().ok_or("metadata refused: no root element")?;
    if let Some(federation) = federation {
        saml_acs::verify_root_signature(&doc, xml, root, federation)
            .map_err(|e| format!("metadata signature refused: {e}"))?;
    }
    let mut valid_until = valid_until(&doc, root)?;
    let entity = if is(&doc, root, "EntityDescriptor") {
        root
    } else if is(&doc, root, "EntitiesDescriptor") {
        let found: Vec<NodeId> = doc
            .descendants(root)
            .into_iter()
            .filter(|&n| is(&doc, n, "EntityDescriptor") && attr(&doc, n, "entityID") == Some(entity_id))
            .collect();
        let [entity] = found[..] else {
            return Err(format!(
                "metadata holds {} EntityDescriptors for this IdP (one expected)",
                found.len()
            ));
        };
        // Nested EntitiesDescriptors may narrow validUntil too.
        for ancestor in doc.ancestors(entity) {
            if is(&doc, ancestor, "EntitiesDescriptor") {
                valid_until = min_option(valid_until, self::valid_until(&doc, ancestor)?);
            }
        }
        entity
    } else {
        return Err("metadata refused: the root is neither EntityDescriptor nor EntitiesDescriptor".into());
    };
    if attr(&doc, entity, "entityID") != Some(entity_id) {
        return Err("metadata is for another entity than the tenant's issuer".into());
    }
    valid_until = min_option(valid_until, self::valid_until(&doc, entity)?);
    if valid_until.is_some_and(|until| now >= until) {
        return Err("metadata has expired (validUntil)".into());
    }
    let descriptors: Vec<NodeId> = children(&doc, entity, "IDPSSODescriptor")
        .into_iter()
        .filter(|&d| {
            attr(&doc, d, "protocolSupportEnumeration")
                .is_some_and(|p| p.split_whitespace().any(|p| p == SAML2_PROTOCOL))
        })
        .collect();
    let [idp] = descriptors[..] else {
        return Err("metadata has no SAML 2.0 IDPSSODescriptor for this entity".into());
    };
    let mut certificates = Vec::new();
    for key in children(&doc, idp, "KeyDescriptor") {
        if !matches!(attr(&doc, key, "use"), None | Some("signing")) {
            continue;
        }
        for node in doc.descendants(key) {
            let is_cert = doc.element(node).is_some_and(|e| e.matches_name_ns(DSIG, "X509Certificate"));
            if is_cert {
                let b64: String =
                    doc.text_content_deep(node).chars().filter(|c| !c.is_whitespace()).collect();
                certificates.push(pem(&b64).into_bytes());
            }
        }
    }
    if certificates.is_empty() {
        return Err("metadata has no signing certificate for this IdP".into());
    }
    let sso_url = children(&doc, idp, "SingleSignOnService")
        .into_iter()
        .find(|&s| attr(&doc, s, "Binding") == Some(REDIRECT_BINDING))
        .and_then(|s| attr(&doc, s, "Location"))
        .map(str::to_owned);
    Ok(IdpDescriptor { sso_url, certificates, valid_until })
}

fn pem(b64: &str) -> String {
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn valid_until(doc: &Document<'_>, node: NodeId) -> Result<Option<u64>, String> {
    match attr(doc, node, "validUntil") {
        None => Ok(None),
        Some(text) => crate::clock::parse_instant(text)
            .map(Some)
            .ok_or_else(|| "metadata validUntil is not a UTC dateTime".into()),
    }
}

fn min_option(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is(doc: &Document<'_>, node: NodeId, local: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(MD, local))
}

fn children(doc: &Document<'_>, node: NodeId, local: &str) -> Vec<NodeId> {
    doc.children_iter(node).filter(|&c| is(doc, c, local)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_B64: &str = "MIIBszCCAVmgAwIBAgIUB";

    fn entity(id: &str, valid_until: &str) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DSIG}" entityID="{id}"{valid_until}>
  <md:IDPSSODescriptor protocolSupportEnumeration="{SAML2_PROTOCOL}">
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>ENCRYPTION</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
      {CERT_B64}
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example/post"/>
    <md:SingleSignOnService Binding="{REDIRECT_BINDING}" Location="https://idp.example/redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
        )
    }

    #[test]
    fn reads_the_signing_keys_and_the_redirect_sso() {
        let descriptor = read(&entity("https://idp.example", ""), "https://idp.example", None, 0).unwrap();
        assert_eq!(descriptor.sso_url.as_deref(), Some("https://idp.example/redirect"));
        assert_eq!(descriptor.certificates.len(), 1, "the encryption key is not a signing key");
        assert!(String::from_utf8_lossy(&descriptor.certificates[0]).contains(CERT_B64));
    }

    #[test]
    fn finds_the_entity_in_an_aggregate_and_honours_valid_until() {
        let aggregate = format!(
            r#"<md:EntitiesDescriptor xmlns:md="{MD}" validUntil="2030-01-01T00:00:00Z">{}{}</md:EntitiesDescriptor>"#,
            entity("https://other.example", ""),
            entity("https://idp.example", r#" validUntil="2029-01-01T00:00:00Z""#)
        );
        let until = crate::clock::parse_instant("2029-01-01T00:00:00Z").unwrap();
        let descriptor = read(&aggregate, "https://idp.example", None, 0).unwrap();
        assert_eq!(descriptor.valid_until, Some(until));
        assert!(read(&aggregate, "https://idp.example", None, until).unwrap_err().contains("expired"));
        assert!(read(&aggregate, "https://missing.example", None, 0)
            .unwrap_err()
            .contains("0 EntityDescriptors"));
    }

    #[test]
    fn refuses_other_entities_doctype_and_missing_keys() {
        assert!(read(&entity("https://idp.example", ""), "https://else.example", None, 0).is_err());
        let doctype = format!("<!DOCTYPE x>{}", entity("https://idp.example", ""));
        assert!(read(&doctype, "https://idp.example", None, 0).unwrap_err().contains("DOCTYPE"));
        let no_keys = entity("https://idp.example", "").replace(r#"use="signing""#, r#"use="encryption""#);
        assert!(read(&no_keys, "https://idp.example", None, 0)
            .unwrap_err()
            .contains("no signing certificate"));
    }

    #[test]
    fn metadata_with_thousands_of_attributes_on_one_element_is_refused() {
        // A metadata URL is hostile too: its XML crosses the same bounds before the parser, with
        // the document-wide ones an aggregate needs.
        let many: String = (0..5_000).map(|i| format!(" a{i}=\"x\"")).collect();
        let xml = entity("https://idp.example", &many);
        let error = read(&xml, "https://idp.example", None, 0).unwrap_err();
        assert!(error.contains("XML past a bound: attributes on one element"), "{error}");
        let aggregate: String = (0..300).map(|i| entity(&format!("https://idp{i}.example"), "")).collect();
        let aggregate =
            format!(r#"<md:EntitiesDescriptor xmlns:md="{MD}">{aggregate}</md:EntitiesDescriptor>"#);
        assert!(read(&aggregate, "https://idp7.example", None, 0).is_ok(), "600 declarations in all");
    }
}
