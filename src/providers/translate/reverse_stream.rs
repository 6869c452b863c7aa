//! OpenAI `chat.completion.chunk` stream → Anthropic Messages events (the `/v1/messages`
//! ingress in front of an OpenAI-compatible provider).
//!
//! [`OpenAiToAnthropicStream`] is fed each OpenAI `data:` payload (a chunk, `[DONE]`, or an
//! error object) and returns Anthropic `event: …\ndata: …\n\n` frames. Anthropic streams
//! are made of content blocks that open, receive deltas and close one at a time; OpenAI
//! interleaves nothing but does not mark ends. So the machine keeps the open block: text
//! goes to a text block, a tool call with an `id` opens a `tool_use` block (closing the
//! previous one), and its `arguments` fragments become `input_json_delta`s. The finish
//! reason and the usage chunk (which OpenAI sends after it, when asked) are held until
//! `[DONE]`, which yields `content_block_stop`, `message_delta` and `message_stop`. OpenAI
//! reports input tokens only at the end, so `message_start` carries zeros and
//! `message_delta` the final counts.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::response::AnthropicUsage;
use super::reverse_response::{stop_reason, usage_from_openai};
use super::{up_str, TranslateError};

/// The block currently open on the Anthropic side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text(u64),
    Tool(u64),
}

/// The translating state machine for one stream.
#[derive(Debug, Clone)]
pub struct OpenAiToAnthropicStream {
    started: bool,
    ended: bool,
    open: Open,
    next_block: u64,
    /// OpenAI `tool_calls[].index` → Anthropic block index.
    tools: HashMap<u64, u64>,
    stop_reason: Option<&'static str>,
    usage: AnthropicUsage,
}

impl Default for OpenAiToAnthropicStream {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenAiToAnthropicStream {
    pub fn new() -> Self {
        Self {
            started: false,
            ended: false,
            open: Open::None,
            next_block: 0,
            tools: HashMap::new(),
            stop_reason: None,
            usage: AnthropicUsage::default(),
        }
    }

    /// The token counts seen so far (final after `[DONE]`).
    pub fn usage(&self) -> AnthropicUsage {
        self.usage
    }

    /// Whether `[DONE]` or an error ended the stream.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Feeds one `data:` payload; returns the Anthropic frames to send, in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        if self.ended {
            return Err(TranslateError::Upstream(
                "data after the end of the stream".into(),
            ));
        }
        let mut out = Vec::new();
        if data.trim_ascii() == b"[DONE]" {
            self.close(&mut out);
            let usage = self.usage.anthropic_json();
            out.push(frame(
                "message_delta",
                &json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                    "usage": usage}),
            ));
            out.push(frame("message_stop", &json!({"type": "message_stop"})));
            self.ended = true;
            return Ok(out);
        }
        let chunk: Value = serde_json::from_slice(data)
            .map_err(|e| TranslateError::Upstream(format!("stream chunk is not JSON: {e}")))?;
        if let Some(err) = chunk.get("error") {
            let message = err["message"].as_str().unwrap_or("upstream error");
            let kind = match err["type"].as_str() {
                Some("invalid_request_error") => "invalid_request_error",
                Some("rate_limit_error" | "tokens" | "requests") => "rate_limit_error",
                _ => "api_error",
            };
            self.ended = true;
            return Ok(vec![frame(
                "error",
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            )]);
        }
        if !self.started {
            self.started = true;
            out.push(frame(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": up_str(&chunk["id"], "id")?, "type": "message", "role": "assistant",
                    "model": up_str(&chunk["model"], "model")?, "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ));
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            self.usage = usage_from_openai(&chunk["usage"]);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(out);
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Open::Text(i) => i,
                _ => {
                    self.close(&mut out);
                    let i = self.open_block(&mut out, json!({"type": "text", "text": ""}));
                    self.open = Open::Text(i);
                    i
                }
            };
            out.push(delta_frame(
                index,
                json!({"type": "text_delta", "text": text}),
            ));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let n = call["index"].as_u64().unwrap_or(0);
            if let Some(id) = call["id"].as_str() {
                self.close(&mut out);
                let name = up_str(&call["function"]["name"], "tool_calls[].function.name")?;
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let i = self.open_block(&mut out, block);
                self.open = Open::Tool(i);
                self.tools.insert(n, i);
            }
            let index = *self.tools.get(&n).ok_or_else(|| {
                TranslateError::Upstream(format!("arguments for tool call {n} before its id"))
            })?;
            if let Some(part) = call["function"]["arguments"]
                .as_str()
                .filter(|p| !p.is_empty())
            {
                out.push(delta_frame(
                    index,
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(stop_reason(finish));
        }
        Ok(out)
    }

    fn open_block(&mut self, out: &mut Vec<Bytes>, block: Value) -> u64 {
        let index = self.next_block;
        self.next_block += 1;
        out.push(frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Open::Text(i) | Open::Tool(i) = self.open {
            out.push(frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            ));
        }
        self.open = Open::None;
    }
}

fn delta_frame(index: u64, delta: Value) -> Bytes {
    frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::stream::AnthropicToOpenAiStream;
    use super::*;

    fn events(frames: &[Bytes]) -> Vec<(String, Value)> {
        frames
            .iter()
            .map(|f| {
                let s = std::str::from_utf8(f).unwrap();
                let (ev, data) = s.trim_end().split_once('\n').unwrap();
                let ev = ev.strip_prefix("event: ").unwrap().to_owned();
                (
                    ev,
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    /// OpenAI streaming guide's function-calling stream (get_weather, arguments in
    /// fragments), after a text chunk, with `stream_options.include_usage`.
    const CHUNKS: [&str; 8] = [
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"content":"Checking."},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"location\":\""}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"Paris, France\"}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":10}}}"#,
    ];

    #[test]
    fn tool_stream_becomes_anthropic_events_and_back() {
        let mut sm = OpenAiToAnthropicStream::new();
        let mut frames = Vec::new();
        for c in CHUNKS {
            frames.extend(sm.feed(c.as_bytes()).unwrap());
        }
        frames.extend(sm.feed(b"[DONE]").unwrap());
        assert!(sm.is_ended());
        let evs = events(&frames);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            evs[4].1["content_block"]["id"],
            "call_DdmO9pD3xa9XTPNJ32zg2hcA"
        );
        let args: String = evs[5..8]
            .iter()
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(args, r#"{"location":"Paris, France"}"#);
        assert_eq!(evs[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(evs[9].1["usage"]["input_tokens"], 40);
        assert_eq!(evs[9].1["usage"]["cache_read_input_tokens"], 10);

        // Fed back through the forward machine, the client sees the same call and usage.
        let mut back = AnthropicToOpenAiStream::new(1, true);
        let mut lines = Vec::new();
        for (name, data) in &evs {
            lines.extend(back.feed(name, data.to_string().as_bytes()).unwrap());
        }
        let text: String = lines
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        assert!(text.contains(r#""name":"get_weather""#));
        assert!(text.contains(r#""finish_reason":"tool_calls""#));
        assert!(text.contains(r#""prompt_tokens":50"#));
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn errors_and_protocol_violations() {
        let mut sm = OpenAiToAnthropicStream::new();
        let out = sm
            .feed(br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#)
            .unwrap();
        let evs = events(&out);
        assert_eq!(evs[0].0, "error");
        assert_eq!(evs[0].1["error"]["type"], "rate_limit_error");
        assert!(sm.feed(b"[DONE]").is_err());

        let mut sm = OpenAiToAnthropicStream::new();
        let orphan = br#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{}"}}]}}]}"#;
        assert!(matches!(sm.feed(orphan), Err(TranslateError::Upstream(_))));
        assert!(sm.feed(b"not json").is_err());
    }
}
