#!/usr/bin/python3
"""Draining a node (issue: operating tern): two ternd on loopback, node A and node B, each
with its own queue, port and control socket.
  Mail on A waits for an MX that is down (deferred); one message has a recipient already
  delivered by A; one is held by the operator; one is in flight to a slow MX when the export
  starts.
  `ternctl export --all FILE` on A: refused for an existing FILE (nothing held); then waits
  for the attempt in flight (its message is delivered by A, so not exported), writes the
  archive (mode 0600) and leaves A's queue empty.
  `ternctl import FILE` on B: one line per message, new ids, arrival time, per-recipient state
  and attempts kept, the held message still held; once the MX is up B delivers each message
  exactly once (not the recipient A had delivered); a second import refuses every message,
  also after B lost its index of imports in a crash (rebuilt at startup from the queue) and
  after the messages were delivered; a cut-off archive is refused whole, a damaged message
  alone.
  A restart of A with a queue file carrying `!exported` (a crash between the record and the
  unlink) removes the file instead of delivering it."""
import json
import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

IMPORTED_RE = re.compile(r"^(\S+) from (\S+): imported as ([0-9A-HJKMNP-TV-Z]{11})$")


def ctl(t, *args, rc=0, timeout=10):
    p = sinks.ternctl(t, *args, timeout=timeout)
    h.check(p.returncode == rc, f"{t.name}: ternctl {' '.join(args)} exits {rc}",
            f"rc={p.returncode} {p.stdout}{p.stderr}")
    return p


def listing(t):
    return {m["id"]: m for m in json.loads(ctl(t, "queue", "--json").stdout)}


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("drain.example", "MX", (10, "mx.drain.example")), ("mx.drain.example", "A", "127.0.0.2"),
        ("slow.example", "MX", (10, "mx.slow.example")), ("mx.slow.example", "A", "127.0.0.3"),
        ("partial.example", "MX", (10, "mx.partial.example")), ("mx.partial.example", "A", "127.0.0.4"),
    ])
    drain = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "drain"), start=False)
    slow = sinks.add_sink(ctx, sinks.ScriptedSink("127.0.0.3", port, "slow", read_rate=20000))
    partial = sinks.add_sink(ctx, sinks.Sink("127.0.0.4", port, "partial"))
    a = ctx.tern("node-a", hostname="node-a.example",
                 **sinks.delivery_overrides(port, dns_port, retry=("60s", "120s", 2))).start()
    b = ctx.tern("node-b", hostname="node-b.example", **sinks.delivery_overrides(port, dns_port)).start()

    h.step("node A: mail deferred (MX down), one recipient delivered, one message held")
    q1 = sinks.send(a, "alice@client.example", ["u1@drain.example"], sinks.body("one", "first body\r\n"))
    q2 = sinks.send(a, "alice@client.example", ["v1@drain.example", "w@partial.example"], sinks.body("two"))
    q3 = sinks.send(a, "bob@client.example", ["u3@drain.example"], sinks.body("three"))
    sinks.wait_delivery(a, q1, "u1@drain.example", "deferred", timeout=20)
    sinks.wait_delivery(a, q2, "w@partial.example", "sent", timeout=20)
    # (v1 may wait for the probe of its destination, which is down, without an attempt)
    sinks.wait_until(lambda: {q1, q2, q3} <= set(listing(a)), 20, "all three are queued on A")
    h.check(f"{q3}: held" in ctl(a, "hold", q3).stdout, "q3 held by the operator")
    before = listing(a)
    with open(os.path.join(a.msg_dir(), q1), "rb") as f:
        q1_file = f.read()  # for the restart check at the end

    h.step("export to an existing file is refused, and holds nothing")
    archive = ctx.path("drain.archive")
    with open(archive, "w") as f:
        f.write("not an archive\n")
    p = ctl(a, "export", "--all", archive, rc=1)
    h.check("never overwritten" in p.stderr, "says why", p.stderr)
    h.check(listing(a)[q1]["held"] is False, "q1 was not held")
    os.unlink(archive)
    ctl(a, "export", "00000000000", archive, rc=1)  # unknown id
    h.check(not os.path.exists(archive), "no archive is left for an unknown id")

    h.step("a message in flight when the export starts")
    big = sinks.body("slow", "x" * 998 + "\r\n") + ("y" * 998 + "\r\n").encode() * 120
    q4 = sinks.send(a, "alice@client.example", ["u4@slow.example"], big)
    sinks.wait_until(lambda: b"DATA" in b" ".join(slow.verbs), 20, "the slow MX is receiving the data")

    h.step("export --all from A (relative FILE, resolved by ternctl)")
    p = sinks.ternctl(a, "export", "--all", os.path.relpath(archive), timeout=120)
    h.check(p.returncode == 0, "export exits 0", f"rc={p.returncode} {p.stdout}{p.stderr}")
    out = p.stdout
    for q in (q1, q2, q3):
        h.check(f"{q}: exported" in out, f"{q} exported", out)
    h.check(f"{q4}: not exported" in out, "the message in flight was delivered by A, not exported", out)
    h.check(len(slow.finished()) == 1, "the slow MX got it once")
    sent4 = sinks.wait_delivery(a, q4, "u4@slow.example", "sent", timeout=5)[0]
    log = a.log()
    held4 = log.find(f"qmgr: id={q4} held for export")
    h.check(0 <= held4 < log.find(sent4.line), "q4 was held while its attempt was in flight, and waited for",
            a.log_tail(30))
    st = os.stat(archive)
    h.check_eq(stat.S_IMODE(st.st_mode), 0o600, "the archive is mode 0600")
    with open(archive, "rb") as f:
        h.check(f.read(15) == b"TERN-ARCHIVE 1\n", "the archive starts with its magic line")
    h.check_eq(a.queue_ids(), [], "A's queue directory is empty")
    h.check_eq(listing(a), {}, "A's queue listing is empty")
    for q in (q1, q2, q3):
        a.wait_log(f"qmgr: id={q} exported by uid=")

    h.step("a cut-off copy of the archive is refused whole on B")
    with open(archive, "rb") as f:
        raw = f.read()
    cut = ctx.path("cut.archive")
    with open(cut, "wb") as f:
        f.write(raw[:len(raw) * 2 // 3])
    p = ctl(b, "import", cut, rc=1)
    h.check("truncated" in p.stderr or "damaged" in p.stderr, "says the archive is cut off", p.stderr)
    h.check_eq(listing(b), {}, "nothing queued on B")

    h.step("import on B: one line per message, new ids, state kept")
    p = ctl(b, "import", archive, timeout=60)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    h.check_eq(len(lines), 3, "one line per message")
    new = {}
    for ln in lines:
        m = IMPORTED_RE.match(ln)
        h.check(m is not None, "imported as NEWID", ln)
        h.check_eq(m.group(2), "node-a.example", "the origin is node A")
        new[m.group(1)] = m.group(3)
    h.check_eq(set(new), {q1, q2, q3}, "the three exported messages")
    h.check(not set(new.values()) & {q1, q2, q3}, "new queue ids", repr(new))
    lb = listing(b)
    h.check_eq(set(lb), set(new.values()), "B lists them")
    for q in (q1, q2, q3):
        h.check_eq(lb[new[q]]["arrival"], before[q]["arrival"], f"{q}: arrival time kept")
        h.check_eq(lb[new[q]]["sender"], before[q]["sender"], f"{q}: sender kept")
    r2 = {r["address"]: r for r in lb[new[q2]]["recipients"]}
    h.check_eq(r2["w@partial.example"]["state"], "delivered", "q2: w (delivered by A) stays delivered")
    a2 = {r["address"]: r for r in before[q2]["recipients"]}
    h.check(r2["v1@drain.example"]["state"] in ("pending", "deferred"), "q2: v1 still open", repr(r2))
    r1 = lb[new[q1]]["recipients"][0]
    a1 = before[q1]["recipients"][0]
    h.check_eq(r1["state"], "deferred", "q1: u1 still deferred")
    h.check(r1["attempts"] >= a1["attempts"] >= 1, "q1: attempts kept", f"{r1!r} vs {a1!r}")
    h.check_eq(r1["last_reply"], a1["last_reply"], "q1: last reply kept")
    h.check(lb[new[q3]]["held"] is True and lb[new[q1]]["held"] is False, "q3 still held, q1 not")
    with open(os.path.join(b.msg_dir(), new[q1]), "rb") as f:
        head = f.read(4096)
    h.check(f"\norigin node-a.example {q1}\n".encode() in head, "B's queue file names the origin")
    b.wait_log(f"qmgr: id={new[q1]} imported from node-a.example {q1}")
    out = ctl(b, "show", new[q1]).stdout
    h.check(f"imported: from node-a.example, queue id {q1} there" in out, "show names the origin", out)
    h.check("recipient: <u1@drain.example> state=deferred" in out and " deferred relay=" in out,
            "show lists the deferral from node A", out)

    h.step("a second import of the same archive refuses every message")
    p = ctl(b, "import", archive, rc=1, timeout=60)
    refused = [ln for ln in p.stderr.splitlines() if ln.endswith(": already imported")]
    h.check_eq(len(refused), 3, "three 'already imported' lines")
    h.check_eq(set(listing(b)), set(new.values()), "nothing new queued on B")
    bad = ctx.path("bad.archive")
    at = raw.find(b"first body")
    with open(bad, "wb") as f:
        f.write(raw[:at] + b"F" + raw[at + 1:])
    p = ctl(b, "import", bad, rc=1)
    # (a damaged entry is named by its place: nothing in it can be trusted, not even its id)
    h.check(re.search(r"^message 1: refused: checksum mismatch", p.stderr, re.M) is not None,
            "a damaged message is refused by its checksum", p.stderr)
    h.check_eq(p.stderr.count(": already imported"), 2, "the intact ones are known")
    h.check_eq(set(listing(b)), set(new.values()), "still nothing new queued on B")

    h.step("restart of B after losing its index (a crash before the index write): repaired at startup")
    index = os.path.join(b.queue_dir, "imported")
    with open(index) as f:
        h.check_eq(len(f.read().splitlines()), 3, "B's index has a line per imported message")
    b.stop()
    os.unlink(index)
    b.start()
    b.wait_log("added imported message(s) found at startup")
    with open(index) as f:
        lines = f.read().splitlines()
    h.check_eq(sorted(ln.split(" ")[1] for ln in lines), sorted([q1, q2, q3]), "the index is whole again")
    lb = listing(b)
    h.check(lb[new[q3]]["held"] is True, "q3 still held after B's restart")
    h.check_eq({r["address"]: r["state"] for r in lb[new[q2]]["recipients"]}["w@partial.example"], "delivered",
               "q2: w still delivered after B's restart")

    h.step("the MX comes up: B delivers each message exactly once")
    drain.start()
    ctl(b, "flush")
    sinks.wait_delivery(b, new[q1], "u1@drain.example", "sent", timeout=30)
    sinks.wait_delivery(b, new[q2], "v1@drain.example", "sent", timeout=30)
    h.check(f"{new[q3]}: released" in ctl(b, "release", new[q3]).stdout, "release q3 on B")
    sinks.wait_delivery(b, new[q3], "u3@drain.example", "sent", timeout=30)
    sinks.wait_queue_empty(b, 15, "B's queue is empty")
    time.sleep(1.0)
    h.check_eq(drain.rcpt_counts(), {"u1@drain.example": 1, "v1@drain.example": 1, "u3@drain.example": 1},
               "each recipient got exactly one copy")
    h.check_eq(partial.rcpt_counts(), {"w@partial.example": 1}, "w got only A's copy")
    got = [m for m in drain.messages() if "u1@drain.example" in m.rcpt_tos][0]
    h.check(b"first body" in got.data and b"Subject: one" in got.data, "the body came through")
    h.check_eq(got.mail_from, "alice@client.example", "the envelope sender came through")
    h.check(not sinks.deliveries(a, q1, status="sent"), "A never delivered q1")
    ctl(b, "import", archive, rc=1, timeout=60)  # delivered and gone: still refused (the index)

    h.step("restart of A with an !exported queue file: removed, not delivered")
    a.stop()
    with open(os.path.join(a.msg_dir(), q1), "wb") as f:
        f.write(q1_file + b"!exported 1764066540000000\n")
    a.start()
    a.wait_log(f"queue: id={q1} was exported to an archive: removed")
    h.check_eq(a.queue_ids(), [], "the file is gone")
    time.sleep(1.0)
    h.check_eq(drain.rcpt_counts()["u1@drain.example"], 1, "no second copy")


h.main(scenario)
