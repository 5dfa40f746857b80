#!/usr/bin/python3
"""ternctl against a running ternd, and without one.
  queue on an empty queue: exit 0, no lines;
  queue with deferred and failed mail: one line per message with the id, age=, size= (the
      stored data size), from=<sender> (<> for the null sender), next=in Ns (next=none when
      nothing is scheduled), and to=<rcpt>:state "last reply" for every recipient;
  flush: exit 0 and says what it did;
  access (control.group daemon, socket 0660; needs root and setpriv): a user whose primary
      group is the admin group may (exit 0); a user that has it only as a supplementary group
      not listed in /etc/group is refused by ternd and ternctl says "permission denied" (it
      must not die of SIGPIPE when ternd closes first); a user outside the group cannot
      connect; the refused ones exit non-zero with a message on stderr;
  an unknown command, no command, a missing config file: non-zero exit and a message;
  ternd stopped: exit 1 with a clear message."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def as_user(t, uid, gid, groups, config, *args):
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    cmd += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    cmd += [h.TERNCTL, "--config", config] + list(args)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        h.fail(f"{cmd} still running after 10 s")


def scenario(ctx):
    problems = []  # failures that do not stop the remaining checks
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("needs root and setpriv for the access checks: skipping those")
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("down.example", "MX", (10, "mx.down.example")),
        ("mx.down.example", "A", "127.0.0.2"),
    ])
    # The control socket in a directory others may enter, so the permission checks reach it.
    ctl = tempfile.mkdtemp(prefix="tern-it-41-ctl-")
    ctx.cleanups.append(lambda: shutil.rmtree(ctl, ignore_errors=True))
    os.chmod(ctl, 0o755)
    over = sinks.delivery_overrides(port, dns_port, retry=("20s", "20s", 1))
    over["control"] = {"socket": os.path.join(ctl, "control.sock"), "group": "daemon"}
    t = ctx.tern(**over).start()
    public_config = os.path.join(ctl, "tern.yaml")
    shutil.copy(t.config_path, public_config)
    os.chmod(public_config, 0o644)

    h.step("an empty queue")
    p = sinks.ternctl(t, "queue")
    h.check(p.returncode == 0 and p.stdout.strip() == "", "ternctl queue: exit 0, no lines",
            f"rc={p.returncode} out={p.stdout!r} err={p.stderr!r}")

    root = os.geteuid() == 0 and shutil.which("setpriv")
    if root:
        h.step("access through control.group")
        p = as_user(t, 65534, 1, None, public_config, "queue")
        h.check(p.returncode == 0, "uid nobody, primary group daemon: allowed",
                f"rc={p.returncode} err={p.stderr!r}")
        # ternd answers "ERR permission denied" and closes at once, possibly before ternctl
        # has written its command: ternctl must still say so (not die of SIGPIPE). Several
        # tries, since it is a race.
        results = [as_user(t, 65534, 65534, [65534, 1], public_config, "queue") for _ in range(12)]
        bad = [(p.returncode, p.stderr) for p in results
               if not (p.returncode > 0 and "permission denied" in p.stderr.lower())]
        if bad:
            problems.append("ternctl refused by ternd did not exit non-zero with 'permission "
                            f"denied' in {len(bad)} of 12 runs: (exit status, stderr) {bad[:3]} "
                            "(a negative status is death by that signal: -13 = SIGPIPE)")
            print(f"  FAIL {problems[-1]}", flush=True)
        else:
            h.check(True, "uid nobody, daemon only as an unlisted supplementary group: ternd "
                    "refuses, ternctl says 'permission denied' (12 of 12 runs)")
        p = as_user(t, 65534, 65534, None, public_config, "queue")
        h.check(p.returncode != 0 and p.stderr.strip() != "",
                "uid nobody outside the group: non-zero with a message", f"rc={p.returncode} err={p.stderr!r}")
        print(f"  ..   {p.stderr.strip()}")
        t.wait_log("refused uid=65534")  # ternd logged the refusal (bounded wait)

    h.step("deferred and failed mail in the listing")
    q1 = sinks.send(t, "alice@client.example", ["a@down.example", "b@down.example"],
                    sinks.body("listing one"))
    for r in ("a@down.example", "b@down.example"):
        sinks.wait_delivery(t, q1, r, "deferred", timeout=10)
    # Sent after the destination was found down: it waits for the destination's retry.
    q2 = sinks.send(t, "", ["c@down.example"], sinks.body("listing two (null sender)"))
    # From <>: a failure owes no notice, so the message leaves the queue at once.
    q3 = sinks.send(t, "", ["d@nxdomain.example"], sinks.body("listing three"))
    sinks.wait_delivery(t, q3, "d@nxdomain.example", "bounced", timeout=10)
    sinks.wait_until(lambda: q3 not in sinks.queue_listing(t), 10, f"{q3} (failed, from <>) leaves the queue")

    def complete():
        q = sinks.queue_listing(t)
        ok = all(k in q for k in (q1, q2)) and all(q[k]["next"].startswith("in ") for k in (q1, q2))
        return q if ok else None
    q = sinks.wait_until(complete, 10, "both waiting messages listed with next=in")
    for line in sorted(e["line"] for e in q.values()):
        print(f"  ..   {line}")
    stored = t.queue()
    h.check_eq(sorted(q), sorted(stored), "one line per queued message, by id")
    for qid, sender in ((q1, "alice@client.example"), (q2, "")):
        e = q[qid]
        h.check_eq(e["from"], sender, f"{qid}: from=<{sender}>")
        h.check_eq(e["size"], stored[qid].data_size, f"{qid}: size= is the stored data size")
        h.check(re.match(r"^\d+s$", e["age"]) is not None and int(e["age"][:-1]) < 30,
                f"{qid}: age= in seconds", e["age"])
        n = int(e["next"][3:-1])
        h.check(10 <= n <= 25, f"{qid}: next=in {n}s (retry 20 s)", e["next"])
    h.check_eq(set(q[q1]["rcpts"]), {"a@down.example", "b@down.example"}, f"{q1}: both recipients listed")
    for r, (state, reply) in q[q1]["rcpts"].items():
        h.check(state == "deferred" and reply and reply.startswith("4.4.1")
                and "127.0.0.2" in reply, f"{q1}: {r} deferred with its last reply", repr(reply))
    # The destination is known down: the second message waits for its retry untried.
    h.check_eq(q[q2]["rcpts"], {"c@down.example": ("pending", None)},
               f"{q2}: not tried yet while the destination is down: pending, no reply")
    h.check(q3 not in q, f"{q3}: failed for good and owed no notice: not listed")

    h.step("flush")
    p = sinks.ternctl(t, "flush")
    h.check(p.returncode == 0 and p.stdout.strip() != "", "ternctl flush: exit 0 with a message",
            f"rc={p.returncode} out={p.stdout!r} err={p.stderr!r}")
    print(f"  ..   {p.stdout.strip()}")
    sinks.wait_delivery(t, q1, "a@down.example", "deferred", count=2, timeout=8)
    sinks.wait_delivery(t, q2, "c@down.example", "deferred", count=1, timeout=8)
    h.check(True, "the flush made the waiting mail due (new attempts were logged)")
    e = sinks.queue_listing(t)[q2]
    h.check(e["rcpts"]["c@down.example"][0] == "deferred", f"{q2}: now deferred", e["line"])

    h.step("bad invocations")
    p = sinks.ternctl(t, "frobnicate")
    h.check(p.returncode != 0 and "frobnicate" in p.stderr, "unknown command: non-zero, names it",
            f"rc={p.returncode} err={p.stderr!r}")
    p = sinks.ternctl(t)
    h.check(p.returncode != 0 and "usage" in (p.stderr + p.stdout).lower(),
            "no command: non-zero with the usage", f"rc={p.returncode} err={p.stderr!r}")
    p = sinks.ternctl(t, "queue", config=False)
    h.check(p.returncode != 0 and p.stderr.strip() != "", "no --config: non-zero with a message")
    missing = ctx.path("nope.yaml")
    p = subprocess.run([h.TERNCTL, "--config", missing, "queue"], capture_output=True, text=True,
                       timeout=10)
    h.check(p.returncode != 0 and "nope.yaml" in p.stderr, "missing config: non-zero, names the file",
            f"rc={p.returncode} err={p.stderr!r}")

    h.step("the next hop comes up; flush delivers the deferred mail")
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx"))
    p = sinks.ternctl(t, "flush")
    h.check(p.returncode == 0, "ternctl flush: exit 0")
    for qid, r in ((q1, "a@down.example"), (q1, "b@down.example"), (q2, "c@down.example")):
        sinks.wait_delivery(t, qid, r, "sent", timeout=8)
    sinks.wait_until(lambda: sinks.queue_listing(t) == {}, 5, "the listing is empty: everything delivered")
    h.check_eq(sink.rcpt_counts(), {"a@down.example": 1, "b@down.example": 1, "c@down.example": 1},
               "each deferred recipient got one copy")

    h.step("ternd stopped")
    t.stop()
    p = sinks.ternctl(t, "queue")
    h.check(p.returncode == 1 and "control.sock" in p.stderr and "running" in p.stderr,
            "exit 1, names the socket and asks whether ternd runs", f"rc={p.returncode} err={p.stderr!r}")
    print(f"  ..   {p.stderr.strip()}")
    p = sinks.ternctl(t, "flush")
    h.check(p.returncode == 1, "flush: exit 1 too", f"rc={p.returncode} err={p.stderr!r}")
    if problems:
        h.fail("; ".join(problems))


h.main(scenario)
