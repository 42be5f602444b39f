//! `nymgate certs`: certificates nymgate needs before it can start. `certs dev` writes a
//! development CA and a localhost certificate (never for production); `certs saml` writes the
//! SAML SP signing certificate and key that nymgate's SP metadata publishes (docs/SAML.md).
//! Exit 1 when a file can't be written, or (saml) when the key exists: the IdPs trust it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nymgate::certs;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Write a development CA and a localhost certificate (never for production).
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Extra DNS names or IPs for the certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Write the SAML SP signing certificate and RSA key that nymgate's SP metadata publishes
    /// (`login.saml.cert_file` and `key_file`). Self-signed and long-lived, as SAML expects.
    Saml {
        /// Output folder: saml-sp.pem and saml-sp-key.pem (mode 0600).
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// The SP entity id, for the certificate's name.
        #[arg(long)]
        entity_id: String,
    },
}

pub fn run(command: CertsCommand) -> ExitCode {
    match command {
        CertsCommand::Dev { out, names } => dev(&out, &names),
        CertsCommand::Saml { out, entity_id } => saml(&out, &entity_id),
    }
}

fn dev(out: &std::path::Path, names: &[String]) -> ExitCode {
    match certs::generate_dev_certs(out, names) {
        Ok(files) => {
            println!(
                "wrote {}, {} and {}",
                files.ca_cert.display(),
                files.cert.display(),
                files.key.display()
            );
            println!("trust {} in your client to reach nymgate on localhost", files.ca_cert.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nymgate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn saml(out: &std::path::Path, entity_id: &str) -> ExitCode {
    let (cert_path, key_path) = (out.join("saml-sp.pem"), out.join("saml-sp-key.pem"));
    if key_path.exists() {
        eprintln!("nymgate: {} exists; the IdPs trust that key, so it is not replaced", key_path.display());
        return ExitCode::FAILURE;
    }
    let written = certs::generate_saml_signing_cert(entity_id).and_then(|(cert, key)| {
        std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        certs::write(&cert_path, cert.as_bytes(), 0o644)?;
        certs::write(&key_path, key.as_bytes(), 0o600)
    });
    match written {
        Ok(()) => {
            println!("wrote {} and {}", cert_path.display(), key_path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nymgate: {error}");
            ExitCode::FAILURE
        }
    }
}
