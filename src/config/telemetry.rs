//! `[telemetry]`: metrics, logs (Loki) and traces (OTLP). Each backend section is optional;
//! without it that backend is off and the gateway runs without it.

use serde::Deserialize;

use super::loki::LokiConfig;
use super::otlp::OtlpConfig;
use super::Invalid;

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-07T01:00:00Z  INFO gatewayz::http: message key=value`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","target":…,"fields":{"message":…,…}}`.
    Json,
}

impl LogFormat {
    pub fn label(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

fn default_access_log() -> bool {
    true
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log filter in `RUST_LOG` syntax. Default `"info"`; `RUST_LOG` wins when set.
    #[serde(default)]
    pub log_level: Option<String>,
    /// How lines on stderr are written: `"text"` (for people) or `"json"` (one object per
    /// line, for log collectors reading stdout/stderr). Default `"text"`; `serve
    /// --log-format` wins.
    #[serde(default)]
    pub log_format: LogFormat,
    /// One INFO line per request (`chat completion answered`, `request refused`). Default
    /// `true`; `false` saves its formatting, about 10 % of a JSON request's instructions.
    #[serde(default = "default_access_log")]
    pub access_log: bool,
    /// Trace export over OTLP (Tempo). Default: off, unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. See [`OtlpConfig`].
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
    /// Ship logs to Loki. Default: off (no shipper runs). See [`LokiConfig`].
    #[serde(default)]
    pub loki: Option<LokiConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: None,
            log_format: LogFormat::default(),
            access_log: default_access_log(),
            otlp: None,
            loki: None,
        }
    }
}

impl TelemetryConfig {
    pub(super) fn interpolate(
        &mut self,
        expand: &dyn Fn(String, &mut String) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if let Some(otlp) = &mut self.otlp {
            otlp.interpolate(expand)?;
        }
        if let Some(loki) = &mut self.loki {
            loki.interpolate(expand)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(level) = &self.log_level {
            if tracing_subscriber::EnvFilter::try_new(level).is_err() {
                return Err(Invalid::new(
                    "telemetry.log_level",
                    format!("{level:?} is not a valid log filter"),
                ));
            }
        }
        if let Some(otlp) = &self.otlp {
            otlp.validate()?;
        }
        if let Some(loki) = &self.loki {
            loki.validate()?;
        }
        Ok(())
    }
}
