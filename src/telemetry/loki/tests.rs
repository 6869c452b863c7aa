//! Actor tests: the shipper against a scripted transport, on paused time with zero jitter,
//! so timers and backoff run in virtual time and every assertion is about counts.

use std::collections::VecDeque;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;

use super::encode::{decode, PushRequest};
use super::*;
use crate::config::DropPolicy;

/// Answers pushes from a script (then 204), or never answers when `stall` is set.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<PushOutcome>>,
    pushes: Mutex<Vec<PushRequest>>,
    stall: bool,
}

impl Transport for Scripted {
    fn push(&self, body: Bytes) -> transport::PushFuture {
        self.pushes.lock().unwrap().push(decode(&body).unwrap());
        if self.stall {
            return Box::pin(std::future::pending());
        }
        let answer = self.answers.lock().unwrap().pop_front();
        Box::pin(async move { answer.unwrap_or(PushOutcome::Status(204)) })
    }
}

impl Scripted {
    fn answering(answers: &[u16]) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.iter().map(|s| PushOutcome::Status(*s)).collect()),
            ..Self::default()
        })
    }

    fn lines(&self, push: usize) -> Vec<String> {
        self.pushes.lock().unwrap()[push]
            .streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
            .collect()
    }

    fn push_count(&self) -> usize {
        self.pushes.lock().unwrap().len()
    }
}

fn config() -> LokiConfig {
    let mut c = LokiConfig::new("http://127.0.0.1:9");
    c.backoff_min = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c.max_tries = 4;
    c
}

struct Rig {
    stats: Arc<LogStats>,
    shipper: RunningShipper,
    _guard: tracing::subscriber::DefaultGuard,
}

fn rig(config: &LokiConfig, transport: Arc<Scripted>) -> Rig {
    tokio::time::pause();
    let stats = Arc::new(LogStats::default());
    let (layer, handle) = pipeline_with(config, stats.clone(), transport).unwrap();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let shipper = handle.start_with_jitter(Box::new(|| 0.0));
    Rig {
        stats,
        shipper,
        _guard: guard,
    }
}

fn n(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[actix::test]
async fn the_first_record_arms_the_flush_timer() {
    let t = Scripted::answering(&[]);
    let r = rig(&config(), t.clone());
    for i in 0..3 {
        tracing::info!(i, "hello");
    }
    sleep(900).await;
    assert_eq!(t.push_count(), 0, "nothing before the flush interval");
    sleep(200).await;
    assert_eq!(t.push_count(), 1);
    assert_eq!(t.lines(0).len(), 3);
    assert_eq!(n(&r.stats.shipped), 3);
    assert_eq!(r.stats.queue_depth(), 0);
}

#[actix::test]
async fn a_full_batch_goes_at_once() {
    let t = Scripted::answering(&[]);
    let mut c = config();
    c.batch_max_records = 10;
    let r = rig(&c, t.clone());
    for i in 0..25 {
        tracing::info!(i, "x");
    }
    sleep(1).await;
    assert_eq!(
        t.push_count(),
        2,
        "two full batches without waiting for the timer"
    );
    sleep(1000).await;
    assert_eq!(t.push_count(), 3);
    assert_eq!(n(&r.stats.shipped), 25);
}

#[actix::test]
async fn retries_429_and_500_until_accepted_without_duplicates() {
    let t = Scripted::answering(&[429, 500, 503]);
    let r = rig(&config(), t.clone());
    for i in 0..5 {
        tracing::warn!(i, "retry me");
    }
    // flush after 1 s, then three retries, each at the backoff floor (jitter 0): 100 ms.
    sleep(1000 + 100 * 3 + 50).await;
    assert_eq!(t.push_count(), 4);
    assert_eq!(t.lines(0), t.lines(3), "the same batch, resent whole");
    assert_eq!(n(&r.stats.shipped), 5);
    assert_eq!(n(&r.stats.dropped_rejected), 0);
}

#[actix::test]
async fn rejected_and_exhausted_batches_are_counted() {
    let t = Scripted::answering(&[400, 500, 500, 500, 500]);
    let mut c = config();
    c.batch_max_records = 2;
    let r = rig(&c, t.clone());
    for i in 0..4 {
        tracing::info!(i, "x");
    }
    sleep(5000).await;
    assert_eq!(t.push_count(), 1 + 4, "400 once, then four tries of 500");
    assert_eq!(n(&r.stats.dropped_rejected), 4);
    assert_eq!(n(&r.stats.shipped), 0);
    assert_eq!(r.stats.queue_depth(), 0);
}

#[actix::test]
async fn drop_oldest_keeps_the_newest() {
    let t = Arc::new(Scripted {
        stall: true,
        ..Scripted::default()
    });
    let mut c = config();
    c.queue_capacity = 10;
    c.batch_max_records = 5;
    c.drop_policy = DropPolicy::Oldest;
    let r = rig(&c, t.clone());
    for i in 0..5 {
        tracing::info!(i, "first batch");
    }
    sleep(1).await; // a full batch: pushed, stalls in flight
    for i in 0..20 {
        tracing::info!(i, "queued");
        sleep(0).await;
    }
    assert_eq!(n(&r.stats.dropped_full), 10);
    assert_eq!(r.stats.queue_depth(), 15);
    let report = r.shipper.shutdown().await;
    assert_eq!(report.dropped_shutdown, 15);
    assert_eq!(r.stats.queue_depth(), 0);
}

#[actix::test]
async fn shutdown_flushes_what_it_holds_at_once() {
    let t = Scripted::answering(&[]);
    let r = rig(&config(), t.clone());
    for i in 0..7 {
        tracing::error!(i, "bye");
    }
    let report = r.shipper.shutdown().await;
    assert_eq!(report.shipped, 7);
    assert_eq!(report.dropped_shutdown, 0);
    tracing::info!("after shutdown");
    assert_eq!(
        n(&r.stats.dropped_shutdown),
        1,
        "arrivals after shutdown are counted"
    );
}

#[actix::test]
async fn shutdown_with_loki_stalled_ends_at_the_deadline() {
    let t = Arc::new(Scripted {
        stall: true,
        ..Scripted::default()
    });
    let r = rig(&config(), t.clone());
    for i in 0..30 {
        tracing::info!(i, "stuck");
    }
    let started = tokio::time::Instant::now();
    let report = r.shipper.shutdown().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_millis(5010),
        "the default deadline, not more: {elapsed:?}"
    );
    assert_eq!(report.dropped_shutdown, 30);
    assert_eq!(report.shipped, 0);
}

/// The shutdown budget's share caps the configured deadline.
#[actix::test]
async fn shutdown_within_a_shorter_limit_ends_at_the_limit() {
    let t = Arc::new(Scripted {
        stall: true,
        ..Scripted::default()
    });
    let r = rig(&config(), t.clone());
    for i in 0..30 {
        tracing::info!(i, "stuck");
    }
    let started = tokio::time::Instant::now();
    let report = r.shipper.shutdown_within(Duration::from_millis(1500)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_millis(1510),
        "the limit, not the 5 s deadline: {elapsed:?}"
    );
    assert_eq!(report.dropped_shutdown, 30);
}

#[actix::test]
async fn trace_ids_reach_line_and_metadata() {
    let t = Scripted::answering(&[]);
    tokio::time::pause();
    let stats = Arc::new(LogStats::default());
    let (layer, handle) = pipeline_with(&config(), stats.clone(), t.clone()).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let shipper = handle.start_with_jitter(Box::new(|| 0.0));
    let request = crate::telemetry::traces::span::tests::sampled_context();
    crate::telemetry::traces::scope::with(&request, || tracing::info!(user_field = 7, "inside"));
    tracing::info!("outside");
    shipper.shutdown().await;
    let pushes = t.pushes.lock().unwrap();
    let entries: Vec<_> = pushes[0].streams.iter().flat_map(|s| &s.entries).collect();
    assert_eq!(entries.len(), 2);
    let inside: serde_json::Value = serde_json::from_str(&entries[0].line).unwrap();
    let trace_id = inside["trace_id"].as_str().unwrap();
    assert_eq!(trace_id, request.trace_id().to_string());
    assert_eq!(inside["span_id"], request.span_id().to_string());
    assert_eq!(inside["user_field"], 7);
    assert_eq!(entries[0].structured_metadata[0].name, "trace_id");
    assert_eq!(entries[0].structured_metadata[0].value, trace_id);
    assert!(entries[1].structured_metadata.is_empty());
    assert!(!entries[1].line.contains("trace_id"));
}

/// A line opens with its own level and target, though the opening is kept per callsite and
/// thread: a target that needs escaping is escaped, and records bridged from the `log` crate
/// (one callsite per level) say `log`, as they did before.
#[actix::test]
async fn each_line_has_its_own_target() {
    let t = Scripted::answering(&[]);
    tokio::time::pause();
    let (layer, handle) = pipeline_with(&config(), Arc::default(), t.clone()).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let shipper = handle.start_with_jitter(Box::new(|| 0.0));
    for target in ["crate_a::module", "crate_b", "crate_a::module"] {
        let record = log::Record::builder()
            .args(format_args!("bridged"))
            .level(log::Level::Warn)
            .target(target)
            .build();
        tracing_log::format_trace(&record).unwrap();
    }
    for _ in 0..2 {
        tracing::info!(target: "odd\"target", "quoted");
        tracing::warn!(target: "crate_c", "plain");
    }
    shipper.shutdown().await;
    let pushes = t.pushes.lock().unwrap();
    let mut lines: Vec<serde_json::Value> = pushes[0]
        .streams
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| serde_json::from_str(&e.line).unwrap())
        .collect();
    lines.sort_by_key(|line| line["level"].as_str().map(str::to_owned));
    let opening: Vec<_> = lines
        .iter()
        .map(|line| {
            (
                line["level"].as_str().unwrap(),
                line["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        opening,
        [
            ("info", "odd\"target"),
            ("info", "odd\"target"),
            ("warn", "log"),
            ("warn", "log"),
            ("warn", "log"),
            ("warn", "crate_c"),
            ("warn", "crate_c"),
        ]
    );
}
