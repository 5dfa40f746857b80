#!/usr/bin/python3
"""Queue format evolution at startup (queue-format.md, Format evolution). A queue written
before start-up holds: a version-1 file (still read), a version-2 file with an optional record
this tern does not know (read, the record skipped), a file an operator deleted (`!deleted`:
unlinked), a file with a must-understand record this tern does not know and one of a newer
format version (both left in msg/ byte for byte, neither delivered nor set aside, and logged),
and a held one (`!held`: loaded)."""
import importlib.util
import os
import time

import harness as h

_spec = importlib.util.spec_from_file_location(
    "queue_gen", os.path.join(h.SOURCE_DIR, "bench", "queue-gen.py"))
queue_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queue_gen)

BODY = b"Subject: evolution\r\n\r\nbody\r\n"


def scenario(ctx):
    t = ctx.tern()
    msg = t.msg_dir()
    for d in ("msg", "tmp", "corrupt"):
        os.makedirs(os.path.join(t.queue_dir, d))
    os.chmod(t.queue_dir, 0o750)
    now = int(time.time() * 1e6)

    def write(n, trailer=b"", edit=None):
        qid = queue_gen.write_message(msg, now + n, "a@client.example", ["b@partner.example"], BODY,
                                      trailer)
        if edit:
            path = os.path.join(msg, qid)
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(edit(data))
        return qid

    v1 = write(1, edit=lambda d: d.replace(b"TERN-QUEUE 2\n", b"TERN-QUEUE 1\n", 1))
    optional = write(2, b"a-future-note whatever\n",
                     edit=lambda d: d.replace(b"protocol ESMTP\n", b"protocol ESMTP\nsome-hint x\n", 1))
    deleted = write(3, b"!deleted 1\n")
    unknown = write(4, b"!frozen 1 by-operator\n")
    newer = write(5, edit=lambda d: d.replace(b"TERN-QUEUE 2\n", b"TERN-QUEUE 4\n", 1))
    held = write(6, b"!held 1\n")
    before = {q: open(os.path.join(msg, q), "rb").read() for q in (unknown, newer)}

    h.step("start on the prepared queue")
    t.start()
    t.wait_log("queue: recovered", timeout=10)
    log = t.log()
    h.check("recovered 3 message(s)" in log and "left 2 for a newer tern" in log
            and "removed 1 deleted" in log, "the startup summary counts each kind",
            [l for l in log.splitlines() if "queue: recovered" in l])
    for q in (unknown, newer):
        h.check(f"msg/{q} needs a newer tern" in log, f"{q} is logged as needing a newer tern")
        with open(os.path.join(msg, q), "rb") as f:
            h.check(f.read() == before[q], f"{q} is left in msg/ byte for byte")
        h.check(not os.path.exists(os.path.join(t.queue_dir, "corrupt", q)), f"{q} is not set aside")
    h.check(not os.path.exists(os.path.join(msg, deleted)), "the deleted message is unlinked")
    h.check(not os.path.exists(os.path.join(t.queue_dir, "corrupt", deleted)),
            "and not set aside either")
    for q in (v1, optional, held):
        h.check(os.path.exists(os.path.join(msg, q)), f"{q} is loaded and kept")
    h.check("is malformed" not in log, "nothing was declared malformed")
    t.stop()


h.main(scenario)
