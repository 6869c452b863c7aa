#!/usr/bin/env bash
# Instruction profile of the gateway's hot path: N JSON chat completions through
# `gatewayz serve` (one worker, meters on) to a local mock-upstream, under valgrind's
# callgrind. Counts instructions, so the figures are reproducible on a busy machine where
# wall-clock timings are not. Prints instructions per request and the top functions
# (inclusive and self); the raw profile stays in loadtest-out/ for callgrind_annotate / kcachegrind.
#
#   ./loadtest/profile.sh            # 2,000 requests after a 200-request warm-up
#   BENCH_PROFILE_REQUESTS=5000 ./loadtest/profile.sh
#   BENCH_PROFILE_STREAM=1 ./loadtest/profile.sh   # streamed completions instead of JSON
#   BENCH_PROFILE_EXPORT=1 ./loadtest/profile.sh   # Loki + OTLP export on, to a local nginx sink
#                                                   # (=loki or =otlp: one of the two alone)
#   BENCH_PROFILE_ANTHROPIC=1 ./loadtest/profile.sh  # a kind = "anthropic" provider: the
#                                                     # translation's cost (mock speaks Messages)
#   BENCH_PROFILE_MESSAGES=1 ./loadtest/profile.sh   # clients call /v1/messages (Anthropic's API):
#                                                     # translated to an OpenAI provider, or passed
#                                                     # through with BENCH_PROFILE_ANTHROPIC=1
#                                                  # (the export threads are counted too)
#   BENCH_BIN=/tmp/gatewayz-old ./loadtest/profile.sh  # another build, same method
#   BENCH_PROFILE_LEDGER=1 ./loadtest/profile.sh   # the usage ledger on (SQLite; its writer thread counted)
#   BENCH_PROFILE_ACCESS_LOG=0 ./loadtest/profile.sh  # without the per-request access line
#   BENCH_PROFILE_CONSOLE=1 ./loadtest/profile.sh  # an admin token set: the console on (its
#                                                     # Logs ring fed, its sampler running)
#   BENCH_PROFILE_LIMITS=key|local|redis ./loadtest/profile.sh  # a client key: without limits,
#                                                     # with every limit and a team in process, or
#                                                     # in a local redis-server (its state thread counted)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${BENCH_PROFILE_REQUESTS:-2000}
WARM=${BENCH_PROFILE_WARMUP:-200}
STREAM=${BENCH_PROFILE_STREAM:-0}
EXPORT=${BENCH_PROFILE_EXPORT:-0}
ANTHROPIC=${BENCH_PROFILE_ANTHROPIC:-0}
MESSAGES=${BENCH_PROFILE_MESSAGES:-0}
LIMITS=${BENCH_PROFILE_LIMITS:-}
LEDGER=${BENCH_PROFILE_LEDGER:-0}
ACCESS_LOG=${BENCH_PROFILE_ACCESS_LOG:-1}
CONSOLE=${BENCH_PROFILE_CONSOLE:-0}
OUT=$ROOT/loadtest-out/profile-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

NAME=profile
# shellcheck source=loadtest/lib.sh
. "$ROOT/loadtest/lib.sh"

if ! command -v valgrind >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
# BENCH_BIN: profile another build (an earlier commit's release binary) with this script.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --profile profiling --bin gatewayz >&2
  BIN=$ROOT/target/profiling/gatewayz
fi

P_UP=$(free_port); P_GW=$(free_port); P_SINK=$(free_port)
EXPORT_TOML=
case $EXPORT in
  0 | 1 | loki | otlp) ;;
  *) die "BENCH_PROFILE_EXPORT: $EXPORT is none of 0, 1, loki, otlp" ;;
esac
if [ "$EXPORT" != 0 ]; then
  need_nginx
  mkdir -p "$OUT/nginx"
  start_sink "$P_SINK"
  wait_http "http://127.0.0.1:$P_SINK/" "$SINK_PID"
fi
if [ "$EXPORT" = 1 ] || [ "$EXPORT" = loki ]; then
  EXPORT_TOML="$EXPORT_TOML
[telemetry.loki]
url = \"http://127.0.0.1:$P_SINK\"
"
fi
if [ "$EXPORT" = 1 ] || [ "$EXPORT" = otlp ]; then
  EXPORT_TOML="$EXPORT_TOML
[telemetry.otlp]
endpoint = \"http://127.0.0.1:$P_SINK/v1/traces\"
protocol = \"http/protobuf\""
fi
KEY_TOML=
if [ -n "$LIMITS" ]; then
  KEY_TOML='
[[keys]]
name = "bench"
key = "bench-client-key"'
  if [ "$LIMITS" != key ]; then
    KEY_TOML="$KEY_TOML
team = \"bench\"
rate_limit_rpm = 1000000
rate_limit_tpm = 1000000000
max_parallel = 100000
budget_usd = 1000000000.0

[teams.bench]
rate_limit_rpm = 1000000
max_parallel = 100000"
  fi
  if [ "$LIMITS" = redis ]; then
    P_REDIS=$(free_port)
    start "$OUT/redis.log" /usr/bin/redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no --dir "$OUT"
    KEY_TOML="$KEY_TOML

[state]
redis_url = \"redis://127.0.0.1:$P_REDIS/0\"
timeout = \"2s\""
  fi
fi
[ "$LEDGER" != 1 ] || KEY_TOML="$KEY_TOML

[ledger]
url = \"sqlite://$OUT/ledger.db\""
[ "$ACCESS_LOG" = 1 ] || KEY_TOML="$KEY_TOML

[telemetry]
access_log = false"
[ "$CONSOLE" != 1 ] || KEY_TOML="$KEY_TOML

[admin]
token = \"profile-admin-token\""
start "$OUT/mock.log" "$BIN" mock-upstream --listen "127.0.0.1:$P_UP" --latency 0ms
MOCK_PID=$LAST_PID
cat >"$OUT/gatewayz.toml" <<TOML
[server]
listen = "127.0.0.1:$P_GW"
workers = 1

[providers.up]
$(if [ "$ANTHROPIC" = 1 ]; then
  printf 'kind = "anthropic"\nbase_url = "http://127.0.0.1:%s"' "$P_UP"
else
  printf 'kind = "openai"\nbase_url = "http://127.0.0.1:%s/v1"' "$P_UP"
fi)

[models.bench]
providers = ["up"]
$KEY_TOML
$EXPORT_TOML
TOML
start "$OUT/gatewayz.log" valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$OUT/callgrind.out" \
  "$BIN" serve --config "$OUT/gatewayz.toml"
GW_PID=$LAST_PID
wait_http "http://127.0.0.1:$P_UP/health" "$MOCK_PID"
wait_http "http://127.0.0.1:$P_GW/health" "$GW_PID"
STREAM_FIELD=; [ "$STREAM" = 1 ] && STREAM_FIELD=',"stream":true'
BODY='{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"temperature":0.2'"$STREAM_FIELD"'}'
PATH_CALLED=/v1/chat/completions
if [ "$MESSAGES" = 1 ]; then
  BODY='{"model":"bench","max_tokens":256,"system":"You are terse.","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"temperature":0.2'"$STREAM_FIELD"'}'
  PATH_CALLED=/v1/messages
fi
AUTH=(); [ -z "$LIMITS" ] || AUTH=(-H 'authorization: Bearer bench-client-key')
drive() { # count label: sequential requests on one keep-alive connection
  local args=() bad
  for _ in $(seq "$1"); do args+=(-o /dev/null "http://127.0.0.1:$P_GW$PATH_CALLED"); done
  curl -s -H 'content-type: application/json' "${AUTH[@]}" -d "$BODY" -w '%{http_code}\n' "${args[@]}" >"$OUT/codes-$2.txt"
  bad=$(grep -cv '^200$' "$OUT/codes-$2.txt" || true)
  [ "$bad" = 0 ] || die "$bad non-200 answers in $2"
}
drive "$WARM" warmup
callgrind_control -z "$GW_PID" >/dev/null
drive "$N" measured
callgrind_control -d "$GW_PID" >/dev/null
DUMP=$(ls -t "$OUT"/callgrind.out.* 2>/dev/null | head -1)
[ -n "$DUMP" ] || die "no callgrind dump"
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
{
  echo "requests: $N (after $WARM warm-up), stream=$STREAM export=$EXPORT anthropic=$ANTHROPIC messages=$MESSAGES limits=${LIMITS:-none} ledger=$LEDGER console=$CONSOLE, gatewayz $(if [ -n "${BENCH_BIN:-}" ]; then echo "binary $BENCH_BIN"; else echo "$(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"; fi)"
  echo "instructions per request: $((TOTAL / N))"
  echo
  echo "## top inclusive"
  callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | sed -n '/^Ir/,$p' | head -60 || true
  echo
  # callgrind_annotate folds a dump taken after `-z` into its thread's entry function when
  # asked for self cost; callgrind_top.py reads the file format directly.
  echo "## top self"
  python3 "$ROOT/loadtest/callgrind_top.py" "$DUMP" 40 "$N" || true
} | tee "$OUT/summary.txt"
echo "profile: raw in ${DUMP#"$ROOT"/}" >&2
