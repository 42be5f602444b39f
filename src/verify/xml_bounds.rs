//! One linear pass over hostile XML before any parser sees it (issue 27): the bounds that keep
//! every later step, uppsala's tree and bergshamra's canonicalization, linear in the input.
//!
//! uppsala checks each attribute against every earlier one of its element (XML 1.0 §3.1's
//! "Unique Att Spec") and resolves each prefix by walking every declaration in scope (Namespaces
//! in XML 1.0 §6), so 12,000 attributes on one element in 121 KB cost a quarter of a second.
//! This pass counts before that happens and refuses a document past any of [`Limits`]; under
//! them, those checks cost at most `attributes` (or `namespaces_in_scope`) comparisons per
//! name, a constant.
//!
//! The pass is a tokenizer of XML 1.0 §2–§3's markup, not a parser: it reads start tags with
//! their quoted attribute values (AttValue, §2.3: `>` may appear inside one, `<` may not),
//! end tags, comments (§2.5), CDATA sections (§2.7) and processing instructions (§2.6), and
//! refuses anything else that starts with `<`, so no spelling can make it skip markup the
//! parser then reads (and under-count). Where it reads a document differently from XML, the
//! document is not well-formed, and it refuses it or the parser does, at that point or before.
//! Every DTD construct (`<!DOCTYPE`, `<!ENTITY`, …) is refused: no entity is ever declared.

/// The bounds one kind of document is held to. Each is checked as the pass reaches it, so a
/// refusal costs no more than the bytes read up to the first thing past a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the whole document.
    pub bytes: usize,
    /// Attributes on one element, namespace declarations included (both take the parser's
    /// pairwise duplicate check).
    pub attributes: usize,
    /// Namespace declarations (`xmlns`, `xmlns:p`) on one element.
    pub namespace_declarations: usize,
    /// Namespace declarations in scope at once: on an element and all its ancestors, what the
    /// parser walks to resolve one prefix.
    pub namespaces_in_scope: usize,
    /// Namespace declarations in the whole document.
    pub namespace_declarations_total: usize,
    /// Elements open at once (the parser and C14N recurse this deep).
    pub depth: usize,
    /// Nodes of the tree: elements, text runs, comments, CDATA sections and processing
    /// instructions (the arena the parser allocates).
    pub nodes: usize,
}

/// Deeper nesting than any real SAML message or metadata: a Response nests about 8 deep
/// (Response, Assertion, AttributeStatement, Attribute, AttributeValue; Signature, KeyInfo,
/// X509Data, X509Certificate), metadata about 7.
pub const MAX_DEPTH: usize = 48;

/// A SAML protocol message: a Response at the ACS (its size is the ACS's limit) or an
/// AuthnRequest (16 KiB before this). The largest real elements carry about 15 attributes: an
/// AuthnRequest's ten optional ones (SAML Core §3.2.1, §3.4.1) plus its namespaces; a Response
/// with ADFS's or Shibboleth's namespaces about 12. 64 is four times that. The node bound is
/// ten times a response with 150 group values pretty-printed (about 800 nodes, Entra ID's
/// largest group claim), and a fraction of what 128 KiB could hold (32,768 `<a/>`).
pub const MESSAGE: Limits = Limits {
    bytes: super::saml_acs::MAX_RESPONSE_BYTES,
    attributes: 64,
    namespace_declarations: 32,
    namespaces_in_scope: 64,
    namespace_declarations_total: 256,
    depth: MAX_DEPTH,
    nodes: 8192,
};

/// IdP metadata (SAML Metadata 2.0), which may be a whole federation's aggregate: the same
/// per-element bounds (an aggregate's root declares the most namespaces, about 15), the
/// document-wide ones sized for an aggregate of thousands of entities. A metadata URL's answer
/// already stops at 1 MiB (idp_http.rs); a metadata file is the operator's, read at start.
pub const METADATA: Limits = Limits {
    bytes: 64 * 1024 * 1024,
    attributes: 64,
    namespace_declarations: 32,
    namespaces_in_scope: 64,
    namespace_declarations_total: 1 << 20,
    depth: MAX_DEPTH,
    nodes: 1 << 22,
};

/// What the pass found in a document it accepts: each at most its bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub elements: usize,
    pub nodes: usize,
    /// The most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// The most namespace declarations on one element.
    pub max_namespace_declarations: usize,
    pub max_namespaces_in_scope: usize,
    pub namespace_declarations: usize,
    pub max_depth: usize,
}

/// Why a document was refused. Names are fixed phrases: nothing of the document is in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLarge,
    /// A DOCTYPE or other DTD declaration (XML 1.0 §2.8).
    Doctype,
    /// Not XML's markup (the parser would refuse it too).
    Malformed,
    /// Past one of the bounds; names which.
    Limit(&'static str),
}

const fn is_space(b: u8) -> bool {
    // S ::= (#x20 | #x9 | #xD | #xA)+ (XML 1.0 §2.3)
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A byte that ends a name in a tag: XML names never hold these (§2.3 NameChar).
const fn ends_name(b: u8) -> bool {
    is_space(b) || matches!(b, b'/' | b'>' | b'=' | b'<' | b'"' | b'\'')
}

/// Reads `xml` once and refuses it past any of `limits`. Linear time, constant memory besides
/// one counter per open element (at most `limits.depth`).
pub fn scan(xml: &str, limits: &Limits) -> Result<Counts, Refusal> {
    if xml.len() > limits.bytes {
        return Err(Refusal::TooLarge);
    }
    let mut scanner =
        Scanner { b: xml.as_bytes(), i: 0, limits, counts: Counts::default(), open: Vec::new(), in_scope: 0 };
    scanner.document()?;
    Ok(scanner.counts)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    limits: &'a Limits,
    counts: Counts,
    /// The namespace declarations of each open element, innermost last.
    open: Vec<usize>,
    /// Their sum, with the element being read.
    in_scope: usize,
}

impl Scanner<'_> {
    fn document(&mut self) -> Result<(), Refusal> {
        while self.i < self.b.len() {
            if self.b[self.i] != b'<' {
                // A text run up to the next markup (its references are the parser's business).
                self.node()?;
                self.i = self.find(b"<").unwrap_or(self.b.len());
                continue;
            }
            let rest = &self.b[self.i..];
            if rest.starts_with(b"<!--") {
                self.node()?;
                self.i = self.after(4, b"-->")?;
            } else if rest.starts_with(b"<![CDATA[") {
                self.node()?;
                self.i = self.after(9, b"]]>")?;
            } else if rest.starts_with(b"<!") {
                // DOCTYPE, ENTITY, ELEMENT, ATTLIST, NOTATION or a conditional section: DTD.
                return Err(Refusal::Doctype);
            } else if rest.starts_with(b"<?") {
                self.node()?;
                self.i = self.after(2, b"?>")?;
            } else if rest.starts_with(b"</") {
                self.end_tag()?;
            } else {
                self.start_tag()?;
            }
        }
        // Elements left open: the parser would refuse it at the end too.
        if self.open.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Malformed)
        }
    }

    fn node(&mut self) -> Result<(), Refusal> {
        self.counts.nodes += 1;
        if self.counts.nodes > self.limits.nodes {
            return Err(Refusal::Limit("nodes"));
        }
        Ok(())
    }

    /// The offset of the next `needle` at or after the cursor.
    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.b[self.i..].windows(needle.len()).position(|w| w == needle).map(|at| self.i + at)
    }

    /// Skips `skip` bytes of an opening and returns the offset just past the closing `end`.
    fn after(&mut self, skip: usize, end: &[u8]) -> Result<usize, Refusal> {
        self.i += skip;
        self.find(end).map(|at| at + end.len()).ok_or(Refusal::Malformed)
    }

    fn spaces(&mut self) -> bool {
        let start = self.i;
        while self.b.get(self.i).is_some_and(|&b| is_space(b)) {
            self.i += 1;
        }
        self.i > start
    }

    /// A name (of an element or an attribute): at least one byte, up to a delimiter.
    fn name(&mut self) -> Result<&[u8], Refusal> {
        let start = self.i;
        while self.b.get(self.i).is_some_and(|&b| !ends_name(b)) {
            self.i += 1;
        }
        if self.i == start {
            return Err(Refusal::Malformed);
        }
        Ok(&self.b[start..self.i])
    }

    fn end_tag(&mut self) -> Result<(), Refusal> {
        // ETag ::= '</' Name S? '>' (§3.1); nothing else may stand in one.
        self.i += 2;
        self.name()?;
        self.spaces();
        if self.b.get(self.i) != Some(&b'>') {
            return Err(Refusal::Malformed);
        }
        self.i += 1;
        self.in_scope -= self.open.pop().ok_or(Refusal::Malformed)?;
        Ok(())
    }

    fn start_tag(&mut self) -> Result<(), Refusal> {
        // STag ::= '<' Name (S Attribute)* S? '>'; EmptyElemTag ends in '/>' (§3.1).
        self.i += 1;
        self.name()?;
        self.node()?;
        self.counts.elements += 1;
        let depth = self.open.len() + 1;
        if depth > self.limits.depth {
            return Err(Refusal::Limit("nesting depth"));
        }
        self.counts.max_depth = self.counts.max_depth.max(depth);
        let (mut attributes, mut declarations) = (0, 0);
        loop {
            let spaced = self.spaces();
            match self.b.get(self.i) {
                None => return Err(Refusal::Malformed),
                Some(b'>') => {
                    self.i += 1;
                    self.open.push(declarations);
                    return Ok(());
                }
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'>') => {
                    self.i += 2;
                    self.in_scope -= declarations;
                    return Ok(());
                }
                // Attributes are separated by white space (§3.1, [40]).
                Some(_) if !spaced => return Err(Refusal::Malformed),
                Some(_) => {}
            }
            let name = self.name()?;
            let declaration = name == b"xmlns" || name.starts_with(b"xmlns:");
            attributes += 1;
            if attributes > self.limits.attributes {
                return Err(Refusal::Limit("attributes on one element"));
            }
            self.counts.max_attributes = self.counts.max_attributes.max(attributes);
            if declaration {
                self.declaration(&mut declarations)?;
            }
            // Eq ::= S? '=' S? (§2.3), then a quoted value without '<' (AttValue, §2.3).
            self.spaces();
            if self.b.get(self.i) != Some(&b'=') {
                return Err(Refusal::Malformed);
            }
            self.i += 1;
            self.spaces();
            let quote = match self.b.get(self.i) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => return Err(Refusal::Malformed),
            };
            self.i += 1;
            let end =
                self.b[self.i..].iter().position(|&b| b == quote || b == b'<').ok_or(Refusal::Malformed)?;
            self.i += end;
            if self.b[self.i] == b'<' {
                return Err(Refusal::Malformed);
            }
            self.i += 1;
        }
    }

    /// One more namespace declaration on the element being read.
    fn declaration(&mut self, declarations: &mut usize) -> Result<(), Refusal> {
        *declarations += 1;
        self.in_scope += 1;
        let counts = &mut self.counts;
        counts.namespace_declarations += 1;
        counts.max_namespace_declarations = counts.max_namespace_declarations.max(*declarations);
        counts.max_namespaces_in_scope = counts.max_namespaces_in_scope.max(self.in_scope);
        if *declarations > self.limits.namespace_declarations {
            return Err(Refusal::Limit("namespace declarations on one element"));
        }
        if self.in_scope > self.limits.namespaces_in_scope {
            return Err(Refusal::Limit("namespace declarations in scope"));
        }
        if counts.namespace_declarations > self.limits.namespace_declarations_total {
            return Err(Refusal::Limit("namespace declarations"));
        }
        Ok(())
    }
}

/// The same counts read from a parsed tree, for the tests and the xml_bounds fuzz target to
/// hold [`scan`] to: a document both accept must give the same element count and the same
/// per-element maxima, and no more nodes than the pass counted (it counts the XML declaration
/// and every text run; the tree may hold fewer).
pub fn tree_counts(doc: &uppsala::Document<'_>) -> Counts {
    let mut counts = Counts::default();
    // (node, depth of its element parent, declarations in scope at its parent)
    let mut stack: Vec<(uppsala::NodeId, usize, usize)> =
        doc.children_iter(doc.root()).map(|c| (c, 0, 0)).collect();
    while let Some((node, depth, in_scope)) = stack.pop() {
        counts.nodes += 1;
        let Some(element) = doc.element(node) else { continue };
        let declarations = element.namespace_declarations.len();
        let (depth, in_scope) = (depth + 1, in_scope + declarations);
        counts.elements += 1;
        counts.max_attributes = counts.max_attributes.max(element.attributes.len() + declarations);
        counts.max_namespace_declarations = counts.max_namespace_declarations.max(declarations);
        counts.max_namespaces_in_scope = counts.max_namespaces_in_scope.max(in_scope);
        counts.namespace_declarations += declarations;
        counts.max_depth = counts.max_depth.max(depth);
        stack.extend(doc.children_iter(node).map(|c| (c, depth, in_scope)));
    }
    counts
}

#[cfg(test)]
#[path = "xml_bounds_tests.rs"]
mod tests;
