//! Resolves what the exporter should do from `[telemetry.otlp]` and the `OTEL_*` environment.
//!
//! Pure: the environment comes in as a lookup function, so the precedence rules (file first,
//! then the signal-specific variable, then the generic one, then the default) are table-tested
//! without touching the process environment. Headers, timeout and compression variables are
//! read by `opentelemetry-otlp` itself; the sampler and resource variables by the SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{OtlpConfig, OtlpProtocol};

/// Default OTLP/HTTP traces URL.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// Default OTLP/gRPC collector address.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

/// The exporter's resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub protocol: OtlpProtocol,
    /// Full URL (HTTP: including `/v1/traces`).
    pub endpoint: String,
    /// From the file; `OTEL_EXPORTER_OTLP_HEADERS` is merged in by the exporter.
    pub headers: BTreeMap<String, String>,
    /// `None`: the SDK reads `OTEL_TRACES_SAMPLER(_ARG)`.
    pub sample_ratio: Option<f64>,
    /// `None`: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, else `gatewayz`.
    pub service_name: Option<String>,
    /// `None`: `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10 s.
    pub timeout: Option<Duration>,
}

/// Whether and how to export. `Ok(None)`: no exporter runs — no `[telemetry.otlp]` and no
/// endpoint variable, or `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
pub fn resolve(
    config: Option<&OtlpConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Settings>, String> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    let signal_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let generic_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let config = match config {
        Some(c) => c.clone(),
        None if signal_endpoint.is_some() || generic_endpoint.is_some() => OtlpConfig::default(),
        None => return Ok(None),
    };
    let protocol = match config.protocol {
        Some(p) => p,
        None => match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported: use \"http/protobuf\" or \"grpc\""
                ))
            }
        },
    };
    let endpoint = match (config.endpoint, protocol) {
        (Some(e), OtlpProtocol::HttpProtobuf) => with_traces_path(&e),
        (Some(e), OtlpProtocol::Grpc) => e,
        (None, _) if signal_endpoint.is_some() => signal_endpoint.unwrap_or_default(),
        (None, OtlpProtocol::HttpProtobuf) => match generic_endpoint {
            Some(base) => format!("{}/v1/traces", base.trim_end_matches('/')),
            None => DEFAULT_HTTP_ENDPOINT.into(),
        },
        (None, OtlpProtocol::Grpc) => {
            generic_endpoint.unwrap_or_else(|| DEFAULT_GRPC_ENDPOINT.into())
        }
    };
    Ok(Some(Settings {
        protocol,
        endpoint,
        headers: config.headers,
        sample_ratio: config.sample_ratio,
        service_name: config.service_name,
        timeout: config.timeout,
    }))
}

/// `http://tempo:4318` → `http://tempo:4318/v1/traces`; a URL with a path is kept as written.
fn with_traces_path(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(url) if url.path() == "/" || url.path().is_empty() => {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_owned(),
    }
}

/// The endpoint without credentials or query, fit for a log line.
pub fn redacted(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(url) => format!(
            "{}://{}{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            url.path()
        ),
        Err(_) => "(unparsable endpoint)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn endpoint(
        config: Option<&OtlpConfig>,
        vars: &[(&str, &str)],
    ) -> Option<(OtlpProtocol, String)> {
        resolve(config, &env(vars))
            .unwrap()
            .map(|s| (s.protocol, s.endpoint))
    }

    #[test]
    fn off_without_section_or_endpoint_variable() {
        assert_eq!(endpoint(None, &[]), None);
        assert_eq!(endpoint(None, &[("OTEL_SERVICE_NAME", "x")]), None);
        assert_eq!(endpoint(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]), None);
    }

    /// File section, environment, expected (protocol, endpoint).
    type Case<'a> = (
        Option<OtlpConfig>,
        Vec<(&'a str, &'a str)>,
        Option<(OtlpProtocol, &'a str)>,
    );

    #[test]
    fn endpoint_precedence() {
        use OtlpProtocol::*;
        let section = OtlpConfig::default();
        let grpc = OtlpConfig {
            protocol: Some(Grpc),
            ..Default::default()
        };
        let written = |e: &str, p| OtlpConfig {
            endpoint: Some(e.into()),
            protocol: p,
            ..Default::default()
        };
        let cases: Vec<Case> = vec![
            (
                Some(section.clone()),
                vec![],
                Some((HttpProtobuf, DEFAULT_HTTP_ENDPOINT)),
            ),
            (
                Some(grpc.clone()),
                vec![],
                Some((Grpc, DEFAULT_GRPC_ENDPOINT)),
            ),
            (
                None,
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4318/")],
                Some((HttpProtobuf, "http://tempo:4318/v1/traces")),
            ),
            (
                None,
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Some((Grpc, "http://tempo:4317")),
            ),
            (
                Some(section.clone()),
                vec![
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://a:1/custom"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2"),
                ],
                Some((HttpProtobuf, "http://a:1/custom")),
            ),
            (
                Some(written("http://file:4318", None)),
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")],
                Some((HttpProtobuf, "http://file:4318/v1/traces")),
            ),
            (
                Some(written("http://file:4318/otlp/v1/traces", None)),
                vec![],
                Some((HttpProtobuf, "http://file:4318/otlp/v1/traces")),
            ),
            (
                Some(written("http://file:4317", Some(Grpc))),
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
                Some((Grpc, "http://file:4317")),
            ),
            (
                Some(section.clone()),
                vec![("OTEL_SDK_DISABLED", "true")],
                None,
            ),
            (Some(section), vec![("OTEL_TRACES_EXPORTER", "none")], None),
        ];
        for (config, vars, want) in cases {
            let want = want.map(|(p, e)| (p, e.to_string()));
            assert_eq!(
                endpoint(config.as_ref(), &vars),
                want,
                "{config:?} {vars:?}"
            );
        }
    }

    #[test]
    fn unsupported_protocol_is_an_error() {
        let got = resolve(
            Some(&OtlpConfig::default()),
            &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        );
        assert!(got.unwrap_err().contains("http/json"));
    }

    #[test]
    fn redaction_drops_credentials_and_query() {
        assert_eq!(
            redacted("https://user:pw@tempo.example:443/v1/traces?token=x"),
            "https://tempo.example/v1/traces"
        );
        assert_eq!(redacted("http://localhost:4317"), "http://localhost:4317/");
    }
}
