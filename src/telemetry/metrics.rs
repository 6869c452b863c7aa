//! OpenTelemetry meters exported to a Prometheus registry, named exactly as the catalogue.
//!
//! The exporter runs without unit suffixes, counter suffixes, scope labels or `target_info`:
//! every instrument is created with its full catalogue name (counters already end in
//! `_total`), so what Prometheus sees is the catalogue, byte for byte. Instruments the request
//! path updates live in [`Meters`]; figures that actors own (health, breakers, uptime,
//! efficiency, trials, log pipeline, process) are observable instruments whose callbacks read
//! published snapshots at scrape time. Label values come from the configuration only.

use std::sync::Arc;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _, UpDownCounter};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{self as cat, help, LATENCY_BUCKETS, OVERHEAD_BUCKETS};
use super::log_stats::LogStats;
use super::process;
use crate::actors::anomaly::Signal;
use crate::actors::board::Board;
use crate::auth::KeyStore;

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("prometheus exporter: {0}")]
    Exporter(String),
    #[error("encoding metrics: {0}")]
    Encode(#[from] prometheus::Error),
}

/// Instruments updated on the request path and by actors, with label values pre-built.
pub struct Meters {
    pub provider_requests: Counter<u64>,
    pub provider_failovers: Counter<u64>,
    pub provider_response_time: Histogram<f64>,
    pub model_requests: Counter<u64>,
    pub model_duration: Histogram<f64>,
    pub time_to_first_token: Histogram<f64>,
    pub overhead: Histogram<f64>,
    pub tokens: Counter<u64>,
    pub cost_by_provider: Counter<f64>,
    pub cost_by_model: Counter<f64>,
    pub unpriced: Counter<u64>,
    pub anomalies: Counter<u64>,
    pub http_requests: Counter<u64>,
    pub http_duration: Histogram<f64>,
    pub http_in_flight: UpDownCounter<i64>,
    /// `provider="NAME"` by provider index.
    pub provider_kv: Vec<KeyValue>,
    /// `model="ID"` by model index.
    pub model_kv: Vec<KeyValue>,
}

/// What observable instruments read at scrape time.
pub struct Sources {
    pub board: Arc<Board>,
    pub log_stats: Arc<LogStats>,
    pub keys: Arc<KeyStore>,
}

/// The registry, the meter provider that feeds it, and the meters.
pub struct Metrics {
    registry: prometheus::Registry,
    _provider: SdkMeterProvider,
    pub meters: Arc<Meters>,
}

fn histogram(meter: &Meter, name: &'static str, bounds: &[f64]) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_description(help(name))
        .with_boundaries(bounds.to_vec())
        .build()
}

fn counter(meter: &Meter, name: &'static str) -> Counter<u64> {
    meter.u64_counter(name).with_description(help(name)).build()
}

impl Metrics {
    pub fn new(sources: Sources) -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("gatewayz");
        let board = &sources.board;
        let meters = Meters {
            provider_requests: counter(&meter, cat::PROVIDER_REQUESTS),
            provider_failovers: counter(&meter, cat::PROVIDER_FAILOVERS),
            provider_response_time: histogram(&meter, cat::PROVIDER_RESPONSE_TIME, LATENCY_BUCKETS),
            model_requests: counter(&meter, cat::MODEL_REQUESTS),
            model_duration: histogram(&meter, cat::MODEL_DURATION, LATENCY_BUCKETS),
            time_to_first_token: histogram(&meter, cat::TIME_TO_FIRST_TOKEN, LATENCY_BUCKETS),
            overhead: histogram(&meter, cat::OVERHEAD, OVERHEAD_BUCKETS),
            tokens: counter(&meter, cat::TOKENS),
            cost_by_provider: meter
                .f64_counter(cat::COST_BY_PROVIDER)
                .with_description(help(cat::COST_BY_PROVIDER))
                .build(),
            cost_by_model: meter
                .f64_counter(cat::COST_BY_MODEL)
                .with_description(help(cat::COST_BY_MODEL))
                .build(),
            unpriced: counter(&meter, cat::UNPRICED_COMPLETIONS),
            anomalies: counter(&meter, cat::DETECTED_ANOMALIES),
            http_requests: counter(&meter, cat::HTTP_REQUESTS),
            http_duration: histogram(&meter, cat::HTTP_DURATION, LATENCY_BUCKETS),
            http_in_flight: meter
                .i64_up_down_counter(cat::HTTP_IN_FLIGHT)
                .with_description(help(cat::HTTP_IN_FLIGHT))
                .build(),
            provider_kv: board
                .provider_names
                .iter()
                .map(|n| KeyValue::new("provider", n.to_string()))
                .collect(),
            model_kv: board
                .model_names
                .iter()
                .map(|n| KeyValue::new("model", n.to_string()))
                .collect(),
        };
        // Alerts use rate() on anomalies: every type exists from the start, at 0.
        for signal in Signal::ALL {
            meters
                .anomalies
                .add(0, &[KeyValue::new("type", signal.label())]);
        }
        super::observables::register(&meter, &sources, &meters);
        Ok(Self {
            registry,
            _provider: provider,
            meters: Arc::new(meters),
        })
    }

    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Every family, gathered once.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Prometheus text format 0.0.4 of every family.
    pub fn encode(&self) -> Result<Vec<u8>, MetricsError> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Process figures, for the observable callbacks.
pub(super) fn process_reading() -> process::Reading {
    process::read()
}

/// Metrics over `board` with no keys and empty log stats, for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn test_metrics(board: Arc<Board>) -> Metrics {
    Metrics::new(Sources {
        board,
        log_stats: Arc::new(LogStats::default()),
        keys: Arc::new(KeyStore::new(&[])),
    })
    .unwrap()
}
