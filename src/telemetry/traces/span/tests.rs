#![allow(clippy::unwrap_used)]

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

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

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{test as web_test, web, App, HttpResponse};
use bytes::Bytes;
use opentelemetry::trace::{SpanKind, TraceContextExt, TracerProvider as _};
use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as WireSpan;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler as SdkSampler, SdkTracerProvider, ShouldSample, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prost::Message;

use super::{install, Root, Sampler, Span, Tracer, TRACER};
use crate::providers::{ProviderError, Usage};
use crate::router::AttemptSpan;
use crate::telemetry::traces::otlp::batch::{Batching, Export, Processor};
use crate::telemetry::traces::otlp::encode::tests::sdk_encoding;
use crate::telemetry::traces::otlp::encode::Encoder;
use crate::telemetry::traces::otlp::SCOPE;

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

/// Keeps what the SDK's tracer ends.
#[derive(Debug, Clone, Default)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

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
    let remote = super::super::propagation::extract(&headers);
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
    install(Arc::new(Tracer::new(
        Sampler::DEFAULT,
        InstrumentationScope::builder(SCOPE).build(),
        Some(Arc::clone(&processor)),
    )));
    let app = web_test::init_service(
        App::new()
            .wrap(from_fn(crate::http::server_span::server_span))
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
    TRACER.store(None);
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
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        ),
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::default(),
            true,
            TraceState::NONE,
        ),
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::new(3),
            false,
            TraceState::NONE,
        ),
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::default(),
            false,
            TraceState::NONE,
        ),
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
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::new(3),
            true,
            state.clone(),
        ),
        SpanContext::new(
            TraceId::from(TRACE),
            SpanId::from(1),
            TraceFlags::new(2),
            true,
            state,
        ),
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
