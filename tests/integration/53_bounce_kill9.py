#!/usr/bin/python3
"""kill -9 between a permanent failure and its bounce: exactly one bounce per message, none
lost and none doubled (notices.cpp: the recipient is durably "failed" before the notice is
built, the notice is committed before the recipient becomes "failed-notified", the original
is removed after that).

The sender's MX (127.0.0.3) is down, so every bounce stays queued; the recipient's MX
answers 550 at RCPT. For each of several messages ternd is killed (SIGKILL) at a different
moment: a few ms after the 250 (delivery in flight), right when the log shows the 550
recorded ("status=bounced"), right when it shows the bounce queued ("bounce queued as",
several times: the window before "failed-notified" is on disk), right after the original
was removed; then restarted on the same queue. At the end the sender's MX comes up: each
message's bounce arrives exactly once and the queue empties.

The window between the notice's commit and the "failed-notified" record is too short to hit
with a signal from here, so it is also reconstructed exactly: the original's file is saved
while its recipient is "failed" with no notice on disk (killed right after the 550 was
recorded); ternd restarts, queues the bounce and removes the original; after a clean stop
the saved file is put back. The queue now holds what a crash after the notice's commit and
before the failed-notified append leaves (queue-format.md: a status append is durable only
once fdatasync'd). After a restart that message must still get exactly one bounce."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
RCPT = "gone@relay.example"
TRIGGERS = ["after 3 ms", "after 10 ms", "status=bounced", "bounce queued", "bounce queued",
            "bounce queued", "bounce queued", "original removed", "after 25 ms"]


class LogWatch:
    """Reads only what was appended to the log since the last look (fast polling)."""

    def __init__(self, tern):
        self.path = tern.log_path
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        self.text = ""

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        self.text += chunk.decode("utf-8", "replace")
        return self.text

    def wait(self, needle, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.0003) + 10):
            if needle in self.poll():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0003)
        return False


def notices_on_disk(t, qid):
    """Queued notices (from <>) whose returned header names `qid` (tern's Received: id)."""
    n = 0
    for nid, q in sinks.queue_files(t).items():
        if q.sender == "" and f" id {qid}".encode() in q.data:
            n += 1
    return n


def scenario(ctx):
    port, dns, dns_port = sinks.start_bounce_world(ctx)
    sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", rcpt_replies={RCPT: "550 5.1.1 Gone"}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"), start=False)
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    problems = []
    subjects = {}
    windows = 0
    for i, trig in enumerate(TRIGGERS):
        subject = f"kill {i} {trig}"
        h.step(f"message {i}: SIGKILL {trig}")
        watch = LogWatch(t)
        qid = sinks.send(t, SENDER, [RCPT], sinks.body(subject))
        subjects[subject] = qid
        if trig.startswith("after "):
            time.sleep(int(trig.split()[1]) / 1000.0)
            hit = True
        elif trig == "status=bounced":
            hit = watch.wait(f"delivery: id={qid} to=<{RCPT}>", 10)
        elif trig == "bounce queued":
            hit = watch.wait(f"bounce: id={qid} bounce queued as", 10)
        else:
            hit = watch.wait(f"queue: id={qid} removed", 10)
        t.kill9()
        h.check(hit, f"the trigger ({trig}) was seen before the kill")
        orig = sinks.read_queue_file(os.path.join(t.msg_dir(), qid))
        state = None if orig is None else orig.states().get(RCPT)
        n = notices_on_disk(t, qid)
        print(f"  ..   at the kill: original {'gone' if orig is None else 'state ' + state}, "
              f"{n} notice(s) for it on disk")
        h.check(n <= 1, "at most one notice for the message on disk", str(n))
        h.check(orig is not None or n == 1, "the original or its bounce is on disk (nothing lost)")
        if orig is not None and state == "failed" and n == 1:
            windows += 1
            print("  ..   (caught: bounce committed, recipient not yet failed-notified)")
        t.start()

    h.step("the crash window, reconstructed: bounce committed, original still 'failed'")
    subject = "window reconstructed"
    saved = None
    for attempt in range(3):
        watch = LogWatch(t)
        qw = sinks.send(t, SENDER, [RCPT], sinks.body(f"{subject} {attempt}"))
        seen = watch.wait(f"delivery: id={qw} to=<{RCPT}>", 10)
        t.kill9()
        h.check(seen, "the 550 was recorded (log) before the kill")
        path = os.path.join(t.msg_dir(), qw)
        orig = sinks.read_queue_file(path)
        if orig is not None and orig.states().get(RCPT) == "failed" and notices_on_disk(t, qw) == 0:
            with open(path, "rb") as f:
                saved = (qw, f.read(), f"{subject} {attempt}")
            break
        print(f"  ..   attempt {attempt}: the bounce was already queued at the kill; again")
        subjects[f"{subject} {attempt}"] = qw  # it still owes exactly one bounce
        t.start()
    h.check(saved is not None, "got the original's file with its recipient 'failed', no notice yet")
    qw, raw, subj = saved
    subjects[subj] = qw
    t.start()
    sinks.wait_until(lambda: notices_on_disk(t, qw) == 1 and not os.path.exists(os.path.join(t.msg_dir(), qw)),
                     10, "after the restart the bounce is queued and the original removed")
    t.stop()
    with open(os.path.join(t.msg_dir(), qw), "wb") as f:
        f.write(raw)
    os.chmod(os.path.join(t.msg_dir(), qw), 0o640)
    h.check_eq((sinks.read_queue_file(os.path.join(t.msg_dir(), qw)).states().get(RCPT),
                notices_on_disk(t, qw)), ("failed", 1),
               "on disk now: the original with its recipient 'failed' and its committed bounce")
    t.start()

    h.step("after the last restart: one bounce per message queued, none delivered yet")
    deadline_ok = sinks.wait_until(
        lambda: all(notices_on_disk(t, q) >= 1 and not os.path.exists(os.path.join(t.msg_dir(), q))
                    for q in subjects.values()), 15,
        "every original was replaced by its bounce in the queue")
    h.check(deadline_ok, "every original left the queue after its bounce was queued")
    per = {s: notices_on_disk(t, q) for s, q in subjects.items()}
    print(f"  ..   notices queued per message: {per}")
    print(f"  ..   kills inside the commit/failed-notified window: {windows}")
    doubled = {s: n for s, n in per.items() if n != 1}
    if doubled:
        problems.append(f"more than one bounce queued for a message: {doubled}")
        print(f"  FAIL {problems[-1]}", flush=True)
    else:
        h.check(True, "exactly one bounce queued per message")

    h.step("the sender's MX comes up")
    home.start()
    sinks.wait_bounces(home, len(subjects), 20)
    sinks.wait_queue_empty(t, 10, "the queue is empty")
    time.sleep(2.5)  # longer than retry.max: a straggler would be here by now
    got = {}
    for m in home.messages():
        rep = sinks.parse_report(m.data)
        s = str(rep.returned_subject())
        got[s] = got.get(s, 0) + 1
        h.check(m.mail_from == "<>" and rep.rcpt(RCPT) is not None
                and rep.rcpt(RCPT).get("action") == "failed", f"a bounce for {s!r}", repr(rep))
    h.check_eq(set(got), set(subjects), "a bounce arrived for every message (none lost)")
    extra = {s: n for s, n in got.items() if n != 1}
    if extra:
        problems.append(f"bounces that arrived more than once: {extra}")
        print(f"  FAIL {problems[-1]}", flush=True)
    else:
        h.check(True, "exactly one bounce per message arrived")
    t.stop()
    if problems:
        h.fail("; ".join(problems))


h.main(scenario)
