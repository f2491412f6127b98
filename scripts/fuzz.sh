#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer targets (clang, ASan + UBSan) into
# build-fuzz/ and runs each: first over its saved regression inputs
# (fuzz/regressions/TARGET/, every crash ever found), then fuzzing from its
# seeds (fuzz/seeds/TARGET/, plus the bounce corpus for the DSN parser) for
# SECONDS. A crash leaves its input in build-fuzz/crashes/ and fails.
#
#   scripts/fuzz.sh [SECONDS=20] [TARGET...]     targets: smtp_command smtp_reply dsn config event_json http_request unsubscribe dkim_canon seven_bit mta_sts rules journal
#
# CI runs 10 s per target; a longer run: scripts/fuzz.sh 3600 dsn
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-20}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(smtp_command smtp_reply dsn config event_json http_request unsubscribe dkim_canon seven_bit mta_sts rules journal)
scripts/deps.sh
[ -f build-fuzz/build.ninja ] || CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DRICOCHET_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
cmake --build build-fuzz --target "${TARGETS[@]/#/fuzz_}"
mkdir -p build-fuzz/crashes
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${TARGETS[@]}"; do
  bin=build-fuzz/bin/fuzz_$t
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    echo "== $t: regression inputs"
    "$bin" fuzz/regressions/$t/*
  fi
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  seeds=(fuzz/seeds/$t)
  [ "$t" = dsn ] && seeds+=(tests/data/bounces/dev)
  echo "== $t: fuzzing for ${SECONDS_EACH}s"
  rc=0
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix=build-fuzz/crashes/"$t"- -print_final_stats=1 "$work" "${seeds[@]}" \
    >build-fuzz/$t.log 2>&1 || rc=$?
  grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|ERROR|SUMMARY|Test unit written" build-fuzz/$t.log || true
  if [ "$rc" != 0 ]; then
    tail -n 40 build-fuzz/$t.log >&2
    echo "fuzz_$t found a crash: see build-fuzz/crashes/ (add it to fuzz/regressions/$t/ with the fix)" >&2
    exit 1
  fi
done
