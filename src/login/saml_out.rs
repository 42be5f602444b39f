//! The login flow's side of SAML out's strict reading (docs/SAML_OUT.md, issue 26): each
//! AuthnRequest ID used once on every replica, requests answered with a SAML status instead of
//! a login (InvalidNameIDPolicy, NoPassive), and ForceAuthn and IsPassive passed on to the
//! school's IdP. Kept apart from mod.rs so the flow there reads as before: each hook is one call.

use http::Response;

use super::{pages, saml_sp, FlowError, LoginContext, Next};
use crate::body::Body;
use crate::clock::unix_now;
use crate::mint::saml_idp::{ReadRequest, SamlOutError, SpRequest, StatusAnswer};
use crate::store::Space;
use crate::verify::saml_acs;

/// OIDC errors with which an IdP says that a `prompt=none` request needs the user (OIDC Core
/// §3.1.2.6): the answer to a passive SAML request is then NoPassive.
const NEEDS_INTERACTION: [&str; 4] =
    ["login_required", "interaction_required", "consent_required", "account_selection_required"];
/// The second-level status with which a SAML school answers IsPassive it can't honour (SAML
/// Core §3.2.2.2).
const NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

impl super::Login {
    /// A platform request as read, made a request to act on: its ID claimed in the shared store
    /// until it could no longer pass the IssueInstant check (so a second presentation is
    /// refused on every replica, SAML Profiles §4.1.4.1's one response per request), and a
    /// request nymgate can't honour turned into its status answer.
    pub(super) async fn admit_sp_request(
        &self,
        read: Result<ReadRequest, SamlOutError>,
        now: u64,
    ) -> Result<SpRequest, FlowError> {
        let read = read?;
        if let Some((key, until)) = &read.single_use {
            if !self.store.claim(Space::AuthnRequest, key, *until, now).await? {
                return Err(SamlOutError::Replayed.into());
            }
        }
        match read.answer {
            Some(answer) => Err(FlowError::SamlStatus(answer, Box::new(read.request))),
            None => Ok(read.request),
        }
    }

    /// The page that posts a signed status Response to the platform's ACS, for a
    /// [`FlowError::SamlStatus`]; `None` for every other error. The platform asked, and this is
    /// its answer: the browser is not shown nymgate's failure page, and it is not counted
    /// toward blocking (a passive check on every page of a platform is normal).
    pub(super) fn status_page(
        &self,
        error: &FlowError,
        tenant: Option<&str>,
        ctx: &LoginContext<'_>,
    ) -> Option<Response<Body>> {
        let FlowError::SamlStatus(answer, request) = error else { return None };
        let brand = self.branding_for(tenant);
        let idp = self.saml_idp.as_ref()?;
        match idp.status_response(request, *answer, unix_now()) {
            Ok((xml, acs_url)) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
                Some(pages::saml_post(ctx.lang, brand, acs_url, &encoded, request.relay_state.as_deref()))
            }
            Err(error) => {
                tracing::warn!(
                    request_id = ctx.request_id,
                    reason = error.reason(),
                    "status response not made"
                );
                Some(pages::login_failed(
                    ctx.lang,
                    brand,
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    ctx.request_id,
                ))
            }
        }
    }
}

/// The platform's request behind a login, when there is one.
fn sp_request(next: &Next) -> Option<&SpRequest> {
    match next {
        Next::SamlSp(request) => Some(request),
        _ => None,
    }
}

/// A passive request whose login can't go on without the user: NoPassive to the platform.
fn no_passive(request: &SpRequest) -> FlowError {
    FlowError::SamlStatus(StatusAnswer::NoPassive, Box::new(request.clone()))
}

/// IsPassive when the school is not known: choosing it is a page, so NoPassive at once.
pub(super) fn passive_without_school(request: SpRequest) -> FlowError {
    FlowError::SamlStatus(StatusAnswer::NoPassive, Box::new(request))
}

/// The `prompt` of an OIDC school's authorization request (OIDC Core §3.1.2.1) for what the
/// platform asked: `none` for IsPassive, `login` for ForceAuthn. Both at once can't be asked
/// of an OIDC IdP (`none` with another value is an error) and a fresh authentication without
/// a page can't be promised, so the platform gets NoPassive rather than a login that skipped
/// its ForceAuthn.
pub(super) fn oidc_prompt(next: &Next) -> Result<Option<&'static str>, FlowError> {
    match sp_request(next) {
        Some(request) if request.is_passive && request.force_authn => Err(no_passive(request)),
        Some(request) if request.is_passive => Ok(Some("none")),
        Some(request) if request.force_authn => Ok(Some("login")),
        _ => Ok(None),
    }
}

/// ForceAuthn and IsPassive for a SAML school's AuthnRequest, as the platform asked them of
/// nymgate (SAML Core §3.4.1: both may be set; the school's IdP decides).
pub(super) fn saml_options(next: &Next) -> saml_sp::AuthnOptions {
    sp_request(next)
        .map(|r| saml_sp::AuthnOptions { force_authn: r.force_authn, is_passive: r.is_passive })
        .unwrap_or_default()
}

/// An OIDC school's error answer: NoPassive to the platform when its passive request needed
/// the user, otherwise nymgate's `idp_error`. The error code is compared, never logged.
pub(super) fn oidc_error(next: &Next, error: &str) -> FlowError {
    match sp_request(next) {
        Some(request) if request.is_passive && NEEDS_INTERACTION.contains(&error) => no_passive(request),
        _ => FlowError::IdpError,
    }
}

/// A SAML school's response that did not verify: NoPassive to the platform when its passive
/// request was answered with the NoPassive status, otherwise the error as it is. The status is
/// taken unsigned (many IdPs don't sign error responses): the flow cookie and state already
/// tie it to this browser's login, and all it can cause is a NoPassive answer, which grants
/// nothing.
pub(super) fn saml_error(next: &Next, xml: &str, error: saml_acs::SamlError) -> FlowError {
    match sp_request(next) {
        Some(request)
            if request.is_passive
                && matches!(error, saml_acs::SamlError::Status)
                && second_level_status(xml).as_deref() == Some(NO_PASSIVE) =>
        {
            no_passive(request)
        }
        _ => error.into(),
    }
}

/// The second-level StatusCode of a Response (SAML Core §3.2.2.2), if it has one.
fn second_level_status(xml: &str) -> Option<String> {
    let doc = saml_acs::parse(xml).ok()?;
    let child = |parent, name: &str| {
        doc.children_iter(parent).find(|&c| doc.element(c).is_some_and(|e| e.matches_name_ns(PROTOCOL, name)))
    };
    let status = child(doc.document_element()?, "Status")?;
    let code = child(child(status, "StatusCode")?, "StatusCode")?;
    doc.element(code)?.get_attribute("Value").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(force_authn: bool, is_passive: bool) -> Next {
        let request =
            SpRequest { force_authn, is_passive, ..SpRequest::new("https://sp.example", None, None) };
        Next::SamlSp(request)
    }

    fn is_no_passive(error: &FlowError) -> bool {
        matches!(error, FlowError::SamlStatus(StatusAnswer::NoPassive, _))
    }

    #[test]
    fn the_oidc_prompt_follows_the_platforms_request() {
        assert_eq!(oidc_prompt(&next(false, false)).unwrap(), None);
        assert_eq!(oidc_prompt(&next(true, false)).unwrap(), Some("login"));
        assert_eq!(oidc_prompt(&next(false, true)).unwrap(), Some("none"));
        assert!(is_no_passive(&oidc_prompt(&next(true, true)).unwrap_err()));
        let session = Next::Session { return_to: "/".into() };
        assert_eq!(oidc_prompt(&session).unwrap(), None);
        assert_eq!(saml_options(&session), saml_sp::AuthnOptions::default());
        let both = saml_options(&next(true, true));
        assert!(both.force_authn && both.is_passive);
    }

    #[test]
    fn an_oidc_error_is_no_passive_only_for_a_passive_request_that_needed_the_user() {
        for error in NEEDS_INTERACTION {
            assert!(is_no_passive(&oidc_error(&next(false, true), error)), "{error}");
            assert!(matches!(oidc_error(&next(false, false), error), FlowError::IdpError), "{error}");
        }
        for error in ["access_denied", "server_error", "LOGIN_REQUIRED", ""] {
            assert!(matches!(oidc_error(&next(false, true), error), FlowError::IdpError), "{error}");
        }
    }

    /// A school's status Response, unsigned, with `second` as its second-level code.
    fn status(second: Option<&str>) -> String {
        let nested = second
            .map(|code| format!(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{code}"/>"#))
            .unwrap_or_default();
        format!(
            r#"<samlp:Response xmlns:samlp="{PROTOCOL}" ID="_s" Version="2.0" IssueInstant="2026-12-06T08:00:00Z"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder">{nested}</samlp:StatusCode></samlp:Status></samlp:Response>"#
        )
    }

    #[test]
    fn a_saml_schools_no_passive_is_passed_on_to_a_passive_request_only() {
        let no_passive = status(Some("NoPassive"));
        let error = || saml_acs::SamlError::Status;
        assert!(is_no_passive(&saml_error(&next(false, true), &no_passive, error())));
        // Not passive, another status, or another failure: the error as it was.
        let not = |next: &Next, xml: &str, e| matches!(saml_error(next, xml, e), FlowError::Saml(_));
        assert!(not(&next(false, false), &no_passive, error()));
        assert!(not(&next(false, true), &status(Some("AuthnFailed")), error()));
        assert!(not(&next(false, true), &status(None), error()));
        assert!(not(&next(false, true), &no_passive, saml_acs::SamlError::Issuer));
        assert!(not(&next(false, true), "not xml", error()));
    }
}
