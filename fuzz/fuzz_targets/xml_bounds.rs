//! The XML bounds pass (src/verify/xml_bounds.rs) that every SAML document crosses before the
//! parser: it must never panic, whatever it reads; what it accepts is within every bound; and
//! where the parser then parses the document too, the tree is within the bounds and has the
//! elements and per-element maxima the pass counted (a pass that could be talked out of
//! counting, by quoting, comments, CDATA or instructions, would differ here). Under a small
//! set of bounds as well, so that the fuzzer's short inputs reach every refusal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::verify::saml_acs;
use nymgate::verify::xml_bounds::{self, Counts, Limits};

const SMALL: Limits = Limits {
    bytes: 4096,
    attributes: 3,
    namespace_declarations: 1,
    namespaces_in_scope: 2,
    namespace_declarations_total: 3,
    depth: 4,
    nodes: 16,
};

fn within(counts: &Counts, limits: &Limits) -> bool {
    counts.max_attributes <= limits.attributes
        && counts.max_namespace_declarations <= limits.namespace_declarations
        && counts.max_namespaces_in_scope <= limits.namespaces_in_scope
        && counts.namespace_declarations <= limits.namespace_declarations_total
        && counts.max_depth <= limits.depth
        && counts.nodes <= limits.nodes
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for limits in [&SMALL, &xml_bounds::MESSAGE, &xml_bounds::METADATA] {
        let Ok(counts) = xml_bounds::scan(text, limits) else { continue };
        assert!(text.len() <= limits.bytes);
        assert!(within(&counts, limits), "{counts:?}");
        // The strict parser (no DTD, no PIs) behind the same pass.
        let Ok(doc) = saml_acs::parse_within(text, limits) else { continue };
        let tree = xml_bounds::tree_counts(&doc);
        assert!(within(&tree, limits), "{tree:?}");
        assert_eq!((tree.elements, tree.max_attributes), (counts.elements, counts.max_attributes));
        assert_eq!(tree.max_namespace_declarations, counts.max_namespace_declarations);
        assert_eq!(tree.max_depth, counts.max_depth);
        assert!(tree.nodes <= counts.nodes);
    }
});
