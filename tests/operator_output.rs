//! What an operator reads on stderr: the start-up banner (what runs, where, how it is
//! protected, never a secret, and no web-framework noise at INFO), one access line per
//! request (status, latency, provider, model, tokens, key name, trace id; a refused request
//! says why), and the same as JSON objects with `--log-format json` or `[telemetry]
//! log_format = "json"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{chat_body, post_chat, Process};

const WAIT: Duration = Duration::from_secs(10);

/// Two keys, two providers behind one model, a broken model, metrics tokens, Loki with a
/// password, Redis with one, a ledger and the admin API.
fn config(dir: &std::path::Path) -> String {
    let closed = common::free_addr();
    format!(
        r#"
[providers.a]
kind = "mock"

[providers.b]
kind = "mock"

[providers.down]
kind = "openai"
base_url = "http://{closed}/v1"
timeout = "1s"

[models.m]
providers = ["a", "b"]

[models.broken]
providers = ["down"]

[[keys]]
name = "alice"
key = "alice-secret-key-1"

[[keys]]
name = "bob"
key = "bob-secret-key-1"

[[metrics.tokens]]
token = "metrics-secret-token"
categories = ["all"]

[telemetry.loki]
url = "http://loki-user:loki-password@{closed}/loki/api/v1/push"
tenant = "ops"

[state]
redis_url = "redis://default:redis-password@{closed}/0"

[ledger]
url = "sqlite://{}/ledger.db"

[admin]
token = "admin-secret-token-1"
"#,
        dir.display()
    )
}

const SECRETS: [&str; 7] = [
    "alice-secret-key-1",
    "bob-secret-key-1",
    "metrics-secret-token",
    "loki-password",
    "redis-password",
    "admin-secret-token-1",
    "loki-user",
];

/// The access lines of `gw`'s log with `message`, once `n` are there.
fn lines_with(gw: &Process, message: &str, n: usize) -> Vec<String> {
    let found = common::poll(WAIT, || {
        let lines: Vec<String> = gw
            .log_text()
            .lines()
            .filter(|l| l.contains(message))
            .map(str::to_owned)
            .collect();
        (lines.len() >= n).then_some(lines)
    });
    found.unwrap_or_else(|| panic!("{n} lines with {message:?} in:\n{}", gw.log_text()))
}

/// `key=value` of a text line (values unquoted or quoted).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    rest.split([' ', '"']).next()
}

#[test]
fn the_banner_says_what_runs_and_hides_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway_with_env(
        &config(dir.path()),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/otlp")],
    );
    let log = gw.log_text();
    let version = env!("CARGO_PKG_VERSION");
    for expected in [
        format!("gatewayz {version}"),
        "config     /".to_string(),
        format!("listen     http://{}", gw.addr),
        "auth       2 client keys (alice; bob), and keys made through the admin API".into(),
        "models     broken → down; m → a, b".into(),
        "1 token(s) required".into(),
        "logs       stderr (text), Loki http://127.0.0.1:".into(),
        "(tenant ops)".into(),
        "traces     OTLP http/protobuf http://127.0.0.1:9/otlp".into(),
        "limits     shared in Redis redis://127.0.0.1:".into(),
        "(fail_open while unreachable)".into(),
        format!("ledger     sqlite://{}/ledger.db", dir.path().display()),
        "admin API  on".into(),
    ] {
        assert!(log.contains(&expected), "{expected:?} not in:\n{log}");
    }
    for secret in SECRETS {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    // The web framework's own start lines are debug now.
    for noise in [
        "starting service",
        "Actix runtime found",
        "starting 1 workers",
    ] {
        assert!(!log.contains(noise), "{noise:?} in:\n{log}");
    }

    let builtin = common::builtin_gateway();
    let log = builtin.log_text();
    assert!(
        log.contains("config     built-in default (no file)"),
        "{log}"
    );
    assert!(
        log.contains("auth       none: loopback only, without keys"),
        "{log}"
    );
    assert!(log.contains("ledger     off"), "{log}");
    assert!(log.contains("traces     off"), "{log}");
}

#[test]
fn each_request_has_an_access_line_with_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(&config(dir.path()));
    let reply = post_chat(
        &gw,
        &chat_body("m", "one two three", false),
        Some("alice-secret-key-1"),
    );
    assert_eq!(reply.status(), 200);
    let trace = reply.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let request = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    let stream = post_chat(&gw, &chat_body("m", "hi", true), Some("bob-secret-key-1"));
    assert_eq!(stream.status(), 200);
    let _ = stream.text().unwrap();
    let failed = post_chat(
        &gw,
        &chat_body("broken", "hi", false),
        Some("bob-secret-key-1"),
    );
    assert!(failed.status().is_server_error());
    let lines = lines_with(&gw, "chat completion answered", 3);
    let json = lines
        .iter()
        .find(|l| field(l, "key") == Some("alice"))
        .expect("alice's line");
    assert_eq!(field(json, "status"), Some("success"), "{json}");
    assert_eq!(field(json, "provider"), Some("a"), "{json}");
    assert_eq!(field(json, "model"), Some("m"), "{json}");
    assert_eq!(field(json, "ttft_ms"), None, "{json}");
    assert_eq!(field(json, "trace_id"), Some(trace.as_str()), "{json}");
    assert_eq!(field(json, "request_id"), Some(request.as_str()), "{json}");
    assert!(
        field(json, "input_tokens").unwrap().parse::<u64>().unwrap() > 0,
        "{json}"
    );
    assert!(
        field(json, "output_tokens")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{json}"
    );
    assert!(
        field(json, "latency_ms").unwrap().parse::<f64>().unwrap() > 0.0,
        "{json}"
    );
    let streamed = lines
        .iter()
        .find(|l| field(l, "ttft_ms").is_some())
        .expect("the stream's line (with its time to first token)");
    assert_eq!(field(streamed, "key"), Some("bob"), "{streamed}");
    assert!(
        field(streamed, "output_tokens")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let broken = lines
        .iter()
        .find(|l| field(l, "model") == Some("broken"))
        .expect("the failure's line");
    assert_ne!(field(broken, "status"), Some("success"), "{broken}");
    assert_eq!(field(broken, "provider"), Some("down"), "{broken}");

    // Refused before routing: its own line, with the answer's status and code.
    let reply = post_chat(&gw, &chat_body("m", "hi", false), Some("wrong-key-123"));
    assert_eq!(reply.status(), 401);
    let refused = lines_with(&gw, "request refused", 1);
    assert_eq!(field(&refused[0], "status"), Some("401"), "{}", refused[0]);
    assert_eq!(
        field(&refused[0], "code"),
        Some("invalid_api_key"),
        "{}",
        refused[0]
    );
    for secret in SECRETS.iter().chain(&["wrong-key-123", "one two three"]) {
        assert!(!gw.log_text().contains(secret), "{secret:?} in the log");
    }

    // Off: neither line, the rest of the log as before.
    let quiet = common::gateway(
        &config(dir.path()).replace("[state]", "[telemetry]\naccess_log = false\n\n[state]"),
    );
    assert_eq!(
        post_chat(
            &quiet,
            &chat_body("m", "hi", false),
            Some("alice-secret-key-1")
        )
        .status(),
        200
    );
    assert_eq!(
        post_chat(&quiet, &chat_body("m", "hi", false), Some("wrong-key-123")).status(),
        401
    );
    let log = quiet.log_text();
    assert!(log.contains("gatewayz listening"), "{log}");
    assert!(
        !log.contains("completion answered") && !log.contains("request refused"),
        "{log}"
    );
}

#[test]
fn json_log_lines_parse_from_the_flag_and_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path());
    let (_flag_dir, path) = common::config_file(&toml);
    let flag = common::spawn(
        &[
            "serve",
            "--config",
            &path,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[],
        None,
    );
    let file =
        common::gateway(&toml.replace("[state]", "[telemetry]\nlog_format = \"json\"\n\n[state]"));
    for gw in [&flag, &file] {
        let reply = post_chat(gw, &chat_body("m", "hi", false), Some("alice-secret-key-1"));
        assert_eq!(reply.status(), 200);
        let trace = reply.headers()["x-trace-id"].to_str().unwrap().to_owned();
        lines_with(gw, "chat completion answered", 1);
        let lines: Vec<serde_json::Value> = gw
            .log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let access = lines
            .iter()
            .find(|l| l["fields"]["message"] == "chat completion answered")
            .unwrap();
        let fields = &access["fields"];
        assert_eq!(access["level"], "INFO");
        assert_eq!(fields["status"], "success");
        assert_eq!(fields["key"], "alice");
        assert_eq!(fields["model"], "m");
        assert_eq!(fields["trace_id"], trace.as_str());
        assert!(fields["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(fields["input_tokens"].as_u64().unwrap() > 0);
        let banner = lines
            .iter()
            .find(|l| l["fields"]["version"] == env!("CARGO_PKG_VERSION"))
            .expect("the banner event");
        assert!(banner["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("logs       stderr (json)"));
        assert_eq!(banner["fields"]["listen"], gw.addr.to_string());
    }
}
