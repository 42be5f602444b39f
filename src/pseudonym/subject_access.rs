//! The pseudonymizer's second entry: a data-subject request (GDPR Art. 15 and 17), answered from
//! a shell on the host by `nymgate pseudonym` (docs/PSEUDONYMS.md, "Data-subject requests").
//!
//! The first entry, [`Pseudonymizer::pseudonymize`], takes only a verified identity. This one
//! takes a subject a DPO typed, so it is audited by construction rather than by its caller: it
//! takes the audit sink, writes one `pseudonym_lookup` line per number (or one `failed` line
//! with the reason), and answers nothing unless those lines are on disk. The subject itself is
//! never written: the lines carry the tenant, the numbers and their key versions.

use super::*;
use crate::audit::{AuditEvent, AuditSink};

/// One number a person has under one key version still in the keyring (the DPO's lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownNumber {
    pub version: u32,
    pub number: AccountNumber,
    pub key: KeyState,
}

/// What a key version is to logins now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Logins get this number.
    Current,
    /// Tokens carry this number as `sub_prev` until the migration window ends.
    Previous,
    /// Not used by logins any more, but not retired: records kept under its number (the
    /// retention store's, or the platform's) still exist until they are culled or erased.
    Older,
}

/// What a DPO asks: one person's numbers in one tenant, in each of `sectors`.
pub struct SubjectRequest<'a> {
    /// The configured tenant the person signs in through.
    pub tenant: &'a str,
    /// The IdP that knows the person by `subject`: the tenant's when `None`; any spelling of
    /// it gives the numbers its logins got (config/issuer.rs); another issuer (a school's
    /// former IdP) is taken in its own canonical form, as a login from it was.
    pub issuer: Option<&'a str>,
    /// The stable subject the IdP sends (never written anywhere).
    pub subject: &'a str,
    /// The sectors to answer for: the primary one and every named one the platforms use.
    pub sectors: &'a [Sector<'a>],
    /// Unix seconds: which key is current and which previous.
    pub now: u64,
}

/// Why a data-subject request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SubjectAccessError {
    /// The lookup was refused (unknown tenant, no keys, another issuer's spelling); its
    /// `failed` line is written, or the second field says why not.
    #[error("{error}{}", audit_note(.audit))]
    Refused { error: PseudonymError, audit: Option<std::io::Error> },
    /// The numbers were found but their audit lines could not be written: no answer.
    #[error("the audit line could not be written, so no answer is given: {0}")]
    Unaudited(std::io::Error),
}

fn audit_note(audit: &Option<std::io::Error>) -> String {
    audit.as_ref().map(|e| format!(" (and its audit line could not be written: {e})")).unwrap_or_default()
}

impl SubjectAccessError {
    /// A reason code for the caller's messages (the audit line is already written).
    pub fn reason(&self) -> &'static str {
        match self {
            SubjectAccessError::Refused { error, .. } => error.reason(),
            SubjectAccessError::Unaudited(_) => "audit_failed",
        }
    }
}

/// The audit line of a data-subject request that got no answer, here or before the lookup
/// could run (`nymgate pseudonym` when the config or keyring can't be read): its reason only.
/// It names no tenant (what was typed may be anything) and never the subject.
pub fn record_refusal(audit: &AuditSink, reason: &'static str) -> std::io::Result<()> {
    audit.record(&AuditEvent { reason: Some(reason), ..AuditEvent::admin("pseudonym_lookup", "failed") })
}

impl Pseudonymizer {
    /// Every number the person has in each requested sector, under every key version the scope
    /// still holds, newest first; written to the audit log before it is returned.
    pub fn subject_access<'a>(
        &self,
        audit: &AuditSink,
        request: &SubjectRequest<'a>,
    ) -> Result<Vec<(Sector<'a>, KnownNumber)>, SubjectAccessError> {
        let mut answers = Vec::new();
        for sector in request.sectors {
            match self.lookup_every_version(
                request.tenant,
                request.issuer,
                request.subject,
                *sector,
                request.now,
            ) {
                Ok(known) => answers.extend(known.into_iter().map(|k| (*sector, k))),
                Err(error) => {
                    let audit = record_refusal(audit, error.reason()).err();
                    return Err(SubjectAccessError::Refused { error, audit });
                }
            }
        }
        let lines: Vec<AuditEvent<'_>> = answers
            .iter()
            .map(|(_, known)| AuditEvent {
                tenant: Some(request.tenant),
                account_number: Some(known.number.as_str()),
                key_version: Some(known.version),
                ..AuditEvent::admin("pseudonym_lookup", "ok")
            })
            .collect();
        audit.record_all(&lines).map_err(SubjectAccessError::Unaudited)?;
        Ok(answers)
    }

    /// Every number of the person under every key version the scope still holds, newest
    /// first: after a rotation window has closed, records made under the older number stay
    /// until culled (docs/PSEUDONYMS.md, "Data-subject requests"), and an erasure by number
    /// must reach them too. Visible to the module's tests, which compare its current number
    /// with a login's.
    pub(super) fn lookup_every_version(
        &self,
        tenant_id: &str,
        issuer: Option<&str>,
        subject: &str,
        sector: Sector<'_>,
        now: u64,
    ) -> Result<Vec<KnownNumber>, PseudonymError> {
        let (keys, issuer) = self.lookup_inputs(tenant_id, issuer)?;
        let (current, previous) = (keys.current().version, keys.previous(now).map(|key| key.version));
        Ok(keys
            .keys
            .iter()
            .rev()
            .map(|key| KnownNumber {
                version: key.version,
                number: derive_in_sector(key, sector, &issuer, subject),
                key: if key.version == current {
                    KeyState::Current
                } else if Some(key.version) == previous {
                    KeyState::Previous
                } else {
                    KeyState::Older
                },
            })
            .collect())
    }

    /// The scope keys and the issuer a lookup derives with: `issuer` defaults to the tenant's;
    /// any spelling of the tenant's issuer gives what its logins got, another issuer is taken
    /// in its own canonical form.
    fn lookup_inputs(
        &self,
        tenant_id: &str,
        issuer: Option<&str>,
    ) -> Result<(&keyring::ScopeKeys, String), PseudonymError> {
        let tenant = self.tenant(tenant_id)?;
        let keys =
            self.keyring.scope(&tenant.scope).map_err(|_| PseudonymError::NoKeys(tenant.scope.clone()))?;
        let canonical = match issuer {
            None => tenant.issuer.clone(),
            Some(issuer) => {
                crate::config::issuer::canonical_issuer(issuer).map_err(|_| PseudonymError::IssuerMismatch)?
            }
        };
        let issuer = if canonical == tenant.issuer { tenant.account_issuer.clone() } else { canonical };
        Ok((keys, issuer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudonymizer() -> Pseudonymizer {
        let config = Config::parse(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
cert_file = "unused"
key_file = "unused"
[pseudonyms]
keyring_file = "unused"
[[tenants]]
id = "school-a"
idp = "oidc"
issuer = "https://idp.school-a.example"
"#,
        )
        .unwrap();
        let mut ring = Keyring::default();
        ring.new_scope("school-a", 0).unwrap();
        Pseudonymizer::new(&config, ring).unwrap()
    }

    fn request<'a>(tenant: &'a str, sectors: &'a [Sector<'a>]) -> SubjectRequest<'a> {
        SubjectRequest { tenant, issuer: None, subject: "pupil-17@school-a.example", sectors, now: 0 }
    }

    #[test]
    fn every_number_answered_has_its_audit_line_and_the_subject_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let audit = AuditSink::file(&file, 0, 0);
        let sectors = [Sector::Primary, Sector::Named("vendor-b")];
        let answers = pseudonymizer().subject_access(&audit, &request("school-a", &sectors)).unwrap();
        assert_eq!(answers.len(), 2, "one key version, two sectors");
        let log = std::fs::read_to_string(&file).unwrap();
        for (_, known) in &answers {
            assert!(log.contains(known.number.as_str()), "{log}");
        }
        assert_eq!(log.lines().filter(|l| l.contains("\"pseudonym_lookup\"")).count(), 2, "{log}");
        assert!(!log.contains("pupil-17"), "the subject is never written: {log}");
    }

    #[test]
    fn a_refused_lookup_writes_its_reason_and_names_no_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let audit = AuditSink::file(&file, 0, 0);
        let typed = "alice@school-a.example";
        let error = pseudonymizer().subject_access(&audit, &request(typed, &[Sector::Primary])).unwrap_err();
        assert_eq!(error.reason(), "unknown_tenant");
        let log = std::fs::read_to_string(&file).unwrap();
        assert!(log.contains("\"failed\"") && log.contains("unknown_tenant"), "{log}");
        assert!(!log.contains(typed), "what was typed as a tenant is not written: {log}");
    }

    #[test]
    fn no_number_is_answered_when_its_audit_line_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: every write fails.
        let audit = AuditSink::file(dir.path(), 0, 0);
        let outcome = pseudonymizer().subject_access(&audit, &request("school-a", &[Sector::Primary]));
        assert!(matches!(outcome, Err(SubjectAccessError::Unaudited(_))), "{outcome:?}");
    }
}
