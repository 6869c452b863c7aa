//! Every client error of DESIGN §8 comes back with its status and an OpenAI-shaped body
//! `{"error": {"message", "type", "code"}}`: 400 malformed bodies, 401 missing / wrong /
//! expired keys, 404 unknown model or route, 413 oversized bodies (declared or chunked), 429
//! per-key rate limit. (502, 504 and the upstream 429 are in `failover.rs`; 503 needs the
//! circuit breakers.)

mod common;

use common::{assert_openai_error, chat_body, post_chat, Process};

const KEY: &str = "team-secret-key";

fn gateway() -> Process {
    common::gateway(
        r#"
[server]
max_body_bytes = 2048

[providers.local]
kind = "mock"

[models.m]
providers = ["local"]

[[keys]]
name = "team"
key = "team-secret-key"

[[keys]]
name = "trial"
key = "trial-secret-key"
trial_expires = "2020-01-01T00:00:00Z"

[[keys]]
name = "limited"
key = "limited-secret-key"
rate_limit_rpm = 2
"#,
    )
}

#[test]
fn malformed_bodies_are_400() {
    let gw = gateway();
    for body in [
        "{not json",
        "[]",
        r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
        r#"{"model": "m"}"#,
        r#"{"model": "m", "messages": "hi"}"#,
    ] {
        let reply = post_chat(&gw, body, Some(KEY));
        let error = assert_openai_error(reply, 400, "invalid_request");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
    }
}

#[test]
fn missing_wrong_and_expired_keys_are_401() {
    let gw = gateway();
    let body = chat_body("m", "hi", false);
    assert_openai_error(post_chat(&gw, &body, None), 401, "invalid_api_key");
    let wrong = assert_openai_error(
        post_chat(&gw, &body, Some("not-a-configured-key")),
        401,
        "invalid_api_key",
    );
    assert!(!wrong.to_string().contains("not-a-configured-key"));
    let expired = assert_openai_error(
        post_chat(&gw, &body, Some("trial-secret-key")),
        401,
        "trial_expired",
    );
    assert_eq!(expired["error"]["type"], "authentication_error");
    // /v1/models is behind the same keys.
    let models = common::client().get(gw.url("/v1/models")).send().unwrap();
    assert_openai_error(models, 401, "invalid_api_key");
    // ... and the right key gets through.
    assert_eq!(post_chat(&gw, &body, Some(KEY)).status(), 200);
}

#[test]
fn unknown_model_and_route_are_404() {
    let gw = gateway();
    let reply = post_chat(&gw, &chat_body("no-such-model", "hi", false), Some(KEY));
    let body = assert_openai_error(reply, 404, "model_not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-model"));
    let route = common::client().get(gw.url("/v1/nothing")).send().unwrap();
    assert_openai_error(route, 404, "not_found");
}

#[test]
fn bodies_over_the_limit_are_413() {
    let gw = gateway();
    let big = chat_body("m", &"word ".repeat(1000), false);
    assert!(big.len() > 2048);
    assert_openai_error(post_chat(&gw, &big, Some(KEY)), 413, "request_too_large");
    // Without a Content-Length (chunked), the limit holds while reading.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(big.into_bytes()));
    let chunked = common::chat_request(&common::client(), gw.addr, chunked)
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_openai_error(chunked, 413, "request_too_large");
    // Just under the limit is fine.
    let small = chat_body("m", &"word ".repeat(300), false);
    assert!(small.len() < 2048);
    assert_eq!(post_chat(&gw, &small, Some(KEY)).status(), 200);
}

#[test]
fn a_key_over_its_rate_limit_gets_429() {
    let gw = gateway();
    let body = chat_body("m", "hi", false);
    for _ in 0..2 {
        assert_eq!(
            post_chat(&gw, &body, Some("limited-secret-key")).status(),
            200
        );
    }
    let reply = post_chat(&gw, &body, Some("limited-secret-key"));
    let error = assert_openai_error(reply, 429, "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    // Other keys are not limited by it.
    assert_eq!(post_chat(&gw, &body, Some(KEY)).status(), 200);
}
