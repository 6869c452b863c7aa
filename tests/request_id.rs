//! `x-request-id` on every answer: the upstream's id when the provider sent one (OpenAI's
//! `x-request-id`, Anthropic's `request-id`), JSON, streamed or a 4xx passed through; else the
//! gateway's: the client's own `x-request-id` when it is a plausible id, or a generated
//! `req_…`. Errors the gateway makes itself (401, 404, 405) carry one too.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat_body, client, model, post_chat, TEAM_AND_TRIAL_KEYS, TEAM_KEY};
use reqwest::blocking::Response;

fn id_of(reply: &Response) -> String {
    reply
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on a {} answer", reply.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A gateway-generated id: `req_` and 32 hex digits.
fn is_generated(id: &str) -> bool {
    id.strip_prefix("req_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn the_upstream_s_id_reaches_the_client() {
    let upstream = common::mock_upstream(&["--request-ids"]);
    let refusing =
        common::mock_upstream(&["--request-ids", "--fail-rate", "1", "--fail-status", "400"]);
    let anthropic = common::mock_upstream(&["--request-ids"]);
    let gw = common::gateway(&format!(
        "{}{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\n{}{}{}",
        common::openai_provider("up", &upstream, ""),
        common::openai_provider("refusing", &refusing, ""),
        anthropic.url(""),
        model("m", &["up"]),
        model("m-refused", &["refusing"]),
        model("m-claude", &["claude"]),
    ));

    let reply = post_chat(&gw, &chat_body("m", "hi", false), None);
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (200, "mock-req-0".into())
    );
    let reply = post_chat(&gw, &chat_body("m", "hi", true), None);
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (200, "mock-req-1".into())
    );
    // Sent by the client too: the upstream's still wins (it is the one its support can find).
    let reply = common::chat_request(&client(), gw.addr, chat_body("m", "hi", false))
        .header("x-request-id", "client-1")
        .send()
        .unwrap();
    assert_eq!(id_of(&reply), "mock-req-2");
    // A 400 passed through keeps the upstream's id.
    let reply = post_chat(&gw, &chat_body("m-refused", "hi", false), None);
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (400, "mock-req-0".into())
    );
    // Anthropic's `request-id`, JSON and streamed.
    let reply = post_chat(&gw, &chat_body("m-claude", "hi", false), None);
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (200, "req_mock_0".into())
    );
    let reply = post_chat(&gw, &chat_body("m-claude", "hi", true), None);
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (200, "req_mock_1".into())
    );
    // The Anthropic ingress answers with it too.
    let reply = client()
        .post(gw.url("/v1/messages"))
        .json(&serde_json::json!({"model": "m", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .unwrap();
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (200, "mock-req-3".into())
    );
}

#[test]
fn without_an_upstream_id_the_client_sees_the_gateway_s() {
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}{}",
        common::openai_provider("up", &upstream, ""),
        model("m", &["up"]),
    ));
    let first = post_chat(&gw, &chat_body("m", "hi", false), None);
    let second = post_chat(&gw, &chat_body("m", "hi", true), None);
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let (first, second) = (id_of(&first), id_of(&second));
    assert!(
        is_generated(&first) && is_generated(&second),
        "{first} {second}"
    );
    assert_ne!(first, second);

    let with_id = |id: &str| {
        common::chat_request(&client(), gw.addr, chat_body("m", "hi", false))
            .header("x-request-id", id)
            .send()
            .unwrap()
    };
    assert_eq!(id_of(&with_id("trace-me-42")), "trace-me-42");
    // Not a plausible id (too long, or with spaces): replaced by a generated one.
    assert!(is_generated(&id_of(&with_id(&"x".repeat(200)))));
    assert!(is_generated(&id_of(&with_id("two words"))));
}

#[test]
fn gateway_errors_carry_an_id() {
    let gw = common::gateway(&format!("{TEAM_AND_TRIAL_KEYS}{}", common::MOCK_CONFIG));
    // 401: no key, a wrong key; the client's id is kept.
    let reply = post_chat(&gw, &chat_body("mock-gpt", "hi", false), None);
    assert_eq!(reply.status(), 401);
    assert!(is_generated(&id_of(&reply)));
    let reply = common::chat_request(&client(), gw.addr, chat_body("mock-gpt", "hi", false))
        .bearer_auth("wrong-key-wrong-key")
        .header("x-request-id", "mine-401")
        .send()
        .unwrap();
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (401, "mine-401".into())
    );
    // 404: an unknown model, an unknown route; 405.
    let reply = post_chat(
        &gw,
        &chat_body("no-such-model", "hi", false),
        Some(TEAM_KEY),
    );
    assert_eq!(reply.status(), 404);
    assert!(is_generated(&id_of(&reply)));
    let reply = common::get_as(&gw, "/v1/nowhere", Some(TEAM_KEY));
    assert_eq!(reply.status(), 404);
    assert!(is_generated(&id_of(&reply)));
    let reply = common::get_as(&gw, "/v1/chat/completions", Some(TEAM_KEY));
    assert_eq!(reply.status(), 405);
    assert!(is_generated(&id_of(&reply)));
    // The Anthropic ingress's errors too.
    let reply = client()
        .post(gw.url("/v1/messages"))
        .header("x-request-id", "mine-messages")
        .json(&serde_json::json!({"model": "mock-gpt", "max_tokens": 8, "messages": []}))
        .send()
        .unwrap();
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (401, "mine-messages".into())
    );
    // A served request through the built-in mock: the gateway's id.
    let reply = post_chat(&gw, &chat_body("mock-gpt", "hi", false), Some(TEAM_KEY));
    assert_eq!(reply.status(), 200);
    assert!(is_generated(&id_of(&reply)));
}
