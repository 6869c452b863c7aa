//! Actors that own one concern's state each: provider health, circuit breakers, cost and
//! anomalies. Each is a thin actix shell around a pure, clock-injected state machine.
