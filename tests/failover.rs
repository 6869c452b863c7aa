//! Failover between `kind = "openai"` providers served by `gatewayz mock-upstream`: a refused
//! port, a 500, a hanging upstream (cut by the provider `timeout`), a malformed answer and a
//! dropped connection each hand the request to the next, healthy provider; when every
//! candidate fails the client gets 502, 504 or 429 by the last failure; an upstream 400 is the
//! client's answer as it came, with no failover; a stream that already sent bytes is not retried.
#![allow(clippy::unwrap_used)] // the shared helpers below are test code too

mod common;

use common::{assert_openai_error, chat_body, failing_upstream, failover_gateway, mock_stats};
use common::{model, openai_provider, post_chat, provider_at, Process};
use serde_json::{json, Value};

fn fails_over_json(bad_base: &str, bad_extra: &str) -> Process {
    let good = common::mock_upstream(&[]);
    let gw = failover_gateway(bad_base, bad_extra, &good, "");
    let reply = post_chat(&gw, &chat_body("m", "fail over please", false), None);
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: fail over please"
    );
    assert_eq!(mock_stats(&good)["chat_requests"], 1);
    gw
}

#[test]
fn refused_port_fails_over() {
    let dead = format!("http://{}/v1", common::free_addr());
    fails_over_json(&dead, "");
}

#[test]
fn status_500_fails_over() {
    let bad = failing_upstream("status");
    fails_over_json(&bad.url("/v1"), "");
    assert_eq!(mock_stats(&bad)["failures"], 1);
}

#[test]
fn hanging_upstream_times_out_and_fails_over() {
    let bad = failing_upstream("hang");
    fails_over_json(&bad.url("/v1"), "timeout = \"300ms\"");
    assert_eq!(mock_stats(&bad)["chat_requests"], 1);
}

#[test]
fn malformed_answer_fails_over() {
    let bad = failing_upstream("malformed");
    fails_over_json(&bad.url("/v1"), "");
    assert_eq!(mock_stats(&bad)["failures"], 1);
}

#[test]
fn dropped_connection_fails_over() {
    let bad = failing_upstream("drop");
    fails_over_json(&bad.url("/v1"), "");
    assert_eq!(mock_stats(&bad)["failures"], 1);
}

#[test]
fn stream_fails_over_before_its_first_chunk() {
    let bad = failing_upstream("status");
    let good = common::mock_upstream(&[]);
    let gw = failover_gateway(&bad.url("/v1"), "", &good, "");
    let text = post_chat(&gw, &chat_body("m", "streamed", true), None)
        .text()
        .unwrap();
    let (content, _) = common::assemble(&common::sse_data(&text));
    assert_eq!(content, "You said: streamed");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[test]
fn stream_broken_after_its_first_chunk_is_not_retried() {
    let bad = failing_upstream("drop");
    let good = common::mock_upstream(&[]);
    let gw = failover_gateway(&bad.url("/v1"), "", &good, "");
    let reply = post_chat(&gw, &chat_body("m", "one two three four", true), None);
    assert_eq!(reply.status(), 200);
    let text = reply.text().unwrap();
    let events = common::sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(mock_stats(&good)["chat_requests"], 0);
}

/// Gateway with model `m` served by `names`, each an alias of `base` with `extra`.
fn all_on(base: &str, extra: &str, names: &[&str]) -> Process {
    let mut config: String = names.iter().map(|n| provider_at(n, base, extra)).collect();
    config.push_str(&model("m", names));
    common::gateway(&config)
}

#[test]
fn all_candidates_failing_is_502() {
    let bad = failing_upstream("status");
    let malformed = failing_upstream("malformed");
    let gw = common::gateway(&format!(
        "{}{}{}",
        openai_provider("a", &bad, ""),
        openai_provider("b", &malformed, ""),
        model("m", &["a", "b"]),
    ));
    let reply = post_chat(&gw, &chat_body("m", "x", false), None);
    assert_openai_error(reply, 502, "upstream_error");
    assert_eq!(mock_stats(&bad)["chat_requests"], 1);
    assert_eq!(mock_stats(&malformed)["chat_requests"], 1);
}

#[test]
fn all_candidates_timing_out_is_504() {
    let hang = failing_upstream("hang");
    let gw = all_on(&hang.url("/v1"), "timeout = \"200ms\"", &["a", "b"]);
    let reply = post_chat(&gw, &chat_body("m", "x", false), None);
    assert_openai_error(reply, 504, "upstream_timeout");
    assert_eq!(mock_stats(&hang)["chat_requests"], 2);
}

#[test]
fn all_candidates_rate_limited_is_429() {
    let limited = common::mock_upstream(&["--fail-rate", "1", "--fail-status", "429"]);
    let gw = all_on(&limited.url("/v1"), "", &["a", "b"]);
    let reply = post_chat(&gw, &chat_body("m", "x", false), None);
    assert_openai_error(reply, 429, "rate_limit_exceeded");
    assert_eq!(mock_stats(&limited)["chat_requests"], 2);
}

#[test]
fn upstream_400_passes_through_without_failover() {
    let rejecting = common::mock_upstream(&["--fail-rate", "1", "--fail-status", "400"]);
    let good = common::mock_upstream(&[]);
    let gw = failover_gateway(&rejecting.url("/v1"), "", &good, "");
    let reply = post_chat(&gw, &chat_body("m", "x", false), None);
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "mock upstream failure", "type": "mock_error",
                         "param": null, "code": 400}})
    );
    assert_eq!(mock_stats(&good)["chat_requests"], 0);
}
