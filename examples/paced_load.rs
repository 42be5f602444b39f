//! `paced_load`: an open-loop HTTP load generator whose requests arrive spaced in time, for the
//! latency half of `bench/proxy.sh` (BENCHMARKS.md §1).
//!
//! ```sh
//! cargo run --release --example paced_load -- --rate 29000 --ca certs/dev-ca.pem https://127.0.0.1:19443/
//! ```
//!
//! Why its own: the latency target is "p99 added at half of peak load", and at half of peak a
//! load generator's pacing decides the figure. h2load's `--rps` fires every client's timer
//! together at most every 10 ms; oha paces from tokio's 1 ms timer wheel, so at R req/s it sends
//! R/1000 requests at one instant every millisecond. At half of a proxy's peak each such burst
//! is half a millisecond of the proxy's work arriving at once, and the p99 is mostly the wait at
//! the end of the burst, whatever the proxy does. Here one OS thread sleeps to each arrival time
//! (an hrtimer: tens of µs, not 1 ms) and hands the request to the first idle connection.
//! Arrivals are a Poisson process by default (many independent users: gaps drawn from an
//! exponential distribution, clusters included) or evenly spaced (`--arrivals even`).
//!
//! Each request is timed from when it was due, not when a connection got to send it, so a
//! target that falls behind cannot hide its queue (coordinated omission). All connections are
//! open, their TLS handshakes done, before the first arrival; the first `--warm-up` of arrivals
//! is sent but left out of the figures. Results go into an array sized up front, so the
//! generator itself never pauses to grow a list while it measures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nymgate::loadtest::browser::{tls_config, HttpVersion};
use nymgate::loadtest::report::Samples;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

#[derive(Parser)]
#[command(
    about = "Open-loop HTTP load at a fixed rate, requests spaced in time; prints latency percentiles as JSON"
)]
struct Args {
    /// The URL to GET, http:// (HTTP/1.1, or h2c with `--http 2`) or https://.
    url: String,
    /// Requests per second.
    #[arg(long)]
    rate: f64,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Sent at the same rate first and left out of the figures.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warm_up: Duration,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in flight per connection (HTTP/2 streams; HTTP/1.1 is always 1).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    #[arg(long, value_enum, default_value = "1.1")]
    http: HttpVersion,
    #[arg(long, value_enum, default_value = "poisson")]
    arrivals: Arrivals,
    /// Seed of the Poisson gaps, so that runs compare like with like.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The CA that signed the target's certificate (default: the system's roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also write one line per measured request: due offset (s, from `start_unix_s` of the
    /// summary), latency (ms), status (0: failed).
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Arrivals {
    Poisson,
    Even,
}

/// A result slot: latency in ns << 16 | status; `FAILED` when the request got no answer.
const FAILED: u64 = u64::MAX;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// From the last connection open to the first arrival: the pacing thread's start-up.
const LEAD: Duration = Duration::from_millis(20);

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.rate.is_finite()) || args.connections == 0 || args.streams == 0 {
        eprintln!("paced_load: --rate, --connections and --streams must be positive");
        return std::process::ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(summary) => {
            println!("{summary}");
            // Some requests got no answer: the figures stand, but the run is not clean.
            if summary["failed"].as_u64() == Some(0) {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!(
                    "paced_load: {} of {} requests got no answer",
                    summary["failed"], summary["measured"]
                );
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("paced_load: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where to connect and what to send.
struct Target {
    /// Absolute, for HTTP/2's :scheme and :authority.
    uri: Uri,
    /// HTTP/1.1's origin-form request target and Host header, made once for every request.
    path: Uri,
    authority: http::HeaderValue,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    http: HttpVersion,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let uri: Uri = args.url.parse().map_err(|e| format!("{}: {e}", args.url))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must be http:// or https://".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.trim_matches(['[', ']']).to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https { Some(tls_config(args.ca.as_deref(), false, args.http)?.into()) } else { None };
    let path: Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|e| format!("{e}"))?;
    let authority =
        uri.authority().ok_or("the URL has no host")?.as_str().parse().map_err(|e| format!("{e}"))?;
    let target = Arc::new(Target { uri, path, authority, host, port, tls, http: args.http });
    let streams = if args.http == HttpVersion::Http2 { args.streams } else { 1 };

    // Every connection open before the first arrival: handshakes are not what is measured.
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        match connect(&target).await? {
            Sender::H1(h1) => senders.push(Some(Sender::H1(h1))),
            Sender::H2(h2) => senders.extend((0..streams).map(|_| Some(Sender::H2(h2.clone())))),
        }
    }

    let warm_up = (args.rate * args.warm_up.as_secs_f64()).round() as usize;
    let total = warm_up + (args.rate * args.duration.as_secs_f64()).round() as usize;
    let results: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let offsets = schedule(total, args.rate, args.arrivals, args.seed);
    let (queue, jobs) = mpsc::unbounded_channel::<(usize, Instant)>();
    let jobs = Arc::new(Mutex::new(jobs));

    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(work(target.clone(), sender, jobs.clone(), results.clone())))
        .collect();
    let start = Instant::now() + LEAD;
    // The same instant on the wall clock, so that two runs side by side can be lined up.
    let start_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + LEAD;
    let pacer = {
        let offsets = offsets.clone();
        std::thread::spawn(move || pace(start, &offsets, queue))
    };
    let lateness = tokio::task::spawn_blocking(move || pacer.join()).await.map_err(|e| e.to_string())?;
    let lateness = lateness.map_err(|_| "the pacing thread panicked")?;
    for worker in workers {
        worker.await.map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed();

    report(&args, &results, &offsets, warm_up, (start_unix, elapsed), lateness)
}

/// Arrival times from the start, in seconds.
fn schedule(total: usize, rate: f64, arrivals: Arrivals, seed: u64) -> Arc<Vec<f64>> {
    let mut random = SplitMix64(seed);
    let mut at = 0.0;
    let offsets = (0..total)
        .map(|_| {
            at += match arrivals {
                Arrivals::Even => 1.0 / rate,
                // Inverse transform of an exponential gap; 1 - u keeps ln away from 0.
                Arrivals::Poisson => -(1.0 - random.unit()).ln() / rate,
            };
            at
        })
        .collect();
    Arc::new(offsets)
}

/// Sleeps to each arrival and queues it; returns how late, at most, an arrival was queued
/// (a sleep that overran included).
fn pace(start: Instant, offsets: &[f64], queue: mpsc::UnboundedSender<(usize, Instant)>) -> Duration {
    let mut latest = Duration::ZERO;
    for (index, offset) in offsets.iter().enumerate() {
        let due = start + Duration::from_secs_f64(*offset);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        latest = latest.max(Instant::now().saturating_duration_since(due));
        if queue.send((index, due)).is_err() {
            break;
        }
    }
    latest
}

async fn work(
    target: Arc<Target>,
    mut sender: Option<Sender>,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<(usize, Instant)>>>,
    results: Arc<Vec<AtomicU64>>,
) {
    loop {
        let Some((index, due)) = jobs.lock().await.recv().await else { return };
        if sender.is_none() {
            sender = connect(&target).await.ok();
        }
        let status = match sender.as_mut() {
            Some(s) => tokio::time::timeout(REQUEST_TIMEOUT, get(&target, s)).await.ok().flatten(),
            None => None,
        };
        let slot = match status {
            Some(status) => (due.elapsed().as_nanos() as u64) << 16 | u64::from(status),
            None => {
                sender = None;
                FAILED
            }
        };
        results[index].store(slot, Ordering::Relaxed);
    }
}

/// One GET, its body read to the end; the status, or None on any failure.
async fn get(target: &Target, sender: &mut Sender) -> Option<u16> {
    let response = match sender {
        Sender::H1(h1) => {
            h1.ready().await.ok()?;
            let request =
                Request::get(target.path.clone()).header(http::header::HOST, target.authority.clone());
            h1.send_request(request.body(Empty::new()).ok()?).await.ok()?
        }
        Sender::H2(h2) => {
            h2.ready().await.ok()?;
            h2.send_request(Request::get(target.uri.clone()).body(Empty::new()).ok()?).await.ok()?
        }
    };
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

async fn connect(target: &Target) -> Result<Sender, String> {
    let tcp =
        TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    match &target.tls {
        Some(tls) => {
            let name =
                rustls_pki_types::ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
            let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            handshake(TokioIo::new(stream), h2).await
        }
        None => handshake(TokioIo::new(tcp), target.http == HttpVersion::Http2).await,
    }
}

async fn handshake<T>(io: TokioIo<T>, h2: bool) -> Result<Sender, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Sender::H1(sender))
    }
}

fn report(
    args: &Args,
    results: &[AtomicU64],
    offsets: &[f64],
    warm_up: usize,
    (start_unix, elapsed): (Duration, Duration),
    lateness: Duration,
) -> Result<serde_json::Value, String> {
    let measured = &results[warm_up..];
    let mut samples = Samples::default();
    let (mut failed, mut not_2xx) = (0usize, 0usize);
    let mut csv = String::new();
    for (slot, offset) in measured.iter().zip(&offsets[warm_up..]) {
        let slot = slot.load(Ordering::Relaxed);
        let (latency, status) = if slot == FAILED {
            failed += 1;
            (None, 0)
        } else {
            let status = (slot & 0xffff) as u16;
            not_2xx += usize::from(!(200..300).contains(&status));
            let latency = Duration::from_nanos(slot >> 16);
            samples.add(latency);
            (Some(latency), status)
        };
        if args.csv.is_some() {
            let latency_ms = latency.map_or(f64::NAN, |l| l.as_secs_f64() * 1e3);
            let _ = writeln!(csv, "{offset:.6},{latency_ms:.4},{status}");
        }
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // Nearest-rank percentiles of the answered requests, as `nymgate loadtest` reports them.
    let latency = samples.summary();
    let summary = serde_json::json!({
        "url": args.url,
        "http": args.http,
        "arrivals": match args.arrivals { Arrivals::Poisson => "poisson", Arrivals::Even => "even" },
        "rate": args.rate,
        "connections": args.connections,
        "measured": measured.len(),
        "achieved_rps": offsets.len() as f64 / elapsed.as_secs_f64(),
        "failed": failed,
        "not_2xx": not_2xx,
        "answered": latency.count,
        "p50_ms": latency.p50_ms,
        "p90_ms": latency.p90_ms,
        "p99_ms": latency.p99_ms,
        "max_ms": latency.max_ms,
        "pacer_max_late_ms": lateness.as_secs_f64() * 1e3,
        "start_unix_s": start_unix.as_secs_f64(),
    });
    Ok(summary)
}

/// SplitMix64 (Steele, Lea and Flood 2014): enough randomness for arrival gaps, and seeded.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn gaps(arrivals: Arrivals) -> Vec<f64> {
        let offsets = schedule(100_000, 1000.0, arrivals, 7);
        std::iter::once(offsets[0]).chain(offsets.windows(2).map(|w| w[1] - w[0])).collect()
    }

    #[test]
    fn poisson_gaps_are_exponential_with_the_rate_as_mean() {
        let gaps = gaps(Arrivals::Poisson);
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.001).abs() < 0.00002, "mean gap {mean}");
        // An exponential distribution: as many gaps below ln 2 / rate as above it, and about
        // e^-3 = 5% of them longer than three means.
        let below_median = gaps.iter().filter(|g| **g < std::f64::consts::LN_2 / 1000.0).count();
        assert!((49_000..51_000).contains(&below_median), "{below_median} gaps below the median");
        let long = gaps.iter().filter(|g| **g > 0.003).count();
        assert!((4_500..5_500).contains(&long), "{long} gaps over three means");
    }

    #[test]
    fn even_gaps_are_all_one_over_the_rate() {
        assert!(gaps(Arrivals::Even).iter().all(|g| (g - 0.001).abs() < 1e-9));
    }

    /// A run against a minimal HTTP/1.1 server: every due request is sent once and answered,
    /// and the figures cover the measured part only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_is_sent_once_and_measured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut pending = Vec::new();
                    while let Ok(n @ 1..) = socket.read(&mut buffer).await {
                        pending.extend_from_slice(&buffer[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            counter.fetch_add(1, Ordering::Relaxed);
                            let reply = b"HTTP/1.1 204 No Content\r\n\r\n";
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let args = Args::parse_from([
            "paced_load",
            "--rate",
            "2000",
            "--duration",
            "500ms",
            "--warm-up",
            "250ms",
            "--connections",
            "4",
            &format!("http://127.0.0.1:{port}/"),
        ]);
        let summary = run(args).await.unwrap();
        assert_eq!(served.load(Ordering::Relaxed), 1500, "warm-up and measured requests, each once");
        assert_eq!(summary["measured"], 1000);
        assert_eq!(summary["failed"], 0);
        assert_eq!(summary["not_2xx"], 0);
        assert_eq!(summary["answered"], 1000);
        let (p50, p99) = (summary["p50_ms"].as_f64().unwrap(), summary["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "p50 {p50}, p99 {p99}");
    }
}
