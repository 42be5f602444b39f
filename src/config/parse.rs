//! Reading the config's TOML into [`Config`], with every field serde refuses named by its
//! dotted path (`server.listen`, `tenants[1].oidc.scopes`) and all of them reported at once,
//! as the semantic checks are (issue 29). serde stops at the first field it can't read, so the
//! refused field is taken out of the document and the rest read again, up to
//! `MAX_PROBLEMS` times. A TOML syntax error ends the reading at once: nothing after it has a
//! meaning to read.

use serde_path_to_error::{Path as FieldPath, Segment};

use super::{Config, ConfigProblem};

/// The most field problems reported for one file (each costs one more reading of it).
const MAX_PROBLEMS: usize = 32;

/// Why the text is not a config.
#[derive(Debug)]
pub enum ParseError {
    /// Not TOML: the parser's message, with its line, column and snippet.
    Syntax(String),
    /// TOML, but these fields can't be read; `rest` is the config read without them, when the
    /// fields left still make one (for its own checks to be reported with these).
    Fields { problems: Vec<ConfigProblem>, rest: Option<Box<Config>> },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Syntax(message) => f.write_str(message),
            ParseError::Fields { problems, .. } => f.write_str(&ConfigProblem::join(problems)),
        }
    }
}

/// Reads `text` as a config.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    let mut document: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ParseError::Syntax(e.to_string()))?;
    let mut problems: Vec<ConfigProblem> = Vec::new();
    let mut rest = None;
    while problems.len() < MAX_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(document.clone()))
        {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(config) => {
                rest = Some(Box::new(config));
                break;
            }
            Err(error) => error,
        };
        let field = field_path(error.path());
        // toml's message ends with "in `path`" on a line of its own: the path is said already.
        let message = error.inner().to_string();
        let message = message.split("\nin `").next().unwrap_or_default().trim().to_owned();
        // A field taken out that is required comes back as missing: said already.
        if missing_field(&message).is_some_and(|name| problems.iter().any(|p| p.field == join(&field, name)))
        {
            break;
        }
        let removed = remove(&mut document, error.path());
        problems.push(ConfigProblem { field, message: with_fix(&message) });
        if !removed {
            break;
        }
    }
    Err(ParseError::Fields { problems, rest })
}

/// The path as the config's problems spell it: `a.b[2].c`, `(top level)` for the root.
fn field_path(path: &FieldPath) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&printable(key));
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() {
        "(top level)".to_owned()
    } else {
        out
    }
}

/// A key as typed, without control characters (a config's author is trusted, but a terminal
/// should not be driven by what a file holds).
fn printable(key: &str) -> String {
    key.chars().map(|c| if c.is_control() { '?' } else { c }).take(128).collect()
}

fn join(parent: &str, name: &str) -> String {
    if parent == "(top level)" {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// What would fix it, after serde's message: the example config shows every field's form.
fn with_fix(message: &str) -> String {
    if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        // serde's message lists what is expected.
        format!("{message}; check the spelling")
    } else {
        format!("{message}; deploy/nymgate.example.toml shows the field's form")
    }
}

/// Takes the value at `path` out of the document; `false` when there is nothing to take (the
/// problem is the table itself, say a missing field of the top level).
fn remove(document: &mut toml::Table, path: &FieldPath) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let mut root = toml::Value::Table(std::mem::take(document));
    let removed = remove_in(&mut root, &segments);
    if let toml::Value::Table(table) = root {
        *document = table;
    }
    removed
}

fn remove_in(value: &mut toml::Value, path: &[&Segment]) -> bool {
    match (path, value) {
        ([Segment::Map { key }], toml::Value::Table(table)) => table.remove(key.as_str()).is_some(),
        ([Segment::Seq { index }], toml::Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        ([Segment::Map { key }, rest @ ..], toml::Value::Table(table)) => {
            table.get_mut(key.as_str()).is_some_and(|v| remove_in(v, rest))
        }
        ([Segment::Seq { index }, rest @ ..], toml::Value::Array(items)) => {
            items.get_mut(*index).is_some_and(|v| remove_in(v, rest))
        }
        // An enum's variant names the value it is in: the rest of the path is inside it.
        ([Segment::Enum { .. }, rest @ ..], value) => remove_in(value, rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";

    fn fields(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ParseError::Fields { problems, .. }) => problems.into_iter().map(|p| p.field).collect(),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn every_refused_field_is_named_by_its_path_and_all_at_once() {
        let text =
            format!("{SERVER}workers = -1\nlistn = 1\n[limits]\nmax_headers = \"many\"\n[sever]\nx = 1\n");
        let mut found = fields(&text);
        found.sort();
        assert_eq!(found, ["limits.max_headers", "server.listn", "server.workers", "sever"]);
        let bad_listen = SERVER.replace("127.0.0.1:8443", "localhost");
        assert_eq!(fields(&bad_listen), ["server.listen"], "a required field once, not again as missing");
        let (problems, rest) = match parse(&format!("{SERVER}workers = -1\n[limits]\nmax_connections = 0\n"))
        {
            Err(ParseError::Fields { problems, rest }) => (problems, rest),
            _ => unreachable!(),
        };
        assert!(problems[0].message.contains("nymgate.example.toml"), "{}", problems[0]);
        assert!(!problems[0].message.contains("in `"), "the path once: {}", problems[0]);
        // The rest is read without the refused field, for its own checks.
        let rest = rest.expect("the other fields make a config");
        assert_eq!(rest.limits.max_connections, 0);
    }

    #[test]
    fn a_field_inside_an_array_of_tables_is_named_with_its_index() {
        let text = format!("{SERVER}[[tenants]]\nid = \"a\"\nidp = \"oidc\"\nissuer = \"https://a.example\"\n[[tenants]]\nid = \"b\"\nidp = \"oidc\"\nissuer = 5\n");
        assert_eq!(fields(&text), ["tenants[1].issuer"]);
    }

    #[test]
    fn a_syntax_error_keeps_its_line_and_column() {
        match parse("[server\nlisten = 1") {
            Err(ParseError::Syntax(message)) => assert!(message.contains("line 1"), "{message}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    proptest::proptest! {
        /// Whatever is written into a valid config's server table under a key nymgate does not
        /// know, the problem names exactly that key's path (or the table, for a key that is
        /// not a printable name), never passes, never panics.
        #[test]
        fn an_unknown_key_anywhere_in_server_is_named(key in "[a-z_]{1,12}", value in 0i64..5) {
            let known = ["listen", "admin_listen", "cert_file", "key_file", "workers", "redirect_listen",
                "redirect_https_port", "cert_reload_interval"];
            proptest::prop_assume!(!known.contains(&key.as_str()));
            let text = format!("{SERVER}{key} = {value}\n");
            match parse(&text) {
                Err(ParseError::Fields { problems, .. }) => {
                    proptest::prop_assert!(problems.iter().any(|p| p.field == format!("server.{key}")), "{problems:?}");
                }
                Ok(_) => {}
                Err(ParseError::Syntax(s)) => proptest::prop_assert!(false, "{s}"),
            }
        }
    }
}
