#!/usr/bin/env python3
"""Generates grafana/dashboards/*.json from one description, so the five dashboards share
their conventions: datasources chosen by variables, every PromQL selector scoped to the chosen
jobs and instances, `$provider` / `$model` / `$api` from label values, unique panel ids, a grid
laid out left to right.

    python3 grafana/generate.py          # rewrite the JSON files
    python3 grafana/generate.py --check  # fail if the committed files are stale (CI)

Portable by construction: no panel names a datasource uid (`$datasource`, `$loki_datasource`
and `$tempo_datasource` default to the uids grafana/provisioning declares; where no datasource
has that uid, Grafana picks one of the type), and every PromQL series selector is built
by `s()`, which puts `job=~"$job",instance=~"$instance"` first, so a shared Prometheus's other
jobs never leak in. `$job` lists the jobs that carry a gateway-only family; its "All" is those
jobs, never `.*`. Loki streams carry no job label: LogQL selects `service="$service"`, the
stream label `[telemetry.loki] labels` sets (TraceQL the same name as `service.name`).

Queries use the canonical `gatewayz_*` names only; the seed's historical aliases
(`http_requests_total`, `process_*`, `trial_active`, ...) are exported for the seed's own
dashboards, not for these. The metric names used here are checked against the metric catalogue in the code by
tests/dashboards.rs (which also fails on a selector without the job matcher), and every query
runs against a real Prometheus in tests/prometheus_e2e.rs. Panels whose families exist only
with an optional backend (the shared limit store, the usage ledger) belong on the overview
dashboard: it is the one allowed to show no data there.
"""
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
PROM = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki_datasource}"}
TEMPO = {"type": "tempo", "uid": "${tempo_datasource}"}

# Every PromQL selector starts with these: the jobs and instances chosen on the dashboard.
SCOPE = ('job=~"$job"', 'instance=~"$instance"')
# Families only the gateway exports: every canonical name is `gatewayz_*`, never the seed's
# historical aliases (generic http_* and process_* names other services export too), and every
# category has one (gatewayz_trial_active is the business category's one family present before
# the first request): the jobs carrying one are the gateway's.
GATEWAY_SERIES = '__name__=~"gatewayz_.+"'

CHAT = 'route="/v1/chat/completions"'
FIVE_XX = 'status=~"5.."'
API = 'api=~"$api"'
RI = "$__rate_interval"


def s(metric, *matchers):
    """The series selector `metric{job=~"$job",instance=~"$instance",...}`. Every metric a
    PromQL query names goes through here; `matchers` are label matchers (or comma-joined
    lists of them), empty ones skipped."""
    return metric + "{" + ",".join(SCOPE + tuple(m for m in matchers if m)) + "}"


def rate(metric, *matchers, fn="rate", window=RI):
    """`rate(metric{scope,...}[window])`, or another range function."""
    return f"{fn}({s(metric, *matchers)}[{window}])"


def ds_var(name, kind, label, default):
    """A datasource variable of `kind`, defaulting to the provisioned uid `default`."""
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": kind,
        "regex": "",
        "refresh": 1,
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "current": {"selected": False, "text": default, "value": default},
        "options": [],
    }


def prom_var(name, query, label, all_value=".*"):
    """A multi-value `label_values` variable; `all_value=None` makes "All" the list of the
    values found (Grafana joins them into a regex) instead of a catch-all."""
    v = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "definition": query,
        "query": {"query": query, "refId": f"var-{name}", "qryType": 1},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "options": [],
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


def label_var(name, metric, label, title):
    """`label_values(metric{job,instance}, label)`: the values the chosen jobs report."""
    return prom_var(name, f"label_values({s(metric)}, {label})", title)


DATASOURCE_VAR = ds_var("datasource", "prometheus", "Prometheus", "prometheus")
LOKI_VAR = ds_var("loki_datasource", "loki", "Loki", "loki")
TEMPO_VAR = ds_var("tempo_datasource", "tempo", "Tempo", "tempo")
# "All" is the jobs found, never `.*`: that would take in every job of a shared Prometheus.
JOB_VAR = prom_var("job", f"label_values({{{GATEWAY_SERIES}}}, job)", "Job", all_value=None)
# Already within the chosen jobs, so "All" may be `.*`.
INSTANCE_VAR = prom_var(
    "instance", f'label_values({{{GATEWAY_SERIES},job=~"$job"}}, instance)', "Instance")
SCOPE_VARS = [DATASOURCE_VAR, JOB_VAR, INSTANCE_VAR]
PROVIDER_VAR = label_var("provider", "gatewayz_provider_health_score", "provider", "Provider")
MODEL_VAR = label_var("model", "gatewayz_model_uptime_24h", "model", "Model")
# The client-facing API (chat, completions, embeddings, ...): a fixed set in the code.
API_VAR = label_var("api", "gatewayz_model_inference_requests_total", "api", "API")
# The gateway's Loki stream label `service` and its traces' service.name (both "gatewayz"
# unless [telemetry.loki] labels or [telemetry.otlp] service_name say otherwise).
SERVICE_VAR = {
    "name": "service",
    "label": "Service",
    "type": "textbox",
    "query": "gatewayz",
    "current": {"selected": False, "text": "gatewayz", "value": "gatewayz"},
    "options": [],
    "hide": 0,
}
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
            f"histogram_quantile({p}, sum by ({group}) ({rate(metric + '_bucket', matchers)}))",
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
            {"title": "gatewayz dashboards", "type": "dashboards", "tags": ["gatewayz"], "asDropdown": True,
             "keepTime": True, "includeVars": True}
        ],
        "panels": panels,
    }


def overview():
    panels = [
        panel("Chat completions per second by status",
              [q(f"sum by (status) ({rate('gatewayz_http_requests_total', CHAT)})", "{{status}}")], unit="reqps"),
        panel("Error ratio (5xx) of chat completions",
              [q(f"sum({rate('gatewayz_http_requests_total', CHAT, FIVE_XX)}) / sum({rate('gatewayz_http_requests_total', CHAT)})",
                 "5xx ratio")],
              unit="percentunit"),
        panel("Chat completion latency", quantiles("gatewayz_http_request_duration_seconds", "", CHAT), unit="s"),
        panel("Requests in flight", [q(f"sum({s('gatewayz_http_requests_in_flight')})", "in flight")], w=6),
        panel("Availability (non-5xx) over the range",
              [q(f"1 - (sum({rate('gatewayz_http_requests_total', CHAT, FIVE_XX, fn='increase', window='$__range')}) "
                 f"or vector(0)) / sum({rate('gatewayz_http_requests_total', CHAT, fn='increase', window='$__range')})",
                 "availability")],
              kind="stat", unit="percentunit", w=6),
        panel("Gateway overhead (time not spent waiting on upstreams)",
              quantiles("gatewayz_overhead_seconds", ""), unit="s",
              description="Total request time minus time waiting on upstreams, failovers included."),
        panel("Inference requests per second by API",
              [q(f"sum by (api) ({rate('gatewayz_model_inference_requests_total', API)})", "{{api}}")],
              unit="reqps", description="Client requests that reached the router, by the API they called."),
        panel("Requests per second by route",
              [q(f"sum by (method, route) ({rate('gatewayz_http_requests_total')})", "{{method}} {{route}}")], unit="reqps"),
        panel("Process CPU and memory",
              [q(rate("gatewayz_process_cpu_seconds_total"), "CPU cores", "A"),
               q(f"{s('gatewayz_process_resident_memory_bytes')} / 2^20", "RSS MiB", "B")]),
        panel("Shared limit store up, by replica",
              [q(s("gatewayz_shared_state_up"), "{{instance}}")],
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
              [q(f"sum by (policy) ({rate('gatewayz_shared_state_bypassed_total')})", "{{policy}}")],
              unit="reqps",
              description="Decided while the store was unreachable: fail_open by this replica's own counters, "
                          "fail_closed refused with 503."),
        panel("Shared limit store errors and lost settlements",
              [q(f"sum by (op) ({rate('gatewayz_shared_state_errors_total')})", "{{op}} errors", "A"),
               q(f"sum({rate('gatewayz_shared_state_lost_settlements_total')})", "lost settlements", "B")],
              description="Calls that failed or timed out, by operation; settlements (spend, tokens) that never "
                          "reached the store."),
        panel("Usage ledger records per second by outcome",
              [q(f"sum by (outcome) ({rate('gatewayz_ledger_records_total')})", "{{outcome}}")],
              w=6,
              description="written to the ledger's database; dropped (its queue was full: the database down or "
                          "slow for too long); lost (unwritten at exit). No data without [ledger]."),
        panel("Usage ledger queue depth, by replica",
              [q(s("gatewayz_ledger_queue_depth"), "{{instance}}")],
              w=6,
              description="Records accepted and not written yet; past [ledger] queue_capacity new ones are "
                          "dropped. Grows while the database is down or slow. No data without [ledger]."),
        panel("Usage ledger write errors per second, by replica",
              [q(f"sum by (instance) ({rate('gatewayz_ledger_write_errors_total')})", "{{instance}}")],
              w=6,
              description="Batch writes that failed or timed out (30s); each is retried with backoff until "
                          "the database takes it. No data without [ledger] or without errors."),
        panel("Usage ledger batch write p99",
              [q(f"histogram_quantile(0.99, sum by (le) ({rate('gatewayz_ledger_write_duration_seconds_bucket')}))",
                 "p99")],
              unit="s", w=6,
              description="One batch of records and its hourly rollups in one transaction (successful writes). "
                          "No data without [ledger]."),
    ]
    return dashboard("gatewayz-overview", "gatewayz / Overview",
                     "Traffic, errors, latency percentiles and in-flight requests of the gateway; "
                     "the shared limit store; the usage ledger.",
                     panels, SCOPE_VARS + [API_VAR], ["overview"])


def providers():
    sel = 'provider=~"$provider"'
    breaker = "gatewayz_circuit_breaker_state"
    is_open, half_open = 'state="open"', 'state="half_open"'
    panels = [
        panel("Health score", [q(s("gatewayz_provider_health_score", sel), "{{provider}}")],
              unit="percentunit", description="Success rate, latency against target and breaker state, in [0, 1]."),
        panel("Circuit breaker state (0 closed, 1 half-open, 2 open)",
              [q(f"sum by (provider) ({s(breaker, sel, is_open)}) * 2 + "
                 f"sum by (provider) ({s(breaker, sel, half_open)})", "{{provider}}")],
              kind="state-timeline",
              fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {
                  "0": {"text": "closed", "color": "green"},
                  "1": {"text": "half_open", "color": "yellow"},
                  "2": {"text": "open", "color": "red"}}}]}, "overrides": []}),
        panel("Provider response time", quantiles("gatewayz_provider_response_time_seconds", "provider", sel), unit="s"),
        panel("Provider requests by outcome",
              [q(f"sum by (provider, outcome) ({rate('gatewayz_provider_requests_total', sel)})",
                 "{{provider}} {{outcome}}")],
              unit="reqps"),
        panel("Failovers (from provider)",
              [q(f"sum by (provider) ({rate('gatewayz_provider_failovers_total', sel, fn='increase')})",
                 "{{provider}}")]),
        panel("Detected anomalies by type",
              [q(f"sum by (type) ({rate('gatewayz_detected_anomalies_total', fn='increase')})", "{{type}}")]),
    ]
    return dashboard("gatewayz-providers", "gatewayz / Providers",
                     "Provider health, circuit breakers, response times, failovers and anomalies.",
                     panels, SCOPE_VARS + [PROVIDER_VAR], ["providers"])


def models():
    sel = 'model=~"$model"'
    asel = f'{sel},api=~"$api"'
    panels = [
        panel("Inference requests per second by model and status",
              [q(f"sum by (model, status) ({rate('gatewayz_model_inference_requests_total', asel)})", "{{model}} {{status}}")],
              unit="reqps"),
        panel("Uptime over 24 h", [q(s("gatewayz_model_uptime_24h", sel), "{{model}}")], unit="percentunit"),
        panel("Token efficiency (output / input tokens)", [q(s("gatewayz_token_efficiency", sel), "{{model}}")]),
        panel("Time to first token", quantiles("gatewayz_time_to_first_token_seconds", "model", asel), unit="s"),
        panel("Inference duration", quantiles("gatewayz_model_inference_duration_seconds", "model", asel), unit="s"),
        panel("Tokens per second by model and type",
              [q(f"sum by (model, type) ({rate('gatewayz_tokens_total', asel)})", "{{model}} {{type}}")]),
        panel("Inference requests per second by API and model",
              [q(f"sum by (api, model) ({rate('gatewayz_model_inference_requests_total', asel)})", "{{api}} {{model}}")],
              unit="reqps"),
    ]
    return dashboard("gatewayz-models", "gatewayz / Models",
                     "Requests, 24 h uptime, token efficiency and time to first token per model and API.",
                     panels, SCOPE_VARS + [MODEL_VAR, API_VAR], ["models"])


def business():
    psel, msel = 'provider=~"$provider"', 'model=~"$model"'
    tsel = f'{psel},{msel},api=~"$api"'
    crossings = "gatewayz_soft_budget_crossings_total"
    panels = [
        panel("Spend by provider (USD/hour)",
              [q(f"sum by (provider) ({rate('gatewayz_cost_by_provider_total', psel)}) * 3600", "{{provider}}")],
              unit="currencyUSD"),
        panel("Spend by model (USD/hour)",
              [q(f"sum by (model) ({rate('gatewayz_cost_by_model_total', msel)}) * 3600", "{{model}}")],
              unit="currencyUSD"),
        panel("Spend over the range (USD)",
              [q(f"sum({rate('gatewayz_cost_by_model_total', fn='increase', window='$__range')})", "USD")],
              kind="stat", unit="currencyUSD", w=6),
        panel("Active trials", [q(s("gatewayz_trial_active"), "trials")], kind="stat", w=6),
        panel("Tokens per second (input / output)",
              [q(f"sum by (type) ({rate('gatewayz_tokens_total', tsel)})", "{{type}}")]),
        panel("Tokens per second by API",
              [q(f"sum by (api) ({rate('gatewayz_tokens_total', tsel)})", "{{api}}")]),
        panel("Cost per 1,000 requests by model (USD)",
              [q(f"sum by (model) ({rate('gatewayz_cost_by_model_total', msel)}) / "
                 f"sum by (model) ({rate('gatewayz_model_inference_requests_total', msel)}) * 1000", "{{model}}")],
              unit="currencyUSD"),
        panel("Spend by key and team (USD/hour)",
              [q(f"sum by (key, team) ({rate('gatewayz_cost_by_key_usd_total')}) * 3600", "{{key}} ({{team}})")],
              unit="currencyUSD"),
        panel("Spend by team (USD/hour)",
              [q(f"sum by (team) ({rate('gatewayz_cost_by_key_usd_total')}) * 3600", "{{team}}")],
              unit="currencyUSD", description="Keys without a team show as none."),
        panel("Limit refusals per second by key, team and reason",
              [q(f"sum by (key, team, reason) ({rate('gatewayz_limit_refusals_total')})",
                 "{{key}} ({{team}}) {{reason}}")],
              unit="reqps",
              description="Requests refused by a key's or its team's limits: rpm, tpm, parallel, budget, "
                          "model_not_allowed, store_unavailable (the shared store unreachable under fail_closed)."),
        panel("Budget remaining by scope and name (USD)",
              [q(f"min by (scope, name) ({s('gatewayz_budget_remaining_usd')})", "{{scope}} {{name}}")],
              unit="currencyUSD",
              description="USD left in the current budget period. With a shared store ([state] redis_url) every "
                          "replica reports the same figure; without one each replica counts its own, and the "
                          "lowest is shown. Never summed."),
        panel("Soft budgets crossed",
              [q(f"(sum by (scope, name) ({rate(crossings, fn='increase')}) > 0) "
                 f"or count by (scope, name) (({s(crossings)} > 0) unless {s(crossings)} offset {RI})",
                 "{{scope}} {{name}}")],
              w=24,
              description="Once per budget period per key or team whose spend crossed its soft budget (nothing is "
                          "refused). The counter appears at 1 on a replica's first crossing, so a series above 0 that "
                          "was not there one interval before counts as a crossing too."),
    ]
    return dashboard("gatewayz-business", "gatewayz / Business",
                     "Cost by provider, model, client key and team; budgets, limit refusals, tokens and active trials.",
                     panels, SCOPE_VARS + [PROVIDER_VAR, MODEL_VAR, API_VAR], ["business"])


def logs_traces():
    def lq(expr, ref="A", kind="range"):
        return {"refId": ref, "datasource": LOKI, "expr": expr, "queryType": kind}

    def tq(query):
        return {"refId": "A", "datasource": TEMPO, "queryType": "traceql", "limit": 20, "tableType": "traces",
                "query": query}

    # Loki streams carry no job or instance label: the service label selects the gateway's.
    service = 'service="$service"'
    stream = f'{{{service}, level=~"$level"}}'
    panels = [
        panel("Log lines per level",
              [lq(f'sum by (level) (count_over_time({stream} [$__auto]))')], kind="timeseries"),
        panel("Warnings and errors by provider",
              [lq(f'sum by (provider) (count_over_time({{{service}, level=~"warn|error"}} | json '
                  f'| provider=~"$provider" [$__auto]))')],
              kind="timeseries"),
        panel("Gateway logs", [lq(f'{stream} | json | provider=~"$provider" or provider=""')],
              kind="logs", w=24, h=10,
              options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True}),
        panel("Failed provider attempts", [lq(f'{{{service}}} |= "provider attempt failed" | json')],
              kind="logs", w=12, h=10, options={"showTime": True, "enableLogDetails": True}),
        panel("Recent traces", [tq('{ resource.service.name = "$service" }')], kind="table", w=12, h=10),
        panel("Slow or failed chat spans",
              [tq('{ resource.service.name = "$service" && span.gen_ai.operation.name = "chat" '
                  '&& (duration > 2s || status = error) }')],
              kind="table", w=24, h=10),
    ]
    return dashboard("gatewayz-logs-traces", "gatewayz / Logs & traces",
                     "Loki log volume and lines by level and provider, and Tempo trace search; "
                     "log lines link to their trace by trace_id.",
                     panels, [DATASOURCE_VAR, LOKI_VAR, TEMPO_VAR, JOB_VAR, INSTANCE_VAR, SERVICE_VAR, LEVEL_VAR,
                             PROVIDER_VAR],
                     ["logs", "traces"])


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
