"""The official Anthropic Python SDK against gatewayz's /v1/messages: messages.create with a
system prompt, messages.stream (text reassembled, final usage), and an error in Anthropic's
shape for a model that does not exist.

Usage: anthropic_smoke.py BASE_URL API_KEY MODEL. Driven by tests/anthropic_sdk.rs; exits
non-zero on the first failed check.
"""

import sys

import anthropic


def main() -> None:
    base_url, api_key, model = sys.argv[1:4]
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)

    message = client.messages.create(
        model=model,
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[{"role": "user", "content": "hello from claude code"}],
    )
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text == "You said: hello from claude code", text
    assert message.stop_reason == "end_turn", message.stop_reason
    assert message.usage.output_tokens == 6, message.usage

    with client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": [{"type": "text", "text": "stream me"}]}],
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "You said: stream me", streamed
    assert final.usage.output_tokens == 4, final.usage

    try:
        client.messages.create(
            model="no-such-model",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
        )
        raise AssertionError("an unknown model was accepted")
    except anthropic.NotFoundError as error:
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "not_found_error", error.body

    print("anthropic sdk ok:", text, "|", streamed)


if __name__ == "__main__":
    main()
