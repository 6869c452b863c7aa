//! Picks providers for a model and fails over between them.
//!
//! The router is built once from the configuration and shared by every HTTP worker. For a
//! request it walks the model's providers in configured order — healthy ones first, degraded
//! ones (health score below [`DEGRADED_BELOW`]) after — skipping any whose circuit breaker
//! refuses it (read from a lock-free [`ProviderState`]) and any that answered 429 until its
//! `Retry-After`. A failure of the provider (connect error, timeout, 401/403 on the gateway's
//! credentials, 408/429/5xx, malformed or oversized answer, a stream that breaks before its
//! first content) moves on to the next provider within `routing.max_attempts`; a 4xx about
//! the request itself is the client's answer. Every attempt and every request's end is
//! reported to the [`Reporter`]; the end exactly once, through an [`Ending`].

mod relay;
pub mod request;
mod span;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;

pub use relay::Relay;
pub use span::{AttemptSpan, StreamSpan};

use crate::board::{Board, InFlight, ModelId, ProviderId};
use crate::catalog::{Catalog, Model};
use crate::config::Api;
use crate::errors::{ApiError, RateLimit};
use crate::outcome::{AttemptRecord, AttemptResult, Ending, Reporter, RequestEnd, Settle};
use crate::providers::{retryable_status, Forwarded, Provider, ProviderError, Reply, Want};
use request::{rewrite, ChatHead};

/// Providers scoring below this are tried after the healthy ones.
pub const DEGRADED_BELOW: f32 = 0.5;
/// How long a provider that answered 429 without `Retry-After` is skipped.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause a provider's `Retry-After` can impose.
pub const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(300);

/// When a request arrived, and when the gateway gives up on it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub started: Instant,
    pub deadline: Instant,
}

/// A provider's client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("provider {provider}: {message}")]
pub struct ClientError {
    pub provider: Arc<str>,
    pub message: String,
}

/// The answer to a chat request.
pub enum ChatReply {
    /// A whole JSON answer from a provider, byte for byte.
    Json {
        body: Bytes,
        /// Time spent waiting on upstreams, every attempt included.
        upstream_wait: Duration,
        /// The upstream's id of the request, when it sent one.
        request_id: Option<HeaderValue>,
    },
    /// A provider refused the request (non-retryable 4xx): its status and body as they came.
    Passthrough {
        status: u16,
        body: Bytes,
        content_type: Option<String>,
        /// Time spent waiting on upstreams, every attempt included.
        upstream_wait: Duration,
        /// The upstream's id of the request, when it sent one.
        request_id: Option<HeaderValue>,
    },
    /// A stream, relayed as it arrives.
    Stream(Box<Relay>),
}

impl ChatReply {
    /// The upstream's id of the request, when the provider that answered sent one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        match self {
            Self::Json { request_id, .. } | Self::Passthrough { request_id, .. } => {
                request_id.as_ref()
            }
            Self::Stream(relay) => relay.request_id(),
        }
    }
}

pub struct Router {
    catalog: Arc<Catalog>,
    /// Breaker phases, health scores and rate-limit pauses, read before each attempt.
    board: Arc<Board>,
    /// One client per provider, by id, built once.
    clients: Vec<Provider>,
    max_attempts: u32,
    reporter: Arc<dyn Reporter>,
}

impl Router {
    /// Builds every provider client once.
    pub fn new(
        catalog: Arc<Catalog>,
        board: Arc<Board>,
        max_attempts: u32,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, ClientError> {
        let clients = catalog
            .all_providers()
            .map(|(_, p)| {
                Provider::new(&p.settings).map_err(|message| ClientError {
                    provider: p.name.clone(),
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            catalog,
            board,
            clients,
            max_attempts,
            reporter,
        })
    }

    /// Routes one chat completion. `started` is when the request arrived, `deadline` when the
    /// gateway gives up on it (`server.request_timeout`; a stream already relaying is bounded
    /// by its idle timeout instead). Each attempt runs in its own client span, a child of the
    /// caller's current (server) span. The request's end is recorded exactly once, by the
    /// [`Ending`] created here (or the stream relay it is handed to), which then tells
    /// `settle` (the key's admission against its limits; dropped unsettled when the request
    /// is refused before routing).
    pub async fn serve(
        &self,
        api: Api,
        body: Bytes,
        head: &ChatHead<'_>,
        Timing { started, deadline }: Timing,
        forwarded: &Forwarded,
        settle: Option<Box<dyn Settle>>,
    ) -> Result<ChatReply, ApiError> {
        let model = self
            .catalog
            .model_id(&head.model)
            .ok_or_else(|| ApiError::ModelNotFound(shorten(&head.model)))?;
        if !self.catalog.model(model).serves(api) {
            return Err(ApiError::BadRequest(format!(
                "the model `{}` does not serve /v1/{}",
                shorten(&head.model),
                api.path()
            )));
        }
        let candidates = &self.catalog.model(model).candidates;
        if !candidates
            .iter()
            .any(|c| self.clients[c.provider.index()].serves(api))
        {
            return Err(ApiError::BadRequest(format!(
                "no provider of the model `{}` serves /v1/{}{}",
                shorten(&head.model),
                api.path(),
                if api == Api::CountTokens {
                    " (only Anthropic providers count tokens)"
                } else {
                    ""
                }
            )));
        }
        let mut ending = Ending::new(self.reporter.clone(), api, model, head.stream, started);
        if let Some(settle) = settle {
            ending.settle_with(settle);
        }
        let routed = self.route(api, &body, head, model, &mut ending, forwarded);
        match tokio::time::timeout_at(deadline.into(), routed).await {
            Ok(reply) => reply,
            Err(_) => {
                ending.end(RequestEnd::TimedOut);
                Err(ApiError::UpstreamTimeout(
                    "the request exceeded the gateway's request timeout".into(),
                ))
            }
        }
    }

    /// Walks the candidates: healthy ones first, skipping open breakers and rate-limited
    /// providers, failing over on the provider's failures within `routing.max_attempts`.
    async fn route(
        &self,
        api: Api,
        body: &Bytes,
        head: &ChatHead<'_>,
        model: ModelId,
        ending: &mut Ending,
        forwarded: &Forwarded,
    ) -> Result<ChatReply, ApiError> {
        let route = self.catalog.model(model);
        let degraded = self.degraded_mask(route);
        let total = route.candidates.len();
        let order = (0..total)
            .filter(|i| !is_set(degraded, *i))
            .chain((0..total).filter(|i| is_set(degraded, *i)));
        let mut attempts = 0u32;
        // The last failed attempt: its provider and error.
        let mut failed: Option<(ProviderId, ProviderError)> = None;
        // The soonest a rate-limited candidate takes requests again.
        let mut retry_after: Option<Duration> = None;
        for position in order {
            if attempts >= self.max_attempts {
                break;
            }
            let candidate = &route.candidates[position];
            let provider = candidate.provider;
            if !self.clients[provider.index()].serves(api) {
                continue;
            }
            let state = self.board.state(provider);
            if let Some(wait) = state.rate_limited() {
                retry_after = Some(retry_after.map_or(wait, |r| r.min(wait)));
                continue;
            }
            if state.try_admit().is_none() {
                continue;
            }
            if let Some((from, _)) = &failed {
                self.reporter.failover(*from, model);
            }
            attempts += 1;
            ending.provider(provider);
            let attempt = Target {
                provider,
                model,
                upstream_model: candidate.upstream_model.as_deref(),
            };
            let error = match self
                .attempt(api, body, head, attempt, ending, forwarded)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if let ProviderError::Status {
                status: 429,
                retry_after: asked,
                ..
            } = &error
            {
                let pause = asked
                    .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE)
                    .min(MAX_RATE_LIMIT_PAUSE);
                state.rate_limit_until(Instant::now() + pause);
                retry_after = Some(retry_after.map_or(pause, |r| r.min(pause)));
            }
            failed = Some((provider, error));
        }
        Err(self.give_up(route, failed, retry_after, attempts, ending))
    }

    /// One attempt. A JSON answer or a passthrough is recorded here; a stream's attempt is
    /// recorded by its relay when the stream is over. A failure is recorded and returned for
    /// the caller to fail over.
    async fn attempt(
        &self,
        api: Api,
        body: &Bytes,
        head: &ChatHead<'_>,
        target: Target<'_>,
        ending: &mut Ending,
        forwarded: &Forwarded,
    ) -> Result<ChatReply, ProviderError> {
        let Target {
            provider,
            model,
            upstream_model,
        } = target;
        let route = self.catalog.model(model);
        let name = &self.catalog.provider(provider).name;
        let client = &self.clients[provider.index()];
        // Ask the upstream for usage when the client did not (and the provider allows it): the
        // relay cuts it back out. An API whose streams always report usage (Responses) has
        // `include_usage` set, so it is neither asked for nor cut.
        let add_usage = head.stream
            && !head.include_usage
            && !api.reports_stream_usage()
            && client.injects_stream_usage();
        let body = rewrite(body, upstream_model, add_usage);
        let span = AttemptSpan::start(
            api.operation(),
            name,
            upstream_model.unwrap_or(&route.name),
            client.address(),
            head.stream,
        );
        let trace = span.upstream_trace();
        let in_flight = InFlight::enter(&self.board.states[provider.index()]);
        let sent = Instant::now();
        let want = if head.stream {
            Want::Stream {
                strip_usage: !head.include_usage,
            }
        } else {
            Want::Json
        };
        // Not entered while it runs (nothing in the exchange logs; an enter and an exit on
        // every poll cost ~6,000 instructions a JSON request): its own log line enters it.
        let result = client.call(api, body, want, &trace, forwarded).await;
        let latency = sent.elapsed();
        ending.add_upstream_wait(latency);
        let record = |result, reason| AttemptRecord {
            provider,
            model,
            result,
            reason,
            latency,
        };
        match result {
            Ok(Reply::Stream(upstream)) => Ok(ChatReply::Stream(Box::new(Relay::new(
                upstream,
                relay::Context {
                    span: span.streaming(),
                    sent,
                    latency,
                    reporter: self.reporter.clone(),
                    provider,
                    provider_name: name.clone(),
                    model,
                    model_name: route.name.clone(),
                    ending: ending.hand_off(),
                    in_flight,
                },
            )))),
            Ok(Reply::Json {
                body,
                usage,
                response_model,
                request_id,
            }) => {
                self.reporter.attempt(&record(AttemptResult::Success, None));
                span.answered(response_model.as_deref(), usage);
                ending.answered(usage);
                ending.end(RequestEnd::Served);
                Ok(ChatReply::Json {
                    body,
                    upstream_wait: ending.upstream_wait(),
                    request_id,
                })
            }
            Err(error) => {
                let reason = error.reason();
                let result = match (&error, error.retryable()) {
                    (ProviderError::Timeout, _) => AttemptResult::Timeout,
                    (ProviderError::Status { status: 429, .. }, _) => AttemptResult::RateLimited,
                    (_, true) => AttemptResult::Error,
                    (_, false) => AttemptResult::Rejected,
                };
                self.reporter.attempt(&record(result, Some(reason)));
                span.in_scope(|| {
                    tracing::warn!(
                        provider = %name,
                        model = %route.name,
                        error = %error,
                        reason = reason.label(),
                        "provider attempt failed"
                    )
                });
                span.failed(&error);
                match error {
                    ProviderError::Status {
                        status,
                        body,
                        content_type,
                        request_id,
                        ..
                    } if !retryable_status(status) => {
                        ending.end(RequestEnd::PassedThrough);
                        Ok(ChatReply::Passthrough {
                            status,
                            body,
                            content_type,
                            upstream_wait: ending.upstream_wait(),
                            request_id,
                        })
                    }
                    error => Err(error),
                }
            }
        }
    }

    /// The client's error when no attempt succeeded, and the request's end.
    fn give_up(
        &self,
        route: &Model,
        failed: Option<(ProviderId, ProviderError)>,
        retry_after: Option<Duration>,
        attempts: u32,
        ending: &mut Ending,
    ) -> ApiError {
        let rate_limited = |retry_after: Option<Duration>| {
            ApiError::RateLimited(RateLimit {
                message: format!(
                    "every provider for model `{}` is rate limiting; retry later",
                    route.name
                ),
                retry_after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
                quotas: Default::default(),
            })
        };
        let (end, error) = match failed {
            None if retry_after.is_some() => (RequestEnd::RateLimited, rate_limited(retry_after)),
            None => (
                RequestEnd::NoProvider,
                ApiError::NoProviderAvailable(format!(
                    "no provider is available for model `{}`: every circuit breaker is open",
                    route.name
                )),
            ),
            Some((_, ProviderError::Status { status: 429, .. })) => {
                (RequestEnd::RateLimited, rate_limited(retry_after))
            }
            Some((_, ProviderError::Timeout)) => (
                RequestEnd::TimedOut,
                ApiError::UpstreamTimeout(format!(
                    "the upstream provider timed out after {attempts} attempt(s)"
                )),
            ),
            Some((provider, ProviderError::Status { status, .. }))
                if matches!(status, 401 | 403) =>
            {
                (
                    RequestEnd::Failed,
                    ApiError::UpstreamFailed(format!(
                        "provider `{}` refused the gateway's credentials (HTTP {status}) and no \
                         other provider could serve the request; the gateway's operator must \
                         fix that provider's api_key",
                        self.catalog.provider(provider).name
                    )),
                )
            }
            Some((_, error)) => (
                RequestEnd::Failed,
                ApiError::UpstreamFailed(format!(
                    "the upstream provider failed after {attempts} attempt(s): {}",
                    error.kind()
                )),
            ),
        };
        ending.end(end);
        error
    }

    /// Bit i set: candidate i is degraded.
    fn degraded_mask(&self, route: &Model) -> u64 {
        route
            .candidates
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, c)| self.board.state(c.provider).health() < DEGRADED_BELOW)
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }
}

/// Where an attempt goes: which provider, for which model, under which upstream name.
#[derive(Clone, Copy)]
struct Target<'a> {
    provider: ProviderId,
    model: ModelId,
    upstream_model: Option<&'a str>,
}

fn is_set(mask: u64, i: usize) -> bool {
    i < 64 && mask & (1 << i) != 0
}

/// A client-supplied name, cut to a length fit for an error message.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(128) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}
