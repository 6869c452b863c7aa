//! Client authentication: bearer keys held as SHA-256 digests, compared in constant time.
//!
//! The configured secrets are hashed once at start-up and dropped; a request's token is
//! hashed and compared against every digest with `subtle`, so neither the comparison nor the
//! lookup order reveals how much of a key matched. Trial keys carry an expiry. A key's
//! limits (rates, parallelism, budget, models) are not checked here but once the request's
//! body is parsed (`crate::state`), where its model and size are known.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::KeyConfig;
use crate::errors::ApiError;

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Index of the key in the configuration, or `None` when auth is off (loopback default).
    pub key: Option<usize>,
}

struct Entry {
    digest: [u8; 32],
    expires: Option<SystemTime>,
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
            return Ok(Caller { key: None });
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
        Ok(Caller { key: Some(index) })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, expires: Option<&str>) -> KeyConfig {
        KeyConfig {
            name: name.into(),
            key: secret.into(),
            trial_expires: expires.map(Into::into),
            ..KeyConfig::default()
        }
    }

    #[test]
    fn authenticates_table() {
        let store = KeyStore::new(&[
            key("alice", "alice-key-1", None),
            key("trial", "trial-key-1", Some("2020-01-01T00:00:00Z")),
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
}
