//! Property tests of the two parsers that read bytes the gateway does not control: the config
//! loader (an operator's file) and the chat request head (a client's body).
//!
//! The config loader gets arbitrary text and mutations of a file that sets every section and
//! every field (values swapped for extremes, bytes flipped, truncations, foreign lines): it
//! never panics, every refusal names a key or a line, and whatever it accepts goes through
//! everything `serve` does before binding its socket (`app::run_with` against a port this test
//! holds) and fails only at the bind; what `serve` does after the bind (worker threads,
//! `Instant + d` deadlines) is checked against the values it relies on. The head parser gets
//! arbitrary bytes, generated heads and mutations of valid bodies: it never panics, refuses
//! with `invalid_request`, and every body it accepts can be rewritten into JSON naming the new
//! model and asking for usage. Case counts keep each property to a few seconds in the dev
//! profile; proptest's random seed makes each run explore new cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use bytes::Bytes;
use gatewayz::app::{run_with, AppError};
use gatewayz::config::{Config, ConfigError, ProviderSettings, BUILTIN};
use gatewayz::router::request::{parse_head, rewrite};
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Every section, every field, valid together.
const RICH: &str = r#"[server]
listen = "127.0.0.1:8080"
max_body_bytes = 4194304
request_timeout = "600s"
body_read_timeout = "30s"
workers = 2
shutdown_timeout = "30s"

[routing]
max_attempts = 3

[providers.openai]
kind = "openai"
base_url = "https://api.example.com/v1"
api_key = "${FUZZ_KEY}"
timeout = "60s"
connect_timeout = "5s"
stream_idle_timeout = "60s"
max_event_bytes = 1048576
max_response_bytes = 33554432
headers = { "OpenAI-Organization" = "org-1" }

[providers.local]
kind = "mock"
latency = "5ms"
chunk_delay = "5ms"

[models."gpt-4.1"]
providers = ["openai", "local"]
upstream_model = { openai = "gpt-4.1-2025" }
input_price_per_1m = 2.0
output_price_per_1m = 8.0
owned_by = "openai"

[[keys]]
name = "team-a"
key = "${FUZZ_CLIENT_KEY}"
trial_expires = "2030-01-01T00:00:00Z"
rate_limit_rpm = 600

[telemetry]
log_level = "info"

[telemetry.loki]
url = "http://127.0.0.1:9"
tenant = "ops"
labels = { service = "gatewayz", env = "fuzz" }
level_label = true
auth = { bearer = "${FUZZ_KEY}" }
batch_max_records = 1000
batch_max_bytes = 1048576
flush_interval = "1s"
queue_capacity = 10000
drop_policy = "oldest"
timeout = "10s"
backoff_min = "500ms"
backoff_max = "5m"
max_tries = 10
shutdown_deadline = "0s"

[telemetry.otlp]
endpoint = "http://127.0.0.1:9"
protocol = "http/protobuf"
headers = { authorization = "Bearer x" }
sample_ratio = 0.5
service_name = "gatewayz-fuzz"
timeout = "3s"

[metrics]
tokens = [{ token = "metrics-token-0123456789", categories = ["all"] }]

[breaker]
consecutive_failures = 5
error_rate = 0.5
min_requests = 20
window = "60s"
cool_down = "30s"
half_open_probes = 3
close_after = 2

[health]
window = "60s"
latency_target = "5s"
publish_interval = "1s"

[anomaly]
alpha = 0.1
warmup = 30
z_threshold = 4.0
latency_floor = "500ms"
error_rate_floor = 0.2
cost_floor_usd = 1.0
interval = "10s"
recent = 100

[cost]
efficiency_window = "1h"
"#;

/// Values that break naive code, by the kind of value they replace: zero, negatives, huge
/// numbers, NaN, endless durations; and for any value, wrong types, public addresses, unset
/// variables, control characters.
const INTEGERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "1023",
    "1025",
    "100000",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "-9223372036854775808",
];
const FLOATS: &[&str] = &[
    "0.0", "-0.0", "-1.0", "1.0", "1e308", "-1e308", "nan", "inf", "-inf",
];
const DURATIONS: &[&str] = &[
    "\"0s\"",
    "\"1ns\"",
    "\"9ms\"",
    "\"25h\"",
    "\"99999999999999d\"",
    "\"584942417355y\"",
    "\"18446744073709551615s\"",
];
const ANY: &[&str] = &[
    "\"\"",
    "\"0.0.0.0:8080\"",
    "\"[::]:1\"",
    "[]",
    "{}",
    "true",
    "\"${FUZZ_UNSET}\"",
    "\"a\\u0000b\"",
    "\"x\"",
    "0",
    "1e308",
    "\"0s\"",
];

/// Every extreme, for lines the file did not have.
const EVERY: &[&str] = &[
    "0",
    "100000",
    "18446744073709551615",
    "1e308",
    "nan",
    "\"0s\"",
    "\"584942417355y\"",
    "\"0.0.0.0:8080\"",
    "[]",
    "\"${FUZZ_UNSET}\"",
];

/// An extreme of the same kind as `value` (an integer for an integer, and so on), so most
/// replacements parse and reach validation.
fn extreme_like(value: &str, pick: Index) -> &'static str {
    let value = value.trim();
    let kind = if value.parse::<i64>().is_ok() {
        INTEGERS
    } else if value.parse::<f64>().is_ok() {
        FLOATS
    } else if value.starts_with('"') && value[1..].starts_with(|c: char| c.is_ascii_digit()) {
        DURATIONS
    } else {
        ANY
    };
    kind[pick.index(kind.len())]
}

/// Field names of every section, for lines the file did not have.
const NAMES: &[&str] = &[
    "listen",
    "workers",
    "max_body_bytes",
    "request_timeout",
    "body_read_timeout",
    "shutdown_timeout",
    "max_attempts",
    "kind",
    "timeout",
    "max_event_bytes",
    "max_response_bytes",
    "latency",
    "providers",
    "rate_limit_rpm",
    "queue_capacity",
    "batch_max_bytes",
    "cool_down",
    "publish_interval",
    "interval",
    "recent",
    "efficiency_window",
    "sample_ratio",
];

fn env(name: &str) -> Option<String> {
    match name {
        "FUZZ_KEY" => Some("sk-fuzz-0123456789".into()),
        "FUZZ_CLIENT_KEY" => Some("client-fuzz-0123456789".into()),
        _ => None,
    }
}

/// One change to a config text.
#[derive(Debug, Clone)]
enum Mutation {
    /// The value of the `line`-th `key = value` line becomes an extreme of its kind.
    Replace(Index, Index),
    /// A `name = value` line right after the `line`-th line.
    Insert(Index, &'static str, &'static str),
    /// The byte at `at` becomes `byte`.
    Flip(Index, u8),
    /// Everything from `at` on is cut.
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<Index>(), select(NAMES), select(EVERY))
            .prop_map(|(i, n, v)| Mutation::Insert(i, n, v)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(src: &str, mutations: &[Mutation]) -> String {
    let mut text = src.to_owned();
    for m in mutations {
        text = match m {
            Mutation::Replace(line, pick) => {
                let lines: Vec<&str> = text.lines().collect();
                let assignments: Vec<usize> = (0..lines.len())
                    .filter(|i| lines[*i].contains(" = "))
                    .collect();
                if assignments.is_empty() {
                    continue;
                }
                let target = assignments[line.index(assignments.len())];
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| match l.split_once(" = ") {
                        Some((key, value)) if i == target => {
                            format!("{key} = {}\n", extreme_like(value, *pick))
                        }
                        _ => format!("{l}\n"),
                    })
                    .collect()
            }
            Mutation::Insert(line, name, value) => {
                let lines: Vec<&str> = text.lines().collect();
                let at = line.index(lines.len() + 1);
                let mut out: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
                out.insert(at, format!("{name} = {value}\n"));
                out.concat()
            }
            Mutation::Flip(at, byte) => {
                let mut bytes = text.into_bytes();
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = *byte;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Mutation::Truncate(at) => {
                let bytes = text.as_bytes();
                let end = at.index(bytes.len() + 1);
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            }
        };
    }
    text
}

/// A loopback port held for the whole test run, so `serve` fails at its bind, after
/// everything it does before.
fn taken_port() -> SocketAddr {
    static HELD: std::sync::OnceLock<TcpListener> = std::sync::OnceLock::new();
    HELD.get_or_init(|| TcpListener::bind("127.0.0.1:0").unwrap())
        .local_addr()
        .unwrap()
}

/// Loads `src`. A refusal must name a key (with its line) or a line; an acceptance must run
/// through `serve` up to the bind.
fn load_then_serve(src: &str) -> Result<(), TestCaseError> {
    let config = match Config::from_toml(src, "fuzz.toml", &env) {
        Ok(config) => config,
        Err(ConfigError::Invalid { key, line, .. }) => {
            prop_assert!(!key.is_empty(), "no key:\n{src}");
            prop_assert!(line.is_some(), "{key}: no line:\n{src}");
            return Ok(());
        }
        Err(ConfigError::Parse { message, .. }) => {
            prop_assert!(message.contains("line "), "{message}\n{src}");
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
    };
    // What `telemetry::init` builds from the file (the subscriber itself is global).
    let otlp = gatewayz::telemetry::traces::otlp::Pipeline::build(config.telemetry.otlp.as_ref());
    prop_assert!(otlp.is_ok(), "otlp: {:?}\n{src}", otlp.err());
    if let Ok(pipeline) = otlp {
        pipeline.shutdown(std::time::Duration::from_secs(1));
    }
    let loki = match &config.telemetry.loki {
        Some(c) => {
            let built = gatewayz::telemetry::loki::pipeline(c, Default::default());
            prop_assert!(built.is_ok(), "loki: {:?}\n{src}", built.err());
            built.ok().map(|(_, handle)| handle)
        }
        None => None,
    };
    past_bind(&config)?;
    let listen = taken_port();
    match run_with(config, Some(listen), loki) {
        Err(AppError::Bind { .. }) => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "serve did not stop at its bind: {other:?}\n{src}"
        ))),
    }
}

/// What `serve` relies on after its bind, where this test cannot follow it: it spawns
/// `server.workers` threads (actix-server allows 512), and deadlines are
/// `Instant + d` (a breaker's `open until`, a stream's idle deadline), which panics on overflow.
fn past_bind(config: &Config) -> Result<(), TestCaseError> {
    if let Some(workers) = config.server.workers {
        prop_assert!((1..=512).contains(&workers), "workers = {workers}");
    }
    let s = &config.server;
    let mut durations = vec![s.request_timeout, s.body_read_timeout, s.shutdown_timeout];
    for provider in config.providers.values() {
        match provider.settings() {
            ProviderSettings::OpenAi(p) => {
                durations.extend([p.timeout, p.connect_timeout, p.stream_idle_timeout]);
            }
            ProviderSettings::Anthropic(a) => {
                let p = &a.http;
                durations.extend([p.timeout, p.connect_timeout, p.stream_idle_timeout]);
            }
            ProviderSettings::Mock(m) => durations.extend([m.latency, m.chunk_delay]),
        }
    }
    if let Some(l) = &config.telemetry.loki {
        durations.extend([
            l.flush_interval,
            l.timeout,
            l.backoff_min,
            l.backoff_max,
            l.shutdown_deadline,
        ]);
    }
    durations.extend(config.telemetry.otlp.as_ref().and_then(|o| o.timeout));
    let (b, h, a) = (&config.breaker, &config.health, &config.anomaly);
    durations.extend([
        b.window,
        b.cool_down,
        h.window,
        h.latency_target,
        h.publish_interval,
    ]);
    durations.extend([a.latency_floor, a.interval, config.cost.efficiency_window]);
    let now = Instant::now();
    for d in durations {
        prop_assert!(now.checked_add(d).is_some(), "{d:?} overflows an Instant");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_arbitrary_text_is_refused_by_key_or_line(src in any::<String>()) {
        load_then_serve(&src)?;
    }

    #[test]
    fn config_toml_like_text_is_refused_by_key_or_line(
        src in "(\\[[a-z.]{0,12}\\]\n|[a-z_]{1,12} = (\"[0-9a-z:. ]{0,8}\"|-?[0-9]{1,20}|\\[\\]|\\{\\})\n){0,8}"
    ) {
        load_then_serve(&src)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_mutations_never_panic_and_run_until_bind(
        mutations in prop::collection::vec(mutation(), 1..3),
        builtin in any::<bool>(),
    ) {
        let base = if builtin { BUILTIN } else { RICH };
        load_then_serve(&mutate(base, &mutations))?;
    }
}

#[test]
fn the_rich_config_and_the_builtin_run_until_bind() {
    for src in [RICH, BUILTIN] {
        if let Err(e) = Config::from_toml(src, "fuzz.toml", &env) {
            panic!("{e}");
        }
        load_then_serve(src).unwrap();
    }
}

/// A head the parser accepts can be rewritten into JSON naming model `x` and asking for
/// usage; a head it refuses is a 400. "JSON" as the parser reads it: values are copied
/// verbatim, so a lone surrogate escape a client sent (`"\ud800"`, valid JSON grammar that
/// `serde_json::Value` will not decode) stays in the rewritten body for the upstream to judge.
fn check_head(body: &[u8]) -> Result<(), TestCaseError> {
    let shown = || String::from_utf8_lossy(body).into_owned();
    match parse_head(body) {
        Ok(_) => {
            let out = rewrite(&Bytes::copy_from_slice(body), Some("x"), true);
            let text = String::from_utf8_lossy(&out).into_owned();
            let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&out);
            prop_assert!(syntax.is_ok(), "{:?}: {text}", syntax.err());
            let again = parse_head(&out);
            prop_assert!(
                again
                    .as_ref()
                    .is_ok_and(|h| h.model == "x" && h.include_usage),
                "{text} from {}",
                shown()
            );
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&out) {
                prop_assert_eq!(&value["model"], "x");
                prop_assert_eq!(&value["stream_options"]["include_usage"], true);
            }
        }
        Err(e) => prop_assert_eq!(e.code(), "invalid_request", "{}", shown()),
    }
    Ok(())
}

const BODIES: &[&str] = &[
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
    r#"{"messages":[{"role":"user","content":"h\u00e9 \"x\""}],"temperature":0.5,"model":"a\"b"}"#,
    r#"{"mod\u0065l":"m","messages":[],"stream_options":null,"n":1}"#,
];

/// JSON fragments to splice in: keys the parser reads, escapes, nesting, other shapes.
const SPLICES: &[&str] = &[
    r#""model":"#,
    r#""model":"y","#,
    r#""messages":[],"#,
    r#""stream":true,"#,
    r#""stream_options":{"include_usage":true},"#,
    r#""stream_options":[true],"#,
    r#""stream_options":5,"#,
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "\\u0000",
    "\\ud800",
    "null",
    "1e999",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    " ",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Splice(Index, &'static str),
    Cut(Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), select(SPLICES)).prop_map(|(i, s)| Edit::Splice(i, s)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Cut(a, b)),
    ]
}

fn apply(body: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    for e in edits {
        match e {
            Edit::Flip(at, byte) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            Edit::Flip(..) => {}
            Edit::Splice(at, text) => {
                let i = at.index(bytes.len() + 1);
                bytes.splice(i..i, text.bytes());
            }
            Edit::Cut(a, b) => {
                let (a, b) = (a.index(bytes.len() + 1), b.index(bytes.len() + 1));
                bytes.drain(a.min(b)..a.max(b));
            }
        }
    }
    bytes
}

/// Keys and values of generated heads: what the parser reads, escaped spellings, other shapes.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "mod\\u0065l",
    "temperature",
    "",
];
const VALUES: &[&str] = &[
    r#""m""#,
    r#""\u00e9\"""#,
    "[]",
    r#"[{"role":"user","content":"hi"}]"#,
    "true",
    "null",
    "{}",
    r#"{"include_usage":false,"x":[1]}"#,
    "[true]",
    "0.5",
    r#""""#,
];

/// An object of known keys and odd values, or a top-level array of values (a struct's
/// other serde form).
fn generated_head() -> impl Strategy<Value = String> {
    let member = (select(KEYS), select(VALUES)).prop_map(|(k, v)| format!("\"{k}\":{v}"));
    prop_oneof![
        prop::collection::vec(member, 0..6).prop_map(|m| format!("{{{}}}", m.join(","))),
        prop::collection::vec(select(VALUES), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn head_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_head(&body)?;
    }

    #[test]
    fn head_generated_bodies(body in generated_head()) {
        check_head(body.as_bytes())?;
    }

    #[test]
    fn head_mutated_bodies(
        body in select(BODIES),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        check_head(&apply(body, &edits))?;
    }
}

/// serde reads a struct from an array too; a chat request is an object.
#[test]
fn head_refuses_a_top_level_array() {
    for body in [r#"["m",[]]"#, r#" ["m",[],true]"#] {
        let err = parse_head(body.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "invalid_request", "{body}");
    }
}

/// Invalid UTF-8 where serde_json does not look (an ignored member) is still not JSON.
#[test]
fn head_refuses_invalid_utf8() {
    let body = b"{\"model\":\"m\",\"messages\":[],\"other\":{\"\x80\":1}}";
    let err = parse_head(body).unwrap_err();
    assert_eq!(err.code(), "invalid_request");
}

#[test]
fn head_valid_bodies_rewrite() {
    for body in BODIES {
        assert!(parse_head(body.as_bytes()).is_ok(), "{body}");
        check_head(body.as_bytes()).unwrap();
    }
}
