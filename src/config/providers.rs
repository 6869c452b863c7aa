//! `[providers.NAME]`: one upstream, as written in the file and as resolved for its kind.
//!
//! The file side is one flat struct rather than a serde-tagged enum: a tagged enum buffers
//! its content, and then parse errors lose the line and the key they should name. So every
//! kind's fields are optional here, [`ProviderConfig::settings`] applies the kind's defaults
//! into [`OpenAiProviderConfig`] or [`MockProviderConfig`], and validation rejects a field of
//! another kind by name. Every duration and size has a bound (see `bounds.rs`): an idle
//! deadline is `Instant + stream_idle_timeout`, a response buffer may grow to
//! `max_response_bytes`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::bounds::{self, GIB, HOUR, KIB, MIB, MINUTE};
use super::{duration, key_segment, Invalid};

/// `[providers.NAME]`: one upstream. The fields a `kind` does not use are rejected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `"openai"` (any OpenAI-compatible HTTP API), `"anthropic"` (the Messages API; chat
    /// completions are translated) or `"mock"` (in-process). Required.
    pub kind: ProviderKind,
    /// openai: base URL up to and including the API version, e.g.
    /// `https://api.openai.com/v1`. Required for openai. `${VAR}` allowed.
    #[serde(default)]
    pub base_url: Option<String>,
    /// openai: bearer key sent upstream. Default: none. `${VAR}` allowed (and expected).
    #[serde(default)]
    pub api_key: Option<String>,
    /// openai: deadline for one attempt — the whole JSON answer, or a stream's headers and
    /// first chunk. Default `"60s"`; more than 0s, at most 6h.
    #[serde(default, with = "duration::option")]
    pub timeout: Option<Duration>,
    /// openai: TCP/TLS connect deadline. Default `"5s"`; more than 0s, at most 5m.
    #[serde(default, with = "duration::option")]
    pub connect_timeout: Option<Duration>,
    /// openai: longest silence between two chunks of a stream. Default `"60s"`; more than 0s,
    /// at most 1h.
    #[serde(default, with = "duration::option")]
    pub stream_idle_timeout: Option<Duration>,
    /// openai: longest single SSE line or event accepted from the upstream, in bytes.
    /// Default 1048576 (1 MiB); 1 KiB to 64 MiB.
    #[serde(default)]
    pub max_event_bytes: Option<usize>,
    /// openai: largest JSON (non-streamed) answer accepted from the upstream, in bytes.
    /// Default 33554432 (32 MiB); 1 KiB to 1 GiB.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// openai: extra headers sent with every request. Default: none. `${VAR}` allowed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// openai: add `stream_options.include_usage` to streamed requests whose client did not
    /// ask for it, so streams are priced (the usage event is cut before the client sees it).
    /// Turn off for a strict upstream that refuses the field (then such streams are unpriced).
    /// Default `true`.
    #[serde(default)]
    pub inject_stream_usage: Option<bool>,
    /// anthropic: the `anthropic-version` header. Default `"2023-06-01"`.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// anthropic: `max_tokens` sent when the client set none (Anthropic requires it). Default
    /// 4096; 1 to 1000000.
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    /// mock: delay before the answer or the first chunk. Default `"0s"`; at most 1h.
    #[serde(default, with = "duration::option")]
    pub latency: Option<Duration>,
    /// mock: delay between streamed chunks. Default `"0s"`; at most 1h.
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
    /// Anthropic's Messages API.
    Anthropic,
    /// The in-process mock: answers like a provider, no network.
    Mock,
}

/// A provider's settings with defaults applied, by kind.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    OpenAi(OpenAiProviderConfig),
    Anthropic(AnthropicProviderConfig),
    Mock(MockProviderConfig),
}

/// Resolved `kind = "anthropic"` settings: the HTTP side as for openai (`base_url` defaults
/// to `https://api.anthropic.com`), and the Messages API's own.
#[derive(Debug, Clone)]
pub struct AnthropicProviderConfig {
    pub http: OpenAiProviderConfig,
    pub version: String,
    pub default_max_tokens: u32,
}

/// Resolved `kind = "openai"` settings.
#[derive(Debug, Clone)]
pub struct OpenAiProviderConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// Longest single SSE line or event accepted from the upstream, in bytes.
    pub max_event_bytes: usize,
    /// Largest JSON answer accepted from the upstream, in bytes.
    pub max_response_bytes: usize,
    pub headers: BTreeMap<String, String>,
    /// Ask for a stream's usage when the client did not.
    pub inject_stream_usage: bool,
}

/// Resolved `kind = "mock"` settings.
#[derive(Debug, Clone, Default)]
pub struct MockProviderConfig {
    pub latency: Duration,
    pub chunk_delay: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_stream_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
/// Default of `max_event_bytes`: 1 MiB, far above any real chunk, far below harm.
fn default_max_event_bytes() -> usize {
    1024 * 1024
}
/// Default of `max_response_bytes`: 32 MiB.
fn default_max_response_bytes() -> usize {
    32 * 1024 * 1024
}

impl ProviderConfig {
    /// The settings of this provider's kind, with defaults applied.
    pub fn settings(&self) -> ProviderSettings {
        match self.kind {
            ProviderKind::OpenAi => ProviderSettings::OpenAi(self.http(String::new())),
            ProviderKind::Anthropic => ProviderSettings::Anthropic(AnthropicProviderConfig {
                http: self.http("https://api.anthropic.com".into()),
                version: self
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| "2023-06-01".into()),
                default_max_tokens: self.default_max_tokens.unwrap_or(4096),
            }),
            ProviderKind::Mock => ProviderSettings::Mock(MockProviderConfig {
                latency: self.latency.unwrap_or_default(),
                chunk_delay: self.chunk_delay.unwrap_or_default(),
            }),
        }
    }

    /// The HTTP settings with their defaults (`base_url` defaulting to `default_base`).
    fn http(&self, default_base: String) -> OpenAiProviderConfig {
        OpenAiProviderConfig {
            base_url: self.base_url.clone().unwrap_or(default_base),
            api_key: self.api_key.clone(),
            timeout: self.timeout.unwrap_or_else(default_timeout),
            connect_timeout: self.connect_timeout.unwrap_or_else(default_connect_timeout),
            stream_idle_timeout: self
                .stream_idle_timeout
                .unwrap_or_else(default_stream_idle_timeout),
            max_event_bytes: self.max_event_bytes.unwrap_or_else(default_max_event_bytes),
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or_else(default_max_response_bytes),
            headers: self.headers.clone(),
            inject_stream_usage: self.inject_stream_usage.unwrap_or(true),
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
            ("max_event_bytes", self.max_event_bytes.is_some()),
            ("max_response_bytes", self.max_response_bytes.is_some()),
            ("headers", !self.headers.is_empty()),
        ];
        let openai_only = [("inject_stream_usage", self.inject_stream_usage.is_some())];
        let anthropic = [
            ("anthropic_version", self.anthropic_version.is_some()),
            ("default_max_tokens", self.default_max_tokens.is_some()),
        ];
        let mock = [
            ("latency", self.latency.is_some()),
            ("chunk_delay", self.chunk_delay.is_some()),
        ];
        let foreign: &[&[(&'static str, bool)]] = match self.kind {
            ProviderKind::OpenAi => &[&anthropic, &mock],
            ProviderKind::Anthropic => &[&mock, &openai_only],
            ProviderKind::Mock => &[&openai, &openai_only, &anthropic],
        };
        foreign
            .iter()
            .flat_map(|keys| keys.iter())
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Checks this provider, named `name` in the file.
    pub(super) fn validate(&self, name: &str) -> Result<(), Invalid> {
        let base = format!("providers.{}", key_segment(name));
        if name.is_empty() || name.len() > 64 {
            return Err(Invalid::new(base, "provider names are 1 to 64 characters"));
        }
        if let Some(key) = self.foreign_keys().first() {
            return Err(Invalid::new(
                format!("{base}.{key}"),
                format!("not a setting of kind = {:?}", self.kind),
            ));
        }
        if self.kind == ProviderKind::OpenAi && self.base_url.is_none() {
            return Err(Invalid::new(
                format!("{base}.base_url"),
                "required for kind = \"openai\"",
            ));
        }
        match self.settings() {
            ProviderSettings::OpenAi(p) => validate_openai(&base, &p),
            ProviderSettings::Anthropic(a) => {
                validate_openai(&base, &a.http)?;
                if a.version.is_empty()
                    || reqwest::header::HeaderValue::from_str(&a.version).is_err()
                {
                    return Err(Invalid::new(
                        format!("{base}.anthropic_version"),
                        "must be a header value such as \"2023-06-01\"",
                    ));
                }
                if !(1..=1_000_000).contains(&a.default_max_tokens) {
                    return Err(Invalid::new(
                        format!("{base}.default_max_tokens"),
                        format!("{} is out of range: 1 to 1000000", a.default_max_tokens),
                    ));
                }
                Ok(())
            }
            ProviderSettings::Mock(m) => {
                bounds::at_most(format!("{base}.latency"), m.latency, HOUR)?;
                bounds::at_most(format!("{base}.chunk_delay"), m.chunk_delay, HOUR)
            }
        }
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
    bounds::positive(format!("{base}.timeout"), p.timeout, 6 * HOUR)?;
    bounds::positive(
        format!("{base}.connect_timeout"),
        p.connect_timeout,
        5 * MINUTE,
    )?;
    bounds::positive(
        format!("{base}.stream_idle_timeout"),
        p.stream_idle_timeout,
        HOUR,
    )?;
    bounds::bytes(
        format!("{base}.max_event_bytes"),
        p.max_event_bytes,
        KIB,
        64 * MIB,
    )?;
    bounds::bytes(
        format!("{base}.max_response_bytes"),
        p.max_response_bytes,
        KIB,
        GIB,
    )?;
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
