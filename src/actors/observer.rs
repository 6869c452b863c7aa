//! `MetricsObserver`: the production [`Observer`] the router reports to.
//!
//! It updates the request-path meters directly (a few atomic adds, attributes in one fixed
//! order) and hands the rest to the actors with `do_send` — fire-and-forget, so the request
//! never waits for an actor (DESIGN §2). A full mailbox drops the message rather than block.

use std::sync::Arc;

use actix::Recipient;
use opentelemetry::KeyValue;

use super::{Attempt, Completion, Finished};
use crate::outcome::{AttemptRecord, AttemptResult, CompletionRecord, Observer};
use crate::telemetry::metrics::Meters;

pub struct MetricsObserver {
    pub meters: Arc<Meters>,
    /// Breakers, health, anomalies.
    pub attempts: [Recipient<Attempt>; 3],
    /// Health (model uptime).
    pub finished: Recipient<Finished>,
    /// Cost.
    pub completions: Recipient<Completion>,
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
        if self.measure_attempt(r) {
            self.finished.do_send(Finished {
                model: r.model,
                ok: false,
            });
        }
        let msg = Attempt {
            provider: r.provider,
            model: r.model,
            result: r.result,
            latency: r.latency,
        };
        for recipient in &self.attempts {
            recipient.do_send(msg);
        }
    }

    fn completion(&self, r: &CompletionRecord<'_>) {
        if r.provider >= self.meters.provider_kv.len() || r.model >= self.meters.model_kv.len() {
            return;
        }
        self.measure_completion(r);
        match r.status {
            "success" => self.finished.do_send(Finished {
                model: r.model,
                ok: true,
            }),
            "upstream_error" => self.finished.do_send(Finished {
                model: r.model,
                ok: false,
            }),
            _ => {}
        }
        if r.status != "rejected" {
            self.completions.do_send(Completion {
                provider: r.provider,
                model: r.model,
                usage: r.usage,
            });
        }
    }
}
