#!/usr/bin/env bash
# test.sh — the README's second command: install, build, run every test (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
