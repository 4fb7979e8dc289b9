"""A loopback HTTP proxy that adds a fixed delay to every request.

    python benchmarks/latency_proxy.py --upstream http://127.0.0.1:4200 --delay-ms 50

It listens on 127.0.0.1 (a free port, printed as ``listening http://127.0.0.1:PORT``),
waits ``--delay-ms`` then forwards each request to ``--upstream`` and relays the
answer, so a local Prefect server looks like a remote one (or Prefect Cloud):
every request pays one round trip, concurrent requests pay it in parallel.

It is bounded and stops by itself: at most ``--max-connections`` client
connections at once, and it exits after ``--idle-seconds`` without a request or
``--max-seconds`` in all. HTTP/1.1 with Content-Length bodies only (what
``httpx`` and Prefect's client send); hop-by-hop headers are not forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import httpx

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "content-encoding",
    "host",
}


class LatencyProxy:
    def __init__(self, upstream: str, delay: float, max_connections: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.slots = asyncio.Semaphore(max_connections)
        self.last_request = time.monotonic()
        self.requests = 0
        self.client = httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=max_connections)
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.slots:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while await self.one_request(reader, writer):
                    pass
            writer.close()

    async def one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        headers = [(k.strip(), v.strip()) for k, v in headers]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length) if length else b""
        self.last_request = time.monotonic()
        self.requests += 1
        await asyncio.sleep(self.delay)
        forwarded = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        response = await self.client.request(
            method, self.upstream + target, headers=forwarded, content=body
        )
        content = response.content  # decoded: content-encoding is not forwarded
        out = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        out += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        out += [f"content-length: {len(content)}", "", ""]
        writer.write("\r\n".join(out).encode("latin-1") + content)
        await writer.drain()
        return not any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)


async def serve(args: argparse.Namespace) -> None:
    proxy = LatencyProxy(args.upstream, args.delay_ms / 1000, args.max_connections)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening http://127.0.0.1:{port}", flush=True)
    started = time.monotonic()
    async with server:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if now - proxy.last_request > args.idle_seconds or now - started > args.max_seconds:
                break
    await proxy.client.aclose()
    print(f"stopped after {proxy.requests} requests", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:4200")
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--idle-seconds", type=float, default=300.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
