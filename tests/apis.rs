//! The OpenAI APIs besides chat: `/v1/embeddings` and `/v1/completions` (JSON and SSE) through
//! the same router — failover, usage, metrics — and a model that serves only some APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scrape::{get, until};
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
