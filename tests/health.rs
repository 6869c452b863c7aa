//! The health endpoints against the real binary: with `[metrics] tokens` configured the
//! detailed views (`/health/providers`, `/health/anomalies`) need a token granting
//! `providers`, while `/health` stays open for probes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

const PROVIDERS_TOKEN: &str = "providers-token-000001";
const ALL_TOKEN: &str = "all-metrics-token-00001";
const BUSINESS_TOKEN: &str = "business-token-0000001";

fn status(gw: &common::Process, path: &str, token: Option<&str>) -> u16 {
    let mut request = common::client().get(gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap().status().as_u16()
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

[providers.mock-a]
kind = "mock"

[models.mock-gpt]
providers = ["mock-a"]
"#
    ));
    for path in ["/health/providers", "/health/anomalies"] {
        let reply = common::client().get(gw.url(path)).send().unwrap();
        common::assert_openai_error(reply, 401, "invalid_api_key");
        assert_eq!(
            status(&gw, path, Some("not-a-token-at-all-000")),
            401,
            "{path}"
        );
        let reply = common::client()
            .get(gw.url(path))
            .bearer_auth(BUSINESS_TOKEN)
            .send()
            .unwrap();
        common::assert_openai_error(reply, 403, "forbidden");
        assert_eq!(status(&gw, path, Some(PROVIDERS_TOKEN)), 200, "{path}");
        assert_eq!(status(&gw, path, Some(ALL_TOKEN)), 200, "{path}");
    }
    let providers: serde_json::Value = common::client()
        .get(gw.url("/health/providers"))
        .bearer_auth(PROVIDERS_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(providers["providers"][0]["provider"], "mock-a");
    assert_eq!(status(&gw, "/health", None), 200);
}
