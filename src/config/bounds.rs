//! The range checks every numeric and duration setting goes through.
//!
//! Each setting has a lower bound (what makes it meaningful: a zero timeout, a zero capacity)
//! and an upper bound, so that no accepted file can make `serve` panic or exhaust memory:
//! durations stay far below what `Instant + d` can hold (an idle deadline, a breaker's
//! `open until`), interval timers cannot spin, and sizes stay below what may be allocated up
//! front. The bounds themselves are written next to each field's validation and in its `///`
//! doc; these helpers only word the message the same way everywhere, naming the key.

use std::fmt::Display;
use std::time::Duration;

use super::Invalid;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// `value` must lie in `min..=max` (counts, capacities, limits).
pub fn count(
    key: impl Into<String>,
    value: impl TryInto<u64>,
    min: u64,
    max: u64,
) -> Result<(), Invalid> {
    in_range(key, value, min, max, &|n| n.to_string())
}

/// `value` must lie in `min..=max` bytes; the message writes whole KiB, MiB and GiB as such.
pub fn bytes(
    key: impl Into<String>,
    value: impl TryInto<u64>,
    min: u64,
    max: u64,
) -> Result<(), Invalid> {
    in_range(key, value, min, max, &size)
}

fn in_range(
    key: impl Into<String>,
    value: impl TryInto<u64>,
    min: u64,
    max: u64,
    show: &dyn Fn(u64) -> String,
) -> Result<(), Invalid> {
    // Every integer setting fits u64 on the targets we build for; saturate rather than assume.
    let value = value.try_into().unwrap_or(u64::MAX);
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Invalid::new(
        key,
        format!(
            "must be {} to {} (got {})",
            show(min),
            show(max),
            show(value)
        ),
    ))
}

/// `d` must be greater than zero and at most `max`.
pub fn positive(key: impl Into<String>, d: Duration, max: Duration) -> Result<(), Invalid> {
    if d.is_zero() {
        return Err(Invalid::new(key, "must be greater than 0s"));
    }
    at_most(key, d, max)
}

/// `d` must lie in `min..=max`.
pub fn between(
    key: impl Into<String>,
    d: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), Invalid> {
    if d < min {
        return Err(Invalid::new(
            key,
            format!("must be at least {} (got {})", human(min), human(d)),
        ));
    }
    at_most(key, d, max)
}

/// `d` may be zero and must be at most `max`.
pub fn at_most(key: impl Into<String>, d: Duration, max: Duration) -> Result<(), Invalid> {
    if d > max {
        return Err(Invalid::new(
            key,
            format!("must be at most {} (got {})", human(max), human(d)),
        ));
    }
    Ok(())
}

/// `x` must be a finite number in `min..=max`.
pub fn number(key: impl Into<String>, x: f64, min: f64, max: f64) -> Result<(), Invalid> {
    if x.is_finite() && (min..=max).contains(&x) {
        return Ok(());
    }
    Err(Invalid::new(
        key,
        format!("must be {min} to {max} (got {x})"),
    ))
}

fn human(d: Duration) -> impl Display {
    humantime::format_duration(d)
}

/// Whole KiB / MiB / GiB are written as such (`64 MiB`), other values as they are.
fn size(n: u64) -> String {
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_bound_and_the_value() {
        let err = count("server.workers", 100_000usize, 1, 512).unwrap_err();
        assert_eq!(err.key, "server.workers");
        assert_eq!(err.message, "must be 1 to 512 (got 100000)");
        let err = bytes("b", 0usize, KIB, 64 * MIB).unwrap_err();
        assert_eq!(err.message, "must be 1 KiB to 64 MiB (got 0)");
        let err = bytes("b", 65 * MIB, KIB, 64 * MIB).unwrap_err();
        assert_eq!(err.message, "must be 1 KiB to 64 MiB (got 65 MiB)");
        let err = positive("t", Duration::ZERO, HOUR).unwrap_err();
        assert_eq!(err.message, "must be greater than 0s");
        let err = positive("t", DAY, HOUR).unwrap_err();
        assert_eq!(err.message, "must be at most 1h (got 1day)");
        let err = between(
            "t",
            Duration::from_millis(1),
            Duration::from_millis(10),
            HOUR,
        );
        assert_eq!(err.unwrap_err().message, "must be at least 10ms (got 1ms)");
        assert!(number("p", f64::NAN, 0.0, 1.0).is_err());
        assert!(number("p", f64::INFINITY, 0.0, f64::MAX).is_err());
        assert!(number("p", 1.0, 0.0, 1.0).is_ok());
        assert!(at_most("t", Duration::ZERO, HOUR).is_ok());
    }
}
