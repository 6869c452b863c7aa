//! What happens when a request that reached the router ends: its access line is written
//! ([`Access`]), its key's limits settle the real tokens and cost ([`Permit`]), and its usage
//! becomes one ledger record ([`Entry`]). One `outcome::Settle` told once by the router's
//! `Ending`, right after the reporter — after the answer (a stream's last event included),
//! never awaited by the client.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::HeaderValue;
use opentelemetry::TraceId;

use super::auth::ClientKey;
use crate::catalog::Catalog;
use crate::config::Api;
use crate::ledger::{unix_ms, Ledger, UsageRecord};
use crate::outcome::{CompletionRecord, Settle};
use crate::state::Permit;

/// The request's trace id, as the server span started it (a request extension, so the
/// handler does not look the span up again).
#[derive(Debug, Clone, Copy)]
pub struct RequestTrace(pub TraceId);

/// A trace id in lowercase hex, formatted only when a line is written.
struct Hex(TraceId);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = crate::telemetry::traces::propagation::trace_id_hex(self.0);
        f.write_str(std::str::from_utf8(&hex).unwrap_or("-"))
    }
}

/// Who asked for what: the access line's facts the edge knows, shared with the ledger entry.
pub struct Access {
    /// Write the access line (`[telemetry] access_log`).
    pub log: bool,
    pub catalog: Arc<Catalog>,
    pub api: Api,
    /// The gateway's request id (`x-request-id`).
    pub request_id: Option<HeaderValue>,
    pub trace_id: Option<TraceId>,
    pub key: Option<Arc<ClientKey>>,
    /// The console's Logs ring, when the console is on.
    pub recent: Option<Arc<super::console::recent::Recent>>,
}

impl Access {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The request's line on the console's Logs page.
    fn remember(&self, recent: &super::console::recent::Recent, record: &CompletionRecord) {
        let (input_tokens, output_tokens) = record
            .usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        recent.push(super::console::recent::Line {
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            api: self.api.label(),
            status: record.end.label(),
            model: self.catalog.model(record.model).name.clone(),
            provider: record
                .provider
                .map(|p| self.catalog.provider(p).name.clone()),
            key: self.key.as_ref().map(|k| k.name.clone()),
            latency_ms: ms(record.duration),
            ttft_ms: record.time_to_first_token.map(ms),
            input_tokens,
            output_tokens,
            trace_id: self.trace_id,
            request_id: self.request_id.clone(),
        });
    }

    /// The access line: one per routed request, at its end, its message a literal per API (a
    /// formatted message costs every log layer a formatting pass). No prompt, no secret. Each
    /// field costs every log layer a visit and a formatting (~1,000 instructions on stderr):
    /// the line carries what an operator filters and joins on, and `ttft_ms` only for
    /// streams.
    fn write(&self, record: &CompletionRecord) {
        let model = &*self.catalog.model(record.model).name;
        let provider = record.provider.map(|p| &*self.catalog.provider(p).name);
        let (input_tokens, output_tokens) = record
            .usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        let key = self.key.as_ref().map(|k| &*k.name);
        let trace_id = self.trace_id.map(|t| tracing::field::display(Hex(t)));
        let request_id = self.request_id();
        macro_rules! line {
            ($message:literal) => {
                tracing::info!(
                    status = record.end.label(),
                    latency_ms = ms(record.duration),
                    ttft_ms = record.time_to_first_token.map(ms),
                    provider,
                    model,
                    input_tokens,
                    output_tokens,
                    key,
                    trace_id,
                    request_id,
                    $message
                )
            };
        }
        match self.api {
            Api::Chat => line!("chat completion answered"),
            Api::Completions => line!("text completion answered"),
            Api::Embeddings => line!("embeddings request answered"),
            Api::Messages => line!("anthropic message answered"),
            Api::CountTokens => line!("anthropic token count answered"),
            Api::Responses => line!("response answered"),
        }
    }
}

/// The request's ledger entry.
pub struct Entry {
    pub ledger: Arc<Ledger>,
}

impl Entry {
    fn usage(access: &Access, record: &CompletionRecord) -> UsageRecord {
        let catalog = &access.catalog;
        let model = catalog.model(record.model);
        let (input, output, cached) = record.usage.map_or((0, 0, 0), |u| {
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens)
        });
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        UsageRecord {
            id: rand::random(),
            at_ms: unix_ms(SystemTime::now()),
            request_id: Arc::from(access.request_id().unwrap_or("unknown")),
            trace_id: access.trace_id.map(|t| Arc::from(Hex(t).to_string())),
            key: access.key.as_ref().map(|k| k.name.clone()),
            team: access.key.as_ref().and_then(|k| k.team.clone()),
            model: model.name.clone(),
            provider: record.provider.map(|p| catalog.provider(p).name.clone()),
            api: record.api.label(),
            status: record.end.label(),
            stream: record.stream,
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            cost_usd: if record.answered {
                model.price.cost(input, output)
            } else {
                0.0
            },
            duration_ms: ms(record.duration),
            upstream_ms: ms(record.upstream_wait),
            overhead_ms: ms(record.duration.saturating_sub(record.upstream_wait)),
            ttft_ms: record.time_to_first_token.map(ms),
        }
    }
}

/// The request's end: the access line, the limits' settlement and the ledger's record.
pub struct Finish {
    pub access: Access,
    pub permit: Option<Permit>,
    pub entry: Option<Entry>,
}

impl Settle for Finish {
    fn settle(self: Box<Self>, record: &CompletionRecord) {
        let Finish {
            access,
            permit,
            entry,
        } = *self;
        if access.log {
            access.write(record);
        }
        if let Some(recent) = &access.recent {
            access.remember(recent, record);
        }
        if let Some(permit) = permit {
            Box::new(permit).settle(record);
        }
        if let Some(entry) = entry {
            entry.ledger.record(Entry::usage(&access, record));
        }
    }
}
