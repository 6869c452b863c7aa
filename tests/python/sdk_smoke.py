"""The official OpenAI Python SDK against a running gatewayz: a chat completion, a streamed
chat completion (text reassembled and checked), models.list(), embeddings.create() and legacy
completions.create() (JSON and streamed).

Usage: sdk_smoke.py BASE_URL API_KEY MODEL. Driven by tests/openai_sdk.rs; exits non-zero on
the first failed check.
"""

import sys

from openai import OpenAI


def main() -> None:
    base_url, api_key, model = sys.argv[1:4]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)

    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello from the sdk"}]
    )
    content = reply.choices[0].message.content
    assert content == "You said: hello from the sdk", content
    assert reply.usage is not None and reply.usage.completion_tokens == 6, reply.usage

    parts = []
    chunks = 0
    for chunk in client.chat.completions.create(
        model=model,
        stream=True,
        messages=[{"role": "user", "content": "stream this please"}],
    ):
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    text = "".join(parts)
    assert text == "You said: stream this please", text
    assert chunks > 2, chunks

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

    print("sdk smoke ok:", content, "|", text, "|", ids, "|", completed.choices[0].text)


if __name__ == "__main__":
    main()
