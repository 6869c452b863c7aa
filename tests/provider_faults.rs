//! Faults the breakers must see, against the real binary and `gatewayz mock-upstream`:
//! streams that break after their first content (cut, malformed event, idle, no `[DONE]`,
//! a line past the limit) count as failures of their provider and end with an SSE error
//! event; a malformed event before any content fails over; a provider refusing the gateway's
//! credentials fails over and is a 502 naming it; a 429 is skipped until its `Retry-After`
//! without moving the breaker; every request's end is counted once; oversized answers fail
//! the attempt with memory bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::scrape::{breaker, get, scrape, sum, until, value, Series};
use common::{assert_openai_error, chat_body, failing_upstream, failover_gateway, mock_stats};
use common::{mock_upstream, model, openai_provider, post_chat, Process, MOCK_CONFIG};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Breakers that open after three failures in a row (never on error rate).
const BREAKER: &str = "[breaker]\nconsecutive_failures = 3\nmin_requests = 1000\n\
                       cool_down = \"60s\"\n";

/// Gateway with `m-bad` = [bad] and `m` = [bad, good], and [`BREAKER`].
fn gateway(bad: &Process, bad_extra: &str, good: &Process) -> Process {
    failover_gateway(&bad.url("/v1"), bad_extra, good, BREAKER)
}

fn breaker_open(s: &Series, provider: &str) -> bool {
    breaker(s, provider)[1] == Some(1.0)
}

/// A streamed answer's `data:` payloads.
fn stream(gw: &Process, model: &str) -> Vec<String> {
    let reply = post_chat(gw, &chat_body(model, "one two three four five", true), None);
    assert_eq!(reply.status(), 200);
    common::sse_data(&reply.text().unwrap())
}

/// The stream ended with an OpenAI-shaped error event and no `[DONE]`, after some content.
fn assert_broken(events: &[String]) {
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{events:?}");
    assert_eq!(last["error"]["type"], "api_error", "{events:?}");
    // Every event before it is whole JSON: nothing was cut mid-event.
    let (text, _) = common::assemble(&events[..events.len() - 1]);
    assert!(text.starts_with("You"), "{events:?}");
}

fn assert_complete(events: &[String]) {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let (text, _) = common::assemble(events);
    assert_eq!(text, "You said: one two three four five");
}

/// Three streams that break after their first content open the breaker; new streams then go
/// to the healthy provider. Each broken stream is one failure with its reason, one failed
/// request, and an SSE error event for its client.
fn broken_streams_open_the_breaker(mode: &str, bad_extra: &str, outcome: &str, reason: &str) {
    let bad = failing_upstream(mode);
    let good = mock_upstream(&[]);
    let gw = gateway(&bad, bad_extra, &good);
    for _ in 0..3 {
        assert_broken(&stream(&gw, "m-bad"));
    }
    until(&gw, WAIT, "bad breaker open", |s| {
        breaker_open(s, "bad").then_some(())
    });
    let s = scrape(&gw);
    let attempts = format!("outcome=\"{outcome}\",provider=\"bad\",reason=\"{reason}\"");
    assert_eq!(
        value(&s, "gatewayz_provider_requests_total", &attempts),
        3.0,
        "{mode}"
    );
    assert_eq!(
        value(
            &s,
            "model_inference_requests_total",
            "api=\"chat\",model=\"m-bad\",provider=\"bad\",status=\"upstream_error\""
        ),
        3.0
    );
    until(
        &gw,
        WAIT,
        "the health of a provider whose streams all broke",
        |s| {
            let score = get(s, "gatewayz_provider_health_score{provider=\"bad\"}")?;
            (score < 0.5).then_some(())
        },
    );
    for _ in 0..2 {
        assert_complete(&stream(&gw, "m"));
    }
    assert_eq!(mock_stats(&bad)["chat_requests"], 3);
    assert_eq!(mock_stats(&good)["chat_requests"], 2);
}

#[test]
fn streams_cut_after_content_open_the_breaker() {
    broken_streams_open_the_breaker("drop", "", "error", "stream_cut");
}

#[test]
fn streams_with_a_late_malformed_event_open_the_breaker() {
    broken_streams_open_the_breaker("malformed-late", "", "error", "stream_malformed");
}

#[test]
fn streams_with_an_error_event_open_the_breaker() {
    broken_streams_open_the_breaker("error-event", "", "error", "stream_error");
}

#[test]
fn streams_closed_without_done_open_the_breaker() {
    broken_streams_open_the_breaker("no-done", "", "error", "stream_no_done");
}

#[test]
fn streams_idle_past_their_timeout_open_the_breaker() {
    broken_streams_open_the_breaker(
        "stall",
        "stream_idle_timeout = \"300ms\"",
        "timeout",
        "stream_idle",
    );
}

/// A malformed event before any content reached the client: the attempt fails and the
/// stream comes whole from the next provider.
#[test]
fn a_malformed_stream_before_content_fails_over() {
    let bad = failing_upstream("malformed");
    let good = mock_upstream(&[]);
    let gw = gateway(&bad, "", &good);
    let events = stream(&gw, "m");
    assert_complete(&events);
    assert!(!events.iter().any(|e| e.contains("not json")), "{events:?}");
    let s = until(&gw, WAIT, "the failed attempt counted", |s| {
        let n = value(
            s,
            "gatewayz_provider_requests_total",
            "outcome=\"error\",provider=\"bad\",reason=\"stream_malformed\"",
        );
        (n == 1.0).then(|| s.clone())
    });
    assert_eq!(
        value(&s, "gatewayz_provider_failovers_total", "provider=\"bad\""),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "model_inference_requests_total",
            "api=\"chat\",model=\"m\",provider=\"good\",status=\"success\""
        ),
        1.0
    );
}

/// A provider that refuses the gateway's credentials: the client is not told its own key is
/// wrong; the next provider serves; alone, it is a 502 naming the provider, and the breaker
/// and the metric see it.
#[test]
fn refused_provider_credentials_fail_over_and_are_the_provider_s_fault() {
    let bad = mock_upstream(&["--api-key", "the-upstream-wants-this"]);
    let good = mock_upstream(&[]);
    let gw = gateway(&bad, "api_key = \"wrong-secret-value\"", &good);
    let reply = post_chat(&gw, &chat_body("m", "hello", false), None);
    assert_eq!(reply.status(), 200);
    for _ in 0..2 {
        let body = assert_openai_error(
            post_chat(&gw, &chat_body("m-bad", "hello", false), None),
            502,
            "upstream_error",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`bad`"), "{message}");
        assert!(message.contains("credentials"), "{message}");
        assert!(!message.contains("wrong-secret-value"), "{message}");
    }
    until(&gw, WAIT, "bad breaker open", |s| {
        breaker_open(s, "bad").then_some(())
    });
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_provider_requests_total",
            "outcome=\"error\",provider=\"bad\",reason=\"auth_refused\""
        ),
        3.0
    );
    assert!(!gw.log_text().contains("wrong-secret-value"));
}

/// A 429 is not an outage: the provider is skipped until its `Retry-After`, the breaker stays
/// closed, the client gets 429 with `Retry-After` when nobody else can serve, and the model's
/// other provider serves meanwhile.
#[test]
fn rate_limits_are_not_outages() {
    let limited = mock_upstream(&[
        "--fail-rate",
        "1",
        "--fail-status",
        "429",
        "--retry-after",
        "30",
    ]);
    let good = mock_upstream(&[]);
    let gw = gateway(&limited, "", &good);
    for i in 0..6 {
        let reply = post_chat(&gw, &chat_body("m-bad", "hello", false), None);
        let retry_after: u64 = reply.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=30).contains(&retry_after),
            "request {i}: {retry_after}"
        );
        assert_openai_error(reply, 429, "rate_limit_exceeded");
    }
    // Only the first reached the provider: the others were answered from its pause.
    assert_eq!(mock_stats(&limited)["chat_requests"], 1);
    let reply = post_chat(&gw, &chat_body("m", "hello", false), None);
    assert_eq!(reply.status(), 200);
    assert_eq!(mock_stats(&good)["chat_requests"], 1);
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_circuit_breaker_state",
            "provider=\"bad\",state=\"closed\""
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "gatewayz_provider_requests_total",
            "outcome=\"rate_limited\",provider=\"bad\",reason=\"rate_limited\""
        ),
        1.0
    );
    // One end each: the first tried the provider, the others found it paused.
    let rate_limited = |provider| {
        value(
            &s,
            "model_inference_requests_total",
            &format!(
                "api=\"chat\",model=\"m-bad\",provider=\"{provider}\",status=\"rate_limited\""
            ),
        )
    };
    assert_eq!((rate_limited("bad"), rate_limited("none")), (1.0, 5.0));
}

/// The gateway's own per-key limit answers 429 with `Retry-After` and the headers OpenAI
/// clients read, which successful answers carry too.
#[test]
fn the_per_key_limit_says_when_to_retry() {
    let gw = common::gateway(&format!(
        "{MOCK_CONFIG}[[keys]]\nname = \"app\"\nkey = \"test-key-0001\"\nrate_limit_rpm = 2\n"
    ));
    let send = || {
        post_chat(
            &gw,
            &chat_body("mock-gpt", "hi", false),
            Some("test-key-0001"),
        )
    };
    let header = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()[name].to_str().unwrap().to_owned()
    };
    let first = send();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "1");
    assert!(header(&first, "x-ratelimit-reset-requests").ends_with('s'));
    assert_eq!(header(&send(), "x-ratelimit-remaining-requests"), "0");
    let refused = send();
    assert_eq!(header(&refused, "retry-after"), "30");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    assert_openai_error(refused, 429, "rate_limit_exceeded");
}

/// A retryable failure followed only by open-breaker candidates is one failed request and no
/// failover; a request cut by `server.request_timeout` is counted as timed out.
#[test]
fn every_request_end_is_counted_once() {
    let failing = mock_upstream(&["--fail-rate", "1"]);
    let hanging = failing_upstream("hang");
    let gw = common::gateway(&format!(
        "{BREAKER}[server]\nrequest_timeout = \"500ms\"\n{}{}{}{}{}",
        openai_provider("a", &failing, ""),
        openai_provider("b", &failing, ""),
        openai_provider("slow", &hanging, "timeout = \"30s\""),
        model("m-b", &["b"]),
        model("m", &["a", "b"]) + &model("m-slow", &["slow"]),
    ));
    for _ in 0..3 {
        assert_openai_error(
            post_chat(&gw, &chat_body("m-b", "x", false), None),
            502,
            "upstream_error",
        );
    }
    until(&gw, WAIT, "b open", |s| breaker_open(s, "b").then_some(()));
    assert_openai_error(
        post_chat(&gw, &chat_body("m", "x", false), None),
        502,
        "upstream_error",
    );
    assert_openai_error(
        post_chat(&gw, &chat_body("m-slow", "x", false), None),
        504,
        "upstream_timeout",
    );
    let s = until(&gw, WAIT, "the timed-out request counted", |s| {
        let n = value(
            s,
            "model_inference_requests_total",
            "api=\"chat\",model=\"m-slow\",provider=\"slow\",status=\"timeout\"",
        );
        (n == 1.0).then(|| s.clone())
    });
    assert_eq!(
        value(&s, "gatewayz_provider_failovers_total", "provider=\"a\""),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "model_inference_requests_total",
            "api=\"chat\",model=\"m\",provider=\"a\",status=\"upstream_error\""
        ),
        1.0
    );
    let all_of_m = sum(
        &s,
        "model_inference_requests_total{api=\"chat\",model=\"m\",",
    );
    assert_eq!(all_of_m, 1.0, "one request, one end");
}
