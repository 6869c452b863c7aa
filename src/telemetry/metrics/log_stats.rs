//! Counters of the log pipeline, shared lock-free between the `tracing` layer (which counts
//! records it had to drop), the Loki shipper (which counts what it shipped or dropped), and
//! the metrics exporter (which reads them into `gatewayz_log_records_total{outcome}` and
//! `gatewayz_log_queue_depth`). Plain atomics: emitting a log line never takes a lock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Log-pipeline counters. One instance per process, shared by `Arc`.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Records accepted by Loki.
    pub shipped: AtomicU64,
    /// Records dropped because the shipper's queue was full.
    pub dropped_full: AtomicU64,
    /// Records in batches Loki refused with a non-retryable 4xx.
    pub dropped_rejected: AtomicU64,
    /// Records still held when the shutdown deadline passed.
    pub dropped_shutdown: AtomicU64,
    /// Records waiting to be shipped (queued and batched).
    pub queue_depth: AtomicI64,
}

impl LogStats {
    /// `(outcome label, count)` for each outcome, in a fixed order.
    pub fn outcomes(&self) -> [(&'static str, u64); 4] {
        [
            ("shipped", self.shipped.load(Ordering::Relaxed)),
            ("dropped_full", self.dropped_full.load(Ordering::Relaxed)),
            (
                "dropped_rejected",
                self.dropped_rejected.load(Ordering::Relaxed),
            ),
            (
                "dropped_shutdown",
                self.dropped_shutdown.load(Ordering::Relaxed),
            ),
        ]
    }

    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.load(Ordering::Relaxed)
    }
}

/// The process's counters: the Loki layer and shipper write them, the exporter reads them.
pub fn global() -> Arc<LogStats> {
    static STATS: OnceLock<Arc<LogStats>> = OnceLock::new();
    STATS.get_or_init(Arc::default).clone()
}
