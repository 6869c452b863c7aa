//! `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses` and
//! (through [`super::messages`]) `/v1/messages`: one handler, the API a parameter (each route
//! binds its own): authenticate, read and parse the body, admit the request against its key's
//! limits ([`crate::state`]), route it. The admission's guard goes with the request to its
//! end, where it settles the real tokens and cost. The reply is the client's dialect already
//! — providers translate at their edge — so the handler only frames it.

use std::time::{Instant, SystemTime};

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{finish, overhead, request_id, AppState};
use crate::config::Api;
use crate::errors::ApiError;
use crate::providers::sse::Dialect;
use crate::providers::Forwarded;
use crate::router::request::{self, ChatHead};
use crate::router::{ChatReply, Timing};
use crate::state::{estimate, Now, Permit};

pub async fn chat(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    serve(Api::Chat, req, payload, state).await
}

pub async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    serve(Api::Completions, req, payload, state).await
}

pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    serve(Api::Embeddings, req, payload, state).await
}

pub async fn responses(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    serve(Api::Responses, req, payload, state).await
}

pub(super) async fn serve(
    api: Api,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    // Anthropic's clients send their key as `x-api-key`; `Authorization: Bearer` works too.
    let anthropic_key = match api.dialect() {
        Dialect::Anthropic => req
            .headers()
            .get("x-api-key")
            .map(|key| [b"Bearer ", key.as_bytes()].concat()),
        _ => None,
    };
    let presented = match &anthropic_key {
        Some(key) => Some(&key[..]),
        None => req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    };
    // A request refused before routing gets its own line (a routed one's is written when it
    // ends, by `finish::Access`).
    let refused = |error: ApiError, key: Option<&str>, model: Option<&str>| {
        if !state.access_log {
            return error;
        }
        let status = actix_web::ResponseError::status_code(&error).as_u16();
        let request_id = req
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok());
        tracing::info!(
            status,
            code = error.code(),
            api = api.label(),
            key,
            model,
            request_id,
            "request refused"
        );
        error
    };
    let caller = state
        .keys
        .authenticate(presented, SystemTime::now())
        .map_err(|e| refused(e, None, None))?;
    let name = caller.key.as_ref().map(|k| &*k.name);
    let body = receive(&req, payload, &state)
        .await
        .map_err(|e| refused(e, name, None))?;
    let head = request::parse(api, &body).map_err(|e| refused(e, name, None))?;
    // One configuration from here to the request's end, even if a reload swaps it meanwhile.
    let live = state.live();
    let permit = match &caller.key {
        Some(key) => Some(
            admit(&state, &live.catalog, api, key.slot, &body, &head)
                .await
                .map_err(|e| refused(e, name, Some(&head.model)))?,
        ),
        None => None,
    };
    let quotas = permit.as_ref().map(Permit::quotas);
    let timing = Timing {
        started,
        deadline: started + state.request_timeout,
    };
    let forwarded = forwarded(&req);
    let access = finish::Access {
        log: state.access_log,
        catalog: live.catalog.clone(),
        api,
        // The gateway's request id ([`request_id`]).
        request_id: req.headers().get(request_id::HEADER).cloned(),
        trace_id: req.extensions().get::<finish::RequestTrace>().map(|t| t.0),
        key: caller.key,
        recent: state.console.as_ref().map(|c| c.recent.clone()),
    };
    let entry = state.ledger.as_ref().map(|ledger| finish::Entry {
        ledger: ledger.clone(),
    });
    let settle: Box<dyn crate::outcome::Settle> = Box::new(finish::Finish {
        access,
        permit,
        entry,
    });
    let reply = live
        .router
        .serve(api, body.clone(), &head, timing, &forwarded, Some(settle))
        .await?;
    let upstream_id = request_id::from_upstream(reply.request_id());
    let mut response = match reply {
        ChatReply::Json {
            body,
            upstream_wait,
            ..
        } => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((
                overhead::HEADER,
                overhead::value(started.elapsed(), upstream_wait),
            ))
            .body(body),
        ChatReply::Passthrough {
            status,
            body,
            content_type,
            upstream_wait,
            ..
        } => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            HttpResponse::build(status)
                .insert_header((
                    header::CONTENT_TYPE,
                    content_type.as_deref().unwrap_or("application/json"),
                ))
                .insert_header((
                    overhead::HEADER,
                    overhead::value(started.elapsed(), upstream_wait),
                ))
                .body(body)
        }
        ChatReply::Stream(relay) => HttpResponse::Ok()
            .insert_header((
                overhead::HEADER,
                overhead::value(started.elapsed(), relay.upstream_wait()),
            ))
            .insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(state.drain.wrap(relay, api.dialect())),
    };
    if let Some(id) = upstream_id {
        response.headers_mut().insert(request_id::HEADER, id);
    }
    if let Some(quotas) = quotas {
        let headers = response.headers_mut();
        for (name, value) in quotas.headers() {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                headers.insert(header::HeaderName::from_static(name), value);
            }
        }
    }
    Ok(response)
}

/// Admits a request of `key` against its limits: its model against the key's list, one
/// request and its token estimate against the rates, a place in flight, the budget.
async fn admit(
    state: &AppState,
    catalog: &crate::catalog::Catalog,
    api: Api,
    key: usize,
    body: &Bytes,
    head: &ChatHead<'_>,
) -> Result<Permit, ApiError> {
    let model = catalog.model_id(&head.model);
    // Embeddings and token counts answer with no generated text.
    let has_output = !matches!(api, Api::Embeddings | Api::CountTokens);
    let estimate = estimate(body.len(), head.max_output, has_output);
    Permit::admit(&state.limits, key, model, estimate, Now::read())
        .await
        .map_err(|refusal| refusal.into_error(&head.model))
}

/// The headers [`Forwarded`] reads, as static names: a lookup by name hashes it, where a
/// lookup by `&str` parses it first.
static FORWARDED_NAMES: [header::HeaderName; 5] = [
    header::HeaderName::from_static("openai-organization"),
    header::HeaderName::from_static("openai-project"),
    header::HeaderName::from_static("openai-beta"),
    header::HeaderName::from_static("anthropic-beta"),
    header::USER_AGENT,
];

/// The client headers an upstream is sent (an allow-list, and its `User-Agent`).
fn forwarded(req: &HttpRequest) -> Forwarded {
    let headers = req.headers();
    Forwarded::collect(|name| {
        let name = FORWARDED_NAMES.iter().find(|n| n.as_str() == name)?;
        headers.get(name).map(|v| v.as_bytes())
    })
}

/// The request's body, within `server.max_body_bytes` and `server.body_read_timeout`: a client
/// trickling its body is cut, and its connection freed (the unread body closes it).
pub(super) async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let reading = read_body(payload, state.max_body_bytes, declared);
    tokio::time::timeout(state.body_read_timeout, reading)
        .await
        .map_err(|_| ApiError::BodyTimeout(state.body_read_timeout))?
}

/// Most bytes reserved for a body before it arrives.
const PREALLOCATE: usize = 64 * 1024;

/// Reads the whole body, refusing more than `limit` bytes with a 413.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Never pre-allocate more than a small buffer from what the client declares: a huge
    // `Content-Length` must cost nothing until the bytes actually arrive.
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(limit).min(PREALLOCATE));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header [`Forwarded`] asks for has a static name here (a name missing from
    /// [`FORWARDED_NAMES`] would never be forwarded).
    #[test]
    fn every_forwarded_header_has_a_static_name() {
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = Forwarded::collect(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        let asked = asked.into_inner();
        assert_eq!(asked.len(), FORWARDED_NAMES.len());
        for name in &asked {
            assert!(
                FORWARDED_NAMES.iter().any(|n| n.as_str() == name),
                "{name} has no static name"
            );
        }
    }
}
