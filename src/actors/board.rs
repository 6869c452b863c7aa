//! The snapshots actors publish and everyone else reads without waiting.
//!
//! Each actor owns its figures and, after every change or timer tick, swaps in a fresh
//! immutable copy (`ArcSwap`). Handlers (`/health/providers`, `/health/anomalies`) and the
//! metric callbacks run at scrape time load these copies: no lock, no message, no await.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::anomaly::Signal;
use super::health::ProviderView;
use crate::config::Config;
use crate::router::ProviderState;

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

/// Published state, indexed like the router's providers and models.
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
    /// Names in the router's order (the configuration's, sorted), fresh provider states. The
    /// router is built on these states ([`crate::router::Router::with_states`]).
    pub fn from_config(config: &Config) -> Self {
        let provider_names: Vec<Arc<str>> = config
            .providers
            .keys()
            .map(|n| Arc::from(n.as_str()))
            .collect();
        let model_names: Vec<Arc<str>> = config
            .models
            .keys()
            .map(|n| Arc::from(n.as_str()))
            .collect();
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
}
