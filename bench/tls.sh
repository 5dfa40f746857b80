#!/usr/bin/env bash
# TLS benches (issue 9): acceptance over STARTTLS, tern and a private Postfix with TLS taking
# turns run by run, and the memory of idle connections after STARTTLS on a fresh ternd.
# Both accept only (their next hop is a listener that never greets, as accept.sh SINK=hole).
# The load comes from bench/tls-source.c (compiled here); each measured run holds
# /work/notes/bench.lock (BENCH_LOCK) so it never overlaps another engineer's bench, and
# every figure line carries the load average at its start.
#
#   bench/tls.sh
# Knobs: N=4000 messages, S=20 sessions, SIZE=1024, REPS=3, RESUME=1 (the client resumes
#        each session's last TLS session; 0: a full handshake every time), POSTFIX=1,
#        IDLE=10000 idle connections (0 skips), TERND=build/ternd, TERN_PORT, PF_PORT,
#        HOLE_PORT.
set -euo pipefail
# ternd refuses root without a user: to drop to; the bench runs it as root on purpose.
ROOT_FLAG=$([ "$(id -u)" -eq 0 ] && echo --allow-root || true)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
N=${N:-4000} S=${S:-20} SIZE=${SIZE:-1024} REPS=${REPS:-3} RESUME=${RESUME:-1}
POSTFIX=${POSTFIX:-1} IDLE=${IDLE:-10000} TERND=${TERND:-$repo/build/ternd}
TERN_PORT=${TERN_PORT:-10047} PF_PORT=${PF_PORT:-10045} HOLE_PORT=${HOLE_PORT:-10046}
LOCK=${BENCH_LOCK:-/work/notes/bench.lock}
work=$(mktemp -d /tmp/tern-tls.XXXXXX)
chmod 755 "$work"
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() {
  [ "$POSTFIX" = 1 ] && "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$HOLE_PORT" stop
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=lib.sh
. "$here/lib.sh"
load() { cut -d' ' -f1-3 /proc/loadavg; }

gcc -O2 -o "$work/tls-source" "$here/tls-source.c" -lssl -lcrypto -lpthread
# One ECDSA P-256 certificate, made for this run, served by both.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench.example -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 600 "$work/key.pem"

timeout 3600 python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $HOLE_PORT)); s.listen(4096); time.sleep(3600)" &
pids+=($!)

tern_pid=
start_tern() {  # name
  { bench_config "$TERN_PORT" "$work/$1-queue" "$HOLE_PORT"
    echo "tls: {cert: $work/cert.pem, key: $work/key.pem}"; } >"$work/$1.yaml"
  "$TERND" --config "$work/$1.yaml" $ROOT_FLAG 2>"$work/$1.log" &
  tern_pid=$!
  pids+=($tern_pid)
  wait_port "$TERN_PORT"
}
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }  # user + sys, USER_HZ 100

resume_flag=
[ "$RESUME" = 1 ] && resume_flag=-r
echo "# tls $(date -Is) N=$N S=$S SIZE=$SIZE REPS=$REPS RESUME=$RESUME IDLE=$IDLE cores=$(nproc) $(openssl version)"

if [ "$N" -gt 0 ]; then
  start_tern accept
  targets=("tern:$TERN_PORT")
  if [ "$POSTFIX" = 1 ]; then
    TLS_CERT=$work/cert.pem TLS_KEY=$work/key.pem \
      "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$HOLE_PORT" start
    wait_port "$PF_PORT"
    targets+=("postfix:$PF_PORT")
  fi
  declare -A rate=()
  for r in $(seq "$REPS"); do
    for t in "${targets[@]}"; do
      name=${t%%:*} port=${t#*:}
      c0=$(cpu_s "$tern_pid")
      out=$(flock "$LOCK" sh -c "echo \"\$(cut -d' ' -f1-3 /proc/loadavg)\"; \
        exec timeout 1200 '$work/tls-source' -s '$S' -m '$N' -l '$SIZE' $resume_flag 127.0.0.1:$port" || true)
      l=$(echo "$out" | sed -n 1p) res=$(echo "$out" | sed -n 2p)
      # sent N failed F seconds T resumed R user_s U sys_s Y
      read -r _ sent _ failed _ secs _ resumed _ us _ ss <<<"$res"
      m=$(python3 -c "print(f'{$sent / $secs:.1f}')")
      extra=
      [ "$name" = tern ] && extra=", ternd CPU $(python3 -c "print(f'{($(cpu_s "$tern_pid") - $c0) / $secs * 100:.0f}')")%"
      echo "# run $r $name: $m msgs/s ($sent sent, $failed failed, $resumed resumed; client CPU" \
        "$(python3 -c "print(f'{($us + $ss) / $secs * 100:.0f}')")%$extra) load $l"
      rate[$name]+="$m "
    done
  done
  for t in "${targets[@]}"; do
    name=${t%%:*}
    # shellcheck disable=SC2086
    python3 - "$name" "$S" ${rate[$name]} <<'PY'
import statistics, sys
vals = sorted(float(v) for v in sys.argv[3:])
print(f"{sys.argv[1]}_starttls_accept_s{sys.argv[2]}_msgs_per_s min {vals[0]:.1f} median {statistics.median(vals):.1f} max {vals[-1]:.1f}")
PY
  done
  if [ "$POSTFIX" = 1 ]; then
    # shellcheck disable=SC2086
    python3 -c "
import statistics
t = statistics.median([float(v) for v in '${rate[tern]}'.split()])
p = statistics.median([float(v) for v in '${rate[postfix]}'.split()])
print(f'starttls_accept_ratio_tern_over_postfix {t / p:.2f}')"
    "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$HOLE_PORT" stop
  fi
  kill "$tern_pid"
  wait "$tern_pid" 2>/dev/null || true
fi

# IDLE connections held by tls-source on a fresh ternd (so the heap the acceptance runs left
# behind is not counted); ternd's PSS before and with them open. Mode: tls (STARTTLS,
# handshake, EHLO) or plain (EHLO only, for comparison).
idle_run() {  # mode
  local flag= l before with anon0 anon1 rss est failed secs client
  [ "$1" = plain ] && flag=-P
  start_tern "idle-$1"
  sleep 1
  exec 9>"$LOCK"
  flock 9
  l=$(load)
  before=$(awk '/^Pss:/ {print $2}' "/proc/$tern_pid/smaps_rollup")
  anon0=$(awk '/^Pss_Anon:/ {print $2}' "/proc/$tern_pid/smaps_rollup")
  timeout 1200 "$work/tls-source" -i "$IDLE" -s 20 -H 1200 $flag "127.0.0.1:$TERN_PORT" >"$work/idle.out" &
  client=$!
  for _ in $(seq 1200); do
    [ -s "$work/idle.out" ] && break
    sleep 1
  done
  sleep 2
  with=$(awk '/^Pss:/ {print $2}' "/proc/$tern_pid/smaps_rollup")
  anon1=$(awk '/^Pss_Anon:/ {print $2}' "/proc/$tern_pid/smaps_rollup")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$tern_pid/status")
  kill "$client"
  wait "$client" 2>/dev/null || true
  flock -u 9
  kill "$tern_pid"
  wait "$tern_pid" 2>/dev/null || true
  read -r _ est _ failed _ secs <"$work/idle.out"
  echo "tern_idle_$1_established $est failed $failed in $secs s (load $l)"
  echo "tern_idle_$1_pss_before_kib $before"
  echo "tern_idle_$1_pss_with_conns_kib $with (RSS $rss KiB)"
  python3 -c "print(f'tern_idle_$1_pss_mib {$with / 1024:.1f}')"
  # Per connection from the anonymous memory (the heap): the file-backed part of PSS moves
  # with how many other processes (other engineers' ternds) map the same libraries.
  echo "tern_idle_$1_pss_anon_kib before $anon0 with $anon1"
  [ "$est" -gt 0 ] && python3 -c "print(f'tern_idle_$1_kib_per_conn {($anon1 - $anon0) / $est:.2f}')"
}
if [ "$IDLE" -gt 0 ]; then
  idle_run plain
  idle_run tls
  echo "# target: tern_idle_tls_pss_mib < 400 with 10,000 connections"
fi
