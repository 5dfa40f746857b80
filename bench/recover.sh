#!/usr/bin/env bash
# Startup with a large queue: generates N queue files (bench/queue-gen.py, 1 KB messages) in a
# scratch directory, starts ternd on them and reports how long recovery took (from ternd's
# "starting" log line to its "queue: recovered" line), warm (files in the page cache) and,
# with COLD=1 as root, after dropping the page cache. The scratch directory is removed at the
# end unless KEEP=1.
#
# Knobs: N (1000000), SCRATCH (/work/scratch), TERND (build/ternd), COLD (0), KEEP (0),
# QUEUE (a queue_dir queue-gen.py filled before: used instead of generating one).
set -euo pipefail
# ternd refuses root without a user: to drop to; the bench runs it as root on purpose.
ROOT_FLAG=$([ "$(id -u)" -eq 0 ] && echo --allow-root || true)
cd "$(dirname "$0")/.."
N=${N:-1000000}
SCRATCH=${SCRATCH:-/work/scratch}
TERND=${TERND:-build/ternd}
mkdir -p "$SCRATCH"
dir=$(mktemp -d "$SCRATCH/tern-recover-XXXXXX")
chmod 0750 "$dir"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"; }
trap cleanup EXIT

if [ -n "${QUEUE:-}" ]; then
  ln -s "$QUEUE" "$dir/queue"  # an existing generated queue (left in place)
else
  t0=$(date +%s.%N)
  python3 bench/queue-gen.py "$dir/queue" "$N"
  t1=$(date +%s.%N)
  echo "generate_seconds $(echo "$t1 - $t0" | bc)"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/tern.yaml" <<YAML
hostname: relay.example.net
listen:
  - address: 127.0.0.1:$port
queue_dir: $dir/queue
queue_min_free: "0"
postmaster: hostmaster@example.net
relay:
  networks: [127.0.0.1/32]
  domains: [partner.example]
dns:
  forwarders: ["127.0.0.1@9"]
  trust_anchor: none
YAML

# One run: start ternd, wait for the recovery line, kill it; prints the seconds and the RSS.
run() {
  local label=$1 log="$dir/ternd-$1.log"
  "$TERND" --config "$dir/tern.yaml" $ROOT_FLAG >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 6000); do
    grep -q "queue: recovered" "$log" && break
    kill -0 $pid 2>/dev/null || { echo "ternd exited:"; tail -5 "$log"; exit 1; }
    sleep 0.05
  done
  local rss
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -9 $pid; wait $pid 2>/dev/null || true
  python3 - "$log" "$label" "$rss" <<'PY'
import datetime, re, sys
log, label, rss = sys.argv[1], sys.argv[2], sys.argv[3]
def ts(pat):
    for line in open(log, errors="replace"):
        if pat in line:
            return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
    sys.exit(f"no '{pat}' line in {log}")
took = (ts("queue: recovered") - ts("ternd: starting")).total_seconds()
line = next(l for l in open(log) if "queue: recovered" in l)
n = re.search(r"recovered (\d+) message", line).group(1)
print(f"recover_{label}_seconds {took:.2f}")
print(f"recover_{label}_messages {n}")
print(f"recover_{label}_peak_rss_kib {rss}")
PY
}

run warm
if [ "${COLD:-0}" = 1 ]; then
  sync
  echo 3 > /proc/sys/vm/drop_caches
  run cold
fi
