//! What handlers and scrape-time callbacks read of a provider: its health view, and the kinds
//! of anomaly the detector reports.

use serde::Serialize;

/// What `/health/providers` shows for one provider.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProviderView {
    pub score: f64,
    pub requests: u64,
    pub error_rate: f64,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
}

/// The signals watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    LatencySpike,
    ErrorRateSpike,
    CostSpike,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Self::LatencySpike, Self::ErrorRateSpike, Self::CostSpike];

    /// The `type` label of `gatewayz_detected_anomalies_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::LatencySpike => "latency_spike",
            Self::ErrorRateSpike => "error_rate_spike",
            Self::CostSpike => "cost_spike",
        }
    }
}
