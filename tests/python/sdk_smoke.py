"""The official OpenAI Python SDK against a running gatewayz: a chat completion, a streamed
chat completion (text reassembled and checked), models.list(), embeddings.create(), legacy
completions.create() (JSON and streamed) and the Responses API: responses.create() (JSON and
stream=True) and the responses.stream() helper, text and usage checked.

A Responses stream that breaks after its first content (BROKEN_MODEL, served by an upstream
sending a malformed event) reaches the SDK as the Responses API's `error` event, not as an
event the SDK cannot parse.

Chat (JSON, streamed, and a tool call round trip: the call whole and streamed, its arguments
assembled from fragments, the tool's result answered) runs against MODEL and against
CLAUDE_MODEL, served by a `kind = "anthropic"` provider (translated both ways).

Usage: sdk_smoke.py BASE_URL API_KEY MODEL BROKEN_MODEL CLAUDE_MODEL. Driven by
tests/openai_sdk.rs; exits non-zero on the first failed check.
"""

import json
import sys

from openai import OpenAI

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


def chat_checks(client: OpenAI, model: str) -> str:
    """Chat whole, streamed, and a tool call round trip against MODEL; the whole answer."""
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello from the sdk"}]
    )
    content = reply.choices[0].message.content
    assert content == "You said: hello from the sdk", (model, content)
    assert reply.usage is not None and reply.usage.completion_tokens == 6, (model, reply.usage)

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream this please"}],
        )
        if chunk.choices
    )
    assert streamed == "You said: stream this please", (model, streamed)

    ask = [{"role": "user", "content": "weather in Paris"}]
    called = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER])
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls", (model, choice)
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather", (model, call)
    assert json.loads(call.function.arguments) == {"query": "weather in Paris"}, (model, call)

    fragments, names, finish = [], [], None
    for chunk in client.chat.completions.create(
        model=model, messages=ask, tools=[WEATHER], stream=True
    ):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tool_call in delta.tool_calls or []:
            if tool_call.function.name:
                names.append(tool_call.function.name)
            fragments.append(tool_call.function.arguments or "")
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"] and finish == "tool_calls", (model, names, finish)
    assert json.loads("".join(fragments)) == {"query": "weather in Paris"}, (model, fragments)

    answered = client.chat.completions.create(
        model=model,
        tools=[WEATHER],
        messages=ask
        + [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny 21C"},
        ],
    )
    assert answered.choices[0].message.content == "You said: sunny 21C", (model, answered)
    return content


def main() -> None:
    base_url, api_key, model, broken_model, claude_model = sys.argv[1:6]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    chat_checks(client, claude_model)
    content = chat_checks(client, model)

    ids = [m.id for m in client.models.list()]
    assert model in ids, ids

    embedded = client.embeddings.create(model=model, input="embed these four words")
    vector = embedded.data[0].embedding
    assert len(vector) == 8 and all(0.0 <= x <= 1.0 for x in vector), vector
    assert embedded.usage.prompt_tokens == 4, embedded.usage

    completed = client.completions.create(model=model, prompt="legacy prompt")
    assert completed.choices[0].text == "You said: legacy prompt", completed
    assert completed.usage.completion_tokens == 4, completed.usage

    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=model, prompt="legacy stream", stream=True)
        if c.choices
    )
    assert streamed == "You said: legacy stream", streamed

    responded = client.responses.create(model=model, input="respond to this")
    assert responded.status == "completed", responded
    assert responded.output_text == "You said: respond to this", responded.output_text
    # Input: 3 words + 3 for the message; output: 5 words.
    assert responded.usage.input_tokens == 6, responded.usage
    assert responded.usage.output_tokens == 5, responded.usage

    deltas = []
    usage = None
    for event in client.responses.create(
        model=model,
        input=[{"role": "user", "content": "stream a response"}],
        stream=True,
    ):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            usage = event.response.usage
    streamed_response = "".join(deltas)
    assert streamed_response == "You said: stream a response", streamed_response
    assert usage is not None and usage.output_tokens == 5, usage

    with client.responses.stream(
        model=model,
        instructions="be brief",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "helper stream"}]}],
    ) as stream:
        helper_text = "".join(
            e.delta for e in stream if e.type == "response.output_text.delta"
        )
        final = stream.get_final_response()
    assert helper_text == "You said: helper stream", helper_text
    assert final.output_text == helper_text, final.output_text
    # Instructions (2 words + 3) and the message (2 + 3); output: 4 words.
    assert final.usage.input_tokens == 10, final.usage
    assert final.usage.output_tokens == 4, final.usage

    events = list(
        client.responses.create(model=broken_model, input="break after this", stream=True)
    )
    types = [e.type for e in events]
    assert "response.output_text.delta" in types, types
    assert "response.completed" not in types, types
    assert types[-1] == "error" and events[-1].message, events[-1]

    print(
        "sdk smoke ok:",
        content,
        "|",
        ids,
        "|",
        completed.choices[0].text,
        "|",
        responded.output_text,
        "|",
        helper_text,
    )


if __name__ == "__main__":
    main()
