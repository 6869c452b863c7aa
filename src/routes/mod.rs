//! HTTP routes: thin handlers that parse, authorize, call a service and shape the reply.

mod chat;
mod health;
mod metrics;
mod models;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;

use crate::auth::KeyStore;
use crate::errors::ApiError;
use crate::router::Router;

/// Everything a handler reads, shared by all workers.
pub struct AppState {
    pub router: Arc<Router>,
    pub keys: KeyStore,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// The `/v1/models` body, built once.
    pub models_body: Bytes,
    /// Unix time the gateway started (the models' `created`).
    pub started_unix: u64,
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/completions")
            .route(web::post().to(chat::chat))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/models")
            .route(web::get().to(models::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/models/{id:.*}")
            .route(web::get().to(models::get))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health::health))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health/providers")
            .route(web::get().to(health::providers))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health/anomalies")
            .route(web::get().to(health::anomalies))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics::metrics))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/prometheus/metrics/{name}")
            .route(web::get().to(metrics::structured))
            .default_service(web::to(method_not_allowed)),
    );
}

/// The default service: an OpenAI-shaped 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    let shown = match path.char_indices().nth(200) {
        Some((cut, _)) => &path[..cut],
        None => path,
    };
    ApiError::RouteNotFound(format!("{} {shown}", req.method())).error_response()
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}
