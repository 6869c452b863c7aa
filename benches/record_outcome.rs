//! Per-request cost of recording one outcome: one provider attempt plus one completion
//! through the production reporter — every request-path meter, and the pushes into the
//! actors' outbox (drained to the breaker, health, anomaly and cost actors on their own
//! thread, as in the server) — and the meters alone, to split the figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gatewayz::actors::reporter::MetricsReporter;
use gatewayz::actors::Actors;
use gatewayz::board::{ModelId, ProviderId};
use gatewayz::catalog::Catalog;
use gatewayz::config::{Api, Config};
use gatewayz::outcome::{AttemptRecord, AttemptResult, CompletionRecord, Reporter, RequestEnd};
use gatewayz::providers::Usage;
use gatewayz::telemetry::metrics::log_stats::LogStats;
use gatewayz::telemetry::metrics::Labels;
use gatewayz::telemetry::metrics::{Metrics, Sources};

fn reporter() -> (Arc<Metrics>, MetricsReporter) {
    let config = Config::builtin().unwrap();
    let catalog = Catalog::new(&config);
    let board = Arc::new(catalog.board());
    let metrics = Arc::new(
        Metrics::new(Sources {
            board: Arc::new(arc_swap::ArcSwap::new(board.clone())),
            log_stats: Arc::new(LogStats::default()),
            trials: Arc::new(|_| 0),
            budgets: gatewayz::telemetry::metrics::no_budgets(),
        })
        .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let meters = metrics.meters.clone();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let labels = Arc::new(Labels::new(&board));
            let actors = Actors::start(&config, &catalog, board, meters.clone());
            let outbox = actors.outbox();
            tx.send(MetricsReporter {
                meters,
                labels,
                outbox,
            })
            .unwrap();
            std::future::pending::<()>().await;
        })
    });
    let reporter = rx.recv().unwrap();
    (metrics, reporter)
}

fn record(c: &mut Criterion) {
    let (metrics, reporter) = reporter();
    let attempt = AttemptRecord {
        provider: ProviderId::from_index(0),
        model: ModelId::from_index(0),
        result: AttemptResult::Success,
        reason: None,
        latency: Duration::from_millis(120),
    };
    let completion = CompletionRecord {
        provider: Some(ProviderId::from_index(0)),
        model: ModelId::from_index(0),
        api: Api::Chat,
        stream: true,
        end: RequestEnd::Served,
        answered: true,
        usage: Some(Usage {
            prompt_tokens: 42,
            completion_tokens: 17,
            cached_tokens: 0,
        }),
        duration: Duration::from_millis(900),
        time_to_first_token: Some(Duration::from_millis(130)),
        upstream_wait: Duration::from_millis(880),
    };
    c.bench_function("record_outcome (attempt + completion)", |b| {
        b.iter(|| {
            reporter.attempt(std::hint::black_box(&attempt));
            reporter.completion(std::hint::black_box(&completion));
        })
    });
    c.bench_function("meters only (no actor messages)", |b| {
        b.iter(|| {
            reporter.measure_attempt(std::hint::black_box(&attempt));
            reporter.measure_completion(std::hint::black_box(&completion));
        })
    });
    // The scrape still works after millions of outcomes.
    assert!(!metrics.encode().unwrap().is_empty());
}

criterion_group!(benches, record);
criterion_main!(benches);
