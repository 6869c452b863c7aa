//! Log shipping costs: what one `tracing::info!` costs the emitting thread with the Loki
//! layer installed (the hot-path figure; target < 1 µs), with and without a request's span
//! current, and how many records per second the shipper pushes to the local receiver
//! over real HTTP (protobuf + snappy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/loki.rs"]
mod loki;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gatewayz::config::LokiConfig;
use gatewayz::telemetry::loki::transport::{PushFuture, PushOutcome, Transport};
use gatewayz::telemetry::loki::{pipeline, pipeline_with, LokiHandle};
use gatewayz::telemetry::metrics::log_stats::LogStats;
use gatewayz::telemetry::traces::scope;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use tracing_subscriber::layer::SubscriberExt;

/// A request's span context, as the server span makes it current around the handler.
fn request() -> SpanContext {
    SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736_u128),
        SpanId::from(0x00f067aa0ba902b7_u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    )
}

/// Accepts every push at once: the shipper drains as fast as it can encode.
struct Accept;

impl Transport for Accept {
    fn push(&self, _body: Bytes) -> PushFuture {
        Box::pin(async { PushOutcome::Status(204) })
    }
}

/// Runs `handle` in its own actix system thread, forever.
fn run_shipper(handle: LokiHandle) {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let _shipper = handle.start();
            ready.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    });
    started.recv().unwrap();
}

/// The same events without the Loki layer: the part of the cost that is not ours.
fn emit_baseline(c: &mut Criterion) {
    let subscriber = tracing_subscriber::registry();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut group = c.benchmark_group("loki_emit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("info_without_loki_layer", |b| {
        b.iter(|| tracing::info!(provider = "mock-a", status = 200u64, "request done"))
    });
    let request = request();
    group.bench_function("info_in_otel_span_without_loki_layer", |b| {
        b.iter(|| {
            scope::with(&request, || {
                tracing::info!(provider = "mock-a", status = 200u64, "request done")
            })
        })
    });
    group.finish();
}

fn emit_cost(c: &mut Criterion) {
    let stats = Arc::new(LogStats::default());
    let mut config = LokiConfig::new("http://127.0.0.1:9");
    config.queue_capacity = 100_000;
    let (layer, handle) = pipeline_with(&config, stats.clone(), Arc::new(Accept)).unwrap();
    run_shipper(handle);
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut group = c.benchmark_group("loki_emit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("info_with_loki_layer", |b| {
        b.iter(|| tracing::info!(provider = "mock-a", status = 200u64, "request done"))
    });
    let request = request();
    group.bench_function("info_in_otel_span", |b| {
        b.iter(|| {
            scope::with(&request, || {
                tracing::info!(provider = "mock-a", status = 200u64, "request done")
            })
        })
    });
    group.finish();
    let [shipped, full, ..] = stats.outcomes();
    eprintln!("emit bench: {shipped:?} {full:?} (records the shipper could not keep up with)");
}

fn shipping_throughput(c: &mut Criterion) {
    const RECORDS: u64 = 20_000;
    let receiver = loki::LokiReceiver::start(loki::Mode::Status(204));
    let mut group = c.benchmark_group("loki_ship");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("to_local_receiver", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut config = LokiConfig::new(receiver.url());
                config.queue_capacity = RECORDS as usize;
                let stats = Arc::new(LogStats::default());
                let (layer, handle) = pipeline(&config, stats.clone()).unwrap();
                let _guard =
                    tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
                actix::System::new().block_on(async {
                    let shipper = handle.start();
                    let started = Instant::now();
                    for i in 0..RECORDS {
                        tracing::info!(i, provider = "mock-a", "shipped line");
                        if i % 1024 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    let report = shipper.shutdown().await;
                    total += started.elapsed();
                    assert_eq!(report.shipped, RECORDS);
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, emit_baseline, emit_cost, shipping_throughput);
criterion_main!(benches);
