//! Client tests against a local TCP upstream that records the raw request: what reaches the
//! upstream, and how each way of failing is classified.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::Api;
use crate::providers::StreamFault;

const ANSWER: &str = r#"{"model":"m1","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;

fn json_reply(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn config(base_url: String) -> OpenAiProviderConfig {
    OpenAiProviderConfig {
        base_url,
        api_key: None,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        stream_idle_timeout: Duration::from_secs(5),
        max_event_bytes: 1 << 20,
        max_response_bytes: 32 << 20,
        headers: BTreeMap::new(),
        inject_stream_usage: true,
    }
}

/// One attempt with an empty body and no trace, as most tests here send.
async fn attempt(client: &OpenAiClient, want: Want) -> Result<Reply, ProviderError> {
    client
        .call(
            Api::Chat,
            Bytes::from_static(b"{}"),
            want,
            &UpstreamTrace::default(),
            &Forwarded::default(),
        )
        .await
}

/// Serves one connection: reads one request (head and `content-length` body), answers
/// `reply`, and yields the request as text.
async fn one_request(reply: impl Into<String>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let reply = reply.into();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-request");
            seen.extend_from_slice(&buf[..n]);
            if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&seen[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        while seen.len() < head_end + length {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            seen.extend_from_slice(&buf[..n]);
        }
        socket.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8(seen).unwrap()
    });
    (addr, served)
}

fn header<'a>(request: &'a str, name: &str) -> Vec<&'a str> {
    request
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn the_request_carries_its_headers_and_body() {
    let (addr, served) = one_request(json_reply(ANSWER)).await;
    let mut config = config(format!("http://{addr}/v1/"));
    config.api_key = Some("k-up".into());
    config.headers = BTreeMap::from([
        ("X-Team".to_string(), "blue".to_string()),
        // A configured header never overrides the request's own.
        ("accept".to_string(), "text/plain".to_string()),
        // ... but overrides the client's forwarded one (operator policy).
        ("OpenAI-Beta".to_string(), "operator".to_string()),
    ]);
    let client_headers: [(&str, &[u8]); 4] = [
        ("openai-beta", b"client"),
        ("openai-organization", b"org-1"),
        ("authorization", b"Bearer client-key"),
        ("user-agent", b"sdk/1"),
    ];
    let forwarded = Forwarded::collect(|name| {
        client_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    });
    let client = OpenAiClient::new(&config).unwrap();
    assert_eq!(client.host(), "127.0.0.1");
    let trace = UpstreamTrace {
        traceparent: Some(HeaderValue::from_static(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )),
        tracestate: None,
    };
    let body = Bytes::from_static(br#"{"model":"m1","messages":[]}"#);
    let Reply::Json {
        body: answer,
        usage,
        response_model,
        request_id,
    } = client
        .call(Api::Chat, body, Want::Json, &trace, &forwarded)
        .await
        .unwrap()
    else {
        panic!("not a JSON reply");
    };
    assert_eq!(&answer[..], ANSWER.as_bytes());
    assert_eq!(usage.map(|u| u.completion_tokens), Some(2));
    assert_eq!(response_model.as_deref(), Some("m1"));
    assert!(request_id.is_none(), "the upstream sent none");

    let request = served.await.unwrap();
    assert!(
        request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{request}"
    );
    assert_eq!(header(&request, "host"), [addr.to_string()]);
    assert_eq!(header(&request, "content-type"), ["application/json"]);
    assert_eq!(header(&request, "accept"), ["application/json"]);
    assert_eq!(header(&request, "authorization"), ["Bearer k-up"]);
    assert_eq!(header(&request, "x-team"), ["blue"]);
    assert_eq!(header(&request, "openai-beta"), ["operator"]);
    assert_eq!(header(&request, "openai-organization"), ["org-1"]);
    assert_eq!(
        header(&request, "user-agent"),
        [concat!("gatewayz/", env!("CARGO_PKG_VERSION"), " (sdk/1)")]
    );
    assert_eq!(
        header(&request, "traceparent"),
        ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
    );
    assert!(header(&request, "tracestate").is_empty());
    assert_eq!(header(&request, "content-length"), ["28"]);
    assert!(request.ends_with("\r\n\r\n{\"model\":\"m1\",\"messages\":[]}"));
}

#[tokio::test]
async fn user_info_in_the_url_becomes_basic_auth() {
    let (addr, served) = one_request(json_reply(ANSWER)).await;
    let client = OpenAiClient::new(&config(format!("http://us%65r:p%40ss@{addr}/v1"))).unwrap();
    attempt(&client, Want::Json).await.unwrap();
    let request = served.await.unwrap();
    // base64("user:p@ss")
    assert_eq!(header(&request, "authorization"), ["Basic dXNlcjpwQHNz"]);
    assert_eq!(header(&request, "host"), [addr.to_string()]);
    assert!(!request.contains("p%40ss"), "{request}");
}

#[tokio::test]
async fn a_stream_waits_for_its_first_chunk_and_an_error_status_keeps_its_body() {
    const SSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
        transfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let (addr, served) = one_request(SSE).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let empty = attempt(&client, Want::Stream { strip_usage: false }).await;
    assert!(
        matches!(&empty, Err(ProviderError::Stream(StreamFault::NoDone))),
        "{:?}",
        empty.err()
    );
    assert_eq!(
        header(&served.await.unwrap(), "accept"),
        ["text/event-stream"]
    );

    const TEAPOT: &str = "HTTP/1.1 418 I'm a teapot\r\ncontent-type: application/json\r\n\
        request-id: req_up_1\r\ncontent-length: 7\r\n\r\n{\"e\":1}";
    let (addr, _served) = one_request(TEAPOT).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    match attempt(&client, Want::Json).await {
        Err(ProviderError::Status {
            status,
            body,
            content_type,
            retry_after,
            request_id,
        }) => {
            assert_eq!(retry_after, None);
            // Anthropic's `request-id` counts too.
            assert_eq!(request_id.unwrap(), "req_up_1");
            assert_eq!(status, 418);
            assert_eq!(&body[..], b"{\"e\":1}");
            assert_eq!(content_type.as_deref(), Some("application/json"));
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn a_429_carries_its_retry_after() {
    const LIMITED: &str = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
        retry-after: 12\r\ncontent-length: 2\r\n\r\n{}";
    let (addr, _served) = one_request(LIMITED).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(
        matches!(
            error,
            ProviderError::Status { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(12)
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), "rate_limited");
}

/// A JSON answer past `max_response_bytes` fails the attempt, whether its length is declared
/// or it arrives chunked and keeps growing.
#[tokio::test]
async fn an_answer_past_the_size_limit_is_too_large() {
    let mut small = config(String::new());
    small.max_response_bytes = 1024;
    let declared = json_reply(&format!("{{\"pad\":\"{}\"}}", "x".repeat(2000)));
    let mut body = String::new();
    for _ in 0..4 {
        body.push_str(&format!("200\r\n{}\r\n", "y".repeat(0x200)));
    }
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{body}0\r\n\r\n"
    );
    for reply in [declared, chunked] {
        let (addr, _served) = one_request(reply).await;
        small.base_url = format!("http://{addr}/v1");
        let client = OpenAiClient::new(&small).unwrap();
        let error = attempt(&client, Want::Json).await.err().unwrap();
        assert!(
            matches!(error, ProviderError::TooLarge { limit: 1024 }),
            "{error:?}"
        );
        assert!(error.retryable());
    }
}

#[tokio::test]
async fn a_refused_port_is_a_connect_error_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = OpenAiClient::new(&config(format!("http://user:secret@{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    let ProviderError::Connect(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("refused"), "{message}");
    assert!(
        !message.contains("secret") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_tls_handshake_is_a_connect_error() {
    // Answers the TLS client hello with plain HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _served = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.read(&mut [0u8; 1024]).await;
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let client = OpenAiClient::new(&config(format!("https://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
}

#[tokio::test]
async fn the_connect_timeout_covers_the_tls_handshake() {
    // Accepts the connection, never answers the client hello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let mut config = config(format!("https://{addr}/v1"));
    config.connect_timeout = Duration::from_millis(100);
    let client = OpenAiClient::new(&config).unwrap();
    let started = std::time::Instant::now();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    // As with reqwest, an expired connect timeout is a timeout.
    assert!(matches!(error, ProviderError::Timeout), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error() {
    const CUT: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        content-length: 100\r\n\r\n{\"model\"";
    let (addr, _served) = one_request(CUT).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(matches!(error, ProviderError::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn a_stream_silent_past_its_idle_timeout_ends_with_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n\
                  30\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\r\n",
            )
            .await
            .unwrap();
        // Silent, with the connection open, until the test is over.
        let _ = held.await;
    });
    let mut c = config(format!("http://{addr}/v1"));
    c.stream_idle_timeout = Duration::from_millis(200);
    let client = OpenAiClient::new(&c).unwrap();
    let want = Want::Stream { strip_usage: false };
    let reply = attempt(&client, want).await;
    let Ok(Reply::Stream(upstream)) = reply else {
        panic!("not a stream: {:?}", reply.err());
    };
    let (held, mut rest, _, ended) = upstream.into_parts();
    assert!(!ended);
    let mut got = held.to_vec();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rest.next().await {
                Some(Ok(chunk)) => got.extend_from_slice(&chunk),
                other => return other,
            }
        }
    })
    .await
    .expect("the idle timeout cut the stream");
    assert_eq!(
        got,
        b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
    );
    assert!(
        matches!(outcome, Some(Err(ProviderError::Timeout))),
        "{outcome:?}"
    );
    assert!(rest.next().await.is_none(), "nothing after the timeout");
    let _ = release.send(());
    server.await.unwrap();
}

/// The path suffix goes into the path, before a query `base_url` carries (Azure's classic
/// `?api-version=`), and a trailing slash does not double.
#[test]
fn the_endpoint_keeps_the_base_url_s_query() {
    for (base, want) in [
        (
            "https://r.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21",
            "https://r.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
        ),
        ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://h", "http://h/chat/completions"),
    ] {
        assert_eq!(endpoint(base, "chat/completions").unwrap().as_str(), want, "{base}");
    }
}

/// A chunked SSE answer: `events` content events, then `[DONE]`, each event a chunk of its own.
fn chunked_events(events: usize, close: bool) -> (String, String) {
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n");
    if close {
        head += "connection: close\r\n";
    }
    head += "transfer-encoding: chunked\r\n\r\n";
    let mut body = String::new();
    let mut wire = head;
    let lines = (0..events)
        .map(|i| format!(r#"{{"choices":[{{"delta":{{"content":"w{i}"}}}}]}}"#))
        .chain(["[DONE]".to_string()]);
    for data in lines {
        let event = format!("data: {data}\n\n");
        wire += &format!("{:x}\r\n{event}\r\n", event.len());
        body += &event;
    }
    wire += "0\r\n\r\n";
    (wire, body)
}

/// The primed stream of one attempt: what priming held, and the rest.
async fn stream_of(client: &OpenAiClient) -> (Vec<u8>, ByteStream) {
    let reply = attempt(client, Want::Stream { strip_usage: false }).await;
    let Ok(Reply::Stream(upstream)) = reply else {
        panic!("not a stream: {:?}", reply.err());
    };
    let (held, rest, _, ended) = upstream.into_parts();
    assert!(!ended);
    (held.to_vec(), rest)
}

/// One attempt's whole stream, as the client gets it.
async fn whole_stream(client: &OpenAiClient) -> String {
    let (mut got, mut rest) = stream_of(client).await;
    while let Some(chunk) = rest.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(got).unwrap()
}

/// A burst the upstream wrote at once goes on in one pass: poll after poll of the body, with
/// the connection's own task never running in between, yields every event and the end. (hyper
/// alone hands over one chunk per turn of its connection task.)
#[tokio::test]
async fn a_burst_of_events_is_read_in_one_pass() {
    let (wire, body) = chunked_events(8, false);
    let (addr, _served) = one_request(wire).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let (mut got, mut rest) = stream_of(&client).await;
    let mut ended = false;
    std::future::poll_fn(|cx| loop {
        match rest.as_mut().poll_next(cx) {
            Poll::Ready(Some(chunk)) => got.extend_from_slice(&chunk.unwrap()),
            Poll::Ready(None) => {
                ended = true;
                return Poll::Ready(());
            }
            Poll::Pending => return Poll::Ready(()),
        }
    })
    .await;
    assert_eq!(String::from_utf8(got).unwrap(), body);
    assert!(ended, "the end came in the same pass");
}

/// Answers every request on every connection it accepts with `wire`, counting connections.
async fn keep_alive_server(
    wire: String,
) -> (
    SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let wire = wire.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // A request: its head and the 2-byte body (`{}`) every test here sends.
                    while seen
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .is_none_or(|i| seen.len() < i + 4 + 2)
                    {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.clear();
                    if socket.write_all(wire.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted, server)
}

/// Streams read that way leave their connection to the pool: three streams, one after the
/// other, each read by a task of its own (as the server's), over one connection.
#[tokio::test]
async fn a_driven_stream_leaves_its_connection_to_the_pool() {
    let (wire, body) = chunked_events(4, false);
    let (addr, accepted, server) = keep_alive_server(wire).await;
    let client = Arc::new(OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap());
    for _ in 0..3 {
        let client = client.clone();
        let got = tokio::spawn(async move { whole_stream(&client).await })
            .await
            .unwrap();
        assert_eq!(got, body);
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.abort();
}

/// Readers on other threads than their connections' tasks (the server's workers share each
/// provider's pool): many streams at once on two threads all arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_driven_from_other_threads_arrive_whole() {
    let (wire, body) = chunked_events(12, false);
    let (addr, accepted, server) = keep_alive_server(wire).await;
    let client = Arc::new(OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap());
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                for _ in 0..20 {
                    all.push(whole_stream(&client).await);
                }
                all
            })
        })
        .collect();
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        for reader in readers {
            for got in reader.await.unwrap() {
                assert_eq!(got, body);
            }
        }
    })
    .await;
    assert!(done.is_ok(), "640 streams did not end in 30 s");
    // Connections were reused, not opened per stream.
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) < 200);
    server.abort();
}

/// A connection the upstream closes after its answer (`connection: close`) ends its task once
/// the stream is read: no task is left behind. (A connection ending under its reader's poll:
/// `drive::tests::a_connection_ended_by_its_driver_ends_its_task`.)
#[tokio::test]
async fn a_connection_ended_by_its_reader_leaves_no_task_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (wire, body) = chunked_events(4, true);
    let (addr, served) = one_request(wire).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    assert_eq!(whole_stream(&client).await, body);
    served.await.unwrap();
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        while metrics.num_alive_tasks() > before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        left.is_ok(),
        "{} tasks alive, {before} before",
        metrics.num_alive_tasks()
    );
}

/// As the server runs it: each worker its own single-threaded runtime, one pool shared. A
/// connection made on one runtime (its task lives there) serves streams read on another,
/// whose reader polls the connection from its own thread.
#[test]
fn a_connection_made_on_one_runtime_is_driven_from_another() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (wire, body) = chunked_events(12, false);
    let home = runtime();
    let (addr, accepted, server) = home.block_on(keep_alive_server(wire));
    let client = Arc::new(OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap());
    // The first stream makes the connection, and its task, on the home runtime.
    let first = home.block_on(whole_stream(&client));
    assert_eq!(first, body);
    // The home runtime keeps running the connection's task on its thread.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let home_thread = std::thread::spawn(move || {
        home.block_on(async {
            let _ = stopped.await;
        });
        server.abort();
    });
    let reader = client.clone();
    let read = std::thread::spawn(move || {
        runtime().block_on(async {
            let mut all = Vec::new();
            for _ in 0..20 {
                // Each stream read by a task of its own, as the server's are.
                let reader = reader.clone();
                let got = tokio::spawn(async move { whole_stream(&reader).await });
                all.push(got.await.unwrap());
            }
            all
        })
    })
    .join()
    .unwrap();
    for got in read {
        assert_eq!(got, body);
    }
    // Reused: a connection goes back to the pool when a task of the reader's runtime sees it
    // ready again. For the home runtime's connection, another thread tells it when, maybe
    // late: the next stream may find it still on its way and open a second, on the reader's
    // runtime, whose return that runtime sees before its next stream starts. So one or two.
    let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        opened <= 2,
        "{opened} connections for 21 streams, one at a time"
    );
    let _ = stop.send(());
    home_thread.join().unwrap();
}
