//! The request whose handler is running on this thread: its server span, without entering it.
//!
//! Entering a `tracing` span on every poll of the handler (`Instrumented`) cost ~7,300
//! instructions per request: the registry's span stack, a span lookup per layer filter, and
//! `tracing-opentelemetry` stamping an end time on every exit. What the gateway needs from
//! "the current request" is narrower: the attempt spans' parent ([`current`], passed
//! explicitly) and the trace context of the log lines written while the handler runs (the
//! Loki layer falls back on [`current`] when no span is entered). The server span middleware
//! sets it around each poll of the handler ([`with`]) and it is restored after, unwound or
//! not: two thread-local writes.

use std::cell::Cell;
use std::num::NonZeroU64;

thread_local! {
    static CURRENT: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

/// The server span of the request being handled on this thread, if any.
pub fn current() -> Option<tracing::Id> {
    CURRENT.get().map(tracing::Id::from_non_zero_u64)
}

/// Runs `f` with `id` as the current request, as the handler's polls do.
pub fn with<T>(id: Option<tracing::Id>, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(CURRENT.replace(id.map(|id| id.into_non_zero_u64())));
    f()
}

/// Puts the previous request back, also when the poll panicked.
struct Restore(Option<NonZeroU64>);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_current_inside_only_and_restored_after_a_panic() {
        let a = tracing::Id::from_u64(7);
        let b = tracing::Id::from_u64(9);
        assert_eq!(current(), None);
        with(Some(a.clone()), || {
            assert_eq!(current(), Some(a.clone()));
            with(Some(b.clone()), || assert_eq!(current(), Some(b.clone())));
            assert_eq!(current(), Some(a.clone()));
            let unwound = std::panic::catch_unwind(|| with(Some(b.clone()), || panic!("boom")));
            assert!(unwound.is_err());
            assert_eq!(current(), Some(a.clone()));
        });
        assert_eq!(current(), None);
    }
}
