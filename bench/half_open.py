#!/usr/bin/env python3
"""Hold N half-open TLS handshakes against nymgate: each connection sends the record header and
the ClientHello header declaring DECLARED bytes, then SENT bytes of it in records of at most
2^14, and then nothing. Loopback only; bounded in count and time (issue 27, BENCHMARKS.md).

usage: half_open.py HOST PORT N DECLARED SENT HOLD_SECONDS READY_FILE
DECLARED 0: a whole real ClientHello (Python's ssl), so that nymgate answers it and then waits
for the client's Finished, which never comes.
Prints to standard error how many connections were open when READY_FILE was written and how
many nymgate had closed by then (a refused ClientHello is closed at once).
"""
import asyncio
import ssl
import sys

HOST, PORT, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DECLARED, SENT, HOLD, READY = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]


def flight():
    if DECLARED == 0:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return outgoing.read()
    message = bytes([1]) + DECLARED.to_bytes(3, "big") + b"\x41" * (SENT - 4)
    out = b""
    for at in range(0, len(message), 16384):
        fragment = message[at:at + 16384]
        out += bytes([22, 3, 1]) + len(fragment).to_bytes(2, "big") + fragment
    return out


async def one(data, sem, conns):
    async with sem:
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        conns.append((reader, writer))


async def main():
    data = flight()
    sem = asyncio.Semaphore(200)
    conns = []
    await asyncio.gather(*(one(data, sem, conns) for _ in range(N)), return_exceptions=True)
    await asyncio.sleep(2)
    closed = sum(1 for reader, _ in conns if reader.at_eof() or reader.exception() is not None)
    print(f"opened: {len(conns)} closed by nymgate: {closed}", file=sys.stderr)
    open(READY, "w").write(str(len(conns)))
    await asyncio.sleep(HOLD)
    for _, writer in conns:
        writer.close()


asyncio.run(main())
