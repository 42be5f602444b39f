//! The `nymgate` command: parses the command line and hands each command to its module under
//! src/cli/ (one module per command, each saying what the command is for). The commands reach
//! the library only through its public API.

#![forbid(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nymgate",
    version,
    about = "A pseudonymizing SSO gateway: a TLS reverse proxy that hands the platform only pseudonymous logins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a config file. SIGHUP reloads the certificate; SIGTERM drains and stops.
    Serve {
        /// The config file (deploy/nymgate.example.toml lists every field).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and explain each problem by its field; exit 0 only when valid.
    Check {
        /// The config file to check, as `serve` would read it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Everything on loopback with no setup: development certificates, a demo school IdP with
    /// made-up people, nymgate, and the built-in echo platform that shows what it receives.
    Demo {
        /// Folder for the demo's certificates and config (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// HTTPS port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (/healthz, /readyz, /metrics).
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
        /// Serve only the demo school IdP, for a nymgate deployed elsewhere (deploy/compose):
        /// write the demo's keys and secrets into --dir, then serve on --idp-listen.
        #[arg(long, requires = "dir")]
        idp_only: bool,
        /// --idp-only: where the IdP listens.
        #[arg(long, default_value = "0.0.0.0:9443")]
        idp_listen: std::net::SocketAddr,
        /// --idp-only: the IdP's address as browsers and nymgate both reach it.
        #[arg(long, default_value = "https://idp.localhost:9443")]
        idp_url: String,
        /// --idp-only: nymgate's public URL (where the IdP sends browsers back).
        #[arg(long, default_value = "https://localhost:8443")]
        public_url: String,
    },
    /// Complete logins under load against a running nymgate, with a built-in IdP that is never
    /// the bottleneck (docs/LOADTEST.md). Exit status 2 when any login failed.
    Loadtest(Box<nymgate::loadtest::Options>),
    /// Ask a running nymgate's admin listener whether it lives (`/healthz`) or is ready
    /// (`/readyz`): exit 0 on 200, 1 otherwise. For container health checks, where the image
    /// has no shell or curl.
    Health {
        /// The admin listener's address: HOST:PORT or http://HOST:PORT, as `loadtest --admin`.
        #[arg(long, default_value = "127.0.0.1:9090", value_parser = nymgate::admin_address::parse)]
        admin: std::net::SocketAddr,
        /// Ask `/readyz` instead of `/healthz`.
        #[arg(long)]
        ready: bool,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: cli::certs::CertsCommand,
    },
    /// Manage the pseudonym keyring: one random 256-bit key per scope and version.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
    /// The retention store: data-subject actions and offboarding.
    Retention {
        /// nymgate's config file: its `[retention]` store, tenants and audit log.
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: cli::retention::RetentionCommand,
    },
    /// Print the account number a known person has in a tenant, for a data-subject request
    /// (access, erasure). Writes an audit line without the subject.
    Pseudonym {
        /// nymgate's config file: its tenants, keyring and audit log.
        #[arg(long, short)]
        config: PathBuf,
        /// The tenant id (`[[tenants]] id`) the person signs in at.
        #[arg(long)]
        tenant: String,
        /// The IdP's stable subject (`sub`, Entra `oid`, SAML NameID or attribute). `-` reads it
        /// from standard input, keeping it out of the shell history and the process list.
        #[arg(long)]
        subject: String,
        /// The issuer part of the input (OIDC `iss`, SAML entity id, Entra directory id);
        /// default: the tenant's configured `issuer`.
        #[arg(long)]
        issuer: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => cli::serve::run(&config),
        Command::Check { config } => cli::check::run(&config),
        Command::Demo { dir, idp_only: true, idp_listen, idp_url, public_url, .. } => {
            cli::demo::idp_only(&dir.unwrap_or_default(), idp_listen, &idp_url, &public_url)
        }
        Command::Demo { dir, port, admin_port, .. } => cli::demo::run(dir, port, admin_port),
        Command::Loadtest(options) => cli::loadtest::run(&options),
        Command::Health { admin, ready } => cli::health::run(admin, ready),
        Command::Certs { command } => cli::certs::run(command),
        Command::Keys { command } => cli::keys::run(command),
        Command::Retention { config, command } => cli::retention::run(&config, command),
        Command::Pseudonym { config, tenant, subject, issuer } => {
            cli::pseudonym::run(&config, &tenant, &subject, issuer.as_deref())
        }
    }
}
