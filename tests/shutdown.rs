//! Process signals and the shutdown budget against the real binary: SIGHUP without a
//! configuration file is refused (logged) and the gateway keeps serving (reloads themselves:
//! `tests/reload.rs`); SIGTERM with a stalled Loki and a stream still open ends within
//! `server.shutdown_timeout`, and the stream's client gets an OpenAI-shaped SSE error event
//! before its body ends instead of a silent cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::loki::{LokiReceiver, Mode};

#[test]
fn sighup_on_the_builtin_default_is_refused_and_the_gateway_keeps_serving() {
    let mut gw = common::builtin_gateway();
    gw.signal("HUP");
    let refused = "configuration reload refused";
    common::wait_until(Duration::from_secs(10), "the refused reload", || {
        gw.log_text().contains(refused)
    });
    let line = gw.log_text();
    let line = line.lines().find(|l| l.contains(refused)).unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("trigger=\"SIGHUP\"") || line.contains("trigger=SIGHUP"),
        "{line}"
    );
    assert!(line.contains("built-in default"), "{line}");
    assert!(gw.is_running());
    let reply = common::client().get(gw.url("/health")).send().unwrap();
    assert_eq!(reply.status(), 200);
    let reply = common::post_chat(
        &gw,
        &common::chat_body("mock-gpt", "still here", false),
        None,
    );
    assert_eq!(reply.status(), 200);
}

/// What a streaming client read, and whether the body ended cleanly.
struct StreamRead {
    body: String,
    clean_end: bool,
}

#[test]
fn sigterm_with_a_stalled_loki_and_an_open_stream_ends_within_the_budget() {
    let budget = Duration::from_secs(3);
    // 100 words at 200 ms each: the stream would run for 20 s.
    let upstream = common::mock_upstream(&["--chunk-delay", "200ms"]);
    let stalled = LokiReceiver::start(Mode::Stall);
    let mut gw = common::gateway(&format!(
        r#"
[server]
shutdown_timeout = "3s"

{provider}
[models.slow]
providers = ["up"]

[telemetry.loki]
url = "{loki}"
flush_interval = "10ms"
"#,
        provider = common::openai_provider("up", &upstream, ""),
        loki = stalled.url(),
    ));
    let prompt = vec!["word"; 100].join(" ");
    let body = common::chat_body("slow", &prompt, true);
    let addr = gw.addr;
    let reader = std::thread::spawn(move || {
        let mut reply = common::chat_request(&common::client(), addr, body)
            .send()
            .unwrap();
        assert_eq!(reply.status(), 200);
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let clean_end = loop {
            match reply.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        StreamRead {
            body: String::from_utf8(bytes).unwrap(),
            clean_end,
        }
    });
    common::wait_until(Duration::from_secs(10), "the stream to start", || {
        common::mock_stats(&upstream)["streams_started"] == 1
    });
    // Loki is stalled: the shipper holds the request's log lines.
    common::wait_until(
        Duration::from_secs(10),
        "a push to the stalled Loki",
        || !stalled.pushes().is_empty(),
    );
    let started = Instant::now();
    let status = gw
        .terminate(Duration::from_secs(20))
        .expect("the gateway exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < budget + Duration::from_secs(2),
        "exit took {took:?} with a {budget:?} budget"
    );
    let read = reader.join().unwrap();
    let events = common::sse_data(&read.body);
    assert!(events.len() > 1, "content before the cut: {}", read.body);
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "server_shutting_down",
        "{}",
        read.body
    );
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        read.clean_end,
        "the body ended after the event: {}",
        read.body
    );
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", read.body);
}
