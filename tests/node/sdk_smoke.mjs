// The official OpenAI Node SDK (6.x) against a running gatewayz: a chat completion, a streamed
// chat completion (text reassembled and checked), models.list(), embeddings.create() and
// legacy completions.create() (JSON and streamed); each JSON answer carries the request id
// the SDK reads from `x-request-id` (`_request_id`).
//
// Usage: node sdk_smoke.mjs BASE_URL API_KEY MODEL. Driven by tests/openai_node_sdk.rs; exits
// non-zero on the first failed check.

import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });

const reply = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "hello from node" }],
});
const content = reply.choices[0].message.content;
assert.equal(content, "You said: hello from node");
assert.equal(reply.usage?.completion_tokens, 5, JSON.stringify(reply.usage));
assert.ok(reply._request_id, "no x-request-id on the chat answer");

const parts = [];
let chunks = 0;
const stream = await client.chat.completions.create({
  model,
  stream: true,
  messages: [{ role: "user", content: "stream this please" }],
});
for await (const chunk of stream) {
  chunks += 1;
  const delta = chunk.choices[0]?.delta?.content;
  if (delta) parts.push(delta);
}
const text = parts.join("");
assert.equal(text, "You said: stream this please");
assert.ok(chunks > 2, `only ${chunks} chunks`);

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
assert.ok(ids.includes(model), JSON.stringify(ids));

const embedded = await client.embeddings.create({ model, input: "embed these four words" });
const vector = embedded.data[0].embedding;
assert.equal(vector.length, 8, JSON.stringify(vector));
assert.ok(vector.every((x) => x >= 0 && x <= 1), JSON.stringify(vector));
assert.equal(embedded.usage.prompt_tokens, 4, JSON.stringify(embedded.usage));
assert.ok(embedded._request_id, "no x-request-id on the embeddings answer");

const completed = await client.completions.create({ model, prompt: "legacy prompt" });
assert.equal(completed.choices[0].text, "You said: legacy prompt");
assert.equal(completed.usage?.completion_tokens, 4, JSON.stringify(completed.usage));

let streamed = "";
for await (const c of await client.completions.create({
  model,
  prompt: "legacy stream",
  stream: true,
})) {
  if (c.choices?.length) streamed += c.choices[0].text;
}
assert.equal(streamed, "You said: legacy stream");

// An error the gateway makes: the SDK's typed error, with the status and the request id.
await assert.rejects(
  client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
  (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && Boolean(e.requestID),
);

console.log("node sdk smoke ok:", content, "|", text, "|", ids.join(","), "|", completed.choices[0].text);
