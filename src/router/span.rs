//! The CLIENT span: one per provider attempt, with the OpenTelemetry GenAI attributes.
//!
//! The router opens an [`AttemptSpan`] for each attempt (so failovers are sibling spans under
//! the request's server span), sends its context upstream as `traceparent`, and closes it with
//! the outcome: a failure (`error.type`), a JSON answer (response model and token usage), or —
//! for a stream — hands it to the relay, which closes it when the stream ends or is dropped,
//! with the response model and usage its SSE scanner read and the time to first chunk. Only
//! bounded metadata is recorded: never prompt or completion text, never a key.
//!
//! The span is not entered while the attempt runs — only for its own log lines — so it ends
//! when it closes: `tracing-opentelemetry` ends a span at its last exit if it had one, which
//! made a stream's attempt end at its first content instead of its last chunk.

use std::time::Duration;

use opentelemetry::trace::Status;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::providers::{ProviderError, Usage};
use crate::telemetry::traces::propagation::UpstreamTrace;
use crate::telemetry::traces::scope;

/// Time from sending the attempt to the first content chunk, in seconds (streams only).
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

/// One provider attempt's span.
pub struct AttemptSpan {
    span: tracing::Span,
}

impl AttemptSpan {
    /// Opens the span as a child of the request's server span ([`scope::current`], the span
    /// is not entered while the handler runs). `provider` is the configured
    /// provider name, `request_model` the model name sent upstream.
    pub fn start(
        operation: &'static str,
        provider: &str,
        request_model: &str,
        address: &str,
        stream: bool,
    ) -> Self {
        let span = tracing::info_span!(
            parent: scope::current(),
            "attempt",
            otel.name = %format_args!("{operation} {request_model}"),
            otel.kind = "client",
            gen_ai.operation.name = operation,
            gen_ai.provider.name = provider,
            gen_ai.request.model = request_model,
            gen_ai.request.stream = stream,
            server.address = address,
        );
        Self { span }
    }

    /// The trace headers for the upstream request.
    pub fn upstream_trace(&self) -> UpstreamTrace {
        UpstreamTrace::of(&self.span)
    }

    /// Runs `f` (typically a log line) inside the span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }

    /// Closes the span of a failed attempt.
    pub fn failed(self, error: &ProviderError) {
        self.span.set_attribute("error.type", error.kind());
        if let ProviderError::Status { status, .. } = error {
            self.span
                .set_attribute("http.response.status_code", i64::from(*status));
        }
        self.span.set_status(Status::error(error.kind()));
    }

    /// Closes the span of a whole JSON answer.
    pub fn answered(self, response_model: Option<&str>, usage: Option<Usage>) {
        if let Some(model) = response_model {
            self.span
                .set_attribute("gen_ai.response.model", model.to_owned());
        }
        self.usage(usage);
    }

    /// A stream's first chunk arrived: the relay keeps the span open until the stream is over.
    pub fn streaming(self) -> StreamSpan {
        StreamSpan(self)
    }

    fn usage(&self, usage: Option<Usage>) {
        if let Some(usage) = usage {
            self.span.set_attribute(
                "gen_ai.usage.input_tokens",
                i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
            );
            self.span.set_attribute(
                "gen_ai.usage.output_tokens",
                i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
            );
        }
    }
}

/// The span of a streamed attempt, owned by the relay until the stream is over.
pub struct StreamSpan(AttemptSpan);

impl StreamSpan {
    /// Runs `f` (typically a log line) inside the span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.in_scope(f)
    }

    /// Records the stream's outcome; the span closes when this value is dropped (with the
    /// relay). `response_model` and `usage` are what the relay's scanner read, `outcome` is
    /// the relay's (`success`, `client_disconnected`, `upstream_error`), `error_kind` the
    /// upstream failure that broke the stream, if any.
    pub fn finish(
        &self,
        response_model: Option<&str>,
        usage: Option<Usage>,
        time_to_first_chunk: Option<Duration>,
        outcome: &'static str,
        error_kind: Option<&'static str>,
    ) {
        let span = &self.0.span;
        if let Some(model) = response_model {
            span.set_attribute("gen_ai.response.model", model.to_owned());
        }
        self.0.usage(usage);
        if let Some(ttfc) = time_to_first_chunk {
            span.set_attribute(TIME_TO_FIRST_CHUNK, ttfc.as_secs_f64());
        }
        span.set_attribute("gatewayz.stream.outcome", outcome);
        if let Some(kind) = error_kind {
            span.set_attribute("error.type", kind);
            span.set_status(Status::error(kind));
        }
    }
}
