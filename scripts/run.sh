#!/usr/bin/env bash
# run.sh — the README's first command: install, build, run ricochetd on the shipped config.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/bin/ricochetd --config etc/ricochet.toml "$@"
