//! `POST /v1/messages`: the Anthropic Messages API in front of any provider.
//!
//! Coding agents and the Anthropic SDKs send their requests here (`x-api-key` or
//! `Authorization: Bearer` client keys). The request is translated into a chat completion
//! (the pure [`crate::providers::translate`] module), routed like any other — failover,
//! breakers, limits, metrics — and the answer translated back: a `message`, or for a stream
//! the named events (`message_start` … `message_stop`) made from the relayed chunks. Every
//! error answers in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with
//! the status and headers (`Retry-After`) the OpenAI routes would send.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use actix_web::body::BoxBody;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;

use super::chat::receive;
use super::AppState;
use crate::config::Api;
use crate::errors::ApiError;
use crate::providers::sse::{LineTooLong, Lines};
use crate::providers::translate::{self, OpenAiToAnthropicStream, TranslateError};
use crate::router::request;
use crate::router::ChatReply;

pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match serve(&req, payload, &state).await {
        Ok(response) => response,
        Err(error) => anthropic_error(&error),
    }
}

async fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    // Anthropic clients send `x-api-key`; `Authorization: Bearer` works too.
    let presented = match req.headers().get("x-api-key") {
        Some(key) => Some([b"Bearer ", key.as_bytes()].concat()),
        None => req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec()),
    };
    state
        .keys
        .authenticate(presented.as_deref(), SystemTime::now())?;
    let body = receive(req, payload, state).await?;
    let anthropic: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    let chat = translate::anthropic_to_openai_request(&anthropic)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let chat = Bytes::from(serde_json::to_vec(&chat).map_err(|_| ApiError::Internal)?);
    let head = request::parse(Api::Chat, &chat)?;
    let reply = state
        .router
        .serve(
            Api::Chat,
            chat.clone(),
            &head,
            started,
            started + state.request_timeout,
        )
        .await?;
    tracing::info!(model = %head.model, stream = head.stream, "anthropic message answered");
    Ok(match reply {
        ChatReply::Json { body, .. } => {
            let completion: Value = serde_json::from_slice(&body)
                .map_err(|_| ApiError::UpstreamFailed("the answer is not JSON".into()))?;
            let (message, _) = translate::openai_to_anthropic_response(&completion)
                .map_err(|e| ApiError::UpstreamFailed(e.to_string()))?;
            HttpResponse::Ok().json(message)
        }
        ChatReply::Passthrough { status, body, .. } => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            HttpResponse::build(status)
                .json(translate::openai_error_to_anthropic(status.as_u16(), &body))
        }
        ChatReply::Stream(relay) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(Events::new(state.drain.wrap(relay, Api::Chat.dialect()))),
    })
}

/// An [`ApiError`] in Anthropic's shape, with the status and headers of its OpenAI answer.
fn anthropic_error(error: &ApiError) -> HttpResponse {
    let status = error.status_code();
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": error.to_string()},
    });
    error
        .error_response()
        .set_body(BoxBody::new(body.to_string()))
}

/// The relayed chat stream (complete lines) as Anthropic's named events.
struct Events<S> {
    inner: Option<S>,
    translator: OpenAiToAnthropicStream,
    lines_of: Lines,
    out: VecDeque<Bytes>,
}

/// The longest chunk line held (the relay's lines are bounded by the provider's limit).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Why the translation of a stream stops.
enum Stop {
    Translate(TranslateError),
    TooLong,
}

impl From<LineTooLong> for Stop {
    fn from(_: LineTooLong) -> Self {
        Self::TooLong
    }
}

impl<S> Events<S> {
    fn new(inner: S) -> Self {
        Self {
            inner: Some(inner),
            translator: OpenAiToAnthropicStream::new(),
            lines_of: Lines::default(),
            out: VecDeque::new(),
        }
    }

    /// Translates the complete lines of `chunk` (the relay sends complete lines); a chunk
    /// that cannot be translated ends the stream with an Anthropic `error` event.
    fn lines(&mut self, chunk: &[u8]) {
        let (translator, out) = (&mut self.translator, &mut self.out);
        let fed = self.lines_of.feed(chunk, MAX_LINE, |line| {
            if let Some(data) = line.strip_prefix(b"data:") {
                out.extend(
                    translator
                        .feed(data.trim_ascii())
                        .map_err(Stop::Translate)?,
                );
            }
            Ok(())
        });
        if let Err(stop) = fed {
            let message = match stop {
                Stop::Translate(error) => error.to_string(),
                Stop::TooLong => "a stream event exceeds the size limit".to_owned(),
            };
            self.out.push_back(Bytes::from(format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({"type": "error", "error": {
                    "type": "api_error", "message": message}})
            )));
            self.inner = None;
        }
    }
}

impl<S, E> Stream for Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(frame) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.lines(&chunk),
                Poll::Ready(Some(Err(error))) => {
                    this.inner = None;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => this.inner = None,
            }
        }
    }
}
