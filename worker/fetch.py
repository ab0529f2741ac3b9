"""Fetching client-supplied URLs (manifest images, webhooks) without becoming an SSRF proxy.

Every hop (the URL and each redirect) is checked: http/https only, and the host must resolve
to public addresses only; the connection then goes to the address that was checked (the URL's
host is pinned to it, TLS still verifies the real name), so DNS rebinding between check and
connect cannot reach an internal address. `allow_private` (TAGGER_FETCH_ALLOW_PRIVATE) lifts
the address check for trusted networks and tests.

Each URL has one deadline (TAGGER_FETCH_DEADLINE_S) for everything: DNS, connect, redirects
and the body, so a host that drips a byte every few seconds cannot hold a chunk; whatever goes
wrong with one URL becomes that item's error, never the chunk's.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin

import httpx

from core.urls import url_problem

log = logging.getLogger(__name__)

FETCH_THREADS = 16  # URL fetches are I/O-bound: overlap them (bounds a chunk's wall time)
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
# Cloud metadata endpoints that are not covered by "not globally routable" everywhere.
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
                      ipaddress.ip_address("fd00:ec2::254")}  # AWS IPv6


class FetchError(Exception):
    """A per-item failure; the message is shown to the client."""


class Deadline:
    """The time left for one URL; each network operation gets at most that (and at most
    `step_s`, the per-operation timeout)."""

    def __init__(self, total_s: float, step_s: float) -> None:
        self.total_s, self.step_s = total_s, step_s
        self._end = time.monotonic() + total_s

    def left(self) -> float:
        return self._end - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise FetchError(f"fetch took longer than {self.total_s:g} s (the per-URL deadline)")

    def timeout(self) -> httpx.Timeout:
        self.check()
        return httpx.Timeout(min(self.step_s, self.left()))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # strip an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local (169.254.169.254 metadata),
    # shared (100.64/10), reserved and unspecified ranges; multicast can be "global".
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


_resolver = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="tagger-dns")


def resolve_public(host: str, port: int, timeout_s: float | None = None) -> str:
    """The address to connect to; raises FetchError if any address of `host` is not public.
    getaddrinfo has no timeout of its own: a lookup past `timeout_s` is given up (its thread
    finishes in the background)."""
    lookup = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout_s)
    except FutureTimeout:
        raise FetchError(f"DNS lookup of {host!r} took longer than {timeout_s:g} s") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}") from exc
    addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if not is_public(a)]
    if blocked or not addresses:
        raise FetchError(f"refused: {host} resolves to a non-public address ({blocked[0]})"
                         if blocked else f"cannot resolve host {host!r}")
    return addresses[0]


def pinned_request(client: httpx.Client, method: str, url: str, allow_private: bool,
                   deadline: Deadline | None = None, **kwargs) -> httpx.Request:
    """Build a request whose connection goes to a checked address (see the module doc)."""
    problem = url_problem(url)
    if problem:
        raise FetchError(problem)
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:  # e.g. a host IDNA refuses
        raise FetchError(f"invalid URL: {exc}") from exc
    if deadline is not None:
        kwargs["timeout"] = deadline.timeout()
    if allow_private:
        return client.build_request(method, target, **kwargs)
    address = resolve_public(target.host, target.port or (443 if target.scheme == "https" else 80),
                             deadline.left() if deadline is not None else None)
    headers = dict(kwargs.pop("headers", None) or {})
    headers["Host"] = target.netloc.decode("ascii")
    request = client.build_request(method, target.copy_with(host=address), headers=headers,
                                   **kwargs)
    request.extensions["sni_hostname"] = target.host  # TLS checks the certificate's real name
    return request


def fetch_image(client: httpx.Client, url: str, max_bytes: int, allow_private: bool,
                deadline: Deadline) -> bytes:
    """GET an image: redirects re-checked, content type image/*, at most `max_bytes` read, all
    within `deadline`."""
    for _ in range(MAX_REDIRECTS + 1):
        request = pinned_request(client, "GET", url, allow_private, deadline)
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            deadline.check()
            raise FetchError(f"fetch failed: {type(exc).__name__}: {exc}") from exc
        # A read blocks for up to its timeout: past the deadline, close the response under it.
        watchdog = threading.Timer(max(0.0, deadline.left()), response.close)
        watchdog.start()
        try:
            if response.status_code in REDIRECTS and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            return _read_image(response, max_bytes, deadline)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            deadline.check()
            raise FetchError(f"fetch failed: {type(exc).__name__}: {exc}") from exc
        finally:
            watchdog.cancel()
            response.close()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _read_image(response: httpx.Response, max_bytes: int, deadline: Deadline) -> bytes:
    if response.status_code != 200:
        raise FetchError(f"fetch failed: HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise FetchError(f"not an image: content type {content_type or '(none)'!r}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"image larger than {max_bytes} bytes")
    body = bytearray()
    for part in response.iter_bytes():
        body += part
        if len(body) > max_bytes:  # servers may lie about or omit Content-Length
            raise FetchError(f"image larger than {max_bytes} bytes")
        deadline.check()
    return bytes(body)


def fetch_all(urls: list[str], max_bytes: int, allow_private: bool, timeout_s: float,
              deadline_s: float) -> list[bytes | FetchError]:
    """Each URL's image bytes, or why not: FETCH_THREADS at a time, each within its own
    deadline. Never raises for one URL."""
    def fetch(url: str) -> bytes | FetchError:
        try:
            return fetch_image(client, url, max_bytes, allow_private,
                               Deadline(deadline_s, timeout_s))
        except FetchError as exc:
            return exc
        except Exception as exc:  # hostile hosts and URLs make many libraries raise many types
            log.warning("fetching %.200s failed unexpectedly", url, exc_info=True)
            return FetchError(f"fetch failed: {type(exc).__name__}: {exc}")

    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client, \
            ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(urls))) as pool:
        return list(pool.map(fetch, urls))
