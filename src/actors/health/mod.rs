//! `ProviderHealth`: the actor that owns rolling health windows and 24 h model uptime.
//!
//! Attempts feed each provider's [`Tracker`]; finished requests feed each model's
//! [`Uptime`]. Every `health.publish_interval` it recomputes the scores (the formula is in
//! [`score`]), publishes each into the provider's `ProviderState` (the router demotes
//! providers under 0.5) and swaps fresh views and uptimes into the [`Board`].

mod score;

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler};

pub use score::{score, Tracker, Uptime, UPTIME_SPAN};

use super::outbox::{Report, Reports};
use super::{now, Attempt, Finished, Reconfigure};
use crate::board::Phase;
use crate::board::{Board, ProviderView};
use crate::config::HealthConfig;

pub struct ProviderHealth {
    trackers: Vec<Tracker>,
    uptime: Vec<Uptime>,
    /// Breaker phase seen at the last publish, to notice a provider turning half-open.
    phases: Vec<Phase>,
    board: Arc<Board>,
    config: HealthConfig,
}

impl ProviderHealth {
    pub fn new(config: HealthConfig, board: Arc<Board>) -> Self {
        let mut health = Self {
            trackers: Vec::new(),
            uptime: Vec::new(),
            phases: Vec::new(),
            config,
            board,
        };
        health.grow();
        health
    }

    /// Fresh windows for the providers and models the board has and this actor does not yet.
    fn grow(&mut self) {
        let origin = now();
        let (providers, models) = (self.board.states.len(), self.board.model_names.len());
        let tracker = Tracker::new(origin, self.config.window, self.config.latency_target);
        self.trackers.resize(providers, tracker);
        self.uptime.resize(models, Uptime::new(origin));
        self.phases.resize(providers, Phase::Closed);
    }

    /// Recomputes and publishes every score, view and uptime. A provider whose breaker
    /// turned half-open starts a fresh window, so its probes are not starved by demotion.
    pub fn publish(&mut self) {
        let at = now();
        let views: Vec<ProviderView> = self
            .trackers
            .iter_mut()
            .zip(&self.board.states)
            .zip(self.phases.iter_mut())
            .map(|((tracker, state), seen)| {
                let phase = state.phase();
                if phase == Phase::HalfOpen && *seen != Phase::HalfOpen {
                    tracker.reset();
                }
                *seen = phase;
                let view = tracker.view(at, phase);
                state.publish_health(view.score as f32);
                view
            })
            .collect();
        self.board.views.store(Arc::new(views));
        let uptime = self.uptime.iter().map(|u| u.uptime(at)).collect();
        self.board.uptime.store(Arc::new(uptime));
    }
}

impl Actor for ProviderHealth {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish();
        ctx.run_interval(self.config.publish_interval, |this, _| this.publish());
    }
}

impl Handler<Attempt> for ProviderHealth {
    type Result = ();

    fn handle(&mut self, msg: Attempt, _: &mut Self::Context) {
        let ok = msg.result.verdict();
        if let Some(tracker) = self.trackers.get_mut(msg.provider.index()) {
            tracker.record(ok, msg.latency, now());
        }
    }
}

impl Handler<Finished> for ProviderHealth {
    type Result = ();

    fn handle(&mut self, msg: Finished, _: &mut Self::Context) {
        if let Some(uptime) = self.uptime.get_mut(msg.model.index()) {
            uptime.record(msg.ok, now());
        }
    }
}

impl Handler<Reconfigure> for ProviderHealth {
    type Result = ();

    /// Kept providers and models keep their windows; the new board gets every view and
    /// uptime now.
    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        self.board = change.board;
        self.grow();
        self.publish();
    }
}

impl Handler<Reports> for ProviderHealth {
    type Result = ();

    fn handle(&mut self, batch: Reports, ctx: &mut Self::Context) {
        for event in batch.0.iter() {
            match *event {
                Report::Attempt(a) => self.handle(a, ctx),
                Report::Finished(f) => self.handle(f, ctx),
                _ => {}
            }
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

    fn attempt(provider: usize, result: AttemptResult) -> Attempt {
        Attempt {
            provider: ProviderId::from_index(provider),
            model: ModelId::from_index(0),
            result,
            latency: Duration::from_millis(10),
        }
    }

    #[actix::test]
    async fn publishes_scores_and_uptime_on_its_interval() {
        tokio::time::pause();
        let board = board();
        let addr = ProviderHealth::new(HealthConfig::default(), board.clone()).start();
        for _ in 0..4 {
            addr.send(attempt(0, AttemptResult::Error)).await.unwrap();
            addr.send(attempt(1, AttemptResult::Success)).await.unwrap();
        }
        addr.send(Finished {
            model: ModelId::from_index(0),
            ok: false,
        })
        .await
        .unwrap();
        addr.send(Finished {
            model: ModelId::from_index(0),
            ok: true,
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(board.states[0].health(), 0.0);
        assert_eq!(board.states[1].health(), 1.0);
        assert_eq!(board.views.load()[0].error_rate, 1.0);
        assert_eq!(board.uptime.load()[0], Some(0.5));
        assert_eq!(board.uptime.load()[1], None);
        // A minute later the failures have left the window.
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(board.states[0].health(), 1.0);
        // Failures again; then the breaker half-opens: a fresh window, score 0.5 (not demoted).
        addr.send(attempt(0, AttemptResult::Error)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(board.states[0].health(), 0.0);
        board.states[0].publish_phase(Phase::HalfOpen, 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(board.states[0].health(), 0.5);
    }
}
