//! Virtual keys through the admin API and `gatewayz keys`, against real databases: every
//! route and error over HTTP, a made key used and then refused from the official OpenAI SDK (401 without the admin token, 404 for an unknown key, 400 naming
//! the field, 409 for a taken name or a file key), a key made through the API used, limited,
//! changed, rotated and revoked from a client, its secret shown once and found nowhere else
//! (logs, metrics, the database file), keys kept across a restart, two replicas on one
//! PostgreSQL seeing each other's keys, changes and spend, and a database outage that leaves
//! the keys in force as they were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::{assert_openai_error, chat_body, client, post_chat, Process};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// `m` costs 0.1 USD per token; `other` is free; alice is a file key.
fn config(url: &str) -> String {
    format!(
        r#"
[providers.local]
kind = "mock"

[models.m]
providers = ["local"]
input_price_per_1m = 100000.0
output_price_per_1m = 100000.0

[models.other]
providers = ["local"]

[[keys]]
name = "alice"
key = "alice-secret-key"
team = "ops"

[teams.ops]

[teams.research]

[admin]
token = "{ADMIN}"
key_sync_interval = "200ms"

[ledger]
url = "{url}"
flush_interval = "50ms"
"#
    )
}

/// An admin call: `method` on `path` with `body`, bearing `token`.
fn admin_as(
    gw: &Process,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client().request(method, gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().expect("admin call")
}

fn admin(gw: &Process, method: &str, path: &str, body: Option<Value>) -> Response {
    admin_as(gw, method, path, body, Some(ADMIN))
}

/// An admin call that must answer `status`; its JSON body.
fn ok(gw: &Process, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
    let reply = admin(gw, method, path, body);
    assert_eq!(reply.status().as_u16(), status, "{method} {path}");
    reply.json().expect("JSON answer")
}

/// A chat completion's status for `key` on `model`.
fn chat(gw: &Process, key: &str, model: &str) -> u16 {
    post_chat(gw, &chat_body(model, "hi", false), Some(key))
        .status()
        .as_u16()
}

/// Waits until a chat completion for `key` answers `status` (another replica's change).
fn chat_until(gw: &Process, key: &str, model: &str, status: u16) {
    let seen = common::poll(WAIT, || (chat(gw, key, model) == status).then_some(()));
    assert!(
        seen.is_some(),
        "{model} for the key never answered {status}"
    );
}

/// A 400 naming `param`.
fn refused_field(gw: &Process, method: &str, path: &str, body: Value, param: &str) {
    let reply = admin(gw, method, path, Some(body.clone()));
    let answer = assert_openai_error(reply, 400, "invalid_value");
    assert_eq!(answer["error"]["param"], param, "{body} → {answer}");
}

#[test]
fn every_admin_key_route_and_error_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let toml = config(&format!("sqlite://{}", db.display()));
    let gw = common::gateway(&toml);

    // No token, a wrong one: 401 on every route.
    for (method, path) in [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys/alice"),
        ("PATCH", "/admin/keys/alice"),
        ("DELETE", "/admin/keys/alice"),
        ("POST", "/admin/keys/alice/rotate"),
    ] {
        for token in [None, Some("not-the-admin-token")] {
            let reply = admin_as(&gw, method, path, Some(json!({"name": "x"})), token);
            assert_openai_error(reply, 401, "invalid_api_key");
        }
    }
    assert_openai_error(
        admin(&gw, "PUT", "/admin/keys", None),
        405,
        "method_not_allowed",
    );

    // Made: the secret comes back once.
    let made = ok(
        &gw,
        "POST",
        "/admin/keys",
        Some(json!({
            "name": "carol", "team": "research", "models": ["m"],
            "budget_usd": 1000.0, "budget_period": "monthly", "soft_budget_usd": 900.0,
        })),
        201,
    );
    let secret = made["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("gwz-") && secret.len() == 52, "{made}");
    assert_eq!(made["name"], "carol");
    assert_eq!(made["source"], "database");
    assert_eq!(made["budget_period"], "monthly");
    assert!(made["created_at"].as_str().is_some());

    // Used at once on this replica, within its model list.
    assert_eq!(chat(&gw, &secret, "m"), 200);
    let refused = post_chat(&gw, &chat_body("other", "hi", false), Some(&secret));
    assert_openai_error(refused, 403, "model_not_allowed");
    assert_eq!(chat(&gw, "alice-secret-key", "other"), 200);

    // Invalid bodies name their field.
    for (body, param) in [
        (json!({"name": "x", "rate_limit_rpm": 0}), "rate_limit_rpm"),
        (
            json!({"name": "x", "rate_limit_tpm": "many"}),
            "rate_limit_tpm",
        ),
        (
            json!({"name": "x", "max_parallel": 2_000_000}),
            "max_parallel",
        ),
        (json!({"name": "x", "models": ["nope"]}), "models[0]"),
        (json!({"name": "x", "models": "m"}), "models"),
        (json!({"name": "x", "team": "nope"}), "team"),
        (
            json!({"name": "x", "soft_budget_usd": 3.0}),
            "soft_budget_usd",
        ),
        (json!({"name": "x", "budget_usd": -1.0}), "budget_usd"),
        (
            json!({"name": "x", "budget_usd": 5.0, "budget_period": "weekly"}),
            "budget_period",
        ),
        (json!({"name": "x", "expires_at": "tomorrow"}), "expires_at"),
        (json!({"name": "x", "colour": "blue"}), "colour"),
        (json!({"name": "a/b"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"team": "ops"}), "name"),
    ] {
        refused_field(&gw, "POST", "/admin/keys", body, param);
    }
    let not_json = client()
        .post(gw.url("/admin/keys"))
        .bearer_auth(ADMIN)
        .body("{name")
        .send()
        .unwrap();
    assert_openai_error(not_json, 400, "invalid_request");
    let taken = admin(&gw, "POST", "/admin/keys", Some(json!({"name": "carol"})));
    assert_eq!(
        assert_openai_error(taken, 409, "key_exists")["error"]["param"],
        "name"
    );
    let file = admin(&gw, "POST", "/admin/keys", Some(json!({"name": "alice"})));
    assert_openai_error(file, 409, "key_in_config");

    // Unknown keys: 404 on every per-key route.
    for (method, path) in [
        ("GET", "/admin/keys/nobody"),
        ("PATCH", "/admin/keys/nobody"),
        ("DELETE", "/admin/keys/nobody"),
        ("POST", "/admin/keys/nobody/rotate"),
    ] {
        let reply = admin(&gw, method, path, Some(json!({"max_parallel": 1})));
        assert_openai_error(reply, 404, "key_not_found");
    }
    // The file's keys are edited in the file.
    for (method, path) in [
        ("PATCH", "/admin/keys/alice"),
        ("DELETE", "/admin/keys/alice"),
        ("POST", "/admin/keys/alice/rotate"),
    ] {
        let reply = admin(&gw, method, path, Some(json!({"max_parallel": 1})));
        assert_openai_error(reply, 409, "key_in_config");
    }

    // Listed with the file's, without secrets or digests.
    let list = ok(&gw, "GET", "/admin/keys", None, 200);
    let names: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["source"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("alice", "config"), ("carol", "database")]);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("key").is_none()));

    // One key: its budget as it stands and its usage this period (the ledger's rollups).
    let spent_once = common::poll(WAIT, || {
        let one = ok(&gw, "GET", "/admin/keys/carol", None, 200);
        (one["usage"]["requests"] == 1).then_some(one)
    })
    .expect("carol's request in the ledger (the refused one never reached a provider)");
    let budget = &spent_once["budget"];
    assert_eq!(budget["limit_usd"], 1000.0);
    let spent = budget["spent_usd"].as_f64().unwrap();
    let cost = spent_once["usage"]["cost_usd"].as_f64().unwrap();
    assert!(spent > 0.0 && (spent - cost).abs() < 1e-9, "{spent_once}");
    assert!((budget["remaining_usd"].as_f64().unwrap() - (1000.0 - spent)).abs() < 1e-9);

    // Changed: one request a minute, then the limit lifted again.
    refused_field(
        &gw,
        "PATCH",
        "/admin/keys/carol",
        json!({"name": "dave"}),
        "name",
    );
    refused_field(
        &gw,
        "PATCH",
        "/admin/keys/carol",
        json!({"rate_limit_rpm": -1}),
        "rate_limit_rpm",
    );
    let patched = ok(
        &gw,
        "PATCH",
        "/admin/keys/carol",
        Some(json!({"rate_limit_rpm": 1, "models": null})),
        200,
    );
    assert_eq!(patched["rate_limit_rpm"], 1);
    assert_eq!(patched["models"], Value::Null);
    assert_eq!(chat(&gw, &secret, "other"), 200);
    let limited = post_chat(&gw, &chat_body("m", "hi", false), Some(&secret));
    assert_openai_error(limited, 429, "rate_limit_exceeded");
    ok(
        &gw,
        "PATCH",
        "/admin/keys/carol",
        Some(json!({"rate_limit_rpm": null})),
        200,
    );
    assert_eq!(chat(&gw, &secret, "m"), 200);
    // The budget's spend survived both changes.
    let after = ok(&gw, "GET", "/admin/keys/carol", None, 200);
    assert!(after["budget"]["spent_usd"].as_f64().unwrap() >= spent);

    // Rotated: the old secret stops, the new one works.
    let rotated = ok(&gw, "POST", "/admin/keys/carol/rotate", None, 200);
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_openai_error(
        post_chat(&gw, &chat_body("m", "hi", false), Some(&secret)),
        401,
        "invalid_api_key",
    );
    assert_eq!(chat(&gw, &new_secret, "m"), 200);

    // Kept across a restart (a second key made first, to be revoked after).
    let erin = ok(
        &gw,
        "POST",
        "/admin/keys",
        Some(json!({"name": "erin"})),
        201,
    );
    let erin = erin["key"].as_str().unwrap().to_owned();
    let metrics = common::http()
        .get(gw.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let log = gw.log_text();
    drop(gw);
    let gw = common::gateway(&toml);
    assert_eq!(chat(&gw, &new_secret, "m"), 200);
    assert_eq!(chat(&gw, &erin, "m"), 200);

    // Revoked.
    let gone = ok(&gw, "DELETE", "/admin/keys/erin", None, 200);
    assert_eq!(gone["deleted"], true);
    assert_openai_error(
        post_chat(&gw, &chat_body("m", "hi", false), Some(&erin)),
        401,
        "invalid_api_key",
    );
    assert_openai_error(
        admin(&gw, "GET", "/admin/keys/erin", None),
        404,
        "key_not_found",
    );
    assert_eq!(chat(&gw, "alice-secret-key", "m"), 200);

    // No secret anywhere but in the answers that made them.
    let file = std::fs::read(&db).unwrap();
    let log = log + &gw.log_text();
    for secret in [&secret, &new_secret, &erin] {
        let hex = &secret[4..];
        assert!(!log.contains(hex), "a secret in the log");
        assert!(!metrics.contains(hex), "a secret in /metrics");
        assert!(
            !file.windows(hex.len()).any(|w| w == hex.as_bytes()),
            "a secret in the database file"
        );
    }
}

/// The official OpenAI SDK (`.venv`, made by `./scripts/test`) with `key`: `ok` or `revoked`.
fn openai_sdk(gw: &Process, key: &str, expect: &str) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/virtual_key.py");
    let out = std::process::Command::new(common::python())
        .arg(script)
        .args([&gw.url("/v1"), key, "m", expect])
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("run the OpenAI SDK");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the SDK ({expect}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_openai_sdk_uses_a_made_key_and_is_refused_once_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(&config(&format!(
        "sqlite://{}",
        dir.path().join("sdk.db").display()
    )));
    let made = ok(
        &gw,
        "POST",
        "/admin/keys",
        Some(json!({"name": "sdk-user"})),
        201,
    );
    let secret = made["key"].as_str().unwrap().to_owned();
    assert!(openai_sdk(&gw, &secret, "ok").contains("virtual key ok"));
    ok(&gw, "DELETE", "/admin/keys/sdk-user", None, 200);
    assert!(openai_sdk(&gw, &secret, "revoked").contains("virtual key refused"));
}

#[test]
fn the_keys_command_works_on_the_database_the_gateway_reads() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&format!("sqlite://{}", dir.path().join("l.db").display()));
    let (_config_dir, path) = common::config_file(&toml);
    let keys = |args: &[&str]| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &path]);
        common::run_to_exit(&all, &[], Duration::from_secs(30))
    };
    let made = keys(&[
        "create",
        "--name",
        "frank",
        "--models",
        "m,other",
        "--rate-limit-rpm",
        "50",
    ]);
    assert!(made.status.success(), "{}", made.stderr);
    let secret = made.stdout.trim().to_owned();
    assert!(secret.starts_with("gwz-"), "{}", made.stdout);
    let bad = keys(&["create", "--name", "x", "--max-parallel", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stderr.contains("max_parallel"), "{}", bad.stderr);
    let taken = keys(&["create", "--name", "alice"]);
    assert!(taken.stderr.contains("alice"), "{}", taken.stderr);

    let gw = common::gateway(&toml);
    assert_eq!(chat(&gw, &secret, "m"), 200);
    let listed = keys(&["list"]);
    assert!(
        listed.stdout.contains("frank\t-\tm,other\t50"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains(&secret[4..]));
    let api = ok(&gw, "GET", "/admin/keys/frank", None, 200);
    assert_eq!(api["rate_limit_rpm"], 50);

    let revoked = keys(&["revoke", "frank"]);
    assert!(revoked.status.success(), "{}", revoked.stderr);
    chat_until(&gw, &secret, "m", 401);
    let again = keys(&["revoke", "frank"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        again.stderr.contains("no API key named"),
        "{}",
        again.stderr
    );
}

#[test]
fn two_replicas_on_one_postgres_share_keys_changes_and_spend() {
    let mut pg = Postgres::start();
    let toml = config(&pg.url());
    let (a, b) = (common::gateway(&toml), common::gateway(&toml));

    // Made on A: works on B within the sync interval.
    let made = ok(
        &a,
        "POST",
        "/admin/keys",
        Some(json!({"name": "gina", "budget_usd": 100.0})),
        201,
    );
    let secret = made["key"].as_str().unwrap().to_owned();
    chat_until(&b, &secret, "m", 200);
    for _ in 0..4 {
        assert_eq!(chat(&a, &secret, "m"), 200);
        assert_eq!(chat(&b, &secret, "m"), 200);
    }
    // Both replicas' spend is in the one ledger: either reports all of it.
    let usage = common::poll(WAIT, || {
        let one = ok(&b, "GET", "/admin/keys/gina", None, 200);
        (one["usage"]["requests"] == 9).then_some(one)
    });
    assert!(usage.is_some(), "nine requests for gina in the ledger");

    // Changed on B: A follows.
    ok(
        &b,
        "PATCH",
        "/admin/keys/gina",
        Some(json!({"models": ["other"]})),
        200,
    );
    chat_until(&a, &secret, "m", 403);
    assert_eq!(chat(&a, &secret, "other"), 200);

    // The database goes away: the keys in force stay as they are; admin calls say why.
    pg.stop();
    assert_eq!(chat(&a, &secret, "other"), 200);
    assert_eq!(chat(&b, "alice-secret-key", "m"), 200);
    let down = admin(&a, "POST", "/admin/keys", Some(json!({"name": "hugo"})));
    assert_openai_error(down, 503, "ledger_unavailable");
    common::wait_until(WAIT, "B's key sync to fail", || {
        b.log_text().contains("cannot read the API keys")
    });
    assert_eq!(chat(&b, &secret, "other"), 200);
    pg.restart();

    // Revoked on A once it is back: B refuses within the sync interval.
    let revoked = common::poll(WAIT, || {
        (admin(&a, "DELETE", "/admin/keys/gina", None).status() == 200).then_some(())
    });
    assert!(revoked.is_some(), "revoked once PostgreSQL is back");
    chat_until(&b, &secret, "other", 401);
    assert!(
        b.log_text()
            .contains("the API keys' database answers again"),
        "the way back is logged:\n{}",
        b.log_text()
    );
}
