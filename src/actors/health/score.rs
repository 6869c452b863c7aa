//! Provider health and model uptime as pure, clock-injected state.
//!
//! The health score of a provider, in [0, 1]:
//!
//! ```text
//! score = breaker × success_rate × (0.5 + 0.5 × latency)
//!   breaker      = 1 closed, 0.5 half-open, 0 open
//!   success_rate = successes / (successes + failures) in the window (1 with no data)
//!   latency      = min(1, target / p95 latency in the window) (1 with no data)
//! ```
//!
//! A provider failing half its requests scores at most 0.5 (so the router demotes it); a
//! reliable but slow one keeps at least half its score; an open breaker scores 0. Rejected
//! attempts (the client's fault) do not count. Model uptime is the share of finished requests
//! that succeeded over 24 h of 5-minute buckets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::actors::rolling::Rolling;
use crate::board::{Phase, ProviderView};

/// Latency samples kept per provider for percentiles.
const LATENCY_SAMPLES: usize = 1024;

/// The formula above.
pub fn score(success_rate: f64, p95: Option<f64>, target: f64, phase: Phase) -> f64 {
    let breaker = match phase {
        Phase::Closed => 1.0,
        Phase::HalfOpen => 0.5,
        Phase::Open => 0.0,
    };
    let latency = match p95 {
        Some(p) if p > target => target / p,
        _ => 1.0,
    };
    let s = breaker * success_rate.clamp(0.0, 1.0) * (0.5 + 0.5 * latency.clamp(0.0, 1.0));
    if s.is_nan() {
        0.0
    } else {
        s
    }
}

/// One provider's rolling window.
#[derive(Debug, Clone)]
pub struct Tracker {
    outcomes: Rolling<(u64, u64)>,
    latencies: VecDeque<(Instant, f64)>,
    span: Duration,
    target: f64,
}

impl Tracker {
    pub fn new(origin: Instant, span: Duration, target: Duration) -> Self {
        Self {
            outcomes: Rolling::new(origin, span, 12),
            latencies: VecDeque::with_capacity(LATENCY_SAMPLES),
            span,
            target: target.as_secs_f64(),
        }
    }

    /// `ok`: `Some(true)` success, `Some(false)` failure, `None` rejected (ignored).
    pub fn record(&mut self, ok: Option<bool>, latency: Duration, now: Instant) {
        let Some(ok) = ok else { return };
        let bucket = self.outcomes.at(now);
        if ok {
            bucket.0 += 1;
            if self.latencies.len() == LATENCY_SAMPLES {
                self.latencies.pop_front();
            }
            self.latencies.push_back((now, latency.as_secs_f64()));
        } else {
            bucket.1 += 1;
        }
    }

    /// Forgets the window: when a breaker half-opens, its probes decide afresh, and the
    /// failures that opened it must not keep the provider demoted (and so unprobed).
    pub fn reset(&mut self) {
        self.outcomes.clear();
        self.latencies.clear();
    }

    pub fn view(&self, now: Instant, phase: Phase) -> ProviderView {
        let (ok, failed) = self
            .outcomes
            .live(now)
            .fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
        let requests = ok + failed;
        let success_rate = if requests == 0 {
            1.0
        } else {
            ok as f64 / requests as f64
        };
        let mut recent: Vec<f64> = self
            .latencies
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < self.span)
            .map(|(_, l)| *l)
            .collect();
        recent.sort_by(f64::total_cmp);
        let p = |q: f64| percentile(&recent, q);
        ProviderView {
            score: score(success_rate, p(0.95), self.target, phase),
            requests,
            error_rate: 1.0 - success_rate,
            latency_p50_seconds: p(0.5),
            latency_p95_seconds: p(0.95),
            latency_p99_seconds: p(0.99),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One model's availability over 24 h.
#[derive(Debug, Clone)]
pub struct Uptime {
    window: Rolling<(u64, u64)>,
}

/// The uptime window and its bucket count (5-minute buckets).
pub const UPTIME_SPAN: Duration = Duration::from_secs(24 * 3600);
const UPTIME_SLOTS: u32 = 288;

impl Uptime {
    pub fn new(origin: Instant) -> Self {
        Self {
            window: Rolling::new(origin, UPTIME_SPAN, UPTIME_SLOTS),
        }
    }

    pub fn record(&mut self, ok: bool, now: Instant) {
        let bucket = self.window.at(now);
        bucket.0 += u64::from(ok);
        bucket.1 += 1;
    }

    /// Share of requests that succeeded in the last 24 h; `None` without requests.
    pub fn uptime(&self, now: Instant) -> Option<f64> {
        let (ok, total) = self
            .window
            .live(now)
            .fold((0, 0), |(a, b), (o, t)| (a + o, b + t));
        (total > 0).then(|| ok as f64 / total as f64)
    }
}

#[cfg(test)]
/// Table and property tests of the health score and the uptime window.
mod tests {
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
}
