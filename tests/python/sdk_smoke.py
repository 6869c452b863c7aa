"""The official OpenAI Python SDK against a running gatewayz: a chat completion, a streamed
chat completion (text reassembled and checked) and models.list().

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

    print("sdk smoke ok:", content, "|", text, "|", ids)


if __name__ == "__main__":
    main()
