//! HTTP server metrics as an actix middleware: `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}` and `http_requests_in_flight`.
//!
//! `route` is the matched route *pattern* (`/v1/models/{id:.*}`), never the raw path, and a
//! request no route matches is `unmatched`; `method` is one of the standard methods or
//! `other`. So clients cannot create series. Duration runs until the response head is ready
//! (a stream's body is measured by the inference metrics).

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use std::borrow::Cow;

use actix_web::{web, Error, HttpRequest};

use crate::http::PATTERNS;

use crate::telemetry::metrics::hot::{Route, RouteStatus};
use crate::telemetry::metrics::Meters;

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The `route` label once routing is done: the matched resource's name, which is its pattern
/// (see [`crate::http::PATTERNS`]) — a static string, no allocation, no second match.
fn route_label(req: &HttpRequest) -> Cow<'static, str> {
    match req.match_name() {
        Some(name) => match PATTERNS.iter().find(|p| **p == name) {
            Some(pattern) => Cow::Borrowed(*pattern),
            None => Cow::Owned(req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())),
        },
        None => Cow::Borrowed(UNMATCHED),
    }
}

/// Decrements in-flight when the request is over, however it ends.
struct InFlight(Arc<Meters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.hot.http_in_flight.add(-1, &());
    }
}

/// The middleware (`App::wrap(from_fn(track))`); reads `web::Data<Meters>` from app data.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(meters) = req
        .app_data::<web::Data<Meters>>()
        .map(|d| d.clone().into_inner())
    else {
        return next.call(req).await;
    };
    let started = Instant::now();
    let method = method_label(req.method());
    meters.hot.http_in_flight.add(1, &());
    let _guard = InFlight(meters.clone());
    let result = next.call(req).await;
    let (status, route) = match &result {
        Ok(res) => (res.status(), route_label(res.request())),
        Err(e) => (
            e.as_response_error().status_code(),
            Cow::Borrowed(UNMATCHED),
        ),
    };
    let route = Route { method, route };
    meters
        .hot
        .http_duration
        .record(started.elapsed().as_secs_f64(), &route);
    meters.hot.http_requests.add(
        1,
        &RouteStatus {
            route,
            status: status.as_u16(),
        },
    );
    result
}
