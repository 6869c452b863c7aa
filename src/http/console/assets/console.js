// The gatewayz console: one page per hash (#overview, #providers, ...), each refreshed from
// the console's JSON endpoints every few seconds. No framework, no dependency.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const pages = ["overview", "providers", "models", "spend", "keys", "logs"];
const REFRESH_MS = 3000;
let timer = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, numeric) {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => {
    const td = c instanceof Node ? c : el("td", c);
    if (!(c instanceof Node) && numeric && numeric.includes(i)) td.className = "num";
    if (c instanceof Node && c.tagName !== "TD") {
      const cell = el("td");
      cell.appendChild(c);
      tr.appendChild(cell);
    } else {
      tr.appendChild(td);
    }
  });
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

const fmt = {
  pct: (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"),
  ms: (v) => (v === null || v === undefined ? "–" : (v * 1000).toFixed(1) + " ms"),
  usd: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(6)),
  n: (v) => (v === null || v === undefined ? "–" : String(v)),
  time: (unix) => new Date(unix * 1000).toLocaleTimeString(),
};

function say(text) {
  document.getElementById("status").textContent = text;
}

async function call(method, path, body) {
  const headers = { "x-csrf-token": csrf };
  if (body !== undefined) headers["content-type"] = "application/json";
  const reply = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (reply.status === 401) {
    location.href = "/ui";
    throw new Error("signed out");
  }
  const text = await reply.text();
  const data = text ? JSON.parse(text) : null;
  if (!reply.ok) {
    throw new Error((data && data.error && data.error.message) || reply.statusText);
  }
  return data;
}

const get = (path) => call("GET", path);

const render = {
  async overview() {
    const stamp = Date.now();
    for (const name of ["requests", "errors", "latency", "latency_p99", "ttft", "ttft_p99", "overhead"]) {
      document.getElementById("chart-" + name).src = "/ui/chart/" + name + ".svg?t=" + stamp;
    }
  },

  async providers() {
    const data = await get("/ui/api/providers");
    fill(
      document.querySelector("#providers-table tbody"),
      data.providers.map((p) => {
        const state = el("td", p.breaker_state.replace("_", "-"), p.breaker_state);
        state.dataset.provider = p.provider;
        return row(
          [p.provider, state, p.health_score.toFixed(2), p.in_flight, p.requests, fmt.pct(p.error_rate),
           fmt.ms(p.latency_seconds.p50), fmt.ms(p.latency_seconds.p99)],
          [3, 4],
        );
      }),
    );
    fill(
      document.getElementById("transitions"),
      data.transitions.slice(0, 50).map((t) => el("li", `${fmt.time(t.at)} ${t.provider} → ${t.to}`)),
    );
    fill(
      document.getElementById("anomalies"),
      data.anomalies.slice(0, 50).map((a) =>
        el("li", `${fmt.time(a.at)} ${a.provider}: ${a.type} (value ${a.value.toPrecision(3)}, baseline ${a.baseline.toPrecision(3)})`)),
    );
  },

  async models() {
    const data = await get("/ui/api/models");
    fill(
      document.querySelector("#models-table tbody"),
      data.models.map((m) =>
        row([m.model, m.requests, m.errors, m.tokens.input, m.tokens.output, fmt.usd(m.cost_usd),
             fmt.pct(m.uptime_24h)], [1, 2, 3, 4, 5])),
    );
  },

  async spend() {
    const since = document.getElementById("spend-since").value;
    const by = document.getElementById("spend-by").value;
    const query = `since=${encodeURIComponent(since)}&by=${encodeURIComponent(by)}`;
    document.getElementById("spend-csv").href = "/ui/api/spend?" + query + "&format=csv";
    const session = await get("/ui/api/session");
    if (!session.ledger) {
      say("The usage ledger is off: add [ledger] to the configuration to see spend.");
      return;
    }
    const data = await get("/ui/api/spend?" + query);
    const line = (l) => row([l.name, l.requests, l.errors, l.input_tokens, l.output_tokens,
                             fmt.usd(l.cost_usd)], [1, 2, 3, 4, 5]);
    fill(document.querySelector("#spend-table tbody"), data.rows.map(line));
    fill(document.querySelector("#spend-table tfoot"), [line(data.total)]);
    const top = Math.max(...data.rows.map((l) => l.cost_usd), 0);
    fill(
      document.getElementById("spend-bars"),
      data.rows.map((l) => {
        const bar = el("div", `${l.name} ${fmt.usd(l.cost_usd)}`, "bar");
        bar.style.width = (top > 0 ? Math.max(2, (100 * l.cost_usd) / top) : 2) + "%";
        return bar;
      }),
    );
  },

  async keys() {
    const data = await get("/admin/keys");
    fill(
      document.querySelector("#keys-table tbody"),
      data.data.map((k) => {
        const actions = el("td");
        if (k.source === "database") {
          const rotate = el("button", "Rotate", "secondary");
          rotate.type = "button";
          rotate.dataset.key = k.name;
          rotate.addEventListener("click", () => keyAction("POST", `/admin/keys/${encodeURIComponent(k.name)}/rotate`, k.name));
          const edit = el("button", "Edit limits", "secondary");
          edit.type = "button";
          edit.dataset.edit = k.name;
          edit.addEventListener("click", () => editKey(k));
          const revoke = el("button", "Revoke", "secondary");
          revoke.type = "button";
          revoke.dataset.revoke = k.name;
          revoke.addEventListener("click", () => {
            if (confirm(`Revoke the key ${k.name}? Clients using it get 401 from now on.`)) {
              keyAction("DELETE", `/admin/keys/${encodeURIComponent(k.name)}`, k.name);
            }
          });
          actions.append(rotate, " ", edit, " ", revoke);
        } else {
          actions.textContent = "edit the configuration file";
        }
        return row([k.name, k.source, fmt.n(k.team), fmt.n(k.rate_limit_rpm), fmt.n(k.budget_usd), actions]);
      }),
    );
  },

  async logs() {
    const q = new URLSearchParams();
    for (const f of ["model", "provider", "status"]) {
      const v = document.getElementById("logs-" + f).value.trim();
      if (v) q.set(f, v);
    }
    const data = await get("/ui/api/logs?" + q.toString());
    fill(
      document.querySelector("#logs-table tbody"),
      data.lines.map((l) =>
        row([fmt.time(l.at), l.status, l.model, fmt.n(l.provider), fmt.n(l.key), l.latency_ms.toFixed(1),
             `${l.input_tokens} / ${l.output_tokens}`, fmt.n(l.trace_id)], [5])),
    );
  },
};

function showSecret(name, secret) {
  const box = document.getElementById("key-secret");
  box.replaceChildren(
    el("strong", `The secret of ${name}, shown this once: `),
    el("code", secret),
  );
  box.hidden = false;
}

async function keyAction(method, path, name) {
  try {
    const answer = await call(method, path);
    if (answer && answer.key) showSecret(name, answer.key);
    say(`${name}: done`);
  } catch (e) {
    say(`${name}: ${e.message}`);
  }
  render.keys();
}

async function editKey(k) {
  const rpm = prompt(`Requests per minute for ${k.name} (empty: none)`, k.rate_limit_rpm ?? "");
  if (rpm === null) return;
  const budget = prompt(`Budget in USD for ${k.name} (empty: none)`, k.budget_usd ?? "");
  if (budget === null) return;
  try {
    await call("PATCH", `/admin/keys/${encodeURIComponent(k.name)}`, {
      rate_limit_rpm: rpm === "" ? null : Number(rpm),
      budget_usd: budget === "" ? null : Number(budget),
    });
    say(`${k.name}: limits saved`);
  } catch (e) {
    say(`${k.name}: ${e.message}`);
  }
  render.keys();
}

document.getElementById("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { name: document.getElementById("key-name").value.trim() };
  const team = document.getElementById("key-team").value.trim();
  const rpm = document.getElementById("key-rpm").value;
  const budget = document.getElementById("key-budget").value;
  if (team) body.team = team;
  if (rpm) body.rate_limit_rpm = Number(rpm);
  if (budget) body.budget_usd = Number(budget);
  try {
    const answer = await call("POST", "/admin/keys", body);
    showSecret(answer.name, answer.key);
    say(`${answer.name}: created`);
    event.target.reset();
  } catch (e) {
    say(`Not created: ${e.message}`);
  }
  render.keys();
});

document.getElementById("logout").addEventListener("submit", async (event) => {
  event.preventDefault();
  await fetch("/ui/logout", { method: "POST", headers: { "x-csrf-token": csrf }, credentials: "same-origin", redirect: "manual" });
  location.href = "/ui";
});

for (const id of ["spend-since", "spend-by"]) {
  document.getElementById(id).addEventListener("change", () => render.spend());
}
for (const id of ["logs-model", "logs-provider", "logs-status"]) {
  document.getElementById(id).addEventListener("input", () => render.logs());
}
document.getElementById("logs-form").addEventListener("submit", (e) => e.preventDefault());
document.getElementById("spend-form").addEventListener("submit", (e) => e.preventDefault());

function current() {
  const name = location.hash.replace("#", "");
  return pages.includes(name) ? name : "overview";
}

async function refresh() {
  const page = current();
  try {
    await render[page]();
    if (page !== "spend") say(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    say(`Could not refresh: ${e.message}`);
  }
}

function show() {
  const page = current();
  for (const p of pages) {
    document.getElementById("page-" + p).hidden = p !== page;
    const link = document.getElementById("nav-" + p);
    if (p === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clearInterval(timer);
  refresh();
  // The key form and the spend period are not refreshed under the user's hands.
  if (page !== "keys" && page !== "spend") timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", show);
show();
