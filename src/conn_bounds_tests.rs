use super::*;
use http_body_util::BodyExt;

fn body_of(text: &'static str) -> Body {
    crate::body::full(text)
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
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let data = receiver.recv().await?;
        Some((Ok::<_, BoxError>(Frame::data(data)), receiver))
    });
    let mut body = watch.watch(http_body_util::StreamBody::new(frames).boxed_unsync());
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
