//! The CLIENT span: one per provider attempt, with the OpenTelemetry GenAI attributes.
//!
//! The router opens an [`AttemptSpan`] for each attempt (so failovers are sibling spans under
//! the request's server span), sends its context upstream as `traceparent`, and closes it with
//! the outcome: a failure (`error.type`), a JSON answer (response model and token usage), or —
//! for a stream — hands it to the relay, which closes it when the stream ends or is dropped,
//! with the response model and usage its SSE scanner read and the time to first chunk. Only
//! bounded metadata is recorded: never prompt or completion text, never a key. The span ends
//! when it is closed (dropped), whatever logged inside it.

use std::borrow::Cow;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanKind};

use crate::providers::{ProviderError, Usage};
use crate::telemetry::traces::otlp::encode::Scalar;
use crate::telemetry::traces::propagation::UpstreamTrace;
use crate::telemetry::traces::scope;
use crate::telemetry::traces::span::Span;

/// Time from sending the attempt to the first content chunk, in seconds (streams only).
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

/// One provider attempt's span.
pub struct AttemptSpan {
    span: Span,
}

impl AttemptSpan {
    /// Opens the span as a child of the request's server span ([`scope::current`]; a trace of
    /// its own outside a request). `provider` is the configured provider name,
    /// `request_model` the model name sent upstream.
    pub fn start(
        operation: &'static str,
        provider: &str,
        request_model: &str,
        address: &str,
        stream: bool,
    ) -> Self {
        let parent = scope::current().unwrap_or_else(SpanContext::empty_context);
        let mut span = Span::start(SpanKind::Client, &parent, || {
            // Pushed, not `format!`ed: the formatting machinery cost ~800 instructions here.
            let mut name = String::with_capacity(operation.len() + 1 + request_model.len());
            name.push_str(operation);
            name.push(' ');
            name.push_str(request_model);
            Cow::Owned(name)
        });
        span.set("gen_ai.operation.name", Scalar::Str(operation));
        span.set("gen_ai.provider.name", Scalar::Str(provider));
        span.set("gen_ai.request.model", Scalar::Str(request_model));
        span.set("gen_ai.request.stream", Scalar::Bool(stream));
        span.set("server.address", Scalar::Str(address));
        Self { span }
    }

    /// The trace headers for the upstream request.
    pub fn upstream_trace(&self) -> UpstreamTrace {
        UpstreamTrace::of(&self.span)
    }

    /// Runs `f` (typically a log line) for the span: its lines carry the span's ids.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        scope::with(self.span.context(), f)
    }

    /// Closes the span of a failed attempt.
    pub fn failed(mut self, error: &ProviderError) {
        self.span.set("error.type", Scalar::Str(error.kind()));
        if let ProviderError::Status { status, .. } = error {
            self.span
                .set("http.response.status_code", Scalar::I64(i64::from(*status)));
        }
        self.span.set_error(error.kind());
    }

    /// Closes the span of a whole JSON answer.
    pub fn answered(mut self, response_model: Option<&str>, usage: Option<Usage>) {
        if let Some(model) = response_model {
            self.span.set("gen_ai.response.model", Scalar::Str(model));
        }
        self.usage(usage);
    }

    /// A stream's first chunk arrived: the relay keeps the span open until the stream is over.
    pub fn streaming(self) -> StreamSpan {
        StreamSpan(self)
    }

    fn usage(&mut self, usage: Option<Usage>) {
        if let Some(usage) = usage {
            let count = |n: u64| Scalar::I64(i64::try_from(n).unwrap_or(i64::MAX));
            self.span
                .set("gen_ai.usage.input_tokens", count(usage.prompt_tokens));
            self.span
                .set("gen_ai.usage.output_tokens", count(usage.completion_tokens));
        }
    }
}

/// The span of a streamed attempt, owned by the relay until the stream is over.
pub struct StreamSpan(AttemptSpan);

impl StreamSpan {
    /// Runs `f` (typically a log line) for the span: its lines carry the span's ids.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.in_scope(f)
    }

    /// Records the stream's outcome; the span closes when this value is dropped (with the
    /// relay). `response_model` and `usage` are what the relay's scanner read, `outcome` is
    /// the relay's (`success`, `client_disconnected`, `upstream_error`), `error_kind` the
    /// upstream failure that broke the stream, if any.
    pub fn finish(
        &mut self,
        response_model: Option<&str>,
        usage: Option<Usage>,
        time_to_first_chunk: Option<Duration>,
        outcome: &'static str,
        error_kind: Option<&'static str>,
    ) {
        if let Some(model) = response_model {
            self.0.span.set("gen_ai.response.model", Scalar::Str(model));
        }
        self.0.usage(usage);
        let span = &mut self.0.span;
        if let Some(ttfc) = time_to_first_chunk {
            span.set(TIME_TO_FIRST_CHUNK, Scalar::F64(ttfc.as_secs_f64()));
        }
        span.set("gatewayz.stream.outcome", Scalar::Str(outcome));
        if let Some(kind) = error_kind {
            span.set("error.type", Scalar::Str(kind));
            span.set_error(kind);
        }
    }
}
