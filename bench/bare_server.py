"""A bare aiohttp server for the throughput baseline: GET /ping/{key} answers "OK", nothing else.
(`--raw`: a raw asyncio server answering "OK" to any request, for the load generator's ceiling.)

Started by bench/ping_throughput.py; by hand: `.venv/bin/python bench/bare_server.py [--host H] [--port P]`.
It binds (port 0 = the OS picks one), prints the port on stdout, and serves until SIGTERM/SIGINT.
Same event loop, backlog and access-log setting as `heartfly serve`, so the only difference is the handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

from aiohttp import web


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK")


RAW_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK"


class Raw(asyncio.Protocol):
    """`--raw`: no HTTP framework, a fixed answer per request (wrk's GETs have no body), to find
    the load generator's ceiling with a server that costs it little."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(RAW_ANSWER * data.count(b"\r\n\r\n"))


async def serve_raw(sock: socket.socket) -> None:
    sock.listen(2048)
    server = await asyncio.get_running_loop().create_server(Raw, sock=sock)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): let the OS pick a free port")
    parser.add_argument("--raw", action="store_true", help="a raw asyncio server instead (the generator's ceiling)")
    args = parser.parse_args()
    if args.raw:
        sock = bound(args.host, args.port)
        print(f"raw server port {sock.getsockname()[1]}", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_raw(sock))
        return
    app = web.Application()
    app.router.add_get("/ping/{key}", ping)
    serve_app(app, bound(args.host, args.port), "bare")


def bound(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (0: the OS picks), not yet listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve_app(app: web.Application, sock: socket.socket, label: str) -> None:
    """Serve `app` as `heartfly serve` does (backlog, no access log), after printing the port."""
    sock.listen(2048)  # connections wait in the backlog until the app has started
    print(f"{label} server port {sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, access_log=None, print=None, backlog=2048, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()
