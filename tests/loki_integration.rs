//! Class 4, integration: `tracing` macros from the gateway's own code (the access line of the
//! chat route, the router's failover warning) and from elsewhere (an error with its source
//! chain, inside spans of the gateway's own tracer, which exports nowhere) reach Loki with
//! level, target, fields and `trace_id` — in the line and as structured metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::loki::{Entry, LokiReceiver, Mode};
use gatewayz::config::LokiConfig;
use gatewayz::telemetry::loki::pipeline;
use gatewayz::telemetry::metrics::log_stats::LogStats;
use gatewayz::telemetry::traces::scope;
use gatewayz::telemetry::traces::span::{self, Sampler, Span, Tracer};
use opentelemetry::trace::{SpanContext, SpanKind};
use opentelemetry::InstrumentationScope;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, thiserror::Error)]
#[error("quota lookup failed")]
struct Lookup(#[source] std::io::Error);

#[test]
fn gateway_events_arrive_with_level_target_fields_and_trace_id() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    let mut config = LokiConfig::new(receiver.url());
    config.flush_interval = Duration::from_millis(20);
    config.labels.insert("env".into(), "it".into());
    let stats = Arc::new(LogStats::default());
    let (layer, handle) = pipeline(&config, stats).unwrap();
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(layer)
        .init();
    span::install(Arc::new(Tracer::new(
        Sampler::DEFAULT,
        InstrumentationScope::builder("it").build(),
        None,
    )));
    // A dead provider first, so the router fails over and warns.
    let gateway_config = format!(
        r#"
[providers.dead]
kind = "openai"
base_url = "http://{}/v1"
[providers.mock-a]
kind = "mock"
[models.mock-gpt]
providers = ["dead", "mock-a"]
"#,
        common::free_addr()
    );
    let addr = common::inproc::start_gateway(&gateway_config, handle);
    let client = common::client();
    assert_eq!(common::chat_with_id(&client, addr, "it-1"), 200);

    let job = || {
        Span::start(SpanKind::Internal, &SpanContext::empty_context(), || {
            "job".into()
        })
    };
    let (trace_a, trace_b) = (job(), job());
    scope::with(trace_a.context(), || {
        let e = Lookup(std::io::Error::other("connection reset"));
        tracing::error!(
            error = &e as &dyn std::error::Error,
            tenant = "t1",
            "budget check failed"
        );
        tracing::info!(step = 2, "still in a");
    });
    scope::with(trace_b.context(), || {
        tracing::warn!(latency_ms = 12.5, "in b")
    });

    let find =
        |entries: &[Entry], msg: &str| entries.iter().find(|e| e.json()["msg"] == msg).cloned();
    assert!(receiver.wait_until(Duration::from_secs(30), |a| {
        [
            "chat completion answered",
            "provider attempt failed",
            "budget check failed",
            "still in a",
            "in b",
        ]
        .iter()
        .all(|m| find(a, m).is_some())
    }));
    let accepted = receiver.accepted();

    let access = find(&accepted, "chat completion answered").unwrap();
    assert_eq!(
        access.labels,
        r#"{env="it", level="info", service="gatewayz"}"#
    );
    let line = access.json();
    assert_eq!(line["target"], "gatewayz::http::finish");
    assert_eq!(
        (line["model"].as_str(), line["request_id"].as_str()),
        (Some("mock-gpt"), Some("it-1"))
    );
    assert_eq!(line["status"], "success");
    assert!(
        line["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{line}"
    );

    let failover = find(&accepted, "provider attempt failed").unwrap();
    assert_eq!(
        failover.labels,
        r#"{env="it", level="warn", service="gatewayz"}"#
    );
    let line = failover.json();
    assert_eq!(line["target"], "gatewayz::router");
    assert_eq!(
        (line["provider"].as_str(), line["reason"].as_str()),
        (Some("dead"), Some("connect"))
    );
    // Written for the failed attempt: the request's trace, the attempt's span.
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");

    let error = find(&accepted, "budget check failed").unwrap();
    assert_eq!(
        error.labels,
        r#"{env="it", level="error", service="gatewayz"}"#
    );
    let line = error.json();
    assert_eq!(line["target"], "loki_integration");
    assert_eq!(line["error"], "quota lookup failed");
    assert_eq!(
        line["error.sources"],
        serde_json::json!(["connection reset"])
    );
    assert_eq!(line["tenant"], "t1");
    let trace_id = line["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(trace_id.len(), 32);
    assert!(error
        .metadata
        .contains(&("trace_id".into(), trace_id.clone())));
    assert!(error
        .metadata
        .iter()
        .any(|(k, v)| k == "span_id" && v.len() == 16));

    let same = find(&accepted, "still in a").unwrap().json();
    assert_eq!(same["trace_id"], trace_id.as_str(), "one span, one trace");
    assert_eq!(same["step"], 2);
    let other = find(&accepted, "in b").unwrap().json();
    assert_ne!(other["trace_id"], trace_id.as_str());
    assert_eq!(other["latency_ms"], 12.5);
    // The shipper's own pushes (reqwest, hyper) and OpenTelemetry never reach Loki.
    assert!(accepted.iter().all(|e| {
        let target = e.json()["target"].as_str().unwrap().to_owned();
        !target.starts_with("reqwest")
            && !target.starts_with("hyper")
            && !target.starts_with("opentelemetry")
    }));
}
