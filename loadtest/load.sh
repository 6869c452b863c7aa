#!/usr/bin/env bash
# Load benchmark: the gateway's overhead against the direct path and a plain nginx reverse
# proxy, side by side, in one run, on loopback. Issue 8; method in docs/PERFORMANCE.md.
#
#   ./loadtest/load.sh                 # the whole run, a few minutes; table on stdout and in loadtest-out/
#   BENCH_DURATION=15 ./loadtest/load.sh   # longer points (seconds)
#   BENCH_BIN=/tmp/gatewayz-old ./loadtest/load.sh  # another build, same method
#   BENCH_TELEMETRY_NICE=10 ./loadtest/load.sh   # the export threads reniced (their cost to the tails)
#   BENCH_EXPORT="loki" ./loadtest/load.sh       # export only to Loki (or "otlp", or "" for
#                                                 # meters alone); default "loki otlp"
#   BENCH_TELEMETRY_PAIRS=5 ./loadtest/load.sh   # telemetry's share from 5 back-to-back pairs
#                                                 # of max points with and without export (3)
#   BENCH_SECTIONS=admission ./loadtest/load.sh   # only the admission-cost points (a client key
#                                                 # without limits, limits in process, in Redis,
#                                                 # the usage ledger on)
#
# It installs what it needs (Debian nginx, `cargo install --locked oha`), builds the release
# binary, starts every process itself, pins them (load generator + upstream on core 0, the
# proxy under test alone on core 1), and stops them all when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}        # seconds per measured point
WARMUP=${BENCH_WARMUP:-2}             # seconds of warm-up before each point (not measured)
RATES=${BENCH_RATES:-"200 1000 3000"} # open-loop rates; "max" is always added
TRANSLATED_RATE=${BENCH_TRANSLATED_RATE:-1000} # the Anthropic-translated stream points' rate
CONNS=${BENCH_CONNECTIONS:-32}        # load-generator connections
TTFB_SAMPLES=${BENCH_TTFB_SAMPLES:-300}
OPEN_STREAMS=${BENCH_OPEN_STREAMS:-1000}
ADMISSION_RATE=${BENCH_ADMISSION_RATE:-1000} # the admission-cost points' rate
SECTIONS=${BENCH_SECTIONS:-all}       # all, or admission
EXPORTS=${BENCH_EXPORT-loki otlp}     # the export sections the measured gateway gets
TELEMETRY_PAIRS=${BENCH_TELEMETRY_PAIRS:-3} # back-to-back max points with and without export
LOAD_CORE=${BENCH_LOAD_CORE:-0}
PROXY_CORE=${BENCH_PROXY_CORE:-1}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/loadtest-out/$STAMP
mkdir -p "$OUT/raw" "$OUT/nginx"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

step() { printf '\n==> %s\n' "$*" >&2; }

NAME=loadtest
# shellcheck source=loadtest/lib.sh
. "$ROOT/loadtest/lib.sh"

# utime+stime (clock ticks) of a process and its children's live threads: /proc/PID/stat.
cpu_ticks() {
  local total=0 pid f
  for pid in "$@"; do
    f=$(cut -d')' -f2 "/proc/$pid/stat") || die "no process $pid"
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- tools
step "tools"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((OPEN_STREAMS * 3 + 100)) ] || die "ulimit -n too low for $OPEN_STREAMS streams"
need_nginx
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
if [ ! -x "$OHA" ]; then
  step "installing oha (cargo install --locked oha; a few minutes, once)"
  cargo install --locked oha >&2
fi
"$OHA" --version >/dev/null || die "oha is not usable"
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
if [ ! -x /usr/bin/redis-server ]; then
  step "installing Debian's redis-server (the admission points' shared store)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (generator + upstream on one, the proxy on the other)"

# BENCH_BIN: measure another build (an earlier commit's binary) with this script.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  step "cargo build --profile profiling (release code with symbols)"
  cargo build --profile profiling --bin gatewayz >&2
  BIN=$ROOT/target/profiling/gatewayz
fi

# ---------------------------------------------------------------- machine load, before
{
  echo "started: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "${BENCH_BIN:-}" ]; then
    echo "gatewayz: $BENCH_BIN (BENCH_BIN; the checkout is $(git rev-parse --short HEAD))"
  else
    echo "gatewayz: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  fi
  echo "oha: $("$OHA" --version | head -1); nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')"
} >"$OUT/machine.txt"

# ---------------------------------------------------------------- upstreams and sinks
P_UP=$(free_port); P_SLOW=$(free_port); P_SINK=$(free_port); P_NGX=$(free_port)
P_GW=$(free_port); P_GW0=$(free_port)

step "mock upstreams on core $LOAD_CORE"
# 0 ms latency: the closest match to the issue's static upstream. A 1 ms sleep would add the
# timer's jitter (up to ~1 ms) to every path, larger than the overhead being measured.
start "$OUT/mock.log" taskset -c "$LOAD_CORE" "$BIN" mock-upstream --listen "127.0.0.1:$P_UP" \
  --latency 0ms --chunks 8 --chunk-delay 0ms
MOCK_PID=$LAST_PID
# Slow streams for the open-streams memory point: 20 chunks, 500 ms apart (~10 s each).
start "$OUT/mock-slow.log" taskset -c "$LOAD_CORE" "$BIN" mock-upstream --listen "127.0.0.1:$P_SLOW" \
  --latency 0ms --chunks 20 --chunk-delay 500ms
SLOW_PID=$LAST_PID

step "telemetry receiver (nginx) on core $LOAD_CORE"
start_sink "$P_SINK" taskset -c "$LOAD_CORE"

step "nginx reverse proxy on core $PROXY_CORE"
start_proxy "$P_NGX" "$P_UP" taskset -c "$PROXY_CORE"

wait_http "http://127.0.0.1:$P_UP/health" "$MOCK_PID"
wait_http "http://127.0.0.1:$P_SLOW/health" "$SLOW_PID"
wait_http "http://127.0.0.1:$P_SINK/" "$SINK_PID"
wait_http "http://127.0.0.1:$P_NGX/health" "$NGX_PID"
ngx_pids() { echo "$NGX_PID" $(pgrep -P "$NGX_PID" || true); }

# ---------------------------------------------------------------- the gateway
base_config() { # listen port
  cat <<TOML
[server]
listen = "127.0.0.1:$1"
workers = 1                       # one core, like nginx's one worker

[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:$P_UP/v1"

[providers.slow]
kind = "openai"
base_url = "http://127.0.0.1:$P_SLOW/v1"

[models.bench]
providers = ["up"]

[models.bench-slow]
providers = ["slow"]

# The same mock speaking Anthropic's Messages API: chat completions translated to it.
[providers.claude]
kind = "anthropic"
base_url = "http://127.0.0.1:$P_UP"

[models.bench-claude]
providers = ["claude"]

[telemetry]
log_level = "info"
TOML
}
LOKI_SECTION="
[telemetry.loki]
url = \"http://127.0.0.1:$P_SINK\"
"
OTLP_SECTION="
[telemetry.otlp]
endpoint = \"http://127.0.0.1:$P_SINK/v1/traces\"
protocol = \"http/protobuf\"
"
# The Loki and OTLP sections exist only in builds that have them: add each one that this
# binary's check-config accepts, and say which were on.
GW_CONF=$OUT/gatewayz.toml
base_config "$P_GW" >"$GW_CONF"
TELEMETRY="meters"
for section in $EXPORTS; do
  case $section in loki | otlp) ;; *) die "BENCH_EXPORT: $section is neither loki nor otlp" ;; esac
  text=LOKI_SECTION; [ $section = otlp ] && text=OTLP_SECTION
  cp "$GW_CONF" "$OUT/probe.toml"; printf '%s' "${!text}" >>"$OUT/probe.toml"
  if "$BIN" check-config "$OUT/probe.toml" >/dev/null 2>"$OUT/probe-$section.err"; then
    printf '%s' "${!text}" >>"$GW_CONF"
    TELEMETRY="$TELEMETRY, $section"
  else
    echo "loadtest: [telemetry.$section] not supported by this build: $(head -1 "$OUT/probe-$section.err")" >&2
  fi
done
rm -f "$OUT/probe.toml"
"$BIN" check-config "$GW_CONF" >/dev/null
GW0_CONF=$OUT/gatewayz-no-export.toml
base_config "$P_GW0" >"$GW0_CONF"

step "gatewayz on core $PROXY_CORE (telemetry: $TELEMETRY)"
start "$OUT/gatewayz.log" taskset -c "$PROXY_CORE" "$BIN" serve --config "$GW_CONF"
GW_PID=$LAST_PID
wait_http "http://127.0.0.1:$P_GW/health" "$GW_PID"
# BENCH_TELEMETRY_NICE=N: the export threads (the span batch processor, the OTLP clients'
# runtimes) at nice N, to see what their bursts cost the request path's tails on the shared core.
if [ -n "${BENCH_TELEMETRY_NICE:-}" ]; then
  for task in /proc/"$GW_PID"/task/*; do
    case "$(cat "$task/comm")" in
      OpenTelemetry* | reqwest-interna* | otlp-grpc*) renice -n "$BENCH_TELEMETRY_NICE" -p "${task##*/}" >/dev/null ;;
    esac
  done
  echo "telemetry threads at nice $BENCH_TELEMETRY_NICE" >>"$OUT/machine.txt"
fi
if curl -sf -o /dev/null "http://127.0.0.1:$P_GW/metrics"; then METRICS="served"; else METRICS="not served by this build"; fi

JSON_BODY=$OUT/json.body
STREAM_BODY=$OUT/stream.body
SLOW_BODY=$OUT/slow.body
echo "$JSON_REQUEST" >"$JSON_BODY"
echo '{"model":"bench","stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"temperature":0.2}' >"$STREAM_BODY"
# Anthropic's Messages API: to the OpenAI-compatible provider (translated both ways) and to
# the Anthropic one (passed through); and chat completions to the Anthropic one (translated).
MESSAGES_OPENAI_BODY=$OUT/messages-openai.body
MESSAGES_ANTHROPIC_BODY=$OUT/messages-anthropic.body
CHAT_ANTHROPIC_BODY=$OUT/chat-anthropic.body
echo '{"model":"bench","max_tokens":256,"stream":true,"system":"You are terse.","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"temperature":0.2}' >"$MESSAGES_OPENAI_BODY"
sed 's/"model":"bench"/"model":"bench-claude"/' "$MESSAGES_OPENAI_BODY" >"$MESSAGES_ANTHROPIC_BODY"
sed 's/"model":"bench"/"model":"bench-claude"/' "$STREAM_BODY" >"$CHAT_ANTHROPIC_BODY"
echo '{"model":"bench-slow","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"}]}' >"$SLOW_BODY"

# Every path answers before any load.
for url in "http://127.0.0.1:$P_UP" "http://127.0.0.1:$P_NGX" "http://127.0.0.1:$P_GW"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    --data-binary "@$JSON_BODY" "$url/v1/chat/completions")
  [ "$code" = 200 ] || die "$url/v1/chat/completions answered $code"
done
sleep 1 # let start-up allocations settle before the idle reading
GW_IDLE_KIB=$(status_kib "$GW_PID" VmRSS)
NGX_IDLE_KIB=0; for p in $(ngx_pids); do NGX_IDLE_KIB=$((NGX_IDLE_KIB + $(status_kib "$p" VmRSS))); done

# ---------------------------------------------------------------- load points
url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$P_UP/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:$P_NGX/v1/chat/completions" ;;
    gatewayz) echo "http://127.0.0.1:$P_GW/v1/chat/completions" ;;
    gatewayz-no-export | pair-*-off) echo "http://127.0.0.1:$P_GW0/v1/chat/completions" ;;
    pair-*-on) echo "http://127.0.0.1:$P_GW/v1/chat/completions" ;;
    key-*) echo "http://127.0.0.1:$P_ADM/v1/chat/completions" ;;
    chat-to-anthropic) echo "http://127.0.0.1:$P_GW/v1/chat/completions" ;;
    messages-to-openai | messages-to-anthropic) echo "http://127.0.0.1:$P_GW/v1/messages" ;;
  esac
}
body_of() { # kind path
  case $2 in
    chat-to-anthropic) echo "$CHAT_ANTHROPIC_BODY" ;;
    messages-to-openai) echo "$MESSAGES_OPENAI_BODY" ;;
    messages-to-anthropic) echo "$MESSAGES_ANTHROPIC_BODY" ;;
    *) if [ "$1" = stream ]; then echo "$STREAM_BODY"; else echo "$JSON_BODY"; fi ;;
  esac
}
pids_of() {
  case $1 in
    direct) echo "$MOCK_PID" ;;
    nginx) ngx_pids ;;
    gatewayz) echo "$GW_PID" ;;
    gatewayz-no-export | pair-*-off) echo "$GW0_PID" ;;
    pair-*-on) echo "$GW_PID" ;;
    key-*) echo "$ADM_PID" ;;
    chat-to-anthropic | messages-to-*) echo "$GW_PID" ;;
  esac
}

oha_run() { # seconds rate body url [header] -> oha JSON on stdout
  local secs=$1 rate=$2 body=$3 url=$4
  local args=(-z "${secs}s" -c "$CONNS" -w --no-tui --output-format json -t 30s
    -m POST -H 'content-type: application/json' -D "$body")
  [ -z "${5:-}" ] || args+=(-H "$5")
  [ "$rate" = max ] || args+=(-q "$rate" --latency-correction)
  taskset -c "$LOAD_CORE" "$OHA" "${args[@]}" "$url"
}

point() { # kind rate path
  local kind=$1 rate=$2 path=$3 url body before after file auth= store_before=0 store_after=0
  url=$(url_of "$path")
  body=$(body_of "$kind" "$path")
  file=$OUT/raw/$kind-$rate-$path.json
  case $path in key-*) auth="authorization: Bearer bench-client-key" ;; esac
  oha_run "$WARMUP" "$rate" "$body" "$url" "$auth" >/dev/null
  before=$(cpu_ticks $(pids_of "$path"))
  case $path in
    key-redis) store_before=$(cpu_ticks "$REDIS_PID") ;;
    key-ledger) store_before=$(thread_ticks "$ADM_PID" '^(gatewayz-ledger|sqlx-sqlite)') ;;
  esac
  oha_run "$DURATION" "$rate" "$body" "$url" "$auth" >"$file"
  after=$(cpu_ticks $(pids_of "$path"))
  case $path in
    key-redis) store_after=$(cpu_ticks "$REDIS_PID") ;;
    key-ledger) store_after=$(thread_ticks "$ADM_PID" '^(gatewayz-ledger|sqlx-sqlite)') ;;
  esac
  printf '{"kind":"%s","rate":"%s","path":"%s","cpu_ticks":%d,"store_cpu_ticks":%d,"file":"%s"}\n' \
    "$kind" "$rate" "$path" $((after - before)) $((store_after - store_before)) "$file" >>"$RESULTS"
  python3 "$ROOT/loadtest/report.py" --one "$file" "$kind $rate $path" >&2
}

# The translated paths answer whole streams before any load.
for path in chat-to-anthropic messages-to-openai messages-to-anthropic; do
  events=$(curl -s -N -H 'content-type: application/json' --data-binary "@$(body_of stream "$path")" "$(url_of "$path")")
  case $events in
    *'[DONE]'* | *message_stop*) ;;
    *) die "the $path stream did not complete: $(printf '%s' "$events" | tail -c 300)" ;;
  esac
done

if [ "$SECTIONS" = all ]; then
for kind in json stream; do
  for rate in $RATES max; do
    step "$kind at $rate rps: direct, nginx, gatewayz (${WARMUP}s warm-up + ${DURATION}s each)"
    for path in direct nginx gatewayz; do point "$kind" "$rate" "$path"; done
  done
done
step "Anthropic-translated streams at $TRANSLATED_RATE rps through gatewayz (${WARMUP}s warm-up + ${DURATION}s each)"
for path in chat-to-anthropic messages-to-openai messages-to-anthropic; do
  point stream "$TRANSLATED_RATE" "$path"
done
else
  step "json at $ADMISSION_RATE rps: direct, gatewayz (the admission points' baseline)"
  for path in direct gatewayz; do point json "$ADMISSION_RATE" "$path"; done
fi
GW_PEAK_KIB=$(status_kib "$GW_PID" VmHWM)

# ---------------------------------------------------------------- admission cost
# The same gateway and telemetry with one client key: without limits (authentication only),
# with every limit and a team counted in process, and the same limits in a local Redis
# (redis-server on the load core, like the upstream). Each runs alone on the proxy core.
P_ADM=$(free_port); P_REDIS=$(free_port)
step "redis-server on core $LOAD_CORE (the shared store of the key-redis point)"
start "$OUT/redis.log" taskset -c "$LOAD_CORE" /usr/bin/redis-server --bind 127.0.0.1 \
  --port "$P_REDIS" --save '' --appendonly no --dir "$OUT"
REDIS_PID=$LAST_PID
deadline=$((SECONDS + 30))
until { exec 3<>"/dev/tcp/127.0.0.1/$P_REDIS" && printf 'PING\r\n' >&3 && read -r -t 2 pong <&3 && [ "${pong%$'\r'}" = +PONG ]; } 2>/dev/null; do
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $OUT/redis.log"
  [ $SECONDS -lt $deadline ] || die "redis-server not ready in time"
  sleep 0.05
done
exec 3>&-
LIMITS='team = "bench"
rate_limit_rpm = 1000000
rate_limit_tpm = 1000000000
max_parallel = 100000
budget_usd = 1000000000.0
budget_period = "1d"'
admission_config() { # path -> the gateway's configuration for that point
  sed "s/^listen = \"127.0.0.1:$P_GW\"/listen = \"127.0.0.1:$P_ADM\"/" "$GW_CONF"
  printf '\n[[keys]]\nname = "bench"\nkey = "bench-client-key"\n'
  [ "$1" = key-free ] || printf '%s\n\n[teams.bench]\nrate_limit_rpm = 1000000\nmax_parallel = 100000\n' "$LIMITS"
  [ "$1" != key-redis ] || printf '\n[state]\nredis_url = "redis://127.0.0.1:%s/0"\n' "$P_REDIS"
  [ "$1" != key-ledger ] || printf '\n[ledger]\nurl = "sqlite://%s/ledger.db"\n' "$OUT"
}
# utime+stime of a process's threads whose name matches (the ledger's writer, and the
# SQLite driver's worker thread it hands statements to).
thread_ticks() { # pid name-pattern (grep -E)
  local t total=0 f
  for t in /proc/"$1"/task/*; do
    grep -qE "$2" "$t/comm" 2>/dev/null || continue
    f=$(cut -d')' -f2 "$t/stat") || continue
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
for path in key-free key-local key-redis key-ledger; do
  admission_config "$path" >"$OUT/gatewayz-$path.toml"
  "$BIN" check-config "$OUT/gatewayz-$path.toml" >/dev/null
  step "admission: JSON at $ADMISSION_RATE rps, $path (${WARMUP}s warm-up + ${DURATION}s)"
  start "$OUT/gatewayz-$path.log" taskset -c "$PROXY_CORE" "$BIN" serve --config "$OUT/gatewayz-$path.toml"
  ADM_PID=$LAST_PID
  wait_http "http://127.0.0.1:$P_ADM/health" "$ADM_PID"
  point json "$ADMISSION_RATE" "$path"
  kill -TERM "$ADM_PID"; wait "$ADM_PID" 2>/dev/null || true
done
grep -q 'shared limit store is unreachable' "$OUT/gatewayz-key-redis.log" \
  && die "the key-redis point ran without its store; see $OUT/gatewayz-key-redis.log"

if [ "$SECTIONS" = all ] && [ "$TELEMETRY" != meters ]; then
  step "telemetry cost: JSON at max through a gatewayz with meters only (no Loki / OTLP export)"
  start "$OUT/gatewayz-no-export.log" taskset -c "$PROXY_CORE" "$BIN" serve --config "$GW0_CONF"
  GW0_PID=$LAST_PID
  wait_http "http://127.0.0.1:$P_GW0/health" "$GW0_PID"
  # The main gateway idles meanwhile on the same core.
  point json max gatewayz-no-export
  # That pair's two points are minutes apart, and this kind of machine drifts more between
  # two runs of one configuration than export costs: alternate more pairs back to back (the
  # report gives each pair's share and their median).
  for i in $(seq "$TELEMETRY_PAIRS"); do
    point json max "pair-$i-on"
    point json max "pair-$i-off"
  done
  kill -TERM "$GW0_PID"
else
  echo "loadtest: no Loki / OTLP export in this build: the telemetry-off point would measure the same config; skipped" >&2
fi

open=0; upstream_open=0; GW_OPEN_KIB=0; GW_AFTER_KIB=0; GW_PEAK_ALL_KIB=0
if [ "$SECTIONS" = all ]; then
# ---------------------------------------------------------------- time to first byte
step "stream time to first byte: $TTFB_SAMPLES sequential requests per path, one keep-alive connection"
for path in direct nginx gatewayz; do
  args=()
  for _ in $(seq "$TTFB_SAMPLES"); do args+=(-o /dev/null "$(url_of "$path")"); done
  taskset -c "$LOAD_CORE" curl -s -N -H 'content-type: application/json' --data-binary "@$STREAM_BODY" \
    -w '%{http_code} %{time_starttransfer} %header{x-gatewayz-overhead-ms}\n' "${args[@]}" \
    >"$OUT/raw/ttfb-$path.txt"
  printf '{"kind":"ttfb","path":"%s","file":"%s"}\n' "$path" "$OUT/raw/ttfb-$path.txt" >>"$RESULTS"
done

# ---------------------------------------------------------------- open streams
step "memory with $OPEN_STREAMS concurrent open streams (slow upstream, ~10 s each)"
start "$OUT/open-streams.log" taskset -c "$LOAD_CORE" "$OHA" -n "$OPEN_STREAMS" -c "$OPEN_STREAMS" \
  --no-tui --output-format json -t 60s -m POST -H 'content-type: application/json' \
  -D "$SLOW_BODY" "$(url_of gatewayz)"
OPEN_PID=$LAST_PID
established() { ss -Htn state established "( sport = :$P_GW )" | wc -l; }
upstreams() { ss -Htn state established "( dport = :$P_SLOW )" | wc -l; }
# Open end to end: every client connected to the gateway and every stream relayed from upstream.
deadline=$((SECONDS + 60)); open=0; upstream_open=0
while :; do
  open=$(established); upstream_open=$(upstreams)
  [ "$open" -ge "$OPEN_STREAMS" ] && [ "$upstream_open" -ge "$OPEN_STREAMS" ] && break
  kill -0 "$OPEN_PID" 2>/dev/null || die "the open-streams client ended early ($open client / $upstream_open upstream connections); see $OUT/open-streams.log"
  [ $SECONDS -lt $deadline ] || die "only $open client / $upstream_open upstream streams opened in 60 s"
  sleep 0.1
done
GW_OPEN_KIB=$(status_kib "$GW_PID" VmRSS)
deadline=$((SECONDS + 60))
while kill -0 "$OPEN_PID" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || die "the open-streams client did not finish in 60 s"
  sleep 0.2
done
wait "$OPEN_PID" || die "the open-streams client failed; see $OUT/open-streams.log"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["statusCodeDistribution"]; sys.exit(0 if list(c)==["200"] else "open streams: %s" % c)' "$OUT/open-streams.log" \
  || die "some open streams failed; see $OUT/open-streams.log"
GW_AFTER_KIB=$(status_kib "$GW_PID" VmRSS)
GW_PEAK_ALL_KIB=$(status_kib "$GW_PID" VmHWM)
fi

# ---------------------------------------------------------------- report
cat >"$OUT/run.json" <<JSON
{"telemetry": "$TELEMETRY", "metrics": "$METRICS", "duration": $DURATION, "warmup": $WARMUP,
 "connections": $CONNS, "ttfb_samples": $TTFB_SAMPLES, "open_streams": $OPEN_STREAMS,
 "open_client_conns": $open, "open_upstream_conns": $upstream_open,
 "gw_idle_kib": $GW_IDLE_KIB, "gw_peak_kib": $GW_PEAK_KIB, "gw_open_kib": $GW_OPEN_KIB,
 "gw_after_kib": $GW_AFTER_KIB, "gw_peak_all_kib": $GW_PEAK_ALL_KIB, "nginx_idle_kib": $NGX_IDLE_KIB, "clk_tck": $(getconf CLK_TCK),
 "load_core": $LOAD_CORE, "proxy_core": $PROXY_CORE, "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "busy": "$(ps -eo pcpu=,comm= --sort=-pcpu | head -6 | awk '{printf "%s %s%%; ", $2, $1}')"}
JSON
python3 "$ROOT/loadtest/report.py" "$OUT" | tee "$OUT/report.md"
echo >&2
echo "loadtest: report in ${OUT#"$ROOT"/}/report.md" >&2
