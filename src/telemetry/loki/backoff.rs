//! The crate's one retry delay: exponential backoff with full jitter, capped.
//!
//! Attempt `n` (0-based) waits a uniformly random time in `[min, min(max, min * 2^n)]` — "full
//! jitter" above the floor, so a fleet of shippers that failed together does not retry in
//! lockstep while no retry comes sooner than `min`. Parameters are checked when built
//! ([`Backoff::new`]); the random draw is passed in (`jitter` in `[0, 1]`), so the function is
//! pure and tests set it to zero or one. Whether to retry at all is the classifier's business,
//! not this one's.

use std::time::Duration;

/// Why a backoff could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackoffError {
    #[error("the minimum delay must be greater than zero")]
    ZeroMin,
    #[error("the maximum delay must not be less than the minimum")]
    MaxBelowMin,
    #[error("at least one try is required")]
    NoTries,
}

/// Exponential backoff parameters, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    max_tries: u32,
}

impl Backoff {
    /// Promtail's defaults: 500 ms doubling to 5 min, 10 tries.
    pub const PROMTAIL: Backoff = Backoff {
        min: Duration::from_millis(500),
        max: Duration::from_secs(300),
        max_tries: 10,
    };

    pub fn new(min: Duration, max: Duration, max_tries: u32) -> Result<Self, BackoffError> {
        if min.is_zero() {
            return Err(BackoffError::ZeroMin);
        }
        if max < min {
            return Err(BackoffError::MaxBelowMin);
        }
        if max_tries == 0 {
            return Err(BackoffError::NoTries);
        }
        Ok(Self {
            min,
            max,
            max_tries,
        })
    }

    /// Whether another attempt is allowed after `tries` attempts have failed.
    pub fn may_retry(&self, tries: u32) -> bool {
        tries < self.max_tries
    }

    /// The delay before retry number `attempt` (0 = the first retry), `jitter` in `[0, 1]`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max));
        let spread = ceiling.saturating_sub(self.min);
        self.min + spread.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::PROMTAIL;
        let table = [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (5, 16_000),
            (9, 256_000),
            (10, 300_000),
            (40, 300_000),
        ];
        for (attempt, ceiling) in table {
            assert_eq!(b.delay(attempt, 1.0), ms(ceiling), "attempt {attempt}");
            assert_eq!(b.delay(attempt, 0.0), ms(500), "attempt {attempt}");
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Backoff::new(ms(0), ms(1), 1), Err(BackoffError::ZeroMin));
        assert_eq!(
            Backoff::new(ms(2), ms(1), 1),
            Err(BackoffError::MaxBelowMin)
        );
        assert_eq!(Backoff::new(ms(1), ms(1), 0), Err(BackoffError::NoTries));
        let b = Backoff::new(ms(1), ms(1), 3).unwrap();
        assert!(b.may_retry(2) && !b.may_retry(3));
    }

    proptest! {
        #[test]
        fn always_within_min_and_max(
            min in 1u64..10_000, extra in 0u64..1_000_000, attempt in 0u32..1000, jitter in -1.0f64..2.0
        ) {
            let b = Backoff::new(ms(min), ms(min + extra), 5).unwrap();
            let d = b.delay(attempt, jitter);
            prop_assert!(d >= ms(min) && d <= ms(min + extra));
        }
    }
}
