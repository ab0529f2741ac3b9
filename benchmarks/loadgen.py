"""A lean HTTP/1.1 load generator for the latency figures.

The service, its worker, Redis and the client share this machine's 2 cores. httpx's async
client spent about 8 ms of CPU per multipart request here, as much as the API itself, so it
measured mostly its own queueing. This client sends pre-encoded requests over keep-alive
connections (one per simulated client) and parses only the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit


def multipart_request(host: str, path: str, field: str, filename: str, data: bytes,
                      content_type: str) -> bytes:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\";"
            f" filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def classify_latencies(base: str, images: list[bytes], clients: int, per_client: int,
                             wait_s: float = 10) -> list[float]:
    """`clients` connections, each sending `per_client` POST /v1/classify?wait= in turn;
    returns every request's latency in ms. A non-200 answer is an error."""
    url = urlsplit(base)
    path = f"/v1/classify?wait={wait_s}"
    latencies: list[float] = []

    async def one_client(c: int) -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            for r in range(per_client):
                data = images[(c * per_client + r) % len(images)]
                request = multipart_request(url.netloc, path, "file", "x.png", data,
                                            "image/png")
                start = time.perf_counter()
                writer.write(request)
                status, body = await read_response(reader)
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    raise RuntimeError(f"classify answered {status}: {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one_client(c) for c in range(clients)))
    return latencies
