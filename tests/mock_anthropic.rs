//! `gatewayz mock-upstream` speaks Anthropic's Messages API on `/v1/messages`: the key in
//! `x-api-key` (a bearer token is not taken), a `message` answer with input and output
//! tokens, a stream of named events that spells out the same text, Anthropic's error shape
//! in the fault modes, and the `anthropic-version` header recorded in `/mock/stats`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers below are test code too

mod common;

use common::{http, mock_stats};
use serde_json::{json, Value};

const BODY: &str = r#"{"model":"claude-mock","max_tokens":50,"system":"be brief","messages":[{"role":"user","content":"hello there world"}]}"#;

fn post(
    upstream: &common::Process,
    body: &str,
    headers: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut request = http()
        .post(upstream.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().expect("POST /v1/messages")
}

const KEYED: &[(&str, &str)] = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

#[test]
fn messages_route_answers_like_anthropic() {
    let upstream = common::mock_upstream(&["--api-key", "k"]);

    // No key, or the key as a bearer token: 401 in Anthropic's shape.
    for headers in [&[][..], &[("authorization", "Bearer k")][..]] {
        let reply = post(&upstream, BODY, headers);
        assert_eq!(reply.status(), 401);
        let body: Value = reply.json().unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        );
    }

    // max_tokens is required.
    let reply = post(
        &upstream,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        KEYED,
    );
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    // A JSON answer: system 2 + 3, the message 3 + 3 input tokens; five words out.
    let reply = post(&upstream, BODY, KEYED);
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-mock");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "You said: hello there world"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 11, "output_tokens": 5})
    );
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_api"], "messages");
    assert_eq!(stats["last_anthropic_version"], "2023-06-01");
    assert_eq!(stats["chat_requests"], 1);

    // A stream: named events in order, spelling out the same text.
    let streamed = BODY.replace("\"max_tokens\":50", "\"max_tokens\":50,\"stream\":true");
    let reply = post(&upstream, &streamed, &[("x-api-key", "k")]);
    assert_eq!(reply.status(), 200);
    assert!(reply.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = reply.text().unwrap();
    let mut names = Vec::new();
    let mut spelled = String::new();
    let mut output_tokens = None;
    for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
        let (event, data) = frame.split_once('\n').expect("event and data lines");
        let name = event.strip_prefix("event: ").expect("event line");
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name);
        if name == "content_block_delta" {
            spelled.push_str(data["delta"]["text"].as_str().unwrap());
        }
        if name == "message_delta" {
            assert_eq!(data["delta"]["stop_reason"], "end_turn");
            output_tokens = Some(data["usage"]["output_tokens"].clone());
        }
        names.push(name.to_owned());
    }
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 5]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    assert_eq!(spelled, "You said: hello there world");
    assert_eq!(output_tokens, Some(json!(5)));
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_anthropic_version"], Value::Null);
    assert_eq!(stats["last_stream"], true);
    assert_eq!(stats["streams_started"], 1);
}

#[test]
fn messages_faults_take_anthropic_shapes() {
    let upstream = common::mock_upstream(&[
        "--fail-rate",
        "1",
        "--fail-status",
        "429",
        "--retry-after",
        "7",
    ]);
    let reply = post(&upstream, BODY, &[]);
    assert_eq!(reply.status(), 429);
    assert_eq!(reply.headers()["retry-after"], "7");
    let body: Value = reply.json().unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "mock upstream failure"}})
    );

    let control = http()
        .post(upstream.url("/mock/control"))
        .json(&json!({"fail_rate": 1.0, "fail_mode": "malformed"}))
        .send()
        .unwrap();
    assert_eq!(control.status(), 200);
    let streamed = BODY.replace("\"max_tokens\":50", "\"max_tokens\":50,\"stream\":true");
    let text = post(&upstream, &streamed, &[]).text().unwrap();
    assert_eq!(text, "event: content_block_delta\ndata: {not json\n\n");
    assert_eq!(mock_stats(&upstream)["failures"], 2);
}
