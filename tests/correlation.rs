//! Logs and traces of one request meet: with both a Loki receiver and an OTLP receiver
//! running, the log lines a chat completion produces (the access line, and a failed attempt's
//! warning) carry — in the JSON line and as structured metadata — the trace id of the spans
//! the collector received for that request, which is also the `x-trace-id` the client got.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::loki::{LokiReceiver, Mode};
use common::otlp::{Receiver, KIND_CLIENT, KIND_SERVER};

#[test]
fn a_requests_log_lines_carry_its_trace_id() {
    let collector = Receiver::http();
    let logs = LokiReceiver::start(Mode::Status(204));
    let failing = common::failing_upstream("status");
    let healthy = common::mock_upstream(&[]);
    let config = format!(
        r#"
{failing}
{healthy}
[models.m]
providers = ["failing", "healthy"]

[telemetry.loki]
url = "{loki}"
flush_interval = "50ms"

{otlp}
"#,
        failing = common::openai_provider("failing", &failing, ""),
        healthy = common::openai_provider("healthy", &healthy, ""),
        loki = logs.url(),
        otlp = collector.config_section(),
    );
    let gw = common::gateway_with_env(&config, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);

    let reply = common::post_chat(&gw, &common::chat_body("m", "correlate me", false), None);
    assert_eq!(reply.status(), 200);
    let trace_id = reply.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(trace_id.len(), 32);

    // The collector has the request's server span and both attempts, in that trace.
    let spans = collector.wait_for("the request's spans", Duration::from_secs(20), |spans| {
        let mine: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        mine.iter().any(|s| s.kind == KIND_SERVER)
            && mine.iter().filter(|s| s.kind == KIND_CLIENT).count() == 2
    });
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.kind == KIND_CLIENT)
        .collect();
    let server = spans
        .iter()
        .find(|s| s.trace_id == trace_id && s.kind == KIND_SERVER)
        .unwrap();
    // The attempts are the server span's children, though it is never entered.
    assert!(attempts.iter().all(|s| s.parent_span_id == server.span_id));

    // Loki has the failed attempt's warning and the access line, with the same trace id.
    let arrived = logs.wait_until(Duration::from_secs(20), |entries| {
        let lines: Vec<_> = entries
            .iter()
            .filter(|e| e.json()["trace_id"] == trace_id.as_str())
            .collect();
        lines
            .iter()
            .any(|e| e.line.contains("provider attempt failed"))
            && lines
                .iter()
                .any(|e| e.line.contains("chat completion answered"))
    });
    assert!(
        arrived,
        "log lines with trace {trace_id}: {:#?}",
        logs.accepted()
    );
    for entry in logs
        .accepted()
        .iter()
        .filter(|e| e.json()["trace_id"] == trace_id.as_str())
    {
        assert!(
            entry
                .metadata
                .iter()
                .any(|(k, v)| k == "trace_id" && *v == trace_id),
            "trace_id not in structured metadata: {entry:?}"
        );
        // A warning logged during an attempt names that attempt's span.
        if entry.line.contains("provider attempt failed") {
            let span_id = entry.json()["span_id"].as_str().unwrap().to_owned();
            assert!(
                attempts.iter().any(|s| s.span_id == span_id),
                "span {span_id} is not one of the attempts {attempts:#?}"
            );
        }
        // The access line, written while the handler runs, names the request's span.
        if entry.line.contains("chat completion answered") {
            assert_eq!(entry.json()["span_id"], server.span_id.as_str());
        }
    }
}
