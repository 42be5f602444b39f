use super::*;
use http_body_util::BodyExt;

fn body_of(text: &'static str) -> Body {
    crate::body::full(text)
}

/// A body whose frames come when the test sends them, as a platform's would.
fn platform_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let data = receiver.recv().await?;
        Some((Ok::<_, BoxError>(Frame::data(data)), receiver))
    });
    (sender, http_body_util::StreamBody::new(frames).boxed_unsync())
}

#[tokio::test]
async fn a_response_nobody_reads_is_taken_away_after_the_send_timeout() {
    let watch = ResponseWatch::default();
    let body = watch.watch(body_of("hello"));
    assert_eq!(watch.in_flight(), 1);
    // Not yet past the deadline: kept.
    assert_eq!(watch.abandon_stalled(Duration::from_secs(60)), 0);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(watch.abandon_stalled(Duration::from_millis(20)), 1);
    // hyper's next poll gets an error, which ends the stream or the connection.
    let frame = body.collect().await;
    assert!(frame.is_err(), "an abandoned body must fail, not end cleanly");
}

#[tokio::test]
async fn a_response_waiting_on_the_platform_is_not_the_clients_stall() {
    let watch = ResponseWatch::default();
    let (sender, platform) = platform_body();
    let mut body = watch.watch(platform);
    // hyper asks; the platform has nothing yet.
    let polled = futures_util::FutureExt::now_or_never(body.frame());
    assert!(polled.is_none());
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(watch.abandon_stalled(Duration::from_millis(20)), 0, "the platform is slow, not the client");
    sender.send(Bytes::from_static(b"x")).await.unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "x");
    // Now a frame was taken; nobody asks for the next one while the client does not read.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(watch.abandon_stalled(Duration::from_millis(20)), 1);
}

#[tokio::test]
async fn finished_bodies_leave_the_watch() {
    let watch = ResponseWatch::default();
    let body = watch.watch(body_of("done"));
    let _ = body.collect().await.unwrap();
    assert_eq!(watch.in_flight(), 0);
    let guard = watch.request_started();
    assert!(watch.awaiting_head());
    drop(guard);
    assert!(!watch.awaiting_head());
}

#[tokio::test]
async fn under_pressure_the_response_unread_longest_gives_its_platform_connection_back() {
    let registry = StallRegistry::default();
    let (a, b) = (ResponseWatch::new(Some(registry.clone())), ResponseWatch::new(Some(registry.clone())));
    let unread_longest = a.watch(body_of("first"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let unread = b.watch(body_of("second"));
    // A response that waits on its platform is never taken: its client is not the one stalling.
    let (_sender, platform) = platform_body();
    let mut waiting = b.watch(platform);
    assert!(futures_util::FutureExt::now_or_never(waiting.frame()).is_none());
    // Not yet unread for long enough.
    assert!(!registry.reclaim_one(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(registry.reclaim_one(Duration::from_millis(10)));
    assert!(unread_longest.collect().await.is_err(), "the oldest unread response goes first");
    assert!(registry.reclaim_one(Duration::from_millis(10)));
    assert!(unread.collect().await.is_err());
    assert!(
        !registry.reclaim_one(Duration::from_millis(10)),
        "only the response waiting on its platform is left"
    );
}

#[tokio::test]
async fn platform_bytes_nobody_asks_for_count_as_the_clients_stall() {
    let watch = ResponseWatch::default();
    let (sender, platform) = platform_body();
    let mut body = watch.watch(platform);
    // hyper asked once and found nothing: waiting on the platform.
    assert!(futures_util::FutureExt::now_or_never(body.frame()).is_none());
    // The platform's bytes arrive; hyper, blocked on a client that does not read, never asks again.
    sender.send(Bytes::from_static(b"x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        watch.abandon_stalled(Duration::from_millis(20)),
        1,
        "a ready body nobody took is the client's stall"
    );
}
