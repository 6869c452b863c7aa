//! Anthropic Messages stream → OpenAI `chat.completion.chunk` stream.
//!
//! [`AnthropicToOpenAiStream`] is fed one Anthropic SSE event at a time (its `event:` name
//! and `data:` bytes) and returns the OpenAI `data: …\n\n` lines to send. The states are
//! named: `AwaitingStart` until `message_start` (which gives the id, model and input
//! tokens, and yields the `role: assistant` chunk), `Streaming` while content blocks flow,
//! and `Ended` after `message_stop` or an `error` event. Anthropic numbers content blocks
//! across text and tools; OpenAI numbers tool calls only, so each `tool_use` block gets the
//! next tool-call index and its `input_json_delta.partial_json` fragments are passed on as
//! `function.arguments` fragments, byte for byte. Usage arrives in `message_start` (input,
//! cache) and `message_delta` (cumulative output); the usage chunk is sent at the end only
//! when the client asked for it. Pure: `created` comes in, nothing is read or written.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::errors::{error_object, status_for_type, TranslatedError};
use super::response::{finish_reason, AnthropicUsage};
use super::{up_str, TranslateError};

/// How a translated stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// `message_stop` arrived; `[DONE]` was sent.
    Done,
    /// The upstream sent an `error` event; the client got it in OpenAI's shape, without
    /// `[DONE]`. The router records it as the provider's failure (or the request's).
    Error(TranslatedError),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    AwaitingStart,
    Streaming { id: String, model: String },
    Ended(StreamEnd),
}

/// What an Anthropic content block index stands for on the OpenAI side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, with its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// Thinking and server-tool blocks: OpenAI has no place for them.
    Dropped,
}

/// The translating state machine for one stream.
#[derive(Debug, Clone)]
pub struct AnthropicToOpenAiStream {
    created: u64,
    include_usage: bool,
    state: State,
    blocks: HashMap<u64, Block>,
    next_tool: u32,
    usage: AnthropicUsage,
}

impl AnthropicToOpenAiStream {
    /// `created`: the Unix time stamped on every chunk; `include_usage`: the client's
    /// `stream_options.include_usage`.
    pub fn new(created: u64, include_usage: bool) -> Self {
        Self {
            created,
            include_usage,
            state: State::AwaitingStart,
            blocks: HashMap::new(),
            next_tool: 0,
            usage: AnthropicUsage::default(),
        }
    }

    /// The token counts seen so far (final after `message_stop`).
    pub fn usage(&self) -> AnthropicUsage {
        self.usage
    }

    /// How the stream ended, once it has.
    pub fn end(&self) -> Option<&StreamEnd> {
        match &self.state {
            State::Ended(end) => Some(end),
            _ => None,
        }
    }

    /// Feeds one event. `event` is the SSE `event:` name; when empty, the data's `type` is
    /// used. Returns the OpenAI SSE lines to send, in order.
    pub fn feed(&mut self, event: &str, data: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        let data: Value = serde_json::from_slice(data)
            .map_err(|e| TranslateError::Upstream(format!("stream event is not JSON: {e}")))?;
        let kind = if event.is_empty() {
            data["type"].as_str().unwrap_or("")
        } else {
            event
        };
        match (&self.state, kind) {
            (_, "ping") => Ok(Vec::new()),
            (State::Ended(_), _) => Err(TranslateError::Upstream(format!(
                "`{kind}` event after the end of the stream"
            ))),
            (_, "error") => {
                let err = &data["error"];
                let status = status_for_type(err["type"].as_str().unwrap_or(""));
                let translated = error_object(status, err);
                let line = sse(&translated.body);
                self.state = State::Ended(StreamEnd::Error(translated));
                Ok(vec![line])
            }
            (State::AwaitingStart, "message_start") => {
                let msg = &data["message"];
                let id = up_str(&msg["id"], "message_start.message.id")?.to_owned();
                let model = up_str(&msg["model"], "message_start.message.model")?.to_owned();
                self.usage = AnthropicUsage::from_json(&msg["usage"]);
                self.state = State::Streaming { id, model };
                Ok(vec![
                    self.chunk(json!({"role": "assistant", "content": ""}), None)
                ])
            }
            (State::AwaitingStart, _) => Err(TranslateError::Upstream(format!(
                "`{kind}` event before message_start"
            ))),
            (State::Streaming { .. }, _) => self.streaming(kind, &data),
        }
    }

    /// An event between `message_start` and the end.
    fn streaming(&mut self, kind: &str, data: &Value) -> Result<Vec<Bytes>, TranslateError> {
        let index = || {
            data["index"]
                .as_u64()
                .ok_or_else(|| TranslateError::Upstream(format!("{kind}: missing index")))
        };
        match kind {
            "content_block_start" => {
                let block = &data["content_block"];
                let (kind, out) = match block["type"].as_str() {
                    Some("text") => {
                        let text = block["text"].as_str().unwrap_or("");
                        let out =
                            (!text.is_empty()).then(|| self.chunk(json!({"content": text}), None));
                        (Block::Text, out)
                    }
                    Some("tool_use") => {
                        let n = self.next_tool;
                        self.next_tool += 1;
                        let call = json!([{
                            "index": n,
                            "id": up_str(&block["id"], "content_block.id")?,
                            "type": "function",
                            "function": {
                                "name": up_str(&block["name"], "content_block.name")?,
                                "arguments": "",
                            },
                        }]);
                        (
                            Block::Tool(n),
                            Some(self.chunk(json!({"tool_calls": call}), None)),
                        )
                    }
                    _ => (Block::Dropped, None),
                };
                self.blocks.insert(index()?, kind);
                Ok(out.into_iter().collect())
            }
            "content_block_delta" => {
                let i = index()?;
                let block = self.blocks.get(&i).copied().ok_or_else(|| {
                    TranslateError::Upstream(format!("delta for unopened block {i}"))
                })?;
                let delta = &data["delta"];
                let out = match (block, delta["type"].as_str()) {
                    (Block::Text, Some("text_delta")) => {
                        let text = up_str(&delta["text"], "text_delta.text")?;
                        Some(self.chunk(json!({"content": text}), None))
                    }
                    (Block::Tool(n), Some("input_json_delta")) => {
                        let part = up_str(&delta["partial_json"], "partial_json")?;
                        (!part.is_empty()).then(|| {
                            let call = json!([{"index": n, "function": {"arguments": part}}]);
                            self.chunk(json!({"tool_calls": call}), None)
                        })
                    }
                    (Block::Dropped, _) => None,
                    (_, other) => {
                        return Err(TranslateError::Upstream(format!(
                            "delta `{}` does not fit block {i}",
                            other.unwrap_or("?")
                        )))
                    }
                };
                Ok(out.into_iter().collect())
            }
            "content_block_stop" => Ok(Vec::new()),
            "message_delta" => {
                self.usage.update(&data["usage"]);
                let finish = data["delta"]["stop_reason"].as_str().map(finish_reason);
                Ok(finish
                    .map(|f| self.chunk(json!({}), Some(f)))
                    .into_iter()
                    .collect())
            }
            "message_stop" => {
                let mut out = Vec::with_capacity(2);
                if self.include_usage {
                    out.push(self.usage_chunk());
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                self.state = State::Ended(StreamEnd::Done);
                Ok(out)
            }
            // Event types added after this was written: Anthropic asks clients to ignore them.
            _ => Ok(Vec::new()),
        }
    }

    fn ids(&self) -> (&str, &str) {
        match &self.state {
            State::Streaming { id, model } => (id, model),
            _ => ("", ""),
        }
    }

    /// One choice chunk.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let (id, model) = self.ids();
        sse(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    /// The final usage chunk: no choices, OpenAI's `usage`.
    fn usage_chunk(&self) -> Bytes {
        let (id, model) = self.ids();
        sse(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "choices": [],
            "usage": self.usage.openai_json(),
        }))
    }
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Anthropic streaming guide, "Streaming request with tool use" (get_weather): a text
    /// block, then a tool call whose input arrives in several `input_json_delta` fragments.
    const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o, CA\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":", "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"unit\": \"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}
"#;

    /// Splits an SSE text into (event, data) pairs and feeds them all.
    fn run(sm: &mut AnthropicToOpenAiStream, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
            let mut name = "";
            let mut data = "";
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v;
                }
            }
            for b in sm.feed(name, data.as_bytes()).unwrap() {
                out.push(String::from_utf8(b.to_vec()).unwrap());
            }
        }
        out
    }

    fn chunks(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .filter(|l| *l != "data: [DONE]\n\n")
            .map(|l| {
                assert!(l.starts_with("data: ") && l.ends_with("\n\n"), "{l}");
                serde_json::from_str(&l[6..l.len() - 2]).unwrap()
            })
            .collect()
    }

    #[test]
    fn reference_tool_stream_reassembles_exactly() {
        let mut sm = AnthropicToOpenAiStream::new(1_700_000_000, true);
        let lines = run(&mut sm, TOOL_STREAM);
        assert_eq!(lines.last().unwrap(), "data: [DONE]\n\n");
        let chunks = chunks(&lines);
        for c in &chunks {
            assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["created"], 1_700_000_000);
            assert_eq!(c["model"], "claude-opus-4-1-20250805");
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );

        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0).map(|ch| &ch["delta"]))
            .collect();
        let text: String = deltas
            .iter()
            .filter_map(|d| d["content"].as_str())
            .collect();
        assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");

        let calls: Vec<&Value> = deltas.iter().filter_map(|d| d.get("tool_calls")).collect();
        assert_eq!(
            calls[0],
            &json!([{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}])
        );
        // The empty first fragment is not sent; the seven others are, in order, unchanged.
        assert_eq!(calls.len(), 8);
        let args: String = calls[1..]
            .iter()
            .map(|c| {
                assert_eq!(c[0]["index"], 0);
                assert!(c[0].get("id").is_none());
                c[0]["function"]["arguments"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            args,
            r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
        );

        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
                "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(sm.end(), Some(&StreamEnd::Done));
        assert_eq!(sm.usage().output_tokens, 89);
    }

    /// Anthropic streaming guide, "Basic streaming request": text only, no usage asked.
    #[test]
    fn text_stream_without_usage() {
        let text = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-1-20250805", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}
"#;
        let mut sm = AnthropicToOpenAiStream::new(7, false);
        let lines = run(&mut sm, text);
        let chunks = chunks(&lines);
        assert_eq!(chunks.len(), 4, "role, two texts, finish: {lines:?}");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(lines.last().unwrap(), "data: [DONE]\n\n");
        let u = sm.usage();
        assert_eq!(
            (u.input_tokens, u.cache_read_input_tokens, u.output_tokens),
            (25, 5, 15)
        );
    }

    /// Anthropic streaming guide, "Error events": an `overloaded_error` mid-stream.
    #[test]
    fn error_event_ends_the_stream() {
        let mut sm = AnthropicToOpenAiStream::new(1, true);
        sm.feed(
            "message_start",
            br#"{"type":"message_start","message":{"id":"m","model":"c","usage":{}}}"#,
        )
        .unwrap();
        let out = sm
            .feed("error", br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#)
            .unwrap();
        assert_eq!(out.len(), 1);
        let body: Value = serde_json::from_slice(&out[0][6..out[0].len() - 2]).unwrap();
        assert_eq!(body["error"]["message"], "Overloaded");
        assert_eq!(body["error"]["type"], "server_error");
        match sm.end() {
            Some(StreamEnd::Error(e)) => {
                assert_eq!(e.status, 503);
                assert!(e.fault.retryable());
            }
            other => panic!("{other:?}"),
        }
        assert!(sm.feed("message_stop", b"{}").is_err());
        assert!(sm.feed("ping", b"{}").unwrap().is_empty());
    }

    #[test]
    fn second_tool_gets_the_next_index_and_unknown_events_are_ignored() {
        let mut sm = AnthropicToOpenAiStream::new(1, false);
        let start = br#"{"type":"message_start","message":{"id":"m","model":"c","usage":{}}}"#;
        sm.feed("", start).unwrap();
        for i in [0u32, 1] {
            let open = json!({"type": "content_block_start", "index": i,
                "content_block": {"type": "tool_use", "id": format!("t{i}"), "name": "f", "input": {}}});
            let out = sm
                .feed("content_block_start", open.to_string().as_bytes())
                .unwrap();
            let c: Value = serde_json::from_slice(&out[0][6..out[0].len() - 2]).unwrap();
            assert_eq!(c["choices"][0]["delta"]["tool_calls"][0]["index"], i);
        }
        let thinking = br#"{"type":"content_block_start","index":2,"content_block":{"type":"thinking","thinking":""}}"#;
        assert!(sm.feed("", thinking).unwrap().is_empty());
        let delta = br#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"hm"}}"#;
        assert!(sm.feed("", delta).unwrap().is_empty());
        assert!(sm.feed("some_future_event", b"{}").unwrap().is_empty());
    }

    #[test]
    fn protocol_violations_are_upstream_faults() {
        let mut sm = AnthropicToOpenAiStream::new(1, false);
        let up =
            |r: Result<Vec<Bytes>, TranslateError>| matches!(r, Err(TranslateError::Upstream(_)));
        assert!(up(sm.feed("content_block_delta", b"{}")));
        assert!(up(sm.feed("message_start", b"not json")));
        sm.feed("message_start", br#"{"message":{"id":"m","model":"c"}}"#)
            .unwrap();
        let orphan = br#"{"index":4,"delta":{"type":"text_delta","text":"x"}}"#;
        assert!(up(sm.feed("content_block_delta", orphan)));
        sm.feed(
            "content_block_start",
            br#"{"index":0,"content_block":{"type":"text","text":"hi"}}"#,
        )
        .unwrap();
        let wrong = br#"{"index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(up(sm.feed("content_block_delta", wrong)));
    }
}
