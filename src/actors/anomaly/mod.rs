//! `AnomalyDetector`: the actor that watches each provider's latency, error rate and spend.
//!
//! Latency is scored as attempts arrive; error rate and spend once per `anomaly.interval`
//! (actor timer). A spike that opens an episode ([`ewma`]) becomes one [`Anomaly`]: the
//! `gatewayz_detected_anomalies_total{type}` counter, a structured warning (typed event), and
//! an entry in the bounded recent list published to the [`Board`] for `/health/anomalies`.

mod ewma;
mod watch;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, AsyncContext, Context, Handler};

pub use ewma::{Detector, Spike, Thresholds};
pub use watch::Watch;

use super::notices::AnomalyDetected;
use super::outbox::Reports;
use super::{Attempt, Reconfigure, Spend};
use crate::board::{Anomaly, Board, ProviderId, Signal};
use crate::config::AnomalyConfig;
use crate::telemetry::metrics::Meters;

pub struct AnomalyDetector {
    watches: Vec<Watch>,
    config: AnomalyConfig,
    recent: VecDeque<Anomaly>,
    capacity: usize,
    interval: std::time::Duration,
    board: Arc<Board>,
    meters: Arc<Meters>,
}

impl AnomalyDetector {
    pub fn new(config: AnomalyConfig, board: Arc<Board>, meters: Arc<Meters>) -> Self {
        Self {
            watches: vec![Watch::new(&config); board.provider_names.len()],
            recent: VecDeque::with_capacity(config.recent),
            capacity: config.recent,
            interval: config.interval,
            config,
            board,
            meters,
        }
    }

    fn report(&mut self, provider: ProviderId, signal: Signal, spike: Spike) {
        let anomaly = Anomaly {
            signal,
            provider: self.board.provider_name(provider).clone(),
            value: spike.value,
            baseline: spike.mean,
            z_score: if spike.z.is_finite() {
                spike.z
            } else {
                f64::MAX
            },
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        AnomalyDetected { anomaly: &anomaly }.emit(&self.meters);
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(anomaly);
        self.board
            .anomalies
            .store(Arc::new(self.recent.iter().cloned().collect()));
    }

    fn close_interval(&mut self) {
        let board = self.board.clone();
        for provider in board.providers() {
            for (signal, spike) in self.watches[provider.index()].interval() {
                self.report(provider, signal, spike);
            }
        }
    }
}

impl Actor for AnomalyDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |this, _| this.close_interval());
    }
}

impl Handler<Attempt> for AnomalyDetector {
    type Result = ();

    fn handle(&mut self, msg: Attempt, _: &mut Self::Context) {
        let Some(watch) = self.watches.get_mut(msg.provider.index()) else {
            return;
        };
        let sample = match msg.result.verdict() {
            Some(true) => Some(msg.latency.as_secs_f64()),
            Some(false) => None,
            None => return,
        };
        if let Some((signal, spike)) = watch.attempt(sample) {
            self.report(msg.provider, signal, spike);
        }
    }
}

impl Handler<Reconfigure> for AnomalyDetector {
    type Result = ();

    /// Kept providers keep their baselines; the recent list is on the new board already
    /// (`Board::carrying`).
    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        let watch = Watch::new(&self.config);
        self.watches.resize(change.board.states.len(), watch);
        self.board = change.board;
    }
}

impl Handler<Spend> for AnomalyDetector {
    type Result = ();

    fn handle(&mut self, msg: Spend, _: &mut Self::Context) {
        if let Some(watch) = self.watches.get_mut(msg.provider.index()) {
            watch.spend(msg.usd);
        }
    }
}

impl Handler<Reports> for AnomalyDetector {
    type Result = ();

    fn handle(&mut self, batch: Reports, ctx: &mut Self::Context) {
        for attempt in batch.attempts() {
            self.handle(attempt, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use crate::board::{ModelId, ProviderId};
    use crate::outcome::AttemptResult;

    use super::*;
    use crate::actors::breakers::tests::board;

    #[actix::test]
    async fn a_latency_spike_is_one_anomaly_and_an_error_burst_is_found_on_the_timer() {
        tokio::time::pause();
        let board = board();
        let metrics = crate::telemetry::metrics::test_metrics(board.clone());
        let config = AnomalyConfig {
            warmup: 10,
            latency_floor: Duration::from_millis(100),
            ..AnomalyConfig::default()
        };
        let addr = AnomalyDetector::new(config, board.clone(), metrics.meters.clone()).start();
        let attempt = |ms, result| Attempt {
            provider: ProviderId::from_index(0),
            model: ModelId::from_index(0),
            result,
            latency: Duration::from_millis(ms),
        };
        for i in 0..30u64 {
            addr.send(attempt(10 + i % 3, AttemptResult::Success))
                .await
                .unwrap();
        }
        for _ in 0..10 {
            addr.send(attempt(900, AttemptResult::Success))
                .await
                .unwrap();
        }
        assert_eq!(board.anomalies.load().len(), 1);
        assert_eq!(board.anomalies.load()[0].signal, Signal::LatencySpike);
        // Thirty quiet intervals, then one full of errors.
        for _ in 0..30 {
            for _ in 0..10 {
                addr.send(attempt(10, AttemptResult::Success))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        for _ in 0..10 {
            addr.send(attempt(10, AttemptResult::Error)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let found = board.anomalies.load();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[1].signal, Signal::ErrorRateSpike);
        let text = String::from_utf8(metrics.encode().unwrap()).unwrap();
        assert!(text.contains("gatewayz_detected_anomalies_total{type=\"latency_spike\"} 1"));
        assert!(text.contains("gatewayz_detected_anomalies_total{type=\"cost_spike\"} 0"));
    }
}
