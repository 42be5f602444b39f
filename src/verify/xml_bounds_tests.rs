use proptest::prelude::*;

use super::*;
use crate::verify::saml_acs::{self, SamlError};

/// Real documents: what samlify, pysaml2 and the SAML output tests' platforms sign and send
/// (the fuzz seeds), and metadata as the IdPs publish it.
const REAL: &[(&str, &str)] = &[
    ("pysaml2-both", include_str!("../../fuzz/seeds/saml_response/pysaml2-both.xml")),
    (
        "samlify-assertion-typical",
        include_str!("../../fuzz/seeds/saml_response/samlify-assertion-typical.xml"),
    ),
    ("samlify-assertion", include_str!("../../fuzz/seeds/saml_response/samlify-assertion.xml")),
    ("samlify-both", include_str!("../../fuzz/seeds/saml_response/samlify-both.xml")),
    ("samlify-response", include_str!("../../fuzz/seeds/saml_response/samlify-response.xml")),
    ("unsigned", include_str!("../../fuzz/seeds/saml_response/unsigned.xml")),
];

/// AuthnRequests as the SAML output tests' platforms send them (the authn_request fuzz seeds,
/// whose first byte picks the binding).
const REAL_REQUESTS: &[&str] = &[
    include_str!("../../fuzz/seeds/authn_request/xml_post"),
    include_str!("../../fuzz/seeds/authn_request/xml_signing_sp_unsigned"),
];

/// An element at the largest a real one gets: an AuthnRequest with every attribute SAML Core
/// §3.2.1 and §3.4.1 define, and a federation aggregate's root declaring the namespaces of
/// every metadata extension in common use (sixteen).
const LARGEST_REAL_ELEMENTS: &[&str] = &[
    r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_a" Version="2.0" IssueInstant="2026-11-25T10:00:00Z" Destination="https://idp.example/sso" Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified" ForceAuthn="true" IsPassive="false" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" AssertionConsumerServiceURL="https://sp.example/acs" AttributeConsumingServiceIndex="0" ProviderName="SP"><saml:Issuer>https://sp.example</saml:Issuer></samlp:AuthnRequest>"#,
    r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:alg="urn:oasis:names:tc:SAML:metadata:algsupport" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:idpdisc="urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol" xmlns:init="urn:oasis:names:tc:SAML:profiles:SSO:request-init" xmlns:mdattr="urn:oasis:names:tc:SAML:metadata:attribute" xmlns:mdrpi="urn:oasis:names:tc:SAML:metadata:rpi" xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui" xmlns:remd="http://refeds.org/metadata" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:ser="http://eidas.europa.eu/metadata/servicelist" xmlns:eidas="http://eidas.europa.eu/saml-extensions" ID="_agg" Name="http://md.example/federation" validUntil="2026-12-01T00:00:00Z" cacheDuration="PT1H"/>"#,
];

fn limits_refusal(xml: &str) -> Option<&'static str> {
    match scan(xml, &MESSAGE) {
        Err(Refusal::Limit(what)) => Some(what),
        _ => None,
    }
}

/// The pass's counts agree with the parser's tree (the oracle), and the document parses.
fn agrees_with_the_parser(xml: &str, limits: &Limits) -> Counts {
    let counts = scan(xml, limits).unwrap_or_else(|e| panic!("refused {e:?}: {xml}"));
    let doc = uppsala::Parser::new().parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let tree = tree_counts(&doc);
    assert_eq!(
        (tree.elements, tree.max_attributes, tree.max_namespace_declarations, tree.max_depth),
        (counts.elements, counts.max_attributes, counts.max_namespace_declarations, counts.max_depth),
        "{xml}"
    );
    assert_eq!(
        (tree.namespace_declarations, tree.max_namespaces_in_scope),
        (counts.namespace_declarations, counts.max_namespaces_in_scope)
    );
    assert!(tree.nodes <= counts.nodes, "{tree:?} {counts:?}");
    counts
}

#[test]
fn real_saml_documents_pass_well_within_the_bounds() {
    for (name, xml) in REAL {
        let counts = agrees_with_the_parser(xml, &MESSAGE);
        assert!(counts.max_attributes <= MESSAGE.attributes / 4, "{name}: {counts:?}");
        assert!(counts.max_depth <= MESSAGE.depth / 4, "{name}: {counts:?}");
        assert!(counts.nodes <= MESSAGE.nodes / 20, "{name}: {counts:?}");
        assert!(saml_acs::parse(xml).is_ok(), "{name}");
    }
    for xml in REAL_REQUESTS.iter().map(|seed| &seed[1..]).chain(LARGEST_REAL_ELEMENTS.iter().copied()) {
        let counts = agrees_with_the_parser(xml, &MESSAGE);
        assert!(counts.max_attributes * 3 <= MESSAGE.attributes, "{counts:?}");
        assert!(counts.max_namespace_declarations * 2 <= MESSAGE.namespace_declarations, "{counts:?}");
    }
}

#[test]
fn saml_response_with_thousands_of_attributes_on_one_element_is_refused() {
    // The review's document: 12,000 attributes on one element in about 121 KB.
    let attributes: String = (0..12_000).map(|i| format!(" a{i}=\"x\"")).collect();
    let xml = format!("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"{attributes}/>");
    assert!(xml.len() > 118_000 && xml.len() <= MESSAGE.bytes, "{}", xml.len());
    let started = std::time::Instant::now();
    assert_eq!(limits_refusal(&xml), Some("attributes on one element"));
    assert_eq!(saml_acs::parse(&xml).err(), Some(SamlError::XmlLimits("attributes on one element")));
    // Evidence for the report, not an assertion: the refusal reads at most 65 attributes.
    eprintln!("12,000 attributes refused in {:?} (debug build)", started.elapsed());
    // At the bound it parses, one more is refused.
    let at = |n: usize| {
        let attributes: String = (1..n).map(|i| format!(" a{i}=\"\"")).collect();
        format!("<r xmlns=\"urn:x\"{attributes}/>")
    };
    assert_eq!(agrees_with_the_parser(&at(64), &MESSAGE).max_attributes, 64);
    assert!(saml_acs::parse(&at(64)).is_ok());
    assert_eq!(limits_refusal(&at(65)), Some("attributes on one element"));
}

#[test]
fn saml_response_with_thousands_of_namespace_declarations_is_refused() {
    let declarations = |n: usize, from: usize| -> String {
        (from..from + n).map(|i| format!(" xmlns:n{i}=\"urn:n:{i}\"")).collect()
    };
    // On one element.
    let xml = format!("<r{}/>", declarations(5_000, 0));
    assert_eq!(limits_refusal(&xml), Some("namespace declarations on one element"));
    assert_eq!(
        saml_acs::parse(&xml).err(),
        Some(SamlError::XmlLimits("namespace declarations on one element"))
    );
    let xml = format!("<r{}/>", declarations(32, 0));
    assert_eq!(agrees_with_the_parser(&xml, &MESSAGE).max_namespace_declarations, 32);
    assert_eq!(
        limits_refusal(&format!("<r{}/>", declarations(33, 0))),
        Some("namespace declarations on one element")
    );
    // Spread over nested elements, each under the per-element bound: what a prefix lookup walks.
    let nested: String = (0..40).map(|d| format!("<e{}>", declarations(2, d * 2))).collect();
    let closed: String = (0..40).rev().map(|_| "</e>").collect();
    let xml = format!("<r>{nested}{closed}</r>");
    assert_eq!(limits_refusal(&xml), Some("namespace declarations in scope"));
    // Over siblings, each in scope alone: the document's total.
    let siblings: String = (0..300).map(|i| format!("<e{}/>", declarations(1, i))).collect();
    assert_eq!(limits_refusal(&format!("<r>{siblings}</r>")), Some("namespace declarations"));
    // Metadata's total is an aggregate's: the same siblings pass there.
    assert!(scan(&format!("<r>{siblings}</r>"), &METADATA).is_ok());
}

#[test]
fn saml_response_nesting_without_end_is_refused() {
    let xml = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">{}",
        "<a>".repeat(40_000)
    );
    assert_eq!(limits_refusal(&xml), Some("nesting depth"));
    assert_eq!(saml_acs::parse(&xml).err(), Some(SamlError::XmlLimits("nesting depth")));
    // Closed, at the bound, it parses; one deeper is refused.
    let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    assert_eq!(agrees_with_the_parser(&nest(MAX_DEPTH), &MESSAGE).max_depth, MAX_DEPTH);
    assert_eq!(limits_refusal(&nest(MAX_DEPTH + 1)), Some("nesting depth"));
    // Deep but unclosed within the bound: malformed, as the parser says.
    assert_eq!(scan(&"<a>".repeat(10), &MESSAGE), Err(Refusal::Malformed));
}

#[test]
fn saml_response_with_too_many_nodes_is_refused() {
    let xml = format!("<r>{}</r>", "<a/>".repeat(MESSAGE.nodes));
    assert_eq!(limits_refusal(&xml), Some("nodes"));
    assert_eq!(limits_refusal(&format!("<r>{}</r>", "<!---->".repeat(MESSAGE.nodes))), Some("nodes"));
    assert!(scan(&format!("<r>{}</r>", "<a/>".repeat(MESSAGE.nodes - 1)), &MESSAGE).is_ok());
    assert_eq!(scan(&" ".repeat(MESSAGE.bytes + 1), &MESSAGE), Err(Refusal::TooLarge));
}

#[test]
fn dtd_declarations_are_refused_wherever_markup_is_read() {
    for xml in [
        "<!DOCTYPE r><r/>",
        "<!doctype r><r/>",
        "<r><!ENTITY x 'y'></r>",
        "<r><!ELEMENT r ANY></r>",
        "<r><![INCLUDE[<a/>]]></r>",
        "<!ATTLIST r a CDATA #IMPLIED><r/>",
    ] {
        assert_eq!(scan(xml, &MESSAGE), Err(Refusal::Doctype), "{xml}");
    }
    // In a comment or CDATA it is text (and saml_acs::parse refuses it there all the same, as
    // it always has).
    assert!(scan("<r><!-- <!DOCTYPE r> --><![CDATA[<!ENTITY x 'y'>]]></r>", &MESSAGE).is_ok());
    assert_eq!(saml_acs::parse("<r><!-- <!DOCTYPE r> --></r>").err(), Some(SamlError::Doctype));
}

#[test]
fn markup_inside_values_comments_cdata_and_instructions_is_not_read_as_markup() {
    // '>' is allowed in an attribute value (XML 1.0 §2.3): the tag goes on after it.
    let xml = r#"<r a=">" b='>' c="/>" d='a="1" e="2"' f="'" g='"'/>"#;
    assert_eq!(agrees_with_the_parser(xml, &MESSAGE).max_attributes, 6);
    // Markup inside a comment, CDATA or a processing instruction is text: no attribute counts.
    let hidden = r#"<x a="" b="" c=""/>"#;
    let xml = format!(
        "<?xml version=\"1.0\"?><!--{hidden}--><r><![CDATA[{hidden}]]><!--{hidden}--></r><?pi {hidden}?>"
    );
    assert_eq!(agrees_with_the_parser(&xml, &MESSAGE).max_attributes, 0);
    // '<' may not stand in a value; an unterminated value, comment, CDATA or PI is malformed.
    for xml in [
        r#"<r a="<x b=''>"/>"#,
        r#"<r a="x/>"#,
        "<r><!-- x</r>",
        "<r><![CDATA[x</r>",
        "<r><?pi x</r>",
        "<r a='1'b='2'/>",
        "<r a/>",
        "<r a=1/>",
        "<r></r x='1'>",
        "</r>",
        "<>",
        "<r",
    ] {
        assert_eq!(scan(xml, &MESSAGE), Err(Refusal::Malformed), "{xml}");
    }
}

/// One spelling of `n` attributes on an element, in the ways XML allows: any white space
/// before a name and around '=', either quote, values holding '>', '/>', the other quote,
/// references and attribute-like text; `xmlns` declarations among them; comments, CDATA and
/// processing instructions with hidden attributes around the element.
fn spelled(n: usize) -> impl Strategy<Value = (String, usize, usize)> {
    let space = prop::sample::select(vec![" ", "\t", "\n", "\r\n", " \t\r\n ", "  "]);
    let around_eq = prop::sample::select(vec!["", " ", "\t", "\n "]);
    let value = prop::sample::select(vec![
        "",
        ">",
        "/>",
        "a>b",
        "&amp;",
        "&lt;x a=&quot;1&quot;&gt;",
        "x='1' y='2'",
        "xmlns:q=\"u\"",
        "é>ü",
    ]);
    let quote = prop::sample::select(vec!['"', '\'']);
    let around = prop::sample::select(vec![
        "",
        "<!-- <x a='' b=''/> -->",
        "<![CDATA[<x a='' b=''>]]>",
        "<?pi <x a='' b=''/> ?>",
        "\n  ",
        "text > still text",
    ]);
    let attribute = (space.clone(), around_eq.clone(), around_eq, value, quote, any::<bool>());
    (prop::collection::vec(attribute, n), space, around.clone(), around, any::<bool>()).prop_map(
        |(attributes, closing_space, before, after, self_closing)| {
            let mut tag = String::from("<e");
            let mut declarations = 0;
            for (i, (space, pre, post, value, quote, declaration)) in attributes.iter().enumerate() {
                // The other quote needs no escape inside a value; its own does.
                let value = value.replace(*quote, if *quote == '"' { "&quot;" } else { "&apos;" });
                // A prefix may not be bound to an empty name (Namespaces in XML 1.0 §3).
                let (name, value) = if *declaration {
                    declarations += 1;
                    (format!("xmlns:p{i}"), format!("urn:p{i}{value}"))
                } else {
                    (format!("a{i}"), value)
                };
                tag.push_str(&format!("{space}{name}{pre}={post}{quote}{value}{quote}"));
            }
            tag.push_str(closing_space);
            tag.push_str(if self_closing { "/>" } else { "><c/></e>" });
            (format!("<r>{before}{tag}{after}</r>"), attributes.len(), declarations)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every spelling of n attributes counts n, exactly as the parser does; past the bound it
    /// is refused, whatever the spelling.
    #[test]
    fn every_spelling_of_n_attributes_counts_n(
        (xml, n, declarations) in (0usize..=80).prop_flat_map(spelled)
    ) {
        let limits = Limits { namespace_declarations: 80, namespaces_in_scope: 80, ..MESSAGE };
        if n <= limits.attributes {
            let counts = agrees_with_the_parser(&xml, &limits);
            prop_assert_eq!(counts.max_attributes, n);
            prop_assert_eq!(counts.namespace_declarations, declarations);
        } else {
            prop_assert_eq!(scan(&xml, &limits), Err(Refusal::Limit("attributes on one element")));
        }
    }

    /// Arbitrary markup-like text under small bounds: what the pass accepts and the parser
    /// parses is within every bound, and both count the same elements and maxima.
    #[test]
    fn accepted_documents_are_within_the_bounds(
        parts in prop::collection::vec(prop::sample::select(vec![
            "<a>", "</a>", "<b x='>'>", "</b>", "<a/>", " y=\"1\"", " xmlns:p='u'", " xmlns='u'",
            "<!--", "-->", "<![CDATA[", "]]>", "<?p", "?>", "<c", ">", "/>", "'", "\"", "t", " ",
        ]), 0..60)
    ) {
        let xml = parts.concat();
        let small = Limits {
            bytes: 4096, attributes: 3, namespace_declarations: 1, namespaces_in_scope: 2,
            namespace_declarations_total: 3, depth: 4, nodes: 12,
        };
        if let (Ok(counts), Ok(doc)) = (scan(&xml, &small), uppsala::Parser::new().parse(&xml)) {
            let tree = tree_counts(&doc);
            prop_assert_eq!(tree.elements, counts.elements);
            prop_assert_eq!(tree.max_attributes, counts.max_attributes);
            prop_assert!(tree.max_attributes <= small.attributes);
            prop_assert!(tree.max_namespace_declarations <= small.namespace_declarations);
            prop_assert!(tree.max_namespaces_in_scope <= small.namespaces_in_scope);
            prop_assert!(tree.namespace_declarations <= small.namespace_declarations_total);
            prop_assert!(tree.max_depth <= small.depth);
            prop_assert!(tree.nodes <= small.nodes);
        }
    }
}
