#!/usr/bin/python3
"""A small authoritative DNS server for the integration scenarios (UDP and TCP on 127.0.0.1),
built on python3-dnslib. It plays the forwarder tern's resolver asks.

As a module:

    import dnsserver
    server, port = dnsserver.start_dns_server([
        ("mx.example",      "MX",       (10, "mx1.mx.example")),
        ("mx1.mx.example",  "A",        "127.0.0.2"),
        ("mx1.mx.example",  "AAAA",     "::1"),
        ("alias.example",   "CNAME",    "mx1.mx.example"),
        ("_mta-sts.mx.example", "TXT",  "v=STSv1; id=1"),   # or a list of strings
        ("null.example",    "MX",       (0, ".")),          # null MX, RFC 7505
        ("sf.example",      "SERVFAIL", None),              # every query: SERVFAIL
        ("slow.example",    "DROP",     None),              # every query: no answer at all
        ("bad.example",     "MALFORMED", None),             # MX/A/AAAA with broken rdata
        ("junk.example",    "TRAILING", None),              # MX with octets after the name
    ])
    ...  # point tern at 127.0.0.1@port
    server.set_records([...])   # replace the zone while running
    server.queries              # [(qname, qtype), ...] seen so far, e.g. ("mx.example", "MX")
    server.stop()

Semantics: names are case-insensitive, written without the trailing dot, and must lie under
".example" (libunbound answers .test/.invalid/.localhost itself). A name with no records
(and no records below it) gets NXDOMAIN; a name with records but none of the asked type gets
NOERROR/NODATA with the zone's SOA in the authority section. CNAMEs are followed inside the
zone. Answers are authoritative with RA set, so a forwarding resolver accepts them. TTLs
are `ttl` (default 0: tests may change the zone and must not see stale cached answers).

MALFORMED: an MX whose exchange name overruns its rdata, an A of 3 octets, an AAAA of 15.
TRAILING: a well-formed MX followed by two stray octets inside the rdata.

As a script (for manual runs or subprocess use):

    dnsserver.py [--port N] [--ttl S] ZONEFILE
    ZONEFILE lines: "NAME TYPE VALUE..." e.g. "mx.example MX 10 mx1.mx.example",
    "a.example A 127.0.0.2", "sf.example SERVFAIL"; '#' starts a comment.
    Prints "port N" on stdout once serving, then runs until SIGINT/SIGTERM.
"""
import signal
import socket
import sys
import threading

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RD, RR, SOA, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSError, DNSHandler, DNSLogger, DNSServer

ZONE_APEX = "example"
SPECIAL = ("SERVFAIL", "DROP", "MALFORMED", "TRAILING")
RECORD_TYPES = ("A", "AAAA", "MX", "CNAME", "TXT")
MAX_CNAME_CHAIN = 8

__all__ = ["start_dns_server", "ZoneServer", "parse_zone_text"]


def _canon(name):
    name = str(name).lower()
    return name[:-1] if name.endswith(".") else name


class _Drop(DNSError):
    """Raised by the resolver to send nothing at all (DNSHandler logs and moves on)."""


class _Zone(BaseResolver):
    def __init__(self, records, ttl):
        self.ttl = ttl
        self.lock = threading.Lock()
        self.queries = []
        self.set_records(records)

    def set_records(self, records):
        by_name = {}
        for rec in records:
            name, rtype, value = rec
            name, rtype = _canon(name), rtype.upper()
            if not (name == ZONE_APEX or name.endswith("." + ZONE_APEX)):
                raise ValueError(f"{name}: zone names must be under .{ZONE_APEX}")
            if rtype not in RECORD_TYPES + SPECIAL:
                raise ValueError(f"{name}: unsupported type {rtype}")
            by_name.setdefault(name, []).append((rtype, value))
        with self.lock:
            self.records = by_name

    def _exists(self, name):
        # A name exists if it owns records or has descendants (RFC 8020: an empty
        # non-terminal is NODATA, not NXDOMAIN); the apex always exists.
        return (name == ZONE_APEX or name in self.records
                or any(n.endswith("." + name) for n in self.records))

    def _soa(self):
        return RR(ZONE_APEX + ".", QTYPE.SOA, ttl=self.ttl,
                  rdata=SOA("ns." + ZONE_APEX + ".", "hostmaster." + ZONE_APEX + ".",
                            (1, 3600, 600, 86400, self.ttl)))

    def _rdata(self, rtype, value):
        if rtype == "A":
            return A(value)
        if rtype == "AAAA":
            return AAAA(value)
        if rtype == "MX":
            pref, host = value
            return MX(host if host.endswith(".") else host + ".", pref)
        if rtype == "CNAME":
            return CNAME(value if value.endswith(".") else value + ".")
        if rtype == "TXT":
            # One string, or a list of character-strings (each at most 255 octets).
            return TXT(value if isinstance(value, list) else [value])
        raise ValueError(rtype)

    def _broken(self, special, qtype):
        # Raw rdata octets for MALFORMED/TRAILING answers.
        if special == "TRAILING":
            return b"\x00\x0a" + b"\x03mx1\x07example\x00" + b"\xde\xad"
        if qtype == "A":
            return b"\x7f\x00\x00"
        if qtype == "AAAA":
            return b"\x00" * 15
        # The exchange announces a 20-octet label but the rdata ends after 3.
        return b"\x00\x0a\x14mx1"

    def resolve(self, request, handler):
        qname = _canon(request.q.qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        reply = request.reply(ra=1, aa=1)
        with self.lock:
            self.queries.append((qname, qtype))
            name = qname
            for _ in range(MAX_CNAME_CHAIN):
                recs = self.records.get(name, [])
                specials = [t for t, _ in recs if t in SPECIAL]
                if specials:
                    special = specials[0]
                    if special == "DROP":
                        raise _Drop(f"dropping query for {name}")
                    if special == "SERVFAIL":
                        reply.header.rcode = RCODE.SERVFAIL
                        return reply
                    if qtype in ("MX", "A", "AAAA"):
                        rtype = "MX" if special == "TRAILING" else qtype
                        reply.add_answer(RR(name + ".", getattr(QTYPE, rtype), ttl=self.ttl,
                                            rdata=RD(self._broken(special, qtype))))
                        return reply
                if not self._exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                    reply.add_auth(self._soa())
                    return reply
                matching = [(t, v) for t, v in recs if t == qtype]
                if matching:
                    for t, v in matching:
                        reply.add_answer(RR(name + ".", getattr(QTYPE, t), ttl=self.ttl,
                                            rdata=self._rdata(t, v)))
                    return reply
                cnames = [v for t, v in recs if t == "CNAME"]
                if cnames:
                    reply.add_answer(RR(name + ".", QTYPE.CNAME, ttl=self.ttl,
                                        rdata=self._rdata("CNAME", cnames[0])))
                    name = _canon(cnames[0])
                    if not (name == ZONE_APEX or name.endswith("." + ZONE_APEX)):
                        return reply  # out of zone: the resolver chases it
                    continue
                break
            reply.add_auth(self._soa())  # NODATA (RFC 2308 §2.2)
            return reply


class _Handler(DNSHandler):
    def handle(self):
        try:
            super().handle()
        except (ConnectionError, OSError):
            pass  # a client that went away is no concern of the zone


class _QuietLogger(DNSLogger):
    def __init__(self):
        super().__init__(log="-request,-reply,-truncated,-error", prefix=False)


class ZoneServer:
    """One zone served over UDP and TCP on the same 127.0.0.1 port."""

    def __init__(self, records, port=0, ttl=0, address="127.0.0.1"):
        self.zone = _Zone(records, ttl)
        self.address = address
        logger = _QuietLogger()
        # UDP first on the requested (or a free) port, then TCP on the same number; with
        # port 0 a clash on the TCP side just means picking another pair.
        for _ in range(20):
            udp = DNSServer(self.zone, address=address, port=port, logger=logger,
                            handler=_Handler)
            chosen = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.zone, address=address, port=chosen, tcp=True,
                                logger=logger, handler=_Handler)
            except OSError:
                udp.server.server_close()
                if port:
                    raise
                continue
            break
        else:
            raise OSError("no free port for both UDP and TCP")
        self.port = chosen
        self._servers = (udp, tcp)
        for s in self._servers:
            s.start_thread()

    @property
    def queries(self):
        with self.zone.lock:
            return list(self.zone.queries)

    def set_records(self, records):
        self.zone.set_records(records)

    def stop(self):
        for s in self._servers:
            s.server.shutdown()
            s.server.server_close()


def start_dns_server(zone_records, port=0, ttl=0):
    """Serves `zone_records` in background threads; returns (server, port)."""
    server = ZoneServer(zone_records, port=port, ttl=ttl)
    return server, server.port


def parse_zone_text(text):
    """Zone file lines "NAME TYPE VALUE..." → the record tuples start_dns_server takes."""
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"line {lineno}: expected NAME TYPE VALUE")
        name, rtype, rest = parts[0], parts[1].upper(), parts[2:]
        if rtype == "MX":
            if len(rest) != 2:
                raise ValueError(f"line {lineno}: MX wants PREFERENCE HOST")
            records.append((name, rtype, (int(rest[0]), rest[1])))
        elif rtype in SPECIAL:
            records.append((name, rtype, None))
        else:
            if len(rest) != 1:
                raise ValueError(f"line {lineno}: {rtype} wants one value")
            records.append((name, rtype, rest[0]))
    return records


def _main(argv):
    port, ttl, path = 0, 0, None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--port" and args:
            port = int(args.pop(0))
        elif a == "--ttl" and args:
            ttl = int(args.pop(0))
        elif not a.startswith("-") and path is None:
            path = a
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if path is None:
        print(__doc__, file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        records = parse_zone_text(f.read())
    server, port = start_dns_server(records, port=port, ttl=ttl)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"port {port}", flush=True)
    while not done.wait(1):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
