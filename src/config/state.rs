//! `[state]`: where the per-key and per-team limit counters live.
//!
//! Without a `redis_url` they are kept in the process (one replica's view). With one, every
//! replica shares them in Redis; `timeout` bounds the round trip on the request path and
//! `failure_policy` says what admissions do while the store cannot be reached.

use std::time::Duration;

use serde::Deserialize;

use super::{bounds, duration, Invalid};

/// What admissions do while the shared store is unreachable or slower than `timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Each replica decides with its own counters (N replicas allow up to N times a limit)
    /// until the store answers again.
    #[default]
    FailOpen,
    /// Requests of keys with limits are refused with 503 until the store answers again.
    FailClosed,
}

impl FailurePolicy {
    /// The `policy` label of `gatewayz_shared_state_bypassed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
        }
    }
}

/// `[state]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The shared store: `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS),
    /// `${VAR}` interpolated. Default: none (counters in this process).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key the gateway writes, so that several gateways (or other
    /// programs) can share one Redis. Default `"gatewayz"`; 1 to 64 characters of
    /// `A-Z a-z 0-9 _ - . :`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for the store on the request path; slower counts as unreachable.
    /// Default `"50ms"`; more than 0s, at most 5s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// `"fail_open"` (default) or `"fail_closed"`: see [`FailurePolicy`].
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// How often an unreachable store is tried again (and budgets' spend read back from it
    /// while it answers). Default `"1s"`; 100ms to 1m.
    #[serde(default = "default_retry_interval", with = "duration")]
    pub retry_interval: Duration,
}

fn default_key_prefix() -> String {
    "gatewayz".into()
}
fn default_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_retry_interval() -> Duration {
    Duration::from_secs(1)
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: default_key_prefix(),
            timeout: default_timeout(),
            failure_policy: FailurePolicy::default(),
            retry_interval: default_retry_interval(),
        }
    }
}

impl StateConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.redis_url {
            // The client parses it the same way at start-up; the message never repeats the
            // URL, which may hold a password.
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(Invalid::new(
                    "state.redis_url",
                    "must start with redis:// or rediss://",
                ));
            }
            if redis::Client::open(url.as_str()).is_err() {
                return Err(Invalid::new(
                    "state.redis_url",
                    "is not a Redis URL: write redis://[user:password@]host:port[/db]",
                ));
            }
        }
        let prefix_ok = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 64
            || !self.key_prefix.chars().all(prefix_ok)
        {
            return Err(Invalid::new(
                "state.key_prefix",
                "must be 1 to 64 characters of A-Z a-z 0-9 _ - . :",
            ));
        }
        bounds::positive("state.timeout", self.timeout, Duration::from_secs(5))?;
        bounds::between(
            "state.retry_interval",
            self.retry_interval,
            Duration::from_millis(100),
            bounds::MINUTE,
        )
    }
}
