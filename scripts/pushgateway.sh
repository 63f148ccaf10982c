#!/usr/bin/env bash
# A real Prometheus Pushgateway for the metrics tests: Debian's `prometheus-pushgateway` on a
# free loopback port, plus Debian's `prometheus` for `promtool check rules`.
#
#   scripts/pushgateway.sh          install/start when needed; print the env file's path
#   scripts/pushgateway.sh stop     stop the Pushgateway this script started
#
# Idempotent and fast when it already runs. Everything lives in $AMLMIGRATE_CACHE/pushgateway
# (default $HOME/.cache/amlmigrate/pushgateway): pushgateway.log, pushgateway.pid and
# pushgateway.env, which the tests read (tests/metrics.rs):
#   AMLMIGRATE_TEST_PUSHGATEWAY_URL=http://127.0.0.1:PORT
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
dir="$CACHE/pushgateway"
env_file="$dir/pushgateway.env"
pid_file="$dir/pushgateway.pid"
mkdir -p "$dir"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-pushgateway"
flock 9
cd "$dir"

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

if [ "${1:-}" = "stop" ]; then
  if running; then kill "$(cat "$pid_file")"; fi
  rm -f "$pid_file" "$env_file"
  exit 0
fi

answers() {
  [ -f "$env_file" ] || return 1
  # shellcheck disable=SC1090
  . "$env_file"
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$AMLMIGRATE_TEST_PUSHGATEWAY_URL/-/ready")" = 200 ]
}

need_pkg() { # command, package
  command -v "$1" >/dev/null && return 0
  echo "pushgateway.sh: installing Debian package $2" >&2
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2; }
  else
    echo "pushgateway.sh: $1 is missing: apt-get install $2 (as root)" >&2
    exit 1
  fi
}
need_pkg prometheus-pushgateway prometheus-pushgateway
need_pkg promtool prometheus
need_pkg curl curl

if running && answers; then
  echo "$env_file"
  exit 0
fi

# A loopback port the kernel picks; between this probe and the Pushgateway's bind another
# process may take it, so a start that fails is tried again on a new port.
pick_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts it on `port` and waits until it answers (or dies: the port was taken).
start() {
  if running; then kill "$(cat "$pid_file")" 2>/dev/null || true; fi
  setsid nohup prometheus-pushgateway --web.listen-address="127.0.0.1:$port" \
    --log.level=warn >> pushgateway.log 2>&1 < /dev/null 9>&- &
  echo $! > "$pid_file"
  echo "AMLMIGRATE_TEST_PUSHGATEWAY_URL=http://127.0.0.1:$port" > "$env_file.tmp"
  mv "$env_file.tmp" "$env_file"
  # Patient: a loaded machine starts slowly. A Pushgateway that died lost its port.
  for _ in $(seq 1 600); do
    answers && return 0
    running || return 1
    sleep 0.2
  done
  return 1
}

for _ in 1 2 3 4 5; do
  port="$(pick_port)"
  if start; then
    echo "$env_file"
    exit 0
  fi
done
echo "pushgateway.sh: the Pushgateway did not come up; see $dir/pushgateway.log" >&2
tail -5 pushgateway.log >&2 || true
exit 1
