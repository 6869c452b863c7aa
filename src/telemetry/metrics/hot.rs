//! The request path's counters and histograms, recorded without hashing attribute sets.
//!
//! The OpenTelemetry SDK looks every measurement's series up by its attribute set: it hashes
//! the `KeyValue` slice with SipHash, compares it, sorts it on first sight (~800 instructions
//! each, 10 to 14 measurements per request). Here a family keeps its series in a map keyed by
//! the label set's *ids* (provider and model indices, static label strings), hashed by a
//! small multiply-rotate hasher; a series is a few atomics. The registry reads them through
//! [`HotCollector`], which writes the families exactly as the OpenTelemetry exporter did:
//! the same names and help, counters as `counter`, the in-flight count as `gauge`, histograms
//! with the same buckets, labels sorted by name, and a series only once it was first recorded.
//! `tests` compare the two expositions for the same measurements.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::catalogue::{self as cat, help, LATENCY_BUCKETS, OVERHEAD_BUCKETS};
use crate::board::Board;

/// The names a series' ids stand for, read at scrape time.
pub struct Names<'a> {
    pub providers: &'a [Arc<str>],
    pub models: &'a [Arc<str>],
}

/// A label set: its names (sorted, as Prometheus shows them) and its values.
pub trait LabelSet: Hash + Eq + Clone + Send + Sync + 'static {
    const NAMES: &'static [&'static str];
    /// The values in [`LabelSet::NAMES`]' order; `None` if an id names nothing (never, as ids
    /// only grow).
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>>;
}

/// A multiply-rotate hasher (the one rustc uses): a few instructions per word, for keys made
/// of ids and the configuration's and the code's own label strings.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Fx {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }

    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.add(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, S> = HashMap<K, Arc<S>, BuildHasherDefault<Fx>>;

/// One value of a series.
pub trait Series: Default + Send + Sync + 'static {
    const TYPE: MetricType;
    fn write(&self, metric: &mut proto::Metric, bounds: &[f64]);
}

/// A family: series by label set, created on first use.
pub struct Family<K, S> {
    name: &'static str,
    bounds: &'static [f64],
    series: RwLock<Map<K, S>>,
}

impl<K: LabelSet, S: Series> Family<K, S> {
    fn new(name: &'static str, bounds: &'static [f64]) -> Self {
        Self {
            name,
            bounds,
            series: RwLock::new(Map::default()),
        }
    }

    /// Runs `f` on `key`'s series, creating it on first use.
    #[inline]
    fn with(&self, key: &K, f: impl FnOnce(&S)) {
        if let Ok(series) = self.series.read() {
            if let Some(s) = series.get(key) {
                f(s);
                return;
            }
        }
        let Ok(mut series) = self.series.write() else {
            return;
        };
        let s = series
            .entry(key.clone())
            .or_insert_with(|| Arc::new(S::default()));
        f(s);
    }

    fn desc(&self) -> Option<Desc> {
        let labels = K::NAMES.iter().map(|n| (*n).to_owned()).collect();
        Desc::new(
            self.name.to_owned(),
            help(self.name).to_owned(),
            labels,
            HashMap::new(),
        )
        .ok()
    }

    fn collect(&self, names: &Names<'_>, out: &mut Vec<MetricFamily>) {
        let Ok(series) = self.series.read() else {
            return;
        };
        if series.is_empty() {
            return;
        }
        let mut family = MetricFamily::default();
        family.set_name(self.name.to_owned());
        family.set_help(help(self.name).to_owned());
        family.set_field_type(S::TYPE);
        let mut metrics = Vec::with_capacity(series.len());
        for (key, s) in series.iter() {
            let Some(values) = key.values(names) else {
                continue;
            };
            let mut metric = proto::Metric::default();
            let labels = K::NAMES
                .iter()
                .zip(values)
                .map(|(name, value)| {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name((*name).to_owned());
                    pair.set_value(value);
                    pair
                })
                .collect();
            metric.set_label(labels);
            s.write(&mut metric, self.bounds);
            metrics.push(metric);
        }
        family.set_metric(metrics);
        out.push(family);
    }
}

impl<K: LabelSet> Family<K, Count> {
    #[inline]
    pub fn add(&self, n: u64, key: &K) {
        self.with(key, |s| {
            s.0.fetch_add(n, Ordering::Relaxed);
        });
    }
}

impl<K: LabelSet> Family<K, Sum> {
    #[inline]
    pub fn add(&self, v: f64, key: &K) {
        self.with(key, |s| s.add(v));
    }
}

impl<K: LabelSet> Family<K, Level> {
    #[inline]
    pub fn add(&self, n: i64, key: &K) {
        self.with(key, |s| {
            s.0.fetch_add(n, Ordering::Relaxed);
        });
    }
}

impl<K: LabelSet> Family<K, Buckets> {
    #[inline]
    pub fn record(&self, v: f64, key: &K) {
        // As the SDK: a value that is not a number is not recorded, and makes no series.
        if !v.is_finite() {
            return;
        }
        let bounds = self.bounds;
        self.with(key, |s| s.record(v, bounds));
    }
}

/// A counter of whole numbers.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Series for Count {
    const TYPE: MetricType = MetricType::COUNTER;

    fn write(&self, metric: &mut proto::Metric, _: &[f64]) {
        let mut c = proto::Counter::default();
        c.set_value(self.0.load(Ordering::Relaxed) as f64);
        metric.set_counter(c);
    }
}

/// A counter of amounts (USD): an `f64` kept as its bits.
#[derive(Default)]
pub struct Sum(AtomicU64);

impl Sum {
    #[inline]
    fn add(&self, v: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Series for Sum {
    const TYPE: MetricType = MetricType::COUNTER;

    fn write(&self, metric: &mut proto::Metric, _: &[f64]) {
        let mut c = proto::Counter::default();
        c.set_value(self.get());
        metric.set_counter(c);
    }
}

/// A level that goes up and down (requests in flight): a gauge, as the exporter showed an
/// up-down counter.
#[derive(Default)]
pub struct Level(AtomicI64);

impl Series for Level {
    const TYPE: MetricType = MetricType::GAUGE;

    fn write(&self, metric: &mut proto::Metric, _: &[f64]) {
        let mut g = proto::Gauge::default();
        g.set_value(self.0.load(Ordering::Relaxed) as f64);
        metric.set_gauge(g);
    }
}

/// A histogram: a count per bucket (the last one past every bound), the count and the sum.
#[derive(Default)]
pub struct Buckets {
    /// Allocated on first record, one more than the bounds.
    counts: std::sync::OnceLock<Box<[AtomicU64]>>,
    count: AtomicU64,
    sum: Sum,
}

impl Buckets {
    #[inline]
    fn record(&self, v: f64, bounds: &[f64]) {
        let counts = self
            .counts
            .get_or_init(|| (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect());
        // A value on a bound falls in that bound's bucket (`le`).
        let i = bounds.partition_point(|b| *b < v);
        if let Some(c) = counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
    }
}

impl Series for Buckets {
    const TYPE: MetricType = MetricType::HISTOGRAM;

    fn write(&self, metric: &mut proto::Metric, bounds: &[f64]) {
        let mut h = proto::Histogram::default();
        h.set_sample_sum(self.sum.get());
        h.set_sample_count(self.count.load(Ordering::Relaxed));
        let mut cumulative = 0;
        let counts = self.counts.get();
        let buckets = bounds
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                cumulative += counts
                    .and_then(|c| c.get(i))
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                let mut b = proto::Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        h.set_bucket(buckets);
        metric.set_histogram(h);
    }
}

fn provider_name(names: &Names<'_>, id: u32) -> Option<String> {
    names.providers.get(id as usize).map(|n| n.to_string())
}

fn model_name(names: &Names<'_>, id: u32) -> Option<String> {
    names.models.get(id as usize).map(|n| n.to_string())
}

/// No labels.
impl LabelSet for () {
    const NAMES: &'static [&'static str] = &[];
    fn values(&self, _: &Names<'_>) -> Option<Vec<String>> {
        Some(Vec::new())
    }
}

/// `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Provider(pub u32);

impl LabelSet for Provider {
    const NAMES: &'static [&'static str] = &["provider"];
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>> {
        Some(vec![provider_name(names, self.0)?])
    }
}

/// `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Model(pub u32);

impl LabelSet for Model {
    const NAMES: &'static [&'static str] = &["model"];
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>> {
        Some(vec![model_name(names, self.0)?])
    }
}

/// An attempt: `outcome`, `provider`, `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    pub provider: u32,
    pub outcome: &'static str,
    pub reason: &'static str,
}

impl LabelSet for Attempt {
    const NAMES: &'static [&'static str] = &["outcome", "provider", "reason"];
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>> {
        Some(vec![
            self.outcome.to_owned(),
            provider_name(names, self.provider)?,
            self.reason.to_owned(),
        ])
    }
}

/// A completion: `api`, `model`, `provider` (`none` before any provider was tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Completion {
    pub provider: Option<u32>,
    pub model: u32,
    pub api: &'static str,
}

impl Completion {
    fn values(&self, names: &Names<'_>) -> Option<[String; 3]> {
        let provider = match self.provider {
            Some(p) => provider_name(names, p)?,
            None => "none".to_owned(),
        };
        Some([
            self.api.to_owned(),
            model_name(names, self.model)?,
            provider,
        ])
    }
}

impl LabelSet for Completion {
    const NAMES: &'static [&'static str] = &["api", "model", "provider"];
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>> {
        Some(Completion::values(self, names)?.into())
    }
}

/// A completion and a fourth label after `provider` (`status`, or the tokens' `type`); the
/// name is the family's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompletionAnd<const STATUS: bool> {
    pub completion: Completion,
    pub value: &'static str,
}

/// `api`, `model`, `provider`, `status`.
pub type CompletionStatus = CompletionAnd<true>;
/// `api`, `model`, `provider`, `type`.
pub type CompletionTokens = CompletionAnd<false>;

impl<const STATUS: bool> LabelSet for CompletionAnd<STATUS> {
    const NAMES: &'static [&'static str] = if STATUS {
        &["api", "model", "provider", "status"]
    } else {
        &["api", "model", "provider", "type"]
    };
    fn values(&self, names: &Names<'_>) -> Option<Vec<String>> {
        let [api, model, provider] = self.completion.values(names)?;
        Some(vec![api, model, provider, self.value.to_owned()])
    }
}

/// An HTTP request: `method`, `route`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub method: &'static str,
    pub route: Cow<'static, str>,
}

impl LabelSet for Route {
    const NAMES: &'static [&'static str] = &["method", "route"];
    fn values(&self, _: &Names<'_>) -> Option<Vec<String>> {
        Some(vec![self.method.to_owned(), self.route.to_string()])
    }
}

/// An HTTP answer: `method`, `route`, `status`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteStatus {
    pub route: Route,
    pub status: u16,
}

impl LabelSet for RouteStatus {
    const NAMES: &'static [&'static str] = &["method", "route", "status"];
    fn values(&self, _: &Names<'_>) -> Option<Vec<String>> {
        Some(vec![
            self.route.method.to_owned(),
            self.route.route.to_string(),
            self.status.to_string(),
        ])
    }
}

/// The hot families.
pub struct Hot {
    pub provider_requests: Family<Attempt, Count>,
    pub provider_failovers: Family<Provider, Count>,
    pub provider_response_time: Family<Provider, Buckets>,
    pub model_requests: Family<CompletionStatus, Count>,
    pub model_duration: Family<Completion, Buckets>,
    pub time_to_first_token: Family<Completion, Buckets>,
    pub overhead: Family<(), Buckets>,
    pub tokens: Family<CompletionTokens, Count>,
    pub cost_by_provider: Family<Provider, Sum>,
    pub cost_by_model: Family<Model, Sum>,
    pub http_requests: Family<RouteStatus, Count>,
    pub http_duration: Family<Route, Buckets>,
    pub http_in_flight: Family<(), Level>,
}

impl Default for Hot {
    fn default() -> Self {
        Self {
            provider_requests: Family::new(cat::PROVIDER_REQUESTS, &[]),
            provider_failovers: Family::new(cat::PROVIDER_FAILOVERS, &[]),
            provider_response_time: Family::new(cat::PROVIDER_RESPONSE_TIME, LATENCY_BUCKETS),
            model_requests: Family::new(cat::MODEL_REQUESTS, &[]),
            model_duration: Family::new(cat::MODEL_DURATION, LATENCY_BUCKETS),
            time_to_first_token: Family::new(cat::TIME_TO_FIRST_TOKEN, LATENCY_BUCKETS),
            overhead: Family::new(cat::OVERHEAD, OVERHEAD_BUCKETS),
            tokens: Family::new(cat::TOKENS, &[]),
            cost_by_provider: Family::new(cat::COST_BY_PROVIDER, &[]),
            cost_by_model: Family::new(cat::COST_BY_MODEL, &[]),
            http_requests: Family::new(cat::HTTP_REQUESTS, &[]),
            http_duration: Family::new(cat::HTTP_DURATION, LATENCY_BUCKETS),
            http_in_flight: Family::new(cat::HTTP_IN_FLIGHT, &[]),
        }
    }
}

impl Hot {
    fn each(&self, names: &Names<'_>, out: &mut Vec<MetricFamily>) {
        self.provider_requests.collect(names, out);
        self.provider_failovers.collect(names, out);
        self.provider_response_time.collect(names, out);
        self.model_requests.collect(names, out);
        self.model_duration.collect(names, out);
        self.time_to_first_token.collect(names, out);
        self.overhead.collect(names, out);
        self.tokens.collect(names, out);
        self.cost_by_provider.collect(names, out);
        self.cost_by_model.collect(names, out);
        self.http_requests.collect(names, out);
        self.http_duration.collect(names, out);
        self.http_in_flight.collect(names, out);
    }

    fn descs(&self) -> Vec<Desc> {
        [
            self.provider_requests.desc(),
            self.provider_failovers.desc(),
            self.provider_response_time.desc(),
            self.model_requests.desc(),
            self.model_duration.desc(),
            self.time_to_first_token.desc(),
            self.overhead.desc(),
            self.tokens.desc(),
            self.cost_by_provider.desc(),
            self.cost_by_model.desc(),
            self.http_requests.desc(),
            self.http_duration.desc(),
            self.http_in_flight.desc(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The registry's view of [`Hot`]: names resolved from the board in force at scrape time
/// (every id any generation used, retired ones included).
pub struct HotCollector {
    hot: Arc<Hot>,
    board: Arc<ArcSwap<Board>>,
    descs: Vec<Desc>,
}

impl HotCollector {
    pub fn new(hot: Arc<Hot>, board: Arc<ArcSwap<Board>>) -> Self {
        let descs = hot.descs();
        Self { hot, board, descs }
    }
}

impl Collector for HotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let board = self.board.load();
        let names = Names {
            providers: &board.provider_names,
            models: &board.model_names,
        };
        let mut out = Vec::with_capacity(13);
        self.hot.each(&names, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    fn sorted<K: LabelSet>() -> bool {
        K::NAMES.windows(2).all(|w| w[0] < w[1])
    }

    /// Prometheus shows labels sorted by name, as the exporter wrote them.
    #[test]
    fn label_names_are_sorted() {
        assert!(sorted::<Attempt>());
        assert!(sorted::<Completion>());
        assert!(sorted::<CompletionStatus>());
        assert!(sorted::<CompletionTokens>());
        assert!(sorted::<Route>());
        assert!(sorted::<RouteStatus>());
    }

    #[test]
    fn the_hasher_tells_keys_apart() {
        let hash = |k: &Attempt| {
            let mut h = Fx::default();
            k.hash(&mut h);
            h.finish()
        };
        let a = Attempt {
            provider: 0,
            outcome: "success",
            reason: "none",
        };
        let b = Attempt { provider: 1, ..a };
        let c = Attempt {
            reason: "timeout",
            ..a
        };
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
        assert_eq!(hash(&a), hash(&a.clone()));
    }

    fn text(families: &[MetricFamily]) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(families, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The same measurements through the OpenTelemetry SDK and its Prometheus exporter, and
    /// through these families: the same exposition, byte for byte.
    #[test]
    fn the_exposition_is_the_opentelemetry_exporters() {
        let providers: Vec<Arc<str>> = vec!["mock-a".into(), "mock-b".into()];
        let models: Vec<Arc<str>> = vec!["gpt-4o".into(), "claude".into()];

        // Through the SDK, as the meters were built before.
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .unwrap();
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("gatewayz");
        let counter =
            |name: &'static str| meter.u64_counter(name).with_description(help(name)).build();
        let fcounter =
            |name: &'static str| meter.f64_counter(name).with_description(help(name)).build();
        let histogram = |name: &'static str, bounds: &[f64]| {
            meter
                .f64_histogram(name)
                .with_description(help(name))
                .with_boundaries(bounds.to_vec())
                .build()
        };
        let kv = |k: &'static str, v: &str| KeyValue::new(k, v.to_owned());
        let provider_requests = counter(cat::PROVIDER_REQUESTS);
        let response_time = histogram(cat::PROVIDER_RESPONSE_TIME, LATENCY_BUCKETS);
        let model_requests = counter(cat::MODEL_REQUESTS);
        let model_duration = histogram(cat::MODEL_DURATION, LATENCY_BUCKETS);
        let overhead = histogram(cat::OVERHEAD, OVERHEAD_BUCKETS);
        let tokens = counter(cat::TOKENS);
        let cost = fcounter(cat::COST_BY_MODEL);
        let http_requests = counter(cat::HTTP_REQUESTS);
        let http_duration = histogram(cat::HTTP_DURATION, LATENCY_BUCKETS);
        let in_flight = meter
            .i64_up_down_counter(cat::HTTP_IN_FLIGHT)
            .with_description(help(cat::HTTP_IN_FLIGHT))
            .build();

        // The same through the hot families.
        let hot = Arc::new(Hot::default());
        let board = {
            let mut b =
                crate::catalog::Catalog::new(&crate::config::Config::builtin().unwrap()).board();
            b.provider_names = providers.clone();
            b.model_names = models.clone();
            Arc::new(ArcSwap::new(Arc::new(b)))
        };
        let ours = prometheus::Registry::new();
        ours.register(Box::new(HotCollector::new(hot.clone(), board)))
            .unwrap();

        let latencies = [0.0, 0.003, 0.005, 0.0051, 0.7, 1.0, 119.0, 120.0, 500.0];
        for (i, latency) in latencies.into_iter().enumerate() {
            let p = i % 2;
            let (outcome, reason) = if i % 3 == 0 {
                ("failure", "timeout")
            } else {
                ("success", "none")
            };
            provider_requests.add(
                1,
                &[
                    kv("provider", &providers[p]),
                    kv("outcome", outcome),
                    kv("reason", reason),
                ],
            );
            hot.provider_requests.add(
                1,
                &Attempt {
                    provider: p as u32,
                    outcome,
                    reason,
                },
            );
            response_time.record(latency, &[kv("provider", &providers[p])]);
            hot.provider_response_time
                .record(latency, &Provider(p as u32));
            let completion = Completion {
                provider: (i != 4).then_some(p as u32),
                model: (i % 2) as u32,
                api: "chat",
            };
            let provider_label = if i == 4 { "none" } else { &providers[p] };
            let pm = [
                kv("provider", provider_label),
                kv("model", &models[i % 2]),
                kv("api", "chat"),
            ];
            let mut with_status = pm.to_vec();
            with_status.push(kv("status", "success"));
            model_requests.add(1, &with_status);
            hot.model_requests.add(
                1,
                &CompletionStatus {
                    completion,
                    value: "success",
                },
            );
            model_duration.record(latency, &pm);
            hot.model_duration.record(latency, &completion);
            overhead.record(latency / 1000.0, &[]);
            hot.overhead.record(latency / 1000.0, &());
            let mut with_type = pm.to_vec();
            with_type.push(kv("type", "input"));
            tokens.add(i as u64 * 7, &with_type);
            hot.tokens.add(
                i as u64 * 7,
                &CompletionTokens {
                    completion,
                    value: "input",
                },
            );
            cost.add(0.000_123 * i as f64, &[kv("model", &models[i % 2])]);
            hot.cost_by_model
                .add(0.000_123 * i as f64, &Model((i % 2) as u32));
            let route = if i % 2 == 0 {
                "/v1/chat/completions"
            } else {
                "unmatched"
            };
            let status = if i == 3 { 404 } else { 200 };
            http_requests.add(
                1,
                &[
                    KeyValue::new("method", "POST"),
                    KeyValue::new("route", route),
                    KeyValue::new("status", i64::from(status)),
                ],
            );
            let key = Route {
                method: "POST",
                route: Cow::Owned(route.to_owned()),
            };
            hot.http_requests.add(
                1,
                &RouteStatus {
                    route: key.clone(),
                    status,
                },
            );
            http_duration.record(
                latency,
                &[
                    KeyValue::new("method", "POST"),
                    KeyValue::new("route", route),
                ],
            );
            hot.http_duration.record(latency, &key);
            in_flight.add(1, &[]);
            hot.http_in_flight.add(1, &());
        }
        in_flight.add(-3, &[]);
        hot.http_in_flight.add(-3, &());

        let want = text(&registry.gather());
        let got = text(&ours.gather());
        assert_eq!(got, want);
        assert!(got.contains("gatewayz_model_inference_requests_total{api=\"chat\",model=\"gpt-4o\",provider=\"none\",status=\"success\"} 1"), "{got}");
        assert!(got.contains("gatewayz_http_requests_in_flight 6"), "{got}");
    }

    /// A family with no measurement is not shown (as the SDK shows no series before the first).
    #[test]
    fn an_unused_family_is_absent() {
        let hot = Hot::default();
        let names = Names {
            providers: &[],
            models: &[],
        };
        let mut out = Vec::new();
        hot.each(&names, &mut out);
        assert!(out.is_empty());
        hot.overhead.record(f64::NAN, &());
        hot.overhead.record(f64::INFINITY, &());
        hot.each(&names, &mut out);
        assert!(out.is_empty());
        hot.overhead.record(0.5, &());
        hot.each(&names, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].get_metric()[0].get_histogram().get_sample_count(), 1);
    }
}
