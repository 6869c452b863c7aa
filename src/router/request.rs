//! The little the router reads from a client's chat request, and the one-field rewrites.
//!
//! Only `model`, `stream` and `stream_options` are parsed (borrowed, no copy of the rest);
//! the original bytes are forwarded when nothing must change. When the upstream model name
//! differs, or usage must be requested for a stream, the top-level object is re-emitted
//! field by field with every other value copied verbatim from the client's bytes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Api;
use crate::errors::ApiError;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// The output ceilings a client may declare (chat, completions and Messages; chat's
    /// newer name; the Responses API's): raw, so that a value an upstream would refuse is
    /// still the upstream's to refuse.
    #[serde(default, borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(default, borrow)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(default, borrow)]
    max_output_tokens: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// What routing needs from a chat request.
#[derive(Debug, PartialEq)]
pub struct ChatHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client's stream carries usage as the upstream wrote it: the client asked for the
    /// usage chunk, or the API always reports it ([`Api::reports_stream_usage`]). When false,
    /// the router asks for usage and cuts it back out.
    pub include_usage: bool,
    /// The most output tokens the client declared (`max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens`, the first that is a whole number): what a token limit reserves.
    pub max_output: Option<u64>,
}

/// Parses the head of a chat completion body, or a 400 that says what is wrong.
pub fn parse_head(body: &[u8]) -> Result<ChatHead<'_>, ApiError> {
    parse(Api::Chat, body)
}

/// Parses the head of a request body of `api`: its model, whether it streams, and the field
/// the API requires (`messages`, `prompt`, `input`); or a 400 that says what is wrong.
pub fn parse(api: Api, body: &[u8]) -> Result<ChatHead<'_>, ApiError> {
    // serde also reads a struct from an array (`["gpt-4o", []]`): only an object is a request.
    // Anything else that is not an object gets serde_json's own message below.
    if body.trim_ascii_start().first() == Some(&b'[') {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // JSON is UTF-8; serde_json checks only the strings it reads, and `rewrite` needs all.
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the request body is not valid UTF-8".into()))?;
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body is not valid JSON for /v1/{}: {e}",
            api.path()
        ))
    })?;
    let model = head
        .model
        .ok_or_else(|| ApiError::BadRequest("you must provide a model parameter".into()))?;
    let (name, field, arrays_only) = match api {
        Api::Chat | Api::Messages | Api::CountTokens => ("messages", head.messages, true),
        Api::Completions => ("prompt", head.prompt, false),
        Api::Embeddings | Api::Responses => ("input", head.input, false),
    };
    match field.map(|m| m.get().as_bytes().first()) {
        Some(Some(b'[')) => {}
        Some(Some(b'"')) if !arrays_only => {}
        Some(_) if arrays_only => {
            return Err(ApiError::BadRequest(format!("`{name}` must be an array")))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "`{name}` must be a string or an array"
            )))
        }
        None => {
            return Err(ApiError::BadRequest(format!(
                "missing required parameter: `{name}`"
            )))
        }
    }
    let max_output = [
        head.max_tokens,
        head.max_completion_tokens,
        head.max_output_tokens,
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.get().parse::<u64>().ok());
    Ok(ChatHead {
        model,
        max_output,
        stream: api.streams() && head.stream.unwrap_or(false),
        include_usage: api.reports_stream_usage()
            || head
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
    })
}

/// Rewrites `model` and/or turns on `stream_options.include_usage`; returns the original
/// bytes when neither is needed.
pub fn rewrite(body: &Bytes, model: Option<&str>, add_usage: bool) -> Bytes {
    if model.is_none() && !add_usage {
        return body.clone();
    }
    // The body already parsed as an object in `parse_head`, so this cannot fail in practice;
    // if it does, forward the original rather than invent a body.
    let Ok(ObjectFields(fields)) = serde_json::from_slice::<ObjectFields<'_>>(body) else {
        return body.clone();
    };
    let mut out = Vec::with_capacity(body.len() + 48);
    out.push(b'{');
    let mut first = true;
    let mut push = |out: &mut Vec<u8>, key: &str, value: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        // Keys are re-escaped; values are copied verbatim.
        out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
        out.push(b':');
        out.extend_from_slice(value);
    };
    let mut wrote_options = false;
    for Field(key, value) in &fields {
        match key.as_ref() {
            "model" if model.is_some() => {
                let name = serde_json::to_string(model.unwrap_or_default()).unwrap_or_default();
                push(&mut out, key, name.as_bytes());
            }
            "stream_options" if add_usage => {
                push(&mut out, key, &with_include_usage(value.get()));
                wrote_options = true;
            }
            _ => push(&mut out, key, value.get().as_bytes()),
        }
    }
    if add_usage && !wrote_options {
        push(&mut out, "stream_options", br#"{"include_usage":true}"#);
    }
    out.push(b'}');
    Bytes::from(out)
}

fn with_include_usage(options: &str) -> Vec<u8> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(options).unwrap_or_default();
    map.insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&map).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec())
}

/// One top-level member, key possibly unescaped, value borrowed raw.
struct Field<'a>(Cow<'a, str>, &'a RawValue);

/// The members of a JSON object, in order.
struct ObjectFields<'a>(Vec<Field<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for ObjectFields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ObjectFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push(Field(key, value));
                }
                Ok(ObjectFields(fields))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_requires_its_own_field() {
        let ok = |api, body: &[u8]| parse(api, body).map(|h| (h.model.into_owned(), h.stream));
        assert_eq!(
            ok(
                Api::Completions,
                br#"{"model":"m","prompt":"hi","stream":true}"#
            )
            .unwrap(),
            ("m".into(), true)
        );
        assert!(ok(Api::Completions, br#"{"model":"m","prompt":["a","b"]}"#).is_ok());
        assert!(ok(Api::Embeddings, br#"{"model":"e","input":"text"}"#).is_ok());
        assert!(ok(Api::Responses, br#"{"model":"r","input":"text"}"#).is_ok());
        let items = br#"{"model":"r","input":[{"role":"user","content":"hi"}],"stream":true}"#;
        let streamed = parse(Api::Responses, items).unwrap();
        // A Responses stream always carries its usage: nothing to ask for, nothing to cut.
        assert!(streamed.stream && streamed.include_usage);
        // Embeddings never stream, whatever the body says.
        assert_eq!(
            ok(
                Api::Embeddings,
                br#"{"model":"e","input":["x"],"stream":true}"#
            )
            .unwrap(),
            ("e".into(), false)
        );
        for (api, bad) in [
            (Api::Completions, &br#"{"model":"m","messages":[]}"#[..]),
            (Api::Completions, br#"{"model":"m","prompt":3}"#),
            (Api::Embeddings, br#"{"model":"m"}"#),
            (Api::Embeddings, br#"{"model":"m","input":{"a":1}}"#),
            (Api::Chat, br#"{"model":"m","messages":"hi"}"#),
            (Api::Messages, br#"{"model":"m","prompt":"hi"}"#),
            (Api::CountTokens, br#"{"messages":[]}"#),
            (Api::Responses, br#"{"model":"m","messages":[]}"#),
            (Api::Responses, br#"{"model":"m","input":7}"#),
            (Api::Responses, br#"{"input":"hi"}"#),
        ] {
            let err = parse(api, bad).unwrap_err();
            assert_eq!(
                err.code(),
                "invalid_request",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The Messages API reports usage in every stream: the router neither asks nor strips.
    #[test]
    fn anthropic_requests_always_report_usage() {
        let head = parse(
            Api::Messages,
            br#"{"model":"claude","max_tokens":5,"messages":[],"stream":true}"#,
        )
        .unwrap();
        assert!(head.stream && head.include_usage);
        let count = parse(
            Api::CountTokens,
            br#"{"model":"c","messages":[],"stream":true}"#,
        );
        assert!(!count.unwrap().stream);
    }

    /// The declared output ceiling, whichever API's name it has; a value that is not a whole
    /// number is left for the upstream to refuse.
    #[test]
    fn the_declared_output_ceiling_is_read() {
        let cases: &[(Api, &[u8], Option<u64>)] = &[
            (
                Api::Chat,
                br#"{"model":"m","messages":[],"max_tokens":64}"#,
                Some(64),
            ),
            (
                Api::Chat,
                br#"{"model":"m","messages":[],"max_completion_tokens":9}"#,
                Some(9),
            ),
            (
                Api::Responses,
                br#"{"model":"m","input":"x","max_output_tokens":7}"#,
                Some(7),
            ),
            (
                Api::Chat,
                br#"{"model":"m","messages":[],"max_tokens":-1}"#,
                None,
            ),
            (
                Api::Chat,
                br#"{"model":"m","messages":[],"max_tokens":"lots"}"#,
                None,
            ),
            (
                Api::Chat,
                br#"{"model":"m","messages":[],"max_tokens":null}"#,
                None,
            ),
            (Api::Chat, br#"{"model":"m","messages":[]}"#, None),
        ];
        for (api, body, want) in cases {
            let head = parse(*api, body).unwrap();
            assert_eq!(head.max_output, *want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn head_table() {
        let ok = parse_head(br#"{"model":"m","messages":[],"stream":true}"#).unwrap();
        assert_eq!(ok.model, "m");
        assert!(ok.stream && !ok.include_usage);
        let escaped = parse_head(br#"{"model":"a\"b","messages":[]}"#).unwrap();
        assert_eq!(escaped.model, "a\"b");
        let with_usage = parse_head(
            br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(with_usage.include_usage);
        for bad in [
            &b"not json"[..],
            br#"{"messages":[]}"#,
            br#"{"model":"m"}"#,
            br#"{"model":"m","messages":"hi"}"#,
            br#"{"model":3,"messages":[]}"#,
            br#"[1,2]"#,
            br#"{"model":"m","messages":[]"#,
        ] {
            let err = parse_head(bad).unwrap_err();
            assert_eq!(
                err.code(),
                "invalid_request",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rewrite_keeps_everything_else_verbatim() {
        let body = Bytes::from_static(
            br#"{"model":"public","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"temperature":0.50,"stream":true}"#,
        );
        assert_eq!(rewrite(&body, None, false), body);
        let out = rewrite(&body, Some("private-1"), true);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"private-1","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"temperature":0.50,"stream":true,"stream_options":{"include_usage":true}}"#
        );
        let with_options = Bytes::from_static(
            br#"{"model":"m","messages":[],"stream_options":{"include_obfuscation":false}}"#,
        );
        let out: serde_json::Value =
            serde_json::from_slice(&rewrite(&with_options, None, true)).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["stream_options"]["include_obfuscation"], false);
    }
}
