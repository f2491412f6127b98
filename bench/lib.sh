# lib.sh — what bench/disk.sh and bench/disk_soak.sh share (sourced, not run):
# a free loopback port, the configuration of a ricochetd that relays
# example.com to a local smtp-sink, and starting the sink and the daemon.
# Callers set W (work dir), B (build dir) and a cleanup trap that stops
# $RPID and $SPID.

bench_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_relay_config SERVER_EXTRA TOML_EXTRA: writes $W/r.toml for ports $IN
# (submission), $SINK (the sink) and $BNC (bounce listener).
bench_relay_config() {
  cat >"$W/r.toml" <<CFG
[server]
hostname = "ricochet.bench.invalid"
spool_dir = "$W/spool"
state = "sqlite:$W/state.db"
control_socket = "$W/ricochetd.sock"
events_log = "$W/events.jsonl"
log_level = "warn"
$1
[submission]
listen = ["127.0.0.1:$IN"]
[delivery]
tls = "off"
dns_servers = ["127.0.0.1:9"]
[[delivery.route]]
domain = "example.com"
host = "127.0.0.1:$SINK"
[bounce_listener]
listen = ["127.0.0.1:$BNC"]
[http]
listen = []
[bounce]
rules = "$PWD/etc/bounce-rules.toml"
$2
CFG
}

# Starts smtp-sink on $SINK and ricochetd on $W/r.toml (SPID, RPID), and
# waits (bounded) until the daemon listens on $IN. With SINK_LOG set, the
# sink counts (-c: "sess=A quit=B mesg=C" records) into that file.
bench_start() {
  local as_user=
  [ "$(id -u)" = 0 ] && as_user="-u nobody"
  if [ -n "${SINK_LOG:-}" ]; then
    smtp-sink $as_user -c "127.0.0.1:$SINK" 1000 >"$SINK_LOG" 2>&1 &
  else
    smtp-sink $as_user "127.0.0.1:$SINK" 1000 &
  fi
  SPID=$!
  "$B/bin/ricochetd" --config "$W/r.toml" >"$W/ricochetd.log" 2>&1 &
  RPID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$IN") 2>/dev/null && break; sleep 0.05; done
}

# A Postfix instance in $PFB listening on $PIN and relaying to $SINK, for up
# to $1 concurrent clients, started and waited for (bounded).
bench_postfix_start() {
  IN_PORT=$PIN OUT_PORT=$SINK CONC=$1 PFB=$PFB bash bench/harness/postfix/pfbench.sh setup >/dev/null
  PFB=$PFB bash bench/harness/postfix/pfbench.sh start >/dev/null 2>&1
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PIN") 2>/dev/null && break; sleep 0.05; done
}

# Stops what bench_start and bench_postfix_start started and removes $W.
# Every step may fail (a process already gone) without skipping the rest:
# under set -e a failed wait used to end an EXIT trap before Postfix was
# stopped and the work directory removed.
bench_cleanup() {
  [ -z "${RPID:-}" ] || { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; } || true
  [ -z "${SPID:-}" ] || { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; } || true
  [ -z "${PFB:-}" ] || PFB=$PFB bash bench/harness/postfix/pfbench.sh stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
