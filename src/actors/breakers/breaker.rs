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
#[path = "breaker_tests.rs"]
mod tests;
