//! Spend and token efficiency as pure, clock-injected state.
//!
//! Cost is tokens × the model's configured price, computed only from usage the upstream
//! reported: a completion without usage is *unpriced* (counted apart), never estimated.
//! Token efficiency is output tokens / input tokens over a sliding window per model.

use std::time::{Duration, Instant};

use crate::actors::rolling::Rolling;
use crate::catalog::Price;
use crate::providers::Usage;

/// USD for `usage` at `price`.
pub fn cost(usage: &Usage, price: &Price) -> f64 {
    price.cost(usage.prompt_tokens, usage.completion_tokens)
}

/// Output / input tokens of one model over a window.
#[derive(Debug, Clone)]
pub struct Efficiency {
    window: Rolling<(u64, u64)>,
}

impl Efficiency {
    pub fn new(origin: Instant, span: Duration) -> Self {
        Self {
            window: Rolling::new(origin, span, 60),
        }
    }

    pub fn record(&mut self, usage: &Usage, now: Instant) {
        let bucket = self.window.at(now);
        bucket.0 += usage.prompt_tokens;
        bucket.1 += usage.completion_tokens;
    }

    /// `None` until some input tokens were seen in the window.
    pub fn ratio(&self, now: Instant) -> Option<f64> {
        let (input, output) = self
            .window
            .live(now)
            .fold((0u64, 0u64), |(a, b), (i, o)| (a + i, b + o));
        (input > 0).then(|| output as f64 / input as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            cached_tokens: 0,
        }
    }

    #[test]
    fn cost_table() {
        let price = Price {
            input_per_token: 2.0 / 1e6,
            output_per_token: 8.0 / 1e6,
        };
        let cases = [
            ((0, 0), 0.0),
            ((1_000_000, 0), 2.0),
            ((500_000, 250_000), 3.0),
        ];
        for ((i, o), expected) in cases {
            assert!((cost(&usage(i, o), &price) - expected).abs() < 1e-9);
        }
    }

    #[test]
    fn efficiency_over_the_window() {
        let t0 = Instant::now();
        let mut e = Efficiency::new(t0, Duration::from_secs(3600));
        assert_eq!(e.ratio(t0), None);
        e.record(&usage(10, 5), t0);
        e.record(&usage(10, 25), t0 + Duration::from_secs(60));
        assert_eq!(e.ratio(t0 + Duration::from_secs(60)), Some(1.5));
        assert_eq!(e.ratio(t0 + Duration::from_secs(7200)), None);
    }

    proptest! {
        #[test]
        fn cost_is_additive_and_non_negative(
            a in (0u64..1_000_000, 0u64..1_000_000),
            b in (0u64..1_000_000, 0u64..1_000_000),
            pi in 0.0f64..100.0, po in 0.0f64..100.0,
        ) {
            let price = Price { input_per_token: pi / 1e6, output_per_token: po / 1e6 };
            let sum = cost(&usage(a.0, a.1), &price) + cost(&usage(b.0, b.1), &price);
            let whole = cost(&usage(a.0 + b.0, a.1 + b.1), &price);
            prop_assert!(whole >= 0.0);
            prop_assert!((sum - whole).abs() <= 1e-9 * whole.max(1.0));
        }
    }
}
