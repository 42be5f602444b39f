//! The key cache without a network: a fake IdP serves a JWKS the test changes, and tokio's
//! paused clock stands in for time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const EDDSA: &[Alg] = &[Alg::EdDsa];
const REFRESH: Duration = Duration::from_secs(300);
const BOUND: Duration = Duration::from_secs(5);

/// An IdP's JWKS endpoint: serves the kids in `kids` (Ed25519 keys), counts fetches.
struct FakeIdp {
    kids: Mutex<Vec<&'static str>>,
    fetches: AtomicUsize,
    down: AtomicBool,
    /// How long a fetch takes (on the paused clock).
    delay: Duration,
}

impl FakeIdp {
    fn new(kids: &[&'static str]) -> Arc<FakeIdp> {
        Arc::new(FakeIdp {
            kids: Mutex::new(kids.to_vec()),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            delay: Duration::ZERO,
        })
    }

    fn publish(&self, kids: &[&'static str]) {
        *self.kids.lock().unwrap() = kids.to_vec();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwk(kid: &str) -> Value {
    let key = Ed25519KeyPair::generate().unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref())})
}

impl JwksSource for FakeIdp {
    fn fetch<'a>(&'a self, _uri: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.down.load(Ordering::SeqCst) {
                return Err("the JWKS endpoint answered 503".into());
            }
            let keys: Vec<Value> = self.kids.lock().unwrap().iter().map(|kid| jwk(kid)).collect();
            Ok(json!({ "keys": keys }).to_string().into_bytes())
        })
    }
}

fn cache(idp: &Arc<FakeIdp>) -> JwksCache {
    JwksCache::new("https://idp.example/jwks", EDDSA.to_vec(), idp.clone())
}

fn has(keys: &FetchedKeys, kid: &str) -> bool {
    keys.keys.has_kid(kid, EDDSA)
}

#[tokio::test(start_paused = true)]
async fn tenants_of_one_idp_share_one_cache_and_one_fetch() {
    let registry = KeyCaches::default();
    registry.register(None, &[Alg::RsaSsaPkcs1V15Sha256]);
    registry.register(None, EDDSA);
    registry.register(Some(Path::new("/etc/nymgate/other-ca.pem")), &[Alg::EcdsaP256Sha256]);
    let idp = FakeIdp::new(&["a"]);
    let source = || idp.clone() as Arc<dyn JwksSource>;
    let uri = "https://idp.example/jwks";
    let school_a = registry.cache_for(uri, None, "school-a", source);
    let school_b = registry.cache_for(uri, None, "school-b", source);
    assert!(Arc::ptr_eq(&school_a, &school_b), "one IdP, one cache");
    // Keys are parsed for the union of the group's algorithms.
    assert_eq!(school_a.algorithms, vec![Alg::RsaSsaPkcs1V15Sha256, Alg::EdDsa]);
    assert_eq!(school_a.tenant_list(), "school-a,school-b");
    // Another trust (ca_file) or another JWKS is another cache.
    let other_trust = registry.cache_for(uri, Some(Path::new("/etc/nymgate/other-ca.pem")), "c", source);
    assert!(!Arc::ptr_eq(&school_a, &other_trust));
    assert_eq!(other_trust.algorithms, vec![Alg::EcdsaP256Sha256]);
    let other_idp = registry.cache_for("https://idp2.example/jwks", None, "d", source);
    assert!(!Arc::ptr_eq(&school_a, &other_idp));

    assert!(has(&school_a.fresh(REFRESH, BOUND).await.unwrap(), "a"));
    assert!(has(&school_b.fresh(REFRESH, BOUND).await.unwrap(), "a"));
    assert_eq!(idp.fetches(), 1, "the second tenant reused the first one's keys");

    // A cache no tenant holds any more is dropped from the registry.
    drop((other_trust, other_idp));
    let _again = registry.cache_for("https://idp3.example/jwks", None, "e", source);
    assert_eq!(registry.caches.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn keys_older_than_jwks_refresh_are_refetched_so_a_removed_key_stops_verifying() {
    let idp = FakeIdp::new(&["old"]);
    let cache = cache(&idp);
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "old"));
    // The IdP rotates and drops the old key.
    idp.publish(&["new"]);
    tokio::time::advance(REFRESH - Duration::from_secs(1)).await;
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "old"), "within jwks_refresh: cached");
    assert_eq!(idp.fetches(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    let keys = cache.fresh(REFRESH, BOUND).await.unwrap();
    assert!(!has(&keys, "old") && has(&keys, "new"), "past jwks_refresh: refetched");
    assert_eq!(idp.fetches(), 2);
    // A tenant with a shorter jwks_refresh refetches on its own schedule from the same set.
    tokio::time::advance(Duration::from_secs(60)).await;
    cache.fresh(Duration::from_secs(60), BOUND).await.unwrap();
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refetches_at_once_unless_a_fetch_was_attempted_within_the_bound() {
    let idp = FakeIdp::new(&["a"]);
    let cache = cache(&idp);
    cache.fresh(REFRESH, BOUND).await.unwrap();
    idp.publish(&["a", "b"]);
    // Right after a fetch: no second one for a kid (forged kids can't make nymgate hammer).
    let keys = cache.with_kid("b", EDDSA, BOUND).await.unwrap();
    assert!(!has(&keys, "b"));
    assert_eq!(idp.fetches(), 1);
    // Past the bound, and long before jwks_refresh: at once.
    tokio::time::advance(BOUND).await;
    let keys = cache.with_kid("b", EDDSA, BOUND).await.unwrap();
    assert!(has(&keys, "b"));
    assert_eq!(idp.fetches(), 2);
    // The scheduled path sees the refetched keys: nothing more to fetch.
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "b"));
    assert_eq!(idp.fetches(), 2);
    // A kid known only for an algorithm the caller does not allow is still unknown to it.
    assert!(!cache.fresh(REFRESH, BOUND).await.unwrap().keys.has_kid("b", &[Alg::EcdsaP256Sha256]));
}

#[tokio::test(start_paused = true)]
async fn the_refetch_bound_is_per_idp_not_per_tenant() {
    let registry = KeyCaches::default();
    registry.register(None, EDDSA);
    let idp = FakeIdp::new(&["a"]);
    let source = || idp.clone() as Arc<dyn JwksSource>;
    let school_a = registry.cache_for("https://idp.example/jwks", None, "school-a", source);
    let school_b = registry.cache_for("https://idp.example/jwks", None, "school-b", source);
    school_a.fresh(REFRESH, BOUND).await.unwrap();
    tokio::time::advance(BOUND).await;
    // School A's token names a forged kid: one refetch. School B's, a moment later, another
    // forged kid: none, although school B never fetched.
    school_a.with_kid("forged-1", EDDSA, BOUND).await;
    school_b.with_kid("forged-2", EDDSA, BOUND).await;
    assert_eq!(idp.fetches(), 2);
    // A real rotation: the kid school A brought is known to school B without a fetch.
    idp.publish(&["a", "b"]);
    tokio::time::advance(BOUND).await;
    assert!(has(&school_a.with_kid("b", EDDSA, BOUND).await.unwrap(), "b"));
    assert!(has(&school_b.with_kid("b", EDDSA, BOUND).await.unwrap(), "b"));
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn concurrent_verifications_share_one_fetch() {
    let idp = Arc::new(FakeIdp {
        kids: Mutex::new(vec!["a"]),
        fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
        delay: Duration::from_secs(1),
    });
    let cache = Arc::new(cache(&idp));
    let waiting: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    cache.fresh(REFRESH, BOUND).await.ok()
                } else {
                    cache.with_kid("a", EDDSA, BOUND).await
                }
            })
        })
        .collect();
    let mut sets = Vec::new();
    for task in waiting {
        sets.push(task.await.unwrap().unwrap());
    }
    assert_eq!(idp.fetches(), 1);
    assert!(sets.iter().all(|set| Arc::ptr_eq(set, &sets[0])));
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_serves_the_last_keys_within_the_grace_then_fails() {
    let idp = FakeIdp::new(&["a"]);
    let cache = cache(&idp);
    cache.fresh(REFRESH, BOUND).await.unwrap();
    idp.down.store(true, Ordering::SeqCst);
    tokio::time::advance(REFRESH).await;
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "a"), "the last keys serve on");
    assert_eq!(idp.fetches(), 2);
    // A failing IdP is asked at most once per bound.
    cache.fresh(REFRESH, BOUND).await.unwrap();
    cache.with_kid("b", EDDSA, BOUND).await;
    assert_eq!(idp.fetches(), 2);
    // Past the grace the stale keys no longer verify anything.
    tokio::time::advance(STALE_KEYS_GRACE).await;
    let error = cache.fresh(REFRESH, BOUND).await.err().unwrap();
    assert!(error.contains("503") && !error.contains("idp.example"), "{error}");
    // Until the IdP is back.
    idp.down.store(false, Ordering::SeqCst);
    tokio::time::advance(BOUND).await;
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "a"));
    // A JWKS with no key for the tenants' algorithms does not replace the last good one.
    idp.publish(&[]);
    tokio::time::advance(REFRESH).await;
    assert!(has(&cache.fresh(REFRESH, BOUND).await.unwrap(), "a"));
}

/// What a verification does (oidc_rp.rs, `verify_id_token`): keys no older than the tenant's
/// `jwks_refresh`, then, when the token's kid is not among them, the refetch for that kid.
async fn verify(cache: &JwksCache, kid: &str, refresh: Duration, bound: Duration) -> Arc<FetchedKeys> {
    let keys = cache.fresh(refresh, bound).await.unwrap();
    if has(&keys, kid) {
        return keys;
    }
    cache.with_kid(kid, EDDSA, bound).await.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The class: any number of tenants sharing one IdP, each with its own `jwks_refresh` and
    /// refetch bound, verifying tokens under the old or the new key in any order at any times,
    /// with the IdP rotating (and dropping the old key) at any point. No tenant verifies with
    /// the removed key later than its `jwks_refresh` after the removal, and a token under the
    /// new key finds it whenever no fetch was tried within the tenant's bound.
    #[test]
    fn a_removed_key_reaches_no_tenant_after_its_jwks_refresh(
        tenants in proptest::collection::vec((1u64..900, 1u64..30), 1..4),
        steps in proptest::collection::vec((0u64..400, 0usize..4, any::<bool>()), 1..40),
        remove_at in 0usize..40,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let idp = FakeIdp::new(&["old"]);
            let cache = cache(&idp);
            let mut removed: Option<Instant> = None;
            for (i, (advance, who, new_kid)) in steps.into_iter().enumerate() {
                if i == remove_at {
                    idp.publish(&["new"]);
                    removed = Some(Instant::now());
                }
                tokio::time::advance(Duration::from_secs(advance)).await;
                let (refresh, bound) = tenants[who % tenants.len()];
                let (refresh, bound) = (Duration::from_secs(refresh), Duration::from_secs(bound));
                let last_attempt = *cache.last_attempt.lock().unwrap();
                let keys = verify(&cache, if new_kid { "new" } else { "old" }, refresh, bound).await;
                if removed.is_some_and(|at| at.elapsed() >= refresh) {
                    prop_assert!(!has(&keys, "old"), "a removed key past jwks_refresh");
                }
                if new_kid && removed.is_some() && last_attempt.is_none_or(|at| at.elapsed() >= bound) {
                    prop_assert!(has(&keys, "new"), "an added key not found at once");
                }
            }
            Ok(())
        })?;
    }
}
