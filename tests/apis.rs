//! The OpenAI APIs besides chat: `/v1/embeddings`, `/v1/completions` and `/v1/responses` (JSON
//! and SSE) through the same router — failover, usage, metrics — and a model that serves only
//! some APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scrape::{get, until, value};
use common::{assert_openai_error, mock_stats, mock_upstream, openai_provider};
use serde_json::{json, Value};

fn post(gw: &common::Process, path: &str, body: Value) -> reqwest::blocking::Response {
    common::http()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap()
}

#[test]
fn embeddings_and_completions_fail_over_and_are_counted() {
    let bad = common::failing_upstream("status");
    let good = mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}{}[models.m]\nproviders = [\"bad\", \"good\"]\n\
         [models.embed]\nproviders = [\"good\"]\napis = [\"embeddings\"]\n",
        openai_provider("bad", &bad, ""),
        openai_provider("good", &good, ""),
    ));
    let reply = post(
        &gw,
        "/v1/embeddings",
        json!({"model": "m", "input": "three small words"}),
    );
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(mock_stats(&good)["last_api"], "embeddings");

    let reply = post(
        &gw,
        "/completions",
        json!({"model": "m", "prompt": "old school"}),
    );
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["choices"][0]["text"], "You said: old school");
    assert_eq!(mock_stats(&good)["last_api"], "completions");

    let text = post(
        &gw,
        "/v1/completions",
        json!({"model": "m", "prompt": "streamed text", "stream": true}),
    )
    .text()
    .unwrap();
    let events = common::sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let streamed: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, "You said: streamed text");

    // An embedding-only model refuses chat; a chat body on the embeddings route is a 400.
    assert_openai_error(
        post(
            &gw,
            "/v1/chat/completions",
            json!({"model": "embed", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        400,
        "invalid_request",
    );
    assert_openai_error(
        post(
            &gw,
            "/v1/embeddings",
            json!({"model": "embed", "messages": []}),
        ),
        400,
        "invalid_request",
    );

    // Three requests, three failovers from `bad`, each counted under its own API, and usage
    // priced for each answer.
    until(&gw, std::time::Duration::from_secs(20), "counted", |s| {
        let failovers = get(s, "gatewayz_provider_failovers_total{provider=\"bad\"}")?;
        let served = |api: &str| {
            get(
                s,
                &format!(
                    "model_inference_requests_total{{api=\"{api}\",model=\"m\",provider=\"good\",status=\"success\"}}"
                ),
            )
        };
        let tokens = |api: &str| {
            get(
                s,
                &format!(
                    "gatewayz_tokens_total{{api=\"{api}\",model=\"m\",provider=\"good\",type=\"input\"}}"
                ),
            )
        };
        (failovers == 3.0
            && served("embeddings")? == 1.0
            && served("completions")? == 2.0
            && tokens("embeddings")? == 3.0
            && tokens("completions")? > 0.0)
            .then_some(())
    });
}

/// The `(event, data)` pairs of a stream of named events.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            // The last line of a field wins (SSE), as the relay relies on after a fault.
            let field = |name: &str| {
                frame
                    .lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .next_back()
                    .map(str::trim)
                    .unwrap_or_else(|| panic!("no `{name}` in {frame:?}"))
                    .to_owned()
            };
            let data = field("data:");
            let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            (field("event:"), value)
        })
        .collect()
}

/// The text of a Responses stream's `response.output_text.delta` events.
fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn responses_are_served_streamed_failed_over_and_counted() {
    let bad = common::failing_upstream("status");
    let good = mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}{}[models.m]\nproviders = [\"bad\", \"good\"]\n\
         [models.chat-only]\nproviders = [\"good\"]\napis = [\"chat\"]\n",
        openai_provider("bad", &bad, ""),
        openai_provider("good", &good, ""),
    ));
    let reply = post(
        &gw,
        "/v1/responses",
        json!({"model": "m", "input": "three small words"}),
    );
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "You said: three small words"
    );
    // Input: 3 words + 3 for the message; output: 5 words.
    assert_eq!(body["usage"]["input_tokens"], 6);
    assert_eq!(body["usage"]["output_tokens"], 5);
    assert_eq!(mock_stats(&good)["last_api"], "responses");

    let reply = post(
        &gw,
        "/responses",
        json!({"model": "m", "stream": true,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "stream me"}]}]}),
    );
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    let text = reply.text().unwrap();
    let events = named_events(&text);
    assert_eq!(deltas(&events), "You said: stream me", "{text}");
    let (last, completed) = events.last().unwrap();
    assert_eq!(last, "response.completed", "{text}");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 5);
    assert_eq!(completed["response"]["usage"]["output_tokens"], 4);
    // The gateway asked for nothing: a Responses stream reports its usage by itself.
    let stats = mock_stats(&good);
    assert_eq!(stats["last_api"], "responses");
    assert_eq!(stats["last_stream"], true);
    assert_eq!(stats["last_include_usage"], false);

    // A model that does not serve the Responses API, and a body without `input`.
    assert_openai_error(
        post(
            &gw,
            "/v1/responses",
            json!({"model": "chat-only", "input": "hi"}),
        ),
        400,
        "invalid_request",
    );
    assert_openai_error(
        post(
            &gw,
            "/v1/responses",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        400,
        "invalid_request",
    );

    // Two requests, two failovers from `bad`, both counted under `responses` with their tokens.
    until(&gw, std::time::Duration::from_secs(20), "counted", |s| {
        let labels = |name: &str, rest: &str| {
            value(
                s,
                name,
                &format!("api=\"responses\",model=\"m\",provider=\"good\",{rest}"),
            )
        };
        (value(s, "gatewayz_provider_failovers_total", "provider=\"bad\"") == 2.0
            && labels("model_inference_requests_total", "status=\"success\"") == 2.0
            && labels("gatewayz_tokens_total", "type=\"input\"") == 6.0 + 5.0
            && labels("gatewayz_tokens_total", "type=\"output\"") == 5.0 + 4.0)
            .then_some(())
    });
}

/// Responses streams that break after their first content reached the client: each ends
/// with the Responses API's `event: error` (never `response.completed`) and counts as a
/// failure of the provider with the fault's reason.
#[test]
fn broken_responses_streams_end_with_a_responses_error_event() {
    let modes = [
        ("drop", "stream_cut"),
        ("no-done", "stream_no_done"),
        ("malformed-late", "stream_malformed"),
        ("error-event", "stream_error"),
    ];
    let upstreams: Vec<_> = modes
        .iter()
        .map(|(mode, _)| common::failing_upstream(mode))
        .collect();
    let mut config = String::new();
    for (i, upstream) in upstreams.iter().enumerate() {
        config.push_str(&openai_provider(&format!("p{i}"), upstream, ""));
        config.push_str(&common::model(&format!("m{i}"), &[&format!("p{i}")]));
    }
    let gw = common::gateway(&config);
    for (i, (mode, _)) in modes.iter().enumerate() {
        let reply = post(
            &gw,
            "/v1/responses",
            json!({"model": format!("m{i}"), "input": "a few words here", "stream": true}),
        );
        assert_eq!(reply.status(), 200, "{mode}");
        let text = reply.text().unwrap();
        let events = named_events(&text);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"response.output_text.delta"),
            "{mode}: {text}"
        );
        assert!(!names.contains(&"response.completed"), "{mode}: {text}");
        let (last, error) = events.last().unwrap();
        assert_eq!(last, "error", "{mode}: {text}");
        assert_eq!(error["type"], "error", "{mode}: {text}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
        assert!(error["code"].is_string(), "{mode}: {text}");
    }
    until(
        &gw,
        std::time::Duration::from_secs(20),
        "failures counted",
        |s| {
            modes
                .iter()
                .enumerate()
                .all(|(i, (_, reason))| {
                    value(
                        s,
                        "gatewayz_provider_requests_total",
                        &format!("outcome=\"error\",provider=\"p{i}\",reason=\"{reason}\""),
                    ) == 1.0
                })
                .then_some(())
        },
    );
}

/// The built-in mock provider (`kind = "mock"`) answers the Responses API too: the response
/// object, and its typed stream with the usage the gateway counts.
#[test]
fn the_mock_provider_answers_responses() {
    let gw = common::gateway(common::MOCK_CONFIG);
    let body: Value = post(
        &gw,
        "/v1/responses",
        json!({"model": "mock-gpt", "input": "hello mock"}),
    )
    .json()
    .unwrap();
    assert_eq!(body["object"], "response");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "You said: hello mock"
    );
    let text = post(
        &gw,
        "/v1/responses",
        json!({"model": "mock-gpt", "input": "stream mock", "stream": true}),
    )
    .text()
    .unwrap();
    let events = named_events(&text);
    assert_eq!(deltas(&events), "You said: stream mock", "{text}");
    assert_eq!(events.last().unwrap().0, "response.completed", "{text}");
    until(
        &gw,
        std::time::Duration::from_secs(20),
        "tokens counted",
        |s| {
            let output = value(
                s,
                "gatewayz_tokens_total",
                "api=\"responses\",model=\"mock-gpt\",provider=\"mock-a\",type=\"output\"",
            );
            (output == 4.0 + 4.0).then_some(())
        },
    );
}
