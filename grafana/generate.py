#!/usr/bin/env python3
"""Generates grafana/dashboards/*.json from one description, so the five dashboards share
their conventions: fixed datasource uids (prometheus, loki, tempo), `$provider` / `$model`
template variables from label values, unique panel ids, a grid laid out left to right.

    python3 grafana/generate.py          # rewrite the JSON files
    python3 grafana/generate.py --check  # fail if the committed files are stale (CI)

The metric names used here are checked against the metric catalogue in the code by
tests/dashboards.rs, and every query runs against a real Prometheus in tests/prometheus_e2e.rs.
Panels whose families exist only with an optional backend (the shared limit store, the usage
ledger) belong on the overview dashboard: it is the one allowed to show no data there.
"""
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
TEMPO = {"type": "tempo", "uid": "tempo"}

CHAT = 'route="/v1/chat/completions"'
RI = "$__rate_interval"


def prom_var(name, query, label):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "definition": query,
        "query": {"query": query, "refId": f"var-{name}", "qryType": 1},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "options": [],
    }


PROVIDER_VAR = prom_var("provider", "label_values(gatewayz_provider_health_score, provider)", "Provider")
MODEL_VAR = prom_var("model", "label_values(gatewayz_model_uptime_24h, model)", "Model")
# The client-facing API (chat, completions, embeddings, ...): a fixed set in the code.
API_VAR = prom_var("api", "label_values(model_inference_requests_total, api)", "API")
LEVEL_VAR = {
    "name": "level",
    "label": "Level",
    "type": "custom",
    "query": "error,warn,info,debug",
    "includeAll": True,
    "multi": True,
    "allValue": ".+",
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "options": [],
}


def q(expr, legend="", ref="A"):
    return {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend, "range": True}


def quantiles(metric, by, matchers=""):
    """p50 / p95 / p99 of a histogram, one query each."""
    group = f"{by}, le" if by else "le"
    legend_by = "{{" + by + "}} " if by else ""
    return [
        q(
            f"histogram_quantile({p}, sum by ({group}) (rate({metric}_bucket{{{matchers}}}[{RI}])))",
            f"{legend_by}p{int(p * 100)}",
            ref,
        )
        for p, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def panel(title, targets, kind="timeseries", unit=None, w=12, h=8, description="", **extra):
    p = {
        "title": title,
        "type": kind,
        "description": description,
        "datasource": targets[0]["datasource"] if targets else PROM,
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
        "_w": w,
        "_h": h,
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    p.update(extra)
    return p


def dashboard(uid, title, description, panels, variables, tags):
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = i
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_h = max(row_h, h)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["gatewayz"] + tags,
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"title": "gatewayz dashboards", "type": "dashboards", "tags": ["gatewayz"], "asDropdown": True}
        ],
        "panels": panels,
    }


def overview():
    panels = [
        panel("Chat completions per second by status",
              [q(f"sum by (status) (rate(http_requests_total{{{CHAT}}}[{RI}]))", "{{status}}")], unit="reqps"),
        panel("Error ratio (5xx) of chat completions",
              [q(f'sum(rate(http_requests_total{{{CHAT},status=~"5.."}}[{RI}])) / sum(rate(http_requests_total{{{CHAT}}}[{RI}]))', "5xx ratio")],
              unit="percentunit"),
        panel("Chat completion latency", quantiles("http_request_duration_seconds", "", CHAT), unit="s"),
        panel("Requests in flight", [q("sum(http_requests_in_flight)", "in flight")], w=6),
        panel("Availability (non-5xx) over the range",
              [q(f'1 - (sum(increase(http_requests_total{{{CHAT},status=~"5.."}}[$__range])) or vector(0)) / sum(increase(http_requests_total{{{CHAT}}}[$__range]))', "availability")],
              kind="stat", unit="percentunit", w=6),
        panel("Gateway overhead (time not spent waiting on upstreams)",
              quantiles("gatewayz_overhead_seconds", ""), unit="s",
              description="Total request time minus time waiting on upstreams, failovers included."),
        panel("Inference requests per second by API",
              [q(f'sum by (api) (rate(model_inference_requests_total{{api=~"$api"}}[{RI}]))', "{{api}}")],
              unit="reqps", description="Client requests that reached the router, by the API they called."),
        panel("Requests per second by route",
              [q(f"sum by (method, route) (rate(http_requests_total[{RI}]))", "{{method}} {{route}}")], unit="reqps"),
        panel("Process CPU and memory",
              [q(f"rate(process_cpu_seconds_total[{RI}])", "CPU cores", "A"),
               q("process_resident_memory_bytes / 2^20", "RSS MiB", "B")]),
        panel("Shared limit store up, by replica",
              [q("gatewayz_shared_state_up", "{{instance}}")],
              kind="state-timeline",
              description="Whether each replica's shared limit store ([state] redis_url) answers; "
                          "no data without one.",
              fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {
                  "0": {"text": "down", "color": "red"},
                  "1": {"text": "up", "color": "green"}}}]}, "overrides": []}),
        panel("Shared limit store admission round trip",
              quantiles("gatewayz_shared_state_duration_seconds", "", 'op="admit"'), unit="s",
              description="On the request path; bounded by [state] timeout (default 50ms), failures included."),
        panel("Admissions without the shared store, by policy",
              [q(f"sum by (policy) (rate(gatewayz_shared_state_bypassed_total[{RI}]))", "{{policy}}")],
              unit="reqps",
              description="Decided while the store was unreachable: fail_open by this replica's own counters, "
                          "fail_closed refused with 503. The family is in the system and business categories, "
                          "so max by instance counts each replica once."),
        panel("Shared limit store errors and lost settlements",
              [q(f"sum by (op) (rate(gatewayz_shared_state_errors_total[{RI}]))", "{{op}} errors", "A"),
               q(f"sum(rate(gatewayz_shared_state_lost_settlements_total[{RI}]))", "lost settlements", "B")],
              description="Calls that failed or timed out, by operation; settlements (spend, tokens) that never "
                          "reached the store (in two categories, so max by instance counts each replica once)."),
        panel("Usage ledger records per second by outcome",
              [q(f"sum by (outcome) (rate(gatewayz_ledger_records_total[{RI}]))", "{{outcome}}")],
              w=6,
              description="written to the ledger's database; dropped (its queue was full: the database down or "
                          "slow for too long); lost (unwritten at exit). No data without [ledger]."),
        panel("Usage ledger queue depth, by replica",
              [q("gatewayz_ledger_queue_depth", "{{instance}}")],
              w=6,
              description="Records accepted and not written yet; past [ledger] queue_capacity new ones are "
                          "dropped. Grows while the database is down or slow. No data without [ledger]."),
        panel("Usage ledger write errors per second, by replica",
              [q(f"sum by (instance) (rate(gatewayz_ledger_write_errors_total[{RI}]))", "{{instance}}")],
              w=6,
              description="Batch writes that failed or timed out (30s); each is retried with backoff until "
                          "the database takes it. No data without [ledger] or without errors."),
        panel("Usage ledger batch write p99",
              [q(f"histogram_quantile(0.99, sum by (le) (rate(gatewayz_ledger_write_duration_seconds_bucket[{RI}])))",
                 "p99")],
              unit="s", w=6,
              description="One batch of records and its hourly rollups in one transaction (successful writes). "
                          "No data without [ledger]."),
    ]
    return dashboard("gatewayz-overview", "gatewayz / Overview",
                     "Traffic, errors, latency percentiles and in-flight requests of the gateway; "
                     "the shared limit store; the usage ledger.",
                     panels, [API_VAR], ["overview"])


def providers():
    sel = 'provider=~"$provider"'
    panels = [
        panel("Health score", [q(f"gatewayz_provider_health_score{{{sel}}}", "{{provider}}")],
              unit="percentunit", description="Success rate, latency against target and breaker state, in [0, 1]."),
        panel("Circuit breaker state (0 closed, 1 half-open, 2 open)",
              [q(f'sum by (provider) (gatewayz_circuit_breaker_state{{{sel},state="open"}}) * 2 + sum by (provider) (gatewayz_circuit_breaker_state{{{sel},state="half_open"}})', "{{provider}}")],
              kind="state-timeline",
              fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {
                  "0": {"text": "closed", "color": "green"},
                  "1": {"text": "half_open", "color": "yellow"},
                  "2": {"text": "open", "color": "red"}}}]}, "overrides": []}),
        panel("Provider response time", quantiles("provider_response_time_seconds", "provider", sel), unit="s"),
        panel("Provider requests by outcome",
              [q(f"sum by (provider, outcome) (rate(gatewayz_provider_requests_total{{{sel}}}[{RI}]))", "{{provider}} {{outcome}}")],
              unit="reqps"),
        panel("Failovers (from provider)",
              [q(f"sum by (provider) (increase(gatewayz_provider_failovers_total{{{sel}}}[{RI}]))", "{{provider}}")]),
        panel("Detected anomalies by type",
              [q(f"sum by (type) (increase(gatewayz_detected_anomalies_total[{RI}]))", "{{type}}")]),
    ]
    return dashboard("gatewayz-providers", "gatewayz / Providers",
                     "Provider health, circuit breakers, response times, failovers and anomalies.",
                     panels, [PROVIDER_VAR], ["providers"])


def models():
    sel = 'model=~"$model"'
    asel = f'{sel},api=~"$api"'
    panels = [
        panel("Inference requests per second by model and status",
              [q(f"sum by (model, status) (rate(model_inference_requests_total{{{asel}}}[{RI}]))", "{{model}} {{status}}")],
              unit="reqps"),
        panel("Uptime over 24 h", [q(f"gatewayz_model_uptime_24h{{{sel}}}", "{{model}}")], unit="percentunit"),
        panel("Token efficiency (output / input tokens)", [q(f"gatewayz_token_efficiency{{{sel}}}", "{{model}}")]),
        panel("Time to first token", quantiles("gatewayz_time_to_first_token_seconds", "model", asel), unit="s"),
        panel("Inference duration", quantiles("model_inference_duration_seconds", "model", asel), unit="s"),
        panel("Tokens per second by model and type",
              [q(f"sum by (model, type) (rate(gatewayz_tokens_total{{{asel}}}[{RI}]))", "{{model}} {{type}}")]),
        panel("Inference requests per second by API and model",
              [q(f"sum by (api, model) (rate(model_inference_requests_total{{{asel}}}[{RI}]))", "{{api}} {{model}}")],
              unit="reqps"),
    ]
    return dashboard("gatewayz-models", "gatewayz / Models",
                     "Requests, 24 h uptime, token efficiency and time to first token per model and API.",
                     panels, [MODEL_VAR, API_VAR], ["models"])


def business():
    psel, msel = 'provider=~"$provider"', 'model=~"$model"'
    panels = [
        panel("Spend by provider (USD/hour)",
              [q(f"sum by (provider) (rate(gatewayz_cost_by_provider_total{{{psel}}}[{RI}])) * 3600", "{{provider}}")],
              unit="currencyUSD"),
        panel("Spend by model (USD/hour)",
              [q(f"sum by (model) (rate(gatewayz_cost_by_model_total{{{msel}}}[{RI}])) * 3600", "{{model}}")],
              unit="currencyUSD"),
        panel("Spend over the range (USD)",
              [q("sum(increase(gatewayz_cost_by_model_total[$__range]))", "USD")], kind="stat", unit="currencyUSD", w=6),
        panel("Active trials", [q("trial_active", "trials")], kind="stat", w=6),
        panel("Tokens per second (input / output)",
              [q(f'sum by (type) (rate(gatewayz_tokens_total{{{psel},{msel},api=~"$api"}}[{RI}]))', "{{type}}")]),
        panel("Tokens per second by API",
              [q(f'sum by (api) (rate(gatewayz_tokens_total{{{psel},{msel},api=~"$api"}}[{RI}]))', "{{api}}")]),
        panel("Cost per 1,000 requests by model (USD)",
              [q(f"sum by (model) (rate(gatewayz_cost_by_model_total{{{msel}}}[{RI}])) / sum by (model) (rate(model_inference_requests_total{{{msel}}}[{RI}])) * 1000", "{{model}}")],
              unit="currencyUSD"),
        panel("Spend by key and team (USD/hour)",
              [q(f"sum by (key, team) (rate(gatewayz_cost_by_key_usd_total[{RI}])) * 3600", "{{key}} ({{team}})")],
              unit="currencyUSD"),
        panel("Spend by team (USD/hour)",
              [q(f"sum by (team) (rate(gatewayz_cost_by_key_usd_total[{RI}])) * 3600", "{{team}}")],
              unit="currencyUSD", description="Keys without a team show as none."),
        panel("Limit refusals per second by key, team and reason",
              [q(f"sum by (key, team, reason) (rate(gatewayz_limit_refusals_total[{RI}]))", "{{key}} ({{team}}) {{reason}}")],
              unit="reqps",
              description="Requests refused by a key's or its team's limits: rpm, tpm, parallel, budget, "
                          "model_not_allowed, store_unavailable (the shared store unreachable under fail_closed)."),
        panel("Budget remaining by scope and name (USD)",
              [q("min by (scope, name) (gatewayz_budget_remaining_usd)", "{{scope}} {{name}}")],
              unit="currencyUSD",
              description="USD left in the current budget period. With a shared store ([state] redis_url) every "
                          "replica reports the same figure; without one each replica counts its own, and the "
                          "lowest is shown. Never summed."),
        panel("Soft budgets crossed",
              [q(f"(sum by (scope, name) (increase(gatewayz_soft_budget_crossings_total[{RI}])) > 0) "
                 f"or count by (scope, name) ((gatewayz_soft_budget_crossings_total > 0) unless gatewayz_soft_budget_crossings_total offset {RI})",
                 "{{scope}} {{name}}")],
              w=24,
              description="Once per budget period per key or team whose spend crossed its soft budget (nothing is "
                          "refused). The counter appears at 1 on a replica's first crossing, so a series above 0 that "
                          "was not there one interval before counts as a crossing too."),
    ]
    return dashboard("gatewayz-business", "gatewayz / Business",
                     "Cost by provider, model, client key and team; budgets, limit refusals, tokens and active trials.",
                     panels, [PROVIDER_VAR, MODEL_VAR, API_VAR], ["business"])


def logs_traces():
    def lq(expr, ref="A", kind="range"):
        return {"refId": ref, "datasource": LOKI, "expr": expr, "queryType": kind}

    stream = '{service="gatewayz", level=~"$level"}'
    panels = [
        panel("Log lines per level",
              [lq(f'sum by (level) (count_over_time({stream} [$__auto]))')], kind="timeseries"),
        panel("Warnings and errors by provider",
              [lq('sum by (provider) (count_over_time({service="gatewayz", level=~"warn|error"} | json | provider=~"$provider" [$__auto]))')],
              kind="timeseries"),
        panel("Gateway logs", [lq(f'{stream} | json | provider=~"$provider" or provider=""')],
              kind="logs", w=24, h=10,
              options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True}),
        panel("Failed provider attempts", [lq('{service="gatewayz"} |= "provider attempt failed" | json')],
              kind="logs", w=12, h=10, options={"showTime": True, "enableLogDetails": True}),
        panel("Recent traces",
              [{"refId": "A", "datasource": TEMPO, "queryType": "traceql", "limit": 20, "tableType": "traces",
                "query": '{ resource.service.name = "gatewayz" }'}],
              kind="table", w=12, h=10),
        panel("Slow or failed chat spans",
              [{"refId": "A", "datasource": TEMPO, "queryType": "traceql", "limit": 20, "tableType": "traces",
                "query": '{ resource.service.name = "gatewayz" && span.gen_ai.operation.name = "chat" && (duration > 2s || status = error) }'}],
              kind="table", w=24, h=10),
    ]
    return dashboard("gatewayz-logs-traces", "gatewayz / Logs & traces",
                     "Loki log volume and lines by level and provider, and Tempo trace search; "
                     "log lines link to their trace by trace_id.",
                     panels, [LEVEL_VAR, PROVIDER_VAR], ["logs", "traces"])


def main():
    boards = {
        "overview.json": overview(),
        "providers.json": providers(),
        "models.json": models(),
        "business.json": business(),
        "logs-traces.json": logs_traces(),
    }
    check = "--check" in sys.argv[1:]
    stale = []
    for name, board in boards.items():
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        sys.exit(f"stale dashboards (run python3 grafana/generate.py): {', '.join(stale)}")


if __name__ == "__main__":
    main()
