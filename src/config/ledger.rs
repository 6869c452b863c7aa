//! `[ledger]` and `[admin]`: the durable usage ledger, and the token of the admin API.
//!
//! The ledger is off unless `[ledger]` is present; then every request that reached a
//! provider (or tried to) becomes one usage record, written in batches off the request path
//! to an embedded SQLite file (the default) or to PostgreSQL (several replicas, one ledger).

use std::time::Duration;

use serde::Deserialize;

use super::{bounds, duration, Invalid};

/// `[ledger]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `sqlite://PATH` (the file is created on first run; a relative path is relative to the
    /// working directory) or `postgres://user:password@host:port/database`, `${VAR}`
    /// interpolated. Default `"sqlite://gatewayz-ledger.db"`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Records per write (one transaction). Default 500; 1 to 10000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before it is written anyway.
    /// Default `"1s"`; 10ms to 1m.
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// Records waiting to be written, at most (while the database is slow or down); past it
    /// new records are dropped and counted. Default 100000; 1 to 10000000.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How long raw records are kept; hourly rollups are kept for good. Default `"90d"`;
    /// 1h to 3650d.
    #[serde(default = "default_retention", with = "duration")]
    pub retention: Duration,
}

fn default_url() -> String {
    "sqlite://gatewayz-ledger.db".into()
}
fn default_batch_size() -> usize {
    500
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_queue_capacity() -> usize {
    100_000
}
fn default_retention() -> Duration {
    Duration::from_secs(90 * 86_400)
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            url: default_url(),
            batch_size: default_batch_size(),
            flush_interval: default_flush_interval(),
            queue_capacity: default_queue_capacity(),
            retention: default_retention(),
        }
    }
}

/// Which database a ledger URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl LedgerConfig {
    /// The backend of `url` (validated: one of the two).
    pub fn backend(&self) -> Backend {
        if self.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|scheme| self.url.starts_with(scheme)) {
            // Never the URL itself: it may hold a password.
            return Err(Invalid::new(
                "ledger.url",
                "must start with sqlite:// (a file) or postgres:// (a server)",
            ));
        }
        bounds::count("ledger.batch_size", self.batch_size, 1, 10_000)?;
        bounds::between(
            "ledger.flush_interval",
            self.flush_interval,
            Duration::from_millis(10),
            bounds::MINUTE,
        )?;
        bounds::count("ledger.queue_capacity", self.queue_capacity, 1, 10_000_000)?;
        bounds::between(
            "ledger.retention",
            self.retention,
            bounds::HOUR,
            3650 * bounds::DAY,
        )
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token of `/admin/*`, `${VAR}` interpolated; at least 16 characters.
    /// Default: none (the admin API is off: every `/admin/*` route answers 404).
    #[serde(default)]
    pub token: Option<String>,
    /// How often each replica reads the keys kept in the ledger's database (made by the admin
    /// API or `gatewayz keys` on any replica), so a key created or revoked anywhere works or
    /// stops everywhere within this. Default `"2s"`; 100ms to 1m.
    #[serde(default = "default_key_sync_interval", with = "duration")]
    pub key_sync_interval: Duration,
}

fn default_key_sync_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            key_sync_interval: default_key_sync_interval(),
        }
    }
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(token) = &self.token {
            if token.len() < 16 {
                return Err(Invalid::new(
                    "admin.token",
                    "must be at least 16 characters",
                ));
            }
        }
        bounds::between(
            "admin.key_sync_interval",
            self.key_sync_interval,
            Duration::from_millis(100),
            bounds::MINUTE,
        )
    }
}
