#!/usr/bin/env bash
# A second PostgreSQL cluster for the tests, on 127.0.0.1:5433, that accepts only TLS
# connections (pg_hba.conf has `hostssl` lines only), with a certificate from a private CA.
# It proves `sslmode=verify-full&sslrootcert=FILE` against a real server.
#
#   scripts/postgres-tls.sh      create/start it unless it is running; print the CA file path
#
# Users: `postgres` (no password, TLS only) and `amlmigrate_pw` (password `amlmigrate-pg-pw`,
# scram-sha-256, TLS only, may create databases) for the password-file tests.
# Certificates live in $AMLMIGRATE_CACHE/postgres-tls (default $HOME/.cache/amlmigrate/postgres-tls):
# ca.pem (signs the server's certificate, valid for 127.0.0.1 and localhost) and other-ca.pem (a
# CA that signed nothing, for the wrong-CA tests). The cluster itself is a Debian cluster
# (`pg_lsclusters`: amlmigrate_tls), since PostgreSQL refuses to run as root.
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
DIR="$CACHE/postgres-tls"
PORT="${AMLMIGRATE_PG_TLS_PORT:-5433}"
NAME=amlmigrate_tls
VERSION="$(ls /etc/postgresql | sort -V | tail -1)"
CONF="/etc/postgresql/$VERSION/$NAME"
mkdir -p "$DIR"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-postgres-tls"
flock 9

new_certs=0
if [ ! -f "$DIR/ca.pem" ] || [ ! -f "$DIR/other-ca.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=amlmigrate test PostgreSQL CA" \
    -keyout "$DIR/ca-key.pem" -out "$DIR/ca.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=amlmigrate unrelated CA" \
    -keyout "$DIR/other-ca-key.pem" -out "$DIR/other-ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DIR/server-key.pem" -out "$DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$DIR/ext.cnf"
  openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" \
    -CAcreateserial -days 3650 -extfile "$DIR/ext.cnf" -out "$DIR/server.pem" 2>/dev/null
  chmod 644 "$DIR"/ca.pem "$DIR"/other-ca.pem
  new_certs=1
fi

up() { PGSSLMODE=verify-full PGSSLROOTCERT="$DIR/ca.pem" psql -h 127.0.0.1 -p "$PORT" -U postgres -qAtc 'SELECT 1' postgres >/dev/null 2>&1; }

if [ "$new_certs" = 0 ] && up; then
  echo "$DIR/ca.pem"
  exit 0
fi

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $NAME"; then
  pg_createcluster "$VERSION" "$NAME" -p "$PORT" >/dev/null -- --auth-local=peer --auth-host=scram-sha-256
fi
# The server reads its key as the postgres user, from its own config folder.
install -o postgres -g postgres -m 600 "$DIR/server-key.pem" "$CONF/server-key.pem"
install -o postgres -g postgres -m 644 "$DIR/server.pem" "$CONF/server.pem"
cat > "$CONF/conf.d/amlmigrate-tls.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
ssl = on
ssl_cert_file = '$CONF/server.pem'
ssl_key_file = '$CONF/server-key.pem'
EOF
# TLS only: no `host` line, so a plain connection finds no entry and is refused.
cat > "$CONF/pg_hba.conf" <<EOF
local   all  postgres                 peer
hostssl all  postgres  127.0.0.1/32   trust
hostssl all  all       127.0.0.1/32   scram-sha-256
EOF
chown postgres:postgres "$CONF/pg_hba.conf" "$CONF/conf.d/amlmigrate-tls.conf"
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" restart >/dev/null 2>&1 9>&- \
  || pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start 9>&-
for _ in $(seq 1 240); do up && break; sleep 0.5; done
up || { echo "postgres-tls: the cluster on port $PORT did not start; see /var/log/postgresql/postgresql-$VERSION-$NAME.log" >&2; exit 1; }
runuser -u postgres -- psql -p "$PORT" -qAt postgres >/dev/null <<'EOF'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'amlmigrate_pw') THEN
    CREATE ROLE amlmigrate_pw LOGIN CREATEDB PASSWORD 'amlmigrate-pg-pw';
  END IF;
END $$;
EOF
echo "$DIR/ca.pem"
