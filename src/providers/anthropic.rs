//! `kind = "anthropic"`: Anthropic's Messages API, for Anthropic's own clients and for chat
//! completions.
//!
//! A Messages request (`/v1/messages`, `/v1/messages/count_tokens`) passes through as the
//! client wrote it (the router's `model` rewrite only), its answer, stream and errors back
//! as Anthropic wrote them; the scanner reads the stream in Anthropic's dialect for usage,
//! first content, `message_stop` and error events.
//!
//! The HTTP side is the OpenAI client's (one pooled hyper client, the same timeouts, caps and
//! error classes), sending `api_key` as `x-api-key` with the `anthropic-version` header to
//! `{base_url}/v1/messages`. Around it, the pure [`super::translate`] module turns the
//! client's chat request into a Messages request, the answer back into a `chat.completion`,
//! an error into OpenAI's shape (with the status that keeps its fault: 529 overloaded is a
//! retryable 503), and a stream's named events into `chat.completion.chunk` lines
//! ([`Translated`]) — so the router's priming, scanner and relay see an OpenAI stream, with
//! `[DONE]` only when Anthropic sent `message_stop`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::openai::{Auth, OpenAiClient};
use super::sse::Dialect;
use super::translate::{self, AnthropicToOpenAiStream, TranslateError};
use super::translated::Translated;
use super::{Forwarded, ProviderError, Reply, Upstream, Want};
use crate::config::{AnthropicProviderConfig, Api};
use crate::telemetry::traces::propagation::UpstreamTrace;

pub struct AnthropicClient {
    http: OpenAiClient,
    default_max_tokens: u32,
}

impl AnthropicClient {
    pub fn new(config: &AnthropicProviderConfig) -> Result<Self, String> {
        let mut http = config.http.clone();
        http.headers
            .entry("anthropic-version".into())
            .or_insert_with(|| config.version.clone());
        Ok(Self {
            http: OpenAiClient::build(&http, Auth::XApiKey, |api| match api {
                Api::CountTokens => "v1/messages/count_tokens",
                _ => "v1/messages",
            })?,
            default_max_tokens: config.default_max_tokens,
        })
    }

    pub fn host(&self) -> &str {
        self.http.host()
    }

    /// One attempt: the Messages API passed through, a chat completion translated; other
    /// APIs are not Anthropic's (a 400; the router does not send them).
    pub async fn call(
        &self,
        api: Api,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        match api {
            Api::Chat => self.chat(body, want, trace, forwarded).await,
            // Anthropic's own API: passed through as the client wrote it.
            Api::Messages | Api::CountTokens => {
                self.http.forward(api, body, want, trace, forwarded).await
            }
            other => Err(refused(format!(
                "an anthropic provider serves chat completions and the Messages API, not /v1/{}",
                other.path()
            ))),
        }
    }

    /// A chat completion translated into a Messages request, and its answer back.
    async fn chat(
        &self,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        let api = Api::Chat;
        let request = translate::openai_to_anthropic_bytes(&body, self.default_max_tokens)
            .map_err(request_error)?;
        let body = serde_json::to_vec(&request.body)
            .map_err(|e| ProviderError::Malformed(e.to_string()))?;
        let attempt = async {
            let (head, answer) = self
                .http
                .exchange(api, Bytes::from(body), want.is_stream(), trace, forwarded)
                .await
                .map_err(translate_status)?;
            let created = now_unix();
            match want {
                Want::Stream { strip_usage } => {
                    // Always ask the translator for the usage chunk: the gateway prices every
                    // stream, and the scanner cuts it when the client did not ask for it.
                    let events = Translated::new(
                        self.http.body_stream(answer),
                        AnthropicToOpenAiStream::new(created, true),
                        self.http.max_event_bytes(),
                    );
                    let mut upstream = Upstream::new(
                        None,
                        Box::pin(events),
                        Dialect::OpenAi,
                        strip_usage,
                        self.http.max_event_bytes(),
                    )
                    .with_request_id(super::openai::request_id(&head.headers));
                    upstream.prime().await?;
                    Ok(Reply::Stream(upstream))
                }
                Want::Json => {
                    let answer = self.http.read_body(answer, &head.headers).await?;
                    let message: serde_json::Value = serde_json::from_slice(&answer)
                        .map_err(|e| ProviderError::Malformed(e.to_string()))?;
                    let (completion, usage) = translate::anthropic_to_openai(&message, created)
                        .map_err(|e| ProviderError::Malformed(e.to_string()))?;
                    let response_model = completion["model"].as_str().map(str::to_owned);
                    let body = serde_json::to_vec(&completion)
                        .map_err(|e| ProviderError::Malformed(e.to_string()))?;
                    Ok(Reply::Json {
                        body: Bytes::from(body),
                        usage: Some(usage.to_usage()),
                        response_model,
                        request_id: super::openai::request_id(&head.headers),
                    })
                }
            }
        };
        self.http.bounded(attempt).await
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A 400 in OpenAI's shape, from the gateway (the request cannot be translated).
fn refused(message: String) -> ProviderError {
    let body = serde_json::json!({"error": {
        "message": message, "type": "invalid_request_error", "param": null, "code": null}});
    ProviderError::Status {
        status: 400,
        body: Bytes::from(body.to_string()),
        content_type: Some("application/json".into()),
        retry_after: None,
        request_id: None,
    }
}

fn request_error(error: TranslateError) -> ProviderError {
    if error.is_client_fault() {
        ProviderError::Status {
            status: 400,
            body: Bytes::from(error.openai_body().to_string()),
            content_type: Some("application/json".into()),
            retry_after: None,
            request_id: None,
        }
    } else {
        ProviderError::Malformed(error.to_string())
    }
}

/// An Anthropic error answer in OpenAI's shape, its status the one that keeps its fault.
fn translate_status(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Status {
            status,
            body,
            retry_after,
            request_id,
            ..
        } => {
            let translated = translate::anthropic_error(status, &body);
            ProviderError::Status {
                status: translated.status,
                body: Bytes::from(translated.body.to_string()),
                content_type: Some("application/json".into()),
                retry_after,
                request_id,
            }
        }
        other => other,
    }
}
