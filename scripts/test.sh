#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them all:
# lint (ruff), types (mypy --strict on src/), import contracts (import-linter), pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check src tests bench scripts
echo "== mypy (strict, src/)"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
