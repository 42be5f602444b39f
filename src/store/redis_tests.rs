//! The Redis client against a scripted hostile Redis on loopback (hostile_redis.rs), one test
//! per way a broken server can misframe its answers (issue 27).

use std::time::{Duration, Instant};

use super::*;
use crate::store::hostile_redis::{fenced, Answer, HostileRedis};
use crate::store::resp::{RespError, MAX_BULK, MAX_DEPTH};

const SET_NX: &[&[u8]] = &[b"SET", b"nymgate:k", b"1", b"NX", b"PX", b"60000"];
const GENEROUS: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_well_framed_reply_is_read_and_the_connection_reused() {
    let redis = HostileRedis::start(|call| Answer::Bytes(fenced(b"+OK\r\n", call))).await;
    let client = redis.client(4, GENEROUS);
    for _ in 0..3 {
        assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    }
    assert_eq!(redis.accepted(), 1, "one connection carries every command");
    // An error reply is the command's answer; the connection stays in frame and is reused.
    let refusing = HostileRedis::start(|call| Answer::Bytes(fenced(b"-NOPERM no\r\n", call))).await;
    let client = refusing.client(4, GENEROUS);
    for _ in 0..2 {
        assert!(matches!(client.run(SET_NX).await, Err(RedisError::Refused(m)) if m == "NOPERM"));
    }
    assert_eq!(refusing.accepted(), 1);
}

#[tokio::test]
async fn redis_that_answers_twice_never_answers_the_next_command() {
    // Each call: "already claimed" on the first connection, "claimed" on every other one, so
    // a stale answer read by the next command would show as Nil.
    let nil_then_ok = |call: &crate::store::hostile_redis::Call| {
        if call.conn == 0 {
            b"$-1\r\n".to_vec()
        } else {
            b"+OK\r\n".to_vec()
        }
    };

    // Twice at once: the second answer arrives with the first; the command fails closed.
    let redis = HostileRedis::start(move |call| {
        let once = fenced(&nil_then_ok(call), call);
        if call.conn == 0 {
            Answer::Bytes([once.clone(), once].concat())
        } else {
            Answer::Bytes(once)
        }
    })
    .await;
    let client = redis.client(4, GENEROUS);
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Unframed(_))));
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    assert_eq!(redis.accepted(), 2, "the connection with the extra answer is not reused");

    // Twice, the second late, while the connection is idle in the pool: the next command
    // leaves that connection and gets its own answer on a fresh one.
    let redis = HostileRedis::start(move |call| {
        let once = fenced(&nil_then_ok(call), call);
        if call.conn == 0 {
            Answer::Late(once.clone(), Duration::from_millis(20), once)
        } else {
            Answer::Bytes(once)
        }
    })
    .await;
    let client = redis.client(4, GENEROUS);
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Nil);
    // Wait until the late answer has reached this side (it is already sent after 20 ms).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()), "a stale reply answered");
    assert_eq!(redis.accepted(), 2);

    // The stale answer lands just ahead of the real one, after the idle check could see it:
    // the command's reply moves into the fence's place, so it is refused, never read as Nil.
    let redis = HostileRedis::start(|call| {
        if call.index == 0 {
            Answer::Bytes(fenced(b"+OK\r\n", call))
        } else {
            Answer::Bytes([b"$-1\r\n".to_vec(), fenced(b"+OK\r\n", call)].concat())
        }
    })
    .await;
    let client = redis.client(1, GENEROUS);
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Unframed(_))));

    // An old fence in place of this command's is not this command's answer either.
    let redis = HostileRedis::start(|call| {
        let stale = crate::store::hostile_redis::encode(&Reply::Bulk(b"nymgate-fence-0".to_vec()));
        if call.index == 0 {
            Answer::Bytes(fenced(b"+OK\r\n", call))
        } else {
            Answer::Bytes([&b"+OK\r\n"[..], &stale].concat())
        }
    })
    .await;
    let client = redis.client(1, GENEROUS);
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Unframed(_))));
}

#[tokio::test]
async fn redis_reply_nesting_without_end_fails_closed() {
    // Arrays opened inside each other, never closed, as fast as the socket takes them.
    let redis = HostileRedis::start(|_| Answer::Forever(b"*1\r\n".repeat(64))).await;
    let client = redis.client(4, GENEROUS);
    let started = Instant::now();
    // The depth bound ends it, not the deadline (which would be `Timeout`).
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Protocol(RespError::TooLarge))));
    assert!(started.elapsed() < GENEROUS);
    // Exactly at the bound and closed, the same reply is read: the bound is the depth.
    let nested = (0..MAX_DEPTH).fold(Reply::Integer(1), |inner, _| Reply::Array(vec![inner]));
    let bytes = crate::store::hostile_redis::encode(&nested);
    let redis = HostileRedis::start(move |call| Answer::Bytes(fenced(&bytes, call))).await;
    assert_eq!(redis.client(4, GENEROUS).run(SET_NX).await.unwrap(), nested);
}

#[tokio::test]
async fn redis_huge_bulk_length_fails_closed() {
    // A declared length beyond the bound, its bytes flooding after it: refused on the length.
    let redis = HostileRedis::start(|call| {
        if call.conn == 0 {
            Answer::Forever([format!("${}\r\n", MAX_BULK + 1).into_bytes(), vec![b'x'; 65536]].concat())
        } else {
            Answer::Bytes(fenced(b"+OK\r\n", call))
        }
    })
    .await;
    let client = redis.client(4, GENEROUS);
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Protocol(RespError::TooLarge))));
    // The store recovers on a fresh connection; the broken one was dropped.
    assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    assert_eq!(redis.accepted(), 2);
    let until = Instant::now() + GENEROUS;
    while redis.closed() < 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(redis.closed(), 1, "the connection that flooded is closed");

    // Lengths each within bounds, adding up beyond the reply's: refused as well.
    let bulk = crate::store::hostile_redis::encode(&Reply::Bulk(vec![b'x'; MAX_BULK]));
    let redis =
        HostileRedis::start(move |_| Answer::Forever([b"*1000\r\n".to_vec(), bulk.repeat(16)].concat()))
            .await;
    assert!(matches!(
        redis.client(4, GENEROUS).run(SET_NX).await,
        Err(RedisError::Protocol(RespError::TooLarge))
    ));
}

#[tokio::test]
async fn redis_dripping_reply_fails_within_the_store_timeout() {
    // A reply that would be whole after 4 s, a byte every 40 ms; the store timeout is 300 ms.
    let timeout = Duration::from_millis(300);
    let redis = HostileRedis::start(|call| {
        let reply = crate::store::hostile_redis::encode(&Reply::Bulk(vec![b'x'; 80]));
        Answer::Drip(fenced(&reply, call), Duration::from_millis(40))
    })
    .await;
    // One connection: the second command waits behind the first, and its wait counts.
    let client = std::sync::Arc::new(redis.client(1, timeout));
    let started = Instant::now();
    let second = tokio::spawn({
        let client = client.clone();
        async move { client.run(SET_NX).await }
    });
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Timeout)));
    assert!(matches!(second.await.unwrap(), Err(RedisError::Timeout)));
    assert!(started.elapsed() < GENEROUS, "ended by the deadline, not by the reply");
    // The connection dropped with the command: the server sees it closed.
    let until = Instant::now() + GENEROUS;
    while redis.closed() < redis.accepted() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(redis.closed(), redis.accepted(), "a timed-out connection is not kept");
}

#[tokio::test]
async fn a_server_that_closes_after_its_reply_answers_and_is_not_pooled() {
    let redis = HostileRedis::start(|call| Answer::ThenClose(fenced(b"+OK\r\n", call))).await;
    let client = redis.client(4, GENEROUS);
    for _ in 0..2 {
        assert_eq!(client.run(SET_NX).await.unwrap(), Reply::Simple("OK".into()));
    }
    assert_eq!(redis.accepted(), 2, "a closed connection is never used again");
    // A reply cut short by the close is no reply.
    let redis = HostileRedis::start(|_| Answer::ThenClose(b"+O".to_vec())).await;
    assert!(matches!(redis.client(4, GENEROUS).run(SET_NX).await, Err(RedisError::Closed)));
}

#[tokio::test]
async fn connection_setup_replies_must_be_ok() {
    // AUTH answered with anything but +OK (here a nil in frame) is not a logged-in connection.
    let redis = HostileRedis::start(|call| Answer::Bytes(fenced(b"$-1\r\n", call))).await;
    let target = RedisTarget {
        host: "127.0.0.1".into(),
        port: redis.port,
        db: 3,
        tls: None,
        username: Some("nymgate".into()),
        password: Some(crate::secret::Secret::new(b"pw".to_vec())),
    };
    let client = RedisClient::new(target, 1, GENEROUS);
    assert!(matches!(client.run(SET_NX).await, Err(RedisError::Unexpected("AUTH"))));
    assert_eq!(redis.calls()[0].command[0], b"AUTH");
}

#[tokio::test]
async fn redis_error_text_never_reaches_a_log_only_its_code() {
    for (text, code) in [
        (&b"-ERR pupil alice@example.org not found\r\n"[..], "ERR"),
        (b"-alice@example.org\r\n", "UNKNOWN"),
        (b"-\x1b[31mWRONG\r\n", "UNKNOWN"),
        (b"-\r\n", "UNKNOWN"),
    ] {
        let text = text.to_vec();
        let redis = HostileRedis::start(move |call| Answer::Bytes(fenced(&text, call))).await;
        let error = redis.client(1, GENEROUS).run(SET_NX).await.unwrap_err();
        assert!(matches!(&error, RedisError::Refused(m) if m == code), "{error:?}");
        assert!(!error.to_string().contains("alice"), "{error}");
    }
}
