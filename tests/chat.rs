//! Chat completions through a `kind = "openai"` provider in front of `gatewayz mock-upstream`:
//! JSON and SSE answers arrive intact (content, usage, frames, `[DONE]`), the upstream model
//! rename reaches the upstream, usage is always requested upstream but only relayed to a
//! client that asked for it, and the first chunk reaches the client while the upstream is
//! still streaming (checked by the upstream's own counters, not by timing).

mod common;

use std::io::Read;
use std::time::Duration;

use common::{assemble, mock_stats, post_chat, sse_data};
use serde_json::{json, Value};

fn gateway_for(upstream: &common::Process) -> common::Process {
    common::gateway(&format!(
        "{}\n[models.public]\nproviders = [\"up\"]\nupstream_model = {{ up = \"private-7b\" }}\n\n\
         [models.same]\nproviders = [\"up\"]\n",
        common::openai_provider("up", upstream, "")
    ))
}

#[test]
fn json_completion_carries_content_usage_and_the_upstream_model_name() {
    let upstream = common::mock_upstream(&[]);
    let gw = gateway_for(&upstream);
    let reply = post_chat(
        &gw,
        &common::chat_body("public", "one two three", false),
        None,
    );
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: one two three"
    );
    // 3 words + 3 framing tokens in; "You said: one two three" is 5 words out.
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 11);
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_model"], "private-7b");
    assert_eq!(stats["last_stream"], false);

    post_chat(&gw, &common::chat_body("same", "hi", false), None);
    assert_eq!(mock_stats(&upstream)["last_model"], "same");
}

#[test]
fn stream_without_include_usage_asks_upstream_but_hides_the_usage_chunk() {
    let upstream = common::mock_upstream(&[]);
    let gw = gateway_for(&upstream);
    let reply = post_chat(&gw, &common::chat_body("public", "alpha beta", true), None);
    assert_eq!(reply.status(), 200);
    let content_type = reply.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = reply.text().unwrap();
    // Every event is a complete `data: ...\n\n` frame.
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        text.split("\n\n")
            .all(|f| f.is_empty() || f.starts_with("data: ")),
        "{text}"
    );
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let (content, usage) = assemble(&events);
    assert_eq!(content, "You said: alpha beta");
    assert_eq!(
        usage, None,
        "usage chunk leaked to a client that did not ask: {text}"
    );
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_include_usage"], true);
    assert_eq!(stats["last_stream"], true);
    assert_eq!(stats["last_model"], "private-7b");
}

#[test]
fn stream_with_include_usage_relays_the_usage_chunk() {
    let upstream = common::mock_upstream(&["--chunks", "2"]);
    let gw = gateway_for(&upstream);
    let body = json!({
        "model": "same", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "alpha beta gamma"}],
    });
    let text = post_chat(&gw, &body.to_string(), None).text().unwrap();
    let events = sse_data(&text);
    let (content, usage) = assemble(&events);
    assert_eq!(content, "You said: alpha beta gamma");
    let usage = usage.expect("usage chunk");
    assert_eq!(usage["prompt_tokens"], 6);
    assert_eq!(usage["completion_tokens"], 5);
    // role chunk, 2 content chunks, finish chunk, usage chunk, [DONE]
    assert_eq!(events.len(), 6, "{text}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn first_chunk_reaches_the_client_before_the_upstream_finishes() {
    // Five events 1 s apart: the upstream cannot finish its stream before ~4 s.
    let upstream = common::mock_upstream(&["--chunks", "1", "--chunk-delay", "1s"]);
    let gw = gateway_for(&upstream);
    let mut reply = post_chat(&gw, &common::chat_body("same", "slow stream", true), None);
    assert_eq!(reply.status(), 200);
    let mut buf = [0u8; 4096];
    let n = reply.read(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("data: "), "{first}");
    let stats = mock_stats(&upstream);
    assert_eq!(stats["streams_started"], 1, "{stats}");
    assert_eq!(
        stats["streams_finished"], 0,
        "the upstream finished before the client saw a chunk: {stats}"
    );
    // The rest still arrives whole, and then the upstream reports the stream finished.
    let mut rest = String::new();
    reply.read_to_string(&mut rest).unwrap();
    let (content, _) = assemble(&sse_data(&(first + &rest)));
    assert_eq!(content, "You said: slow stream");
    common::wait_until(Duration::from_secs(10), "stream finished upstream", || {
        mock_stats(&upstream)["streams_finished"] == 1
    });
}

#[test]
fn models_list_shows_the_configured_models() {
    let upstream = common::mock_upstream(&[]);
    let gw = gateway_for(&upstream);
    let body = common::get_json(&gw, "/v1/models");
    assert_eq!(body["object"], "list");
    let ids: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["public", "same"]);
}

/// The OpenAI routes answer without the `/v1` prefix too, labelled by their own pattern.
#[test]
fn routes_without_the_v1_prefix_are_served() {
    let gw = common::builtin_gateway();
    let reply = common::http()
        .post(gw.url("/chat/completions"))
        .header("content-type", "application/json")
        .body(common::chat_body("mock-gpt", "no prefix", false))
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: no prefix"
    );
    let models = common::get_json(&gw, "/models");
    assert_eq!(models, common::get_json(&gw, "/v1/models"));
    assert_eq!(common::get_json(&gw, "/models/mock-gpt")["id"], "mock-gpt");
    let metrics = common::scrape::scrape(&gw);
    assert_eq!(
        common::scrape::get(
            &metrics,
            r#"http_requests_total{method="POST",route="/chat/completions",status="200"}"#
        ),
        Some(1.0)
    );
}

/// A strict upstream: with `inject_stream_usage = false` the request goes upstream exactly as
/// the client wrote it (no `stream_options` added), and the stream is relayed intact.
#[test]
fn usage_injection_can_be_turned_off_per_provider() {
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}[models.strict]\nproviders = [\"up\"]\n",
        common::openai_provider("up", &upstream, "inject_stream_usage = false")
    ));
    let body = common::chat_body("strict", "as written", true);
    let text = post_chat(&gw, &body, None).text().unwrap();
    assert_eq!(assemble(&sse_data(&text)).0, "You said: as written");
    let stats = mock_stats(&upstream);
    assert_eq!(stats["last_include_usage"], false);
    assert_eq!(stats["last_stream"], true);
}
