//! `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's Messages API in front of
//! any provider.
//!
//! Coding agents and the Anthropic SDKs send their requests here (`x-api-key` or
//! `Authorization: Bearer` client keys). The request is routed like any other — failover,
//! breakers, limits, metrics under `api="messages"` — by the shared handler
//! ([`super::chat`]): an Anthropic provider receives it as the client wrote it, an
//! OpenAI-compatible one translated (at the provider's edge, so an answer and its stream come
//! back in Anthropic's shapes whichever served). Every error answers in Anthropic's shape,
//! `{"type": "error", "error": {"type", "message"}}`, with the status and headers
//! (`Retry-After`) the OpenAI routes would send.

use actix_web::body::BoxBody;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::chat;
use super::AppState;
use crate::config::Api;
use crate::errors::ApiError;

pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    chat::serve(Api::Messages, req, payload, state)
        .await
        .unwrap_or_else(|error| anthropic_error(&error))
}

pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    chat::serve(Api::CountTokens, req, payload, state)
        .await
        .unwrap_or_else(|error| anthropic_error(&error))
}

/// An [`ApiError`] in Anthropic's shape, with the status and headers of its OpenAI answer.
pub fn anthropic_error(error: &ApiError) -> HttpResponse {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": error.anthropic_type(), "message": error.to_string()},
    });
    error
        .error_response()
        .set_body(BoxBody::new(body.to_string()))
}
