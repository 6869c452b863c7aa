//! `GET /health` (liveness), `GET /health/ready` (readiness), `GET /health/providers` and
//! `GET /health/anomalies`.
//!
//! `/health` and `/health/ready` are always open: a probe needs no secret, and they show
//! nothing but counts and a status word. Readiness is 503 once graceful shutdown began, or
//! while no model can be served because every provider of every model has its breaker open
//! ([`Readiness`]); a load balancer then sends new requests elsewhere. The
//! detailed views name providers, breaker states and error rates — the `providers` metrics
//! category in another shape — so with `[metrics] tokens` configured they need a token
//! granting `providers` (or `all`), like `/prometheus/metrics/providers`. They are served from
//! the snapshots the actors publish: no actor is asked, nothing waits.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::metrics::authorize;
use super::AppState;
use crate::board::Phase;
use crate::errors::ApiError;
use crate::http::access::{MetricsAccess, Scope};
use crate::telemetry::metrics::catalogue::Category;

/// What the detailed views need: the scope of the `providers` metrics category.
const DETAILS: Scope = Scope::Category(Category::Providers);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let live = state.live();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "providers": live.catalog.providers().count(),
        "models": live.catalog.models().count(),
    }))
}

/// Whether the gateway should get new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Graceful shutdown began.
    Draining,
    /// Every provider serving a model has its breaker open.
    NoProviderAvailable,
}

impl Readiness {
    /// From the drain state and the breaker phases of the providers that serve a model
    /// (half-open counts as available: it lets probes through).
    pub fn of(draining: bool, phases: impl IntoIterator<Item = Phase>) -> Self {
        if draining {
            Self::Draining
        } else if phases.into_iter().all(|p| p == Phase::Open) {
            Self::NoProviderAvailable
        } else {
            Self::Ready
        }
    }

    /// The `status` of the reply body.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::NoProviderAvailable => "no_provider_available",
        }
    }
}

/// 200 `{"status": "ready"}`, or 503 `{"status": "draining" | "no_provider_available"}`.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (live, board) = (state.live(), state.board.load());
    let phases = live
        .catalog
        .models()
        .flat_map(|(_, m)| &m.candidates)
        .map(|c| board.state(c.provider).phase());
    let readiness = Readiness::of(state.drain.is_draining(), phases);
    let mut reply = if readiness == Readiness::Ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    reply
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "status": readiness.label() }))
}

/// Per provider: breaker state, health score, error rate, request count and latency
/// percentiles over the health window.
pub async fn providers(
    req: HttpRequest,
    access: web::Data<MetricsAccess>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &access, DETAILS)?;
    let board = state.board.load();
    let views = board.views.load();
    let providers: Vec<_> = board
        .providers()
        .map(|p| {
            let (name, state) = (board.provider_name(p), board.state(p));
            let view = views.get(p.index()).cloned().unwrap_or_default();
            json!({
                "provider": &**name,
                "breaker_state": state.phase().label(),
                "health_score": state.health(),
                "requests": view.requests,
                "error_rate": view.error_rate,
                "latency_seconds": {
                    "p50": view.latency_p50_seconds,
                    "p95": view.latency_p95_seconds,
                    "p99": view.latency_p99_seconds,
                },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "providers": providers })))
}

/// Recent anomalies, newest first.
pub async fn anomalies(
    req: HttpRequest,
    access: web::Data<MetricsAccess>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &access, DETAILS)?;
    let recent = state.board.load().anomalies.load();
    let newest_first: Vec<_> = recent.iter().rev().collect();
    Ok(HttpResponse::Ok().json(json!({ "anomalies": newest_first })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
    use actix_web::App;

    use super::*;
    use crate::config::{Config, MetricsConfig};
    use crate::http::auth::KeyStore;
    use crate::http::drain::Drain;
    use crate::outcome::NoopReporter;
    use crate::router::Router;

    /// `(status, body["status"])` of `GET /health/ready` on the real routes, in process.
    async fn ready_of(board: Arc<crate::board::Board>, drain: Arc<Drain>) -> (u16, String) {
        let config = Config::builtin().unwrap();
        let catalog = Arc::new(crate::catalog::Catalog::new(&config));
        let router =
            Router::new(catalog.clone(), board.clone(), 1, Arc::new(NoopReporter)).unwrap();
        let state = AppState {
            live: arc_swap::ArcSwap::from_pointee(crate::http::Generation {
                config: Arc::new(config.clone()),
                catalog: catalog.clone(),
                router: Arc::new(router),
                models: crate::http::models::ModelLists::new(&catalog, 0),
            }),
            board: Arc::new(arc_swap::ArcSwap::new(board)),
            keys: Arc::new(KeyStore::new(&[], catalog.clone(), 0)),
            key_sync: None,
            limits: crate::state::Store::Local(Arc::new(crate::state::InProcess::new(
                &config,
                &catalog,
                std::time::Instant::now(),
            ))),
            ledger: None,
            admin_token: None,
            console: None,
            reload: std::sync::OnceLock::new(),
            access_log: true,
            max_body_bytes: 1024,
            body_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            started_unix: 0,
            drain,
        };
        let app = init_service(
            App::new()
                .app_data(web::Data::new(state))
                .app_data(web::Data::new(
                    MetricsAccess::new(&MetricsConfig::default()),
                ))
                .configure(crate::http::configure),
        )
        .await;
        let reply = call_service(&app, TestRequest::get().uri("/health/ready").to_request()).await;
        let status = reply.status().as_u16();
        let body: serde_json::Value = read_body_json(reply).await;
        (status, body["status"].as_str().unwrap().to_owned())
    }

    /// Readiness flips the moment the drain begins (over HTTP the listener closes at the same
    /// moment, so this is where the 503 itself is observable), and when every breaker is open.
    #[actix_web::test]
    async fn ready_answers_from_the_drain_state_and_the_breakers() {
        let board = || Arc::new(crate::catalog::Catalog::new(&Config::builtin().unwrap()).board());
        let drain = Arc::new(Drain::default());
        assert_eq!(
            ready_of(board(), drain.clone()).await,
            (200, "ready".into())
        );
        drain.start();
        assert_eq!(ready_of(board(), drain).await, (503, "draining".into()));
        let all_open = board();
        for state in &all_open.states {
            state.publish_phase(Phase::Open, 0);
        }
        let fresh = Arc::new(Drain::default());
        assert_eq!(
            ready_of(all_open, fresh).await,
            (503, "no_provider_available".into())
        );
    }

    #[test]
    fn readiness_table() {
        use Phase::{Closed, HalfOpen, Open};
        for (draining, phases, expected) in [
            (false, vec![Closed, Closed], Readiness::Ready),
            (false, vec![Open, Closed], Readiness::Ready),
            (false, vec![Open, HalfOpen], Readiness::Ready),
            (false, vec![Open, Open], Readiness::NoProviderAvailable),
            (true, vec![Closed], Readiness::Draining),
            (true, vec![Open], Readiness::Draining),
        ] {
            assert_eq!(
                Readiness::of(draining, phases.clone()),
                expected,
                "{draining} {phases:?}"
            );
        }
    }
}
