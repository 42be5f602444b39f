//! `[audit]`: the audit log of login attempts and admin actions (audit.rs).

use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON lines appended to this file (mode 0600); without it, to standard error.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// To standard output instead (a container's log collector), whatever `file` says.
    #[serde(default)]
    pub stdout: bool,
    /// Rotate the file past this size (0: never); it becomes FILE.1, FILE.1 becomes FILE.2, ….
    #[serde(default = "audit_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "audit_keep")]
    pub keep: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { file: None, stdout: false, max_bytes: audit_max_bytes(), keep: audit_keep() }
    }
}

fn audit_max_bytes() -> u64 {
    defaults::AUDIT_MAX_BYTES
}

fn audit_keep() -> u32 {
    defaults::AUDIT_KEEP
}
