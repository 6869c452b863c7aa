//! Client authentication: bearer keys held as SHA-256 digests, compared in constant time.
//!
//! The configured secrets are hashed once at start-up and dropped; a request's token is
//! hashed and compared against every digest with `subtle`, so neither the comparison nor the
//! lookup order reveals how much of a key matched. Trial keys carry an expiry; keys may carry
//! a requests-per-minute limit enforced by a small token bucket per key.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::KeyConfig;
use crate::errors::{ApiError, RateLimit, RequestQuota};

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Index of the key in the configuration, or `None` when auth is off (loopback default).
    pub key: Option<usize>,
    /// The key's request quota after this request, when it has a limit (sent back as
    /// `x-ratelimit-*-requests`).
    pub quota: Option<RequestQuota>,
}

struct Entry {
    digest: [u8; 32],
    expires: Option<SystemTime>,
    limiter: Option<Mutex<TokenBucket>>,
}

/// The configured client keys.
pub struct KeyStore {
    entries: Vec<Entry>,
    names: Vec<String>,
}

impl KeyStore {
    pub fn new(keys: &[KeyConfig]) -> Self {
        let entries = keys
            .iter()
            .map(|k| Entry {
                digest: digest(k.key.as_bytes()),
                expires: k.expiry(),
                limiter: k
                    .rate_limit_rpm
                    .map(|rpm| Mutex::new(TokenBucket::per_minute(rpm))),
            })
            .collect();
        let names = keys.iter().map(|k| k.name.clone()).collect();
        Self { entries, names }
    }

    /// Whether requests need a key at all.
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The holder's name of a key, for logs.
    pub fn name(&self, caller: Caller) -> &str {
        caller
            .key
            .and_then(|i| self.names.get(i))
            .map_or("anonymous", String::as_str)
    }

    /// Number of trial keys that have not expired at `now`.
    pub fn active_trials(&self, now: SystemTime) -> usize {
        self.entries
            .iter()
            .filter(|e| e.expires.is_some_and(|t| t > now))
            .count()
    }

    /// Authenticates the value of an `Authorization` header.
    pub fn authenticate(&self, header: Option<&[u8]>, now: SystemTime) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller {
                key: None,
                quota: None,
            });
        }
        let header = header.ok_or(ApiError::Unauthorized(
            "missing API key: send it as `Authorization: Bearer <key>`",
        ))?;
        let token = strip_bearer(header).ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected `Bearer <key>`",
        ))?;
        let presented = digest(token);
        let found = find_digest(self.entries.iter().map(|e| &e.digest), &presented);
        let index = found.ok_or(ApiError::Unauthorized("invalid API key"))?;
        let entry = &self.entries[index];
        if entry.expires.is_some_and(|t| t <= now) {
            return Err(ApiError::TrialExpired);
        }
        let mut quota = None;
        if let Some(limiter) = &entry.limiter {
            let taken = limiter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(Instant::now());
            if let Err(retry_after) = taken.allowed {
                return Err(ApiError::RateLimited(RateLimit {
                    message: "rate limit exceeded for this API key; retry later".into(),
                    retry_after,
                    requests: Some(taken.quota),
                }));
            }
            quota = Some(taken.quota);
        }
        Ok(Caller {
            key: Some(index),
            quota,
        })
    }
}

/// SHA-256 of a secret: what is kept instead of the secret.
pub(crate) fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Index of the digest equal to `presented`, comparing every entry in constant time (the
/// time taken does not depend on which entry matched, or how much of it).
pub(crate) fn find_digest<'a>(
    digests: impl Iterator<Item = &'a [u8; 32]>,
    presented: &[u8; 32],
) -> Option<usize> {
    let mut found = None;
    for (i, d) in digests.enumerate() {
        if bool::from(d.ct_eq(presented)) {
            found = Some(i);
        }
    }
    found
}

/// The token of a `Bearer <token>` header value.
pub(crate) fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// What [`TokenBucket::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    /// `Err(wait)`: refused, a token is back after `wait`.
    pub allowed: Result<(), Duration>,
    pub quota: RequestQuota,
}

/// A token bucket holding up to `capacity` requests, refilled continuously.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn per_minute(rpm: u32) -> Self {
        let capacity = f64::from(rpm.max(1));
        Self {
            capacity,
            tokens: capacity,
            per_second: capacity / 60.0,
            last: None,
        }
    }

    /// Takes one token at `now`: allowed, or refused with the wait until one is back; the
    /// quota as it stands after.
    pub fn take(&mut self, now: Instant) -> Taken {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        }
        self.last = Some(now);
        let allowed = if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.time_to(1.0))
        };
        Taken {
            allowed,
            quota: RequestQuota {
                limit: self.capacity as u32,
                remaining: self.tokens.floor() as u32,
                reset: self.time_to(self.capacity),
            },
        }
    }

    /// Time until the bucket holds `tokens` again.
    fn time_to(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((tokens - self.tokens).max(0.0) / self.per_second).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(name: &str, secret: &str, expires: Option<&str>, rpm: Option<u32>) -> KeyConfig {
        KeyConfig {
            name: name.into(),
            key: secret.into(),
            trial_expires: expires.map(Into::into),
            rate_limit_rpm: rpm,
        }
    }

    #[test]
    fn authenticates_table() {
        let store = KeyStore::new(&[
            key("alice", "alice-key-1", None, None),
            key("trial", "trial-key-1", Some("2020-01-01T00:00:00Z"), None),
        ]);
        let now = SystemTime::now();
        type Case<'a> = (Option<&'a [u8]>, Result<Option<usize>, &'a str>);
        let cases: &[Case] = &[
            (Some(b"Bearer alice-key-1"), Ok(Some(0))),
            (Some(b"bearer  alice-key-1 "), Ok(Some(0))),
            (None, Err("invalid_api_key")),
            (Some(b"Basic abc"), Err("invalid_api_key")),
            (Some(b"Bearer "), Err("invalid_api_key")),
            (Some(b"Bearer alice-key-2"), Err("invalid_api_key")),
            (Some(b"Bearer trial-key-1"), Err("trial_expired")),
        ];
        for (header, want) in cases {
            let got = store
                .authenticate(*header, now)
                .map(|c| c.key)
                .map_err(|e| e.code());
            assert_eq!(got, *want, "header {header:?}");
        }
        assert_eq!(store.active_trials(now), 0);
        assert_eq!(store.active_trials(SystemTime::UNIX_EPOCH), 1);
    }

    #[test]
    fn no_keys_means_open() {
        let store = KeyStore::new(&[]);
        assert_eq!(
            store.authenticate(None, SystemTime::now()).unwrap().key,
            None
        );
    }

    #[test]
    fn bucket_refills() {
        let mut bucket = TokenBucket::per_minute(2);
        let t0 = Instant::now();
        let first = bucket.take(t0);
        assert!(first.allowed.is_ok());
        assert_eq!((first.quota.limit, first.quota.remaining), (2, 1));
        assert_eq!(first.quota.reset, Duration::from_secs(30));
        assert!(bucket.take(t0).allowed.is_ok());
        let refused = bucket.take(t0);
        assert_eq!(refused.allowed, Err(Duration::from_secs(30)));
        assert_eq!(refused.quota.remaining, 0);
        assert_eq!(refused.quota.reset, Duration::from_secs(60));
        assert!(bucket.take(t0 + Duration::from_secs(30)).allowed.is_ok());
        assert!(bucket.take(t0 + Duration::from_secs(30)).allowed.is_err());
    }
}
