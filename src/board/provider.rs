//! The lock-free view of a provider that the request path reads before it sends.
//!
//! The circuit-breaker actor owns every transition and publishes the result here with plain
//! atomic stores; the router only loads, plus one `fetch_update` to claim a half-open probe
//! slot. No lock, no await, no message on the request path.
//!
//! One thing the request path writes itself: the end of a rate-limit pause. A 429 is not an
//! outage (no breaker moves), but the next request must skip the provider at once, not after
//! the actors' next drain; a `fetch_max` on one atomic keeps the latest end.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The origin of the rate-limit pause's clock (milliseconds since this instant).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

/// Breaker phase as published for readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }

    /// The `state` label of `gatewayz_circuit_breaker_state`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Breaker closed.
    Normal,
    /// Breaker half-open: this request is one of the bounded probes.
    Probe,
}

/// One provider's published state.
#[derive(Debug)]
pub struct ProviderState {
    phase: AtomicU8,
    probes_left: AtomicU32,
    /// Health score in [0, 1], as `f32` bits.
    health: AtomicU32,
    /// End of a rate-limit pause, in ms since [`EPOCH`] plus one (0: none).
    limited_until: AtomicU64,
    /// Attempts waiting on the provider or relaying its stream now ([`InFlight`]).
    in_flight: AtomicU32,
}

impl Default for ProviderState {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Closed as u8),
            probes_left: AtomicU32::new(0),
            health: AtomicU32::new(1.0f32.to_bits()),
            limited_until: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }
    }
}

/// One attempt in flight at a provider, from its call to its answer (a stream: to its end);
/// counted while it lives.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<ProviderState>);

impl InFlight {
    pub fn enter(state: &std::sync::Arc<ProviderState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProviderState {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub fn health(&self) -> f32 {
        f32::from_bits(self.health.load(Ordering::Relaxed))
    }

    /// Attempts in flight at the provider now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Claims a place for one request, or `None` when the breaker refuses it.
    pub fn try_admit(&self) -> Option<Admission> {
        match self.phase() {
            Phase::Closed => Some(Admission::Normal),
            Phase::Open => None,
            Phase::HalfOpen => self
                .probes_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .ok()
                .map(|_| Admission::Probe),
        }
    }

    /// How long the provider still asked us to wait (429), if it did; reads the clock only
    /// when a pause was ever set.
    pub fn rate_limited(&self) -> Option<Duration> {
        if self.limited_until.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.rate_limited_for(Instant::now())
    }

    /// [`Self::rate_limited`] as of `now`.
    pub fn rate_limited_for(&self, now: Instant) -> Option<Duration> {
        let until = self.limited_until.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let now = millis_since_epoch(now) + 1;
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Skips the provider until `until` (the later of this and an earlier pause).
    pub fn rate_limit_until(&self, until: Instant) {
        let until = millis_since_epoch(until).saturating_add(1);
        self.limited_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Publishes a breaker phase; `probes` is the number of half-open probe slots.
    pub fn publish_phase(&self, phase: Phase, probes: u32) {
        self.probes_left.store(probes, Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Publishes a health score (clamped to [0, 1]).
    pub fn publish_health(&self, score: f32) {
        let score = if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        };
        self.health.store(score.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_follows_the_phase() {
        let state = ProviderState::default();
        assert_eq!(state.try_admit(), Some(Admission::Normal));
        state.publish_phase(Phase::Open, 0);
        assert_eq!(state.try_admit(), None);
        state.publish_phase(Phase::HalfOpen, 2);
        assert_eq!(state.try_admit(), Some(Admission::Probe));
        assert_eq!(state.try_admit(), Some(Admission::Probe));
        assert_eq!(state.try_admit(), None);
        state.publish_phase(Phase::Closed, 0);
        assert_eq!(state.try_admit(), Some(Admission::Normal));
    }

    #[test]
    fn a_rate_limit_pause_ends_on_time_and_keeps_the_latest() {
        let state = ProviderState::default();
        let t0 = Instant::now();
        assert_eq!(state.rate_limited_for(t0), None);
        state.rate_limit_until(t0 + Duration::from_secs(5));
        state.rate_limit_until(t0 + Duration::from_secs(2));
        let left = state.rate_limited_for(t0).unwrap();
        assert!(left > Duration::from_millis(4_990) && left <= Duration::from_secs(5));
        assert!(state
            .rate_limited_for(t0 + Duration::from_secs(4))
            .is_some());
        assert_eq!(state.rate_limited_for(t0 + Duration::from_secs(5)), None);
        // Admission is the breaker's: a rate limit does not move it.
        assert_eq!(state.try_admit(), Some(Admission::Normal));
    }

    #[test]
    fn attempts_in_flight_are_counted_while_they_live() {
        let state = std::sync::Arc::new(ProviderState::default());
        let a = InFlight::enter(&state);
        let b = InFlight::enter(&state);
        assert_eq!(state.in_flight(), 2);
        drop(a);
        assert_eq!(state.in_flight(), 1);
        drop(b);
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn health_is_clamped() {
        let state = ProviderState::default();
        state.publish_health(1.5);
        assert_eq!(state.health(), 1.0);
        state.publish_health(f32::NAN);
        assert_eq!(state.health(), 0.0);
    }
}
