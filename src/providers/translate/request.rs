//! OpenAI chat request → Anthropic Messages request.
//!
//! Anthropic wants the system prompt at the top level, strictly alternating `user` /
//! `assistant` turns starting with `user`, tool results as `tool_result` blocks inside a user
//! turn, tool calls as `tool_use` blocks with a parsed `input` object, and a mandatory
//! `max_tokens`. The messages are converted in the sibling `messages` module (system lifted
//! out, same-role turns merged); this file handles the rest of the body. Documented
//! OpenAI fields Anthropic cannot express (`frequency_penalty`, `logprobs`, `seed`, …) are
//! ignored; shapes that are not OpenAI's, or that would change the answer's meaning
//! (`n > 1`, a conversation opening with the assistant), are refused with a typed error.
//! Values pass unchanged: a `temperature` above Anthropic's 1.0 gets Anthropic's own 400,
//! which is the request's fault. Known gaps: `response_format` and `reasoning_effort` are
//! ignored (no structured-output or thinking mapping yet).

use serde_json::{json, Map, Value};

use super::messages::messages_to_turns;
use super::{req_str, TranslateError};

/// A translated request, with the two facts the caller needs to read the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicRequest {
    /// The Anthropic Messages body; `model` is the client's, for the caller to rewrite.
    pub body: Value,
    /// `stream: true` was asked.
    pub stream: bool,
    /// `stream_options.include_usage: true` was asked: end the stream with a usage chunk.
    pub include_usage: bool,
}

/// Translates raw request bytes; see [`openai_to_anthropic`].
pub fn openai_to_anthropic_bytes(
    body: &[u8],
    default_max_tokens: u32,
) -> Result<AnthropicRequest, TranslateError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| TranslateError::NotJson(e.to_string()))?;
    openai_to_anthropic(&value, default_max_tokens)
}

/// Translates an OpenAI chat completions request into an Anthropic Messages request.
/// `default_max_tokens` applies when the client set neither `max_completion_tokens` nor
/// `max_tokens` (Anthropic requires one).
pub fn openai_to_anthropic(
    req: &Value,
    default_max_tokens: u32,
) -> Result<AnthropicRequest, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::request("body", "expected a JSON object"))?;
    let mut out = Map::new();
    if let Some(model) = obj.get("model") {
        out.insert("model".into(), Value::from(req_str(model, "model")?));
    }

    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::request("messages", "expected an array of messages"))?;
    let (system, turns) = messages_to_turns(messages)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::from(system.join("\n\n")));
    }
    out.insert("messages".into(), turns);

    let max_tokens = match obj
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| obj.get("max_tokens").filter(|v| !v.is_null()))
    {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| TranslateError::request("max_tokens", "expected a positive integer"))?,
        None => u64::from(default_max_tokens),
    };
    out.insert("max_tokens".into(), Value::from(max_tokens));

    match obj.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(items)) => {
            let stops = items
                .iter()
                .enumerate()
                .map(|(i, s)| req_str(s, &format!("stop[{i}]")).map(Value::from))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("stop_sequences".into(), Value::Array(stops));
        }
        Some(_) => {
            return Err(TranslateError::request(
                "stop",
                "expected a string or array",
            ))
        }
    }
    for key in ["temperature", "top_p"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.is_number() => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => return Err(TranslateError::request(key, "expected a number")),
        }
    }
    if let Some(n) = obj.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(TranslateError::request("n", "only n = 1 is supported"));
        }
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    let include_usage = stream
        && obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }

    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        out.insert("tools".into(), translate_tools(tools)?);
    }
    let parallel_off = obj.get("parallel_tool_calls") == Some(&Value::Bool(false));
    match obj.get("tool_choice").filter(|v| !v.is_null()) {
        Some(choice) => {
            let mut c = translate_tool_choice(choice)?;
            if parallel_off && c["type"] != "none" {
                c["disable_parallel_tool_use"] = Value::Bool(true);
            }
            out.insert("tool_choice".into(), c);
        }
        None if parallel_off && out.contains_key("tools") => {
            out.insert(
                "tool_choice".into(),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            );
        }
        None => {}
    }

    Ok(AnthropicRequest {
        body: Value::Object(out),
        stream,
        include_usage,
    })
}

/// `[{type: "function", function: {name, description, parameters}}]` → Anthropic tools.
fn translate_tools(tools: &Value) -> Result<Value, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::request("tools", "expected an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            if tool["type"] != "function" {
                return Err(TranslateError::request(
                    format!("{at}.type"),
                    "only function tools are supported",
                ));
            }
            let f = &tool["function"];
            let mut out = Map::new();
            let name = req_str(&f["name"], &format!("{at}.function.name"))?;
            out.insert("name".into(), Value::from(name));
            if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                let d = req_str(d, &format!("{at}.function.description"))?;
                out.insert("description".into(), Value::from(d));
            }
            let schema = match f.get("parameters") {
                None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                Some(p) if p.is_object() => p.clone(),
                Some(_) => {
                    return Err(TranslateError::request(
                        format!("{at}.function.parameters"),
                        "expected a JSON schema object",
                    ))
                }
            };
            out.insert("input_schema".into(), schema);
            Ok(Value::Object(out))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// `auto` / `none` / `required` / `{type: "function", function: {name}}`.
fn translate_tool_choice(choice: &Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            other => Err(TranslateError::request(
                "tool_choice",
                format!("unknown tool_choice `{other}`"),
            )),
        },
        Value::Object(o) if o.get("type") == Some(&Value::from("function")) => {
            let name = req_str(&choice["function"]["name"], "tool_choice.function.name")?;
            Ok(json!({"type": "tool", "name": name}))
        }
        _ => Err(TranslateError::request(
            "tool_choice",
            "expected auto, none, required or a named function",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testing::{refused, translate};
    use super::*;

    /// OpenAI API reference, "Create chat completion", the "Default" example: a developer
    /// prompt and a user message; Anthropic's "Messages" reference puts it in `system`.
    #[test]
    fn reference_default_example() {
        let out = translate(json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!"}
            ]
        }));
        assert_eq!(
            out,
            json!({
                "model": "gpt-4.1",
                "system": "You are a helpful assistant.",
                "messages": [{"role": "user", "content": "Hello!"}],
                "max_tokens": 1024
            })
        );
    }

    /// OpenAI reference, "Functions" example (get_current_weather) continued with the tool
    /// call and its result, as in OpenAI's function calling guide; Anthropic's tool use guide
    /// shows the `tool_use` / `tool_result` pair and `input_schema`.
    #[test]
    fn tools_calls_and_results() {
        let out = translate(json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "user", "content": "What's the weather like in Boston today?"},
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_abc123", "type": "function",
                    "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}
                }]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "72F and sunny"},
                {"role": "user", "content": "Thanks! And tomorrow?"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {"type": "object", "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                }, "required": ["location"]}
            }}],
            "tool_choice": "auto"
        }));
        assert_eq!(out["tools"][0]["name"], "get_current_weather");
        assert_eq!(
            out["tools"][0]["input_schema"]["required"],
            json!(["location"])
        );
        assert_eq!(out["tool_choice"], json!({"type": "auto"}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "What's the weather like in Boston today?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_abc123",
                    "name": "get_current_weather", "input": {"location": "Boston, MA"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_abc123", "content": "72F and sunny"},
                    {"type": "text", "text": "Thanks! And tomorrow?"}
                ]}
            ])
        );
    }

    #[test]
    fn tool_choice_variants_and_parallel_calls() {
        let choice = |c: Value| {
            let req = json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": c});
            translate(req)["tool_choice"].clone()
        };
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(choice(json!("required")), json!({"type": "any"}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": false}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            out["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            refused(json!({"messages": [{"role": "user", "content": "x"}],
            "tool_choice": "sometimes"}))
            .0,
            "tool_choice"
        );
    }

    #[test]
    fn sampling_limits_and_stream_flags() {
        let req = json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 50, "max_completion_tokens": 70, "stop": "END",
            "temperature": 0.2, "top_p": 0.9, "stream": true,
            "stream_options": {"include_usage": true}, "user": "u-1",
            "frequency_penalty": 0.5, "seed": 7, "logprobs": false
        });
        let t = openai_to_anthropic(&req, 1024).unwrap();
        assert!(t.stream && t.include_usage);
        assert_eq!(
            t.body,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 70, "stop_sequences": ["END"], "temperature": 0.2,
                "top_p": 0.9, "stream": true, "metadata": {"user_id": "u-1"}})
        );
        let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
            "max_tokens": 9, "stop": ["a", "b"]}));
        assert_eq!(out["max_tokens"], 9);
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        let plain = openai_to_anthropic(
            &json!({"messages": [{"role": "user", "content": "x"}],
            "stream_options": {"include_usage": true}}),
            1,
        )
        .unwrap();
        assert!(!plain.stream && !plain.include_usage);
    }

    #[test]
    fn unknown_shapes_are_typed_errors() {
        let cases = [
            (json!([1]), "body"),
            (json!({"model": "m"}), "messages"),
            (json!({"messages": []}), "messages"),
            (
                json!({"messages": [{"role": "system", "content": "s"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": "hi"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
                "n",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "stop": 3}),
                "stop",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
        ];
        for (req, field) in cases {
            assert_eq!(refused(req.clone()).0, field, "{req}");
        }
        assert!(matches!(
            openai_to_anthropic_bytes(b"{nope", 1),
            Err(TranslateError::NotJson(_))
        ));
    }
}
