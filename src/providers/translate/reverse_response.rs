//! OpenAI `chat.completion` → Anthropic message (the `/v1/messages` ingress in front of an
//! OpenAI-compatible provider), and OpenAI usage in Anthropic's terms.
//!
//! The inverse of [`super::response`]: the choice's `content` becomes one text block, each
//! tool call a `tool_use` block whose `arguments` string is parsed back into `input`, and
//! `finish_reason` becomes `stop_reason`. OpenAI's `prompt_tokens` includes cached tokens;
//! Anthropic's `input_tokens` does not, so the cached ones move to `cache_read_input_tokens`.
//! Only the first choice is read: the reverse request never asks for `n > 1`.

use serde_json::{json, Value};

use super::response::AnthropicUsage;
use super::{up_str, TranslateError};

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An OpenAI `usage` object in Anthropic's terms (cached tokens apart from input).
pub fn usage_from_openai(usage: &Value) -> AnthropicUsage {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = n(&usage["prompt_tokens"]);
    let cached = n(&usage["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    AnthropicUsage {
        input_tokens: prompt - cached,
        output_tokens: n(&usage["completion_tokens"]),
        cache_read_input_tokens: cached,
        cache_creation_input_tokens: 0,
    }
}

/// An OpenAI tool call's `arguments` string parsed to the object Anthropic's `input` wants.
pub(crate) fn parse_arguments(args: &str) -> Result<Value, TranslateError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(TranslateError::Upstream(
            "tool call arguments are not a JSON object".into(),
        )),
    }
}

/// Translates an OpenAI `chat.completion` into an Anthropic message; returns the body and
/// the token counts.
pub fn openai_to_anthropic_response(
    body: &Value,
) -> Result<(Value, AnthropicUsage), TranslateError> {
    let id = up_str(&body["id"], "id")?;
    let model = up_str(&body["model"], "model")?;
    let choice = body["choices"]
        .get(0)
        .ok_or_else(|| TranslateError::Upstream("choices: expected at least one".into()))?;
    let message = &choice["message"];
    let mut content = Vec::new();
    match &message["content"] {
        Value::String(s) if !s.is_empty() => content.push(json!({"type": "text", "text": s})),
        Value::String(_) | Value::Null => {}
        _ => {
            return Err(TranslateError::Upstream(
                "message.content: expected a string".into(),
            ))
        }
    }
    if let Some(refusal) = message["refusal"].as_str() {
        content.push(json!({"type": "text", "text": refusal}));
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        for call in calls {
            let args = up_str(
                &call["function"]["arguments"],
                "tool_calls[].function.arguments",
            )?;
            content.push(json!({
                "type": "tool_use",
                "id": up_str(&call["id"], "tool_calls[].id")?,
                "name": up_str(&call["function"]["name"], "tool_calls[].function.name")?,
                "input": parse_arguments(args)?,
            }));
        }
    }
    let usage = usage_from_openai(&body["usage"]);
    let stop = choice["finish_reason"].as_str().map(stop_reason);
    let out = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage.anthropic_json(),
    });
    Ok((out, usage))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::response::anthropic_to_openai;
    use super::*;

    /// OpenAI "Create chat completion" reference, the "Default" response example.
    #[test]
    fn reference_text_answer() {
        let body = json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1_741_569_952,
            "model": "gpt-4.1-2025-04-14",
            "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "Hello! How can I assist you today?", "refusal": null, "annotations": []},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}},
            "service_tier": "default"
        });
        let (msg, usage) = openai_to_anthropic_response(&body).unwrap();
        assert_eq!(
            msg,
            json!({"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "type": "message",
                "role": "assistant", "model": "gpt-4.1-2025-04-14",
                "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 19, "output_tokens": 10,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
        );
        assert_eq!(usage.prompt_tokens(), 19);
    }

    /// OpenAI reference, the "Functions" response example (get_current_weather).
    #[test]
    fn reference_tool_call_answer() {
        let body = json!({
            "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1_699_896_916,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_abc123", "type": "function", "function": {
                    "name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                "prompt_tokens_details": {"cached_tokens": 64}}
        });
        let (msg, usage) = openai_to_anthropic_response(&body).unwrap();
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(
            msg["content"],
            json!([{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                "input": {"location": "Boston, MA"}}])
        );
        assert_eq!(
            (usage.input_tokens, usage.cache_read_input_tokens),
            (18, 64)
        );
        // And back: the OpenAI answer's meaning and usage survive.
        let (back, _) = anthropic_to_openai(&msg, 1_699_896_916).unwrap();
        assert_eq!(
            back["usage"],
            json!({"prompt_tokens": 82, "completion_tokens": 17,
            "total_tokens": 99, "prompt_tokens_details": {"cached_tokens": 64}})
        );
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(back["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn finish_reasons_and_malformed_answers() {
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            assert_eq!(stop_reason(finish), stop);
        }
        let bad_args = json!({"id": "x", "model": "m", "choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}}]});
        for body in [json!({"id": "x", "model": "m", "choices": []}), bad_args] {
            assert!(matches!(
                openai_to_anthropic_response(&body),
                Err(TranslateError::Upstream(_))
            ));
        }
    }
}
