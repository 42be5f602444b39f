//! The per-request and per-login cost of issue 25's rules: the guard by class on a typical
//! login, and what every proxied request pays to be decided on its canonical form (path, query
//! names) and, for a form POST, to have its body watched for SAML messages.
//! Run: `cargo bench --bench privacy`. Figures in BENCHMARKS.md §2.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nymgate::form_scan::FormScanner;
use nymgate::pseudonym::guard::Guard;
use nymgate::target::{canonical_path, query_has, SAML_MESSAGES};

/// The identifying values of a typical Entra ID pupil login (benches/pseudonym.rs), and the
/// values that go out: role, school code, municipality code.
const IDENTIFYING: &[&str] = &[
    "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
    "00000000-0000-0000-66f3-3332eca7ea81",
    "alice.andersson@school-a.example",
    "alice.andersson@school-a.example",
    "Alice Andersson",
    "Alice",
    "Andersson",
];
/// A Nordic pupil's name, where folding has work to do.
const IDENTIFYING_NORDIC: &[&str] =
    &["idp-subject-7f3a9c", "åsa.öberg@skola.example", "Åsa Öberg-Ærø", "Åsa", "Öberg-Ærø", "19990101-2389"];
const OUTGOING: &[(&str, &str)] = &[("role", "student"), ("school", "21648755"), ("municipality", "0180")];

/// A form a platform takes many of: a quiz answer with some text (about 2 KiB).
fn typical_form() -> String {
    let answer = "Fotosyntesen omvandlar ljusenergi till kemisk energi. ".repeat(30);
    let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("sesskey", "Xk29fjQ0aB")
        .append_pair("attempt", "4711")
        .append_pair("slot", "3")
        .append_pair("q3:1_answer", &answer)
        .append_pair("next", "Nästa sida");
    form.finish()
}

fn bench(c: &mut Criterion) {
    c.bench_function("guard_typical_login", |b| {
        b.iter(|| {
            let guard = Guard::new(black_box(IDENTIFYING).iter().copied());
            for (claim, value) in OUTGOING {
                guard.check(claim, black_box(value)).unwrap();
            }
        })
    });
    c.bench_function("guard_nordic_login", |b| {
        b.iter(|| {
            let guard = Guard::new(black_box(IDENTIFYING_NORDIC).iter().copied());
            for (claim, value) in OUTGOING {
                guard.check(claim, black_box(value)).unwrap();
            }
        })
    });

    let acs = canonical_path("/saml/acs").unwrap();
    c.bench_function("route_decision_get", |b| {
        b.iter(|| {
            let path = canonical_path(black_box("/course/view.php")).unwrap();
            black_box(path == acs || path.is_under("/nymgate"));
            black_box(query_has(black_box("id=4711&section=2"), SAML_MESSAGES))
        })
    });
    let form = typical_form();
    let mut group = c.benchmark_group("form_post");
    group.throughput(Throughput::Bytes(form.len() as u64));
    group.bench_function("interception_check_per_form_post", |b| {
        b.iter(|| {
            let path = canonical_path(black_box("/mod/quiz/processattempt.php")).unwrap();
            black_box(path == acs || path.is_under("/nymgate"));
            black_box(query_has(black_box("cmid=12"), SAML_MESSAGES));
            let mut scan = FormScanner::for_content_type(Some(b"application/x-www-form-urlencoded")).unwrap();
            scan.feed(black_box(form.as_bytes())).unwrap();
            scan.finish().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
