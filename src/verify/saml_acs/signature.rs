//! The XML signatures of a SAML Response or of metadata (XML-DSig, SAML Core §5): their shape
//! checked strictly before bergshamra verifies them against the pinned keys only.

use super::*;

/// The Signature's own structure, before any cryptography: SignedInfo, SignatureValue and an
/// optional KeyInfo only (no ds:Object to hide things in); exclusive C14N without comments;
/// one Reference, to the parent's ID; the enveloped-signature and exc-C14N transforms, nothing
/// else (no XPath, no XSLT); allowlisted algorithms. Returns whether SHA-1 was accepted.
pub(super) fn check_signature_shape(
    doc: &Document<'_>,
    signature: NodeId,
    parent: NodeId,
    trust: &IdpTrust,
) -> Result<bool, SamlError> {
    let bad = SamlError::Structure;
    let children = element_children(doc, signature);
    let names: Vec<&str> = children.iter().filter_map(|&c| local_name(doc, c)).collect();
    if !(names == ["SignedInfo", "SignatureValue"] || names == ["SignedInfo", "SignatureValue", "KeyInfo"])
        || !children.iter().all(|&c| in_ns(doc, c, DSIG))
    {
        return Err(bad("Signature children other than SignedInfo, SignatureValue, KeyInfo"));
    }
    let signed_info = children[0];
    let parts = element_children(doc, signed_info);
    let names: Vec<&str> = parts.iter().filter_map(|&c| local_name(doc, c)).collect();
    if names != ["CanonicalizationMethod", "SignatureMethod", "Reference"]
        || !parts.iter().all(|&c| in_ns(doc, c, DSIG))
    {
        return Err(bad("SignedInfo must hold one CanonicalizationMethod, SignatureMethod and Reference"));
    }
    let (c14n, method, reference) = (parts[0], parts[1], parts[2]);
    if attr(doc, c14n, "Algorithm") != Some(EXC_C14N) || !only_inclusive_namespaces(doc, c14n) {
        return Err(SamlError::Algorithm("canonicalization other than exclusive C14N"));
    }
    if !element_children(doc, method).is_empty() {
        return Err(bad("SignatureMethod parameters"));
    }
    let mut weak = false;
    match attr(doc, method, "Algorithm") {
        Some(a) if SIGNATURE_METHODS.contains(&a) => {}
        Some(WEAK_SIGNATURE_METHOD) if trust.allow_weak_algorithms => weak = true,
        Some(WEAK_SIGNATURE_METHOD) => return Err(SamlError::Algorithm("RSA-SHA1")),
        _ => return Err(SamlError::Algorithm("signature method not on the allowlist")),
    }
    let parent_id =
        attr(doc, parent, "ID").filter(|id| !id.is_empty()).ok_or(bad("signed element without ID"))?;
    let uri = attr(doc, reference, "URI").unwrap_or("");
    if uri.strip_prefix('#') != Some(parent_id) {
        return Err(bad("Reference does not point at the signed element"));
    }
    let parts = element_children(doc, reference);
    let names: Vec<&str> = parts.iter().filter_map(|&c| local_name(doc, c)).collect();
    if names != ["Transforms", "DigestMethod", "DigestValue"] || !parts.iter().all(|&c| in_ns(doc, c, DSIG)) {
        return Err(bad("Reference must hold Transforms, DigestMethod and DigestValue"));
    }
    let transforms = element_children(doc, parts[0]);
    let algorithms: Vec<Option<&str>> = transforms.iter().map(|&t| attr(doc, t, "Algorithm")).collect();
    if algorithms != [Some(ENVELOPED), Some(EXC_C14N)]
        || !transforms.iter().all(|&t| is(doc, t, DSIG, "Transform"))
        || !element_children(doc, transforms[0]).is_empty()
        || !only_inclusive_namespaces(doc, transforms[1])
    {
        return Err(SamlError::Algorithm("transforms other than enveloped-signature then exclusive C14N"));
    }
    match attr(doc, parts[1], "Algorithm") {
        Some(a) if DIGEST_METHODS.contains(&a) => {}
        Some(WEAK_DIGEST_METHOD) if trust.allow_weak_algorithms => weak = true,
        Some(WEAK_DIGEST_METHOD) => return Err(SamlError::Algorithm("SHA-1 digest")),
        _ => return Err(SamlError::Algorithm("digest method not on the allowlist")),
    }
    Ok(weak)
}

/// An exc-C14N method element may carry one `InclusiveNamespaces` (Exc-C14N §3), nothing else.
pub(super) fn only_inclusive_namespaces(doc: &Document<'_>, method: NodeId) -> bool {
    let children = element_children(doc, method);
    children.is_empty()
        || (children.len() == 1
            && local_name(doc, children[0]) == Some("InclusiveNamespaces")
            && in_ns(doc, children[0], EXC_C14N)
            && element_children(doc, children[0]).is_empty())
}

/// bergshamra checks each signature with the pinned keys only; then each must have resolved
/// its one Reference to exactly the element it sits in (an XSW attack gets "valid" from the
/// library for a signature over an element moved elsewhere: DEPENDENCIES.md). The tenant's
/// required signatures must be among those verified.
pub(super) fn verify_signatures(
    doc: &Document<'_>,
    xml: &str,
    shape: &Shape,
    trust: &IdpTrust,
) -> Result<(), SamlError> {
    let present = [shape.response_signature, shape.assertion_signature];
    let response_signed = shape.response_signature.is_some();
    let assertion_signed = shape.assertion_signature.is_some();
    let missing = match trust.required {
        RequiredSignatures::Either if !response_signed && !assertion_signed => Some("no signature"),
        RequiredSignatures::Assertion | RequiredSignatures::Both if !assertion_signed => Some("Assertion"),
        RequiredSignatures::Response | RequiredSignatures::Both if !response_signed => Some("Response"),
        _ => None,
    };
    if let Some(what) = missing {
        return Err(SamlError::Unsigned(what));
    }
    let results = verify_all_document_with_source(&trust.context, doc, Some(xml))
        .map_err(|_| SamlError::BadSignature)?;
    let mut verified = 0;
    for result in results {
        let VerifyResult::Valid { signature_node, references, .. } = result else {
            return Err(SamlError::BadSignature);
        };
        let Some(&(_, parent)) = present.iter().flatten().find(|(s, _)| *s == signature_node) else {
            return Err(SamlError::BadSignature);
        };
        match &references[..] {
            [one] if one.digest_verified && one.resolved_node == Some(parent) => verified += 1,
            _ => return Err(SamlError::BadSignature),
        }
    }
    if verified != present.iter().flatten().count() {
        return Err(SamlError::BadSignature);
    }
    Ok(())
}

/// One enveloped signature directly on `root`, by the pinned keys only, with the same shape
/// rules as a response's (a federation's signature over its metadata).
pub fn verify_root_signature(
    doc: &Document<'_>,
    xml: &str,
    root: NodeId,
    trust: &IdpTrust,
) -> Result<(), SamlError> {
    let signatures = children_named(doc, root, DSIG, "Signature");
    let [signature] = signatures[..] else {
        return Err(SamlError::Unsigned("the root element"));
    };
    check_signature_shape(doc, signature, root, trust)?;
    let result = bergshamra::dsig::verify::verify_document_with_source(&trust.context, doc, Some(xml))
        .map_err(|_| SamlError::BadSignature)?;
    match result {
        VerifyResult::Valid { signature_node, references, .. } if signature_node == signature => {
            match &references[..] {
                [one] if one.digest_verified && one.resolved_node == Some(root) => Ok(()),
                _ => Err(SamlError::BadSignature),
            }
        }
        _ => Err(SamlError::BadSignature),
    }
}
