#!/usr/bin/env bash
# Install what the end-to-end run needs, from nothing: Debian's postgresql, redis-server and chromium when they are
# missing, then a virtualenv ($E2E_VENV, default .venv/e2e) with Airflow, the Amazon (s3fs) and Celery providers,
# moto's server, Playwright (the library only: it drives Debian's chromium) and this provider, built as a wheel
# and installed from it with its s3 and iceberg extras (never editable, never from the source tree); the Iceberg
# phase's SQL catalog on PostgreSQL uses psycopg2 (installed here) through SQLAlchemy.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${E2E_VENV:-.venv/e2e}
AIRFLOW_VERSION=${E2E_AIRFLOW_VERSION:-3.3.2}
PYTHON=${PYTHON:-python3}

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
    echo "e2e/install.sh: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/uv" ]]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip uv
fi

# The wheel is built from the sdist, as a release would be.
rm -rf "$VENV/dist"
"$VENV/bin/uv" build --quiet --out-dir "$VENV/dist" .
wheel=$(ls "$VENV"/dist/airflow_provider_genviral-*.whl)

# uv resolves Airflow with the Amazon provider and moto in seconds, where pip backtracks for many minutes.
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
    "apache-airflow[postgres]==$AIRFLOW_VERSION" \
    "apache-airflow-providers-amazon[s3fs]" \
    "apache-airflow-providers-celery" \
    "moto[server]" psycopg2-binary boto3 psutil playwright \
    --reinstall-package airflow-provider-genviral "${wheel}[s3,iceberg]"
