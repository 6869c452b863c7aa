//! gatewayz: an OpenAI-compatible LLM gateway, observable to the bone.
//!
//! The binary (`main.rs`) parses the command line and calls into this library. Arrows point
//! down (`tests/layout.rs` enforces them): [`app`] wires everything; [`http`] is the edge
//! (thin handlers, middleware, auth); [`router`] picks providers, fails over and relays
//! streams; [`providers`] reach upstreams; [`actors`] own breakers, health, cost and
//! anomalies; [`state`] holds per-key limits and budgets; [`ledger`] keeps every request's
//! usage in SQL; [`outcome`] is what the request path reports to them; [`telemetry`] carries
//! metrics, logs and traces out and imports nothing above it; at the bottom, [`board`]
//! (published state), [`catalog`] (the configuration resolved once) and [`config`]. See
//! `docs/ARCHITECTURE.md`.

pub mod actors;
pub mod app;
pub mod board;
pub mod catalog;
pub mod config;
pub mod errors;
pub mod http;
pub mod ledger;
pub mod mock;
pub mod outcome;
pub mod providers;
pub mod router;
pub mod shutdown;
pub mod state;
pub mod telemetry;

/// Installs rustls' ring crypto provider (once; later calls are no-ops). Every TLS client
/// needs it, since reqwest is built without a default provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
