//! Who may read a file that holds a secret (a TLS or signing key, the keyring, a seal secret, a
//! token), decided once from the file's mode, owner and group and the process's own ids.
//!
//! Owner-only files (0600, 0400) are always taken, as before. A file its group may read
//! (0640, 0440) is taken too, but only where that group is the process's own: that is how the
//! platforms nymgate runs on hand it secrets.
//! - Kubernetes mounts a Secret volume's files owned by root, with the pod's `fsGroup` as their
//!   group and the group's read bit added to `defaultMode` (0400 becomes 0440;
//!   kubernetes/kubernetes#57923). The container runs as a non-root user in that group, so an
//!   owner-only rule would refuse every Secret, and without the group bit the file can't be read.
//! - On a VM, ops install secrets root-owned, mode 0640, group `nymgate`, so that only root
//!   changes them and only the service reads them (deploy/systemd/nymgate.service).
//!
//! Still refused, as ssh refuses a key anyone else may use: any access for others, a group that
//! may write (or execute), a group the process is not in (then anyone in that group reads the
//! secret), and a group-readable file owned by a user other than root or the process itself (that
//! user could replace the secret without being nymgate).

use std::path::Path;

/// A file's permission bits and owner, as `stat` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwnership {
    /// The permission bits (`st_mode & 0o777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The ids the kernel checks a file read against: the effective user, and the effective group
/// with the supplementary ones (Kubernetes adds `fsGroup` to the latter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIds {
    pub uid: u32,
    pub groups: Vec<u32>,
}

impl ProcessIds {
    /// This process's ids. `getgroups` failing (it does not on Linux with a buffer of the size
    /// it reports) leaves the effective group only: a narrower set, so never a wider verdict.
    pub fn current() -> ProcessIds {
        let mut groups = vec![rustix::process::getegid().as_raw()];
        if let Ok(more) = rustix::process::getgroups() {
            groups.extend(more.into_iter().map(|g| g.as_raw()));
        }
        ProcessIds { uid: rustix::process::geteuid().as_raw(), groups }
    }
}

/// Why a secret file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Others have some access (read, write or execute).
    OthersHaveAccess,
    /// The group may write or execute it, not only read it.
    GroupMayWrite,
    /// The group may read it, and the process is not in that group.
    GroupNotOurs,
    /// The group may read it, and its owner is neither root nor the process's user.
    OwnerNotOurs,
}

/// The decision: `Ok` when only the owner, or only the owner and the process's own group, may
/// use the file.
pub fn judge(file: FileOwnership, process: &ProcessIds) -> Result<(), Refusal> {
    let mode = file.mode & 0o777;
    if mode & 0o007 != 0 {
        return Err(Refusal::OthersHaveAccess);
    }
    match mode & 0o070 {
        0 => Ok(()),
        0o040 if !process.groups.contains(&file.gid) => Err(Refusal::GroupNotOurs),
        0o040 if file.uid != 0 && file.uid != process.uid => Err(Refusal::OwnerNotOurs),
        0o040 => Ok(()),
        _ => Err(Refusal::GroupMayWrite),
    }
}

/// A file that holds a secret must be the owner's alone, or its owner's and the process's own
/// group's to read ([`judge`]). Errors name the file, its mode and ids, and the fix.
pub fn check_private_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = FileOwnership { mode: meta.mode() & 0o777, uid: meta.uid(), gid: meta.gid() };
    let process = ProcessIds::current();
    let shown = path.display();
    let mode = file.mode;
    judge(file, &process).map_err(|refusal| match refusal {
        Refusal::OthersHaveAccess => format!(
            "{shown} has mode {mode:03o}: a secret must not be readable by others; run `chmod 600 {shown}` \
             (or `chmod 640` with the group nymgate runs as)"
        ),
        Refusal::GroupMayWrite => format!(
            "{shown} has mode {mode:03o}: its group may change it; a secret's group may only read it: \
             run `chmod 600 {shown}` (or `chmod 640`)"
        ),
        Refusal::GroupNotOurs => format!(
            "{shown} has mode {mode:03o} and group {}, which nymgate (uid {}, groups {:?}) is not in: \
             anyone in that group reads the secret; run `chmod 600 {shown}`, or `chgrp` it to nymgate's group \
             (Kubernetes: the pod's fsGroup)",
            file.gid, process.uid, process.groups
        ),
        Refusal::OwnerNotOurs => format!(
            "{shown} has mode {mode:03o} and owner uid {}, neither root nor nymgate (uid {}): that user \
             could replace the secret; `chown` it to root or nymgate, or run `chmod 600 {shown}`",
            file.uid, process.uid
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ids of deploy/k8s/deployment.yaml's pod (runAsUser/runAsGroup/fsGroup 65532).
    fn pod() -> ProcessIds {
        ProcessIds { uid: 65532, groups: vec![65532, 65532] }
    }

    fn file(mode: u32, uid: u32, gid: u32) -> FileOwnership {
        FileOwnership { mode, uid, gid }
    }

    #[test]
    fn secret_file_modes_as_platforms_mount_them() {
        use Refusal::*;
        let vm = ProcessIds { uid: 998, groups: vec![998] };
        let cases: &[(&str, FileOwnership, &ProcessIds, Result<(), Refusal>)] = &[
            // Kubernetes, fsGroup set, defaultMode 0400 or 0440: root-owned 0440, group fsGroup.
            ("k8s fsGroup secret", file(0o440, 0, 65532), &pod(), Ok(())),
            ("k8s fsGroup with defaultMode 0640", file(0o640, 0, 65532), &pod(), Ok(())),
            // Kubernetes without fsGroup: root-owned 0400 (the kernel refuses the read, not us).
            ("k8s no fsGroup", file(0o400, 0, 0), &pod(), Ok(())),
            ("k8s defaultMode 0444", file(0o444, 0, 65532), &pod(), Err(OthersHaveAccess)),
            ("k8s defaultMode 0660", file(0o660, 0, 65532), &pod(), Err(GroupMayWrite)),
            ("fsGroup other than the pod's groups", file(0o440, 0, 1000), &pod(), Err(GroupNotOurs)),
            // systemd: root:nymgate 0640, or nymgate's own 0600.
            ("vm root:nymgate 0640", file(0o640, 0, 998), &vm, Ok(())),
            ("vm nymgate 0600", file(0o600, 998, 998), &vm, Ok(())),
            ("vm root:root 0640", file(0o640, 0, 0), &vm, Err(GroupNotOurs)),
            ("vm root:nymgate 0644", file(0o644, 0, 998), &vm, Err(OthersHaveAccess)),
            ("vm others may write", file(0o602, 998, 998), &vm, Err(OthersHaveAccess)),
            ("vm group may execute", file(0o650, 0, 998), &vm, Err(GroupMayWrite)),
            ("vm another user's 0640", file(0o640, 1001, 998), &vm, Err(OwnerNotOurs)),
            // A supplementary group counts as the process's own.
            (
                "supplementary group",
                file(0o440, 0, 5),
                &ProcessIds { uid: 998, groups: vec![998, 5] },
                Ok(()),
            ),
        ];
        for (name, file, process, expected) in cases {
            assert_eq!(judge(*file, process), *expected, "{name}");
        }
    }

    proptest! {
        /// Over every mode, owner and group: accepted exactly when others have no bit, and the
        /// group has none, or only read while being one of the process's groups with the owner
        /// root or the process.
        #[test]
        fn secret_file_verdict_is_owner_only_or_own_group_read(
            mode in 0u32..0o10000,
            uid in prop::sample::select(vec![0u32, 998, 1001]),
            gid in prop::sample::select(vec![0u32, 5, 998, 1001]),
            groups in prop::collection::vec(prop::sample::select(vec![0u32, 5, 998]), 1..4),
        ) {
            let process = ProcessIds { uid: 998, groups: groups.clone() };
            let accepted = judge(file(mode, uid, gid), &process).is_ok();
            let bits = mode & 0o777;
            let owner_only = bits & 0o077 == 0;
            let own_group_read = bits & 0o077 == 0o040 && groups.contains(&gid) && (uid == 0 || uid == 998);
            prop_assert_eq!(accepted, owner_only || own_group_read);
            // Never accepted with any bit for others, whoever owns it.
            if bits & 0o007 != 0 { prop_assert!(!accepted); }
        }
    }

    #[test]
    fn a_file_with_this_process_own_group_and_mode_0440_is_taken() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"x").unwrap();
        // Created by this process: its owner and (in a plain directory) its effective group.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        assert_eq!(check_private_file(&path), Ok(()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(check_private_file(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_private_file(&path).unwrap_err().contains("readable by others"));
    }
}
