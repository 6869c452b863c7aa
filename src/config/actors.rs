//! `[breaker]`, `[health]`, `[anomaly]` and `[cost]`: the thresholds of the actors that watch
//! providers. Every value has a documented default tuned for real LLM traffic; tests shorten
//! the durations. Validation names the key, so a typo'd threshold stops start-up, and bounds
//! every value: a breaker's `open until` is `now + cool_down`, and the interval timers
//! (`health.publish_interval`, `anomaly.interval`) have a floor so they cannot spin.

use std::time::Duration;

use serde::Deserialize;

use super::bounds::{self, DAY, HOUR};
use super::{duration, Invalid};

/// `[breaker]`: per-provider circuit breakers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker. Default 5; 1 to 10000.
    pub consecutive_failures: u32,
    /// Error rate (0..1] over `window` that opens it, once `min_requests` were seen. Default 0.5.
    pub error_rate: f64,
    /// Fewest attempts in `window` before `error_rate` applies. Default 20; 1 to 1000000.
    pub min_requests: u32,
    /// Span of the error-rate window. Default `"60s"`; more than 0s, at most 24h.
    #[serde(with = "duration")]
    pub window: Duration,
    /// How long an open breaker waits before letting probes through. Default `"30s"`; more
    /// than 0s, at most 24h.
    #[serde(with = "duration")]
    pub cool_down: Duration,
    /// Probe requests a half-open breaker lets through at once. Default 3; 1 to 1000.
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Span of the rolling success / latency window. Default `"60s"`; more than 0s, at most
    /// 24h.
    #[serde(with = "duration")]
    pub window: Duration,
    /// p95 latency at or under which a provider gets full latency credit. Default `"5s"`;
    /// more than 0s, at most 1h.
    #[serde(with = "duration")]
    pub latency_target: Duration,
    /// How often scores are recomputed and published. Default `"1s"`; 10ms to 1h.
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// EWMA smoothing factor in (0, 1). Default 0.1.
    pub alpha: f64,
    /// Samples a detector learns from before it may report. Default 30; 0 to 1000000.
    pub warmup: u32,
    /// z-score above which a sample is anomalous. Default 4.0; more than 0, at most 1000.
    pub z_threshold: f64,
    /// Smallest latency rise over the mean that counts. Default `"500ms"`; at most 1h.
    #[serde(with = "duration")]
    pub latency_floor: Duration,
    /// Smallest error-rate rise (absolute, 0..1) that counts. Default 0.2.
    pub error_rate_floor: f64,
    /// Smallest spend rise per interval in USD that counts. Default 1.0; 0 to 1000000.
    pub cost_floor_usd: f64,
    /// Interval over which error rate and spend are sampled. Default `"10s"`; 10ms to 24h.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Recent anomalies kept for `/health/anomalies`. Default 100; 1 to 10000.
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Window over which `gatewayz_token_efficiency` is computed. Default `"1h"`; more than
    /// 0s, at most 30 days.
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

/// The floor of the interval timers: a shorter period would keep an actor busy catching up.
const MIN_TIMER: Duration = Duration::from_millis(10);

impl BreakerConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        bounds::count(
            "breaker.consecutive_failures",
            self.consecutive_failures,
            1,
            10_000,
        )?;
        if !(self.error_rate > 0.0 && self.error_rate <= 1.0) {
            return Err(Invalid::new("breaker.error_rate", "must be in (0, 1]"));
        }
        bounds::count("breaker.min_requests", self.min_requests, 1, 1_000_000)?;
        bounds::positive("breaker.window", self.window, DAY)?;
        bounds::positive("breaker.cool_down", self.cool_down, DAY)?;
        bounds::count("breaker.half_open_probes", self.half_open_probes, 1, 1000)?;
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
        bounds::positive("health.window", self.window, DAY)?;
        bounds::positive("health.latency_target", self.latency_target, HOUR)?;
        bounds::between(
            "health.publish_interval",
            self.publish_interval,
            MIN_TIMER,
            HOUR,
        )
    }
}

impl AnomalyConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Invalid::new("anomaly.alpha", "must be in (0, 1)"));
        }
        bounds::count("anomaly.warmup", self.warmup, 0, 1_000_000)?;
        if !(self.z_threshold > 0.0 && self.z_threshold <= 1000.0) {
            return Err(Invalid::new("anomaly.z_threshold", "must be in (0, 1000]"));
        }
        bounds::at_most("anomaly.latency_floor", self.latency_floor, HOUR)?;
        bounds::number("anomaly.error_rate_floor", self.error_rate_floor, 0.0, 1.0)?;
        bounds::number(
            "anomaly.cost_floor_usd",
            self.cost_floor_usd,
            0.0,
            1_000_000.0,
        )?;
        bounds::between("anomaly.interval", self.interval, MIN_TIMER, DAY)?;
        bounds::count("anomaly.recent", self.recent, 1, 10_000)
    }
}

impl CostConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        bounds::positive("cost.efficiency_window", self.efficiency_window, 30 * DAY)
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
