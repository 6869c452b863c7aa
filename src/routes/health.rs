//! `GET /health` (liveness), `GET /health/providers` and `GET /health/anomalies`.
//!
//! `/health` is always open: a probe needs no secret, and it shows nothing but counts. The
//! detailed views name providers, breaker states and error rates — the `providers` metrics
//! category in another shape — so with `[metrics] tokens` configured they need a token
//! granting `providers` (or `all`), like `/prometheus/metrics/providers`. They are served from
//! the snapshots the actors publish: no actor is asked, nothing waits.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::metrics::authorize;
use super::AppState;
use crate::actors::board::Board;
use crate::errors::ApiError;
use crate::telemetry::access::{MetricsAccess, Scope};
use crate::telemetry::catalogue::Category;

/// What the detailed views need: the scope of the `providers` metrics category.
const DETAILS: Scope = Scope::Category(Category::Providers);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "providers": state.router.providers().len(),
        "models": state.router.models().len(),
    }))
}

/// Per provider: breaker state, health score, error rate, request count and latency
/// percentiles over the health window.
pub async fn providers(
    req: HttpRequest,
    access: web::Data<MetricsAccess>,
    board: web::Data<Board>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &access, DETAILS)?;
    let views = board.views.load();
    let providers: Vec<_> = board
        .provider_names
        .iter()
        .zip(&board.states)
        .zip(views.iter())
        .map(|((name, state), view)| {
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
    board: web::Data<Board>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &access, DETAILS)?;
    let recent = board.anomalies.load();
    let newest_first: Vec<_> = recent.iter().rev().collect();
    Ok(HttpResponse::Ok().json(json!({ "anomalies": newest_first })))
}
