//! Which text format `/metrics` answers in, and the Prometheus text 0.0.4 form of the
//! OpenMetrics text that [`crate::metrics::Metrics::render`] writes.
//!
//! prometheus_client writes OpenMetrics 1.0: a counter family is typed under its name without
//! `_total` (`# TYPE nymgate_requests counter`, then `nymgate_requests_total` samples), an info
//! family is typed `info`, and the text ends with `# EOF`. A Prometheus text 0.0.4 reader
//! (Prometheus' exposition formats, "Text format details") matches samples to `# TYPE` by the
//! full name, so it would read every such counter as a second, untyped family. So the scraper
//! says which it reads (`Accept`), and a 0.0.4 reader gets the same families written in 0.0.4:
//! one rendering, translated, never two sources that could drift.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

/// The media type of the OpenMetrics text (OpenMetrics 1.0 §3.1, "Protocol Negotiation").
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The media type of Prometheus text 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// Media ranges read from one Accept header at most; past them the rest is ignored (a scraper
/// names three to five).
const MAX_MEDIA_RANGES: usize = 32;

/// The format an `Accept` header asks for (RFC 9110 §12.5.1): OpenMetrics when
/// `application/openmetrics-text` (version 1.0.0, or none named) has a higher weight than
/// anything that takes 0.0.4 text (`text/plain` of version 0.0.4 or none, `text/*`, `*/*`);
/// on a tie, whichever is listed first. Prometheus text 0.0.4 otherwise, the format every
/// Prometheus-compatible scraper reads, and so also for a header that takes neither.
pub fn negotiate(accept: Option<&[u8]>) -> Format {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return Format::PrometheusText;
    };
    // (weight in thousandths, position): the best offer of each format.
    let mut best: [Option<(u16, usize)>; 2] = [None, None];
    for (position, range) in accept.split(',').take(MAX_MEDIA_RANGES).enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut version = None;
        let mut weight = 1000u16;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "version" => version = Some(value.to_owned()),
                "q" => weight = parse_weight(value).unwrap_or(0),
                _ => {}
            }
        }
        let format = match (media.as_str(), version.as_deref()) {
            ("application/openmetrics-text", None | Some("1.0.0")) => 0,
            ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => 1,
            _ => continue,
        };
        if weight > 0 && best[format].is_none_or(|(w, _)| weight > w) {
            best[format] = Some((weight, position));
        }
    }
    match best {
        [Some((om, om_at)), Some((text, text_at))] if om > text || (om == text && om_at < text_at) => {
            Format::OpenMetrics
        }
        [Some(_), None] => Format::OpenMetrics,
        _ => Format::PrometheusText,
    }
}

/// A qvalue (RFC 9110 §12.4.2): `0` to `1` with at most three decimals, in thousandths.
fn parse_weight(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(1000),
        _ => None,
    }
}

/// The Prometheus text 0.0.4 form of OpenMetrics text as prometheus_client writes it: the same
/// families, samples and values. A counter's `# HELP` and `# TYPE` name its `_total` samples,
/// an info family becomes a gauge named `…_info`, `unknown` is `untyped`; `# UNIT`, `# EOF`
/// and `_created` samples (no 0.0.4 equivalent) are left out.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family whose `# HELP` was read and whose `# TYPE` (which follows it) is not yet.
    let mut help: Option<(&str, &str)> = None;
    // The family being written, and its OpenMetrics type.
    let mut family: (&str, &str) = ("", "");
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (sample_name, kind_004) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            // prometheus_client writes HELP text as given, unescaped; nymgate's have no `\\`,
            // `"` or line feed, the characters either format would escape.
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str(&format!("# HELP {sample_name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {sample_name} {kind_004}\n"));
            family = (name, kind);
        } else if line.starts_with('#') {
            // `# UNIT` and `# EOF`: OpenMetrics only. Any other comment is not written by
            // prometheus_client, and 0.0.4 readers skip comments anyway.
        } else if !line.is_empty() {
            let (name, kind) = family;
            let sample = line.split(['{', ' ']).next().unwrap_or("");
            if kind == "counter" && sample == format!("{name}_created") {
                continue;
            }
            // An exemplar (` # {…} …` after the value) is OpenMetrics only.
            out.push_str(without_exemplar(line));
            out.push('\n');
            continue;
        }
    }
    out
}

/// A metric family declared (`# HELP`, `# TYPE`) before its first series: prometheus_client
/// leaves out a family with no series at all, so a scrape before the first event would not
/// show that the metric exists (OpenMetrics 1.0 allows a MetricFamily with no Metric).
#[derive(Debug)]
pub struct Declared<M>(pub M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// A sample line up to its value (and timestamp): an exemplar's ` # ` is looked for after the
/// label set only, whose quoted values may hold ` # ` themselves.
fn without_exemplar(line: &str) -> &str {
    let mut after_labels = 0;
    if let Some(open) = line.find('{').filter(|open| !line[..*open].contains(' ')) {
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in line[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    after_labels = open + i;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[after_labels..].find(" # ") {
        Some(at) => &line[..after_labels + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prometheus_accept_header_gets_openmetrics() {
        // What Prometheus 2.x and 3.x send (scrape_protocols' defaults).
        let prometheus2 = b"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prometheus3 = b"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus2)), Format::OpenMetrics);
        assert_eq!(negotiate(Some(prometheus3)), Format::OpenMetrics);
        assert_eq!(negotiate(Some(b"application/openmetrics-text")), Format::OpenMetrics);
    }

    #[test]
    fn anything_but_openmetrics_gets_prometheus_text() {
        for accept in [
            &b"text/plain"[..],
            b"text/plain;version=0.0.4",
            b"*/*",
            b"application/json",
            b"application/openmetrics-text;version=0.0.1",
            b"application/openmetrics-text;q=0",
            b"text/plain, application/openmetrics-text",
            b"application/openmetrics-text;q=0.5, text/plain",
            b"\xff",
        ] {
            assert_eq!(
                negotiate(Some(accept)),
                Format::PrometheusText,
                "{}",
                String::from_utf8_lossy(accept)
            );
        }
        assert_eq!(negotiate(None), Format::PrometheusText);
    }

    #[test]
    fn qvalues_outside_the_grammar_weigh_nothing() {
        for (q, weight) in [("1", Some(1000)), ("1.000", Some(1000)), ("0.5", Some(500)), ("0.05", Some(50))]
        {
            assert_eq!(parse_weight(q), weight, "{q}");
        }
        for q in ["2", "1.5", "0.0001", "-1", "", "0.a", "1e0"] {
            assert_eq!(parse_weight(q), None, "{q}");
        }
    }

    #[test]
    fn counters_and_info_are_typed_under_their_sample_names() {
        let om = "# HELP nymgate_requests Requests answered.\n# TYPE nymgate_requests counter\nnymgate_requests_total{route=\"proxy\"} 1\nnymgate_requests_created 1.0\n# HELP nymgate_build The build.\n# TYPE nymgate_build info\nnymgate_build_info{version=\"1\"} 1\n# HELP x_seconds A time.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\nx_seconds_sum 0.0\nx_seconds_count 0\nx_seconds_bucket{le=\"+Inf\"} 0\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP nymgate_requests_total Requests answered.\n# TYPE nymgate_requests_total counter\nnymgate_requests_total{route=\"proxy\"} 1\n# HELP nymgate_build_info The build.\n# TYPE nymgate_build_info gauge\nnymgate_build_info{version=\"1\"} 1\n# HELP x_seconds A time.\n# TYPE x_seconds histogram\nx_seconds_sum 0.0\nx_seconds_count 0\nx_seconds_bucket{le=\"+Inf\"} 0\n"
        );
    }

    #[test]
    fn an_exemplar_is_left_out_and_a_label_value_with_a_hash_kept() {
        let om = "# TYPE c counter\nc_total{a=\"x # y\"} 1 # {trace=\"1\"} 1.0\n# EOF\n";
        assert_eq!(to_prometheus_text(om), "# TYPE c_total counter\nc_total{a=\"x # y\"} 1\n");
    }

    proptest! {
        /// Whatever families a registry holds, every sample of the 0.0.4 text belongs to the
        /// `# TYPE` before it under 0.0.4's naming rules, so a 0.0.4 reader types every one.
        #[test]
        fn every_sample_is_read_under_its_family_type(
            families in proptest::collection::vec(("[a-z]{1,8}", 0u8..4, proptest::collection::vec("[a-z0-9 #]{0,6}", 0..3)), 1..6)
        ) {
            use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info};
            let mut registry = prometheus_client::registry::Registry::with_prefix("p");
            let mut seen = std::collections::HashSet::new();
            for (i, (name, kind, values)) in families.iter().enumerate() {
                let name = format!("{name}{i}");
                if !seen.insert(name.clone()) { continue; }
                match kind {
                    0 => {
                        let f = Family::<Vec<(String, String)>, Counter>::default();
                        for v in values { f.get_or_create(&vec![("l".to_owned(), v.clone())]).inc(); }
                        registry.register(&name, "help # x", f);
                    }
                    1 => {
                        let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
                        g.set(values.len() as i64);
                        registry.register(&name, "h", g);
                    }
                    2 => {
                        let h = Histogram::new([0.5, 1.0].into_iter());
                        h.observe(values.len() as f64);
                        registry.register(&name, "h", h);
                    }
                    _ => registry.register(&name, "h", Info::new(vec![("v".to_owned(), values.concat())])),
                }
            }
            let mut om = String::new();
            prometheus_client::encoding::text::encode(&mut om, &registry).unwrap();
            let text = to_prometheus_text(&om);
            let mut typed: Option<(String, String)> = None;
            for line in text.lines() {
                prop_assert!(!line.starts_with("# EOF") && !line.starts_with("# UNIT"), "{}", line);
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let (name, kind) = rest.split_once(' ').unwrap();
                    prop_assert!(["counter", "gauge", "histogram", "untyped"].contains(&kind), "{}", line);
                    typed = Some((name.to_owned(), kind.to_owned()));
                } else if !line.starts_with('#') {
                    let (name, kind) = typed.clone().expect("a sample after its # TYPE");
                    let sample = line.split(['{', ' ']).next().unwrap();
                    let ok = match kind.as_str() {
                        "histogram" => [&*format!("{name}_bucket"), &format!("{name}_sum"), &format!("{name}_count")].contains(&sample),
                        _ => sample == name,
                    };
                    prop_assert!(ok, "{} under {} {}", line, name, kind);
                }
            }
        }
    }
}
