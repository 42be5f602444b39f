//! The pages the demo IdP shows a person (`nymgate demo` only): the sign-in form both faces
//! share, OIDC's and SAML's, in Swedish and English with the demo people listed, and the SAML
//! face's page that posts the signed Response back to nymgate's ACS (SAML Bindings §3.5.4).
//! Every value from the request or the directory is HTML-escaped (login::pages::escape).
//!
//! A room of demo/idp.rs (issue 30): the protocol (discovery, codes, tokens, userinfo, the
//! routing of requests) stays there.

use super::*;
use crate::web::escape;

pub(super) const WRONG_PASSWORD: &str = "Fel användarnamn eller lösenord. / Wrong username or password.";

/// The sign-in form both faces share: `carried` names the request's fields that ride along
/// hidden to `action`.
pub(super) fn sign_in_page(
    school: &School,
    params: &HashMap<String, String>,
    carried: &[&str],
    action: &str,
    error: Option<&str>,
) -> Answer {
    let hidden: String = carried
        .iter()
        .filter_map(|name| Some((name, params.get(*name)?)))
        .map(|(name, value)| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value)))
        .collect();
    let people: String = USERS
        .iter()
        .filter(|u| u.school == school.id)
        .map(|u| {
            format!(
                "<li><code>{}</code> ({} {}, {})</li>",
                u.login,
                escape(u.given_name),
                escape(u.family_name),
                u.role
            )
        })
        .collect();
    let protocol = if school.saml { "SAML" } else { "OpenID Connect" };
    let error_html =
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"sv\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{name}: logga in</title><style>{STYLE}</style></head><body><main>\
         <p class=\"idp\">{name} · demo-IdP ({protocol})</p><h1>Logga in / Sign in</h1>{error_html}\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <p><label for=\"login\">Användarnamn / Username</label><input id=\"login\" name=\"login\" autocomplete=\"username\" required></p>\
         <p><label for=\"password\">Lösenord / Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>\
         <p><button type=\"submit\">Logga in / Sign in</button></p></form>\
         <details open><summary>Demo users (password <code>{PASSWORD}</code>)</summary><ul>{people}</ul></details>\
         </main></body></html>\n",
        name = escape(school.name),
    );
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    html_answer(status, html)
}

/// SAML: the AuthnRequest (HTTP-Redirect binding) is checked before the form is shown; it
/// rides along in hidden fields with the RelayState.
pub(super) fn saml_sign_in_page(
    saml: &SamlIdp,
    school: &School,
    params: &HashMap<String, String>,
    error: Option<&str>,
) -> Answer {
    match params.get("SAMLRequest").map(|r| saml.read_request(r)) {
        Some(Ok(_)) => sign_in_page(school, params, &["SAMLRequest", "RelayState"], "sso", error),
        Some(Err(problem)) => text(StatusCode::BAD_REQUEST, &format!("bad AuthnRequest: {problem}\n")),
        None => text(StatusCode::BAD_REQUEST, "no SAMLRequest\n"),
    }
}

/// SAML: the form's answer: a known person gets the page that posts their Response.
pub(super) fn saml_sign_in(saml: &SamlIdp, school: &School, form: &HashMap<String, String>) -> Answer {
    let Some(user) = authenticate(school, form) else {
        return saml_sign_in_page(saml, school, form, Some(WRONG_PASSWORD));
    };
    saml_answer(saml, school, form, &user.into())
}

/// The page that posts `person`'s signed Response to nymgate's ACS (HTTP-POST binding,
/// Bindings §3.5.4): a script submits it at once, and with JavaScript off the person presses
/// Continue. `params` hold the AuthnRequest and the RelayState.
pub(super) fn saml_answer(
    saml: &SamlIdp,
    school: &School,
    params: &HashMap<String, String>,
    person: &Person,
) -> Answer {
    let request = match params.get("SAMLRequest").map(|r| saml.read_request(r)) {
        Some(Ok(request)) => request,
        Some(Err(problem)) => {
            return text(StatusCode::BAD_REQUEST, &format!("bad AuthnRequest: {problem}\n"))
        }
        None => return text(StatusCode::BAD_REQUEST, "no SAMLRequest\n"),
    };
    let response = match saml.response(&request, person) {
        Ok(response) => response,
        Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
    };
    let relay_state = params
        .get("RelayState")
        .map(|r| format!("<input type=\"hidden\" name=\"RelayState\" value=\"{}\">", escape(r)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"sv\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{name}: fortsätt</title><style>{STYLE}</style></head><body><main>\
         <p class=\"idp\">{name} · demo-IdP (SAML)</p><h1>Skickar dig tillbaka / Taking you back</h1>\
         <form method=\"post\" action=\"{acs}\"><input type=\"hidden\" name=\"SAMLResponse\" value=\"{response}\">{relay_state}\
         <p><button type=\"submit\">Fortsätt / Continue</button></p></form>\
         <script>document.forms[0].submit()</script></main></body></html>\n",
        name = escape(school.name),
        acs = escape(&saml.acs_url),
    );
    html_answer(StatusCode::OK, html)
}

fn html_answer(status: StatusCode, html: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;\
color:#1a1a1a;line-height:1.5;background:#f4f1ea}.idp{color:#5a4a2a;font-weight:600}label{display:block}\
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}button{font:inherit;padding:.5rem 1rem;\
background:#5a4a2a;color:#fff;border:0}.error{color:#a00;font-weight:600}";
