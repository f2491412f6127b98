#!/usr/bin/env bash
# dkim.sh — what DKIM signing costs in the relay benchmark: this build with
# a "*" [[dkim]] entry (every message signed) against the same build without,
# in one run, reps alternating (bench/relay.sh's A/B), once with an RSA-2048
# key and once with an Ed25519 key. Prints relayed messages/s and CPU µs per
# message for each pair and their ratios.
#
#   bench/dkim.sh [N=20000] [SIZE=4096] [CONC=50] [REPS=3]
# Needs what bench/relay.sh needs (root, Postfix's smtp-source and smtp-sink).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000} SIZE=${2:-4096} CONC=${3:-50} REPS=${4:-3}
scripts/build.sh >/dev/null
K=$(mktemp -d /tmp/ricochet-dkim-bench.XXXXXX)
trap 'rm -rf "$K"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$K/ed.pem" 2>/dev/null
for kind in rsa ed; do
  echo "== DKIM $([ $kind = rsa ] && echo RSA-2048 || echo Ed25519) (ricochet) vs no DKIM (baseline), same build"
  RICOCHET_EXTRA=$(printf '[[dkim]]\ndomain = "*"\nselector = "bench"\nkey_file = "%s"\n' "$K/$kind.pem") \
  BASELINE=build RICOCHET_BUILD=build AB_ONLY=1 bench/relay.sh "$N" "$SIZE" "$CONC" "$REPS" | grep -E '^#|^A/B'
done
