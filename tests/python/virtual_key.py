"""The official OpenAI SDK with a key made through the gateway's admin API.

usage: virtual_key.py BASE_URL KEY MODEL ok|revoked

`ok`: a chat completion and a streamed one answer. `revoked`: the SDK raises its
AuthenticationError (401, OpenAI's error shape, code invalid_api_key). Prints what it saw.
"""

import sys

import openai


def main() -> None:
    base_url, key, model, expect = sys.argv[1:5]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
    messages = [{"role": "user", "content": "hello from a virtual key"}]
    if expect == "ok":
        reply = client.chat.completions.create(model=model, messages=messages)
        assert reply.choices[0].message.content, reply
        assert reply.usage and reply.usage.prompt_tokens > 0, reply
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text, "empty stream"
        print("virtual key ok")
        return
    try:
        client.chat.completions.create(model=model, messages=messages)
    except openai.AuthenticationError as error:
        assert error.status_code == 401, error
        assert error.code == "invalid_api_key", error.body
        print("virtual key refused")
        return
    raise SystemExit("a revoked key was accepted")


if __name__ == "__main__":
    main()
