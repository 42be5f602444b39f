//! The `nymgate` command: a thin layer over the library.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nymgate::config::{Config, ConfigError, LogConfig, LogFormat};
use nymgate::server::{self, RunningServer};
use nymgate::{certs, telemetry, tls};

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
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and explain each problem by its field; exit 0 only when valid.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Everything on loopback with no setup: development certificates, nymgate, and the built-in
    /// echo platform that shows what the platform would receive.
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
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA and a localhost certificate (never for production).
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Extra DNS names or IPs for the certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => match Config::load(&config) {
            Ok(config) => {
                telemetry::init(&config.log);
                serve(config)
            }
            Err(error) => {
                eprintln!("nymgate: {error}");
                ExitCode::from(2)
            }
        },
        Command::Demo { dir, port, admin_port } => demo(dir, port, admin_port),
        Command::Certs { command: CertsCommand::Dev { out, names } } => {
            match certs::generate_dev_certs(&out, &names) {
                Ok(files) => {
                    println!(
                        "wrote {}, {} and {}",
                        files.ca_cert.display(),
                        files.cert.display(),
                        files.key.display()
                    );
                    println!(
                        "trust {} in your client to reach nymgate on localhost",
                        files.ca_cert.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("nymgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

fn serve(config: Config) -> ExitCode {
    runtime().block_on(async move {
        match RunningServer::start(config).await {
            Ok(server) => {
                if server::run_until_signalled(server).await {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot start");
                eprintln!("nymgate: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            tls::install_crypto_provider();
            if let Err(error) = tls::load_certified_key(&config.server.cert_file, &config.server.key_file) {
                println!("{}: 1 problem:\n  - server.cert_file: {error}", path.display());
                return ExitCode::FAILURE;
            }
            if let Some(upstream) = &config.upstream {
                if let Err(error) = tls::upstream_roots(upstream.ca_file.as_deref()) {
                    println!("{}: 1 problem:\n  - upstream.ca_file: {error}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid { path, problems }) => {
            println!("{}: {} problem(s):", path.display(), problems.len());
            for problem in problems {
                println!("  - {problem}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn demo(dir: Option<PathBuf>, port: u16, admin_port: u16) -> ExitCode {
    telemetry::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    let (dir, temporary) = match dir {
        Some(dir) => (dir, false),
        None => (std::env::temp_dir().join(format!("nymgate-demo-{}", std::process::id())), true),
    };
    let files = match certs::generate_dev_certs(&dir.join("certs"), &[]) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("nymgate demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config_text = format!(
        "# Written by `nymgate demo`.\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\ncert_file = \"certs/{}\"\nkey_file = \"certs/{}\"\n\n[log]\nformat = \"pretty\"\n",
        certs::CERT_FILE,
        certs::KEY_FILE
    );
    let config_path = dir.join("nymgate.toml");
    if let Err(error) = certs::write(&config_path, config_text.as_bytes(), 0o644) {
        eprintln!("nymgate demo: {error}");
        return ExitCode::FAILURE;
    }
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("nymgate demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime().block_on(async move {
        let server = match RunningServer::start(config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("nymgate demo: {error}\n(another program may use the port: try --port and --admin-port)");
                return ExitCode::FAILURE;
            }
        };
        let ca = files.ca_cert.display();
        println!(
            "\nnymgate demo is running (Ctrl-C stops it).\n\n  Open   https://localhost:{port}/  (your browser will warn: the CA is a fresh development CA)\n  or     curl --cacert {ca} https://localhost:{port}/hello -H 'X-Forwarded-For: 6.6.6.6' -H 'X-Forwarded-Email: alice@school.example'\n\n  No platform is configured, so the built-in echo platform answers with what the platform\n  would receive: the client IP reduced to its /24, the forged forwarding and identity headers\n  gone, nymgate's own X-Forwarded-* and Forwarded headers in their place.\n\n  Metrics: http://127.0.0.1:{admin_port}/metrics   Config: {}\n",
            config_path.display()
        );
        server::run_until_signalled(server).await;
        ExitCode::SUCCESS
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}
