//! deploy/ is checked by real tools, each shown to fail on a broken input first: the Kubernetes
//! manifests against the Kubernetes schemas (PyPI kubernetes-validate, strict), the Dockerfile
//! with a linter (npm dockerfilelint), the systemd unit with `systemd-analyze verify`; and the
//! nymgate configs shipped in deploy/ parse with nymgate's own strict reader.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &Path, args: &[&Path]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} is not installed (tests/run.sh installs it): {e}", program.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_validate_against_the_kubernetes_schemas() {
    let validator = root().join("tests/peers/.venv/bin/kubernetes-validate");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n  selectorr: {}\n").unwrap();
    let (ok, text) = run(&validator, &[Path::new("--strict"), &broken]);
    assert!(!ok, "the validator accepted a broken manifest: {text}");

    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 6, "{manifests:?}");
    let mut args: Vec<&Path> = vec![Path::new("--strict")];
    args.extend(manifests.iter().map(PathBuf::as_path));
    let (ok, text) = run(&validator, &args);
    assert!(ok, "{text}");
    for kind in ["deployment", "service", "poddisruptionbudget", "horizontalpodautoscaler", "configmap"] {
        assert!(text.contains(&format!("passed for resource {kind}/")), "{kind} not validated: {text}");
    }
    // Every manifest the kustomization lists exists, and none is left out.
    let kustomization = std::fs::read_to_string(root().join("deploy/k8s/kustomization.yaml")).unwrap();
    for manifest in &manifests {
        let name = manifest.file_name().unwrap().to_str().unwrap();
        assert!(kustomization.contains(&format!("- {name}")), "{name} missing from kustomization.yaml");
    }
}

#[test]
fn dockerfile_passes_the_linter() {
    let linter = root().join("tests/peers/node_modules/.bin/dockerfilelint");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    std::fs::write(&broken, "FROM debian\nRUN apt-get install curl\nEXPOSE eighty\n").unwrap();
    let (ok, text) = run(&linter, &[&broken]);
    assert!(!ok, "the linter passed a broken Dockerfile: {text}");
    let (ok, text) = run(&linter, &[&root().join("deploy/Dockerfile")]);
    assert!(ok, "{text}");
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    for must in ["USER nonroot", "HEALTHCHECK", "FROM gcr.io/distroless/"] {
        assert!(dockerfile.contains(must), "{must}");
    }
}

#[test]
fn systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let analyze = Path::new("systemd-analyze");
    let broken = dir.path().join("broken.service");
    std::fs::write(&broken, "[Service]\nExecStart=/bin/true\nRestart=sometimes\nBogusKey=1\n").unwrap();
    let (_, text) = run(analyze, &[Path::new("verify"), &broken]);
    assert!(
        text.contains("BogusKey") && text.contains("sometimes"),
        "no complaint about a broken unit: {text}"
    );

    // The unit as shipped, with the binary where this build put it (verify checks it exists).
    let unit = std::fs::read_to_string(root().join("deploy/systemd/nymgate.service"))
        .unwrap()
        .replace("/usr/local/bin/nymgate", env!("CARGO_BIN_EXE_nymgate"));
    let path = dir.path().join("nymgate.service");
    std::fs::write(&path, unit).unwrap();
    let (ok, text) = run(analyze, &[Path::new("verify"), &path]);
    assert!(ok && text.trim().is_empty(), "{text}");
}

#[test]
fn the_configs_in_deploy_are_read_by_nymgate() {
    let compose = std::fs::read_to_string(root().join("deploy/compose/nymgate.toml")).unwrap();
    let configmap = std::fs::read_to_string(root().join("deploy/k8s/configmap.yaml")).unwrap();
    // The ConfigMap's nymgate.toml: the block under `nymgate.toml: |`, four spaces in.
    let embedded: String = configmap
        .split("nymgate.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    for (name, text) in [("deploy/compose/nymgate.toml", compose), ("deploy/k8s/configmap.yaml", embedded)] {
        let config = nymgate::config::Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.store.backend, nymgate::config::StoreBackend::Redis, "{name}");
        // The checks that need no files: nothing about the store, the seal or the signing key.
        let problems: Vec<_> = config
            .validate()
            .into_iter()
            .filter(|p| {
                p.field.starts_with("store")
                    || p.field == "login.seal_secret"
                    || p.field == "login.signing.key_file"
            })
            // Files named in it exist only where it is deployed.
            .filter(|p| !p.message.starts_with("cannot read") && !p.field.ends_with(".file"))
            // Nor do the environment variables a secret may name.
            .filter(|p| !p.field.ends_with(".env"))
            .collect();
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
}
