//! `[breaker]`, `[health]`, `[anomaly]` and `[cost]`: the thresholds of the actors that watch
//! providers. Every value has a documented default tuned for real LLM traffic; tests shorten
//! the durations. Validation names the key, so a typo'd threshold stops start-up.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, Invalid};

/// `[breaker]`: per-provider circuit breakers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker. Default 5.
    pub consecutive_failures: u32,
    /// Error rate (0..1] over `window` that opens it, once `min_requests` were seen. Default 0.5.
    pub error_rate: f64,
    /// Fewest attempts in `window` before `error_rate` applies. Default 20.
    pub min_requests: u32,
    /// Span of the error-rate window. Default `"60s"`.
    #[serde(with = "duration")]
    pub window: Duration,
    /// How long an open breaker waits before letting probes through. Default `"30s"`.
    #[serde(with = "duration")]
    pub cool_down: Duration,
    /// Probe requests a half-open breaker lets through at once. Default 3.
    pub half_open_probes: u32,
    /// Successful probes that close a half-open breaker (at most `half_open_probes`). Default 2.
    pub close_after: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
            half_open_probes: 3,
            close_after: 2,
        }
    }
}

/// `[health]`: provider health scores and model uptime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Span of the rolling success / latency window. Default `"60s"`.
    #[serde(with = "duration")]
    pub window: Duration,
    /// p95 latency at or under which a provider gets full latency credit. Default `"5s"`.
    #[serde(with = "duration")]
    pub latency_target: Duration,
    /// How often scores are recomputed and published. Default `"1s"`.
    #[serde(with = "duration")]
    pub publish_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            latency_target: Duration::from_secs(5),
            publish_interval: Duration::from_secs(1),
        }
    }
}

/// `[anomaly]`: EWMA / z-score detection per provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// EWMA smoothing factor in (0, 1). Default 0.1.
    pub alpha: f64,
    /// Samples a detector learns from before it may report. Default 30.
    pub warmup: u32,
    /// z-score above which a sample is anomalous. Default 4.0.
    pub z_threshold: f64,
    /// Smallest latency rise over the mean that counts. Default `"500ms"`.
    #[serde(with = "duration")]
    pub latency_floor: Duration,
    /// Smallest error-rate rise (absolute, 0..1) that counts. Default 0.2.
    pub error_rate_floor: f64,
    /// Smallest spend rise per interval in USD that counts. Default 1.0.
    pub cost_floor_usd: f64,
    /// Interval over which error rate and spend are sampled. Default `"10s"`.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Recent anomalies kept for `/health/anomalies`. Default 100.
    pub recent: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            alpha: 0.1,
            warmup: 30,
            z_threshold: 4.0,
            latency_floor: Duration::from_millis(500),
            error_rate_floor: 0.2,
            cost_floor_usd: 1.0,
            interval: Duration::from_secs(10),
            recent: 100,
        }
    }
}

/// `[cost]`: spend and token efficiency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Window over which `gatewayz_token_efficiency` is computed. Default `"1h"`.
    #[serde(with = "duration")]
    pub efficiency_window: Duration,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            efficiency_window: Duration::from_secs(3600),
        }
    }
}

fn positive(key: &str, d: Duration) -> Result<(), Invalid> {
    if d.is_zero() {
        return Err(Invalid::new(key, "must be greater than 0s"));
    }
    Ok(())
}

impl BreakerConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.consecutive_failures == 0 {
            return Err(Invalid::new(
                "breaker.consecutive_failures",
                "must be at least 1",
            ));
        }
        if !(self.error_rate > 0.0 && self.error_rate <= 1.0) {
            return Err(Invalid::new("breaker.error_rate", "must be in (0, 1]"));
        }
        if self.min_requests == 0 {
            return Err(Invalid::new("breaker.min_requests", "must be at least 1"));
        }
        positive("breaker.window", self.window)?;
        positive("breaker.cool_down", self.cool_down)?;
        if self.half_open_probes == 0 {
            return Err(Invalid::new(
                "breaker.half_open_probes",
                "must be at least 1",
            ));
        }
        if self.close_after == 0 || self.close_after > self.half_open_probes {
            return Err(Invalid::new(
                "breaker.close_after",
                format!("must be 1 to half_open_probes ({})", self.half_open_probes),
            ));
        }
        Ok(())
    }
}

impl HealthConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive("health.window", self.window)?;
        positive("health.latency_target", self.latency_target)?;
        positive("health.publish_interval", self.publish_interval)
    }
}

impl AnomalyConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Invalid::new("anomaly.alpha", "must be in (0, 1)"));
        }
        if !(self.z_threshold.is_finite() && self.z_threshold > 0.0) {
            return Err(Invalid::new(
                "anomaly.z_threshold",
                "must be a positive number",
            ));
        }
        if !(self.error_rate_floor >= 0.0 && self.error_rate_floor <= 1.0) {
            return Err(Invalid::new(
                "anomaly.error_rate_floor",
                "must be in [0, 1]",
            ));
        }
        if !(self.cost_floor_usd.is_finite() && self.cost_floor_usd >= 0.0) {
            return Err(Invalid::new(
                "anomaly.cost_floor_usd",
                "must be a non-negative number",
            ));
        }
        positive("anomaly.interval", self.interval)?;
        if self.recent == 0 || self.recent > 10_000 {
            return Err(Invalid::new("anomaly.recent", "must be 1 to 10000"));
        }
        Ok(())
    }
}

impl CostConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive("cost.efficiency_window", self.efficiency_window)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Config;

    const BASE: &str = "[providers.p]\nkind = \"mock\"\n[models.m]\nproviders = [\"p\"]\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{BASE}{extra}"), "t.toml", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_and_sections_parse() {
        let c = parse("[breaker]\ncool_down = \"2s\"\n[anomaly]\nwarmup = 5\n").unwrap();
        assert_eq!(c.breaker.cool_down.as_secs(), 2);
        assert_eq!(c.breaker.consecutive_failures, 5);
        assert_eq!(c.anomaly.warmup, 5);
        assert_eq!(c.health.latency_target.as_secs(), 5);
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[breaker]\nerror_rate = 1.5\n", "breaker.error_rate"),
            ("[breaker]\nclose_after = 9\n", "breaker.close_after"),
            ("[health]\nwindow = \"0s\"\n", "health.window"),
            ("[anomaly]\nalpha = 1.0\n", "anomaly.alpha"),
            ("[anomaly]\nz_treshold = 3.0\n", "z_treshold"),
            (
                "[cost]\nefficiency_window = \"0s\"\n",
                "cost.efficiency_window",
            ),
        ];
        for (extra, key) in cases {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(key), "{extra}: {err}");
            assert!(
                err.contains(":6:") || err.contains("line 6"),
                "{extra}: {err}"
            );
        }
    }
}
