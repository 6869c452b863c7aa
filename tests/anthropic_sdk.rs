//! The official Anthropic Python SDK (installed by the test command into .venv) against
//! `POST /v1/messages`, unchanged but for `base_url`: a model served by an OpenAI-compatible
//! provider (translated), one served by an Anthropic provider (passed through), and one whose
//! Anthropic provider is overloaded (529) so requests fail over to an OpenAI-compatible one
//! (until its health score sends them there first) — create, stream, tool use, count_tokens and errors in each case (all
//! `gatewayz mock-upstream`), then the metrics that say which provider served.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::scrape::until;

fn smoke(gw: &common::Process, model: &str, counts: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/anthropic_smoke.py");
    let out = Command::new(common::python())
        .arg(&script)
        .args([&gw.url(""), "sdk-test-key-1", model, counts])
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the Anthropic SDK ({e}); run ./scripts/test"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Anthropic SDK smoke failed for {model} ({}):\n{stdout}\n{}\ngateway log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.log_text()
    );
    assert!(stdout.contains("anthropic sdk ok"), "{stdout}");
}

#[test]
fn anthropic_python_sdk_creates_streams_and_uses_tools_with_failover() {
    let openai = common::mock_upstream(&[]);
    let anthropic = common::mock_upstream(&[]);
    let overloaded = common::mock_upstream(&["--fail-rate", "1", "--fail-status", "529"]);
    let gw = common::gateway(&format!(
        "{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"up-key\"\n\n\
         [providers.busy]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"up-key\"\n\n\
         [routing]\nmax_attempts = 2\n\n\
         [models.via-openai]\nproviders = [\"o\"]\n\
         [models.via-anthropic]\nproviders = [\"claude\"]\n\
         [models.failover]\nproviders = [\"busy\", \"o\"]\n\n\
         [[keys]]\nname = \"sdk\"\nkey = \"sdk-test-key-1\"\n",
        common::openai_provider("o", &openai, ""),
        anthropic.url(""),
        overloaded.url(""),
    ));
    smoke(&gw, "via-openai", "no-count");
    smoke(&gw, "via-anthropic", "counts");
    smoke(&gw, "failover", "skip");

    // The passthrough reached the Anthropic upstream as the Messages API, with its version.
    let stats = common::mock_stats(&anthropic);
    assert_eq!(stats["last_api"], "messages/count_tokens", "{stats}");
    // The first request to `failover` was refused by the overloaded provider and served by the
    // next; later ones may skip it (its health score drops), every one is served by `o`.
    let series = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    until(&gw, Duration::from_secs(10), "messages metrics", |s| {
        let served = s.get(&series(
            "model_inference_requests_total",
            "api=\"messages\",model=\"failover\",provider=\"o\",status=\"success\"",
        ))?;
        let overloaded = s.get(&series(
            "gatewayz_provider_requests_total",
            "outcome=\"error\",provider=\"busy\",reason=\"server_error\"",
        ))?;
        let failovers = s.get("gatewayz_provider_failovers_total{provider=\"busy\"}")?;
        let passthrough_tokens = s.get(&series(
            "gatewayz_tokens_total",
            "api=\"messages\",model=\"via-anthropic\",provider=\"claude\",type=\"output\"",
        ))?;
        (*served == 5.0 && *overloaded >= 1.0 && *failovers >= 1.0 && *passthrough_tokens > 0.0)
            .then_some(())
    });
}
