#!/usr/bin/env python3
"""Delivery memory: ternd's peak RSS while it delivers many large messages at once to a sink
that reads slowly, and whether every message arrived byte for byte.

  bench/memory-large.py [--count 50] [--mb 30] [--ternd build/ternd]

1. Starts ternd (a fresh queue under /tmp, a "*" route to the sink below, room for
   --count deliveries at once) and a slow sink: an asyncio SMTP server that accepts
   connections but holds its greeting until every message is queued, so that all
   deliveries run at the same time; then it reads each message in small pieces with a pause
   after each (--read-kib every --pause-ms), hashing it as it goes (SHA-256 of the message
   after dot-unstuffing, without the Received: header tern puts first).
2. Sends --count messages of --mb MB each (CRLF lines with a counter; every 500th line
   starts with a dot, to exercise dot-stuffing both ways), one connection each, --senders at
   a time, remembering each message's SHA-256.
3. Opens the gate and samples ternd's VmRSS and VmHWM from /proc every 100 ms until the sink
   has every message (or --limit seconds pass). Stops early, killing ternd, if VmRSS passes
   --max-rss-mib (default 8192).

Prints "key value" lines: peak RSS (VmHWM and the sampled maximum, MiB) while sending and
while delivering, the RSS of the idle daemon, messages delivered, whether every delivered
message matched a sent one byte for byte, and seconds taken. Loopback only; everything it
starts is stopped and its files removed at the end.
"""
import argparse
import asyncio
import hashlib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_message(seq, size):
    """A message of about `size` bytes: headers, then numbered 78-byte CRLF lines."""
    head = (f"From: <bench@example.net>\r\nTo: <sink@example.org>\r\n"
            f"Subject: large message {seq}\r\nMessage-ID: <large.{seq}@bench.example>\r\n"
            f"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    pad = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    lines = []
    n = max(1, (size - len(head)) // 80)
    for i in range(n):
        lead = "." if i % 500 == 499 else "L"
        lines.append(f"{lead}{seq:04d} {i:09d} {pad}\r\n")
    return head + "".join(lines).encode()


class SlowSink:
    """SMTP server (RFC 5321 subset tern uses) on an asyncio loop in its own thread."""

    def __init__(self, port, read_kib, pause_ms):
        self.port, self.read, self.pause = port, read_kib * 1024, pause_ms / 1000
        self.digests, self.sizes, self.errors = [], [], []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.gate = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()

    def start(self):
        self.thread.start()
        self.started.wait(10)

    def open_gate(self):
        self.loop.call_soon_threadsafe(self.gate.set)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.gate = asyncio.Event()
        server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", self.port, limit=1 << 20, backlog=512))
        self.started.set()
        self.loop.run_forever()
        server.close()

    async def _session(self, reader, writer):
        try:
            await self.gate.wait()
            writer.write(b"220 slow.sink.example ESMTP\r\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-slow.sink.example\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    await self._data(reader)
                    writer.write(b"250 2.0.0 taken\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:  # HELO, MAIL, RCPT, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            writer.close()

    async def _data(self, reader):
        h = hashlib.sha256()
        buf = b""
        state = "first"  # first line must be tern's Received:, then its continuations
        size = 0
        while True:
            chunk = await reader.read(self.read)
            if not chunk:
                raise ConnectionError("connection closed in DATA")
            await asyncio.sleep(self.pause)  # the slow reader
            buf += chunk
            lines = buf.split(b"\r\n")
            buf = lines.pop()
            for line in lines:
                if line == b".":
                    with self.lock:
                        self.digests.append(h.hexdigest())
                        self.sizes.append(size)
                    return
                if line.startswith(b"."):
                    line = line[1:]
                if state == "first":
                    state = "received" if line.startswith(b"Received:") else "body"
                    if state == "received":
                        continue
                elif state == "received":
                    if line[:1] in (b" ", b"\t"):
                        continue
                    state = "body"
                h.update(line + b"\r\n")
                size += len(line) + 2


def rss_mib(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--mb", type=float, default=30)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--read-kib", type=int, default=64)
    p.add_argument("--pause-ms", type=float, default=20)
    p.add_argument("--limit", type=float, default=900, help="seconds at most, overall")
    p.add_argument("--max-rss-mib", type=float, default=8192)
    p.add_argument("--ternd", default=os.path.join(REPO, "build", "ternd"))
    a = p.parse_args()
    t_start = time.monotonic()
    deadline = t_start + a.limit
    work = tempfile.mkdtemp(prefix="tern-memory-large.")
    tern_port, sink_port = free_port(), free_port()
    cfg = os.path.join(work, "tern.yaml")
    with open(cfg, "w") as f:
        f.write(f"""hostname: tern.bench.example
listen: [{{address: "127.0.0.1:{tern_port}"}}]
queue_dir: {work}/queue
queue_min_free: 0
log_level: info
limits: {{max_message_size: {int(a.mb * 1e6 * 1.1) + 65536}}}
routes: {{"*": "127.0.0.1:{sink_port}"}}
delivery: {{max_per_destination: {a.count}, max_in_flight: {a.count + 10}}}
""")
    sink = SlowSink(sink_port, a.read_kib, a.pause_ms)
    sink.start()
    log = open(os.path.join(work, "ternd.log"), "w")
    tern = subprocess.Popen([a.ternd, "--config", cfg] + (["--allow-root"] if os.geteuid() == 0 else []), stderr=log)
    peak = {"send": 0.0, "deliver": 0.0}
    result = {}
    stopped_early = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", tern_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        idle_rss, _ = rss_mib(tern.pid)

        phase = ["send"]
        stop_sampler = threading.Event()

        def sampler():
            nonlocal stopped_early
            while not stop_sampler.is_set():
                rss, _ = rss_mib(tern.pid)
                peak[phase[0]] = max(peak[phase[0]], rss)
                if rss > a.max_rss_mib and stopped_early is None:
                    stopped_early = f"VmRSS {rss:.0f} MiB passed --max-rss-mib"
                    tern.kill()
                stop_sampler.wait(0.1)

        threading.Thread(target=sampler, daemon=True).start()

        sent = []
        sent_lock = threading.Lock()
        size = int(a.mb * 1e6)

        def sender(seqs):
            for seq in seqs:
                if time.monotonic() > deadline or stopped_early:
                    return
                msg = make_message(seq, size)
                digest = hashlib.sha256(msg).hexdigest()
                with smtplib.SMTP("127.0.0.1", tern_port, timeout=300) as c:
                    c.sendmail("bench@example.net", ["sink@example.org"], msg)
                with sent_lock:
                    sent.append(digest)
                del msg

        seqs = list(range(a.count))
        threads = [threading.Thread(target=sender, args=(seqs[i::a.senders],)) for i in range(a.senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1, deadline - time.monotonic()))
        _, hwm_send = rss_mib(tern.pid)
        t_sent = time.monotonic()

        phase[0] = "deliver"
        sink.open_gate()
        while time.monotonic() < deadline and not stopped_early:
            with sink.lock:
                if len(sink.digests) >= len(sent):
                    break
            time.sleep(0.2)
        t_done = time.monotonic()
        stop_sampler.set()
        rss_end, hwm = rss_mib(tern.pid)
        with sink.lock:
            got = list(sink.digests)
            errors = list(sink.errors)
        matched = sorted(got) == sorted(sent) and len(sent) == a.count
        result = {
            "messages_sent": len(sent),
            "messages_delivered": len(got),
            "all_byte_for_byte": "yes" if matched else "no",
            "message_mb": a.mb,
            "idle_rss_mib": f"{idle_rss:.1f}",
            "peak_rss_mib_while_sending": f"{peak['send']:.1f}",
            "vmhwm_mib_after_sending": f"{hwm_send:.1f}",
            "peak_rss_mib_while_delivering": f"{peak['deliver']:.1f}",
            "vmhwm_mib": f"{hwm:.1f}",
            "rss_mib_at_end": f"{rss_end:.1f}",
            "send_seconds": f"{t_sent - t_start:.1f}",
            "deliver_seconds": f"{t_done - t_sent:.1f}",
            "sink_errors": len(errors),
        }
        if stopped_early:
            result["stopped_early"] = stopped_early.replace(" ", "_")
        elif time.monotonic() >= deadline:
            result["stopped_early"] = "time_limit"
    finally:
        if tern.poll() is None:
            tern.send_signal(signal.SIGTERM)
            try:
                tern.wait(30)
            except subprocess.TimeoutExpired:
                tern.kill()
                tern.wait()
        sink.stop()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    for k, v in result.items():
        print(f"memory_large_{k} {v}")
    return 0 if result.get("all_byte_for_byte") == "yes" else 1


if __name__ == "__main__":
    sys.exit(main())
