#!/usr/bin/python3
"""Stray entries in msg/ (issue 8 item 19): a directory, a symlink, a fifo and a socket next
to a valid queue file. ternd must start, set each stray entry aside in corrupt/ with a log
line, and load the valid message (which stays queued: its destination does not resolve)."""
import importlib.util
import os
import socket
import time

import harness as h

# The queue-file writer of the startup benchmark: a committed message written by hand, as
# queue-format.md describes it.
_spec = importlib.util.spec_from_file_location(
    "queue_gen", os.path.join(h.SOURCE_DIR, "bench", "queue-gen.py"))
queue_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queue_gen)
encode_id = queue_gen.encode_id


def scenario(ctx):
    t = ctx.tern()
    msg = t.msg_dir()
    os.makedirs(msg)
    os.makedirs(os.path.join(t.queue_dir, "tmp"))
    os.makedirs(os.path.join(t.queue_dir, "corrupt"))
    os.chmod(t.queue_dir, 0o750)
    now = int(time.time() * 1e6)
    body = b"Subject: kept\r\n\r\nstill here\r\n"
    good = queue_gen.write_message(msg, now, "a@client.example", ["b@partner.example"], body)
    strays = {
        encode_id(now + 1): "directory",
        encode_id(now + 2): "symlink",
        encode_id(now + 3): "fifo",
        encode_id(now + 4): "socket",
    }
    names = {kind: name for name, kind in strays.items()}
    os.mkdir(os.path.join(msg, names["directory"]))
    os.symlink(os.path.join(msg, good), os.path.join(msg, names["symlink"]))
    os.mkfifo(os.path.join(msg, names["fifo"]))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.path.join(msg, names["socket"]))
    ctx.cleanups.append(sock.close)

    h.step("ternd starts with a directory, a symlink, a fifo and a socket in msg/")
    t.start()
    t.wait_log("queue: recovered", timeout=10)
    log = t.log()
    for kind, name in names.items():
        h.check(f"msg/{name}: not a regular file" in log, f"the {kind} is logged", t.log_tail(20))
        h.check(os.path.lexists(os.path.join(t.queue_dir, "corrupt", name)),
                f"the {kind} is moved to corrupt/")
        h.check(not os.path.lexists(os.path.join(msg, name)), f"the {kind} is gone from msg/")
    h.check("recovered 1 message(s)" in log, "the valid message is recovered", t.log_tail(20))
    h.check(good in t.queue_ids(), "the valid message is still queued")
    h.check_eq(t.queue()[good].data, body, "the valid message's data is untouched")

    h.step("the daemon serves mail")
    code, _, qid = h.send_smtplib(t.port, "c@client.example", ["d@partner.example"],
                                  b"Subject: new\r\n\r\nnew\r\n")
    h.check_eq(code, 250, "a new message is accepted")
    t.stop()


h.main(scenario)
