//! `GET /metrics`: every family in Prometheus text format 0.0.4, unauthenticated like any
//! scrape target.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::errors::ApiError;
use crate::telemetry::metrics::{Metrics, CONTENT_TYPE};

pub async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let body = metrics.encode().map_err(|e| {
        tracing::error!(error = %e, "cannot encode metrics");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .body(body))
}
