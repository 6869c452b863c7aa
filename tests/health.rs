//! The health endpoints against the real binary: with `[metrics] tokens` configured the
//! detailed views (`/health/providers`, `/health/anomalies`) need a token granting
//! `providers`, while `/health` stays open for probes; `/health/ready` is 200 while serving,
//! 503 once every breaker is open, and fails as soon as the drain begins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

const PROVIDERS_TOKEN: &str = "providers-token-000001";
const ALL_TOKEN: &str = "all-metrics-token-00001";
const BUSINESS_TOKEN: &str = "business-token-0000001";

fn status(gw: &common::Process, path: &str, token: Option<&str>) -> u16 {
    common::get_as(gw, path, token).status().as_u16()
}

#[test]
fn detailed_health_views_need_a_providers_token_and_liveness_stays_open() {
    let gw = common::gateway(&format!(
        r#"
[metrics]
tokens = [
  {{ token = "{PROVIDERS_TOKEN}", categories = ["providers"] }},
  {{ token = "{ALL_TOKEN}", categories = ["all"] }},
  {{ token = "{BUSINESS_TOKEN}", categories = ["business"] }},
]
{}"#,
        common::MOCK_CONFIG
    ));
    for path in ["/health/providers", "/health/anomalies"] {
        let reply = common::get_as(&gw, path, None);
        common::assert_openai_error(reply, 401, "invalid_api_key");
        assert_eq!(
            status(&gw, path, Some("not-a-token-at-all-000")),
            401,
            "{path}"
        );
        let reply = common::get_as(&gw, path, Some(BUSINESS_TOKEN));
        common::assert_openai_error(reply, 403, "forbidden");
        assert_eq!(status(&gw, path, Some(PROVIDERS_TOKEN)), 200, "{path}");
        assert_eq!(status(&gw, path, Some(ALL_TOKEN)), 200, "{path}");
    }
    let providers: serde_json::Value =
        common::get_as(&gw, "/health/providers", Some(PROVIDERS_TOKEN))
            .json()
            .unwrap();
    assert_eq!(providers["providers"][0]["provider"], "mock-a");
    assert_eq!(status(&gw, "/health", None), 200);
}

/// `(status, body)` of `GET /health/ready`.
fn ready(gw: &common::Process) -> (u16, serde_json::Value) {
    let reply = common::get_as(gw, "/health/ready", None);
    (reply.status().as_u16(), reply.json().unwrap())
}

#[test]
fn ready_is_200_while_serving_and_503_once_every_breaker_is_open() {
    let gw = common::gateway(&format!(
        r#"
[breaker]
consecutive_failures = 2
cool_down = "1h"

[providers.down]
kind = "openai"
base_url = "http://{}/v1"

[models.m]
providers = ["down"]

[metrics]
tokens = [{{ token = "{PROVIDERS_TOKEN}", categories = ["providers"] }}]
"#,
        common::free_addr()
    ));
    let (status, body) = ready(&gw);
    assert_eq!((status, &body["status"]), (200, &"ready".into()), "{body}");
    for _ in 0..3 {
        common::post_chat(&gw, &common::chat_body("m", "anyone?", false), None);
    }
    common::wait_until(Duration::from_secs(10), "readiness 503", || {
        ready(&gw).0 == 503
    });
    let (_, body) = ready(&gw);
    assert_eq!(body["status"], "no_provider_available", "{body}");
    // Open, like liveness: probes carry no token.
    assert_eq!(common::get_as(&gw, "/health", None).status(), 200);
}

/// SIGTERM makes readiness fail from the moment the drain begins, while the stream in flight
/// is still served. actix closes its listener and its idle keep-alive connections at that same
/// moment, so a probe sees the connection refused (or closed) rather than the 503 the handler
/// would answer; either way the probe fails (the 503 itself is tested in process, in
/// `routes::health`).
#[test]
fn readiness_fails_from_the_moment_the_drain_begins() {
    let upstream = common::mock_upstream(&["--chunk-delay", "200ms"]);
    let gw = common::gateway(&format!(
        r#"
[server]
shutdown_timeout = "5s"

{provider}
[models.slow]
providers = ["up"]
"#,
        provider = common::openai_provider("up", &upstream, ""),
    ));
    // A stream in flight keeps the drain going: 100 chunks, 200 ms apart.
    let body = common::chat_body("slow", &vec!["word"; 100].join(" "), true);
    let addr = gw.addr;
    let reader = std::thread::spawn(move || {
        let reply = common::chat_request(&common::client(), addr, body)
            .send()
            .unwrap();
        reply.text().unwrap_or_default()
    });
    common::wait_until(Duration::from_secs(10), "the stream to start", || {
        common::mock_stats(&upstream)["streams_started"] == 1
    });
    assert_eq!(ready(&gw).0, 200);
    gw.signal("TERM");
    // A fresh client each time, as a probe connects.
    common::wait_until(
        Duration::from_secs(5),
        "readiness to fail",
        || match common::client().get(gw.url("/health/ready")).send() {
            Ok(reply) => reply.status() == 503,
            Err(_) => true,
        },
    );
    assert_eq!(
        common::mock_stats(&upstream)["streams_finished"],
        0,
        "the stream is still being served"
    );
    // Then it ends with the shutting-down event.
    let streamed = reader.join().unwrap();
    assert!(streamed.contains("server_shutting_down"), "{streamed}");
}
