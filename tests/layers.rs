//! The floors stay floors (issue 30, "One house with floors"): every `crate::…`, `super::…` (and,
//! from the binary, `nymgate::…`) path in `src/` is read, and a module that names a module on a
//! higher floor fails this test. Config is on the ground floor and names nothing above it.
//!
//! The scanner (tests/layers/scan.rs) is a small tokenizer, not a parser; it knows which module
//! each reference is written in. A module is named by its path (`login::saml_acs`); the floor of
//! a path is that of its longest prefix in [`FLOORS`].
//!
//! Upward references that issue 30 has not yet removed are listed in [`EXCEPTIONS`], each with
//! its reason. An exception that no longer occurs fails the test too, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[path = "layers/scan.rs"]
mod scan;

use scan::{scan, source_tree, File, Root};

/// Bottom to top. Modules on one floor may name each other; a module may name any floor below.
/// `main` is the binary crate (src/main.rs and the modules it declares, src/cli/ among them).
const FLOORS: &[(&str, &[&str])] = &[
    // Leaves: they name nothing in the crate. Config reads two of them: the canonical request
    // target (an intercepted ACS must not be a path nymgate claims) and the public-host matcher
    // (login.public_url must be a host nymgate answers for), so that `check` decides with the
    // very code `serve` does.
    ("leaves", &["clock", "target", "public_hosts"]),
    ("config", &["config"]),
    // Small helpers every floor above may use: secrets, crypto and encodings, the stores, the
    // audit log, metrics and alerts, byte-level HTTP and TLS pieces.
    (
        "helpers",
        &[
            "secret",
            "seal",
            "certs",
            "tls",
            "admin_address",
            "audit",
            "telemetry",
            "metrics",
            "alert",
            "metrics_format",
            "metrics_login",
            "metrics_process",
            "client_ip",
            "form_scan",
            "body",
            "framing",
            "sanitize",
            "client_hello",
            "tls_stream",
            "conn_io",
            "conn_bounds",
            "store",
            "idp_http",
            "web",
        ],
    ),
    // Verification of what a school's IdP sends: SAML responses and metadata, OIDC ID tokens and
    // keys, and the verified identity only they can build (its constructors are private to
    // `verify`). Below the pseudonymizer, which takes what they return.
    ("verify", &["verify"]),
    // What a verified identity becomes: account numbers, the keyring, the claim policy; the
    // separate store of retained values.
    ("pseudonym", &["pseudonym", "retention"]),
    // The login flows and what nymgate mints for the platform: the token signer, the OIDC
    // provider face, the SAML IdP face and the sessions with their signed header (src/mint/).
    // Within the floor mint is below the flows: login calls into it, and mint names nothing of
    // login (`mint_names_nothing_of_the_flows` below).
    ("login", &["login", "mint"]),
    // The request pipeline and the server around it.
    (
        "pipeline",
        &["gateway", "pipeline", "upstream", "upgrade", "echo", "parking", "listener", "reload", "server"],
    ),
    // Commands built on the whole gateway: the demo and the load test (the CLI's own commands
    // live in the binary, src/cli/).
    ("tools", &["demo", "loadtest"]),
    ("cli", &["main"]),
];

/// Upward references not yet removed: (from, to, why). Each must still occur.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    // None left: every floor imports only itself and the floors below it.
];

// ---------------------------------------------------------------------------------------------
// Floors

/// `src/`, or `LAYERS_SRC` to judge another tree (an older commit's, say) with these floors.
fn src_dir() -> PathBuf {
    std::env::var_os("LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The floor entry (`login::saml_acs`, `login`) a module path falls under, and its floor.
fn place(module: &[String]) -> Option<(&'static str, usize)> {
    let mut best: Option<(&'static str, usize, usize)> = None;
    for (floor, (_, entries)) in FLOORS.iter().enumerate() {
        for entry in *entries {
            let parts: Vec<&str> = entry.split("::").collect();
            if parts.len() <= module.len()
                && parts.iter().zip(module).all(|(a, b)| a == b)
                && best.is_none_or(|(_, _, len)| parts.len() > len)
            {
                best = Some((entry, floor, parts.len()));
            }
        }
    }
    best.map(|(entry, floor, _)| (entry, floor))
}

/// Every reference from a module to a higher floor: (from, to) → where.
fn upward(files: &[File]) -> (Upward, Vec<String>) {
    let (all, unplaced) = edges(files);
    let floor =
        |entry: &str| place(&entry.split("::").map(str::to_owned).collect::<Vec<_>>()).map(|(_, f)| f);
    (all.into_iter().filter(|((from, to), _)| floor(to) > floor(from)).collect(), unplaced)
}

/// Every reference between floor entries, (from, to) → where (to the same entry too), and the
/// references to no entry.
fn edges(files: &[File]) -> (Upward, Vec<String>) {
    let mut up = Upward::new();
    let mut unplaced = Vec::new();
    for file in files {
        for reference in &file.scan.references {
            let (from, to): (Vec<String>, Vec<String>) = if file.binary {
                match reference.kind {
                    // The binary's own modules: all on its floor.
                    Root::Crate | Root::Super(_) => continue,
                    Root::Library => (vec!["main".into()], reference.path.clone()),
                }
            } else {
                let mut here = file.module.clone();
                here.extend(reference.inline.iter().cloned());
                let base = match reference.kind {
                    Root::Crate => vec![],
                    Root::Super(n) if n <= here.len() => here[..here.len() - n].to_vec(),
                    // Past the crate root: rustc refuses it; nothing to judge.
                    Root::Super(_) => continue,
                    Root::Library => continue,
                };
                let mut to = base;
                to.extend(reference.path.iter().cloned());
                (here, to)
            };
            let from_place = if file.binary { place(&["main".to_owned()]) } else { place(&from) };
            let (Some((from_entry, _)), Some((to_entry, _))) = (from_place, place(&to)) else {
                if !to.is_empty() {
                    unplaced.push(format!("{}:{}: {}", file.rel, reference.line, to.join("::")));
                }
                continue;
            };
            up.entry((from_entry, to_entry))
                .or_default()
                .push(format!("src/{}:{}", file.rel, reference.line));
        }
    }
    (up, unplaced)
}

#[test]
fn no_module_names_a_module_on_a_higher_floor() {
    let src = src_dir();
    let files = source_tree(&src);
    // Every module of the library has a floor.
    let lib_mods = scan(&std::fs::read_to_string(src.join("lib.rs")).unwrap(), false).mods;
    let missing: Vec<&String> = lib_mods.iter().filter(|m| place(&[(*m).clone()]).is_none()).collect();
    assert!(missing.is_empty(), "modules without a floor (add them to FLOORS): {missing:?}");
    let (up, unplaced) = upward(&files);
    assert!(unplaced.is_empty(), "references to no module in FLOORS:\n{}", unplaced.join("\n"));
    if std::env::var_os("LAYERS_DUMP").is_some() {
        for ((from, to), at) in &up {
            eprintln!("(\"{from}\", \"{to}\", \"\"), // {} e.g. {}", at.len(), at[0]);
        }
    }
    let problems = judge(&up, EXCEPTIONS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

type Upward = BTreeMap<(&'static str, &'static str), Vec<String>>;

/// Each upward reference not excepted, and each exception that no longer occurs.
fn judge(up: &Upward, exceptions: &[(&str, &str, &str)]) -> Vec<String> {
    let excepted: BTreeSet<(&str, &str)> = exceptions.iter().map(|(from, to, _)| (*from, *to)).collect();
    let violations = up
        .iter()
        .filter(|((from, to), _)| !excepted.contains(&(*from, *to)))
        .map(|((from, to), at)| format!("{from} -> {to} goes up a floor (issue 30): {}", at.join(", ")));
    let gone = exceptions
        .iter()
        .filter(|(from, to, _)| !up.keys().any(|(f, t)| f == from && t == to))
        .map(|(from, to, _)| format!("{from} -> {to} no longer occurs: remove it from EXCEPTIONS"));
    violations.chain(gone).collect()
}

#[test]
fn an_exception_holds_only_while_it_occurs() {
    let up: Upward = [(("alert", "login::idp_http"), vec!["src/alert.rs:1".to_owned()])].into();
    assert_eq!(judge(&up, &[("alert", "login::idp_http", "why")]), Vec::<String>::new());
    assert_eq!(judge(&up, &[]).len(), 1, "not excepted");
    let stale = judge(&up, &[("alert", "login::idp_http", "why"), ("metrics", "pseudonym", "why")]);
    assert_eq!(stale, ["metrics -> pseudonym no longer occurs: remove it from EXCEPTIONS"]);
}

#[test]
fn config_names_only_itself_and_the_leaves_which_name_nothing() {
    // Stated outright, not only through FLOORS: config names itself and the leaves, the leaves
    // name nothing but each other, and neither has an exception.
    let (all, _) = edges(&source_tree(&src_dir()));
    let leaves = FLOORS[0].1;
    for ((from, to), at) in &all {
        if *from == "config" {
            assert!(*to == "config" || leaves.contains(to), "config names {to}: {at:?}");
        }
        if leaves.contains(from) {
            assert!(leaves.contains(to), "the leaf {from} names {to}: {at:?}");
        }
    }
    assert!(all.contains_key(&("config", "clock")), "the scan sees config's own imports");
    assert!(EXCEPTIONS.iter().all(|(from, _, _)| *from != "config" && !leaves.contains(from)));
}

#[test]
fn mint_names_nothing_of_the_flows() {
    // Stated outright, since FLOORS puts both on one floor: the flows hand mint's rooms what they
    // need (a checked request, a pseudonymous login, the store), and mint never reaches back.
    let (all, _) = edges(&source_tree(&src_dir()));
    let back: Vec<_> = all.iter().filter(|((from, to), _)| *from == "mint" && *to == "login").collect();
    assert!(back.is_empty(), "mint names login: {back:?}");
    assert!(all.contains_key(&("login", "mint")), "the scan sees the flows' calls into mint");
}

#[test]
fn every_floor_entry_is_a_module_that_exists() {
    // A misspelt entry would place nothing and silently let references through.
    let files = source_tree(&src_dir());
    let modules: BTreeSet<Vec<String>> =
        files.iter().filter(|f| !f.binary).map(|f| f.module.clone()).collect();
    for (_, entries) in FLOORS {
        for entry in *entries {
            let parts: Vec<String> = entry.split("::").map(str::to_owned).collect();
            assert!(
                *entry == "main" || modules.contains(&parts),
                "FLOORS names {entry:?}, which is no module in src/"
            );
        }
    }
}

/// The tools (`demo`, `loadtest`) stand where an outside user of the library stands: no item the
/// library keeps crate-private may be named from them (the account-number derivation is
/// crate-private so that numbers come only from a verified identity or the audited DPO lookup;
/// the load test checks numbers through `AccountNumber::is_primary_for`). A textual check: every
/// `pub(crate)` item's name, against each `crate::…::name` path the tools write.
#[test]
fn the_tools_name_no_crate_private_item() {
    let src = src_dir();
    let mut private = BTreeSet::new();
    let mut tools = Vec::new();
    let mut paths = Vec::new();
    collect(&src, &mut paths);
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("demo/") || rel.starts_with("loadtest/") {
            tools.push((rel, text));
            continue;
        }
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub(crate) ") else { continue };
            let rest =
                rest.trim_start_matches("async ").trim_start_matches("const ").trim_start_matches("unsafe ");
            for kind in ["fn ", "struct ", "enum ", "const ", "static ", "type ", "trait "] {
                if let Some(name) = rest.strip_prefix(kind) {
                    let name: String =
                        name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    private.insert(name);
                }
            }
        }
    }
    assert!(private.contains("derive_account_number"), "the scan read the library: {private:?}");
    let mut named = Vec::new();
    for (rel, text) in &tools {
        for (at, _) in text.match_indices("crate::") {
            let path: String =
                text[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            if let Some(last) = path.rsplit("::").next().filter(|last| private.contains(*last)) {
                named.push(format!("{rel}: {path} ({last} is pub(crate))"));
            }
        }
    }
    assert!(named.is_empty(), "{named:#?}");

    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner itself

fn fixture_tree(files: &[(&str, &str)]) -> Vec<File> {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    source_tree(dir.path())
}

fn upward_pairs(files: &[File]) -> Vec<(&'static str, &'static str)> {
    upward(files).0.into_keys().collect()
}

const LIB: &str = "pub mod config; pub mod login; pub mod clock;";
const MAIN: &str = "fn main() {}";

#[test]
fn an_upward_import_is_caught_in_each_form() {
    for text in [
        "use crate::login::Login;",
        "use crate::{clock, login::Login};",
        "use crate::{clock::{self, now}, login::{self}};",
        "fn f() { crate::login::Login::owns(\"/\"); }",
        "fn f() -> Option<crate::login::saml_acs::IdpTrust> { None }",
        "mod tests { use super::super::login::x; }",
        "use r#crate_like::x; use crate::login as l;",
        "const S: &str = \"//\"; use crate::login::x;",
        "fn f<'a>(c: char) -> bool { c == '\"' || c == 'x' } use crate::login::x;",
        "/* a /* nested */ comment */ use crate::login::x;",
    ] {
        let files = fixture_tree(&[("lib.rs", LIB), ("main.rs", MAIN), ("config/mod.rs", text)]);
        let found = upward_pairs(&files);
        assert!(
            found.iter().any(|(from, to)| *from == "config" && to.starts_with("login")),
            "{text:?}: {found:?}"
        );
    }
}

#[test]
fn a_comment_or_string_naming_an_upper_module_is_not_a_reference() {
    for text in [
        "// use crate::login::Login;",
        "/// [`crate::login::Login`]\npub struct A;",
        "//! see crate::login\n",
        "/* use crate::login::x; */",
        "const A: &str = \"crate::login::x\";",
        "const A: &str = r#\"use crate::login::x; \"quoted\" \"#;",
        "const A: &[u8] = b\"crate::login\";",
        "const A: char = '\\''; const B: &str = \"\\\" crate::login \\\"\";",
        "pub(crate) fn f() {} pub(super) fn g() {}",
        "use crate::clock::now; use super::config_part;",
    ] {
        let files = fixture_tree(&[("lib.rs", LIB), ("main.rs", MAIN), ("config/mod.rs", text)]);
        assert_eq!(upward_pairs(&files), [], "{text:?}");
    }
}

#[test]
fn super_and_path_declarations_resolve_to_the_module_written_in() {
    let files = fixture_tree(&[
        ("lib.rs", LIB),
        ("main.rs", "mod cli; fn main() { nymgate::login::run(); crate::cli::go(); }"),
        ("cli/mod.rs", "use nymgate::config::Config;"),
        // login/mod.rs declares a test file by #[path]; its `super::` is login (same floor).
        ("login/mod.rs", "#[cfg(test)]\n#[path = \"login_tests.rs\"]\nmod tests;"),
        ("login/login_tests.rs", "use super::*; use crate::config::Config;"),
        // A config file whose `super::super` reaches the crate root, then login: upward.
        ("config/inner.rs", "use super::super::login::Login;"),
        // A leaf that names config: upward.
        ("clock.rs", "mod tests { use super::*; use crate::config::X; }"),
    ]);
    let mut found = upward_pairs(&files);
    found.sort();
    assert_eq!(found, [("clock", "config"), ("config", "login")]);
}
