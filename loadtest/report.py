#!/usr/bin/env python3
"""Turns one loadtest/load.sh run (loadtest-out/STAMP/) into the Markdown report.

  report.py RUN_DIR              the whole report on stdout
  report.py --one FILE LABEL     one line about one oha result (progress while it runs)

Standard library only. oha's JSON gives seconds; everything here is printed in ms.
"""
import json
import os
import statistics
import sys

PATHS = ["direct", "nginx", "gatewayz"]
# The admission-cost points (one client key), and what each checks.
ADMISSION = {
    "key-free": "authentication only (a key without limits)",
    "key-local": "every limit and a team, counted in process",
    "key-redis": "the same limits in a local Redis (one round trip to admit, one to settle)",
    "key-ledger": "a key without limits, every request recorded in the usage ledger (SQLite)",
}
# The Anthropic-translated stream points, and what each translates.
TRANSLATED = {
    "chat-to-anthropic": "chat request → Messages; Anthropic events → chunks",
    "messages-to-openai": "Messages request → chat; chunks → Anthropic events",
    "messages-to-anthropic": "nothing (passthrough, Anthropic dialect scanned)",
}


def load(path):
    with open(path) as f:
        return json.load(f)


def counts(o):
    ok = sum(n for code, n in o.get("statusCodeDistribution", {}).items() if code == "200")
    bad = sum(n for code, n in o.get("statusCodeDistribution", {}).items() if code != "200")
    errors = sum(o.get("errorDistribution", {}).values())
    return ok, bad + errors


def ms(x):
    return "–" if x is None else f"{x * 1000:.2f}"


def one(path, label):
    o = load(path)
    p = o["latencyPercentiles"]
    ok, failed = counts(o)
    print(f"    {label:<28} {o['summary']['requestsPerSec']:>9.0f} rps  p50 {ms(p['p50'])}  "
          f"p99 {ms(p['p99'])}  max {ms(o['summary']['slowest'])} ms  ok {ok}  failed {failed}")


def telemetry_pairs(points):
    """Each back-to-back pair's telemetry share, in %: of the throughput (1 - rps with export /
    rps without), and of the proxy's CPU per request (1 - CPU without / CPU with; what export
    takes of a saturated core, whether or not the load generator capped the throughput)."""
    shares, cpu_shares = [], []
    i = 1
    while ("json", "max", f"pair-{i}-on") in points and ("json", "max", f"pair-{i}-off") in points:
        on, off = points[("json", "max", f"pair-{i}-on")], points[("json", "max", f"pair-{i}-off")]
        shares.append(100 * (1 - on["rps"] / off["rps"]))
        if on["cpu_ms"] and off["cpu_ms"]:
            cpu_shares.append(100 * (1 - off["cpu_ms"] / on["cpu_ms"]))
        i += 1
    return shares, cpu_shares


def pct(values, q):
    values = sorted(values)
    if not values:
        return None
    i = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))
    return values[i]


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "–"
    return f"{a / b:.1f}×"


def main(run):
    meta = load(os.path.join(run, "run.json"))
    tick_ms = 1000 / meta["clk_tck"]
    with open(os.path.join(run, "machine.txt")) as f:
        machine = f.read().strip().splitlines()
    points = {}
    ttfb = {}
    with open(os.path.join(run, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "ttfb":
                ttfb[r["path"]] = r["file"]
                continue
            o = load(r["file"])
            ok, failed = counts(o)
            r.update(
                p50=o["latencyPercentiles"]["p50"], p90=o["latencyPercentiles"]["p90"],
                p99=o["latencyPercentiles"]["p99"], max=o["summary"]["slowest"],
                rps=o["summary"]["requestsPerSec"], ok=ok, failed=failed,
                cpu_ms=(r["cpu_ticks"] * tick_ms / ok if ok else None),
                store_cpu_ms=(r.get("store_cpu_ticks", 0) * tick_ms / ok if ok else None),
            )
            points[(r["kind"], r["rate"], r["path"])] = r

    out = []
    w = out.append
    w(f"# gatewayz load benchmark — {os.path.basename(run.rstrip('/'))}")
    w("")
    for line in machine:
        w(f"- {line}")
    w(f"- load average after: {meta['load_after']}; busiest processes (lifetime %CPU): {meta['busy']}")
    w(f"- pinning: oha + mock-upstream + telemetry receiver on core {meta['load_core']}; "
      f"the proxy under test (nginx, 1 worker / gatewayz, 1 worker) alone on core {meta['proxy_core']}")
    w(f"- each point: {meta['warmup']} s warm-up, then {meta['duration']} s measured; oha open loop "
      f"(`-q RATE --latency-correction`), {meta['connections']} connections; `max` = closed loop, "
      f"same connections")
    w(f"- gatewayz telemetry on: {meta['telemetry']} (/metrics {meta['metrics']}); "
      "Loki / OTLP, when on, push to a local nginx answering 204 / an empty 200")
    w("- upstream: `gatewayz mock-upstream --latency 0ms` (JSON ~0.5 KB; stream: 8 content chunks, "
      "no delay); direct = oha straight to it")
    w("- latency in ms; added = path − direct at the same percentile; × nginx = gatewayz added ÷ "
      "nginx added; CPU = the proxy's (direct: the upstream's) utime+stime per request")
    w("")
    for kind, title in (("json", "JSON completions"), ("stream", "Streamed completions (whole stream)")):
        w(f"## {title}")
        w("")
        w("| load | path | rps | p50 | p90 | p99 | max | added p50 | added p99 | added p99 × nginx | CPU ms/req | failed |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        rates = []
        for (k, rate, _p) in points:
            if k == kind and rate not in rates:
                rates.append(rate)
        for rate in rates:
            d = points.get((kind, rate, "direct"))
            n = points.get((kind, rate, "nginx"))
            paths = PATHS + (["gatewayz-no-export"] if (kind, rate, "gatewayz-no-export") in points else [])
            for path in paths:
                r = points.get((kind, rate, path))
                if r is None:
                    continue
                a50 = r["p50"] - d["p50"] if d and path != "direct" else None
                a99 = r["p99"] - d["p99"] if d and path != "direct" else None
                vs = "–"
                if path.startswith("gatewayz") and n and d:
                    vs = ratio(a99, n["p99"] - d["p99"])
                load_label = f"{rate} rps" if rate != "max" else "max"
                cpu = "–" if r["cpu_ms"] is None else f"{r['cpu_ms']:.3f}"
                w(f"| {load_label} | {path} | {r['rps']:.0f} | {ms(r['p50'])} | {ms(r['p90'])} | "
                  f"{ms(r['p99'])} | {ms(r['max'])} | {ms(a50)} | {ms(a99)} | {vs} | {cpu} | {r['failed']} |")
        w("")

    translated = [(p, r) for (k, rate, p), r in points.items() if p in TRANSLATED]
    if translated:
        w("## Anthropic-translated streams (through gatewayz, same rate as a plain stream point)")
        w("")
        w("The translation's CPU is the path's CPU per request less the plain OpenAI stream's at the "
          "same rate (same mock, same words; Anthropic's stream has more events per answer).")
        w("")
        w("| load | path | what is translated | rps | p50 | p99 | CPU ms/req | CPU over the plain stream | failed |")
        w("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for path, r in translated:
            plain = points.get(("stream", r["rate"], "gatewayz"))
            over = "–"
            if plain and plain["cpu_ms"] is not None and r["cpu_ms"] is not None:
                over = f"{r['cpu_ms'] - plain['cpu_ms']:+.3f} ms ({100 * (r['cpu_ms'] / plain['cpu_ms'] - 1):+.0f} %)"
            cpu = "–" if r["cpu_ms"] is None else f"{r['cpu_ms']:.3f}"
            w(f"| {r['rate']} rps | {path} | {TRANSLATED[path]} | {r['rps']:.0f} | {ms(r['p50'])} | "
              f"{ms(r['p99'])} | {cpu} | {over} | {r['failed']} |")
        w("")

    admission = [(p, r) for (k, rate, p), r in points.items() if p in ADMISSION]
    if admission:
        w("## Admission cost (JSON, one client key, through gatewayz)")
        w("")
        w("Added = the point less the direct path at the same rate. Store CPU: for key-redis, "
          "redis-server's own utime+stime per request (on the load core), not counted in the gateway's; "
          "for key-ledger, the ledger writer's and SQLite driver's threads' (counted in the gateway's too: the request path's "
          "share is the difference).")
        w("")
        w("| load | path | what is checked | rps | p50 | p99 | added p50 | added p99 | CPU ms/req | CPU over key-free | store CPU ms/req | failed |")
        w("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for path, r in admission:
            d = points.get(("json", r["rate"], "direct"))
            free = points.get(("json", r["rate"], "key-free"))
            a50 = r["p50"] - d["p50"] if d else None
            a99 = r["p99"] - d["p99"] if d else None
            over = "–"
            if free and path != "key-free" and free["cpu_ms"] is not None and r["cpu_ms"] is not None:
                over = f"{r['cpu_ms'] - free['cpu_ms']:+.3f} ms"
            cpu = "–" if r["cpu_ms"] is None else f"{r['cpu_ms']:.3f}"
            store = f"{r['store_cpu_ms']:.3f}" if path in ("key-redis", "key-ledger") and r["store_cpu_ms"] is not None else "–"
            w(f"| {r['rate']} rps | {path} | {ADMISSION[path]} | {r['rps']:.0f} | {ms(r['p50'])} | "
              f"{ms(r['p99'])} | {ms(a50)} | {ms(a99)} | {cpu} | {over} | {store} | {r['failed']} |")
        w("")

    w("## Maximum throughput (closed loop)")
    w("")
    if meta["telemetry"] == "meters":
        w("This build has no Loki / OTLP export, so the telemetry-off point was skipped.")
        w("")
    w("| kind | direct | nginx | gatewayz | gatewayz ÷ nginx | gatewayz, no Loki/OTLP export |")
    w("| --- | ---: | ---: | ---: | ---: | ---: |")
    for kind in ("json", "stream"):
        g = {p: points.get((kind, "max", p)) for p in PATHS + ["gatewayz-no-export"]}
        if not all(g[p] for p in PATHS):
            continue
        off = g["gatewayz-no-export"]
        off_txt = "–"
        if off:
            off_txt = f"{off['rps']:.0f} (all telemetry costs {100 * (1 - g['gatewayz']['rps'] / off['rps']):.0f} %)"
        w(f"| {kind} | {g['direct']['rps']:.0f} | {g['nginx']['rps']:.0f} | {g['gatewayz']['rps']:.0f} | "
          f"{100 * g['gatewayz']['rps'] / g['nginx']['rps']:.0f} % | {off_txt} |")
    w("")
    shares, cpu_shares = telemetry_pairs(points)
    if shares:
        w(f"Telemetry's share in back-to-back pairs (JSON at max with export, then without, "
          f"{len(shares)} times): " + ", ".join(f"{round(s)} %" for s in shares)
          + f"; median {statistics.median(shares):.0f} %.")
        if cpu_shares:
            w("Of the gateway's CPU per request in the same pairs: "
              + ", ".join(f"{round(s)} %" for s in cpu_shares)
              + f"; median {statistics.median(cpu_shares):.0f} %.")
        w("")

    if ttfb:
        w(f"## Streaming time to first byte ({meta['ttfb_samples']} sequential requests per path, one keep-alive connection, curl)")
        w("")
        w("| path | p50 | p90 | p99 | max | added p50 | added p99 | gatewayz's own header p50 / p99 |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        stats = {}
        for path in PATHS:
            if path not in ttfb:
                continue
            times, headers, bad = [], [], 0
            with open(ttfb[path]) as f:
                for line in f:
                    parts = line.split()
                    if not parts or parts[0] != "200":
                        bad += 1
                        continue
                    times.append(float(parts[1]))
                    if len(parts) > 2:
                        headers.append(float(parts[2]) / 1000)
            stats[path] = (times, headers, bad)
        base = stats.get("direct", ([], [], 0))[0]
        for path, (times, headers, bad) in stats.items():
            added50 = pct(times, 50) - pct(base, 50) if path != "direct" and base else None
            added99 = pct(times, 99) - pct(base, 99) if path != "direct" and base else None
            own = f"{ms(pct(headers, 50))} / {ms(pct(headers, 99))}" if headers else "–"
            w(f"| {path}{f' ({bad} failed)' if bad else ''} | {ms(pct(times, 50))} | {ms(pct(times, 90))} | "
              f"{ms(pct(times, 99))} | {ms(max(times) if times else None)} | {ms(added50)} | {ms(added99)} | {own} |")
        w("")

    if not meta["gw_open_kib"]:
        # BENCH_SECTIONS=admission: no open-streams point.
        print("\n".join(out))
        return
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    w("## Memory (gatewayz RSS)")
    w("")
    w("| idle | peak during the load points (VmHWM) | with open streams | peak with them (VmHWM) | after they closed | nginx idle (master + worker) |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: |")
    w(f"| {mib(meta['gw_idle_kib'])} | {mib(meta['gw_peak_kib'])} | {mib(meta['gw_open_kib'])} "
      f"({meta['open_client_conns']} client / {meta['open_upstream_conns']} upstream connections open) | "
      f"{mib(meta['gw_peak_all_kib'])} | {mib(meta['gw_after_kib'])} | {mib(meta['nginx_idle_kib'])} |")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        one(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
