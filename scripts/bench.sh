#!/usr/bin/env bash
# The benchmark in one command (see bench/README.md): installs '.[dev,bench]' (cedarpy and
# moto, the peers) into .venv if they are missing, then runs `python -m bench`, which prints a
# Markdown report and also writes it to bench/.work/latest.md. Takes about three minutes on
# 2 cores. Extra arguments go to `python -m bench` (--quick for a 30-second smoke run, --help).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/fedbroker ] || ! .venv/bin/python -c 'import cedarpy, moto, fedbroker' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
fi
mkdir -p bench/.work
exec .venv/bin/python -m bench --markdown bench/.work/latest.md "$@"
