//! Class 1, non-blocking: with Loki stalled forever (it reads pushes and never answers),
//! 100,000 events are emitted and the emitting code returns, the in-process gateway keeps
//! answering chat completions, and every record beyond what the shipper may hold is counted
//! `dropped_full`. Proved by counts: a counting layer beside the Loki layer sees every
//! shippable event, and shipped + dropped_full + queue_depth equals it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::loki::{LokiReceiver, Mode};
use gatewayz::config::LokiConfig;
use gatewayz::telemetry::loki::{layer::is_excluded, pipeline};
use gatewayz::telemetry::metrics::log_stats::LogStats;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Counts the events the Loki layer would take.
struct Counting(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counting {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if !is_excluded(e.metadata().target()) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

const CAPACITY: usize = 1000;
const BATCH: usize = 100;
const EVENTS: u64 = 100_000;

#[test]
fn a_stalled_loki_costs_the_emitter_and_the_gateway_nothing() {
    let receiver = LokiReceiver::start(Mode::Stall);
    let mut config = LokiConfig::new(receiver.url());
    config.queue_capacity = CAPACITY;
    config.batch_max_records = BATCH;
    config.flush_interval = Duration::from_millis(10);
    config.timeout = Duration::from_secs(3600);
    let stats = Arc::new(LogStats::default());
    let (layer, handle) = pipeline(&config, stats.clone()).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(layer)
        .with(Counting(seen.clone()))
        .init();
    let addr = common::inproc::start_gateway(common::MOCK_CONFIG, handle);
    let client = common::client();
    assert_eq!(common::chat_with_id(&client, addr, "before"), 200);

    let flood = std::thread::spawn(|| {
        for i in 0..EVENTS {
            tracing::info!(target: "flood", i, "flood");
        }
    });
    // The gateway answers while the flood runs and after it.
    let mut answered = 0;
    while !flood.is_finished() {
        assert_eq!(common::chat_with_id(&client, addr, "during"), 200);
        answered += 1;
    }
    flood.join().unwrap();
    for _ in 0..20 {
        assert_eq!(common::chat_with_id(&client, addr, "after"), 200);
    }
    assert!(receiver.pushes().len() <= 1, "one push in flight, stalled");

    // Every event is in exactly one place: shipped (none), dropped, or still held.
    let accounted = || {
        stats.shipped.load(Ordering::Relaxed)
            + stats.dropped_full.load(Ordering::Relaxed)
            + u64::try_from(stats.queue_depth()).unwrap()
    };
    // Wait for the figures to settle, then check them.
    common::poll(Duration::from_secs(30), || {
        (accounted() == seen.load(Ordering::Relaxed)).then_some(())
    });
    let seen = seen.load(Ordering::Relaxed);
    assert_eq!(accounted(), seen, "answered {answered} requests meanwhile");
    assert!(seen >= EVENTS + 20);
    assert_eq!(stats.shipped.load(Ordering::Relaxed), 0);
    let held = u64::try_from(stats.queue_depth()).unwrap();
    // The backlog, the hand-off channel (at most `CAPACITY` here) and the stalled batch.
    assert!(held <= (2 * CAPACITY + BATCH) as u64, "held {held}");
    assert!(stats.dropped_full.load(Ordering::Relaxed) >= seen - held);
}
