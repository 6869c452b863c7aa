#!/usr/bin/env bash
# Where the proxy's CPU goes, thread by thread: nginx and gatewayz at one open-loop rate (or
# closed loop), each thread's CPU time per request (from /proc/PID/task/TID/schedstat, in
# nanoseconds, not clock ticks) and its voluntary and involuntary context switches per request.
# The counts callgrind cannot give: kernel time, wake-ups, the export threads' share.
#
#   ./loadtest/threads.sh                       # 1,000 rps JSON, all telemetry on, 10 s
#   BENCH_RATE=max ./loadtest/threads.sh        # closed loop (saturation)
#   BENCH_EXPORT="" ./loadtest/threads.sh       # meters alone (or "loki", "otlp")
#   BENCH_BIN=/tmp/gatewayz-old ./loadtest/threads.sh  # another build
#   BENCH_ROUNDS=3 ./loadtest/threads.sh        # nginx and gatewayz alternately, 3 times each
#   BENCH_ACCESS_LOG=0 ./loadtest/threads.sh    # without the per-request access line
#
# Same pinning as load.sh: oha, the mock upstream and the telemetry receiver on core 0, the
# proxy under test alone on core 1. Every process it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RATE=${BENCH_RATE:-1000}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-1}
CONNS=${BENCH_CONNECTIONS:-32}
EXPORTS=${BENCH_EXPORT-loki otlp}
ACCESS_LOG=${BENCH_ACCESS_LOG:-1}
LOAD_CORE=${BENCH_LOAD_CORE:-0}
PROXY_CORE=${BENCH_PROXY_CORE:-1}

OUT=$ROOT/loadtest-out/threads-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/nginx"
NAME=threads
# shellcheck source=loadtest/lib.sh
. "$ROOT/loadtest/lib.sh"

need_nginx
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
[ -x "$OHA" ] || die "oha not found: ./loadtest/load.sh installs it (cargo install --locked oha)"
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --profile profiling --bin gatewayz >&2
  BIN=$ROOT/target/profiling/gatewayz
fi

P_UP=$(free_port); P_SINK=$(free_port); P_NGX=$(free_port); P_GW=$(free_port)
start "$OUT/mock.log" taskset -c "$LOAD_CORE" "$BIN" mock-upstream --listen "127.0.0.1:$P_UP" \
  --latency 0ms --chunks 8 --chunk-delay 0ms
MOCK_PID=$LAST_PID
start_sink "$P_SINK" taskset -c "$LOAD_CORE"
start_proxy "$P_NGX" "$P_UP" taskset -c "$PROXY_CORE"

cat >"$OUT/gatewayz.toml" <<TOML
[server]
listen = "127.0.0.1:$P_GW"
workers = 1

[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:$P_UP/v1"

[models.bench]
providers = ["up"]

[telemetry]
log_level = "info"
$([ "$ACCESS_LOG" = 1 ] || echo 'access_log = false')
TOML
for section in $EXPORTS; do
  case $section in
    loki) printf '\n[telemetry.loki]\nurl = "http://127.0.0.1:%s"\n' "$P_SINK" ;;
    otlp) printf '\n[telemetry.otlp]\nendpoint = "http://127.0.0.1:%s/v1/traces"\nprotocol = "http/protobuf"\n' "$P_SINK" ;;
    *) die "BENCH_EXPORT: $section is neither loki nor otlp" ;;
  esac >>"$OUT/gatewayz.toml"
done
start "$OUT/gatewayz.log" taskset -c "$PROXY_CORE" "$BIN" serve --config "$OUT/gatewayz.toml"
GW_PID=$LAST_PID

wait_http "http://127.0.0.1:$P_UP/health" "$MOCK_PID"
wait_http "http://127.0.0.1:$P_SINK/" "$SINK_PID"
wait_http "http://127.0.0.1:$P_NGX/health" "$NGX_PID"
wait_http "http://127.0.0.1:$P_GW/health" "$GW_PID"
echo "$JSON_REQUEST" >"$OUT/json.body"

# One line per thread: tid, name, CPU ns, voluntary and involuntary switches.
snapshot() {
  local pid task
  for pid in "$@"; do
    for task in /proc/"$pid"/task/*; do
      printf '%s %s %s %s %s\n' "${task##*/}" "$(tr ' ' _ <"$task/comm")" \
        "$(cut -d' ' -f1 "$task/schedstat")" \
        "$(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status")" \
        "$(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$task/status")"
    done
  done
}

measure() { # label port pids...
  local label=$1 port=$2 n; shift 2
  local args=(-c "$CONNS" -w --no-tui --output-format json -t 30s -m POST
    -H 'content-type: application/json' -D "$OUT/json.body")
  [ "$RATE" = max ] || args+=(-q "$RATE" --latency-correction)
  local url=http://127.0.0.1:$port/v1/chat/completions
  taskset -c "$LOAD_CORE" "$OHA" -z "${WARMUP}s" "${args[@]}" "$url" >/dev/null
  snapshot "$@" | sort >"$OUT/before"
  taskset -c "$LOAD_CORE" "$OHA" -z "${DURATION}s" "${args[@]}" "$url" >"$OUT/$label.json"
  snapshot "$@" | sort >"$OUT/after"
  n=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["statusCodeDistribution"].get("200", 0))' "$OUT/$label.json")
  [ "$n" -gt 0 ] || die "$label answered no request with 200; see $OUT"
  printf '\n%s, %s requests at %s (%s s):\n' "$label" "$n" "$RATE" "$DURATION"
  printf '| thread | CPU µs/req | voluntary switches/req | involuntary/req |\n| --- | ---: | ---: | ---: |\n'
  join "$OUT/before" "$OUT/after" | awk -v n="$n" '
    { cpu = $7 - $3; vol = $8 - $4; inv = $9 - $5; total += cpu
      name = $2; gsub(/\|/, "\\|", name) # actix-rt|system
      if (cpu > 0 || vol > 0) printf "| %s | %.2f | %.3f | %.3f |\n", name, cpu / 1000 / n, vol / n, inv / n }
    END { printf "| all | %.2f | | |\n", total / 1000 / n }'
}

{
  echo "gatewayz: $BIN; telemetry: meters${EXPORTS:+, ${EXPORTS// /, }}; access line: $([ "$ACCESS_LOG" = 1 ] && echo on || echo off); oha $CONNS connections"
  for round in $(seq "$ROUNDS"); do
    [ "$ROUNDS" = 1 ] || printf '\n### round %s\n' "$round"
    measure nginx "$P_NGX" $(pgrep -P "$NGX_PID")
    measure gatewayz "$P_GW" "$GW_PID"
  done
} | tee "$OUT/report.md"
echo "threads: report in ${OUT#"$ROOT"/}/report.md" >&2
