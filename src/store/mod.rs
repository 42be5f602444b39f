//! The state a login needs besides its sealed cookie, which must hold across replicas:
//! single-use claims (login states answered, authorization codes redeemed, SAML assertions
//! seen) and failed-login counters and blocks (login/blocking.rs).
//!
//! Two backends behind the same methods:
//! - memory (the default): dashmaps in this process, bounded and expiring (memory.rs);
//! - Redis (`[store] backend = "redis"`), for several replicas: `SET NX` with an expiry for each
//!   claim, a Lua script for a counter and its block, so each is one atomic step (redis.rs).
//!
//! Fail closed: when Redis cannot answer, or answers out of frame, too much, too deep, too
//! slowly or with a reply the command never gives (redis.rs, resp.rs), the caller gets
//! [`StoreError::Unavailable`] and the login is refused with 503; nothing is assumed unused or
//! unblocked. Only `+OK` claims (`SET NX`) and only a nil reply means "claimed already". Ordinary proxied traffic never touches
//! the store, so it keeps flowing. Keys are hashes (a code or state is never written as itself)
//! and values carry nothing personal.

#[cfg(test)]
mod hostile_redis;
pub mod memory;
pub mod redis;
pub mod resp;

use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

pub use memory::{SingleUseStore, StoreFull};
use redis::RedisClient;
use resp::Reply;

/// What a claim is for; each kind has its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// A login state answered by the IdP (a callback can't be replayed).
    State,
    /// An authorization code redeemed at `/token` (RFC 6749 §4.1.2: single use).
    Code,
    /// A SAML assertion ID accepted (replay cache).
    SamlAssertion,
    /// A platform's AuthnRequest ID read by nymgate's IdP face, keyed by the platform's entity
    /// ID and the ID (SAML out: each request answered once).
    AuthnRequest,
    /// A Response of nymgate's IdP face forwarded by an intercepted ACS (keyed by the platform
    /// and its Assertion's ID): each forwarded once.
    IssuedResponse,
}

/// How many kinds of claim there are (the memory backend keeps one store for each).
const SPACES: usize = 5;

impl Space {
    fn name(self) -> &'static str {
        match self {
            Space::State => "state",
            Space::Code => "code",
            Space::SamlAssertion => "saml",
            Space::AuthnRequest => "authn_request",
            Space::IssuedResponse => "issued_response",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The memory backend holds its maximum of live entries.
    #[error("the single-use store is full")]
    Full,
    /// Redis did not answer (the cause is logged where it happened).
    #[error("the shared store is unavailable")]
    Unavailable,
}

enum Backend {
    /// One bounded store per [`Space`], in its declaration order.
    Memory {
        spaces: [SingleUseStore<()>; SPACES],
    },
    Redis {
        client: RedisClient,
        prefix: String,
    },
}

pub struct Store {
    /// Memory (one replica) or Redis (every replica shares the claims).
    backend: Backend,
    /// The last Redis call's outcome, for `/readyz` and the `nymgate_store_up` gauge.
    up: AtomicBool,
}

impl Store {
    pub fn memory(capacity: usize) -> Self {
        Store {
            backend: Backend::Memory { spaces: std::array::from_fn(|_| SingleUseStore::new(capacity)) },
            up: AtomicBool::new(true),
        }
    }

    pub fn redis(client: RedisClient, prefix: String) -> Self {
        Store { backend: Backend::Redis { client, prefix }, up: AtomicBool::new(true) }
    }

    /// The store `[store]` describes (config validated already).
    pub fn from_config(
        config: &crate::config::StoreConfig,
        memory_capacity: usize,
    ) -> Result<Store, crate::config::ConfigProblem> {
        use crate::config::{RedisUrl, StoreBackend};
        if config.backend == StoreBackend::Memory {
            return Ok(Store::memory(memory_capacity));
        }
        let url = RedisUrl::parse(config.url.as_deref().unwrap_or(""))
            .map_err(|e| crate::config::ConfigProblem::new("store.url", e))?;
        let tls = if url.tls {
            let roots = crate::tls::upstream_roots(config.ca_file.as_deref())
                .map_err(|e| crate::config::ConfigProblem::new("store.ca_file", e))?;
            Some(std::sync::Arc::new(crate::tls::client_config(roots)))
        } else {
            None
        };
        let password = match &config.password {
            Some(source) => Some(
                crate::secret::Secret::load(source)
                    .map_err(|e| crate::config::ConfigProblem::new("store.password", e))?,
            ),
            None => None,
        };
        let target = redis::RedisTarget {
            host: url.host,
            port: url.port,
            db: url.db,
            tls,
            username: config.username.clone(),
            password,
        };
        let client = RedisClient::new(target, config.pool_size, config.timeout);
        Ok(Store::redis(client, config.key_prefix.clone()))
    }

    /// True when state is shared with other replicas (Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    /// Whether the store answered its last call (always true in memory).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Claims `key` in `space` until `expires` (Unix seconds). `Ok(false)`: it was claimed
    /// already, by this replica or another.
    pub async fn claim(&self, space: Space, key: &str, expires: u64, now: u64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory { spaces } => {
                spaces[space as usize].claim(key, expires, now).map_err(|StoreFull| StoreError::Full)
            }
            Backend::Redis { client, prefix } => {
                let redis_key = format!("{prefix}{}:{}", space.name(), hashed(key));
                let ttl_ms = (expires.saturating_sub(now).max(1) * 1000).to_string();
                let reply = self
                    .call(client, &[b"SET", redis_key.as_bytes(), b"1", b"NX", b"PX", ttl_ms.as_bytes()])
                    .await?;
                match reply {
                    Reply::Simple(ok) if ok == "OK" => Ok(true),
                    Reply::Nil => Ok(false),
                    _ => Err(self.unexpected("SET NX")),
                }
            }
        }
    }

    /// Counts one failed login of `client` (an HMAC, never an address) for `tenant` in a window
    /// of `window` seconds from its first failure; at `threshold` the client is blocked for
    /// `block` seconds. True when this failure started the block. Redis only: the memory
    /// backend's counting lives in login/blocking.rs.
    pub async fn count_failure(
        &self,
        client: &str,
        tenant: &str,
        threshold: u32,
        window: u64,
        block: u64,
    ) -> Result<bool, StoreError> {
        let Backend::Redis { client: redis, prefix } = &self.backend else { return Ok(false) };
        let failures = format!("{prefix}fail:{client}:{}", hashed(tenant));
        let blocked = format!("{prefix}block:{client}");
        let (threshold, window, block) =
            (threshold.to_string(), window.max(1).to_string(), block.max(1).to_string());
        let reply = self
            .call(
                redis,
                &[
                    b"EVAL",
                    COUNT_FAILURE.as_bytes(),
                    b"2",
                    failures.as_bytes(),
                    blocked.as_bytes(),
                    window.as_bytes(),
                    threshold.as_bytes(),
                    block.as_bytes(),
                ],
            )
            .await?;
        match reply {
            Reply::Integer(started) => Ok(started == 1),
            _ => Err(self.unexpected("EVAL")),
        }
    }

    /// Seconds until a blocked `client` may try again (Redis only, as [`Store::count_failure`]).
    pub async fn blocked_for(&self, client: &str) -> Result<Option<u64>, StoreError> {
        let Backend::Redis { client: redis, prefix } = &self.backend else { return Ok(None) };
        let blocked = format!("{prefix}block:{client}");
        match self.call(redis, &[b"PTTL", blocked.as_bytes()]).await? {
            Reply::Integer(ms) if ms > 0 => Ok(Some((ms as u64).div_ceil(1000))),
            Reply::Integer(_) => Ok(None),
            _ => Err(self.unexpected("PTTL")),
        }
    }

    /// Asks Redis whether it answers (for `/readyz`); the memory store always does.
    pub async fn probe(&self) -> bool {
        if let Backend::Redis { client, .. } = &self.backend {
            match self.call(client, &[b"PING"]).await {
                Ok(Reply::Simple(pong)) if pong == "PONG" => {}
                Ok(_) => {
                    let _ = self.unexpected("PING");
                }
                Err(_) => {}
            }
        }
        self.is_up()
    }

    async fn call(&self, client: &RedisClient, parts: &[&[u8]]) -> Result<Reply, StoreError> {
        match client.run(parts).await {
            Ok(reply) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("shared store reachable again");
                }
                Ok(reply)
            }
            Err(error) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(%error, "shared store unavailable: logins are refused until it answers");
                } else {
                    tracing::debug!(%error, "shared store still unavailable");
                }
                Err(StoreError::Unavailable)
            }
        }
    }

    /// A reply the command never gives (never logged as itself: it is the server's bytes).
    /// The store counts as down, as when it does not answer, until a call gets a proper reply.
    fn unexpected(&self, command: &'static str) -> StoreError {
        tracing::error!(command, "shared store answered something unexpected");
        self.up.store(false, Ordering::Relaxed);
        StoreError::Unavailable
    }
}

/// Counts a failure and starts a block at the threshold, atomically (Redis runs a script
/// alone). KEYS: the counter, the block. ARGV: window seconds, threshold, block seconds.
/// Returns 1 when this call started the block.
const COUNT_FAILURE: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 1 end
end
return 0
"#;

/// Keys are written as SHA-256: a code or a state is a bearer value, and an assertion ID or
/// tenant name has no business in a shared database as itself.
fn hashed(key: &str) -> String {
    crate::secret::to_hex(&Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
#[path = "redis_store_tests.rs"]
mod redis_store_tests;
