//! Traces: the gateway's own spans ([`span`]), the OTLP pipeline that exports them
//! ([`otlp`]), and the W3C trace headers read from callers and sent upstream with each
//! attempt ([`propagation`]). The spans are opened where the work happens: the server span at
//! the HTTP edge, one client span per attempt in the router; [`scope`] says which one a
//! thread is working for (the attempts' parent, the log lines' ids).

pub mod otlp;
pub mod propagation;
pub mod scope;
pub mod span;
