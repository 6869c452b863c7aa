//! Anthropic Messages answer → OpenAI `chat.completion`, and the token counts for pricing.
//!
//! An Anthropic message is a list of content blocks; an OpenAI choice has one `content`
//! string and a `tool_calls` list. Text blocks are concatenated, `tool_use` blocks become
//! function calls with their `input` serialized back to an `arguments` string, and blocks
//! OpenAI has no place for (`thinking`, server tool results) are dropped. Anthropic reports
//! uncached, cache-read and cache-written input tokens separately; OpenAI's `prompt_tokens`
//! is their sum, with the cache reads in `prompt_tokens_details.cached_tokens`.
//! [`AnthropicUsage`] keeps all four for pricing, since cache writes and reads are priced
//! differently from plain input.

use serde_json::{json, Map, Value};

use super::{up_str, TranslateError};
use crate::providers::Usage;

/// Token counts as Anthropic reports them (`usage` of a message, `message_start` and
/// `message_delta` events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnthropicUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
}

impl AnthropicUsage {
    /// Reads a `usage` object; missing or null counts are zero.
    pub fn from_json(usage: &Value) -> Self {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_read_input_tokens: n("cache_read_input_tokens"),
            cache_creation_input_tokens: n("cache_creation_input_tokens"),
        }
    }

    /// Overwrites the counts present in a later `usage` object (a `message_delta`'s counts are
    /// cumulative and may carry only `output_tokens`).
    pub fn update(&mut self, usage: &Value) {
        let set = |slot: &mut u64, k: &str| {
            if let Some(n) = usage.get(k).and_then(Value::as_u64) {
                *slot = n;
            }
        };
        set(&mut self.input_tokens, "input_tokens");
        set(&mut self.output_tokens, "output_tokens");
        set(&mut self.cache_read_input_tokens, "cache_read_input_tokens");
        set(
            &mut self.cache_creation_input_tokens,
            "cache_creation_input_tokens",
        );
    }

    /// OpenAI's `prompt_tokens`: every input token, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
    }

    /// The OpenAI `usage` object.
    pub fn openai_json(&self) -> Value {
        let prompt = self.prompt_tokens();
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cache_read_input_tokens},
        })
    }

    /// The Anthropic `usage` object (for the reverse direction).
    pub fn anthropic_json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        })
    }

    /// The gateway's provider-neutral counts.
    pub fn to_usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens(),
            completion_tokens: self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
        }
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`. `pause_turn` (a server tool's
/// long turn) ends the OpenAI answer too; `refusal` is a content filter in OpenAI's terms.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Translates an Anthropic message into an OpenAI `chat.completion`; `created` is the Unix
/// time the caller stamps on it. Returns the body and the token counts.
pub fn anthropic_to_openai(
    msg: &Value,
    created: u64,
) -> Result<(Value, AnthropicUsage), TranslateError> {
    if msg["type"] != "message" {
        return Err(TranslateError::Upstream(
            "expected a `message` object".into(),
        ));
    }
    let id = up_str(&msg["id"], "id")?;
    let model = up_str(&msg["model"], "model")?;
    let blocks = msg["content"]
        .as_array()
        .ok_or_else(|| TranslateError::Upstream("content: expected an array".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(up_str(&block["text"], "content[].text")?),
            Some("tool_use") => calls.push(tool_call(block)?),
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    let has_calls = !calls.is_empty();
    message.insert(
        "content".into(),
        if text.is_empty() && has_calls {
            Value::Null
        } else {
            Value::from(text)
        },
    );
    message.insert("refusal".into(), Value::Null);
    if has_calls {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = msg["stop_reason"].as_str().map(finish_reason);
    let usage = AnthropicUsage::from_json(&msg["usage"]);
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage.openai_json(),
    });
    Ok((body, usage))
}

/// A `tool_use` block → `{id, type: "function", function: {name, arguments}}`.
pub(crate) fn tool_call(block: &Value) -> Result<Value, TranslateError> {
    let id = up_str(&block["id"], "tool_use.id")?;
    let name = up_str(&block["name"], "tool_use.name")?;
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": input.to_string()},
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Anthropic "Messages" API reference, the response example.
    #[test]
    fn reference_text_answer() {
        let msg = json!({
            "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "model": "claude-sonnet-4-20250514",
            "role": "assistant",
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "type": "message",
            "usage": {"input_tokens": 2095, "output_tokens": 503}
        });
        let (body, usage) = anthropic_to_openai(&msg, 1_700_000_000).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "claude-sonnet-4-20250514",
                "choices": [{"index": 0, "message": {"role": "assistant",
                    "content": "Hi! My name is Claude.", "refusal": null},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                    "prompt_tokens_details": {"cached_tokens": 0}}
            })
        );
        assert_eq!(
            usage.to_usage(),
            Usage {
                prompt_tokens: 2095,
                completion_tokens: 503,
                cached_tokens: 0
            }
        );
    }

    /// Anthropic tool use guide, the get_weather response: a text block then a `tool_use`.
    #[test]
    fn reference_tool_use_answer() {
        let msg = json!({
            "id": "msg_01Aq9w938a90dw8q",
            "model": "claude-opus-4-1-20250805",
            "stop_reason": "tool_use",
            "role": "assistant",
            "type": "message",
            "content": [
                {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}}
            ],
            "usage": {"input_tokens": 10, "output_tokens": 20}
        });
        let (body, _) = anthropic_to_openai(&msg, 1).unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            choice["message"]["content"],
            "I'll check the current weather in San Francisco for you."
        );
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
    }

    /// Anthropic prompt caching guide: `cache_creation_input_tokens` and
    /// `cache_read_input_tokens` are counted apart from `input_tokens`.
    #[test]
    fn cached_tokens_are_prompt_tokens() {
        let msg = json!({"type": "message", "id": "m", "model": "c", "content": [],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086,
                "cache_read_input_tokens": 1000, "output_tokens": 393}});
        let (body, usage) = anthropic_to_openai(&msg, 1).unwrap();
        assert_eq!(usage.cache_creation_input_tokens, 188_086);
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["choices"][0]["message"]["content"], "");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 189_107, "completion_tokens": 393, "total_tokens": 189_500,
                "prompt_tokens_details": {"cached_tokens": 1000}})
        );
    }

    #[test]
    fn stop_reasons_and_dropped_blocks() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish);
        }
        let msg = json!({"type": "message", "id": "m", "model": "c", "stop_reason": "end_turn",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        let (body, usage) = anthropic_to_openai(&msg, 1).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "ab");
        assert_eq!(usage, AnthropicUsage::default());
    }

    #[test]
    fn malformed_answers_are_upstream_faults() {
        for msg in [
            json!({"type": "error"}),
            json!({"type": "message", "id": "m", "model": "c"}),
            json!({"type": "message", "id": 5, "model": "c", "content": []}),
            json!({"type": "message", "id": "m", "model": "c",
                "content": [{"type": "tool_use", "id": "t"}]}),
        ] {
            let err = anthropic_to_openai(&msg, 1).unwrap_err();
            assert!(matches!(err, TranslateError::Upstream(_)), "{msg}: {err:?}");
        }
    }
}
