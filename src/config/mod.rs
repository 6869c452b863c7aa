//! The gateway's configuration: one TOML file, strictly parsed.
//!
//! Every struct rejects unknown keys, every field documents its default, durations are
//! strings (`"30s"`), and secrets come from `${VAR}` references interpolated after parsing.
//! [`Config::load`] reads, parses, interpolates and validates; every error names the key and
//! the line. Without a file the gateway runs [`Config::builtin`]: loopback, in-process mock
//! providers, no external backends.

mod describe;
mod duration;
mod error;
mod interpolate;
mod locate;
mod loki;
mod metrics;
mod observe;
mod otlp;
mod telemetry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

pub use describe::redact_url;
pub use error::{ConfigError, Invalid};
pub use interpolate::interpolate;
pub use locate::{key_at, key_segment, line_of};
pub use loki::{DropPolicy, LokiAuth, LokiConfig};
pub use metrics::{Grant, MetricsConfig, MetricsToken};
pub use observe::{AnomalyConfig, BreakerConfig, CostConfig, HealthConfig};
pub use otlp::{OtlpConfig, OtlpProtocol};
pub use telemetry::TelemetryConfig;

/// The built-in default, used by `gatewayz serve` without `--config`.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
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
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes. Default 4 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Deadline for a whole client request, failover included. Default `"600s"`.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// HTTP worker threads. Default: one per core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// The whole graceful-shutdown budget from SIGTERM to exit: draining requests in flight,
    /// then flushing logs and traces with what is left (see `crate::shutdown::Budget`).
    /// Default `"25s"`, inside Kubernetes' 30 s grace period.
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
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(25)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            request_timeout: default_request_timeout(),
            workers: None,
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// `[routing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Most provider attempts per client request (the first try plus failovers). Default 3.
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

/// `[providers.NAME]`: one upstream. The fields a `kind` does not use are rejected.
///
/// One flat struct rather than a serde-tagged enum: a tagged enum buffers its content, and
/// then parse errors lose the line and the key they should name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `"openai"` (any OpenAI-compatible HTTP API) or `"mock"` (in-process). Required.
    pub kind: ProviderKind,
    /// openai: base URL up to and including the API version, e.g.
    /// `https://api.openai.com/v1`. Required for openai. `${VAR}` allowed.
    #[serde(default)]
    pub base_url: Option<String>,
    /// openai: bearer key sent upstream. Default: none. `${VAR}` allowed (and expected).
    #[serde(default)]
    pub api_key: Option<String>,
    /// openai: deadline for one attempt — the whole JSON answer, or a stream's headers and
    /// first chunk. Default `"60s"`.
    #[serde(default, with = "duration::option")]
    pub timeout: Option<Duration>,
    /// openai: TCP/TLS connect deadline. Default `"5s"`.
    #[serde(default, with = "duration::option")]
    pub connect_timeout: Option<Duration>,
    /// openai: longest silence between two chunks of a stream. Default `"60s"`.
    #[serde(default, with = "duration::option")]
    pub stream_idle_timeout: Option<Duration>,
    /// openai: extra headers sent with every request. Default: none. `${VAR}` allowed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// mock: delay before the answer or the first chunk. Default `"0s"`.
    #[serde(default, with = "duration::option")]
    pub latency: Option<Duration>,
    /// mock: delay between streamed chunks. Default `"0s"`.
    #[serde(default, with = "duration::option")]
    pub chunk_delay: Option<Duration>,
}

/// `kind` of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible HTTP API.
    #[serde(rename = "openai")]
    OpenAi,
    /// The in-process mock: answers like a provider, no network.
    Mock,
}

/// A provider's settings with defaults applied, by kind.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    OpenAi(OpenAiProviderConfig),
    Mock(MockProviderConfig),
}

/// Resolved `kind = "openai"` settings.
#[derive(Debug, Clone)]
pub struct OpenAiProviderConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub headers: BTreeMap<String, String>,
    /// Longest single SSE line accepted from the upstream.
    pub max_event_bytes: usize,
    /// Largest JSON answer accepted from the upstream.
    pub max_response_bytes: usize,
}

/// Resolved `kind = "mock"` settings.
#[derive(Debug, Clone, Default)]
pub struct MockProviderConfig {
    pub latency: Duration,
    pub chunk_delay: Duration,
}

impl ProviderConfig {
    /// The settings of this provider's kind, with defaults applied.
    pub fn settings(&self) -> ProviderSettings {
        match self.kind {
            ProviderKind::OpenAi => ProviderSettings::OpenAi(OpenAiProviderConfig {
                base_url: self.base_url.clone().unwrap_or_default(),
                api_key: self.api_key.clone(),
                timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
                connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(5)),
                stream_idle_timeout: self.stream_idle_timeout.unwrap_or(Duration::from_secs(60)),
                headers: self.headers.clone(),
                max_event_bytes: crate::providers::DEFAULT_MAX_EVENT_BYTES,
                max_response_bytes: crate::providers::DEFAULT_MAX_RESPONSE_BYTES,
            }),
            ProviderKind::Mock => ProviderSettings::Mock(MockProviderConfig {
                latency: self.latency.unwrap_or_default(),
                chunk_delay: self.chunk_delay.unwrap_or_default(),
            }),
        }
    }

    /// Names of the keys set here that this kind does not use.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let openai = [
            ("base_url", self.base_url.is_some()),
            ("api_key", self.api_key.is_some()),
            ("timeout", self.timeout.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("stream_idle_timeout", self.stream_idle_timeout.is_some()),
            ("headers", !self.headers.is_empty()),
        ];
        let mock = [
            ("latency", self.latency.is_some()),
            ("chunk_delay", self.chunk_delay.is_some()),
        ];
        let foreign: &[(&'static str, bool)] = match self.kind {
            ProviderKind::OpenAi => &mock,
            ProviderKind::Mock => &openai,
        };
        foreign
            .iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// `[models.ID]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Providers serving this model, in order of preference. Required, at least one.
    pub providers: Vec<String>,
    /// Model name to send to a provider when it differs from the id, by provider name.
    /// Default: the id.
    #[serde(default)]
    pub upstream_model: BTreeMap<String, String>,
    /// USD per 1M input (prompt) tokens. Default 0.
    #[serde(default)]
    pub input_price_per_1m: f64,
    /// USD per 1M output (completion) tokens. Default 0.
    #[serde(default)]
    pub output_price_per_1m: f64,
    /// `owned_by` in `/v1/models`. Default `"gatewayz"`.
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// `[[keys]]`: one client API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Who holds the key (for logs and limits; never the key itself). Required, unique.
    pub name: String,
    /// The bearer token. Required, unique. `${VAR}` allowed (and expected).
    pub key: String,
    /// RFC 3339 instant after which a trial key is refused. Default: never expires.
    #[serde(default)]
    pub trial_expires: Option<String>,
    /// Most requests per minute for this key; more get 429. Default: unlimited.
    #[serde(default)]
    pub rate_limit_rpm: Option<u32>,
}

impl KeyConfig {
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
        Self::from_toml(&src, &path.display().to_string(), &|name| {
            std::env::var(name).ok()
        })
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
            let message = e.to_string().trim_end().to_owned();
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
        if self.server.max_body_bytes == 0 {
            return Err(Invalid::new(
                "server.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.server.workers == Some(0) {
            return Err(Invalid::new("server.workers", "must be greater than 0"));
        }
        if self.routing.max_attempts == 0 {
            return Err(Invalid::new("routing.max_attempts", "must be at least 1"));
        }
        for (name, provider) in &self.providers {
            let base = format!("providers.{}", key_segment(name));
            if name.is_empty() || name.len() > 64 {
                return Err(Invalid::new(base, "provider names are 1 to 64 characters"));
            }
            if let Some(key) = provider.foreign_keys().first() {
                return Err(Invalid::new(
                    format!("{base}.{key}"),
                    format!("not a setting of kind = {:?}", provider.kind),
                ));
            }
            if provider.kind == ProviderKind::OpenAi && provider.base_url.is_none() {
                return Err(Invalid::new(
                    format!("{base}.base_url"),
                    "required for kind = \"openai\"",
                ));
            }
            if let ProviderSettings::OpenAi(p) = provider.settings() {
                validate_openai(&base, &p)?;
            }
        }
        for (id, model) in &self.models {
            let base = format!("models.{}", key_segment(id));
            if id.is_empty() || id.len() > 256 {
                return Err(Invalid::new(base, "model ids are 1 to 256 characters"));
            }
            validate_model(&base, model, &self.providers)?;
        }
        let mut names = std::collections::HashSet::new();
        let mut secrets = std::collections::HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
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
                        format!(
                            "{expiry:?} is not an RFC 3339 instant such as 2026-12-31T23:59:59Z"
                        ),
                    ));
                }
            }
            if key.rate_limit_rpm == Some(0) {
                return Err(Invalid::new(
                    format!("{base}.rate_limit_rpm"),
                    "must be greater than 0 (omit it for no limit)",
                ));
            }
        }
        self.telemetry.validate()?;
        self.metrics.validate()?;
        self.breaker.validate()?;
        self.health.validate()?;
        self.anomaly.validate()?;
        self.cost.validate()?;
        Ok(())
    }

    /// Refuses to serve without authentication on anything but loopback.
    pub fn check_exposure(&self, listen: SocketAddr) -> Result<(), Invalid> {
        if self.keys.is_empty() && !listen.ip().is_loopback() {
            return Err(Invalid::new(
                "keys",
                format!(
                    "no client keys are configured, so the gateway only serves on a loopback \
                     address, not {listen}; add [[keys]] or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }
}

fn validate_openai(base: &str, p: &OpenAiProviderConfig) -> Result<(), Invalid> {
    match reqwest::Url::parse(&p.base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(_) => {
            return Err(Invalid::new(
                format!("{base}.base_url"),
                "must be an http:// or https:// URL",
            ))
        }
        Err(e) => return Err(Invalid::new(format!("{base}.base_url"), e)),
    }
    for (key, duration) in [
        ("timeout", p.timeout),
        ("connect_timeout", p.connect_timeout),
        ("stream_idle_timeout", p.stream_idle_timeout),
    ] {
        if duration.is_zero() {
            return Err(Invalid::new(
                format!("{base}.{key}"),
                "must be greater than 0s",
            ));
        }
    }
    for (name, value) in &p.headers {
        let key = format!("{base}.headers.{}", key_segment(name));
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Invalid::new(key, "not a valid HTTP header name"));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(Invalid::new(key, "not a valid HTTP header value"));
        }
    }
    if let Some(k) = &p.api_key {
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {k}")).is_err() {
            return Err(Invalid::new(
                format!("{base}.api_key"),
                "contains characters not allowed in an HTTP header",
            ));
        }
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
        if !price.is_finite() || price < 0.0 {
            return Err(Invalid::new(
                format!("{base}.{key}"),
                "must be a non-negative number of USD",
            ));
        }
    }
    Ok(())
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
