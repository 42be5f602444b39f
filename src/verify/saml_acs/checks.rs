//! The protocol checks of a verified Response (SAML Core §2-3, Profiles §4.1.4): status,
//! InResponseTo, the bearer subject confirmation, conditions, the authentication statement, and
//! reading the NameID and attributes.

use super::*;

/// The Response's own attributes (SAML Core §3.2.2; Bindings §3.5.5.2; Profiles §4.1.4.3).
pub(super) fn check_response(
    doc: &Document<'_>,
    shape: &Shape,
    trust: &IdpTrust,
    expected: &Expected<'_>,
) -> Result<(), SamlError> {
    let response = doc.document_element().ok_or(SamlError::Malformed)?;
    if attr(doc, response, "Version") != Some("2.0") {
        return Err(SamlError::Structure("Response Version is not 2.0"));
    }
    if let Some(issuer) = child(doc, response, SAML, "Issuer") {
        if !same_issuer(full_text(doc, issuer)?.trim(), &trust.entity_id) {
            return Err(SamlError::Issuer);
        }
    }
    match attr(doc, response, "Destination") {
        Some(destination) if destination != expected.acs_url => return Err(SamlError::Destination),
        // A signed message must say where it was meant to go (Bindings §3.5.5.2).
        None if shape.response_signature.is_some() => return Err(SamlError::Destination),
        _ => {}
    }
    let issued = instant(doc, response, "IssueInstant")?.ok_or(SamlError::Time("IssueInstant missing"))?;
    if issued > expected.now + trust.clock_skew {
        return Err(SamlError::NotYetValid("Response IssueInstant"));
    }
    check_in_response_to(attr(doc, response, "InResponseTo"), expected, trust)
}

/// Solicited: InResponseTo equals the request this browser made. Unsolicited: there is none
/// (samlify writes an empty one), and the tenant must accept unsolicited responses.
pub(super) fn check_in_response_to(
    value: Option<&str>,
    expected: &Expected<'_>,
    trust: &IdpTrust,
) -> Result<(), SamlError> {
    let value = value.filter(|v| !v.is_empty());
    match (expected.request_id, value) {
        (Some(sent), Some(got)) if crate::secret::ct_eq_str(sent, got) => Ok(()),
        (Some(_), _) => Err(SamlError::InResponseTo),
        (None, None) if trust.allow_unsolicited => Ok(()),
        (None, None) => Err(SamlError::Unsolicited),
        (None, Some(_)) if expected.relay_in_response_to => Ok(()),
        (None, Some(_)) => Err(SamlError::InResponseTo),
    }
}

/// One bearer SubjectConfirmation with Recipient = this ACS, a NotOnOrAfter still ahead and
/// the right InResponseTo (Profiles §4.1.4.2). Returns its NotOnOrAfter.
pub(super) fn check_subject_confirmation(
    doc: &Document<'_>,
    subject: NodeId,
    expected: &Expected<'_>,
    skew: u64,
) -> Result<u64, SamlError> {
    let bad = SamlError::SubjectConfirmation;
    let confirmations = children_named(doc, subject, SAML, "SubjectConfirmation");
    let [confirmation] = confirmations[..] else {
        return Err(bad("exactly one SubjectConfirmation is accepted"));
    };
    if attr(doc, confirmation, "Method") != Some(BEARER) {
        return Err(bad("method is not bearer"));
    }
    let data = only_child(doc, confirmation, SAML, "SubjectConfirmationData")?
        .ok_or(bad("no SubjectConfirmationData"))?;
    if !element_children(doc, data).is_empty() {
        return Err(bad("SubjectConfirmationData with element content"));
    }
    if attr(doc, data, "Recipient") != Some(expected.acs_url) {
        return Err(SamlError::Recipient);
    }
    let until = instant(doc, data, "NotOnOrAfter")?.ok_or(bad("no NotOnOrAfter"))?;
    if expected.now >= until + skew {
        return Err(SamlError::Expired("SubjectConfirmationData NotOnOrAfter"));
    }
    if let Some(from) = instant(doc, data, "NotBefore")? {
        if expected.now + skew < from {
            return Err(SamlError::NotYetValid("SubjectConfirmationData NotBefore"));
        }
    }
    let value = attr(doc, data, "InResponseTo").filter(|v| !v.is_empty());
    match (expected.request_id, value) {
        (Some(sent), Some(got)) if crate::secret::ct_eq_str(sent, got) => {}
        (None, None) => {}
        _ => return Err(SamlError::InResponseTo),
    }
    Ok(until)
}

/// Conditions (Core §2.5): the time window with skew, and every AudienceRestriction naming
/// this SP; a condition nymgate does not know makes the assertion invalid (§2.5.1.5). Returns
/// NotOnOrAfter, or a far date when absent (then the SubjectConfirmation's bounds it).
pub(super) fn check_conditions(
    doc: &Document<'_>,
    assertion: NodeId,
    expected: &Expected<'_>,
    skew: u64,
) -> Result<u64, SamlError> {
    let conditions = only_child(doc, assertion, SAML, "Conditions")?.ok_or(SamlError::Audience)?;
    let now = expected.now;
    if let Some(from) = instant(doc, conditions, "NotBefore")? {
        if now + skew < from {
            return Err(SamlError::NotYetValid("Conditions NotBefore"));
        }
    }
    let until = instant(doc, conditions, "NotOnOrAfter")?;
    if let Some(until) = until {
        if now >= until + skew {
            return Err(SamlError::Expired("Conditions NotOnOrAfter"));
        }
    }
    let mut restrictions = 0;
    for condition in element_children(doc, conditions) {
        match local_name(doc, condition).filter(|_| in_ns(doc, condition, SAML)) {
            Some("AudienceRestriction") => {
                restrictions += 1;
                let mut named = false;
                for audience in children_named(doc, condition, SAML, "Audience") {
                    named |= full_text(doc, audience)?.trim() == expected.sp_entity_id;
                }
                if !named {
                    return Err(SamlError::Audience);
                }
            }
            Some("OneTimeUse" | "ProxyRestriction") => {}
            _ => return Err(SamlError::Structure("a condition nymgate does not understand")),
        }
    }
    if restrictions == 0 {
        return Err(SamlError::Audience);
    }
    Ok(until.unwrap_or(u64::MAX / 2))
}

/// Each AuthnStatement's session still open; returns the earliest AuthnInstant (required by
/// SAML Core §2.7.2; one in the future is refused like an early IssueInstant).
pub(super) fn check_authn_statement(
    doc: &Document<'_>,
    assertion: NodeId,
    now: u64,
    skew: u64,
) -> Result<u64, SamlError> {
    let statements = children_named(doc, assertion, SAML, "AuthnStatement");
    if statements.is_empty() {
        return Err(SamlError::Structure("no AuthnStatement"));
    }
    let mut earliest = u64::MAX;
    for statement in statements {
        if let Some(until) = instant(doc, statement, "SessionNotOnOrAfter")? {
            if now >= until + skew {
                return Err(SamlError::Expired("SessionNotOnOrAfter"));
            }
        }
        let at = instant(doc, statement, "AuthnInstant")?.ok_or(SamlError::Time("AuthnInstant missing"))?;
        if at > now + skew {
            return Err(SamlError::Time("AuthnInstant in the future"));
        }
        earliest = earliest.min(at);
    }
    Ok(earliest)
}

pub(super) fn read_name_id(doc: &Document<'_>, subject: NodeId) -> Result<Option<NameId>, SamlError> {
    let Some(node) = only_child(doc, subject, SAML, "NameID")? else { return Ok(None) };
    let value = full_text(doc, node)?;
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(NameId { value, format: attr(doc, node, "Format").map(str::to_owned) }))
}

/// Every Attribute of every AttributeStatement, by Name (urn:oid) with its FriendlyName. A
/// value is its full text; a value holding a NameID (eduPersonTargetedID) is that NameID's
/// text; `xsi:nil` and other element content give no value.
pub(super) fn read_attributes(doc: &Document<'_>, assertion: NodeId) -> Result<Vec<Attribute>, SamlError> {
    let mut attributes = Vec::new();
    for statement in children_named(doc, assertion, SAML, "AttributeStatement") {
        for node in element_children(doc, statement) {
            if !is(doc, node, SAML, "Attribute") {
                return Err(SamlError::Structure("AttributeStatement holds something other than Attribute"));
            }
            let name = attr(doc, node, "Name").ok_or(SamlError::Structure("Attribute without Name"))?;
            let mut values = Vec::new();
            for value in children_named(doc, node, SAML, "AttributeValue") {
                let nil = doc.element(value).and_then(|e| e.get_attribute_ns(XSI, "nil"));
                if matches!(nil, Some("true" | "1")) {
                    continue;
                }
                let inner = element_children(doc, value);
                match inner[..] {
                    [] => values.push(full_text(doc, value)?),
                    [one] if is(doc, one, SAML, "NameID") => values.push(full_text(doc, one)?),
                    _ => {}
                }
            }
            attributes.push(Attribute {
                name: name.to_owned(),
                friendly_name: attr(doc, node, "FriendlyName").map(str::to_owned),
                values,
            });
        }
    }
    Ok(attributes)
}

// ---- small DOM helpers -------------------------------------------------------------------
