# Shared by bench/load.sh and bench/profile.sh: process bookkeeping (every process started
# is stopped by pid on exit, Ctrl-C included) and readiness polling with a deadline.
# Source it after setting OUT (the run's output folder) and NAME (the prefix of messages).

die() { printf '%s: %s\n' "${NAME:-bench}" "$*" >&2; exit 1; }
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
