//! One beat for the timers of the actors' thread.
//!
//! The outbox's drain and the Loki shipper's gathering each wait up to 10 ms. Armed at
//! independent times, they wake the thread twice per 10 ms under load, and each wake-up is
//! a context switch on the request path's core. Both wait instead until the next point of
//! one process-wide grid ([`next_beat`]): deadlines that are the same `Instant` fall in the
//! same timer-wheel slot, so one wake-up serves both.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The grid's spacing: the longest either timer waits.
pub const BEAT: Duration = Duration::from_millis(10);

/// The grid's origin: the first call in the process. The grid runs both ways from it: a
/// paused test clock (tokio's) can read earlier than the origin.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The first grid point after `now`: between 0 (exclusive) and [`BEAT`] (inclusive) later.
pub fn next_beat(now: Instant) -> Instant {
    beat_after(origin(), now)
}

/// A timer that ends at the next beat, on tokio's clock (paused in tests).
pub fn until_next_beat() -> tokio::time::Sleep {
    let now = tokio::time::Instant::now().into_std();
    tokio::time::sleep_until(tokio::time::Instant::from_std(next_beat(now)))
}

fn beat_after(origin: Instant, now: Instant) -> Instant {
    let beat = BEAT.as_nanos();
    let point = if now >= origin {
        // Beats of `origin + k·BEAT` up to `now`, plus one.
        let past = (now - origin).as_nanos() / beat + 1;
        nanos(past * beat).and_then(|d| origin.checked_add(d))
    } else {
        // The grid point `origin - j·BEAT` with the largest j that is still after `now`.
        let ahead = (origin - now).as_nanos().div_ceil(beat) - 1;
        nanos(ahead * beat).and_then(|d| origin.checked_sub(d))
    };
    point.unwrap_or(now + BEAT)
}

/// `n` nanoseconds, if they fit a `Duration` made from a u64 (584 years).
fn nanos(n: u128) -> Option<Duration> {
    u64::try_from(n).ok().map(Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_beat_is_on_the_grid_and_at_most_one_beat_away() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        for (now, want) in [
            (ms(0), ms(10)),
            (ms(1), ms(10)),
            (ms(9), ms(10)),
            (ms(10), ms(20)),
            (ms(10) + Duration::from_nanos(1), ms(20)),
            (ms(12_345), ms(12_350)),
        ] {
            assert_eq!(
                beat_after(origin, origin + now),
                origin + want,
                "at {now:?}"
            );
        }
    }

    #[test]
    fn two_timers_armed_apart_share_a_deadline() {
        let origin = Instant::now();
        let a = beat_after(origin, origin + Duration::from_millis(31));
        let b = beat_after(origin, origin + Duration::from_micros(39_999));
        assert_eq!(a, b);
    }

    #[test]
    fn before_the_origin_the_grid_runs_backwards() {
        let origin = Instant::now() + Duration::from_secs(1);
        let ms = Duration::from_millis;
        for (before, want) in [
            (ms(25), ms(20)),
            (ms(20), ms(10)),
            (ms(11), ms(10)),
            (ms(10), ms(0)),
            (ms(1), ms(0)),
        ] {
            assert_eq!(
                beat_after(origin, origin - before),
                origin - want,
                "{before:?} before the origin"
            );
        }
    }
}
