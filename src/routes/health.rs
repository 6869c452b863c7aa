//! `GET /health` (liveness), `GET /health/providers` and `GET /health/anomalies`, without
//! authentication. The detailed views are served from the snapshots the actors publish: no
//! actor is asked, nothing waits.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::actors::board::Board;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "providers": state.router.providers().len(),
        "models": state.router.models().len(),
    }))
}

/// Per provider: breaker state, health score, error rate, request count and latency
/// percentiles over the health window.
pub async fn providers(board: web::Data<Board>) -> HttpResponse {
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
    HttpResponse::Ok().json(json!({ "providers": providers }))
}

/// Recent anomalies, newest first.
pub async fn anomalies(board: web::Data<Board>) -> HttpResponse {
    let recent = board.anomalies.load();
    let newest_first: Vec<_> = recent.iter().rev().collect();
    HttpResponse::Ok().json(json!({ "anomalies": newest_first }))
}
