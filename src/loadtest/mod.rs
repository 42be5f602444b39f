//! `nymgate loadtest`: complete logins under load, against a running nymgate (docs/LOADTEST.md).
//!
//! Many virtual browsers (browser.rs), each with its own connections and cookie jar, go
//! through the whole flow (flow.rs): login start, the IdP, the callback or ACS, the platform's
//! token (verified, its account number checked), then ordinary proxied requests. Closed loop
//! (each browser starts its next login when one ends) or open loop (logins arrive at a fixed
//! rate, each timed from when it was due, so a slow target cannot hide its queue).
//!
//! The IdP is `nymgate demo`'s, in its load-test mode (`demo::idp::Directory::LoadTest`):
//! served by this process on `--idp-listen`, it approves every login at once for the person the
//! browser names, so the figure is nymgate's own capacity. `--print-config` prints the two
//! tenants (OIDC and SAML) to add to nymgate's config. It has a room of its own, builtin_idp.rs
//! (issue 30).

pub mod browser;
mod builtin_idp;
pub mod flow;
pub mod html;
pub mod report;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::demo::idp as demo_idp;
use crate::demo::School;
use browser::{Browser, HttpVersion};
pub use builtin_idp::config_snippet;
use builtin_idp::start_idp;
use flow::{Expectation, Output, Target};
use report::{Report, Step, Tally};

/// The built-in IdP's two schools: one tenant each in nymgate's config.
pub const SCHOOLS: &[School] = &[
    School { id: "loadtest-oidc", name: "Load test (OIDC)", code: "LOADTEST", saml: false },
    School { id: "loadtest-saml", name: "Load test (SAML)", code: "LOADTEST", saml: true },
];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// nymgate's public URL, e.g. https://localhost:8443.
    #[arg(long)]
    pub url: String,
    /// The tenant to log in at: `loadtest-oidc` or `loadtest-saml` with the built-in IdP, any
    /// tenant with `--idp external`.
    #[arg(long, default_value = "loadtest-oidc")]
    pub tenant: String,
    /// `builtin`: this process serves the IdP (nymgate's capacity); `external`: the tenant's own
    /// IdP, whose login form the virtual browsers fill in (`--idp-users-file`).
    #[arg(long, default_value = "builtin", value_parser = ["builtin", "external"])]
    pub idp: String,
    /// `--idp external`: the IdP's test people, one `login:password` per line (`#` comments);
    /// logins cycle through them.
    #[arg(long)]
    pub idp_users_file: Option<PathBuf>,
    /// Where this process serves the built-in IdP (nymgate's tenants point here).
    #[arg(long, default_value = "127.0.0.1:9700")]
    pub idp_listen: SocketAddr,
    /// The built-in IdP's keys and client secret, kept across runs (created when missing).
    #[arg(long, default_value = "loadtest-idp")]
    pub idp_dir: PathBuf,
    /// Print the tenants to add to nymgate's config for the built-in IdP, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Measured time (after the warm-up), e.g. 30s or 2m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Stop after this many measured logins instead (whichever comes first).
    #[arg(long)]
    pub logins: Option<u64>,
    /// Virtual browsers at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop: this many logins per second offered, whatever the answers take.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Logins during this time are made but not measured.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub warmup: Duration,
    /// HTTP version toward nymgate.
    #[arg(long, value_enum, default_value = "1.1")]
    pub http: HttpVersion,
    /// Ordinary proxied requests after each login.
    #[arg(long, default_value_t = 3)]
    pub requests: u32,
    /// Platform paths: the first is the page a login returns to; the ordinary requests cycle
    /// through all of them (repeat the option for a mix).
    #[arg(long = "path", default_value = "/")]
    pub paths: Vec<String>,
    /// How the platform receives logins: `assertion` (nymgate's echo platform shows the
    /// assertion header) or `provider` (the load test redeems codes at nymgate's token endpoint).
    #[arg(long, default_value = "assertion", value_parser = ["assertion", "provider"])]
    pub output: String,
    /// The assertion header's name (`login.assertion.header`).
    #[arg(long, default_value = "x-nymgate-assertion")]
    pub assertion_header: String,
    /// Provider output: the platform's client registered in `[[login.clients]]`.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Provider output: a file holding that client's secret (`client_secret` of the client).
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// Provider output: one of that client's registered `redirect_uris`.
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// nymgate's keyring: with it every account number is checked against the one derived for
    /// the person; without it, each person must always get the same number and no two the same.
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// The tenant's pseudonym scope in the keyring (default: the tenant id).
    #[arg(long)]
    pub scope: Option<String>,
    /// CA certificates (PEM) for nymgate's certificate (and an https IdP's), instead of the
    /// system roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate from nymgate (a staging host).
    #[arg(long)]
    pub insecure: bool,
    /// nymgate's admin listener, 127.0.0.1:9090 or http://127.0.0.1:9090 (as `health --admin`):
    /// its resident memory is read from /metrics before and after the run.
    #[arg(long, value_parser = crate::admin_address::parse)]
    pub admin: Option<std::net::SocketAddr>,
    /// Distinct people the logins cycle through.
    #[arg(long, default_value_t = 100_000)]
    pub people: u64,
    /// Per-request timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print the report as JSON (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Account numbers derived here from nymgate's keyring.
struct Derived {
    ring: crate::pseudonym::keyring::Keyring,
    scope: String,
    issuer: String,
}

impl Expectation for Derived {
    fn check(&self, person: u64, account: &str) -> Result<(), &'static str> {
        let key = self.ring.scope(&self.scope).map_err(|_| "no such scope")?.current();
        let subject = demo_idp::load_test_subject(person);
        let given = crate::pseudonym::AccountNumber::parse(account).ok_or("not an account number")?;
        if given.is_primary_for(key, &self.issuer, &subject) {
            Ok(())
        } else {
            Err("wrong account number")
        }
    }
}

/// Without the keyring: each person always gets the same number, and no two people one number.
#[derive(Default)]
struct Consistent {
    by_person: DashMap<u64, String>,
    by_account: DashMap<String, u64>,
}

impl Expectation for Consistent {
    fn check(&self, person: u64, account: &str) -> Result<(), &'static str> {
        let owner = *self.by_account.entry(account.to_owned()).or_insert(person);
        if owner != person {
            return Err("two people got one account number");
        }
        let first = self.by_person.entry(person).or_insert_with(|| account.to_owned()).clone();
        if first != account {
            return Err("account number changed for the same person");
        }
        Ok(())
    }
}

/// Runs the load test and returns its report.
pub async fn run(options: &Options) -> Result<Report, String> {
    // The built-in IdP's school, or the external IdP's test people.
    let (school, external_people) = if options.idp == "external" {
        let file = options.idp_users_file.as_ref().ok_or("--idp external needs --idp-users-file")?;
        if options.keyring.is_some() {
            return Err("--keyring needs the IdP's subjects, which only the built-in IdP knows; \
                        with --idp external each person's account number is checked for consistency"
                .into());
        }
        (None, Some(read_people(file)?))
    } else {
        let school = SCHOOLS
            .iter()
            .find(|s| s.id == options.tenant)
            .ok_or_else(|| format!("--tenant must be one of the built-in IdP's: {}", tenant_names()))?;
        (Some(school), None)
    };
    if options.paths.iter().any(|p| !p.starts_with('/')) {
        return Err("--path must start with /".into());
    }
    if options.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if options.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of logins per second".into());
    }
    let idp = match school {
        Some(_) => Some(start_idp(options).await?),
        None => None,
    };
    let tls = browser::tls_config(options.ca_file.as_deref(), options.insecure, options.http)?;
    let base = options.url.trim_end_matches('/').to_owned();

    // nymgate's signing keys, to verify every token the platform receives.
    let mut setup = Browser::new(tls.clone(), options.timeout);
    let jwks = setup.get(&format!("{base}/nymgate/jwks"), &[]).await.map_err(|f| {
        // Most often nymgate's certificate is from a CA this machine does not trust (a
        // development CA, a private one): say how to trust it (issue 29).
        let hint = match f {
            browser::Failure::Tls if options.ca_file.is_none() && !options.insecure => {
                "; if nymgate's certificate is from a private CA (`nymgate certs dev` writes \
                     certs/dev-ca.pem), pass it with --ca-file FILE (or --insecure for a staging host)"
            }
            browser::Failure::Tls => "; check that --ca-file holds the CA that issued nymgate's certificate",
            _ => "",
        };
        format!("cannot reach {base}: {}{hint}", f.kind())
    })?;
    if !jwks.status.is_success() {
        return Err(format!("{base}/nymgate/jwks answered {}", jwks.status));
    }
    let keys = flow::decoding_keys(&jwks.body)?;

    let output = match options.output.as_str() {
        "provider" => Output::Provider {
            client_id: options.client_id.clone().ok_or("--output provider needs --client-id")?,
            client_secret: std::fs::read_to_string(
                options.client_secret_file.as_ref().ok_or("--output provider needs --client-secret-file")?,
            )
            .map_err(|e| format!("--client-secret-file: {e}"))?
            .trim()
            .to_owned(),
            redirect_uri: options.redirect_uri.clone().ok_or("--output provider needs --redirect-uri")?,
        },
        _ => Output::AssertionHeader { header: options.assertion_header.clone() },
    };
    let expectation: Arc<dyn Expectation> = match &options.keyring {
        Some(path) => {
            let ring = crate::pseudonym::keyring::Keyring::load(path).map_err(|e| e.to_string())?;
            let scope = options.scope.clone().unwrap_or_else(|| options.tenant.clone());
            ring.scope(&scope).map_err(|e| format!("--keyring: {e}"))?;
            let (Some(idp), Some(school)) = (&idp, school) else { unreachable!("refused above") };
            // The account number is made from the issuer's canonical form (config/issuer.rs).
            let issuer = crate::config::issuer::canonical_issuer(&idp.issuer(school))
                .map_err(|e| format!("the demo IdP's issuer {e}"))?;
            Arc::new(Derived { ring, scope, issuer })
        }
        None => Arc::new(Consistent::default()),
    };
    let target = Arc::new(Target {
        base: base.clone(),
        tenant: options.tenant.clone(),
        idp: match &external_people {
            Some(people) => flow::Idp::External { people: people.clone() },
            None => flow::Idp::BuiltIn,
        },
        output,
        paths: options.paths.clone(),
        requests_per_login: options.requests,
        keys,
    });

    let memory_start = match &options.admin {
        Some(admin) => resident_memory(&mut setup, *admin).await,
        None => None,
    };
    let shared = Arc::new(Shared {
        started: Instant::now(),
        warmup: options.warmup,
        end: options.warmup + options.duration,
        max_logins: options.logins,
        measured: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        next_person: AtomicU64::new(0),
        // With an external IdP a person is one of its test people.
        people: external_people.as_ref().map_or(options.people, |p| p.len() as u64).max(1),
        stop: AtomicBool::new(false),
    });
    let tickets = options.rate.map(|rate| schedule(rate, shared.clone()));
    let progress = tokio::spawn(progress(shared.clone(), options.json || !std::io::stderr().is_terminal()));
    let mut workers = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        let browser = Browser::new(tls.clone(), options.timeout);
        workers.push(tokio::spawn(worker(
            browser,
            target.clone(),
            expectation.clone(),
            shared.clone(),
            tickets.clone(),
        )));
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.map_err(|e| format!("a virtual browser failed: {e}"))?);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let measured_for = shared.started.elapsed().saturating_sub(options.warmup).min(options.duration);
    let not_started = match &tickets {
        Some(tickets) => tickets.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
        None => 0,
    };
    let memory_end = match &options.admin {
        Some(admin) => resident_memory(&mut setup, *admin).await,
        None => None,
    };
    let seconds = measured_for.as_secs_f64().max(1e-9);
    let requests = tally.requests;
    Ok(Report {
        target: base,
        tenant: options.tenant.clone(),
        protocol: match school {
            Some(school) if school.saml => "saml",
            Some(_) => "oidc",
            None => "external",
        },
        output: if options.output == "provider" { "provider" } else { "assertion_header" },
        http: options.http,
        mode: if options.rate.is_some() { "open" } else { "closed" },
        rate: options.rate,
        concurrency: options.concurrency,
        warmup_s: options.warmup.as_secs_f64(),
        duration_s: seconds,
        logins: tally.logins,
        failed_logins: tally.failed_logins,
        logins_per_s: tally.logins as f64 / seconds,
        requests_per_s: requests as f64 / seconds,
        not_started,
        latency: tally.steps.into_iter().map(|(step, samples)| (step.name(), samples.summary())).collect(),
        errors: tally.errors,
        resident_memory_start_bytes: memory_start,
        resident_memory_end_bytes: memory_end,
    })
}

/// `login:password` lines; blank lines and `#` comments skipped.
fn read_people(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let people: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{}: every line must be login:password", path.display()))?;
    if people.is_empty() {
        return Err(format!("{}: no people", path.display()));
    }
    Ok(people)
}

fn tenant_names() -> String {
    SCHOOLS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
}

/// What the browsers share.
struct Shared {
    started: Instant,
    warmup: Duration,
    /// Warm-up plus the measured duration.
    end: Duration,
    max_logins: Option<u64>,
    /// Measured logins so far (successful or not).
    measured: AtomicU64,
    failed: AtomicU64,
    next_person: AtomicU64,
    people: u64,
    stop: AtomicBool,
}

impl Shared {
    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.started.elapsed() >= self.end
            || self.max_logins.is_some_and(|max| self.measured.load(Ordering::Relaxed) >= max)
    }
}

/// Open loop: the instants logins are due, queued for the browsers (FIFO).
type Tickets = Arc<Mutex<std::collections::VecDeque<Instant>>>;

fn schedule(rate: f64, shared: Arc<Shared>) -> Tickets {
    let tickets: Tickets = Arc::default();
    let queue = tickets.clone();
    tokio::spawn(async move {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut due = Instant::now();
        while !shared.done() {
            queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(due);
            due += interval;
            tokio::time::sleep_until(due.into()).await;
        }
    });
    tickets
}

async fn worker(
    mut browser: Browser,
    target: Arc<Target>,
    expectation: Arc<dyn Expectation>,
    shared: Arc<Shared>,
    tickets: Option<Tickets>,
) -> Tally {
    let mut tally = Tally::default();
    while !shared.done() {
        // When the login counts from: now (closed loop) or when it was due (open loop).
        let started = match &tickets {
            None => Instant::now(),
            Some(tickets) => {
                let due = tickets.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                match due {
                    Some(due) => due,
                    None => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                }
            }
        };
        let measured = started.duration_since(shared.started) >= shared.warmup;
        if measured {
            // Claim a place among the measured logins first, so that --logins is exact.
            let place = shared.measured.fetch_add(1, Ordering::Relaxed);
            if shared.max_logins.is_some_and(|max| place >= max) {
                break;
            }
        }
        let person = shared.next_person.fetch_add(1, Ordering::Relaxed) % shared.people;
        let result = flow::login(&mut browser, &target, expectation.as_ref(), person).await;
        if !measured {
            continue;
        }
        match result {
            Ok(timed) => {
                tally.logins += 1;
                let mut requests = 0;
                let mut login_end = started.elapsed();
                for (step, elapsed) in timed.steps {
                    if step == Step::Request {
                        requests += 1;
                        login_end = login_end.saturating_sub(elapsed);
                    }
                    tally.steps.entry(step).or_default().add(elapsed);
                }
                tally.steps.entry(Step::Login).or_default().add(login_end);
                // The platform's page is a proxied request too.
                tally.requests +=
                    requests + u64::from(matches!(target.output, Output::AssertionHeader { .. }));
            }
            Err((step, kind)) => {
                tally.failed_logins += 1;
                shared.failed.fetch_add(1, Ordering::Relaxed);
                *tally.errors.entry(format!("{}: {kind}", step.name())).or_default() += 1;
            }
        }
    }
    tally
}

/// A progress line on stderr twice a second (a terminal only).
async fn progress(shared: Arc<Shared>, quiet: bool) {
    if quiet {
        return;
    }
    let total = shared.end.as_secs_f64();
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = shared.started.elapsed().as_secs_f64().min(total);
        let width = 30;
        let filled = ((elapsed / total) * width as f64) as usize;
        let phase = if shared.started.elapsed() < shared.warmup { "warm-up" } else { "measuring" };
        eprint!(
            "\r[{}{}] {:>5.1}/{:.0} s {phase:<9} {} logins, {} failed   ",
            "=".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            elapsed,
            total,
            shared.measured.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
    }
    eprintln!();
}

/// `nymgate_resident_memory_bytes` from nymgate's admin `/metrics`.
async fn resident_memory(browser: &mut Browser, admin: std::net::SocketAddr) -> Option<u64> {
    let reply = browser.get(&format!("http://{admin}/metrics"), &[]).await.ok()?;
    let text = String::from_utf8_lossy(&reply.body);
    text.lines().find_map(|l| l.strip_prefix("nymgate_resident_memory_bytes "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_keyring_account_numbers_must_be_consistent() {
        let check = Consistent::default();
        assert_eq!(check.check(1, "v1-A"), Ok(()));
        assert_eq!(check.check(1, "v1-A"), Ok(()));
        assert_eq!(check.check(1, "v1-B"), Err("account number changed for the same person"));
        assert_eq!(check.check(2, "v1-A"), Err("two people got one account number"));
        assert_eq!(check.check(2, "v1-C"), Ok(()));
    }
}
