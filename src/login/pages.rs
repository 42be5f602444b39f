//! The pages a person sees from nymgate itself: the school chooser, the login error page, the
//! logged-out page and the transparency page. Plain HTML and CSS, no script (they work with
//! JavaScript off); every text value is escaped. Swedish or English by `Accept-Language`, with
//! the texts in `texts/*.toml`.
//!
//! Accessibility: one `h1` per page, labelled form fields, visible focus, text contrast of at
//! least 7:1 (WCAG 2.2 AAA 1.4.6) on the default colours, and a page language.

use std::collections::HashMap;
use std::sync::OnceLock;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::body::{self, Body};
use crate::config::BrandingConfig;
use crate::web::escape;

/// The languages the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Sv,
}

impl Lang {
    /// The best supported language of an `Accept-Language` value (RFC 9110 §12.5.4), by
    /// q-value then order; English when none is supported.
    pub fn from_accept_language(value: Option<&str>) -> Lang {
        let mut best = (0.0f32, Lang::En);
        for item in value.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "sv" => Lang::Sv,
                "en" => Lang::En,
                _ => continue,
            };
            if q > best.0 {
                best = (q, lang);
            }
        }
        best.1
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sv => "sv",
        }
    }

    /// The text for `key`; a missing key is a build defect caught by the unit test.
    pub fn text(self, key: &str) -> &'static str {
        static TEXTS: OnceLock<[HashMap<String, String>; 2]> = OnceLock::new();
        let texts = TEXTS.get_or_init(|| {
            let parse = |text: &str| toml::from_str(text).expect("texts/*.toml are valid TOML string tables");
            [parse(include_str!("texts/en.toml")), parse(include_str!("texts/sv.toml"))]
        });
        let table = &texts[self as usize];
        table.get(key).map(String::as_str).unwrap_or("")
    }
}

/// `{name}` in a text replaced by the escaped value.
fn fill(text: &str, name: &str, value: &str) -> String {
    escape(text).replace(&format!("{{{name}}}"), &escape(value))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;\
color:#1a1a1a;background:#fff;line-height:1.5}a{color:var(--accent)}li{margin:.4rem 0}\
.brand{display:flex;align-items:center;gap:.6rem;font-weight:600}.brand img{max-height:2.5rem}\
code{background:#eee;padding:.1rem .3rem}label{display:block;font-weight:600}\
input{font:inherit;padding:.4rem;border:1px solid #555}button{font:inherit;padding:.4rem 1rem;\
background:var(--accent);color:#fff;border:0}a:focus,input:focus,button:focus{outline:3px solid #c25e00;\
outline-offset:2px}dt{font-weight:600}dd{margin:0 0 .6rem}.primary{font-size:1.15rem}";

/// The accent when none is configured (7.9:1 on white).
const DEFAULT_ACCENT: &str = "#0a4aa8";

fn page(
    lang: Lang,
    brand: &BrandingConfig,
    status: StatusCode,
    title: &str,
    content: &str,
) -> Response<Body> {
    // The accent was checked as #rrggbb by the config check; escaped all the same.
    let accent = escape(brand.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT));
    let logo = brand.logo_url.as_ref().map(|url| format!("<img src=\"{}\" alt=\"\">", escape(url)));
    let header = match (&brand.name, logo) {
        (None, None) => String::new(),
        (name, logo) => format!(
            "<header class=\"brand\">{}<span>{}</span></header>",
            logo.unwrap_or_default(),
            escape(name.as_deref().unwrap_or(""))
        ),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>:root{{--accent:{accent}}}{STYLE}</style></head><body>{header}<main><h1>{title}</h1>{content}</main></body></html>\n",
        code = lang.code(),
        title = escape(title),
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-language"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; form-action 'self'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

/// Where "Start again" and "Sign in again" lead: the platform's own start page behind nymgate,
/// which begins a sign-in the way the platform does (nymgate can't start one for it: in the
/// provider output the platform's client starts every login with its own parameters).
const START: &str = "/";

/// A failed login: what happened in general words and a reference for the school's IT. The
/// detail is in the log under the same reference, never on the page.
pub fn login_failed(
    lang: Lang,
    brand: &BrandingConfig,
    status: StatusCode,
    request_id: &str,
) -> Response<Body> {
    let body = if status == StatusCode::TOO_MANY_REQUESTS { "blocked_body" } else { "failed_body" };
    let content = format!(
        "<p>{}</p><p class=\"primary\"><a href=\"{START}\">{}</a></p><p>{} <code>{}</code></p>",
        escape(lang.text(body)),
        escape(lang.text("start_again")),
        escape(lang.text("failed_reference")),
        escape(request_id)
    );
    page(lang, brand, status, lang.text("failed_title"), &content)
}

/// 503 for a sign-in refused because its audit line could not be written (docs/LOGIN.md, "The
/// audit log"): nothing of it was delivered or kept, and trying again later will work.
pub fn audit_unavailable(lang: Lang, brand: &BrandingConfig, request_id: &str) -> Response<Body> {
    let content = format!(
        "<p>{}</p><p>{} <code>{}</code></p>",
        escape(lang.text("unavailable_body")),
        escape(lang.text("failed_reference")),
        escape(request_id)
    );
    let mut response =
        page(lang, brand, StatusCode::SERVICE_UNAVAILABLE, lang.text("unavailable_title"), &content);
    response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("60"));
    response
}

/// One school on the chooser.
pub struct SchoolChoice {
    pub name: String,
    /// Where choosing it goes (built by the caller).
    pub href: String,
}

/// The school chooser: a search form (a GET to the same page, so it works without script)
/// carrying the login's own parameters in `hidden`, the remembered school first, then every
/// school whose name holds the search words.
pub fn chooser(
    lang: Lang,
    brand: &BrandingConfig,
    schools: &[SchoolChoice],
    remembered: Option<&SchoolChoice>,
    query: &str,
    hidden: &[(String, String)],
) -> Response<Body> {
    let mut content = String::new();
    if let Some(school) = remembered {
        content.push_str(&format!(
            "<p class=\"primary\"><a href=\"{}\">{}</a></p><p>{}</p>",
            escape(&school.href),
            fill(lang.text("continue_with"), "school", &school.name),
            escape(lang.text("other_school"))
        ));
    } else {
        content.push_str(&format!("<p>{}</p>", escape(lang.text("choose_school"))));
    }
    let hidden_inputs: String = hidden
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    content.push_str(&format!(
        "<form method=\"get\" role=\"search\">{hidden_inputs}<label for=\"q\">{label}</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{value}\"> <button type=\"submit\">{button}</button></form>",
        label = escape(lang.text("search_label")),
        value = escape(query),
        button = escape(lang.text("search_button")),
    ));
    let words: Vec<String> = query.split_whitespace().map(|w| w.to_lowercase()).collect();
    let matching: Vec<&SchoolChoice> =
        schools.iter().filter(|s| words.iter().all(|w| s.name.to_lowercase().contains(w.as_str()))).collect();
    if matching.is_empty() {
        content.push_str(&format!("<p role=\"status\">{}</p>", fill(lang.text("no_match"), "query", query)));
    } else {
        content.push_str("<ul>");
        for school in matching {
            content.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(&school.href),
                escape(&school.name)
            ));
        }
        content.push_str("</ul>");
    }
    if !words.is_empty() {
        let without_query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(hidden.iter())
            .finish();
        content.push_str(&format!(
            "<p><a href=\"?{}\">{}</a></p>",
            escape(&without_query),
            escape(lang.text("show_all"))
        ));
    }
    page(lang, brand, StatusCode::OK, lang.text("sign_in_title"), &content)
}

/// The HTTP-POST binding's form (SAML Bindings §3.5.4): the signed `SAMLResponse` (and the
/// SP's RelayState) posted to the SP's ACS. One inline script submits it, allowed by its hash
/// alone; without script the button does the same.
pub fn saml_post(
    lang: Lang,
    brand: &BrandingConfig,
    acs_url: &str,
    saml_response: &str,
    relay_state: Option<&str>,
) -> Response<Body> {
    const SUBMIT: &str = "document.forms[0].submit()";
    static SUBMIT_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, SUBMIT.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    });
    let relay = relay_state
        .map(|r| format!("<input type=\"hidden\" name=\"RelayState\" value=\"{}\">", escape(r)))
        .unwrap_or_default();
    let content = format!(
        "<p>{body}</p><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"SAMLResponse\" value=\"{response}\">{relay}<button type=\"submit\">{button}</button></form><script>{SUBMIT}</script>",
        body = escape(lang.text("saml_post_body")),
        action = escape(acs_url),
        response = escape(saml_response),
        button = escape(lang.text("saml_post_button")),
    );
    let mut response = page(lang, brand, StatusCode::OK, lang.text("saml_post_title"), &content);
    // The form goes to the SP's ACS (an origin of its own): the CSP names it, and the script.
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; script-src 'sha256-{}'; form-action {}",
        *SUBMIT_HASH,
        csp_source(acs_url),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert("content-security-policy", value);
    }
    response
}

/// An ACS URL's origin as a CSP source expression (`https://platform.example:8443`).
fn csp_source(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => "'none'".into(),
        },
        Err(_) => "'none'".into(),
    }
}

pub fn logged_out(lang: Lang, brand: &BrandingConfig) -> Response<Body> {
    page(
        lang,
        brand,
        StatusCode::OK,
        lang.text("logged_out_title"),
        &format!(
            "<p>{}</p><p class=\"primary\"><a href=\"{START}\">{}</a></p>",
            escape(lang.text("logged_out_body")),
            escape(lang.text("sign_in_again"))
        ),
    )
}

/// "What the platform receives about you": the pseudonymous claims of this session and the
/// names of what was removed. Values shown are the platform's own (an account number, a role),
/// never the removed ones, which nymgate does not have.
pub fn transparency(
    lang: Lang,
    brand: &BrandingConfig,
    session: Option<(&Map<String, Value>, &[String])>,
) -> Response<Body> {
    let Some((claims, removed)) = session else {
        let content = format!("<p>{}</p>", escape(lang.text("me_not_signed_in")));
        return page(lang, brand, StatusCode::OK, lang.text("me_title"), &content);
    };
    let mut content = format!("<p>{}</p><dl>", escape(lang.text("me_intro")));
    let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
    for (label, value) in [
        ("me_account", text("sub")),
        ("me_role", text("role")),
        ("me_school", text("school")),
        ("me_municipality", text("municipality")),
        ("me_tenant", text("tenant")),
    ] {
        let Some(value) = value else { continue };
        // The role as the platform receives it (`student`), and the word for it in the page's
        // language beside it when that differs (issue 29: the page said "pupil" for `student`).
        let shown = if label != "me_role" {
            escape(&value)
        } else {
            match lang.text(&format!("role_{value}")) {
                word if !word.is_empty() && word != value => {
                    format!("<code>{}</code> ({})", escape(&value), escape(word))
                }
                _ => format!("<code>{}</code>", escape(&value)),
            }
        };
        content.push_str(&format!("<dt>{}</dt><dd>{shown}</dd>", escape(lang.text(label))));
    }
    content.push_str("</dl>");
    if removed.is_empty() {
        content.push_str(&format!("<p>{}</p>", escape(lang.text("me_nothing_removed"))));
    } else {
        content.push_str(&format!("<p>{}</p><ul>", escape(lang.text("me_removed"))));
        for name in removed {
            content.push_str(&format!("<li><code>{}</code></li>", escape(name)));
        }
        content.push_str("</ul>");
    }
    content.push_str(&format!(
        "<p><a href=\"/\">{}</a> · <a href=\"/nymgate/logout\">{}</a></p>",
        escape(lang.text("back")),
        escape(lang.text("sign_out"))
    ));
    page(lang, brand, StatusCode::OK, lang.text("me_title"), &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page that ends a sign-in offers a way back to the start, in the page's language.
    #[test]
    fn the_failed_and_signed_out_pages_offer_a_way_to_start_again() {
        let brand = BrandingConfig::default();
        for lang in [Lang::En, Lang::Sv] {
            for (response, text) in [
                (login_failed(lang, &brand, StatusCode::BAD_REQUEST, "r1"), "start_again"),
                (login_failed(lang, &brand, StatusCode::TOO_MANY_REQUESTS, "r2"), "start_again"),
                (logged_out(lang, &brand), "sign_in_again"),
            ] {
                let html = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                    response.into_body(),
                ))
                .unwrap()
                .unwrap()
                .to_bytes();
                let html = String::from_utf8_lossy(&html);
                let link = format!("<a href=\"/\">{}</a>", escape(lang.text(text)));
                assert!(html.contains(&link), "{html}");
            }
        }
    }

    #[test]
    fn both_languages_have_every_text() {
        let keys = |text: &str| -> Vec<String> {
            let mut keys: Vec<String> =
                toml::from_str::<HashMap<String, String>>(text).unwrap().into_keys().collect();
            keys.sort();
            keys
        };
        let en = keys(include_str!("texts/en.toml"));
        assert_eq!(en, keys(include_str!("texts/sv.toml")));
        for key in &en {
            assert!(!Lang::Sv.text(key).is_empty() && !Lang::En.text(key).is_empty(), "{key}");
        }
    }

    fn body(response: Response<Body>) -> String {
        let body =
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(response.into_body()));
        String::from_utf8(body.unwrap().unwrap().to_bytes().to_vec()).unwrap()
    }

    /// The transparency page shows the role the platform receives, in every language, with
    /// the page's word for it beside it (issue 29: it said "pupil" where the platform gets
    /// `student`).
    #[test]
    fn transparency_page_shows_the_role_as_the_platform_receives_it() {
        let claims = serde_json::json!({"sub": "v1-AAAA", "role": "student", "tenant": "nord"});
        let removed = ["email".to_owned()];
        let page = |lang| {
            body(transparency(
                lang,
                &BrandingConfig::default(),
                Some((claims.as_object().unwrap(), &removed)),
            ))
        };
        let en = page(Lang::En);
        assert!(en.contains("<dd><code>student</code></dd>") && !en.contains("pupil"), "{en}");
        assert!(en.contains("<title>What the platform receives about you"), "{en}");
        assert!(page(Lang::Sv).contains("<dd><code>student</code> (elev)</dd>"));
        for role in ["student", "teacher", "staff", "other"] {
            assert!(
                !Lang::En.text(&format!("role_{role}")).is_empty()
                    && !Lang::Sv.text(&format!("role_{role}")).is_empty()
            );
        }
    }

    #[test]
    fn accept_language_picks_by_q_value() {
        assert_eq!(Lang::from_accept_language(Some("sv-SE,sv;q=0.9,en;q=0.8")), Lang::Sv);
        assert_eq!(Lang::from_accept_language(Some("de-DE, en;q=0.5, sv;q=0.7")), Lang::Sv);
        assert_eq!(Lang::from_accept_language(Some("en-GB,sv;q=0.3")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("fi")), Lang::En);
        assert_eq!(Lang::from_accept_language(None), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("sv;q=abc")), Lang::Sv);
    }

    #[test]
    fn chooser_searches_by_name_and_keeps_the_login_parameters() {
        let schools: Vec<SchoolChoice> = ["Nordskolan", "Södra gymnasiet"]
            .iter()
            .map(|n| SchoolChoice { name: n.to_string(), href: format!("/nymgate/login/{n}") })
            .collect();
        let hidden = [("return_to".to_owned(), "/courses?x=1".to_owned())];
        let html = |q: &str| {
            let response = chooser(Lang::Sv, &BrandingConfig::default(), &schools, None, q, &hidden);
            let body =
                futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(response.into_body()));
            String::from_utf8(body.unwrap().unwrap().to_bytes().to_vec()).unwrap()
        };
        let found = html("SÖDRA");
        assert!(found.contains("Södra gymnasiet") && !found.contains(">Nordskolan<"), "{found}");
        assert!(found.contains(r#"<input type="hidden" name="return_to" value="/courses?x=1">"#), "{found}");
        assert!(found.contains("lang=\"sv\""), "{found}");
        let none = html("<script>");
        assert!(none.contains("Ingen skola matchar ”&lt;script&gt;”"), "{none}");
    }
}
