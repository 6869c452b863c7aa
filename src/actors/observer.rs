//! `MetricsObserver`: the production [`Observer`] the router reports to.
//!
//! It updates the request-path meters directly (a few atomic adds, attributes in one fixed
//! order) and pushes the rest into the actors' [`Outbox`] — fire-and-forget, so the request
//! never waits for an actor (DESIGN §2), and batched, so it rarely wakes their thread.

use std::sync::Arc;

use opentelemetry::KeyValue;

use super::outbox::{Event, Outbox};
use super::{Attempt, Completion, Finished};
use crate::outcome::{AttemptRecord, AttemptResult, CompletionRecord, Observer};
use crate::telemetry::metrics::Meters;

pub struct MetricsObserver {
    pub meters: Arc<Meters>,
    /// To the breakers, health, anomaly and cost actors.
    pub outbox: Arc<Outbox>,
}

impl MetricsObserver {
    /// The meter updates of an attempt alone (no actor message); returns whether it ended the
    /// request with a provider-side failure. Public for the benchmark's split.
    pub fn measure_attempt(&self, r: &AttemptRecord<'_>) -> bool {
        let m = &self.meters;
        let (Some(p), Some(model)) = (m.provider_kv.get(r.provider), m.model_kv.get(r.model))
        else {
            return false;
        };
        m.provider_requests
            .add(1, &[p.clone(), KeyValue::new("outcome", r.result.label())]);
        m.provider_response_time
            .record(r.latency.as_secs_f64(), std::slice::from_ref(p));
        if r.failed_over {
            m.provider_failovers.add(1, std::slice::from_ref(p));
        }
        // The last attempt of a request failed on the provider side: the request is over.
        let last_failure = match r.result {
            AttemptResult::Error if !r.failed_over => Some("upstream_error"),
            AttemptResult::Timeout if !r.failed_over => Some("timeout"),
            _ => None,
        };
        if let Some(status) = last_failure {
            m.model_requests.add(
                1,
                &[p.clone(), model.clone(), KeyValue::new("status", status)],
            );
        }
        last_failure.is_some()
    }

    /// The meter updates of a completion alone (no actor message).
    pub fn measure_completion(&self, r: &CompletionRecord<'_>) {
        let m = &self.meters;
        let (Some(p), Some(model)) = (m.provider_kv.get(r.provider), m.model_kv.get(r.model))
        else {
            return;
        };
        let pm = [p.clone(), model.clone()];
        m.model_requests.add(
            1,
            &[p.clone(), model.clone(), KeyValue::new("status", r.status)],
        );
        m.model_duration.record(r.duration.as_secs_f64(), &pm);
        if let Some(ttft) = r.time_to_first_token {
            m.time_to_first_token.record(ttft.as_secs_f64(), &pm);
        }
        m.overhead.record(
            r.duration.saturating_sub(r.upstream_wait).as_secs_f64(),
            &[],
        );
    }
}

impl Observer for MetricsObserver {
    fn attempt(&self, r: &AttemptRecord<'_>) {
        if r.provider >= self.meters.provider_kv.len() || r.model >= self.meters.model_kv.len() {
            return;
        }
        let ended_failed = self.measure_attempt(r);
        // A failure asks for a drain now: the breaker should see it without delay.
        let urgent = matches!(r.result, AttemptResult::Error | AttemptResult::Timeout);
        self.outbox.push(
            Event::Attempt(Attempt {
                provider: r.provider,
                model: r.model,
                result: r.result,
                latency: r.latency,
            }),
            urgent,
        );
        if ended_failed {
            self.outbox.push(
                Event::Finished(Finished {
                    model: r.model,
                    ok: false,
                }),
                urgent,
            );
        }
    }

    fn completion(&self, r: &CompletionRecord<'_>) {
        if r.provider >= self.meters.provider_kv.len() || r.model >= self.meters.model_kv.len() {
            return;
        }
        self.measure_completion(r);
        let ok = match r.status {
            "success" => Some(true),
            "upstream_error" => Some(false),
            _ => None,
        };
        if let Some(ok) = ok {
            self.outbox
                .push(Event::Finished(Finished { model: r.model, ok }), false);
        }
        if r.status != "rejected" {
            self.outbox.push(
                Event::Completion(Completion {
                    provider: r.provider,
                    model: r.model,
                    usage: r.usage,
                }),
                false,
            );
        }
    }
}
