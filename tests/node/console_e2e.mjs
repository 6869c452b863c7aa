// The console in a real browser (Debian's Chromium, driven by playwright-core; nothing is
// downloaded): sign in, watch a provider's breaker open when its upstream fails and close when
// it recovers, make a key and use it from the OpenAI SDK, revoke it and see the SDK get 401,
// download the spend CSV and check its sums against the ledger, read the logs, and check the
// pages at a phone's width. Screenshots of every page go to the directory given.
//
//   node console_e2e.mjs GATEWAY_URL MOCK_URL ADMIN_TOKEN MODEL SCREENSHOT_DIR
import { chromium } from "playwright-core";
import OpenAI from "openai";
import fs from "node:fs";
import path from "node:path";

const [gateway, mock, adminToken, model, shots] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
fs.mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
}

async function until(what, fn, limitMs = 30000) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("timed out: " + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function chat(key) {
  const reply = await fetch(gateway + "/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: "Bearer " + key } : {}) },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "from the console test" }] }),
  });
  await reply.text();
  return reply.status;
}

async function upstream(behaviour) {
  const reply = await fetch(mock + "/mock/control", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(behaviour),
  });
  check(reply.ok, "mock control answered " + reply.status);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
// The 401s the test asks for (a wrong token, a call after signing out) are the only errors
// allowed.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().includes("status of 401")) consoleErrors.push(m.text());
});
// Revoking asks to confirm; editing limits asks for the rate, then the budget.
page.on("dialog", (d) => {
  if (d.type() !== "prompt") return d.accept();
  return d.accept(d.message().includes("Requests per minute") ? "42" : "5");
});
const shot = (name) => page.screenshot({ path: path.join(shots, name + ".png"), fullPage: true });

// Sign in: a wrong token is refused on the form, the right one opens the console.
await page.goto(gateway + "/ui");
await shot("login");
await page.fill("#token", "not-the-token");
await page.click("button[type=submit]");
await page.waitForSelector(".error");
check((await page.textContent(".error")).includes("not the admin token"), "wrong token refused");
await page.fill("#token", adminToken);
await page.click("button[type=submit]");
await page.waitForSelector("#page-overview:not([hidden])");
const cookies = await context.cookies();
const session = cookies.find((c) => c.name === "gatewayz_console");
check(session && session.httpOnly && session.sameSite === "Strict", "HttpOnly, SameSite=Strict cookie");
check(!(await page.evaluate(() => document.cookie)).includes("gatewayz_console"), "the script cannot read the cookie");

// Traffic for the charts, then the overview with every chart drawn.
for (let i = 0; i < 20; i++) check((await chat()) === 200, "a chat through the gateway");
await until("the overview's request chart", async () => {
  const label = await page.evaluate(async () => {
    const r = await fetch("/ui/chart/requests.svg");
    return (await r.text()).match(/aria-label="([^"]*)"/)[1];
  });
  return !label.includes("no data") && !label.endsWith(" 0.0/s at most") && label;
});
// The page's next refresh draws them.
const drawn = await page.getAttribute("#chart-requests", "src");
await page.waitForFunction((before) => document.getElementById("chart-requests").src !== new URL(before, location.href).href, drawn);
await page.waitForFunction(() => [...document.querySelectorAll(".charts img")].every((i) => i.complete && i.naturalWidth > 0));
await shot("overview");

// Providers: the breaker opens when the upstream fails, and closes when it recovers.
await page.click("#nav-providers");
const cell = 'td[data-provider="up"]';
await page.waitForSelector(cell + ".closed");
await upstream({ fail_rate: 1.0 });
for (let i = 0; i < 6; i++) await chat();
await page.waitForSelector(cell + ".open", { timeout: 15000 });
check((await page.textContent("#transitions")).includes("up → open"), "the transition is listed");
await shot("providers-open");
await upstream({});
await until("the breaker to close", async () => {
  await chat();
  return (await page.$(cell + ".closed")) !== null;
}, 30000);
check((await page.textContent("#transitions")).includes("up → closed"), "the close is listed");
await shot("providers-closed");

// Models.
await page.click("#nav-models");
await page.waitForSelector(`#models-table tbody tr:has-text("${model}")`);
await shot("models");

// Keys: make one, use it from the OpenAI SDK, revoke it, and the SDK gets 401.
await page.click("#nav-keys");
await page.waitForSelector("#key-form");
// A key that stays: with no key at all the gateway serves loopback clients without one.
await page.fill("#key-name", "console-keeper");
await page.click("#key-create");
await page.waitForSelector('#keys-table tbody tr:has-text("console-keeper")');
await page.fill("#key-name", "console-made");
await page.fill("#key-rpm", "600");
await page.click("#key-create");
await page.waitForSelector('#key-secret:has-text("console-made")');
const secret = (await page.textContent("#key-secret code")).trim();
check(/^gwz-[0-9a-f]{48}$/.test(secret), "the new key's secret is shown once: " + secret);
await page.waitForSelector('#keys-table tbody tr:has-text("console-made")');
await shot("keys");
const client = new OpenAI({ baseURL: gateway + "/v1", apiKey: secret, maxRetries: 0 });
const answer = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
check(answer.choices[0].message.content.length > 0, "the SDK chats with the console's key");
await page.click('button[data-revoke="console-made"]');
await page.waitForFunction(() => !document.querySelector("#keys-table tbody").textContent.includes("console-made"));
let refused = null;
try {
  await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
} catch (e) {
  refused = e;
}
check(refused instanceof OpenAI.AuthenticationError && refused.status === 401, "the SDK gets 401 once revoked: " + refused);
// Rotate the keeper: a new secret, shown once; the old one stops.
const keeperFirst = await (async () => {
  const list = await page.evaluate(async () => (await fetch("/admin/keys")).json());
  return list.data.find((k) => k.name === "console-keeper");
})();
check(keeperFirst && !("key" in keeperFirst), "the list carries no secret");
await page.click('button[data-key="console-keeper"]');
await page.waitForSelector('#key-secret:has-text("console-keeper")');
const rotated = (await page.textContent("#key-secret code")).trim();
check(/^gwz-[0-9a-f]{48}$/.test(rotated) && rotated !== secret, "a rotated secret");
check((await chat(rotated)) === 200, "the rotated key works");
// Edit the keeper's limits: 42 requests a minute, a $5 budget.
await page.click('button[data-edit="console-keeper"]');
await page.waitForFunction(() => {
  const row = [...document.querySelectorAll("#keys-table tbody tr")].find((r) => r.children[0].textContent === "console-keeper");
  return row && row.children[3].textContent === "42" && row.children[4].textContent === "5";
});
// The key list after a reload shows no secret.
await page.reload();
await page.waitForSelector("#page-keys:not([hidden])");
check(!(await page.content()).includes(secret), "no secret in the page after the answer that made it");
check(!(await page.content()).includes(rotated), "no rotated secret either");

// Spend: the CSV's sums are the ledger's.
await page.click("#nav-spend");
await page.selectOption("#spend-by", "model");
await page.waitForSelector(`#spend-table tbody tr:has-text("${model}")`);
await shot("spend");
const ledger = async () => (await (await fetch(gateway + "/admin/usage?since=7d&by=model", {
  headers: { authorization: "Bearer " + adminToken },
})).json()).total;
// The ledger writes in batches: compare a download with the ledger read on both sides of it,
// once both reads agree (no batch landed in between).
const { csv, usage } = await until("a download between two equal ledger reads", async () => {
  const before = await ledger();
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#spend-csv")]);
  const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n");
  const after = await ledger();
  return JSON.stringify(before) === JSON.stringify(after) && { csv, usage: after };
});
const header = csv[0].split(",");
const col = (name) => header.indexOf(name);
check(col("requests") >= 0 && col("cost_usd") >= 0, "CSV header: " + csv[0]);
const rows = csv.slice(1).map((l) => l.split(",")).filter((r) => r[0] !== "total");
const sum = (name) => rows.reduce((s, r) => s + Number(r[col(name)]), 0);
check(sum("requests") === usage.requests, `CSV requests ${sum("requests")} = ledger ${usage.requests}`);
check(Math.abs(sum("cost_usd") - usage.cost_usd) < 1e-6 * (rows.length + 1), `CSV cost ${sum("cost_usd")} = ledger ${usage.cost_usd}`);
check(usage.cost_usd > 0, "something was spent");

// Logs: the last request lines, with trace ids, filtered by status.
await page.click("#nav-logs");
await page.waitForSelector("#logs-table tbody tr");
await page.fill("#logs-status", "upstream_error");
await page.waitForFunction(() => {
  const rows = [...document.querySelectorAll("#logs-table tbody tr")];
  return rows.length > 0 && rows.every((r) => r.children[1].textContent === "upstream_error");
});
const trace = await page.textContent("#logs-table tbody tr td:last-child");
check(/^[0-9a-f]{32}$/.test(trace.trim()), "a trace id: " + trace);
await shot("logs");

// A phone's width: no page scrolls sideways (wide tables scroll inside their box).
await page.setViewportSize({ width: 360, height: 740 });
for (const p of ["overview", "providers", "models", "spend", "keys", "logs"]) {
  await page.click("#nav-" + p);
  await page.waitForSelector(`#page-${p}:not([hidden])`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 360, `${p} is ${wide}px wide at 360px`);
  await shot(p + "-360");
}

// Keyboard: the navigation is reachable with Tab and follows Enter.
await page.setViewportSize({ width: 1280, height: 900 });
await page.focus("#nav-overview");
await page.keyboard.press("Tab");
await page.keyboard.press("Enter");
await page.waitForSelector("#page-providers:not([hidden])");

// Everything is behind the session: signed out, the endpoints answer 401.
await page.click("#logout button");
await page.waitForSelector("#token");
const after = await page.evaluate(async () => (await fetch("/ui/api/providers")).status);
check(after === 401, "signed out: " + after);
check(!(await page.content()).includes(adminToken), "the admin token is never in a page");

check(consoleErrors.length === 0, "no script errors: " + consoleErrors.join("; "));
await browser.close();
console.log("console e2e ok");
