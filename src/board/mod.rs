//! Published state: what the actors write and everyone else reads without waiting.
//!
//! A leaf: it imports nothing of ours, so the router, the HTTP edge, telemetry and the actors
//! can all read it without a circle. Each actor owns its figures and, after every change or
//! timer tick, publishes them here — atomics for what the router reads per request
//! ([`ProviderState`]: breaker phase, probe slots, health score, rate-limit pause), and an
//! immutable copy swapped in (`ArcSwap`) for what handlers and scrape-time metric callbacks
//! read (provider views, uptime, efficiency, anomalies): no lock, no message, no await.
//! Everything is indexed by the catalogue's [`ProviderId`] and [`ModelId`].

mod ids;
mod provider;
mod view;

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

pub use ids::{ModelId, ProviderId};
pub use provider::{Admission, InFlight, Phase, ProviderState};
pub use view::{ProviderView, Signal};

/// One detected anomaly, as `/health/anomalies` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    #[serde(rename = "type")]
    pub signal: Signal,
    #[serde(serialize_with = "as_str")]
    pub provider: Arc<str>,
    /// The sample that opened the episode (seconds, error rate or USD per interval).
    pub value: f64,
    /// The EWMA baseline it was compared with.
    pub baseline: f64,
    pub z_score: f64,
    /// Unix time in seconds.
    pub at: f64,
}

fn as_str<S: serde::Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

/// A circuit breaker changing phase, as the console's Providers page lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transition {
    #[serde(serialize_with = "as_str")]
    pub provider: Arc<str>,
    /// The phase it moved to (`closed`, `open`, `half_open`).
    pub to: &'static str,
    /// Unix time in seconds.
    pub at: f64,
}

/// How many transitions the board keeps (oldest first).
pub const TRANSITIONS: usize = 200;

/// `now`'s values replaced by `old`'s at the positions both have.
fn carry<T: Clone>(now: &ArcSwap<Vec<T>>, old: &ArcSwap<Vec<T>>) {
    let mut values = Vec::clone(&now.load());
    for (value, old) in values.iter_mut().zip(old.load().iter()) {
        *value = old.clone();
    }
    now.store(Arc::new(values));
}

/// Published state, indexed by provider and model id.
pub struct Board {
    pub provider_names: Vec<Arc<str>>,
    pub model_names: Vec<Arc<str>>,
    pub states: Vec<Arc<ProviderState>>,
    pub views: ArcSwap<Vec<ProviderView>>,
    pub uptime: ArcSwap<Vec<Option<f64>>>,
    pub efficiency: ArcSwap<Vec<Option<f64>>>,
    /// Oldest first, bounded by `anomaly.recent`.
    pub anomalies: ArcSwap<Vec<Anomaly>>,
    /// The breakers' last phase changes, oldest first, at most [`TRANSITIONS`].
    pub transitions: ArcSwap<Vec<Transition>>,
    /// Providers and models a reloaded configuration dropped, by id: still in every table
    /// (requests that began before the reload report under their ids), no longer listed.
    retired_providers: Vec<bool>,
    retired_models: Vec<bool>,
}

impl Board {
    /// Fresh state for these providers and models (their names in id order).
    pub fn new(provider_names: Vec<Arc<str>>, model_names: Vec<Arc<str>>) -> Self {
        Self {
            states: provider_names
                .iter()
                .map(|_| Arc::new(ProviderState::default()))
                .collect(),
            views: ArcSwap::from_pointee(vec![ProviderView::default(); provider_names.len()]),
            uptime: ArcSwap::from_pointee(vec![None; model_names.len()]),
            efficiency: ArcSwap::from_pointee(vec![None; model_names.len()]),
            anomalies: ArcSwap::from_pointee(Vec::new()),
            transitions: ArcSwap::from_pointee(Vec::new()),
            retired_providers: vec![false; provider_names.len()],
            retired_models: vec![false; model_names.len()],
            provider_names,
            model_names,
        }
    }

    /// Marks the retired providers and models (by id).
    pub fn retiring(mut self, providers: Vec<bool>, models: Vec<bool>) -> Self {
        self.retired_providers = providers;
        self.retired_models = models;
        self
    }

    /// Takes over what `previous` (the board of the configuration before a reload, whose ids
    /// are the first of this one's) published: each provider's very `ProviderState` — so the
    /// routers of both configurations read one breaker — and the views, uptime, efficiency
    /// and anomalies as they stand.
    pub fn carrying(mut self, previous: &Board) -> Self {
        for (state, old) in self.states.iter_mut().zip(&previous.states) {
            *state = old.clone();
        }
        carry(&self.views, &previous.views);
        carry(&self.uptime, &previous.uptime);
        carry(&self.efficiency, &previous.efficiency);
        self.anomalies = ArcSwap::new(previous.anomalies.load_full());
        self.transitions = ArcSwap::new(previous.transitions.load_full());
        self
    }

    /// Every provider id in force (not the retired), in order.
    pub fn providers(&self) -> impl Iterator<Item = ProviderId> + '_ {
        (0..self.states.len())
            .filter(|&i| !self.retired_providers.get(i).copied().unwrap_or(false))
            .map(ProviderId::from_index)
    }

    /// Every model id in force (not the retired), in order.
    pub fn models(&self) -> impl Iterator<Item = ModelId> + '_ {
        (0..self.model_names.len())
            .filter(|&i| !self.retired_models.get(i).copied().unwrap_or(false))
            .map(ModelId::from_index)
    }

    /// The names of the providers in force, in id order.
    pub fn live_provider_names(&self) -> Vec<Arc<str>> {
        self.providers()
            .map(|p| self.provider_names[p.index()].clone())
            .collect()
    }

    /// The names of the models in force, in id order.
    pub fn live_model_names(&self) -> Vec<Arc<str>> {
        self.models()
            .map(|m| self.model_names[m.index()].clone())
            .collect()
    }

    pub fn state(&self, provider: ProviderId) -> &ProviderState {
        &self.states[provider.index()]
    }

    /// Appends a breaker's phase change (the breakers actor's, the only writer).
    pub fn record_transition(&self, transition: Transition) {
        let mut all = Vec::clone(&self.transitions.load());
        if all.len() == TRANSITIONS {
            all.remove(0);
        }
        all.push(transition);
        self.transitions.store(Arc::new(all));
    }

    pub fn provider_name(&self, provider: ProviderId) -> &Arc<str> {
        &self.provider_names[provider.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    /// A reload's board holds the very `ProviderState` of each kept provider (routers of both
    /// configurations read one breaker) and what was published, and fresh slots for new ids.
    #[test]
    fn a_board_carries_what_the_board_before_it_published() {
        let before = Board::new(names(&["a"]), names(&["m"]));
        before.state(ProviderId::from_index(0)).publish_health(0.25);
        before.uptime.store(Arc::new(vec![Some(0.9)]));
        let after = Board::new(names(&["a", "b"]), names(&["m", "n"]))
            .retiring(vec![false, false], vec![false, false])
            .carrying(&before);
        assert!(Arc::ptr_eq(&after.states[0], &before.states[0]));
        assert_eq!(after.state(ProviderId::from_index(0)).health(), 0.25);
        assert_eq!(**after.uptime.load(), [Some(0.9), None]);
        assert_eq!(after.views.load().len(), 2);
        let retired =
            Board::new(names(&["a", "b"]), names(&["m"])).retiring(vec![true, false], vec![false]);
        let live: Vec<_> = retired.providers().map(ProviderId::index).collect();
        assert_eq!(live, [1]);
    }
}
