//! Answers like an OpenAI-compatible provider, without a model: shared by the in-process
//! `kind = "mock"` provider and the `gatewayz mock-upstream` server, which also speaks
//! Anthropic's Messages API ([`MockRequest::parse_anthropic`], [`Dialect::Anthropic`]). A
//! request's [`Dialect`] is the one the scanner reads its stream in (one source of truth):
//! chat, completions and embeddings are [`Dialect::OpenAi`], the Responses API
//! [`Dialect::Responses`].
//!
//! The content is derived from the prompt (it echoes the last user message), so tests can
//! tell answers apart; `usage` counts whitespace-separated words as tokens, so tests can
//! predict token counts and cost exactly.

mod headers;
pub mod server;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::config::Api;
pub use crate::config::Dialect;

/// What the mock needs from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct MockRequest {
    pub api: Api,
    pub dialect: Dialect,
    pub model: String,
    /// Text of the last user message.
    pub prompt: String,
    /// Tokens in the prompt: words over all messages plus 3 per message (role framing); an
    /// Anthropic `system` counts as one more message.
    pub prompt_tokens: u64,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    /// The tool the answer calls: the first one offered, when the conversation ends with
    /// the user's turn (not with a tool's result). The call's input is `{"query": prompt}`.
    pub tool: Option<String>,
    /// Embeddings asked as `encoding_format: "base64"` (the OpenAI Node SDK's default):
    /// little-endian `f32`s, base64-encoded, as OpenAI answers.
    pub base64: bool,
    /// Input tokens the usage reports as read from a prompt cache (at most `prompt_tokens`;
    /// `mock-upstream --cached-tokens`): `prompt_tokens_details.cached_tokens`, the Responses
    /// API's `input_tokens_details`, Anthropic's `cache_read_input_tokens`.
    pub cached_tokens: u64,
}

#[derive(Deserialize)]
struct Request {
    model: String,
    #[serde(default)]
    messages: Vec<Message>,
    /// Completions: a string or an array of strings.
    #[serde(default)]
    prompt: Option<serde_json::Value>,
    /// Embeddings: a string or an array of strings; Responses: a string or an array of
    /// input items.
    #[serde(default)]
    input: Option<serde_json::Value>,
    /// Responses: the system message.
    #[serde(default)]
    instructions: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    tools: Vec<serde_json::Value>,
    max_output_tokens: Option<u64>,
    /// Embeddings: `float` (the default) or `base64`.
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// An Anthropic Messages request.
#[derive(Deserialize)]
struct AnthropicRequest {
    model: String,
    max_tokens: Option<u64>,
    #[serde(default)]
    tools: Vec<serde_json::Value>,
    #[serde(default)]
    system: Option<serde_json::Value>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
}

/// The text of Anthropic content: a string, or the `text` blocks of an array (and the
/// content of `tool_result` blocks, itself a string or blocks), joined by spaces.
fn anthropic_text(content: Option<&serde_json::Value>) -> String {
    match content {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(|t| t.as_str()) {
                Some("text") => b.get("text").and_then(|t| t.as_str()).map(str::to_owned),
                Some("tool_result") => Some(anthropic_text(b.get("content"))),
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn text_of(content: &Option<serde_json::Value>) -> String {
    match content {
        Some(serde_json::Value::String(s)) => s.clone(),
        // Content parts: concatenate the text parts.
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Words as tokens: what the mock charges for a text.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

impl MockRequest {
    /// Parses a request body of `api`; the error is a message for a 400.
    pub fn parse(api: Api, body: &[u8]) -> Result<Self, String> {
        if matches!(api, Api::Messages | Api::CountTokens) {
            return Self::anthropic(api, body);
        }
        let req: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let (prompt, prompt_tokens) = match api {
            Api::Chat => {
                if req.messages.is_empty() {
                    return Err("messages must not be empty".into());
                }
                let tokens = req
                    .messages
                    .iter()
                    .map(|m| count_tokens(&text_of(&m.content)) + 3)
                    .sum();
                // After a tool's result, the answer is about the result.
                let prompt = req
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role == "user" || m.role == "tool")
                    .map(|m| text_of(&m.content))
                    .unwrap_or_default();
                (prompt, tokens)
            }
            Api::Messages | Api::CountTokens => unreachable_api(api)?,
            Api::Completions | Api::Embeddings => {
                let field = if api == Api::Completions {
                    req.prompt.as_ref()
                } else {
                    req.input.as_ref()
                };
                let text = match field {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .filter_map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ if api == Api::Completions => return Err("prompt is required".into()),
                    _ => return Err("input is required".into()),
                };
                let tokens = count_tokens(&text);
                (text, tokens)
            }
            Api::Responses => responses_prompt(req.input.as_ref(), req.instructions.as_ref())?,
        };
        let last_is_user = req.messages.last().is_some_and(|m| m.role == "user");
        let tool = req
            .tools
            .first()
            .and_then(|t| t["function"]["name"].as_str())
            .filter(|_| last_is_user && api == Api::Chat)
            .map(str::to_owned);
        Ok(Self {
            api,
            dialect: api.dialect(),
            model: req.model,
            prompt,
            prompt_tokens,
            stream: api.streams() && req.stream.unwrap_or(false),
            include_usage: req
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            max_tokens: req
                .max_completion_tokens
                .or(req.max_tokens)
                .or(req.max_output_tokens),
            tool,
            base64: req.encoding_format.as_deref() == Some("base64"),
            cached_tokens: 0,
        })
    }

    /// Parses an Anthropic Messages body (`model`, `max_tokens`, `system`, `messages`,
    /// `stream`); the error is a message for a 400 `invalid_request_error`. The prompt is the
    /// text of the last `user` message.
    pub fn parse_anthropic(body: &[u8]) -> Result<Self, String> {
        Self::anthropic(Api::Messages, body)
    }

    /// A Messages request, or a token count (which has no `max_tokens`).
    fn anthropic(api: Api, body: &[u8]) -> Result<Self, String> {
        let req: AnthropicRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let max_tokens = match req.max_tokens {
            None if api == Api::Messages => return Err("max_tokens: field required".into()),
            max => max,
        };
        if req.messages.is_empty() {
            return Err("messages: at least one message is required".into());
        }
        let system_tokens = match &req.system {
            None | Some(serde_json::Value::Null) => 0,
            system => count_tokens(&anthropic_text(system.as_ref())) + 3,
        };
        let prompt_tokens = system_tokens
            + req
                .messages
                .iter()
                .map(|m| count_tokens(&anthropic_text(m.content.as_ref())) + 3)
                .sum::<u64>();
        let prompt = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| anthropic_text(m.content.as_ref()))
            .unwrap_or_default();
        let answers_a_tool = req.messages.last().is_some_and(|m| {
            m.content
                .as_ref()
                .and_then(|c| c.as_array())
                .is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| b["type"].as_str() == Some("tool_result"))
                })
        });
        let last_is_user = req.messages.last().is_some_and(|m| m.role == "user");
        let tool = req
            .tools
            .first()
            .and_then(|t| t["name"].as_str())
            .filter(|_| last_is_user && !answers_a_tool)
            .map(str::to_owned);
        Ok(Self {
            api,
            dialect: Dialect::Anthropic,
            model: req.model,
            prompt,
            prompt_tokens,
            stream: api.streams() && req.stream.unwrap_or(false),
            include_usage: false,
            max_tokens,
            tool,
            base64: false,
            cached_tokens: 0,
        })
    }

    /// The tool call's input (`{"query": prompt}`) as JSON text, and its tokens (words).
    fn tool_arguments(&self) -> (String, u64) {
        let arguments = json!({"query": self.prompt}).to_string();
        (arguments, count_tokens(&self.prompt) + 1)
    }

    /// The call's arguments in two fragments, as upstreams stream them (split on a char
    /// boundary).
    fn argument_fragments(arguments: &str) -> [&str; 2] {
        let mut cut = arguments.len() / 2;
        while !arguments.is_char_boundary(cut) {
            cut += 1;
        }
        [&arguments[..cut], &arguments[cut..]]
    }

    /// A `chat.completion` calling `tool`.
    fn tool_completion(&self, tool: &str, id: &str, created: u64) -> Vec<u8> {
        let (arguments, tokens) = self.tool_arguments();
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": [{
                    "id": format!("call_{id}"), "type": "function",
                    "function": {"name": tool, "arguments": arguments}}]},
                "finish_reason": "tool_calls",
            }],
            "usage": self.usage(tokens),
        })
        .to_string()
        .into_bytes()
    }

    /// The chunks of a streamed call of `tool`: the call's id and name, its arguments in two
    /// fragments, the `tool_calls` finish, usage when asked, `[DONE]`.
    fn tool_stream(&self, tool: &str, id: &str, created: u64) -> Vec<Bytes> {
        let (arguments, tokens) = self.tool_arguments();
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            frame(&json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }))
        };
        let mut events = vec![
            chunk(json!({"role": "assistant", "content": null}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": format!("call_{id}"), "type": "function",
                    "function": {"name": tool, "arguments": ""}}]}),
                None,
            ),
        ];
        for part in Self::argument_fragments(&arguments) {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                None,
            ));
        }
        events.push(chunk(json!({}), Some("tool_calls")));
        if self.include_usage {
            events.push(frame(&json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": self.model, "choices": [], "usage": self.usage(tokens),
            })));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    /// An Anthropic `message` calling `tool` (`stop_reason: tool_use`).
    fn anthropic_tool_message(&self, tool: &str, id: &str) -> Vec<u8> {
        let (_, tokens) = self.tool_arguments();
        json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "tool_use", "id": format!("toolu_{id}"), "name": tool,
                "input": {"query": self.prompt}}],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": self.anthropic_usage(tokens),
        })
        .to_string()
        .into_bytes()
    }

    /// Anthropic's events of a streamed call of `tool`: a `tool_use` block whose input
    /// arrives as two `input_json_delta` fragments.
    fn anthropic_tool_events(&self, tool: &str, id: &str) -> Vec<Bytes> {
        let (arguments, tokens) = self.tool_arguments();
        let block =
            json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": tool, "input": {}});
        let deltas = Self::argument_fragments(&arguments)
            .map(|part| json!({"type": "input_json_delta", "partial_json": part}));
        self.anthropic_block_stream(id, block, false, &deltas, "tool_use", tokens)
    }

    /// Anthropic's stream of one content block, each a complete `event: NAME\ndata: JSON\n\n`
    /// frame: `message_start`, `content_block_start` (`block`), `ping` when asked, one
    /// `content_block_delta` per delta, `content_block_stop`, `message_delta` (stop reason
    /// and output tokens), `message_stop`.
    fn anthropic_block_stream(
        &self,
        id: &str,
        block: serde_json::Value,
        ping: bool,
        deltas: &[serde_json::Value],
        stop_reason: &str,
        output_tokens: u64,
    ) -> Vec<Bytes> {
        let mut events = vec![
            named_frame(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": self.anthropic_usage(1),
                }}),
            ),
            named_frame(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": block}),
            ),
        ];
        if ping {
            events.push(named_frame("ping", &json!({"type": "ping"})));
        }
        for delta in deltas {
            events.push(named_frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            ));
        }
        events.push(named_frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(named_frame(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}),
        ));
        events.push(named_frame(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
        events
    }

    /// The answer's words: "You said:" and the prompt, cut at `max_tokens`.
    pub fn answer_words(&self) -> Vec<String> {
        self.answer().0
    }

    /// The answer's words, and whether `max_tokens` cut them.
    fn answer(&self) -> (Vec<String>, bool) {
        let mut words: Vec<String> = ["You", "said:"].iter().map(|w| w.to_string()).collect();
        words.extend(self.prompt.split_whitespace().map(str::to_owned));
        if self.prompt.trim().is_empty() {
            words.push("(nothing)".into());
        }
        let full = words.len();
        if let Some(max) = self.max_tokens {
            words.truncate(max.max(1) as usize);
        }
        let cut = words.len() < full;
        (words, cut)
    }

    /// The answer's text in `chunks` groups of words (0 = one per word), each group after the
    /// first with its leading space, so the groups concatenate to the whole answer.
    fn text_groups(words: &[String], chunks: usize) -> Vec<String> {
        let groups = if chunks == 0 {
            words.len()
        } else {
            chunks.min(words.len()).max(1)
        };
        let per = words.len().div_ceil(groups.max(1)).max(1);
        words
            .chunks(per)
            .enumerate()
            .map(|(i, group)| {
                let text = group.join(" ");
                if i > 0 {
                    format!(" {text}")
                } else {
                    text
                }
            })
            .collect()
    }

    fn usage(&self, completion_tokens: u64) -> serde_json::Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        });
        if self.cached_tokens > 0 {
            usage["prompt_tokens_details"] = json!({"cached_tokens": self.cached_tokens});
        }
        usage
    }

    /// Anthropic's usage: cached input is counted apart from `input_tokens`.
    fn anthropic_usage(&self, output_tokens: u64) -> serde_json::Value {
        let mut usage = json!({
            "input_tokens": self.prompt_tokens - self.cached_tokens.min(self.prompt_tokens),
            "output_tokens": output_tokens,
        });
        if self.cached_tokens > 0 {
            usage["cache_read_input_tokens"] = json!(self.cached_tokens);
        }
        usage
    }

    /// A non-streamed answer: a `chat.completion`, a `text_completion`, an embeddings list
    /// (one small deterministic vector per request), a Responses `response`, or an Anthropic
    /// `message`.
    pub fn completion(&self, id: &str, created: u64) -> Vec<u8> {
        if self.api == Api::CountTokens {
            return json!({"input_tokens": self.prompt_tokens})
                .to_string()
                .into_bytes();
        }
        if let (Some(tool), Dialect::Anthropic) = (&self.tool, self.dialect) {
            return self.anthropic_tool_message(tool, id);
        }
        match self.dialect {
            Dialect::Anthropic => return self.anthropic_message(id),
            Dialect::Responses => return self.response(id, created).to_string().into_bytes(),
            Dialect::OpenAi => {}
        }
        if let Some(tool) = &self.tool {
            return self.tool_completion(tool, id, created);
        }
        let words = self.answer_words();
        if self.api == Api::Embeddings {
            let seed = self.prompt.len() as u64;
            let vector: Vec<f64> = (0..8u64)
                .map(|i| ((seed * 31 + i * 17) % 97) as f64 / 97.0)
                .collect();
            let embedding = if self.base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            let body = json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
                "model": self.model,
                "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens},
            });
            return body.to_string().into_bytes();
        }
        if self.api == Api::Completions {
            let body = json!({
                "id": id,
                "object": "text_completion",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "text": words.join(" "), "finish_reason": "stop", "logprobs": null}],
                "usage": self.usage(words.len() as u64),
            });
            return body.to_string().into_bytes();
        }
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": words.join(" ")},
                "finish_reason": "stop",
            }],
            "usage": self.usage(words.len() as u64),
        });
        body.to_string().into_bytes()
    }

    /// The SSE events of a streamed answer, each a complete `data: ...\n\n` frame: a role
    /// chunk, one chunk per group of words (`chunks` groups, 0 = one per word), a finish
    /// chunk, a usage chunk when asked for, and `[DONE]`. Anthropic's and the Responses API's
    /// are named events instead: see [`MockRequest::anthropic_events`] and
    /// [`MockRequest::responses_events`].
    pub fn stream_events(&self, id: &str, created: u64, chunks: usize) -> Vec<Bytes> {
        if let (Some(tool), Dialect::Anthropic) = (&self.tool, self.dialect) {
            return self.anthropic_tool_events(tool, id);
        }
        match self.dialect {
            Dialect::Anthropic => return self.anthropic_events(id, chunks),
            Dialect::Responses => return self.responses_events(id, created, chunks),
            Dialect::OpenAi => {}
        }
        if let Some(tool) = &self.tool {
            return self.tool_stream(tool, id, created);
        }
        let words = self.answer_words();
        let text_api = self.api == Api::Completions;
        let object = if text_api {
            "text_completion"
        } else {
            "chat.completion.chunk"
        };
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            let choice = if text_api {
                json!({"index": 0, "text": delta["content"].as_str().unwrap_or(""), "finish_reason": finish})
            } else {
                json!({"index": 0, "delta": delta, "finish_reason": finish})
            };
            json!({
                "id": id,
                "object": object,
                "created": created,
                "model": self.model,
                "choices": [choice],
            })
        };
        let mut events = Vec::new();
        if !text_api {
            events.push(frame(&chunk(
                json!({"role": "assistant", "content": ""}),
                None,
            )));
        }
        for text in Self::text_groups(&words, chunks) {
            events.push(frame(&chunk(json!({"content": text}), None)));
        }
        events.push(frame(&chunk(json!({}), Some("stop"))));
        if self.include_usage {
            let usage = json!({
                "id": id,
                "object": object,
                "created": created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(words.len() as u64),
            });
            events.push(frame(&usage));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn stop_reason(cut: bool) -> &'static str {
        if cut {
            "max_tokens"
        } else {
            "end_turn"
        }
    }

    /// An Anthropic `message`: the answer as one text block, `usage` in input and output
    /// tokens, `stop_reason` `max_tokens` when `max_tokens` cut the answer, else `end_turn`.
    pub fn anthropic_message(&self, id: &str) -> Vec<u8> {
        let (words, cut) = self.answer();
        json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": words.join(" ")}],
            "stop_reason": Self::stop_reason(cut),
            "stop_sequence": null,
            "usage": self.anthropic_usage(words.len() as u64),
        })
        .to_string()
        .into_bytes()
    }

    /// Anthropic's stream, each a complete `event: NAME\ndata: JSON\n\n` frame:
    /// `message_start`, `content_block_start`, `ping`, one `content_block_delta` per group of
    /// words (as [`MockRequest::stream_events`]), `content_block_stop`, `message_delta` (stop
    /// reason and output tokens), `message_stop`.
    pub fn anthropic_events(&self, id: &str, chunks: usize) -> Vec<Bytes> {
        let (words, cut) = self.answer();
        let deltas: Vec<_> = Self::text_groups(&words, chunks)
            .into_iter()
            .map(|text| json!({"type": "text_delta", "text": text}))
            .collect();
        self.anthropic_block_stream(
            id,
            json!({"type": "text", "text": ""}),
            true,
            &deltas,
            Self::stop_reason(cut),
            words.len() as u64,
        )
    }
}

/// The Anthropic APIs are parsed by [`MockRequest::anthropic`].
fn unreachable_api(api: Api) -> Result<(String, u64), String> {
    Err(format!("/v1/{} is not an OpenAI API", api.path()))
}

impl MockRequest {
    /// The Responses API's `response` object, final: one `message` output item holding the
    /// answer as `output_text`, `usage` in input and output tokens. `status` is `incomplete`
    /// (reason `max_output_tokens`) when `max_output_tokens` cut the answer, else `completed`.
    pub fn response(&self, id: &str, created: u64) -> serde_json::Value {
        let (words, cut) = self.answer();
        let status = if cut { "incomplete" } else { "completed" };
        let item = self.response_message(id, &words.join(" "), status);
        let usage = json!({
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": words.len(),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt_tokens + words.len() as u64,
        });
        let mut response = self.response_envelope(id, created, status);
        response["output"] = json!([item]);
        response["usage"] = usage;
        if cut {
            response["incomplete_details"] = json!({"reason": "max_output_tokens"});
        }
        response
    }

    /// A `response` object without output or usage, in `status`.
    fn response_envelope(&self, id: &str, created: u64, status: &str) -> serde_json::Value {
        json!({
            "id": id,
            "object": "response",
            "created_at": created,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "max_output_tokens": self.max_tokens,
            "model": self.model,
            "output": [],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": null,
            "user": null,
            "metadata": {},
        })
    }

    /// The answer's `message` output item (empty while in progress).
    fn response_message(&self, id: &str, text: &str, status: &str) -> serde_json::Value {
        let content = if status == "in_progress" {
            json!([])
        } else {
            json!([Self::output_text(text)])
        };
        json!({
            "id": format!("msg_{id}"),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    fn output_text(text: &str) -> serde_json::Value {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    }

    /// The Responses API's stream, each a complete `event: TYPE\ndata: JSON\n\n` frame with
    /// its `sequence_number`: `response.created`, `response.in_progress`,
    /// `response.output_item.added`, `response.content_part.added`, one
    /// `response.output_text.delta` per group of words (as [`MockRequest::stream_events`]),
    /// `response.output_text.done`, `response.content_part.done`, `response.output_item.done`
    /// and `response.completed` with the usage (`response.incomplete` when `max_output_tokens`
    /// cut the answer).
    pub fn responses_events(&self, id: &str, created: u64, chunks: usize) -> Vec<Bytes> {
        let (words, _) = self.answer();
        let text = words.join(" ");
        let last = self.response(id, created);
        let status = last["status"].as_str().unwrap_or("completed").to_owned();
        let item_id = format!("msg_{id}");
        let start = self.response_envelope(id, created, "in_progress");
        let position = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
        let with = |mut fields: serde_json::Value, extra: serde_json::Value| {
            if let (Some(fields), Some(extra)) = (fields.as_object_mut(), extra.as_object()) {
                fields.extend(extra.clone());
            }
            fields
        };
        let mut bodies = vec![
            json!({"type": "response.created", "response": start}),
            json!({"type": "response.in_progress", "response": start}),
            json!({"type": "response.output_item.added", "output_index": 0,
                "item": self.response_message(id, "", "in_progress")}),
            with(
                json!({"type": "response.content_part.added", "part": Self::output_text("")}),
                position.clone(),
            ),
        ];
        for delta in Self::text_groups(&words, chunks) {
            bodies.push(with(
                json!({"type": "response.output_text.delta", "delta": delta, "logprobs": []}),
                position.clone(),
            ));
        }
        bodies.push(with(
            json!({"type": "response.output_text.done", "text": text, "logprobs": []}),
            position.clone(),
        ));
        bodies.push(with(
            json!({"type": "response.content_part.done", "part": Self::output_text(&text)}),
            position,
        ));
        bodies.push(
            json!({"type": "response.output_item.done", "output_index": 0,
            "item": last["output"][0]}),
        );
        bodies.push(json!({"type": format!("response.{status}"), "response": last}));
        bodies
            .into_iter()
            .enumerate()
            .map(|(n, mut body)| {
                body["sequence_number"] = json!(n);
                let kind = body["type"].as_str().unwrap_or_default().to_owned();
                named_frame(&kind, &body)
            })
            .collect()
    }
}

/// The prompt of a Responses request and its tokens: `input` is a string (one user message)
/// or an array of input items, whose messages count as chat messages do (words plus 3); the
/// prompt is the last user message's text. `instructions` counts as one more message.
fn responses_prompt(
    input: Option<&serde_json::Value>,
    instructions: Option<&serde_json::Value>,
) -> Result<(String, u64), String> {
    let instructions = match instructions {
        Some(serde_json::Value::String(s)) => count_tokens(s) + 3,
        _ => 0,
    };
    match input {
        Some(serde_json::Value::String(s)) => Ok((s.clone(), count_tokens(s) + 3 + instructions)),
        Some(serde_json::Value::Array(items)) if !items.is_empty() => {
            let text = |item: &serde_json::Value| {
                let content = item.get("content").or_else(|| item.get("output")).cloned();
                text_of(&content)
            };
            let tokens = items
                .iter()
                .map(|i| count_tokens(&text(i)) + 3)
                .sum::<u64>();
            let prompt = items
                .iter()
                .rev()
                .find(|i| i.get("role").and_then(|r| r.as_str()) == Some("user"))
                .map(text)
                .unwrap_or_default();
            Ok((prompt, tokens + instructions))
        }
        Some(serde_json::Value::Array(_)) => Err("input must not be empty".into()),
        _ => Err("input is required".into()),
    }
}

fn frame(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn named_frame(event: &str, value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {value}\n\n"))
}

/// A `/v1/models` body listing `ids`.
pub fn models_body(ids: &[&str], created: u64, owned_by: &str) -> Vec<u8> {
    let data: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": owned_by}))
        .collect();
    json!({"object": "list", "data": data})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}],"stream":true,"stream_options":{"include_usage":true}}"#;

    #[test]
    fn parses_and_counts() {
        let req = MockRequest::parse(Api::Chat, BODY).unwrap();
        assert_eq!(req.prompt, "hello there world");
        assert_eq!(req.prompt_tokens, 2 + 3 + 3 + 3);
        assert!(req.stream && req.include_usage);
        assert_eq!(req.answer_words().join(" "), "You said: hello there world");
    }

    #[test]
    fn json_answer_carries_usage() {
        let req = MockRequest::parse(Api::Chat, BODY).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.completion("id1", 1)).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "You said: hello there world"
        );
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["usage"]["prompt_tokens"], 11);
    }

    #[test]
    fn base64_embeddings_are_the_float_vector_s_bytes() {
        let embed = |format: &str| {
            let body = format!(r#"{{"model":"e","input":"four words in here"{format}}}"#);
            let req = MockRequest::parse(Api::Embeddings, body.as_bytes()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&req.completion("id", 1)).unwrap();
            v["data"][0]["embedding"].clone()
        };
        let floats = embed("");
        let encoded = embed(r#","encoding_format":"base64""#);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let expected: Vec<f32> = floats
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn stream_reassembles_to_the_json_answer() {
        let req = MockRequest::parse(Api::Chat, BODY).unwrap();
        for chunks in [0, 1, 2, 3, 100] {
            let events = req.stream_events("id1", 1, chunks);
            let mut text = String::new();
            let mut usage = None;
            for e in &events {
                let line = std::str::from_utf8(e).unwrap();
                let data = line.strip_prefix("data: ").unwrap().trim_end();
                if data == "[DONE]" {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(c);
                }
                if !v["usage"].is_null() {
                    usage = Some(v["usage"]["completion_tokens"].clone());
                }
            }
            assert_eq!(text, "You said: hello there world", "chunks={chunks}");
            assert_eq!(usage, Some(json!(5)));
            assert_eq!(events.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        }
    }

    #[test]
    fn rejects_non_chat_bodies() {
        assert!(MockRequest::parse(Api::Chat, b"{}").is_err());
        assert!(MockRequest::parse(Api::Chat, br#"{"model":"m","messages":[]}"#).is_err());
    }

    const ANTHROPIC: &[u8] = br#"{"model":"claude-x","max_tokens":100,"system":[{"type":"text","text":"be brief"}],"messages":[{"role":"user","content":"first question"},{"role":"assistant","content":[{"type":"text","text":"an answer"}]},{"role":"user","content":[{"type":"text","text":"hello there"},{"type":"image","source":{}},{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"world"}]}]}],"stream":true}"#;

    /// The `(event, data)` pairs of Anthropic frames.
    fn named(events: &[Bytes]) -> Vec<(String, serde_json::Value)> {
        events
            .iter()
            .map(|e| {
                let text = std::str::from_utf8(e).unwrap();
                assert!(text.ends_with("\n\n"), "{text}");
                let (event, data) = text.trim_end().split_once('\n').unwrap();
                let event = event.strip_prefix("event: ").unwrap().to_owned();
                let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (event, data)
            })
            .collect()
    }

    #[test]
    fn parses_anthropic_bodies() {
        let req = MockRequest::parse_anthropic(ANTHROPIC).unwrap();
        assert_eq!(req.dialect, Dialect::Anthropic);
        assert_eq!(req.api, Api::Messages);
        assert_eq!(req.model, "claude-x");
        // The last user message's text blocks and tool result; the image is no text.
        assert_eq!(req.prompt, "hello there world");
        // system 2 + 3, messages (2 + 3) + (2 + 3) + (3 + 3).
        assert_eq!(req.prompt_tokens, 5 + 5 + 5 + 6);
        assert!(req.stream && !req.include_usage);
        assert_eq!(req.max_tokens, Some(100));

        let plain = MockRequest::parse_anthropic(
            br#"{"model":"m","max_tokens":5,"system":"one two","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(plain.prompt, "hi");
        assert_eq!(plain.prompt_tokens, (2 + 3) + (1 + 3));
        assert!(!plain.stream);
        let no_system = MockRequest::parse_anthropic(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(no_system.prompt_tokens, 4);
    }

    #[test]
    fn rejects_bad_anthropic_bodies() {
        let missing = MockRequest::parse_anthropic(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap_err();
        assert!(missing.contains("max_tokens"), "{missing}");
        assert!(
            MockRequest::parse_anthropic(br#"{"model":"m","max_tokens":5,"messages":[]}"#).is_err()
        );
        assert!(MockRequest::parse_anthropic(br#"{"max_tokens":5,"messages":[]}"#).is_err());
        assert!(MockRequest::parse_anthropic(b"not json").is_err());
    }

    #[test]
    fn anthropic_message_shape() {
        let req = MockRequest::parse_anthropic(ANTHROPIC).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&req.completion("msg_mock_0", 1)).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "msg_mock_0",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [{"type": "text", "text": "You said: hello there world"}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 21, "output_tokens": 5},
            })
        );

        let cut = MockRequest {
            max_tokens: Some(3),
            ..req
        };
        let v: serde_json::Value = serde_json::from_slice(&cut.anthropic_message("m1")).unwrap();
        assert_eq!(v["content"][0]["text"], "You said: hello");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["output_tokens"], 3);
    }

    #[test]
    fn anthropic_stream_shape() {
        let req = MockRequest::parse_anthropic(ANTHROPIC).unwrap();
        for chunks in [0, 1, 2, 3, 100] {
            let events = named(&req.stream_events("msg_mock_0", 1, chunks));
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
            let deltas = if chunks == 0 { 5 } else { chunks.min(5) };
            let mut expected = vec!["message_start", "content_block_start", "ping"];
            expected.extend(std::iter::repeat_n("content_block_delta", deltas));
            expected.extend(["content_block_stop", "message_delta", "message_stop"]);
            assert_eq!(names, expected, "chunks={chunks}");
            // Every data carries its event's name as `type`.
            for (name, data) in &events {
                assert_eq!(data["type"], name.as_str());
            }
            let start = &events[0].1["message"];
            assert_eq!(start["id"], "msg_mock_0");
            assert_eq!(start["content"], json!([]));
            assert_eq!(start["stop_reason"], json!(null));
            assert_eq!(
                start["usage"],
                json!({"input_tokens": 21, "output_tokens": 1})
            );
            assert_eq!(
                events[1].1["content_block"],
                json!({"type": "text", "text": ""})
            );
            let text: String = events
                .iter()
                .filter(|(n, _)| n == "content_block_delta")
                .map(|(_, d)| {
                    assert_eq!(d["delta"]["type"], "text_delta");
                    d["delta"]["text"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(text, "You said: hello there world", "chunks={chunks}");
            let delta = &events[events.len() - 2].1;
            assert_eq!(
                delta["delta"],
                json!({"stop_reason": "end_turn", "stop_sequence": null})
            );
            assert_eq!(delta["usage"], json!({"output_tokens": 5}));
        }
    }

    /// With tools offered and the user's turn last, the mock calls the first tool — whole
    /// and streamed, in both dialects — and after the tool's result it answers about it.
    #[test]
    fn tools_are_called_then_answered() {
        let openai = br#"{"model":"m","messages":[{"role":"user","content":"weather in Paris"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let req = MockRequest::parse(Api::Chat, openai).unwrap();
        assert_eq!(req.tool.as_deref(), Some("get_weather"));
        let v: serde_json::Value = serde_json::from_slice(&req.completion("c1", 1)).unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(
            call["function"]["arguments"],
            r#"{"query":"weather in Paris"}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let arguments: String = req
            .stream_events("c1", 1, 0)
            .iter()
            .filter_map(|e| {
                let data = std::str::from_utf8(e)
                    .unwrap()
                    .strip_prefix("data: ")?
                    .trim();
                let v: serde_json::Value = serde_json::from_str(data).ok()?;
                v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(arguments, r#"{"query":"weather in Paris"}"#);

        let answered = br#"{"model":"m","messages":[{"role":"user","content":"weather in Paris"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}"#;
        let req = MockRequest::parse(Api::Chat, answered).unwrap();
        assert_eq!((req.tool.as_deref(), req.prompt.as_str()), (None, "sunny"));

        let anthropic = br#"{"model":"c","max_tokens":50,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather in Paris"}]}"#;
        let req = MockRequest::parse(Api::Messages, anthropic).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.completion("msg_1", 1)).unwrap();
        assert_eq!(v["content"][0]["type"], "tool_use");
        assert_eq!(v["content"][0]["input"]["query"], "weather in Paris");
        assert_eq!(v["stop_reason"], "tool_use");
        let partial: String = named(&req.stream_events("msg_1", 1, 0))
            .iter()
            .filter_map(|(_, v)| v["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(partial, r#"{"query":"weather in Paris"}"#);
        let result = br#"{"model":"c","max_tokens":50,"tools":[{"name":"get_weather","input_schema":{}}],"messages":[{"role":"user","content":"weather"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"}]}]}"#;
        let req = MockRequest::parse(Api::Messages, result).unwrap();
        assert_eq!((req.tool.as_deref(), req.prompt.as_str()), (None, "sunny"));
    }

    #[test]
    fn token_counts_need_no_max_tokens() {
        let req = MockRequest::parse(
            Api::CountTokens,
            br#"{"model":"c","messages":[{"role":"user","content":"four words right here"}]}"#,
        )
        .unwrap();
        assert_eq!(req.completion("x", 1), br#"{"input_tokens":7}"#);
        assert!(MockRequest::parse(
            Api::Messages,
            br#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#
        )
        .is_err());
    }

    const RESPONSES: &[u8] = br#"{"model":"r","instructions":"be brief","input":[{"role":"user","content":"first question"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"an answer"}]},{"role":"user","content":[{"type":"input_text","text":"hello there world"}]}],"stream":true}"#;

    #[test]
    fn parses_responses_bodies() {
        let req = MockRequest::parse(Api::Responses, RESPONSES).unwrap();
        assert_eq!(req.dialect, Dialect::Responses);
        assert_eq!(req.prompt, "hello there world");
        // instructions (2 + 3), then (2 + 3) + (2 + 3) + (3 + 3).
        assert_eq!(req.prompt_tokens, 5 + 5 + 5 + 6);
        assert!(req.stream && !req.include_usage);
        let plain = MockRequest::parse(
            Api::Responses,
            br#"{"model":"r","input":"say hi","max_output_tokens":3}"#,
        )
        .unwrap();
        assert_eq!((plain.prompt.as_str(), plain.prompt_tokens), ("say hi", 5));
        assert_eq!(plain.max_tokens, Some(3));
        for bad in [
            &br#"{"model":"r"}"#[..],
            br#"{"model":"r","input":[]}"#,
            br#"{"model":"r","input":3}"#,
        ] {
            assert!(MockRequest::parse(Api::Responses, bad).is_err());
        }
    }

    #[test]
    fn response_object_shape() {
        let req = MockRequest::parse(Api::Responses, RESPONSES).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.completion("resp_1", 7)).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], "r");
        assert_eq!(v["created_at"], 7);
        assert_eq!(
            v["output"],
            json!([{"id": "msg_resp_1", "type": "message", "status": "completed",
                "role": "assistant", "content": [{"type": "output_text",
                "text": "You said: hello there world", "annotations": [], "logprobs": []}]}])
        );
        assert_eq!(v["usage"]["input_tokens"], 21);
        assert_eq!(v["usage"]["output_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], 26);
        let cut = MockRequest {
            max_tokens: Some(2),
            ..req
        };
        let v = cut.response("resp_2", 7);
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["content"][0]["text"], "You said:");
    }

    #[test]
    fn responses_stream_shape() {
        let req = MockRequest::parse(Api::Responses, RESPONSES).unwrap();
        for chunks in [0, 1, 2, 100] {
            let events = named(&req.stream_events("resp_1", 1, chunks));
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
            let deltas = if chunks == 0 { 5 } else { chunks.min(5) };
            let mut expected = vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
            ];
            expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
            expected.extend([
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]);
            assert_eq!(names, expected, "chunks={chunks}");
            for (n, (name, data)) in events.iter().enumerate() {
                assert_eq!(data["type"], name.as_str());
                assert_eq!(data["sequence_number"], n);
            }
            let text: String = events
                .iter()
                .filter(|(n, _)| n == "response.output_text.delta")
                .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(text, "You said: hello there world", "chunks={chunks}");
            let (_, last) = events.last().unwrap();
            assert_eq!(last["response"], req.response("resp_1", 1));
            assert_eq!(events[0].1["response"]["usage"], json!(null));
        }
    }
}
