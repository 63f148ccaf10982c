#!/usr/bin/env bash
# A real OCI registry for the tests: Debian's `docker-registry` (CNCF distribution 2.8) on a free
# loopback port, TLS only (a private CA made here with openssl), htpasswd basic auth (bcrypt).
#
#   scripts/registry.sh          install/start when needed; print the env file's path
#   scripts/registry.sh stop     stop the registry this script started
#
# Idempotent and fast when it already runs. Everything lives in $AMLMIGRATE_CACHE/registry
# (default $HOME/.cache/amlmigrate/registry): ca.crt/ca.key (the private CA), server.crt/.key
# (SANs 127.0.0.1, localhost), other-ca.crt (a CA that signed nothing: "untrusted certificate"
# tests), htpasswd, config.yml, data/, registry.log, registry.pid and registry.env, which the
# tests read (tests/common/registry.rs):
#   AMLMIGRATE_TEST_REGISTRY_URL=https://127.0.0.1:PORT
#   AMLMIGRATE_TEST_REGISTRY_HOST=127.0.0.1:PORT
#   AMLMIGRATE_TEST_REGISTRY_CA=…/ca.crt
#   AMLMIGRATE_TEST_REGISTRY_OTHER_CA=…/other-ca.crt
#   AMLMIGRATE_TEST_REGISTRY_USER=amltest
#   AMLMIGRATE_TEST_REGISTRY_PASSWORD=<random, made once>
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
dir="$CACHE/registry"
env_file="$dir/registry.env"
pid_file="$dir/registry.pid"
mkdir -p "$dir"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-registry"
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

# Answers /v2/ with 401 (auth required) over TLS trusted through our CA: it is ours and it works.
answers() {
  [ -f "$env_file" ] || return 1
  # shellcheck disable=SC1090
  . "$env_file"
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$AMLMIGRATE_TEST_REGISTRY_CA" \
      "$AMLMIGRATE_TEST_REGISTRY_URL/v2/")" = 401 ]
}

if running && answers; then
  echo "$env_file"
  exit 0
fi

need_pkg() { # command, package
  command -v "$1" >/dev/null && return 0
  echo "registry.sh: installing Debian package $2" >&2
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >&2; }
  else
    echo "registry.sh: $1 is missing: apt-get install $2 (as root)" >&2
    exit 1
  fi
}
need_pkg docker-registry docker-registry
need_pkg htpasswd apache2-utils
need_pkg openssl openssl
need_pkg curl curl

# The private CA and the server certificate it signs (made once; valid ten years).
if [ ! -f ca.crt ] || [ ! -f server.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=amlmigrate test registry CA" -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile server.ext -out server.crt 2>/dev/null
  rm -f server.csr server.ext
fi
if [ ! -f other-ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=some other CA" -keyout other-ca.key -out other-ca.crt 2>/dev/null
fi

# One user; distribution accepts bcrypt entries only.
user=amltest
if [ ! -f password ]; then
  openssl rand -hex 12 > password
fi
password="$(cat password)"
htpasswd -Bbn "$user" "$password" > htpasswd

# A loopback port the kernel picks; between this probe and the registry's bind another process
# may take it, so a start that fails is tried again on a new port.
pick_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p data

# Starts the registry on `port` and waits until it answers (or dies: the port was taken).
start() {
  cat > config.yml <<EOF
version: 0.1
log:
  level: warn
  fields:
    service: amlmigrate-test-registry
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: amlmigrate-test-registry
    path: $dir/htpasswd
EOF
  if running; then kill "$(cat "$pid_file")" 2>/dev/null || true; fi
  setsid nohup docker-registry serve "$dir/config.yml" >> registry.log 2>&1 < /dev/null 9>&- &
  echo $! > "$pid_file"
  cat > "$env_file.tmp" <<EOF
AMLMIGRATE_TEST_REGISTRY_URL=https://127.0.0.1:$port
AMLMIGRATE_TEST_REGISTRY_HOST=127.0.0.1:$port
AMLMIGRATE_TEST_REGISTRY_CA=$dir/ca.crt
AMLMIGRATE_TEST_REGISTRY_OTHER_CA=$dir/other-ca.crt
AMLMIGRATE_TEST_REGISTRY_USER=$user
AMLMIGRATE_TEST_REGISTRY_PASSWORD=$password
EOF
  mv "$env_file.tmp" "$env_file"
  # Patient: a loaded machine starts slowly. A registry that died lost its port.
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
echo "registry.sh: the registry did not come up; see $dir/registry.log" >&2
tail -5 registry.log >&2 || true
exit 1
