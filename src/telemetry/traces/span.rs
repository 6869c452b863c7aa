//! The gateway's spans, recorded by the gateway itself straight into their OTLP encoding.
//!
//! The gateway makes two kinds of span: the SERVER span of each request
//! ([`crate::http::server_span`]) and the CLIENT span of each provider attempt
//! ([`crate::router::AttemptSpan`]). They were `tracing` spans turned into OpenTelemetry spans
//! by `tracing-opentelemetry`: a span in the registry, a builder whose attribute vector grew
//! push by push, the SDK's span, then its `SpanData` at the end, for every request, sampled or
//! not (the ids had to exist for `x-trace-id`, log correlation and `traceparent`). A [`Span`]
//! is its context (the ids every request needs), and only when sampled a recording: each
//! attribute is written as the protobuf field it will be sent as when it is set, and at its
//! end the span is written whole ([`encode::recorded_field`]) into the export queue
//! ([`Processor`]). The bytes are the ones the SDK path sent for the same spans (tested in
//! `encode` and here).
//!
//! Ids and sampling are the SDK's: random ids from its generator; a span with a valid parent
//! takes its trace id, its trace state and its other flags, and (parent-based samplers, the
//! default) its sampling decision; a root span asks the configured [`Sampler`]. A span that
//! is not sampled records nothing and costs its ids. Without an installed [`Tracer`] (tools, unit tests) a
//! span has no valid context, as it had without the tracing layer.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use super::otlp::batch::Processor;
use super::otlp::encode::{self, Recorded, Scalar};

/// Which spans are sampled: the SDK's samplers the gateway can be configured with
/// (`sample_ratio`, `OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// A span with a valid parent follows the parent's decision (`parentbased_*`); else every
    /// span asks `root`.
    pub parent_based: bool,
    pub root: Root,
}

impl Sampler {
    /// `parentbased_always_on`, the SDK's default.
    pub const DEFAULT: Self = Self::parent_based(Root::Always);

    pub const fn parent_based(root: Root) -> Self {
        Self {
            parent_based: true,
            root,
        }
    }

    /// The SDK's decision for a span of trace `trace_id` under `parent`.
    fn samples(self, parent: &SpanContext, trace_id: TraceId) -> bool {
        if self.parent_based && parent.is_valid() {
            parent.is_sampled()
        } else {
            self.root.samples(trace_id)
        }
    }
}

/// A sampler's own decision, without a parent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    Never,
    Always,
    /// `TraceIdRatioBased`: sampled when the trace id's low 63 bits fall under the ratio.
    Ratio(f64),
}

impl Root {
    /// The SDK's decision for a new trace with `trace_id`.
    fn samples(self, trace_id: TraceId) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Ratio(ratio) if ratio >= 1.0 => true,
            Self::Ratio(ratio) => {
                let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
                let low = trace_id.to_bytes()[8..]
                    .iter()
                    .fold(0u64, |n, &byte| n << 8 | u64::from(byte));
                low >> 1 < bound
            }
        }
    }
}

/// Where spans come from: the sampler, and the queue sampled spans end in (none without an
/// exporter: the ids and sampling flags are still made and passed on).
#[derive(Debug)]
pub struct Tracer {
    sampler: Sampler,
    scope: InstrumentationScope,
    processor: Option<Arc<Processor>>,
}

impl Tracer {
    pub fn new(
        sampler: Sampler,
        scope: InstrumentationScope,
        processor: Option<Arc<Processor>>,
    ) -> Self {
        Self {
            sampler,
            scope,
            processor,
        }
    }
}

/// The tracer every span starts from, once [`install`]ed.
static TRACER: ArcSwapOption<Tracer> = ArcSwapOption::const_empty();

/// Makes `tracer` the one spans start from (replacing any before it).
pub fn install(tracer: Arc<Tracer>) {
    TRACER.store(Some(tracer));
}

/// Puts the installed tracer away (tests that install their own).
#[cfg(test)]
pub(crate) fn uninstall() {
    TRACER.store(None);
}

/// One span: its context, and what it records when sampled. It ends when dropped.
#[derive(Debug)]
pub struct Span {
    context: SpanContext,
    recording: Option<Box<Recording>>,
}

#[derive(Debug)]
struct Recording {
    tracer: Arc<Tracer>,
    parent: SpanId,
    parent_is_remote: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    /// `Span.attributes` fields, in the order they were set.
    attributes: Vec<u8>,
    status: Status,
}

impl Span {
    /// A span with no context, as when no tracer is installed.
    pub fn none() -> Self {
        Self {
            context: SpanContext::empty_context(),
            recording: None,
        }
    }

    /// Starts a span from the installed tracer, as a child of `parent` (a new trace when it is
    /// not valid). `name` is called only when the span records.
    pub fn start(
        kind: SpanKind,
        parent: &SpanContext,
        name: impl FnOnce() -> Cow<'static, str>,
    ) -> Self {
        match &*TRACER.load() {
            Some(tracer) => Self::start_from(tracer, kind, parent, name),
            None => Self::none(),
        }
    }

    /// Starts a span from `tracer` (what the SDK's tracer does in `build_with_context`).
    pub fn start_from(
        tracer: &Arc<Tracer>,
        kind: SpanKind,
        parent: &SpanContext,
        name: impl FnOnce() -> Cow<'static, str>,
    ) -> Self {
        let ids = RandomIdGenerator::default();
        let span_id = ids.new_span_id();
        let (trace_id, parent_flags) = if parent.is_valid() {
            (parent.trace_id(), parent.trace_flags())
        } else {
            (ids.new_trace_id(), TraceFlags::default())
        };
        let sampled = tracer.sampler.samples(parent, trace_id);
        let flags = if sampled {
            parent_flags.with_sampled(true)
        } else {
            TraceFlags::default()
        };
        let context = SpanContext::new(
            trace_id,
            span_id,
            flags,
            false,
            parent.trace_state().clone(),
        );
        let recording = (sampled && tracer.processor.is_some()).then(|| {
            let (parent, parent_is_remote) = if parent.is_valid() {
                (parent.span_id(), parent.is_remote())
            } else {
                (SpanId::INVALID, false)
            };
            Box::new(Recording {
                tracer: Arc::clone(tracer),
                parent,
                parent_is_remote,
                kind,
                name: name(),
                start: SystemTime::now(),
                // An attempt's attributes outgrew 256 bytes: every one grew once (callgrind).
                attributes: Vec::with_capacity(512),
                status: Status::Unset,
            })
        });
        Self { context, recording }
    }

    /// The span's ids, flags and trace state (invalid when no tracer is installed).
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Whether the span records what is set on it (it is sampled and exported).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Sets an attribute (appended: the gateway sets each key once).
    pub fn set(&mut self, key: &str, value: Scalar<'_>) {
        if let Some(recording) = &mut self.recording {
            encode::span_attribute(&mut recording.attributes, key, value);
        }
    }

    /// Marks the span failed, with `description`. As the SDK's `set_status`: a status
    /// replaces the current one only when it orders after it (`Unset < Error < Ok`).
    pub fn set_error(&mut self, description: &str) {
        if let Some(recording) = &mut self.recording {
            let status = Status::error(description.to_owned());
            if status > recording.status {
                recording.status = status;
            }
        }
    }
}

impl Drop for Span {
    /// Ends the span: a recording one is written into its tracer's export queue.
    fn drop(&mut self) {
        let Some(recording) = self.recording.take() else {
            return;
        };
        let end = SystemTime::now();
        let Recording {
            tracer,
            parent,
            parent_is_remote,
            kind,
            name,
            start,
            attributes,
            status,
        } = &*recording;
        if let Some(processor) = &tracer.processor {
            processor.push(&tracer.scope, |field| {
                encode::recorded_field(
                    field,
                    &Recorded {
                        context: &self.context,
                        parent: *parent,
                        parent_is_remote: *parent_is_remote,
                        kind,
                        name,
                        start: *start,
                        end,
                        attributes,
                        status,
                    },
                );
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
