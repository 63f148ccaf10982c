#!/usr/bin/env bash
# A second MariaDB server for the tests, on 127.0.0.1:3307, that accepts only TLS connections
# (require_secure_transport). It proves restores into another server and the TLS path
# (ssl-mode=verify-identity with a private CA) against a real server.
#
#   scripts/mariadb-tls.sh        start it unless it is running; print the CA file path
#
# Data, certificates and socket live in $AMLMIGRATE_CACHE/mariadb-tls (default
# $HOME/.cache/amlmigrate/mariadb-tls). Root has an empty password, as on the main server.
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
DIR="$CACHE/mariadb-tls"
PORT="${AMLMIGRATE_TLS_PORT:-3307}"
mkdir -p "$DIR"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-mariadb-tls"
flock 9

if [ ! -f "$DIR/ca.pem" ]; then
  # A private CA and a server certificate valid for 127.0.0.1 and localhost.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=amlmigrate test CA" \
    -keyout "$DIR/ca-key.pem" -out "$DIR/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DIR/server-key.pem" -out "$DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$DIR/ext.cnf"
  openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" \
    -CAcreateserial -days 3650 -extfile "$DIR/ext.cnf" -out "$DIR/server.pem" 2>/dev/null
  chmod 644 "$DIR"/*.pem
fi

up() { mariadb -uroot -h127.0.0.1 -P"$PORT" --ssl --ssl-ca="$DIR/ca.pem" -e 'SELECT 1' >/dev/null 2>&1; }

if ! up; then
  if [ ! -d "$DIR/data/mysql" ]; then
    rm -rf "$DIR/data"
    mariadb-install-db --no-defaults --datadir="$DIR/data" --user=root \
      --auth-root-authentication-method=normal >/dev/null
  fi
  # Runs as root: the cache lives under root's home, which the mysql user cannot enter.
  setsid /usr/sbin/mariadbd \
    --no-defaults --user=root --datadir="$DIR/data" --port="$PORT" --bind-address=127.0.0.1 \
    --socket="$DIR/mysqld.sock" --pid-file="$DIR/mysqld.pid" --skip-name-resolve \
    --ssl-ca="$DIR/ca.pem" --ssl-cert="$DIR/server.pem" --ssl-key="$DIR/server-key.pem" \
    --require-secure-transport=ON --local-infile=1 --innodb-buffer-pool-size=64M \
    --log-error="$DIR/error.log" </dev/null >/dev/null 2>&1 9>&- &
  for _ in $(seq 1 240); do up && break; sleep 0.5; done
  up || { echo "mariadb-tls: the server on port $PORT did not start; see $DIR/error.log" >&2; exit 1; }
  # Root over TCP with an empty password, like the main test server.
  mariadb -uroot -h127.0.0.1 -P"$PORT" --ssl --ssl-ca="$DIR/ca.pem" \
    -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" 2>/dev/null || true
fi
echo "$DIR/ca.pem"
