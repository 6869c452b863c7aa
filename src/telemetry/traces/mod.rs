//! Traces: the OTLP pipeline that exports the gateway's spans ([`otlp`]), and the W3C trace
//! headers sent upstream with each attempt ([`propagation`]). The spans themselves are opened
//! where the work happens: the server span at the HTTP edge, one client span per attempt in
//! the router; neither is entered while its work runs ([`scope`] says which request a thread
//! is handling).

pub mod otlp;
pub mod propagation;
pub mod scope;
