//! OpenAI chat messages → Anthropic turns (part of the request translation).
//!
//! Anthropic wants strictly alternating `user` / `assistant` turns starting with `user`, the
//! system prompt apart, tool results as `tool_result` blocks inside a user turn and tool calls
//! as `tool_use` blocks whose `input` is a parsed object. Each OpenAI message becomes a list of
//! content blocks; consecutive turns of the same role are merged (a `tool` message followed by
//! a `user` message is one Anthropic user turn). Images become `url` or `base64` sources.

use serde_json::{json, Value};

use super::{req_str, TranslateError};

/// One Anthropic turn being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Splits OpenAI messages into system texts and merged, alternating Anthropic turns.
pub(super) fn messages_to_turns(
    messages: &[Value],
) -> Result<(Vec<String>, Value), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = req_str(&msg["role"], &format!("{at}.role"))?;
        let (role, mut blocks) = match role {
            "system" | "developer" => {
                system.push(system_text(&msg["content"], &at)?);
                continue;
            }
            "user" => ("user", user_blocks(&msg["content"], &at)?),
            "assistant" => ("assistant", assistant_blocks(msg, &at)?),
            "tool" => ("user", vec![tool_result(msg, &at)?]),
            other => {
                return Err(TranslateError::request(
                    format!("{at}.role"),
                    format!("unsupported role `{other}`"),
                ))
            }
        };
        // Anthropic refuses empty text blocks; a message left with nothing is skipped, and
        // its neighbours merge if they share a role.
        blocks.retain(|b| !(b["type"] == "text" && b["text"] == ""));
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    match turns.first() {
        None => Err(TranslateError::request(
            "messages",
            "at least one user message is required",
        )),
        Some(t) if t.role != "user" => Err(TranslateError::request(
            "messages",
            "the first message after the system prompt must be from the user",
        )),
        Some(_) => Ok((system, turns_to_json(turns))),
    }
}

/// A turn's content: a plain string when it is one text block, as Anthropic's own examples
/// write it; blocks otherwise.
fn turns_to_json(turns: Vec<Turn>) -> Value {
    turns
        .into_iter()
        .map(|t| {
            let content = match t.blocks.as_slice() {
                [only]
                    if only["type"] == "text" && only.as_object().is_some_and(|o| o.len() == 2) =>
                {
                    only["text"].clone()
                }
                _ => Value::Array(t.blocks),
            };
            json!({"role": t.role, "content": content})
        })
        .collect()
}

/// A system or developer message's text: a string or an array of text parts.
fn system_text(content: &Value, at: &str) -> Result<String, TranslateError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let field = format!("{at}.content[{j}]");
                if part["type"] != "text" {
                    return Err(TranslateError::request(field, "system parts must be text"));
                }
                texts.push(req_str(&part["text"], &format!("{field}.text"))?.to_owned());
            }
            Ok(texts.join("\n"))
        }
        _ => Err(TranslateError::request(
            format!("{at}.content"),
            "expected a string or an array of text parts",
        )),
    }
}

/// A user message's content: a string, or text and image parts.
fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let field = format!("{at}.content[{j}]");
                match part["type"].as_str() {
                    Some("text") => Ok(json!({
                        "type": "text",
                        "text": req_str(&part["text"], &format!("{field}.text"))?,
                    })),
                    Some("image_url") => image_block(&part["image_url"], &field),
                    Some(other) => Err(TranslateError::request(
                        format!("{field}.type"),
                        format!("content part `{other}` is not supported by this provider"),
                    )),
                    None => Err(TranslateError::request(
                        format!("{field}.type"),
                        "expected a content part type",
                    )),
                }
            })
            .collect(),
        _ => Err(TranslateError::request(
            format!("{at}.content"),
            "expected a string or an array of content parts",
        )),
    }
}

/// `{"url": "https://…"}` → a URL image source; `{"url": "data:image/png;base64,…"}` → a
/// base64 source with its media type.
fn image_block(image: &Value, field: &str) -> Result<Value, TranslateError> {
    let url = req_str(&image["url"], &format!("{field}.image_url.url"))?;
    let Some(data) = url.strip_prefix("data:") else {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    };
    let bad = || {
        TranslateError::request(
            format!("{field}.image_url.url"),
            "expected a data URL of the form data:<media type>;base64,<data>",
        )
    };
    let (meta, payload) = data.split_once(',').ok_or_else(bad)?;
    let media_type = meta.strip_suffix(";base64").ok_or_else(bad)?;
    if media_type.is_empty() {
        return Err(bad());
    }
    Ok(json!({
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }))
}

/// An assistant message's text (string or text/refusal parts) and its `tool_calls`.
fn assistant_blocks(msg: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match &msg["content"] {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => blocks.push(json!({"type": "text", "text": s})),
        Value::Array(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let field = format!("{at}.content[{j}]");
                let key = match part["type"].as_str() {
                    Some("text") => "text",
                    Some("refusal") => "refusal",
                    _ => {
                        return Err(TranslateError::request(
                            format!("{field}.type"),
                            "assistant parts must be text or refusal",
                        ))
                    }
                };
                let text = req_str(&part[key], &format!("{field}.{key}"))?;
                blocks.push(json!({"type": "text", "text": text}));
            }
        }
        _ => {
            return Err(TranslateError::request(
                format!("{at}.content"),
                "expected a string, an array of parts or null",
            ))
        }
    }
    if let Some(calls) = msg.get("tool_calls").filter(|v| !v.is_null()) {
        let calls = calls.as_array().ok_or_else(|| {
            TranslateError::request(format!("{at}.tool_calls"), "expected an array")
        })?;
        for (k, call) in calls.iter().enumerate() {
            blocks.push(tool_use(call, &format!("{at}.tool_calls[{k}]"))?);
        }
    }
    Ok(blocks)
}

/// `{id, type: "function", function: {name, arguments: "<json>"}}` → a `tool_use` block.
fn tool_use(call: &Value, at: &str) -> Result<Value, TranslateError> {
    if !matches!(call.get("type"), None | Some(Value::Null)) && call["type"] != "function" {
        return Err(TranslateError::request(
            format!("{at}.type"),
            "only function tool calls are supported",
        ));
    }
    let id = req_str(&call["id"], &format!("{at}.id"))?;
    let name = req_str(&call["function"]["name"], &format!("{at}.function.name"))?;
    let field = format!("{at}.function.arguments");
    let args = req_str(&call["function"]["arguments"], &field)?;
    let input: Value = if args.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(args).map_err(|e| {
            TranslateError::request(field.clone(), format!("arguments are not valid JSON: {e}"))
        })?
    };
    if !input.is_object() {
        return Err(TranslateError::request(
            field,
            "arguments must be a JSON object",
        ));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// `{role: "tool", tool_call_id, content}` → a `tool_result` block.
fn tool_result(msg: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = req_str(&msg["tool_call_id"], &format!("{at}.tool_call_id"))?;
    let content = match &msg["content"] {
        Value::String(s) => Value::from(s.clone()),
        Value::Array(_) => Value::Array(user_blocks(&msg["content"], at)?),
        _ => {
            return Err(TranslateError::request(
                format!("{at}.content"),
                "expected a string or an array of parts",
            ))
        }
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::testing::{refused, translate};
    use super::*;

    /// OpenAI reference, "Image input" example (URL) plus a base64 data URL as in OpenAI's
    /// vision guide; Anthropic's vision guide gives the `url` and `base64` sources.
    #[test]
    fn images_by_url_and_data_url() {
        let out = translate(json!({
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]}]
        }));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is in this image?"},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ])
        );
        let (field, _) = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}));
        assert_eq!(field, "messages[0].content[0].image_url.url");
    }

    #[test]
    fn invalid_tool_arguments_are_a_clear_400() {
        let req = |args: &str| {
            json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": args}}]}
            ]})
        };
        let (field, reason) = refused(req("{\"a\": 1"));
        assert_eq!(field, "messages[1].tool_calls[0].function.arguments");
        assert!(
            reason.starts_with("arguments are not valid JSON"),
            "{reason}"
        );
        assert_eq!(refused(req("[1,2]")).1, "arguments must be a JSON object");
        let out = translate(req(""));
        assert_eq!(out["messages"][1]["content"][0]["input"], json!({}));
    }

    #[test]
    fn empty_texts_are_dropped_and_neighbours_merge() {
        let out = translate(json!({"messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"}
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"}
            ])
        );
        assert_eq!(
            refused(json!({"messages": [{"role": "user", "content": ""}]})).0,
            "messages"
        );
    }

    #[test]
    fn same_role_turns_merge_and_systems_join() {
        let out = translate(json!({"messages": [
            {"role": "system", "content": "A"},
            {"role": "user", "content": "one"},
            {"role": "system", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "x"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
        ]}));
        assert_eq!(out["system"], "A\n\nB");
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "no"}]}
            ])
        );
    }
}
