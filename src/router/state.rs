//! The lock-free view of a provider that the request path reads before it sends.
//!
//! The circuit-breaker actor owns every transition and publishes the result here with plain
//! atomic stores; the router only loads, plus one `fetch_update` to claim a half-open probe
//! slot. No lock, no await, no message on the request path.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

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
}

impl Default for ProviderState {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Closed as u8),
            probes_left: AtomicU32::new(0),
            health: AtomicU32::new(1.0f32.to_bits()),
        }
    }
}

impl ProviderState {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub fn health(&self) -> f32 {
        f32::from_bits(self.health.load(Ordering::Relaxed))
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
    fn health_is_clamped() {
        let state = ProviderState::default();
        state.publish_health(1.5);
        assert_eq!(state.health(), 1.0);
        state.publish_health(f32::NAN);
        assert_eq!(state.health(), 0.0);
    }
}
