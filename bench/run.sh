#!/usr/bin/env bash
# tern and a private Postfix measured side by side in one run: acceptance (20 sessions and
# 1), end-to-end relay to a local smtp-sink, unloaded latency, memory and idle connections.
# Prints one "key value" line per figure, then the tern/Postfix ratios.
#
#   bench/run.sh            (needs build/ternd; installs Postfix for smtp-source if missing)
# Knobs: N=10000 messages at S=20 sessions, N1=3000 messages at 1 session, SIZE=1024 bytes,
#        IDLE=10000 idle connections (Postfix holds at most its process limit of 100),
#        LAT_N=50 latency probes.
set -euo pipefail
# ternd refuses root without a user: to drop to; the bench runs it as root on purpose.
ROOT_FLAG=$([ "$(id -u)" -eq 0 ] && echo --allow-root || true)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
N=${N:-10000} S=${S:-20} N1=${N1:-3000} SIZE=${SIZE:-1024} IDLE=${IDLE:-10000} LAT_N=${LAT_N:-50}
TERN_PORT=${TERN_PORT:-10027} PF_PORT=${PF_PORT:-10025} SINK_PORT=${SINK_PORT:-10026}
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
chmod 755 "$work"  # Postfix daemons run as the postfix user
"$repo/packaging/deps.sh" bench
[ -x "$repo/build/ternd" ] || "$repo/packaging/build.sh"
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() {
  "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$SINK_PORT" stop
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=lib.sh
. "$here/lib.sh"

# The sink both MTAs relay to (tern through a "*" route, Postfix through relayhost).
smtp-sink -u nobody -c 127.0.0.1:"$SINK_PORT" 1024 >"$work/sink.out" 2>&1 &
pids+=($!)

bench_config "$TERN_PORT" "$work/tern-queue" "$SINK_PORT" >"$work/tern.yaml"
"$repo/build/ternd" --config "$work/tern.yaml" $ROOT_FLAG 2>"$work/ternd.log" &
tern_pid=$!
pids+=($tern_pid)
"$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$SINK_PORT" start
wait_port "$SINK_PORT"
wait_port "$TERN_PORT"
wait_port "$PF_PORT"
pf_pid=$(cat "$work/postfix/spool/pid/master.pid" | tr -d ' ')

lib() { python3 "$here/benchlib.py" "$@"; }
declare -A fig
measure() {  # name port pids
  local name=$1 port=$2 p=$3 line
  while read -r k v; do
    fig[${name}_$k]=$v
    echo "${name}_$k $v"
  done < <(lib settle --sink-file "$work/sink.out"
           lib load --port "$port" --sessions "$S" --count "$N" --size "$SIZE" --pids "$p"
           lib settle --sink-file "$work/sink.out"
           lib load --port "$port" --sessions 1 --count "$N1" --size "$SIZE" --pids "$p"
           lib settle --sink-file "$work/sink.out"
           lib e2e --port "$port" --sessions "$S" --count "$N" --size "$SIZE" --sink-file "$work/sink.out"
           lib settle --sink-file "$work/sink.out"
           lib latency --port "$port" --count "$LAT_N" --sink-file "$work/sink.out"
           lib idle --port "$port" --conns "$IDLE" --pids "$p")
}
echo "# bench $(date -Is) N=$N S=$S N1=$N1 SIZE=$SIZE IDLE=$IDLE cores=$(nproc)"
measure tern "$TERN_PORT" "$tern_pid"
measure postfix "$PF_PORT" "$pf_pid"
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }
echo "ratio_accept_s${S} $(ratio "${fig[tern_accept_s${S}_msgs_per_s]}" "${fig[postfix_accept_s${S}_msgs_per_s]}")"
echo "ratio_accept_s1 $(ratio "${fig[tern_accept_s1_msgs_per_s]}" "${fig[postfix_accept_s1_msgs_per_s]}")"
echo "ratio_e2e_s${S} $(ratio "${fig[tern_e2e_s${S}_msgs_per_s]}" "${fig[postfix_e2e_s${S}_msgs_per_s]}")"
echo "ratio_latency_median $(ratio "${fig[tern_latency_ms_median]}" "${fig[postfix_latency_ms_median]}")"
echo "tern_messages_left_in_queue $(ls "$work/tern-queue/msg" | wc -l)"
