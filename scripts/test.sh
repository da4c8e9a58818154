#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them all:
# lint (ruff), types (mypy --strict on src/ and examples/), import contracts (import-linter),
# pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# pysaml2, the SAML IdP the tests run, signs with the xmlsec1 program.
command -v xmlsec1 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq xmlsec1; }
# The browser sign-in tests drive Debian's chromium with Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || { apt-get update -qq && apt-get install -y -qq chromium; }
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# The AWS CLI (v1) vendors its own botocore: it lives in a venv of its own and the tests run it
# only as a subprocess.
if [ ! -x .venv-awscli/bin/aws ]; then
    "$PYTHON" -m venv .venv-awscli
    .venv-awscli/bin/python -m pip install --quiet --disable-pip-version-check awscli
fi
export FEDBROKER_TEST_AWS_CLI="$PWD/.venv-awscli/bin/aws"

# Node peers the tests start on 127.0.0.1 (tests/peers: npm oauth2-mock-server and
# oidc-provider), pinned by tests/peers/package-lock.json.
if [ ! -d tests/peers/node_modules/oauth2-mock-server ] || [ ! -d tests/peers/node_modules/oidc-provider ]; then
    (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

# PostgreSQL is part of the normal run (the store conformance suite and the API tests).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

echo "== ruff"
.venv/bin/ruff check src tests bench scripts examples
echo "== mypy (strict, src/ and examples/)"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
