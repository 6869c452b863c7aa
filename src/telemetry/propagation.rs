//! W3C Trace Context in and out: `traceparent` / `tracestate` read from a client's request
//! (so the server span joins the caller's trace) and written onto each upstream request
//! (from the attempt's client span, so the provider's spans nest under it).
//!
//! The propagator is used directly rather than through OpenTelemetry's global: W3C is the one
//! format the gateway speaks, and a direct call skips a lock and a dynamic dispatch per request.

use actix_web::http::header::HeaderMap as ActixHeaders;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::HeaderValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The caller's trace context, from its request headers (empty when it sent none or an invalid
/// one).
pub fn extract(headers: &ActixHeaders) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&Incoming(headers))
}

/// The trace headers to send upstream for one attempt.
#[derive(Debug, Default, Clone)]
pub struct UpstreamTrace {
    pub traceparent: Option<HeaderValue>,
    pub tracestate: Option<HeaderValue>,
}

impl UpstreamTrace {
    /// The headers that make the upstream's spans children of `span`. Empty when `span` has no
    /// OpenTelemetry context (no tracing layer installed).
    pub fn of(span: &tracing::Span) -> Self {
        let mut out = Self::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut out);
        out
    }
}

impl Injector for UpstreamTrace {
    fn set(&mut self, key: &str, value: String) {
        let Ok(value) = HeaderValue::from_str(&value) else {
            return;
        };
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

struct Incoming<'a>(&'a ActixHeaders);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue as ActixValue};
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn extracts_a_valid_traceparent_and_ignores_garbage() {
        let mut headers = ActixHeaders::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            ActixValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let cx = extract(&headers);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );

        headers.insert(
            HeaderName::from_static("traceparent"),
            ActixValue::from_static("00-not-a-trace"),
        );
        assert!(!extract(&headers).span().span_context().is_valid());
    }

    #[test]
    fn no_layer_no_headers() {
        let trace = UpstreamTrace::of(&tracing::Span::none());
        assert!(trace.traceparent.is_none() && trace.tracestate.is_none());
    }
}
