#!/usr/bin/python3
"""SIGHUP reads the configuration off the loop thread (issue 7: nothing blocking on the loop).
The reloaded configuration names a recipients_file that is a FIFO nobody writes to yet, so
reading it blocks. While it blocks, ternd must go on serving SMTP (before, the whole daemon
hung in the signal handler). Once the FIFO is written, the reload completes and the new
recipients apply."""
import os
import signal
import threading
import time

import harness as h


def scenario(ctx):
    rcpts = ctx.path("big.recipients")
    with open(rcpts, "w") as f:
        f.write("alice\n")
    t = ctx.tern(relay={"networks": ["127.0.0.1/32"],
                        "domains": [{"name": "big.example", "recipients_file": rcpts}]})
    t.start()
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<alice@big.example>", 250)
        c.expect("RCPT TO:<carol@big.example>", 550)

    h.step("the recipients file becomes a FIFO with no writer; SIGHUP")
    os.unlink(rcpts)
    os.mkfifo(rcpts)
    before = t.log().count("configuration reloaded")
    t.signal(signal.SIGHUP)
    time.sleep(0.5)  # let the reload reach the blocking read
    h.check_eq(t.log().count("configuration reloaded"), before, "the reload waits for the FIFO")

    h.step("SMTP is served while the reload waits")
    with t.session() as c:  # greeting and EHLO within harness deadlines (10 s)
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<alice@big.example>", 250, what="the old recipients still apply")
        c.expect("QUIT", 221)

    h.step("the FIFO is written: the reload completes with the new recipients")
    def feed():
        with open(rcpts, "w") as f:  # blocks until ternd opens it for reading
            f.write("carol\n")
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    t.wait_log("configuration reloaded", count=before + 1, timeout=10)
    writer.join(timeout=10)
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<carol@big.example>", 250, what="the new recipients apply")
        c.expect("RCPT TO:<alice@big.example>", 550, what="the old ones no longer do")
    t.stop()


h.main(scenario)
