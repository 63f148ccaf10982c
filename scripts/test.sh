#!/usr/bin/env bash
# The whole test suite, from a fresh machine of this kind: starts the database servers the
# tests need when they are not running, then runs every unit and end-to-end test.
#
# Hunting a flaky test (CONTRIBUTING.md, "Tests that pass every time, and hunting a flaky one"):
#   TEST_REPEAT=N   run the tests N times in a row (set-up, fmt, clippy and build once); every
#                   run's wall time and failures are listed, and the exit code is non-zero if
#                   any run failed
#   TEST_LOAD=1     a CPU hog on every core (stress-ng) beside the tests, for as long as they run
#   TEST_FILTER=E   only the tests matching the nextest filter expression E (e.g. 'test(parallel)')
#   TEST_THREADS=N  tests at once (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds survive between runs (and CI clones) in a cache outside the checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"

wait_for() { # name, command…
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "test.sh: $name did not come up" >&2
  return 1
}

if ! mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then
  echo "test.sh: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_for MariaDB mariadb -uroot -h127.0.0.1 -e 'SELECT 1'
fi
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "test.sh: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
fi
# Restore uses LOAD DATA LOCAL INFILE.
mariadb -uroot -h127.0.0.1 -e 'SET GLOBAL local_infile = 1'
# A second, TLS-only MariaDB on port 3307 for restores into another server.
scripts/mariadb-tls.sh >/dev/null
# A second, TLS-only PostgreSQL cluster on port 5433 (private CA, hostssl only).
scripts/postgres-tls.sh >/dev/null

# Real MLflow 2.6.0 and 3.1.1 servers, in cached venvs (minutes the first time, then instant).
scripts/mlflow-env.sh >/dev/null
# moto's S3 server for the S3 repository tests, in a cached venv (a minute, once).
scripts/moto.sh >/dev/null
# A real OCI registry (Debian's docker-registry, TLS with a private CA, htpasswd auth).
scripts/registry.sh >/dev/null
# A real Prometheus Pushgateway (Debian's) for the metrics tests, and promtool for the rules.
scripts/pushgateway.sh >/dev/null
# The fake Kubernetes API server's fidelity tests drive the real kubectl.
command -v kubectl >/dev/null || echo "test.sh: kubectl not found; its fidelity tests will fail" >&2
# The HTML report is rendered in a real headless Chromium (tests/report_html.rs).
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

# Formatting and lints are part of the suite, so CI keeps them passing.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Dependency policy (deny.toml): licenses, banned crates (a second crypto provider), sources;
# offline, because the advisory database lives on GitHub.
if ! command -v cargo-deny >/dev/null; then
  echo "test.sh: installing cargo-deny (a few minutes, once)"
  cargo install cargo-deny --locked --quiet
fi
# cargo deny reads the metadata of every platform's crates (windows-sys…), which a build on this
# one never downloads: fetch them first, or a fresh machine fails here.
cargo fetch --locked --quiet
cargo deny --log-level error --offline check licenses bans sources
# The workspace: amlmigrate and the fake API server its tests run against (crates/fakekube).
cargo build --workspace --all-targets

threads="${TEST_THREADS:-2}"
# cargo-nextest (on machines of this kind) runs each test in its own process, binaries side by
# side, and names every failure at the end; without it, cargo test runs the same tests.
run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    local filter=()
    if [ -n "${TEST_FILTER:-}" ]; then filter=(-E "$TEST_FILTER"); fi
    cargo nextest run --workspace --no-fail-fast --test-threads "$threads" "${filter[@]}" \
      && cargo test --workspace --doc --quiet
  else
    cargo test --workspace --no-fail-fast -- --test-threads="$threads"
  fi
}

if [ "${TEST_LOAD:-0}" = 1 ]; then
  if ! command -v stress-ng >/dev/null; then
    echo "test.sh: installing stress-ng"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stress-ng >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stress-ng >/dev/null; }
  fi
  stress-ng --cpu "$(nproc)" --timeout 0 --quiet &
  hog=$!
  trap 'kill "$hog" 2>/dev/null || true' EXIT
  echo "test.sh: a CPU hog (stress-ng --cpu $(nproc), pid $hog) runs beside the tests"
fi

repeat="${TEST_REPEAT:-1}"
if [ "$repeat" = 1 ]; then
  run_tests
  exit
fi
summary=()
failed=0
for i in $(seq 1 "$repeat"); do
  echo "test.sh: run $i of $repeat"
  start=$(date +%s)
  if run_tests; then result=passed; else result=FAILED; failed=$((failed + 1)); fi
  summary+=("run $i: $result in $(( $(date +%s) - start )) s")
done
printf 'test.sh: %s\n' "${summary[@]}"
echo "test.sh: $failed of $repeat runs failed"
[ "$failed" = 0 ]
