#!/usr/bin/env python3
"""Open N TLS keep-alive connections to nymgate, one request each, then hold them idle while the
caller reads nymgate's resident memory. Loopback only; bounded in count and time.

usage: idle_conns.py HOST PORT N HOLD_SECONDS READY_FILE
"""
import asyncio
import ssl
import sys

HOST, PORT, N, HOLD, READY = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def one(ctx, sem, conns):
    async with sem:
        reader, writer = await asyncio.open_connection(HOST, PORT, ssl=ctx, server_hostname="localhost")
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        await reader.readexactly(length)
        conns.append(writer)


async def main():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(200)
    conns = []
    results = await asyncio.gather(*(one(ctx, sem, conns) for _ in range(N)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    print(f"open: {len(conns)} errors: {len(errors)}", file=sys.stderr)
    if errors:
        print(f"first error: {errors[0]!r}", file=sys.stderr)
    open(READY, "w").write(str(len(conns)))
    await asyncio.sleep(HOLD)
    for w in conns:
        w.close()


asyncio.run(main())
