//! The span a thread is working for: the request whose handler is being polled, or the
//! attempt writing a log line.
//!
//! The gateway's spans are not `tracing` spans ([`super::span`]), so nothing is entered.
//! What the gateway needs from "the current span" is narrow: the attempt spans' parent
//! ([`current`]) and the ids of the log lines written while a request is handled (the Loki
//! layer reads [`ids`]). The server span middleware sets it around each poll of the handler
//! ([`with`]), an attempt around its own log lines, and it is restored after, unwound or not.

use std::cell::RefCell;

use opentelemetry::trace::{SpanContext, SpanId, TraceId};

thread_local! {
    static CURRENT: RefCell<Option<SpanContext>> = const { RefCell::new(None) };
}

/// The context of the span this thread works for, if any.
pub fn current() -> Option<SpanContext> {
    CURRENT.with_borrow(Clone::clone)
}

/// The trace and span id of the span this thread works for, when it has a valid context.
pub fn ids() -> Option<(TraceId, SpanId)> {
    CURRENT
        .try_with(|current| {
            current
                .borrow()
                .as_ref()
                .filter(|cx| cx.is_valid())
                .map(|cx| (cx.trace_id(), cx.span_id()))
        })
        .ok()
        .flatten()
}

/// Runs `f` working for the span of `context`, as the handler's polls do.
pub fn with<T>(context: &SpanContext, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(CURRENT.replace(Some(context.clone())));
    f()
}

/// Puts the previous span back, also when `f` panicked.
struct Restore(Option<SpanContext>);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.0.take());
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceFlags, TraceState};

    use super::*;

    fn context(span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(1u128),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        )
    }

    #[test]
    fn the_span_is_current_inside_only_and_restored_after_a_panic() {
        let a = context(7);
        let b = context(9);
        assert_eq!(current(), None);
        with(&a, || {
            assert_eq!(current(), Some(a.clone()));
            assert_eq!(ids(), Some((TraceId::from(1u128), SpanId::from(7))));
            with(&b, || assert_eq!(current(), Some(b.clone())));
            assert_eq!(current(), Some(a.clone()));
            let unwound = std::panic::catch_unwind(|| with(&b, || panic!("boom")));
            assert!(unwound.is_err());
            assert_eq!(current(), Some(a.clone()));
            // An invalid context is current, but has no ids.
            with(&SpanContext::empty_context(), || assert_eq!(ids(), None));
        });
        assert_eq!(current(), None);
        assert_eq!(ids(), None);
    }
}
