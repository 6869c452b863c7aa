//! HTTP server metrics label requests by route *pattern*: a model id in the path, an unknown
//! path or an unusual method never becomes a label value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[test]
fn routes_are_labelled_by_pattern_never_by_raw_path() {
    let gw = common::builtin_gateway();
    let client = common::client();
    for path in [
        "/v1/models/mock-gpt",
        "/v1/models/invented-1",
        "/no/such/path/42",
        "/health",
    ] {
        client.get(gw.url(path)).send().unwrap();
    }
    let reply = common::post_chat(&gw, &common::chat_body("mock-gpt", "label me", false), None);
    assert_eq!(reply.status(), 200);
    let series = common::scrape::scrape(&gw);
    let count = |key: &str| common::scrape::get(&series, key).unwrap_or(0.0);
    assert_eq!(
        count(
            r#"gatewayz_http_requests_total{method="GET",route="/v1/models/{id:.*}",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        count(
            r#"gatewayz_http_requests_total{method="GET",route="/v1/models/{id:.*}",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        count(r#"gatewayz_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(
            r#"gatewayz_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        count(r#"gatewayz_http_requests_total{method="GET",route="/health",status="200"}"#),
        1.0
    );
    for key in series.keys().filter(|k| k.contains("http_requests_total")) {
        assert!(
            !key.contains("mock-gpt") && !key.contains("invented") && !key.contains("/no/such"),
            "raw path in a label: {key}"
        );
    }
}
