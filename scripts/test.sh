#!/usr/bin/env bash
# Set up and run the whole test suite on the embedded defaults (or DATABASE_URL /
# KAFKA_BOOTSTRAP_SERVERS when set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
