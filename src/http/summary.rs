//! `GET /prometheus/metrics/summary`: the figures an operator reads at a glance, computed
//! from the same gathered families a scrape returns — so the summary and the counters can
//! never disagree.
//!
//! Schema (all counts since start, money in USD, latencies in seconds):
//!
//! ```json
//! {
//!   "generated_at": 1795887408.5,
//!   "totals": {"requests": 120, "errors": 3, "error_rate": 0.025,
//!              "tokens": {"input": 5400, "output": 2100}, "cost_usd": 0.0456},
//!   "providers": [{"provider": "openai", "health_score": 0.98, "breaker_state": "closed",
//!                  "requests": 80, "errors": 2, "error_rate": 0.025,
//!                  "latency_seconds": {"p50": 0.21, "p95": 0.9}}],
//!   "models": [{"model": "gpt-4o-mini", "requests": 100, "errors": 1, "uptime_24h": 0.99,
//!               "token_efficiency": 0.4, "cost_usd": 0.04,
//!               "tokens": {"input": 5000, "output": 2000}}],
//!   "apis": [{"api": "chat", "requests": 90, "errors": 1, "error_rate": 0.011,
//!             "tokens": {"input": 4000, "output": 2000}}],
//!   "trials_active": 2,
//!   "anomalies_last_hour": {"count": 1, "by_type": {"latency_spike": 1}}
//! }
//! ```
//!
//! `requests` / `errors` of totals and models count finished client requests that reached a
//! provider (`model_inference_requests_total`; errors are every status but `success`);
//! providers count attempts (`gatewayz_provider_requests_total`; errors are `error` and
//! `timeout`). `apis` lists every API the gateway serves (the `api` label's fixed set), with
//! zeros for one not called yet. Percentiles are interpolated within histogram buckets, as `histogram_quantile`
//! does. A figure not known yet (no traffic) is `null`.

use std::collections::BTreeMap;

use prometheus::proto::{Metric, MetricFamily};
use serde::Serialize;

use crate::board::Anomaly;
use crate::telemetry::metrics::catalogue as cat;

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    pub generated_at: f64,
    pub totals: Totals,
    pub providers: Vec<ProviderSummary>,
    pub models: Vec<ModelSummary>,
    pub apis: Vec<ApiSummary>,
    pub trials_active: u64,
    pub anomalies_last_hour: AnomalyCount,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub tokens: Tokens,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ProviderSummary {
    pub provider: String,
    pub health_score: Option<f64>,
    pub breaker_state: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub latency_seconds: Latency,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ModelSummary {
    pub model: String,
    pub requests: u64,
    pub errors: u64,
    pub uptime_24h: Option<f64>,
    pub token_efficiency: Option<f64>,
    pub cost_usd: f64,
    pub tokens: Tokens,
}

/// Finished client requests and tokens of one API (`chat`, `embeddings`, …).
#[derive(Debug, Serialize, PartialEq)]
pub struct ApiSummary {
    pub api: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub tokens: Tokens,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct AnomalyCount {
    pub count: u64,
    pub by_type: BTreeMap<String, u64>,
}

pub(crate) fn label<'a>(metric: &'a Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// Series of the family `name`, if gathered.
pub(crate) fn series<'a>(families: &'a [MetricFamily], name: &str) -> &'a [Metric] {
    families
        .iter()
        .find(|f| f.name() == name)
        .map_or(&[], |f| f.get_metric())
}

/// Sum of a counter's series whose labels pass `keep`. An empty `f64` sum is `-0.0` (the
/// identity that keeps `-0.0 + -0.0` negative), which JSON would show as `-0.0`; adding `0.0`
/// turns it into `0.0` and changes nothing else.
pub(crate) fn counter_sum(
    families: &[MetricFamily],
    name: &str,
    keep: impl Fn(&Metric) -> bool,
) -> f64 {
    series(families, name)
        .iter()
        .filter(|m| keep(m))
        .map(|m| m.get_counter().get_value())
        .sum::<f64>()
        + 0.0
}

fn gauge_of(families: &[MetricFamily], name: &str, key: &str, value: &str) -> Option<f64> {
    series(families, name)
        .iter()
        .find(|m| label(m, key) == Some(value))
        .map(|m| m.get_gauge().get_value() + 0.0)
}

fn rate(errors: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| errors as f64 / total as f64)
}

/// The `q` quantile of cumulative `(upper bound, count)` buckets holding `total` samples,
/// interpolated linearly within the bucket, as Prometheus's `histogram_quantile`.
pub fn quantile(q: f64, buckets: &[(f64, u64)], total: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let in_bucket = cumulative.saturating_sub(below);
            if in_bucket == 0 {
                return Some(upper);
            }
            let fraction = (rank - below as f64) / in_bucket as f64;
            return Some(lower + (upper - lower) * fraction);
        }
        lower = upper;
        below = cumulative;
    }
    // Beyond the last finite bound (the implicit +Inf bucket): the last bound, as Prometheus.
    Some(lower)
}

fn latency(families: &[MetricFamily], provider: &str) -> Latency {
    let Some(metric) = series(families, cat::PROVIDER_RESPONSE_TIME)
        .iter()
        .find(|m| label(m, "provider") == Some(provider))
    else {
        return Latency {
            p50: None,
            p95: None,
        };
    };
    let h = metric.get_histogram();
    let buckets: Vec<(f64, u64)> = h
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    let total = h.get_sample_count();
    Latency {
        p50: quantile(0.5, &buckets, total),
        p95: quantile(0.95, &buckets, total),
    }
}

fn tokens(families: &[MetricFamily], keep: impl Fn(&Metric) -> bool) -> Tokens {
    let of = |kind: &str| {
        counter_sum(families, cat::TOKENS, |m| {
            keep(m) && label(m, "type") == Some(kind)
        }) as u64
    };
    Tokens {
        input: of("input"),
        output: of("output"),
    }
}

/// Builds the summary from gathered families, the configured names, the `api` label values
/// and recent anomalies.
pub fn summarize(
    families: &[MetricFamily],
    providers: &[impl AsRef<str>],
    models: &[impl AsRef<str>],
    apis: &[&str],
    anomalies: &[Anomaly],
    now_unix: f64,
) -> Summary {
    let requests = counter_sum(families, cat::MODEL_REQUESTS, |_| true) as u64;
    let errors = counter_sum(families, cat::MODEL_REQUESTS, |m| {
        label(m, "status") != Some("success")
    }) as u64;
    let provider_summaries = providers
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let mine = |m: &Metric| label(m, "provider") == Some(p);
            let attempts = counter_sum(families, cat::PROVIDER_REQUESTS, mine) as u64;
            let failed = counter_sum(families, cat::PROVIDER_REQUESTS, |m| {
                mine(m) && matches!(label(m, "outcome"), Some("error" | "timeout"))
            }) as u64;
            let breaker_state = series(families, cat::CIRCUIT_BREAKER_STATE)
                .iter()
                .find(|m| mine(m) && m.get_gauge().get_value() == 1.0)
                .and_then(|m| label(m, "state"))
                .map(str::to_owned);
            ProviderSummary {
                provider: p.to_owned(),
                health_score: gauge_of(families, cat::PROVIDER_HEALTH_SCORE, "provider", p),
                breaker_state,
                requests: attempts,
                errors: failed,
                error_rate: rate(failed, attempts),
                latency_seconds: latency(families, p),
            }
        })
        .collect();
    let model_summaries = models
        .iter()
        .map(|id| {
            let id = id.as_ref();
            let mine = |m: &Metric| label(m, "model") == Some(id);
            ModelSummary {
                model: id.to_owned(),
                requests: counter_sum(families, cat::MODEL_REQUESTS, mine) as u64,
                errors: counter_sum(families, cat::MODEL_REQUESTS, |m| {
                    mine(m) && label(m, "status") != Some("success")
                }) as u64,
                uptime_24h: gauge_of(families, cat::MODEL_UPTIME_24H, "model", id),
                token_efficiency: gauge_of(families, cat::TOKEN_EFFICIENCY, "model", id),
                cost_usd: counter_sum(families, cat::COST_BY_MODEL, mine),
                tokens: tokens(families, mine),
            }
        })
        .collect();
    let api_summaries = apis
        .iter()
        .map(|api| {
            let mine = |m: &Metric| label(m, "api") == Some(api);
            let requests = counter_sum(families, cat::MODEL_REQUESTS, mine) as u64;
            let errors = counter_sum(families, cat::MODEL_REQUESTS, |m| {
                mine(m) && label(m, "status") != Some("success")
            }) as u64;
            ApiSummary {
                api: (*api).to_owned(),
                requests,
                errors,
                error_rate: rate(errors, requests),
                tokens: tokens(families, mine),
            }
        })
        .collect();
    let mut recent = AnomalyCount::default();
    for anomaly in anomalies.iter().filter(|a| a.at >= now_unix - 3600.0) {
        recent.count += 1;
        *recent
            .by_type
            .entry(anomaly.signal.label().to_owned())
            .or_default() += 1;
    }
    Summary {
        generated_at: now_unix,
        totals: Totals {
            requests,
            errors,
            error_rate: rate(errors, requests),
            tokens: tokens(families, |_| true),
            cost_usd: counter_sum(families, cat::COST_BY_PROVIDER, |_| true),
        },
        providers: provider_summaries,
        models: model_summaries,
        apis: api_summaries,
        trials_active: series(families, cat::TRIAL_ACTIVE)
            .first()
            .map_or(0, |m| m.get_gauge().get_value() as u64),
        anomalies_last_hour: recent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway that served nothing yet: no counter series, so every sum is empty.
    #[test]
    fn an_idle_gateway_reports_no_negative_zero() {
        let summary = summarize(&[], &["p"], &["m"], &["chat"], &[], 1.0);
        assert!(summary.totals.cost_usd.is_sign_positive());
        assert!(summary.models[0].cost_usd.is_sign_positive());
        assert_eq!(summary.apis[0].requests, 0);
        assert_eq!(summary.apis[0].error_rate, None);
        let json = serde_json::to_string(&summary).unwrap();
        assert!(!json.contains("-0"), "{json}");
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 10 samples: 5 in (0, 0.1], 5 in (0.1, 0.5].
        let buckets = [(0.1, 5), (0.5, 10), (f64::INFINITY, 10)];
        assert_eq!(quantile(0.5, &buckets, 10), Some(0.1));
        let p95 = quantile(0.95, &buckets, 10).unwrap();
        assert!((p95 - 0.46).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(0.5, &buckets, 0), None);
        // Everything above the last finite bound: that bound.
        assert_eq!(
            quantile(0.99, &[(0.1, 0), (f64::INFINITY, 4)], 4),
            Some(0.1)
        );
        assert_eq!(quantile(0.99, &[(0.1, 0)], 4), Some(0.1));
    }
}
