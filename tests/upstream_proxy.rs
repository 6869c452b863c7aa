//! Upstream requests honour `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`, set on the gateway
//! process only. The provider's `base_url` names `upstream.test`, a host only the test proxy
//! (`common::proxy`) resolves, so a 200 proves the request went through it; the proxy's record
//! shows how (absolute-form or CONNECT) and with which credentials. Loopback upstreams and
//! `NO_PROXY` hosts go direct, and an unreachable proxy is a connect failure that fails over.

mod common;

use common::proxy::{Proxy, UPSTREAM_HOST};
use common::{chat_body, mock_stats, model, post_chat, provider_at, sse_data, Process};
use serde_json::Value;

/// `user:s3cret` as a Basic credential.
const CREDENTIALS: &str = "user:s3cret";
const BASIC: &str = "Basic dXNlcjpzM2NyZXQ=";

/// `scheme://upstream.test:PORT/v1`, PORT the mock upstream's.
fn made_up_base(scheme: &str, upstream: &Process) -> String {
    format!("{scheme}://{UPSTREAM_HOST}:{}/v1", upstream.addr.port())
}

/// The proxy variables for the gateway process: every one set, so none is inherited.
fn proxy_env<'a>(http: &'a str, https: &'a str, no: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("HTTP_PROXY", http),
        ("http_proxy", http),
        ("HTTPS_PROXY", https),
        ("https_proxy", https),
        ("ALL_PROXY", ""),
        ("all_proxy", ""),
        ("NO_PROXY", no),
        ("no_proxy", no),
    ]
}

#[test]
fn plain_http_upstreams_go_through_the_proxy_in_absolute_form() {
    let upstream = common::mock_upstream(&[]);
    let proxy = Proxy::start();
    let proxy_url = proxy.url(Some(CREDENTIALS));
    let gw = common::gateway_with_env(
        &format!(
            "{}{}",
            provider_at("far", &made_up_base("http", &upstream), ""),
            model("m", &["far"]),
        ),
        &proxy_env(&proxy_url, "", ""),
    );

    let reply = post_chat(&gw, &chat_body("m", "hello", false), None);
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "You said: hello");
    let reply = post_chat(&gw, &chat_body("m", "hello", true), None);
    assert_eq!(reply.status(), 200);
    let events = sse_data(&reply.text().unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let seen = proxy.seen();
    let target = format!("{}/chat/completions", made_up_base("http", &upstream));
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", &*target)
        );
        assert_eq!(request.authorization.as_deref(), Some(BASIC));
    }
    assert_eq!(mock_stats(&upstream)["chat_requests"], 2);
    // The start-up line names the proxy, never its credentials.
    let log = gw.log_text();
    assert!(log.contains("upstream reached through a proxy"), "{log}");
    assert!(log.contains(&proxy.addr.to_string()), "{log}");
    assert!(
        !log.contains("s3cret") && !log.contains("dXNlcjpzM2NyZXQ"),
        "{log}"
    );
}

#[test]
fn https_upstreams_tunnel_through_connect_with_the_credentials() {
    // The tunnel reaches a plain-HTTP mock, so TLS fails after it: what counts is the CONNECT.
    let upstream = common::mock_upstream(&[]);
    let proxy = Proxy::start();
    let proxy_url = proxy.url(Some(CREDENTIALS));
    let gw = common::gateway_with_env(
        &format!(
            "{}{}",
            provider_at("far", &made_up_base("https", &upstream), ""),
            model("m", &["far"]),
        ),
        &proxy_env("", &proxy_url, ""),
    );

    let reply = post_chat(&gw, &chat_body("m", "hello", false), None);
    common::assert_openai_error(reply, 502, "upstream_error");
    let seen = proxy.seen();
    let authority = format!("{UPSTREAM_HOST}:{}", upstream.addr.port());
    assert!(!seen.is_empty(), "the proxy saw nothing");
    for request in &seen {
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("CONNECT", &*authority)
        );
        assert_eq!(request.authorization.as_deref(), Some(BASIC));
    }
    assert!(!gw.log_text().contains("s3cret"));
}

#[test]
fn loopback_and_no_proxy_upstreams_go_direct() {
    let upstream = common::mock_upstream(&[]);
    let proxy = Proxy::start();
    let proxy_url = proxy.url(None);
    let gw = common::gateway_with_env(
        &format!(
            "{}{}{}{}",
            common::openai_provider("near", &upstream, ""),
            provider_at(
                "exempt",
                &made_up_base("http", &upstream),
                "connect_timeout = \"2s\""
            ),
            model("local", &["near"]),
            model("exempt", &["exempt"]),
        ),
        &proxy_env(&proxy_url, &proxy_url, UPSTREAM_HOST),
    );

    let reply = post_chat(&gw, &chat_body("local", "hello", false), None);
    assert_eq!(reply.status(), 200);
    // Direct, `upstream.test` does not resolve: the proxy would have answered.
    let reply = post_chat(&gw, &chat_body("exempt", "hello", false), None);
    assert!(reply.status().is_server_error(), "{}", reply.status());
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert_eq!(mock_stats(&upstream)["chat_requests"], 1);
}

#[test]
fn an_unreachable_proxy_is_a_connect_failure_that_fails_over() {
    let good = common::mock_upstream(&[]);
    let dead = format!("http://{}", common::free_addr());
    let gw = common::gateway_with_env(
        &format!(
            "{}{}{}{}",
            provider_at("far", &made_up_base("http", &good), ""),
            common::openai_provider("near", &good, ""),
            model("m", &["far", "near"]),
            model("m-far", &["far"]),
        ),
        &proxy_env(&dead, &dead, ""),
    );

    let reply = post_chat(&gw, &chat_body("m", "hello", false), None);
    assert_eq!(reply.status(), 200);
    let reply = post_chat(&gw, &chat_body("m-far", "hello", false), None);
    common::assert_openai_error(reply, 502, "upstream_error");
    let metrics = common::get_as(&gw, "/metrics", None).text().unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gatewayz_provider_requests_total")
                && l.contains("provider=\"far\"")
                && l.contains("reason=\"connect\"")),
        "{metrics}"
    );
}

#[test]
fn a_proxy_the_gateway_cannot_speak_stops_start_up() {
    let (_dir, path) = common::config_file(&format!(
        "{}{}",
        provider_at("far", "https://api.example.com/v1", ""),
        model("m", &["far"]),
    ));
    let exited = common::run_to_exit(
        &["serve", "--config", &path, "--listen", "127.0.0.1:0"],
        &proxy_env("", "socks5://user:s3cret@127.0.0.1:1080", ""),
        std::time::Duration::from_secs(30),
    );
    assert!(!exited.status.success(), "{:?}", exited.status);
    assert!(
        exited.stderr.contains("far") && exited.stderr.contains("only http:// proxies"),
        "{}",
        exited.stderr
    );
    assert!(!exited.stderr.contains("s3cret"), "{}", exited.stderr);
}
