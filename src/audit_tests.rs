//! The audit sink's unit tests (src/audit.rs).

use super::*;

#[test]
fn rfc3339_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_795_994_100), "2026-11-29T23:15:00Z");
}

#[test]
fn file_sink_appends_private_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let sink = AuditSink::from_path(Some(&path));
    sink.record(&AuditEvent::admin("keys_new", "ok")).unwrap();
    sink.record(&AuditEvent { scope: Some("s"), ..AuditEvent::admin("keys_rotate", "ok") }).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().nth(1).unwrap().contains("\"scope\":\"s\""));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn file_sink_rotates_by_size_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let line_len = serde_json::to_vec(&AuditEvent::admin("keys_new", "ok")).unwrap().len() as u64 + 1;
    // Two lines per file, two rotated files kept.
    let sink = AuditSink::file(&path, 2 * line_len, 2);
    for action in ["a1", "a2", "a3", "a4", "a5", "a6", "a7"] {
        sink.record(&AuditEvent::admin(action, "ok")).unwrap();
    }
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let actions = |text: String| -> Vec<String> {
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(actions(read("audit.log")), ["a7"]);
    assert_eq!(actions(read("audit.log.1")), ["a5", "a6"]);
    assert_eq!(actions(read("audit.log.2")), ["a3", "a4"]);
    assert!(!dir.path().join("audit.log.3").exists(), "only `keep` rotated files");
}

#[test]
fn file_sink_follows_a_rotation_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let sink = AuditSink::from_path(Some(&path));
    sink.record(&AuditEvent::admin("before", "ok")).unwrap();
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    sink.record(&AuditEvent::admin("after", "ok")).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"after\""));
    assert!(!std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap().contains("\"after\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_lines_are_each_written_once_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let sink = Arc::new(AuditSink::from_path(Some(&path)));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move {
                let id = format!("r{i}");
                sink.record_async(&AuditEvent::login("ok", "oidc", "192.0.2.0".into(), &id)).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Every caller got Ok only once its line was written: all 200 are there, each once.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert_eq!(text.lines().count(), 200);
}

#[tokio::test]
async fn an_async_line_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sink = AuditSink::from_path(Some(&dir.path().join("missing/audit.log")));
    let written = sink.record_async(&AuditEvent::admin("keys_new", "ok")).await;
    assert!(written.is_err());
}

/// A file that can't be written makes the sink fail (and say so) until a write succeeds; that
/// write opens with one `audit_sink` line counting the lines the outage kept out.
#[tokio::test]
async fn a_failing_sink_reports_it_and_its_recovery_counts_what_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let sink = AuditSink::from_path(Some(&path));
    sink.record_async(&AuditEvent::admin("before", "ok")).await.unwrap();
    assert!(!sink.is_failing());
    // The file is replaced by a directory: every open fails, whoever runs the test.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(sink.record_async(&AuditEvent::admin("lost1", "ok")).await.is_err());
    assert!(sink.record(&AuditEvent::admin("lost2", "ok")).is_err());
    assert!(sink.is_failing());
    assert!(sink.probe().await.is_err(), "a probe fails while the file can't be written");
    assert!(sink.is_failing());
    std::fs::remove_dir(&path).unwrap();
    sink.probe().await.unwrap();
    assert!(!sink.is_failing(), "the probe's write ended the outage");
    sink.probe().await.unwrap();
    sink.record(&AuditEvent::admin("after", "ok")).unwrap();
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one recovery line, then the next line: {lines:?}");
    assert_eq!(
        (lines[0]["kind"].as_str(), lines[0]["action"].as_str(), lines[0]["count"].as_u64()),
        (Some("audit"), Some("audit_sink"), Some(2))
    );
    assert_eq!(lines[1]["action"], "after");
}

#[test]
fn several_lines_are_written_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let sink = AuditSink::from_path(Some(&path));
    sink.record_all(&[AuditEvent::admin("a", "ok"), AuditEvent::admin("b", "ok")]).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    assert!(!sink.is_failing());
}
