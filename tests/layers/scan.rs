//! The scanner of tests/layers.rs: which module each file of `src/` is, and which modules its
//! `crate::…`, `super::…` and (from the binary) `nymgate::…` paths name. A small tokenizer, not
//! a parser: comments and string, char and raw string literals are skipped; `mod name { … }`
//! blocks and `#[path = "…"] mod name;` declarations are followed; `use` trees (`crate::{a,
//! b::c}`) and paths inline in code are read alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// `::`
    Sep,
    Punct(char),
}

/// The tokens of Rust source with their line numbers; comments and literals other than strings
/// leave nothing, strings leave their (unescaped-enough) text for `#[path = "…"]`.
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    // Skips a string body from just after its opening quote; returns the text.
    let quoted = |i: &mut usize, line: &mut usize| -> String {
        let mut text = String::new();
        while *i < chars.len() && chars[*i] != '"' {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            if chars[*i] == '\n' {
                *line += 1;
            }
            text.push(chars[*i]);
            *i += 1;
        }
        *i += 1;
        text
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            let at = line;
            let text = quoted(&mut i, &mut line);
            out.push((Tok::Str(text), at));
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}', '\'') or a lifetime / label ('a).
            if next == Some('\\') {
                // Past the quote, the backslash and the escaped character (which may be `'`).
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                // `1..2` is a range, not a number with two dots.
                if chars[i] == '.' && chars.get(i + 1) == Some(&'.') {
                    break;
                }
                i += 1;
            }
        } else if ident_char(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut hashes = 0;
            while chars.get(i + hashes) == Some(&'#') {
                hashes += 1;
            }
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if raw_prefix && chars.get(i + hashes) == Some(&'"') {
                // A raw string: ends at `"` followed by as many `#`.
                let at = line;
                i += hashes + 1;
                let mut text = String::new();
                while i < chars.len() {
                    if chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                out.push((Tok::Str(text), at));
            } else if word == "r" && hashes == 1 && chars.get(i + 1).is_some_and(|&c| ident_char(c)) {
                // A raw identifier, `r#type`.
                i += 1;
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                out.push((Tok::Ident(chars[start..i].iter().collect()), line));
            } else if matches!(word.as_str(), "b" | "c") && chars.get(i) == Some(&'"') {
                i += 1;
                let at = line;
                let text = quoted(&mut i, &mut line);
                out.push((Tok::Str(text), at));
            } else if word == "b" && chars.get(i) == Some(&'\'') {
                i += 1;
                if chars.get(i) == Some(&'\\') {
                    i += 2;
                }
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if c == ':' && next == Some(':') {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// References

/// A path one file names, absolute in its crate, with the module it is written in.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub line: usize,
    /// The module the reference is written in, relative to the file's module (inline `mod`s).
    pub inline: Vec<String>,
    pub kind: Root,
    /// The segments after the root (`crate`, `super`×n or `nymgate`).
    pub path: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    Crate,
    Super(usize),
    /// The library, named from the binary.
    Library,
}

/// A `#[path = "…"] mod name;` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct PathDecl {
    pub inline: Vec<String>,
    pub name: String,
    pub file: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub references: Vec<Reference>,
    pub path_decls: Vec<PathDecl>,
    /// `mod name;` declared at the file's top level (no `#[path]`).
    pub mods: Vec<String>,
}

fn ident(toks: &[(Tok, usize)], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn is(toks: &[(Tok, usize)], i: usize, tok: &Tok) -> bool {
    toks.get(i).is_some_and(|(t, _)| t == tok)
}

/// Reads a use tree or an inline path from `i` (just after a `::`), pushing each full path.
fn tree(toks: &[(Tok, usize)], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    if is(toks, i, &Tok::Punct('{')) {
        i += 1;
        loop {
            if i >= toks.len() || is(toks, i, &Tok::Punct('}')) {
                return i + 1;
            }
            if is(toks, i, &Tok::Punct(',')) {
                i += 1;
                continue;
            }
            let before = i;
            i = tree(toks, i, prefix.clone(), out);
            // `self`, `as name` and anything unread: skip to the item's end.
            while i < toks.len() && !is(toks, i, &Tok::Punct(',')) && !is(toks, i, &Tok::Punct('}')) {
                i += 1;
            }
            if i == before {
                i += 1;
            }
        }
    }
    match ident(toks, i) {
        Some(name) if name != "self" => {
            let mut path = prefix;
            path.push(name.to_owned());
            if is(toks, i + 1, &Tok::Sep) {
                tree(toks, i + 2, path, out)
            } else {
                out.push(path);
                i + 1
            }
        }
        _ => {
            out.push(prefix);
            i
        }
    }
}

/// The references, `#[path]` declarations and `mod` declarations of one file's text.
pub fn scan(src: &str, binary: bool) -> Scan {
    let toks = tokenize(src);
    let mut scan = Scan::default();
    // Open inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_path: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                pending_path = None;
            }
            Tok::Punct(';') => pending_path = None,
            Tok::Punct('#')
                if is(&toks, i + 1, &Tok::Punct('['))
                    && ident(&toks, i + 2) == Some("path")
                    && is(&toks, i + 3, &Tok::Punct('=')) =>
            {
                if let Some((Tok::Str(file), _)) = toks.get(i + 4) {
                    pending_path = Some(file.clone());
                }
            }
            Tok::Ident(word) if word == "mod" => {
                if let Some(name) = ident(&toks, i + 1) {
                    if is(&toks, i + 2, &Tok::Punct('{')) {
                        inline.push((name.to_owned(), depth + 1));
                    } else if is(&toks, i + 2, &Tok::Punct(';')) {
                        let here: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                        match pending_path.take() {
                            Some(file) => {
                                scan.path_decls.push(PathDecl { inline: here, name: name.to_owned(), file })
                            }
                            None if here.is_empty() => scan.mods.push(name.to_owned()),
                            None => {}
                        }
                    }
                }
            }
            Tok::Ident(word)
                if (word == "crate" || word == "super" || (binary && word == "nymgate"))
                    && is(&toks, i + 1, &Tok::Sep)
                    && !(i > 0 && is(&toks, i - 1, &Tok::Sep)) =>
            {
                let mut kind = match word.as_str() {
                    "crate" => Root::Crate,
                    "super" => Root::Super(1),
                    _ => Root::Library,
                };
                let mut j = i + 2;
                while let Root::Super(n) = kind {
                    if ident(&toks, j) == Some("super") && is(&toks, j + 1, &Tok::Sep) {
                        kind = Root::Super(n + 1);
                        j += 2;
                    } else {
                        break;
                    }
                }
                let mut paths = Vec::new();
                let end = tree(&toks, j, Vec::new(), &mut paths);
                let here: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                for path in paths {
                    scan.references.push(Reference { line: *line, inline: here.clone(), kind, path });
                }
                i = end.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

// ---------------------------------------------------------------------------------------------
// The source tree

pub struct File {
    pub rel: String,
    pub binary: bool,
    /// The module this file is, from the crate root.
    pub module: Vec<String>,
    pub scan: Scan,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is by where it lies (`src/a/b.rs`, `src/a/b/mod.rs`: `a::b`).
fn module_by_location(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

pub fn source_tree(src: &Path) -> Vec<File> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths.sort();
    let texts: BTreeMap<String, String> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let lib_mods = scan(&texts["lib.rs"], false).mods;
    let bin_mods = scan(&texts["main.rs"], true).mods;
    // Start from the location; then `#[path]` declarations, resolved until nothing changes (a
    // declared file may declare another).
    let mut placed: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for rel in texts.keys() {
        let module = module_by_location(rel);
        let binary = match rel.as_str() {
            "main.rs" => true,
            "lib.rs" => false,
            _ => bin_mods.contains(&module[0]) && !lib_mods.contains(&module[0]),
        };
        placed
            .insert(rel.clone(), (binary, if rel == "main.rs" || rel == "lib.rs" { vec![] } else { module }));
    }
    let scans: BTreeMap<String, Scan> =
        texts.iter().map(|(rel, text)| (rel.clone(), scan(text, placed[rel].0))).collect();
    for _ in 0..8 {
        for (rel, scan) in &scans {
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
            for decl in &scan.path_decls {
                let target = if dir.is_empty() { decl.file.clone() } else { format!("{dir}/{}", decl.file) };
                let (binary, mut module) = placed[rel].clone();
                module.extend(decl.inline.iter().cloned());
                module.push(decl.name.clone());
                placed.insert(target, (binary, module));
            }
        }
    }
    let mut files = Vec::new();
    for (rel, mut scan) in scans {
        let (binary, module) = placed[&rel].clone();
        // The binary scanned without knowing it was one: rescan with `nymgate::` roots.
        if binary {
            scan = self::scan(&texts[&rel], true);
        }
        files.push(File { rel, binary, module, scan });
    }
    files
}
