"""Shared helpers for tern's integration scenarios.

Run with Debian's interpreter (/usr/bin/python3); stdlib only. Every scenario script does

    import harness as h
    def scenario(ctx): ...
    h.main(scenario)

`ctx` (a Context) owns a temp dir and every ternd started through it; whatever happens,
the daemons are killed and (on success) the temp dir removed when the scenario ends.

Everything here is bounded: each wait has a deadline, each loop a count. All network
traffic goes to 127.0.0.0/8.
"""

import email.utils
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TERND = os.environ.get("TERND") or "/work/main/build/ternd"
TERNCTL = os.environ.get("TERNCTL") or "/work/main/build/ternctl"
TERN_SENDMAIL = os.environ.get("TERN_SENDMAIL") or "/work/main/build/tern-sendmail"
SOURCE_DIR = os.environ.get("TERN_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))

HOSTNAME = "relay.example.net"
POSTMASTER = "hostmaster@example.net"
CLIENT_HELO = "client.example"
ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{11}$")
QUEUED_RE = re.compile(r"Ok: queued as ([0-9A-HJKMNP-TV-Z]{11})$")


def root_flag():
    """["--allow-root"] when the tests run as root (CI does): ternd refuses root without a
    `user:` to drop to unless told so."""
    return ["--allow-root"] if os.geteuid() == 0 else []


class Failure(AssertionError):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, what, detail=""):
    """Asserts `cond`; prints what was checked either way."""
    if not cond:
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""), flush=True)
        fail(what + (f": {detail}" if detail else ""))
    print(f"  ok   {what}", flush=True)


def check_eq(actual, expected, what):
    if actual != expected:
        a, e = repr(actual), repr(expected)
        if len(a) > 600:
            a = a[:600] + "..."
        if len(e) > 600:
            e = e[:600] + "..."
        check(False, what, f"expected {e}, got {a}")
    check(True, what)


def step(text):
    print(f"-- {text}", flush=True)


# ---------------------------------------------------------------------------------------
# Network helpers

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines  # text after "ddd-" / "ddd "
        last = lines[-1] if lines else ""
        m = re.match(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)", last)
        self.enhanced = m.group(1) if m else None
        self.text = last

    def __repr__(self):
        return " / ".join(f"{self.code} {l}" for l in self.lines)

    def queue_id(self):
        m = QUEUED_RE.search(self.text)
        return m.group(1) if m else None


class SmtpConn:
    """A raw SMTP client: bytes out, parsed replies in, nothing fixed up."""

    def __init__(self, port, source=None, timeout=10.0, host="127.0.0.1"):
        self.port = port
        self.buf = b""
        self.eof = False
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes; False on EOF. Raises Failure at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail(f"timed out waiting for the server (have {self.buf[:300]!r})")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            fail(f"timed out waiting for the server (have {self.buf[:300]!r})")
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_reply(self, timeout=10.0):
        """One complete (possibly multi-line) reply. Fails on EOF, timeout or bad syntax."""
        deadline = time.monotonic() + timeout
        lines = []
        code = None
        for _ in range(100000):
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                if len(self.buf) > 65536:
                    fail(f"reply line without CRLF: {self.buf[:200]!r}")
                if self.eof or not self._fill(deadline):
                    fail(f"connection closed while waiting for a reply "
                         f"(partial {lines!r} {self.buf!r})")
                continue
            line = self.buf[:nl].decode("utf-8", "replace")
            self.buf = self.buf[nl + 2:]
            m = re.match(r"^(\d{3})([ -]|$)(.*)$", line)
            if not m:
                fail(f"malformed reply line {line!r}")
            c = int(m.group(1))
            if code is not None and c != code:
                fail(f"multi-line reply changes code: {lines!r} then {line!r}")
            code = c
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(code, lines)
        fail("reply too long")

    def read_replies(self, n, timeout=10.0):
        return [self.read_reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=10.0):
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def expect(self, line, code, enhanced=None, what=None, timeout=10.0):
        r = self.cmd(line, timeout) if line is not None else self.read_reply(timeout)
        expect_reply(r, code, enhanced, what or (line if line is not None else "reply"))
        return r

    def silent_for(self, seconds):
        """True if no byte (and no EOF) arrives within `seconds`; what arrives is kept."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return False

    def wait_closed(self, timeout=10.0):
        """Waits for the server to close; returns any bytes that came before the close."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self.eof:
                data, self.buf = self.buf, b""
                return data
            self._fill(deadline)
        fail("connection not closed")

    def greet(self, helo=CLIENT_HELO, ehlo=True):
        r = self.read_reply()
        expect_reply(r, 220, None, "greeting")
        r = self.cmd(f"{'EHLO' if ehlo else 'HELO'} {helo}")
        expect_reply(r, 250, None, "EHLO" if ehlo else "HELO")
        return r

    def start_tls(self, context, server_hostname=None, timeout=10.0):
        """Wraps the socket in TLS (after a 220 to STARTTLS, or at once for implicit TLS).
        Bytes already received in plaintext and not read are an error."""
        check(self.buf == b"", "nothing unread before the TLS handshake", repr(self.buf[:200]))
        self.sock.settimeout(timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def expect_reply(r, code, enhanced=None, what="reply"):
    ok = r.code == code and (enhanced is None or r.enhanced == enhanced)
    want = f"{code}" + (f" {enhanced}" if enhanced else "")
    if not ok:
        check(False, f"{what} -> {want}", f"got {r!r}")
    print(f"  ok   {what} -> {r!r}", flush=True)


def connect_refused(port, timeout=3.0):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def smtp_client(port, source=None, timeout=10.0):
    """smtplib client with a fixed EHLO name (no getfqdn(): no DNS traffic)."""
    return smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_HELO, timeout=timeout,
                        source_address=(source, 0) if source else None)


def send_smtplib(port, sender, rcpts, msg, source=None, mail_options=()):
    """Sends one message with smtplib (EHLO); returns (code, reply text, queue id)."""
    s = smtp_client(port, source)
    try:
        code, _ = s.ehlo()
        if code != 250:
            fail(f"EHLO got {code}")
        code, resp = s.mail(sender, list(mail_options))
        if code != 250:
            fail(f"MAIL got {code} {resp!r}")
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code != 250:
                fail(f"RCPT {r} got {code} {resp!r}")
        code, resp = s.data(msg)
        text = resp.decode("utf-8", "replace")
        m = QUEUED_RE.search(text)
        s.quit()
        return code, text, (m.group(1) if m else None)
    finally:
        s.close()


def send_raw_message(conn, sender, rcpts, data, expect_code=250):
    """A full transaction on an open, greeted SmtpConn; `data` is sent as is and must end
    with the terminator. Returns the final reply."""
    conn.expect(f"MAIL FROM:<{sender}>", 250, "2.1.0")
    for r in rcpts:
        conn.expect(f"RCPT TO:<{r}>", 250, "2.1.5")
    conn.expect("DATA", 354)
    conn.send(data)
    r = conn.read_reply(timeout=30)
    if expect_code is not None:
        expect_reply(r, expect_code, None, "end of data")
    return r


def dot_stuff(body):
    """Dot-stuffs a CRLF message and appends the terminator."""
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    s = b"\r\n".join(out)
    if not s.endswith(b"\r\n"):
        s += b"\r\n"
    return s + b".\r\n"


# ---------------------------------------------------------------------------------------
# YAML output (no PyYAML: stdlib only)

def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            elif isinstance(v, dict):
                out.append(f"{pad}{k}:")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------
# The daemon

class Tern:
    """One ternd: its config file, queue_dir, log file and process."""

    def __init__(self, ctx, name="ternd", queue_dir=None, **overrides):
        self.ctx = ctx
        self.name = name
        self.dir = os.path.join(ctx.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        # A relative queue_dir is written to the config as is (ternd resolves it against the
        # config file's directory); the tests read it through the absolute form.
        qd = queue_dir or os.path.join(self.dir, "queue")
        self.queue_dir = qd if os.path.isabs(qd) else os.path.join(self.dir, qd)
        self.config_path = os.path.join(self.dir, "tern.yaml")
        self.log_path = os.path.join(self.dir, "ternd.log")
        self.proc = None
        self.starts = 0
        self.config = deep_merge({
            "hostname": HOSTNAME,
            "listen": [{"address": f"127.0.0.1:{self.port}"}],
            "queue_dir": qd,
            "queue_min_free": "0",
            "relay": {
                "networks": ["127.0.0.1/32"],
                "domains": ["partner.example",
                            {"name": "other.example", "recipients": ["alice", "bob"]}],
            },
            "postmaster": POSTMASTER,
            "log_level": "info",
            "timeouts": {"shutdown": "10s"},
            # The test zones are unsigned (but for the DANE scenarios, which bring their own
            # trust anchor): without one nothing is validated, and no probe of the root runs.
            "dns": {"forwarders": ["127.0.0.1@53"], "trust_anchor": "none"},
            # Each daemon its own submission socket and maildrop (the defaults under /run
            # and /var/spool would be shared by scenarios running side by side).
            "submit": {"socket": os.path.join(self.dir, "submit.sock"),
                       "maildrop": os.path.join(self.dir, "maildrop")},
        }, overrides)
        self.write_config()
        ctx.daemons.append(self)

    def write_config(self, text=None):
        if text is None:
            text = "# written by tests/integration/harness.py\n" + to_yaml(self.config) + "\n"
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- process control

    def start(self, wait=True):
        check(os.access(TERND, os.X_OK), f"ternd binary {TERND} is executable")
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"==== start #{self.starts} ====\n".encode())
        log.flush()
        # cwd "/": relative paths in the config must not depend on where ternd was started.
        self.proc = subprocess.Popen([TERND, "--config", self.config_path] + root_flag(), cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        """Bounded wait until the port answers with a 220 greeting."""
        deadline = time.monotonic() + timeout
        last = None
        for _ in range(1000):
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with {self.proc.returncode} during startup")
            if time.monotonic() > deadline:
                fail(f"{self.name} did not accept connections within {timeout}s ({last})")
            try:
                with SmtpConn(self.port, timeout=2) as c:
                    r = c.read_reply(timeout=2)
                    if r.code != 220:
                        fail(f"probe greeting was {r!r}")
                    c.send("QUIT\r\n")
                    c.wait_closed(timeout=2)  # the server has released the probe
                return
            except (ConnectionRefusedError, ConnectionResetError, socket.timeout) as e:
                last = e
                time.sleep(0.05)
        fail("wait_ready loop bound reached")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        check(self.running(), f"{self.name} is running before signal {sig!s}")
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        """SIGTERM; asserts a clean exit (status 0) within `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            fail(f"{self.name} is not running at stop (exit status {rc})")
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        check_eq(rc, 0, f"{self.name} exits 0 after SIGTERM")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            fail(f"{self.name} did not exit within {timeout}s")

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fail(f"{self.name} survived SIGKILL for 10 s")

    def reload(self, timeout=10.0, expect="configuration reloaded"):
        """SIGHUP and a bounded wait for the log line `expect` to appear once more."""
        before = self.log().count(expect)
        self.signal(signal.SIGHUP)
        self.wait_log(expect, count=before + 1, timeout=timeout)

    # -- log

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, text, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self.log().count(text) >= count:
                return
            if time.monotonic() > deadline:
                fail(f"log line {text!r} (x{count}) did not appear within {timeout}s")
            time.sleep(0.05)

    # -- queue

    def msg_dir(self):
        return os.path.join(self.queue_dir, "msg")

    def tmp_dir(self):
        return os.path.join(self.queue_dir, "tmp")

    def queue(self):
        return read_queue(self.queue_dir)

    def msg_files(self):
        d = self.msg_dir()
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def queue_ids(self):
        """The queued messages: files in msg/ except those still being received."""
        unfinished = set(self.unfinished_ids())
        return [n for n in self.msg_files() if n not in unfinished]

    def unfinished_ids(self):
        """Files in msg/ still being received, or left so by a crash (format 3 writes them in
        place; startup removes them): not part of the queue."""
        return [n for n in self.msg_files() if is_unfinished(os.path.join(self.msg_dir(), n))]

    def tmp_files(self):
        d = self.tmp_dir()
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def connect(self, source=None, timeout=10.0):
        return SmtpConn(self.port, source=source, timeout=timeout)

    def session(self, source=None, ehlo=True):
        c = self.connect(source)
        try:
            c.greet(ehlo=ehlo)
        except BaseException:
            c.close()
            raise
        return c


# ---------------------------------------------------------------------------------------
# The queue reader (queue-format.md, versions 1 to 3)

HEADER_KEYS = {"id", "arrival", "client-address", "client-port", "client-helo", "client-relay",
               "protocol", "sender", "mail-param", "rcpt", "data-size",
               "origin", "!history"}  # the last two only in imported messages
STATES = {"pending", "delivered", "deferred", "failed", "failed-notified"}


def unescape(s):
    out = bytearray()
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    i = 0
    while i < len(b):
        if b[i:i + 1] == b"%":
            hx = b[i + 1:i + 3]
            if len(hx) != 2 or not re.match(rb"^[0-9A-F]{2}$", hx):
                fail(f"bad %XX escape in {s!r}")
            out.append(int(hx, 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return bytes(out).decode("utf-8", "surrogateescape")


def unbracket(field):
    if len(field) < 2 or not field.startswith("<") or not field.endswith(">"):
        fail(f"address not in <>: {field!r}")
    return unescape(field[1:-1])


CHECKED_FILE_LIMIT = 64 * 1024  # queue-format.md, "The closing record"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli); crc32c(b, crc32c(a)) == crc32c(a + b)."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class QueueMessage:
    def __init__(self):
        self.version = 0
        self.end_crc = None  # the closing record's CRC (version 3)
        self.id = None
        self.records = []  # (key, raw value) in order
        self.fields = {}
        self.sender = None
        self.mail_params = []
        self.rcpts = []  # dicts: address, orig, params
        self.data_size = None
        self.data = b""
        self.statuses = []  # (index, state, time, reply, relay)
        self.delay_warned = 0
        self.operator_records = []  # !held / !released / !deleted lines, in order
        self.status_codes = []  # (index, code, "remote"|"local"), in order
        self.torn_tail = b""
        self.header_length = 0

    def rcpt_addresses(self):
        return [r["address"] for r in self.rcpts]


def parse_queue_file(path, require_crlf=True):
    """Parses one msg/ file and asserts it is complete and well-formed."""
    name = os.path.basename(path)
    with open(path, "rb") as f:
        raw = f.read()
    m = QueueMessage()

    def bad(why):
        fail(f"queue file {name}: {why}")

    pos = 0
    first = True
    seen_data = False
    for _ in range(100000):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            bad("header not terminated by a 'data' line")
        line = raw[pos:nl]
        pos = nl + 1
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            bad(f"header line is not UTF-8: {line!r}")
        if first:
            if text not in ("TERN-QUEUE 1", "TERN-QUEUE 2", "TERN-QUEUE 3"):
                bad(f"first line is {text!r}, not 'TERN-QUEUE 1', '2' or '3'")
            m.version = int(text.split(" ")[1])
            first = False
            continue
        if text == "data":
            seen_data = True
            break
        if " " not in text:
            bad(f"record without value: {text!r}")
        key, val = text.split(" ", 1)
        if key not in HEADER_KEYS:
            bad(f"unknown record {key!r}")
        m.records.append((key, val))
        if key in ("mail-param", "rcpt", "!history"):
            pass
        elif key in m.fields:
            bad(f"duplicate record {key!r}")
        if key == "id":
            m.id = unescape(val)
        elif key == "sender":
            m.sender = unbracket(val)
        elif key == "mail-param":
            m.mail_params.append(unescape(val))
        elif key == "rcpt":
            parts = val.split(" ")
            r = {"address": unbracket(parts[0]), "orig": None, "params": []}
            for p in parts[1:]:
                if p.startswith("orig="):
                    r["orig"] = unbracket(p[5:])
                else:
                    r["params"].append(unescape(p))
            if not r["address"]:
                bad("empty recipient address")
            m.rcpts.append(r)
        elif key == "data-size":
            if not re.match(r"^\d{20}$", val):
                bad(f"data-size is not 20 digits: {val!r}")
            m.data_size = int(val)
        elif key in ("arrival", "client-port"):
            if not re.match(r"^\d+$", val):
                bad(f"{key} is not a number: {val!r}")
            m.fields[key] = int(val)
            continue
        elif key == "client-relay":
            if val not in ("yes", "no"):
                bad(f"client-relay is {val!r}")
        m.fields[key] = unescape(val) if key in ("client-address", "client-helo") else val
    if not seen_data:
        bad("no data line")
    for req in ("id", "arrival", "client-address", "client-port", "client-helo", "client-relay",
                "protocol", "sender", "data-size"):
        if req not in m.fields:
            bad(f"missing record {req!r}")
    if not m.rcpts:
        bad("no rcpt record")
    if m.id != name:
        bad(f"id record {m.id!r} does not equal the file name")
    if not ID_RE.match(m.id):
        bad(f"id {m.id!r} is not 11 Crockford base32 characters")
    m.header_length = pos
    end = pos + m.data_size
    if len(raw) < end:
        bad(f"file has {len(raw) - pos} data bytes, data-size says {m.data_size}")
    m.data = raw[pos:end]
    trailer = raw[end:]
    if m.version >= 3:
        # The closing record: `end CRC`, CRC-32C of the data then the header; checked, as
        # startup does, when the file up to it fits in 64 KiB.
        rec = re.match(rb"end ([0-9A-F]{8})\n", trailer)
        if not rec:
            bad(f"no closing record after the data: {trailer[:20]!r}")
        if end + len(rec.group(0)) <= CHECKED_FILE_LIMIT:
            want = crc32c(raw[:pos], crc32c(m.data))
            if int(rec.group(1), 16) != want:
                bad(f"closing record's CRC {rec.group(1).decode()} is not {want:08X}")
        m.end_crc = int(rec.group(1), 16)
        trailer = trailer[len(rec.group(0)):]
    tp = 0
    for _ in range(1000000):
        if tp >= len(trailer):
            break
        nl = trailer.find(b"\n", tp)
        if nl < 0:
            m.torn_tail = trailer[tp:]
            break
        line = trailer[tp:nl].decode("utf-8", "replace")
        tp = nl + 1
        if line.startswith("delay-warned "):
            if not line[len("delay-warned "):].isdigit():
                bad(f"malformed delay-warned record {line!r}")
            m.delay_warned = int(line[len("delay-warned "):])
            continue
        if line.split(" ")[0] in ("!held", "!released", "!deleted", "!exported"):
            m.operator_records.append(line)
            continue
        if line.startswith("status-code "):
            # status-code INDEX CODE remote|local: qualifies the status record before it
            f = line.split(" ")
            if len(f) != 4 or not f[1].isdigit() or f[3] not in ("remote", "local") \
                    or int(f[1]) >= len(m.rcpts):
                bad(f"malformed status-code record {line!r}")
            m.status_codes.append((int(f[1]), f[2], f[3]))
            continue
        # status INDEX STATE TIME_US RELAY REPLY (queue-format.md)
        f = line.split(" ", 5)
        if len(f) < 5 or f[0] != "status" or not f[1].isdigit() or f[2] not in STATES \
                or not f[3].isdigit() or int(f[1]) >= len(m.rcpts):
            bad(f"malformed status record {line!r}")
        relay = "" if f[4] == "-" else unescape(f[4])
        m.statuses.append((int(f[1]), f[2], int(f[3]), unescape(f[5]) if len(f) > 5 else "", relay))
    if require_crlf:
        assert_crlf_only(m.data, f"queue file {name} data")
    return m


def assert_crlf_only(data, what):
    """Every CR is followed by LF and every LF preceded by CR; ends with CRLF."""
    stripped = data.replace(b"\r\n", b"")
    if b"\r" in stripped or b"\n" in stripped:
        i = data.find(b"\n")
        for _ in range(len(data)):
            if i < 0:
                break
            if i == 0 or data[i - 1:i] != b"\r":
                break
            i = data.find(b"\n", i + 1)
        fail(f"{what} has a bare CR or LF (near {data[max(0, i - 40):i + 40]!r})")
    if data and not data.endswith(b"\r\n"):
        fail(f"{what} does not end with CRLF: {data[-40:]!r}")


def is_unfinished(path):
    """A version-3 file still being received (or left so by a crash): empty, a header not
    yet complete, or the placeholder data-size 0 (queue-format.md). A file that vanished
    meanwhile (an aborted message) counts too."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except FileNotFoundError:
        return True
    if not head:
        return True
    if not head.startswith(b"TERN-QUEUE 3\n"):
        return False
    end = head.find(b"\ndata\n")
    if end < 0:
        return len(head) < 64 * 1024
    return re.search(rb"\ndata-size 0{20}\n", head[:end + 1]) is not None


def read_queue(queue_dir):
    """Every queued file in queue_dir/msg (not those still being received), parsed and
    checked: {id: QueueMessage}."""
    d = os.path.join(queue_dir, "msg")
    out = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        path = os.path.join(d, name)
        if is_unfinished(path):
            continue
        out[name] = parse_queue_file(path)
    return out


def split_received(data):
    """Splits tern's leading Received: header (with its folded lines) from the rest."""
    if not data.startswith(b"Received: "):
        fail(f"stored data does not start with tern's Received: header: {data[:80]!r}")
    pos = 0
    for _ in range(1000):
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            fail("Received: header not terminated")
        pos = nl + 2
        if data[pos:pos + 1] not in (b" ", b"\t"):
            return data[:pos], data[pos:]
    fail("Received: header too long")


def take_header(data, name):
    """If `data` starts with header `name`, returns (that header line, rest), else (None, data)."""
    prefix = name.encode() + b": "
    if not data.startswith(prefix):
        return None, data
    nl = data.find(b"\r\n")
    return data[:nl + 2], data[nl + 2:]


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode_id(qid):
    """A queue id's microseconds since the epoch (queue-format.md, Ids)."""
    n = 0
    for ch in qid:
        n = n * 32 + CROCKFORD.index(ch)
    return n


def check_times(msg, what):
    """The id encodes (about) the arrival time, which is about now; so does the
    Received: date."""
    arrival = msg.fields["arrival"]
    check(abs(decode_id(msg.id) - arrival) < 1_000_000,
          f"{what}: id {msg.id} encodes the arrival time", f"{decode_id(msg.id)} vs {arrival}")
    check(abs(arrival / 1e6 - time.time()) < 600, f"{what}: arrival is about now", str(arrival))
    recv = split_received(msg.data)[0].decode("utf-8", "replace")
    when = email.utils.parsedate_to_datetime(recv.rsplit(";", 1)[1].strip()).timestamp()
    check(abs(when - arrival / 1e6) < 2, f"{what}: Received: date is the arrival time", recv)


def check_stored(msg, original, added=(), what=None, helo=CLIENT_HELO):
    """Asserts that msg.data is tern's Received: header, then exactly the headers in `added`
    (e.g. ("Message-ID", "Date")) and nothing else, then `original` byte for byte."""
    what = what or f"message {msg.id}"
    recv, rest = split_received(msg.data)
    rtext = recv.decode("utf-8", "replace")
    check(f" id {msg.id}" in rtext and f"by {HOSTNAME} (tern)" in rtext
          and f"from {helo} " in rtext,
          f"{what}: Received: header names helo, {HOSTNAME} and id {msg.id}", repr(rtext))
    for name in ("Message-ID", "Date"):
        line, rest2 = take_header(rest, name)
        if name in added:
            check(line is not None, f"{what}: tern added {name}:", repr(rest[:120]))
            if name == "Message-ID":
                check_eq(line, f"Message-ID: <{msg.id}@{HOSTNAME}>\r\n".encode(),
                         f"{what}: added Message-ID is <id@hostname>")
            else:
                check(re.match(rb"^Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n$",
                               line) is not None, f"{what}: added Date: is RFC 5322", repr(line))
                when = email.utils.parsedate_to_datetime(line[6:].decode().strip()).timestamp()
                check(abs(when - msg.fields["arrival"] / 1e6) < 2,
                      f"{what}: added Date: is the arrival time", repr(line))
            rest = rest2
    check_eq(rest, original, f"{what}: stored message = original, byte for byte")
    check_times(msg, what)


def stored_problem(msg, original, helo=CLIENT_HELO):
    """Quiet form of check_stored for bulk checks (nothing added): None when msg.data is
    tern's Received: header (naming msg.id) followed by exactly `original`, else why not."""
    try:
        recv, rest = split_received(msg.data)
    except Failure as e:
        return str(e)
    if f" id {msg.id}".encode() not in recv or f"from {helo} ".encode() not in recv:
        return f"Received: header does not name id {msg.id}: {recv!r}"
    if len(msg.data) != msg.data_size:
        return f"data-size {msg.data_size} != {len(msg.data)} stored bytes"
    if rest != original:
        return (f"stored body differs from the original ({len(rest)} vs {len(original)} bytes; "
                f"first difference at {next((i for i, (a, b) in enumerate(zip(rest, original)) if a != b), min(len(rest), len(original)))})")
    return None


# ---------------------------------------------------------------------------------------
# Scenario runner

class Context:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"tern-it-{name}-")
        self.daemons = []
        self.cleanups = []  # callables run last, in reverse order

    def tern(self, name="ternd", **overrides):
        return Tern(self, name, **overrides)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def cleanup(self):
        for d in self.daemons:
            try:
                d.kill9()
            except BaseException as e:  # keep cleaning up
                print(f"cleanup: {e}")
        for fn in reversed(self.cleanups):
            try:
                fn()
            except BaseException as e:
                print(f"cleanup: {e}")


def main(scenario):
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    t0 = time.monotonic()
    print(f"== {name} (ternd: {TERND})", flush=True)
    ctx = Context(name)
    rc = 1
    skipped = False
    try:
        skipped = scenario(ctx) == "SKIP"
        rc = 0
    except Exception as e:
        traceback.print_exc()
        print(f"\n== FAIL {name}: {e}", flush=True)
        for d in ctx.daemons:
            print(f"---- tail of {d.log_path}{' (exit status %s)' % d.proc.returncode if d.proc and d.proc.poll() is not None else ''}:")
            print(d.log_tail(40))
        print(f"(files kept in {ctx.dir})")
    finally:
        ctx.cleanup()
    if rc == 0:
        shutil.rmtree(ctx.dir, ignore_errors=True)
        print(f"== {'SKIP' if skipped else 'PASS'} {name} ({time.monotonic() - t0:.1f}s)",
              flush=True)
    sys.exit(rc)
