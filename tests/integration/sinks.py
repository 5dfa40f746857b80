"""Receiving SMTP servers ("sinks") and delivery helpers for tern's delivery scenarios (30-49).

Run with Debian's interpreter (/usr/bin/python3): stdlib, python3-aiosmtpd, python3-dnslib.
All traffic stays on 127.0.0.0/8; every wait has a deadline and every loop a bound.

    import sinks
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])    # one number, free on each address
    mx1 = sinks.Sink("127.0.0.2", port, name="mx1")          # an aiosmtpd server, not started
    mx1.start(); ...; mx1.stop()
    mx1.messages()       # [Received(...)], in arrival order
    mx1.connections()    # peers of the TCP connections tern opened (probes excluded)

Sink behaviour (keyword arguments, most also settable later through attributes):
    rcpt_replies={"user@x": "550 5.1.1 No such user"}  reply at RCPT for these recipients
    max_rcpts=N          "452 4.5.3 Too many recipients" for recipients past N in a transaction
    pipelining=True      announce PIPELINING (aiosmtpd itself does not)
    size_limit=N         announce "SIZE N" (and enforce it); default: no SIZE keyword
    smtputf8=True        announce SMTPUTF8
    data_delay=S         wait S seconds before answering the end of data
    data_reply="..."     reply to the end of data instead of 250
    mail_reply="..."     reply to MAIL instead of 250

RawSink: the other kinds of peer, on a plain socket thread:
    RawSink(addr, port, greeting="421 4.3.2 busy")   says that, then 503s until QUIT/close
    RawSink(addr, port, greeting=None)                tarpit: accepts, never says anything

ScriptedSink(addr, port, read_rate=B)  reads the data slowly, keeps only its SHA-256
ScriptedSink(addr, port, drip=S)       drips its greeting one byte every S seconds

Nothing listening on an address (a sink not started) means "connection refused".
"""

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402


# ---------------------------------------------------------------------------------------
# Ports

def _bindable(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def pick_port(addresses, tries=50):
    """One TCP port number that is free on every address in `addresses` (delivery.port is a
    single number used for every MX host). Bounded retries."""
    addresses = list(addresses)
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        if all(_bindable(a, port) for a in addresses):
            return port
    h.fail(f"no port free on all of {addresses} after {tries} tries")


# ---------------------------------------------------------------------------------------
# What a sink received

class Received:
    def __init__(self, sink, peer, helo, mail_from, mail_options, rcpt_tos, data, tls=None,
                 auth_user=None):
        self.sink = sink
        self.tls = tls              # the TLS version the message came over ("TLSv1.3"), or None
        self.auth_user = auth_user  # the user the client authenticated as, or None
        self.peer = peer
        self.helo = helo
        self.mail_from = mail_from
        self.mail_options = list(mail_options)
        self.rcpt_tos = list(rcpt_tos)
        self.data = bytes(data)
        self.time = time.monotonic()
        self.acked = False          # True once the end-of-data reply was handed to the server
        self.acked_time = None

    def header(self, name):
        """The first value of header `name` in data (unfolded), or None."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        m = re.search(r"(?im)^" + re.escape(name) + r":[ \t]*(.*(?:\r\n[ \t].*)*)", head)
        return re.sub(r"\r\n[ \t]+", " ", m.group(1)).strip() if m else None

    def __repr__(self):
        return (f"<Received at {self.sink} from={self.mail_from!r} to={self.rcpt_tos!r} "
                f"{len(self.data)} bytes peer={self.peer}>")


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    # Five parameters: aiosmtpd's "new" EHLO hook, which returns the reply lines.
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.sink._note("ehlo", hostname)
        if self.sink.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        if getattr(self.sink, "dsn", False):  # DsnSink (RFC 3461)
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.sink._note("helo", hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.sink._note("mail", address)
        reply = self.sink.mail_reply
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.sink._note("rcpt", address)
        with self.sink.lock:
            reply = self.sink.rcpt_replies.get(address.lower())
            max_rcpts = self.sink.max_rcpts
        if reply:
            return reply
        if max_rcpts is not None and len(envelope.rcpt_tos) >= max_rcpts:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        ssl_obj = server.transport.get_extra_info("ssl_object") if server.transport else None
        login = getattr(session, "login_data", None)
        rec = Received(sink.name, session.peer, session.host_name, envelope.mail_from,
                       envelope.mail_options, envelope.rcpt_tos, envelope.original_content,
                       tls=ssl_obj.version() if ssl_obj else None,
                       auth_user=login.decode() if isinstance(login, bytes) else login)
        with sink.lock:
            reply = sink.data_reply
            delay = sink.data_delay
            if not reply or reply.startswith("2"):
                sink._messages.append(rec)
            else:
                sink._refused.append(rec)
        if delay:
            await asyncio.sleep(delay)
        with sink.lock:
            rec.acked = True
            rec.acked_time = time.monotonic()
            sink._seq += 1
            n = sink._seq
        return reply or f"250 2.0.0 OK queued as {sink.name}-{n}"


class _SMTP(SMTP):
    """aiosmtpd's server, noting each TCP connection."""

    def __init__(self, handler, sink, **kw):
        super().__init__(handler, **kw)
        self._tern_sink = sink

    def connection_made(self, transport):
        super().connection_made(transport)
        self._tern_sink._connected(transport.get_extra_info("peername"))


class _Controller(Controller):
    def __init__(self, sink, **kw):
        self._tern_sink = sink
        super().__init__(_Handler(sink), **kw)

    def factory(self):
        cls = getattr(self._tern_sink, "smtp_class", _SMTP)  # DsnSink: _ParamSMTP
        return cls(self.handler, self._tern_sink, **self.SMTP_kwargs)

    def _trigger_server(self):
        # Controller.start() connects once to make aiosmtpd build its server object; that
        # probe is not one of tern's connections.
        with socket.create_connection((self.hostname, self.port), 2.0) as s:
            self._tern_sink._probe(s.getsockname())
            if self.ssl_context:  # an implicit-TLS sink: complete a handshake
                import ssl
                cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                cctx.check_hostname = False
                cctx.verify_mode = ssl.CERT_NONE
                s = cctx.wrap_socket(s)
            s.settimeout(2.0)
            try:
                s.recv(1024)
            except socket.timeout:
                pass


class _Base:
    def __init__(self, address, port, name):
        self.address = address
        self.port = port
        self.name = name or f"sink@{address}"
        self.lock = threading.Lock()
        self._conns = []
        self._probes = set()

    def _connected(self, peer):
        with self.lock:
            self._conns.append((peer, time.monotonic()))

    def _probe(self, sockname):
        with self.lock:
            self._probes.add(tuple(sockname[:2]))

    def connections(self):
        """Peers of every TCP connection accepted so far (aiosmtpd's start probe excluded)."""
        with self.lock:
            return [p for p, _ in self._conns if tuple(p[:2]) not in self._probes]


class Sink(_Base):
    """A real receiving SMTP server (aiosmtpd) on address:port."""

    def __init__(self, address, port, name=None, *, rcpt_replies=None, max_rcpts=None,
                 pipelining=True, size_limit=None, data_delay=0.0, data_reply=None,
                 mail_reply=None, hostname=None, smtputf8=True, tls_context=None,
                 implicit_tls_context=None, auth_users=None):
        super().__init__(address, port, name)
        # TLS: tls_context offers STARTTLS; implicit_tls_context serves TLS from the first
        # byte. auth_users {user: password} offers AUTH PLAIN/LOGIN (inside TLS only).
        self.tls_context = tls_context
        self.implicit_tls_context = implicit_tls_context
        self.auth_users = dict(auth_users or {})
        self.auth_attempts = []  # (user, ok) for every AUTH the sink saw
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.max_rcpts = max_rcpts
        self.pipelining = pipelining
        self.size_limit = size_limit
        self.data_delay = data_delay
        self.data_reply = data_reply
        self.mail_reply = mail_reply
        self.smtputf8 = smtputf8
        self.hostname = hostname or f"{self.name}.sink.example"
        self._messages = []
        self._refused = []
        self._events = []
        self._seq = 0
        self.controller = None

    # -- control

    def start(self, tries=3):
        h.check(self.controller is None, f"{self.name}: not already running")
        last = None
        for _ in range(tries):
            extra = {}
            if self.tls_context is not None:
                extra["tls_context"] = self.tls_context
            if self.implicit_tls_context is not None:
                extra["ssl_context"] = self.implicit_tls_context
            if self.auth_users:
                extra["auth_callback"] = self._auth
                # aiosmtpd only knows STARTTLS as TLS: on an implicit-TLS sink every
                # connection is TLS already.
                extra["auth_require_tls"] = self.implicit_tls_context is None
            c = _Controller(self, hostname=self.address, port=self.port,
                            server_hostname=self.hostname, ready_timeout=5.0,
                            data_size_limit=self.size_limit or 0,
                            enable_SMTPUTF8=self.smtputf8,
                            timeout=60, **extra)
            try:
                c.start()
            except (OSError, TimeoutError, RuntimeError) as e:
                last = e
                try:
                    c.stop(no_assert=True)
                except BaseException:
                    pass
                time.sleep(0.2)
                continue
            self.controller = c
            print(f"  ..   {self.name} listening on {self.address}:{self.port}", flush=True)
            return self
        h.fail(f"{self.name}: cannot listen on {self.address}:{self.port}: {last}")

    def stop(self):
        if self.controller is not None:
            c, self.controller = self.controller, None
            c.stop(no_assert=True)

    def _auth(self, mechanism, login, password):
        user = login.decode("utf-8", "replace")
        ok = self.auth_users.get(user) == password.decode("utf-8", "replace")
        with self.lock:
            self.auth_attempts.append((user, ok))
        return ok

    @property
    def running(self):
        return self.controller is not None

    def set_rcpt_reply(self, address, reply):
        with self.lock:
            if reply is None:
                self.rcpt_replies.pop(address.lower(), None)
            else:
                self.rcpt_replies[address.lower()] = reply

    # -- what arrived

    def _note(self, what, arg):
        with self.lock:
            self._events.append((what, arg, time.monotonic()))

    def events(self, what=None):
        with self.lock:
            return [(w, a) for w, a, _ in self._events if what is None or w == what]

    def messages(self):
        with self.lock:
            return list(self._messages)

    def acked(self):
        with self.lock:
            return [m for m in self._messages if m.acked]

    def rcpt_counts(self):
        """{recipient (lower case): how many accepted messages carried it}."""
        out = {}
        for m in self.messages():
            for r in m.rcpt_tos:
                out[r.lower()] = out.get(r.lower(), 0) + 1
        return out

    def wait_messages(self, n, timeout, acked=True):
        """Bounded wait until at least n messages arrived (and were acknowledged)."""
        wait_until(lambda: len(self.acked() if acked else self.messages()) >= n, timeout,
                   f"{self.name} received {n} message(s)")
        return self.messages()


class RawSink(_Base):
    """A peer that is not a working SMTP server: a fixed greeting (e.g. 421, 554) then 503
    for everything but QUIT, or (greeting=None) a tarpit that accepts and never speaks."""

    def __init__(self, address, port, name=None, greeting=None):
        super().__init__(address, port, name)
        self.greeting = greeting
        self.sock = None
        self.thread = None
        self.stopping = threading.Event()
        self.clients = []

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.address, self.port))
        except OSError as e:
            s.close()
            h.fail(f"{self.name}: cannot bind {self.address}:{self.port}: {e}")
        s.listen(64)
        s.settimeout(0.1)
        self.sock = s
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        kind = "tarpit" if self.greeting is None else f"greeting {self.greeting!r}"
        print(f"  ..   {self.name} ({kind}) listening on {self.address}:{self.port}", flush=True)
        return self

    def _run(self):
        # Ends with the stop flag; each turn waits at most 0.1 s (the count bound is ~1 day).
        for _ in range(1_000_000):
            if self.stopping.is_set():
                return
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._connected(peer)
            with self.lock:
                self.clients.append(c)
            if self.greeting is not None:
                threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        """One connection's thread: the dialogue (_talk, which subclasses replace), then
        the socket is closed whatever happened."""
        try:
            self._talk(c)
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _talk(self, c):
        try:
            c.settimeout(0.2)
            c.sendall(self.greeting.encode() + b"\r\n")
            if self.greeting.startswith("421"):
                return  # 421: the server closes the channel
            buf = b""
            for _ in range(3000):  # at most ~10 min of 0.2 s turns; stop ends it sooner
                if self.stopping.is_set():
                    return
                try:
                    chunk = c.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if line.upper().startswith(b"QUIT"):
                        c.sendall(b"221 2.0.0 Bye\r\n")
                        return
                    c.sendall(b"503 5.5.1 No service\r\n")
        except OSError:
            pass

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
            self.thread = None
        if self.sock:
            self.sock.close()
            self.sock = None
        with self.lock:
            for c in self.clients:
                try:
                    c.close()
                except OSError:
                    pass
            self.clients = []

    @property
    def running(self):
        return self.sock is not None


class ScriptedSink(RawSink):
    """A minimal SMTP server on a plain socket thread, for what aiosmtpd cannot do:
    read_rate=B        read the message data at about B bytes/s (a slow but live next hop);
                       keeps only a SHA-256 and the length of what it got (no 30 MB copies)
    drip=S             send the greeting one byte every S seconds (a hostile next hop)
    starttls=B         offer STARTTLS and answer it with the bytes B (e.g. an injection:
                       b"220 go\\r\\n250 x\\r\\n"), never starting TLS; counted in starttls_seen
    Each finished message is (mail_from, rcpt_tos, length, sha256 of the un-stuffed data,
    first 4 KiB); peers are recorded like the other sinks'. Sockets and threads are
    RawSink's; only the dialogue differs."""

    def __init__(self, address, port, name=None, read_rate=None, drip=None, starttls=None):
        super().__init__(address, port, name, greeting="220 scripted ESMTP")
        self.read_rate = read_rate
        self.drip = drip
        self.starttls = starttls
        self.starttls_seen = 0
        self.verbs = []  # every command verb received, in order
        self.done = []

    def _talk(self, c):
        import hashlib
        buf = b""

        def line():
            nonlocal buf
            for _ in range(10000):
                if b"\r\n" in buf:
                    ln, buf = buf.split(b"\r\n", 1)
                    return ln
                if self.stopping.is_set():
                    return None
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return None
                buf += chunk
            return None

        try:
            c.settimeout(0.2)
            greeting = b"220 scripted ESMTP\r\n"
            if self.drip:
                for i in range(len(greeting)):
                    if self.stopping.is_set():
                        return
                    c.sendall(greeting[i:i + 1])
                    time.sleep(self.drip)
            else:
                c.sendall(greeting)
            mail, rcpts = None, []
            for _ in range(10000):
                ln = line()
                if ln is None:
                    return
                verb = ln[:4].upper()
                with self.lock:
                    self.verbs.append(ln[:8].upper())
                if verb in (b"EHLO", b"HELO"):
                    tls = b"250-STARTTLS\r\n" if self.starttls else b""
                    c.sendall(b"250-scripted\r\n" + tls + b"250 8BITMIME\r\n" if verb == b"EHLO" else b"250 scripted\r\n")
                elif self.starttls and ln.upper() == b"STARTTLS":
                    with self.lock:
                        self.starttls_seen += 1
                    c.sendall(self.starttls)
                elif verb == b"MAIL":
                    mail, rcpts = ln.split(b":", 1)[1].split(b">")[0].lstrip(b" <").decode(), []
                    c.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(ln.split(b":", 1)[1].split(b">")[0].lstrip(b" <").decode())
                    c.sendall(b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    c.sendall(b"354 go ahead\r\n")
                    digest, length, head = hashlib.sha256(), 0, b""
                    at_line_start = True
                    t0 = time.monotonic()
                    for _ in range(10_000_000):
                        # Un-stuff line by line: whole lines only from the buffer.
                        while b"\r\n" in buf:
                            ln2, buf = buf.split(b"\r\n", 1)
                            if ln2 == b".":
                                break
                            if ln2.startswith(b"."):
                                ln2 = ln2[1:]
                            piece = ln2 + b"\r\n"
                            digest.update(piece)
                            length += len(piece)
                            if len(head) < 4096:
                                head += piece
                        else:
                            if self.stopping.is_set():
                                return
                            try:
                                chunk = c.recv(65536)
                            except socket.timeout:
                                continue
                            if not chunk:
                                return
                            buf += chunk
                            if self.read_rate:
                                # Pace the reading: ahead of schedule, sleep it off.
                                ahead = (length + len(buf)) / self.read_rate - (time.monotonic() - t0)
                                if ahead > 0:
                                    time.sleep(min(ahead, 0.5))
                            continue
                        break
                    with self.lock:
                        self.done.append((mail, rcpts, length, digest.hexdigest(), head))
                    c.sendall(b"250 2.0.0 ok scripted\r\n")
                elif verb == b"RSET":
                    c.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    c.sendall(b"502 5.5.2 what\r\n")
        except OSError:
            pass

    def finished(self):
        with self.lock:
            return list(self.done)


# ---------------------------------------------------------------------------------------
# Waiting

def wait_until(cond, timeout, what, interval=0.05):
    """Bounded poll: returns cond()'s truthy value or fails naming `what`."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 100):
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    h.fail(f"{what}: not within {timeout}s")


# ---------------------------------------------------------------------------------------
# ternd set up for delivery

def delivery_overrides(port, dns_port, retry=("1s", "2s", 2), timeouts=None, **delivery):
    """Config overrides: delivery to `port`, short retries, DNS from our zone server."""
    d = {"port": port,
         "retry": {"initial": retry[0], "max": retry[1], "factor": retry[2]},
         "timeouts": dict({"connect": "2s", "greeting": "5s", "helo": "5s", "mail": "5s",
                           "rcpt": "5s", "data": "5s", "data_block": "5s", "data_end": "10s",
                           "quit": "2s"}, **(timeouts or {}))}
    d.update(delivery)
    return {"delivery": d,
            "dns": {"forwarders": [f"127.0.0.1@{dns_port}"], "timeout": "3s"}}


def start_dns(ctx, records):
    import dnsserver
    server, port = dnsserver.start_dns_server(records)
    ctx.cleanups.append(server.stop)
    return server, port


def add_sink(ctx, sink, start=True):
    ctx.cleanups.append(sink.stop)
    if start:
        sink.start()
    return sink


# ---------------------------------------------------------------------------------------
# The log

DELIVERY_RE = re.compile(
    r"delivery: id=(?P<id>\S+) to=<(?P<to>[^>]*)> relay=(?P<relay>\S+) tls=(?P<tls>\S+)"
    r"(?: cipher=(?P<cipher>\S+) verified=(?P<verified>\S+)(?: tlsa=\"(?P<tlsa>[^\"]*)\")?)?(?: sts=(?P<sts>\S+))?"
    r" delay=\S+ attempt=\S+ "
    r"dsn=(?P<dsn>\S+) status=(?P<status>\w+) \((?P<reply>.*)\)\s*$")


class Delivery:
    def __init__(self, m, line):
        self.id = m.group("id")
        self.to = m.group("to")
        self.relay = m.group("relay")
        self.tls = m.group("tls")
        self.verified = m.group("verified")
        self.tlsa = m.group("tlsa")
        self.sts = m.group("sts")  # enforce | testing when an MTA-STS policy applied, else None
        self.dsn = m.group("dsn")
        self.status = m.group("status")
        self.reply = m.group("reply")
        self.line = line

    def __repr__(self):
        return self.line.strip()


def deliveries(tern, qid=None, to=None, status=None):
    """Every "delivery: ..." log line of `tern`, parsed, optionally filtered."""
    out = []
    for line in tern.log().splitlines():
        m = DELIVERY_RE.search(line)
        if not m:
            continue
        d = Delivery(m, line)
        if qid and d.id != qid:
            continue
        if to and d.to.lower() != to.lower():
            continue
        if status and d.status != status:
            continue
        out.append(d)
    return out


def wait_delivery(tern, qid=None, to=None, status=None, count=1, timeout=15):
    """Bounded wait for `count` matching delivery log lines; returns them."""
    return wait_until(lambda: (lambda ds: ds if len(ds) >= count else None)(
        deliveries(tern, qid, to, status)), timeout,
        f"log line delivery: id={qid} to=<{to}> status={status} (x{count})")


def wait_queue_empty(tern, timeout=15, what="the queue is empty"):
    wait_until(lambda: not tern.queue_ids(), timeout, what)
    h.check(True, what)


def status_of(tern, qid):
    """{rcpt address: last state} from the queue file (None if the file is gone)."""
    path = os.path.join(tern.msg_dir(), qid)
    if not os.path.exists(path):
        return None
    try:
        m = h.parse_queue_file(path)
    except (h.Failure, FileNotFoundError):
        return None
    st = {r["address"]: "pending" for r in m.rcpts}
    replies = {}
    for idx, state, _, reply, *_ in m.statuses:
        st[m.rcpts[idx]["address"]] = state
        replies[m.rcpts[idx]["address"]] = reply
    return st


# ---------------------------------------------------------------------------------------
# ternctl

def ternctl(tern, *args, timeout=10, config=True):
    cmd = [h.TERNCTL] + (["--config", tern.config_path] if config else []) + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        h.fail(f"{' '.join(cmd)} still running after {timeout}s")
    return p


QUEUE_LINE_RE = re.compile(
    r"^(?P<id>[0-9A-HJKMNP-TV-Z]{11}) age=(?P<age>\S+) size=(?P<size>\d+) from=<(?P<from>[^>]*)> "
    r"next=(?P<next>in \S+|none)(?P<rcpts>.*)$")
RCPT_RE = re.compile(r' to=<(?P<to>[^>]*)>:(?P<state>[a-z-]+)(?: "(?P<reply>[^"]*)")?')


def queue_listing(tern):
    """`ternctl queue`, parsed: {id: {"line", "size", "from", "next", "rcpts": {to: (state, reply)}}}."""
    p = ternctl(tern, "queue")
    if p.returncode != 0:
        h.fail(f"ternctl queue exited {p.returncode}: {p.stderr!r}")
    out = {}
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        m = QUEUE_LINE_RE.match(line)
        if m is None:
            h.fail(f"ternctl queue line does not parse: {line!r}")
        rcpts = {r.group("to"): (r.group("state"), r.group("reply"))
                 for r in RCPT_RE.finditer(m.group("rcpts"))}
        out[m.group("id")] = {"line": line, "size": int(m.group("size")), "from": m.group("from"),
                              "next": m.group("next"), "age": m.group("age"), "rcpts": rcpts}
    return out


def send(tern, sender, rcpts, body, source=None):
    """One message through smtplib; asserts 250 and returns the queue id."""
    code, text, qid = h.send_smtplib(tern.port, sender, rcpts, body, source=source)
    if code != 250 or not qid:
        h.fail(f"message to {rcpts} not accepted: {code} {text}")
    return qid


def body(subject, text="Hello.\r\n", msgid=None):
    """A small complete message (with Message-ID and Date, so tern adds nothing)."""
    mid = msgid or f"<{subject.replace(' ', '.')}.{time.monotonic_ns()}@client.example>"
    return (f"From: sender@client.example\r\nTo: someone@example\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n{text}").encode()


# ---------------------------------------------------------------------------------------
# DSN (RFC 3461/3464) for the bounce scenarios (50-59)
#
#   dsn = sinks.DsnSink("127.0.0.4", port, "dsn")   # announces DSN, takes RET/ENVID/NOTIFY/ORCPT
#   dsn.mail_args() / dsn.rcpt_args()   # every MAIL FROM:/RCPT TO: argument exactly as sent
#   DsnSink(..., dsn=False): records them the same way but announces no DSN (stock behaviour)
#
#   rep = sinks.parse_report(received.data)   # a multipart/report, checked and taken apart
#   rep.per_message["reporting-mta"], rep.recipients[0]["status"], rep.returned_headers()["Subject"]
#
#   sinks.read_queue_file(path)   # queue-format.md version 1 incl. RELAY and delay-warned
#   sinks.notice_lines(tern)      # "bounce: id=... <kind> queued as ..." log lines

import email  # noqa: E402
import email.policy  # noqa: E402
import email.utils  # noqa: E402
from email.parser import BytesHeaderParser  # noqa: E402

from aiosmtpd.smtp import syntax as _syntax  # noqa: E402

_DSN_MAIL_KEYS = ("RET", "ENVID")
_DSN_RCPT_KEYS = ("NOTIFY", "ORCPT")


def _split_dsn_params(arg, prefix, keys):
    """'FROM:<a@b> SIZE=1 RET=HDRS' -> ('FROM:<a@b> SIZE=1', ['RET=HDRS']) for keys=(RET,...).
    The path ends at the first '>' (the scenarios use no quoted local parts)."""
    if arg is None or not arg[:len(prefix)].upper() == prefix:
        return arg, []
    rest = arg[len(prefix):].lstrip()
    end = rest.find(">") + 1 if rest.startswith("<") else (rest.find(" ") if " " in rest else len(rest))
    if end <= 0:
        return arg, []
    path, params = rest[:end], rest[end:].split()
    taken = [p for p in params if p.split("=", 1)[0].upper() in keys]
    kept = [p for p in params if p.split("=", 1)[0].upper() not in keys]
    return prefix + path + ("" if not kept else " " + " ".join(kept)), taken


class _ParamSMTP(_SMTP):
    """aiosmtpd's server that notes every MAIL/RCPT argument as it came (aiosmtpd upper-cases
    the parameters it hands on); with sink.dsn it also takes the RFC 3461 parameters, which
    stock aiosmtpd refuses with 555."""

    @_syntax('MAIL FROM: <address>', extended=' [SP <mail-parameters>]')
    async def smtp_MAIL(self, arg):
        sink = self._tern_sink
        sink._note("mail_arg", arg)
        if sink.dsn:
            arg, taken = _split_dsn_params(arg, "FROM:", _DSN_MAIL_KEYS)
            sink._note("mail_dsn", taken)
        await super().smtp_MAIL(arg)

    @_syntax('RCPT TO: <address>', extended=' [SP <mail-parameters>]')
    async def smtp_RCPT(self, arg):
        sink = self._tern_sink
        sink._note("rcpt_arg", arg)
        if sink.dsn:
            arg, taken = _split_dsn_params(arg, "TO:", _DSN_RCPT_KEYS)
            sink._note("rcpt_dsn", taken)
        await super().smtp_RCPT(arg)


class DsnSink(Sink):
    """A Sink that announces DSN in its EHLO reply and accepts RET/ENVID on MAIL and
    NOTIFY/ORCPT on RCPT (recorded raw, see mail_args()/rcpt_args()). With dsn=False it is a
    plain Sink that still records the raw arguments."""

    smtp_class = _ParamSMTP

    def __init__(self, address, port, name=None, dsn=True, **kw):
        super().__init__(address, port, name, **kw)
        self.dsn = dsn

    def mail_args(self):
        """Every MAIL argument as sent, e.g. 'FROM:<a@b> SIZE=12 RET=HDRS ENVID=abc'."""
        return [a for _, a in self.events("mail_arg")]

    def rcpt_args(self):
        return [a for _, a in self.events("rcpt_arg")]


def bounces(sink):
    """The acknowledged messages at `sink` that came from the null sender (notices)."""
    return [m for m in sink.acked() if m.mail_from in ("<>", "")]


def wait_bounces(sink, n, timeout, what=None):
    """Bounded wait until `sink` has at least n acknowledged messages from <>."""
    wait_until(lambda: len(bounces(sink)) >= n, timeout,
               what or f"{sink.name} received {n} notice(s) from <>")
    return bounces(sink)


# -- reading a delivery status notification

def _split_parts(body, boundary):
    """The body parts of a multipart body (bytes), each as raw bytes (RFC 2046 §5.1.1)."""
    delim = b"--" + boundary.encode()
    parts = []
    # The body starts with the preamble; every delimiter sits at the start of a line.
    text = b"\r\n" + body
    pieces = text.split(b"\r\n" + delim)
    if len(pieces) < 2:
        h.fail(f"multipart body without its boundary {boundary!r}")
    closed = False
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            closed = True
            break
        nl = piece.find(b"\r\n")
        if nl < 0:
            h.fail(f"boundary line without CRLF: {piece[:80]!r}")
        if piece[:nl].strip(b" \t"):
            h.fail(f"junk after the boundary: {piece[:nl]!r}")
        parts.append(piece[nl + 2:])
    if not closed:
        h.fail(f"multipart body has no close delimiter --{boundary}--")
    return parts


def _head_body(part):
    """(header bytes, body bytes) of one MIME part; the header may be empty."""
    if part.startswith(b"\r\n"):
        return b"", part[2:]
    i = part.find(b"\r\n\r\n")
    if i < 0:
        return part, b""
    return part[:i + 2], part[i + 4:]


def parse_fields(text):
    """DSN field blocks (RFC 3464 §2.1): blank-line separated groups of 'Name: value' lines
    with folding. Returns [ {lower-case name: value}, ... ]; a repeated field fails."""
    blocks, cur, last = [], None, None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if cur is not None:
                blocks.append(cur)
            cur, last = None, None
            continue
        if line[0] in " \t":
            if last is None:
                h.fail(f"continuation line without a field: {line!r}")
            cur[last] += " " + line.strip()
            continue
        if ":" not in line:
            h.fail(f"DSN line is not 'Name: value': {line!r}")
        name, value = line.split(":", 1)
        if cur is None:
            cur = {}
        key = name.strip().lower()
        if key in cur:
            h.fail(f"field {name!r} appears twice in one DSN block")
        cur[key] = value.strip()
        last = key
    if cur is not None:
        blocks.append(cur)
    return blocks


class Report:
    """One notice, taken apart: the email package's view (msg, parts) and the raw MIME parts
    (ctypes, heads, bodies); the delivery-status fields (per_message, recipients); the human
    text; the returned message or headers."""

    def __init__(self, raw):
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.content_type = self.msg.get_content_type()
        self.report_type = self.msg.get_param("report-type")
        if not self.msg.is_multipart():
            h.fail(f"notice is not multipart: {self.content_type}")
        self.parts = list(self.msg.iter_parts())
        head, body = raw.split(b"\r\n\r\n", 1)
        raw_parts = _split_parts(body, self.msg.get_boundary())
        self.heads, self.bodies = [], []
        for p in raw_parts:
            hd, bd = _head_body(p)
            self.heads.append(BytesHeaderParser(policy=email.policy.default).parsebytes(hd + b"\r\n"))
            self.bodies.append(bd)
        self.ctypes = [hd.get_content_type() for hd in self.heads]
        if len(self.bodies) < 2:
            h.fail(f"a report has at least two parts, this one {len(self.bodies)}")
        self.human = self.bodies[0].decode("utf-8", "replace")
        blocks = parse_fields(self.bodies[1].decode("utf-8", "replace"))
        if not blocks:
            h.fail("the delivery-status part is empty")
        self.per_message = blocks[0]
        self.recipients = blocks[1:]

    def header(self, name):
        v = self.msg.get(name)
        return None if v is None else str(v)

    def rcpt(self, address):
        """The per-recipient block whose Final-Recipient is `address` (None if none)."""
        for b in self.recipients:
            fr = b.get("final-recipient", "")
            if ";" in fr and fr.split(";", 1)[1].strip().lower() == address.lower():
                return b
        return None

    def returned(self):
        """(content type, body bytes) of the third part, or (None, None)."""
        if len(self.bodies) < 3:
            return None, None
        return self.ctypes[2], self.bodies[2]

    def returned_headers(self):
        """The returned message's header (third part), parsed."""
        _, b = self.returned()
        if b is None:
            return None
        return BytesHeaderParser(policy=email.policy.default).parsebytes(b)

    def returned_subject(self):
        hd = self.returned_headers()
        return None if hd is None else hd.get("Subject")

    def __repr__(self):
        return (f"<Report {self.content_type} report-type={self.report_type} parts={self.ctypes} "
                f"rcpts={[b.get('final-recipient') for b in self.recipients]}>")


def parse_report(raw):
    return Report(raw)


def rfc5322_date(value, what):
    """Parses an RFC 5322 date (fails with `what` otherwise); returns a Unix time."""
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        d = None
    if d is None or d.tzinfo is None:
        h.fail(f"{what}: not an RFC 5322 date with a zone: {value!r}")
    return d.timestamp()


# -- the queue file, version 1 as queue-format.md describes it now (RELAY, delay-warned)

class QueueFile:
    def __init__(self):
        self.fields = {}
        self.sender = None
        self.mail_params = []
        self.rcpts = []          # dicts: address, orig, params
        self.data = b""
        self.statuses = []       # (index, state, time, relay, reply)
        self.delay_warned = []   # times

    def states(self):
        """{address: last state}"""
        st = {r["address"]: "pending" for r in self.rcpts}
        for idx, state, _, _, _ in self.statuses:
            st[self.rcpts[idx]["address"]] = state
        return st


def read_queue_file(path):
    """Parses msg/ID (None if it is gone). Only what the bounce scenarios need."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    q = QueueFile()
    pos = 0
    size = None
    for _ in range(100000):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            h.fail(f"{path}: header not terminated by 'data'")
        line = raw[pos:nl].decode("utf-8", "surrogateescape")
        pos = nl + 1
        if line == "data":
            break
        key, _, val = line.partition(" ")
        if key == "sender":
            q.sender = h.unbracket(val)
        elif key == "mail-param":
            q.mail_params.append(h.unescape(val))
        elif key == "rcpt":
            f = val.split(" ")
            r = {"address": h.unbracket(f[0]), "orig": None, "params": []}
            for p in f[1:]:
                if p.startswith("orig="):
                    r["orig"] = h.unbracket(p[5:])
                else:
                    r["params"].append(h.unescape(p))
            q.rcpts.append(r)
        elif key == "data-size":
            size = int(val)
        else:
            q.fields[key] = val
    if size is None:
        h.fail(f"{path}: no data-size")
    q.data = raw[pos:pos + size]
    for line in raw[pos + size:].split(b"\n")[:-1]:  # a torn last line has no \n: ignored
        f = line.decode("utf-8", "surrogateescape").split(" ", 5)
        if f[0] == "delay-warned" and len(f) == 2:
            q.delay_warned.append(int(f[1]))
            continue
        if f[0] != "status" and re.fullmatch(r"[a-z][a-z0-9-]*", f[0]):
            continue  # an optional record (status-code, ...): queue-format.md, Format evolution
        if f[0] != "status" or len(f) < 5:
            h.fail(f"{path}: unexpected record {line!r}")
        q.statuses.append((int(f[1]), f[2], int(f[3]), "" if f[4] == "-" else h.unescape(f[4]),
                           h.unescape(f[5]) if len(f) > 5 else ""))
    return q


def queue_files(tern):
    """{id: QueueFile} for every file in msg/ (files removed meanwhile are skipped)."""
    out = {}
    for qid in tern.queue_ids():
        q = read_queue_file(os.path.join(tern.msg_dir(), qid))
        if q is not None:
            out[qid] = q
    return out


# -- the log

NOTICE_RE = re.compile(r"bounce: id=(?P<id>\S+) (?P<kind>bounce|delay warning|relayed notice) "
                       r"queued as (?P<notice>\S+) to=<(?P<to>[^>]*)> nrcpt=(?P<n>\d+)")


def notice_lines(tern, qid=None, kind=None):
    """[(original id, kind, notice id, to, nrcpt)] from "bounce: ... queued as" log lines."""
    out = []
    for m in NOTICE_RE.finditer(tern.log()):
        if (qid is None or m.group("id") == qid) and (kind is None or m.group("kind") == kind):
            out.append((m.group("id"), m.group("kind"), m.group("notice"), m.group("to"),
                        int(m.group("n"))))
    return out


def removed(tern, qid):
    return f"queue: id={qid} removed" in tern.log()


def raw_transaction(t, mail, rcpts, data):
    """One transaction over a raw session (MAIL and RCPT lines as given, with any ESMTP
    parameters); asserts every step and returns the queue id."""
    with t.session() as c:
        c.expect(mail, 250, "2.1.0")
        for r in rcpts:
            c.expect(r, 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(data))
        r = c.read_reply(timeout=15)
        h.expect_reply(r, 250, "2.0.0", "end of data")
        c.expect("QUIT", 221)
    return r.queue_id()


class SoftChecks:
    """Checks that record a failure and go on, so one run reports every problem; finish()
    fails the scenario if any check failed."""

    def __init__(self):
        self.problems = []

    def __call__(self, cond, what, detail=""):
        if cond:
            h.check(True, what)
        else:
            self.problems.append(what + (f": {detail}" if detail else ""))
            print(f"  FAIL {self.problems[-1]}", flush=True)

    def finish(self):
        if self.problems:
            h.fail("; ".join(self.problems))


# The zone most bounce scenarios share: recipients at relay.example (MX mx1, 127.0.0.2) and
# senders at sender.example (MX 127.0.0.3, where their notices arrive).
BOUNCE_ZONE = [
    ("relay.example", "MX", (10, "mx1.relay.example")),
    ("mx1.relay.example", "A", "127.0.0.2"),
    ("sender.example", "MX", (10, "mx.sender.example")),
    ("mx.sender.example", "A", "127.0.0.3"),
]


def start_bounce_world(ctx, extra_records=()):
    """One port free on 127.0.0.2 and 127.0.0.3, and a DNS server with BOUNCE_ZONE (plus
    `extra_records`). Returns (port, dns, dns_port)."""
    port = pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = start_dns(ctx, BOUNCE_ZONE + list(extra_records))
    return port, dns, dns_port
