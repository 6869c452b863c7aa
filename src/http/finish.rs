//! What happens when a request that reached the router ends: its key's limits settle the
//! real tokens and cost ([`Permit`]), and its usage becomes one ledger record. One
//! `outcome::Settle` told once by the router's `Ending`, right after the reporter — after
//! the answer, never awaited by the client.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::catalog::Catalog;
use crate::ledger::{unix_ms, Ledger, UsageRecord};
use crate::outcome::{CompletionRecord, Settle};
use crate::state::Permit;

/// The request's ledger entry, as far as the edge knows it.
pub struct Entry {
    pub ledger: Arc<Ledger>,
    pub catalog: Arc<Catalog>,
    pub request_id: Arc<str>,
    pub trace_id: Option<Arc<str>>,
    /// The key's name and team.
    pub key: Option<(Arc<str>, Option<Arc<str>>)>,
}

impl Entry {
    /// The trace id of the current (server) span, when it is traced.
    pub fn current_trace_id() -> Option<Arc<str>> {
        let context = tracing::Span::current().context();
        let id = context.span().span_context().trace_id();
        (id != opentelemetry::TraceId::INVALID).then(|| {
            let hex = crate::telemetry::traces::propagation::trace_id_hex(id);
            Arc::from(&*String::from_utf8_lossy(&hex))
        })
    }

    fn usage(&self, record: &CompletionRecord) -> UsageRecord {
        let model = self.catalog.model(record.model);
        let (input, output, cached) = record.usage.map_or((0, 0, 0), |u| {
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens)
        });
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        UsageRecord {
            id: rand::random(),
            at_ms: unix_ms(SystemTime::now()),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            key: self.key.as_ref().map(|(k, _)| k.clone()),
            team: self.key.as_ref().and_then(|(_, t)| t.clone()),
            model: model.name.clone(),
            provider: record
                .provider
                .map(|p| self.catalog.provider(p).name.clone()),
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

/// The request's end: the limits' settlement and the ledger's record.
pub struct Finish {
    pub permit: Option<Permit>,
    pub entry: Option<Entry>,
}

impl Finish {
    /// `None` when there is nothing to tell (no key's limits, no ledger).
    pub fn boxed(self) -> Option<Box<dyn Settle>> {
        match self {
            Self {
                permit: None,
                entry: None,
            } => None,
            // Only limits: the permit itself, one allocation as before.
            Self {
                permit: Some(permit),
                entry: None,
            } => Some(Box::new(permit)),
            finish => Some(Box::new(finish)),
        }
    }
}

impl Settle for Finish {
    fn settle(self: Box<Self>, record: &CompletionRecord) {
        let Finish { permit, entry } = *self;
        if let Some(permit) = permit {
            Box::new(permit).settle(record);
        }
        if let Some(entry) = entry {
            entry.ledger.record(entry.usage(record));
        }
    }
}
