//! Configuration reload: SIGHUP and `POST /admin/reload` re-read the file the gateway started
//! from, validate it as `gatewayz check-config` does, and swap in what it resolves to.
//!
//! A reload applies `[providers]`, `[models]` (prices, candidates, upstream names, APIs),
//! `[[keys]]` (secrets and limits) and `[routing]`. The rest is built once at start-up, so a
//! file that changes it is refused whole, naming the sections, and so is an invalid file:
//! the configuration in force keeps serving, untouched.
//!
//! What is swapped, in order, all before the first request sees the new configuration:
//!
//! 1. Everything that can fail is built first — the catalogue (a name keeps its id, a new one
//!    takes the next, a dropped one is retired: `Catalog::next`), the board over it (sharing
//!    each kept provider's published state: one breaker for both configurations), and the
//!    router with a client per provider. A failure here changes nothing.
//! 2. The actors grow their per-id state and publish to the new board; the limit store takes
//!    the new prices and allow-lists; the key store the file's new keys (new limiters for a
//!    key whose limits changed, its budget's spend carried over).
//! 3. The generation (configuration, catalogue, router, model list) is swapped whole.
//!
//! A request reads one generation from start to end: requests and streams in flight finish
//! on the router they began with, and report under ids the new tables have too.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::web;
use serde_json::{json, Value};

use crate::actors::reporter::MetricsReporter;
use crate::actors::{outbox::Outbox, Actors, Reconfigure};
use crate::config::Config;
use crate::errors::ApiError;
use crate::http::models::ModelLists;
use crate::http::{AppState, Generation};
use crate::router::Router;
use crate::telemetry::metrics::{Labels, Meters};

/// Everything a reload touches besides the state handlers read.
pub struct Reloader {
    pub state: web::Data<AppState>,
    pub actors: Actors,
    pub outbox: Arc<Outbox>,
    pub meters: Arc<Meters>,
    /// The address the gateway listens on (a reloaded file must still allow it).
    pub listen: SocketAddr,
    /// One reload at a time (SIGHUP and the admin API may ask together).
    pub running: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Re-reads the file and swaps it in: what changed, or why nothing did. Either way one
    /// log line and `gatewayz_config_reloads_total{result}` say so.
    pub async fn reload(&self, trigger: &'static str) -> Result<Value, ApiError> {
        let _one = self.running.lock().await;
        let result = self.apply().await;
        match &result {
            Ok(changes) => {
                self.count("applied");
                tracing::info!(trigger, changes = %changes, "configuration reloaded");
            }
            Err(e) => {
                self.count("refused");
                tracing::warn!(
                    trigger,
                    error = %e,
                    "configuration reload refused; the configuration in force keeps serving"
                );
            }
        }
        result
    }

    fn count(&self, result: &'static str) {
        let labels = [opentelemetry::KeyValue::new("result", result)];
        self.meters.config_reloads.add(1, &labels);
    }

    async fn apply(&self) -> Result<Value, ApiError> {
        let state = &self.state;
        let old = state.live();
        let path = old.config.source.clone().ok_or(ApiError::NoConfigFile)?;
        let config = Config::load(&path).map_err(|e| ApiError::ConfigRefused(e.to_string()))?;
        let restart = old.config.restart_only_changes(&config);
        if !restart.is_empty() {
            return Err(ApiError::ConfigRefused(format!(
                "{} changed, which take{} effect on restart only; nothing was applied",
                restart.join(", "),
                if restart.len() == 1 { "s" } else { "" }
            )));
        }
        config
            .check_exposure(self.listen)
            .map_err(|e| ApiError::ConfigRefused(format!("{}: {}", e.key, e.message)))?;

        // 1. What can fail.
        let catalog = Arc::new(old.catalog.next(&config));
        let board = Arc::new(catalog.board().carrying(&state.board.load()));
        let reporter = Arc::new(MetricsReporter {
            meters: self.meters.clone(),
            labels: Arc::new(Labels::new(&board)),
            outbox: self.outbox.clone(),
        });
        let router = Router::new(
            catalog.clone(),
            board.clone(),
            config.routing.max_attempts,
            reporter,
        )
        .map_err(|e| ApiError::ConfigRefused(e.to_string()))?;

        // 2. The actors, the limits and the keys.
        self.actors
            .reconfigure(Reconfigure {
                board: board.clone(),
                prices: catalog.prices(),
            })
            .await;
        state.limits.local().reconfigure(&catalog);
        let keys = state
            .keys
            .reload(&config.keys, catalog.clone(), &state.limits);

        // 3. The generation.
        let changes = json!({
            "providers": diff(&old.config.providers, &config.providers),
            "models": diff(&old.config.models, &config.models),
            "keys": {"added": keys.added, "changed": keys.changed, "removed": keys.removed},
            "routing": old.config.routing != config.routing,
        });
        let models = ModelLists::new(&catalog, state.started_unix);
        state.board.store(board);
        state.live.store(Arc::new(Generation {
            config: Arc::new(config),
            catalog,
            router: Arc::new(router),
            models,
        }));
        Ok(changes)
    }
}

/// The names `next` added, removed and changed against `old`.
fn diff<T: PartialEq>(
    old: &std::collections::BTreeMap<String, T>,
    next: &std::collections::BTreeMap<String, T>,
) -> Value {
    let added: Vec<&str> = next
        .keys()
        .filter(|k| !old.contains_key(*k))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = old
        .keys()
        .filter(|k| !next.contains_key(*k))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = next
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.as_str())
        .collect();
    json!({"added": added, "removed": removed, "changed": changed})
}
