//! Per-request cost of recording one outcome: one provider attempt plus one completion
//! through the production observer — every request-path meter, and the pushes into the
//! actors' outbox (drained to the breaker, health, anomaly and cost actors on their own
//! thread, as in the server) — and the meters alone, to split the figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gatewayz::actors::board::Board;
use gatewayz::actors::observer::MetricsObserver;
use gatewayz::actors::Actors;
use gatewayz::config::Config;
use gatewayz::outcome::{AttemptRecord, AttemptResult, CompletionRecord, Observer, RequestEnd};
use gatewayz::providers::Usage;
use gatewayz::telemetry::log_stats::LogStats;
use gatewayz::telemetry::metrics::{Metrics, Sources};

fn observer() -> (Arc<Metrics>, MetricsObserver) {
    let config = Config::builtin().unwrap();
    let board = Arc::new(Board::from_config(&config));
    let metrics = Arc::new(
        Metrics::new(Sources {
            board: board.clone(),
            log_stats: Arc::new(LogStats::default()),
            keys: Arc::new(gatewayz::auth::KeyStore::new(&config.keys)),
        })
        .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let meters = metrics.meters.clone();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let actors = Actors::start(&config, board, meters.clone());
            tx.send(actors.observer(meters)).unwrap();
            std::future::pending::<()>().await;
        })
    });
    let observer = rx.recv().unwrap();
    (metrics, observer)
}

fn record(c: &mut Criterion) {
    let (metrics, observer) = observer();
    let attempt = AttemptRecord {
        provider: 0,
        model: 0,
        result: AttemptResult::Success,
        reason: None,
        latency: Duration::from_millis(120),
    };
    let completion = CompletionRecord {
        provider: Some(0),
        model: 0,
        stream: true,
        end: RequestEnd::Served,
        answered: true,
        usage: Some(Usage {
            prompt_tokens: 42,
            completion_tokens: 17,
        }),
        duration: Duration::from_millis(900),
        time_to_first_token: Some(Duration::from_millis(130)),
        upstream_wait: Duration::from_millis(880),
    };
    c.bench_function("record_outcome (attempt + completion)", |b| {
        b.iter(|| {
            observer.attempt(std::hint::black_box(&attempt));
            observer.completion(std::hint::black_box(&completion));
        })
    });
    c.bench_function("meters only (no actor messages)", |b| {
        b.iter(|| {
            observer.measure_attempt(std::hint::black_box(&attempt));
            observer.measure_completion(std::hint::black_box(&completion));
        })
    });
    // The scrape still works after millions of outcomes.
    assert!(!metrics.encode().unwrap().is_empty());
}

criterion_group!(benches, record);
criterion_main!(benches);
