//! The docs point at what exists (issue 29: docs/LOGIN.md linked a docs/DEPLOY.md that did not
//! exist): every Markdown link in README.md, deploy/README.md and docs/*.md resolves to a file
//! (and, with `#anchor`, to one of its headings), and every repository path or `NAME.md` the
//! text names in passing (`src/reload.rs`, `docs/PRIVACY.md`, `BENCHMARKS.md §1`) exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folders whose paths the docs name from the repository's root.
const TOP_FOLDERS: [&str; 8] =
    ["docs/", "deploy/", "src/", "tests/", "bench/", "benches/", "templates/", "examples/"];

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_` kept, spaces to `-`.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn has_anchor(markdown: &str, anchor: &str) -> bool {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| l.trim_start_matches('#'))
        .any(|heading| anchor_of(heading) == anchor)
}

/// Where a path named in passing ends: at the first byte no path has.
fn path_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || "_./-*".contains(c))).unwrap_or(text.len());
    text[..end].trim_end_matches(['.', '-', '/'])
}

/// What `doc` (at `doc_path`, under `root`) names that does not exist.
fn broken_references(root: &Path, doc_path: &Path, doc: &str) -> Vec<String> {
    let dir = doc_path.parent().unwrap();
    let mut broken = Vec::new();
    // Markdown links: [text](target), relative to the document.
    for (at, _) in doc.match_indices("](") {
        let rest = &doc[at + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = &rest[..end];
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
        let file_path = if file.is_empty() { doc_path.to_path_buf() } else { dir.join(file) };
        match std::fs::read_to_string(&file_path) {
            _ if !file_path.exists() => broken.push(format!("link {target}")),
            Ok(text) if !anchor.is_empty() && !has_anchor(&text, anchor) => {
                broken.push(format!("link {target}: no such heading"))
            }
            _ => {}
        }
    }
    // Paths named in passing: from the repository's root, as the docs write them.
    let boundary =
        |i: usize| i == 0 || !doc[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || "_./-".contains(c));
    for folder in TOP_FOLDERS {
        for (at, _) in doc.match_indices(folder).filter(|(i, _)| boundary(*i)) {
            let path = path_at(&doc[at..]);
            // A glob (src/retention/*) names a folder.
            let path = path.split('*').next().unwrap().trim_end_matches('/');
            if !root.join(path).exists() {
                broken.push(format!("path {path}"));
            }
        }
    }
    // NAME.md in passing (BENCHMARKS.md §1): at the root or beside the document.
    for (at, _) in
        doc.match_indices(".md").filter(|(i, _)| doc[i + 3..].starts_with(|c: char| !c.is_alphanumeric()))
    {
        let start = doc[..at]
            .rfind(|c: char| !(c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
            .map_or(0, |i| i + 1);
        let name = &doc[start..at + 3];
        if start == at || !boundary(start) {
            continue;
        }
        // The project's shared documents live outside the repository; README.md names each
        // as ../shared/NAME.md, and the docs then name it alone.
        let shared =
            std::fs::read_to_string(root.join("README.md")).unwrap().contains(&format!("../shared/{name}"));
        if !root.join(name).exists() && !dir.join(name).exists() && !shared {
            broken.push(format!("file {name}"));
        }
    }
    broken
}

#[test]
fn every_doc_link_and_named_path_resolves() {
    let root = root();
    let mut docs: Vec<PathBuf> = vec![root.join("README.md"), root.join("deploy/README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    assert!(in_docs.len() >= 10, "{in_docs:?}");
    docs.extend(in_docs);
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for problem in broken_references(&root, doc, &text) {
            broken.push(format!("{}: {problem}", doc.strip_prefix(&root).unwrap().display()));
        }
    }
    assert_eq!(broken, Vec::<String>::new());
}

/// The check finds what it is for: a link to a missing file or heading, a missing path or
/// `NAME.md` named in passing; and passes links, globs and names that exist.
#[test]
fn a_broken_doc_reference_is_found() {
    let root = root();
    let doc = root.join("docs/LOGIN.md");
    let text = "See [deploy](DEPLOY.md#kubernetes), [gone](GONE.md), [bad](DEPLOY.md#no-such-part),\n\
                src/reload.rs and src/retention/*, docs/MISSING.md, `src/nothing.rs`, BENCHMARKS.md §1,\n\
                NOWHERE.md, PRODUCT.md's table, [web](https://example.org/x.md).";
    assert_eq!(
        broken_references(&root, &doc, text),
        [
            "link GONE.md",
            "link DEPLOY.md#no-such-part: no such heading",
            "path docs/MISSING.md",
            "path src/nothing.rs",
            "file GONE.md",
            "file NOWHERE.md",
        ]
    );
    assert_eq!(anchor_of("Plain VM (systemd)"), "plain-vm-systemd");
}
