//! The gateway's configuration: one TOML file, strictly parsed.
//!
//! Every struct rejects unknown keys, every field documents its default, durations are
//! strings (`"30s"`), and secrets come from `${VAR}` references interpolated after parsing.
//! [`Config::load`] reads, parses, interpolates and validates; every error names the key and
//! the line. `check-config` and `serve` both load through it, so a file one accepts the
//! other runs: every number and duration has a documented bound (`bounds.rs`), and a
//! non-loopback `server.listen` needs `[[keys]]`. Without a file the gateway runs
//! [`Config::builtin`]: loopback, in-process mock providers, no external backends.

mod actors;
mod api;
mod bounds;
mod describe;
mod duration;
mod error;
mod interpolate;
mod ledger;
mod limits;
mod locate;
mod loki;
mod metrics;
mod otlp;
mod providers;
mod state;
mod telemetry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

pub use actors::{AnomalyConfig, BreakerConfig, CostConfig, HealthConfig};
pub use api::{Api, Dialect};
pub use describe::{banner, redact_url, Running};
pub use error::{ConfigError, Invalid};
pub use interpolate::interpolate;
pub use ledger::{AdminConfig, Backend, LedgerConfig};
pub use limits::{BudgetPeriod, KeyPolicy, Limits, TeamConfig, MAX_NAME};
pub use locate::{key_at, key_segment, line_of};
pub use loki::{DropPolicy, LokiAuth, LokiConfig};
pub use metrics::{Category, Grant, MetricsConfig, MetricsToken};
pub use otlp::{OtlpConfig, OtlpProtocol};
pub use providers::{
    AnthropicProviderConfig, MockProviderConfig, OpenAiProviderConfig, ProviderConfig,
    ProviderKind, ProviderSettings,
};
pub use state::{FailurePolicy, StateConfig};
pub use telemetry::{LogFormat, TelemetryConfig};

/// Highest accepted model price, USD per 1M tokens: far above any real price, low enough
/// that a stray exponent (`2.0e9`) is caught.
const MAX_PRICE_PER_1M: f64 = 100_000.0;

/// Most HTTP workers: actix-server panics above 512.
const MAX_WORKERS: u64 = 512;

/// The built-in default, used by `gatewayz serve` without `--config`.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP server settings. Default: see [`ServerConfig`].
    #[serde(default)]
    pub server: ServerConfig,
    /// Failover settings. Default: see [`RoutingConfig`].
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Upstream providers by name. Required, at least one.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Models clients may ask for, by id. Required, at least one.
    pub models: BTreeMap<String, ModelConfig>,
    /// Client API keys. Default: none (then the gateway only serves on loopback, without auth).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Teams by name: limits shared by the keys naming them (`team = "NAME"`). Default: none
    /// (then a key's `team` is any label).
    #[serde(default)]
    pub teams: BTreeMap<String, TeamConfig>,
    /// Where limit counters live. Default: in this process.
    #[serde(default)]
    pub state: StateConfig,
    /// The durable usage ledger. Default: off.
    #[serde(default)]
    pub ledger: Option<LedgerConfig>,
    /// The admin API's token. Default: none (the admin API is off).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Metrics, logs and traces. Default: metrics only.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Access to the metrics endpoints. Default: open (no tokens).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Circuit breaker thresholds. Default: see [`BreakerConfig`].
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Health score and uptime windows. Default: see [`HealthConfig`].
    #[serde(default)]
    pub health: HealthConfig,
    /// Anomaly detection. Default: see [`AnomalyConfig`].
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    /// Cost and token efficiency. Default: see [`CostConfig`].
    #[serde(default)]
    pub cost: CostConfig,
    /// The file this was read from; `None` for the built-in default (not a setting).
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes. Default 4 MiB; 1 to 64 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Deadline for a whole client request, failover included. Default `"600s"`; more than
    /// 0s, at most 6h.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// Longest time a client may take to send its request body. Default `"30s"`; more than
    /// 0s, at most 1h.
    #[serde(default = "default_body_read_timeout", with = "duration")]
    pub body_read_timeout: Duration,
    /// HTTP worker threads. Default: one per core; 1 to 512 (actix-server's limit).
    #[serde(default)]
    pub workers: Option<usize>,
    /// The whole graceful-shutdown budget from SIGTERM to exit: draining requests in flight,
    /// then flushing logs and traces with what is left (see `crate::shutdown::Budget`).
    /// Default `"25s"`, inside Kubernetes' 30 s grace period; more than 0s, at most 1h.
    #[serde(default = "default_shutdown_timeout", with = "duration")]
    pub shutdown_timeout: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(25)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            request_timeout: default_request_timeout(),
            body_read_timeout: default_body_read_timeout(),
            workers: None,
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), Invalid> {
        // Never pre-allocated from a huge limit: a body is read in chunks up to this size.
        bounds::bytes(
            "server.max_body_bytes",
            self.max_body_bytes,
            1,
            64 * bounds::MIB,
        )?;
        bounds::positive(
            "server.request_timeout",
            self.request_timeout,
            6 * bounds::HOUR,
        )?;
        bounds::positive(
            "server.body_read_timeout",
            self.body_read_timeout,
            bounds::HOUR,
        )?;
        if let Some(workers) = self.workers {
            // actix-server asserts at most 512 workers (each an OS thread with its runtime).
            bounds::count("server.workers", workers, 1, MAX_WORKERS)?;
        }
        bounds::positive(
            "server.shutdown_timeout",
            self.shutdown_timeout,
            bounds::HOUR,
        )
    }
}

/// `[routing]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Most provider attempts per client request (the first try plus failovers). Default 3;
    /// 1 to 100.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    3
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
        }
    }
}

/// `[models.ID]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Providers serving this model, in order of preference. Required, at least one.
    pub providers: Vec<String>,
    /// Model name to send to a provider when it differs from the id, by provider name.
    /// Default: the id.
    #[serde(default)]
    pub upstream_model: BTreeMap<String, String>,
    /// USD per 1M input (prompt) tokens. Default 0; at most 100000.
    #[serde(default)]
    pub input_price_per_1m: f64,
    /// USD per 1M output (completion) tokens. Default 0; at most 100000.
    #[serde(default)]
    pub output_price_per_1m: f64,
    /// `owned_by` in `/v1/models`. Default `"gatewayz"`.
    #[serde(default)]
    pub owned_by: Option<String>,
    /// The APIs the model serves (`"chat"`, `"completions"`, `"embeddings"`, `"responses"`): a
    /// request for another is refused with a 400. Default: all of them.
    #[serde(default)]
    pub apis: Option<Vec<Api>>,
}

/// `[[keys]]`: one client API key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Who holds the key (for logs, limits and the `key` label; never the key itself).
    /// Required, unique.
    pub name: String,
    /// The bearer token. Required, unique. `${VAR}` allowed (and expected).
    pub key: String,
    /// RFC 3339 instant after which a trial key is refused. Default: never expires.
    #[serde(default)]
    pub trial_expires: Option<String>,
    /// The team the key belongs to: a `[teams.NAME]` when teams are configured (its limits
    /// apply too), else any label. Default: none (`team="none"` in metrics).
    #[serde(default)]
    pub team: Option<String>,
    /// The model ids this key may use; others get 403 `model_not_allowed`. Default: every
    /// model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Most requests per minute for this key; more get 429. Default: unlimited; 1 to 1000000.
    #[serde(default)]
    pub rate_limit_rpm: Option<u64>,
    /// Most tokens per minute (input and output; a request reserves its declared
    /// `max_tokens` or an estimate, corrected by its usage). Default: unlimited;
    /// 1 to 1000000000.
    #[serde(default)]
    pub rate_limit_tpm: Option<u64>,
    /// Most requests in flight at once. Default: unlimited; 1 to 1000000.
    #[serde(default)]
    pub max_parallel: Option<u64>,
    /// Spend allowed per budget period, USD (priced by the models' prices); past it requests
    /// get 429 `budget_exceeded`. Default: unlimited; more than 0, at most 1e9.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// `"monthly"` (calendar month, UTC) or whole hours (`"1h"`, `"1d"`, `"30d"`). Default
    /// `"30d"`; needs `budget_usd`.
    #[serde(default)]
    pub budget_period: Option<BudgetPeriod>,
    /// Spend past which a crossing is logged and counted once per period (no refusal).
    /// Default: none; more than 0, below `budget_usd`.
    #[serde(default)]
    pub soft_budget_usd: Option<f64>,
}

impl KeyConfig {
    /// The key's own limits.
    pub fn limits(&self) -> Limits {
        Limits {
            rpm: self.rate_limit_rpm,
            tpm: self.rate_limit_tpm,
            max_parallel: self.max_parallel,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
            soft_budget_usd: self.soft_budget_usd,
        }
    }

    /// What the limiters know of the key: everything but its secret.
    pub fn policy(&self) -> KeyPolicy {
        KeyPolicy {
            name: self.name.clone(),
            team: self.team.clone(),
            models: self.models.clone(),
            limits: self.limits(),
            expires: self.expiry(),
        }
    }

    /// The parsed trial expiry (validated at load time).
    pub fn expiry(&self) -> Option<SystemTime> {
        self.trial_expires
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
    }
}

impl Config {
    /// Reads, parses, interpolates and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml(&src, &path.display().to_string(), &|name| {
            std::env::var(name).ok()
        })?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// The sections that differ in `next` and take effect only at start-up: a reload that
    /// changes one is refused whole. A reload applies `[providers]`, `[models]`, `[[keys]]`
    /// and `[routing]`; the listener, workers and timeouts, the exporters, the shared store,
    /// the ledger, the tokens, the teams' shared limiters and the actors' windows are built
    /// once.
    pub fn restart_only_changes(&self, next: &Config) -> Vec<&'static str> {
        [
            ("[server]", self.server != next.server),
            ("[teams]", self.teams != next.teams),
            ("[state]", self.state != next.state),
            ("[ledger]", self.ledger != next.ledger),
            ("[admin]", self.admin != next.admin),
            ("[telemetry]", self.telemetry != next.telemetry),
            ("[metrics]", self.metrics != next.metrics),
            ("[breaker]", self.breaker != next.breaker),
            ("[health]", self.health != next.health),
            ("[anomaly]", self.anomaly != next.anomaly),
            ("[cost]", self.cost != next.cost),
        ]
        .into_iter()
        .filter_map(|(section, changed)| changed.then_some(section))
        .collect()
    }

    /// The built-in default configuration.
    pub fn builtin() -> Result<Self, ConfigError> {
        Self::from_toml(BUILTIN, "<built-in>", &|_| None)
    }

    /// Parses `src` (named `origin` in errors) with `env` resolving `${VAR}`.
    pub fn from_toml(
        src: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(src).map_err(|e| {
            // The line and column, without toml's excerpt of the line: that line may hold a
            // secret, and this message reaches logs (and the admin API, on a reload).
            let message = match e.span() {
                Some(span) => {
                    let before = &src[..span.start.min(src.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(
                        "TOML parse error at line {line}, column {column}: {}",
                        e.message().trim_end()
                    )
                }
                None => e.message().trim_end().to_owned(),
            };
            // toml points at the line; name the key too (a type error only has a span).
            let key = e.span().and_then(|span| key_at(src, span.start));
            ConfigError::Parse {
                origin: origin.to_owned(),
                message: match key {
                    Some(key) => format!("{key}: {message}"),
                    None => message,
                },
            }
        })?;
        let located = |invalid: Invalid| ConfigError::Invalid {
            origin: origin.to_owned(),
            line: line_of(src, &invalid.key),
            key: invalid.key,
            message: invalid.message,
        };
        config.interpolate(env).map_err(located)?;
        config.validate().map_err(located)?;
        Ok(config)
    }

    /// Expands `${VAR}` in the fields that may hold secrets or addresses.
    fn interpolate(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Invalid> {
        let expand = |key: String, value: &mut String| -> Result<(), Invalid> {
            *value = interpolate(value, env).map_err(|m| Invalid::new(key, m))?;
            Ok(())
        };
        for (name, provider) in &mut self.providers {
            let base = format!("providers.{}", key_segment(name));
            if let Some(url) = &mut provider.base_url {
                expand(format!("{base}.base_url"), url)?;
            }
            if let Some(key) = &mut provider.api_key {
                expand(format!("{base}.api_key"), key)?;
            }
            for (header, value) in &mut provider.headers {
                expand(format!("{base}.headers.{}", key_segment(header)), value)?;
            }
        }
        for (i, key) in self.keys.iter_mut().enumerate() {
            expand(format!("keys[{i}].key"), &mut key.key)?;
        }
        if let Some(url) = &mut self.state.redis_url {
            expand("state.redis_url".into(), url)?;
        }
        if let Some(ledger) = &mut self.ledger {
            expand("ledger.url".into(), &mut ledger.url)?;
        }
        if let Some(token) = &mut self.admin.token {
            expand("admin.token".into(), token)?;
        }
        self.telemetry.interpolate(&expand)?;
        self.metrics.interpolate(env)?;
        Ok(())
    }

    /// Checks what the types cannot: references, ranges, uniqueness.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.providers.is_empty() {
            return Err(Invalid::new(
                "providers",
                "at least one provider is required",
            ));
        }
        if self.models.is_empty() {
            return Err(Invalid::new("models", "at least one model is required"));
        }
        self.server.validate()?;
        bounds::count("routing.max_attempts", self.routing.max_attempts, 1, 100)?;
        for (name, provider) in &self.providers {
            provider.validate(name)?;
        }
        for (id, model) in &self.models {
            let base = format!("models.{}", key_segment(id));
            if id.is_empty() || id.len() > 256 {
                return Err(Invalid::new(base, "model ids are 1 to 256 characters"));
            }
            validate_model(&base, model, &self.providers)?;
        }
        validate_keys(&self.keys)?;
        limits::validate_policies(&self.keys, &self.teams, &self.models)?;
        self.exposure("server.listen", self.server.listen)?;
        self.state.validate()?;
        if let Some(ledger) = &self.ledger {
            ledger.validate()?;
        }
        self.admin.validate()?;
        self.telemetry.validate()?;
        self.metrics.validate()?;
        self.breaker.validate()?;
        self.health.validate()?;
        self.anomaly.validate()?;
        self.cost.validate()?;
        Ok(())
    }

    /// Checks a key made outside the file (the admin API, `gatewayz keys create`) as a
    /// `[[keys]]` entry is checked; the error names the field alone (`rate_limit_rpm`).
    pub fn validate_key(&self, key: &KeyPolicy) -> Result<(), Invalid> {
        if key.name.is_empty() || key.name.chars().count() > MAX_NAME {
            return Err(Invalid::new("name", "key names are 1 to 128 characters"));
        }
        if key.name.chars().any(char::is_control) {
            return Err(Invalid::new("name", "must not contain control characters"));
        }
        key.limits.validate("")?;
        limits::validate_names(key, "", &self.teams, &self.models)
    }

    /// Refuses to serve without authentication on anything but loopback. [`Config::validate`]
    /// applies it to `server.listen`; `serve` applies it again to a `--listen` override.
    pub fn check_exposure(&self, listen: SocketAddr) -> Result<(), Invalid> {
        self.exposure("keys", listen)
    }

    /// [`Config::check_exposure`], naming `key` when it refuses.
    fn exposure(&self, key: &str, listen: SocketAddr) -> Result<(), Invalid> {
        if self.keys.is_empty() && !listen.ip().is_loopback() {
            return Err(Invalid::new(
                key,
                format!(
                    "no client keys are configured, so the gateway only serves on a loopback \
                     address, not {listen}; add [[keys]] or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }
}

fn validate_keys(keys: &[KeyConfig]) -> Result<(), Invalid> {
    let mut names = std::collections::HashSet::new();
    let mut secrets = std::collections::HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let base = format!("keys[{i}]");
        if key.name.is_empty() {
            return Err(Invalid::new(format!("{base}.name"), "must not be empty"));
        }
        if !names.insert(key.name.as_str()) {
            return Err(Invalid::new(
                format!("{base}.name"),
                format!("duplicate key name {:?}", key.name),
            ));
        }
        if key.key.len() < 8 {
            return Err(Invalid::new(
                format!("{base}.key"),
                "must be at least 8 characters",
            ));
        }
        if !secrets.insert(key.key.as_str()) {
            // Name the key holder, never the secret.
            return Err(Invalid::new(
                format!("{base}.key"),
                format!("same secret as another key (holder {:?})", key.name),
            ));
        }
        if let Some(expiry) = &key.trial_expires {
            if humantime::parse_rfc3339_weak(expiry).is_err() {
                return Err(Invalid::new(
                    format!("{base}.trial_expires"),
                    format!("{expiry:?} is not an RFC 3339 instant such as 2026-12-31T23:59:59Z"),
                ));
            }
        }
        key.limits().validate(&base)?;
    }
    Ok(())
}

fn validate_model(
    base: &str,
    model: &ModelConfig,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<(), Invalid> {
    if model.providers.is_empty() {
        return Err(Invalid::new(
            format!("{base}.providers"),
            "at least one provider is required",
        ));
    }
    if model.apis.as_ref().is_some_and(Vec::is_empty) {
        return Err(Invalid::new(
            format!("{base}.apis"),
            "at least one API (\"chat\", \"completions\", \"embeddings\", \"responses\"), or omit \
             it for all",
        ));
    }
    if let Some(i) = model
        .apis
        .iter()
        .flatten()
        .position(|a| a.capability() != *a)
    {
        return Err(Invalid::new(
            format!("{base}.apis[{i}]"),
            "the Messages API is served by every model that serves \"chat\": list \"chat\"",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in model.providers.iter().enumerate() {
        if !providers.contains_key(p) {
            return Err(Invalid::new(
                format!("{base}.providers[{i}]"),
                format!(
                    "unknown provider {p:?} (known: {})",
                    known(providers.keys())
                ),
            ));
        }
        if !seen.insert(p) {
            return Err(Invalid::new(
                format!("{base}.providers[{i}]"),
                format!("provider {p:?} is listed twice"),
            ));
        }
    }
    for provider in model.upstream_model.keys() {
        if !model.providers.contains(provider) {
            return Err(Invalid::new(
                format!("{base}.upstream_model.{}", key_segment(provider)),
                format!("{provider:?} is not one of this model's providers"),
            ));
        }
    }
    for (key, price) in [
        ("input_price_per_1m", model.input_price_per_1m),
        ("output_price_per_1m", model.output_price_per_1m),
    ] {
        if !(price.is_finite() && (0.0..=MAX_PRICE_PER_1M).contains(&price)) {
            return Err(Invalid::new(
                format!("{base}.{key}"),
                format!("must be 0 to {MAX_PRICE_PER_1M} USD (got {price})"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
