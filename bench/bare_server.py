"""A bare aiohttp server for the throughput baseline: GET /ping/{key} answers "OK", nothing else.

Started by bench/ping_throughput.py; by hand: `.venv/bin/python bench/bare_server.py [--host H] [--port P]`.
It binds (port 0 = the OS picks one), prints the port on stdout, and serves until SIGTERM/SIGINT.
Same event loop, backlog and access-log setting as `heartfly serve`, so the only difference is the handler.
"""

from __future__ import annotations

import argparse
import socket

from aiohttp import web


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): let the OS pick a free port")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/ping/{key}", ping)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"bare server port {sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, access_log=None, print=None, backlog=2048, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()
