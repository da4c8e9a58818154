#!/usr/bin/env bash
# The benchmark in one command (see bench/README.md): installs '.[dev,bench]' (cedarpy and
# moto with its server, the peers) into .venv if they are missing, wrk (Debian package) if it is
# missing, starts PostgreSQL if it is not running, then runs `python -m bench`, which prints a
# Markdown report and also writes it to bench/.work/latest.md. Takes about seven minutes on
# 2 cores. Extra arguments go to `python -m bench` (--quick for a short smoke run, --only http
# for IAM over HTTP alone, --only sts for STS AssumeRoleWithWebIdentity exchanges over HTTP
# alone, --help).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/fedbroker ] \
    || ! .venv/bin/python -c 'import cedarpy, moto.server, boto3, fedbroker' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
fi

# IAM and STS over HTTP: wrk generates the load; fedbroker also runs on PostgreSQL (IAM).
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
    else
        echo "bench: wrk is missing; install it (Debian: sudo apt-get install wrk)" >&2
        exit 1
    fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

mkdir -p bench/.work
exec .venv/bin/python -m bench --markdown bench/.work/latest.md "$@"
