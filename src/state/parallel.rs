//! A requests-in-flight gauge with a ceiling: one atomic, no lock.
//!
//! [`Gauge::enter`] counts a request in only while the count is below the ceiling (a
//! compare-and-swap loop, so two workers racing for the last place cannot both get it);
//! [`Gauge::leave`] counts it out. The limits' guard ([`super::Permit`]) leaves on drop, so a
//! request whose client went away still gives its place back.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Gauge {
    max: u64,
    current: AtomicU64,
}

impl Gauge {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            current: AtomicU64::new(0),
        }
    }

    /// Counts one more request in, unless the gauge is at its ceiling.
    pub fn enter(&self) -> bool {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts one request out (never below zero).
    pub fn leave(&self) {
        let _ = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_ceiling() {
        let gauge = Gauge::new(2);
        assert!(gauge.enter() && gauge.enter());
        assert!(!gauge.enter());
        gauge.leave();
        assert!(gauge.enter());
        for _ in 0..5 {
            gauge.leave();
        }
        assert_eq!(gauge.current(), 0);
    }

    #[test]
    fn racing_threads_never_pass_the_ceiling() {
        let gauge = std::sync::Arc::new(Gauge::new(3));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let gauge = gauge.clone();
                std::thread::spawn(move || {
                    let mut peak = 0;
                    for _ in 0..10_000 {
                        if gauge.enter() {
                            peak = peak.max(gauge.current());
                            gauge.leave();
                        }
                    }
                    peak
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap() <= 3);
        }
        assert_eq!(gauge.current(), 0);
    }
}
