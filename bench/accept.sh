#!/usr/bin/env bash
# Acceptance throughput, repeated and interleaved: tern (and optionally a second ternd build,
# and a private Postfix) take turns receiving the same smtp-source load, REPS times each, so
# a noisy machine hurts every contender alike. Prints min/median/max msgs/s and the sync
# calls (fsync + fdatasync, counted system-wide by perf's syscall tracepoints) per message.
#
#   bench/accept.sh                 1 session and 20 sessions, tern and Postfix
# Knobs: S="1 20" session counts; N1=2000 messages at 1 session, N=5000 at more; SIZE=1024;
#        REPS=3; SINK=relay (smtp-sink behind a "*" route; both MTAs deliver while they
#        accept) or SINK=hole (a listener that never greets: accept-only, nothing delivered);
#        TERND=build/ternd; TERND_B=other/ternd (a second build, e.g. with a patch);
#        POSTFIX=1 (0 skips Postfix); QUEUE_ROOT=DIR puts tern's queues there (a tmpfs such
#        as /dev/shm shows what is left when a sync costs nothing); TERN_PORT, TERN_B_PORT,
#        PF_PORT, SINK_PORT.
set -euo pipefail
# ternd refuses root without a user: to drop to; the bench runs it as root on purpose.
ROOT_FLAG=$([ "$(id -u)" -eq 0 ] && echo --allow-root || true)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
S=${S:-"1 20"} N1=${N1:-2000} N=${N:-5000} SIZE=${SIZE:-1024} REPS=${REPS:-3}
SINK=${SINK:-relay} POSTFIX=${POSTFIX:-1}
TERND=${TERND:-$repo/build/ternd} TERND_B=${TERND_B:-}
TERN_PORT=${TERN_PORT:-10037} TERN_B_PORT=${TERN_B_PORT:-10038} PF_PORT=${PF_PORT:-10035}
SINK_PORT=${SINK_PORT:-10036}
work=$(mktemp -d /tmp/tern-accept.XXXXXX)
qroot=$(mktemp -d "${QUEUE_ROOT:-$work}/tern-queues.XXXXXX")
chmod 755 "$work"
ulimit -n "$(ulimit -Hn)"
have_perf=0
perf stat -e syscalls:sys_enter_fsync true >/dev/null 2>&1 && have_perf=1

pids=()
cleanup() {
  [ "$POSTFIX" = 1 ] && "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$SINK_PORT" stop
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$qroot"
}
trap cleanup EXIT

# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "$SINK" = hole ]; then
  # Accepts connections (the kernel completes them from the backlog) and never greets:
  # every delivery attempt waits for a greeting, so the MTAs only accept. Ends by itself.
  timeout 1800 python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $SINK_PORT)); s.listen(4096); time.sleep(1800)" &
else
  smtp-sink -u nobody -c 127.0.0.1:"$SINK_PORT" 1024 >"$work/sink.out" 2>&1 &
fi
pids+=($!)

start_tern() {  # binary port name
  bench_config "$2" "$qroot/$3-queue" "$SINK_PORT" >"$work/$3.yaml"
  "$1" --config "$work/$3.yaml" $ROOT_FLAG 2>"$work/$3.log" &
  pids+=($!)
}
targets=("tern:$TERN_PORT")
start_tern "$TERND" "$TERN_PORT" tern
if [ -n "$TERND_B" ]; then
  start_tern "$TERND_B" "$TERN_B_PORT" tern_b
  targets+=("tern_b:$TERN_B_PORT")
fi
if [ "$POSTFIX" = 1 ]; then
  "$here/postfix-instance.sh" "$work/postfix" "$PF_PORT" "$SINK_PORT" start
  targets+=("postfix:$PF_PORT")
fi
wait_port "$SINK_PORT"
for t in "${targets[@]}"; do wait_port "${t#*:}"; done

# One smtp-source run; prints "MSGS_PER_S SYNCS_PER_MSG".
one_run() {  # port sessions count
  local t0 t1 syncs=nan
  t0=$(date +%s.%N)
  if [ "$have_perf" = 1 ]; then
    perf stat -a -x, -o "$work/perf.csv" -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -- \
      smtp-source -s "$2" -m "$3" -l "$SIZE" -f bench@example.net -t sink@example.org "127.0.0.1:$1"
    syncs=$(awk -F, -v n="$3" '/sys_enter/ {s += $1} END {printf "%.2f", s / n}' "$work/perf.csv")
  else
    smtp-source -s "$2" -m "$3" -l "$SIZE" -f bench@example.net -t sink@example.org "127.0.0.1:$1"
  fi
  t1=$(date +%s.%N)
  python3 -c "print(f'{$3 / ($t1 - $t0):.1f} $syncs')"
}

settle() {  # lets delivery catch up between runs, so each run starts from a drained queue
  [ "$SINK" = relay ] || return 0
  python3 "$here/benchlib.py" settle --sink-file "$work/sink.out"
}

summary() {  # key values...
  python3 - "$@" <<'PY'
import statistics, sys
key, vals = sys.argv[1], sorted(float(v) for v in sys.argv[2:])
print(f"{key} min {vals[0]:.1f} median {statistics.median(vals):.1f} max {vals[-1]:.1f}")
PY
}

echo "# accept $(date -Is) S='$S' N1=$N1 N=$N SIZE=$SIZE REPS=$REPS SINK=$SINK cores=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg)"
for s in $S; do
  count=$N
  [ "$s" = 1 ] && count=$N1
  declare -A rate=() sync=()
  for r in $(seq "$REPS"); do
    for t in "${targets[@]}"; do
      name=${t%%:*} port=${t#*:}
      settle
      read -r m y < <(one_run "$port" "$s" "$count")
      rate[$name]+="$m " sync[$name]+="$y "
      echo "# run $r $name s$s: $m msgs/s, $y syncs/msg"
    done
  done
  for t in "${targets[@]}"; do
    name=${t%%:*}
    # shellcheck disable=SC2086
    summary "${name}_accept_s${s}_msgs_per_s" ${rate[$name]}
    # shellcheck disable=SC2086
    [ "$have_perf" = 1 ] && summary "${name}_accept_s${s}_syncs_per_msg" ${sync[$name]}
  done
  unset rate sync
done
