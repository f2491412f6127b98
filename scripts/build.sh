#!/usr/bin/env bash
# build.sh — configure (once) and build into build/ with Ninja and ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja
cmake --build build
