//! Just enough HTML for a load test's virtual browser: the first form of a page (its action,
//! method and inputs), and links resolved against the page's URL. IdP login pages and SAML
//! POST-binding pages are machine-written and simple; this is a tolerant scanner, not a parser
//! of all HTML, and it reads only what an operator's own staging IdP sends.

/// A form as a browser would submit it.
#[derive(Debug, PartialEq, Eq)]
pub struct Form {
    /// As written (resolve it with [`resolve`]).
    pub action: String,
    /// `get` or `post`, lowercase.
    pub method: String,
    pub inputs: Vec<Input>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    pub value: String,
    /// `type`, lowercase; `text` when absent.
    pub kind: String,
}

impl Form {
    pub fn has_password(&self) -> bool {
        self.inputs.iter().any(|i| i.kind == "password")
    }

    /// Fills in a login form: the password field, and the username field (the first of the
    /// usual names, else the first text or email field).
    pub fn fill_login(&mut self, login: &str, password: &str) {
        const NAMES: [&str; 6] = ["username", "login", "user", "email", "j_username", "UserName"];
        let user_field = self
            .inputs
            .iter()
            .position(|i| NAMES.contains(&i.name.as_str()) && i.kind != "hidden")
            .or_else(|| self.inputs.iter().position(|i| i.kind == "text" || i.kind == "email"));
        if let Some(at) = user_field {
            self.inputs[at].value = login.to_owned();
        }
        for input in self.inputs.iter_mut().filter(|i| i.kind == "password") {
            input.value = password.to_owned();
        }
    }

    /// The submitted name/value pairs (inputs without a name, and buttons, are not sent).
    pub fn fields(&self) -> Vec<(&str, &str)> {
        self.inputs
            .iter()
            .filter(|i| {
                !i.name.is_empty() && !matches!(i.kind.as_str(), "submit" | "button" | "image" | "reset")
            })
            .map(|i| (i.name.as_str(), i.value.as_str()))
            .collect()
    }
}

/// The page's first `<form>`.
pub fn first_form(page: &str) -> Option<Form> {
    let lower = page.to_ascii_lowercase();
    let start = lower.find("<form")?;
    let open_end = start + lower[start..].find('>')?;
    let end = lower[open_end..].find("</form").map_or(page.len(), |i| open_end + i);
    let attributes = tag_attributes(&page[start + "<form".len()..open_end]);
    let get = |name: &str| attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut inputs = Vec::new();
    let body = &page[open_end..end];
    let body_lower = &lower[open_end..end];
    let mut at = 0;
    while let Some(found) = body_lower[at..].find("<input") {
        let tag_start = at + found + "<input".len();
        let Some(tag_len) = body_lower[tag_start..].find('>') else { break };
        let attributes = tag_attributes(&body[tag_start..tag_start + tag_len]);
        let get_input = |name: &str| attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        inputs.push(Input {
            name: get_input("name").unwrap_or_default(),
            value: get_input("value").unwrap_or_default(),
            kind: get_input("type").unwrap_or_else(|| "text".into()).to_ascii_lowercase(),
        });
        at = tag_start + tag_len;
    }
    Some(Form {
        action: get("action").unwrap_or_default(),
        method: get("method").unwrap_or_else(|| "get".into()).to_ascii_lowercase(),
        inputs,
    })
}

/// The attributes of a tag's inside (after its name): `name="v"`, `name='v'`, `name=v`, `name`.
/// Names are lowercased, values have their character references decoded.
fn tag_attributes(inside: &str) -> Vec<(String, String)> {
    let bytes = inside.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'/') {
            i += 1;
        }
        if name_start == i {
            break;
        }
        let name = inside[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            out.push((name, String::new()));
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&quote @ (b'"' | b'\'')) => {
                let start = i + 1;
                let end = inside[start..].find(quote as char).map_or(inside.len(), |e| start + e);
                i = end + 1;
                &inside[start..end]
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                &inside[start..i]
            }
        };
        out.push((name, decode_references(value)));
    }
    out
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`, `&apos;` and numeric references.
fn decode_references(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `href` resolved against the absolute URL `base` (RFC 3986 §5.2, the cases pages use).
pub fn resolve(base: &str, href: &str) -> String {
    if href.starts_with("https://") || href.starts_with("http://") {
        return href.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let origin = &base[..origin_end];
    let path_and_query = &base[origin_end..];
    let path = path_and_query.split(['?', '#']).next().unwrap_or("");
    if let Some(rest) = href.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    if href.starts_with('/') {
        return format!("{origin}{href}");
    }
    if href.is_empty() {
        return base.split('#').next().unwrap_or(base).to_owned();
    }
    if href.starts_with('?') {
        return format!("{origin}{path}{href}");
    }
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{origin}{dir}{href}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_form_is_read_and_filled() {
        let page = r#"<html><body><FORM method=POST action='/interaction/abc/login?x=1&amp;y=2'>
            <input type="hidden" name="csrf" value="t&#x3D;1">
            <input required type="text" name="login" placeholder="Login" autofocus>
            <input type=password name=password>
            <input type="submit" name="go" value="Sign in">
            </form><form action="/second"></form>"#;
        let mut form = first_form(page).unwrap();
        assert_eq!(form.action, "/interaction/abc/login?x=1&y=2");
        assert_eq!(form.method, "post");
        assert!(form.has_password());
        form.fill_login("alice", "s3cret");
        assert_eq!(form.fields(), [("csrf", "t=1"), ("login", "alice"), ("password", "s3cret")]);
    }

    #[test]
    fn a_saml_post_form_is_read() {
        let page = r#"<form method="post" action="https://a:1/nymgate/saml/acs"><input type="hidden" name="SAMLResponse" value="PD94+/="><input type="hidden" name="RelayState" value="x&amp;y"><button>Go</button></form>"#;
        let form = first_form(page).unwrap();
        assert!(!form.has_password());
        assert_eq!(form.fields(), [("SAMLResponse", "PD94+/="), ("RelayState", "x&y")]);
        assert!(first_form("<p>no form</p>").is_none());
        assert!(first_form("<form action=x").is_none(), "an unclosed tag is no form");
    }

    #[test]
    fn broken_references_stay_as_written() {
        assert_eq!(decode_references("a&b; &#xZZ; &#65; &unknown;"), "a&b; &#xZZ; A &unknown;");
        assert_eq!(decode_references("&&amp;"), "&&");
    }

    #[test]
    fn links_resolve_against_the_page() {
        let base = "https://idp.example:8443/simplesaml/module.php/core/loginuserpass.php?AuthState=1";
        assert_eq!(
            resolve(base, "?AuthState=2"),
            "https://idp.example:8443/simplesaml/module.php/core/loginuserpass.php?AuthState=2"
        );
        assert_eq!(resolve(base, ""), base);
        assert_eq!(resolve(base, "/x"), "https://idp.example:8443/x");
        assert_eq!(
            resolve(base, "other.php"),
            "https://idp.example:8443/simplesaml/module.php/core/other.php"
        );
        assert_eq!(resolve(base, "//cdn.example/a"), "https://cdn.example/a");
        assert_eq!(resolve("https://h", "a"), "https://h/a");
        assert_eq!(resolve(base, "http://else/where"), "http://else/where");
    }
}
