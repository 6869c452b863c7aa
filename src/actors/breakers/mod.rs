//! `CircuitBreakers`: the actor that owns every provider's breaker.
//!
//! It feeds attempts to the pure [`Breaker`]s, publishes phase and probe slots into each
//! provider's lock-free `ProviderState` (which the router reads with `try_admit()`), and arms
//! a timer for each cool-down. The `gatewayz_circuit_breaker_state` gauge reads the published
//! phase at scrape time, so it is one-hot by construction.

mod breaker;

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler};

pub use breaker::{Breaker, Effect, State, TripReason};

use super::notices::{BreakerMoved, BreakerOpened};
use super::outbox::Reports;
use super::{now, Attempt, Reconfigure};
use crate::board::Phase;
use crate::board::{Board, ProviderId, Transition};
use crate::config::BreakerConfig;

pub struct CircuitBreakers {
    breakers: Vec<Breaker>,
    board: Arc<Board>,
    config: BreakerConfig,
}

impl CircuitBreakers {
    pub fn new(config: BreakerConfig, board: Arc<Board>) -> Self {
        Self {
            breakers: vec![Breaker::new(config.clone()); board.states.len()],
            config,
            board,
        }
    }

    fn apply(&mut self, provider: ProviderId, effect: Option<Effect>, ctx: &mut Context<Self>) {
        let name = self.board.provider_name(provider);
        let state = self.board.state(provider);
        match effect {
            None => {}
            Some(Effect::Opened { reason, until }) => {
                state.publish_phase(Phase::Open, 0);
                self.board.record_transition(transition(name, Phase::Open));
                BreakerOpened {
                    provider: name,
                    reason,
                    cool_down: self.config.cool_down,
                }
                .emit();
                let wait = until.saturating_duration_since(now());
                ctx.run_later(wait, move |this, ctx| this.tick(provider, ctx));
            }
            Some(Effect::Publish { phase, probes }) => {
                let before = state.phase();
                state.publish_phase(phase, probes);
                if before != phase {
                    self.board.record_transition(transition(name, phase));
                    BreakerMoved {
                        provider: name,
                        phase,
                    }
                    .emit();
                }
                if phase == Phase::HalfOpen {
                    // Refresh lost probe slots if no verdict comes within a cool-down.
                    let wait = self.config.cool_down;
                    ctx.run_later(wait, move |this, ctx| this.tick(provider, ctx));
                }
            }
        }
    }

    fn tick(&mut self, provider: ProviderId, ctx: &mut Context<Self>) {
        let effect = self.breakers[provider.index()].tick(now());
        self.apply(provider, effect, ctx);
    }
}

fn transition(provider: &Arc<str>, to: Phase) -> Transition {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Transition {
        provider: provider.clone(),
        to: to.label(),
        at,
    }
}

impl Actor for CircuitBreakers {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        for state in &self.board.states {
            state.publish_phase(Phase::Closed, 0);
        }
    }
}

impl Handler<Attempt> for CircuitBreakers {
    type Result = ();

    fn handle(&mut self, msg: Attempt, ctx: &mut Self::Context) {
        let Some(breaker) = self.breakers.get_mut(msg.provider.index()) else {
            return;
        };
        let verdict = msg.result.verdict();
        let effect = breaker.record(verdict, now());
        self.apply(msg.provider, effect, ctx);
    }
}

impl Handler<Reconfigure> for CircuitBreakers {
    type Result = ();

    /// A kept provider keeps its breaker (and its published phase: the new board holds the
    /// same `ProviderState`); a new one starts closed.
    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        let kept = self.breakers.len();
        self.breakers
            .resize(change.board.states.len(), Breaker::new(self.config.clone()));
        for state in change.board.states.iter().skip(kept) {
            state.publish_phase(Phase::Closed, 0);
        }
        self.board = change.board;
    }
}

impl Handler<Reports> for CircuitBreakers {
    type Result = ();

    fn handle(&mut self, batch: Reports, ctx: &mut Self::Context) {
        for attempt in batch.attempts() {
            self.handle(attempt, ctx);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
