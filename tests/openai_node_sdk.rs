//! The official OpenAI Node SDK (the `openai` npm package, 6.x, pinned by
//! `tests/node/package-lock.json`) completes a chat, a streamed chat, a models list, embeddings
//! and legacy completions against the gateway (with a client key, in front of `gatewayz
//! mock-upstream`), and gets a typed 404 for an unknown model. `./scripts/test` installs the
//! SDK (`npm ci --prefix tests/node`); without node or the SDK this test fails, never skips.

mod common;

use std::path::PathBuf;

#[test]
fn openai_node_sdk_chats_streams_lists_models_embeds_and_completes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/openai/package.json").exists(),
        "the OpenAI Node SDK is not installed: run `npm ci --prefix tests/node` (./scripts/test does)"
    );
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&format!(
        "{}\n[models.sdk-model]\nproviders = [\"up\"]\n\n\
         [[keys]]\nname = \"sdk\"\nkey = \"sdk-test-key-1\"\n",
        common::openai_provider("up", &upstream, "")
    ));
    let out = common::node(
        &dir,
        "sdk_smoke.mjs",
        &[&gw.url("/v1"), "sdk-test-key-1", "sdk-model"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Node SDK smoke failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
        out.status,
        gw.log_text()
    );
    assert!(stdout.contains("node sdk smoke ok"), "{stdout}");
}
