//! The built-in console (`/ui`): its endpoints over HTTP — nothing without the admin token
//! and a session, the cookie's flags, CSRF on writes, each JSON endpoint's shape — and the
//! whole console in Debian's Chromium (`tests/node/console_e2e.mjs`, driven by
//! playwright-core, which `./scripts/test` installs with the browser; without them the test
//! fails, never skips). Screenshots of every page go to `target/console-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

const ADMIN: &str = "console-admin-token-1";

/// A gateway with the admin token, a ledger in a temp SQLite file, model `m` priced at
/// `upstream`, and breakers quick enough to watch.
fn gateway(upstream: &common::Process, ledger: &std::path::Path) -> common::Process {
    common::gateway(&format!(
        "[admin]\ntoken = \"{ADMIN}\"\n\n[ledger]\nurl = \"sqlite://{}\"\n\n\
         [breaker]\nconsecutive_failures = 3\ncool_down = \"5s\"\nclose_after = 1\n\n{}\
         [models.m]\nproviders = [\"up\"]\ninput_price_per_1m = 1000.0\noutput_price_per_1m = 2000.0\n",
        ledger.display(),
        common::openai_provider("up", upstream, "")
    ))
}

/// A pooled client per test thread that does not follow redirects (sign-in and sign-out
/// answer 303).
fn http() -> reqwest::blocking::Client {
    thread_local! {
        static CLIENT: reqwest::blocking::Client = {
            gatewayz::install_crypto_provider();
            reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap()
        };
    }
    CLIENT.with(|c| c.clone())
}

fn login(gw: &common::Process, token: &str) -> reqwest::blocking::Response {
    http()
        .post(gw.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .unwrap()
}

/// The session cookie's `name=value` from a login's answer.
fn session_of(reply: &reqwest::blocking::Response) -> (String, String) {
    let set = reply
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    (set.split(';').next().unwrap().to_owned(), set)
}

#[test]
fn the_console_needs_the_token_a_session_and_its_csrf_token() {
    let upstream = common::mock_upstream(&[]);
    let dir = tempfile::tempdir().unwrap();
    // Without an admin token there is no console at all.
    let plain = common::gateway(&format!(
        "{}{}",
        common::openai_provider("up", &upstream, ""),
        common::model("m", &["up"])
    ));
    for path in ["/ui", "/ui/api/overview", "/ui/chart/requests.svg"] {
        assert_eq!(
            http().get(plain.url(path)).send().unwrap().status(),
            404,
            "{path}"
        );
    }

    let gw = gateway(&upstream, &dir.path().join("ledger.db"));
    let form = http().get(gw.url("/ui")).send().unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().unwrap().contains("name=\"token\""));
    for path in [
        "/ui/api/overview",
        "/ui/api/providers",
        "/ui/api/models",
        "/ui/api/spend",
        "/ui/api/logs",
        "/ui/assets/console.js",
        "/ui/chart/requests.svg",
    ] {
        let reply = http().get(gw.url(path)).send().unwrap();
        assert_eq!(reply.status(), 401, "{path} without a session");
    }
    assert_eq!(login(&gw, "wrong").status(), 401);
    let signed = login(&gw, ADMIN);
    assert_eq!(signed.status(), 303);
    let (cookie, set) = session_of(&signed);
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let get = |path: &str| {
        http()
            .get(gw.url(path))
            .header("cookie", &cookie)
            .send()
            .unwrap()
    };
    let shell = get("/ui").text().unwrap();
    let csrf = shell
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);

    // Traffic, then each endpoint's shape.
    for _ in 0..5 {
        let body = common::chat_body("m", "console", false);
        assert_eq!(common::post_chat(&gw, &body, None).status(), 200);
    }
    let providers: serde_json::Value = get("/ui/api/providers").json().unwrap();
    assert_eq!(providers["providers"][0]["provider"], "up");
    assert_eq!(providers["providers"][0]["breaker_state"], "closed");
    assert!(providers["transitions"].is_array() && providers["anomalies"].is_array());
    assert_eq!(providers["providers"][0]["in_flight"], 0);
    // A stream open at the provider is in flight until it ends.
    let control = |behaviour: serde_json::Value| {
        let reply = http()
            .post(upstream.url("/mock/control"))
            .json(&behaviour)
            .send()
            .unwrap();
        assert!(reply.status().is_success());
    };
    control(serde_json::json!({"chunk_delay": "100ms"}));
    let held = common::HeldStream::open(gw.addr, common::chat_body("m", "slow", true), None);
    let in_flight = || {
        let p: serde_json::Value = get("/ui/api/providers").json().unwrap();
        p["providers"][0]["in_flight"].as_u64().unwrap()
    };
    assert_eq!(in_flight(), 1, "the open stream");
    assert!(held.finish().1.contains("[DONE]"));
    common::wait_until(Duration::from_secs(5), "the stream to leave", || {
        in_flight() == 0
    });
    control(serde_json::json!({}));
    let models: serde_json::Value = get("/ui/api/models").json().unwrap();
    assert_eq!(models["models"][0]["model"], "m");
    assert_eq!(models["models"][0]["requests"], 6);
    let logs: serde_json::Value = get("/ui/api/logs?status=success").json().unwrap();
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["model"], "m");
    assert_eq!(lines[0]["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        get("/ui/api/logs?status=upstream_error")
            .json::<serde_json::Value>()
            .unwrap()["lines"],
        serde_json::json!([])
    );
    let overview = common::poll(Duration::from_secs(15), || {
        let o: serde_json::Value = get("/ui/api/overview").json().unwrap();
        let busy = o["intervals"]
            .as_array()?
            .iter()
            .any(|i| i["requests_per_second"].as_f64().unwrap_or(0.0) > 0.0);
        busy.then_some(o)
    })
    .expect("an interval with requests");
    assert_eq!(overview["interval_seconds"], 2);
    for chart in [
        "errors",
        "latency",
        "latency_p99",
        "ttft",
        "ttft_p99",
        "overhead",
    ] {
        let reply = get(&format!("/ui/chart/{chart}.svg"));
        assert_eq!(reply.status(), 200, "{chart}");
    }
    let svg = get("/ui/chart/requests.svg");
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().unwrap().contains("Requests per second"));
    let spend = common::poll(Duration::from_secs(15), || {
        let s: serde_json::Value = get("/ui/api/spend?by=model").json().unwrap();
        (s["total"]["requests"] == 6).then_some(s)
    })
    .expect("the ledger's six records");
    let csv = get("/ui/api/spend?by=model&format=csv");
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let csv = csv.text().unwrap();
    assert!(csv.starts_with("model,requests,"), "{csv}");
    assert!(csv.contains("\nm,6,"), "{csv}");
    assert!(spend["total"]["cost_usd"].as_f64().unwrap() > 0.0);

    // Writes: the session's cookie alone is not enough, its CSRF token is.
    let create = |csrf: Option<&str>| {
        let mut request = http()
            .post(gw.url("/admin/keys"))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"name": "from-console"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send().unwrap()
    };
    common::assert_openai_error(create(None), 403, "forbidden");
    common::assert_openai_error(create(Some("not-the-token")), 403, "forbidden");
    let made = create(Some(&csrf));
    assert_eq!(made.status(), 201);
    let secret = made.json::<serde_json::Value>().unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = get("/admin/keys").text().unwrap();
    assert!(listed.contains("from-console") && !listed.contains(&secret));

    // Signed out, the cookie opens nothing.
    let out = http()
        .post(gw.url("/ui/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(get("/ui/api/providers").status(), 401);
    assert!(get("/ui").text().unwrap().contains("name=\"token\""));

    let log = gw.log_text();
    for secret in [ADMIN, &secret, cookie.split('=').nth(1).unwrap(), &csrf] {
        assert!(!log.contains(secret), "a secret in the log");
    }
}

#[test]
fn the_console_in_chromium_signs_in_watches_a_breaker_makes_and_revokes_a_key_and_exports_spend() {
    let node = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        node.join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/node` (./scripts/test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Debian's chromium is not installed at {chromium} (./scripts/test installs it)"
    );
    let upstream = common::mock_upstream(&[]);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&upstream, &dir.path().join("ledger.db"));
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let out = common::node(
        &node,
        "console_e2e.mjs",
        &[
            &gw.url(""),
            &upstream.url(""),
            ADMIN,
            "m",
            shots.to_str().unwrap(),
        ],
        &[("CHROMIUM", &chromium)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("console e2e ok"),
        "the console in Chromium failed ({}):\n{stdout}\n{stderr}\ngateway log:\n{}",
        out.status,
        gw.log_text()
    );
    for page in [
        "login",
        "overview",
        "providers-open",
        "keys",
        "spend",
        "logs",
        "logs-360",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
