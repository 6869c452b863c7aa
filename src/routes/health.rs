//! `GET /health`: liveness, without authentication.

use actix_web::{web, HttpResponse};

use super::AppState;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "providers": state.router.providers().len(),
        "models": state.router.models().len(),
    }))
}
