#!/usr/bin/env bash
# Startup with a large queue: writes N queue files in the documented format
# (queue-format.md: one message of ~1 KB, one pending recipient, arrival a moment ago so
# nothing expires or is warned about), starts ternd on that queue with a "*" route to a
# listener that never greets (so nothing is delivered and nothing is written back), and
# measures the time until the listener greets (it opens once msg/ is listed), until the log
# says the queue is recovered (every file read and scheduled), and ternd's RSS then,
# against the same daemon on an empty queue.
#
#   bench/queue-startup.sh [N]        N = 1000000 by default
# Knobs: TERND=build/ternd; SCRATCH=/tmp (where the queue is written; it is removed
#        afterwards); LIMIT=600 seconds to wait for the daemon to greet; QUEUE=DIR keeps the
#        generated queue in DIR (DIR/big) and reuses it on the next run with the same DIR
#        (ternd, routing to a listener that never greets, changes nothing in it); FORMAT=3
#        writes the files as tern writes them today (closing record with a CRC-32C: slow to
#        generate in Python, ~5 minutes for 1,000,000), FORMAT=1 as tern wrote them before;
#        GLIBC_TUNABLES as systemd/ternd.service sets it (glibc.malloc.hugetlb=1: the heap on
#        transparent huge pages); GLIBC_TUNABLES= (empty) measures without.
# Writing the files costs what creating a file costs on SCRATCH's file system: on an ext4
# without a journal whose directory sees much creating and deleting (a busy /tmp), each
# create scans the inodes freed in the last ~30 s (~1 ms a file), so for 1,000,000 files a
# quieter directory (SCRATCH=/var/tmp) is much faster to fill; ternd's figures do not
# depend on it.
# Prints "key value" lines, including the RAM per queued message in bytes.
set -euo pipefail
# ternd refuses root without a user: to drop to; the bench runs it as root on purpose.
ROOT_FLAG=$([ "$(id -u)" -eq 0 ] && echo --allow-root || true)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
N=${1:-1000000}
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}
TERND=${TERND:-$repo/build/ternd} LIMIT=${LIMIT:-600} FORMAT=${FORMAT:-3}
work=$(mktemp -d "${SCRATCH:-/tmp}/tern-queue-startup.XXXXXX")
QUEUE=${QUEUE:-}
big=$work/big
if [ -n "$QUEUE" ]; then
  mkdir -p "$QUEUE"
  big=$(cd "$QUEUE" && pwd)/big
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hole_port=$(free_port)
# Accepts connections (the kernel completes them from the backlog) and never greets.
timeout $((LIMIT + 600)) python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $hole_port)); s.listen(1024); time.sleep($LIMIT + 600)" &
pids+=($!)

config() {  # name port -> path of a config for queue $work/name (big: $big)
  local qdir=$work/$1
  [ "$1" = big ] && qdir=$big
  cat >"$work/$1.yaml" <<YAML
hostname: tern.bench.example
listen: [{address: "127.0.0.1:$2"}]
queue_dir: $qdir
queue_min_free: 0
log_level: info
routes: {"*": "127.0.0.1:$hole_port"}
YAML
  echo "$work/$1.yaml"
}

# Starts ternd on queue NAME and waits until it greets; prints
# "SECONDS_TO_RECOVERED SECONDS_TO_GREETING RSS_KIB HWM_KIB MESSAGES_RECOVERED"; the
# recovery time is when the log line appeared, as seen by polling it (to ~10 ms).
measure() {  # name
  local port cfg pid
  port=$(free_port)
  cfg=$(config "$1" "$port")
  launched=$(date +%s.%N)
  "$TERND" --config "$cfg" $ROOT_FLAG 2>"$work/$1.log" &
  pid=$!
  pids+=($pid)
  python3 - "$pid" "$port" "$work/$1.log" "$LIMIT" "$launched" <<'PY'
import re, socket, sys, time
pid, port, log, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
launched = float(sys.argv[5])
now = lambda: time.time() - launched  # seconds since ternd was started
recovered, count = None, "?"
while now() < limit:
    if recovered is None:
        with open(log, errors="replace") as f:
            m = re.search(r"queue: recovered (\d+)", f.read())
        if m:
            recovered, count = now(), m.group(1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if s.recv(64).startswith(b"220"):
                break
    except OSError:
        time.sleep(0.01)
else:
    print("queue-startup: ternd did not greet in time", file=sys.stderr)
    sys.exit(1)
greeted = now()
# The listener opens once msg/ is listed, before every file has been read: memory is read
# once the log says the queue is recovered.
while recovered is None and now() < limit:
    with open(log, errors="replace") as f:
        m = re.search(r"queue: recovered (\d+)", f.read())
    if m:
        recovered, count = now(), m.group(1)
    else:
        time.sleep(0.01)
if recovered is None:
    print("queue-startup: ternd did not recover in time", file=sys.stderr)
    sys.exit(1)
time.sleep(1)  # let the first dispatches settle before reading memory
st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
rss, hwm = int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0])
print(f"{recovered:.2f} {greeted:.2f} {rss} {hwm} {count}")
PY
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

# The queue files, written straight into msg/ (what a ternd that had accepted them would
# leave there after a clean stop).
gen_t0=$(date +%s.%N)
if [ -d "$big/msg" ]; then
  have=$(find "$big/msg" -maxdepth 1 -type f | wc -l)
  if [ "$have" != "$N" ]; then
    echo "queue-startup: $big/msg holds $have files, not $N; remove it or pick another QUEUE" >&2
    exit 1
  fi
else
python3 - "$big/msg" "$N" "$FORMAT" <<'PY'
import os, sys, time
d, n, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    CRC_TABLE.append(c)
def crc32c(data, crc=0):  # CRC-32C, as the closing record of format 3 needs
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
os.makedirs(d, mode=0o750)
for sub in ("tmp", "corrupt"):
    os.makedirs(os.path.join(os.path.dirname(d), sub), mode=0o750)
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, ASCII order
def encode_id(us):
    return "".join(alphabet[(us >> (5 * (10 - i))) & 31] for i in range(11))
body = (b"Received: from client.example ([127.0.0.1])\r\n\tby tern.bench.example with ESMTP id %s;\r\n"
        b"\tSun, 29 Nov 2026 12:00:00 +0000\r\nFrom: <bench@example.net>\r\nTo: <sink@example.org>\r\n"
        b"Subject: queued for the startup bench\r\n\r\n" + b"x" * 700 + b"\r\n")
start = time.time_ns() // 1000 - n - 60_000_000  # arrivals a minute ago, one per microsecond
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
for i in range(n):
    arrival = start + i
    qid = encode_id(arrival)
    data = body % qid.encode()
    head = (f"TERN-QUEUE {version}\nid {qid}\narrival {arrival}\nclient-address 127.0.0.1\n"
            f"client-port {1024 + i % 60000}\nclient-helo client.example\nclient-relay yes\n"
            f"protocol ESMTP\nsender <bench@example.net>\nrcpt <sink{i % 1000}@example.org>\n"
            f"data-size {len(data):020d}\ndata\n").encode()
    fd = os.open(qid, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=dfd)
    end = b"end %08X\n" % crc32c(head, crc32c(data)) if version >= 3 else b""
    os.write(fd, head + data + end)
    os.close(fd)
os.close(dfd)
PY
fi
gen_t1=$(date +%s.%N)
bytes=$(du -sk "$big/msg" | cut -f1)

read -r e_rec e_greet e_rss e_hwm e_count < <(measure empty)
read -r b_rec b_greet b_rss b_hwm b_count < <(measure big)
python3 - "$N" "$gen_t0" "$gen_t1" "$bytes" "$e_greet" "$e_rss" "$b_rec" "$b_greet" "$b_rss" "$b_hwm" "$b_count" <<'PY'
import sys
n, g0, g1, kib, e_greet, e_rss, b_rec, b_greet, b_rss, b_hwm, b_count = sys.argv[1:]
n = int(n)
print(f"queue_startup_messages {n}")
print(f"queue_startup_messages_recovered {b_count}")
print(f"queue_startup_generate_seconds {float(g1) - float(g0):.1f}")
print(f"queue_startup_queue_disk_mib {int(kib) / 1024:.0f}")
print(f"queue_startup_empty_greet_seconds {float(e_greet):.2f}")
print(f"queue_startup_empty_rss_kib {e_rss}")
print(f"queue_startup_recovered_seconds {float(b_rec):.2f}")
print(f"queue_startup_greet_seconds {float(b_greet):.2f}")
print(f"queue_startup_rss_kib {b_rss}")
print(f"queue_startup_hwm_kib {b_hwm}")
print(f"queue_startup_bytes_per_message {(int(b_rss) - int(e_rss)) * 1024 / n:.0f}")
print(f"queue_startup_hwm_bytes_per_message {(int(b_hwm) - int(e_rss)) * 1024 / n:.0f}")
PY
