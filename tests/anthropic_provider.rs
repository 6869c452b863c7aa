//! `kind = "anthropic"` in front of `gatewayz mock-upstream` speaking the Messages API: chat
//! completions translated both ways (JSON and streamed, usage priced), the key sent as
//! `x-api-key` with `anthropic-version`, and failover from an overloaded Anthropic provider
//! (529) to an OpenAI-compatible one for the same model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scrape::{get, until};
use common::{assemble, chat_body, mock_stats, mock_upstream, post_chat, sse_data, Process};
use serde_json::{json, Value};

fn anthropic_provider(name: &str, upstream: &Process, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"k-anthropic\"\n{extra}\n",
        upstream.url("")
    )
}

#[test]
fn chat_completions_are_translated_to_messages_and_back() {
    let upstream = mock_upstream(&["--api-key", "k-anthropic"]);
    let gw = common::gateway(&format!(
        "{}[models.claude]\nproviders = [\"a\"]\nupstream_model = {{ a = \"claude-test\" }}\n\
         input_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n",
        anthropic_provider("a", &upstream, "")
    ));
    let reply = post_chat(&gw, &chat_body("claude", "hello over there", false), None);
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hello over there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_model"], "claude-test");
    assert_eq!(stats["last_api"], "messages");
    assert_eq!(stats["last_anthropic_version"], "2023-06-01");

    let request = json!({
        "model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "stream it back"}],
    });
    let text = post_chat(&gw, &request.to_string(), None).text().unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let (content, usage) = assemble(&events);
    assert_eq!(content, "You said: stream it back");
    assert_eq!(usage.unwrap()["completion_tokens"], 5);
    // Both answers were priced from the translated usage.
    until(
        &gw,
        std::time::Duration::from_secs(20),
        "tokens counted",
        |s| {
            let out = get(
                s,
                "gatewayz_tokens_total{api=\"chat\",model=\"claude\",provider=\"a\",type=\"output\"}",
            )?;
            (out == 10.0).then_some(())
        },
    );
}

#[test]
fn an_overloaded_anthropic_provider_fails_over_to_an_openai_one() {
    let overloaded = mock_upstream(&["--fail-rate", "1", "--fail-status", "529"]);
    let openai = mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}{}[models.m]\nproviders = [\"a\", \"o\"]\n",
        anthropic_provider("a", &overloaded, ""),
        common::openai_provider("o", &openai, ""),
    ));
    for stream in [false, true] {
        let reply = post_chat(&gw, &chat_body("m", "fall back", stream), None);
        assert_eq!(reply.status(), 200);
        let text = reply.text().unwrap();
        if stream {
            assert_eq!(assemble(&sse_data(&text)).0, "You said: fall back");
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                body["choices"][0]["message"]["content"],
                "You said: fall back"
            );
        }
    }
    assert_eq!(mock_stats(&openai)["chat_requests"], 2);
    until(
        &gw,
        std::time::Duration::from_secs(20),
        "failures counted",
        |s| {
            let n = get(
            s,
            "gatewayz_provider_requests_total{outcome=\"error\",provider=\"a\",reason=\"server_error\"}",
        )?;
            (n == 2.0).then_some(())
        },
    );
}

/// A translated stream that breaks after its first content is a failure of the provider, and
/// its client gets the SSE error event, exactly as for an OpenAI-compatible provider.
#[test]
fn a_broken_anthropic_stream_is_a_provider_failure() {
    let broken = mock_upstream(&["--fail-rate", "1", "--fail-mode", "malformed-late"]);
    let gw = common::gateway(&format!(
        "{}[models.m]\nproviders = [\"a\"]\n",
        anthropic_provider("a", &broken, "")
    ));
    let text = post_chat(&gw, &chat_body("m", "one two three", true), None)
        .text()
        .unwrap();
    let events = sse_data(&text);
    assert!(!events.iter().any(|e| e == "[DONE]"), "{text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(
        assemble(&events[..events.len() - 1]).0.starts_with("You"),
        "{text}"
    );
    until(
        &gw,
        std::time::Duration::from_secs(20),
        "the failure counted",
        |s| {
            let n = get(
            s,
            "gatewayz_provider_requests_total{outcome=\"error\",provider=\"a\",reason=\"stream_malformed\"}",
        )?;
            (n == 1.0).then_some(())
        },
    );
}
