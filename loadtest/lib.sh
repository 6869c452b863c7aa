# Shared by loadtest/load.sh and loadtest/profile.sh: process bookkeeping (every process started
# is stopped by pid on exit, Ctrl-C included) and readiness polling with a deadline.
# Source it after setting OUT (the run's output folder) and NAME (the prefix of messages).

die() { printf '%s: %s\n' "${NAME:-loadtest}" "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs "$@" in the background with its output in LOG, remembers its pid in $LAST_PID.
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# Polls URL until it answers (any HTTP status), the process dies, or the deadline passes.
wait_http() {
  local url=$1 pid=$2 deadline=$((SECONDS + ${3:-60}))
  until curl -s -o /dev/null --max-time 1 "$url"; do
    kill -0 "$pid" 2>/dev/null || die "process $pid behind $url exited; see $OUT/*.log"
    [ $SECONDS -lt $deadline ] || die "$url not ready in time"
    sleep 0.05
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets NGINX to Debian's nginx, installing it the first time (root or sudo).
need_nginx() {
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    printf '%s: installing Debian'"'"'s nginx\n' "${NAME:-loadtest}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nginx >/dev/null
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

nginx_conf() { # name, server block(s)
  local dir=$OUT/nginx/$1
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  $2
}
CONF
  echo "$dir/nginx.conf"
}

# The reference proxy: nginx's proxy_pass to the upstream on UPSTREAM, kept-alive connections,
# no buffering. Usage: start_proxy PORT UPSTREAM [command prefix, e.g. taskset -c 1]. Sets NGX_PID.
start_proxy() {
  local port=$1 upstream=$2 conf; shift 2
  conf=$(nginx_conf proxy "upstream mock { server 127.0.0.1:$upstream; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_buffering off;
    }
  }")
  start "$OUT/nginx-proxy.log" "$@" "$NGINX" -p "$OUT/nginx/proxy" -e stderr -c "$conf"
  NGX_PID=$LAST_PID
}

# The JSON completion the JSON points send.
JSON_REQUEST='{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"temperature":0.2}'

# The telemetry receiver: a local nginx answering 204 on Loki's push path and an empty
# protobuf 200 on OTLP's trace path. Usage: start_sink PORT [command prefix, e.g. taskset -c 0].
# Sets SINK_PID.
start_sink() {
  local port=$1 conf; shift
  conf=$(nginx_conf sink "server {
    listen 127.0.0.1:$port;
    location = /loki/api/v1/push { return 204; }
    location = /v1/traces { default_type application/x-protobuf; return 200 ''; }
    location / { return 404; }
  }")
  start "$OUT/nginx-sink.log" "$@" "$NGINX" -p "$OUT/nginx/sink" -e stderr -c "$conf"
  SINK_PID=$LAST_PID
}
