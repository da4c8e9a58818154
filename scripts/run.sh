#!/usr/bin/env bash
# Installs fedbroker into .venv and runs the broker on its embedded default: SQLite and a
# development master key in ./data, listening on 127.0.0.1:8080. On the first run it creates
# the account and an administrator whose access key is profile `fedbroker-admin` in
# ./data/credentials (development only). Extra arguments go to `fedbroker serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

if [ ! -f data/fedbroker.db ]; then
    .venv/bin/fedbroker init --data-dir data --bootstrap-admin admin \
        --credentials-file data/credentials --profile fedbroker-admin
    echo "try: AWS_SHARED_CREDENTIALS_FILE=data/credentials aws --profile fedbroker-admin \\"
    echo "       --region us-east-1 --endpoint-url http://127.0.0.1:8080 iam list-users"
fi
exec .venv/bin/fedbroker serve --data-dir data "$@"
