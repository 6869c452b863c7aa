//! Table and property tests of the health score and the uptime window.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

#[test]
fn score_table() {
    let cases = [
        (1.0, None, Phase::Closed, 1.0),
        (1.0, Some(0.5), Phase::Closed, 1.0),
        (1.0, Some(2.0), Phase::Closed, 0.75),
        (0.5, None, Phase::Closed, 0.5),
        (1.0, None, Phase::HalfOpen, 0.5),
        (1.0, None, Phase::Open, 0.0),
        (0.0, Some(0.1), Phase::Closed, 0.0),
    ];
    for (success, p95, phase, expected) in cases {
        let s = score(success, p95, 1.0, phase);
        assert!(
            (s - expected).abs() < 1e-9,
            "{success} {p95:?} {phase:?}: {s}"
        );
    }
}

#[test]
fn failing_provider_scores_below_a_healthy_one() {
    let t0 = Instant::now();
    let mut good = Tracker::new(t0, Duration::from_secs(60), Duration::from_secs(1));
    let mut bad = good.clone();
    for i in 0..20 {
        good.record(Some(true), Duration::from_millis(100), t0);
        bad.record(Some(i % 2 == 0), Duration::from_millis(100), t0);
    }
    let (g, b) = (good.view(t0, Phase::Closed), bad.view(t0, Phase::Closed));
    assert!(b.score < g.score && b.score <= 0.5, "{b:?} vs {g:?}");
    assert!((b.error_rate - 0.5).abs() < 1e-9);
    assert_eq!(g.latency_p95_seconds, Some(0.1));
}

#[test]
fn window_forgets_old_failures() {
    let t0 = Instant::now();
    let mut t = Tracker::new(t0, Duration::from_secs(60), Duration::from_secs(1));
    t.record(Some(false), Duration::ZERO, t0);
    assert_eq!(t.view(t0, Phase::Closed).score, 0.0);
    assert_eq!(
        t.view(t0 + Duration::from_secs(61), Phase::Closed).score,
        1.0
    );
}

#[test]
fn uptime_forgets_after_24h() {
    let t0 = Instant::now();
    let mut u = Uptime::new(t0);
    assert_eq!(u.uptime(t0), None);
    u.record(false, t0);
    u.record(true, t0 + Duration::from_secs(3600));
    assert_eq!(u.uptime(t0 + Duration::from_secs(3600)), Some(0.5));
    assert_eq!(
        u.uptime(t0 + UPTIME_SPAN + Duration::from_secs(600)),
        Some(1.0)
    );
    assert_eq!(u.uptime(t0 + UPTIME_SPAN * 2), None);
}

#[test]
fn percentiles_are_nearest_rank() {
    let samples: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&samples, 0.5), Some(50.0));
    assert_eq!(percentile(&samples, 0.99), Some(99.0));
    assert_eq!(percentile(&[], 0.5), None);
}

proptest! {
    #[test]
    fn score_is_always_in_unit_interval(
        success in -1.0f64..2.0,
        p95 in proptest::option::of(0.0f64..1000.0),
        target in 0.001f64..100.0,
        phase in prop_oneof![Just(Phase::Closed), Just(Phase::Open), Just(Phase::HalfOpen)],
    ) {
        let s = score(success, p95, target, phase);
        prop_assert!((0.0..=1.0).contains(&s));
    }

    #[test]
    fn uptime_window_forgets_everything_after_24h(
        events in proptest::collection::vec((any::<bool>(), 0u64..86_400), 1..100),
    ) {
        let t0 = Instant::now();
        let mut u = Uptime::new(t0);
        let mut last = t0;
        for (ok, at) in events {
            let now = t0 + Duration::from_secs(at);
            last = last.max(now);
            u.record(ok, now);
            let v = u.uptime(now).unwrap();
            prop_assert!((0.0..=1.0).contains(&v));
        }
        prop_assert_eq!(u.uptime(last + UPTIME_SPAN + Duration::from_secs(300)), None);
    }
}
