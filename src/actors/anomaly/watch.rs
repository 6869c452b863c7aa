//! One provider's three detectors and the interval sums that feed two of them.
//!
//! Latency is scored per successful attempt. Error rate and spend are scored once per
//! `anomaly.interval` from what the interval saw (error rate only when the interval had at
//! least [`MIN_ATTEMPTS`] attempts, so one failure on a quiet provider is not a 100 % spike).

use super::ewma::{Detector, Spike, Thresholds};
use crate::board::Signal;
use crate::config::AnomalyConfig;

/// Fewest attempts in an interval for its error rate to be a sample.
pub const MIN_ATTEMPTS: u64 = 5;

#[derive(Debug, Clone)]
pub struct Watch {
    latency: Detector,
    errors: Detector,
    cost: Detector,
    ok: u64,
    failed: u64,
    spend: f64,
}

impl Watch {
    pub fn new(config: &AnomalyConfig) -> Self {
        let d = |s| Detector::new(Thresholds::for_signal(config, s));
        Self {
            latency: d(Signal::LatencySpike),
            errors: d(Signal::ErrorRateSpike),
            cost: d(Signal::CostSpike),
            ok: 0,
            failed: 0,
            spend: 0.0,
        }
    }

    /// An attempt: `Some(latency seconds)` when it succeeded, `None` when it failed.
    pub fn attempt(&mut self, latency: Option<f64>) -> Option<(Signal, Spike)> {
        match latency {
            Some(seconds) => {
                self.ok += 1;
                self.latency
                    .observe(seconds)
                    .map(|s| (Signal::LatencySpike, s))
            }
            None => {
                self.failed += 1;
                None
            }
        }
    }

    pub fn spend(&mut self, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.spend += usd;
        }
    }

    /// Closes an interval: scores its error rate and spend, and starts the next.
    pub fn interval(&mut self) -> Vec<(Signal, Spike)> {
        let mut out = Vec::new();
        let attempts = self.ok + self.failed;
        if attempts >= MIN_ATTEMPTS {
            let rate = self.failed as f64 / attempts as f64;
            if let Some(s) = self.errors.observe(rate) {
                out.push((Signal::ErrorRateSpike, s));
            }
        }
        if let Some(s) = self.cost.observe(self.spend) {
            out.push((Signal::CostSpike, s));
        }
        self.ok = 0;
        self.failed = 0;
        self.spend = 0.0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnomalyConfig {
        AnomalyConfig {
            warmup: 5,
            error_rate_floor: 0.2,
            cost_floor_usd: 0.5,
            ..AnomalyConfig::default()
        }
    }

    #[test]
    fn error_rate_spike_after_quiet_intervals() {
        let mut w = Watch::new(&config());
        for _ in 0..10 {
            for _ in 0..10 {
                w.attempt(Some(0.1));
            }
            assert!(w.interval().is_empty());
        }
        for _ in 0..10 {
            w.attempt(None);
        }
        let found = w.interval();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Signal::ErrorRateSpike);
    }

    #[test]
    fn cost_spike_needs_the_floor() {
        let mut w = Watch::new(&config());
        for _ in 0..10 {
            w.spend(0.01);
            w.interval();
        }
        w.spend(0.2);
        assert!(w.interval().is_empty(), "under the floor");
        w.spend(5.0);
        assert_eq!(w.interval()[0].0, Signal::CostSpike);
    }

    #[test]
    fn few_attempts_are_no_sample() {
        let mut w = Watch::new(&config());
        for _ in 0..20 {
            w.attempt(None);
            assert!(w.interval().is_empty());
        }
    }
}
