//! `/ui`: the built-in console. Served by the gateway itself, its pages and script embedded
//! in the binary (no CDN, no build step), behind the admin token, and absent (404) without
//! one.
//!
//! A login form takes the admin token and opens a [`session`]: an `HttpOnly`,
//! `SameSite=Strict` cookie, and a CSRF token the pages send back as `x-csrf-token` on every
//! write (`POST /ui/logout`, and the admin API's key calls, which take the session as they
//! take the bearer token). Pages refresh from JSON endpoints every few seconds:
//!
//! - `GET /ui/api/overview`: requests/s, error rate, p50/p99 latency, time to first token and
//!   overhead per interval over the last minutes, from the in-process [`window`];
//! - `GET /ui/api/providers`: each provider's breaker state, health score, error rate,
//!   latency and attempts in flight, the breakers' transitions and the recent anomalies;
//! - `GET /ui/api/models`: each model's traffic, tokens, cost and 24 h uptime;
//! - `GET /ui/api/spend?since=7d&until=…&by=key|team|model|provider|api[&format=csv]`: the
//!   ledger's report (as `GET /admin/usage`), or its CSV as a download;
//! - `GET /ui/api/logs?model=&provider=&status=&limit=`: the last request lines ([`recent`]);
//! - `GET /ui/chart/{series}.svg`: the overview's charts, drawn on the server ([`svg`]).
//!
//! Nothing here is on the request path but one push per request into the logs ring, and only
//! while the console exists; the window is filled by a sampler task from the gathered
//! registry. No secret is shown but a key's secret in the answer that made or rotated it.

pub mod recent;
pub mod session;
pub mod svg;
pub mod window;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::check_token;
use super::AppState;
use crate::errors::ApiError;
use crate::telemetry::metrics::Metrics;
use recent::{Filter, Recent};
use session::Sessions;
use window::{Interval, Point, Window};

/// The session cookie's name.
pub const COOKIE: &str = "gatewayz_console";

/// The CSRF header the pages send on writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How often the sampler adds a point to the window.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Intervals the window keeps: 5 minutes at [`SAMPLE_EVERY`].
const INTERVALS: usize = 150;

const LOGIN: &str = include_str!("assets/login.html");
const SHELL: &str = include_str!("assets/console.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const LOGIN_STYLE: &str = include_str!("assets/login.css");

/// The console's state: sessions, the rolling window and the recent request lines.
#[derive(Debug)]
pub struct Console {
    pub sessions: Sessions,
    window: Mutex<Window>,
    pub recent: Arc<Recent>,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            sessions: Sessions::default(),
            window: Mutex::new(Window::new(INTERVALS)),
            recent: Arc::default(),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Console {
    /// Adds the registry's totals now to the window.
    pub fn sample(&self, metrics: &Metrics) {
        let point = Point::read(&metrics.gather(), unix_now());
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(point);
    }

    fn intervals(&self) -> Vec<Interval> {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .intervals()
    }

    /// Samples `metrics` every [`SAMPLE_EVERY`] for as long as the actix system runs.
    pub fn start_sampling(self: &Arc<Self>, metrics: Arc<Metrics>) {
        let console = self.clone();
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                console.sample(&metrics);
            }
        });
    }
}

/// The console, or 404 when there is none (no admin token).
fn console<'a>(req: &HttpRequest, state: &'a AppState) -> Result<&'a Arc<Console>, ApiError> {
    state
        .console
        .as_ref()
        .ok_or_else(|| ApiError::RouteNotFound(format!("{} {}", req.method(), req.path())))
}

/// The value of the session cookie the request carries.
fn session_cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// The `Set-Cookie` value for `token`: `HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS.
fn set_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// The CSRF token of the request's session, if it has an open one.
pub fn session_csrf(req: &HttpRequest, state: &AppState) -> Option<String> {
    let console = state.console.as_ref()?;
    console.sessions.csrf(session_cookie(req)?, Instant::now())
}

/// What a request's session allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No open session.
    None,
    /// An open session, and a read or a write with its CSRF token.
    Allowed,
    /// An open session, but a write without its CSRF token (or with another).
    CsrfMissing,
}

/// What the request's session allows: reads with the cookie, writes with the cookie and its
/// CSRF token in [`CSRF_HEADER`] too.
pub fn session_access(req: &HttpRequest, state: &AppState) -> Access {
    let Some(csrf) = session_csrf(req, state) else {
        return Access::None;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Access::Allowed;
    }
    let sent = req.headers().get(CSRF_HEADER).map(|v| v.as_bytes());
    let same = sent.is_some_and(|sent| {
        let want = super::auth::digest(csrf.as_bytes());
        super::auth::find_digest(std::iter::once(&want), &super::auth::digest(sent)).is_some()
    });
    if same {
        Access::Allowed
    } else {
        Access::CsrfMissing
    }
}

/// The error for a request its session does not allow.
pub fn refusal(access: Access) -> ApiError {
    match access {
        Access::CsrfMissing => ApiError::Forbidden(format!(
            "the console's CSRF token is missing or wrong: send it as `{CSRF_HEADER}`"
        )),
        _ => ApiError::Unauthorized("sign in to the console first (POST /ui/login)"),
    }
}

/// A console endpoint's guard: 404 without a console, 401 without a session.
fn signed_in<'a>(req: &HttpRequest, state: &'a AppState) -> Result<&'a Arc<Console>, ApiError> {
    let console = console(req, state)?;
    match session_access(req, state) {
        Access::Allowed => Ok(console),
        other => Err(refusal(other)),
    }
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'",
        ))
        .body(body)
}

fn login_page(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" role="alert">{e}</p>"#)
    });
    LOGIN.replace("{{error}}", &error)
}

/// `GET /ui`: the console when signed in, else the login form.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    console(&req, &state)?;
    Ok(match session_csrf(&req, &state) {
        Some(csrf) => html(SHELL.replace("{{csrf}}", &csrf)),
        None => html(login_page(None)),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /ui/login` (a form with `token`): opens a session and goes to the console.
pub async fn login(
    req: HttpRequest,
    form: Result<web::Form<LoginForm>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let console = console(&req, &state)?;
    let valid = form
        .as_ref()
        .is_ok_and(|f| check_token(&state, f.token.trim().as_bytes()));
    if !valid {
        tracing::warn!("console sign-in refused: wrong admin token");
        let mut reply = html(login_page(Some("That is not the admin token.")));
        *reply.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return Ok(reply);
    }
    let opened = console.sessions.open(Instant::now());
    let secure = req.connection_info().scheme() == "https";
    let cookie = set_cookie(&opened.token, session::LIFETIME.as_secs(), secure);
    tracing::info!("console session opened");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui"))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

/// `POST /ui/logout` (with the CSRF token): ends the session.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let console = signed_in(&req, &state)?;
    if let Some(token) = session_cookie(&req) {
        console.sessions.close(token);
    }
    let secure = req.connection_info().scheme() == "https";
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui"))
        .insert_header((header::SET_COOKIE, set_cookie("", 0, secure)))
        .finish())
}

/// `GET /ui/assets/{file}`: the script and the style sheets (the login form's without a
/// session: it is the one page shown before signing in).
pub async fn asset(
    req: HttpRequest,
    file: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if file.as_str() == "login.css" {
        console(&req, &state)?;
    } else {
        signed_in(&req, &state)?;
    }
    let (body, kind) = match file.as_str() {
        "login.css" => (LOGIN_STYLE, "text/css; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        other => {
            return Err(ApiError::RouteNotFound(format!(
                "GET /ui/assets/{}",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

fn json_reply(value: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

/// `GET /ui/api/{name}`
pub async fn api(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let console = signed_in(&req, &state)?;
    match name.as_str() {
        "overview" => Ok(json_reply(&json!({
            "interval_seconds": SAMPLE_EVERY.as_secs(),
            "intervals": console.intervals(),
        }))),
        "providers" => Ok(json_reply(&providers(&state))),
        "models" => Ok(json_reply(&models(&state, &metrics))),
        "logs" => {
            let filter = web::Query::<Filter>::from_query(req.query_string())
                .map_err(|e| ApiError::BadRequest(format!("{e}")))?;
            Ok(json_reply(
                &json!({ "lines": console.recent.newest(&filter) }),
            ))
        }
        "spend" => spend(&req, &state).await,
        "session" => Ok(json_reply(&json!({
            "signed_in": true,
            "ledger": state.ledger.is_some(),
            "keys_api": state.key_sync.is_some(),
        }))),
        other => Err(ApiError::RouteNotFound(format!(
            "GET /ui/api/{}",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// Each provider in force: breaker, health, window figures, requests in flight.
fn providers(state: &AppState) -> serde_json::Value {
    let board = state.board.load();
    let views = board.views.load();
    let providers: Vec<_> = board
        .providers()
        .map(|p| {
            let s = board.state(p);
            let view = views.get(p.index()).cloned().unwrap_or_default();
            json!({
                "provider": &**board.provider_name(p),
                "breaker_state": s.phase().label(),
                "health_score": s.health(),
                "in_flight": s.in_flight(),
                "requests": view.requests,
                "error_rate": view.error_rate,
                "latency_seconds": {
                    "p50": view.latency_p50_seconds,
                    "p99": view.latency_p99_seconds,
                },
            })
        })
        .collect();
    let transitions: Vec<_> = board.transitions.load().iter().rev().cloned().collect();
    let anomalies: Vec<_> = board.anomalies.load().iter().rev().cloned().collect();
    json!({"providers": providers, "transitions": transitions, "anomalies": anomalies})
}

/// Each model in force: the summary's figures (traffic, tokens, cost, uptime).
fn models(state: &AppState, metrics: &Metrics) -> serde_json::Value {
    let board = state.board.load();
    let summary = super::summary::summarize(
        &metrics.gather(),
        &board.live_provider_names(),
        &board.live_model_names(),
        &crate::config::Api::labels(),
        &board.anomalies.load(),
        unix_now(),
    );
    json!({"models": summary.models, "totals": summary.totals})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendQuery {
    since: Option<String>,
    until: Option<String>,
    by: Option<String>,
    format: Option<String>,
}

/// The ledger's report over a period (7 days by default), as JSON or a CSV download.
async fn spend(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let web::Query(query) = web::Query::<SpendQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let period = super::admin::UsageQuery {
        since: query.since,
        until: query.until,
        by: query.by,
    };
    let report = super::admin::usage_report(state, &period, "7d").await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(json_reply(&report)),
        Some("csv") => Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"gatewayz-spend-by-{}.csv\"",
                    report.by.name()
                ),
            ))
            .body(report.csv())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format: {:?} is neither json nor csv",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// `GET /ui/chart/{series}.svg`
pub async fn chart(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let console = signed_in(&req, &state)?;
    let intervals = console.intervals();
    let ms = |v: f64| format!("{:.1} ms", v * 1000.0);
    let pick = |f: &dyn Fn(&Interval) -> Option<f64>| -> Vec<Option<f64>> {
        intervals.iter().map(f).collect()
    };
    let svg = match name.as_str().strip_suffix(".svg").unwrap_or("") {
        "requests" => svg::chart(
            "Requests per second",
            &pick(&|i| Some(i.requests_per_second)),
            &|v| format!("{v:.1}/s"),
        ),
        "errors" => svg::chart("Error rate", &pick(&|i| i.error_rate), &|v| {
            format!("{:.1} %", v * 100.0)
        }),
        "latency" => svg::chart("Latency p50", &pick(&|i| i.latency_seconds.p50), &ms),
        "latency_p99" => svg::chart("Latency p99", &pick(&|i| i.latency_seconds.p99), &ms),
        "ttft" => svg::chart(
            "Time to first token p50",
            &pick(&|i| i.ttft_seconds.p50),
            &ms,
        ),
        "ttft_p99" => svg::chart(
            "Time to first token p99",
            &pick(&|i| i.ttft_seconds.p99),
            &ms,
        ),
        "overhead" => svg::chart(
            "Gateway overhead p50",
            &pick(&|i| i.overhead_seconds.p50),
            &ms,
        ),
        _ => {
            return Err(ApiError::RouteNotFound(format!(
                "GET /ui/chart/{}",
                name.chars().take(64).collect::<String>()
            )))
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(svg))
}
