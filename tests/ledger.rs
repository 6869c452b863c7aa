//! The usage ledger against real databases: an SQLite file in a temp dir and a throwaway
//! PostgreSQL cluster. Every routed request becomes one record (none lost, none doubled),
//! the hourly rollups equal the sums of the raw records, a restart keeps everything and
//! budgets resume from it, a database stopped mid-run loses nothing (records are held and
//! written when it returns) beyond the drops it counts, two replicas write one PostgreSQL
//! ledger and each reports both; the admin usage report and `gatewayz usage` read it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::scrape::{get, scrape, until, value};
use common::{assert_openai_error, chat_body, client, post_chat, Process};
use gatewayz::config::LedgerConfig;
use gatewayz::ledger::report::{hours, By};
use gatewayz::ledger::Db;

const WAIT: Duration = Duration::from_secs(30);
const ADMIN: &str = "admin-token-0123456789";

/// `m` costs 0.1 USD per token; `broken`'s provider refuses connections.
fn base(broken: &str) -> String {
    format!(
        r#"
[providers.local]
kind = "mock"

[providers.down]
kind = "openai"
base_url = "http://{broken}/v1"
timeout = "2s"

[models.m]
providers = ["local"]
input_price_per_1m = 100000.0
output_price_per_1m = 100000.0

[models.broken]
providers = ["down"]

[[keys]]
name = "alice"
key = "alice-secret-key"
team = "ops"

[[keys]]
name = "bob"
key = "bob-secret-key"

[admin]
token = "{ADMIN}"
"#
    )
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "{}\n[ledger]\nurl = \"{url}\"\nbatch_size = 25\nflush_interval = \"50ms\"\n{extra}\n",
        base(&common::free_addr().to_string())
    )
}

fn written(gw: &Process) -> f64 {
    value(
        &scrape(gw),
        "gatewayz_ledger_records_total",
        "outcome=\"written\"",
    )
}

fn wait_written(gw: &Process, n: f64) {
    until(gw, WAIT, &format!("{n} records written"), |s| {
        (get(s, "gatewayz_ledger_records_total{outcome=\"written\"}")? >= n).then_some(())
    });
    assert_eq!(written(gw), n, "more records than requests");
}

/// 30 JSON answers for alice, 10 streams for bob, 5 failures for alice: 45 routed requests,
/// and two that never reach the router (a bad key, an unknown model).
fn traffic(gw: &Process) -> f64 {
    let mut cost = 0.0;
    for _ in 0..30 {
        let reply = post_chat(gw, &chat_body("m", "hi", false), Some("alice-secret-key"));
        assert_eq!(reply.status(), 200);
        let body: serde_json::Value = reply.json().unwrap();
        cost += body["usage"]["total_tokens"].as_f64().unwrap() * 0.1;
    }
    for _ in 0..10 {
        let reply = post_chat(gw, &chat_body("m", "hi", true), Some("bob-secret-key"));
        assert_eq!(reply.status(), 200);
        reply.text().unwrap();
    }
    for _ in 0..5 {
        let reply = post_chat(
            gw,
            &chat_body("broken", "hi", false),
            Some("alice-secret-key"),
        );
        assert_eq!(reply.status(), 502);
    }
    assert_eq!(
        post_chat(gw, &chat_body("m", "hi", false), Some("wrong-key-123")).status(),
        401
    );
    assert_eq!(
        post_chat(gw, &chat_body("nope", "hi", false), Some("bob-secret-key")).status(),
        404
    );
    cost
}

fn settings(url: &str) -> LedgerConfig {
    LedgerConfig {
        url: url.into(),
        ..LedgerConfig::default()
    }
}

/// Raw records (count, cost) and the rollups' sums by `by` over all time.
fn read(url: &str, by: By) -> ((i64, f64), Vec<(String, gatewayz::ledger::store::Sums)>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = Db::open(&settings(url)).unwrap();
        let far = std::time::SystemTime::now() + Duration::from_secs(86_400);
        let (since, until) = hours(std::time::UNIX_EPOCH, far);
        let raw = db.raw_totals().await.unwrap();
        let rows = db.usage(by, since, until).await.unwrap();
        db.close().await;
        (raw, rows)
    })
}

fn admin_usage(gw: &Process, query: &str, token: Option<&str>) -> reqwest::blocking::Response {
    let mut request = client().get(gw.url(&format!("/admin/usage{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap()
}

#[test]
fn sqlite_records_every_routed_request_once_and_keeps_them_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ledger.db", dir.path().display());
    let toml = config(&url, "");
    let mut gw = common::gateway(&toml);
    let json_cost = traffic(&gw);
    wait_written(&gw, 45.0);
    // What the metrics counted by key: the JSON answers' and the streams' usage.
    let s = scrape(&gw);
    let cost = value(
        &s,
        "gatewayz_cost_by_key_usd_total",
        "key=\"alice\",team=\"ops\"",
    ) + value(
        &s,
        "gatewayz_cost_by_key_usd_total",
        "key=\"bob\",team=\"none\"",
    );
    assert!(cost > json_cost);
    let ((records, raw_cost), by_key) = read(&url, By::Key);
    assert_eq!(records, 45);
    assert!((raw_cost - cost).abs() < 1e-9, "{raw_cost} vs {cost}");
    // The rollups are the raw records' sums.
    let alice = &by_key.iter().find(|(k, _)| k == "alice").unwrap().1;
    let bob = &by_key.iter().find(|(k, _)| k == "bob").unwrap().1;
    assert_eq!(
        (alice.requests, alice.errors, bob.requests, bob.errors),
        (35, 5, 10, 0)
    );
    assert!((alice.cost_usd + bob.cost_usd - cost).abs() < 1e-9);
    let (_, by_api) = read(&url, By::Api);
    assert_eq!(by_api.iter().map(|(_, s)| s.requests).sum::<i64>(), 45);

    // The admin report says the same, behind its token.
    let report: serde_json::Value = admin_usage(&gw, "?by=team", Some(ADMIN)).json().unwrap();
    assert_eq!(report["by"], "team");
    assert_eq!(report["total"]["requests"], 45);
    let ops = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ops")
        .unwrap();
    assert_eq!(ops["requests"], 35);
    assert_openai_error(admin_usage(&gw, "", None), 401, "invalid_api_key");
    assert_openai_error(
        admin_usage(&gw, "", Some("not-the-token")),
        401,
        "invalid_api_key",
    );
    let bad = assert_openai_error(
        admin_usage(&gw, "?by=user", Some(ADMIN)),
        400,
        "invalid_request",
    );
    assert!(bad["error"]["message"].as_str().unwrap().contains("by:"));
    // No secret of any kind in the log.
    for secret in ["alice-secret-key", "bob-secret-key", ADMIN] {
        assert!(!gw.log_text().contains(secret));
    }

    // Stopped and started again: everything is still there, and new records add to it.
    assert!(gw.terminate(WAIT).unwrap().success());
    let gw = common::gateway(&toml);
    for _ in 0..5 {
        assert_eq!(
            post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")).status(),
            200
        );
    }
    wait_written(&gw, 5.0);
    let ((records, _), by_model) = read(&url, By::Model);
    assert_eq!(records, 50);
    let m = &by_model.iter().find(|(k, _)| k == "m").unwrap().1;
    assert_eq!(m.requests, 45);

    // `gatewayz usage` prints the same from the file.
    let (config_dir, path) = common::config_file(&toml);
    let out = common::run_to_exit(
        &[
            "usage", "--config", &path, "--by", "model", "--format", "csv",
        ],
        &[],
        WAIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "model,requests,errors,input_tokens,output_tokens,cached_tokens,cost_usd"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("m,45,0,")),
        "{}",
        out.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("broken,5,5,")),
        "{}",
        out.stdout
    );
    assert!(
        lines.last().unwrap().starts_with("total,50,5,"),
        "{}",
        out.stdout
    );
    drop(config_dir);
}

#[test]
fn a_budget_resumes_from_the_ledger_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ledger.db", dir.path().display());
    let toml = config(&url, "").replace(
        "name = \"bob\"\nkey = \"bob-secret-key\"\n",
        "name = \"bob\"\nkey = \"bob-secret-key\"\nbudget_usd = 0.5\nbudget_period = \"1d\"\n",
    );
    let mut gw = common::gateway(&toml);
    assert_eq!(
        post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")).status(),
        200
    );
    assert_openai_error(
        post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")),
        429,
        "budget_exceeded",
    );
    wait_written(&gw, 1.0);
    assert!(gw.terminate(WAIT).unwrap().success());
    // Without a shared store, the restarted gateway reads the day's spend from the ledger.
    let gw = common::gateway(&toml);
    assert!(
        gw.log_text()
            .contains("budgets resume from the ledger's spend"),
        "{}",
        gw.log_text()
    );
    assert_openai_error(
        post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")),
        429,
        "budget_exceeded",
    );
    assert_eq!(
        get(
            &scrape(&gw),
            "gatewayz_budget_remaining_usd{name=\"bob\",scope=\"key\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn postgres_stopped_mid_run_loses_nothing_and_two_replicas_share_one_ledger() {
    let mut pg = Postgres::start();
    let toml = config(&pg.url(), "queue_capacity = 10000");
    let (a, b) = (common::gateway(&toml), common::gateway(&toml));
    let send = |gw: &Process, n: usize| {
        for _ in 0..n {
            assert_eq!(
                post_chat(gw, &chat_body("m", "hi", false), Some("alice-secret-key")).status(),
                200
            );
        }
    };
    send(&a, 20);
    send(&b, 10);
    wait_written(&a, 20.0);
    wait_written(&b, 10.0);
    // The database goes away: traffic flows, records are held and queued.
    pg.stop();
    send(&a, 30);
    until(&a, WAIT, "a failed write", |s| {
        (get(s, "gatewayz_ledger_write_errors_total")? >= 1.0).then_some(())
    });
    assert_eq!(written(&a), 20.0);
    assert!(get(&scrape(&a), "gatewayz_ledger_queue_depth").unwrap() >= 25.0);
    assert!(
        a.log_text().contains("cannot write to its database"),
        "{}",
        a.log_text()
    );
    // The outage's lines never name the URL (the banner shows it, without credentials).
    assert!(a
        .log_text()
        .lines()
        .filter(|l| l.contains("database"))
        .all(|l| !l.contains("postgres://")));
    // Back: every held record is written, once.
    pg.restart();
    wait_written(&a, 50.0);
    assert!(a.log_text().contains("answers again"));
    assert_eq!(
        value(
            &scrape(&a),
            "gatewayz_ledger_records_total",
            "outcome=\"dropped\""
        ),
        0.0
    );
    assert_eq!(pg.sql("SELECT COUNT(*) FROM usage_records"), "60");
    assert_eq!(pg.sql("SELECT SUM(requests) FROM usage_hourly"), "60");
    assert_eq!(
        pg.sql("SELECT ROUND(CAST(SUM(cost_usd) AS NUMERIC), 9) FROM usage_records"),
        pg.sql("SELECT ROUND(CAST(SUM(cost_usd) AS NUMERIC), 9) FROM usage_hourly")
    );
    // Each replica reports both replicas' usage.
    for gw in [&a, &b] {
        let report: serde_json::Value = admin_usage(gw, "?by=key&since=1h", Some(ADMIN))
            .json()
            .unwrap();
        assert_eq!(report["total"]["requests"], 60, "{report}");
    }
}

#[test]
fn a_full_queue_drops_records_and_counts_every_one() {
    let mut pg = Postgres::start();
    let gw = common::gateway(
        &config(&pg.url(), "queue_capacity = 5").replace("batch_size = 25", "batch_size = 5"),
    );
    assert_eq!(
        post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")).status(),
        200
    );
    wait_written(&gw, 1.0);
    pg.stop();
    for _ in 0..40 {
        assert_eq!(
            post_chat(&gw, &chat_body("m", "hi", false), Some("bob-secret-key")).status(),
            200
        );
    }
    pg.restart();
    // Written and dropped account for every answered request.
    until(&gw, WAIT, "the held records written", |s| {
        let written = get(s, "gatewayz_ledger_records_total{outcome=\"written\"}")?;
        let dropped = get(s, "gatewayz_ledger_records_total{outcome=\"dropped\"}")?;
        (written + dropped == 41.0 && get(s, "gatewayz_ledger_queue_depth")? == 0.0).then_some(())
    });
    let dropped = value(
        &scrape(&gw),
        "gatewayz_ledger_records_total",
        "outcome=\"dropped\"",
    );
    assert!(dropped >= 30.0, "{dropped}");
    assert_eq!(
        pg.sql("SELECT COUNT(*) FROM usage_records"),
        (41.0 - dropped).to_string()
    );
}

#[test]
fn an_sqlite_file_that_cannot_be_opened_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing-dir/ledger.db", dir.path().display());
    let (_config_dir, path) = common::config_file(&config(&url, ""));
    let out = common::run_to_exit(
        &["serve", "--config", &path, "--listen", "127.0.0.1:0"],
        &[],
        WAIT,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("ledger.url: cannot open the SQLite file"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_admin_api_does_not_exist_without_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ledger.db", dir.path().display());
    let toml = config(&url, "").replace(&format!("[admin]\ntoken = \"{ADMIN}\"\n"), "");
    let gw = common::gateway(&toml);
    assert_openai_error(admin_usage(&gw, "", Some(ADMIN)), 404, "not_found");
    assert_openai_error(admin_usage(&gw, "", None), 404, "not_found");
}

/// An upstream that reports prompt-cache reads: each record carries them (OpenAI's
/// `prompt_tokens_details`, JSON and streamed; the Responses API's `input_tokens_details`;
/// Anthropic's `cache_read_input_tokens`), and the rollups and report sum them.
#[test]
fn cached_tokens_are_recorded_from_every_dialect() {
    let upstream = common::mock_upstream(&["--cached-tokens", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let gw = common::gateway(&format!(
        "{}{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\n\
         [models.c]\nproviders = [\"claude\"]\n\
         [ledger]\nurl = \"{url}\"\nflush_interval = \"50ms\"\n\
         [admin]\ntoken = \"{ADMIN}\"\n",
        common::openai_provider("up", &upstream, ""),
        common::model("m", &["up"]),
        upstream.url(""),
    ));
    let prompt = "one two three four five six";
    assert_eq!(
        post_chat(&gw, &chat_body("m", prompt, false), None).status(),
        200
    );
    let stream = post_chat(&gw, &chat_body("m", prompt, true), None);
    assert_eq!(stream.status(), 200);
    let _ = stream.text().unwrap();
    let responses = client()
        .post(gw.url("/v1/responses"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"model": "m", "input": prompt}).to_string())
        .send()
        .unwrap();
    assert_eq!(responses.status(), 200);
    assert_eq!(
        post_chat(&gw, &chat_body("c", prompt, false), None).status(),
        200
    );
    wait_written(&gw, 4.0);
    let (_, rows) = read(&url, By::Api);
    let cached: i64 = rows.iter().map(|(_, s)| s.cached_tokens).sum();
    assert_eq!(cached, 12, "{rows:?}");
    let report: serde_json::Value = admin_usage(&gw, "?by=api", Some(ADMIN)).json().unwrap();
    assert_eq!(report["total"]["cached_tokens"], 12, "{report}");
    // Cached input is input too: every record's input covers its cached tokens.
    let input: i64 = rows.iter().map(|(_, s)| s.input_tokens).sum();
    assert!(input >= 4 * 3, "{rows:?}");
}

/// A batch written again after its acknowledgement was lost (the commit went through, the
/// answer did not): nothing is inserted twice, the rollups do not move, and a batch mixing
/// written and new records adds only the new ones. On both backends.
#[test]
fn a_batch_written_again_after_a_lost_acknowledgement_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let sqlite = format!("sqlite://{}", dir.path().join("ack.db").display());
    for url in [sqlite, pg.url()] {
        let record = |i: u128, cost: f64| gatewayz::ledger::UsageRecord {
            id: 0xfeed_0000 + i,
            at_ms: 1_796_587_200_000 + i64::try_from(i).unwrap(),
            request_id: format!("req-{i}").into(),
            trace_id: None,
            key: Some("alice".into()),
            team: Some("ops".into()),
            model: "m".into(),
            provider: Some("local".into()),
            api: "chat",
            status: "success",
            stream: false,
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 2,
            cost_usd: cost,
            duration_ms: 1.0,
            upstream_ms: 0.5,
            overhead_ms: 0.5,
            ttft_ms: None,
        };
        let batch: Vec<_> = (0..30).map(|i| record(i, 0.25)).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (first, again, mixed) = runtime.block_on(async {
            let db = Db::open(&settings(&url)).unwrap();
            db.migrate().await.unwrap();
            let first = db.insert(&batch).await.unwrap();
            // The retry of the same batch.
            let again = db.insert(&batch).await.unwrap();
            // A retry that found five more records behind it.
            let mut more = batch.clone();
            more.extend((30..35).map(|i| record(i, 0.25)));
            let mixed = db.insert(&more).await.unwrap();
            db.close().await;
            (first, again, mixed)
        });
        assert_eq!((first, again, mixed), (30, 0, 5), "{url}");
        let ((raw, raw_cost), rows) = read(&url, By::Key);
        assert_eq!(raw, 35, "{url}");
        assert_eq!(rows.len(), 1);
        let sums = rows[0].1;
        assert_eq!(sums.requests, 35);
        assert_eq!(sums.cached_tokens, 70);
        assert!((sums.cost_usd - 8.75).abs() < 1e-9 && (raw_cost - 8.75).abs() < 1e-9);
    }
}
