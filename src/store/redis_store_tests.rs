//! What the store's callers see when Redis misframes (issue 27): fail closed is always
//! [`StoreError::Unavailable`], which login/mod.rs turns into a refused login step (503,
//! `store_unavailable`) and /token into 503 `temporarily_unavailable`; never "not blocked",
//! never "first use" (`Ok(true)` from a claim).

use std::time::Duration;

use proptest::prelude::*;

use super::hostile_redis::{fenced, Answer, Call, HostileRedis};
use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn store_answering(answer: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> (Store, HostileRedis) {
    let redis = HostileRedis::start(answer).await;
    (Store::redis(redis.client(2, TIMEOUT), "nymgate:".into()), redis)
}

type Scripted = fn(&Call) -> Answer;

/// Answers that are not what any command may use: extra, misplaced, too deep, of the wrong type.
fn hostile_answers() -> Vec<(&'static str, Scripted)> {
    vec![
        ("twice", |c| Answer::Bytes([fenced(b"+OK\r\n", c), fenced(b"+OK\r\n", c)].concat())),
        ("stale ahead", |c| Answer::Bytes([b":0\r\n".to_vec(), fenced(b":0\r\n", c)].concat())),
        ("no fence", |_| Answer::Bytes(b"+OK\r\n:0\r\n".to_vec())),
        ("endless nesting", |_| Answer::Forever(b"*1\r\n".to_vec())),
        ("huge bulk", |_| Answer::Forever(b"$99999999\r\nxxxxxxxx".to_vec())),
        ("wrong type", |c| Answer::Bytes(fenced(b"*1\r\n:0\r\n", c))),
        ("garbage", |_| Answer::Bytes(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())),
    ]
}

#[tokio::test]
async fn misframed_answers_refuse_the_login_step_never_pass_it() {
    for (name, answer) in hostile_answers() {
        let (store, _redis) = store_answering(answer).await;
        assert_eq!(
            store.claim(Space::State, "s", 100, 1).await,
            Err(StoreError::Unavailable),
            "{name}: claim"
        );
        assert_eq!(store.blocked_for("client").await, Err(StoreError::Unavailable), "{name}: blocked_for");
        assert_eq!(
            store.count_failure("client", "t", 3, 60, 60).await,
            Err(StoreError::Unavailable),
            "{name}"
        );
        assert!(!store.is_up(), "{name}: reported down");
        assert!(!store.probe().await, "{name}: probe");
    }
}

#[tokio::test]
async fn well_framed_answers_keep_their_meaning() {
    let (store, _redis) = store_answering(|c| {
        let reply: &[u8] = match c.command[0].as_slice() {
            b"SET" => b"$-1\r\n",
            b"PTTL" => b":1500\r\n",
            b"EVAL" => b":1\r\n",
            _ => b"+PONG\r\n",
        };
        Answer::Bytes(fenced(reply, c))
    })
    .await;
    assert_eq!(store.claim(Space::Code, "c", 100, 1).await, Ok(false));
    assert_eq!(store.blocked_for("client").await, Ok(Some(2)));
    assert_eq!(store.count_failure("client", "t", 3, 60, 60).await, Ok(true));
    assert!(store.probe().await);
    // A probe answered with anything but PONG reports the store down.
    let (store, _redis) = store_answering(|c| Answer::Bytes(fenced(b":1\r\n", c))).await;
    assert!(!store.probe().await);
}

/// Pieces a broken Redis might answer a `SET NX` with, in any order and number.
#[derive(Debug, Clone)]
enum Piece {
    Ok,
    Nil,
    NilArray,
    Integer,
    Error,
    Fence,
    OldFence,
    Raw(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => Just(Piece::Ok),
        2 => Just(Piece::Nil),
        1 => Just(Piece::NilArray),
        1 => Just(Piece::Integer),
        1 => Just(Piece::Error),
        3 => Just(Piece::Fence),
        1 => Just(Piece::OldFence),
        1 => proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'+'), any::<u8>()], 0..6)
            .prop_map(Piece::Raw),
    ]
}

fn bytes_of(pieces: &[Piece], call: &Call) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|p| match p {
            Piece::Ok => b"+OK\r\n".to_vec(),
            Piece::Nil => b"$-1\r\n".to_vec(),
            Piece::NilArray => b"*-1\r\n".to_vec(),
            Piece::Integer => b":1\r\n".to_vec(),
            Piece::Error => b"-ERR x\r\n".to_vec(),
            Piece::Fence => call.fence.clone(),
            Piece::OldFence => b"$15\r\nnymgate-fence-9\r\n".to_vec(),
            Piece::Raw(raw) => raw.clone(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever a broken Redis answers `SET NX` with (then closing its side), the claim is
    /// accepted only for exactly `+OK` and the fence, and refused as used only for exactly a
    /// nil and the fence; everything else is `Unavailable`.
    #[test]
    fn a_set_nx_claim_is_accepted_only_on_ok_in_frame(pieces in proptest::collection::vec(piece(), 0..5)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let pieces_in = pieces.clone();
        let (outcome, sent) = runtime.block_on(async move {
            let sent = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
            let log = sent.clone();
            let (store, _redis) = store_answering(move |call| {
                let bytes = bytes_of(&pieces_in, call);
                *log.lock().unwrap() = (bytes.clone(), call.fence.clone());
                Answer::ThenClose(bytes)
            })
            .await;
            let outcome = store.claim(Space::Code, "code", 100, 1).await;
            let sent = sent.lock().unwrap().clone();
            (outcome, sent)
        });
        // What the server answered, and the fence it should have ended with.
        let (answer, fence) = sent;
        let framed = |reply: &[u8]| answer == [reply, &fence[..]].concat();
        match outcome {
            Ok(true) => prop_assert!(framed(b"+OK\r\n"), "accepted on {:?}", pieces),
            Ok(false) => prop_assert!(framed(b"$-1\r\n") || framed(b"*-1\r\n"), "refused as used on {:?}", pieces),
            Err(error) => {
                prop_assert_eq!(error, StoreError::Unavailable);
                prop_assert!(!framed(b"+OK\r\n") && !framed(b"$-1\r\n") && !framed(b"*-1\r\n"), "{:?}", pieces);
            }
        }
    }
}
