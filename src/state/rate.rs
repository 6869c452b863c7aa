//! A per-minute rate limit as GCRA (the generic cell rate algorithm): one timestamp per
//! limiter, the *theoretical arrival time* after which the limiter is whole again.
//!
//! A limit of `L` units per minute spends `60 s / L` of that time per unit and admits while
//! the arrival time stays within one minute of `now`: a burst of `L` at once, then `L` per
//! minute — the token bucket the gateway had, as one number, which is what a shared store
//! can update atomically later. Time is kept scaled by `L` (nanoseconds × `L`, in `u128`) so
//! that `L` units of `60 s / L` are exactly one minute, with no rounding for any `L`.
//!
//! Token limits reserve an estimate at admission ([`Rate::take`]) and are corrected when the
//! answer's usage is known: a refund ([`Rate::give_back`]) or a charge that may put the
//! limiter into debt ([`Rate::charge`]), paid back by waiting. The clock is a parameter.

use std::time::{Duration, Instant};

use crate::errors::Quota;

/// The window every limit is expressed in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What [`Rate::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// `Err(wait)`: refused; the units fit again after `wait`.
    pub allowed: Result<(), Duration>,
    /// The quota as it stands after.
    pub quota: Quota,
}

/// One limiter: `limit` units per [`WINDOW`].
#[derive(Debug, Clone)]
pub struct Rate {
    limit: u64,
    /// Where scaled time counts from.
    origin: Instant,
    /// The theoretical arrival time, scaled (`ns × limit` since `origin`).
    tat: u128,
}

impl Rate {
    /// A limiter of `limit` units per minute (at least 1), whole at `origin`.
    pub fn per_minute(limit: u64, origin: Instant) -> Self {
        Self {
            limit: limit.max(1),
            origin,
            tat: 0,
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// `now`, scaled.
    fn scaled(&self, now: Instant) -> u128 {
        now.saturating_duration_since(self.origin).as_nanos() * u128::from(self.limit)
    }

    /// Scaled time `units` cost.
    fn cost(&self, units: u64) -> u128 {
        u128::from(units) * WINDOW.as_nanos()
    }

    /// The scaled width of the window (a whole limiter).
    fn width(&self) -> u128 {
        self.cost(self.limit)
    }

    /// Takes `units` at `now` (a request larger than the whole limit takes the whole limit:
    /// it waits for a whole limiter instead of never fitting).
    pub fn take(&mut self, units: u64, now: Instant) -> Taken {
        let units = units.min(self.limit);
        let n = self.scaled(now);
        let next = self.tat.max(n) + self.cost(units);
        let allowed = if next <= n + self.width() {
            self.tat = next;
            Ok(())
        } else {
            Err(self.unscale(next - n - self.width()))
        };
        Taken {
            allowed,
            quota: self.quota(now),
        }
    }

    /// Returns `units` taken earlier (a refused sibling limit, or an estimate above the usage).
    /// The limiter never becomes more than whole.
    pub fn give_back(&mut self, units: u64, now: Instant) {
        let n = self.scaled(now);
        self.tat = self
            .tat
            .saturating_sub(self.cost(units))
            .max(n.min(self.tat));
    }

    /// Charges `units` beyond what was taken (usage above the estimate), even past the limit:
    /// the debt is paid back by waiting.
    pub fn charge(&mut self, units: u64, now: Instant) {
        let n = self.scaled(now);
        // Bounded: at most an hour of debt, so a huge usage report cannot lock a key for days.
        let most = n + self.width() * 60;
        self.tat = (self.tat.max(n) + self.cost(units)).min(most);
    }

    /// The quota at `now`: units left, and the time until the limiter is whole.
    pub fn quota(&self, now: Instant) -> Quota {
        let n = self.scaled(now);
        let base = self.tat.max(n);
        let room = (n + self.width()).saturating_sub(base);
        Quota {
            limit: self.limit,
            remaining: u64::try_from(room / WINDOW.as_nanos()).unwrap_or(u64::MAX),
            reset: self.unscale(base - n),
        }
    }

    /// Scaled time as a duration, rounded up to the nanosecond.
    fn unscale(&self, scaled: u128) -> Duration {
        let nanos = scaled.div_ceil(u128::from(self.limit));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// The gateway's old token bucket, number for number: 2 rpm is a burst of 2, then one
    /// every 30 s.
    #[test]
    fn two_per_minute_like_the_bucket() {
        let t0 = Instant::now();
        let mut rate = Rate::per_minute(2, t0);
        let first = rate.take(1, t0);
        assert!(first.allowed.is_ok());
        assert_eq!((first.quota.limit, first.quota.remaining), (2, 1));
        assert_eq!(first.quota.reset, 30 * S);
        assert!(rate.take(1, t0).allowed.is_ok());
        let refused = rate.take(1, t0);
        assert_eq!(refused.allowed, Err(30 * S));
        assert_eq!(refused.quota.remaining, 0);
        assert_eq!(refused.quota.reset, 60 * S);
        assert!(rate.take(1, t0 + 30 * S).allowed.is_ok());
        assert!(rate.take(1, t0 + 30 * S).allowed.is_err());
        assert_eq!(rate.quota(t0 + 120 * S).remaining, 2);
    }

    /// Exact for limits that do not divide a minute: 7 per minute admits 7, not 8.
    #[test]
    fn exact_for_any_limit() {
        for limit in [1, 3, 7, 600, 999_983, 1_000_000_000] {
            let t0 = Instant::now();
            let mut rate = Rate::per_minute(limit, t0);
            let burst = limit.min(10_000);
            for _ in 0..burst {
                assert!(rate.take(limit / burst, t0).allowed.is_ok(), "{limit}");
            }
            let left = limit - burst * (limit / burst);
            if left > 0 {
                assert!(rate.take(left, t0).allowed.is_ok(), "{limit}");
            }
            assert!(rate.take(1, t0).allowed.is_err(), "{limit}");
            assert_eq!(rate.quota(t0).remaining, 0);
        }
    }

    #[test]
    fn tokens_reserve_then_settle() {
        let t0 = Instant::now();
        let mut rate = Rate::per_minute(1000, t0);
        assert!(rate.take(800, t0).allowed.is_ok());
        let refused = rate.take(300, t0);
        // 100 tokens short: 6 s at 1000 per minute.
        assert_eq!(refused.allowed, Err(6 * S));
        // The answer used 50: 750 come back.
        rate.give_back(750, t0);
        assert_eq!(rate.quota(t0).remaining, 950);
        assert!(rate.take(300, t0).allowed.is_ok());
        // Another used 900 more than it reserved: in debt, refused until paid back.
        rate.charge(900, t0);
        assert_eq!(rate.quota(t0).remaining, 0);
        let wait = rate.take(1, t0).allowed.unwrap_err();
        assert_eq!(wait, Duration::from_millis(15_060));
        assert!(rate.take(1, t0 + wait).allowed.is_ok());
    }

    #[test]
    fn refunds_never_make_it_more_than_whole() {
        let t0 = Instant::now();
        let mut rate = Rate::per_minute(10, t0);
        assert!(rate.take(5, t0).allowed.is_ok());
        rate.give_back(50, t0);
        assert_eq!(rate.quota(t0).remaining, 10);
        for _ in 0..10 {
            assert!(rate.take(1, t0).allowed.is_ok());
        }
        assert!(rate.take(1, t0).allowed.is_err());
        // A refund after the limiter refilled by itself changes nothing.
        rate.give_back(3, t0 + 120 * S);
        assert_eq!(rate.quota(t0 + 120 * S).remaining, 10);
    }

    #[test]
    fn a_request_above_the_limit_waits_for_a_whole_limiter() {
        let t0 = Instant::now();
        let mut rate = Rate::per_minute(100, t0);
        assert!(rate.take(10_000, t0).allowed.is_ok());
        assert_eq!(rate.take(10_000, t0).allowed, Err(60 * S));
        assert!(rate.take(10_000, t0 + 60 * S).allowed.is_ok());
    }

    #[test]
    fn a_clock_before_the_origin_counts_as_the_origin() {
        let t0 = Instant::now();
        let mut rate = Rate::per_minute(1, t0 + 10 * S);
        assert!(rate.take(1, t0).allowed.is_ok());
        assert!(rate.take(1, t0).allowed.is_err());
    }
}
