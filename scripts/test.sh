#!/usr/bin/env bash
# One command: install everything the tests need, then lint and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check berth tests bench
exec .venv/bin/pytest -q -p no:cacheprovider "$@" tests
