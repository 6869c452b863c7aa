//! Actors that own one concern's state each: provider health, circuit breakers, cost and
//! anomalies. Each is a thin actix shell around a pure, clock-injected state machine in a
//! sibling file; it reads the clock, feeds the machine, and performs the effects it returns
//! (publish a snapshot, arm a timer, emit an event).
//!
//! The request path reaches them only through [`reporter::MetricsReporter`], which updates
//! meters directly and pushes these messages into the [`outbox::Outbox`], drained to the
//! actors in batches — it never awaits an actor, and rarely wakes one. What
//! the router and handlers read back comes from snapshots ([`board::Board`] and each
//! provider's `ProviderState`).

pub mod anomaly;
pub mod breakers;
pub mod cost;
pub mod health;
pub mod notices;
pub mod outbox;
pub mod reporter;
pub mod rolling;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Message};

use crate::board::{Board, ModelId, ProviderId};
use crate::catalog::{Catalog, Price};
use crate::config::{Api, Config};
use crate::outcome::AttemptResult;
use crate::providers::Usage;
use crate::telemetry::metrics::Meters;

/// One provider attempt (breakers, health, anomalies).
#[derive(Debug, Clone, Copy, PartialEq, Message)]
#[rtype(result = "()")]
pub struct Attempt {
    pub provider: ProviderId,
    pub model: ModelId,
    pub result: AttemptResult,
    pub latency: Duration,
}

/// A client request for a model ended: served (`ok`) or failed on the provider side (health:
/// model uptime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub model: ModelId,
    pub ok: bool,
}

/// A completion with the usage its upstream reported, if any (cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct Completion {
    pub provider: ProviderId,
    pub model: ModelId,
    /// The API the client called (the tokens' `api` label).
    pub api: Api,
    pub usage: Option<Usage>,
}

/// Spend priced by the cost aggregator (anomalies: cost rate).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Spend {
    pub provider: ProviderId,
    pub usd: f64,
}

/// A reloaded configuration: its board, whose ids extend the one before it (and name what the
/// meters label), and the prices by model id. Each actor grows its per-id state to the new board (a new
/// provider or model starts fresh, a kept one keeps its state) and publishes there from now
/// on; reports from requests that began before the reload carry ids the new board has too.
#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub board: Arc<Board>,
    pub prices: Vec<Price>,
}

/// The running actors.
pub struct Actors {
    pub breakers: actix::Addr<breakers::CircuitBreakers>,
    pub health: actix::Addr<health::ProviderHealth>,
    pub cost: actix::Addr<cost::CostAggregator>,
    pub anomaly: actix::Addr<anomaly::AnomalyDetector>,
}

impl Actors {
    /// Starts every actor (needs a running actix `System`).
    pub fn start(
        config: &Config,
        catalog: &Catalog,
        board: Arc<Board>,
        meters: Arc<Meters>,
    ) -> Self {
        let anomaly =
            anomaly::AnomalyDetector::new(config.anomaly.clone(), board.clone(), meters.clone())
                .start();
        let prices = catalog.prices();
        Self {
            breakers: breakers::CircuitBreakers::new(config.breaker.clone(), board.clone()).start(),
            health: health::ProviderHealth::new(config.health.clone(), board.clone()).start(),
            cost: cost::CostAggregator::new(
                prices,
                config.cost.efficiency_window,
                board,
                meters,
                anomaly.clone().recipient(),
            )
            .start(),
            anomaly,
        }
    }

    /// The outbox the routers report to (starts its dispatcher).
    pub fn outbox(&self) -> Arc<outbox::Outbox> {
        outbox::Dispatcher::start(vec![
            self.breakers.clone().recipient(),
            self.health.clone().recipient(),
            self.anomaly.clone().recipient(),
            self.cost.clone().recipient(),
        ])
    }

    /// Hands every actor a reloaded configuration, returning once each has taken it.
    pub async fn reconfigure(&self, change: Reconfigure) {
        // An actor that is gone (the system stopping) has nothing left to reconfigure.
        let _ = self.breakers.send(change.clone()).await;
        let _ = self.health.send(change.clone()).await;
        let _ = self.anomaly.send(change.clone()).await;
        let _ = self.cost.send(change).await;
    }
}

/// The clock actors read: tokio's, so paused-time tests drive it.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
