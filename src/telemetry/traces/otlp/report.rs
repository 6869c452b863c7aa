//! Export failures, reported at most once per interval instead of once per batch.
//!
//! A dead collector fails every export (one per batch, every few seconds); logging each would
//! flood the logs — and the Loki pipeline — with one identical line per batch. [`FailureLog`]
//! is the pure core: fed each export's outcome with the time, it says when to speak (the first
//! failure, then a summary at most once per interval, and once on recovery).
//! [`ReportingExporter`] wraps the OTLP exporter on the span processor's export thread, feeds
//! the core, and logs what it says.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::batch::Export;
use super::export::Exporter;

/// Fewest seconds between two export-failure log lines.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What to log after an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Exports are failing: `failures` failed exports (`spans` spans lost) since the last
    /// report, this one included.
    Failing { failures: u64, spans: u64 },
    /// An export succeeded after failures; `failures` / `spans` were not reported yet.
    Recovered { failures: u64, spans: u64 },
}

/// The pure state: failures not yet reported, and when the last report was made.
#[derive(Debug)]
pub struct FailureLog {
    interval: Duration,
    last_report: Option<Instant>,
    failing: bool,
    unreported_failures: u64,
    unreported_spans: u64,
}

impl FailureLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_report: None,
            failing: false,
            unreported_failures: 0,
            unreported_spans: 0,
        }
    }

    /// Records one export of `spans` spans that succeeded (`ok`) or failed, at `now`.
    pub fn record(&mut self, ok: bool, spans: u64, now: Instant) -> Option<Report> {
        if ok {
            if !self.failing {
                return None;
            }
            self.failing = false;
            let report = Report::Recovered {
                failures: self.unreported_failures,
                spans: self.unreported_spans,
            };
            self.unreported_failures = 0;
            self.unreported_spans = 0;
            self.last_report = None;
            return Some(report);
        }
        self.failing = true;
        self.unreported_failures += 1;
        self.unreported_spans += spans;
        let due = self
            .last_report
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        self.last_report = Some(now);
        let report = Report::Failing {
            failures: self.unreported_failures,
            spans: self.unreported_spans,
        };
        self.unreported_failures = 0;
        self.unreported_spans = 0;
        Some(report)
    }

    /// Failures not reported yet (logged at shutdown).
    pub fn unreported(&self) -> (u64, u64) {
        (self.unreported_failures, self.unreported_spans)
    }
}

/// Wraps the exporter: failures go to the [`FailureLog`] and, when it says so, to the log.
#[derive(Debug)]
pub struct ReportingExporter {
    inner: Exporter,
    log: FailureLog,
}

impl ReportingExporter {
    pub fn new(inner: Exporter, interval: Duration) -> Self {
        Self {
            inner,
            log: FailureLog::new(interval),
        }
    }

    fn record(&mut self, ok: bool, spans: usize, error: &dyn std::fmt::Display) {
        let report = self.log.record(ok, spans as u64, Instant::now());
        if !ok {
            tracing::debug!(spans, error = %error, "trace export failed");
        }
        match report {
            Some(Report::Failing { failures, spans }) => tracing::warn!(
                failures,
                spans_lost = spans,
                error = %error,
                interval_s = REPORT_INTERVAL.as_secs(),
                "trace export to the OTLP collector failed; next report at most once per interval"
            ),
            Some(Report::Recovered { failures, spans }) => tracing::info!(
                failures,
                spans_lost = spans,
                "trace export to the OTLP collector works again"
            ),
            None => {}
        }
    }
}

impl Export for ReportingExporter {
    fn export(&mut self, request: Bytes, spans: usize) {
        match self.inner.export(request) {
            Ok(()) => self.record(true, spans, &""),
            Err(e) => self.record(false, spans, &e),
        }
    }

    fn shutdown(&mut self) {
        let (failures, spans) = self.log.unreported();
        if failures > 0 {
            tracing::warn!(
                failures,
                spans_lost = spans,
                "trace exports failed since the last report"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut log = FailureLog::new(s(60));
        assert_eq!(log.record(true, 5, t0), None);
        assert_eq!(
            log.record(false, 3, t0),
            Some(Report::Failing {
                failures: 1,
                spans: 3
            })
        );
        for i in 1..=10 {
            assert_eq!(log.record(false, 2, t0 + s(i)), None, "second {i}");
        }
        assert_eq!(log.unreported(), (10, 20));
        assert_eq!(
            log.record(false, 1, t0 + s(60)),
            Some(Report::Failing {
                failures: 11,
                spans: 21
            })
        );
        assert_eq!(log.record(false, 1, t0 + s(61)), None);
        assert_eq!(
            log.record(true, 4, t0 + s(62)),
            Some(Report::Recovered {
                failures: 1,
                spans: 1
            })
        );
        assert_eq!(log.record(true, 4, t0 + s(63)), None);
        // A new outage is reported at once.
        assert_eq!(
            log.record(false, 2, t0 + s(64)),
            Some(Report::Failing {
                failures: 1,
                spans: 2
            })
        );
    }
}
