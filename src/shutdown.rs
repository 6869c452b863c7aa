//! The shutdown budget: one `server.shutdown_timeout` shared by the HTTP drain and the
//! telemetry flushes, so the whole graceful shutdown fits the orchestrator's grace period
//! (Kubernetes gives 30 s by default; the default budget is 25 s).
//!
//! From SIGTERM: the drain gets the budget minus a flush reserve (a fifth of the budget,
//! between 1 s and 5 s, never more than half); streams still open are cut with an SSE error
//! event a little before the drain deadline ([`Budget::cut`]), so the event is written before
//! the connections close; then the Loki shipper and the trace exporter share what is left, each
//! with a small floor. Pure arithmetic, no clock: `app.rs` measures the elapsed time.

use std::time::Duration;

/// The shutdown budget and its split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    total: Duration,
}

impl Budget {
    /// The least a flush gets, even when the drain used the whole budget.
    pub const FLUSH_FLOOR: Duration = Duration::from_millis(500);
    /// How long before the drain deadline open streams are cut (at most).
    pub const CUT_LEAD: Duration = Duration::from_millis(500);

    pub fn new(total: Duration) -> Self {
        Self { total }
    }

    pub fn total(&self) -> Duration {
        self.total
    }

    /// Kept for the flushes: a fifth of the budget, between 1 s and 5 s, at most half.
    fn reserve(&self) -> Duration {
        (self.total / 5)
            .clamp(Duration::from_secs(1), Duration::from_secs(5))
            .min(self.total / 2)
    }

    /// From SIGTERM to the drain deadline, when connections still open are closed.
    pub fn drain(&self) -> Duration {
        self.total - self.reserve()
    }

    /// From SIGTERM to the moment open streams get their shutting-down event: [`Self::CUT_LEAD`]
    /// before the drain deadline (a quarter of the drain before it, when that is shorter).
    pub fn cut(&self) -> Duration {
        let drain = self.drain();
        drain - Self::CUT_LEAD.min(drain / 4)
    }

    /// What is left for flushing once `elapsed` has passed since SIGTERM, at least the floor.
    pub fn left(&self, elapsed: Duration) -> Duration {
        self.total.saturating_sub(elapsed).max(Self::FLUSH_FLOOR)
    }

    /// The Loki shipper's share of what is left: half when the trace exporter flushes after
    /// it, all of it otherwise. (The shipper's own `shutdown_deadline` may be shorter.)
    pub fn loki(&self, elapsed: Duration, traces_follow: bool) -> Duration {
        let left = self.left(elapsed);
        if traces_follow {
            (left / 2).max(Self::FLUSH_FLOOR)
        } else {
            left
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_split_of_typical_budgets() {
        // (budget, drain, cut)
        for (total, drain, cut) in [
            (25_000, 20_000, 19_500),
            (30_000, 25_000, 24_500),
            (60_000, 55_000, 54_500),
            (10_000, 8_000, 7_500),
            (3_000, 2_000, 1_500),
            (1_000, 500, 375),
        ] {
            let b = Budget::new(ms(total));
            assert_eq!(
                (b.drain(), b.cut()),
                (ms(drain), ms(cut)),
                "budget {total} ms"
            );
        }
    }

    #[test]
    fn flushes_get_what_is_left_with_a_floor() {
        let b = Budget::new(ms(25_000));
        assert_eq!(b.left(ms(20_000)), ms(5_000));
        assert_eq!(b.loki(ms(20_000), true), ms(2_500));
        assert_eq!(b.loki(ms(20_000), false), ms(5_000));
        // A drain that ended early leaves more.
        assert_eq!(b.left(ms(1_000)), ms(24_000));
        // Past the budget, the floor.
        assert_eq!(b.left(ms(40_000)), Budget::FLUSH_FLOOR);
        assert_eq!(b.loki(ms(40_000), true), Budget::FLUSH_FLOOR);
    }

    proptest! {
        /// The cut comes before the drain deadline, the drain ends within the budget and
        /// leaves at least the floor (or half the budget) for the flushes.
        #[test]
        fn the_drain_fits_the_budget(total in 0u64..600_000) {
            let b = Budget::new(ms(total));
            prop_assert!(b.cut() <= b.drain());
            prop_assert!(b.drain() <= b.total());
            let reserve = b.total() - b.drain();
            prop_assert!(reserve >= ms(1_000).min(b.total() / 2));
            prop_assert!(reserve <= ms(5_000));
            if total >= 3_000 {
                prop_assert!(b.drain() - b.cut() == Budget::CUT_LEAD);
            }
        }
    }
}
