//! The server span middleware's spans, with the attempts' and a stream's, on the wire: what
//! `tracing-opentelemetry` and the SDK sent for the same calls before the gateway recorded its
//! spans itself (`crate::telemetry::traces::span`).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{test as web_test, web, App, HttpResponse};
use bytes::Bytes;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as WireSpan;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;

use crate::providers::{ProviderError, Usage};
use crate::router::AttemptSpan;
use crate::telemetry::traces::otlp::batch::{Batching, Export, Processor};
use crate::telemetry::traces::otlp::encode::tests::sdk_encoding;
use crate::telemetry::traces::otlp::encode::Encoder;
use crate::telemetry::traces::otlp::SCOPE;
use crate::telemetry::traces::span::tests::Ended;
use crate::telemetry::traces::span::{self, Sampler, Tracer};

/// The caller's trace: sampled, with a trace state the spans carry on.
const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "vendor=a";

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("gatewayz")
        .build()
}

/// Hands each request the export thread sends to the test.
struct Sent(Sender<Vec<u8>>);

impl Export for Sent {
    fn export(&mut self, request: Bytes, _spans: usize) {
        let _ = self.0.send(request.to_vec());
    }

    fn shutdown(&mut self) {}
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 12,
        completion_tokens: 34,
        cached_tokens: 0,
    }
}

fn unavailable() -> ProviderError {
    ProviderError::Status {
        status: 503,
        body: Bytes::new(),
        content_type: None,
        retry_after: None,
        request_id: None,
    }
}

/// A request's attempts, as the router and the relay make them: one failed, one answered,
/// one streamed until the stream broke.
async fn attempts() -> HttpResponse {
    AttemptSpan::start("chat", "dead", "gpt-4o", "10.0.0.1", false).failed(&unavailable());
    AttemptSpan::start("chat", "up", "gpt-4o", "127.0.0.1", false)
        .answered(Some("gpt-4o-2024-08-06"), Some(usage()));
    let mut stream = AttemptSpan::start("chat", "up", "gpt-4o", "127.0.0.1", true).streaming();
    stream.finish(
        Some("gpt-4o-2024-08-06"),
        Some(usage()),
        Some(Duration::from_millis(250)),
        "upstream_error",
        Some("stream_cut"),
    );
    drop(stream);
    HttpResponse::BadGateway().finish()
}

/// The same request as `tracing-opentelemetry` recorded it before the gateway recorded its
/// own spans: the server span middleware's and the attempt span's calls, as they were.
fn reference_request() {
    use opentelemetry::trace::Status;
    use tracing::field::Empty;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let server = tracing::info_span!(
        "request",
        otel.name = "POST /v1/chat/completions",
        otel.kind = "server",
        http.request.method = %actix_web::http::Method::POST,
        http.route = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    );
    server.record("http.route", "/v1/chat/completions");
    let mut headers = actix_web::http::header::HeaderMap::new();
    for (name, value) in [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)] {
        headers.insert(
            actix_web::http::header::HeaderName::from_static(name),
            actix_web::http::header::HeaderValue::from_static(value),
        );
    }
    let remote = crate::telemetry::traces::propagation::extract(&headers);
    let _ = server.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    let _ = server.context();
    let attempt = |provider: &str, address: &str, stream: bool| {
        let span = tracing::info_span!(
            parent: server.id(),
            "attempt",
            otel.name = %format_args!("chat gpt-4o"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = "gpt-4o",
            gen_ai.request.stream = stream,
            server.address = address,
        );
        let _ = span.context();
        span
    };
    let usage = |span: &tracing::Span| {
        span.set_attribute("gen_ai.usage.input_tokens", 12_i64);
        span.set_attribute("gen_ai.usage.output_tokens", 34_i64);
    };
    let failed = attempt("dead", "10.0.0.1", false);
    failed.set_attribute("error.type", "server_error");
    failed.set_attribute("http.response.status_code", 503_i64);
    failed.set_status(Status::error("server_error"));
    drop(failed);
    let answered = attempt("up", "127.0.0.1", false);
    answered.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06".to_owned());
    usage(&answered);
    drop(answered);
    let streamed = attempt("up", "127.0.0.1", true);
    streamed.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06".to_owned());
    usage(&streamed);
    streamed.set_attribute("gen_ai.response.time_to_first_chunk", 0.25);
    streamed.set_attribute("gatewayz.stream.outcome", "upstream_error");
    streamed.set_attribute("error.type", "stream_cut");
    streamed.set_status(Status::error("stream_cut"));
    drop(streamed);
    server.record("http.response.status_code", 502_i64);
    server.record("otel.status_code", "error");
    server.record("error.type", "502");
}

/// The spans of trace [`TRACE`] in `requests`, their span ids numbered in the order they
/// first appear and their times checked, then zeroed: what two runs of a request share.
fn comparable(requests: &[Vec<u8>]) -> Vec<WireSpan> {
    let mut spans: Vec<WireSpan> = requests
        .iter()
        .flat_map(|r| {
            let request = ExportTraceServiceRequest::decode(r.as_slice()).unwrap();
            request.resource_spans.into_iter().flat_map(|rs| {
                rs.scope_spans.into_iter().flat_map(|ss| {
                    assert_eq!(ss.scope.as_ref().unwrap().name, SCOPE);
                    ss.spans
                })
            })
        })
        .filter(|s| s.trace_id == TRACE.to_be_bytes())
        .collect();
    let mut numbers: HashMap<Vec<u8>, u8> = HashMap::new();
    let mut number = |id: &mut Vec<u8>| {
        if !id.is_empty() && *id != 0x00f067aa0ba902b7_u64.to_be_bytes() {
            let next = numbers.len() as u8;
            *id = vec![*numbers.entry(id.clone()).or_insert(next)];
        }
    };
    for span in &mut spans {
        assert!(
            span.start_time_unix_nano > 0 && span.end_time_unix_nano >= span.start_time_unix_nano
        );
        span.start_time_unix_nano = 0;
        span.end_time_unix_nano = 0;
        number(&mut span.span_id);
        number(&mut span.parent_span_id);
    }
    spans
}

fn sent(requests: &Receiver<Vec<u8>>) -> Vec<Vec<u8>> {
    requests.try_iter().collect()
}

/// The gateway's spans for one request (through the server span middleware, the attempt
/// spans and a stream's) are, field for field and byte for byte but for ids and times, the
/// ones `tracing-opentelemetry` and the SDK sent for the same calls.
#[actix_web::test]
async fn the_spans_are_the_ones_tracing_opentelemetry_recorded() {
    let (tx, requests) = channel();
    let processor =
        Arc::new(Processor::new(Sent(tx), Batching::default(), Encoder::new(&resource())).unwrap());
    span::install(Arc::new(Tracer::new(
        Sampler::DEFAULT,
        InstrumentationScope::builder(SCOPE).build(),
        Some(Arc::clone(&processor)),
    )));
    let app = web_test::init_service(
        App::new()
            .wrap(from_fn(super::server_span))
            .route("/v1/chat/completions", web::post().to(attempts)),
    )
    .await;
    let request = web_test::TestRequest::post()
        .uri("/v1/chat/completions")
        .insert_header(("traceparent", TRACEPARENT))
        .insert_header(("tracestate", TRACESTATE))
        .to_request();
    let response = web_test::call_service(&app, request).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers().get("x-trace-id").unwrap(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // The body sent and dropped: the server span ends.
    drop(web_test::read_body(response).await);
    span::uninstall();
    processor.force_flush().unwrap();
    let ours = sent(&requests);

    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ended.clone())
        .with_resource(resource())
        .build();
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(SCOPE))
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_location(false)
                .with_threads(false)
                .with_level(false)
                .with_target(false),
        )
    };
    tracing::subscriber::with_default(subscriber, reference_request);
    let reference = sdk_encoding(ended.0.lock().unwrap().clone(), &resource());

    let (got, want) = (comparable(&ours), comparable(&[reference]));
    assert_eq!(got.len(), 4);
    assert_eq!(got, want);
    // The server span ends last, under the caller's span; the attempts are its children.
    assert_eq!(got[3].name, "POST /v1/chat/completions");
    assert!(got[..3].iter().all(|s| s.parent_span_id == got[3].span_id));
    assert_eq!(got[3].trace_state, TRACESTATE);
}
