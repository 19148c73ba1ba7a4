"""Fuzz the HTTP surface of a real `heartfly serve`: zero 5xx, zero crashes, bounded memory.

Run from the repository root:

    .venv/bin/python bench/fuzz_http.py                 # about a minute
    .venv/bin/python bench/fuzz_http.py --requests 20000 --idle 3000

Phases, each printing PASS or FAIL:
1. random requests: methods, paths (ping forms, API, garbage, percent-encoded bytes, 10 KB paths),
   query strings, headers (many, huge) and bodies (binary, broken JSON, up to 20 MB) from 64
   concurrent raw-socket clients; every answer must be a complete HTTP response below 500;
2. slow clients: connections that dribble their headers a byte at a time while ordinary pings
   keep being answered 200;
3. thousands of idle connections held open while ordinary pings keep being answered 200;
4. the server is still alive, answered /livez, and its resident memory grew by less than a bound.
Exit status 1 if any phase failed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchlib import (
    LISTENING_RE,
    CheckSpec,
    exit_on_sigterm,
    heartfly_cmd,
    make_key,
    rss_mib,
    start_process,
    stop_process,
    wait_for_match,
    write_heartfly_config,
)

METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW", "get", "CONNECT"]
STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


def random_request(rng: random.Random, keys: list[str]) -> bytes:
    key = rng.choice([*keys, make_key(), "x" * rng.randint(0, 300)])
    junk = "".join(rng.choice("abc/%?&=;.~-_:@!$'()*+,é€\x7f") for _ in range(rng.randint(0, 40)))
    # %C2%B2 "²" and %D9%A3 "٣" are digits to str.isdigit(), not exit statuses
    event = rng.choice(["start", "fail", "log", "progress", "0", "255", "256", "-1", "%C2%B2", "%D9%A3", junk])
    path = rng.choice([
        f"/ping/{key}", f"/ping/{key}/{event}",
        f"/ping/{key}/{junk}/{junk}", f"/api/v1/heartbeat/{key}", f"/api/v1/checks/{junk}", "/api/v1/checks",
        f"/{junk}", "/" + "a" * rng.choice([100, 5000, 10000]), "/ping/" + "%ff%fe%00" * rng.randint(1, 20),
        f"/ping/{key}?ts={rng.choice(['abc', '1e400', '-5', 'nan', str(time.time())])}&m_x={junk}&rid={junk}",
        "/livez", "/readyz", "/metrics", "/", "/checks/x",
    ])  # fmt: skip
    method = rng.choice(METHODS)
    headers = ["Host: 127.0.0.1", "Connection: close"]
    for _ in range(rng.randint(0, 5)):
        headers.append(f"X-{rng.randint(0, 99)}: " + "v" * rng.choice([1, 100, 8000, 20000]))
    if rng.random() < 0.2:  # "\udcff" goes out as the byte 0xff: a header value that is not UTF-8
        name = rng.choice(["User-Agent", "Authorization", "Cookie", "X-CSRF-Token"])
        headers.append(f"{name}: {rng.choice(['Bearer ', 'heartfly_session=1.', ''])}bad\udcff")
    body = b""
    if rng.random() < 0.5:
        body = rng.choice([
            rng.randbytes(rng.randint(0, 2000)), b"{", b'{"status": "fail", "message": 5}',
            b'{"metrics": {"a": "b"}}', b'{"status": "start", "ts": 1e400}', b"[]" * 1000, b"\xff" * 100,
            b"x" * rng.choice([10, 200_000, 2_000_000]), b'{"exit_code": ' + b"9" * 5000 + b"}",
            b"[" * 5000 + b"]" * 5000, b'{"ts": 1' + b"0" * 400 + b"}", b'{"metrics": {"a": 1' + b"0" * 400 + b"}}",
            b'{"status": "log", "message": "\\ud800"}',
        ])  # fmt: skip
        if rng.random() < 0.2:
            headers.append(f"Content-Encoding: {rng.choice(['gzip', 'deflate', 'br', 'bogus'])}")
        headers.append(
            rng.choice([f"Content-Length: {len(body)}", "Content-Type: application/json", "Transfer-Encoding: chunked"])
        )
        if headers[-1].startswith("Content-Type"):
            headers.append(f"Content-Length: {len(body)}")
        if headers[-1].startswith("Transfer-Encoding"):
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if rng.random() < 0.8 else body
    line = f"{method} {path} HTTP/1.1\r\n"
    return (
        line.encode("utf-8", "replace") + ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    )


async def send_raw(port: int, data: bytes, timeout: float = 20.0) -> int | None:
    """The status of the answer, 0 if the server closed without one, None on a client-side timeout."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(data)
                await writer.drain()
                head = await reader.read(64)
            finally:
                writer.close()
    except (ConnectionError, OSError):
        return 0
    except TimeoutError:
        return None
    match = STATUS_RE.match(head)
    return int(match.group(1)) if match else 0


async def ping_ok(port: int, key: str) -> bool:
    return await send_raw(port, f"GET /ping/{key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), 5) == 200


async def phase_random(port: int, keys: list[str], count: int, seed: int) -> bool:
    rng = random.Random(seed)
    requests = [random_request(rng, keys) for _ in range(count)]
    statuses: Counter[int | None] = Counter()
    sem = asyncio.Semaphore(64)

    async def one(data: bytes) -> None:
        async with sem:
            statuses[await send_raw(port, data)] += 1

    await asyncio.gather(*(one(r) for r in requests))
    five = sum(n for s, n in statuses.items() if s is not None and s >= 500)
    shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
    print(f"random requests: {count} sent; answers by status {shown}")
    ok = five == 0 and statuses[None] == 0
    print(f"{'PASS' if ok else 'FAIL'} random requests: {five} answered 5xx, {statuses[None]} hung past 20 s")
    return ok


async def phase_slow(port: int, key: str, clients: int, seconds: float) -> bool:
    stop = time.monotonic() + seconds

    async def dribble() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        try:
            for byte in b"GET /ping/" + key.encode() + b" HTTP/1.1\r\nHost: x\r\n":
                if time.monotonic() > stop:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
        except OSError:
            pass
        finally:
            writer.close()

    slow = [asyncio.create_task(dribble()) for _ in range(clients)]
    answered = total = 0
    while time.monotonic() < stop:
        total += 1
        answered += await ping_ok(port, key)
        await asyncio.sleep(0.02)
    await asyncio.gather(*slow)
    ok = answered == total
    print(
        f"{'PASS' if ok else 'FAIL'} slow clients: {clients} dribbling headers;"
        f" {answered} of {total} pings answered 200"
    )
    return ok


async def phase_idle(port: int, key: str, count: int) -> bool:
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            break
        writers.append(writer)
    answered = sum([await ping_ok(port, key) for _ in range(50)])
    for writer in writers:
        writer.close()
    ok = answered == 50
    print(f"{'PASS' if ok else 'FAIL'} idle connections: {len(writers)} held open; {answered} of 50 pings answered 200")
    return ok


async def run(args: argparse.Namespace, folder: Path) -> int:
    keys = [make_key() for _ in range(20)]
    config = write_heartfly_config(folder, [CheckSpec(f"c{i}", k, "1h") for i, k in enumerate(keys)])
    log = folder / "heartfly.log"
    proc = start_process([*heartfly_cmd(), "serve", "-c", str(config)], log)
    try:
        port = int(wait_for_match(proc, log, LISTENING_RE, timeout=60).group(1))
        await asyncio.sleep(0.5)
        rss_before = rss_mib(proc.pid)
        results = [
            await phase_random(port, keys, args.requests, args.seed),
            await phase_slow(port, keys[0], args.slow, args.slow_seconds),
            await phase_idle(port, keys[0], args.idle),
        ]
        await asyncio.sleep(1)
        alive = proc.poll() is None and await send_raw(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", 5) == 200
        rss_after = rss_mib(proc.pid) if proc.poll() is None else float("nan")
        grew = rss_after - rss_before
        ok = alive and grew < args.memory_bound
        verdict = "PASS" if ok else "FAIL"
        print(f"{verdict} server alive: {alive}; resident memory {rss_before:.0f} -> {rss_after:.0f} MiB"
              f" (bound: +{args.memory_bound:.0f} MiB)")  # fmt: skip
        results.append(ok)
        tracebacks = log.read_text(errors="replace").count("Traceback")
        results.append(tracebacks == 0)
        print(f"{'PASS' if tracebacks == 0 else 'FAIL'} server log: {tracebacks} traceback(s)")
    finally:
        status = stop_process(proc)
    print(f"server exit status {status}")
    return 0 if all(results) and status == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--slow", type=int, default=200, help="slow clients (default 200)")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=3000, help="idle connections held open (default 3000)")
    parser.add_argument("--memory-bound", type=float, default=150.0, help="MiB of growth allowed (default 150)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    exit_on_sigterm()
    folder = Path(tempfile.mkdtemp(prefix="heartfly-fuzz-"))
    try:
        sys.exit(asyncio.run(run(args, folder)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
