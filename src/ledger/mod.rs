//! The usage ledger: every request that reached the router becomes one [`UsageRecord`],
//! written to SQLite or PostgreSQL by a writer on its own thread, off the request path.
//!
//! The request path hands a record to [`Ledger::record`]: one `try_send` into a bounded
//! queue, never a wait; a full queue drops the record and counts it
//! (`gatewayz_ledger_records_total{outcome="dropped"}`). The writer ([`writer`]) takes records
//! in batches (`batch_size`, or whatever arrived within `flush_interval`) and writes each in
//! one transaction with its hourly rollups ([`store`]). A database that is down or slow holds
//! the batch: it is retried with backoff until it is written — nothing accepted is lost while
//! the queue has room — and meanwhile the queue fills. At shutdown [`Ledger::flush`] writes
//! what is queued within the time left; what cannot be written is counted `lost`. Raw records
//! older than `retention` are deleted hourly; the rollups stay.
//!
//! Client keys made through the admin API live in the same database ([`keys`]), read by
//! every replica.
//!
//! Reports ([`report`]) read the rollups: `gatewayz usage` and `GET /admin/usage`. Budgets
//! without a shared store read their period's spend from them at start-up.

pub mod keys;
pub mod record;
pub mod report;
pub mod store;
pub mod writer;

pub use record::{unix_ms, UsageRecord};
pub use store::Db;
pub use writer::{describe, Ledger};

/// Why the ledger could not start.
#[derive(Debug, thiserror::Error)]
#[error("ledger.url: {0}")]
pub struct LedgerError(pub String);
