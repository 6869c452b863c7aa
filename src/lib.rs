//! gatewayz: an OpenAI-compatible LLM gateway, observable to the bone.
//!
//! The binary (`main.rs`) parses the command line and calls into this library: [`app`] wires
//! the server, [`routes`] are the thin HTTP handlers, [`router`] picks providers and fails
//! over, [`providers`] reach upstreams, [`actors`] own provider health, breakers, cost and
//! anomalies, and [`telemetry`] carries metrics, logs and traces out; [`shutdown`] splits the
//! graceful-shutdown budget. See `docs/ARCHITECTURE.md`.

pub mod actors;
pub mod app;
pub mod auth;
pub mod config;
pub mod errors;
pub mod mock;
pub mod outcome;
pub mod providers;
pub mod router;
pub mod routes;
pub mod shutdown;
pub mod telemetry;

/// Installs rustls' ring crypto provider (once; later calls are no-ops). Every TLS client
/// needs it, since reqwest is built without a default provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
