#!/usr/bin/env bash
# test.sh — the README's second command: install, build, run every test.
#   1. the unit and integration tests, and the benchmark smoke runs (build/);
#   2. the same tests again under AddressSanitizer + UndefinedBehaviorSanitizer
#      (build-asan/; the benchmarks are skipped there: speed is not measured
#      sanitized);
#   3. a short libFuzzer run of each fuzz target (scripts/fuzz.sh, 10 s each).
# RICOCHET_QUICK=1 runs step 1 only. Extra arguments go to the first ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
[ "${RICOCHET_QUICK:-0}" = 1 ] && exit 0

# -O0 -g1: the sanitizers need no optimisation, and -O0 compiles in half the
# time of -O1 with them (25.5 s against 46.9 s for delivery.cpp).
[ -f build-asan/build.ninja ] || cmake -S . -B build-asan -G Ninja -DRICOCHET_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" >/dev/null
cmake --build build-asan
# test_faults and test_powerloss take every fourth of their distinct failure
# points here (a daemon life costs three times as much sanitized); build/ all.
RICOCHET_FAULT_STRIDE=4 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 -E '^bench\.'

scripts/fuzz.sh 10
