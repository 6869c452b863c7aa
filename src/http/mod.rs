//! The HTTP edge: thin handlers that parse, authorize, call the router and shape the reply;
//! the middleware that measures every request ([`track`]), opens its server span
//! ([`server_span`]) and puts `x-request-id` on every answer ([`request_id`]); client keys ([`auth`]) and metrics tokens ([`access`]); the pages
//! built from the metrics ([`summary`], [`docs`]); graceful drain ([`drain`]).

pub mod access;
pub mod admin;
pub mod auth;
mod chat;
pub mod console;
pub mod docs;
pub mod drain;
pub mod finish;
mod health;
mod messages;
mod metrics;
pub mod models;
pub mod overhead;
pub mod request_id;
pub mod server_span;
pub mod summary;
pub mod track;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, Resource, ResponseError, Route};

use arc_swap::ArcSwap;

use crate::board::Board;
use crate::catalog::Catalog;
use crate::errors::ApiError;
use crate::router::Router;
use crate::state::Store;
use auth::KeyStore;

/// What one configuration resolves to, swapped whole by a reload ([`AppState::live`]): a
/// request reads one generation from its start to its end, so a reload never mixes two
/// configurations in one request, and a request or stream in flight finishes on the one it
/// began with.
pub struct Generation {
    /// The configuration (the admin API validates keys against it).
    pub config: Arc<crate::config::Config>,
    pub catalog: Arc<Catalog>,
    pub router: Arc<Router>,
    /// The `/v1/models` body of every model, built once.
    pub models: models::ModelLists,
}

/// Everything a handler reads, shared by all workers.
pub struct AppState {
    /// The configuration in force and what it resolves to.
    pub live: ArcSwap<Generation>,
    /// The published state of the configuration in force (the metrics read it too).
    pub board: Arc<ArcSwap<Board>>,
    /// The client keys, the file's and the database's (a reload swaps the file's).
    pub keys: Arc<KeyStore>,
    /// The keys kept in the ledger's database (admin calls reach it through this); `None`
    /// without `[ledger]`.
    pub key_sync: Option<crate::ledger::keys::KeySync>,
    /// Per-key and per-team limits, checked once a request's body is parsed.
    pub limits: Store,
    /// The usage ledger, when `[ledger]` is on.
    pub ledger: Option<Arc<crate::ledger::Ledger>>,
    /// The admin API's token (`[admin] token`); `None`: the admin API is off.
    pub admin_token: Option<admin::AdminToken>,
    /// The built-in console (`/ui`), when an admin token is set.
    pub console: Option<Arc<console::Console>>,
    /// Re-reads the configuration file (`POST /admin/reload`; SIGHUP calls the same).
    pub reload: std::sync::OnceLock<admin::Reload>,
    /// `[telemetry] access_log`: one line per request.
    pub access_log: bool,
    pub max_body_bytes: usize,
    /// How long a client may take to send its body (`server.body_read_timeout`).
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    /// Unix time the gateway started (the models' `created`).
    pub started_unix: u64,
    /// Graceful shutdown: draining or not, and the signal that cuts open streams.
    pub drain: Arc<drain::Drain>,
}

impl AppState {
    /// The generation in force now.
    pub fn live(&self) -> Arc<Generation> {
        self.live.load_full()
    }
}

/// Every route pattern. Resources are named by their pattern, so the HTTP metrics label a
/// request from the matched resource's name instead of matching its path again. The OpenAI
/// routes are served without the `/v1` prefix too (clients configured with a `base_url` that
/// lacks it, as LiteLLM's users do).
pub const PATTERNS: [&str; 33] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/models/{id:.*}",
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
    "/messages",
    "/messages/count_tokens",
    "/models",
    "/models/{id:.*}",
    "/health",
    "/health/ready",
    "/health/providers",
    "/health/anomalies",
    "/metrics",
    "/prometheus/metrics/{name}",
    "/admin/usage",
    "/admin/keys",
    "/admin/keys/{name}",
    "/admin/keys/{name}/rotate",
    "/admin/reload",
    "/ui",
    "/ui/login",
    "/ui/logout",
    "/ui/assets/{file}",
    "/ui/api/{name}",
    "/ui/chart/{name}",
];

/// A resource answering one method; any other method gets an OpenAI-shaped 405.
fn only(pattern: &'static str, route: Route) -> Resource {
    web::resource(pattern)
        .name(pattern)
        .route(route)
        .default_service(web::to(method_not_allowed))
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let [chat, completions, embeddings, responses, messages, count_tokens, models, model, bare_chat, bare_completions, bare_embeddings, bare_responses, bare_messages, bare_count_tokens, bare_models, bare_model, health, ready, providers, anomalies, metrics_all, structured, admin_usage, admin_keys, admin_key, admin_rotate, admin_reload, ui, ui_login, ui_logout, ui_asset, ui_api, ui_chart] =
        PATTERNS;
    cfg.service(only(chat, web::post().to(chat::chat)))
        .service(only(completions, web::post().to(chat::completions)))
        .service(only(embeddings, web::post().to(chat::embeddings)))
        .service(only(responses, web::post().to(chat::responses)))
        .service(only(messages, web::post().to(messages::messages)))
        .service(only(count_tokens, web::post().to(messages::count_tokens)))
        .service(only(models, web::get().to(models::list)))
        .service(only(model, web::get().to(models::get)))
        .service(only(bare_chat, web::post().to(chat::chat)))
        .service(only(bare_completions, web::post().to(chat::completions)))
        .service(only(bare_embeddings, web::post().to(chat::embeddings)))
        .service(only(bare_responses, web::post().to(chat::responses)))
        .service(only(bare_messages, web::post().to(messages::messages)))
        .service(only(
            bare_count_tokens,
            web::post().to(messages::count_tokens),
        ))
        .service(only(bare_models, web::get().to(models::list)))
        .service(only(bare_model, web::get().to(models::get)))
        .service(only(health, web::get().to(health::health)))
        .service(only(ready, web::get().to(health::ready)))
        .service(only(providers, web::get().to(health::providers)))
        .service(only(anomalies, web::get().to(health::anomalies)))
        .service(only(metrics_all, web::get().to(metrics::metrics)))
        .service(only(structured, web::get().to(metrics::structured)))
        .service(only(admin_usage, web::get().to(admin::usage)))
        .service(
            web::resource(admin_keys)
                .name(admin_keys)
                .route(web::get().to(admin::list_keys))
                .route(web::post().to(admin::create_key))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource(admin_key)
                .name(admin_key)
                .route(web::get().to(admin::get_key))
                .route(web::patch().to(admin::patch_key))
                .route(web::delete().to(admin::delete_key))
                .default_service(web::to(method_not_allowed)),
        )
        .service(only(admin_rotate, web::post().to(admin::rotate_key)))
        .service(only(admin_reload, web::post().to(admin::reload)))
        .service(only(ui, web::get().to(console::page)))
        .service(only(ui_login, web::post().to(console::login)))
        .service(only(ui_logout, web::post().to(console::logout)))
        .service(only(ui_asset, web::get().to(console::asset)))
        .service(only(ui_api, web::get().to(console::api)))
        .service(only(ui_chart, web::get().to(console::chart)));
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
