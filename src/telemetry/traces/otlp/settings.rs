//! Resolves what the exporter should do from `[telemetry.otlp]` and the `OTEL_*` environment.
//!
//! Pure: the environment comes in as a lookup function, so the precedence rules (file first,
//! then the signal-specific variable, then the generic one, then the default) are table-tested
//! without touching the process environment. The exporter is the gateway's own
//! ([`super::export`]), so the headers, timeout and compression variables are read here too;
//! so are the sampler's; the resource variables are the SDK's.

use std::collections::BTreeMap;
use std::time::Duration;

use super::batch::Batching;
use crate::config::{OtlpConfig, OtlpProtocol};
use crate::telemetry::traces::span::{Root, Sampler};

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
    /// The file's, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (or else
    /// `OTEL_EXPORTER_OTLP_HEADERS`) over them: `k=v` pairs, comma-separated, values
    /// percent-decoded.
    pub headers: BTreeMap<String, String>,
    /// The file's `sample_ratio` (parent-based), else `OTEL_TRACES_SAMPLER(_ARG)` as the SDK
    /// reads them, else `parentbased_always_on`.
    pub sampler: Sampler,
    /// `None`: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, else `gatewayz`.
    pub service_name: Option<String>,
    /// Of one export, retries included: the file's, else `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`,
    /// else `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
    pub timeout: Duration,
    /// The span processor's queue, delay and batch size: `OTEL_BSP_MAX_QUEUE_SIZE`,
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms) and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, read as the SDK
    /// reads them (a value that does not parse is ignored; the batch is at most the queue).
    pub batching: Batching,
}

/// The export timeout when neither the file nor the environment sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
    let compression = var("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
        .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", v))
        .or_else(|| {
            var("OTEL_EXPORTER_OTLP_COMPRESSION").map(|v| ("OTEL_EXPORTER_OTLP_COMPRESSION", v))
        });
    if let Some((name, value)) = compression {
        if !value.trim().eq_ignore_ascii_case("none") {
            return Err(format!(
                "{name} {value:?} is not supported: spans are sent uncompressed (unset it, or set \"none\")"
            ));
        }
    }
    let mut headers = config.headers;
    if let Some(pairs) =
        var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
    {
        headers.extend(header_pairs(&pairs));
    }
    let millis = |name: &str| var(name).and_then(|v| v.trim().parse::<u64>().ok());
    let timeout = config
        .timeout
        .or_else(|| millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").map(Duration::from_millis))
        .or_else(|| millis("OTEL_EXPORTER_OTLP_TIMEOUT").map(Duration::from_millis))
        .unwrap_or(DEFAULT_TIMEOUT);
    Ok(Some(Settings {
        protocol,
        endpoint,
        headers,
        sampler: match config.sample_ratio {
            Some(ratio) => Sampler::parent_based(Root::Ratio(ratio)),
            None => sampler(env)?,
        },
        service_name: config.service_name,
        timeout,
        batching: batching(env),
    }))
}

/// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, with the SDK's names and defaults (a
/// ratio sampler without an argument samples everything, as the specification says; an
/// empty variable is an unset one, as it also says). Where
/// the SDK warned and fell back to sampling everything (an unknown or unimplemented sampler,
/// a ratio that does not parse), the gateway refuses to start and says why.
fn sampler(env: &dyn Fn(&str) -> Option<String>) -> Result<Sampler, String> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let Some(name) = set("OTEL_TRACES_SAMPLER") else {
        return Ok(Sampler::DEFAULT);
    };
    // Enum values are case-insensitive (the specification's rule for its variables).
    let name = name.trim().to_ascii_lowercase();
    let ratio = || {
        match set("OTEL_TRACES_SAMPLER_ARG") {
        None => Ok(Root::Ratio(1.0)),
        Some(arg) => arg.trim().parse::<f64>().map(Root::Ratio).map_err(|_| {
            format!(
                "OTEL_TRACES_SAMPLER {name:?} needs OTEL_TRACES_SAMPLER_ARG to be a ratio from 0.0 to 1.0 (it is {arg:?})"
            )
        }),
    }
    };
    let alone = |root| Sampler {
        parent_based: false,
        root,
    };
    Ok(match name.as_str() {
        "always_on" => alone(Root::Always),
        "always_off" => alone(Root::Never),
        "traceidratio" => alone(ratio()?),
        "parentbased_always_on" => Sampler::parent_based(Root::Always),
        "parentbased_always_off" => Sampler::parent_based(Root::Never),
        "parentbased_traceidratio" => Sampler::parent_based(ratio()?),
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER {other:?} is not supported: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
            ))
        }
    })
}

/// `OTEL_BSP_*`, parsed as the SDK's `BatchConfigBuilder` parses them.
fn batching(env: &dyn Fn(&str) -> Option<String>) -> Batching {
    use opentelemetry_sdk::trace::{
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY,
    };
    let mut batching = Batching::default();
    let number = |name: &str| env(name).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = number(OTEL_BSP_MAX_QUEUE_SIZE) {
        batching.max_queue = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(ms) = number(OTEL_BSP_SCHEDULE_DELAY) {
        batching.delay = Duration::from_millis(ms);
    }
    if let Some(n) = number(OTEL_BSP_MAX_EXPORT_BATCH_SIZE) {
        batching.max_batch = usize::try_from(n).unwrap_or(usize::MAX);
    }
    batching.max_batch = batching.max_batch.min(batching.max_queue);
    batching
}

/// `OTEL_EXPORTER_OTLP_HEADERS`' format: `k=v` pairs separated by commas, each trimmed, the
/// value percent-decoded (kept as written when that fails); a pair without a key or a value is
/// skipped.
fn header_pairs(pairs: &str) -> impl Iterator<Item = (String, String)> + '_ {
    pairs.split_terminator(',').filter_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        let (key, value) = (key.trim(), value.trim());
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_or_else(|_| value.to_owned(), |v| v.into_owned());
        (!key.is_empty() && !value.is_empty()).then(|| (key.to_owned(), value))
    })
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

    /// The file's ratio first (parent-based), then the SDK's variables; what the SDK only
    /// warned about is refused.
    #[test]
    fn the_sampler_comes_from_the_file_then_the_sdks_variables() {
        let on = "http://127.0.0.1:4318";
        let sampler = |config: Option<&OtlpConfig>, vars: &[(&str, &str)]| {
            let mut vars = vars.to_vec();
            vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", on));
            let resolved = resolve(config, &env(&vars));
            resolved.map(|s| s.unwrap().sampler)
        };
        let alone = |root| Sampler {
            parent_based: false,
            root,
        };
        let cases: [(&[(&str, &str)], Sampler); 13] = [
            (&[], Sampler::DEFAULT),
            (&[("OTEL_TRACES_SAMPLER", "always_on")], alone(Root::Always)),
            (&[("OTEL_TRACES_SAMPLER", "always_off")], alone(Root::Never)),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
                ],
                alone(Root::Ratio(0.5)),
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
                Sampler::parent_based(Root::Always),
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
                Sampler::parent_based(Root::Never),
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
                ],
                Sampler::parent_based(Root::Ratio(0.1)),
            ),
            // A ratio argument without a ratio sampler changes nothing.
            (&[("OTEL_TRACES_SAMPLER_ARG", "0.1")], Sampler::DEFAULT),
            // A ratio sampler without its argument: the specification's default, 1.0.
            (
                &[("OTEL_TRACES_SAMPLER", "traceidratio")],
                alone(Root::Ratio(1.0)),
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")],
                Sampler::parent_based(Root::Ratio(1.0)),
            ),
            // Empty is unset.
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", ""),
                ],
                alone(Root::Ratio(1.0)),
            ),
            (&[("OTEL_TRACES_SAMPLER", " ")], Sampler::DEFAULT),
            (
                &[("OTEL_TRACES_SAMPLER", "ParentBased_Always_Off")],
                Sampler::parent_based(Root::Never),
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(sampler(None, vars), Ok(want), "{vars:?}");
        }
        let file = OtlpConfig {
            sample_ratio: Some(0.25),
            ..OtlpConfig::default()
        };
        assert_eq!(
            sampler(Some(&file), &[("OTEL_TRACES_SAMPLER", "always_off")]),
            Ok(Sampler::parent_based(Root::Ratio(0.25)))
        );
        for (vars, names) in [
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1/2"),
                ][..],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "half"),
                ],
                "\"half\"",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "xray")],
                "\"xray\" is not supported",
            ),
        ] {
            let error = sampler(None, vars).unwrap_err();
            assert!(error.contains(names), "{error}");
        }
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
    fn headers_and_timeout_come_from_the_file_then_the_environment() {
        let section = OtlpConfig {
            headers: [
                ("x-file".to_string(), "1".to_string()),
                ("x-both".into(), "file".into()),
            ]
            .into(),
            ..Default::default()
        };
        let got = resolve(
            Some(&section),
            &env(&[
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=2"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    " x-both = env%20value , =x, y=,x-t=3",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]),
        )
        .unwrap()
        .unwrap();
        let want: BTreeMap<String, String> =
            [("x-both", "env value"), ("x-file", "1"), ("x-t", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(got.headers, want);
        assert_eq!(got.timeout, Duration::from_millis(2500));
        let timeout = |config: OtlpConfig, vars: &[(&str, &str)]| {
            resolve(Some(&config), &env(vars)).unwrap().unwrap().timeout
        };
        assert_eq!(timeout(OtlpConfig::default(), &[]), DEFAULT_TIMEOUT);
        let written = OtlpConfig {
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        assert_eq!(
            timeout(written, &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "5")]),
            Duration::from_secs(1)
        );
        assert_eq!(
            timeout(
                OtlpConfig::default(),
                &[
                    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "5"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "9")
                ]
            ),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn batching_is_the_sdks_unless_the_environment_says_otherwise() {
        let batching = |vars: &[(&str, &str)]| batching(&env(vars));
        assert_eq!(
            batching(&[]),
            Batching {
                max_queue: 2048,
                delay: Duration::from_secs(5),
                max_batch: 512,
            }
        );
        assert_eq!(
            batching(&[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ]),
            Batching {
                max_queue: 100,
                delay: Duration::from_millis(50),
                max_batch: 10,
            }
        );
        // The batch is at most the queue; what does not parse is ignored, as the SDK does.
        let got = batching(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"),
        ]);
        assert_eq!((got.max_queue, got.max_batch), (64, 64));
        assert_eq!(got.delay, Duration::from_secs(5));
        let resolved = resolve(
            Some(&OtlpConfig::default()),
            &env(&[("OTEL_BSP_SCHEDULE_DELAY", "20")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(resolved.batching.delay, Duration::from_millis(20));
    }

    #[test]
    fn compression_is_refused_by_name() {
        let got = resolve(
            Some(&OtlpConfig::default()),
            &env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]),
        );
        assert!(got
            .unwrap_err()
            .contains("OTEL_EXPORTER_OTLP_COMPRESSION \"gzip\""));
        let none = resolve(
            Some(&OtlpConfig::default()),
            &env(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none")]),
        );
        assert!(none.unwrap().is_some());
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
