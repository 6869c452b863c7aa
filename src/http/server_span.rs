//! The SERVER span: one per HTTP request, as an actix-web middleware.
//!
//! The span joins the caller's trace when the request carries a W3C `traceparent`, is the
//! thread's current span while the handler is polled ([`scope`]: every log line of the
//! request carries its ids, its attempts are its children), records
//! `http.response.status_code`, and puts the trace id in the `x-trace-id` response header for
//! the client to quote. It ends when the response body has been sent — for a stream, after
//! the last chunk (or when the client went away) — because the body holds it ([`SpanBody`]).

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use bytes::Bytes;
use opentelemetry::trace::SpanKind;

use crate::telemetry::traces::otlp::encode::Scalar;
use crate::telemetry::traces::span::Span;
use crate::telemetry::traces::{propagation, scope};

/// The response header that carries the trace id.
pub const TRACE_ID_HEADER: HeaderName = HeaderName::from_static("x-trace-id");

/// Wraps every request in a SERVER span. Install with `App::wrap(from_fn(server_span))`.
pub async fn server_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + Unpin>,
) -> Result<ServiceResponse<SpanBody<impl MessageBody + Unpin>>, Error> {
    // The span's name is fixed when it starts, before routing: the route comes from the path,
    // without allocating (`route_of`), and the name from a table built once.
    let route = route_of(req.path());
    let method = req.method().clone();
    let parent = propagation::extract(req.headers());
    let mut span = Span::start(SpanKind::Server, &parent, || {
        match route.and_then(|r| span_name(&method, r)) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(method.as_str().to_owned()),
        }
    });
    span.set("http.request.method", Scalar::Str(method.as_str()));
    if let Some(route) = route {
        span.set("http.route", Scalar::Str(route));
    }
    let trace_id = span.context().trace_id();
    if trace_id != opentelemetry::TraceId::INVALID {
        // For the access line and the ledger, without looking the span up again.
        req.extensions_mut()
            .insert(super::finish::RequestTrace(trace_id));
    }
    // A boxed future already (actix-web's `Next`): polled in place.
    let mut call = next.call(req);
    let context = span.context();
    let mut res =
        std::future::poll_fn(|cx| scope::with(context, || call.as_mut().poll(cx))).await?;
    let status = res.status();
    span.set(
        "http.response.status_code",
        Scalar::I64(i64::from(status.as_u16())),
    );
    if status.is_server_error() {
        span.set_error("");
        span.set("error.type", Scalar::Str(status.as_str()));
    }
    if trace_id != opentelemetry::TraceId::INVALID {
        if let Ok(value) = HeaderValue::from_bytes(&propagation::trace_id_hex(trace_id)) {
            res.headers_mut().insert(TRACE_ID_HEADER, value);
        }
    }
    Ok(res.map_body(|_, body| SpanBody { body, _span: span }))
}

/// The pattern of [`super::PATTERNS`] a path matches, as actix-web's router would match it:
/// a static pattern exactly, `{name}` one non-empty segment (and what follows it exactly),
/// `{name:.*}` the rest of the path.
pub fn route_of(path: &str) -> Option<&'static str> {
    super::PATTERNS.into_iter().find(|pattern| {
        let Some((prefix, variable)) = pattern.split_once('{') else {
            return path == *pattern;
        };
        let Some(rest) = path.strip_prefix(prefix) else {
            return false;
        };
        if variable.contains(":.*}") {
            return true;
        }
        let suffix = variable.split_once('}').map_or("", |(_, after)| after);
        rest.strip_suffix(suffix)
            .is_some_and(|segment| !segment.is_empty() && !segment.contains('/'))
    })
}

/// `"METHOD pattern"` for the methods the routes answer, built once.
fn span_name(method: &actix_web::http::Method, route: &'static str) -> Option<&'static str> {
    static NAMES: std::sync::LazyLock<Vec<(&'static str, [String; 4])>> =
        std::sync::LazyLock::new(|| {
            super::PATTERNS
                .into_iter()
                .map(|p| {
                    (
                        p,
                        ["GET", "POST", "PATCH", "DELETE"].map(|m| format!("{m} {p}")),
                    )
                })
                .collect()
        });
    let index = match *method {
        actix_web::http::Method::GET => 0,
        actix_web::http::Method::POST => 1,
        actix_web::http::Method::PATCH => 2,
        actix_web::http::Method::DELETE => 3,
        _ => return None,
    };
    NAMES
        .iter()
        .find(|(p, _)| *p == route)
        .map(|(_, names)| names[index].as_str())
}

/// A response body that keeps the request's span open until it has been sent or dropped.
pub struct SpanBody<B> {
    // Field order is drop order: the body (and a stream's client span inside it) first.
    body: B,
    _span: Span,
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

#[cfg(test)]
mod wire;

#[cfg(test)]
mod tests {
    use actix_web::dev::ResourceDef;
    use actix_web::http::Method;

    use super::*;

    /// The path matcher agrees with actix-web's own pattern matching, in registration order,
    /// on every route and on paths that are none of them.
    #[test]
    fn route_of_agrees_with_the_router() {
        for path in [
            "/v1/chat/completions",
            "/chat/completions",
            "/v1/models",
            "/models",
            "/models/gpt-4o",
            "/v1/models/gpt-4o",
            "/v1/models/org/model:v1",
            "/v1/models/",
            "/health",
            "/health/ready",
            "/health/providers",
            "/health/anomalies",
            "/health/other",
            "/metrics",
            "/prometheus/metrics/providers",
            "/prometheus/metrics/",
            "/prometheus/metrics/a/b",
            "/v1/chat/completions/x",
            "/admin/keys",
            "/admin/keys/alice",
            "/admin/keys/alice/rotate",
            "/admin/keys/alice/other",
            "/admin/keys//rotate",
            "/",
            "/nothing",
        ] {
            let router = super::super::PATTERNS
                .into_iter()
                .find(|p| ResourceDef::new(*p).is_match(path));
            assert_eq!(route_of(path), router, "{path}");
        }
        assert_eq!(
            span_name(&Method::POST, "/v1/chat/completions"),
            Some("POST /v1/chat/completions")
        );
        assert_eq!(span_name(&Method::PUT, "/health"), None);
    }
}
