//! Per-request cost of the tracing work on the hot path: a server span joined to the caller's
//! `traceparent`, one client span with its GenAI attributes and the `traceparent` sent
//! upstream — with the caller's trace sampled (spans recorded) and unsampled.
//! Run: `cargo bench --bench tracing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use criterion::{criterion_group, criterion_main, Criterion};
use gatewayz::config::TelemetryConfig;
use gatewayz::providers::Usage;
use gatewayz::router::AttemptSpan;
use gatewayz::telemetry::traces::otlp::encode::Scalar;
use gatewayz::telemetry::traces::span::Span;
use gatewayz::telemetry::traces::{propagation, scope};
use opentelemetry::trace::SpanKind;

fn one_request(headers: &HeaderMap) -> usize {
    let parent = propagation::extract(headers);
    let mut server = Span::start(SpanKind::Server, &parent, || {
        "POST /v1/chat/completions".into()
    });
    server.set("http.request.method", Scalar::Str("POST"));
    server.set("http.route", Scalar::Str("/v1/chat/completions"));
    let sent = scope::with(server.context(), || {
        let attempt = AttemptSpan::start("chat", "openai", "gpt-4o", "api.openai.com", false);
        let trace = attempt.upstream_trace();
        let n = trace.traceparent.map_or(0, |v| v.len());
        attempt.in_scope(|| ());
        attempt.answered(
            Some("gpt-4o-2024-08-06"),
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 34,
                cached_tokens: 0,
            }),
        );
        n
    });
    server.set("http.response.status_code", Scalar::I64(200));
    sent
}

fn bench(c: &mut Criterion) {
    // The gateway's own tracer, without an exporter (export is off the request path).
    gatewayz::telemetry::init(&TelemetryConfig {
        log_level: Some("warn".into()),
        otlp: None,
        loki: None,
        ..TelemetryConfig::default()
    })
    .unwrap();
    for (name, flags) in [("sampled", "01"), ("unsampled", "00")] {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_str(&format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"
            ))
            .unwrap(),
        );
        c.bench_function(&format!("request spans ({name})"), |b| {
            b.iter(|| one_request(std::hint::black_box(&headers)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
