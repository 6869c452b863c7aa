//! What a provider sends reaches the upstream: `gatewayz mock-upstream --api-key` answers only
//! requests carrying its bearer key, so a provider's `api_key`, or an `authorization` among its
//! configured `headers`, gets 200; a wrong key is refused upstream, which is the provider's
//! fault (its credentials): the client gets a 502 naming the provider, never the key.

mod common;

use common::{chat_body, mock_stats, post_chat};
use serde_json::Value;

#[test]
fn the_api_key_and_configured_headers_reach_the_upstream() {
    let upstream = common::mock_upstream(&["--api-key", "k-up"]);
    let gw = common::gateway(&format!(
        "{}{}{}\
         [models.keyed]\nproviders = [\"keyed\"]\n\n\
         [models.headed]\nproviders = [\"headed\"]\n\n\
         [models.wrong]\nproviders = [\"wrong\"]\n",
        common::openai_provider("keyed", &upstream, "api_key = \"k-up\""),
        common::openai_provider(
            "headed",
            &upstream,
            "headers = { authorization = \"Bearer k-up\" }"
        ),
        common::openai_provider("wrong", &upstream, "api_key = \"not-it\""),
    ));
    for model in ["keyed", "headed"] {
        let reply = post_chat(&gw, &chat_body(model, "hello", false), None);
        assert_eq!(reply.status(), 200, "{model}");
        let body: Value = reply.json().unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "You said: hello");
    }
    assert_eq!(mock_stats(&upstream)["chat_requests"], 2);

    // The upstream refusing the gateway's key is the provider's fault, not the client's: a
    // 502 naming the provider, never the key.
    let reply = post_chat(&gw, &chat_body("wrong", "hello", false), None);
    let body = common::assert_openai_error(reply, 502, "upstream_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`wrong`") && message.contains("HTTP 401"),
        "{message}"
    );
    assert!(!message.contains("not-it"), "{message}");
}
