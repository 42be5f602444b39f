//! `nymgate demo`: everything on loopback with no setup (development certificates, a demo school
//! IdP with made-up people, nymgate, and the built-in echo platform that shows what it
//! receives); or, with `--idp-only`, only the demo school IdP for a nymgate deployed elsewhere
//! (deploy/compose). Runs until SIGTERM or Ctrl-C; exit 1 when it can't start.

use std::path::PathBuf;
use std::process::ExitCode;

use nymgate::config::{LogConfig, LogFormat};
use nymgate::{server, telemetry};

/// `nymgate demo --idp-only`: the demo school IdP until SIGTERM or Ctrl-C.
pub fn idp_only(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    idp_url: &str,
    public_url: &str,
) -> ExitCode {
    telemetry::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    super::runtime().block_on(async {
        if let Err(error) = nymgate::demo::start_idp_only(dir, listen, idp_url, public_url).await {
            eprintln!("nymgate demo --idp-only: {error}");
            return ExitCode::FAILURE;
        }
        println!(
            "demo school IdP at {idp_url} (listening on {listen}); nymgate's files and tenants.toml are in {}",
            dir.display()
        );
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        ExitCode::SUCCESS
    })
}

pub fn run(dir: Option<PathBuf>, port: u16, admin_port: u16) -> ExitCode {
    telemetry::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    let (dir, temporary) = match dir {
        Some(dir) => (dir, false),
        None => (std::env::temp_dir().join(format!("nymgate-demo-{}", std::process::id())), true),
    };
    let code = super::runtime().block_on(async {
        let demo = match nymgate::demo::start(&dir, nymgate::demo::Ports { public: port, admin: admin_port }).await {
            Ok(demo) => demo,
            Err(error) => {
                eprintln!("nymgate demo: {error}");
                return ExitCode::FAILURE;
            }
        };
        let people: Vec<String> = nymgate::demo::USERS
            .iter()
            .map(|u| {
                let school = nymgate::demo::SCHOOLS.iter().find(|s| s.id == u.school);
                let name = school.map_or("", |s| s.name);
                let protocol = if school.is_some_and(|s| s.saml) { ", SAML" } else { "" };
                format!("{} ({}, {name}{protocol})", u.login, u.role.to_lowercase())
            })
            .collect();
        println!(
            "\nnymgate demo is running (Ctrl-C stops it).\n\n  Open   {url}\n         (your browser will warn: the certificate is from a fresh development CA,\n          {ca})\n\n  1. Choose a school (search works), and sign in at the demo school IdP as\n     {people}; the password is \"{password}\".\n  2. You land on the platform (nymgate's built-in echo platform): it shows what it\n     received, an account number and a role, and none of the name, email or\n     personal identity number the school's IdP sent.\n  3. \"What the platform receives about you\" lists what was kept and what was removed.\n\n  Metrics: http://127.0.0.1:{admin}/metrics   Audit log and config: {folder}\n",
            url = demo.url,
            ca = demo.ca_file.display(),
            people = people.join(", "),
            password = nymgate::demo::PASSWORD,
            admin = demo.admin_port,
            folder = dir.display(),
        );
        server::run_until_signalled(demo.server).await;
        ExitCode::SUCCESS
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}
