#!/usr/bin/python3
"""Startup with a queue written before start-up: the listener opens once msg/ has been
listed, before every file has been read (queue-format.md, startup), and a message accepted
then is queued once, next to every recovered one: recovery reads only the names it listed."""
import importlib.util
import os
import re
import socket
import time

import harness as h

_spec = importlib.util.spec_from_file_location(
    "queue_gen", os.path.join(h.SOURCE_DIR, "bench", "queue-gen.py"))
queue_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queue_gen)

QUEUED = 3000
BODY = b"Subject: waiting\r\n\r\nbody\r\n"
NEW = (b"From: a@client.example\r\nSubject: during recovery\r\nMessage-ID: <new@client.example>\r\n"
       b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nsent while the queue was being read\r\n")


def scenario(ctx):
    # Delivery goes to a listener that never greets: nothing is delivered or written back
    # while the test looks at the queue.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)
    ctx.cleanups.append(hole.close)
    t = ctx.tern(routes={'"*"': f"127.0.0.1:{hole.getsockname()[1]}"})
    msg = t.msg_dir()
    for d in ("msg", "tmp", "corrupt"):
        os.makedirs(os.path.join(t.queue_dir, d))
    os.chmod(t.queue_dir, 0o750)
    now = int(time.time() * 1e6)
    dir_fd = os.open(msg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        old = {queue_gen.write_message(msg, now - 10_000_000 + i, "a@client.example",
                                       [f"r{i}@partner.example"], BODY, dir_fd=dir_fd)
               for i in range(QUEUED)}
    finally:
        os.close(dir_fd)
    h.check_eq(len(old), QUEUED, f"{QUEUED} queue files written before start-up")

    h.step("start, and send a message as soon as ternd greets")
    t.start()
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"], NEW)
    h.check_eq(code, 250, f"the message sent at the first greeting is accepted ({text!r})")
    t.wait_log("queue: recovered", timeout=60)
    log = t.log()
    listening = log.find("smtpd: listening")
    recovered = log.find("queue: recovered")
    h.check(0 <= listening < recovered,
            "the listener opened before every file had been read (log order)")
    h.check(f"queue: reading {QUEUED} file(s) in msg/" in log, "the listing is logged with its count")
    m = re.search(r"queue: recovered (\d+) message\(s\), removed (\d+) unfinished, set aside (\d+)", log)
    h.check(m is not None, "the recovery summary is logged")
    h.check_eq(tuple(int(x) for x in m.groups()), (QUEUED, 0, 0),
               "every file written before start-up recovered, the new one not counted among them")

    h.step("the queue holds every old message and the new one, once each")
    q = t.queue()
    h.check(qid not in old, "the new message has an id of its own")
    h.check_eq(set(q), old | {qid}, "msg/ holds the recovered messages and the new one")
    h.check_stored(q[qid], NEW, what="message accepted during recovery")
    h.check_eq(t.unfinished_ids(), [], "nothing unfinished in msg/")
    t.stop()


h.main(scenario)
