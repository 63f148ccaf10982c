#!/usr/bin/env bash
# Installs moto's S3-compatible server (PyPI `moto[server]`) into a cached virtual environment,
# so the S3 tests can run a real S3 API on loopback (`moto_server -H 127.0.0.1 -p PORT`).
#
#   scripts/moto.sh            install when missing; print the venv path
#
# The venv lives outside the checkout ($AMLMIGRATE_CACHE, default $HOME/.cache/amlmigrate) so
# that CI clones reuse it; it is rebuilt when missing or when its stamp (the pinned
# requirement) changes. The tests look for it at the same place.
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
mkdir -p "$CACHE"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-moto"
flock 9

REQ="moto[server]==5.2.5"
dir="$CACHE/venv-moto"

if [ ! -x "$dir/bin/moto_server" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$REQ" ]; then
  echo "moto: installing $REQ into $dir (takes a minute once)" >&2
  rm -rf "$dir.tmp"
  python3 -m venv "$dir.tmp"
  "$dir.tmp/bin/pip" install --quiet --disable-pip-version-check "$REQ" >&2
  echo "$REQ" > "$dir.tmp/.stamp"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # Entry-point scripts hard-code the venv path in their shebang: point them at the new place.
  for f in "$dir"/bin/*; do
    if [ -f "$f" ] && [ ! -L "$f" ] && head -c 2 "$f" | grep -q '#!'; then
      sed -i "1s|^#!.*\.tmp/bin/python.*|#!$dir/bin/python3|" "$f"
    fi
  done
fi
echo "$dir"
