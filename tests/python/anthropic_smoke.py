"""The official Anthropic Python SDK against gatewayz's /v1/messages, as a coding agent uses
it: messages.create with system blocks (cache_control included) and an `anthropic-beta`
header, messages.stream (text reassembled, final usage), a tool-use round trip (the tool
called, its result sent back, the answer about it) both whole and streamed (the call's input
assembled from input_json_delta fragments), count_tokens where the provider counts tokens, and
errors in Anthropic's shape.

Usage: anthropic_smoke.py BASE_URL API_KEY MODEL COUNTS (COUNTS: "counts" when the model's
provider serves /v1/messages/count_tokens, "no-count" when it does not, "skip" to not ask).
Driven by tests/anthropic_sdk.rs; exits non-zero on the first failed check.
"""

import sys

import anthropic

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


def tool_round_trip(client: anthropic.Anthropic, model: str) -> None:
    ask = [{"role": "user", "content": "weather in Paris"}]
    first = client.messages.create(
        model=model, max_tokens=128, tools=[WEATHER], tool_choice={"type": "auto"}, messages=ask
    )
    assert first.stop_reason == "tool_use", first
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather", call
    assert call.input == {"query": "weather in Paris"}, call.input

    with client.messages.stream(model=model, max_tokens=128, tools=[WEATHER], messages=ask) as stream:
        streamed = stream.get_final_message()
    streamed_call = next(block for block in streamed.content if block.type == "tool_use")
    assert streamed.stop_reason == "tool_use", streamed
    assert streamed_call.input == {"query": "weather in Paris"}, streamed_call.input

    answer = client.messages.create(
        model=model,
        max_tokens=128,
        tools=[WEATHER],
        messages=ask
        + [
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": [{"type": "text", "text": "sunny 21C"}],
                    }
                ],
            },
        ],
    )
    text = "".join(block.text for block in answer.content if block.type == "text")
    assert text == "You said: sunny 21C", answer
    assert answer.stop_reason == "end_turn", answer


def main() -> None:
    base_url, api_key, model, counts = sys.argv[1:5]
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)

    message = client.messages.create(
        model=model,
        max_tokens=256,
        system=[
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Project notes.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[{"role": "user", "content": "hello from claude code"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
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

    tool_round_trip(client, model)

    if counts == "counts":
        counted = client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": "count these four words"}]
        )
        assert counted.input_tokens == 7, counted
    elif counts == "no-count":
        try:
            client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "x"}])
            raise AssertionError("count_tokens answered for a provider that cannot count")
        except anthropic.BadRequestError as error:
            assert error.body["error"]["type"] == "invalid_request_error", error.body

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
