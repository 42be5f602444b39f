//! The process metrics every Prometheus client library exports, under their standard names
//! (Prometheus "Writing client libraries", "Standard and runtime collectors"), read from
//! `/proc` at each scrape: nothing is sampled between scrapes, and nothing here is a request's.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/[pid]/stat`'s times: USER_HZ, which the kernel fixes at
/// 100 for every architecture's user ABI but Alpha's (proc(5); the Prometheus Go procfs
/// library assumes it too). Reading the real value would take sysconf(3), an unsafe call.
const USER_HZ: f64 = 100.0;

/// What one scrape read; a value `/proc` could not give is left out of the exposition.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessSample {
    /// This process, now.
    pub fn read() -> ProcessSample {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().and_then(stat_fields);
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(boot_time);
        ProcessSample {
            cpu_seconds: fields.as_ref().and_then(|f| Some((field(f, 14)? + field(f, 15)?) as f64 / USER_HZ)),
            resident_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")).map(|kib| kib * 1024),
            virtual_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")).map(|kib| kib * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as i64),
            max_fds: std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(max_open_files),
            start_time_seconds: fields
                .as_ref()
                .and_then(|f| field(f, 22))
                .zip(boot)
                .map(|(ticks, boot)| boot as f64 + ticks as f64 / USER_HZ),
        }
    }
}

/// The fields of `/proc/[pid]/stat` after `comm`, which is in parentheses and may itself hold
/// spaces and parentheses (proc(5)): split after the last `)`. Index 0 is field 3 (`state`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_ascii_whitespace().collect())
}

/// Field `n` of `/proc/[pid]/stat` as proc(5) numbers them (from 1), as an integer.
fn field(fields: &[&str], n: usize) -> Option<u64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

/// A `Name:   123 kB` line of `/proc/[pid]/status`.
fn status_kib(status: &str, name: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The soft limit on open files from `/proc/[pid]/limits` (`unlimited` is left out).
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

/// Registered on a registry without a prefix: these are the standard names.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = ProcessSample::read();
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges: [(&str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes.map(|v| v as f64),
            ),
            ("process_open_fds", "Number of open file descriptors", sample.open_fds.map(|v| v as f64)),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit)",
                sample.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                sample.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_from_proc() {
        let before = ProcessSample::read();
        let files: Vec<_> = (0..64).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
        let during = ProcessSample::read();
        drop(files);
        // Other tests of this binary open and close files meanwhile: a margin for them.
        let opened = during.open_fds.unwrap() - before.open_fds.unwrap();
        assert!((48..=80).contains(&opened), "{before:?} {during:?}");
        assert!(during.resident_bytes.unwrap() > 1 << 20, "{during:?}");
        assert!(during.virtual_bytes.unwrap() >= during.resident_bytes.unwrap(), "{during:?}");
        assert!(during.max_fds.unwrap() >= 64, "{during:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = during.start_time_seconds.unwrap();
        assert!(started <= now + 1.0 && started > now - 24.0 * 3600.0, "{started} vs {now}");
        assert!(during.cpu_seconds.unwrap() >= 0.0);
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 1234 1000 10";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(field(&fields, 3), None, "state is not a number");
        assert_eq!(
            (field(&fields, 14), field(&fields, 15), field(&fields, 22)),
            (Some(250), Some(150), Some(1234))
        );
    }

    #[test]
    fn limits_and_status_lines() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files("Max open files            unlimited            unlimited            files\n"),
            None
        );
        assert_eq!(status_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"), Some(2048));
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000));
    }

    #[test]
    fn the_standard_names_are_written() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name} in {text}");
        }
    }
}
