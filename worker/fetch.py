"""Fetching client-supplied URLs (manifest images, webhooks) without becoming an SSRF proxy.

Every hop (the URL and each redirect) is checked: http/https only, and the host must resolve
to public addresses only; the connection then goes to the address that was checked (the URL's
host is pinned to it, TLS still verifies the real name), so DNS rebinding between check and
connect cannot reach an internal address. `allow_private` (TAGGER_FETCH_ALLOW_PRIVATE) lifts
the address check for trusted networks and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin

import httpx

from core.urls import url_problem

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
# Cloud metadata endpoints that are not covered by "not globally routable" everywhere.
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
                      ipaddress.ip_address("fd00:ec2::254")}  # AWS IPv6


class FetchError(Exception):
    """A per-item failure; the message is shown to the client."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # strip an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local (169.254.169.254 metadata),
    # shared (100.64/10), reserved and unspecified ranges; multicast can be "global".
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def resolve_public(host: str, port: int) -> str:
    """The address to connect to; raises FetchError if any address of `host` is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}") from exc
    addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if not is_public(a)]
    if blocked or not addresses:
        raise FetchError(f"refused: {host} resolves to a non-public address ({blocked[0]})"
                         if blocked else f"cannot resolve host {host!r}")
    return addresses[0]


def pinned_request(client: httpx.Client, method: str, url: str, allow_private: bool,
                   **kwargs) -> httpx.Request:
    """Build a request whose connection goes to a checked address (see the module doc)."""
    problem = url_problem(url)
    if problem:
        raise FetchError(problem)
    target = httpx.URL(url)
    if allow_private:
        return client.build_request(method, target, **kwargs)
    address = resolve_public(target.host, target.port or (443 if target.scheme == "https" else 80))
    headers = dict(kwargs.pop("headers", None) or {})
    headers["Host"] = target.netloc.decode("ascii")
    request = client.build_request(method, target.copy_with(host=address), headers=headers,
                                   **kwargs)
    request.extensions["sni_hostname"] = target.host  # TLS checks the certificate's real name
    return request


def fetch_image(client: httpx.Client, url: str, max_bytes: int, allow_private: bool) -> bytes:
    """GET an image: redirects re-checked, content type image/*, at most `max_bytes` read."""
    for _ in range(MAX_REDIRECTS + 1):
        request = pinned_request(client, "GET", url, allow_private)
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchError(f"fetch failed: {type(exc).__name__}: {exc}") from exc
        try:
            if response.status_code in REDIRECTS and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            return _read_image(response, max_bytes)
        finally:
            response.close()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _read_image(response: httpx.Response, max_bytes: int) -> bytes:
    if response.status_code != 200:
        raise FetchError(f"fetch failed: HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise FetchError(f"not an image: content type {content_type or '(none)'!r}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"image larger than {max_bytes} bytes")
    body = bytearray()
    try:
        for part in response.iter_bytes():
            body += part
            if len(body) > max_bytes:  # servers may lie about or omit Content-Length
                raise FetchError(f"image larger than {max_bytes} bytes")
    except httpx.HTTPError as exc:
        raise FetchError(f"fetch failed: {type(exc).__name__}: {exc}") from exc
    return bytes(body)
