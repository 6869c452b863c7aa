//! `GET /metrics` and `GET /prometheus/metrics/{all,system,providers,models,business,
//! performance,summary,docs}`.
//!
//! A category scrape gathers the registry once, keeps the families of that category and
//! encodes only those. With `[metrics] tokens` configured every endpoint needs a token
//! granting what it shows (`/metrics`, `all` and the summary need `all`).

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{docs, summary};
use crate::board::Board;
use crate::errors::ApiError;
use crate::http::access::{MetricsAccess, Scope};
use crate::telemetry::metrics::catalogue::Category;
use crate::telemetry::metrics::exposition::{encode, parse_category, select};
use crate::telemetry::metrics::{Metrics, CONTENT_TYPE};

/// Checks the request's bearer token against `[metrics] tokens` (open without tokens).
pub(super) fn authorize(
    req: &HttpRequest,
    access: &MetricsAccess,
    scope: Scope,
) -> Result<(), ApiError> {
    access.authorize(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        scope,
    )
}

fn exposition(families: &[prometheus::proto::MetricFamily]) -> Result<HttpResponse, ApiError> {
    let body = encode(families).map_err(|e| {
        tracing::error!(error = %e, "cannot encode metrics");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .body(body))
}

/// `GET /metrics`: everything.
pub async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    access: web::Data<MetricsAccess>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &access, Scope::All)?;
    exposition(&metrics.gather())
}

/// `GET /prometheus/metrics/{name}`
pub async fn structured(
    req: HttpRequest,
    name: web::Path<String>,
    metrics: web::Data<Metrics>,
    access: web::Data<MetricsAccess>,
    board: web::Data<arc_swap::ArcSwap<Board>>,
) -> Result<HttpResponse, ApiError> {
    let board = board.load();
    match name.as_str() {
        "all" => {
            authorize(&req, &access, Scope::All)?;
            exposition(&metrics.gather())
        }
        "summary" => {
            authorize(&req, &access, Scope::All)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let summary = summary::summarize(
                &metrics.gather(),
                &board.live_provider_names(),
                &board.live_model_names(),
                &crate::config::Api::labels(),
                &board.anomalies.load(),
                now,
            );
            Ok(HttpResponse::Ok().json(summary))
        }
        "docs" => {
            authorize(&req, &access, Scope::Docs)?;
            let base = format!("http://{}", req.connection_info().host());
            Ok(HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/markdown; charset=utf-8"))
                .body(docs::markdown(&base)))
        }
        other => {
            let category = parse_category(other).ok_or_else(|| unknown(other))?;
            authorize(&req, &access, Scope::Category(category))?;
            exposition(&select(metrics.gather(), category))
        }
    }
}

fn unknown(name: &str) -> ApiError {
    let valid: Vec<&str> = ["all"]
        .into_iter()
        .chain(Category::ALL.iter().map(|c| c.as_str()))
        .chain(["summary", "docs"])
        .collect();
    let shown: String = name.chars().take(64).collect();
    ApiError::RouteNotFound(format!(
        "unknown metrics category `{shown}`; valid: {}",
        valid.join(", ")
    ))
}
