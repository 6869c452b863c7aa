//! `gatewayz mock-upstream`: a fast OpenAI-compatible HTTP server whose latency, stream pace
//! and failures are set by flags, and changed at run time through `POST /mock/control`, so
//! tests, demos and benchmarks exercise the real HTTP path.
//!
//! It also speaks Anthropic's Messages API on `POST /v1/messages` (and `/messages`): the key
//! is checked in `x-api-key` there, answers, streams (named events) and errors take
//! Anthropic's shapes, and the same behaviour (latency, pace, fault modes) applies. The
//! Responses API (`POST /v1/responses`) answers a `response` object, or streams its typed
//! events ending with `response.completed`; each fault mode breaks that stream the way it
//! breaks a chat stream ([`StreamFaults`]).
//!
//! Failures are spaced deterministically: with `--fail-rate 0.25` exactly every fourth chat
//! (or messages) request fails, so tests can count on them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{headers, models_body, Dialect, MockRequest};
use crate::config::Api;

/// What a failing request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Answer `--fail-status` with an OpenAI (or, on `/v1/messages`, Anthropic) error body.
    Status,
    /// Accept the request and never answer.
    Hang,
    /// Answer 200 with a body that is not JSON (or, streamed, events that are not JSON).
    Malformed,
    /// Break the connection: a JSON answer is cut after its headers, a stream after its
    /// first events.
    Drop,
    /// A stream sends a malformed event after its first content.
    MalformedLate,
    /// A stream ends cleanly after its content, without `data: [DONE]` (Anthropic:
    /// without `message_stop`; Responses: without `response.completed`).
    NoDone,
    /// A stream goes silent after its first content, and stays open.
    Stall,
    /// A stream writes its protocol's error event after its first content and ends: OpenAI's
    /// `data: {"error": …}`, Anthropic's `event: error` (`overloaded_error`), the Responses
    /// API's `event: error`.
    ErrorEvent,
    /// An answer that never ends: a JSON body, or a stream line after the first content,
    /// growing until the client goes away.
    Oversize,
}

/// The mock's behaviour, from flags and `POST /mock/control`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Delay before an answer or a stream's first chunk ("5ms").
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde_compat")]
    pub latency: Duration,
    /// Chunks a streamed answer is cut into (0: one per word).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub chunks: usize,
    /// Delay between streamed chunks ("20ms").
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde_compat")]
    pub chunk_delay: Duration,
    /// Share of chat requests that fail, 0.0 to 1.0, evenly spaced.
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub fail_rate: f64,
    /// How a failing request fails.
    #[arg(long, value_enum, default_value = "status")]
    #[serde(default = "default_mode")]
    pub fail_mode: FailMode,
    /// Status of a failing request in `status` mode.
    #[arg(long, default_value_t = 500)]
    #[serde(default = "default_status")]
    pub fail_status: u16,
    /// `Retry-After` (seconds) sent with a failing 429.
    #[arg(long)]
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Send the upstream's request id with every answer, errors included: `x-request-id:
    /// mock-req-N` (OpenAI), `request-id: req_mock_N` on `/v1/messages` (Anthropic).
    #[arg(long)]
    #[serde(default)]
    pub request_ids: bool,
    /// Input tokens each answer's usage reports as read from a prompt cache (at most the
    /// prompt's), as OpenAI, the Responses API and Anthropic report them. Default 0.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub cached_tokens: u64,
}

fn default_mode() -> FailMode {
    FailMode::Status
}
fn default_status() -> u16 {
    500
}

/// Durations as strings in the control JSON, like the config file.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// `gatewayz mock-upstream` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Address to listen on (port 0 picks a free one; the bound address is logged).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Require this key on every request: as bearer token on the OpenAI routes, as
    /// `x-api-key` on `/v1/messages`.
    #[arg(long)]
    pub api_key: Option<String>,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    pub behaviour: Behaviour,
}

#[derive(Default, Serialize)]
struct Stats {
    requests: u64,
    chat_requests: u64,
    failures: u64,
    last_model: Option<String>,
    /// The path of the last request's API (`chat/completions`, `completions`, `embeddings`,
    /// `responses`, `messages`).
    last_api: Option<&'static str>,
    /// The `anthropic-version` header of the last request, when it had one.
    last_anthropic_version: Option<String>,
    last_traceparent: Option<String>,
    /// Every header of the last request, by lowercase name (repeated names joined by `, `):
    /// tests check what the gateway forwards, and what it does not.
    last_headers: BTreeMap<String, String>,
    last_stream: Option<bool>,
    last_include_usage: Option<bool>,
    /// Streamed answers begun.
    streams_started: u64,
    /// Streamed answers whose body was fully sent, or dropped (connection gone): tests check
    /// that a client got its first chunk while the upstream was still streaming.
    streams_finished: u64,
}

/// Counts a stream as finished when its body ends or is dropped.
struct StreamGuard(web::Data<State>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stats().streams_finished += 1;
    }
}

struct State {
    behaviour: Mutex<Behaviour>,
    counter: AtomicU64,
    /// Request ids handed out (`--request-ids`).
    ids: AtomicU64,
    stats: Mutex<Stats>,
    api_key: Option<String>,
}

impl State {
    fn behaviour(&self) -> Behaviour {
        self.behaviour
            .lock()
            .map(|b| b.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the mock upstream until it is stopped (Ctrl-C / SIGTERM).
pub async fn run(options: Options) -> std::io::Result<()> {
    let state = web::Data::new(State {
        behaviour: Mutex::new(options.behaviour.clone()),
        counter: AtomicU64::new(0),
        ids: AtomicU64::new(0),
        stats: Mutex::new(Stats::default()),
        api_key: options.api_key.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/chat/completions", web::post().to(chat))
            .route("/chat/completions", web::post().to(chat))
            .route("/v1/completions", web::post().to(completions))
            .route("/completions", web::post().to(completions))
            .route("/v1/embeddings", web::post().to(embeddings))
            .route("/embeddings", web::post().to(embeddings))
            .route("/v1/responses", web::post().to(responses))
            .route("/responses", web::post().to(responses))
            .route("/v1/messages", web::post().to(messages))
            .route("/messages", web::post().to(messages))
            .route("/v1/messages/count_tokens", web::post().to(count_tokens))
            .route("/messages/count_tokens", web::post().to(count_tokens))
            .route("/v1/models", web::get().to(models))
            .route("/mock/control", web::post().to(control))
            .route("/mock/stats", web::get().to(stats))
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
    })
    .workers(options.workers.max(1))
    .shutdown_timeout(1)
    // Paced streams must leave at their pace, not at the client's delayed ACK.
    .tcp_nodelay(true)
    .bind(options.listen)?;
    for addr in server.addrs() {
        tracing::info!(%addr, "mock-upstream listening on http://{addr}");
    }
    server.run().await
}

/// `head`, then `x` forever, 64 KiB a chunk, until the client goes away.
fn endless(
    head: Bytes,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let pad = Bytes::from(vec![b'x'; 64 * 1024]);
    futures_util::stream::once(async move { Ok(head) })
        .chain(futures_util::stream::repeat_with(move || Ok(pad.clone())))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error_body(status: u16, message: &str) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(serde_json::json!({"error": {
        "message": message, "type": "mock_error", "param": null, "code": status}}))
}

/// Anthropic's error `type` for an HTTP status.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An error answer in `dialect`'s shape.
fn dialect_error(dialect: Dialect, status: u16, message: &str) -> HttpResponse {
    match dialect {
        Dialect::OpenAi | Dialect::Responses => error_body(status, message),
        Dialect::Anthropic => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            HttpResponse::build(code).json(serde_json::json!({"type": "error", "error": {
                "type": anthropic_error_type(status), "message": message}}))
        }
    }
}

/// How a dialect's streams break in the fault modes (checked against the scanner by
/// `providers::sse`'s tests).
pub(crate) struct StreamFaults {
    /// Events up to and including the first content (a stall or a late fault follows them).
    pub(crate) first_content: usize,
    /// Events sent before a `drop` stream's connection breaks.
    pub(crate) drop_after: usize,
    /// The only event of a `malformed` stream.
    pub(crate) malformed: &'static [u8],
    /// The broken event of a `malformed-late` stream.
    pub(crate) malformed_late: &'static [u8],
    /// The event that ends a stream (after a `malformed-late` event).
    pub(crate) end: &'static [u8],
    /// The start of an `oversize` stream's endless event.
    pub(crate) oversize: &'static [u8],
    /// What an `error-event` stream sends after its first content.
    pub(crate) error_event: &'static [u8],
}

impl StreamFaults {
    pub(crate) fn of(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAi => Self {
                first_content: 2,
                drop_after: 2,
                malformed: b"data: {not json\n\n",
                malformed_late: b"data: {\"choices\":[{\"delta\n\n",
                end: b"data: [DONE]\n\n",
                error_event: b"data: {\"error\":{\"message\":\"mock upstream failure\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
                oversize: b"data: {\"pad\":\"",
            },
            // message_start, content_block_start, ping, then the first text delta. A dropped
            // stream breaks after its first content, as a chat stream does.
            Dialect::Anthropic => Self {
                first_content: 4,
                drop_after: 4,
                malformed: b"event: content_block_delta\ndata: {not json\n\n",
                malformed_late: b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\n\n",
                end: b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                error_event: b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                oversize: b"event: content_block_delta\ndata: {\"pad\":\"",
            },
            // response.created, response.in_progress, response.output_item.added,
            // response.content_part.added, then the first text delta. A dropped stream breaks
            // after its first content, as a chat stream does.
            Dialect::Responses => Self {
                first_content: 5,
                drop_after: 5,
                malformed: b"event: response.output_text.delta\ndata: {not json\n\n",
                malformed_late: b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\n\n",
                end: b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"object\":\"response\",\"status\":\"completed\",\"output\":[]}}\n\n",
                error_event: b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock upstream failure\",\"param\":null}\n\n",
                oversize: b"event: response.output_text.delta\ndata: {\"pad\":\"",
            },
        }
    }
}

/// Whether `req` carries the key: `Authorization: Bearer KEY` for OpenAI, `x-api-key: KEY`
/// for Anthropic (which does not take a bearer token).
fn authorized(dialect: Dialect, req: &HttpRequest, key: &str) -> bool {
    let header_value = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    match dialect {
        Dialect::OpenAi | Dialect::Responses => header_value(header::AUTHORIZATION.as_str())
            .is_some_and(|v| v == format!("Bearer {key}")),
        Dialect::Anthropic => header_value("x-api-key") == Some(key),
    }
}

/// Whether the n-th request (0-based) fails at `rate`: evenly spaced, deterministic.
pub fn fails(n: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor()
}

async fn chat(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    identified(Dialect::OpenAi, Api::Chat, req, body, state).await
}

async fn completions(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    identified(Dialect::OpenAi, Api::Completions, req, body, state).await
}

async fn embeddings(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    identified(Dialect::OpenAi, Api::Embeddings, req, body, state).await
}

async fn responses(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    answer(Dialect::Responses, Api::Responses, req, body, state).await
}

async fn messages(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    identified(Dialect::Anthropic, Api::Messages, req, body, state).await
}

async fn count_tokens(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    identified(Dialect::Anthropic, Api::CountTokens, req, body, state).await
}

/// [`answer`], with the dialect's request id header when `--request-ids` asks for it.
async fn identified(
    dialect: Dialect,
    api: Api,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let tag = state
        .behaviour()
        .request_ids
        .then(|| headers::request_id(dialect, state.ids.fetch_add(1, Ordering::Relaxed)));
    let mut response = answer(dialect, api, req, body, state).await;
    if let Some((name, value)) = tag {
        response.headers_mut().insert(name, value);
    }
    response
}

/// One request of `api` in `dialect` (counted as a chat request in the stats, whatever its
/// API).
async fn answer(
    dialect: Dialect,
    api: Api,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(key) = &state.api_key {
        if !authorized(dialect, &req, key) {
            let message = match dialect {
                Dialect::OpenAi | Dialect::Responses => "invalid upstream key",
                Dialect::Anthropic => "invalid x-api-key",
            };
            return dialect_error(dialect, 401, message);
        }
    }
    let mut request = match MockRequest::parse(api, &body) {
        Ok(r) => r,
        Err(message) => return dialect_error(dialect, 400, &message),
    };
    let behaviour = state.behaviour();
    request.cached_tokens = behaviour.cached_tokens.min(request.prompt_tokens);
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let failing = fails(n, behaviour.fail_rate);
    {
        let mut stats = state.stats();
        stats.requests += 1;
        stats.chat_requests += 1;
        stats.failures += u64::from(failing);
        stats.last_model = Some(request.model.clone());
        stats.last_api = Some(api.path());
        stats.last_anthropic_version = req
            .headers()
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        stats.last_stream = Some(request.stream);
        stats.last_include_usage = Some(request.include_usage);
        stats.last_traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        stats.last_headers = headers::seen(&req);
    }
    if failing && behaviour.fail_mode == FailMode::Hang {
        std::future::pending::<()>().await;
    }
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    if failing && behaviour.fail_mode == FailMode::Status {
        let mut response = dialect_error(dialect, behaviour.fail_status, "mock upstream failure");
        if let (429, Some(secs)) = (behaviour.fail_status, behaviour.retry_after) {
            if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        return response;
    }
    let id = match dialect {
        Dialect::OpenAi => format!("chatcmpl-up-{n}"),
        Dialect::Responses => format!("resp_up_{n}"),
        Dialect::Anthropic => format!("msg_mock_{n}"),
    };
    let created = now_unix();
    if !request.stream {
        return match (failing, behaviour.fail_mode) {
            (true, FailMode::Malformed) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .body("{\"id\": \"broken"),
            (true, FailMode::Drop) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .streaming(futures_util::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other("connection dropped by mock"))
                })),
            (true, FailMode::Oversize) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .streaming(endless(Bytes::from_static(b"{\"pad\":\""))),
            _ => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .body(request.completion(&id, created)),
        };
    }
    let mut events = request.stream_events(&id, created, behaviour.chunks);
    let faults = StreamFaults::of(dialect);
    match (failing, behaviour.fail_mode) {
        (true, FailMode::Malformed) => events = vec![Bytes::from_static(faults.malformed)],
        (true, FailMode::MalformedLate) => {
            events.truncate(faults.first_content);
            events.push(Bytes::from_static(faults.malformed_late));
            events.push(Bytes::from_static(faults.end));
        }
        (true, FailMode::NoDone) => {
            events.pop();
        }
        (true, FailMode::ErrorEvent) => {
            events.truncate(faults.first_content);
            events.push(Bytes::from_static(faults.error_event));
        }
        (true, FailMode::Oversize) => {
            events.truncate(faults.first_content);
            let head = futures_util::stream::iter(events.into_iter().map(Ok));
            let line = endless(Bytes::from_static(faults.oversize));
            return HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                .streaming(futures_util::StreamExt::chain(head, line));
        }
        _ => {}
    }
    let stall_after =
        (failing && behaviour.fail_mode == FailMode::Stall).then_some(faults.first_content);
    let drop_after =
        (failing && behaviour.fail_mode == FailMode::Drop).then_some(faults.drop_after);
    let delay = behaviour.chunk_delay;
    state.stats().streams_started += 1;
    let guard = StreamGuard(state.clone());
    let stream = futures_util::stream::unfold(
        (events.into_iter().enumerate(), drop_after, guard),
        move |(mut events, drop_after, guard)| async move {
            let (i, event) = events.next()?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if stall_after.is_some_and(|s| i >= s) {
                std::future::pending::<()>().await;
            }
            if drop_after.is_some_and(|d| i >= d) {
                // Pause first: the server flushes the events already yielded when the body
                // is pending, so the client really gets them before the connection breaks
                // (an error right away would discard them with the unflushed buffer).
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Some((
                    Err(std::io::Error::other("connection dropped by mock")),
                    (events, drop_after, guard),
                ));
            }
            Some((
                Ok::<Bytes, std::io::Error>(event),
                (events, drop_after, guard),
            ))
        },
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}

async fn models(state: web::Data<State>) -> HttpResponse {
    state.stats().requests += 1;
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(models_body(
            &["mock-upstream-model"],
            now_unix(),
            "mock-upstream",
        ))
}

/// Replaces the behaviour (fields left out take their defaults) and returns it.
async fn control(update: web::Json<serde_json::Value>, state: web::Data<State>) -> HttpResponse {
    match serde_json::from_value::<Behaviour>(update.into_inner()) {
        Ok(behaviour) => {
            if let Ok(mut current) = state.behaviour.lock() {
                *current = behaviour.clone();
            }
            state.counter.store(0, Ordering::Relaxed);
            HttpResponse::Ok().json(behaviour)
        }
        Err(e) => error_body(400, &e.to_string()),
    }
}

async fn stats(state: web::Data<State>) -> HttpResponse {
    let stats = state.stats();
    HttpResponse::Ok().json(&*stats)
}

#[cfg(test)]
mod tests {
    use super::{anthropic_error_type, fails};

    #[test]
    fn anthropic_error_types_follow_the_status() {
        let types: Vec<_> = [400, 401, 403, 404, 429, 500, 502, 529]
            .into_iter()
            .map(anthropic_error_type)
            .collect();
        assert_eq!(
            types,
            [
                "invalid_request_error",
                "authentication_error",
                "permission_error",
                "invalid_request_error",
                "rate_limit_error",
                "api_error",
                "api_error",
                "overloaded_error",
            ]
        );
    }

    #[test]
    fn failures_are_evenly_spaced() {
        let count = |rate| (0..100).filter(|n| fails(*n, rate)).count();
        assert_eq!(count(0.0), 0);
        assert_eq!(count(0.25), 25);
        assert_eq!(count(0.5), 50);
        assert_eq!(count(1.0), 100);
        assert!(!fails(0, 0.25) && !fails(1, 0.25) && !fails(2, 0.25) && fails(3, 0.25));
    }
}
