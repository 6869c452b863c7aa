//! `gatewayz check-config PATH` and `gatewayz serve --config PATH` reject bad files with a
//! non-zero exit and a message that names the key and the line (unknown key, wrong type,
//! unknown provider in a model, unset environment variable); a good file prints its summary
//! and never a secret; without [[keys]] the gateway refuses a non-loopback address. What
//! `check-config` accepts `serve` runs: both refuse an out-of-bound value the same way, by key
//! and line, and neither panics.

mod common;

use std::time::Duration;

use common::{config_file, run_to_exit};

const LIMIT: Duration = Duration::from_secs(20);

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"

[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "${GZ_TEST_UP_KEY}"

[models.m]
providers = ["up"]

[[keys]]
name = "team-a"
key = "${GZ_TEST_CLIENT_KEY}"
"#;

const ENV: &[(&str, &str)] = &[
    ("GZ_TEST_UP_KEY", "sk-upstream-very-secret"),
    ("GZ_TEST_CLIENT_KEY", "client-very-secret"),
];

/// Replaces `from` in the good file (which must contain it) with `to`.
fn bad(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

/// Both commands refuse `config` with a message containing every one of `expect`.
fn rejected(config: &str, expect: &[&str]) {
    let (_dir, path) = config_file(config);
    for args in [
        vec!["check-config", path.as_str()],
        vec![
            "serve",
            "--config",
            path.as_str(),
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = run_to_exit(&args, ENV, LIMIT);
        assert!(!out.status.success(), "{args:?} accepted:\n{config}");
        for want in expect {
            assert!(
                out.stderr.contains(want),
                "{args:?}: {want:?} missing from:\n{}",
                out.stderr
            );
        }
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(
            !out.stderr.contains("panicked"),
            "{args:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn unknown_key_is_named_with_its_line() {
    rejected(
        &bad("listen = ", "max_body = 5\nlisten = "),
        &["server.max_body", "line 3", "unknown field `max_body`"],
    );
}

#[test]
fn wrong_type_is_named_with_its_line() {
    rejected(
        &bad("[models.m]", "[models.m]\ninput_price_per_1m = \"cheap\""),
        &["models.m.input_price_per_1m", "line 11", "invalid type"],
    );
}

#[test]
fn unknown_provider_in_a_model_is_named_with_its_line() {
    rejected(
        &bad(r#"providers = ["up"]"#, r#"providers = ["up", "ghost"]"#),
        &[":11: models.m.providers[1]", "unknown provider \"ghost\""],
    );
}

#[test]
fn unset_environment_variable_is_named_with_its_line() {
    rejected(
        &bad("${GZ_TEST_UP_KEY}", "${GZ_TEST_UNSET_VAR}"),
        &[
            ":8: providers.up.api_key",
            "environment variable GZ_TEST_UNSET_VAR is not set",
        ],
    );
}

#[test]
fn good_file_prints_its_summary_without_secrets() {
    let (_dir, path) = config_file(GOOD);
    let out = run_to_exit(&["check-config", &path], ENV, LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    for want in [
        "configuration OK",
        "up: openai http://127.0.0.1:9/v1",
        "key set",
        "m -> up",
        "client keys: team-a",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in:\n{}", out.stdout);
    }
    for (_, secret) in ENV {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }
    // Serving it does not log them either.
    let gw = common::gateway_with_env(GOOD, ENV);
    let reply = common::client().get(gw.url("/health")).send().unwrap();
    assert_eq!(reply.status(), 200);
    for (_, secret) in ENV {
        assert!(!gw.log_text().contains(secret), "{}", gw.log_text());
    }
}

/// An address in use ends the start with the error that names it, and nothing else: no
/// panic while the parts already built are dropped.
#[test]
fn an_address_in_use_is_refused_cleanly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_to_exit(&["serve", "--listen", &addr], ENV, LIMIT);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// A start that fails after the actors started (here the provider clients, built after them,
/// refuse a SOCKS proxy) ends with its error and nothing else.
#[test]
fn a_start_failing_after_the_actors_started_ends_cleanly() {
    let (_dir, path) = config_file(
        "[providers.p]\nkind = \"openai\"\nbase_url = \"https://api.example.com/v1\"\n\
         api_key = \"sk-test\"\n\n[models.m]\nproviders = [\"p\"]\n",
    );
    let mut env = ENV.to_vec();
    env.push(("HTTPS_PROXY", "socks5://127.0.0.1:1"));
    let out = run_to_exit(
        &["serve", "--config", &path, "--listen", "127.0.0.1:0"],
        &env,
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("only http:// proxies are supported"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn non_loopback_listen_without_keys_is_refused() {
    let no_keys = &GOOD[..GOOD.find("[[keys]]").unwrap()];
    let (_dir, path) = config_file(no_keys);
    for args in [
        vec!["serve", "--config", path.as_str(), "--listen", "0.0.0.0:0"],
        vec!["serve", "--listen", "0.0.0.0:0"],
    ] {
        let out = run_to_exit(&args, ENV, LIMIT);
        assert!(!out.status.success(), "{args:?} started");
        assert!(out.stderr.contains("loopback"), "{}", out.stderr);
    }
}

#[test]
fn too_many_workers_are_refused_by_both_commands() {
    rejected(
        &bad("[server]", "[server]\nworkers = 100000"),
        &[":3: server.workers", "1 to 512"],
    );
}

#[test]
fn a_zero_request_timeout_is_refused_by_both_commands() {
    rejected(
        &bad("[server]", "[server]\nrequest_timeout = \"0s\""),
        &[":3: server.request_timeout", "greater than 0s"],
    );
}

#[test]
fn check_config_refuses_a_public_listen_without_keys() {
    let no_keys = &GOOD[..GOOD.find("[[keys]]").unwrap()];
    let public = no_keys.replace("127.0.0.1:8080", "0.0.0.0:8080");
    rejected(&public, &[":3: server.listen", "loopback"]);
}

/// Every provider example in `docs/PROVIDERS.md` is a configuration the gateway accepts.
#[test]
fn the_provider_examples_in_the_docs_are_valid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROVIDERS.md"),
    )
    .unwrap();
    let examples: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert!(examples.len() >= 6, "{} examples", examples.len());
    let config = gatewayz::config::Config::from_toml(&examples.concat(), "PROVIDERS.md", &|_| {
        Some("from-the-environment".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.providers.len() >= 6);
}
