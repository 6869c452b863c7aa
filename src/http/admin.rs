//! `/admin/*`: the admin API, behind `[admin] token` (a bearer token compared in constant
//! time, as a digest). Without a token configured every admin route answers 404, as if it
//! did not exist.
//!
//! `GET /admin/usage?since=7d&until=…&by=key|team|model|provider|api`: spend and tokens from
//! the usage ledger's hourly rollups, as JSON (`gatewayz usage` prints the same).

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::{digest, find_digest};
use super::AppState;
use crate::errors::ApiError;
use crate::ledger::report::{self, By, Report};

/// The admin token, kept as its digest.
#[derive(Debug, Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self(digest(token.as_bytes()))
    }
}

/// Lets the request through when it carries the admin token; 404 when the API is off.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        return Err(ApiError::RouteNotFound(format!(
            "{} {}",
            req.method(),
            req.path()
        )));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(ApiError::Unauthorized(
            "missing admin token: send it as `Authorization: Bearer <token>`",
        ))?;
    find_digest(std::iter::once(&token.0), &digest(presented.trim_ascii()))
        .map(|_| ())
        .ok_or(ApiError::Unauthorized("invalid admin token"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    since: Option<String>,
    until: Option<String>,
    by: Option<String>,
}

/// `GET /admin/usage`
pub async fn usage(
    req: HttpRequest,
    query: Result<web::Query<UsageQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let web::Query(query) = query.map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let ledger = state.ledger.as_ref().ok_or_else(|| {
        ApiError::BadRequest("the usage ledger is off: add [ledger] to the configuration".into())
    })?;
    let now = SystemTime::now();
    let since = report::parse_time(query.since.as_deref().unwrap_or("30d"), now)
        .map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    let until = match &query.until {
        Some(t) => {
            report::parse_time(t, now).map_err(|e| ApiError::BadRequest(format!("until: {e}")))?
        }
        None => now,
    };
    let by = By::parse(query.by.as_deref().unwrap_or("key"))
        .map_err(|e| ApiError::BadRequest(format!("by: {e}")))?;
    let hours = report::hours(since, until);
    let rows = ledger.report(by, hours).await.map_err(|e| {
        tracing::warn!(error = %e, "usage report failed");
        ApiError::LedgerUnavailable
    })?;
    let body =
        serde_json::to_vec(&Report::new(by, hours, &rows)).map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body))
}
