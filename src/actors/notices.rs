//! Typed events: an occurrence that both logs and counts is one struct whose `emit()` does
//! both, so the log line and the metric cannot drift apart. Fields, not formatted strings.

use opentelemetry::KeyValue;

use super::breakers::TripReason;
use crate::board::Anomaly;
use crate::board::Phase;
use crate::telemetry::metrics::Meters;

/// A breaker opened (the one-hot gauge reads the published phase).
pub struct BreakerOpened<'a> {
    pub provider: &'a str,
    pub reason: TripReason,
    pub cool_down: std::time::Duration,
}

impl BreakerOpened<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            provider = %self.provider,
            reason = %self.reason,
            cool_down_ms = self.cool_down.as_millis() as u64,
            "circuit breaker opened"
        );
    }
}

/// A breaker moved to half-open or closed.
pub struct BreakerMoved<'a> {
    pub provider: &'a str,
    pub phase: Phase,
}

impl BreakerMoved<'_> {
    pub fn emit(&self) {
        tracing::info!(provider = %self.provider, state = self.phase.label(), "circuit breaker moved");
    }
}

/// An anomaly episode began.
pub struct AnomalyDetected<'a> {
    pub anomaly: &'a Anomaly,
}

impl AnomalyDetected<'_> {
    pub fn emit(&self, meters: &Meters) {
        let a = self.anomaly;
        meters
            .anomalies
            .add(1, &[KeyValue::new("type", a.signal.label())]);
        tracing::warn!(
            provider = %a.provider,
            anomaly = a.signal.label(),
            value = a.value,
            baseline = a.baseline,
            z_score = a.z_score,
            "anomaly detected"
        );
    }
}
