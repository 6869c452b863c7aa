//! The SERVER span: one per HTTP request, as an actix-web middleware.
//!
//! The span joins the caller's trace when the request carries a W3C `traceparent`, is entered
//! while the handler runs (so every log line of the request carries its ids), records
//! `http.response.status_code`, and puts the trace id in the `x-trace-id` response header for
//! the client to quote. It ends when the response body has been sent — for a stream, after
//! the last chunk (or when the client went away) — because the body holds it ([`SpanBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use bytes::Bytes;
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::traces::propagation;

/// The response header that carries the trace id.
pub const TRACE_ID_HEADER: HeaderName = HeaderName::from_static("x-trace-id");

/// Wraps every request in a SERVER span. Install with `App::wrap(from_fn(server_span))`.
pub async fn server_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + Unpin>,
) -> Result<ServiceResponse<SpanBody<impl MessageBody + Unpin>>, Error> {
    let route = req.match_pattern();
    let method = req.method().clone();
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    );
    if let Some(route) = &route {
        span.record("http.route", route.as_str());
    }
    let _ = span.set_parent(propagation::extract(req.headers()));
    let trace_id = span.context().span().span_context().trace_id();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status();
    // As i64: tracing-opentelemetry would turn a u16 / u64 into a string.
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
        span.record("error.type", status.as_str());
    }
    if trace_id != opentelemetry::TraceId::INVALID {
        if let Ok(value) = HeaderValue::from_bytes(&propagation::trace_id_hex(trace_id)) {
            res.headers_mut().insert(TRACE_ID_HEADER, value);
        }
    }
    Ok(res.map_body(|_, body| SpanBody { body, _span: span }))
}

/// A response body that keeps the request's span open until it has been sent or dropped.
pub struct SpanBody<B> {
    // Field order is drop order: the body (and a stream's client span inside it) first.
    body: B,
    _span: tracing::Span,
}

impl<B: MessageBody + Unpin> MessageBody for SpanBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
