#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler as SdkSampler, SdkTracerProvider, ShouldSample, SpanData, SpanProcessor,
};

use super::{Root, Sampler, Span, Tracer};
use crate::telemetry::traces::otlp::SCOPE;

const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;

/// A valid, sampled span context (a request's, for the log layers' tests).
pub(crate) fn sampled_context() -> SpanContext {
    SpanContext::new(
        TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
        SpanId::from(0xb7ad6b7169203331_u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    )
}

/// A parent in trace [`TRACE`] with `flags`, remote or local, without a trace state.
fn parent(flags: TraceFlags, remote: bool) -> SpanContext {
    parent_with(flags, remote, TraceState::NONE)
}

fn parent_with(flags: TraceFlags, remote: bool, state: TraceState) -> SpanContext {
    SpanContext::new(TraceId::from(TRACE), SpanId::from(1), flags, remote, state)
}

/// Keeps what the SDK's tracer ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ended(pub(crate) Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Ended {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Parent-based or not, each sampler decides as the SDK's does: for no parent, a remote or
/// local parent, sampled or not, and trace ids across a ratio's bound.
#[test]
fn sampling_is_the_sdks() {
    let samplers = [
        (
            Sampler::parent_based(Root::Always),
            SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOn)),
        ),
        (
            Sampler::parent_based(Root::Never),
            SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOff)),
        ),
        (
            Sampler::parent_based(Root::Ratio(0.25)),
            SdkSampler::ParentBased(Box::new(SdkSampler::TraceIdRatioBased(0.25))),
        ),
        (
            Sampler {
                parent_based: false,
                root: Root::Always,
            },
            SdkSampler::AlwaysOn,
        ),
        (
            Sampler {
                parent_based: false,
                root: Root::Never,
            },
            SdkSampler::AlwaysOff,
        ),
        (
            Sampler {
                parent_based: false,
                root: Root::Ratio(0.5),
            },
            SdkSampler::TraceIdRatioBased(0.5),
        ),
        (
            Sampler {
                parent_based: false,
                root: Root::Ratio(-1.0),
            },
            SdkSampler::TraceIdRatioBased(-1.0),
        ),
    ];
    let parents = [
        SpanContext::empty_context(),
        parent(TraceFlags::SAMPLED, true),
        parent(TraceFlags::default(), true),
        parent(TraceFlags::new(3), false),
        parent(TraceFlags::default(), false),
    ];
    let mut decided = 0;
    for (ours, sdk) in &samplers {
        for parent in &parents {
            for low in [
                0u64,
                1,
                u64::MAX / 8,
                u64::MAX / 4,
                u64::MAX / 4 + 2,
                u64::MAX / 2,
                u64::MAX,
            ] {
                let trace_id = if parent.is_valid() {
                    parent.trace_id()
                } else {
                    TraceId::from(u128::from(low) | 7 << 64)
                };
                let cx = opentelemetry::Context::new().with_remote_span_context(parent.clone());
                let cx = if parent.is_valid() {
                    cx
                } else {
                    opentelemetry::Context::new()
                };
                let want = sdk.should_sample(Some(&cx), trace_id, "x", &SpanKind::Server, &[], &[]);
                let want = matches!(
                    want.decision,
                    opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
                );
                assert_eq!(
                    ours.samples(parent, trace_id),
                    want,
                    "{ours:?} {parent:?} {low}"
                );
                decided += usize::from(want);
            }
        }
    }
    // Both decisions were met.
    assert!(decided > 0 && decided < samplers.len() * parents.len() * 7);
}

/// A span's context is the one the SDK's tracer gives it: the parent's trace id, trace state
/// and other flags, a new span id, sampled as decided; a new trace id without a parent; only
/// a sampled span with an exporter records.
#[test]
fn a_span_s_context_is_the_sdks() {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ended.clone())
        .build();
    let sdk = provider.tracer(SCOPE);
    let ours = Arc::new(Tracer::new(
        Sampler::DEFAULT,
        InstrumentationScope::builder(SCOPE).build(),
        None,
    ));
    let state: TraceState = "vendor=a".parse().unwrap();
    let parents = [
        SpanContext::empty_context(),
        parent_with(TraceFlags::new(3), true, state.clone()),
        parent_with(TraceFlags::new(2), true, state),
    ];
    for parent in &parents {
        use opentelemetry::trace::{Span as _, Tracer as _};
        let cx = if parent.is_valid() {
            opentelemetry::Context::new().with_remote_span_context(parent.clone())
        } else {
            opentelemetry::Context::new()
        };
        let theirs = sdk.build_with_context(sdk.span_builder("x"), &cx);
        let theirs = theirs.span_context().clone();
        let span = Span::start_from(&ours, SpanKind::Server, parent, || "x".into());
        let mine = span.context();
        assert!(mine.is_valid() && mine.span_id() != theirs.span_id());
        assert_eq!(mine.trace_flags(), theirs.trace_flags(), "{parent:?}");
        assert_eq!(mine.trace_state(), theirs.trace_state());
        assert_eq!(mine.is_remote(), theirs.is_remote());
        if parent.is_valid() {
            assert_eq!(mine.trace_id(), theirs.trace_id());
        } else {
            assert_ne!(mine.trace_id(), theirs.trace_id());
        }
        // No exporter: nothing records, sampled or not.
        assert!(!span.is_recording());
    }
}
