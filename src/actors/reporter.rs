//! `MetricsReporter`: the production [`Reporter`] the router reports to.
//!
//! It updates the request-path meters directly (a few atomic adds on series keyed by ids,
//! [`hot`]) and pushes the rest into the actors' [`Outbox`] — fire-and-forget, so the request
//! never waits for an actor (DESIGN §2), and batched, so it rarely wakes their thread.

use std::sync::Arc;

use super::outbox::{Outbox, Report};
use super::{Attempt, Completion, Finished};
use crate::board::{ModelId, ProviderId};
use crate::outcome::{AttemptRecord, CompletionRecord, Reporter};
use crate::providers::FailureReason;
use crate::telemetry::metrics::{hot, Labels, Meters};

pub struct MetricsReporter {
    pub meters: Arc<Meters>,
    /// The labels of the configuration the router serving the request was built from.
    pub labels: Arc<Labels>,
    /// To the breakers, health, anomaly and cost actors.
    pub outbox: Arc<Outbox>,
}

impl MetricsReporter {
    /// The meter updates of an attempt alone (no actor message). Public for the benchmark's
    /// split.
    pub fn measure_attempt(&self, r: &AttemptRecord) {
        let h = &self.meters.hot;
        let provider = r.provider.index() as u32;
        h.provider_requests.add(
            1,
            &hot::Attempt {
                provider,
                outcome: r.result.label(),
                reason: r.reason.map_or("none", FailureReason::label),
            },
        );
        h.provider_response_time
            .record(r.latency.as_secs_f64(), &hot::Provider(provider));
    }

    /// The meter updates of a request's end alone (no actor message).
    pub fn measure_completion(&self, r: &CompletionRecord) {
        let h = &self.meters.hot;
        // `provider="none"`: a request that ended before any provider was tried.
        let completion = hot::Completion {
            provider: r
                .provider
                .filter(|p| p.index() < self.labels.provider.len())
                .map(|p| p.index() as u32),
            model: r.model.index() as u32,
            api: r.api.label(),
        };
        h.model_requests.add(
            1,
            &hot::CompletionStatus {
                completion,
                value: r.end.label(),
            },
        );
        h.model_duration
            .record(r.duration.as_secs_f64(), &completion);
        if let Some(ttft) = r.time_to_first_token {
            h.time_to_first_token
                .record(ttft.as_secs_f64(), &completion);
        }
        h.overhead.record(
            r.duration.saturating_sub(r.upstream_wait).as_secs_f64(),
            &(),
        );
    }
}

impl Reporter for MetricsReporter {
    fn attempt(&self, r: &AttemptRecord) {
        if r.provider.index() >= self.labels.provider.len()
            || r.model.index() >= self.labels.model.len()
        {
            return;
        }
        self.measure_attempt(r);
        // A failure asks for a drain now: the breaker should see it without delay.
        let urgent = r.result.verdict() == Some(false);
        self.outbox.push(
            Report::Attempt(Attempt {
                provider: r.provider,
                model: r.model,
                result: r.result,
                latency: r.latency,
            }),
            urgent,
        );
    }

    fn failover(&self, from: ProviderId, _model: ModelId) {
        if from.index() < self.labels.provider.len() {
            self.meters
                .hot
                .provider_failovers
                .add(1, &hot::Provider(from.index() as u32));
        }
    }

    fn completion(&self, r: &CompletionRecord) {
        if r.model.index() >= self.labels.model.len() {
            return;
        }
        self.measure_completion(r);
        if let Some(ok) = r.end.available() {
            self.outbox
                .push(Report::Finished(Finished { model: r.model, ok }), false);
        }
        // Price what a provider answered (usage, or an unpriced answer).
        if let (Some(provider), true) = (r.provider, r.answered) {
            self.outbox.push(
                Report::Completion(Completion {
                    provider,
                    model: r.model,
                    api: r.api,
                    usage: r.usage,
                }),
                false,
            );
        }
    }
}
