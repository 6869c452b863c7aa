//! One provider's circuit breaker as a pure state machine: no actix, no clock, no I/O.
//!
//! `Closed` counts consecutive failures and a bucketed error-rate window; it trips to
//! `Open { until, reason }` on either threshold. The actor arms a timer for `until`; `tick`
//! then moves to `HalfOpen`, which lets `half_open_probes` requests through (the slots are
//! published to the router's [`crate::board::ProviderState`]). `close_after` successful
//! probes close it; any failed probe reopens it. Rejected attempts (the client's fault) are
//! neither successes nor failures, but hand their probe slot back.

use std::time::{Duration, Instant};

use crate::board::Phase;
use crate::config::BreakerConfig;

/// Why a breaker opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripReason {
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// This error rate over this many attempts in the window.
    ErrorRate { rate: f64, attempts: u32 },
    /// A half-open probe failed.
    ProbeFailed,
}

impl std::fmt::Display for TripReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            Self::ErrorRate { rate, attempts } => {
                write!(
                    f,
                    "error rate {:.0}% over {attempts} attempts",
                    rate * 100.0
                )
            }
            Self::ProbeFailed => f.write_str("a half-open probe failed"),
        }
    }
}

/// The named states.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Closed {
        consecutive: u32,
    },
    Open {
        until: Instant,
        reason: TripReason,
    },
    HalfOpen {
        successes: u32,
        last_verdict: Instant,
    },
}

/// What the actor must publish after a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Phase changed (or the probe slots must be refreshed): publish phase and slots.
    Publish { phase: Phase, probes: u32 },
    /// The breaker opened: publish, log the reason, and arm a timer for `until`.
    Opened { reason: TripReason, until: Instant },
}

/// Number of buckets the error-rate window is cut into.
const BUCKETS: usize = 10;

/// One provider's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    /// (bucket start, successes, failures), a ring over the window.
    buckets: [(Option<Instant>, u32, u32); BUCKETS],
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed { consecutive: 0 },
            buckets: [(None, 0, 0); BUCKETS],
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Closed { .. } => Phase::Closed,
            State::Open { .. } => Phase::Open,
            State::HalfOpen { .. } => Phase::HalfOpen,
        }
    }

    /// Slots a half-open breaker offers: the successes still needed, at most the probe limit.
    fn probes(&self, successes: u32) -> u32 {
        (self.config.close_after - successes.min(self.config.close_after))
            .min(self.config.half_open_probes)
            .max(1)
    }

    /// Records one attempt's verdict: `Some(true)` success, `Some(false)` failure, `None`
    /// rejected (not the provider's fault).
    pub fn record(&mut self, verdict: Option<bool>, now: Instant) -> Option<Effect> {
        match (&mut self.state, verdict) {
            // Stragglers that were admitted before the breaker opened change nothing.
            (State::Open { .. }, _) => None,
            (State::Closed { .. }, None) => None,
            (State::Closed { consecutive }, Some(ok)) => {
                *consecutive = if ok { 0 } else { *consecutive + 1 };
                let consecutive = *consecutive;
                self.count(ok, now);
                let reason = if consecutive >= self.config.consecutive_failures {
                    Some(TripReason::ConsecutiveFailures(consecutive))
                } else {
                    let (ok, failed) = self.totals(now);
                    let attempts = ok + failed;
                    let rate = f64::from(failed) / f64::from(attempts.max(1));
                    (attempts >= self.config.min_requests && rate >= self.config.error_rate)
                        .then_some(TripReason::ErrorRate { rate, attempts })
                };
                reason.map(|reason| self.open(reason, now))
            }
            (State::HalfOpen { last_verdict, .. }, None) => {
                // Hand the probe slot back.
                *last_verdict = now;
                let probes = match self.state {
                    State::HalfOpen { successes, .. } => self.probes(successes),
                    _ => 0,
                };
                Some(Effect::Publish {
                    phase: Phase::HalfOpen,
                    probes,
                })
            }
            (State::HalfOpen { .. }, Some(false)) => Some(self.open(TripReason::ProbeFailed, now)),
            (State::HalfOpen { successes, .. }, Some(true)) => {
                let successes = *successes + 1;
                if successes >= self.config.close_after {
                    self.state = State::Closed { consecutive: 0 };
                    self.buckets = [(None, 0, 0); BUCKETS];
                    Some(Effect::Publish {
                        phase: Phase::Closed,
                        probes: 0,
                    })
                } else {
                    Some(self.half_open(successes, now))
                }
            }
        }
    }

    /// Enters (or refreshes) half-open with `successes` probes already passed, as of `now`.
    fn half_open(&mut self, successes: u32, now: Instant) -> Effect {
        self.state = State::HalfOpen {
            successes,
            last_verdict: now,
        };
        Effect::Publish {
            phase: Phase::HalfOpen,
            probes: self.probes(successes),
        }
    }

    /// The timer: an open breaker whose cool-down is over becomes half-open; a half-open one
    /// that heard no verdict for a cool-down refreshes its probe slots (a probe got lost).
    pub fn tick(&mut self, now: Instant) -> Option<Effect> {
        match self.state {
            State::Open { until, .. } if now >= until => Some(self.half_open(0, now)),
            State::HalfOpen {
                successes,
                last_verdict,
            } if now.saturating_duration_since(last_verdict) >= self.config.cool_down => {
                Some(self.half_open(successes, now))
            }
            _ => None,
        }
    }

    fn open(&mut self, reason: TripReason, now: Instant) -> Effect {
        let until = now + self.config.cool_down;
        self.state = State::Open { until, reason };
        Effect::Opened { reason, until }
    }

    fn bucket_span(&self) -> Duration {
        (self.config.window / BUCKETS as u32).max(Duration::from_millis(1))
    }

    fn count(&mut self, ok: bool, now: Instant) {
        let span = self.bucket_span();
        let current = self.buckets.iter().position(|(start, _, _)| {
            start.is_some_and(|s| now >= s && now.duration_since(s) < span)
        });
        let index = current.unwrap_or_else(|| {
            // Reuse the oldest (or an empty) bucket.
            let oldest = (0..BUCKETS).min_by_key(|i| self.buckets[*i].0).unwrap_or(0);
            self.buckets[oldest] = (Some(now), 0, 0);
            oldest
        });
        let bucket = &mut self.buckets[index];
        if ok {
            bucket.1 += 1;
        } else {
            bucket.2 += 1;
        }
    }

    /// Successes and failures inside the window ending at `now`.
    fn totals(&self, now: Instant) -> (u32, u32) {
        self.buckets
            .iter()
            .filter(|(start, _, _)| {
                start.is_some_and(|s| now.saturating_duration_since(s) < self.config.window)
            })
            .fold((0, 0), |(ok, failed), (_, s, f)| (ok + s, failed + f))
    }
}

#[cfg(test)]
/// Table and property tests of the breaker, driven by a fake clock.
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;
    use crate::board::ProviderState;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            half_open_probes: 2,
            close_after: 2,
        }
    }

    const S: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);

    #[test]
    fn consecutive_failures_trip_then_cool_down_then_close() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        assert_eq!(b.record(F, t0), None);
        assert_eq!(b.record(F, t0), None);
        let effect = b.record(F, t0);
        assert_eq!(
            effect,
            Some(Effect::Opened {
                reason: TripReason::ConsecutiveFailures(3),
                until: t0 + Duration::from_secs(5)
            })
        );
        assert_eq!(b.phase(), Phase::Open);
        assert_eq!(b.tick(t0 + Duration::from_secs(4)), None);
        assert_eq!(
            b.tick(t0 + Duration::from_secs(5)),
            Some(Effect::Publish {
                phase: Phase::HalfOpen,
                probes: 2
            })
        );
        let t = t0 + Duration::from_secs(6);
        assert_eq!(
            b.record(S, t),
            Some(Effect::Publish {
                phase: Phase::HalfOpen,
                probes: 1
            })
        );
        assert_eq!(
            b.record(S, t),
            Some(Effect::Publish {
                phase: Phase::Closed,
                probes: 0
            })
        );
    }

    #[test]
    fn table_of_transitions() {
        // (events, expected phase at the end); each event is (verdict or tick, seconds after t0).
        type Case = (&'static str, &'static [(Option<Option<bool>>, u64)], Phase);
        let cases: &[Case] = &[
            ("success keeps closed", &[(Some(S), 0)], Phase::Closed),
            (
                "a success resets the run",
                &[(Some(F), 0), (Some(F), 0), (Some(S), 0), (Some(F), 0)],
                Phase::Closed,
            ),
            (
                "rejected does not count",
                &[(Some(F), 0), (Some(F), 0), (Some(None), 0), (Some(None), 0)],
                Phase::Closed,
            ),
            (
                "open ignores stragglers",
                &[(Some(F), 0), (Some(F), 0), (Some(F), 0), (Some(S), 1)],
                Phase::Open,
            ),
            (
                "probe failure reopens",
                &[
                    (Some(F), 0),
                    (Some(F), 0),
                    (Some(F), 0),
                    (None, 5),
                    (Some(F), 6),
                ],
                Phase::Open,
            ),
            (
                "one probe success is not enough",
                &[
                    (Some(F), 0),
                    (Some(F), 0),
                    (Some(F), 0),
                    (None, 5),
                    (Some(S), 6),
                ],
                Phase::HalfOpen,
            ),
        ];
        for (name, events, expected) in cases {
            let t0 = Instant::now();
            let mut b = Breaker::new(config());
            for (event, at) in *events {
                let now = t0 + Duration::from_secs(*at);
                match event {
                    Some(verdict) => b.record(*verdict, now),
                    None => b.tick(now),
                };
            }
            assert_eq!(b.phase(), *expected, "{name}");
        }
    }

    #[test]
    fn error_rate_over_minimum_volume_trips() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        let mut opened = None;
        for i in 0..10u64 {
            let verdict = if i % 2 == 0 { S } else { F };
            if let Some(Effect::Opened { reason, .. }) =
                b.record(verdict, t0 + Duration::from_millis(i))
            {
                opened = Some((i, reason));
            }
        }
        let (at, reason) = opened.expect("tripped");
        assert_eq!(at, 9);
        assert!(matches!(reason, TripReason::ErrorRate { attempts: 10, .. }));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for i in 0..9u64 {
            b.record(if i % 3 == 0 { S } else { F }, t0);
        }
        // 20 s later the window holds only fresh successes and one failure.
        let later = t0 + Duration::from_secs(20);
        for _ in 0..9 {
            b.record(S, later);
        }
        assert_eq!(b.record(F, later), None);
        assert_eq!(b.phase(), Phase::Closed);
    }

    #[test]
    fn lost_probe_slots_are_refreshed() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.record(F, t0);
        }
        b.tick(t0 + Duration::from_secs(5));
        assert_eq!(b.tick(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            b.tick(t0 + Duration::from_secs(10)),
            Some(Effect::Publish {
                phase: Phase::HalfOpen,
                probes: 2
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Send(bool),
        Reject,
        Wait(u64),
    }

    fn event() -> impl Strategy<Value = Step> {
        prop_oneof![
            any::<bool>().prop_map(Step::Send),
            Just(Step::Reject),
            (0u64..8_000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Whatever happens, the published snapshot never admits a request while the breaker is
        /// open, and never admits more probes than configured between two verdicts.
        #[test]
        fn never_sends_to_an_open_provider(events in proptest::collection::vec(event(), 1..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut b = Breaker::new(config());
            let state = ProviderState::default();
            let publish = |effect: Option<Effect>| match effect {
                Some(Effect::Publish { phase, probes }) => state.publish_phase(phase, probes),
                Some(Effect::Opened { .. }) => state.publish_phase(Phase::Open, 0),
                None => {}
            };
            let mut probes_since_verdict = 0;
            for e in events {
                match e {
                    Step::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        let effect = b.tick(now);
                        if effect.is_some() { probes_since_verdict = 0; }
                        publish(effect);
                    }
                    Step::Send(ok) => {
                        let admitted = state.try_admit();
                        if b.phase() == Phase::Open {
                            prop_assert!(admitted.is_none());
                        }
                        if admitted == Some(crate::board::Admission::Probe) {
                            probes_since_verdict += 1;
                            prop_assert!(probes_since_verdict <= config().half_open_probes);
                        }
                        if admitted.is_some() {
                            let effect = b.record(Some(ok), now);
                            if effect.is_some() { probes_since_verdict = 0; }
                            publish(effect);
                        }
                    }
                    Step::Reject => {
                        if state.try_admit().is_some() {
                            let effect = b.record(None, now);
                            if effect.is_some() { probes_since_verdict = 0; }
                            publish(effect);
                        }
                    }
                }
                prop_assert_eq!(state.phase(), b.phase());
            }
        }
    }
}
