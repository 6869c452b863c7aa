//! `kind = "anthropic"`: chat completions served by Anthropic's Messages API.
//!
//! The HTTP side is the OpenAI client's (one pooled hyper client, the same timeouts, caps and
//! error classes), sending `api_key` as `x-api-key` with the `anthropic-version` header to
//! `{base_url}/v1/messages`. Around it, the pure [`super::translate`] module turns the
//! client's chat request into a Messages request, the answer back into a `chat.completion`,
//! an error into OpenAI's shape (with the status that keeps its fault: 529 overloaded is a
//! retryable 503), and a stream's named events into `chat.completion.chunk` lines
//! ([`Translated`]) — so the router's priming, scanner and relay see an OpenAI stream, with
//! `[DONE]` only when Anthropic sent `message_stop`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;

use super::openai::{Auth, OpenAiClient};
use super::sse::{LineTooLong, Lines};
use super::translate::{self, AnthropicToOpenAiStream, TranslateError};
use super::{ByteStream, ProviderError, Reply, Upstream, Want};
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
            http: OpenAiClient::build(&http, Auth::XApiKey, |_| "v1/messages")?,
            default_max_tokens: config.default_max_tokens,
        })
    }

    pub fn host(&self) -> &str {
        self.http.host()
    }

    /// One chat completion attempt, translated; other APIs are not Anthropic's (a 400).
    pub async fn call(
        &self,
        api: Api,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
    ) -> Result<Reply, ProviderError> {
        if api != Api::Chat {
            return Err(refused(format!(
                "an anthropic provider serves chat completions, not /v1/{}",
                api.path()
            )));
        }
        let request = translate::openai_to_anthropic_bytes(&body, self.default_max_tokens)
            .map_err(request_error)?;
        let body = serde_json::to_vec(&request.body)
            .map_err(|e| ProviderError::Malformed(e.to_string()))?;
        let attempt = async {
            let (head, answer) = self
                .http
                .exchange(api, Bytes::from(body), want.is_stream(), trace)
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
                        api.dialect(),
                        strip_usage,
                        self.http.max_event_bytes(),
                    );
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
                    })
                }
            }
        };
        match tokio::time::timeout(self.http.attempt_timeout(), attempt).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl From<LineTooLong> for ProviderError {
    fn from(_: LineTooLong) -> Self {
        ProviderError::Stream(super::StreamFault::TooLarge)
    }
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
    }
}

fn request_error(error: TranslateError) -> ProviderError {
    if error.is_client_fault() {
        ProviderError::Status {
            status: 400,
            body: Bytes::from(error.openai_body().to_string()),
            content_type: Some("application/json".into()),
            retry_after: None,
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
            ..
        } => {
            let translated = translate::anthropic_error(status, &body);
            ProviderError::Status {
                status: translated.status,
                body: Bytes::from(translated.body.to_string()),
                content_type: Some("application/json".into()),
                retry_after,
            }
        }
        other => other,
    }
}

/// Anthropic's named SSE events as OpenAI `chat.completion.chunk` lines: complete lines are
/// split off the body (a line held is bounded by the event limit), `event:` names the next
/// `data:`, and each data line goes through the translator.
struct Translated {
    inner: ByteStream,
    translator: AnthropicToOpenAiStream,
    lines_of: Lines,
    event: String,
    out: VecDeque<Bytes>,
    max_line: usize,
    /// The body ended or failed: nothing more is polled.
    done: bool,
}

impl Translated {
    fn new(inner: ByteStream, translator: AnthropicToOpenAiStream, max_line: usize) -> Self {
        Self {
            inner,
            translator,
            lines_of: Lines::default(),
            event: String::new(),
            out: VecDeque::new(),
            max_line,
            done: false,
        }
    }

    /// Handles the complete lines of `chunk`; an error ends the stream.
    fn lines(&mut self, chunk: &[u8]) -> Result<(), ProviderError> {
        let (translator, event, out) = (&mut self.translator, &mut self.event, &mut self.out);
        self.lines_of.feed(chunk, self.max_line, |line| {
            if let Some(name) = line.strip_prefix(b"event:") {
                *event = String::from_utf8_lossy(name.trim_ascii()).into_owned();
            } else if let Some(data) = line.strip_prefix(b"data:") {
                let lines = translator
                    .feed(event, data.trim_ascii())
                    .map_err(|e| ProviderError::Malformed(e.to_string()))?;
                out.extend(lines);
                event.clear();
            }
            Ok(())
        })
    }
}

impl Stream for Translated {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(line) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(line)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(error) = this.lines(&chunk) {
                        this.done = true;
                        this.out.clear();
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => this.done = true,
            }
        }
    }
}
