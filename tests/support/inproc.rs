//! Runs the gateway in this test process (so the test owns the global subscriber and can
//! flood it), on a free loopback port, until the process ends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use gatewayz::config::Config;
use gatewayz::telemetry::loki::LokiHandle;

/// Starts `config` (TOML, without `[telemetry.loki]`) with `loki`; returns the address once
/// `/health` answers.
pub fn start_gateway(config: &str, loki: LokiHandle) -> SocketAddr {
    let config = Config::from_toml(config, "test", &|_| None).unwrap();
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::thread::spawn(move || gatewayz::app::run_with(config, Some(addr), Some(loki)));
    gatewayz::install_crypto_provider();
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("http://{addr}/health")).send().is_err() {
        assert!(
            Instant::now() < deadline,
            "the in-process gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

pub const MOCK_CONFIG: &str = r#"
[providers.mock-a]
kind = "mock"

[models.mock-gpt]
providers = ["mock-a"]
"#;

/// A chat completion; returns the status.
pub fn chat(client: &reqwest::blocking::Client, addr: SocketAddr, id: &str) -> u16 {
    client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(
            serde_json::json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
