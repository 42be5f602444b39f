//! Small readers over the parsed document (uppsala): names in a namespace, attributes,
//! children, text, instants. Every lookup is by namespace and local name, never by prefix.

use super::*;

pub(super) fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(ns, local))
}

pub(super) fn in_ns(doc: &Document<'_>, node: NodeId, ns: &str) -> bool {
    doc.element(node).is_some_and(|e| e.name.namespace_uri.as_deref() == Some(ns))
}

pub(super) fn local_name<'d>(doc: &'d Document<'_>, node: NodeId) -> Option<&'d str> {
    doc.element(node).map(|e| &*e.name.local_name)
}

/// An attribute without a namespace (SAML's and XML-DSig's own attributes are unqualified).
pub(crate) fn attr<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.element(node)?
        .attributes
        .iter()
        .find(|a| a.name.namespace_uri.is_none() && a.name.local_name == name)
        .map(|a| &*a.value)
}

pub(super) fn element_children(doc: &Document<'_>, node: NodeId) -> Vec<NodeId> {
    doc.children_iter(node).filter(|&c| doc.element(c).is_some()).collect()
}

pub(super) fn children_named(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Vec<NodeId> {
    doc.children_iter(node).filter(|&c| is(doc, c, ns, local)).collect()
}

pub(super) fn child(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    doc.children_iter(node).find(|&c| is(doc, c, ns, local))
}

/// The one child of that name, `None` if absent; two are refused.
pub(super) fn only_child(
    doc: &Document<'_>,
    node: NodeId,
    ns: &str,
    local: &str,
) -> Result<Option<NodeId>, SamlError> {
    match children_named(doc, node, ns, local)[..] {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(SamlError::Structure("a repeated element")),
    }
}

/// All of a value's text: every text and CDATA child together, comments skipped (Rule 5:
/// `alice<!---->@school.se` is `alice@school.se`). Element content is refused.
pub(super) fn full_text(doc: &Document<'_>, node: NodeId) -> Result<String, SamlError> {
    let mut text = String::new();
    for c in doc.children_iter(node) {
        match doc.node_kind(c) {
            Some(NodeKind::Text(t) | NodeKind::CData(t)) => text.push_str(t),
            Some(NodeKind::Comment(_)) => {}
            _ => return Err(SamlError::Structure("element content where text was expected")),
        }
    }
    Ok(text)
}

pub(super) fn instant(
    doc: &Document<'_>,
    node: NodeId,
    name: &'static str,
) -> Result<Option<u64>, SamlError> {
    match attr(doc, node, name) {
        None => Ok(None),
        Some(text) => parse_instant(text).map(Some).ok_or(SamlError::Time(name)),
    }
}
