//! `x-gatewayz-overhead-ms` is on every chat completion, JSON and streamed, and reads as a
//! small non-negative number of milliseconds.

mod common;

use std::io::Read;

#[allow(clippy::unwrap_used, clippy::expect_used)] // a test helper: panics are the failures
fn overhead_ms(reply: &reqwest::blocking::Response) -> f64 {
    let value = reply
        .headers()
        .get("x-gatewayz-overhead-ms")
        .expect("x-gatewayz-overhead-ms header")
        .to_str()
        .unwrap();
    let ms: f64 = value
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} is not a number: {e}"));
    assert!(ms.is_finite() && ms >= 0.0, "{value}");
    // The upstream waits 50 ms: none of that may be counted as the gateway's own time.
    assert!(
        ms < 45.0,
        "overhead {value} ms includes the upstream's wait"
    );
    ms
}

#[test]
fn every_completion_carries_its_overhead() {
    let upstream = common::mock_upstream(&["--latency", "50ms", "--chunks", "3"]);
    let gw = common::gateway(&format!(
        "{}\n[models.m]\nproviders = [\"up\"]\n",
        common::openai_provider("up", &upstream, "")
    ));
    for stream in [false, true] {
        let mut reply =
            common::post_chat(&gw, &common::chat_body("m", "hello overhead", stream), None);
        assert_eq!(reply.status(), 200, "stream={stream}");
        overhead_ms(&reply);
        let mut body = String::new();
        reply.read_to_string(&mut body).unwrap();
        if stream {
            assert!(body.contains("data: [DONE]"), "{body}");
        } else {
            assert!(body.contains("You said: hello overhead"), "{body}");
        }
    }
}

#[test]
fn the_builtin_mock_provider_reports_it_too() {
    let gw = common::builtin_gateway();
    let reply = common::post_chat(&gw, &common::chat_body("mock-gpt", "hi", false), None);
    assert_eq!(reply.status(), 200);
    overhead_ms(&reply);
}
