//! Anthropic Messages request → OpenAI chat request (the `/v1/messages` ingress in front of
//! an OpenAI-compatible provider).
//!
//! The inverse of [`super::request`]: `system` becomes a leading system message, each
//! `tool_result` block becomes a `role: tool` message placed before the rest of its user
//! turn, `tool_use` blocks become `tool_calls` with `input` serialized to `arguments`, and
//! `max_tokens` becomes `max_completion_tokens` (the field OpenAI documents; `max_tokens` is
//! deprecated there). A turn with several text blocks keeps them as separate text parts, so
//! that OpenAI → Anthropic → OpenAI keeps every message's text exactly; the round trip is
//! property-tested at the bottom. Anthropic-only fields (`top_k`, `thinking`, cache control)
//! are dropped; server tools and unknown block types are refused.

use serde_json::{json, Map, Value};

use super::{req_str, TranslateError};

/// Translates an Anthropic Messages request into an OpenAI chat completions request.
pub fn anthropic_to_openai_request(req: &Value) -> Result<Value, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::request("body", "expected a JSON object"))?;
    let mut out = Map::new();
    if let Some(model) = obj.get("model") {
        out.insert("model".into(), Value::from(req_str(model, "model")?));
    }
    let mut messages = Vec::new();
    match obj.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let parts = text_parts(blocks, "system")?;
            messages.push(json!({"role": "system", "content": parts}));
        }
        Some(_) => {
            return Err(TranslateError::request(
                "system",
                "expected a string or blocks",
            ))
        }
    }
    let turns = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::request("messages", "expected an array of messages"))?;
    for (i, turn) in turns.iter().enumerate() {
        let at = format!("messages[{i}]");
        match req_str(&turn["role"], &format!("{at}.role"))? {
            "user" => user_turn(&turn["content"], &at, &mut messages)?,
            "assistant" => messages.push(assistant_turn(&turn["content"], &at)?),
            other => {
                return Err(TranslateError::request(
                    format!("{at}.role"),
                    format!("unsupported role `{other}`"),
                ))
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(n) = obj.get("max_tokens").filter(|v| !v.is_null()) {
        let n = n
            .as_u64()
            .ok_or_else(|| TranslateError::request("max_tokens", "expected a positive integer"))?;
        out.insert("max_completion_tokens".into(), Value::from(n));
    }
    if let Some(stops) = obj.get("stop_sequences").filter(|v| !v.is_null()) {
        if !stops.is_array() {
            return Err(TranslateError::request(
                "stop_sequences",
                "expected an array",
            ));
        }
        out.insert("stop".into(), stops.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(TranslateError::request(key, "expected a number"));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
        // Anthropic streams always report usage; ask the OpenAI provider for it too.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = obj.get("metadata").and_then(|m| m.get("user_id")) {
        out.insert(
            "user".into(),
            Value::from(req_str(user, "metadata.user_id")?),
        );
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        out.insert("tools".into(), tools_to_openai(tools)?);
    }
    if let Some(choice) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        let (choice, parallel_off) = tool_choice_to_openai(choice)?;
        out.insert("tool_choice".into(), choice);
        if parallel_off {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(Value::Object(out))
}

/// Text blocks → OpenAI text parts.
fn text_parts(blocks: &[Value], at: &str) -> Result<Vec<Value>, TranslateError> {
    blocks
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let field = format!("{at}[{j}]");
            if b["type"] != "text" {
                return Err(TranslateError::request(
                    format!("{field}.type"),
                    "expected text",
                ));
            }
            let text = req_str(&b["text"], &format!("{field}.text"))?;
            Ok(json!({"type": "text", "text": text}))
        })
        .collect()
}

/// A user turn: `tool_result` blocks become tool messages, the rest one user message.
fn user_turn(content: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(TranslateError::request(
                format!("{at}.content"),
                "expected a string or an array of blocks",
            ))
        }
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let field = format!("{at}.content[{j}]");
        match block["type"].as_str() {
            Some("text") => {
                let text = req_str(&block["text"], &format!("{field}.text"))?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => parts.push(image_part(&block["source"], &field)?),
            Some("tool_result") => {
                let id = req_str(&block["tool_use_id"], &format!("{field}.tool_use_id"))?;
                let content = match &block["content"] {
                    Value::Null => Value::from(""),
                    Value::String(s) => Value::from(s.clone()),
                    Value::Array(inner) => {
                        Value::Array(text_parts(inner, &format!("{field}.content"))?)
                    }
                    _ => {
                        return Err(TranslateError::request(
                            format!("{field}.content"),
                            "expected a string or text blocks",
                        ))
                    }
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            other => {
                return Err(TranslateError::request(
                    format!("{field}.type"),
                    format!("block `{}` is not supported here", other.unwrap_or("?")),
                ))
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// `{"type": "url", url}` or `{"type": "base64", media_type, data}` → an `image_url` part.
fn image_part(source: &Value, field: &str) -> Result<Value, TranslateError> {
    let url = match source["type"].as_str() {
        Some("url") => req_str(&source["url"], &format!("{field}.source.url"))?.to_owned(),
        Some("base64") => format!(
            "data:{};base64,{}",
            req_str(&source["media_type"], &format!("{field}.source.media_type"))?,
            req_str(&source["data"], &format!("{field}.source.data"))?
        ),
        _ => {
            return Err(TranslateError::request(
                format!("{field}.source.type"),
                "expected a url or base64 image source",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// An assistant turn: text blocks (one → a string, several → text parts) and `tool_use`.
fn assistant_turn(content: &Value, at: &str) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(blocks) => blocks,
        _ => {
            return Err(TranslateError::request(
                format!("{at}.content"),
                "expected a string or an array of blocks",
            ))
        }
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let field = format!("{at}.content[{j}]");
        match block["type"].as_str() {
            Some("text") => texts.push(req_str(&block["text"], &format!("{field}.text"))?),
            Some("tool_use") => calls.push(json!({
                "id": req_str(&block["id"], &format!("{field}.id"))?,
                "type": "function",
                "function": {
                    "name": req_str(&block["name"], &format!("{field}.name"))?,
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            Some("thinking" | "redacted_thinking") => {}
            other => {
                return Err(TranslateError::request(
                    format!("{field}.type"),
                    format!("block `{}` is not supported here", other.unwrap_or("?")),
                ))
            }
        }
    }
    let content = match texts.as_slice() {
        [] => Value::Null,
        [one] => Value::from(*one),
        many => many
            .iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect(),
    };
    let mut msg = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(msg)
}

/// `{name, description, input_schema}` → function tools; server tools are refused.
fn tools_to_openai(tools: &Value) -> Result<Value, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::request("tools", "expected an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            if !matches!(t["type"].as_str(), None | Some("custom")) {
                return Err(TranslateError::request(
                    format!("{at}.type"),
                    "server tools are not supported by this provider",
                ));
            }
            let mut f = Map::new();
            f.insert(
                "name".into(),
                Value::from(req_str(&t["name"], &format!("{at}.name"))?),
            );
            if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
                f.insert(
                    "description".into(),
                    Value::from(req_str(d, &format!("{at}.description"))?),
                );
            }
            f.insert("parameters".into(), t["input_schema"].clone());
            Ok(json!({"type": "function", "function": f}))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// Anthropic `tool_choice` → OpenAI's, and whether parallel tool use was disabled.
fn tool_choice_to_openai(choice: &Value) -> Result<(Value, bool), TranslateError> {
    let parallel_off = choice["disable_parallel_tool_use"] == Value::Bool(true);
    let out = match choice["type"].as_str() {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => json!({"type": "function", "function": {
            "name": req_str(&choice["name"], "tool_choice.name")?}}),
        _ => {
            return Err(TranslateError::request(
                "tool_choice.type",
                "expected auto, any, none or tool",
            ))
        }
    };
    Ok((out, parallel_off))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::request::openai_to_anthropic;
    use super::*;
    use proptest::prelude::*;

    /// Anthropic "Messages" reference, the request example, with the tool use guide's
    /// get_weather tool, a `tool_use` turn and its `tool_result`.
    #[test]
    fn reference_request_with_tools() {
        let out = anthropic_to_openai_request(&json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1024,
            "system": "Be brief.",
            "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                    "required": ["location"]}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "I'll check."},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                     "input": {"location": "San Francisco, CA"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                     "content": "15 degrees"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}]}
            ],
            "stream": true, "top_k": 5, "stop_sequences": ["\n\nHuman:"]
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-20250514",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What's the weather like in San Francisco?"},
                    {"role": "assistant", "content": "I'll check.", "tool_calls": [{
                        "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                    {"role": "user", "content": [{"type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}
                ],
                "max_completion_tokens": 1024,
                "stop": ["\n\nHuman:"],
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {"name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                        "required": ["location"]}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false
            })
        );
    }

    #[test]
    fn server_tools_and_unknown_blocks_are_refused() {
        let base = |tools: Value, content: Value| json!({"max_tokens": 1, "tools": tools, "messages": [{"role": "user", "content": content}]});
        let err = |v: Value| match anthropic_to_openai_request(&v).unwrap_err() {
            TranslateError::Request { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(base(
                json!([{"type": "web_search_20250305", "name": "web_search"}]),
                json!("x")
            )),
            "tools[0].type"
        );
        assert_eq!(
            err(base(json!([]), json!([{"type": "document", "source": {}}]))),
            "messages[0].content[0].type"
        );
    }

    /// A tool call and its result survive OpenAI → Anthropic → OpenAI exactly.
    #[test]
    fn tool_round_trip() {
        let req = json!({"model": "m", "max_completion_tokens": 10, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]});
        let there = openai_to_anthropic(&req, 99).unwrap().body;
        assert_eq!(anthropic_to_openai_request(&there).unwrap(), req);
    }

    /// One message's text parts, whatever the content's shape.
    fn texts(content: &Value) -> Vec<String> {
        match content {
            Value::String(s) => vec![s.clone()],
            Value::Array(parts) => parts
                .iter()
                .map(|p| p["text"].as_str().unwrap().to_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The meaning of a text-only OpenAI request: system text, turns merged by role into
    /// their texts, limits, stops as a list, sampling, tools.
    fn normalize(req: &Value) -> Value {
        let mut system = Vec::new();
        let mut turns: Vec<(String, Vec<String>)> = Vec::new();
        for m in req["messages"].as_array().unwrap() {
            let role = m["role"].as_str().unwrap();
            if role == "system" || role == "developer" {
                system.push(texts(&m["content"]).join("\n"));
                continue;
            }
            match turns.last_mut() {
                Some((r, t)) if r == role => t.extend(texts(&m["content"])),
                _ => turns.push((role.to_owned(), texts(&m["content"]))),
            }
        }
        let stop = match &req["stop"] {
            Value::String(s) => json!([s]),
            other => other.clone(),
        };
        let max = req
            .get("max_completion_tokens")
            .or_else(|| req.get("max_tokens"))
            .cloned()
            .unwrap_or(json!(4096));
        json!({
            "system": system.join("\n\n"),
            "turns": turns.iter().map(|(r, t)| json!([r, t])).collect::<Vec<_>>(),
            "max": max,
            "stop": stop,
            "temperature": req["temperature"],
            "top_p": req["top_p"],
            "tools": req["tools"],
            "tool_choice": req["tool_choice"],
        })
    }

    fn request() -> impl Strategy<Value = Value> {
        let text = "\\PC{1,12}";
        let message = (prop::sample::select(vec!["user", "assistant"]), text)
            .prop_map(|(role, t)| json!({"role": role, "content": t}));
        let tool = ("[a-z_]{1,10}", proptest::option::of(text)).prop_map(|(name, desc)| {
            let mut f = json!({"name": name, "parameters": {"type": "object",
                    "properties": {"q": {"type": "string"}}}});
            if let Some(d) = desc {
                f["description"] = json!(d);
            }
            json!({"type": "function", "function": f})
        });
        (
            proptest::option::of(text),
            text,
            prop::collection::vec(message, 0..8),
            proptest::option::of(1u32..100_000),
            proptest::option::of(prop::collection::vec(text, 1..3)),
            proptest::option::of(0.0f64..2.0),
            proptest::option::of(0.0f64..1.0),
            prop::collection::vec(tool, 0..3),
            proptest::option::of(prop::sample::select(vec!["auto", "none", "required"])),
        )
            .prop_map(
                |(system, first, rest, max, stop, temp, top_p, tools, choice)| {
                    let mut messages = Vec::new();
                    if let Some(s) = system {
                        messages.push(json!({"role": "system", "content": s}));
                    }
                    messages.push(json!({"role": "user", "content": first}));
                    messages.extend(rest);
                    let mut req = json!({"model": "m", "messages": messages});
                    if let Some(m) = max {
                        req["max_tokens"] = json!(m);
                    }
                    match stop.as_deref() {
                        Some([one]) => req["stop"] = json!(one),
                        Some(many) => req["stop"] = json!(many),
                        None => {}
                    }
                    if let Some(t) = temp {
                        req["temperature"] = json!(t);
                    }
                    if let Some(p) = top_p {
                        req["top_p"] = json!(p);
                    }
                    if !tools.is_empty() {
                        req["tools"] = json!(tools);
                        if let Some(c) = choice {
                            req["tool_choice"] = json!(c);
                        }
                    }
                    req
                },
            )
    }

    proptest! {
        #[test]
        fn openai_request_survives_the_round_trip(req in request()) {
            let there = openai_to_anthropic(&req, 4096).unwrap().body;
            // Anthropic's rule: strictly alternating roles, starting with the user.
            let roles: Vec<&str> = there["messages"].as_array().unwrap().iter()
                .map(|m| m["role"].as_str().unwrap()).collect();
            prop_assert_eq!(roles[0], "user");
            prop_assert!(roles.windows(2).all(|w| w[0] != w[1]));
            let back = anthropic_to_openai_request(&there).unwrap();
            prop_assert_eq!(normalize(&back), normalize(&req));
        }

        #[test]
        fn forward_translation_never_panics(
            roles in prop::collection::vec(
                prop::sample::select(vec!["system", "developer", "user", "assistant", "tool", "x"]),
                0..10),
        ) {
            let messages: Vec<Value> = roles.iter()
                .map(|r| json!({"role": r, "content": "t", "tool_call_id": "c"}))
                .collect();
            if let Ok(t) = openai_to_anthropic(&json!({"messages": messages}), 1) {
                let roles: Vec<&str> = t.body["messages"].as_array().unwrap().iter()
                    .map(|m| m["role"].as_str().unwrap()).collect();
                prop_assert_eq!(roles[0], "user");
                prop_assert!(roles.windows(2).all(|w| w[0] != w[1]));
            }
        }
    }
}
