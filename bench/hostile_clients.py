#!/usr/bin/env python3
"""Hostile clients for bench/hostile.sh (BENCHMARKS.md, "Hostile load"). Loopback only; every
count, wait and run is bounded. Standard library only.

usage:
  hostile_clients.py serve-ws PORT
      A WebSocket endpoint for the platform side: answers the opening handshake with 101
      (RFC 6455 §4.2.2: Sec-WebSocket-Accept = base64(SHA-1(key + GUID))), then reads and
      discards until the peer closes.
  hostile_clients.py attack HOST PORT --stalled N --halfopen N --tunnels N --hold S --ready FILE --stats FILE
      Opens and HOLDS three kinds of connections to nymgate, re-opening any that nymgate closes
      (it cuts them by its deadlines; that is expected and counted):
        stalled   TLS, `GET /big` (a 64 MiB file upstream) and never a byte read; the socket's
                  receive buffer is set small first, so the window closes at once.
        halfopen  plain TCP: a TLS record whose ClientHello declares --hello-declared bytes, all
                  of it sent but the last --hello-unsent bytes, then nothing.
        tunnels   TLS, `GET /ws` with a WebSocket upgrade, the 101 read, then idle.
      Writes FILE (--ready) once every connection has been open once (or after --setup-timeout),
      and JSON counts to --stats every second and on exit (SIGTERM, SIGINT or --hold elapsed).
  hostile_clients.py refuse HOST PORT --n N --declared BYTES --wait S --stats FILE
      Opens N half-open handshakes whose ClientHello declares BYTES (sent in 16 KiB records, all
      but the last --hello-unsent bytes) and counts how many nymgate closes within S seconds of
      the last byte sent ("refused at once") against how many it holds.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import statistics
import struct
import sys
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"  # RFC 6455 §1.3
TCP_ESTABLISHED = 1  # tcpi_state in Linux's struct tcp_info
OPEN_CONCURRENCY = 100  # connections being opened at once (a handshake each)
REOPEN_PAUSE = 0.2  # after a cut, before the next open (s)
FAIL_PAUSE = 1.0  # after a failed open (s)
HEAD_TIMEOUT = 10.0  # any one open: connect, TLS, 101 (s)


# --- the platform's WebSocket endpoint ---------------------------------------------------------

async def ws_session(reader, writer):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        key = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if not key:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await writer.drain()
        while await reader.read(65536):
            pass
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()


async def serve_ws(port):
    server = await asyncio.start_server(ws_session, "127.0.0.1", port, backlog=1024, limit=16384)
    async with server:
        await server.serve_forever()


# --- the attacker ------------------------------------------------------------------------------

def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_hello_prefix(declared, unsent):
    """TLS records (RFC 8446 §5.1: at most 2^14 bytes each) carrying one ClientHello handshake
    message (§4: type 1, 24-bit length) that declares `declared` bytes of body; the whole
    stream is returned but its last `unsent` bytes. The body is zeros: nymgate can't judge it
    before it is whole."""
    message = bytes([1]) + declared.to_bytes(3, "big") + bytes(declared)
    records = b"".join(bytes([22, 3, 1]) + struct.pack(">H", len(message[i:i + 16384])) + message[i:i + 16384]
                       for i in range(0, len(message), 16384))
    return records[: len(records) - unsent]


def holder(writer):
    """The close for a held StreamWriter, which also keeps it alive: a StreamWriter that is
    garbage-collected closes its connection (Python 3.11.5+)."""
    return lambda: writer.transport.abort()


def tcp_state(sock):
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 0


class Kind:
    def __init__(self, name, target):
        self.name, self.target = name, target
        self.held = 0  # open now
        self.opened = 0  # successful opens, first ones included
        self.cuts = 0  # closed by nymgate after being held (then re-opened)
        self.failed = 0  # opens that failed
        self.refused = 0  # answered with something other than what was asked (e.g. 503)
        self.first_error = None
        self.hold_times = []  # seconds each cut connection was held
        self.ever = 0  # slots that have been open at least once

    def report(self):
        times = self.hold_times
        return {
            "target": self.target, "held": self.held, "opened": self.opened,
            "reopened": max(0, self.opened - self.ever), "cuts": self.cuts, "failed": self.failed,
            "refused": self.refused, "first_error": self.first_error,
            "held_s_median": round(statistics.median(times), 2) if times else None,
            "held_s_max": round(max(times), 2) if times else None,
        }

    def error(self, e):
        self.failed += 1
        if self.first_error is None:
            self.first_error = repr(e)[:200]


async def open_tls(host, port, ctx):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname="localhost",
                                             ssl_handshake_timeout=HEAD_TIMEOUT)
    except BaseException:
        sock.close()
        raise


async def stalled_reader(host, port, ctx):
    """The TLS handshake by hand (ssl.MemoryBIO) over a plain socket, the request sent, and then
    never another recv: asyncio's TLS transport would read ahead into its own buffers (hundreds
    of KiB), which is not what a client that stops reading does."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    # Before connect, so the window offered in the handshake is already small and the kernel's
    # autotuning is off for this socket: the window closes after a few KiB.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        await loop.sock_connect(sock, (host, port))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    await loop.sock_sendall(sock, pending)
                chunk = await loop.sock_recv(sock, 16384)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                incoming.write(chunk)
        tls.write(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await loop.sock_sendall(sock, outgoing.read())
    except BaseException:
        sock.close()
        raise
    # nymgate's close can't arrive as a FIN the client reads (it queues behind the unread data):
    # it shows in the socket's state once nymgate's kernel gives up on the data, or as a reset.
    return sock.close, lambda: tcp_state(sock) == TCP_ESTABLISHED


async def half_open(host, port, payload):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), HEAD_TIMEOUT)
    writer.write(payload)
    await writer.drain()
    return holder(writer), reader


async def tunnel(host, port, ctx):
    reader, writer = await asyncio.wait_for(open_tls(host, port, ctx), HEAD_TIMEOUT)
    key = base64.b64encode(os.urandom(16))
    writer.write(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        status = head.split(b"\r\n", 1)[0][:80]
        raise RuntimeError(f"no 101: {status!r}")
    expected = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if expected not in head:
        writer.close()
        raise RuntimeError("101 without the right Sec-WebSocket-Accept")
    return holder(writer), reader


async def wait_closed_by_peer(reader):
    """Reads and discards until EOF or reset: nothing is expected while idle."""
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass


async def slot(kind, opener, sem, stop, is_first):
    first = True
    while not stop.is_set():
        try:
            async with sem:
                if stop.is_set():
                    return
                abort, watch = await opener()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError, ssl.SSLError) as e:
            if isinstance(e, RuntimeError) and "no 101" in str(e):
                kind.refused += 1
            kind.error(e)
            await asyncio.sleep(FAIL_PAUSE)
            continue
        kind.opened += 1
        kind.held += 1
        if first:
            kind.ever += 1
            first = False
            is_first()
        since = time.monotonic()
        try:
            if callable(watch):  # a stalled reader: its socket's state
                while watch() and not stop.is_set():
                    await asyncio.sleep(1.0)
            else:
                waiter = asyncio.ensure_future(wait_closed_by_peer(watch))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            kind.held -= 1
            abort()
        if stop.is_set():
            return
        kind.cuts += 1
        kind.hold_times.append(time.monotonic() - since)
        await asyncio.sleep(REOPEN_PAUSE)


async def attack(args):
    ctx = tls_context()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    payload = client_hello_prefix(args.hello_declared, args.hello_unsent)
    kinds = {
        "stalled": Kind("stalled", args.stalled),
        "halfopen": Kind("halfopen", args.halfopen),
        "tunnels": Kind("tunnels", args.tunnels),
    }
    total = args.stalled + args.halfopen + args.tunnels
    sem = asyncio.Semaphore(OPEN_CONCURRENCY)
    started = time.monotonic()
    ready = asyncio.Event()
    opened_once = [0]

    def one_open():
        opened_once[0] += 1
        if opened_once[0] >= total:
            ready.set()

    def stats():
        return {"elapsed_s": round(time.monotonic() - started, 1),
                "hello_declared": args.hello_declared, "hello_sent": args.hello_declared - args.hello_unsent,
                **{k: v.report() for k, v in kinds.items()}}

    def write_stats():
        with open(args.stats + ".tmp", "w") as f:
            json.dump(stats(), f)
        os.replace(args.stats + ".tmp", args.stats)

    host, port = args.host, args.port
    tasks = []
    # Interleaved, so that every kind is being opened from the start.
    plan = ([("tunnels", lambda: tunnel(host, port, ctx))] * args.tunnels
            + [("stalled", lambda: stalled_reader(host, port, ctx))] * args.stalled
            + [("halfopen", lambda: half_open(host, port, payload))] * args.halfopen)
    for name, opener in plan:
        tasks.append(asyncio.ensure_future(slot(kinds[name], opener, sem, stop, one_open)))
    if total == 0:
        ready.set()

    async def mark_ready():
        try:
            await asyncio.wait_for(ready.wait(), args.setup_timeout)
        except asyncio.TimeoutError:
            pass
        write_stats()
        with open(args.ready, "w") as f:
            f.write(json.dumps(stats()))
        print(f"ready after {time.monotonic() - started:.1f} s: "
              + ", ".join(f"{k} {v.held}/{v.target}" for k, v in kinds.items()), file=sys.stderr)

    readiness = asyncio.ensure_future(mark_ready())
    deadline = started + args.hold
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        write_stats()
    stop.set()
    readiness.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    write_stats()
    print(json.dumps(stats()), file=sys.stderr)


async def refuse(args):
    payload = client_hello_prefix(args.declared, args.hello_unsent)
    sem = asyncio.Semaphore(OPEN_CONCURRENCY)
    counts = {"declared": args.declared, "sent": args.declared - args.hello_unsent, "n": args.n,
              "refused_at_once": 0, "held": 0, "failed": 0, "first_error": None}
    times = []
    held_writers = []

    async def one():
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), HEAD_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                counts["failed"] += 1
                counts["first_error"] = counts["first_error"] or repr(e)[:200]
                return
        t0 = time.monotonic()
        try:
            writer.write(payload)
            await writer.drain()
        except OSError:
            pass  # closed while we were still sending: refused
        try:
            await asyncio.wait_for(wait_closed_by_peer(reader), args.wait)
            counts["refused_at_once"] += 1
            times.append(time.monotonic() - t0)
            writer.transport.abort()
        except asyncio.TimeoutError:
            counts["held"] += 1
            held_writers.append(writer)

    await asyncio.gather(*(one() for _ in range(args.n)))
    counts["refused_s_median"] = round(statistics.median(times), 3) if times else None
    with open(args.stats, "w") as f:
        json.dump(counts, f)
    print(json.dumps(counts), file=sys.stderr)
    for w in held_writers:
        w.transport.abort()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ws = sub.add_parser("serve-ws")
    ws.add_argument("port", type=int)
    a = sub.add_parser("attack")
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("--stalled", type=int, default=1000)
    a.add_argument("--halfopen", type=int, default=2000)
    a.add_argument("--tunnels", type=int, default=100)
    a.add_argument("--hello-declared", type=int, default=15000)
    a.add_argument("--hello-unsent", type=int, default=100)
    a.add_argument("--hold", type=float, default=300, help="longest run (s)")
    a.add_argument("--setup-timeout", type=float, default=60)
    a.add_argument("--ready", required=True)
    a.add_argument("--stats", required=True)
    r = sub.add_parser("refuse")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("--n", type=int, default=100)
    r.add_argument("--declared", type=int, default=65000)
    r.add_argument("--hello-unsent", type=int, default=100)
    r.add_argument("--wait", type=float, default=2.0)
    r.add_argument("--stats", required=True)
    args = p.parse_args()
    if args.cmd == "serve-ws":
        asyncio.run(serve_ws(args.port))
    elif args.cmd == "attack":
        asyncio.run(attack(args))
    else:
        asyncio.run(refuse(args))


if __name__ == "__main__":
    main()
