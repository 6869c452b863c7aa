//! Table and property tests of the breaker, driven by a fake clock.
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
enum Event {
    Send(bool),
    Reject,
    Wait(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        any::<bool>().prop_map(Event::Send),
        Just(Event::Reject),
        (0u64..8_000).prop_map(Event::Wait),
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
                Event::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    let effect = b.tick(now);
                    if effect.is_some() { probes_since_verdict = 0; }
                    publish(effect);
                }
                Event::Send(ok) => {
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
                Event::Reject => {
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
