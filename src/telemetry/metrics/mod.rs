//! OpenTelemetry meters exported to a Prometheus registry, named exactly as the catalogue.
//!
//! [`catalogue`] names every family once (registration, the docs page and the contract tests
//! read it); this module builds the meters; [`observables`] registers the scrape-time
//! callbacks; [`exposition`] encodes a category's families.
//!
//! The exporter runs without unit suffixes, counter suffixes, scope labels or `target_info`:
//! every instrument is created with its full catalogue name (counters already end in
//! `_total`), so what Prometheus sees is the catalogue, byte for byte. Instruments the request
//! path updates live in [`Meters`]; figures that actors own (health, breakers, uptime,
//! efficiency, trials, log pipeline, process) are observable instruments whose callbacks read
//! published snapshots at scrape time. Label values come from the configuration only.
//!
//! Instruments carry the canonical `gatewayz_*` names; [`Metrics::gather`] adds the seed's
//! historical names as copies of the gathered families ([`exposition::with_aliases`]), so
//! recording never happens twice and the request path does not know aliases exist;
//! `[metrics] legacy_names = false` leaves them out.

use std::sync::Arc;

use arc_swap::ArcSwap;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

pub mod catalogue;
pub mod exposition;
pub mod hot;
pub mod log_stats;
mod observables;
mod process;
pub mod protocol_errors;

use catalogue::{self as cat, help, LATENCY_BUCKETS, OVERHEAD_BUCKETS};
use log_stats::LogStats;

use crate::board::{Board, Signal};

/// Counts the trial keys still active at a moment (the key store's, handed in by `app`).
pub type ActiveTrials = Arc<dyn Fn(std::time::SystemTime) -> usize + Send + Sync>;

/// Reads every budget's USD left at a moment, one `observe(usd, labels)` call each (the
/// limits store's, handed in by `app`).
pub type BudgetsLeft =
    Arc<dyn Fn(std::time::SystemTime, &mut dyn FnMut(f64, &[KeyValue])) + Send + Sync>;

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
    /// Requests, attempts, latencies, tokens and cost by provider and model, and the HTTP
    /// server's figures: recorded on every request, so kept without the SDK ([`hot`]).
    pub hot: Arc<hot::Hot>,
    pub unpriced: Counter<u64>,
    /// Spend and tokens by client key and team, refusals by reason, soft budgets crossed.
    pub cost_by_key: Counter<f64>,
    pub tokens_by_key: Counter<u64>,
    pub limit_refusals: Counter<u64>,
    pub soft_budget_crossings: Counter<u64>,
    /// The shared limit store: round trips, failures, admissions decided without it,
    /// settlements lost, and whether it answers ([`SharedUp`]).
    pub shared_state_duration: Histogram<f64>,
    pub shared_state_errors: Counter<u64>,
    pub shared_state_bypassed: Counter<u64>,
    pub shared_state_lost: Counter<u64>,
    pub shared_state_up: Arc<SharedUp>,
    /// The usage ledger: records by outcome, failed writes, batch write time, and the
    /// records waiting ([`Depth`]).
    pub ledger_records: Counter<u64>,
    pub ledger_write_errors: Counter<u64>,
    pub ledger_write_duration: Histogram<f64>,
    pub ledger_queue: Arc<Depth>,
    pub anomalies: Counter<u64>,
    /// Configuration reloads by result (`applied`, `refused`).
    pub config_reloads: Counter<u64>,
}

/// The `provider` and `model` labels by id, built once per configuration (a reload builds
/// new ones), so labelling a measurement clones a reference count, not a string.
pub struct Labels {
    /// `provider="NAME"` by provider index.
    pub provider: Vec<KeyValue>,
    /// `model="ID"` by model index.
    pub model: Vec<KeyValue>,
}

impl Labels {
    /// The labels of every provider and model on `board`, the retired's included.
    pub fn new(board: &Board) -> Self {
        Self {
            provider: board
                .provider_names
                .iter()
                .map(|n| label("provider", n))
                .collect(),
            model: board
                .model_names
                .iter()
                .map(|n| label("model", n))
                .collect(),
        }
    }
}

/// Whether the shared limit store answers, as `gatewayz_shared_state_up` shows it: absent
/// while no shared store is configured.
#[derive(Debug, Default)]
pub struct SharedUp(std::sync::atomic::AtomicU8);

impl SharedUp {
    const ABSENT: u8 = 0;
    const DOWN: u8 = 1;
    const UP: u8 = 2;

    /// The store answers (`true`) or not.
    pub fn set(&self, up: bool) {
        let v = if up { Self::UP } else { Self::DOWN };
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    /// `None` without a shared store.
    pub fn get(&self) -> Option<bool> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::ABSENT => None,
            v => Some(v == Self::UP),
        }
    }
}

/// A queue's depth for a gauge that is absent until the queue exists.
#[derive(Debug)]
pub struct Depth(std::sync::atomic::AtomicI64);

impl Default for Depth {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicI64::new(-1))
    }
}

impl Depth {
    pub fn set(&self, n: i64) {
        self.0.store(n.max(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// `None` until [`Depth::set`].
    pub fn get(&self) -> Option<u64> {
        u64::try_from(self.0.load(std::sync::atomic::Ordering::Relaxed)).ok()
    }
}

/// What observable instruments read at scrape time.
pub struct Sources {
    /// The published state of the configuration in force (a reload swaps it).
    pub board: Arc<ArcSwap<Board>>,
    pub log_stats: Arc<LogStats>,
    pub trials: ActiveTrials,
    pub budgets: BudgetsLeft,
}

/// No budgets to report (tools and tests without a limits store).
pub fn no_budgets() -> BudgetsLeft {
    Arc::new(|_, _| {})
}

/// The registry, the meter provider that feeds it, and the meters.
pub struct Metrics {
    registry: prometheus::Registry,
    _provider: SdkMeterProvider,
    pub meters: Arc<Meters>,
    /// Whether [`Metrics::gather`] adds the seed's historical names (`[metrics]
    /// legacy_names`, default true).
    legacy_names: bool,
}

fn histogram(meter: &Meter, name: &'static str, bounds: &[f64]) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_description(help(name))
        .with_boundaries(bounds.to_vec())
        .build()
}

/// A label whose value is shared, so cloning it on the request path is a reference count,
/// not an allocation.
pub fn label(key: &'static str, value: &Arc<str>) -> KeyValue {
    KeyValue::new(key, Value::String(StringValue::from(value.clone())))
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
        Ok(Self::assemble(Some(registry), provider, &sources))
    }

    /// Metrics, or — when the exporter cannot be built — the same meters recording into
    /// nothing and an empty registry: the gateway keeps serving, `/metrics` is empty, and the
    /// error is logged. A metrics failure never refuses a request.
    pub fn new_or_detached(sources: Sources) -> Self {
        Self::new_with(sources, Self::new)
    }

    fn new_with(
        sources: Sources,
        build: impl FnOnce(Sources) -> Result<Self, MetricsError>,
    ) -> Self {
        let keep = Sources {
            board: sources.board.clone(),
            log_stats: sources.log_stats.clone(),
            trials: sources.trials.clone(),
            budgets: sources.budgets.clone(),
        };
        build(sources).unwrap_or_else(|e| {
            tracing::error!(error = %e, "metrics are unavailable; serving without them");
            Self::assemble(None, SdkMeterProvider::builder().build(), &keep)
        })
    }

    /// The meters over `provider`, exported through `registry`; `None`: recording into
    /// nothing, an empty registry.
    fn assemble(
        registry: Option<prometheus::Registry>,
        provider: SdkMeterProvider,
        sources: &Sources,
    ) -> Self {
        let meter = provider.meter("gatewayz");
        let hot = Arc::new(hot::Hot::default());
        let registry = match registry {
            Some(registry) => {
                let collector = hot::HotCollector::new(hot.clone(), sources.board.clone());
                if let Err(e) = registry.register(Box::new(collector)) {
                    tracing::error!(error = %e, "the request path's metrics are not exported");
                }
                registry
            }
            None => prometheus::Registry::new(),
        };
        let meters = Meters {
            hot,
            unpriced: counter(&meter, cat::UNPRICED_COMPLETIONS),
            cost_by_key: meter
                .f64_counter(cat::COST_BY_KEY)
                .with_description(help(cat::COST_BY_KEY))
                .build(),
            tokens_by_key: counter(&meter, cat::TOKENS_BY_KEY),
            limit_refusals: counter(&meter, cat::LIMIT_REFUSALS),
            soft_budget_crossings: counter(&meter, cat::SOFT_BUDGET_CROSSINGS),
            shared_state_duration: histogram(&meter, cat::SHARED_STATE_DURATION, OVERHEAD_BUCKETS),
            shared_state_errors: counter(&meter, cat::SHARED_STATE_ERRORS),
            shared_state_bypassed: counter(&meter, cat::SHARED_STATE_BYPASSED),
            shared_state_lost: counter(&meter, cat::SHARED_STATE_LOST_SETTLEMENTS),
            shared_state_up: Arc::default(),
            ledger_records: counter(&meter, cat::LEDGER_RECORDS),
            ledger_write_errors: counter(&meter, cat::LEDGER_WRITE_ERRORS),
            ledger_write_duration: histogram(&meter, cat::LEDGER_WRITE_DURATION, LATENCY_BUCKETS),
            ledger_queue: Arc::default(),
            anomalies: counter(&meter, cat::DETECTED_ANOMALIES),
            config_reloads: counter(&meter, cat::CONFIG_RELOADS),
        };
        for result in ["applied", "refused"] {
            meters
                .config_reloads
                .add(0, &[KeyValue::new("result", result)]);
        }
        // Alerts use rate() on anomalies: every type exists from the start, at 0.
        for signal in Signal::ALL {
            meters
                .anomalies
                .add(0, &[KeyValue::new("type", signal.label())]);
        }
        observables::register(&meter, sources, &meters);
        Self {
            registry,
            _provider: provider,
            meters: Arc::new(meters),
            legacy_names: true,
        }
    }

    /// Whether the seed's historical names are exported too (`[metrics] legacy_names`).
    pub fn with_legacy_names(self, legacy_names: bool) -> Self {
        Self {
            legacy_names,
            ..self
        }
    }

    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Every family, gathered once, each aliased family followed by its copy under the
    /// seed's historical name (unless `[metrics] legacy_names = false`).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let families = self.registry.gather();
        if self.legacy_names {
            exposition::with_aliases(families)
        } else {
            families
        }
    }

    /// Prometheus text format 0.0.4 of every family (historical aliases included).
    pub fn encode(&self) -> Result<Vec<u8>, MetricsError> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.gather(), &mut out)?;
        Ok(out)
    }
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Process figures, for the observable callbacks.
fn process_reading() -> process::Reading {
    process::read()
}

/// Metrics over `board` with no keys and empty log stats, for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn test_metrics(board: Arc<Board>) -> Metrics {
    Metrics::new(Sources {
        board: Arc::new(ArcSwap::new(board)),
        log_stats: Arc::new(LogStats::default()),
        trials: Arc::new(|_| 0),
        budgets: no_budgets(),
    })
    .unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;
    use crate::telemetry::metrics::catalogue::FAMILIES;

    /// An exporter that cannot be built leaves working (recording-into-nothing) meters and an
    /// empty registry instead of an error: the gateway serves without metrics.
    #[test]
    fn a_failed_exporter_degrades_to_no_metrics() {
        let board = Arc::new(
            crate::catalog::Catalog::new(&crate::config::Config::builtin().unwrap()).board(),
        );
        let metrics = Metrics::new_with(
            Sources {
                board: Arc::new(ArcSwap::new(board)),
                log_stats: Arc::new(LogStats::default()),
                trials: Arc::new(|_| 0),
                budgets: no_budgets(),
            },
            |_| Err(MetricsError::Exporter("broken on purpose".into())),
        );
        metrics.meters.hot.http_in_flight.add(1, &());
        metrics
            .meters
            .unpriced
            .add(1, &[KeyValue::new("provider", "p")]);
        assert!(metrics.gather().is_empty());
        assert!(metrics.encode().unwrap().is_empty());
    }

    /// Every catalogue family comes out under exactly its names (canonical, and the seed's
    /// alias where it has one) and type, and nothing else does.
    #[test]
    fn exposed_families_are_exactly_the_catalogue() {
        let board = Arc::new(
            crate::catalog::Catalog::new(&crate::config::Config::builtin().unwrap()).board(),
        );
        board.uptime.store(Arc::new(vec![Some(1.0), None]));
        board.efficiency.store(Arc::new(vec![Some(0.5), None]));
        let labels = Labels::new(&board);
        let metrics = Metrics::new(Sources {
            board: Arc::new(ArcSwap::new(board)),
            log_stats: Arc::new(LogStats::default()),
            trials: Arc::new(|_| 0),
            budgets: Arc::new(|_, observe| {
                observe(
                    1.5,
                    &[KeyValue::new("scope", "key"), KeyValue::new("name", "k")],
                )
            }),
        })
        .unwrap();
        let m = &metrics.meters;
        let pm = [labels.provider[0].clone(), labels.model[0].clone()];
        let h = &m.hot;
        let completion = hot::Completion {
            provider: Some(0),
            model: 0,
            api: "chat",
        };
        h.provider_requests.add(
            1,
            &hot::Attempt {
                provider: 0,
                outcome: "success",
                reason: "none",
            },
        );
        h.provider_failovers.add(1, &hot::Provider(0));
        h.provider_response_time.record(0.1, &hot::Provider(0));
        h.model_requests.add(
            1,
            &hot::CompletionStatus {
                completion,
                value: "success",
            },
        );
        h.model_duration.record(0.1, &completion);
        h.time_to_first_token.record(0.1, &completion);
        h.overhead.record(0.0001, &());
        h.tokens.add(
            1,
            &hot::CompletionTokens {
                completion,
                value: "input",
            },
        );
        h.cost_by_provider.add(0.1, &hot::Provider(0));
        h.cost_by_model.add(0.1, &hot::Model(0));
        m.unpriced.add(1, &pm);
        let kt = [KeyValue::new("key", "k"), KeyValue::new("team", "none")];
        m.cost_by_key.add(0.1, &kt);
        m.tokens_by_key.add(1, &kt);
        m.limit_refusals.add(1, &kt);
        m.soft_budget_crossings.add(1, &[]);
        m.shared_state_duration
            .record(0.0001, &[KeyValue::new("op", "admit")]);
        m.shared_state_errors
            .add(1, &[KeyValue::new("op", "admit")]);
        m.shared_state_bypassed
            .add(1, &[KeyValue::new("policy", "fail_open")]);
        m.shared_state_lost.add(1, &[]);
        m.shared_state_up.set(true);
        m.ledger_records
            .add(1, &[KeyValue::new("outcome", "written")]);
        m.ledger_write_errors.add(1, &[]);
        m.ledger_write_duration.record(0.01, &[]);
        m.ledger_queue.set(3);
        let route = hot::Route {
            method: "GET",
            route: "/metrics".into(),
        };
        h.http_requests.add(
            1,
            &hot::RouteStatus {
                route: route.clone(),
                status: 200,
            },
        );
        h.http_duration.record(0.1, &route);
        h.http_in_flight.add(1, &());
        let text = String::from_utf8(metrics.encode().unwrap()).unwrap();
        let exposed: BTreeSet<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .collect();
        let expected: BTreeSet<(String, String)> = FAMILIES
            .iter()
            .flat_map(|f| {
                f.names()
                    .map(|n| (n.to_owned(), f.kind.as_str().to_owned()))
            })
            .collect();
        assert_eq!(exposed, expected, "{text}");
        assert!(
            !text.contains("otel_scope") && !text.contains("target_info"),
            "{text}"
        );
        for name in [
            "gatewayz_provider_response_time_seconds",
            "provider_response_time_seconds",
        ] {
            for le in ["0.005", "120"] {
                let bucket = format!("\n{name}_bucket{{provider=\"mock-a\",le=\"{le}\"}} ");
                assert!(text.contains(&bucket), "{bucket} in {text}");
            }
        }
        assert!(text.contains("gatewayz_overhead_seconds_bucket{le=\"0.00001\"}"));
    }
}
