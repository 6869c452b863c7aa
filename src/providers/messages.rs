//! The Messages API (`POST /v1/messages`) on an OpenAI-compatible provider: the request
//! translated into a chat completion at the provider's edge (the pure [`super::translate`]
//! module), the answer, its stream and its errors translated back into Anthropic's shapes —
//! so the router, the scanner and the relay see Anthropic's dialect whatever answered, and an
//! Anthropic client fails over between Anthropic and OpenAI-compatible providers unawares.

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::Value;

use super::translate::{self, OpenAiToAnthropicStream, TranslateError};
use super::translated::Translated;
use super::{ByteStream, ProviderError, Reply};

/// The chat completion request for a Messages request; a body that cannot be translated is
/// the client's 400, in Anthropic's shape. `ask_usage`: a stream asks for its usage chunk
/// (Anthropic's `message_delta` reports it) unless the provider refuses the field
/// (`inject_stream_usage = false`).
pub(super) fn chat_request(body: &[u8], ask_usage: bool) -> Result<Bytes, ProviderError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_request(&TranslateError::NotJson(e.to_string())))?;
    let mut chat =
        translate::anthropic_to_openai_request(&request).map_err(|e| invalid_request(&e))?;
    if !ask_usage {
        if let Some(fields) = chat.as_object_mut() {
            fields.remove("stream_options");
        }
    }
    serde_json::to_vec(&chat)
        .map(Bytes::from)
        .map_err(|e| ProviderError::Malformed(e.to_string()))
}

/// A `chat.completion` answer as an Anthropic `message`, with its usage and the upstream's
/// request id.
pub(super) fn message(
    completion: &[u8],
    request_id: Option<HeaderValue>,
) -> Result<Reply, ProviderError> {
    let completion: Value =
        serde_json::from_slice(completion).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let (message, usage) = translate::openai_to_anthropic_response(&completion)
        .map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let response_model = message["model"].as_str().map(str::to_owned);
    let body = serde_json::to_vec(&message).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    Ok(Reply::Json {
        body: Bytes::from(body),
        usage: Some(usage.to_usage()),
        response_model,
        request_id,
    })
}

/// A chat completion stream as Anthropic's events (`message_stop` only after `[DONE]`).
pub(super) fn events(chat: ByteStream, max_line: usize) -> ByteStream {
    Box::pin(Translated::new(
        chat,
        OpenAiToAnthropicStream::new(),
        max_line,
    ))
}

/// An OpenAI-shaped error answer in Anthropic's shape, its status (and so its fault) kept.
pub(super) fn error(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Status {
            status,
            body,
            retry_after,
            request_id,
            ..
        } => ProviderError::Status {
            status,
            body: Bytes::from(translate::openai_error_to_anthropic(status, &body).to_string()),
            content_type: Some("application/json".into()),
            retry_after,
            request_id,
        },
        other => other,
    }
}

fn invalid_request(error: &TranslateError) -> ProviderError {
    let body = serde_json::json!({"type": "error", "error": {
        "type": "invalid_request_error", "message": error.to_string()}});
    ProviderError::Status {
        status: 400,
        body: Bytes::from(body.to_string()),
        content_type: Some("application/json".into()),
        retry_after: None,
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn a_bad_request_is_the_client_s_400_in_anthropic_s_shape() {
        for body in [&b"not json"[..], br#"{"model":"c","messages":"hi"}"#] {
            let Err(ProviderError::Status { status, body, .. }) = chat_request(body, true) else {
                panic!("accepted");
            };
            assert_eq!(status, 400);
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn a_strict_provider_is_not_asked_for_stream_usage() {
        let body = br#"{"model":"c","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let asked: Value = serde_json::from_slice(&chat_request(body, true).unwrap()).unwrap();
        assert_eq!(asked["stream_options"]["include_usage"], true);
        let strict: Value = serde_json::from_slice(&chat_request(body, false).unwrap()).unwrap();
        assert!(strict.get("stream_options").is_none(), "{strict}");
        assert_eq!(strict["stream"], true);
    }

    #[test]
    fn errors_keep_their_status_and_take_anthropic_s_shape() {
        let translated = error(ProviderError::Status {
            status: 429,
            body: Bytes::from_static(br#"{"error":{"message":"slow down","type":"requests"}}"#),
            content_type: None,
            retry_after: Some(std::time::Duration::from_secs(2)),
            request_id: Some(HeaderValue::from_static("req-up")),
        });
        let ProviderError::Status {
            status,
            body,
            retry_after,
            request_id,
            ..
        } = translated
        else {
            panic!("not a status");
        };
        assert_eq!((status, retry_after.map(|d| d.as_secs())), (429, Some(2)));
        assert_eq!(request_id.unwrap(), "req-up");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[tokio::test]
    async fn a_chat_stream_becomes_anthropic_events_ending_only_after_done() {
        let chunk = |s: &'static str| Ok::<_, ProviderError>(Bytes::from_static(s.as_bytes()));
        let body = |done: bool| {
            let mut chunks = vec![
                chunk("data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n"),
                chunk("data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
                chunk("data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\n"),
            ];
            if done {
                chunks.push(chunk("data: [DONE]\n\n"));
            }
            Box::pin(futures_util::stream::iter(chunks)) as ByteStream
        };
        let text = |stream: ByteStream| async move {
            let parts: Vec<_> = stream.map(|c| c.unwrap()).collect().await;
            String::from_utf8(parts.concat()).unwrap()
        };
        let whole = text(events(body(true), 1 << 20)).await;
        assert!(whole.starts_with("event: message_start\n"), "{whole}");
        assert!(whole.contains("\"text_delta\""), "{whole}");
        assert!(whole.contains("\"output_tokens\":1"), "{whole}");
        assert!(
            whole.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{whole}"
        );
        let cut = text(events(body(false), 1 << 20)).await;
        assert!(!cut.contains("message_stop"), "{cut}");
    }
}
