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
    for kind in [
        "deployment",
        "service",
        "poddisruptionbudget",
        "horizontalpodautoscaler",
        "configmap",
        "networkpolicy",
    ] {
        assert!(text.contains(&format!("passed for resource {kind}/")), "{kind} not validated: {text}");
    }
    // Every manifest the kustomization lists exists, and none is left out.
    let kustomization = std::fs::read_to_string(root().join("deploy/k8s/kustomization.yaml")).unwrap();
    for manifest in &manifests {
        let name = manifest.file_name().unwrap().to_str().unwrap();
        assert!(kustomization.contains(&format!("- {name}")), "{name} missing from kustomization.yaml");
    }
}

/// Every document of the YAML files, as JSON, read by PyYAML (the validator's own reader).
fn yaml_documents(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let python = root().join("tests/peers/.venv/bin/python");
    let script = "import json, sys, yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]))";
    let mut args: Vec<&Path> = vec![Path::new("-c"), Path::new(script)];
    args.extend(files.iter().map(PathBuf::as_path));
    let (ok, text) = run(&python, &args);
    assert!(ok, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Why `docs` would let anyone but the scraper and the ops namespace reach nymgate's admin
/// listener, if they would: the pods must not share the node's network or publish the port on
/// it, the Service must not carry it, and a NetworkPolicy selecting the pods must admit it only
/// from selected namespaces.
fn admin_exposure(docs: &[serde_json::Value]) -> Result<(), String> {
    use serde_json::Value;
    fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + Clone {
        docs.iter().filter(move |d| d["kind"] == kind)
    }
    let nymgate = |selector: &Value| selector["matchLabels"]["app.kubernetes.io/name"] == "nymgate";
    let is_admin =
        |port: &Value| port["port"] == "admin" || port["port"] == 9090 || port["targetPort"] == "admin";
    for deployment in of_kind(docs, "Deployment").filter(|d| nymgate(&d["spec"]["selector"])) {
        let pod = &deployment["spec"]["template"]["spec"];
        if pod["hostNetwork"] == true {
            return Err("the pods share the node's network".into());
        }
        let mut ports = pod["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten());
        if ports.any(|p| !p["hostPort"].is_null()) {
            return Err("a port is published on the node (hostPort)".into());
        }
    }
    for service in
        of_kind(docs, "Service").filter(|s| s["spec"]["selector"]["app.kubernetes.io/name"] == "nymgate")
    {
        if service["spec"]["ports"].as_array().into_iter().flatten().any(is_admin) {
            return Err(format!("Service {} carries the admin port", service["metadata"]["name"]));
        }
    }
    let policies: Vec<&Value> = of_kind(docs, "NetworkPolicy")
        .filter(|p| nymgate(&p["spec"]["podSelector"]))
        .filter(|p| p["spec"]["policyTypes"].as_array().is_some_and(|t| t.iter().any(|t| t == "Ingress")))
        .collect();
    if policies.is_empty() {
        return Err("no NetworkPolicy isolates nymgate's pods for ingress".into());
    }
    for rule in policies.iter().flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten()) {
        // A rule without ports admits every port; one without `from` admits every source.
        let ports = rule["ports"].as_array();
        if !ports.is_none_or(|ports| ports.iter().any(is_admin)) {
            continue;
        }
        let peers = rule["from"]
            .as_array()
            .filter(|from| !from.is_empty())
            .ok_or("the admin port is open to every source")?;
        for peer in peers {
            if peer["namespaceSelector"]["matchLabels"].as_object().is_none_or(|labels| labels.is_empty()) {
                return Err(format!("the admin port is open to {peer}: name the namespace"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_admin_listener_is_reachable_only_from_the_scraper_and_ops() {
    let files: Vec<PathBuf> = ["deployment.yaml", "service.yaml", "networkpolicy.yaml"]
        .iter()
        .map(|name| root().join("deploy/k8s").join(name))
        .collect();
    let docs = yaml_documents(&files);
    assert_eq!(admin_exposure(&docs), Ok(()));
    // The check fails on what it guards against: the policy gone, opened to every source, or
    // to every namespace; the port on the node.
    let without: Vec<_> = docs.iter().filter(|d| d["kind"] != "NetworkPolicy").cloned().collect();
    assert!(admin_exposure(&without).is_err());
    let opened = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut docs = docs.clone();
        for doc in
            docs.iter_mut().filter(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == "nymgate")
        {
            for rule in doc["spec"]["ingress"].as_array_mut().unwrap() {
                if rule["from"].is_array() {
                    edit(rule);
                }
            }
        }
        admin_exposure(&docs)
    };
    assert!(opened(&|rule| rule["from"] = serde_json::json!([])).is_err());
    assert!(opened(&|rule| rule["from"] = serde_json::json!([{"namespaceSelector": {}}])).is_err());
    assert!(opened(&|rule| rule["from"] = serde_json::json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}])).is_err());
    let mut on_node = docs.clone();
    for doc in on_node.iter_mut().filter(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "nymgate")
    {
        doc["spec"]["template"]["spec"]["containers"][0]["ports"][1]["hostPort"] = serde_json::json!(9090);
    }
    assert!(admin_exposure(&on_node).is_err());
    let policy = std::fs::read_to_string(root().join("deploy/k8s/networkpolicy.yaml")).unwrap();
    assert!(policy.contains("kubernetes.io/metadata.name: monitoring"), "{policy}");
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

/// `cargo fetch --locked --offline --target <this host>` in `dir`: it reads the manifest and every
/// target it declares (a missing bench or example fails it), without compiling anything.
/// Offline, because the test must not depend on the network; for this host's target only,
/// because a clean machine has downloaded only the crates this host builds (the suite's own build
/// fetched them before this test runs); crates behind other targets' `cfg`s (`valuable` behind
/// tracing's `cfg(tracing_unstable)`, the Windows crates) are in the lock file but not on disk.
fn manifest_loads(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO"))
        .args(["fetch", "--locked", "--offline", "--target", &host_triple()])
        .current_dir(dir)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The target triple rustc builds for here, from `rustc -vV`.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc).arg("-vV").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let host = text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names its host");
    host.trim().to_owned()
}

/// The image's two builds: the first from the manifests and deploy/stub-sources.sh alone (the
/// dependency layer), the second from what the Dockerfile copies of the sources. Each must give
/// cargo a manifest whose every target exists; the second once lacked `examples/`, which the
/// manifest declares, so the image could not build at all.
#[test]
fn the_images_dependency_layer_and_source_layer_each_load_the_manifest() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let copies: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .collect();
    let stub = dockerfile.find("stub-sources \\").expect("the dependency layer runs stub-sources");
    let sources = dockerfile.find("COPY src ").expect("the sources are copied");
    assert!(stub < sources, "the dependency layer must come before the sources");
    // The dependency layer: manifests and the stub script only.
    let deps = tempfile::tempdir().unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root().join(file), deps.path().join(file)).unwrap();
    }
    let ran = Command::new("sh")
        .arg(root().join("deploy/stub-sources.sh"))
        .current_dir(deps.path())
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let (ok, said) = manifest_loads(deps.path());
    assert!(ok, "the dependency layer's manifest does not load: {said}");
    // The source layer: every folder the Dockerfile copies from the repository.
    let full = tempfile::tempdir().unwrap();
    for copy in &copies {
        // `COPY a b ./`: every word but the last is a source.
        let words: Vec<&str> = copy.split_whitespace().collect();
        for from in &words[..words.len() - 1] {
            let source = root().join(from);
            if source.is_dir() {
                let out =
                    Command::new("cp").arg("-r").arg(&source).arg(full.path().join(from)).status().unwrap();
                assert!(out.success());
            } else if from.starts_with("Cargo.") {
                std::fs::copy(&source, full.path().join(from)).unwrap();
            }
        }
    }
    let (ok, said) = manifest_loads(full.path());
    assert!(ok, "the sources the Dockerfile copies do not make a loadable manifest: {said}");
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

/// Whether the kernel lets `process` read `file`: the owner's bits for its owner, the group's
/// for a member, others' for the rest (root reads anything). nymgate's own rule
/// (`file_access::judge`) is on top of this: a secret file must pass both.
fn kernel_lets_read(file: FileOwnership, process: &ProcessIds) -> bool {
    process.uid == 0
        || if file.uid == process.uid {
            file.mode & 0o400 != 0
        } else if process.groups.contains(&file.gid) {
            file.mode & 0o040 != 0
        } else {
            file.mode & 0o004 != 0
        }
}

use nymgate::config::file_access::{judge, FileOwnership, ProcessIds};

/// The files each Secret volume of the nymgate Deployment mounts, as the kubelet makes them:
/// root-owned, with `defaultMode` (0644 when unset) or the item's `mode`; with `fsGroup`, the
/// pod's fsGroup as group and the group's read bit added, secret volumes being read-only
/// (kubernetes/kubernetes#57923, pkg/volume/volume_linux.go SetVolumeOwnership). Returns the
/// process's ids (runAsUser; runAsGroup, fsGroup and supplementalGroups) and each file.
fn kubernetes_secret_files(deployment: &serde_json::Value) -> (ProcessIds, Vec<(String, FileOwnership)>) {
    let pod = &deployment["spec"]["template"]["spec"];
    let context = &pod["securityContext"];
    let id = |v: &serde_json::Value| v.as_u64().map(|n| n as u32);
    let fs_group = id(&context["fsGroup"]);
    let mut groups: Vec<u32> = [id(&context["runAsGroup"]), fs_group].into_iter().flatten().collect();
    groups.extend(context["supplementalGroups"].as_array().into_iter().flatten().filter_map(id));
    let process = ProcessIds { uid: id(&context["runAsUser"]).unwrap_or(0), groups };
    let mut files = Vec::new();
    for volume in pod["volumes"].as_array().unwrap() {
        let secret = &volume["secret"];
        if secret.is_null() {
            continue;
        }
        let default_mode = id(&secret["defaultMode"]).unwrap_or(0o644);
        let items: Vec<(String, u32)> = match secret["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|i| (i["path"].as_str().unwrap().to_owned(), id(&i["mode"]).unwrap_or(default_mode)))
                .collect(),
            None => vec![("*".to_owned(), default_mode)],
        };
        for (path, mode) in items {
            let (mode, gid) = match fs_group {
                Some(group) => (mode | 0o440, group),
                None => (mode, 0),
            };
            files.push((
                format!("{}/{path}", volume["name"].as_str().unwrap()),
                FileOwnership { mode, uid: 0, gid },
            ));
        }
    }
    (process, files)
}

fn secret_files_unread(process: &ProcessIds, files: &[(String, FileOwnership)]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, file)| !(kernel_lets_read(*file, process) && judge(*file, process).is_ok()))
        .map(|(name, file)| format!("{name} {:o} {}:{}", file.mode, file.uid, file.gid))
        .collect()
}

/// Issue 29: the Secret files Kubernetes mounts and those the systemd unit's install steps make
/// are files nymgate reads, with the modes and owners those platforms give them.
#[test]
fn the_secret_files_kubernetes_and_systemd_make_are_read_by_nymgate() {
    let docs = yaml_documents(&[root().join("deploy/k8s/deployment.yaml")]);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let (process, files) = kubernetes_secret_files(deployment);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|(_, f)| f.mode == 0o440 && f.uid == 0 && f.gid == 65532), "{files:?}");
    assert_eq!(secret_files_unread(&process, &files), Vec::<String>::new());
    // The check fails on the traps: no fsGroup (root's alone, unreadable), a mode others may
    // read, a group that may write.
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut d = deployment.clone();
        edit(&mut d["spec"]["template"]["spec"]);
        let (process, files) = kubernetes_secret_files(&d);
        secret_files_unread(&process, &files)
    };
    let pod_context = |key: &'static str| {
        move |pod: &mut serde_json::Value| {
            pod["securityContext"].as_object_mut().unwrap().remove(key);
        }
    };
    assert_eq!(edited(&pod_context("fsGroup")).len(), 3);
    assert_eq!(edited(&|pod| pod["volumes"][1]["secret"]["defaultMode"] = 0o444.into()).len(), 1);
    assert_eq!(edited(&|pod| pod["volumes"][1]["secret"]["defaultMode"] = 0o660.into()).len(), 1);

    // systemd: `User=`/`Group=` of the unit, and every `install -m MODE -o OWNER -g GROUP FILE
    // DEST` of its header (nymgate = uid and gid 998 here; any ids other than root's do).
    let unit = std::fs::read_to_string(root().join("deploy/systemd/nymgate.service")).unwrap();
    assert!(unit.contains("\nUser=nymgate\n") && unit.contains("\nGroup=nymgate\n"), "{unit}");
    let id = |name: &str| match name {
        "root" => 0,
        "nymgate" => 998,
        other => panic!("unknown user or group {other}"),
    };
    let process = ProcessIds { uid: 998, groups: vec![998] };
    let mut files = Vec::new();
    for line in unit.lines().filter_map(|l| l.strip_prefix("#   install -m ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 7 || words[1] != "-o" || words[3] != "-g" {
            continue; // the binary's own line
        }
        let mode = u32::from_str_radix(words[0], 8).unwrap();
        files.push((words[6].to_owned(), FileOwnership { mode, uid: id(words[2]), gid: id(words[4]) }));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in
        ["/etc/nymgate/tls/privkey.pem", "/etc/nymgate/seal.secret", "/var/lib/nymgate/keyring.toml"]
    {
        assert!(names.contains(&wanted), "{wanted} not installed: {names:?}");
    }
    assert_eq!(secret_files_unread(&process, &files), Vec::<String>::new());
    // The old steps' traps: a root-owned 0600 file is unreadable, a root:root 0640 one refused.
    let trap = |mode, gid| vec![("f".to_owned(), FileOwnership { mode, uid: 0, gid })];
    assert_eq!(secret_files_unread(&process, &trap(0o600, 998)).len(), 1);
    assert_eq!(secret_files_unread(&process, &trap(0o640, 0)).len(), 1);
    // The config's keyring path is where the unit installs it.
    let example = std::fs::read_to_string(root().join("deploy/nymgate.example.toml")).unwrap();
    assert!(example.contains("keyring_file = \"/var/lib/nymgate/keyring.toml\""));
    assert!(unit.contains("\nStateDirectory=nymgate\n"));
}

/// A reload by editing the ConfigMap must arrive: the kubelet updates a ConfigMap or Secret
/// volume in place, but never a `subPath` mount of one; and the file serve reads is in the
/// ConfigMap's folder.
#[test]
fn the_configmap_reaches_nymgate_when_edited() {
    let docs = yaml_documents(&[root().join("deploy/k8s/deployment.yaml")]);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().all(|m| m["subPath"].is_null()), "{mounts:?}");
    let config_dir = mounts.iter().find(|m| m["name"] == "config").unwrap()["mountPath"].as_str().unwrap();
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, ["serve", "--config", &format!("{config_dir}/nymgate.toml")]);
}
