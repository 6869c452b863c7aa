//! The official Anthropic Python SDK (installed by the test command into .venv) against
//! `POST /v1/messages`, with the model served by an OpenAI-compatible provider and by an
//! Anthropic one (both `gatewayz mock-upstream`): create, stream, and an error's shape.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn smoke(gw: &common::Process, model: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/anthropic_smoke.py");
    let out = Command::new(common::python())
        .arg(&script)
        .args([&gw.url(""), "sdk-test-key-1", model])
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
fn anthropic_python_sdk_creates_and_streams_messages() {
    let openai = common::mock_upstream(&[]);
    let anthropic = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"up-key\"\n\n\
         [models.via-openai]\nproviders = [\"o\"]\n\
         [models.via-anthropic]\nproviders = [\"claude\"]\n\n\
         [[keys]]\nname = \"sdk\"\nkey = \"sdk-test-key-1\"\n",
        common::openai_provider("o", &openai, ""),
        anthropic.url(""),
    ));
    smoke(&gw, "via-openai");
    smoke(&gw, "via-anthropic");
}
