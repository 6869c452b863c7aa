//! Picks providers for a model and fails over between them.
//!
//! The router is built once from the configuration and shared by every HTTP worker. For a
//! request it walks the model's providers in configured order — healthy ones first, degraded
//! ones (health score below [`DEGRADED_BELOW`]) after — skipping any whose circuit breaker
//! refuses it (read from a lock-free [`ProviderState`]). A retryable failure (connect error,
//! timeout, 408/429/5xx, malformed answer, a stream that dies before its first chunk) moves on
//! to the next provider within `routing.max_attempts`; a non-retryable 4xx is the client's
//! answer. Every attempt and every finished completion is reported to the [`Observer`].

mod relay;
pub mod request;
pub mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use relay::Relay;
pub use state::{Admission, Phase, ProviderState};

use crate::config::Config;
use crate::errors::ApiError;
use crate::outcome::{AttemptRecord, AttemptResult, CompletionRecord, Observer};
use crate::providers::{retryable_status, Provider, ProviderError, Reply};
use crate::telemetry::client_span::AttemptSpan;
use request::{rewrite, ChatHead};

/// Providers scoring below this are tried after the healthy ones.
pub const DEGRADED_BELOW: f32 = 0.5;

/// One configured provider.
pub struct ProviderSlot {
    pub name: Arc<str>,
    pub client: Provider,
    pub state: Arc<ProviderState>,
}

/// Prices of a model in USD per token.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub input_per_token: f64,
    pub output_per_token: f64,
}

/// One configured model.
pub struct ModelRoute {
    pub id: Arc<str>,
    /// Provider index and the model name to send it (when it differs from `id`).
    pub candidates: Vec<(usize, Option<Arc<str>>)>,
    pub price: Price,
    pub owned_by: Arc<str>,
}

/// The answer to a chat request.
pub enum ChatReply {
    /// A whole JSON answer from a provider, byte for byte.
    Json {
        body: Bytes,
        /// Time spent waiting on upstreams, every attempt included.
        upstream_wait: Duration,
    },
    /// A provider refused the request (non-retryable 4xx): its status and body as they came.
    Passthrough {
        status: u16,
        body: Bytes,
        content_type: Option<String>,
        /// Time spent waiting on upstreams, every attempt included.
        upstream_wait: Duration,
    },
    /// A stream, relayed as it arrives.
    Stream(Box<Relay>),
}

pub struct Router {
    providers: Vec<ProviderSlot>,
    models: Vec<ModelRoute>,
    by_id: HashMap<Box<str>, usize>,
    max_attempts: u32,
    observer: Arc<dyn Observer>,
}

impl Router {
    /// Builds every provider client once.
    pub fn new(config: &Config, observer: Arc<dyn Observer>) -> Result<Self, String> {
        let states: Vec<_> = config
            .providers
            .keys()
            .map(|_| Arc::new(ProviderState::default()))
            .collect();
        Self::with_states(config, observer, &states)
    }

    /// Like [`Router::new`], on provider states created (and published into) elsewhere, one
    /// per provider in the configuration's order.
    pub fn with_states(
        config: &Config,
        observer: Arc<dyn Observer>,
        states: &[Arc<ProviderState>],
    ) -> Result<Self, String> {
        let mut providers = Vec::with_capacity(config.providers.len());
        let mut index = HashMap::new();
        for (name, provider) in &config.providers {
            index.insert(name.as_str(), providers.len());
            providers.push(ProviderSlot {
                name: Arc::from(name.as_str()),
                client: Provider::from_config(provider)
                    .map_err(|e| format!("provider {name}: {e}"))?,
                state: states
                    .get(providers.len())
                    .cloned()
                    .ok_or_else(|| format!("provider {name}: no state"))?,
            });
        }
        let mut models = Vec::with_capacity(config.models.len());
        let mut by_id = HashMap::new();
        for (id, model) in &config.models {
            let candidates = model
                .providers
                .iter()
                .map(|p| {
                    let upstream = model
                        .upstream_model
                        .get(p)
                        .filter(|name| *name != id)
                        .map(|name| Arc::from(name.as_str()));
                    index
                        .get(p.as_str())
                        .map(|i| (*i, upstream))
                        .ok_or_else(|| format!("model {id}: unknown provider {p}"))
                })
                .collect::<Result<_, _>>()?;
            by_id.insert(id.clone().into_boxed_str(), models.len());
            models.push(ModelRoute {
                id: Arc::from(id.as_str()),
                candidates,
                price: Price {
                    input_per_token: model.input_price_per_1m / 1e6,
                    output_per_token: model.output_price_per_1m / 1e6,
                },
                owned_by: Arc::from(model.owned_by.as_deref().unwrap_or("gatewayz")),
            });
        }
        Ok(Self {
            providers,
            models,
            by_id,
            max_attempts: config.routing.max_attempts,
            observer,
        })
    }

    pub fn providers(&self) -> &[ProviderSlot] {
        &self.providers
    }

    pub fn models(&self) -> &[ModelRoute] {
        &self.models
    }

    /// Index of a configured model.
    pub fn model_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Routes one chat completion. `started` is when the request arrived. Each attempt runs
    /// in its own client span, a child of the caller's current (server) span.
    pub async fn chat(
        &self,
        body: Bytes,
        head: &ChatHead<'_>,
        started: Instant,
    ) -> Result<ChatReply, ApiError> {
        let model = self
            .model_index(&head.model)
            .ok_or_else(|| ApiError::ModelNotFound(shorten(&head.model)))?;
        let route = &self.models[model];
        // Ask the upstream for usage when the client did not; the relay cuts it back out.
        let add_usage = head.stream && !head.include_usage;
        let degraded = self.degraded_mask(route);
        let mut attempts = 0u32;
        let mut upstream_wait = Duration::ZERO;
        let mut last_error: Option<ProviderError> = None;
        let total = route.candidates.len();
        let order = (0..total)
            .filter(|i| !is_set(degraded, *i))
            .chain((0..total).filter(|i| is_set(degraded, *i)));
        for (tried, position) in order.enumerate() {
            if attempts >= self.max_attempts {
                break;
            }
            let (provider, upstream_model) = &route.candidates[position];
            let slot = &self.providers[*provider];
            if slot.state.try_admit().is_none() {
                continue;
            }
            attempts += 1;
            let body = rewrite(&body, upstream_model.as_deref(), add_usage);
            let span = AttemptSpan::start(
                &slot.name,
                upstream_model.as_deref().unwrap_or(&route.id),
                slot.client.address(),
                head.stream,
            );
            let trace = span.upstream_trace();
            let sent = Instant::now();
            let result = span
                .instrument(slot.client.chat(body, head.stream, &trace))
                .await;
            let latency = sent.elapsed();
            upstream_wait += latency;
            let error = match result {
                Ok(reply) => {
                    self.observer.attempt(&AttemptRecord {
                        provider: *provider,
                        provider_name: &slot.name,
                        model,
                        model_id: &route.id,
                        result: AttemptResult::Success,
                        error_kind: None,
                        status: Some(200),
                        latency,
                        failed_over: false,
                    });
                    let attempt = Attempt {
                        provider: *provider,
                        model,
                        sent,
                        span,
                    };
                    return Ok(self.reply(reply, attempt, head, started, upstream_wait));
                }
                Err(error) => error,
            };
            let more = error.retryable() && attempts < self.max_attempts && tried + 1 < total;
            self.observer.attempt(&AttemptRecord {
                provider: *provider,
                provider_name: &slot.name,
                model,
                model_id: &route.id,
                result: match (&error, error.retryable()) {
                    (ProviderError::Timeout, _) => AttemptResult::Timeout,
                    (_, true) => AttemptResult::Error,
                    (_, false) => AttemptResult::Rejected,
                },
                error_kind: Some(error.kind()),
                status: match &error {
                    ProviderError::Status { status, .. } => Some(*status),
                    _ => None,
                },
                latency,
                failed_over: more,
            });
            span.in_scope(|| {
                tracing::warn!(
                    provider = %slot.name,
                    model = %route.id,
                    error = %error,
                    failover = more,
                    "provider attempt failed"
                )
            });
            span.failed(&error);
            match error {
                ProviderError::Status {
                    status,
                    body,
                    content_type,
                } if !retryable_status(status) => {
                    self.observer.completion(&CompletionRecord {
                        provider: *provider,
                        provider_name: &slot.name,
                        model,
                        model_id: &route.id,
                        stream: head.stream,
                        usage: None,
                        duration: started.elapsed(),
                        time_to_first_token: None,
                        upstream_wait,
                        status: "rejected",
                    });
                    return Ok(ChatReply::Passthrough {
                        status,
                        body,
                        content_type,
                        upstream_wait,
                    });
                }
                error => last_error = Some(error),
            }
        }
        Err(match last_error {
            None => ApiError::NoProviderAvailable(format!(
                "no provider is available for model `{}`: every circuit breaker is open",
                route.id
            )),
            Some(ProviderError::Timeout) => ApiError::UpstreamTimeout(format!(
                "the upstream provider timed out after {attempts} attempt(s)"
            )),
            Some(ProviderError::Status { status: 429, .. }) => ApiError::RateLimited(
                "every provider for this model is rate limiting; retry later".into(),
            ),
            Some(error) => ApiError::UpstreamFailed(format!(
                "the upstream provider failed after {attempts} attempt(s): {}",
                error.kind()
            )),
        })
    }

    fn reply(
        &self,
        reply: Reply,
        attempt: Attempt,
        head: &ChatHead<'_>,
        started: Instant,
        upstream_wait: Duration,
    ) -> ChatReply {
        let Attempt {
            provider,
            model,
            sent,
            span,
        } = attempt;
        let route = &self.models[model];
        let slot = &self.providers[provider];
        match reply {
            Reply::Json {
                body,
                usage,
                response_model,
            } => {
                span.answered(response_model.as_deref(), usage);
                self.observer.completion(&CompletionRecord {
                    provider,
                    provider_name: &slot.name,
                    model,
                    model_id: &route.id,
                    stream: false,
                    usage,
                    duration: started.elapsed(),
                    time_to_first_token: None,
                    upstream_wait,
                    status: "success",
                });
                ChatReply::Json {
                    body,
                    upstream_wait,
                }
            }
            Reply::Stream { first, rest } => ChatReply::Stream(Box::new(Relay::new(
                rest,
                relay::Context {
                    span: span.streaming(),
                    sent,
                    observer: self.observer.clone(),
                    provider,
                    provider_name: slot.name.clone(),
                    model,
                    model_id: route.id.clone(),
                    started,
                    upstream_wait,
                    strip_usage: !head.include_usage,
                },
                first,
            ))),
        }
    }

    /// Bit i set: candidate i is degraded.
    fn degraded_mask(&self, route: &ModelRoute) -> u64 {
        route
            .candidates
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, (p, _))| self.providers[*p].state.health() < DEGRADED_BELOW)
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }
}

/// The attempt that answered.
struct Attempt {
    provider: usize,
    model: usize,
    /// When it was sent (time to first chunk is measured from here).
    sent: Instant,
    span: AttemptSpan,
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
