//! `[telemetry.otlp]`: where spans go (Tempo, or any OTLP collector) and how many.
//!
//! Every field is optional so the standard `OTEL_*` environment variables can fill in what the
//! file leaves out: a value written here wins over the variable (OpenTelemetry's "programmatic
//! configuration overrides the environment" rule). The section's presence is what turns the
//! exporter on; see `docs/TRACING.md` for the whole precedence table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::bounds::{self, MINUTE};
use super::{duration, key_segment, Invalid};

/// `[telemetry.otlp]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Collector URL. For `http/protobuf` the full URL of the traces resource; a URL without a
    /// path gets `/v1/traces` appended. For `grpc` the collector's address with its scheme
    /// (`http://tempo:4317`). Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, then `http://localhost:4318/v1/traces` (http) or
    /// `http://localhost:4317` (grpc). `${VAR}` allowed.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `"http/protobuf"` or `"grpc"`. Default: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, then `"http/protobuf"`.
    #[serde(default)]
    pub protocol: Option<OtlpProtocol>,
    /// Extra headers (or gRPC metadata) sent with every export, e.g. a hosted collector's
    /// credentials. Default: none; `OTEL_EXPORTER_OTLP_HEADERS` adds to them. `${VAR}` allowed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Fraction of new traces recorded, 0.0 to 1.0. A caller's `traceparent` decision is
    /// always followed (parent-based sampling). Default: `OTEL_TRACES_SAMPLER` /
    /// `OTEL_TRACES_SAMPLER_ARG`, then 1.0.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME`, then
    /// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, then `"gatewayz"`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Deadline of one export. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`, then `"10s"`; more than
    /// 0s, at most 5m.
    #[serde(default, with = "duration::option")]
    pub timeout: Option<Duration>,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP/1.1 (`POST /v1/traces`), OTLP's default.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`).
    #[serde(rename = "grpc")]
    Grpc,
}

impl OtlpConfig {
    pub(super) fn interpolate(
        &mut self,
        expand: &dyn Fn(String, &mut String) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if let Some(endpoint) = &mut self.endpoint {
            expand("telemetry.otlp.endpoint".into(), endpoint)?;
        }
        for (name, value) in &mut self.headers {
            expand(
                format!("telemetry.otlp.headers.{}", key_segment(name)),
                value,
            )?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(endpoint) = &self.endpoint {
            let url = reqwest::Url::parse(endpoint).map_err(|e| {
                Invalid::new("telemetry.otlp.endpoint", format!("{endpoint:?}: {e}"))
            })?;
            // The exporters (HTTP and gRPC) take the endpoint as an `http::Uri`, stricter than
            // a URL (`http:/host` is a URL, not a URI with an authority).
            let uri = endpoint.parse::<hyper::Uri>().ok();
            if !matches!(url.scheme(), "http" | "https")
                || uri.as_ref().and_then(|u| u.authority()).is_none()
            {
                return Err(Invalid::new(
                    "telemetry.otlp.endpoint",
                    format!("{endpoint:?}: write it as http://HOST:PORT or https://HOST:PORT"),
                ));
            }
        }
        for (name, value) in &self.headers {
            let key = format!("telemetry.otlp.headers.{}", key_segment(name));
            // gRPC metadata keys are lowercase; HTTP accepts them as well.
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !valid_name {
                return Err(Invalid::new(
                    key,
                    "header names are lowercase letters, digits, `-`, `_` and `.`",
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                // Never echo the value: it is usually a credential.
                return Err(Invalid::new(key, "the value is not a valid header value"));
            }
        }
        if let Some(ratio) = self.sample_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(Invalid::new(
                    "telemetry.otlp.sample_ratio",
                    format!("{ratio} is not between 0.0 and 1.0"),
                ));
            }
        }
        if self.service_name.as_deref().is_some_and(str::is_empty) {
            return Err(Invalid::new(
                "telemetry.otlp.service_name",
                "must not be empty (omit it for the default)",
            ));
        }
        if let Some(timeout) = self.timeout {
            bounds::positive("telemetry.otlp.timeout", timeout, 5 * MINUTE)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<OtlpConfig, String> {
        let config: OtlpConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config
            .validate()
            .map_err(|e| format!("{}: {}", e.key, e.message))?;
        Ok(config)
    }

    #[test]
    fn accepts_a_full_section() {
        let c = check(
            r#"
            endpoint = "https://tempo.example:4317"
            protocol = "grpc"
            headers = { authorization = "Basic abc" }
            sample_ratio = 0.25
            service_name = "gateway-eu"
            timeout = "3s"
            "#,
        )
        .unwrap();
        assert_eq!(c.protocol, Some(OtlpProtocol::Grpc));
        assert_eq!(c.timeout, Some(Duration::from_secs(3)));
        assert!(check("").is_ok());
    }

    #[test]
    fn rejects_what_would_fail_later() {
        for (text, key) in [
            ("endpoint = \"tempo:4317\"", "telemetry.otlp.endpoint"),
            ("endpoint = \"not a url\"", "telemetry.otlp.endpoint"),
            (
                "endpoint = \"http:!/127.0.0.1:9\"",
                "telemetry.otlp.endpoint",
            ),
            ("sample_ratio = 1.5", "telemetry.otlp.sample_ratio"),
            ("service_name = \"\"", "telemetry.otlp.service_name"),
            ("timeout = \"0s\"", "telemetry.otlp.timeout"),
            ("headers = { \"X Bad\" = \"v\" }", "telemetry.otlp.headers"),
            (
                "headers = { auth = \"a\\nb\" }",
                "telemetry.otlp.headers.auth",
            ),
        ] {
            let err = check(text).unwrap_err();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        for text in ["protocol = \"http/json\"", "endpont = \"http://x\""] {
            assert!(check(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_bad_header_value_is_not_echoed() {
        let err = check("headers = { auth = \"s3cret\\n\" }").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
