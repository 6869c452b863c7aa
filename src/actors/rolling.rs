//! A sliding window of time buckets: the health success window, 24 h model uptime and token
//! efficiency count into it (the breaker keeps its own small ring of buckets, latency
//! percentiles keep samples, and the anomaly detector an EWMA).
//!
//! Time is injected: the window measures slots from an `origin` instant, so tests drive it
//! with a fake clock. Memory is bounded by the slot count whatever the traffic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `slots` buckets of `span / slots` each; buckets older than `span` are forgotten.
#[derive(Debug, Clone)]
pub struct Rolling<T> {
    origin: Instant,
    slot_nanos: u128,
    slots: u64,
    buckets: VecDeque<(u64, T)>,
}

impl<T: Default> Rolling<T> {
    pub fn new(origin: Instant, span: Duration, slots: u32) -> Self {
        let slots = u64::from(slots.max(1));
        Self {
            origin,
            slot_nanos: (span.as_nanos() / u128::from(slots)).max(1),
            slots,
            buckets: VecDeque::new(),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        let n = now.saturating_duration_since(self.origin).as_nanos() / self.slot_nanos;
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    fn prune(&mut self, current: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|(i, _)| i + self.slots <= current)
        {
            self.buckets.pop_front();
        }
    }

    /// The bucket `now` falls in, created if needed.
    pub fn at(&mut self, now: Instant) -> &mut T {
        let current = self.index(now);
        self.prune(current);
        if self.buckets.back().is_none_or(|(i, _)| *i < current) {
            self.buckets.push_back((current, T::default()));
        }
        // A late sample (clock earlier than the newest bucket) joins the newest bucket.
        let last = self.buckets.len() - 1;
        &mut self.buckets[last].1
    }

    /// The buckets still inside the window at `now`, oldest first.
    pub fn live(&self, now: Instant) -> impl Iterator<Item = &T> {
        let current = self.index(now);
        self.buckets
            .iter()
            .filter(move |(i, _)| i + self.slots > current)
            .map(|(_, t)| t)
    }

    /// Buckets held (at most `slots` after any call to [`Rolling::at`]).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forgets_after_the_span() {
        let t0 = Instant::now();
        let mut w: Rolling<u32> = Rolling::new(t0, Duration::from_secs(10), 10);
        *w.at(t0) += 1;
        *w.at(t0 + Duration::from_secs(5)) += 2;
        let sum = |w: &Rolling<u32>, s| w.live(t0 + Duration::from_secs(s)).sum::<u32>();
        assert_eq!(sum(&w, 9), 3);
        assert_eq!(sum(&w, 10), 2);
        assert_eq!(sum(&w, 15), 0);
    }

    proptest! {
        #[test]
        fn bounded_and_never_counts_expired(steps in proptest::collection::vec(0u64..5_000, 1..300)) {
            let t0 = Instant::now();
            let mut w: Rolling<u32> = Rolling::new(t0, Duration::from_secs(10), 10);
            let mut now = t0;
            let mut log = Vec::new();
            for ms in steps {
                now += Duration::from_millis(ms);
                *w.at(now) += 1;
                log.push(now);
                prop_assert!(w.len() <= 10);
                let live: u32 = w.live(now).sum();
                // Never more than what happened in the last span plus one slot of rounding.
                let recent = log.iter().filter(|t| now.duration_since(**t) < Duration::from_secs(11)).count();
                prop_assert!(live as usize <= recent);
            }
        }
    }
}
