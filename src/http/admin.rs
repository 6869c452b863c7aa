//! `/admin/*`: the admin API, behind `[admin] token` (a bearer token compared in constant
//! time, as a digest). Without a token configured every admin route answers 404, as if it
//! did not exist.
//!
//! `GET /admin/usage?since=7d&until=…&by=key|team|model|provider|api`: spend and tokens from
//! the usage ledger's hourly rollups, as JSON (`gatewayz usage` prints the same).
//!
//! `/admin/keys`: client keys kept in the ledger's database (`GET` lists them with the
//! file's, `POST` makes one), `/admin/keys/{name}` (`GET` with its budget and usage, `PATCH`,
//! `DELETE`), `/admin/keys/{name}/rotate` (`POST`). A new or rotated key's secret is in that
//! one answer and nowhere else: the database keeps its SHA-256 digest. Every change is
//! applied on this replica before the answer, and on the others within `[admin]
//! key_sync_interval`. Errors name the field (`param`) they are about.
//!
//! `POST /admin/reload`: re-reads the configuration file and swaps it in, as SIGHUP does
//! (`app::reload`); 200 with what changed, 400 `invalid_config` with `gatewayz check-config`'s
//! message when the file is refused (the configuration in force keeps serving).

use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::{digest, find_digest, Origin};
use super::console::Access;
use super::AppState;
use crate::config::KeyPolicy;
use crate::errors::ApiError;
use crate::ledger::keys::{KeyError, KeySync, StoredKey};
use crate::ledger::report::{self, By, Report};

/// The admin token, kept as its digest.
#[derive(Debug, Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self(digest(token.as_bytes()))
    }
}

/// Whether `presented` is the admin token (compared in constant time, as digests).
pub fn check_token(state: &AppState, presented: &[u8]) -> bool {
    state.admin_token.as_ref().is_some_and(|token| {
        find_digest(std::iter::once(&token.0), &digest(presented.trim_ascii())).is_some()
    })
}

/// Lets the request through when it carries the admin token, or a console session (with its
/// CSRF token for anything but a read); 404 when the API is off.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.admin_token.is_none() {
        return Err(ApiError::RouteNotFound(format!(
            "{} {}",
            req.method(),
            req.path()
        )));
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match bearer {
        Some(presented) if check_token(state, presented) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("invalid admin token")),
        None => match super::console::session_access(req, state) {
            Access::Allowed => Ok(()),
            Access::None => Err(ApiError::Unauthorized(
                "missing admin token: send it as `Authorization: Bearer <token>`",
            )),
            csrf_missing => Err(super::console::refusal(csrf_missing)),
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub(super) since: Option<String>,
    pub(super) until: Option<String>,
    pub(super) by: Option<String>,
}

/// `GET /admin/usage`
pub async fn usage(
    req: HttpRequest,
    query: Result<web::Query<UsageQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let web::Query(query) = query.map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let report = usage_report(&state, &query, "30d").await?;
    let body = serde_json::to_vec(&report).map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body))
}

/// The ledger's report over `query`'s period and grouping (`since` defaults to
/// `default_since` before now, `until` to now, `by` to key): `GET /admin/usage`'s, and the
/// console's Spend page's.
pub(super) async fn usage_report(
    state: &AppState,
    query: &UsageQuery,
    default_since: &str,
) -> Result<Report, ApiError> {
    let ledger = state.ledger.as_ref().ok_or_else(|| {
        ApiError::BadRequest("the usage ledger is off: add [ledger] to the configuration".into())
    })?;
    let now = SystemTime::now();
    let since = report::parse_time(query.since.as_deref().unwrap_or(default_since), now)
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
    Ok(Report::new(by, hours, &rows))
}

// --- Reload ---------------------------------------------------------------------------

/// Re-reads the configuration file and swaps it in (`app` provides it): what changed, or why
/// nothing did.
pub type Reload = std::sync::Arc<
    dyn Fn() -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, ApiError>>
        + Send
        + Sync,
>;

/// `POST /admin/reload`
pub async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let reload = state.reload.get().ok_or(ApiError::Internal)?;
    let changes = reload().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "reloaded": true, "changes": changes })))
}

// --- Client keys ------------------------------------------------------------------------

/// The keys made through the admin API live in the ledger's database.
fn key_sync(state: &AppState) -> Result<&KeySync, ApiError> {
    state.key_sync.as_ref().ok_or_else(|| {
        ApiError::BadRequest(
            "API keys made through the admin API are kept in the usage ledger's database: add \
             [ledger] to the configuration"
                .into(),
        )
    })
}

fn unavailable(e: KeyError) -> ApiError {
    match e {
        KeyError::Exists(name) => ApiError::KeyExists(name),
        KeyError::NotFound(name) => ApiError::KeyNotFound(name),
        KeyError::Unavailable(error) => {
            tracing::warn!(error = %error, "an admin call to the API keys' database failed");
            ApiError::LedgerUnavailable
        }
    }
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        param: param.into(),
        message: message.into(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn from_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The body's fields, applied to `policy`: absent fields are kept, `null` clears one.
fn apply(policy: &mut KeyPolicy, body: &[u8], naming: bool) -> Result<(), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    let count = |name: &str, v: &serde_json::Value| match v {
        serde_json::Value::Null => Ok(None),
        v => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            invalid(
                name,
                format!("{name} must be a whole number above 0, or null"),
            )
        }),
    };
    let usd = |name: &str, v: &serde_json::Value| match v {
        serde_json::Value::Null => Ok(None),
        v => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(name, format!("{name} must be a number of USD, or null"))),
    };
    for (name, v) in &fields {
        let limits = &mut policy.limits;
        match name.as_str() {
            "name" if naming => {
                let text = v
                    .as_str()
                    .ok_or_else(|| invalid("name", "name must be a string"))?;
                if text.is_empty()
                    || text.len() > crate::config::MAX_NAME
                    || !text.chars().all(crate::ledger::keys::name_char)
                {
                    return Err(invalid(
                        "name",
                        "name must be 1 to 128 letters, digits or - _ . @ : +",
                    ));
                }
                policy.name = text.to_owned();
            }
            "name" => {
                return Err(invalid(
                    "name",
                    "a key's name cannot change; make a new key",
                ))
            }
            "team" => {
                policy.team = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(team) => Some(team.clone()),
                    _ => return Err(invalid("team", "team must be a string, or null")),
                }
            }
            "models" => {
                policy.models = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::Array(ids) => Some(
                        ids.iter()
                            .enumerate()
                            .map(|(i, id)| {
                                id.as_str().map(str::to_owned).ok_or_else(|| {
                                    invalid(format!("models[{i}]"), "model ids are strings")
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => {
                        return Err(invalid(
                            "models",
                            "models must be a list of model ids, or null for every model",
                        ))
                    }
                }
            }
            "rate_limit_rpm" => limits.rpm = count(name, v)?,
            "rate_limit_tpm" => limits.tpm = count(name, v)?,
            "max_parallel" => limits.max_parallel = count(name, v)?,
            "budget_usd" => limits.budget_usd = usd(name, v)?,
            "soft_budget_usd" => limits.soft_budget_usd = usd(name, v)?,
            "budget_period" => {
                limits.budget_period = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => Some(
                        crate::config::BudgetPeriod::parse(text)
                            .map_err(|e| invalid("budget_period", e))?,
                    ),
                    _ => {
                        return Err(invalid(
                            "budget_period",
                            "budget_period must be \"monthly\" or whole hours such as \"1d\"",
                        ))
                    }
                }
            }
            "expires_at" => {
                policy.expires = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => {
                        Some(humantime::parse_rfc3339_weak(text).map_err(|_| {
                            invalid(
                                "expires_at",
                                format!(
                                    "{text:?} is not an RFC 3339 instant such as \
                                     2026-12-31T23:59:59Z"
                                ),
                            )
                        })?)
                    }
                    _ => {
                        return Err(invalid(
                            "expires_at",
                            "expires_at must be a string, or null",
                        ))
                    }
                }
            }
            other => {
                return Err(invalid(
                    other,
                    format!(
                        "unknown field {other:?}; known: name, team, models, rate_limit_rpm, \
                         rate_limit_tpm, max_parallel, budget_usd, budget_period, \
                         soft_budget_usd, expires_at"
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// A key's policy as the admin API shows it (never its secret).
fn view(policy: &KeyPolicy, source: &str) -> serde_json::Map<String, serde_json::Value> {
    let l = &policy.limits;
    let serde_json::Value::Object(map) = serde_json::json!({
        "object": "api_key",
        "name": policy.name,
        "source": source,
        "team": policy.team,
        "models": policy.models,
        "rate_limit_rpm": l.rpm,
        "rate_limit_tpm": l.tpm,
        "max_parallel": l.max_parallel,
        "budget_usd": l.budget_usd,
        "budget_period": l.budget_usd.map(|_| l.period().to_string()),
        "soft_budget_usd": l.soft_budget_usd,
        "expires_at": policy.expires.map(rfc3339),
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn stored_view(key: &StoredKey) -> serde_json::Map<String, serde_json::Value> {
    let mut map = view(&key.policy, "database");
    map.insert("created_at".into(), rfc3339(from_ms(key.created_ms)).into());
    map.insert("updated_at".into(), rfc3339(from_ms(key.updated_ms)).into());
    map
}

fn json(status: actix_web::http::StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(body),
        Err(_) => actix_web::ResponseError::error_response(&ApiError::Internal),
    }
}

/// Refuses to edit a key of the configuration file.
fn not_in_file(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.live().config.keys.iter().any(|k| k.name == name) {
        return Err(ApiError::KeyInConfig(name.to_owned()));
    }
    Ok(())
}

/// Checks a key's policy against the configuration (teams, models, limits).
fn validate(state: &AppState, policy: &KeyPolicy) -> Result<(), ApiError> {
    state
        .live()
        .config
        .validate_key(policy)
        .map_err(|e| invalid(e.key.clone(), format!("{}: {}", e.key, e.message)))
}

/// `GET /admin/keys`: the file's keys and the database's.
pub async fn list_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let mut data: Vec<serde_json::Value> = state
        .keys
        .list()
        .iter()
        .filter(|k| k.origin == Origin::File)
        .map(|k| view(&k.policy, "config").into())
        .collect();
    if let Some(sync) = &state.key_sync {
        let stored = sync
            .call(|db| async move { Ok(db.keys().await?) })
            .await
            .map_err(unavailable)?;
        let config = state.live().config.clone();
        data.extend(
            stored
                .iter()
                .filter(|k| !config.keys.iter().any(|f| f.name == k.policy.name))
                .map(|k| stored_view(k).into()),
        );
    }
    Ok(json(
        actix_web::http::StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    ))
}

/// Runs a change to the key table, then applies it on this replica before the caller is
/// answered (the others follow within `[admin] key_sync_interval`).
async fn change<F, Fut>(sync: &KeySync, call: F) -> Result<(), ApiError>
where
    F: FnOnce(crate::ledger::Db) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), KeyError>> + Send + 'static,
{
    sync.call(call).await.map_err(unavailable)?;
    sync.refresh().await;
    Ok(())
}

/// `POST /admin/keys`: makes a key; the answer holds its secret, the only time it is shown.
pub async fn create_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let sync = key_sync(&state)?;
    let mut policy = KeyPolicy::default();
    apply(&mut policy, &body, true)?;
    if policy.name.is_empty() {
        return Err(invalid("name", "name is required"));
    }
    not_in_file(&state, &policy.name)?;
    validate(&state, &policy)?;
    let secret = crate::ledger::keys::new_secret();
    let key = crate::ledger::keys::stored(policy, &secret, SystemTime::now());
    let row = key.clone();
    change(sync, move |db| async move { db.insert_key(&row).await }).await?;
    tracing::info!(key = %key.policy.name, "API key created through the admin API");
    let mut answer = stored_view(&key);
    answer.insert("key".into(), secret.into());
    Ok(json(actix_web::http::StatusCode::CREATED, &answer))
}

/// The stored key named in the path.
async fn stored_key(sync: &KeySync, name: &str) -> Result<StoredKey, ApiError> {
    let name = name.to_owned();
    sync.call(move |db| async move { db.key(&name).await })
        .await
        .map_err(unavailable)
}

/// `GET /admin/keys/{name}`: the key, its budget as it stands and its usage this period.
pub async fn get_key(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let name = name.into_inner();
    let mut answer = match state.keys.get(&name).filter(|k| k.origin == Origin::File) {
        Some(file) => view(&file.policy, "config"),
        None => stored_view(&stored_key(key_sync(&state)?, &name).await?),
    };
    let now = SystemTime::now();
    let slot = state.keys.get(&name).map(|k| k.slot);
    let budget = slot.and_then(|slot| state.limits.local().key_budget(slot, now));
    // Usage since the budget's period began, else over the last 30 days.
    let since = match budget {
        Some(b) => crate::state::budget::span(b.period, now).start,
        None => now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(30 * 86_400),
    };
    answer.insert(
        "budget".into(),
        match budget {
            Some(b) => {
                let span = crate::state::budget::span(b.period, now);
                let at = |secs: u64| {
                    rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                };
                serde_json::json!({
                    "limit_usd": b.limit_usd,
                    "soft_usd": b.soft_usd,
                    "period": b.period.to_string(),
                    "period_start": at(span.start),
                    "period_end": at(span.end),
                    "spent_usd": b.spent_usd,
                    "remaining_usd": (b.limit_usd - b.spent_usd).max(0.0),
                })
            }
            None => serde_json::Value::Null,
        },
    );
    if let Some(sync) = &state.key_sync {
        let (who, since_ms) = (name.clone(), i64::try_from(since).unwrap_or(0) * 1000);
        let sums = sync
            .call(move |db| async move { Ok(db.key_usage(&who, since_ms).await?) })
            .await
            .map_err(unavailable)?;
        answer.insert(
            "usage".into(),
            serde_json::json!({
                "since": rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(since)),
                "requests": sums.requests,
                "errors": sums.errors,
                "input_tokens": sums.input_tokens,
                "output_tokens": sums.output_tokens,
                "cached_tokens": sums.cached_tokens,
                "cost_usd": sums.cost_usd,
            }),
        );
    }
    Ok(json(actix_web::http::StatusCode::OK, &answer))
}

/// `PATCH /admin/keys/{name}`: changes a key's team, models, limits, budget or expiry.
pub async fn patch_key(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let name = name.into_inner();
    not_in_file(&state, &name)?;
    let sync = key_sync(&state)?;
    let mut key = stored_key(sync, &name).await?;
    apply(&mut key.policy, &body, false)?;
    validate(&state, &key.policy)?;
    key.updated_ms = crate::ledger::unix_ms(SystemTime::now());
    let row = key.clone();
    change(sync, move |db| async move { db.update_key(&row).await }).await?;
    tracing::info!(key = %name, "API key changed through the admin API");
    Ok(json(actix_web::http::StatusCode::OK, &stored_view(&key)))
}

/// `POST /admin/keys/{name}/rotate`: a new secret (shown this once); the old one stops.
pub async fn rotate_key(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let name = name.into_inner();
    not_in_file(&state, &name)?;
    let sync = key_sync(&state)?;
    let mut key = stored_key(sync, &name).await?;
    let secret = crate::ledger::keys::new_secret();
    key.digest = crate::ledger::keys::sha256(secret.as_bytes());
    key.updated_ms = crate::ledger::unix_ms(SystemTime::now());
    let row = key.clone();
    change(sync, move |db| async move { db.update_key(&row).await }).await?;
    tracing::info!(key = %name, "API key rotated through the admin API");
    let mut answer = stored_view(&key);
    answer.insert("key".into(), secret.into());
    Ok(json(actix_web::http::StatusCode::OK, &answer))
}

/// `DELETE /admin/keys/{name}`: revokes a key (its usage records stay).
pub async fn delete_key(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let name = name.into_inner();
    not_in_file(&state, &name)?;
    let sync = key_sync(&state)?;
    let who = name.clone();
    change(sync, move |db| async move { db.delete_key(&who).await }).await?;
    tracing::info!(key = %name, "API key revoked through the admin API");
    Ok(json(
        actix_web::http::StatusCode::OK,
        &serde_json::json!({"object": "api_key", "name": name, "deleted": true}),
    ))
}
