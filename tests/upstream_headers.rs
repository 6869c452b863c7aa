//! What crosses the gateway in headers. Upstream: the allow-listed client headers
//! (`OpenAI-Organization`, `OpenAI-Project`, `OpenAI-Beta`, `anthropic-beta`) and a
//! `User-Agent` naming the gateway then the client; never the client's credentials or cookies;
//! a provider's configured header of the same name wins. The mock upstream's `/mock/stats`
//! shows every header of the last request it received.

mod common;

use common::{chat_body, client, mock_stats, model, TEAM_AND_TRIAL_KEYS, TEAM_KEY};
use serde_json::{json, Value};

fn agent(client_ua: Option<&str>) -> String {
    let gateway = format!("gatewayz/{}", env!("CARGO_PKG_VERSION"));
    client_ua.map_or(gateway.clone(), |ua| format!("{gateway} ({ua})"))
}

#[test]
fn allow_listed_client_headers_reach_the_upstream_and_nothing_else() {
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{TEAM_AND_TRIAL_KEYS}{}{}{}{}",
        common::openai_provider("plain", &upstream, ""),
        common::openai_provider(
            "policy",
            &upstream,
            "headers = { OpenAI-Beta = \"operator\" }"
        ),
        model("m", &["plain"]),
        model("m-policy", &["policy"]),
    ));
    let send = |model: &str| {
        common::chat_request(&client(), gw.addr, chat_body(model, "hi", false))
            .bearer_auth(TEAM_KEY)
            .header("OpenAI-Organization", "org-1")
            .header("OpenAI-Project", "proj-1")
            .header("OpenAI-Beta", "assistants=v2")
            .header("anthropic-beta", "tools-2024-04-04")
            .header("User-Agent", "OpenAI/Python 2.3.0")
            .header("x-api-key", "client-secret")
            .header("cookie", "session=client-secret")
            .header("x-custom", "not-forwarded")
            .send()
            .unwrap()
    };

    assert_eq!(send("m").status(), 200);
    let seen = &mock_stats(&upstream)["last_headers"];
    assert_eq!(seen["openai-organization"], "org-1");
    assert_eq!(seen["openai-project"], "proj-1");
    assert_eq!(seen["openai-beta"], "assistants=v2");
    assert_eq!(seen["anthropic-beta"], "tools-2024-04-04");
    assert_eq!(seen["user-agent"], agent(Some("OpenAI/Python 2.3.0")));
    for name in ["authorization", "x-api-key", "cookie", "x-custom"] {
        assert!(seen.get(name).is_none(), "{name} forwarded: {seen}");
    }
    assert!(!seen.to_string().contains("client-secret"), "{seen}");
    assert!(!seen.to_string().contains(TEAM_KEY), "{seen}");

    // The provider's configured header wins over the client's.
    assert_eq!(send("m-policy").status(), 200);
    let seen = &mock_stats(&upstream)["last_headers"];
    assert_eq!(seen["openai-beta"], "operator");
    assert_eq!(seen["openai-organization"], "org-1");
}

#[test]
fn without_client_headers_the_upstream_sees_the_gateway_agent_only() {
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}{}",
        common::openai_provider("plain", &upstream, ""),
        model("m", &["plain"]),
    ));
    // A bare request: no User-Agent at all (reqwest sends none unless asked).
    let reply = common::chat_request(&client(), gw.addr, chat_body("m", "hi", true))
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200);
    let seen = &mock_stats(&upstream)["last_headers"];
    assert_eq!(seen["user-agent"], agent(None));
    for name in [
        "openai-organization",
        "openai-project",
        "openai-beta",
        "anthropic-beta",
    ] {
        assert!(seen.get(name).is_none(), "{name}: {seen}");
    }
}

#[test]
fn the_anthropic_ingress_forwards_anthropic_beta() {
    // Translated for an OpenAI-compatible provider, passed through to an Anthropic one: the
    // beta header reaches both, the client's key neither (the Anthropic provider sends its own).
    let openai = common::mock_upstream(&[]);
    let anthropic = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"k-up\"\n{}{}",
        common::openai_provider("plain", &openai, ""),
        anthropic.url(""),
        model("m", &["plain"]),
        model("m-claude", &["claude"]),
    ));
    for (model, upstream) in [("m", &openai), ("m-claude", &anthropic)] {
        let reply = client()
            .post(gw.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "interleaved-thinking-2025-05-14")
            .header("x-api-key", "client-secret")
            .header("User-Agent", "claude-cli/2.0")
            .json(&json!({"model": model, "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .unwrap();
        assert_eq!(reply.status(), 200, "{model}");
        let body: Value = reply.json().unwrap();
        assert_eq!(body["type"], "message", "{model}");
        let seen = &mock_stats(upstream)["last_headers"];
        assert_eq!(
            seen["anthropic-beta"], "interleaved-thinking-2025-05-14",
            "{model}"
        );
        assert_eq!(seen["user-agent"], agent(Some("claude-cli/2.0")), "{model}");
        assert!(
            !seen.to_string().contains("client-secret"),
            "{model}: {seen}"
        );
    }
}
