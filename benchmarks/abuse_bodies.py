"""What `python -m benchmarks abuse` sends: request bodies built once, before anything is
measured (archives of many entries, a zip bomb, oversize parts, synthetic product photos), and
a raw HTTP/1.1 client that can declare a body it never sends.

Raw sockets, because the point is to misbehave: a client library will not declare 500 MB and
stop after the first one, and its own CPU would cloud the measurement.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
import struct
import tarfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

MB = 1024 * 1024


def multipart(parts: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None
              ) -> tuple[str, bytes]:
    """(content type, body) of a multipart form: parts (field, filename, bytes), fields."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                  f"{value}\r\n".encode())
    for field, filename, data in parts:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\";"
                  f" filename=\"{filename}\"\r\nContent-Type: application/octet-stream"
                  "\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", out.getvalue()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the whole answer read

    def json(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


async def send(base: str, method: str, path: str, headers: dict[str, str], body: bytes = b"",
               declared: int | None = None, timeout_s: float = 60) -> Answer:
    """One request on a fresh connection. `declared`: the Content-Length to claim (default the
    body's); only `body` is sent, then the answer is awaited (the server must answer without
    the rest). The answer is read while the body is still going out: a server that answers
    early and closes resets the connection, and the answer must be read before that."""
    url = urlsplit(base)
    started = time.perf_counter()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(url.hostname, url.port), timeout_s)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
                     f"Content-Length: {len(body) if declared is None else declared}\r\n"
                     "\r\n".encode())
        answer = asyncio.ensure_future(_read(reader, started))
        sending = asyncio.ensure_future(_send_body(writer, body))
        done, _ = await asyncio.wait({answer, sending}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if answer not in done:
            await asyncio.wait({answer}, timeout=max(0.0, timeout_s - (
                time.perf_counter() - started)))
        sending.cancel()
        if not answer.done():
            answer.cancel()
            raise TimeoutError(f"no answer within {timeout_s} s")
        return answer.result()
    finally:
        writer.close()


async def _send_body(writer: asyncio.StreamWriter, body: bytes) -> None:
    try:
        for start in range(0, len(body), 1 << 20):
            writer.write(body[start:start + (1 << 20)])
            await writer.drain()
    except ConnectionError:
        pass  # answered and closed before the body was all sent: the answer is what counts


def send_blocking(base: str, method: str, path: str, headers: dict[str, str], body: bytes,
                  declared: int | None = None, timeout_s: float = 30) -> Answer:
    """`send` on blocking sockets, for a thread: the body goes out from a second thread while
    this one waits in recv. A server that refuses early closes on unread data, which resets the
    connection; a recv already waiting has the answer by then, whereas an event loop busy with
    other clients may come to read only after the reset (and lose the answer)."""
    url = urlsplit(base)
    started = time.perf_counter()
    with socket.create_connection((url.hostname, url.port), timeout=timeout_s) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
                     f"Content-Length: {len(body) if declared is None else declared}\r\n"
                     "\r\n".encode())

        def write() -> None:
            try:
                sock.sendall(body)
            except OSError:
                pass  # answered and closed first: the answer is what counts

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed without an answer")
            answer += chunk
        head_bytes, _, rest = answer.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        found = {k.strip().lower(): v.strip()
                 for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        while len(rest) < int(found.get("content-length", 0)):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            rest += chunk
        seconds = time.perf_counter() - started
    writer.join(timeout_s)
    return Answer(int(lines[0].split()[1]), found, rest, seconds)


class KeepAlive:
    """One client's keep-alive connection (reopened when the server closes it)."""

    def __init__(self, base: str) -> None:
        self.url = urlsplit(base)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      timeout_s: float = 30) -> Answer:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.url.hostname,
                                                                     self.url.port)
        assert self.reader is not None
        started = time.perf_counter()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.url.netloc}\r\n{head}"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            answer = await asyncio.wait_for(_read(self.reader, started), timeout_s)
        except BaseException:
            self.close()
            raise
        if answer.headers.get("connection", "").lower() == "close":
            self.close()
        return answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


async def _read(reader: asyncio.StreamReader, started: float) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return Answer(int(lines[0].split()[1]), headers, body, time.perf_counter() - started)


# -- archives -----------------------------------------------------------------------------------


def tar_of_directories(entries: int) -> bytes:
    """A .tar.gz of `entries` directory headers (512 bytes each, ~230:1 compressed): millions
    of entries in a few megabytes, the issue's header bomb."""
    header = tarfile.TarInfo("d/")
    header.type = tarfile.DIRTYPE
    block = header.tobuf(format=tarfile.USTAR_FORMAT)
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    step = 10_000
    parts = [deflate.compress(block * step) for _ in range(entries // step)]
    parts.append(deflate.compress(b"\0" * 1024))
    return b"".join(parts) + deflate.flush()


def zip_bomb(members: int = 5, member_bytes: int = 500 * MB) -> bytes:
    """`members` deflated members of `member_bytes` zeros each (true sizes in the headers): a
    few megabytes that expand past TAGGER_MAX_ARCHIVE_UNCOMPRESSED_BYTES (2 GiB)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc, zeros = 0, bytes(MB)
    data = []
    for _ in range(member_bytes // MB):
        data.append(deflate.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    compressed = b"".join(data) + deflate.flush()
    return _raw_zip([(f"bomb-{i}.bmp", compressed, crc, member_bytes, 8)
                     for i in range(members)])


def zip_of_empty_entries(entries: int) -> bytes:
    """A zip of `entries` empty directory entries (its end record says how many)."""
    return _raw_zip([(f"d{i}/", b"", 0, 0, 0) for i in range(entries)])


def _raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from (name, stored data, crc, uncompressed size, method), written by hand so
    one compressed stream can serve many members."""
    local, central, offset = [], [], 0
    for name, data, crc, size, method in members:
        raw = name.encode()
        head = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data),
                           size, len(raw), 0) + raw
        local.append(head + data)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                                   len(data), size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        offset += len(head) + len(data)
    directory = b"".join(central)
    count = len(members)
    zip64 = b""
    if count >= 0xFFFF:  # the classic end record counts to 65,535: a zip64 one says the rest
        zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                            len(directory), offset)
        zip64 += struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
        count = 0xFFFF
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset,
                      0)
    return b"".join(local) + directory + zip64 + end


def product_photos(count: int, seed: int = 0, size: tuple[int, int] = (600, 800)
                   ) -> list[bytes]:
    """Synthetic product shots: a dark garment-like shape on a light background, as JPEG."""
    rng = random.Random(seed)
    photos = []
    for _ in range(count):
        img = Image.new("RGB", size, (250, 250, 248))
        w, h = size
        x0, y0 = rng.randint(60, w // 3), rng.randint(60, h // 3)
        shade = tuple(rng.randint(20, 120) for _ in range(3))
        ImageDraw.Draw(img).rectangle((x0, y0, w - x0, h - y0), fill=shade)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=85)
        photos.append(buffer.getvalue())
    return photos
