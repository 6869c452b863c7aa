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
pub use provider::{Admission, Phase, ProviderState};
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
            provider_names,
            model_names,
        }
    }

    /// Every provider id, in order.
    pub fn providers(&self) -> impl Iterator<Item = ProviderId> {
        (0..self.states.len()).map(ProviderId::from_index)
    }

    pub fn state(&self, provider: ProviderId) -> &ProviderState {
        &self.states[provider.index()]
    }

    pub fn provider_name(&self, provider: ProviderId) -> &Arc<str> {
        &self.provider_names[provider.index()]
    }
}
