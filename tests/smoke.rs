//! The README's first command: the built-in default answers a chat completion.

mod common;

#[test]
fn builtin_default_answers_a_chat_completion() {
    let gw = common::builtin_gateway();
    let reply = common::post_chat(
        &gw,
        &common::chat_body("mock-gpt", "hello smoke", false),
        None,
    );
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hello smoke"
    );
    assert_eq!(body["usage"]["completion_tokens"], 4);
}
