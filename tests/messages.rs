//! `POST /v1/messages` and `/v1/messages/count_tokens` through HTTP, without an SDK: the
//! passthrough to an Anthropic provider is byte for byte but for the `model`; a stream that
//! breaks after its first content — through an Anthropic provider or a translated
//! OpenAI-compatible one — ends with an Anthropic `error` event and counts a failure of the
//! provider with its reason; keys are taken as `x-api-key` or bearer tokens; the token count
//! goes only to providers that count; metrics carry `api="messages"` / `"count_tokens"`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers below are test code too

mod common;

use std::time::Duration;

use common::scrape::{until, value};
use common::{gateway, http, mock_stats, mock_upstream, Process};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "messages-test-key";

fn anthropic_provider(name: &str, upstream: &Process) -> String {
    format!(
        "[providers.{name}]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"up\"\n",
        upstream.url("")
    )
}

fn keyed(sections: &str) -> Process {
    gateway(&format!(
        "{sections}\n[[keys]]\nname = \"t\"\nkey = \"{KEY}\"\n"
    ))
}

fn post(
    gw: &Process,
    path: &str,
    body: &str,
    auth: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut request = http()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in auth {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

fn message_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"system":[{{"type":"text","text":"be brief"}}],"messages":[{{"role":"user","content":"one two three four"}}]}}"#
    )
}

/// An SSE body's events as (name, data) pairs.
fn events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    for line in body.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_owned();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data = serde_json::from_str(data.trim())
                .unwrap_or_else(|e| panic!("an event that is not JSON ({e}): {body}"));
            out.push((std::mem::take(&mut name), data));
        }
    }
    out
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect()
}

#[test]
fn an_anthropic_provider_gets_the_request_as_sent_but_for_the_model() {
    let upstream = mock_upstream(&[]);
    let gw = keyed(&format!(
        "{}[models.claude]\nproviders = [\"a\"]\nupstream_model = {{ a = \"claude-private\" }}\n",
        anthropic_provider("a", &upstream)
    ));
    for auth in [
        ("x-api-key", KEY.to_owned()),
        ("authorization", format!("Bearer {KEY}")),
    ] {
        let reply = post(
            &gw,
            "/v1/messages",
            &message_body("claude", false),
            &[(auth.0, &auth.1)],
        );
        assert_eq!(reply.status(), 200);
        let message: Value = reply.json().unwrap();
        // The upstream's own answer: its id, its model name, its usage, untranslated.
        assert!(
            message["id"].as_str().unwrap().starts_with("msg_mock_"),
            "{message}"
        );
        assert_eq!(message["model"], "claude-private");
        assert_eq!(
            message["content"][0]["text"],
            "You said: one two three four"
        );
        assert_eq!(message["usage"]["input_tokens"], 12);
    }
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_model"], "claude-private", "{stats}");
    assert_eq!(stats["last_api"], "messages", "{stats}");

    let body = post(
        &gw,
        "/v1/messages",
        &message_body("claude", true),
        &[("x-api-key", KEY)],
    )
    .text()
    .unwrap();
    let streamed = events(&body);
    assert_eq!(streamed.first().unwrap().0, "message_start", "{body}");
    assert_eq!(streamed.last().unwrap().0, "message_stop", "{body}");
    assert_eq!(text_of(&streamed), "You said: one two three four");

    let counted = post(
        &gw,
        "/v1/messages/count_tokens",
        r#"{"model":"claude","messages":[{"role":"user","content":"count me"}]}"#,
        &[("x-api-key", KEY)],
    );
    assert_eq!(counted.status(), 200);
    assert_eq!(counted.json::<Value>().unwrap()["input_tokens"], 5);
    assert_eq!(mock_stats(&upstream)["last_api"], "messages/count_tokens");

    let unauthorized = post(
        &gw,
        "/v1/messages",
        &message_body("claude", false),
        &[("x-api-key", "wrong")],
    );
    assert_eq!(unauthorized.status(), 401);
    let error: Value = unauthorized.json().unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");

    until(&gw, WAIT, "messages and count_tokens counted", |s| {
        let messages = value(
            s,
            "model_inference_requests_total",
            "api=\"messages\",model=\"claude\",provider=\"a\",status=\"success\"",
        );
        let counts = value(
            s,
            "model_inference_requests_total",
            "api=\"count_tokens\",model=\"claude\",provider=\"a\",status=\"success\"",
        );
        let input = value(
            s,
            "gatewayz_tokens_total",
            "api=\"messages\",model=\"claude\",provider=\"a\",type=\"input\"",
        );
        (messages == 3.0 && counts == 1.0 && input == 36.0).then_some(())
    });
}

#[test]
fn count_tokens_needs_a_provider_that_counts() {
    let upstream = mock_upstream(&[]);
    let gw = keyed(&format!(
        "{}[models.gpt]\nproviders = [\"o\"]\n",
        common::openai_provider("o", &upstream, "")
    ));
    let reply = post(
        &gw,
        "/v1/messages/count_tokens",
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}]}"#,
        &[("x-api-key", KEY)],
    );
    assert_eq!(reply.status(), 400);
    let error: Value = reply.json().unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("count tokens"),
        "{error}"
    );
    assert_eq!(mock_stats(&upstream)["requests"], 0);
}

/// A stream that breaks after its first content, through either kind of provider, ends with
/// Anthropic's `error` event (never `message_stop`) after the content already sent, and is
/// a failure of its provider with the reason.
#[test]
fn broken_streams_end_with_an_anthropic_error_event_and_count_against_the_provider() {
    for (kind, mode, reason) in [
        ("anthropic", "error-event", "stream_error"),
        ("anthropic", "no-done", "stream_no_done"),
        ("anthropic", "malformed-late", "stream_malformed"),
        ("anthropic", "drop", "stream_cut"),
        ("openai", "error-event", "stream_error"),
        ("openai", "no-done", "stream_no_done"),
    ] {
        let upstream = common::failing_upstream(mode);
        let provider = match kind {
            "anthropic" => anthropic_provider("p", &upstream),
            _ => common::openai_provider("p", &upstream, ""),
        };
        let gw = keyed(&format!("{provider}[models.m]\nproviders = [\"p\"]\n"));
        let reply = post(
            &gw,
            "/v1/messages",
            &message_body("m", true),
            &[("x-api-key", KEY)],
        );
        assert_eq!(reply.status(), 200, "{kind} {mode}");
        let body = reply.text().unwrap();
        let streamed = events(&body);
        let (last, error) = streamed.last().unwrap();
        assert_eq!(last, "error", "{kind} {mode}: {body}");
        assert_eq!(error["type"], "error", "{kind} {mode}: {body}");
        assert_eq!(error["error"]["type"], "api_error", "{kind} {mode}: {body}");
        assert!(!body.contains("message_stop"), "{kind} {mode}: {body}");
        assert!(
            text_of(&streamed).starts_with("You"),
            "{kind} {mode}: {body}"
        );
        until(
            &gw,
            WAIT,
            &format!("{kind} {mode}: {reason} counted"),
            |s| {
                let failed = value(
                    s,
                    "gatewayz_provider_requests_total",
                    &format!("outcome=\"error\",provider=\"p\",reason=\"{reason}\""),
                );
                let ended = value(
                    s,
                    "model_inference_requests_total",
                    "api=\"messages\",model=\"m\",provider=\"p\",status=\"upstream_error\"",
                );
                (failed == 1.0 && ended == 1.0).then_some(())
            },
        );
    }
}
