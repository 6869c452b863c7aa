//! The official OpenAI Python SDK completes a chat, a streamed chat, tool calls (whole and
//! streamed), a models list, embeddings, legacy completions and the Responses API (JSON,
//! streamed, the stream helper) against the gateway (with a client key, in front of
//! `gatewayz mock-upstream`), chat also through a `kind = "anthropic"` provider. The SDK lives in the
//! virtual environment `./scripts/test` creates; without it this test fails, never skips.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn openai_python_sdk_chats_calls_tools_streams_lists_models_embeds_completes_and_responds() {
    let python = common::python();
    let upstream = common::mock_upstream(&[]);
    let broken = common::failing_upstream("malformed-late");
    let gw = common::gateway(&format!(
        "{}{}[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"up\"\n\n\
         [models.sdk-model]\nproviders = [\"up\"]\n\n\
         [models.sdk-broken]\nproviders = [\"broken\"]\n\n\
         [models.sdk-claude]\nproviders = [\"claude\"]\n\n\
         [[keys]]\nname = \"sdk\"\nkey = \"sdk-test-key-1\"\n",
        common::openai_provider("up", &upstream, ""),
        common::openai_provider("broken", &broken, ""),
        upstream.url(""),
    ));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_smoke.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([
            &gw.url("/v1"),
            "sdk-test-key-1",
            "sdk-model",
            "sdk-broken",
            "sdk-claude",
        ])
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run ./scripts/test to create it",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK smoke failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
        out.status,
        gw.log_text()
    );
    assert!(stdout.contains("sdk smoke ok"), "{stdout}");
}
