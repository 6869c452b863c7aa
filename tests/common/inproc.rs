//! Runs the gateway in this test process (so the test owns the global subscriber and can
//! flood it), on a free loopback port, until the process ends.

use std::net::SocketAddr;
use std::time::Duration;

use gatewayz::config::Config;
use gatewayz::telemetry::loki::LokiHandle;

/// Starts `config` (TOML, without `[telemetry.loki]`) with `loki`; returns the address once
/// `/health` answers.
pub fn start_gateway(config: &str, loki: LokiHandle) -> SocketAddr {
    let config = Config::from_toml(config, "test", &|_| None).unwrap();
    let addr = super::free_addr();
    std::thread::spawn(move || gatewayz::app::run_with(config, Some(addr), Some(loki)));
    let client = super::client();
    super::wait_until(
        Duration::from_secs(30),
        "the in-process gateway to start",
        || client.get(format!("http://{addr}/health")).send().is_ok(),
    );
    addr
}
