//! Traces to an OTLP collector (issue 6): the real binary against `mock-upstream` and the
//! protocol-faithful receiver in `common::otlp` (OTLP/HTTP protobuf and OTLP/gRPC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::otlp::{Receiver, Span, KIND_CLIENT, KIND_SERVER, STATUS_ERROR};
use common::Process;

/// Export batches every 50 ms so the tests wait on spans, not on the default 5 s schedule.
const FAST_EXPORT: &[(&str, &str)] = &[("OTEL_BSP_SCHEDULE_DELAY", "50")];
const WAIT: Duration = Duration::from_secs(15);
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A gateway exporting to `otlp` (a `[telemetry.otlp]` section), model `gpt-test` served by
/// the given upstreams in order.
fn gateway(otlp: &str, upstreams: &[&Process]) -> Process {
    let mut config = String::new();
    let mut names = Vec::new();
    for (i, upstream) in upstreams.iter().enumerate() {
        let name = format!("up{i}");
        config.push_str(&common::openai_provider(
            &name,
            upstream,
            "timeout = \"5s\"",
        ));
        names.push(format!("\"{name}\""));
    }
    config.push_str(&format!(
        "[models.gpt-test]\nproviders = [{}]\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n\n{otlp}",
        names.join(", ")
    ));
    common::gateway_with_env(&config, FAST_EXPORT)
}

/// Sends a chat completion with the caller's `traceparent`; returns the response.
fn chat(gw: &Process, prompt: &str, stream: bool) -> reqwest::blocking::Response {
    let body = common::chat_body("gpt-test", prompt, stream);
    let reply = common::chat_request(&common::client(), gw.addr, body)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["x-trace-id"].to_str().unwrap(),
        CALLER_TRACE,
        "the response quotes the caller's trace id"
    );
    reply
}

fn server_and_clients(spans: &[Span], clients: usize) -> Option<(Span, Vec<Span>)> {
    let server = spans
        .iter()
        .find(|s| s.trace_id == CALLER_TRACE && s.kind == KIND_SERVER)?;
    let mut children: Vec<Span> = spans
        .iter()
        .filter(|s| s.kind == KIND_CLIENT && s.parent_span_id == server.span_id)
        .cloned()
        .collect();
    children.sort_by_key(|s| s.start_unix_nano);
    (children.len() >= clients).then(|| (server.clone(), children))
}

fn upstream_traceparent(upstream: &Process) -> String {
    common::mock_stats(upstream)["last_traceparent"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The whole "Done when" first line, over one protocol.
fn chat_completion_is_traced(receiver: Receiver) {
    let upstream = common::mock_upstream(&[]);
    let gw = gateway(&receiver.config_section(), &[&upstream]);
    let body: serde_json::Value = chat(&gw, "one two three", false).json().unwrap();
    let spans = receiver.wait_for("a server span with a client child", WAIT, |s| {
        server_and_clients(s, 1).is_some()
    });
    let (server, clients) = server_and_clients(&spans, 1).unwrap();

    assert_eq!(
        server.parent_span_id, CALLER_SPAN,
        "joins the caller's trace"
    );
    assert_eq!(server.name, "POST /v1/chat/completions");
    assert_eq!(server.str("http.request.method"), Some("POST"));
    assert_eq!(server.str("http.route"), Some("/v1/chat/completions"));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert_eq!(server.service, "gatewayz");

    let client = &clients[0];
    assert_eq!(clients.len(), 1);
    assert_eq!(client.name, "chat gpt-test");
    assert_eq!(client.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(client.str("gen_ai.provider.name"), Some("up0"));
    assert_eq!(client.str("gen_ai.request.model"), Some("gpt-test"));
    assert_eq!(client.str("gen_ai.response.model"), body["model"].as_str());
    assert_eq!(client.attr("gen_ai.request.stream"), Some(&false.into()));
    assert_eq!(client.str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        client.int("gen_ai.usage.input_tokens"),
        body["usage"]["prompt_tokens"].as_i64()
    );
    assert_eq!(
        client.int("gen_ai.usage.output_tokens"),
        body["usage"]["completion_tokens"].as_i64()
    );
    assert!(client.int("gen_ai.usage.output_tokens").unwrap() > 0);
    assert_eq!(client.attr("error.type"), None);
    for span in [&server, client] {
        let text = format!("{:?}", span.attributes);
        assert!(
            !text.contains("one two three"),
            "no prompt text in spans: {text}"
        );
    }

    assert_eq!(
        upstream_traceparent(&upstream),
        format!("00-{CALLER_TRACE}-{}-01", client.span_id),
        "the upstream saw the client span's context"
    );
}

#[test]
fn chat_completion_is_traced_over_http() {
    chat_completion_is_traced(Receiver::http());
}

#[test]
fn chat_completion_is_traced_over_grpc() {
    chat_completion_is_traced(Receiver::grpc());
}

#[test]
fn failover_attempts_are_sibling_client_spans() {
    let receiver = Receiver::http();
    let broken = common::mock_upstream(&["--fail-rate", "1", "--fail-status", "503"]);
    let healthy = common::mock_upstream(&[]);
    let gw = gateway(&receiver.config_section(), &[&broken, &healthy]);
    chat(&gw, "fail over please", false);
    let spans = receiver.wait_for("two client spans", WAIT, |s| {
        server_and_clients(s, 2).is_some()
    });
    let (server, clients) = server_and_clients(&spans, 2).unwrap();
    assert_eq!(clients.len(), 2);
    let (failed, answered) = (&clients[0], &clients[1]);
    assert_eq!(failed.str("gen_ai.provider.name"), Some("up0"));
    assert_eq!(failed.str("error.type"), Some("server_error"));
    assert_eq!(failed.int("http.response.status_code"), Some(503));
    assert_eq!(failed.status_code, STATUS_ERROR);
    assert_eq!(answered.str("gen_ai.provider.name"), Some("up1"));
    assert_eq!(answered.attr("error.type"), None);
    assert!(answered.int("gen_ai.usage.output_tokens").is_some());
    assert_eq!(server.int("http.response.status_code"), Some(200));
    // Each upstream saw its own attempt's span as the parent.
    for (upstream, span) in [(&broken, failed), (&healthy, answered)] {
        assert_eq!(
            upstream_traceparent(upstream),
            format!("00-{CALLER_TRACE}-{}-01", span.span_id)
        );
    }
}

#[test]
fn a_stream_records_time_to_first_chunk_and_usage() {
    let receiver = Receiver::http();
    let upstream = common::mock_upstream(&["--latency", "30ms", "--chunk-delay", "5ms"]);
    let gw = gateway(&receiver.config_section(), &[&upstream]);
    let text = chat(&gw, "stream these four words", true).text().unwrap();
    assert!(text.contains("[DONE]"));
    let spans = receiver.wait_for("a streamed client span", WAIT, |s| {
        server_and_clients(s, 1).is_some()
    });
    let (server, clients) = server_and_clients(&spans, 1).unwrap();
    let client = &clients[0];
    assert_eq!(client.attr("gen_ai.request.stream"), Some(&true.into()));
    let ttfc = client.attr("gen_ai.response.time_to_first_chunk").unwrap();
    let ttfc = ttfc.as_f64().unwrap();
    assert!((0.025..5.0).contains(&ttfc), "time to first chunk {ttfc}s");
    // mock-upstream counts the prompt's words plus 3 per message.
    assert_eq!(client.int("gen_ai.usage.input_tokens"), Some(7));
    assert!(client.int("gen_ai.usage.output_tokens").unwrap() > 0);
    assert_eq!(client.str("gatewayz.stream.outcome"), Some("success"));
    assert!(client.str("gen_ai.response.model").is_some());
    assert_eq!(server.int("http.response.status_code"), Some(200));
    // Both spans last until the last chunk: the mock waits 5 ms before each chunk after the
    // first, and there are more than two of them.
    let chunks = text.matches("data: {").count();
    assert!(chunks > 3, "{text}");
    let lasted = |s: &Span| (s.end_unix_nano - s.start_unix_nano) as f64 / 1e9;
    assert!(
        lasted(client) >= ttfc + 0.010,
        "the attempt ended {}s after it started, its first chunk came at {ttfc}s",
        lasted(client)
    );
    assert!(server.end_unix_nano >= client.end_unix_nano);
}

#[test]
fn a_dead_collector_costs_requests_nothing_and_is_reported_once() {
    // A port that refuses connections.
    let addr = common::free_addr();
    let upstream = common::mock_upstream(&[]);
    let mut config = common::openai_provider("up0", &upstream, "");
    config.push_str(&format!(
        "[models.gpt-test]\nproviders = [\"up0\"]\n\n[telemetry.otlp]\nendpoint = \"http://{addr}/v1/traces\"\n"
    ));
    let gw = common::gateway_with_env(
        &config,
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("RUST_LOG", "info,gatewayz::telemetry::traces::otlp=debug"),
        ],
    );
    let failed_exports = |log: &str| log.matches("trace export failed").count();
    let deadline = Instant::now() + WAIT;
    let mut sent = 0;
    // Keep requests coming until the exporter has failed several times over.
    while failed_exports(&gw.log_text()) < 3 {
        assert!(
            Instant::now() < deadline,
            "no failed export logged:\n{}",
            gw.log_text()
        );
        let started = Instant::now();
        chat(&gw, "still answered", false);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request waited on the collector"
        );
        sent += 1;
    }
    assert!(sent >= 1);
    let log = gw.log_text();
    let reports = log
        .matches("trace export to the OTLP collector failed")
        .count();
    assert_eq!(reports, 1, "one report per interval, not per batch:\n{log}");
    assert!(
        !log.contains("Export.Failed") && !log.contains("BatchSpanProcessor.ExportError"),
        "the SDK's per-batch errors stay quiet:\n{log}"
    );
}

#[test]
fn without_a_collector_requests_still_carry_a_trace() {
    let upstream = common::mock_upstream(&[]);
    let gw = gateway("", &[&upstream]);
    let reply = chat(&gw, "no collector", false);
    drop(reply);
    let seen = upstream_traceparent(&upstream);
    assert!(
        seen.starts_with(&format!("00-{CALLER_TRACE}-")) && seen.ends_with("-01"),
        "the caller's trace (and sampling flag) is propagated upstream even without an exporter: {seen:?}"
    );
}

#[test]
fn graceful_shutdown_flushes_queued_spans() {
    let receiver = Receiver::grpc();
    let upstream = common::mock_upstream(&[]);
    let mut config = common::openai_provider("up0", &upstream, "");
    config.push_str("[models.gpt-test]\nproviders = [\"up0\"]\n\n");
    config.push_str(&receiver.config_section());
    // A schedule delay far longer than the test: only the shutdown flush can deliver.
    let mut gw = common::gateway_with_env(&config, &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]);
    chat(&gw, "flush me", false);
    assert!(
        receiver.spans().is_empty(),
        "nothing is exported before the schedule"
    );
    let status = gw.terminate(WAIT).expect("the gateway stops on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    receiver.wait_for("the flushed spans", WAIT, |s| {
        server_and_clients(s, 1).is_some()
    });
}
