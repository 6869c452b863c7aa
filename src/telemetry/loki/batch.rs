//! The shipper's pure state: log [`Record`]s, the bounded [`Backlog`] that holds them while
//! Loki is slow, and the [`Batch`] that becomes one push.
//!
//! No clock, no I/O, no actix: the actor feeds these values and acts on their answers, so
//! unit tests drive them directly. A batch is limited by records and by bytes (the sum of line
//! lengths, what Loki's `max_line_size`-style limits see); a record larger than the whole byte
//! limit still travels alone rather than blocking the queue forever. The backlog applies the
//! configured [`DropPolicy`] and reports how many records it dropped, so the caller counts
//! every one.

use std::collections::VecDeque;

use opentelemetry::trace::{SpanId, TraceId};

pub use crate::config::DropPolicy;

/// One log event, formatted on the emitting thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// `trace`, `debug`, `info`, `warn` or `error` (the `level` stream label).
    pub level: &'static str,
    /// The log line (JSON: level, target, message, fields, trace_id, span_id).
    pub line: String,
    /// The trace and span the event happened in, if any: hex only where they are written (the
    /// line, and the push's structured metadata on the shipper's thread).
    pub ids: Option<(TraceId, SpanId)>,
}

impl Record {
    /// What the record weighs against the byte limit.
    pub fn size(&self) -> usize {
        self.line.len()
    }
}

/// A batch's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
}

/// Records gathered for one push.
#[derive(Debug)]
pub struct Batch {
    limits: Limits,
    records: Vec<Record>,
    bytes: usize,
}

impl Batch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            records: Vec::new(),
            bytes: 0,
        }
    }

    /// Whether `record` may join without breaking a limit (an empty batch takes anything).
    pub fn fits(&self, record: &Record) -> bool {
        self.records.is_empty()
            || (self.records.len() < self.limits.max_records
                && self.bytes + record.size() <= self.limits.max_bytes)
    }

    /// Adds `record`, or hands it back when it does not fit.
    pub fn push(&mut self, record: Record) -> Result<(), Record> {
        if !self.fits(&record) {
            return Err(record);
        }
        self.bytes += record.size();
        self.records.push(record);
        Ok(())
    }

    /// Whether no further record could join.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.limits.max_records || self.bytes >= self.limits.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties the batch, returning its records in arrival order.
    pub fn take(&mut self) -> Vec<Record> {
        self.bytes = 0;
        std::mem::take(&mut self.records)
    }
}

/// Records waiting for a batch, at most `capacity`.
#[derive(Debug)]
pub struct Backlog {
    capacity: usize,
    policy: DropPolicy,
    records: VecDeque<Record>,
    bytes: usize,
}

impl Backlog {
    pub fn new(capacity: usize, policy: DropPolicy) -> Self {
        Self {
            capacity: capacity.max(1),
            policy,
            records: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Queues `record`; returns how many records the policy dropped (0 or 1).
    pub fn push(&mut self, record: Record) -> u64 {
        if self.records.len() < self.capacity {
            self.bytes += record.size();
            self.records.push_back(record);
            return 0;
        }
        if self.policy == DropPolicy::Oldest {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= old.size();
            }
            self.bytes += record.size();
            self.records.push_back(record);
        }
        1
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the held records would fill a batch with `limits`.
    pub fn fills(&self, limits: Limits) -> bool {
        self.records.len() >= limits.max_records || self.bytes >= limits.max_bytes
    }

    /// Moves the oldest records into `batch` while they fit.
    pub fn fill(&mut self, batch: &mut Batch) {
        // Room for as many as may come, at once (not doubling through a batch's hundreds).
        let room = batch.limits.max_records.saturating_sub(batch.records.len());
        batch.records.reserve(self.records.len().min(room));
        while let Some(front) = self.records.front() {
            if !batch.fits(front) {
                break;
            }
            if let Some(record) = self.records.pop_front() {
                self.bytes -= record.size();
                let _ = batch.push(record);
            }
        }
    }

    /// Empties the backlog, returning how many records it held.
    pub fn clear(&mut self) -> usize {
        self.bytes = 0;
        let n = self.records.len();
        self.records.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(n: usize, len: usize) -> Record {
        Record {
            ts_ns: n as i64,
            level: "info",
            line: "x".repeat(len),
            ids: None,
        }
    }

    const LIMITS: Limits = Limits {
        max_records: 3,
        max_bytes: 10,
    };

    #[test]
    fn limits_by_records_and_bytes() {
        let table: &[(&[usize], usize, bool)] = &[
            // line lengths pushed, records accepted, full afterwards
            (&[1, 1, 1, 1], 3, true),
            (&[4, 4, 4], 2, false),
            (&[10, 1], 1, true),
            (&[25, 1], 1, true), // an oversized record travels alone
            (&[], 0, false),
        ];
        for (lens, accepted, full) in table {
            let mut b = Batch::new(LIMITS);
            let n = lens
                .iter()
                .enumerate()
                .filter(|(i, l)| b.push(rec(*i, **l)).is_ok())
                .count();
            assert_eq!((n, b.is_full()), (*accepted, *full), "{lens:?}");
            let taken = b.take();
            assert_eq!(taken.len(), *accepted);
            assert!(b.is_empty() && b.bytes() == 0);
        }
    }

    #[test]
    fn backlog_drop_policies() {
        for (policy, kept) in [(DropPolicy::Newest, [0, 1]), (DropPolicy::Oldest, [1, 2])] {
            let mut q = Backlog::new(2, policy);
            let dropped: u64 = (0..3).map(|i| q.push(rec(i, 1))).sum();
            assert_eq!(dropped, 1);
            let mut b = Batch::new(LIMITS);
            q.fill(&mut b);
            let ts: Vec<_> = b.take().iter().map(|r| r.ts_ns).collect();
            assert_eq!(ts, kept.map(|k| k as i64));
        }
    }

    proptest! {
        #[test]
        fn a_batch_never_exceeds_its_byte_limit(
            lens in proptest::collection::vec(0usize..200, 0..300),
            max_records in 1usize..50,
            max_bytes in 200usize..2000,
        ) {
            let limits = Limits { max_records, max_bytes };
            let mut q = Backlog::new(10_000, DropPolicy::Newest);
            for (i, l) in lens.iter().enumerate() {
                q.push(rec(i, *l));
            }
            let mut seen = 0;
            while !q.is_empty() {
                let mut b = Batch::new(limits);
                q.fill(&mut b);
                prop_assert!(b.bytes() <= max_bytes && b.len() <= max_records && !b.is_empty());
                seen += b.take().len();
            }
            prop_assert_eq!(seen, lens.len());
        }
    }
}
