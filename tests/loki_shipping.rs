//! The Loki shipper in-process against the protocol-faithful receiver over real HTTP:
//! batching (class 2) and regression (class 6: 429/500 retried until accepted, 400 dropped and
//! counted, order within a stream kept). Each test runs its own actix system and a
//! thread-local subscriber; the emitting loop yields now and then so the single-threaded
//! runtime lets the shipper drain, which makes every count deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loki::{Entry, LokiReceiver, Mode};
use gatewayz::config::LokiConfig;
use gatewayz::telemetry::loki::{pipeline, RunningShipper};
use gatewayz::telemetry::metrics::log_stats::LogStats;
use tracing_subscriber::layer::SubscriberExt;

struct Rig {
    stats: Arc<LogStats>,
    shipper: RunningShipper,
    _guard: tracing::subscriber::DefaultGuard,
}

fn rig(config: &LokiConfig) -> Rig {
    let stats = Arc::new(LogStats::default());
    let (layer, handle) = pipeline(config, stats.clone()).unwrap();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    Rig {
        stats,
        shipper: handle.start_with_jitter(Box::new(|| 0.0)),
        _guard: guard,
    }
}

fn config(receiver: &LokiReceiver) -> LokiConfig {
    let mut c = LokiConfig::new(receiver.url());
    c.flush_interval = Duration::from_millis(50);
    c.backoff_min = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(20);
    c.tenant = Some("team-a".into());
    c
}

/// Polls (real time) until `done` holds on the accepted entries, at most 30 s.
async fn accepted_until(receiver: &LokiReceiver, done: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let accepted = receiver.accepted();
        if done(&accepted) || Instant::now() > deadline {
            return accepted;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn emit(range: std::ops::Range<u64>, message: &'static str) {
    for seq in range {
        tracing::info!(
            seq,
            padding = "0123456789abcdef0123456789abcdef",
            "{message}"
        );
        if seq % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

#[actix::test]
async fn ten_thousand_records_travel_in_few_bounded_pushes() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    let mut c = config(&receiver);
    c.batch_max_records = 500;
    c.batch_max_bytes = 16 * 1024;
    c.queue_capacity = 20_000;
    c.flush_interval = Duration::from_secs(3600); // only full batches and the final flush
    let r = rig(&c);
    emit(0..10_000, "batched").await;
    let report = r.shipper.shutdown().await;
    assert_eq!(report.shipped, 10_000);
    assert_eq!(r.stats.dropped_full.load(Ordering::Relaxed), 0);

    let pushes = receiver.pushes();
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 10_000);
    let bytes: usize = accepted.iter().map(|e| e.line.len()).sum();
    let mut max_line = 0;
    for p in &pushes {
        assert_eq!(p.content_type.as_deref(), Some("application/x-protobuf"));
        assert_eq!(p.tenant.as_deref(), Some("team-a"));
        let lines: Vec<usize> = p
            .request
            .streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.line.len()))
            .collect();
        max_line = max_line.max(lines.iter().copied().max().unwrap_or(0));
        assert!(lines.len() <= 500, "a batch over its record limit");
        assert!(
            lines.iter().sum::<usize>() <= 16 * 1024,
            "a batch over its byte limit"
        );
    }
    // Every push but the last is full: no room for one more line.
    let lower = (10_000usize.div_ceil(500)).max(bytes.div_ceil(16 * 1024));
    let upper = bytes
        .div_ceil(16 * 1024 - max_line)
        .max(10_000usize.div_ceil(500))
        + 1;
    assert!(
        (lower..=upper).contains(&pushes.len()),
        "{} pushes, expected {lower}..={upper}",
        pushes.len()
    );
}

/// The shipper pauses 10 ms between drains to gather records, but a burst that fills half
/// its hand-off channel (4,096 records here) wakes it early: nothing is dropped while the
/// backlog has room.
#[actix::test]
async fn a_burst_larger_than_the_channel_wakes_a_gathering_shipper() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    let mut c = config(&receiver);
    c.queue_capacity = 20_000;
    let r = rig(&c);
    // The clock stands still during the burst (the runtime is never idle, so paused time does
    // not advance): only the early wake-up can let the shipper drain.
    tokio::time::pause();
    for seq in 0..20_000u64 {
        tracing::info!(seq, "burst");
        if seq % 1024 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::resume();
    let report = r.shipper.shutdown().await;
    assert_eq!(r.stats.dropped_full.load(Ordering::Relaxed), 0);
    assert_eq!(report.shipped, 20_000);
    assert_eq!(receiver.accepted().len(), 20_000);
}

#[actix::test]
async fn retries_until_accepted_keeps_order_and_counts_rejections() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    receiver.script(&[429, 500, 503]);
    let mut c = config(&receiver);
    c.batch_max_records = 100;
    let r = rig(&c);
    emit(0..1000, "ordered").await;
    let accepted = accepted_until(&receiver, |a| a.len() >= 1000).await;
    // Nothing lost, nothing duplicated, order kept within the stream.
    let seqs: Vec<u64> = accepted
        .iter()
        .map(|e| e.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
    assert!(accepted.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    assert!(accepted
        .iter()
        .all(|e| e.labels == r#"{level="info", service="gatewayz"}"#));
    let statuses: Vec<_> = receiver.pushes().iter().map(|p| p.status).collect();
    assert_eq!(
        &statuses[..4],
        &[Some(429), Some(500), Some(503), Some(204)]
    );

    // A 400 drops the batch and counts it.
    receiver.script(&[400]);
    emit(1000..1010, "refused").await;
    let report = r.shipper.shutdown().await;
    assert_eq!(report.dropped_rejected, 10);
    assert_eq!(report.shipped, 1000);
    assert_eq!(receiver.accepted().len(), 1000);
    assert_eq!(r.stats.queue_depth(), 0);
}

#[actix::test]
async fn basic_auth_and_errors_with_sources() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    let mut c = config(&receiver);
    c.auth = Some(gatewayz::config::LokiAuth::Basic {
        username: "user".into(),
        password: "pass".into(),
    });
    let r = rig(&c);
    let err = Outer(std::io::Error::other(Outer(std::io::Error::other(
        "root cause",
    ))));
    tracing::error!(
        error = &err as &dyn std::error::Error,
        provider = "p1",
        "upstream failed"
    );
    let report = r.shipper.shutdown().await;
    assert_eq!(report.shipped, 1);
    let push = &receiver.pushes()[0];
    assert_eq!(push.authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
    let entry = &receiver.accepted()[0];
    assert_eq!(entry.labels, r#"{level="error", service="gatewayz"}"#);
    let line = entry.json();
    assert_eq!(line["level"], "error");
    assert_eq!(line["target"], "loki_shipping");
    assert_eq!(line["provider"], "p1");
    assert_eq!(line["msg"], "upstream failed");
    assert_eq!(line["error"], "outer");
    // io::Error hides its own layer: outer -> (io) -> outer -> (io) -> root cause.
    assert_eq!(
        line["error.sources"],
        serde_json::json!(["outer", "root cause"])
    );
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outer")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
