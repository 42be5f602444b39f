//! What `check` warns about in a config that builds: settings `serve` takes, each valid alone,
//! whose combination makes logins fail (issue 29).

use super::{Config, LoginOutput};

impl Config {
    /// One sentence per combination that makes logins fail, naming the fields and the fix.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(login) = &self.login else { return warnings };
        // An intercepted ACS is the platform's own path: nymgate replaces the school's response
        // and forwards it, with no nymgate session. With the assertion-header output and
        // require_login, that forwarded POST has no session, so it is answered 401 instead
        // (login/mod.rs assert_request): the school's response is spent (its assertion ID
        // claimed) and the platform receives nothing (docs/SAML_OUT.md "Interception mode").
        if login.output == LoginOutput::AssertionHeader && login.assertion.require_login {
            let intercepted = login.saml_idp.iter().flat_map(|idp| idp.service_providers.iter().enumerate());
            for (i, _) in intercepted.filter(|(_, sp)| sp.intercept) {
                warnings.push(format!(
                    "login.saml_idp.service_providers[{i}].intercept with login.assertion.require_login = true: \
                     the school's response is consumed at the intercepted ACS and its replacement gets 401 \
                     (there is no nymgate session), so the platform receives nothing; set require_login = false \
                     or remove intercept"
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(output: &str, require_login: bool, intercept: bool) -> Config {
        Config::parse(&format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
             [login]\npublic_url = \"https://learn.example\"\noutput = \"{output}\"\n\
             [login.assertion]\nrequire_login = {require_login}\n\
             [login.saml_idp]\ncert_file = \"idp.pem\"\nkey_file = \"idp-key.pem\"\n\
             [[login.saml_idp.service_providers]]\nentity_id = \"https://learn.example/saml\"\n\
             acs_url = \"https://learn.example/saml/acs\"\nintercept = {intercept}\n"
        ))
        .unwrap()
    }

    #[test]
    fn interception_with_require_login_is_warned_about() {
        let warned = config("assertion_header", true, true).warnings();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].starts_with("login.saml_idp.service_providers[0].intercept"), "{warned:?}");
        for (output, require_login, intercept) in
            [("assertion_header", false, true), ("assertion_header", true, false), ("provider", true, true)]
        {
            assert_eq!(config(output, require_login, intercept).warnings(), Vec::<String>::new());
        }
    }
}
