//! Wiring: builds the router and the shared state, starts the HTTP server, and shuts down in
//! order (stop accepting, drain requests, flush telemetry: the Loki shipper last, so the
//! server's own goodbye lines are shipped too).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use bytes::Bytes;

use crate::actors::board::Board;
use crate::actors::Actors;
use crate::auth::KeyStore;
use crate::config::Config;
use crate::router::Router;
use crate::routes::{self, AppState};
use crate::telemetry::access::MetricsAccess;
use crate::telemetry::log_stats::LogStats;
use crate::telemetry::loki::LokiHandle;
use crate::telemetry::metrics::{Metrics, Sources};
use crate::telemetry::protocol_errors;
use crate::telemetry::server_span::server_span;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Runs the gateway until SIGINT / SIGTERM. `listen` overrides `server.listen`.
/// Once the server has stopped, flushes the Loki shipper, then the trace exporter (outside
/// the actix runtime: that flush blocks).
pub fn run(config: Config, listen: Option<SocketAddr>) -> Result<(), AppError> {
    run_with(config, listen, crate::telemetry::take_loki())
}

/// [`run`] with the Loki shipper `telemetry::init` built (in-process tests pass their own):
/// it starts before the server and is flushed (within `telemetry.loki.shutdown_deadline`)
/// after the server stopped; then the trace exporter is flushed.
pub fn run_with(
    config: Config,
    listen: Option<SocketAddr>,
    loki: Option<LokiHandle>,
) -> Result<(), AppError> {
    // The shipper's counters are the ones `/metrics` exports.
    let log_stats = loki
        .as_ref()
        .map_or_else(crate::telemetry::log_stats::global, LokiHandle::stats);
    let result = actix_web::rt::System::new().block_on(async move {
        let shipper = loki.map(LokiHandle::start);
        // Ends with the actix system.
        actix_web::rt::spawn(protocol_errors::report_every(
            protocol_errors::SUMMARY_INTERVAL,
        ));
        let result = serve(config, listen, log_stats).await;
        if let Some(shipper) = shipper {
            shipper.shutdown().await;
        }
        result
    });
    crate::telemetry::shutdown();
    result
}

/// Builds the shared state handlers read.
pub fn build_state(config: &Config, router: Arc<Router>) -> AppState {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let data: Vec<_> = router
        .models()
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": &*m.id, "object": "model", "created": started_unix, "owned_by": &*m.owned_by,
            })
        })
        .collect();
    let models_body = Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string());
    AppState {
        router,
        keys: KeyStore::new(&config.keys),
        max_body_bytes: config.server.max_body_bytes,
        request_timeout: config.server.request_timeout,
        models_body,
        started_unix,
    }
}

async fn serve(
    config: Config,
    listen: Option<SocketAddr>,
    log_stats: Arc<LogStats>,
) -> Result<(), AppError> {
    let listen = listen.unwrap_or(config.server.listen);
    config
        .check_exposure(listen)
        .map_err(|e| AppError::Config(format!("{}: {}", e.key, e.message)))?;
    crate::install_crypto_provider();
    let board = Arc::new(Board::from_config(&config));
    let metrics = Arc::new(Metrics::new_or_detached(Sources {
        board: board.clone(),
        log_stats,
        keys: Arc::new(KeyStore::new(&config.keys)),
    }));
    let meters = metrics.meters.clone();
    let actors = Actors::start(&config, board.clone(), meters.clone());
    let observer = Arc::new(actors.observer(meters.clone()));
    let router =
        Arc::new(Router::with_states(&config, observer, &board.states).map_err(AppError::Config)?);
    let names = router.providers().iter().map(|p| &p.name);
    if !names.eq(board.provider_names.iter()) {
        return Err(AppError::Config(
            "provider order differs between router and metrics".into(),
        ));
    }
    let state = web::Data::new(build_state(&config, router));
    let access = web::Data::new(MetricsAccess::new(&config.metrics));
    let (metrics, board, meters) = (
        web::Data::from(metrics),
        web::Data::from(board),
        web::Data::from(meters),
    );
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(crate::telemetry::http::track))
            .wrap(from_fn(server_span))
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(access.clone())
            .app_data(board.clone())
            .app_data(meters.clone())
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .shutdown_timeout(config.server.shutdown_timeout.as_secs().max(1))
    // Streams are relayed chunk by chunk: with Nagle on, a chunk written while the previous one
    // is unacknowledged waits for the client's delayed ACK (~40 ms on Linux).
    .tcp_nodelay(true);
    if let Some(workers) = config.server.workers {
        server = server.workers(workers);
    }
    let server = server.bind(listen).map_err(|source| AppError::Bind {
        addr: listen,
        source,
    })?;
    for addr in server.addrs() {
        tracing::info!(%addr, "gatewayz listening on http://{addr}");
    }
    server.run().await?;
    tracing::info!("gatewayz stopped");
    Ok(())
}
