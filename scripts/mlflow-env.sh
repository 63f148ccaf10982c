#!/usr/bin/env bash
# Installs real MLflow 2.6.0 (MySQL, through pymysql) and 3.1.1 (PostgreSQL, through psycopg2)
# into cached virtual environments, so tests and benchmarks can run the real servers.
#
#   scripts/mlflow-env.sh            install what is missing; print the two venv paths
#
# Venvs live outside the checkout ($AMLMIGRATE_CACHE, default $HOME/.cache/amlmigrate) so that
# CI clones reuse them; a venv is rebuilt when its stamp (the pinned requirements) changes.
set -euo pipefail
CACHE="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}"
mkdir -p "$CACHE"
# One start at a time: the test suites of several checkouts may call this at once.
exec 9>"$CACHE/.lock-mlflow-env"
flock 9

# Pins measured to work here: 2.6.0 needs numpy<2; both break with SQLAlchemy 2.1.
REQ_26="mlflow==2.6.0 pymysql numpy<2 sqlalchemy<2.1 flask<3 werkzeug<3.2 pandas<2.3"
REQ_311="mlflow==3.1.1 psycopg2-binary sqlalchemy<2.1"

ensure() { # dir, requirements
  local dir=$1 req=$2
  if [ -x "$dir/bin/mlflow" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$req" ]; then
    return 0
  fi
  echo "mlflow-env: installing $req into $dir (takes a few minutes once)" >&2
  rm -rf "$dir.tmp"
  python3 -m venv "$dir.tmp"
  # shellcheck disable=SC2086
  "$dir.tmp/bin/pip" install --quiet --disable-pip-version-check $req >&2
  echo "$req" > "$dir.tmp/.stamp"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # Entry-point scripts hard-code the venv path in their shebang: point them at the new place.
  # (Only regular text files: bin/python* are symlinks to the interpreter.)
  local f
  for f in "$dir"/bin/*; do
    if [ -f "$f" ] && [ ! -L "$f" ] && head -c 2 "$f" | grep -q '#!'; then
      sed -i "1s|^#!.*\.tmp/bin/python.*|#!$dir/bin/python3|" "$f"
    fi
  done
}

# Added to a venv in place when missing (no rebuild of what already works): boto3, for servers
# that keep their artifacts in S3 (tests/mlflow_s3.rs).
extra() { # dir, module, requirement
  local dir=$1 module=$2 req=$3
  if ! "$dir/bin/python" -c "import $module" >/dev/null 2>&1; then
    echo "mlflow-env: adding $req to $dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$req" >&2
  fi
}

ensure "$CACHE/venv-mlflow-2.6.0" "$REQ_26"
ensure "$CACHE/venv-mlflow-3.1.1" "$REQ_311"
extra "$CACHE/venv-mlflow-2.6.0" boto3 boto3
extra "$CACHE/venv-mlflow-3.1.1" boto3 boto3
echo "$CACHE/venv-mlflow-2.6.0"
echo "$CACHE/venv-mlflow-3.1.1"
