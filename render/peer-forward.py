"""One TCP port forwarded to another site's Traefik through this site's egress node (render/traefik.ts).

Traefik cannot send a backend's requests through an HTTP proxy; the site's way out to the tailnet is its egress
node's proxy, which tunnels TCP with CONNECT. This listens where Traefik's fallback service points, and pipes each
connection through a CONNECT to the peer's tailnet name and port. Standard library only (socat, which does the same,
is not in the catalog's images).

Usage: peer-forward.py LISTEN_PORT PROXY_HOST:PORT TARGET_HOST:PORT
"""

import asyncio
import socket
import sys

LISTEN = int(sys.argv[1])
PROXY_HOST, PROXY_PORT = sys.argv[2].rsplit(":", 1)
TARGET = sys.argv[3]
# The proxy's answer to CONNECT: a status line and headers, small.
HEAD_LIMIT = 16384


def log(message):
    print(f"peer-forward {TARGET}: {message}", file=sys.stderr, flush=True)


# Once one direction has ended, how long the other may go on (a response still coming) before both are closed: a
# tunnel that died (the peer's power cut) must not hold the connection for ever.
DRAIN_SECONDS = 30


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def handle(client_reader, client_writer):
    upstream = None
    try:
        reader, upstream = await asyncio.wait_for(asyncio.open_connection(PROXY_HOST, int(PROXY_PORT)), 5)
        upstream.write(f"CONNECT {TARGET} HTTP/1.1\r\nHost: {TARGET}\r\n\r\n".encode())
        await upstream.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if len(head) > HEAD_LIMIT or status.split(" ")[1:2] != ["200"]:
            raise ConnectionError(f"the proxy answered {status!r}")
        for w in (client_writer, upstream):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        directions = {asyncio.create_task(pipe(client_reader, upstream)), asyncio.create_task(pipe(reader, client_writer))}
        _, pending = await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            _, late = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
    except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        log(repr(e))
    finally:
        for w in (client_writer, upstream):
            if w is not None:
                w.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", LISTEN)
    log(f"listening on {LISTEN}, through {PROXY_HOST}:{PROXY_PORT}")
    async with server:
        await server.serve_forever()


asyncio.run(main())
