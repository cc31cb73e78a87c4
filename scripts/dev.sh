#!/usr/bin/env bash
# Set up, start the embedded Postgres and Kafka-compatible broker, migrate, run every service
# and publish the demo requests. Ctrl-C stops everything. Extra arguments go to `ipfleet dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh embedded
exec .venv/bin/ipfleet dev --demo "$@"
