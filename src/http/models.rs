//! `GET /v1/models` and `GET /v1/models/{id}`

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::errors::ApiError;

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    state
        .keys
        .authenticate(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            SystemTime::now(),
        )
        .map(|_| ())
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(state.models_body.clone()))
}

pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let model = state
        .catalog
        .model_id(&id)
        .map(|m| state.catalog.model(m))
        .ok_or_else(|| ApiError::ModelNotFound(id.chars().take(128).collect()))?;
    let body = serde_json::json!({
        "id": &*model.name,
        "object": "model",
        "created": state.started_unix,
        "owned_by": &*model.owned_by,
    });
    Ok(HttpResponse::Ok().json(body))
}
