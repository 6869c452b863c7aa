use super::*;

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_KEY").then(|| "sk-test-123".to_string())
}

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::from_toml(src, "test.toml", &env)
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "${OPENAI_KEY}"
timeout = "2s"

[providers.local]
kind = "mock"

[models."gpt-4.1"]
providers = ["openai", "local"]
upstream_model = { openai = "gpt-4.1-2025" }
input_price_per_1m = 2.0
output_price_per_1m = 8.0

[[keys]]
name = "alice"
key = "alice-secret-key"
trial_expires = "2030-01-01T00:00:00Z"
"#;

#[test]
fn builtin_is_valid_and_loopback() {
    let config = Config::builtin().unwrap();
    assert!(config.server.listen.ip().is_loopback());
    assert!(config.keys.is_empty());
    assert!(config.check_exposure(config.server.listen).is_ok());
}

#[test]
fn good_file_parses_and_interpolates() {
    let config = parse(GOOD).unwrap();
    let ProviderSettings::OpenAi(p) = config.providers["openai"].settings() else {
        panic!("wrong kind")
    };
    assert_eq!(p.api_key.as_deref(), Some("sk-test-123"));
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.connect_timeout, Duration::from_secs(5));
    assert!(config.keys[0].expiry().is_some());
}

/// Each bad file must fail with a message naming the key (and the line where known).
#[test]
fn bad_files_name_the_key_and_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("typo in a server key", "[server]\nlisten_addr = \"x\"\n", &["listen_addr", "line 2"]),
        (
            "unknown provider kind",
            "[providers.a]\nkind = \"grpc\"\n",
            &["grpc", "line 2", "kind"],
        ),
        (
            "wrong type",
            "[server]\nmax_body_bytes = \"big\"\n",
            &["server.max_body_bytes", "line 2", "invalid type"],
        ),
        (
            "legacy_names not a boolean",
            "[metrics]\nlegacy_names = \"no\"\n",
            &["metrics.legacy_names", "line 2", "invalid type"],
        ),
        (
            "typo in a metrics key",
            "[metrics]\nlegacy_name = false\n",
            &["legacy_name", "line 2"],
        ),
        (
            "wrong type in an array",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\n  \"a\",\n  5,\n]\n",
            &["models.m.providers[1]", "line 6"],
        ),
        (
            "bad duration",
            "[providers.a]\nkind = \"mock\"\nlatency = \"fast\"\n",
            &["latency", "invalid duration", "line 3"],
        ),
        (
            "unknown provider in a model",
            "[providers.a]\nkind = \"mock\"\n\n[models.m]\nproviders = [\"a\", \"b\"]\n",
            &["test.toml:5:", "models.m.providers[1]", "unknown provider \"b\""],
        ),
        (
            "missing env var",
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key = \"${NOPE}\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:4:", "providers.a.api_key", "NOPE is not set"],
        ),
        (
            "negative price",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\ninput_price_per_1m = -1.0\n",
            &["test.toml:5:", "models.m.input_price_per_1m"],
        ),
        (
            "bad expiry",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[[keys]]\nname = \"x\"\nkey = \"12345678\"\ntrial_expires = \"soon\"\n",
            &["test.toml:8:", "keys[0].trial_expires"],
        ),
        (
            "bad url",
            "[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:3:", "providers.a.base_url"],
        ),
        (
            "zero attempts",
            "[routing]\nmax_attempts = 0\n[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:2:", "routing.max_attempts"],
        ),
        ("no models", "[providers.a]\nkind = \"mock\"\n", &["models"]),
        (
            "setting of another kind",
            "[providers.a]\nkind = \"mock\"\nbase_url = \"http://x\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:3:", "providers.a.base_url", "not a setting of kind = Mock"],
        ),
        (
            "openai without base_url",
            "[providers.a]\nkind = \"openai\"\n[models.m]\nproviders = [\"a\"]\n",
            &["providers.a.base_url", "required"],
        ),
    ];
    for (what, src, needles) in cases {
        let err = parse(src).expect_err(what).to_string();
        for needle in *needles {
            assert!(err.contains(needle), "{what}: {needle:?} not in {err:?}");
        }
    }
}

/// The base of the policy cases: a model `m`, a team `ops`, then `[[keys]]` lines.
const POLICY: &str = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[teams.ops]\nrate_limit_rpm = 10\n[[keys]]\nname = \"x\"\nkey = \"12345678\"\n";

/// Keys' policies: a team that is not configured, a model that is not, a budget that does not
/// hold together; each names the key and its line (line 10 is the first after [`POLICY`]).
#[test]
fn policies_name_the_key_and_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "team = \"dev\"",
            &[
                "test.toml:10:",
                "keys[0].team",
                "unknown team \"dev\"",
                "ops",
            ],
        ),
        (
            "models = [\"m\", \"gpt-9\"]",
            &[
                "test.toml:10:",
                "keys[0].models[1]",
                "unknown model \"gpt-9\"",
            ],
        ),
        ("models = []", &["keys[0].models", "at least one"]),
        (
            "rate_limit_tpm = 0",
            &["test.toml:10:", "keys[0].rate_limit_tpm"],
        ),
        (
            "max_parallel = 1000001",
            &["test.toml:10:", "keys[0].max_parallel", "1 to 1000000"],
        ),
        (
            "budget_usd = -1.0",
            &["test.toml:10:", "keys[0].budget_usd"],
        ),
        (
            "budget_period = \"1d\"",
            &["test.toml:10:", "keys[0].budget_period", "needs budget_usd"],
        ),
        (
            "budget_period = \"weekly\"",
            &["keys[0].budget_period", "monthly"],
        ),
        (
            "budget_usd = 5.0\nsoft_budget_usd = 6.0",
            &["test.toml:11:", "keys[0].soft_budget_usd", "below"],
        ),
        (
            "budget_usd = 5.0\nbudget_period = \"90m\"",
            &["test.toml:11:", "keys[0].budget_period", "whole hours"],
        ),
    ];
    for (line, needles) in cases {
        let err = parse(&format!("{POLICY}{line}\n"))
            .expect_err(line)
            .to_string();
        for needle in *needles {
            assert!(err.contains(needle), "{line}: {needle:?} not in {err:?}");
        }
    }
    let team = parse(&POLICY.replace("rate_limit_rpm = 10", "max_parallel = 0")).unwrap_err();
    assert!(
        team.to_string()
            .contains("test.toml:6: teams.ops.max_parallel"),
        "{team}"
    );
}

/// A key with every limit, in a configured team, parses; without teams any label will do.
#[test]
fn a_full_policy_parses() {
    let src = format!(
        "{POLICY}team = \"ops\"\nmodels = [\"m\"]\nrate_limit_rpm = 60\nrate_limit_tpm = 10000\n\
         max_parallel = 4\nbudget_usd = 10.0\nbudget_period = \"monthly\"\nsoft_budget_usd = 8.0\n"
    );
    let config = parse(&src).unwrap();
    let limits = config.keys[0].limits();
    assert_eq!(limits.period(), BudgetPeriod::Monthly);
    assert_eq!(
        (limits.rpm, limits.tpm, limits.max_parallel),
        (Some(60), Some(10_000), Some(4))
    );
    assert_eq!(config.teams["ops"].limits().rpm, Some(10));
    let untyped = POLICY.replace("[teams.ops]\nrate_limit_rpm = 10\n", "");
    let config = parse(&format!("{untyped}team = \"anything\"\nbudget_usd = 1.0\n")).unwrap();
    assert_eq!(config.keys[0].limits().period(), BudgetPeriod::default());
}

#[test]
fn duplicate_secret_names_holder_not_secret() {
    let src = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[[keys]]\nname = \"x\"\nkey = \"same-secret\"\n[[keys]]\nname = \"y\"\nkey = \"same-secret\"\n";
    let err = parse(src).unwrap_err().to_string();
    assert!(err.contains("keys[1].key"), "{err}");
    assert!(!err.contains("same-secret"), "secret leaked: {err}");
}

#[test]
fn no_keys_only_on_loopback() {
    let config = Config::builtin().unwrap();
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert!(config.check_exposure(public).is_err());
    let with_keys = parse(GOOD).unwrap();
    assert!(with_keys.check_exposure(public).is_ok());
}

/// Every section, each header followed by what it requires; [`at`] inserts one line right
/// under a header, so the expected line number is known.
const SECTIONS: &str = r#"[server]
[routing]
[providers.m]
kind = "mock"
[providers.o]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.x]
providers = ["o", "m"]
[[keys]]
name = "k"
key = "12345678"
[telemetry.loki]
url = "http://loki:3100"
[telemetry.otlp]
[metrics]
[breaker]
[health]
[anomaly]
[cost]
[teams.t]
[state]
"#;

/// [`SECTIONS`] with `line` under `header`, and the 1-based number of that line.
fn at(header: &str, line: &str) -> (String, usize) {
    let mut out = String::new();
    let mut number = 0;
    for (i, l) in SECTIONS.lines().enumerate() {
        out.push_str(l);
        out.push('\n');
        if l == header {
            out.push_str(line);
            out.push('\n');
            number = i + 2;
        }
    }
    assert!(number > 0, "no {header} in SECTIONS");
    (out, number)
}

#[test]
fn every_section_parses_with_its_defaults() {
    let (src, _) = at("[server]", "");
    let config = parse(&src).unwrap();
    assert_eq!(config.server.body_read_timeout, Duration::from_secs(30));
    let ProviderSettings::OpenAi(p) = config.providers["o"].settings() else {
        panic!("wrong kind")
    };
    assert_eq!(p.max_event_bytes, 1024 * 1024);
    assert_eq!(p.max_response_bytes, 32 * 1024 * 1024);
    assert!(config.metrics.legacy_names);
    assert!(Config::builtin().unwrap().metrics.legacy_names);
    let (src, _) = at("[metrics]", "legacy_names = false");
    assert!(!parse(&src).unwrap().metrics.legacy_names);
}

/// A value out of its bound stops loading with the key's name and line, never a panic.
#[test]
fn out_of_bound_values_name_the_key_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        ("[server]", "workers = 100000", "server.workers"),
        ("[server]", "workers = 513", "server.workers"),
        ("[server]", "workers = 0", "server.workers"),
        ("[server]", "max_body_bytes = 0", "server.max_body_bytes"),
        (
            "[server]",
            "max_body_bytes = 67108865",
            "server.max_body_bytes",
        ),
        (
            "[server]",
            "request_timeout = \"0s\"",
            "server.request_timeout",
        ),
        (
            "[server]",
            "request_timeout = \"7h\"",
            "server.request_timeout",
        ),
        (
            "[server]",
            "body_read_timeout = \"0s\"",
            "server.body_read_timeout",
        ),
        (
            "[server]",
            "body_read_timeout = \"2h\"",
            "server.body_read_timeout",
        ),
        (
            "[server]",
            "shutdown_timeout = \"0s\"",
            "server.shutdown_timeout",
        ),
        (
            "[server]",
            "shutdown_timeout = \"99999999999s\"",
            "server.shutdown_timeout",
        ),
        (
            "[server]",
            "request_timeout = \"99999999999999d\"",
            "server.request_timeout",
        ),
        ("[routing]", "max_attempts = 101", "routing.max_attempts"),
        ("[providers.o]", "timeout = \"7h\"", "providers.o.timeout"),
        (
            "[providers.o]",
            "connect_timeout = \"6m\"",
            "providers.o.connect_timeout",
        ),
        (
            "[providers.o]",
            "stream_idle_timeout = \"2h\"",
            "providers.o.stream_idle_timeout",
        ),
        (
            "[providers.o]",
            "max_event_bytes = 1023",
            "providers.o.max_event_bytes",
        ),
        (
            "[providers.o]",
            "max_event_bytes = 67108865",
            "providers.o.max_event_bytes",
        ),
        (
            "[providers.o]",
            "max_response_bytes = 1023",
            "providers.o.max_response_bytes",
        ),
        (
            "[providers.o]",
            "max_response_bytes = 1073741825",
            "providers.o.max_response_bytes",
        ),
        (
            "[providers.m]",
            "max_event_bytes = 2048",
            "providers.m.max_event_bytes",
        ),
        (
            "[providers.m]",
            "max_response_bytes = 2048",
            "providers.m.max_response_bytes",
        ),
        ("[providers.m]", "latency = \"2h\"", "providers.m.latency"),
        (
            "[providers.m]",
            "chunk_delay = \"2h\"",
            "providers.m.chunk_delay",
        ),
        (
            "[models.x]",
            "input_price_per_1m = 1e308",
            "models.x.input_price_per_1m",
        ),
        (
            "[models.x]",
            "output_price_per_1m = nan",
            "models.x.output_price_per_1m",
        ),
        (
            "[[keys]]",
            "rate_limit_rpm = 1000001",
            "keys[0].rate_limit_rpm",
        ),
        (
            "[telemetry.loki]",
            "queue_capacity = 18446744073709551615",
            "telemetry.loki.queue_capacity",
        ),
        (
            "[telemetry.loki]",
            "queue_capacity = 9223372036854775807",
            "telemetry.loki.queue_capacity",
        ),
        (
            "[telemetry.loki]",
            "batch_max_bytes = 9223372036854775807",
            "telemetry.loki.batch_max_bytes",
        ),
        (
            "[telemetry.loki]",
            "batch_max_records = 100001",
            "telemetry.loki.batch_max_records",
        ),
        (
            "[telemetry.loki]",
            "max_tries = 10001",
            "telemetry.loki.max_tries",
        ),
        (
            "[telemetry.loki]",
            "flush_interval = \"2h\"",
            "telemetry.loki.flush_interval",
        ),
        (
            "[telemetry.loki]",
            "timeout = \"2h\"",
            "telemetry.loki.timeout",
        ),
        (
            "[telemetry.loki]",
            "backoff_min = \"2h\"",
            "telemetry.loki.backoff_min",
        ),
        (
            "[telemetry.loki]",
            "backoff_max = \"2h\"",
            "telemetry.loki.backoff_max",
        ),
        (
            "[telemetry.loki]",
            "shutdown_deadline = \"11m\"",
            "telemetry.loki.shutdown_deadline",
        ),
        (
            "[telemetry.otlp]",
            "timeout = \"6m\"",
            "telemetry.otlp.timeout",
        ),
        (
            "[breaker]",
            "consecutive_failures = 10001",
            "breaker.consecutive_failures",
        ),
        (
            "[breaker]",
            "min_requests = 1000001",
            "breaker.min_requests",
        ),
        ("[breaker]", "window = \"25h\"", "breaker.window"),
        (
            "[breaker]",
            "cool_down = \"99999999999s\"",
            "breaker.cool_down",
        ),
        (
            "[breaker]",
            "half_open_probes = 1001",
            "breaker.half_open_probes",
        ),
        ("[health]", "window = \"25h\"", "health.window"),
        (
            "[health]",
            "latency_target = \"2h\"",
            "health.latency_target",
        ),
        (
            "[health]",
            "publish_interval = \"1ns\"",
            "health.publish_interval",
        ),
        (
            "[health]",
            "publish_interval = \"2h\"",
            "health.publish_interval",
        ),
        ("[anomaly]", "warmup = 1000001", "anomaly.warmup"),
        ("[anomaly]", "z_threshold = inf", "anomaly.z_threshold"),
        ("[anomaly]", "z_threshold = 1001.0", "anomaly.z_threshold"),
        (
            "[anomaly]",
            "latency_floor = \"2h\"",
            "anomaly.latency_floor",
        ),
        (
            "[anomaly]",
            "cost_floor_usd = 1e308",
            "anomaly.cost_floor_usd",
        ),
        ("[anomaly]", "interval = \"1ms\"", "anomaly.interval"),
        ("[anomaly]", "interval = \"25h\"", "anomaly.interval"),
        (
            "[cost]",
            "efficiency_window = \"31days\"",
            "cost.efficiency_window",
        ),
        ("[state]", "timeout = \"0s\"", "state.timeout"),
        ("[state]", "timeout = \"6s\"", "state.timeout"),
        (
            "[state]",
            "retry_interval = \"99ms\"",
            "state.retry_interval",
        ),
        ("[state]", "retry_interval = \"2m\"", "state.retry_interval"),
        ("[state]", "key_prefix = \"\"", "state.key_prefix"),
        ("[state]", "key_prefix = \"a b\"", "state.key_prefix"),
        ("[state]", "redis_url = \"http://x\"", "state.redis_url"),
        ("[state]", "redis_url = \"redis://\"", "state.redis_url"),
        ("[state]", "failure_policy = \"open\"", "failure_policy"),
    ];
    for (header, line, key) in cases {
        let (src, number) = at(header, line);
        let err = parse(&src).expect_err(line).to_string();
        assert!(err.contains(key), "{line}: {key:?} not in {err:?}");
        assert!(
            err.contains(&format!("test.toml:{number}:"))
                || err.contains(&format!("line {number}")),
            "{line}: line {number} not in {err:?}"
        );
    }
}

/// Each setting at its upper bound (and the zero-allowed ones at zero) is accepted: the
/// bounds documented on the fields are the ones enforced.
#[test]
fn values_at_their_bounds_are_accepted() {
    let lines: &[(&str, &str)] = &[
        ("[server]", "workers = 512\nmax_body_bytes = 67108864\nrequest_timeout = \"6h\"\nbody_read_timeout = \"1h\"\nshutdown_timeout = \"1h\""),
        ("[routing]", "max_attempts = 100"),
        ("[providers.o]", "timeout = \"6h\"\nconnect_timeout = \"5m\"\nstream_idle_timeout = \"1h\"\nmax_event_bytes = 67108864\nmax_response_bytes = 1073741824"),
        ("[providers.o]", "max_event_bytes = 1024\nmax_response_bytes = 1024"),
        ("[providers.m]", "latency = \"1h\"\nchunk_delay = \"1h\""),
        ("[models.x]", "input_price_per_1m = 100000.0\noutput_price_per_1m = 0.0"),
        ("[[keys]]", "rate_limit_rpm = 1000000\nrate_limit_tpm = 1000000000\nmax_parallel = 1000000\nbudget_usd = 1e9\nbudget_period = \"366d\""),
        ("[teams.t]", "rate_limit_rpm = 1000000\nrate_limit_tpm = 1000000000\nmax_parallel = 1000000\nbudget_usd = 1e9\nbudget_period = \"1h\"\nsoft_budget_usd = 1.0"),
        ("[telemetry.loki]", "batch_max_records = 100000\nbatch_max_bytes = 16777216\nqueue_capacity = 100000\nmax_tries = 10000\nflush_interval = \"1h\"\ntimeout = \"1h\"\nbackoff_min = \"1h\"\nbackoff_max = \"1h\"\nshutdown_deadline = \"10m\""),
        ("[telemetry.loki]", "shutdown_deadline = \"0s\""),
        ("[telemetry.otlp]", "timeout = \"5m\""),
        ("[breaker]", "consecutive_failures = 10000\nmin_requests = 1000000\nwindow = \"24h\"\ncool_down = \"24h\"\nhalf_open_probes = 1000"),
        ("[health]", "window = \"24h\"\nlatency_target = \"1h\"\npublish_interval = \"1h\""),
        ("[health]", "publish_interval = \"10ms\""),
        ("[anomaly]", "warmup = 1000000\nz_threshold = 1000.0\nlatency_floor = \"1h\"\ncost_floor_usd = 1000000.0\ninterval = \"24h\"\nrecent = 10000"),
        ("[anomaly]", "warmup = 0\nlatency_floor = \"0s\"\ncost_floor_usd = 0.0\ninterval = \"10ms\""),
        ("[cost]", "efficiency_window = \"30days\""),
        ("[state]", "redis_url = \"rediss://u:p@redis.internal:6380/3\"\nkey_prefix = \"gw:prod\"\ntimeout = \"5s\"\nfailure_policy = \"fail_closed\"\nretry_interval = \"1m\""),
        ("[state]", "redis_url = \"redis://127.0.0.1:6379\"\nretry_interval = \"100ms\""),
    ];
    for (header, line) in lines {
        let (src, _) = at(header, line);
        if let Err(e) = parse(&src) {
            panic!("{line}: {e}");
        }
    }
}

/// `check-config` refuses what `serve` would: no keys, no public address.
#[test]
fn validate_refuses_a_public_listen_without_keys() {
    let src = "[server]\nlisten = \"0.0.0.0:8080\"\n[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n";
    let err = parse(src).unwrap_err().to_string();
    for needle in ["test.toml:2:", "server.listen", "loopback"] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    let with_keys = format!("{src}[[keys]]\nname = \"k\"\nkey = \"12345678\"\n");
    assert!(parse(&with_keys).is_ok());
}

/// `kind = "anthropic"`: defaults (base URL, version, max tokens), its own keys refused on
/// other kinds and theirs on it, each error naming the key.
#[test]
fn anthropic_providers_have_their_defaults_and_their_own_keys() {
    let model = "[models.m]\nproviders = [\"a\"]\n";
    let config = parse(&format!(
        "[providers.a]\nkind = \"anthropic\"\napi_key = \"k\"\n{model}"
    ))
    .unwrap();
    let ProviderSettings::Anthropic(a) = config.providers["a"].settings() else {
        panic!("not anthropic");
    };
    assert_eq!(a.http.base_url, "https://api.anthropic.com");
    assert_eq!(
        (a.version.as_str(), a.default_max_tokens),
        ("2023-06-01", 4096)
    );
    for (section, key) in [
        (
            "kind = \"anthropic\"\nlatency = \"1s\"",
            "providers.a.latency",
        ),
        (
            "kind = \"anthropic\"\ndefault_max_tokens = 0",
            "providers.a.default_max_tokens",
        ),
        (
            "kind = \"openai\"\nbase_url = \"http://h/v1\"\nanthropic_version = \"x\"",
            "providers.a.anthropic_version",
        ),
        (
            "kind = \"mock\"\ndefault_max_tokens = 10",
            "providers.a.default_max_tokens",
        ),
    ] {
        match parse(&format!("[providers.a]\n{section}\n{model}")) {
            Err(ConfigError::Invalid { key: k, line, .. }) => {
                assert_eq!(k, key, "{section}");
                assert!(line.is_some(), "{section}");
            }
            other => panic!("{section}: {other:?}"),
        }
    }
}

#[test]
fn loki_label_values_are_interpolated_with_defaults() {
    let src = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n\
               [telemetry.loki]\nurl = \"http://loki:3100/loki/api/v1/push\"\n\
               labels = { service = \"gatewayz\", instance = \"${HOST}\", env = \"${ENV:-dev}\" }\n";
    let env = |name: &str| (name == "HOST").then(|| "gw-a".to_string());
    let config = Config::from_toml(src, "t.toml", &env).unwrap();
    let labels = &config.telemetry.loki.unwrap().labels;
    assert_eq!(labels["instance"], "gw-a");
    assert_eq!(labels["env"], "dev");
    let unset = Config::from_toml(src, "t.toml", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        unset.contains("telemetry.loki.labels.instance") && unset.contains("HOST is not set"),
        "{unset}"
    );
}

/// A reload applies providers, models, keys and routing; any other section that differs is
/// named, so the reload can be refused whole.
#[test]
fn restart_only_sections_are_named() {
    let base = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n";
    let before = parse(base).unwrap();
    let reloadable = parse(&format!(
        "{base}[providers.b]\nkind = \"mock\"\n[models.n]\nproviders = [\"b\"]\n\
         input_price_per_1m = 3.0\n[routing]\nmax_attempts = 2\n\
         [[keys]]\nname = \"k\"\nkey = \"k-secret-123456\"\n"
    ))
    .unwrap();
    assert_eq!(before.restart_only_changes(&reloadable), Vec::<&str>::new());
    let restart = parse(&format!(
        "[server]\nmax_body_bytes = 1000\n[breaker]\ncool_down = \"9s\"\n{base}"
    ))
    .unwrap();
    assert_eq!(
        before.restart_only_changes(&restart),
        ["[server]", "[breaker]"]
    );
    // Defaults spelled out are no change.
    let spelled = parse(&format!("[server]\nmax_body_bytes = 4194304\n{base}")).unwrap();
    assert_eq!(before.restart_only_changes(&spelled), Vec::<&str>::new());
}

/// A syntax error names the line and column but never echoes the line: it may hold a secret,
/// and the message reaches logs and, on a reload, the admin API.
#[test]
fn a_parse_error_does_not_echo_the_line() {
    let src = "[providers.a]\nkind = \"openai\"\napi_key = \"sk-unterminated-secret\n";
    let message = parse(src).unwrap_err().to_string();
    assert!(message.contains("line 3"), "{message}");
    assert!(!message.contains("sk-unterminated-secret"), "{message}");
}
