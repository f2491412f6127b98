#!/usr/bin/env bash
# deps.sh — install what Ricochet builds and tests with (Debian 12, as root).
# Idempotent: skips apt entirely when every package is already installed.
set -euo pipefail
PKGS=(g++ cmake ninja-build ccache pkg-config python3
      libboost1.81-dev libssl-dev libc-ares-dev libidn2-dev libspdlog-dev
      libgtest-dev libbenchmark-dev libsqlite3-dev libtomlplusplus-dev libcli11-dev
      nlohmann-json3-dev libgmime-3.0-dev libcrypt-dev libjemalloc-dev zlib1g-dev
      postfix swaks logrotate libnet-ssleay-perl libio-socket-ssl-perl dnsmasq-base openssl iproute2
      clang   # libFuzzer (scripts/fuzz.sh)
      pandoc groff-base   # the man pages from docs/ (scripts/man.sh) and their test
      curl python3-prometheus-client  # HTTP API tests: a real client, and the /metrics parser
      python3-dkim python3-nacl python3-dnspython  # an independent DKIM verifier (Ed25519 needs nacl)
      chromium python3-websocket  # the dashboard's tests: a real browser, driven over CDP
      libpq-dev postgresql-15  # the PostgreSQL backend (libpq) and the server its tests start
      libunbound-dev dns-root-data nsd ldnsutils)  # DANE: DNSSEC validation, the root trust anchor; a signed test zone served by nsd
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing: ${missing[*]}"
$SUDO apt-get update -q
# postfix asks a question at install; "No configuration" leaves the system MTA off.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# postgresql-15 would create and start a cluster of its own: the tests start theirs.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/ricochet.conf > /dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
